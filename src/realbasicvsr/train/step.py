"""One training iteration (spec c, "One training iteration") and the generator EMA; no logging, no saving."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from realbasicvsr.train.config import TrainConfig
from realbasicvsr.train.losses import PerceptualLoss, cleaning_target, gan_loss


@dataclass
class Trainer:
    """The networks and optimizers of a run. `generator`/`discriminator` may be DDP-wrapped; `*_module` never."""

    config: TrainConfig
    generator: nn.Module
    generator_module: nn.Module
    generator_ema: nn.Module
    optim_g: torch.optim.Optimizer
    discriminator: nn.Module | None = None
    discriminator_module: nn.Module | None = None
    optim_d: torch.optim.Optimizer | None = None
    perceptual: PerceptualLoss | None = None
    scaler: torch.amp.GradScaler | None = None
    autocast_dtype: torch.dtype | None = None  # None = fp32
    channels_last: bool = False
    precision_note: str = ""  # which precision run.precision picked and why (setup.resolve_precision), for the log


def autocast(trainer: Trainer, device: torch.device) -> contextlib.AbstractContextManager:
    if trainer.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=trainer.autocast_dtype)


def _frames(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """(n, t, 3, h, w) -> (n·t, 3, h, w): every image loss is computed on flattened frames."""
    flat = x.flatten(0, 1)
    return flat.contiguous(memory_format=torch.channels_last) if channels_last else flat


def generator_losses(
    trainer: Trainer, batch: dict[str, torch.Tensor], device: torch.device
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Forward the generator and compute its losses; returns (losses, output) with the output kept for D."""
    cfg = trainer.config.loss
    lq, gt_usm = batch["lq"], batch["gt_usm"]
    losses: dict[str, torch.Tensor] = {}
    with autocast(trainer, device):
        output, cleaned = trainer.generator(lq)
        out_frames = _frames(output, trainer.channels_last)
        if cfg.pixel_weight:
            losses["pix"] = cfg.pixel_weight * F.l1_loss(out_frames.float(), _frames(gt_usm, False))
        if cfg.cleaning_weight:
            losses["clean"] = cfg.cleaning_weight * F.l1_loss(cleaned.float(), cleaning_target(gt_usm))
        if trainer.perceptual is not None:
            losses["percep"] = cfg.perceptual_weight * trainer.perceptual(
                out_frames, _frames(gt_usm, trainer.channels_last)
            )
        if trainer.discriminator_module is not None:
            # The plain module, not the DDP wrapper: D's parameters are frozen here (gradient only reaches G)
            # and a DDP forward without a matching backward of D's parameters would confuse its reducer.
            losses["gan"] = cfg.gan_weight * gan_loss(trainer.discriminator_module(out_frames), True)
    return losses, output


def discriminator_losses(
    trainer: Trainer, output: torch.Tensor, gt: torch.Tensor, device: torch.device
) -> dict[str, torch.Tensor]:
    """The reference's D update: real (plain GT) and fake terms, each forward followed by its own backward."""
    assert trainer.discriminator is not None
    scale = trainer.scaler.scale if trainer.scaler is not None else (lambda x: x)
    with autocast(trainer, device):
        real = gan_loss(trainer.discriminator(_frames(gt, trainer.channels_last)), True)
    scale(real).backward()
    with autocast(trainer, device):
        fake = gan_loss(trainer.discriminator(_frames(output.detach(), trainer.channels_last)), False)
    scale(fake).backward()
    return {"d_real": real.detach(), "d_fake": fake.detach()}


def all_finite(values: list[torch.Tensor], distributed: bool) -> bool:
    """True when every value is finite on every rank (all ranks must agree to skip, or DDP would hang)."""
    flag = torch.stack([v.detach().float() for v in values]).isfinite().all().to(torch.float32)
    if distributed:
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def train_step(
    trainer: Trainer, batch: dict[str, torch.Tensor], device: torch.device, distributed: bool = False
) -> tuple[dict[str, float], bool]:
    """One iteration: generator update, then (stage 2) discriminator update, then EMA.

    Returns (losses as floats, ok). ok is False when a loss was NaN/Inf: then no network, optimizer or EMA
    changed (the step is skipped as a whole on every rank).
    """
    if trainer.discriminator_module is not None:
        trainer.discriminator_module.requires_grad_(False)  # the generator's GAN term must not train D
    losses, output = generator_losses(trainer, batch, device)
    total = sum(losses.values())
    if not all_finite([*losses.values()], distributed):
        return {k: float(v.detach()) for k, v in losses.items()}, False

    trainer.optim_g.zero_grad(set_to_none=True)
    _backward(trainer, total)
    _optimizer_step(trainer, trainer.optim_g, trainer.generator_module)

    if trainer.discriminator is not None:
        trainer.discriminator_module.requires_grad_(True)
        trainer.optim_d.zero_grad(set_to_none=True)
        d_losses = discriminator_losses(trainer, output, batch["gt"], device)
        losses.update(d_losses)
        if all_finite([*d_losses.values()], distributed):
            _optimizer_step(trainer, trainer.optim_d, None)
        else:
            trainer.optim_d.zero_grad(set_to_none=True)  # NaN gradients must not reach D's Adam state
    if trainer.scaler is not None:
        trainer.scaler.update()
    ema_update(trainer.generator_ema, trainer.generator_module, trainer.config.optim.ema_decay)
    return {k: float(v.detach()) for k, v in losses.items()}, True


def _backward(trainer: Trainer, loss: torch.Tensor) -> None:
    (trainer.scaler.scale(loss) if trainer.scaler is not None else loss).backward()


def _optimizer_step(trainer: Trainer, optimizer: torch.optim.Optimizer, clip_module: nn.Module | None) -> None:
    clip = trainer.config.optim.grad_clip
    if trainer.scaler is not None:
        if clip and clip_module is not None:
            trainer.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(clip_module.parameters(), clip)
        trainer.scaler.step(optimizer)
    else:
        if clip and clip_module is not None:
            nn.utils.clip_grad_norm_(clip_module.parameters(), clip)
        optimizer.step()


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay·ema + (1 - decay)·param for trainable parameters; everything else (SPyNet, buffers) copied."""
    params = dict(model.named_parameters())
    model_state = model.state_dict()
    for name, ema_value in ema.state_dict().items():
        param = params.get(name)
        if param is not None and param.requires_grad:
            ema_value.lerp_(param.detach(), 1.0 - decay)
        else:
            ema_value.copy_(model_state[name])
