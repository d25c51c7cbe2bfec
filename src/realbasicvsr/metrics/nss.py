"""Natural-scene-statistics helpers shared by NIQE and BRISQUE (MSCN maps, GGD/AGGD moment-matching fits).

Every fit works on a batch: a (n, m) array gives n independent fits, so NIQE fits all its 96x96 blocks at once.
The shape parameter is picked from MATLAB's grid `0.2:0.001:10` by arg-min, exactly as the LIVE code does
(the first minimum wins on a tie), instead of solving for it continuously, because that grid step is visible
in the scores.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.ndimage import correlate
from scipy.special import gamma as gamma_fn

# MSCN values this small are floating-point residues of perfectly flat areas (exactly 0 in exact arithmetic);
# their sign decides which side of the AGGD fit they land on, and it depends on the summation order inside
# the filter. Snapping them to 0 is what matches MATLAB's NIQE on the calibration images (docs/metrics.md).
FLAT_SNAP = 1e-9


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """`fspecial('gaussian', size, sigma)` normalised to sum 1, as in the LIVE code."""
    half = (size - 1) / 2
    axis = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(axis, axis)
    window = np.exp(-(xx * xx + yy * yy) / (2 * sigma * sigma))
    window[window < np.finfo(np.float64).eps * window.max()] = 0
    window = window / window.sum()
    return window / window.sum()


def filter2_same(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MATLAB `filter2(window, image, 'same')` (zero padding), summed kernel column by kernel column.

    The sum over the 49 taps is formed as 7 partial sums, one per kernel column (MATLAB is column-major),
    which are then added. Mathematically any order is the same; numerically the order decides whether flat
    areas give MSCN values of exactly 0 or residues of 1e-14, and this order is the one that matches MATLAB's
    BRISQUE on the calibration images (docs/metrics.md compares the variants).
    """
    rows, cols = window.shape
    height, width = image.shape
    padded = np.pad(image, ((rows // 2, rows - 1 - rows // 2), (cols // 2, cols - 1 - cols // 2)))
    out = np.zeros_like(image)
    column = np.empty_like(image)
    term = np.empty_like(image)
    for j in range(cols):
        column.fill(0.0)
        for i in range(rows):
            np.multiply(padded[i : i + height, j : j + width], window[i, j], out=term)
            column += term
        out += column
    return out


def mscn(image: np.ndarray, padding: str) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients: (I - mu) / (sigma + 1) with the 7x7 LIVE window.

    `padding="replicate"` is NIQE's `imfilter(.., 'replicate')`; residues of flat areas are snapped to 0 (see
    FLAT_SNAP). `padding="zero"` is BRISQUE's `filter2(.., 'same')` (see filter2_same), left unsnapped.
    """
    window = gaussian_window()
    if padding == "replicate":
        mu = correlate(image, window, mode="nearest")
        mean_sq = correlate(image * image, window, mode="nearest")
    elif padding == "zero":
        mu = filter2_same(image, window)
        mean_sq = filter2_same(image * image, window)
    else:
        raise ValueError(f"padding must be 'replicate' or 'zero', got {padding!r}")
    coeffs = (image - mu) / (np.sqrt(np.abs(mean_sq - mu * mu)) + 1.0)
    if padding == "replicate":
        coeffs[np.abs(coeffs) < FLAT_SNAP] = 0.0
    return coeffs


@cache
def _shape_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gam = 0.2 + 0.001 * np.arange(9801)  # MATLAB 0.2:0.001:10
    r_aggd = gamma_fn(2 / gam) ** 2 / (gamma_fn(1 / gam) * gamma_fn(3 / gam))
    r_ggd = gamma_fn(1 / gam) * gamma_fn(3 / gam) / gamma_fn(2 / gam) ** 2
    return gam, r_aggd, r_ggd


def _grid_argmin(target: np.ndarray, table: np.ndarray, squared: bool) -> np.ndarray:
    """Index of the table entry closest to each target (first on ties), vectorised over targets."""
    diff = table[None, :] - target[:, None]
    score = diff * diff if squared else np.abs(diff)
    # NaN targets (empty sides) make every score NaN; argmin then returns 0 like MATLAB's min on all-NaN input.
    return np.argmin(np.where(np.isnan(score), np.inf, score), axis=1)


def fit_aggd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric GGD fit per row: (alpha, left_std, right_std) as in LIVE `estimateaggdparam`.

    Rows with no negative (or no positive) values give NaN standard deviations, as MATLAB's mean of an empty
    vector does; NIQE then drops that block through `nanmean`/`nancov`.
    """
    values = np.atleast_2d(values)
    negative = values < 0
    positive = values > 0
    squares = values * values
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt((squares * negative).sum(axis=1) / negative.sum(axis=1))
        right_std = np.sqrt((squares * positive).sum(axis=1) / positive.sum(axis=1))
        gamma_hat = left_std / right_std
        mean_abs = np.abs(values).mean(axis=1)
        r_hat = mean_abs * mean_abs / squares.mean(axis=1)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    gam, r_aggd, _ = _shape_grid()
    alpha = gam[_grid_argmin(r_hat_norm, r_aggd, squared=True)]
    return alpha, left_std, right_std


def fit_ggd(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric GGD fit per row: (shape, std) as in LIVE BRISQUE `estimateggdparam`."""
    values = np.atleast_2d(values)
    sigma_sq = (values * values).mean(axis=1)
    mean_abs = np.abs(values).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = sigma_sq / (mean_abs * mean_abs)
    gam, _, r_ggd = _shape_grid()
    shape = gam[_grid_argmin(rho, r_ggd, squared=False)]
    return shape, np.sqrt(sigma_sq)


def paired_products(blocks: np.ndarray, shifts: tuple[tuple[int, int], ...]) -> list[np.ndarray]:
    """MSCN times its circularly shifted copy within each block (MATLAB `circshift` on the block).

    `blocks` is (n, h, w); each result is (n, h*w).
    """
    n = blocks.shape[0]
    return [(blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(n, -1) for shift in shifts]
