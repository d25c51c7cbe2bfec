"""Typed, frozen configuration of the degradation pipeline; `DegradationConfig()` is the official recipe.

Every number here was read from the official RealBasicVSR training configs (mmedit 0.x, identical in both
stages). Ranges are closed intervals `(low, high)`; a `*_step` is the half-width of the uniform per-frame
random-walk increment (0 disables the walk). An invalid value raises `ConfigError` (a `ValueError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

from realbasicvsr.errors import ConfigError

KernelType = Literal[
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
    "sinc",
]
Interpolation = Literal["bilinear", "area", "bicubic"]
Codec = Literal["libx264", "h264", "mpeg4"]
KERNEL_TYPES: tuple[KernelType, ...] = get_args(KernelType)
INTERPOLATIONS: tuple[Interpolation, ...] = get_args(Interpolation)
CODECS: tuple[Codec, ...] = get_args(Codec)
NOISE_TYPES = ("gaussian", "poisson")  # the order of NoiseConfig.type_probs
RESIZE_MODES = ("up", "down", "keep")  # the order of ResizeConfig.mode_probs
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
# Upper bounds that keep one clip's memory bounded whatever a config or a replayed plan says. The official recipe
# uses kernels up to 21, USM 51 and resize scales up to 1.5; these leave room for experiments, not for 3 GB kernels.
MAX_KERNEL_SIZE = 63
MAX_USM_KERNEL_SIZE = 255
MAX_RESIZE_SCALE = 4.0
MAX_BITRATE = 10**9


@dataclass(frozen=True)
class BlurConfig:
    """`RandomBlur`: one kernel type and size per clip, continuous parameters walk per frame."""

    prob: float = 1.0
    kernel_types: tuple[KernelType, ...] = KERNEL_TYPES
    kernel_probs: tuple[float, ...] = (0.405, 0.225, 0.108, 0.027, 0.108, 0.027, 0.1)
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    sigma_range: tuple[float, float] = (0.2, 3.0)
    rotation_range: tuple[float, float] = (-3.1416, 3.1416)
    beta_gaussian_range: tuple[float, float] = (0.5, 4.0)
    beta_plateau_range: tuple[float, float] = (1.0, 2.0)
    # None = the Real-ESRGAN default: [pi/3, pi] for kernels smaller than 13, else [pi/5, pi].
    omega_range: tuple[float, float] | None = None
    sigma_step: float = 0.02
    rotation_step: float = 0.31416
    beta_gaussian_step: float = 0.05
    beta_plateau_step: float = 0.1
    omega_step: float = 0.0628

    def __post_init__(self) -> None:
        _check_probs("kernel_probs", self.kernel_probs, len(self.kernel_types))
        unknown = set(self.kernel_types) - set(KERNEL_TYPES)
        if unknown:
            raise ConfigError(f"unknown kernel types {sorted(unknown)}; known: {KERNEL_TYPES}")
        if not self.kernel_sizes or any(not 1 <= k <= MAX_KERNEL_SIZE or k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"kernel sizes must be odd, in 1..{MAX_KERNEL_SIZE}, got {self.kernel_sizes}")
        _check_prob("prob", self.prob)
        _check_range("sigma_range", self.sigma_range, 1e-6)
        _check_range("rotation_range", self.rotation_range, -math.inf)
        _check_range("beta_gaussian_range", self.beta_gaussian_range, 1e-6)
        _check_range("beta_plateau_range", self.beta_plateau_range, 1e-6)
        if self.omega_range is not None:
            _check_range("omega_range", self.omega_range, 0.0)
        for name in ("sigma_step", "rotation_step", "beta_gaussian_step", "beta_plateau_step", "omega_step"):
            _check_range(name, (getattr(self, name),) * 2, 0.0)


@dataclass(frozen=True)
class ResizeConfig:
    """`RandomResize`: a walking scale factor, or a fixed `target_size` (then no walk)."""

    prob: float = 1.0
    interpolations: tuple[Interpolation, ...] = INTERPOLATIONS
    interpolation_probs: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)
    mode_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    scale_range: tuple[float, float] = (0.15, 1.5)
    scale_step: float = 0.015
    # True: resize to the fixed target of the sample (64x64 for training, input/scale for full frames).
    to_target: bool = False

    def __post_init__(self) -> None:
        _check_probs("interpolation_probs", self.interpolation_probs, len(self.interpolations))
        _check_probs("mode_probs", self.mode_probs, 3)
        _check_prob("prob", self.prob)
        if not 0 < self.scale_range[0] <= 1 <= self.scale_range[1] <= MAX_RESIZE_SCALE:
            raise ConfigError(
                f"scale_range must contain 1 and lie in (0, {MAX_RESIZE_SCALE:g}], got {self.scale_range}"
            )
        _check_range("scale_step", (self.scale_step,) * 2, 0.0)


@dataclass(frozen=True)
class NoiseConfig:
    """`RandomNoise`: Gaussian (sigma in 8-bit units) or Poisson (scale), colour or gray."""

    prob: float = 1.0
    type_probs: tuple[float, float] = (0.5, 0.5)  # gaussian, poisson
    gaussian_sigma_range: tuple[float, float] = (1.0, 30.0)
    gaussian_sigma_step: float = 0.1
    gaussian_gray_prob: float = 0.4
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    poisson_scale_step: float = 0.005
    poisson_gray_prob: float = 0.4
    # The reference scales Poisson noise by 2^ceil(log2(number of distinct 8-bit values in the frame)): a frame
    # with few values (a flat graphic) gets noise up to 16x stronger than a photograph, mostly clipped away, which
    # shifts its colours (docs/compact_model/colour.md). 1 = the reference; 256 = every frame as a photograph.
    poisson_min_vals: int = 1

    def __post_init__(self) -> None:
        if self.poisson_min_vals not in (1, 2, 4, 8, 16, 32, 64, 128, 256):
            raise ConfigError(f"poisson_min_vals must be a power of 2 from 1 to 256, got {self.poisson_min_vals}")
        _check_probs("type_probs", self.type_probs, 2)
        _check_prob("prob", self.prob)
        _check_prob("gaussian_gray_prob", self.gaussian_gray_prob)
        _check_prob("poisson_gray_prob", self.poisson_gray_prob)
        _check_range("gaussian_sigma_range", self.gaussian_sigma_range, 0.0)
        _check_range("poisson_scale_range", self.poisson_scale_range, 0.0)
        _check_range("gaussian_sigma_step", (self.gaussian_sigma_step,) * 2, 0.0)
        _check_range("poisson_scale_step", (self.poisson_scale_step,) * 2, 0.0)


@dataclass(frozen=True)
class JpegConfig:
    """`RandomJPEGCompression`: quality walks per frame and is rounded to an integer."""

    prob: float = 1.0
    quality_range: tuple[float, float] = (30.0, 95.0)
    quality_step: float = 3.0

    def __post_init__(self) -> None:
        _check_prob("prob", self.prob)
        _check_range("quality_range", self.quality_range, 1.0, 100.0)
        _check_range("quality_step", (self.quality_step,) * 2, 0.0)


@dataclass(frozen=True)
class CodecConfig:
    """`RandomVideoCompression`: one codec and bitrate (bits/s at 1 fps) per clip."""

    prob: float = 1.0
    codecs: tuple[Codec, ...] = CODECS
    codec_probs: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)
    bitrate_range: tuple[int, int] = (10_000, 100_000)
    # The reference casts (255 * x) to uint8 without clipping, so out-of-range values wrap around (a
    # negative value becomes bright, a value above 1 dark). True reproduces that; False clips first.
    wrap_out_of_range: bool = True
    # The reference runs x264 with MB-tree on; that made x264's output vary between identical runs here,
    # so it is off by default (see codec.py). True restores the reference encoder settings.
    x264_mbtree: bool = False
    # None = x264's default preset (medium), as the reference. A faster preset (e.g. "veryfast", see `fast()`)
    # cuts the codec time about 3x with similar bitrate and PSNR, but other motion search/mode decisions.
    x264_preset: str | None = None

    def __post_init__(self) -> None:
        _check_probs("codec_probs", self.codec_probs, len(self.codecs))
        _check_prob("prob", self.prob)
        unknown = set(self.codecs) - set(CODECS)
        if unknown:
            raise ConfigError(f"unknown codecs {sorted(unknown)}; known: {CODECS}")
        _check_range("bitrate_range", self.bitrate_range, 1, MAX_BITRATE)
        if self.x264_preset is not None and self.x264_preset not in X264_PRESETS:
            raise ConfigError(f"x264_preset must be None or one of {', '.join(X264_PRESETS)}, got {self.x264_preset!r}")


def _second_blur() -> BlurConfig:
    return BlurConfig(prob=0.8, sigma_range=(0.2, 1.5))


def _second_resize() -> ResizeConfig:
    return ResizeConfig(mode_probs=(0.3, 0.4, 0.3), scale_range=(0.3, 1.2), scale_step=0.03)


def _second_noise() -> NoiseConfig:
    return NoiseConfig(gaussian_sigma_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5))


def _final_resize() -> ResizeConfig:
    return ResizeConfig(to_target=True, scale_step=0.0)


def _final_sinc() -> BlurConfig:
    return BlurConfig(prob=0.8, kernel_types=("sinc",), kernel_probs=(1.0,), omega_range=(3.1416 / 3, 3.1416))


@dataclass(frozen=True)
class DegradationConfig:
    """The whole second-order chain. Defaults = the official RealBasicVSR recipe.

    Order: blur1, resize1, noise1, jpeg1, codec1, blur2, resize2, noise2, jpeg2, then the final group in a
    random order (50/50): [codec_final] and [resize_final (to target), sinc_final], then 8-bit quantisation.
    """

    blur1: BlurConfig = field(default_factory=BlurConfig)
    resize1: ResizeConfig = field(default_factory=ResizeConfig)
    noise1: NoiseConfig = field(default_factory=NoiseConfig)
    jpeg1: JpegConfig = field(default_factory=JpegConfig)
    codec1: CodecConfig = field(default_factory=CodecConfig)
    blur2: BlurConfig = field(default_factory=_second_blur)
    resize2: ResizeConfig = field(default_factory=_second_resize)
    noise2: NoiseConfig = field(default_factory=_second_noise)
    jpeg2: JpegConfig = field(default_factory=JpegConfig)
    codec_final: CodecConfig = field(default_factory=CodecConfig)
    resize_final: ResizeConfig = field(default_factory=_final_resize)
    sinc_final: BlurConfig = field(default_factory=_final_sinc)
    shuffle_final: bool = True  # False: always codec first, then resize + sinc
    # Unsharp masking of the ground truth (the LQ is degraded from the sharpened GT).
    usm_kernel_size: int = 51
    usm_sigma: float = 0.0  # 0 = OpenCV's rule: 0.3 * ((k - 1) / 2 - 1) + 0.8 (8.0 for k = 51)
    usm_weight: float = 0.5
    usm_threshold: float = 10.0

    def __post_init__(self) -> None:
        if not self.resize_final.to_target or self.resize_final.prob != 1.0:
            raise ConfigError("resize_final must have to_target=True and prob=1 (the LQ has a fixed size)")
        if self.usm_kernel_size % 2 == 0 or not 1 <= self.usm_kernel_size <= MAX_USM_KERNEL_SIZE:
            raise ConfigError(f"usm_kernel_size must be odd, in 1..{MAX_USM_KERNEL_SIZE}, got {self.usm_kernel_size}")
        for name in ("usm_sigma", "usm_weight", "usm_threshold"):
            _check_range(name, (getattr(self, name),) * 2, 0.0)


def official() -> DegradationConfig:
    """The recipe of the released RealBasicVSR model (same for stage 1 and stage 2)."""
    return DegradationConfig()


def fast() -> DegradationConfig:
    """The official recipe with x264's "veryfast" preset in both codec steps (not the reference encoder
    settings: about 3x faster codec steps, similar bitrate and PSNR; see benchmarks/bench_degrade.py)."""
    fast_codec = CodecConfig(x264_preset="veryfast")
    return DegradationConfig(codec1=fast_codec, codec_final=fast_codec)


# The named recipes, for configs (`data.degradation: fast`) and `realbasicvsr degrade --preset`.
PRESETS = {"official": official, "fast": fast}


def default_omega_range(kernel_size: int) -> tuple[float, float]:
    """Real-ESRGAN's sinc cut-off range used when a blur config gives none."""
    return (math.pi / 3, math.pi) if kernel_size < 13 else (math.pi / 5, math.pi)


def _check_prob(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:  # also refuses NaN
        raise ConfigError(f"{name} must be in [0, 1], got {p}")


def _check_range(name: str, bounds: tuple[float, ...], low: float, high: float = math.inf) -> None:
    """`bounds` = (a, b): finite, low <= a <= b <= high (NaN fails every comparison, so it is refused)."""
    a, b = bounds
    if not (math.isfinite(a) and math.isfinite(b) and low <= a <= b <= high):
        limits = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise ConfigError(f"{name} must be finite, ordered (low <= high) and {limits}, got {bounds}")


def _check_probs(name: str, probs: tuple[float, ...], n: int) -> None:
    if len(probs) != n or not all(0 <= p <= 1 for p in probs) or not abs(sum(probs) - 1.0) <= 1e-6:
        raise ConfigError(f"{name} must be {n} non-negative numbers summing to 1, got {probs}")
