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
