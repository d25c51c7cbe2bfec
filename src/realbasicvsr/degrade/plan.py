"""A degradation plan: every value the sampler drew for one clip, per frame, in the order of application.

Plans are plain frozen dataclasses that round-trip through JSON (`plan_to_json` / `plan_from_json`), so any
training sample or test input can be reproduced and inspected. `apply_plan` is deterministic: the only
randomness it uses (noise samples) comes from `noise_seed` stored in the plan.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from realbasicvsr.degrade import noise, ops
from realbasicvsr.degrade.codec import video_compress
from realbasicvsr.degrade.config import (
    CODECS,
    INTERPOLATIONS,
    KERNEL_TYPES,
    MAX_BITRATE,
    MAX_KERNEL_SIZE,
    MAX_RESIZE_SCALE,
    NOISE_TYPES,
    RESIZE_MODES,
    X264_PRESETS,
)
from realbasicvsr.degrade.kernels import make_kernels
from realbasicvsr.errors import ConfigError, brief

PLAN_FORMAT = 1
MAX_SIDE = 65536  # target_size bound of a replayed plan (the command also checks it against the input)


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
    poisson_min_vals: int = 1  # NoiseConfig.poisson_min_vals (1: the reference)


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


def plan_from_dict(data: Any) -> DegradationPlan:
    """Inverse of `plan_to_dict`. Every field is type- and range-checked before anything is allocated (a replayed
    plan may be hand-edited or hostile): a problem raises `ConfigError` (a `ValueError`) naming the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"a degradation plan must be a JSON object, got {type(data).__name__}")
    if type(data.get("format")) is not int or data["format"] != PLAN_FORMAT:
        raise ConfigError(f"unsupported plan format {brief(data.get('format'))} (expected {PLAN_FORMAT})")
    missing = sorted({"num_frames", "target_size", "noise_seed", "steps", "skipped", "final_order"} - set(data))
    if missing:
        raise ConfigError(f"the plan lacks the field(s) {', '.join(missing)}")
    num_frames = _int(data["num_frames"], "num_frames", 1, 10**6)
    size = data["target_size"]
    if not isinstance(size, list) or len(size) != 2:
        raise ConfigError(f"plan field target_size must be [height, width], got {brief(size)}")
    target_size = (_int(size[0], "target_size", 1, MAX_SIDE), _int(size[1], "target_size", 1, MAX_SIDE))
    if not isinstance(data["steps"], list):
        raise ConfigError(f"plan field steps must be a list, got {brief(data['steps'])}")
    steps = tuple(_step_from_dict(raw, f"steps[{i}]", num_frames) for i, raw in enumerate(data["steps"]))
    return DegradationPlan(
        num_frames=num_frames,
        target_size=target_size,
        noise_seed=_int(data["noise_seed"], "noise_seed", 0, 2**63 - 1),
        steps=steps,
        skipped=_strings(data["skipped"], "skipped"),
        final_order=_strings(data["final_order"], "final_order"),
    )


def _step_from_dict(raw: Any, where: str, num_frames: int) -> Step:
    if not isinstance(raw, dict):
        raise ConfigError(f"plan {where} must be a JSON object, got {brief(raw)}")
    raw = dict(raw)
    op = raw.pop("op", None)
    if not isinstance(op, str) or op not in STEP_TYPES:
        raise ConfigError(f"unknown degradation op {brief(op)} at plan {where}; known: {sorted(STEP_TYPES)}")
    cls = STEP_TYPES[op]
    names = {f.name for f in fields(cls)}
    if cls is NoiseStep:
        raw.setdefault("poisson_min_vals", 1)  # plans written before the field existed: the reference's noise
    if set(raw) != names:
        raise ConfigError(f"plan {where} ({op}): fields {brief(sorted(map(str, raw)))} do not match {sorted(names)}")
    where = f"{where} ({op})"
    _text(raw["stage"], f"{where}.stage")
    n = num_frames
    if cls is BlurStep:
        _choice(raw["kernel_type"], f"{where}.kernel_type", KERNEL_TYPES)
        size = _int(raw["kernel_size"], f"{where}.kernel_size", 1, MAX_KERNEL_SIZE)
        if size % 2 == 0:
            raise ConfigError(f"plan {where}.kernel_size must be odd, got {size}")
        per_frame = {
            "sigma_x": _floats(raw["sigma_x"], f"{where}.sigma_x", n, 1e-6, 1e3),
            "sigma_y": _floats(raw["sigma_y"], f"{where}.sigma_y", n, 1e-6, 1e3),
            "rotation": _floats(raw["rotation"], f"{where}.rotation", n, -1e3, 1e3),
            "beta_walk": _floats(raw["beta_walk"], f"{where}.beta_walk", n, 1e-6, 1e3),
            "beta": _floats(raw["beta"], f"{where}.beta", n, 1e-6, 1e3),
            "omega": _floats(raw["omega"], f"{where}.omega", n, 0.0, 1e3),
        }
        return BlurStep(raw["stage"], raw["kernel_type"], size, **per_frame)
    if cls is ResizeStep:
        _choice(raw["interpolation"], f"{where}.interpolation", INTERPOLATIONS)
        mode = _choice(raw["mode"], f"{where}.mode", (*RESIZE_MODES, "target"))
        count = 0 if mode == "target" else n  # 'target' resizes every frame to the plan's target size
        scales = _floats(raw["scales"], f"{where}.scales", count, 1e-6, MAX_RESIZE_SCALE)
        return ResizeStep(raw["stage"], raw["interpolation"], mode, scales)
    if cls is NoiseStep:
        _choice(raw["kind"], f"{where}.kind", NOISE_TYPES)
        _bool(raw["gray"], f"{where}.gray")
        min_vals = _int(raw["poisson_min_vals"], f"{where}.poisson_min_vals", 1, 256)
        levels = _floats(raw["levels"], f"{where}.levels", n, 0, 1e4)
        return NoiseStep(raw["stage"], raw["kind"], raw["gray"], levels, min_vals)
    if cls is JpegStep:
        qualities = tuple(int(q) for q in _floats(raw["qualities"], f"{where}.qualities", n, 1, 100, integer=True))
        return JpegStep(raw["stage"], qualities)
    _choice(raw["codec"], f"{where}.codec", CODECS)
    bitrate = _int(raw["bitrate"], f"{where}.bitrate", 1, MAX_BITRATE)
    _bool(raw["wrap_out_of_range"], f"{where}.wrap_out_of_range")
    _bool(raw["x264_mbtree"], f"{where}.x264_mbtree")
    if raw["x264_preset"] is not None:
        _choice(raw["x264_preset"], f"{where}.x264_preset", X264_PRESETS)
    return CodecStep(
        raw["stage"], raw["codec"], bitrate, raw["wrap_out_of_range"], raw["x264_mbtree"], raw["x264_preset"]
    )


def _int(value: Any, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"plan field {where} must be an integer in {low}..{high}, got {brief(value)}")
    return value


def _floats(value: Any, where: str, count: int, low: float, high: float, *, integer: bool = False) -> tuple[float, ...]:
    """`count` numbers (one per frame), each finite and in [low, high]."""
    if not isinstance(value, list) or len(value) != count:
        raise ConfigError(f"plan field {where} must be a list of {count} numbers (one per frame), got {brief(value)}")
    for item in value:
        number_type = int if integer else (int, float)
        ok = isinstance(item, number_type) and not isinstance(item, bool)
        if not ok or not math.isfinite(item) or not low <= item <= high:
            kind = "integers" if integer else "finite numbers"
            raise ConfigError(f"plan field {where} must hold {kind} in [{low:g}, {high:g}], got {brief(item)}")
    return tuple(value)


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"plan field {where} must be one of {', '.join(choices)}, got {brief(value)}")
    return value


def _bool(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"plan field {where} must be true or false, got {brief(value)}")


def _text(value: Any, where: str) -> None:
    if not isinstance(value, str) or len(value) > 64:
        raise ConfigError(f"plan field {where} must be a short name, got {brief(value)}")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"plan field {where} must be a list of names, got {brief(value)}")
    for item in value:
        _text(item, where)
    return tuple(value)


def plan_to_json(plan: DegradationPlan) -> str:
    return json.dumps(plan_to_dict(plan), indent=1)


def plan_from_json(text: str) -> DegradationPlan:
    """A plan from JSON text; invalid JSON or an invalid plan raises `ConfigError` (a `ValueError`)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError; RecursionError: [[[[...
        raise ConfigError(f"not valid JSON ({brief(str(error), 120)})") from error
    return plan_from_dict(data)


def apply_step(frames: ops.Frames, step: Step, plan: DegradationPlan, index: int) -> ops.Frames:
    """Apply one step to a list of (H, W, 3) float32 frames."""
    if isinstance(step, BlurStep):
        kernels = make_kernels(
            step.kernel_type, step.kernel_size, step.sigma_x, step.sigma_y, step.rotation, step.beta, step.omega
        )
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
            return noise.add_gaussian_noise(frames, [s / 255.0 for s in step.levels], step.gray, rng)
        if step.kind == "poisson":
            return noise.add_poisson_noise(frames, step.levels, step.gray, rng, min_vals=step.poisson_min_vals)
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
