"""Does an upscaler keep colours? Flat patches across the RGB cube and colour bars, in and out.

A restoration model may sharpen and denoise, but the mean colour of a flat area must not move: a sky, a logo or a
title card that changes colour is a damaged picture. `patch_errors` runs an upscaler on small clips of flat colour
(with mild noise, as real footage has) and reports, per patch, how far the mean colour of the output's centre moved
from the input's, per channel, on the 0-255 scale. The test suite holds the bundled model to 8 levels
(tests/test_color_guard.py) and `scripts/compact_model_evidence.py` reports the same numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

# An upscaler: (n, t, 3, h, w) in [0, 1] -> (n, t, 3, s*h, s*w), clamped or not (the errors clamp).
Upscale = Callable[[torch.Tensor], torch.Tensor]
CUBE_LEVELS = (0, 64, 128, 191, 255)
# 75 % bars (SMPTE-like order): white, yellow, cyan, green, magenta, red, blue.
BARS = ((191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191))


@dataclass(frozen=True)
class PatchError:
    """One flat patch: its input colour, the mean colour of the upscaled patch's centre, and the worst channel's
    absolute difference (0-255)."""

    colour: tuple[int, int, int]
    output: tuple[float, float, float]
    error: float


def cube_colours(levels: tuple[int, ...] = CUBE_LEVELS) -> list[tuple[int, int, int]]:
    """Every colour whose channels are all in `levels` (125 for the default 5 levels)."""
    return [tuple(c) for c in itertools.product(levels, repeat=3)]  # type: ignore[misc]


def flat_clips(
    colours: list[tuple[int, int, int]], *, size: int = 24, frames: int = 5, noise: float = 2.0, seed: int = 0
) -> torch.Tensor:
    """(len(colours), frames, 3, size, size) in [0, 1]: each clip one flat colour plus Gaussian noise of `noise`
    levels (fixed seed), clamped to the valid range."""
    if size < 8 or frames < 1 or noise < 0:
        raise ValueError(f"need size >= 8, frames >= 1 and noise >= 0, got {size}, {frames}, {noise}")
    base = torch.tensor(colours, dtype=torch.float32).view(-1, 1, 3, 1, 1) / 255.0
    generator = torch.Generator().manual_seed(seed)
    grain = torch.randn((len(colours), frames, 3, size, size), generator=generator) * (noise / 255.0)
    return (base + grain).clamp(0, 1)


def patch_errors(upscale: Upscale, colours: list[tuple[int, int, int]], *, batch: int = 25) -> list[PatchError]:
    """Run `upscale` on one flat clip per colour (`flat_clips`) and measure each output's mean colour over the
    middle frame's centre (a quarter of the size left out on each side, away from border effects)."""
    clips = flat_clips(colours)
    results = []
    with torch.no_grad():
        for start in range(0, len(colours), batch):
            out = upscale(clips[start : start + batch]).clamp(0, 1)
            middle = out[:, out.shape[1] // 2]
            h, w = middle.shape[-2:]
            centre = middle[..., h // 4 : h - h // 4, w // 4 : w - w // 4]
            means = (centre.mean(dim=(-2, -1)) * 255.0).double().numpy()
            for colour, mean in zip(colours[start : start + batch], means, strict=True):
                error = float(np.abs(mean - np.array(colour, dtype=np.float64)).max())
                results.append(PatchError(colour, tuple(float(v) for v in mean), error))  # type: ignore[arg-type]
    return results


def summary(errors: list[PatchError], tolerance: float = 8.0) -> dict[str, object]:
    """Worst and mean error, how many patches exceed `tolerance`, and the worst patch (for reports)."""
    worst = max(errors, key=lambda e: e.error)
    return {
        "patches": len(errors),
        "max_error": round(worst.error, 2),
        "mean_error": round(float(np.mean([e.error for e in errors])), 2),
        f"over_{tolerance:g}": sum(e.error > tolerance for e in errors),
        "worst": {"input": list(worst.colour), "output": [round(v, 1) for v in worst.output]},
    }


def bars_image(height: int = 96, width: int = 128, noise: float = 2.0, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8 75 % colour bars with mild Gaussian noise: the picture of issue 21."""
    if height < 1 or width < len(BARS):
        raise ValueError(f"bars need at least 1x{len(BARS)} pixels, got {height}x{width}")
    edges = np.linspace(0, width, len(BARS) + 1).round().astype(int)
    image = np.zeros((height, width, 3), np.float64)
    for colour, x0, x1 in zip(BARS, edges[:-1], edges[1:], strict=True):
        image[:, x0:x1] = colour
    image += np.random.default_rng(seed).normal(0.0, noise, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def bar_means(image: np.ndarray) -> list[tuple[float, float, float]]:
    """Mean colour of the central half of each bar of an image made like `bars_image` (any size)."""
    h, w = image.shape[:2]
    edges = np.linspace(0, w, len(BARS) + 1)
    means = []
    for x0, x1 in itertools.pairwise(edges):
        quarter = (x1 - x0) / 4
        part = image[h // 4 : h - h // 4, round(x0 + quarter) : round(x1 - quarter)]
        means.append(tuple(float(v) for v in part.reshape(-1, 3).mean(axis=0)))
    return means  # type: ignore[return-value]
