"""Gaussian and Poisson noise of a clip (the reference's RandomNoise), from an explicit generator.

The random draws of a whole clip come from one generator in frame order, so a frame's samples do not depend
on how the clip is split into calls: the Poisson uniforms are drawn in one call for the clip (numpy's stream
of full-range uint32 draws is the same in one call as in one call per frame), the Gaussian samples per frame
from one torch generator, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from realbasicvsr.degrade.ops import Frames, check_len, cv2_module, to_uint8


def add_gaussian_noise(
    frames: Sequence[np.ndarray], sigmas: Sequence[float], gray: bool, rng: np.random.Generator
) -> Frames:
    """frame + N(0, sigma^2) per pixel; gray noise is one sample per pixel shared by the 3 channels.

    sigma is in [0, 1] units (the config's 8-bit values divided by 255). The normal samples come from a
    torch generator seeded from `rng` (torch's vectorised sampler is about 2x faster than numpy's here);
    frame + sigma * noise is one fused pass (torch.add with alpha), written over the noise buffer in colour.
    """
    import torch

    check_len(frames, sigmas, "sigmas")
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**63 - 1)))
    out = []
    for frame, sigma in zip(frames, sigmas):
        h, w = frame.shape[:2]
        noise = torch.randn((h, w, 1 if gray else 3), generator=generator, dtype=torch.float32)
        base = np.ascontiguousarray(frame, dtype=np.float32)
        if not base.flags.writeable:  # torch.from_numpy warns about read-only arrays (it is only read here)
            base = base.copy()
        result = torch.add(torch.from_numpy(base), noise, alpha=float(sigma), out=None if gray else noise)
        out.append(result.numpy())
    return out


_GUIDE_BITS = 12  # 4096 guide cells per level
# Probabilities in 30-bit fixed point: tables and draws stay int32 (half the memory traffic of int64) and the
# draws come from a power-of-two range (numpy's fast path; other ranges need rejection and are slower).
_FIXED_BITS = 30
_FIXED_ONE = 1 << _FIXED_BITS
_CELL_SHIFT = _FIXED_BITS - _GUIDE_BITS


@functools.lru_cache(maxsize=16)
def _poisson_tables(vals: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Inverse-CDF tables of Poisson(level * vals / 255) for the 256 levels of an 8-bit image.

    Returns (cdf, guide, deviation, rates, width): cdf[level * width + k] = P(X <= k) in 30-bit fixed point,
    int32 (the last entry of a row is 2^30, above every uniform draw, so a search always stops inside the row);
    guide[(level << 12) | cell] = the first flat index whose cdf exceeds the cell's lower bound, where the search
    starts; deviation[(level << 12) | cell] = k - rate (float32) when every draw of the cell gives the same k
    (about 98 % of the cells), else NaN (the search decides); rates = level * vals / 255 (float64).
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
    low = np.arange(1 << _GUIDE_BITS, dtype=np.int64) << _CELL_SHIFT
    first = np.stack([np.searchsorted(row, low, side="right") for row in fixed])
    last = np.stack([np.searchsorted(row, low + (1 << _CELL_SHIFT) - 1, side="right") for row in fixed])
    deviation = np.where(first == last, first - rates[:, None], np.nan).astype(np.float32)
    guide = first + np.arange(256)[:, None] * width
    return fixed.astype(np.int32).ravel(), guide.astype(np.int32).ravel(), deviation.ravel(), rates, width


def uniform_draws(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` uniform int32 in [0, 2^30): the top 30 bits of full-range uint32 draws (numpy's fastest integers)."""
    return (rng.integers(0, 1 << 32, count, dtype=np.uint32) >> np.uint32(32 - _FIXED_BITS)).view(np.int32)


def poisson_counts(levels: np.ndarray, vals: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson(levels * vals / 255) samples for an array of 8-bit levels (int32 counts, same shape).

    Inverse-CDF sampling with a guide table (Chen & Asau) on 30-bit uniform integers: exact up to the 2^-30
    fixed-point rounding of the CDF, and 2-4x faster than numpy's per-element Poisson sampler because the
    rate takes only 256 values. The stream of draws differs from `rng.poisson`, the distribution not.
    """
    return poisson_inverse_cdf(levels, uniform_draws(levels.size, rng).reshape(levels.shape), vals)


def _search(start: np.ndarray, u: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Walk from the flat index `start` up to the first one with u < cdf (a few percent of pixels, 1-2 steps)."""
    idx = start.copy()
    todo = np.flatnonzero(cdf[idx] <= u)
    while todo.size:
        idx[todo] += 1
        todo = todo[cdf[idx[todo]] <= u[todo]]
    return idx


def poisson_inverse_cdf(levels: np.ndarray, u: np.ndarray, vals: int) -> np.ndarray:
    """The smallest k with u < 2^30 * P(X <= k), X ~ Poisson(level * vals / 255); u int32 in [0, 2^30)."""
    cdf, guide, _, _, width = _poisson_tables(int(vals))
    flat_levels = levels.ravel().astype(np.int32)
    u = u.ravel()
    idx = _search(guide[(flat_levels << _GUIDE_BITS) | (u >> _CELL_SHIFT)], u, cdf)
    return (idx - flat_levels * width).reshape(levels.shape)


def poisson_deviations(levels: np.ndarray, u: np.ndarray, vals: int) -> np.ndarray:
    """float32 X - rate for X = `poisson_inverse_cdf(levels, u, vals)` and rate = level * vals / 255.

    One gather per pixel from the cell table; only the pixels whose cell holds a CDF step are searched (same X).
    """
    cdf, guide, deviation, rates, width = _poisson_tables(int(vals))
    flat_levels = levels.ravel()
    u = u.ravel()
    cells = np.left_shift(flat_levels, _GUIDE_BITS, dtype=np.intp)
    cells |= u >> _CELL_SHIFT
    out = deviation.take(cells)
    unresolved = np.flatnonzero(np.isnan(out))
    if unresolved.size:
        idx = _search(guide[cells[unresolved]], u[unresolved], cdf)
        level = flat_levels[unresolved].astype(np.int64)
        out[unresolved] = (idx - level * width) - rates[level]
    return out.reshape(levels.shape)


def add_poisson_noise(
    frames: Sequence[np.ndarray], scales: Sequence[float], gray: bool, rng: np.random.Generator, min_vals: int = 1
) -> Frames:
    """Signal-dependent shot noise, as the reference: v = 8-bit quantised image (or its luma when gray),
    vals = 2^ceil(log2(number of distinct values of v)), noise = Poisson(v * vals) / vals - v, scaled.
    `min_vals` > 1 is our option (not the reference): vals is at least that, so a frame of few distinct values
    (a flat graphic) is not given the far stronger noise the reference gives it.

    The uniforms of the whole clip are drawn in one call (the same numbers as one draw per frame); the noise is
    (X - rate) * scale / vals from `poisson_deviations`, added in one pass (cv2.scaleAdd).
    """
    cv2 = cv2_module()
    check_len(frames, scales, "scales")
    levels = [to_uint8(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if gray else f) for f in frames]
    draws = uniform_draws(sum(v.size for v in levels), rng)
    out = []
    start = 0
    for frame, level, scale in zip(frames, levels, scales):
        flat = level.reshape(level.shape[0], -1)
        distinct = int(np.count_nonzero(cv2.calcHist([flat], [0], None, [256], [0, 256])))
        vals = max(int(2 ** np.ceil(np.log2(distinct))), min_vals)
        noise = poisson_deviations(level, draws[start : start + level.size], vals)
        start += level.size
        factor = np.float32(scale / vals)
        if gray:
            noise *= factor
            out.append(np.add(frame, noise[..., None], dtype=np.float32))
        else:
            image = np.ascontiguousarray(frame, dtype=np.float32)
            out.append(cv2.scaleAdd(noise, float(factor), image))
    return out
