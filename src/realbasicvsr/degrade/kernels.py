"""Blur kernels from explicit parameters (no randomness here): Gaussian, generalized Gaussian, plateau, sinc.

Conventions follow the reference (Real-ESRGAN / mmedit `blur_kernels`): a k x k grid centred on the middle
pixel, x = column offset, y = row offset; the covariance is R(theta) diag(sx^2, sy^2) R(theta)^T; every kernel
is normalised to sum 1 and returned as float32 for `cv2.filter2D`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _grid(kernel_size: int) -> tuple[np.ndarray, np.ndarray]:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    ax = np.arange(-(kernel_size // 2), kernel_size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)  # xx varies along columns
    return xx, yy


def gaussian_kernel(
    kernel_size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0
) -> np.ndarray:
    """Isotropic (sigma_y None) or anisotropic Gaussian exp(-d^T Sigma^-1 d / 2)."""
    return make_kernel("aniso", kernel_size, sigma_x, sigma_x if sigma_y is None else sigma_y, rotation)


def generalized_gaussian_kernel(
    kernel_size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """Generalized Gaussian exp(-0.5 * q^beta), q = d^T Sigma^-1 d (beta = 1: the plain Gaussian)."""
    sy = sigma_x if sigma_y is None else sigma_y
    return make_kernel("generalized_aniso", kernel_size, sigma_x, sy, rotation, beta)


def plateau_kernel(
    kernel_size: int, sigma_x: float, sigma_y: float | None = None, rotation: float = 0.0, beta: float = 1.0
) -> np.ndarray:
    """Plateau-shaped kernel 1 / (1 + q^beta), q = d^T Sigma^-1 d."""
    sy = sigma_x if sigma_y is None else sigma_y
    return make_kernel("plateau_aniso", kernel_size, sigma_x, sy, rotation, beta)


def sinc_kernel(kernel_size: int, omega: float) -> np.ndarray:
    """Circular low-pass (2-D sinc) kernel with cut-off frequency omega (radians per pixel)."""
    return sinc_kernels(kernel_size, np.array([omega], np.float64))[0]


def make_kernel(
    kernel_type: str,
    kernel_size: int,
    sigma_x: float = 1.0,
    sigma_y: float = 1.0,
    rotation: float = 0.0,
    beta: float = 1.0,
    omega: float = math.pi,
) -> np.ndarray:
    """The kernel of one frame of a `BlurStep` (`make_kernels` for one frame). Isotropic types ignore sigma_y and
    rotation."""
    return make_kernels(kernel_type, kernel_size, [sigma_x], [sigma_y], [rotation], [beta], [omega])[0]


def _mahalanobis(kernel_size: int, sigma_x: np.ndarray, sigma_y: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """d^T Sigma^-1 d on the kernel grid for T frames at once: (T, k, k)."""
    if np.any(sigma_x <= 0) or np.any(sigma_y <= 0):
        raise ValueError(f"sigmas must be positive, got {sigma_x.min()}, {sigma_y.min()}")
    c, s = np.cos(rotation), np.sin(rotation)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (T, 2, 2)
    diag = np.zeros_like(rot)
    diag[:, 0, 0], diag[:, 1, 1] = sigma_x**2, sigma_y**2
    inv = np.linalg.inv(rot @ diag @ rot.transpose(0, 2, 1))
    xx, yy = _grid(kernel_size)
    a, b, d = (v[:, None, None] for v in (inv[:, 0, 0], inv[:, 0, 1] + inv[:, 1, 0], inv[:, 1, 1]))
    return a * xx * xx + b * xx * yy + d * yy * yy


def make_kernels(
    kernel_type: str,
    kernel_size: int,
    sigma_x: Sequence[float],
    sigma_y: Sequence[float],
    rotation: Sequence[float],
    beta: Sequence[float],
    omega: Sequence[float],
) -> np.ndarray:
    """The (T, k, k) float32 kernels of a `BlurStep`, one per frame, built in one vectorised pass."""
    count = len(sigma_x)
    if not all(len(values) == count for values in (sigma_y, rotation, beta, omega)):
        raise ValueError("make_kernels needs one value per frame for every parameter")
    if count == 0:
        return np.zeros((0, kernel_size, kernel_size), np.float32)
    if kernel_type == "sinc":
        return sinc_kernels(kernel_size, np.asarray(omega, np.float64))
    sx = np.asarray(sigma_x, np.float64)
    iso = kernel_type.endswith("_iso") or kernel_type == "iso"
    sy = sx if iso else np.asarray(sigma_y, np.float64)
    rot = np.zeros(count) if iso else np.asarray(rotation, np.float64)
    b = np.asarray(beta, np.float64)[:, None, None]
    if kernel_type in ("iso", "aniso"):
        kernels = np.exp(-0.5 * _mahalanobis(kernel_size, sx, sy, rot))
    elif kernel_type.startswith("generalized_"):
        kernels = np.exp(-0.5 * np.power(_mahalanobis(kernel_size, sx, sy, rot), b))
    elif kernel_type.startswith("plateau_"):
        kernels = 1.0 / (1.0 + np.power(_mahalanobis(kernel_size, sx, sy, rot), b))
    else:
        raise ValueError(f"unknown kernel type {kernel_type!r}")
    return (kernels / kernels.sum(axis=(1, 2), keepdims=True)).astype(np.float32)


def sinc_kernels(kernel_size: int, omega: np.ndarray) -> np.ndarray:
    """The circular low-pass (2-D sinc) kernel for each cut-off of `omega` (T,), as one (T, k, k) float32 array."""
    try:
        from scipy import special
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("the sinc kernel needs scipy; install it with `pip install realbasicvsr[train]`") from error

    xx, yy = _grid(kernel_size)
    r = np.hypot(xx, yy)
    w = omega[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        kernels = w * special.j1(w * r) / (2 * np.pi * r)
    centre = kernel_size // 2
    kernels[:, centre, centre] = omega**2 / (4 * np.pi)  # the limit r -> 0
    return (kernels / kernels.sum(axis=(1, 2), keepdims=True)).astype(np.float32)
