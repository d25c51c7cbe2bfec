"""Draw a complete `DegradationPlan` for one clip from an explicit `np.random.Generator`.

This is the only code of the pipeline that draws random numbers. It follows the reference's distributions
and quirks (per-clip choices, per-frame random walks clipped to their ranges, the redrawn beta of generalized
and plateau kernels, the 50/50 order of the final group, the `uniform() > prob -> skip` test), not its
random-number stream.
"""

from __future__ import annotations

import numpy as np

from realbasicvsr.degrade.config import (
    NOISE_TYPES,
    RESIZE_MODES,
    BlurConfig,
    CodecConfig,
    DegradationConfig,
    JpegConfig,
    NoiseConfig,
    ResizeConfig,
    default_omega_range,
)
from realbasicvsr.degrade.plan import (
    BlurStep,
    CodecStep,
    DegradationPlan,
    JpegStep,
    NoiseStep,
    ResizeStep,
    Step,
)

_ISOTROPIC = ("iso", "generalized_iso", "plateau_iso", "sinc")


def random_walk(
    rng: np.random.Generator, start: float, step: float, bounds: tuple[float, float], num_frames: int
) -> tuple[float, ...]:
    """start, then each frame += U(-step, step), clipped to bounds (the reference's per-frame walk)."""
    values = [float(start)]
    if num_frames > 1:
        increments = rng.uniform(-step, step, num_frames - 1) if step > 0 else np.zeros(num_frames - 1)
        value = float(start)
        for inc in increments:
            value = min(max(value + float(inc), bounds[0]), bounds[1])
            values.append(value)
    return tuple(values)


def _choice(rng: np.random.Generator, options: tuple, probs: tuple[float, ...]):
    return options[int(rng.choice(len(options), p=np.asarray(probs, dtype=np.float64)))]


def sample_blur(cfg: BlurConfig, stage: str, num_frames: int, rng: np.random.Generator) -> BlurStep:
    kernel_type = _choice(rng, cfg.kernel_types, cfg.kernel_probs)
    kernel_size = int(cfg.kernel_sizes[int(rng.integers(len(cfg.kernel_sizes)))])
    omega_range = cfg.omega_range or default_omega_range(kernel_size)

    def walk(bounds: tuple[float, float], step: float) -> tuple[float, ...]:
        return random_walk(rng, rng.uniform(*bounds), step, bounds, num_frames)

    sigma_x = walk(cfg.sigma_range, cfg.sigma_step)
    sigma_y = walk(cfg.sigma_range, cfg.sigma_step)
    rotation = walk(cfg.rotation_range, cfg.rotation_step)
    if kernel_type.startswith("plateau"):
        beta_walk = walk(cfg.beta_plateau_range, cfg.beta_plateau_step)
    else:
        beta_walk = walk(cfg.beta_gaussian_range, cfg.beta_gaussian_step)
    omega = walk(omega_range, cfg.omega_step)
    if kernel_type.startswith(("generalized", "plateau")):
        # Reference quirk: the kernel helper redraws beta each frame from U(b, 1) or U(1, b) (same interval).
        beta = tuple(float(rng.uniform(min(b, 1.0), max(b, 1.0))) for b in beta_walk)
    else:
        beta = tuple(1.0 for _ in beta_walk)
    if kernel_type in _ISOTROPIC:
        # isotropic kernels use sigma_y = sigma_x and no rotation (sinc uses omega only)
        sigma_y, rotation = sigma_x, tuple(0.0 for _ in rotation)
    return BlurStep(stage, kernel_type, kernel_size, sigma_x, sigma_y, rotation, beta_walk, beta, omega)


def sample_resize(cfg: ResizeConfig, stage: str, num_frames: int, rng: np.random.Generator) -> ResizeStep:
    interpolation = _choice(rng, cfg.interpolations, cfg.interpolation_probs)
    if cfg.to_target:
        return ResizeStep(stage, interpolation, "target", ())
    mode = _choice(rng, RESIZE_MODES, cfg.mode_probs)
    low, high = cfg.scale_range
    start = {"up": lambda: rng.uniform(1.0, high), "down": lambda: rng.uniform(low, 1.0), "keep": lambda: 1.0}[mode]()
    # As in the reference, 'keep' only fixes the first frame; the walk still moves later frames.
    return ResizeStep(stage, interpolation, mode, random_walk(rng, start, cfg.scale_step, cfg.scale_range, num_frames))


def sample_noise(cfg: NoiseConfig, stage: str, num_frames: int, rng: np.random.Generator) -> NoiseStep:
    kind = _choice(rng, NOISE_TYPES, cfg.type_probs)
    if kind == "gaussian":
        bounds, step, gray_prob = cfg.gaussian_sigma_range, cfg.gaussian_sigma_step, cfg.gaussian_gray_prob
    else:
        bounds, step, gray_prob = cfg.poisson_scale_range, cfg.poisson_scale_step, cfg.poisson_gray_prob
    start = rng.uniform(*bounds)
    gray = bool(rng.uniform() < gray_prob)
    return NoiseStep(stage, kind, gray, random_walk(rng, start, step, bounds, num_frames), cfg.poisson_min_vals)


def sample_jpeg(cfg: JpegConfig, stage: str, num_frames: int, rng: np.random.Generator) -> JpegStep:
    low, high = cfg.quality_range
    quality = round(rng.uniform(low, high))
    qualities = [int(quality)]
    for _ in range(num_frames - 1):
        # the reference rounds after every step, so the walk moves on the integer grid
        quality = round(min(max(quality + rng.uniform(-cfg.quality_step, cfg.quality_step), low), high))
        qualities.append(int(quality))
    return JpegStep(stage, tuple(qualities))


def sample_codec(cfg: CodecConfig, stage: str, rng: np.random.Generator) -> CodecStep:
    codec = _choice(rng, cfg.codecs, cfg.codec_probs)
    bitrate = int(rng.integers(cfg.bitrate_range[0], cfg.bitrate_range[1] + 1))
    return CodecStep(stage, codec, bitrate, cfg.wrap_out_of_range, cfg.x264_mbtree, cfg.x264_preset)


def sample_plan(
    config: DegradationConfig, num_frames: int, target_size: tuple[int, int], rng: np.random.Generator
) -> DegradationPlan:
    """Draw the plan of one clip of `num_frames` frames whose LQ will have `target_size` = (h, w)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    steps: list[Step] = []
    skipped: list[str] = []

    def add(stage: str, prob: float, draw) -> None:
        if rng.uniform() > prob:  # the reference's skip test, once per clip and transform
            skipped.append(stage)
        else:
            steps.append(draw())

    n = num_frames
    c = config
    add("blur1", c.blur1.prob, lambda: sample_blur(c.blur1, "blur1", n, rng))
    add("resize1", c.resize1.prob, lambda: sample_resize(c.resize1, "resize1", n, rng))
    add("noise1", c.noise1.prob, lambda: sample_noise(c.noise1, "noise1", n, rng))
    add("jpeg1", c.jpeg1.prob, lambda: sample_jpeg(c.jpeg1, "jpeg1", n, rng))
    add("codec1", c.codec1.prob, lambda: sample_codec(c.codec1, "codec1", rng))
    add("blur2", c.blur2.prob, lambda: sample_blur(c.blur2, "blur2", n, rng))
    add("resize2", c.resize2.prob, lambda: sample_resize(c.resize2, "resize2", n, rng))
    add("noise2", c.noise2.prob, lambda: sample_noise(c.noise2, "noise2", n, rng))
    add("jpeg2", c.jpeg2.prob, lambda: sample_jpeg(c.jpeg2, "jpeg2", n, rng))
    order = ["codec", "resize+sinc"]
    if c.shuffle_final and rng.uniform() < 0.5:
        order.reverse()
    for group in order:
        if group == "codec":
            add("codec_final", c.codec_final.prob, lambda: sample_codec(c.codec_final, "codec_final", rng))
        else:
            add("resize_final", 1.0, lambda: sample_resize(c.resize_final, "resize_final", n, rng))
            add("sinc_final", c.sinc_final.prob, lambda: sample_blur(c.sinc_final, "sinc_final", n, rng))
    return DegradationPlan(
        num_frames=n,
        target_size=(int(target_size[0]), int(target_size[1])),
        noise_seed=int(rng.integers(0, 2**63 - 1)),
        steps=tuple(steps),
        skipped=tuple(skipped),
        final_order=tuple(order),
    )
