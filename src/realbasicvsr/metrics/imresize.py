"""MATLAB `imresize(..., 'bicubic')` with antialiasing, for 2-D float64 images.

NIQE and BRISQUE halve the image with MATLAB's imresize between their two scales. OpenCV/PIL bicubic use a
different kernel parameter (a=-0.75), no antialiasing when shrinking and other edge handling, which shifts the
second-scale features; this module reproduces MATLAB's `contributions` arithmetic instead (cubic kernel a=-0.5,
kernel stretched by 1/scale when shrinking, symmetric edge padding, rows resized before columns).
"""

from __future__ import annotations

import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return inner + outer


def resize_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool = True) -> np.ndarray:
    """Dense (out_length, in_length) matrix M such that `M @ column` is MATLAB's resize of that column."""
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        kernel_width = kernel_width / scale

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)
    else:
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # MATLAB mirrors out-of-range taps: aux = [1:n, n:-1:1] indexed cyclically (1-based).
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    mirrored = aux[np.mod(indices.astype(np.int64) - 1, aux.size)]
    matrix = np.zeros((out_length, in_length))
    rows = np.repeat(np.arange(out_length), taps)
    np.add.at(matrix, (rows, mirrored.ravel()), weights.ravel())
    return matrix


def imresize(image: np.ndarray, scale: float | None = None, output_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Resize a 2-D (or HxWxC) float image like MATLAB `imresize(image, scale)` / `imresize(image, [h w])`.

    The result is float64 and not rounded (MATLAB keeps double input as double).
    """
    image = np.asarray(image, dtype=np.float64)
    height, width = image.shape[:2]
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale or output_shape")
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        out_h, out_w = math.ceil(height * scale), math.ceil(width * scale)
    else:
        out_h, out_w = output_shape
        scales = (out_h / height, out_w / width)
    row_matrix = resize_matrix(height, out_h, scales[0])
    col_matrix = resize_matrix(width, out_w, scales[1])
    # MATLAB resizes the dimension with the smaller scale first (rows on a tie).
    if scales[1] < scales[0]:
        return _along(row_matrix, _along(col_matrix, image, 1), 0)
    return _along(col_matrix, _along(row_matrix, image, 0), 1)


def imresize_uint8(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize` of a uint8 image: each one-dimensional pass returns uint8 (rounded, saturated), as
    MATLAB's resizeAlongDim keeps the input class, so the intermediate image is rounded too."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"imresize_uint8 expects a uint8 image, got {image.dtype}")
    height, width = image.shape[:2]
    out_h, out_w = math.ceil(height * scale), math.ceil(width * scale)
    out = image.astype(np.float64)
    for axis, (n_in, n_out) in enumerate(((height, out_h), (width, out_w))):  # equal scales: rows first
        out = _along(resize_matrix(n_in, n_out, float(scale)), out, axis)
        out = np.clip(np.floor(out + 0.5), 0, 255)  # values are >= 0 after the clip, so floor(x+0.5) = round
    return out.astype(np.uint8)


def _along(matrix: np.ndarray, image: np.ndarray, axis: int) -> np.ndarray:
    """Apply a resize matrix along one axis. Each row has at most ~10 non-zero taps, so a sparse product is
    far cheaper than a dense one for large images."""
    from scipy.sparse import csr_matrix

    moved = np.moveaxis(image, axis, 0)
    flat = moved.reshape(moved.shape[0], -1)
    out = np.asarray(csr_matrix(matrix) @ flat)
    return np.moveaxis(out.reshape(matrix.shape[0], *moved.shape[1:]), 0, axis)
