"""Degradation operations with explicit per-frame parameters (deterministic; noise takes an explicit rng).

A clip travels through the chain as a list of (H, W, 3) float32 RGB frames in [0, 1] (values may leave
that range between steps, as in the reference). A list, not one (T, 3, H, W) array, because a walking resize
gives the frames of one clip different sizes, and because OpenCV works on interleaved (H, W, C) images:
converting at every step would cost more than the ops themselves. `to_frames` / `to_clip` convert from and
to the (T, 3, H, W) layout at the edges.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

Frames = list[np.ndarray]


def cv2_module() -> Any:
    """OpenCV, imported on first use (it is an optional dependency of the `train` and `dev` extras)."""
    try:
        import cv2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the degradation pipeline needs OpenCV; install it with `pip install realbasicvsr[train]` "
            "(opencv-python-headless)"
        ) from error
    return cv2


def to_frames(clip: np.ndarray) -> Frames:
    """(T, 3, H, W) float array -> list of contiguous (H, W, 3) float32 frames."""
    if clip.ndim != 4 or clip.shape[1] != 3:
        raise ValueError(f"expected a (T, 3, H, W) clip, got shape {clip.shape}")
    return [np.ascontiguousarray(frame.transpose(1, 2, 0), dtype=np.float32) for frame in clip]


def to_clip(frames: Sequence[np.ndarray]) -> np.ndarray:
    """List of equally sized (H, W, 3) frames -> (T, 3, H, W) float32."""
    return np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2), dtype=np.float32)


def separable_factors(kernel: np.ndarray, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray] | None:
    """(column, row) vectors with kernel = column @ row when the kernel has rank 1 (isotropic Gaussians,
    axis-aligned anisotropic ones), else None."""
    u, s, vt = np.linalg.svd(kernel.astype(np.float64))
    if s[1] > tol * s[0]:
        return None
    root = np.sqrt(s[0])
    return (u[:, 0] * root).astype(np.float32), (vt[0] * root).astype(np.float32)


def fft_correlate(frame: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """cv2.filter2D(frame, -1, kernel) (reflect-101 border) computed with real FFTs (scipy.fft, float32)."""
    from scipy import fft as sfft

    cv2 = cv2_module()
    pad = kernel.shape[0] // 2
    height, width = frame.shape[:2]
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    shape = tuple(sfft.next_fast_len(n, real=True) for n in padded.shape[:2])
    spectrum = sfft.rfft2(padded, s=shape, axes=(0, 1), workers=1)
    # correlation = convolution with the flipped kernel; the valid part starts at 2 * pad
    spectrum *= sfft.rfft2(kernel[::-1, ::-1], s=shape, workers=1)[..., None]
    full = sfft.irfft2(spectrum, s=shape, axes=(0, 1), workers=1)
    return np.ascontiguousarray(full[2 * pad : 2 * pad + height, 2 * pad : 2 * pad + width], dtype=np.float32)


# Measured on this project's machine (one core, OpenCV 5.0): cv2.filter2D takes ~10 ms per 256x256x3
# frame for 13x13..21x21 kernels, the FFT path ~4 ms; below about 180x180 or for smaller kernels OpenCV
# is as fast or faster.
_FFT_MIN_KERNEL = 13
_FFT_MIN_PIXELS = 180 * 180


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """clip(round(255 x), 0, 255) as uint8 (round half to even), in two passes instead of four.

    Keeps the shape of `frame` ((H, W) or (H, W, C)).
    """
    cv2 = cv2_module()
    # negatives -> 0 first, so abs() is a no-op (np.maximum: cv2.max takes arrays of <= 4 values for scalars)
    out = cv2.convertScaleAbs(np.maximum(frame, np.float32(0.0)), alpha=255.0)
    return out.reshape(frame.shape)


def blur(frames: Sequence[np.ndarray], kernels: Sequence[np.ndarray]) -> Frames:
    """Correlate frame i with kernel i (border reflect-101), as the reference's cv2.filter2D.

    Same result up to float rounding (< 1e-6), faster: rank-1 kernels go through two 1-D passes
    (cv2.sepFilter2D), large kernels on large frames through FFTs.
    """
    cv2 = cv2_module()
    _check_len(frames, kernels, "kernels")
    out = []
    for frame, kernel in zip(frames, kernels):
        factors = separable_factors(kernel)
        if factors is not None:
            out.append(cv2.sepFilter2D(frame, -1, factors[1], factors[0], borderType=cv2.BORDER_REFLECT_101))
        elif kernel.shape[0] >= _FFT_MIN_KERNEL and frame.shape[0] * frame.shape[1] >= _FFT_MIN_PIXELS:
            out.append(fft_correlate(frame, kernel))
        else:
            out.append(cv2.filter2D(frame, -1, kernel))
    return out


_INTERPOLATION_FLAGS = {"bilinear": "INTER_LINEAR", "area": "INTER_AREA", "bicubic": "INTER_CUBIC"}


def resize(frames: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]], interpolation: str) -> Frames:
    """Resize frame i to sizes[i] = (height, width) with OpenCV's bilinear, area or bicubic filter."""
    cv2 = cv2_module()
    if interpolation not in _INTERPOLATION_FLAGS:
        raise ValueError(f"unknown interpolation {interpolation!r}; known: {sorted(_INTERPOLATION_FLAGS)}")
    flag = getattr(cv2, _INTERPOLATION_FLAGS[interpolation])
    _check_len(frames, sizes, "sizes")
    out = []
    for frame, (h, w) in zip(frames, sizes):
        if frame.shape[:2] == (h, w):
            out.append(frame)  # cv2.resize to the same size is the identity for these filters
        else:
            out.append(cv2.resize(frame, (int(w), int(h)), interpolation=flag))
    return out


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The reference's even target size 2*floor(h*s/2) x 2*floor(w*s/2).

    Deviation: the size is at least 2 so that tiny full-frame inputs cannot produce an empty frame (the
    reference, which only sees 256x256 crops, would crash there).
    """
    return max(2, 2 * int(height * scale / 2)), max(2, 2 * int(width * scale / 2))


def add_gaussian_noise(
    frames: Sequence[np.ndarray], sigmas: Sequence[float], gray: bool, rng: np.random.Generator
) -> Frames:
    """frame + N(0, sigma^2) per pixel; gray noise is one sample per pixel shared by the 3 channels.

    sigma is in [0, 1] units (the config's 8-bit values divided by 255). The normal samples come from a
    torch generator seeded from `rng` (torch's vectorised sampler is about 2x faster than numpy's here).
    """
    import torch

    _check_len(frames, sigmas, "sigmas")
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
    out = []
    for frame, sigma in zip(frames, sigmas):
        h, w = frame.shape[:2]
        noise = torch.randn((h, w, 1 if gray else 3), generator=generator, dtype=torch.float32).numpy()
        noise *= np.float32(sigma)
        if not gray:
            out.append(np.add(noise, frame, out=noise))  # reuse the buffer
        else:
            out.append(frame + noise)
    return out


_GUIDE_BITS = 12  # 4096 guide cells per level
# Probabilities in 30-bit fixed point: tables and draws stay int32 (half the memory traffic of int64) and the
# draws come from a power-of-two range (numpy's fast path; other ranges need rejection and are slower).
_FIXED_BITS = 30
_FIXED_ONE = 1 << _FIXED_BITS


@functools.lru_cache(maxsize=16)
def _poisson_tables(vals: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Inverse-CDF tables of Poisson(level * vals / 255) for the 256 levels of an 8-bit image.

    Returns (cdf, guide, width), int32: cdf[level * width + k] = P(X <= k) in 30-bit fixed point (the last
    entry of a row is 2^30, above every uniform draw, so the search always stops inside the row);
    guide[(level << 12) | cell] = the first k whose cdf exceeds the cell's lower bound, where the search
    starts.
    """
    rates = np.arange(256, dtype=np.float64) * (vals / 255.0)
    width = int(rates[-1] + 12 * np.sqrt(rates[-1]) + 24)  # the tail beyond has probability < 1e-30
    k = np.arange(width, dtype=np.float64)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, width, dtype=np.float64)))])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = k[None, :] * np.log(rates[:, None]) - rates[:, None] - log_factorial[None, :]
    log_pmf[0] = -np.inf
    log_pmf[0, 0] = 0.0  # rate 0: always 0
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    cdf /= cdf[:, -1:]  # exactly 1 at the end of each row
    # Rounded to nearest: where the tail is below 2^-31 the entry is 2^30, above every draw, so the search stops
    # there (flooring would leave 2^30 - 1 and let the largest draw run to the end of the table).
    fixed = np.minimum(np.rint(cdf * _FIXED_ONE), _FIXED_ONE).astype(np.int64)
    cells = np.arange(1 << _GUIDE_BITS, dtype=np.int64) << (_FIXED_BITS - _GUIDE_BITS)
    guide = np.stack([np.searchsorted(row, cells, side="right") for row in fixed])
    guide += np.arange(256)[:, None] * width
    return fixed.astype(np.int32).ravel(), guide.astype(np.int32).ravel(), width


def poisson_counts(levels: np.ndarray, vals: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson(levels * vals / 255) samples for an array of 8-bit levels (int32 counts, same shape).

    Inverse-CDF sampling with a guide table (Chen & Asau) on 30-bit uniform integers: exact up to the 2^-30
    fixed-point rounding of the CDF, and 2-4x faster than numpy's per-element Poisson sampler because the
    rate takes only 256 values. The stream of draws differs from `rng.poisson`, the distribution not.
    """
    # full-range uint32 draws are numpy's fastest integers; the top 30 bits, as int32
    u = (rng.integers(0, 1 << 32, levels.size, dtype=np.uint32) >> np.uint32(32 - _FIXED_BITS)).view(np.int32)
    return poisson_inverse_cdf(levels, u.reshape(levels.shape), vals)


def poisson_inverse_cdf(levels: np.ndarray, u: np.ndarray, vals: int) -> np.ndarray:
    """The smallest k with u < 2^30 * P(X <= k), X ~ Poisson(level * vals / 255); u int32 in [0, 2^30)."""
    cdf, guide, width = _poisson_tables(int(vals))
    flat_levels = levels.ravel().astype(np.int32)
    u = u.ravel()
    idx = guide[(flat_levels << _GUIDE_BITS) | (u >> (_FIXED_BITS - _GUIDE_BITS))]
    todo = np.flatnonzero(cdf[idx] <= u)
    while todo.size:  # walk up to the first k with u < cdf[k]; a few percent of pixels, 1-2 steps
        idx[todo] += 1
        todo = todo[cdf[idx[todo]] <= u[todo]]
    return (idx - flat_levels * width).reshape(levels.shape)


def add_poisson_noise(
    frames: Sequence[np.ndarray], scales: Sequence[float], gray: bool, rng: np.random.Generator, min_vals: int = 1
) -> Frames:
    """Signal-dependent shot noise, as the reference: v = 8-bit quantised image (or its luma when gray),
    vals = 2^ceil(log2(number of distinct values of v)), noise = Poisson(v * vals) / vals - v, scaled.
    `min_vals` > 1 is our option (not the reference): vals is at least that, so a frame of few distinct values
    (a flat graphic) is not given the far stronger noise the reference gives it.
    """
    cv2 = cv2_module()
    _check_len(frames, scales, "scales")
    out = []
    for frame, scale in zip(frames, scales):
        src = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None] if gray else frame
        levels = to_uint8(src)
        distinct = int(np.count_nonzero(np.bincount(levels.ravel(), minlength=256)))
        vals = max(int(2 ** np.ceil(np.log2(distinct))), min_vals)
        # noise * scale = (counts / vals - level / 255) * scale, through a 256-entry table for the level term
        counts = poisson_counts(levels, vals, rng).astype(np.float32)
        counts *= np.float32(scale / vals)
        counts -= (np.arange(256, dtype=np.float32) * np.float32(scale / 255.0))[levels]
        out.append(np.add(counts, frame, out=counts) if not gray else frame + counts)
    return out


def jpeg(frames: Sequence[np.ndarray], qualities: Sequence[int]) -> Frames:
    """JPEG round trip per frame at the given integer quality (cv2, 8-bit with rounding and saturation).

    Like the reference, the RGB array is handed to OpenCV as if it were BGR, so the JPEG colour transform
    sees R and B swapped; this keeps the chroma artefacts of the official training data.
    """
    cv2 = cv2_module()
    _check_len(frames, qualities, "qualities")
    out = []
    for frame, quality in zip(frames, qualities):
        img8 = to_uint8(frame)
        ok, encoded = cv2.imencode(".jpg", img8, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
        if not ok:
            raise RuntimeError(f"OpenCV could not JPEG-encode a frame of shape {frame.shape}")
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        out.append(decoded.astype(np.float32) * np.float32(1.0 / 255.0))
    return out


def unsharp_mask(
    frames: np.ndarray,
    kernel_size: int = 51,
    sigma: float = 0.0,
    weight: float = 0.5,
    threshold: float = 10.0,
) -> np.ndarray:
    """Unsharp masking of a (T, H, W, 3) clip, as the reference's UnsharpMasking; float32 out, in [0, 1].

    `frames`: float in [0, 1], or uint8 (taken as value / 255: the blur then reads the 8-bit frames, about
    1.5x faster). blur = G * img; res = img - blur; mask = |res| * 255 > threshold; soft = G * mask;
    out = soft * clip(img + weight * res, 0, 1) + (1 - soft) * img. G is OpenCV's Gaussian of size
    `kernel_size` (sigma 0 -> OpenCV's rule, 8.0 for 51), applied as two 1-D passes: the reference's 2-D
    outer-product kernel gives the same result up to float rounding, about 4x slower.
    """
    cv2 = cv2_module()
    g = cv2.getGaussianKernel(kernel_size, sigma).astype(np.float32)
    source = np.asarray(frames)
    if source.dtype == np.uint8:
        img = source.astype(np.float32) * np.float32(1.0 / 255.0)
        g_row = g * np.float32(1.0 / 255.0)  # blur(u8) / 255 = blur(u8 / 255)
    else:
        source = img = source.astype(np.float32, copy=False)
        g_row = g
    blurred = np.empty_like(img)
    for i, frame in enumerate(source):
        blurred[i] = cv2.sepFilter2D(frame, cv2.CV_32F, g_row, g, borderType=cv2.BORDER_REFLECT_101)
    residue = img - blurred
    mask = (np.abs(residue) * np.float32(255.0) > np.float32(threshold)).view(np.uint8)
    soft = blurred  # reuse the buffer
    for i, frame_mask in enumerate(mask):
        soft[i] = cv2.sepFilter2D(frame_mask, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT_101)
    sharp = np.clip(img + np.float32(weight) * residue, 0.0, 1.0)
    sharp -= img
    sharp *= soft
    return np.add(img, sharp, out=sharp)


def quantize(frames: Sequence[np.ndarray]) -> Frames:
    """Round to the 8-bit grid and clip: clip(round(255 x), 0, 255) / 255."""
    return [to_uint8(f).astype(np.float32) * np.float32(1.0 / 255.0) for f in frames]


def _check_len(frames: Sequence[Any], params: Sequence[Any], name: str) -> None:
    if len(frames) != len(params):
        raise ValueError(f"{len(frames)} frames but {len(params)} {name}")
