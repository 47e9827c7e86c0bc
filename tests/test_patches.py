"""Patch geometry: identity tiling, positional channels, training/inference coordinate agreement."""
import pytest
import torch

from padis_plugin.prior.denoiser import PaDISDenoiser
from padis_plugin.prior.patches import (crop_to_image, draw_offset, extract_patches, make_grid, pad_to_canvas,
                                        patch_positions, stitch_patches)


class RecordingIdentity(torch.nn.Module):
    """Stand-in preconditioned network: returns its input and records the positions it was given."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, sigma, pos=None):
        self.calls.append((x.detach().clone(), pos.detach().clone()))
        return x


@pytest.mark.parametrize("H,W,P,offset", [(16, 16, 8, (1, 1)), (20, 28, 8, (4, 3)), (13, 7, 4, (2, 4)),
                                          (32, 32, 16, (16, 1)), (5, 9, 16, (3, 2))])
def test_tile_then_stitch_is_identity(H, W, P, offset):
    x = torch.randn(2, 2, H, W)
    grid = make_grid((H, W), P, offset)
    left, right, top, bottom = grid.pad
    assert (top, left) == offset and min(right, bottom) >= 0 and max(right, bottom) < P + max(offset)
    patches = extract_patches(pad_to_canvas(x, grid), P)
    assert patches.shape == (2 * grid.num_patches, 2, P, P)
    assert torch.equal(crop_to_image(stitch_patches(patches, 2, grid.n_rows, grid.n_cols), grid), x)


@pytest.mark.parametrize("H,W,P,M", [(20, 28, 8, 4), (16, 16, 8, 8), (12, 10, 4, 6)])
def test_denoiser_with_identity_network_returns_input(H, W, P, M):
    x = torch.randn(3, 2, H, W)
    den = PaDISDenoiser(RecordingIdentity(), patch_size=P, pad=M, seed=0)
    for _ in range(3):  # several random offsets
        assert torch.equal(den(x, 0.3), x)


def test_offsets_in_range_and_reproducible():
    g = torch.Generator().manual_seed(3)
    offs = [draw_offset(5, g) for _ in range(200)]
    assert {o for pair in offs for o in pair} == {1, 2, 3, 4, 5}
    g2 = torch.Generator().manual_seed(3)
    assert offs[:5] == [draw_offset(5, g2) for _ in range(5)]
    assert draw_offset(0) == (0, 0)


@pytest.mark.parametrize("convention", ["image", "published"])
def test_positions_match_per_pixel_formula(convention):
    H, W, P, cp = 12, 20, 4, 5
    top, left = torch.tensor([0, 3, 15, -2]), torch.tensor([7, 0, 26, 1])
    pos = patch_positions(top, left, P, (H, W), convention, canvas_pad=cp)
    assert pos.shape == (4, 2, P, P)
    for k in range(4):
        for r in range(P):
            for c in range(P):
                row, col = int(top[k]) + r, int(left[k]) + c  # canvas coordinates
                if convention == "image":
                    x, y = 2 * (col - cp) / (W - 1) - 1, 2 * (row - cp) / (H - 1) - 1
                else:
                    x, y = 2 * col / (W + 2 * cp - 1) - 1, 2 * row / (H + 2 * cp - 1) - 1
                assert pos[k, 0, r, c].item() == pytest.approx(x, abs=1e-6)
                assert pos[k, 1, r, c].item() == pytest.approx(y, abs=1e-6)
    # image convention: the image's corner pixels sit at exactly -1 and +1
    corner = patch_positions(cp, cp, 1, (H, W), "image", canvas_pad=cp)
    assert corner[0, :, 0, 0].tolist() == [-1.0, -1.0]
    far = patch_positions(cp + H - 1, cp + W - 1, 1, (H, W), "image", canvas_pad=cp)
    assert far[0, :, 0, 0].tolist() == [1.0, 1.0]


def test_training_and_inference_coordinates_agree():
    """A pixel gets the same coordinates in a training-style patch (pad N/4) and in an inference tile (pad M)."""
    H, W, P, M, train_pad = 16, 24, 8, 8, 4
    rec = RecordingIdentity()
    den = PaDISDenoiser(rec, patch_size=P, pad=M, seed=1)
    rows, cols = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
    x = torch.stack([rows, cols])[None] + 1.0  # +1: image pixels are >= 1, the (noise-free) pad band is 0
    den(x, 0.0)
    patches, pos = rec.calls[-1]
    inside = patches[:, 0] > 0
    r, c = patches[:, 0][inside].long() - 1, patches[:, 1][inside].long() - 1
    assert r.numel() == H * W  # every image pixel was denoised exactly once
    train = patch_positions(r + train_pad, c + train_pad, 1, (H, W), "image", canvas_pad=train_pad)[:, :, 0, 0]
    assert torch.allclose(pos[:, 0][inside], train[:, 0], atol=1e-6)
    assert torch.allclose(pos[:, 1][inside], train[:, 1], atol=1e-6)
    # the published convention depends on the padding: same pixel, different coordinates
    pub_train = patch_positions(r + 96, c + 96, 1, (H, W), "published", canvas_pad=96)
    pub_inf = patch_positions(r + M, c + M, 1, (H, W), "published", canvas_pad=M)
    assert not torch.allclose(pub_train, pub_inf)


def _recorded_positions(den, H, W):
    """Run ``den`` (a RecordingIdentity inside) on an image whose pixels hold their own (row, col) + 1; returns
    the x-coordinate of every recorded image pixel, keyed by image column, and the recorded column steps."""
    rows, cols = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
    den(torch.stack([rows, cols])[None] + 1.0, 0.0)
    patches, pos = den.precond.calls[-1]
    inside = patches[:, 1] > 0
    col_x = dict(zip((patches[:, 1][inside].long() - 1).tolist(), pos[:, 0][inside].tolist()))
    return col_x, pos[:, 0, :, 1:] - pos[:, 0, :, :-1]


def test_published_positions_step_2_over_575_in_training_and_2_over_511_at_inference(tmp_path):
    """Published positions at N = 384: training spans the canvas N + 2 N/4 = 576 (step 2/575, image at +-0.666), the
    published inference P = M = 64 the canvas N + 2M = 512 (step 2/511, image at +-0.750): a 0.889 mismatch."""
    from padis_plugin.prior import EDMPrecond, build_unet
    from padis_plugin.train.loss import PatchEDMLoss

    N, P, M = 384, 64, 64
    loss = PatchEDMLoss(position_convention="published")
    assert loss.pad_for(N) == 96
    _, pos = loss.sample_patches(torch.zeros(1, 2, N, N), P, 8, torch.Generator().manual_seed(0))
    torch.testing.assert_close(pos[:, 0, :, 1:] - pos[:, 0, :, :-1], torch.full((8, P, P - 1), 2 / 575))
    torch.testing.assert_close(pos[:, 1, 1:, :] - pos[:, 1, :-1, :], torch.full((8, P - 1, P), 2 / 575))
    first = patch_positions(96, 96, 1, (N, N), "published", canvas_pad=96)[0, 0, 0, 0].item()
    assert first == pytest.approx(-1 + 192 / 575) and first == pytest.approx(-0.666, abs=1e-3)

    # a training checkpoint (its canvas_pad the training pad, as written before it became an inference setting)
    PaDISDenoiser(EDMPrecond(build_unet("padis-tiny")), patch_size=P, pad=M, position_convention="published") \
        .save_pretrained(tmp_path / "p", extra_config={"canvas_pad": 96, "patch_training": {"pad": 96}})
    den = PaDISDenoiser.from_pretrained(tmp_path / "p")
    assert den.canvas_pad is None
    den.precond = RecordingIdentity()
    col_x, steps = _recorded_positions(den, N, N)
    assert den.precond.calls[-1][0].shape[0] == 49  # 7 x 7 tiles of 64 x 64
    torch.testing.assert_close(steps, torch.full_like(steps, 2 / 511))
    assert col_x[0] == pytest.approx(-1 + 2 * M / 511, abs=1e-6) and col_x[0] == pytest.approx(-0.750, abs=1e-3)
    assert col_x[N - 1] == pytest.approx(1 - 2 * M / 511, abs=1e-6)
    # the training pad removes the mismatch: same coordinates as in training
    col_x, steps = _recorded_positions(den.with_settings(canvas_pad=96), N, N)
    torch.testing.assert_close(steps, torch.full_like(steps, 2 / 575))
    assert col_x[0] == pytest.approx(first, abs=1e-6)


def test_published_canvas_follows_the_inference_pad():
    """canvas_pad None: the linspace spans N + 2M for whatever M the sampler sets (with_settings)."""
    den = PaDISDenoiser(RecordingIdentity(), patch_size=8, pad=8, position_convention="published", seed=0)
    H = W = 24
    for M in (8, 4):
        col_x, steps = _recorded_positions(den.with_settings(pad=M), H, W)
        torch.testing.assert_close(steps, torch.full_like(steps, 2 / (W + 2 * M - 1)))
        assert col_x[0] == pytest.approx(-1 + 2 * M / (W + 2 * M - 1), abs=1e-6)


@pytest.mark.parametrize("H,W,P,M", [(20, 28, 8, 4), (16, 16, 8, 8), (20, 20, 16, 4)])
def test_denoise_canvas_tiles_read_the_given_band(H, W, P, M):
    """denoise_canvas tiles the caller's padded canvas as it is (band included, no fresh noise); only where the
    grid reaches past the canvas (P > M) does it pad, with zeros + sigma noise (0 here)."""
    import torch.nn.functional as F

    rec = RecordingIdentity()
    den = PaDISDenoiser(rec, patch_size=P, pad=M, seed=0)
    canvas = torch.arange(2 * (H + 2 * M) * (W + 2 * M), dtype=torch.float32).view(1, 2, H + 2 * M, W + 2 * M) + 1
    for _ in range(4):  # several offsets
        out = den.denoise_canvas(canvas, 0.0)
        assert torch.equal(out, canvas[..., M:M + H, M:M + W])
        patches, _ = rec.calls[-1]
        grid = make_grid((H, W), P, (1, 1))  # for these sizes the tile counts do not depend on the offset
        assert patches.shape[0] == grid.num_patches
        tiles = stitch_patches(patches, 1, grid.n_rows, grid.n_cols)
        r0, c0 = divmod(int(tiles[0, 0, 0, 0].item()) - 1, W + 2 * M)  # where the grid starts in the canvas
        assert 0 <= r0 < M and 0 <= c0 < M
        Ht, Wt = tiles.shape[-2:]
        big = F.pad(canvas, (0, max(c0 + Wt - canvas.shape[-1], 0), 0, max(r0 + Ht - canvas.shape[-2], 0)))
        assert torch.equal(tiles, big[..., r0:r0 + Ht, c0:c0 + Wt])
