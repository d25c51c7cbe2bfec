"""Degradation operations with explicit per-frame parameters (deterministic; noise takes an explicit rng).

A clip travels through the chain as a list of (H, W, 3) float32 RGB frames in [0, 1] (values may leave
that range between steps, as in the reference). A list, not one (T, 3, H, W) array, because a walking resize
gives the frames of one clip different sizes, and because OpenCV works on interleaved (H, W, C) images:
converting at every step would cost more than the ops themselves. `to_frames` / `to_clip` convert from and
to the (T, 3, H, W) layout at the edges. Each op still works on the whole clip where that saves work: one
batched SVD per blur step, FFT spectra shared between repeated frames, and outputs of equal size written into
one (T, H, W, 3) buffer (`output_frames`). The noise ops are in `degrade.noise`.
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
    """List of equally sized (H, W, 3) frames -> (T, 3, H, W) float32, in one copy."""
    if not len(frames):
        raise ValueError("to_clip needs at least one frame")
    out = np.empty((len(frames), frames[0].shape[2], *frames[0].shape[:2]), np.float32)
    for frame, target in zip(frames, out):
        target[...] = frame.transpose(2, 0, 1)
    return out


def separable_factors(kernel: np.ndarray, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray] | None:
    """(column, row) vectors with kernel = column @ row when the kernel has rank 1 (isotropic Gaussians,
    axis-aligned anisotropic ones), else None."""
    return separable_factors_batch(kernel[None], tol)[0]


def separable_factors_batch(kernels: np.ndarray, tol: float = 1e-7) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """`separable_factors` of each kernel of a (T, k, k) stack, with one batched SVD (LAPACK per kernel, as T calls)."""
    u, s, vt = np.linalg.svd(np.asarray(kernels, dtype=np.float64))
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for i in range(len(s)):
        if s[i, 1] > tol * s[i, 0]:
            out.append(None)
        else:
            root = np.sqrt(s[i, 0])
            out.append(((u[i, :, 0] * root).astype(np.float32), (vt[i, 0] * root).astype(np.float32)))
    return out


def _fft_shape(height: int, width: int, pad: int) -> tuple[int, int]:
    from scipy import fft as sfft

    return sfft.next_fast_len(height + 2 * pad, real=True), sfft.next_fast_len(width + 2 * pad, real=True)


def image_spectrum(frame: np.ndarray, pad: int) -> np.ndarray:
    """rfft2 over axes (0, 1) of the reflect-101 padded frame, zero-padded to `_fft_shape`."""
    from scipy import fft as sfft

    cv2 = cv2_module()
    shape = _fft_shape(frame.shape[0], frame.shape[1], pad)
    padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    return sfft.rfft2(padded, s=shape, axes=(0, 1), workers=1)


def kernel_spectra(kernels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of each flipped kernel of a (T, k, k) stack zero-padded to `shape`, in one call per axis: the row
    transforms run on the k non-zero rows only (rfft2 with s= would also transform shape[0] - k zero rows)."""
    from scipy import fft as sfft

    rows = sfft.rfft(kernels[:, ::-1, ::-1], n=shape[1], axis=2, workers=1)
    return sfft.fft(rows, n=shape[0], axis=1, overwrite_x=True, workers=1)


def spectral_correlate(
    spectrum: np.ndarray, kernel_spectrum: np.ndarray, frame_shape: tuple[int, ...], pad: int, out: np.ndarray
) -> np.ndarray:
    """The valid part of irfft2(spectrum * kernel_spectrum) written to `out`: correlation is convolution with
    the flipped kernel, so the valid part starts at 2 * pad; only the rows kept are row-transformed."""
    from scipy import fft as sfft

    height, width = frame_shape[:2]
    full_width = _fft_shape(height, width, pad)[1]
    product = np.multiply(spectrum, kernel_spectrum[..., None])
    columns = sfft.ifft(product, axis=0, overwrite_x=True, workers=1)[2 * pad : 2 * pad + height]
    out[...] = sfft.irfft(columns, n=full_width, axis=1, workers=1)[:, 2 * pad : 2 * pad + width]
    return out


def fft_correlate(frame: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """cv2.filter2D(frame, -1, kernel) (reflect-101 border) computed with real FFTs (scipy.fft, float32)."""
    pad = kernel.shape[0] // 2
    shape = _fft_shape(frame.shape[0], frame.shape[1], pad)
    spectrum = kernel_spectra(np.asarray(kernel, np.float32)[None], shape)[0]
    out = np.empty(frame.shape, np.float32)
    return spectral_correlate(image_spectrum(frame, pad), spectrum, frame.shape, pad, out)


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


def output_frames(shapes: Sequence[tuple[int, ...]]) -> Frames:
    """Empty float32 frames of `shapes`: views of one (T, ...) buffer when all shapes are equal (one allocation;
    ops write their results there with OpenCV's dst= instead of allocating a frame each)."""
    if len(set(shapes)) == 1:
        return list(np.empty((len(shapes), *shapes[0]), np.float32))
    return [np.empty(shape, np.float32) for shape in shapes]


def _memory_key(frame: np.ndarray) -> tuple:
    """Frames with equal keys are the same pixels (the mirrored half of a training clip holds views of the first)."""
    return frame.__array_interface__["data"][0], frame.shape, frame.strides, frame.dtype.str


def blur(frames: Sequence[np.ndarray], kernels: Sequence[np.ndarray] | np.ndarray) -> Frames:
    """Correlate frame i with kernel i (border reflect-101), as the reference's cv2.filter2D.

    Same result up to float rounding (< 1e-6), faster: one batched SVD finds the rank-1 kernels, which go
    through two 1-D passes (cv2.sepFilter2D); large kernels on large frames go through FFTs (the kernels'
    transforms batched, and a frame that appears twice in the clip, as the mirrored half of a training sample
    does, transformed once); the rest through cv2.filter2D.
    """
    cv2 = cv2_module()
    check_len(frames, kernels, "kernels")
    if len({np.shape(k) for k in kernels}) > 1:  # kernels of several sizes: one call per frame
        return [blur([f], [k])[0] for f, k in zip(frames, kernels)]
    if not len(frames):
        return []
    frames = [np.asarray(f, dtype=np.float32) for f in frames]  # the dst= buffers are float32 (no copy if already)
    stack = np.asarray(kernels, dtype=np.float32)
    factors = separable_factors_batch(stack)
    pad = stack.shape[1] // 2
    use_fft = [
        factors[i] is None and stack.shape[1] >= _FFT_MIN_KERNEL and f.shape[0] * f.shape[1] >= _FFT_MIN_PIXELS
        for i, f in enumerate(frames)
    ]
    groups: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(use_fft):
        groups.setdefault(_fft_shape(frames[i].shape[0], frames[i].shape[1], pad), []).append(int(i))
    kernel_spectrum = {}
    for shape, members in groups.items():
        kernel_spectrum.update(zip(members, kernel_spectra(stack[members], shape)))
    out = output_frames([f.shape for f in frames])
    spectra: dict[tuple, np.ndarray] = {}
    for i, (frame, kernel) in enumerate(zip(frames, stack)):
        if factors[i] is not None:
            column, row = factors[i]
            cv2.sepFilter2D(frame, -1, row, column, dst=out[i], borderType=cv2.BORDER_REFLECT_101)
        elif use_fft[i]:
            key = _memory_key(frame)
            if key not in spectra:
                spectra[key] = image_spectrum(frame, pad)
            spectral_correlate(spectra[key], kernel_spectrum.pop(i), frame.shape, pad, out[i])
        else:
            cv2.filter2D(frame, -1, kernel, dst=out[i], borderType=cv2.BORDER_REFLECT_101)
    return out


_INTERPOLATION_FLAGS = {"bilinear": "INTER_LINEAR", "area": "INTER_AREA", "bicubic": "INTER_CUBIC"}


def resize(frames: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]], interpolation: str) -> Frames:
    """Resize frame i to sizes[i] = (height, width) with OpenCV's bilinear, area or bicubic filter."""
    cv2 = cv2_module()
    if interpolation not in _INTERPOLATION_FLAGS:
        raise ValueError(f"unknown interpolation {interpolation!r}; known: {sorted(_INTERPOLATION_FLAGS)}")
    flag = getattr(cv2, _INTERPOLATION_FLAGS[interpolation])
    check_len(frames, sizes, "sizes")
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


def jpeg(frames: Sequence[np.ndarray], qualities: Sequence[int]) -> Frames:
    """JPEG round trip per frame at the given integer quality (cv2, 8-bit with rounding and saturation).

    Like the reference, the RGB array is handed to OpenCV as if it were BGR, so the JPEG colour transform
    sees R and B swapped; this keeps the chroma artefacts of the official training data. The encoder and the
    decoder are separate functions so that their costs can be measured (benchmarks/bench_degrade.py).
    """
    check_len(frames, qualities, "qualities")
    return jpeg_decode(jpeg_encode([to_uint8(f) for f in frames], qualities))


def jpeg_encode(images: Sequence[np.ndarray], qualities: Sequence[int]) -> list[np.ndarray]:
    """The encoder alone: uint8 (H, W, 3) images -> JPEG bytes (cv2.imencode) at the given qualities."""
    cv2 = cv2_module()
    out = []
    for image, quality in zip(images, qualities):
        ok, encoded = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
        if not ok:
            raise RuntimeError(f"OpenCV could not JPEG-encode a frame of shape {image.shape}")
        out.append(encoded)
    return out


def jpeg_decode(encoded: Sequence[np.ndarray]) -> Frames:
    """JPEG bytes -> float32 (H, W, 3) frames in [0, 1] (written into one buffer when the sizes agree)."""
    cv2 = cv2_module()
    images = [cv2.imdecode(data, cv2.IMREAD_COLOR) for data in encoded]
    out = output_frames([image.shape for image in images])
    for image, target in zip(images, out):
        np.multiply(image, np.float32(1.0 / 255.0), out=target)
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
    outer-product kernel gives the same result up to float rounding, about 4x slower. The clip is processed as
    one array in two buffers (the filters write into them, the last step is one torch.lerp).
    """
    import torch

    cv2 = cv2_module()
    g = cv2.getGaussianKernel(kernel_size, sigma).astype(np.float32)
    source = np.asarray(frames)
    img = np.empty(source.shape, np.float32)  # C order whatever the layout of a (flipped, transposed) input
    if source.dtype == np.uint8:
        np.multiply(source, np.float32(1.0 / 255.0), out=img)
        g_row = g * np.float32(1.0 / 255.0)  # blur(u8) / 255 = blur(u8 / 255)
    else:
        img[...] = source
        source, g_row = img, g
    blurred = np.empty_like(img)
    for i, frame in enumerate(source):
        cv2.sepFilter2D(frame, cv2.CV_32F, g_row, g, dst=blurred[i], borderType=cv2.BORDER_REFLECT_101)
    residue = np.subtract(img, blurred)
    magnitude = np.abs(residue, out=blurred)
    magnitude *= np.float32(255.0)
    mask = np.greater(magnitude, np.float32(threshold)).view(np.uint8)
    soft = blurred  # the buffer is free again
    for i, frame_mask in enumerate(mask):
        cv2.sepFilter2D(frame_mask, cv2.CV_32F, g, g, dst=soft[i], borderType=cv2.BORDER_REFLECT_101)
    rows = (-1, img.shape[-2] * img.shape[-1])  # OpenCV sees the clip as one 2-D image
    sharp = cv2.scaleAdd(residue.reshape(rows), float(weight), img.reshape(rows), dst=residue.reshape(rows))
    np.clip(sharp, 0.0, 1.0, out=sharp)
    out = torch.from_numpy(residue)
    # img + soft * (sharp - img), in one pass
    torch.lerp(torch.from_numpy(img), out, torch.from_numpy(soft), out=out)
    return residue


def quantize(frames: Sequence[np.ndarray]) -> Frames:
    """Round to the 8-bit grid and clip: clip(round(255 x), 0, 255) / 255."""
    out = output_frames([f.shape for f in frames])
    for frame, target in zip(frames, out):
        np.multiply(to_uint8(frame), np.float32(1.0 / 255.0), out=target)
    return out


def check_len(frames: Sequence[Any], params: Sequence[Any], name: str) -> None:
    if len(frames) != len(params):
        raise ValueError(f"{len(frames)} frames but {len(params)} {name}")
