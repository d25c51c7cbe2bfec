"""Real steerable pyramid in the frequency domain (Simoncelli's `buildSFpyr` from matlabPyrTools).

NRQM's global features use the bands of a 2-scale, 6-orientation pyramid. The construction follows the
matlabPyrTools definitions: raised-cosine radial masks in log2-frequency, cos^order angular masks, and the
low-pass band cropped to half size in the Fourier domain at each level.
"""

from __future__ import annotations

import math

import numpy as np


def _raised_cosine(width: float = 1.0, position: float = -0.5) -> tuple[np.ndarray, np.ndarray]:
    """matlabPyrTools `rcosFn`: a lookup table (x, y) rising from 0 to 1 as a cos^2 over `width` octaves."""
    size = 256
    x = np.pi * np.arange(-size - 1, 2) / (2 * size)
    y = np.cos(x) ** 2
    y[0] = y[1]
    y[size + 2] = y[size + 1]
    return position + (2 * width / np.pi) * (x + np.pi / 4), y


def _polar_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """log2 radius and angle of each (fftshifted) frequency, normalised so that Nyquist is radius 1."""
    height, width = shape
    ctr_y, ctr_x = math.ceil((height + 0.5) / 2), math.ceil((width + 0.5) / 2)
    xramp = (np.arange(1, width + 1) - ctr_x) / (width / 2)
    yramp = (np.arange(1, height + 1) - ctr_y) / (height / 2)
    xx, yy = np.meshgrid(xramp, yramp)
    angle = np.arctan2(yy, xx)
    radius = np.sqrt(xx * xx + yy * yy)
    radius[ctr_y - 1, ctr_x - 1] = radius[ctr_y - 1, ctr_x - 2]  # avoid log2(0) at DC, as buildSFpyr does
    return np.log2(radius), angle


def steerable_pyramid(image: np.ndarray, height: int = 2, nbands: int = 6) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """(high-pass residual, bands[scale][orientation]) of a 2-D float image; the low-pass residual is dropped."""
    log_rad, angle = _polar_grid(image.shape)
    xrcos, yrcos = _raised_cosine(1.0, -0.5)
    yrcos = np.sqrt(yrcos)
    yircos = np.sqrt(1.0 - yrcos**2)
    image_dft = np.fft.fftshift(np.fft.fft2(image))
    high0 = np.real(np.fft.ifft2(np.fft.ifftshift(image_dft * np.interp(log_rad, xrcos, yrcos))))
    low_dft = image_dft * np.interp(log_rad, xrcos, yircos)

    order = nbands - 1
    lut = 1024
    xcosn = np.pi * np.arange(-(2 * lut + 1), lut + 2) / lut
    const = (2 ** (2 * order)) * math.factorial(order) ** 2 / (nbands * math.factorial(2 * order))
    ycosn = np.sqrt(const) * np.cos(xcosn) ** order
    phase = (-1j) ** order
    bands: list[list[np.ndarray]] = []
    for _ in range(height):
        xrcos = xrcos - 1.0
        himask = np.interp(log_rad, xrcos, yrcos)
        level = []
        for b in range(nbands):
            anglemask = np.interp(angle, xcosn + np.pi * b / nbands, ycosn)
            level.append(np.real(np.fft.ifft2(np.fft.ifftshift(phase * low_dft * anglemask * himask))))
        bands.append(level)
        dims = np.array(low_dft.shape)
        ctr = np.ceil((dims + 0.5) / 2).astype(int)
        lodims = np.ceil((dims - 0.5) / 2).astype(int)
        loctr = np.ceil((lodims + 0.5) / 2).astype(int)
        start = ctr - loctr
        stop = start + lodims
        crop = (slice(start[0], stop[0]), slice(start[1], stop[1]))
        log_rad, angle, low_dft = log_rad[crop], angle[crop], low_dft[crop]
        low_dft = low_dft * np.interp(log_rad, xrcos, yircos)
    return high0, bands
