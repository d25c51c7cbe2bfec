"""A degradation plan: every value the sampler drew for one clip, per frame, in the order of application.

Plans are plain frozen dataclasses that round-trip through JSON (`plan_to_json` / `plan_from_json`), so any
training sample or test input can be reproduced and inspected. `apply_plan` is deterministic: the only
randomness it uses (noise samples) comes from `noise_seed` stored in the plan.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from realbasicvsr.degrade import ops
from realbasicvsr.degrade.codec import video_compress
from realbasicvsr.degrade.kernels import make_kernel

PLAN_FORMAT = 1


@dataclass(frozen=True)
class BlurStep:
    """Per-frame kernel parameters. `beta` is the value actually used (for generalized and plateau kernels
    the reference redraws it each frame uniformly between the walking value `beta_walk` and 1)."""

    stage: str
    kernel_type: str
    kernel_size: int
    sigma_x: tuple[float, ...]
    sigma_y: tuple[float, ...]
    rotation: tuple[float, ...]
    beta_walk: tuple[float, ...]
    beta: tuple[float, ...]
    omega: tuple[float, ...]


@dataclass(frozen=True)
class ResizeStep:
    """`scales[i]` applies to the size of the clip's frame 0 at this step; mode 'target' uses the plan's
    target size for every frame (scales is then empty)."""

    stage: str
    interpolation: str
    mode: str
    scales: tuple[float, ...]


@dataclass(frozen=True)
class NoiseStep:
    """`levels[i]`: Gaussian sigma in 8-bit units (divided by 255 when applied) or Poisson scale."""

    stage: str
    kind: str
    gray: bool
    levels: tuple[float, ...]


@dataclass(frozen=True)
class JpegStep:
    stage: str
    qualities: tuple[int, ...]


@dataclass(frozen=True)
class CodecStep:
    stage: str
    codec: str
    bitrate: int
    wrap_out_of_range: bool
    x264_mbtree: bool
    x264_preset: str | None


Step = BlurStep | ResizeStep | NoiseStep | JpegStep | CodecStep

# op name in the JSON <-> step class; a literal table next to the code it serves.
STEP_TYPES: dict[str, type] = {
    "blur": BlurStep,
    "resize": ResizeStep,
    "noise": NoiseStep,
    "jpeg": JpegStep,
    "codec": CodecStep,
}
_OP_NAMES = {cls: name for name, cls in STEP_TYPES.items()}


@dataclass(frozen=True)
class DegradationPlan:
    """Everything needed to degrade one clip of `num_frames` frames to `target_size` = (height, width)."""

    num_frames: int
    target_size: tuple[int, int]
    noise_seed: int
    steps: tuple[Step, ...]
    skipped: tuple[str, ...]  # stages whose probability test said "skip"
    final_order: tuple[str, ...]  # ("codec", "resize+sinc") or the reverse

    def stages(self) -> list[str]:
        return [step.stage for step in self.steps]


def plan_to_dict(plan: DegradationPlan) -> dict[str, Any]:
    """JSON-ready dict; each step carries its op name."""
    data = asdict(plan)
    data["format"] = PLAN_FORMAT
    data["steps"] = [{"op": _OP_NAMES[type(step)], **asdict(step)} for step in plan.steps]
    return data


def plan_from_dict(data: dict[str, Any]) -> DegradationPlan:
    """Inverse of `plan_to_dict`; raises ValueError on an unknown format, op or field."""
    if data.get("format") != PLAN_FORMAT:
        raise ValueError(f"unsupported plan format {data.get('format')!r} (expected {PLAN_FORMAT})")
    steps = []
    for raw in data["steps"]:
        raw = dict(raw)
        op = raw.pop("op", None)
        if op not in STEP_TYPES:
            raise ValueError(f"unknown degradation op {op!r}; known: {sorted(STEP_TYPES)}")
        cls = STEP_TYPES[op]
        names = {f.name for f in fields(cls)}
        if set(raw) != names:
            raise ValueError(f"{op} step fields {sorted(raw)} do not match {sorted(names)}")
        steps.append(cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}))
    return DegradationPlan(
        num_frames=int(data["num_frames"]),
        target_size=(int(data["target_size"][0]), int(data["target_size"][1])),
        noise_seed=int(data["noise_seed"]),
        steps=tuple(steps),
        skipped=tuple(data["skipped"]),
        final_order=tuple(data["final_order"]),
    )


def plan_to_json(plan: DegradationPlan) -> str:
    return json.dumps(plan_to_dict(plan), indent=1)


def plan_from_json(text: str) -> DegradationPlan:
    return plan_from_dict(json.loads(text))


def apply_step(frames: ops.Frames, step: Step, plan: DegradationPlan, index: int) -> ops.Frames:
    """Apply one step to a list of (H, W, 3) float32 frames."""
    if isinstance(step, BlurStep):
        kernels = [
            make_kernel(step.kernel_type, step.kernel_size, sx, sy, rot, beta, omega)
            for sx, sy, rot, beta, omega in zip(step.sigma_x, step.sigma_y, step.rotation, step.beta, step.omega)
        ]
        return ops.blur(frames, kernels)
    if isinstance(step, ResizeStep):
        if step.mode == "target":
            sizes = [plan.target_size] * len(frames)
        else:
            h, w = frames[0].shape[:2]  # the reference computes every frame's size from frame 0
            sizes = [ops.scaled_size(h, w, s) for s in step.scales]
        return ops.resize(frames, sizes, step.interpolation)
    if isinstance(step, NoiseStep):
        # One generator per step, derived from the plan's seed, so steps do not share noise samples.
        rng = np.random.default_rng([plan.noise_seed, index])
        if step.kind == "gaussian":
            return ops.add_gaussian_noise(frames, [s / 255.0 for s in step.levels], step.gray, rng)
        if step.kind == "poisson":
            return ops.add_poisson_noise(frames, step.levels, step.gray, rng)
        raise ValueError(f"unknown noise kind {step.kind!r}")
    if isinstance(step, JpegStep):
        return ops.jpeg(frames, step.qualities)
    if isinstance(step, CodecStep):
        return video_compress(
            frames,
            step.codec,
            step.bitrate,
            wrap_out_of_range=step.wrap_out_of_range,
            x264_mbtree=step.x264_mbtree,
            x264_preset=step.x264_preset,
        )
    raise TypeError(f"not a degradation step: {step!r}")


def apply_plan_frames(frames: ops.Frames, plan: DegradationPlan, *, quantize: bool = True) -> ops.Frames:
    """Run the plan on (H, W, 3) float32 frames; returns frames of `plan.target_size`, 8-bit quantised."""
    if len(frames) != plan.num_frames:
        raise ValueError(f"the plan is for {plan.num_frames} frames, the clip has {len(frames)}")
    for index, step in enumerate(plan.steps):
        frames = apply_step(frames, step, plan, index)
    return ops.quantize(frames) if quantize else list(frames)


def apply_plan(clip: np.ndarray, plan: DegradationPlan, *, quantize: bool = True) -> np.ndarray:
    """Degrade a (T, 3, H, W) float clip in [0, 1]; returns (T, 3, h, w) float32 (quantised to 8 bits)."""
    return ops.to_clip(apply_plan_frames(ops.to_frames(clip), plan, quantize=quantize))
