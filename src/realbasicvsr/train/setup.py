"""Building a run: networks, initial weights, optimizers, precision, DDP wrapping and checkpoint (de)serialisation."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from realbasicvsr.errors import UserError
from realbasicvsr.models import RealBasicVSR, UNetDiscriminator
from realbasicvsr.models.cpu_features import cpu_features, cpu_native_bf16
from realbasicvsr.train.config import TrainConfig
from realbasicvsr.train.dist import DistInfo
from realbasicvsr.train.losses import PerceptualLoss, build_vgg19
from realbasicvsr.train.state import load_checkpoint, resolve_checkpoint
from realbasicvsr.train.step import Trainer

# Training runs one cleaning pass in practice (the reference trains with threshold 255, see spec c).
TRAIN_CLEANING_THRESHOLD = 255.0


def build_generator(config: TrainConfig) -> RealBasicVSR:
    """A fresh generator (default init), with `run.init_from` weights and/or a SPyNet file loaded.

    The SPyNet file is loaded last, so it replaces the SPyNet of `run.init_from` (to fine-tune with a new flow net).
    """
    model = RealBasicVSR(config.model, cleaning_threshold=TRAIN_CLEANING_THRESHOLD)
    if config.run.init_from:
        model.load_state_dict(initial_generator_state(config.run.init_from, model))
    if config.run.spynet_weights:
        load_spynet(model, config.run.spynet_weights)
    model.basicvsr.spynet.requires_grad_(False)  # frozen in both stages, before any DDP wrapping
    return model


def load_spynet(model: RealBasicVSR, path: str) -> None:
    """Load a SPyNet file into the generator's flow network (`realbasicvsr.weights.release.load_spynet_weights`:
    the official file, ours from `realbasicvsr pretrain-spynet`, or the SPyNet inside a generator file)."""
    from realbasicvsr.weights.release import load_spynet_weights

    load_spynet_weights(model.basicvsr.spynet, path)


def initial_generator_state(source: str, model: RealBasicVSR) -> dict[str, torch.Tensor]:
    """EMA weights from one of our runs/checkpoints, or from an official .pth / release .safetensors."""
    path = Path(source).expanduser()
    if path.is_dir() or path.suffix == ".pt":
        state = load_checkpoint(resolve_checkpoint(path))["generator_ema"]
    else:
        from realbasicvsr.weights import load_generator

        state = load_generator(source, ema=True).state_dict()
    expected = model.state_dict()
    bad = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    if bad or len(state) != len(expected):
        raise UserError(
            f"run.init_from {source} does not match model {model.config} (first mismatching key: "
            f"{bad[0] if bad else 'extra keys'}); set the model section to the architecture of those weights"
        )
    return state


@dataclass(frozen=True)
class PrecisionChoice:
    """What `run.precision` resolves to on a device: the autocast dtype (None = fp32), whether fp16 needs a
    GradScaler, and one line saying which precision was picked and why (the loop logs it)."""

    dtype: torch.dtype | None
    needs_scaler: bool
    reason: str

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, str(self.dtype))


def resolve_precision(config: TrainConfig, device: torch.device) -> PrecisionChoice:
    """`run.precision` on `device`. "auto": bf16 on CUDA when supported, else fp16 with a scaler; on CPU bf16 where
    the CPU computes it natively (AMX or AVX512-BF16, `cpu_native_bf16`), else fp32 (oneDNN emulates bf16 on other
    CPUs: correct but several times slower than fp32)."""
    precision = config.run.precision
    if precision != "auto":
        return _choice(precision, f"run.precision={precision}")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return _choice("bf16", "run.precision=auto: this GPU supports bf16")
        return _choice("fp16", "run.precision=auto: this GPU has no bf16, fp16 with a gradient scaler")
    if device.type == "cpu":
        line = cpu_features().line()
        if cpu_native_bf16():
            return _choice("bf16", f"run.precision=auto: native bf16 on this CPU, {line}")
        return _choice("fp32", f"run.precision=auto: no native bf16 on this CPU ({line}), bf16 would be emulated")
    return _choice("fp32", f"run.precision=auto: fp32 on {device.type}")


def _choice(precision: str, why: str) -> PrecisionChoice:
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    name = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[precision]
    return PrecisionChoice(dtype, precision == "fp16", f"precision: {name} ({why})")


def build_trainer(config: TrainConfig, info: DistInfo) -> Trainer:
    """Networks on the device, optimizers, precision, and DDP wrappers when there are several processes.

    Every rank builds the networks from the same seed, and DDP broadcasts rank 0's weights at wrapping anyway.
    """
    torch.manual_seed(config.run.seed)
    device = info.device
    channels_last = config.run.channels_last == "always" or (
        config.run.channels_last == "auto" and device.type == "cuda"
    )
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    # use_channels_last also makes the per-frame tensors NHWC, not only the weights: NCHW frames against NHWC weights
    # cost layout conversions around every propagation step (official stage-1 step on the AVX2 VM: 75 s against
    # 116 s with NHWC weights alone, one round; NCHW throughout took 58 s: docs/training.md#memory-and-speed).
    generator = build_generator(config).to(device).use_channels_last(channels_last)
    generator.use_activation_checkpointing(config.run.checkpoint_activations)
    generator_ema = copy.deepcopy(generator).requires_grad_(False).eval()
    optim_g = torch.optim.Adam(
        [p for p in generator.parameters() if p.requires_grad], lr=config.optim.lr_g, betas=config.optim.betas
    )
    discriminator = optim_d = perceptual = None
    if config.adversarial:
        discriminator = UNetDiscriminator(mid_channels=config.loss.discriminator_channels)
        discriminator = discriminator.to(device, memory_format=memory_format)
        optim_d = torch.optim.Adam(discriminator.parameters(), lr=config.optim.lr_d, betas=config.optim.betas)
    if config.loss.perceptual_weight > 0:
        perceptual = PerceptualLoss(build_vgg19(config.loss.vgg_weights)).to(device, memory_format=memory_format)
    precision = resolve_precision(config, device)
    trainer = Trainer(
        config=config,
        generator=generator,
        generator_module=generator,
        generator_ema=generator_ema,
        optim_g=optim_g,
        discriminator=discriminator,
        discriminator_module=discriminator,
        optim_d=optim_d,
        perceptual=perceptual,
        scaler=torch.amp.GradScaler(device.type) if precision.needs_scaler else None,
        autocast_dtype=precision.dtype,
        precision_note=precision.reason,
        channels_last=channels_last,
    )
    return trainer


def wrap_ddp(trainer: Trainer, info: DistInfo) -> None:
    """Generator and discriminator are wrapped separately (each has its own optimizer and backward)."""
    if not info.distributed:
        return
    ids = [info.local_rank] if info.device.type == "cuda" else None
    loss = trainer.config.loss
    # Only the cleaning loss: BasicVSR gets no gradient, which DDP must be told about (slower, so only then).
    cleaning_only = loss.pixel_weight == 0 and loss.perceptual_weight == 0 and loss.gan_weight == 0
    trainer.generator = DistributedDataParallel(
        trainer.generator_module, device_ids=ids, find_unused_parameters=cleaning_only
    )
    if trainer.discriminator_module is not None:
        trainer.discriminator = DistributedDataParallel(trainer.discriminator_module, device_ids=ids)


def training_state(trainer: Trainer) -> dict[str, Any]:
    """Everything `restore` needs, as tensors and plain values (loadable with weights_only=True)."""
    state: dict[str, Any] = {
        "generator": trainer.generator_module.state_dict(),
        "generator_ema": trainer.generator_ema.state_dict(),
        "optim_g": trainer.optim_g.state_dict(),
        "config": trainer.config.to_dict(),
    }
    if trainer.discriminator_module is not None:
        state["discriminator"] = trainer.discriminator_module.state_dict()
        state["optim_d"] = trainer.optim_d.state_dict()
    if trainer.scaler is not None:
        state["scaler"] = trainer.scaler.state_dict()
    return state


def restore(trainer: Trainer, state: dict[str, Any]) -> None:
    """Load a checkpoint made by `training_state` (before DDP wrapping)."""
    _load(trainer.generator_module, state, "generator")
    _load(trainer.generator_ema, state, "generator_ema")
    trainer.optim_g.load_state_dict(state["optim_g"])
    if trainer.discriminator_module is not None:
        if "discriminator" not in state:
            raise UserError("the checkpoint has no discriminator (a stage-1 run); start stage 2 with run.init_from")
        _load(trainer.discriminator_module, state, "discriminator")
        trainer.optim_d.load_state_dict(state["optim_d"])
    if trainer.scaler is not None and "scaler" in state:
        trainer.scaler.load_state_dict(state["scaler"])


def _load(module: nn.Module, state: dict[str, Any], key: str) -> None:
    try:
        module.load_state_dict(state[key])
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise UserError(f"the checkpoint's {key} does not fit this config's model: {first_line}") from error
