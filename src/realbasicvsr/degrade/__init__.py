"""Real-world degradation pipeline of RealBasicVSR (second-order blur/resize/noise/JPEG + video codec).

Sampling is separate from applying: `sample_plan(config, num_frames, target_size, rng)` draws every value of
one clip into a JSON-serialisable `DegradationPlan`; `apply_plan(clip, plan)` is deterministic.
`make_training_sample` builds one sample of the official recipe. Needs OpenCV (`realbasicvsr[train]`),
scipy (sinc kernel) and PyAV (video codec).
"""

from realbasicvsr.degrade.config import PRESETS, DegradationConfig, fast, official
from realbasicvsr.degrade.plan import (
    DegradationPlan,
    apply_plan,
    apply_plan_frames,
    plan_from_json,
    plan_to_json,
)
from realbasicvsr.degrade.random_plan import sample_plan
from realbasicvsr.degrade.training_sample import degrade_clip, full_frame_target, make_training_sample

__all__ = [
    "PRESETS",
    "DegradationConfig",
    "DegradationPlan",
    "apply_plan",
    "apply_plan_frames",
    "degrade_clip",
    "fast",
    "full_frame_target",
    "make_training_sample",
    "official",
    "plan_from_json",
    "plan_to_json",
    "sample_plan",
]
