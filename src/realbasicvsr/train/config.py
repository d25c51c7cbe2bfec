"""Training configuration: typed frozen dataclasses, the `stage1`/`stage2`/`tiny` presets and strict file loading.

A config file (YAML or TOML) has the sections `model`, `data`, `loss`, `optim`, `run`, `log` and `checkpoint`;
every key is optional (missing keys keep the defaults below) and an unknown key is an error, so a typo never
silently falls back to a default. `KEY=VALUE` overrides (`data.batch_size=4`) are applied on top.

`data.degradation` is the degradation recipe (`realbasicvsr.degrade.DegradationConfig`): a preset name
(`official`, `fast`), `none`, or a mapping of recipe fields over the official preset (`degradation_from_value`).
Invalid values raise `ConfigError`.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from realbasicvsr.degrade.config import PRESETS as DEGRADATION_PRESETS
from realbasicvsr.degrade.config import DegradationConfig, official
from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.models import ModelConfig
from realbasicvsr.train.typed_config import brief, build_config, merge, to_plain

Precision = Literal["auto", "fp32", "bf16", "fp16"]
ChannelsLast = Literal["auto", "always", "never"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
CHANNELS_LAST: tuple[str, ...] = typing.get_args(ChannelsLast)
SEED_MAX = 2**32 - 1
NO_DEGRADATION = "none"  # LQ = bicubic x4 downsampling of the GT, no sharpening (paired data)
# Run configs (and the configs saved in checkpoints) from before the recipes had names say `realworld`: it was
# the official recipe, so old runs still load, resume and export.
DEGRADATION_ALIASES = {"realworld": "official"}
_DEGRADATION_CHOICES = (
    f"one of {', '.join(DEGRADATION_PRESETS)}, {NO_DEGRADATION} or a mapping of DegradationConfig fields"
)


def degradation_from_value(value: Any, where: str = "data.degradation") -> DegradationConfig | None:
    """The degradation recipe a config value names (`where`: its dotted key, for the error messages).

    - None or "none": no degradation (the LQ is the bicubic x4 downsampling of the GT);
    - a preset name of `realbasicvsr.degrade.config.PRESETS` ("official", "fast"; "realworld" = "official");
    - a mapping of `DegradationConfig` fields over the official preset, or over the preset its `preset` key names.
      Nested sections merge field by field (`{"noise2": {"prob": 0.5}}` changes only that probability; noise2
      keeps its second-order ranges); unknown keys are errors that list the known ones;
    - a `DegradationConfig`, returned as it is.
    """
    if value is None or value == NO_DEGRADATION:
        return None
    if isinstance(value, DegradationConfig):
        return value
    if isinstance(value, str):
        return _degradation_preset(value, where)()
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be {_DEGRADATION_CHOICES}, got {brief(value)}")
    fields = dict(value)
    base = _degradation_preset(fields.pop("preset", "official"), f"{where}.preset")()
    return build_config(DegradationConfig, merge(to_plain(asdict(base)), fields), f"{where}.")


def degradation_to_value(config: DegradationConfig | None) -> str | dict[str, Any]:
    """What a config file says for `config`: "none", a preset's name, or every field of a custom recipe (so the
    run config records it in full); `degradation_from_value` reads each back to an equal config."""
    if config is None:
        return NO_DEGRADATION
    for name, preset in DEGRADATION_PRESETS.items():
        if config == preset():
            return name
    return to_plain(asdict(config))


def _degradation_preset(name: Any, where: str) -> Callable[[], DegradationConfig]:
    name = DEGRADATION_ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in DEGRADATION_PRESETS:
        raise ConfigError(f"{where} must be {_DEGRADATION_CHOICES}, got {brief(name)}")
    return DEGRADATION_PRESETS[name]


@dataclass(frozen=True)
class DataConfig:
    """What one training sample is. Defaults are the official recipe (d.1-d.2 of the spec)."""

    # The second-order degradation recipe of the LQ (realbasicvsr.degrade), None = no degradation: LQ = bicubic x4
    # downsampling of the GT and no sharpening (paired data; quick fine-tuning and tests). A config file gives a
    # preset name, "none" or a mapping of fields (`degradation_from_value`); Python code may too.
    degradation: DegradationConfig | None = field(default_factory=official, metadata={"parse": degradation_from_value})
    num_frames: int = 15  # consecutive frames loaded per sample
    mirror: bool = True  # x1..xT, xT..x1: 15 loaded frames train on 30
    gt_size: int = 256  # GT crop; the LQ crop is gt_size / 4
    batch_size: int = 16  # sequences per step, summed over all processes
    # Probability that a sample's GT gets a random hue rotation and saturation gain before it is degraded
    # (train/graphics.py jitter_colours). 0 = the official recipe; the bundled model trains with 0.5.
    colour_jitter: float = 0.0
    # Probability that a sample is a plain pair instead (LQ = bicubic x1/4 of the GT, no sharpening, as
    # `degradation: none`): teaches the model to leave clean input alone (keeps flat colours). 0 = the official recipe.
    clean_fraction: float = 0.0
    workers: int = 10  # DataLoader worker processes per training process
    val_dir: str | None = None  # GT clip folders for validation (PSNR/SSIM); LQ = bicubic x4 unless val_lq_dir
    val_lq_dir: str | None = None
    val_max_frames: int = 30  # frames per validation clip (keeps validation memory bounded)
    val_max_clips: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.degradation, DegradationConfig | None):  # a name or mapping, as in a config file
            object.__setattr__(self, "degradation", degradation_from_value(self.degradation, "data.degradation"))
        _positive("data.num_frames", self.num_frames)
        _positive("data.batch_size", self.batch_size)
        _positive("data.val_max_frames", self.val_max_frames)
        _positive("data.val_max_clips", self.val_max_clips)
        if self.workers < 0:
            raise ConfigError(f"data.workers must be >= 0, got {self.workers}")
        if not 0.0 <= self.clean_fraction <= 1.0:
            raise ConfigError(f"data.clean_fraction is a probability between 0 and 1, got {self.clean_fraction}")
        if not 0.0 <= self.colour_jitter <= 1.0:
            raise ConfigError(f"data.colour_jitter is a probability between 0 and 1, got {self.colour_jitter}")
        if self.gt_size < 32 or self.gt_size % 8:
            raise ConfigError(f"data.gt_size must be a multiple of 8 and at least 32, got {self.gt_size}")


@dataclass(frozen=True)
class LossConfig:
    """Loss weights; a weight of 0 removes the term (and, for perceptual/GAN, the network behind it)."""

    pixel_weight: float = 1.0  # L1 of the output against the unsharp-masked GT
    cleaning_weight: float = 1.0  # L1 of the cleaned LQ against the area-downsampled unsharp-masked GT
    perceptual_weight: float = 0.0  # VGG19 layers 2, 7, 16, 25, 34 with weights 0.1, 0.1, 1, 1, 1
    gan_weight: float = 0.0  # vanilla GAN, UNet discriminator; its real samples are the plain GT
    # VGG19 ImageNet weights: "imagenet" (cached download, sha256-checked), a path to a torchvision-layout
    # state dict (vgg19-dcbb9e9d.pth), or "random" (tests and benchmarks only).
    vgg_weights: str = "imagenet"
    discriminator_channels: int = 64

    def __post_init__(self) -> None:
        for name in ("pixel_weight", "cleaning_weight", "perceptual_weight", "gan_weight"):
            _finite_at_least(f"loss.{name}", getattr(self, name), 0.0)
        _positive("loss.discriminator_channels", self.discriminator_channels)


@dataclass(frozen=True)
class OptimConfig:
    """Adam for both networks, constant learning rate, generator EMA (as the reference)."""

    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    ema_decay: float = 0.999
    # Not in the reference (0 = off): clip the generator's gradient norm, for users whose runs diverge.
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.ema_decay < 1:  # also refuses NaN
            raise ConfigError(f"optim.ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"optim.lr_g and optim.lr_d must be positive and finite, got optim.{name}={value}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas must be two numbers in [0, 1) (Adam's), got {brief(self.betas)}")
        _finite_at_least("optim.grad_clip", self.grad_clip, 0.0)


@dataclass(frozen=True)
class RunConfig:
    steps: int = 300_000
    seed: int = 0
    # auto = bf16 on CUDA when supported, else fp16 with a scaler; on CPU bf16 where it is native (AMX or
    # AVX512-BF16, models/cpu_features.py), else fp32. The run's first log lines say which and why.
    precision: Precision = "auto"
    # NHWC weights and activations ("auto" = on CUDA only). benchmarks/bench_train.py, interleaved on this
    # project's 2-core CPU: channels_last steps took 0.47-0.84x the time of NCHW ones, hence the default.
    channels_last: ChannelsLast = "always"
    # Recompute the propagation steps, each frame's x4 stage and the cleaning blocks in the backward pass instead
    # of keeping their activations (models/checkpointing.py): same gradients, a fraction of the memory, about one
    # more forward pass of compute. Measured in docs/training.md#memory-and-speed.
    checkpoint_activations: bool = False
    # Generator initialisation: a run folder or checkpoint of ours (its EMA weights), an official .pth or a
    # release .safetensors. Stage 2 starts from the stage-1 EMA weights this way.
    init_from: str | None = None
    spynet_weights: str | None = None  # the official SPyNet file (mmedit's spynet_20210409-c6c1bd09.pth)
    max_bad_steps: int = 5  # NaN/Inf losses in a row before the run stops
    # Seconds every process waits for the others to join (torchrun/DDP start) before it stops with a message
    # naming the ranks that did not; a stopped or lost process then ends the job instead of hanging it.
    dist_timeout: float = 1800.0

    def __post_init__(self) -> None:
        _positive("run.steps", self.steps)
        # torch and numpy seeds are derived from it (seed * 1000 + rank + step): keep them in range.
        if not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"run.seed must be in 0..{SEED_MAX}, got {brief(self.seed)}")
        if not (math.isfinite(self.dist_timeout) and self.dist_timeout > 0):
            raise ConfigError(f"run.dist_timeout must be a positive number of seconds, got {self.dist_timeout}")
        _positive("run.max_bad_steps", self.max_bad_steps)
        _choice("run.precision", self.precision, PRECISIONS)
        _choice("run.channels_last", self.channels_last, CHANNELS_LAST)


@dataclass(frozen=True)
class LogConfig:
    every: int = 100  # progress line and metrics.jsonl
    val_every: int = 5000  # validation and sample strips (needs data.val_dir)
    tensorboard: bool = False

    def __post_init__(self) -> None:
        _positive("log.every", self.every)
        _positive("log.val_every", self.val_every)


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 5000
    keep: int = 3  # newest checkpoints kept on disk

    def __post_init__(self) -> None:
        _positive("checkpoint.every", self.every)
        _positive("checkpoint.keep", self.keep)


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what `dump_yaml` writes and checkpoints store); `config_from_dict` reads it back."""
        data = to_plain(asdict(self))
        data["data"]["degradation"] = degradation_to_value(self.data.degradation)
        return data

    @property
    def adversarial(self) -> bool:
        return self.loss.gan_weight > 0


def stage1() -> TrainConfig:
    """Official stage 1 (`realbasicvsr_wogan_c64b20_2x30x8_lr1e-4_300k_reds`): L1 + cleaning, 300k steps."""
    return TrainConfig()


def stage2() -> TrainConfig:
    """Official stage 2 (the released model): + perceptual + GAN, 150k steps, from the stage-1 EMA weights."""
    return TrainConfig(
        data=DataConfig(batch_size=8),
        loss=LossConfig(perceptual_weight=1.0, gan_weight=0.05),
        optim=OptimConfig(lr_g=5e-5, lr_d=1e-4),
        run=RunConfig(steps=150_000),
    )


def tiny() -> TrainConfig:
    """A laptop-CPU run: a c16 model with 2 + 2 blocks, 5 (+5 mirrored) frames of 64x64, 500 steps."""
    return TrainConfig(
        model=ModelConfig(mid_channels=16, num_propagation_blocks=2, num_cleaning_blocks=2),
        data=DataConfig(num_frames=5, gt_size=64, batch_size=2, workers=2, val_max_frames=10, val_max_clips=2),
        optim=OptimConfig(lr_g=2e-4),
        run=RunConfig(steps=500),
        log=LogConfig(every=10, val_every=100),
        checkpoint=CheckpointConfig(every=100, keep=2),
    )


PRESETS = {"stage1": stage1, "stage2": stage2, "tiny": tiny}


def load_config(source: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A preset name (`stage1`, `stage2`, `tiny`) or a .yaml/.yml/.toml file, plus `section.key=value` overrides.

    A file may start from a preset with a top-level `preset: stage2` line and change only what differs.
    """
    text = str(source)
    if text in PRESETS:
        data: dict[str, Any] = PRESETS[text]().to_dict()
    else:
        data = _read_file(Path(text))
        preset = data.pop("preset", None)
        if preset is not None:
            if preset not in PRESETS:
                raise UserError(f"{text}: unknown preset {brief(preset)}; use one of {sorted(PRESETS)}")
            data = merge(PRESETS[preset]().to_dict(), data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise UserError(f"override {brief(item)} must look like section.key=value, e.g. data.batch_size=4")
        data = merge(data, _nested(key.split("."), _parse_value(value)))
    return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a TrainConfig from plain data; unknown keys and wrongly typed or invalid values raise ConfigError."""
    return build_config(TrainConfig, data)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as error:
        raise ImportError("training configs need PyYAML: pip install 'realbasicvsr[train]'") from error
    return yaml


def dump_yaml(config: TrainConfig) -> str:
    """The config as YAML that `load_config` reads back to an equal config."""
    yaml = _yaml()
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"config {path} not found; give a .yaml/.toml file or a preset: {', '.join(PRESETS)}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise UserError(f"config {path}: unknown file type {suffix!r}; use .yaml, .yml or .toml")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"config {path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from error
    if suffix == ".toml":
        toml = _toml_module()
        try:
            data = toml.loads(text)
        except (toml.TOMLDecodeError, ValueError) as error:  # ValueError: an integer of over 4300 digits
            raise UserError(f"config {path} could not be parsed: {_first_line(error)}") from error
    else:
        yaml = _yaml()
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError) as error:
            raise UserError(f"config {path} could not be parsed: {_first_line(error)}") from error
    # An empty file is refused rather than read as "all defaults" (the full stage-1 model): an empty or
    # truncated file is far more often a mistake than a request for the official recipe.
    if data is None or data == {}:
        raise UserError(
            f"config {path} is empty; write the settings that differ from a preset under `preset: stage1` "
            f"(or tiny, stage2), or give the preset name itself: {', '.join(PRESETS)}"
        )
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def _first_line(error: BaseException, limit: int = 300) -> str:
    """A parser's message, bounded: its lines joined, cut to `limit` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _toml_module() -> Any:
    try:
        import tomllib  # Python 3.11+

        return tomllib
    except ImportError:
        try:
            import tomli

            return tomli
        except ImportError as error:
            raise UserError("TOML configs need Python 3.11+ or `pip install tomli`; or use a .yaml config") from error


def _parse_value(text: str) -> Any:
    yaml = _yaml()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UserError(f"override value {brief(text)} could not be parsed: {_first_line(error)}") from error


def _nested(keys: list[str], value: Any) -> dict[str, Any]:
    return {keys[0]: _nested(keys[1:], value) if len(keys) > 1 else value}


def _finite_at_least(name: str, value: float, low: float) -> None:
    if not (math.isfinite(value) and value >= low):  # NaN fails every comparison: check it explicitly
        raise ConfigError(f"{name} must be a finite number >= {low:g}, got {value}")


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {brief(value)}")
