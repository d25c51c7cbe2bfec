"""Degradation operations with explicit per-frame parameters (deterministic; noise takes an explicit rng).

A clip travels through the chain as a list of (H, W, 3) float32 RGB frames in [0, 1] (values may leave
that range between steps, as in the reference). A list, not one (T, 3, H, W) array, because a walking resize
gives the frames of one clip different sizes, and because OpenCV works on interleaved (H, W, C) images:
converting at every step would cost more than the ops themselves. `to_frames` / `to_clip` convert from and
to the (T, 3, H, W) layout at the edges.
"""

from __future__ import annotations

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


def blur(frames: Sequence[np.ndarray], kernels: Sequence[np.ndarray]) -> Frames:
    """Correlate frame i with kernel i (cv2.filter2D, border reflect-101, as the reference)."""
    cv2 = cv2_module()
    _check_len(frames, kernels, "kernels")
    return [cv2.filter2D(frame, -1, kernel) for frame, kernel in zip(frames, kernels)]


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

    sigma is in [0, 1] units (the config's 8-bit values divided by 255).
    """
    _check_len(frames, sigmas, "sigmas")
    out = []
    for frame, sigma in zip(frames, sigmas):
        h, w = frame.shape[:2]
        noise = rng.standard_normal((h, w, 1 if gray else 3), dtype=np.float32)
        noise *= np.float32(sigma)
        out.append(frame + noise)
    return out


def add_poisson_noise(
    frames: Sequence[np.ndarray], scales: Sequence[float], gray: bool, rng: np.random.Generator
) -> Frames:
    """Signal-dependent shot noise, as the reference: v = 8-bit quantised image (or its luma when gray),
    vals = 2^ceil(log2(number of distinct values of v)), noise = Poisson(v * vals) / vals - v, scaled.
    """
    cv2 = cv2_module()
    _check_len(frames, scales, "scales")
    out = []
    for frame, scale in zip(frames, scales):
        src = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[..., None] if gray else frame
        levels = np.clip(np.rint(src * 255.0), 0, 255).astype(np.uint8)
        distinct = int(np.count_nonzero(np.bincount(levels.ravel(), minlength=256)))
        vals = float(2 ** np.ceil(np.log2(distinct)))
        # Poisson rates depend only on the 8-bit level: look them up instead of multiplying floats.
        rates = np.arange(256, dtype=np.float64) * (vals / 255.0)
        counts = rng.poisson(rates[levels])
        noise = counts.astype(np.float32) * np.float32(1.0 / vals) - levels.astype(np.float32) * np.float32(1.0 / 255.0)
        noise *= np.float32(scale)
        out.append(frame + noise)
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
        img8 = np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
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
    """Unsharp masking of a (T, H, W, 3) float32 clip in [0, 1], as the reference's UnsharpMasking.

    blur = G * img; res = img - blur; mask = |res| * 255 > threshold; soft = G * mask;
    out = soft * clip(img + weight * res, 0, 1) + (1 - soft) * img. G is OpenCV's Gaussian of size
    `kernel_size` (sigma 0 -> OpenCV's rule, 8.0 for 51), applied as two 1-D passes: the reference's 2-D
    outer-product kernel gives the same result up to float rounding, about 4x slower.
    """
    cv2 = cv2_module()
    g = cv2.getGaussianKernel(kernel_size, sigma).astype(np.float32)
    img = np.asarray(frames, dtype=np.float32)
    blurred = np.empty_like(img)
    for i, frame in enumerate(img):
        blurred[i] = cv2.sepFilter2D(frame, -1, g, g, borderType=cv2.BORDER_REFLECT_101)
    residue = img - blurred
    mask = (np.abs(residue) * np.float32(255.0) > np.float32(threshold)).astype(np.float32)
    soft = blurred  # reuse the buffer
    for i, frame_mask in enumerate(mask):
        soft[i] = cv2.sepFilter2D(frame_mask, -1, g, g, borderType=cv2.BORDER_REFLECT_101)
    sharp = np.clip(img + np.float32(weight) * residue, 0.0, 1.0)
    return img + soft * (sharp - img)


def quantize(frames: Sequence[np.ndarray]) -> Frames:
    """Round to the 8-bit grid and clip: clip(round(255 x), 0, 255) / 255."""
    return [np.clip(np.rint(f * 255.0), 0, 255).astype(np.float32) * np.float32(1.0 / 255.0) for f in frames]


def _check_len(frames: Sequence[Any], params: Sequence[Any], name: str) -> None:
    if len(frames) != len(params):
        raise ValueError(f"{len(frames)} frames but {len(params)} {name}")
