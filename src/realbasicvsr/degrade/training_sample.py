"""Training samples and full-frame degradation built on the plan sampler.

`make_training_sample` is what a DataLoader worker calls: loaded GT frames in, the (gt, gt_usm, lq) triple of
the official recipe out. It depends only on the generator it is given, so the same seed gives the same sample
whatever the number of workers.
"""

from __future__ import annotations

import numpy as np

from realbasicvsr.degrade import ops
from realbasicvsr.degrade.config import DegradationConfig, official
from realbasicvsr.degrade.plan import DegradationPlan, apply_plan_frames
from realbasicvsr.degrade.random_plan import sample_plan


def _check_uint8_clip(gt_frames: np.ndarray, scale: int) -> None:
    if not isinstance(gt_frames, np.ndarray) or gt_frames.dtype != np.uint8:
        raise ValueError(f"gt_frames must be a uint8 numpy array, got {getattr(gt_frames, 'dtype', type(gt_frames))}")
    if gt_frames.ndim != 4 or gt_frames.shape[-1] != 3 or gt_frames.shape[0] < 1:
        raise ValueError(f"gt_frames must have shape (T, H, W, 3) with T >= 1, got {gt_frames.shape}")
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")


def unsharp_config_mask(frames: np.ndarray, config: DegradationConfig) -> np.ndarray:
    """Unsharp-mask a (T, H, W, 3) clip (float in [0, 1] or uint8) with the config's USM settings."""
    return ops.unsharp_mask(frames, config.usm_kernel_size, config.usm_sigma, config.usm_weight, config.usm_threshold)


def _to_chw(frames: np.ndarray, order: np.ndarray) -> np.ndarray:
    chw = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    return chw[order] if len(order) != len(chw) else chw


def mirrored_chw(frames: np.ndarray, mirror: bool) -> np.ndarray:
    """float32 (T, H, W, 3) -> (T2, 3, H, W) with the frames in the sample's order, in one transposing copy
    (the mirrored half is a plain copy of the first: frames x1..xT, xT..x1)."""
    num = len(frames)
    out = np.empty((2 * num if mirror else num, frames.shape[3], *frames.shape[1:3]), np.float32)
    out[:num] = frames.transpose(0, 3, 1, 2)
    if mirror:
        out[num:] = out[num - 1 :: -1]
    return out


def make_training_sample_with_plan(
    gt_frames: np.ndarray,
    rng: np.random.Generator,
    config: DegradationConfig | None = None,
    *,
    mirror: bool = True,
    scale: int = 4,
) -> tuple[dict[str, np.ndarray], DegradationPlan]:
    """`make_training_sample`, also returning the plan that produced the LQ."""
    _check_uint8_clip(gt_frames, scale)
    config = config or official()
    num, height, width = gt_frames.shape[:3]
    if height % scale or width % scale:
        raise ValueError(f"GT size {height}x{width} is not a multiple of the scale {scale}")
    # Unsharp masking is per frame and deterministic, so the mirrored half needs no second pass: sharpening
    # the 15 loaded frames and then mirroring equals the reference's mirror-then-sharpen of 30 frames.
    gt_usm = unsharp_config_mask(gt_frames, config)
    order = np.concatenate([np.arange(num), np.arange(num)[::-1]]) if mirror else np.arange(num)
    frames = [gt_usm[i] for i in order]  # views: no op modifies its input in place
    plan = sample_plan(config, len(order), (height // scale, width // scale), rng)
    lq = ops.to_clip(apply_plan_frames(frames, plan))
    # plain GT: reorder in uint8 (4x less memory traffic), convert once
    gt = np.multiply(_to_chw(gt_frames, order), np.float32(1.0 / 255.0), dtype=np.float32)
    sample = {"gt": gt, "gt_usm": mirrored_chw(gt_usm, mirror), "lq": lq}
    return sample, plan


def make_training_sample(
    gt_frames: np.ndarray,
    rng: np.random.Generator,
    config: DegradationConfig | None = None,
    *,
    mirror: bool = True,
    scale: int = 4,
) -> dict[str, np.ndarray]:
    """One training sample of the official recipe from already cropped/flipped GT frames.

    Args:
        gt_frames: uint8 (T, H, W, 3) RGB (T = 15 officially; H and W multiples of `scale`).
        rng: the only source of randomness (no global RNG is touched).
        config: degradation recipe; None = the official one.
        mirror: append the frames in reverse order (T -> 2T), the paper's "load L/2 frames" saving.
        scale: LQ size = GT size / scale.

    Returns:
        float32 arrays in [0, 1] of shape (T2, 3, h, w): "gt" (plain GT), "gt_usm" (unsharp-masked GT, the
        source of the degradation) and "lq" (degraded and quantised, h = H / scale, w = W / scale).
    """
    sample, _ = make_training_sample_with_plan(gt_frames, rng, config, mirror=mirror, scale=scale)
    return sample


def full_frame_target(height: int, width: int, scale: int) -> tuple[int, int]:
    """The LQ size of full-frame mode: (H / scale, W / scale) rounded down to even sizes (at least 2)."""
    return ops.scaled_size(height, width, 1.0 / scale)


def degrade_clip(frames: np.ndarray, plan: DegradationPlan, *, unsharp: DegradationConfig | None = None) -> np.ndarray:
    """Degrade whole frames: uint8 (T, H, W, 3) RGB in, uint8 (T, h, w, 3) out (h, w = plan.target_size).

    `unsharp`: when given, the frames are first unsharp-masked with that config's settings, as in training.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if unsharp is not None:
        clip = unsharp_config_mask(frames, unsharp)
    else:
        clip = frames.astype(np.float32) * np.float32(1.0 / 255.0)
    out = apply_plan_frames(list(clip), plan)
    return np.stack([np.rint(f * 255.0).astype(np.uint8) for f in out])
