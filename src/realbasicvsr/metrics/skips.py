"""Which metric a frame is too small for, and the record of what a run skipped: so that one small clip costs its
own scores, not the run (`realbasicvsr.metrics.evaluate`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from realbasicvsr.metrics.niqe import BLOCK as NIQE_BLOCK

if TYPE_CHECKING:
    from realbasicvsr.metrics.evaluate import EvaluateConfig


def _minimum_missed(metric: str, height: int, width: int) -> str | None:
    """What `metric` needs that a plane of height x width (after conversion and crop) lacks; None when it fits.
    The same limits as the metric functions check (test_evaluate_small.py holds the two together)."""
    if metric == "niqe" and (height // NIQE_BLOCK) * (width // NIQE_BLOCK) < 2:
        block, pair = f"{NIQE_BLOCK}x{NIQE_BLOCK}", f"{2 * NIQE_BLOCK}x{NIQE_BLOCK} or {NIQE_BLOCK}x{2 * NIQE_BLOCK}"
        return f"NIQE needs at least two whole {block} blocks ({pair} pixels)"
    for name, side in (("brisque", 8), ("nrqm", 64), ("ssim", 11)):
        if metric == name and min(height, width) < side:
            return f"{name.upper()} needs at least {side}x{side} pixels"
    if metric == "pi":
        part = _minimum_missed("nrqm", height, width) or _minimum_missed("niqe", height, width)
        return None if part is None else f"PI is made of NRQM and NIQE, and {part}"
    return None


def _scored_plane(shape: tuple[int, ...], config: EvaluateConfig) -> tuple[int, int, str]:
    """Height and width of the plane a metric sees (after `upscale` and `crop_border`; <= 0 when the crop leaves
    nothing) and the frame's size in words, with the steps that led there."""
    height, width = (math.ceil(n * config.upscale) for n in shape[:2])  # imresize's output size
    steps = [f"{width}x{height} enlarged x{config.upscale}"] if config.upscale > 1 else []
    border = config.crop_border
    height, width = height - 2 * border, width - 2 * border
    if border and min(height, width) > 0:
        steps.append(f"{width}x{height} after the {border}-pixel border crop")
    return height, width, f"{shape[1]}x{shape[0]} pixels" + (f" ({', '.join(steps)})" if steps else "")


def size_problems(shape: tuple[int, ...], config: EvaluateConfig) -> dict[str, str]:
    """Metric -> why a frame of `shape` (H, W, ...) cannot be scored with it, for each requested metric it is too
    small for (after `upscale` and `crop_border`); empty when every metric fits. Checked before scoring, so that
    such a frame is skipped for those metrics instead of ending the run."""
    height, width, words = _scored_plane(shape, config)
    if min(height, width) <= 0:
        return {m: f"{words} is too small for the {config.crop_border}-pixel border crop" for m in config.metrics}
    problems = {m: _minimum_missed(m, height, width) for m in config.metrics}
    return {m: f"{words} is too small: {need}" for m, need in problems.items() if need is not None}


def undefined_reason(metric: str, shape: tuple[int, ...], config: EvaluateConfig) -> str:
    """Why a frame of `shape` whose `metric` came out NaN is skipped: BRISQUE, for one, fits statistics that do
    not exist on a few pixels or a uniform frame (MATLAB gives NaN there too), and one NaN would make every mean
    NaN."""
    words = _scored_plane(shape, config)[2]
    return f"{metric.upper()} is undefined (NaN) on {words}: too few or too uniform pixels for its statistics"


@dataclass(frozen=True)
class Skipped:
    """Frames of one clip that one metric could not score, and why (in plain words)."""

    clip: str
    metric: str
    frames: tuple[int, ...]
    reason: str

    def line(self) -> str:
        return f"skipped {self.metric} for clip {self.clip} ({frame_words(self.frames)}): {self.reason}"


def frame_words(frames: tuple[int, ...]) -> str:
    """'frame 3', 'frames 0, 50, 99', 'frames 0-119' (runs of consecutive frames as ranges)."""
    runs: list[list[int]] = []
    for index in frames:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    parts = [str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs]
    return f"frame{'s' if len(frames) > 1 else ''} {', '.join(parts)}"
