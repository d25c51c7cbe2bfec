"""PSNR and SSIM the way the MATLAB evaluation scripts of the SR literature compute them.

Both take 8-bit-equivalent images (uint8, or float in [0, 1] quantised as a saved PNG would be), convert with
MATLAB's rgb2ycbcr when `convert_to="y"`, shave `crop_border` pixels and compare on the 0..255 scale.
SSIM is Wang et al.'s `ssim_index.m`: 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, 'valid'
filtering, mean of the SSIM map; for RGB the three channel values are averaged. The automatic downsampling
of the later `ssim.m` is not applied (the SR benchmarks do not use it).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

from realbasicvsr.metrics.color import ConvertTo, prepare


def _pair(pred: np.ndarray, gt: np.ndarray, convert_to: ConvertTo, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    if np.shape(pred) != np.shape(gt):
        raise ValueError(f"prediction and ground truth differ in shape: {np.shape(pred)} vs {np.shape(gt)}")
    return prepare(pred, convert_to, crop_border), prepare(gt, convert_to, crop_border)


def psnr(pred: np.ndarray, gt: np.ndarray, *, convert_to: ConvertTo = "y", crop_border: int = 0) -> float:
    """Peak signal-to-noise ratio in dB (peak 255); `inf` when the images are identical.

    `convert_to`: "y" (MATLAB rgb2ycbcr Y), "gray" or "rgb" (all three channels in one mean squared error).
    """
    a, b = _pair(pred, gt, convert_to, crop_border)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    # fspecial('gaussian', 11, 1.5) is the outer product of this normalised 1-D kernel with itself.
    axis = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(axis * axis) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def _ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    if min(a.shape) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {a.shape}")
    kernel = _gaussian_1d()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(x: np.ndarray) -> np.ndarray:
        # Separable filtering, then keep the 'valid' part (no padding reaches it).
        out = correlate1d(correlate1d(x, kernel, axis=0, mode="constant"), kernel, axis=1, mode="constant")
        return out[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(pred: np.ndarray, gt: np.ndarray, *, convert_to: ConvertTo = "y", crop_border: int = 0) -> float:
    """Structural similarity (Wang et al. 2004, `ssim_index.m`); 1.0 for identical images.

    `convert_to`: "y" (MATLAB rgb2ycbcr Y), "gray" or "rgb" (mean of the per-channel SSIM).
    """
    a, b = _pair(pred, gt, convert_to, crop_border)
    if a.ndim == 2:
        return _ssim_plane(a, b)
    return float(np.mean([_ssim_plane(a[..., c], b[..., c]) for c in range(a.shape[2])]))
