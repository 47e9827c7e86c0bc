"""Patch geometry for PaDIS: positional channels, random-offset non-overlapping tiling, and stitching.

Coordinates. A *canvas* is the image zero-padded by ``canvas_pad`` pixels on every side; canvas pixel
``(r, c)`` is image pixel ``(r - canvas_pad, c - canvas_pad)`` (negative or >= H/W in the pad band).

Positional channels (channel 0 = x, varying along columns; channel 1 = y, varying along rows):

* ``convention="image"`` (ours, default): image-relative, the image's pixel centres span [-1, 1] on each axis
  (pixel ``j`` -> ``2j/(W-1) - 1``) and pad pixels continue the same line beyond [-1, 1]. The value of a pixel does
  not depend on the padding, so training (pad N/4) and inference (pad 64, any offset) agree pixel by pixel.
* ``convention="published"``: ``linspace(-1, 1)`` over the padded canvas of side ``H + 2*canvas_pad``, as in the
  published code; the image's scale then depends on the padding (trained with pad N/4 = 96, step 2/575, run
  with pad M = 64, step 2/511: a 0.889 scale mismatch of the published code). Training passes its pad, the inference
  denoiser its M unless told otherwise.

Tiling (:class:`TileGrid`). The grid origin, image-relative, is ``(-s_y, -s_x)`` with ``s`` uniform in
``[1, pad]`` per axis (the published offsets 0..pad-1 on a canvas padded by ``pad``); ``n = ceil((H + s)/P)``
patches per axis always cover the image; the canvas is padded as far as the grid reaches (below/right this is
fewer than P pixels, which may exceed ``pad`` when P > pad). Everything is reshapes, no loop over patches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError

CONVENTIONS = ("image", "published")


def _coord(idx: torch.Tensor, size: int, convention: str, canvas_pad: int) -> torch.Tensor:
    """Coordinate of canvas index ``idx`` along an image axis of ``size`` pixels."""
    if convention == "image":
        return 2.0 * (idx - canvas_pad) / max(size - 1, 1) - 1.0
    if convention == "published":
        return 2.0 * idx / max(size + 2 * canvas_pad - 1, 1) - 1.0
    raise ValueError(f"position convention must be one of {CONVENTIONS}, got {convention!r}")


def patch_positions(top, left, patch_size: int, image_shape, convention: str = "image", canvas_pad: int = 0,
                    dtype=torch.float32, device=None) -> torch.Tensor:
    """Positional channels of P x P patches whose top-left pixels are at canvas rows ``top``, columns ``left``.

    Shared by the training loss and the inference denoiser, so both see the same coordinates.

    :param top: int or (N,) integer tensor, canvas row of each patch's first row.
    :param left: int or (N,) integer tensor, canvas column of each patch's first column.
    :param int patch_size: P.
    :param image_shape: (H, W) of the image (without padding).
    :param str convention: ``"image"`` or ``"published"`` (see the module docstring).
    :param int canvas_pad: padding of the canvas ``top``/``left`` refer to (0: image coordinates); for
        ``"published"`` it also sets the canvas extent the linspace spans.
    :return: (N, 2, P, P) tensor; channel 0 = x (columns), channel 1 = y (rows).
    """
    H, W = int(image_shape[-2]), int(image_shape[-1])
    if isinstance(top, torch.Tensor) and device is None:
        device = top.device
    top = torch.as_tensor(top, device=device).reshape(-1, 1).to(torch.float64)
    left = torch.as_tensor(left, device=device).reshape(-1, 1).to(torch.float64)
    if top.shape != left.shape:
        raise ValueError(f"top and left must have the same length, got {top.shape[0]} and {left.shape[0]}")
    ar = torch.arange(patch_size, device=device, dtype=torch.float64)
    y = _coord(top + ar, H, convention, canvas_pad)    # (N, P) one value per row
    x = _coord(left + ar, W, convention, canvas_pad)   # (N, P) one value per column
    n, P = y.shape[0], patch_size
    pos = torch.stack([x[:, None, :].expand(n, P, P), y[:, :, None].expand(n, P, P)], dim=1)
    return pos.to(dtype)


@dataclass(frozen=True)
class TileGrid:
    """A non-overlapping grid of P x P patches over an image of ``image_shape``, origin at ``(-offset)``."""

    image_shape: tuple  # (H, W)
    patch_size: int
    offset: tuple  # (s_y, s_x): the grid starts s pixels above / left of the image
    n_rows: int
    n_cols: int

    @property
    def canvas_shape(self) -> tuple:
        return (self.n_rows * self.patch_size, self.n_cols * self.patch_size)

    @property
    def pad(self) -> tuple:
        """Padding (left, right, top, bottom) from the image to the canvas, in ``F.pad`` order."""
        (H, W), (sy, sx) = self.image_shape, self.offset
        Hc, Wc = self.canvas_shape
        return (sx, Wc - W - sx, sy, Hc - H - sy)

    @property
    def num_patches(self) -> int:
        return self.n_rows * self.n_cols

    def origins(self, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Image-relative (top, left) of every patch, row-major, each (n_rows * n_cols,) int64."""
        P, (sy, sx) = self.patch_size, self.offset
        tops = torch.arange(self.n_rows, device=device) * P - sy
        lefts = torch.arange(self.n_cols, device=device) * P - sx
        return tops.repeat_interleave(self.n_cols), lefts.repeat(self.n_rows)


def tiling_limit(size: int) -> int:
    """The largest patch size or pad that tiles an image ``size`` pixels across: twice the image (at least 64).
    A patch as large as the image is one patch (a 64 prior on a 32 x 32 test image); far larger ones only grow
    the canvas and every network input (``patch_size: 1000`` on a 128 x 128 slice asked for 15 GB)."""
    return max(2 * int(size), 64)


def check_tiling(image_shape, patch_size: int, pad: int) -> None:
    """:class:`ConfigError` when a patch or the pad exceeds :func:`tiling_limit` of the image."""
    H, W = int(image_shape[-2]), int(image_shape[-1])
    limit = tiling_limit(max(H, W))
    for key, value in (("patch_size", patch_size), ("pad", pad)):
        if int(value) > limit:
            raise ConfigError(f"{key} = {int(value)} exceeds twice the {H} x {W} image (at most {limit}; patch "
                              "settings come from the solver's parameters or the checkpoint's JSON)")


def make_grid(image_shape, patch_size: int, offset) -> TileGrid:
    """Grid of P x P patches starting ``offset = (s_y, s_x)`` pixels above/left of the image, covering it."""
    H, W = int(image_shape[-2]), int(image_shape[-1])
    sy, sx = int(offset[0]), int(offset[1])
    if sy < 0 or sx < 0:
        raise ValueError(f"grid offsets must be >= 0, got {offset}")
    P = int(patch_size)
    return TileGrid((H, W), P, (sy, sx), math.ceil((H + sy) / P), math.ceil((W + sx) / P))


def draw_offset(pad: int, generator: torch.Generator | None = None) -> tuple[int, int]:
    """Random grid offsets ``(s_y, s_x)``, each uniform in ``[1, pad]`` (``(0, 0)`` when ``pad == 0``)."""
    if pad <= 0:
        return (0, 0)
    kw = {} if generator is None else {"generator": generator, "device": generator.device}
    s = torch.randint(1, int(pad) + 1, (2,), **kw)
    return (int(s[0]), int(s[1]))


def pad_to_canvas(x: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """Zero-pad ``x`` (..., H, W) to the grid's canvas."""
    return F.pad(x, grid.pad)


def pad_band_mask(grid: TileGrid, device=None, dtype=torch.float32) -> torch.Tensor:
    """(Hc, Wc) mask: 1 on the pad band of the canvas, 0 on the image."""
    left, _, top, _ = grid.pad
    (H, W) = grid.image_shape
    m = torch.ones(grid.canvas_shape, device=device, dtype=dtype)
    m[top:top + H, left:left + W] = 0
    return m


def crop_to_image(canvas: torch.Tensor, grid: TileGrid) -> torch.Tensor:
    """Inverse of :func:`pad_to_canvas`."""
    left, _, top, _ = grid.pad
    H, W = grid.image_shape
    return canvas[..., top:top + H, left:left + W]


def extract_patches(canvas: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut (B, C, nP, mP) into (B*n*m, C, P, P) patches, image-major then row-major."""
    B, C, Hc, Wc = canvas.shape
    P = patch_size
    n, m = Hc // P, Wc // P
    if n * P != Hc or m * P != Wc:
        raise ValueError(f"canvas {Hc}x{Wc} is not a whole number of {P}x{P} patches")
    return canvas.reshape(B, C, n, P, m, P).permute(0, 2, 4, 1, 3, 5).reshape(B * n * m, C, P, P)


def stitch_patches(patches: torch.Tensor, batch: int, n_rows: int, n_cols: int) -> torch.Tensor:
    """Inverse of :func:`extract_patches`: (B*n*m, C, P, P) -> (B, C, nP, mP)."""
    _, C, P, _ = patches.shape
    return (patches.reshape(batch, n_rows, n_cols, C, P, P).permute(0, 3, 1, 4, 2, 5)
            .reshape(batch, C, n_rows * P, n_cols * P))
