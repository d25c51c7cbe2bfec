"""Finishing touches on the upscaled frames, as pure tensor functions: film grain and a colour fix (issue 15).

- `add_grain` adds seeded film grain on luma, so restored footage does not look plastic. The grain of a frame is a
  function of (seed, frame index, output size, amount, size) only: it is generated on the CPU from a generator
  seeded by a hash of (seed, index), so the same frame gets the same grain whatever window, segment, batch
  position or device computed it (a device only upsamples it, to float rounding), and a resumed or split run
  matches an uninterrupted one.
- `color_fix` matches the low frequencies of the output's colour to the input frame, which removes the colour
  shifts and blotches a GAN upscaler can make, and leaves the detail (high frequencies) the model made alone.
- `color_error` is the measure of the issue's "mean colour error (output downscaled vs input)".

Colour space: OKLab (Ottosson 2020). It is perceptually uniform enough that one Gaussian low-pass treats a shift of
a dark red and of a light blue alike, its lightness L is separate from the chroma a/b (so a fix can leave contrast
alone), and it is a 3x3 matrix, a cube root and a 3x3 matrix from linear RGB: cheap on a whole frame, and exactly
invertible, unlike CIELAB's piecewise curve with its white point. scripts/measure_color_fix.py measured the choices
below on real clips through the bundled model (docs/restoration/color_fix.json).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from realbasicvsr.errors import ConfigError

MAX_GRAIN = 50.0  # std in 8-bit levels; far beyond any film stock (typical 2-6)
MAX_GRAIN_SIZE = 16.0  # grain feature size in pixels of a 1080-line picture
GRAIN_REFERENCE_HEIGHT = 1080
# Luma weights of the grain's response curve: BT.709, the weights of HD video.
LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)

# Gaussian sigma of the colour fix, in input pixels, chosen by measurement (scripts/measure_color_fix.py, bundled
# model, three real clips): a smaller sigma removes smaller blotches (a forced hue blotch of std 4 input pixels:
# 8 % left at sigma 1, 12-15 % at 2, 22-26 % at 3) but rewrites more of the picture's finest scale with the input's
# (the fix's change at 1 input pixel falls about 10x from sigma 0.5 to 2, then only slowly). 2 is the knee, and it
# passes under 1 % of chroma structure at the 4-pixel period of 4:2:0 video, so it does not copy the input's
# subsampled, bleeding chroma edges back over the model's.
COLOR_FIX_SIGMA = 2.0
# Low-pass of `color_error`'s "lowpass" figures, in input pixels: colour at the scale of several input pixels, where
# a colour shift or blotch lives, fixed so the figure does not move when the fix's sigma is tuned.
COLOR_ERROR_SIGMA = 3.0


# ---------------------------------------------------------------- film grain
def add_grain(
    hr: torch.Tensor, indices: Sequence[int], *, amount: float, size: float = 1.0, seed: int = 0
) -> torch.Tensor:
    """`hr` (n, 3, H, W) RGB with film grain added on luma: the same value to R, G and B of a pixel.

    `indices` are the frames' indices in the video (one per frame of the batch). `amount` is the grain's standard
    deviation in 8-bit levels at mid-grey (0 returns `hr` itself, untouched; typical 2-6); a fixed luma response
    4 Y (1 - Y) makes it weaker in deep shadows and highlights, so clipping at 0 and 1 does not bias the picture.
    `size` is the grain's feature size in pixels of a 1080-line picture and scales with the output height, so the
    look is the same at any output size. Every frame gets new grain with the same statistics: zero mean and unit
    std before the response curve, exactly, per frame (no brightness flicker from the grain). Computed in float32;
    returns a new tensor of `hr`'s dtype and device.
    """
    check_grain(amount, size)
    if hr.ndim != 4 or hr.shape[1] != 3:
        raise ValueError(f"hr must be (n, 3, H, W), got {tuple(hr.shape)}")
    if len(indices) != hr.shape[0]:
        raise ValueError(f"one frame index per frame is needed: {hr.shape[0]} frames, {len(indices)} indices")
    if amount == 0:
        return hr
    height, width = hr.shape[-2:]
    x = hr.float()
    grain = torch.stack([grain_field(height, width, i, size=size, seed=seed, device=x.device) for i in indices])
    luma = luma_of(x).clamp_(0.0, 1.0)
    response = luma.mul(1.0 - luma).mul_(4.0 * amount / 255.0)
    # hr.float() is hr itself for float32 input: a new tensor, never an in-place add. (n, 1, H, W): R, G, B alike.
    return (x + grain.mul_(response).unsqueeze(1)).to(hr.dtype)


def check_grain(amount: float, size: float) -> None:
    """Refuse grain settings outside their ranges (ConfigError naming the setting)."""
    if not math.isfinite(amount) or not 0.0 <= amount <= MAX_GRAIN:
        raise ConfigError(
            f"grain must be between 0 (none) and {MAX_GRAIN:g} levels (typical 2-6), got {amount}", option="grain"
        )
    if not math.isfinite(size) or not 0.0 < size <= MAX_GRAIN_SIZE:
        raise ConfigError(
            f"grain_size must be above 0 and at most {MAX_GRAIN_SIZE:g} pixels of a 1080-line picture "
            f"(1 is fine grain), got {size}",
            option="grain_size",
        )


def grain_seed(seed: int, index: int) -> int:
    """The generator seed of frame `index`: a hash, so neighbouring (seed, index) pairs give unrelated streams."""
    digest = hashlib.blake2b(f"realbasicvsr-grain:{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def grain_grid(height: int, width: int, index: int, *, size: float = 1.0, seed: int = 0) -> torch.Tensor:
    """The random part of frame `index`'s grain, on the CPU: a grid of blurred white Gaussian noise, (h', w').

    The grain's feature size is `size` * height / 1080 output pixels; where that is above a pixel the grid has one
    cell per feature, blurred by a Gaussian of half a cell (upsampled by `grain_field`: the field is smooth on its
    grid, so bicubic keeps its std within 3 % across a cell, and a 4K frame draws a quarter of its pixels in random
    numbers); below, the grid is the output itself, blurred by half the feature size. The blur is shifted adds of
    a margin drawn with the grid (edges like the middle), not a convolution library call, so its values do not
    depend on a convolution algorithm's choice or the thread count.
    """
    feature = size * height / GRAIN_REFERENCE_HEIGHT  # output pixels
    step = max(1.0, feature)
    taps = gaussian_taps(0.5 * feature / step)  # in grid cells: 0.5 when coarse, below at full resolution
    radius = len(taps) // 2
    grid_h, grid_w = max(1, math.ceil(height / step)), max(1, math.ceil(width / step))
    generator = torch.Generator().manual_seed(grain_seed(seed, index))
    noise = torch.randn((grid_h + 2 * radius, grid_w + 2 * radius), generator=generator)
    return _blur_valid(_blur_valid(noise, taps).t(), taps).t().contiguous()


def grain_field(
    height: int, width: int, index: int, *, size: float = 1.0, seed: int = 0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The grain of frame `index` at `height` x `width`: (H, W) float32 on `device`, mean 0 and std 1 exactly.

    The grid (`grain_grid`) is made on the CPU and moved; the bicubic upsampling to the output size and the
    normalisation run on `device`, where they are cheap. They change nothing but float rounding (about 1e-7), so a
    frame's grain on a GPU matches the CPU's to far below an 8-bit level.
    """
    field = grain_grid(height, width, index, size=size, seed=seed).to(device, non_blocking=True)
    if field.shape != (height, width):
        field = F.interpolate(field[None, None], size=(height, width), mode="bicubic", align_corners=False)[0, 0]
    field = field - field.mean()
    if field.numel() < 2:
        return field  # a 1-pixel frame: its zero-mean grain is 0
    return field.div_(field.std().clamp_min(1e-12))  # a tensor, not a float: no wait for the GPU per frame


def gaussian_taps(sigma: float) -> list[float]:
    """Normalised 1-D Gaussian weights out to 3 sigma (at least one tap each side)."""
    radius = max(1, math.ceil(3.0 * sigma))
    weights = [math.exp(-0.5 * (k / sigma) ** 2) if sigma > 0 else float(k == 0) for k in range(-radius, radius + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def _blur_valid(noise: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """1-D blur down the rows of a 2-D tensor, no padding (2 * radius rows fewer); whole rows are contiguous, so
    each tap is one fast add. Returns a contiguous tensor."""
    radius = len(taps) // 2
    rows = noise.shape[0] - 2 * radius
    noise = noise.contiguous()
    out = noise[:rows].mul(taps[0])
    for k, weight in enumerate(taps[1:], start=1):
        out.add_(noise[k : k + rows], alpha=weight)
    return out


def luma_of(rgb: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) RGB -> (n, H, W) BT.709 luma of the (gamma-encoded) values."""
    r, g, b = LUMA_WEIGHTS
    return rgb[:, 0] * r + rgb[:, 1] * g + rgb[:, 2] * b


# ---------------------------------------------------------------- colour
# linear sRGB -> LMS and cube-rooted LMS -> Lab (Ottosson's published matrices); the inverses are computed from them
# in float64, so that rgb -> lab -> rgb returns the input to float32 rounding.
_RGB_TO_LMS = torch.tensor(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ],
    dtype=torch.float64,
)
_LMS_TO_LAB = torch.tensor(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ],
    dtype=torch.float64,
)
_LMS_TO_RGB = torch.linalg.inv(_RGB_TO_LMS)
_LAB_TO_LMS = torch.linalg.inv(_LMS_TO_LAB)


def _mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix along the channel axis of (n, 3, H, W)."""
    return torch.einsum("ij,njhw->nihw", matrix.to(x.device, x.dtype), x)


def srgb_to_oklab(rgb: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) sRGB-encoded float -> OKLab (L in [0, 1] for [0, 1] input). Values outside [0, 1] are taken
    through the curves mirrored at 0, so an unclamped output converts and converts back unchanged."""
    x = rgb.abs()
    linear = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).copysign_(rgb)
    lms = _mix(_RGB_TO_LMS, linear)
    return _mix(_LMS_TO_LAB, lms.abs().pow_(1.0 / 3.0).copysign_(lms))


def oklab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """The inverse of `srgb_to_oklab`."""
    lms = _mix(_LAB_TO_LMS, lab).pow_(3)
    linear = _mix(_LMS_TO_RGB, lms)
    x = linear.abs()
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1.0 / 2.4) - 0.055).copysign_(linear)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian low-pass of (n, c, h, w) with sigma in pixels; edges repeat the border pixel (any frame
    size works, even one smaller than the kernel). sigma 0 returns x."""
    if sigma <= 0:
        return x
    taps = torch.tensor(gaussian_taps(sigma), dtype=x.dtype, device=x.device)
    radius, channels = len(taps) // 2, x.shape[1]
    across = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="replicate"),
        taps.view(1, 1, 1, -1).repeat(channels, 1, 1, 1),
        groups=channels,
    )
    down = F.pad(across, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(down, taps.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def resize_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bicubic resize of (n, c, h, w) (a proper low-pass when shrinking); x itself when the size holds."""
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)


def _check_pair(hr: torch.Tensor, lq: torch.Tensor) -> None:
    if hr.ndim != 4 or lq.ndim != 4 or hr.shape[1] != 3 or lq.shape[1] != 3 or hr.shape[0] != lq.shape[0]:
        raise ValueError(
            f"hr and lq must be (n, 3, H, W) and (n, 3, h, w) with the same n, got {tuple(hr.shape)} and "
            f"{tuple(lq.shape)}"
        )


def color_fix(
    hr: torch.Tensor, lq: torch.Tensor, *, sigma: float = COLOR_FIX_SIGMA, lightness: bool = False
) -> torch.Tensor:
    """`hr` (n, 3, H, W) with its low-frequency colour matched to the input frames `lq` (n, 3, h, w).

    The output, clamped to [0, 1] as it will be written, is downscaled to the input's size (antialiased bicubic);
    its difference to the input in OKLab is low-passed (Gaussian, `sigma` input pixels) and added to the
    downscaled output in OKLab; what that changes, in RGB, is upsampled bicubic to the output size and added.
    Only the chroma (a, b) is corrected by default: `lightness=True` corrects L too, which would also undo what the
    model does to lightness at those scales on purpose (its tone; the blocks and noise its cleaning removes); both
    are measured in docs/restoration/color_fix.json.

    All colour conversion runs at the input's size, so the cost at the output size is a downscale, an upscale and
    an add: a 1280x720 output took 50-80 ms on one shared CPU thread, against ~4.6 s of the bundled model's time.
    Converting the whole output to OKLab and back instead changed the result by 0.02 level on average (at most 4
    levels, at a few saturated edges) for 3-6x the time. Any pair of sizes works (x4, resized, or an output
    smaller than the input). Computed in float32; returns a new tensor of `hr`'s dtype and device, not clamped.
    """
    _check_pair(hr, lq)
    height, width = lq.shape[-2:]
    x = hr.float()
    small = resize_to(x.clamp(0.0, 1.0), height, width)
    lab = srgb_to_oklab(small)
    first = 0 if lightness else 1  # the OKLab channels corrected: L, a, b or a, b
    diff = srgb_to_oklab(lq.to(x.device, torch.float32))[:, first:] - lab[:, first:]
    target = lab.clone()
    target[:, first:] += gaussian_blur(diff, sigma)
    correction = oklab_to_srgb(target) - small  # RGB, at the input's size
    return (x + resize_to(correction, *x.shape[-2:])).to(hr.dtype)


def color_error(hr: torch.Tensor, lq: torch.Tensor, *, sigma: float = COLOR_ERROR_SIGMA) -> dict[str, float]:
    """How far the colour of the output `hr` (n, 3, H, W) is from the input `lq` (n, 3, h, w), frames averaged.

    The output is clamped to [0, 1] (as written) and downscaled to the input's size (antialiased bicubic); then:

    - `mean_abs_levels`: mean absolute difference per channel and pixel, in 8-bit levels (all scales, detail too);
    - `lowpass_abs_levels`: the same after a Gaussian low-pass of `sigma` input pixels on both: colour at the scale
      of several input pixels, where a colour shift or blotch is, and not the detail an upscaler changes on purpose;
    - `delta_e_ok`: mean OKLab distance per pixel, x100 (CSS Color 4's just noticeable difference, 0.02, is 2 here);
    - `lowpass_delta_e_ok` and `lowpass_chroma_ok`: the OKLab distance (x100) of the low-passed OKLab images, in all
      three channels and in chroma (a, b) only.
    """
    _check_pair(hr, lq)
    height, width = lq.shape[-2:]
    small = resize_to(hr.float().clamp(0.0, 1.0), height, width)
    ref = lq.to(small.device, torch.float32)
    lab_diff = srgb_to_oklab(small) - srgb_to_oklab(ref)
    low_lab = gaussian_blur(lab_diff, sigma)
    return {
        "mean_abs_levels": float((small - ref).abs().mean()) * 255.0,
        "lowpass_abs_levels": float((gaussian_blur(small, sigma) - gaussian_blur(ref, sigma)).abs().mean()) * 255.0,
        "delta_e_ok": float(lab_diff.square().sum(1).sqrt().mean()) * 100.0,
        "lowpass_delta_e_ok": float(low_lab.square().sum(1).sqrt().mean()) * 100.0,
        "lowpass_chroma_ok": float(low_lab[:, 1:].square().sum(1).sqrt().mean()) * 100.0,
    }
