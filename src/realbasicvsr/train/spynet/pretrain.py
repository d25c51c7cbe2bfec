"""Pretraining SPyNet without downloads: synthetic motion over natural photographs, with exact flow.

A pair is made from one photograph: `supp` is a crop, `ref` samples the same photograph at `x + flow(x)` where
`flow` is a random camera-like affine motion (translation, zoom, rotation) plus a smooth random deformation. With
the sampling done exactly as `flow_warp` does (bilinear, `align_corners=True`) on a canvas larger than the crop,
`flow_warp(supp, flow) == ref` wherever `x + flow(x)` stays inside `supp`: the ground truth is exact, not estimated.

Training supervises every pyramid level (end-point error against the average-pooled ground truth), with Adam and a
cosine learning rate, starting from a network whose levels already compute a normal-flow estimate
(`realbasicvsr.train.spynet.init_weights`): from a zero-flow or random start, SPyNet stays on the zero-flow plateau
far longer than a CPU run lasts.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from realbasicvsr.errors import ConfigError
from realbasicvsr.models.blocks import flow_warp
from realbasicvsr.models.spynet import SPyNet, level_inputs
from realbasicvsr.train.spynet import init_weights as flowinit
from realbasicvsr.weights.release import load_spynet_weights


@dataclass(frozen=True)
class MotionConfig:
    """Ranges of the synthetic motion, in pixels of the crop (LQ frames of a video SR model)."""

    max_translation: float = 4.0
    max_rotation_deg: float = 3.0
    max_zoom: float = 0.04  # relative scale change
    smooth_amplitude: float = 1.5  # pixels, the random non-rigid part
    smooth_grid: int = 4  # control points per side of the random part
    max_prescale: float = 3.0  # photographs are area-downscaled by up to this to vary texture density


@dataclass(frozen=True)
class SpynetPretrainConfig:
    steps: int = 2000
    batch_size: int = 16
    crop: int = 64  # a multiple of 32 (SPyNet's pyramid)
    lr: float = 3e-5  # small: larger rates (2e-4, 1e-3) undid the wired start in our runs
    seed: int = 0
    eval_pairs: int = 64
    # "gradient": start from the wired normal-flow estimator of realbasicvsr.train.spynet.init_weights (leaves the
    # zero-flow plateau at once); "zero": the zero-flow network (last convolutions zeroed), which stayed on the
    # plateau in our runs.
    init: Literal["gradient", "zero"] = "gradient"
    calibration_pairs: int = 32
    motion: MotionConfig = MotionConfig()

    def __post_init__(self) -> None:
        if self.init not in ("gradient", "zero"):
            raise ConfigError(f"init must be 'gradient' or 'zero', got {self.init!r}", option="init")
        if self.crop % 32 or self.crop < 32:
            raise ConfigError(f"crop must be a positive multiple of 32, got {self.crop}", option="crop")
        if self.steps < 1:
            raise ConfigError(f"steps must be positive, got {self.steps}", option="steps")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {self.batch_size}", option="batch_size")


def random_flow(rng: np.random.Generator, size: int, motion: MotionConfig) -> np.ndarray:
    """(2, size, size) float32 flow in pixels: affine about a random centre plus a smooth random field."""
    import cv2

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    cx, cy = rng.uniform(0, size - 1, size=2)
    angle = np.deg2rad(rng.uniform(-motion.max_rotation_deg, motion.max_rotation_deg))
    scale = 1.0 + rng.uniform(-motion.max_zoom, motion.max_zoom)
    tx, ty = rng.uniform(-motion.max_translation, motion.max_translation, size=2)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    # Where pixel x of `ref` comes from in `supp`, minus x.
    fx = cos * (xs - cx) - sin * (ys - cy) + cx + tx - xs
    fy = sin * (xs - cx) + cos * (ys - cy) + cy + ty - ys
    amplitude = rng.uniform(0, motion.smooth_amplitude)
    coarse = rng.normal(0, amplitude, size=(motion.smooth_grid, motion.smooth_grid, 2)).astype(np.float32)
    smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.stack([fx + smooth[..., 0], fy + smooth[..., 1]]).astype(np.float32)


def make_pair(
    image: np.ndarray, rng: np.random.Generator, crop: int, motion: MotionConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ref, supp, flow): (3, crop, crop) floats in [0, 1] and the exact flow (2, crop, crop) warping supp to ref."""
    import cv2

    factor = rng.uniform(1.0, motion.max_prescale)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(round(w / factor), 1), max(round(h / factor), 1)), interpolation=cv2.INTER_AREA)
    flow = random_flow(rng, crop, motion)
    margin = math.ceil(float(np.abs(flow).max())) + 2
    side = crop + 2 * margin
    if small.shape[0] < side or small.shape[1] < side:
        small = cv2.resize(image, (max(side, w), max(side, h)), interpolation=cv2.INTER_CUBIC)
    y0 = int(rng.integers(0, small.shape[0] - side + 1))
    x0 = int(rng.integers(0, small.shape[1] - side + 1))
    canvas = torch.from_numpy(small[y0 : y0 + side, x0 : x0 + side]).permute(2, 0, 1).float().div(255.0)
    if rng.random() < 0.5:
        canvas = canvas.flip(-1)
    flow_t = torch.from_numpy(flow)
    supp = canvas[:, margin : margin + crop, margin : margin + crop].contiguous()
    # Sample the canvas at (x + margin + flow): the same bilinear sampling flow_warp does on supp, never clipped.
    ys, xs = torch.meshgrid(torch.arange(crop).float(), torch.arange(crop).float(), indexing="ij")
    gx = 2.0 * (xs + margin + flow_t[0]) / (side - 1) - 1.0
    gy = 2.0 * (ys + margin + flow_t[1]) / (side - 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0)
    ref = F.grid_sample(canvas.unsqueeze(0), grid, mode="bilinear", padding_mode="border", align_corners=True)[0]
    return ref, supp, flow_t


def augment(ref: torch.Tensor, supp: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Photometric changes that real frame pairs have: a shared colour gain, a small brightness change, noise."""
    gain = torch.from_numpy(rng.uniform(0.7, 1.2, size=(3, 1, 1)).astype(np.float32))
    ref, supp = ref * gain, supp * gain * float(rng.uniform(0.96, 1.04))
    sigma = float(rng.uniform(0, 0.02))
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    ref = ref + sigma * torch.randn(ref.shape, generator=gen)
    supp = supp + sigma * torch.randn(supp.shape, generator=gen)
    return ref.clamp(0, 1), supp.clamp(0, 1)


def make_batch(
    images: list[np.ndarray], rng: np.random.Generator, count: int, crop: int, motion: MotionConfig, photometric: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    refs, supps, flows = [], [], []
    for _ in range(count):
        ref, supp, flow = make_pair(images[int(rng.integers(len(images)))], rng, crop, motion)
        if photometric:
            ref, supp = augment(ref, supp, rng)
        refs.append(ref)
        supps.append(supp)
        flows.append(flow)
    return torch.stack(refs), torch.stack(supps), torch.stack(flows)


def pyramid_flows(spynet: SPyNet, ref: torch.Tensor, supp: torch.Tensor, *, detach: bool = False) -> list[torch.Tensor]:
    """The flow after each of the 6 levels, coarse to fine; the last equals `spynet.compute_flow(ref, supp)`.

    Mirrors `SPyNet.compute_flow` (a test checks they agree) because training supervises every level. With
    `detach`, no gradient flows from a level into the coarser ones (each level learns its residual given the
    current coarser estimate, like the level-by-level training of the SPyNet paper, without its schedule).
    """
    refs, supps = spynet.pyramids(ref, supp)
    n, _, h, w = ref.shape
    flow = ref.new_zeros(n, 2, h // 32, w // 32)
    flows = []
    for level, module in enumerate(spynet.basic_module):
        if detach:
            flow = flow.detach()
        inputs, flow_up = level_inputs(refs[level], supps[level], flow, level)
        flow = flow_up + module(inputs)
        flows.append(flow)
    return flows


def epe(flow: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean end-point error (Euclidean distance of the flow vectors), in pixels."""
    return torch.linalg.vector_norm(flow - gt, dim=1).mean()


def multiscale_epe(flows: list[torch.Tensor], gt: torch.Tensor) -> torch.Tensor:
    """Sum over levels of the EPE against the ground truth average-pooled and rescaled to that level."""
    loss = gt.new_zeros(())
    for level, flow in enumerate(flows):
        factor = 2 ** (len(flows) - 1 - level)
        target = F.avg_pool2d(gt, factor) / factor if factor > 1 else gt
        loss = loss + epe(flow, target)
    return loss


def zero_init(spynet: SPyNet) -> SPyNet:
    """Zero the last convolution of every level, so the untrained network predicts zero flow (a safe start)."""
    for module in spynet.basic_module:
        last = module.basic_module[-1].conv
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
    return spynet


@torch.no_grad()
def evaluate_synthetic(spynet: SPyNet, pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """EPE of `spynet(ref, supp)` (the real inference path) and of the zero-flow baseline on held-out pairs."""
    ref, supp, gt = pairs
    spynet.eval()
    flow = torch.cat([spynet(ref[i : i + 16], supp[i : i + 16]) for i in range(0, len(ref), 16)])
    return {"epe": float(epe(flow, gt)), "zero_flow_epe": float(epe(torch.zeros_like(gt), gt))}


@torch.no_grad()
def photometric_error(spynet: SPyNet, frames: np.ndarray, border: int = 8) -> dict[str, float]:
    """Mean |flow_warp(frame t+1, flow) - frame t| (0-255 scale) over consecutive frames of a real clip, vs no warp.

    A `border` is left out, where the next frame has no content to warp from.
    """
    spynet.eval()
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0)
    warped_err, still_err = [], []
    for t in range(len(video) - 1):
        ref, supp = video[t : t + 1], video[t + 1 : t + 2]
        flow = spynet(ref, supp)
        warped = flow_warp(supp, flow.permute(0, 2, 3, 1), padding_mode="border")
        inner = (slice(None), slice(None), slice(border, -border), slice(border, -border))
        warped_err.append(float((warped - ref)[inner].abs().mean()) * 255)
        still_err.append(float((supp - ref)[inner].abs().mean()) * 255)
    return {"warped_mae": float(np.mean(warped_err)), "unwarped_mae": float(np.mean(still_err))}


def train_step(
    spynet: SPyNet, optimizer: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> float:
    """One optimisation step on (ref, supp, gt flow); returns the multi-scale EPE loss before the update."""
    spynet.train()
    ref, supp, gt = batch
    loss = multiscale_epe(pyramid_flows(spynet, ref, supp, detach=True), gt)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def pretrain(
    config: SpynetPretrainConfig,
    train_images: list[np.ndarray],
    eval_pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    log: Callable[[str], None] = print,
    log_every: int = 50,
    max_seconds: float | None = None,
) -> tuple[SPyNet, list[dict[str, float]]]:
    """Train a SPyNet from scratch on synthetic pairs; returns it (eval mode) and the logged records.

    `max_seconds` stops early (after logging that step) so a run fits a time budget on a shared machine.
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    spynet = zero_init(SPyNet())
    if config.init == "gradient":
        calibration = make_batch(train_images, rng, config.calibration_pairs, config.crop, config.motion, True)
        gains = flowinit.calibrate(spynet, *calibration)
        log(json.dumps({"init": "gradient", "gains": [round(g, 4) for g in gains]}))
    optimizer = torch.optim.Adam(spynet.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps, eta_min=config.lr * 0.02)
    records: list[dict[str, float]] = []
    if eval_pairs is not None:  # the starting point, to compare with
        records.append({"step": 0, **{f"heldout_{k}": v for k, v in evaluate_synthetic(spynet, eval_pairs).items()}})
        log(json.dumps(records[-1]))
    start, running = time.monotonic(), []
    for step in range(1, config.steps + 1):
        batch = make_batch(train_images, rng, config.batch_size, config.crop, config.motion, True)
        running.append(train_step(spynet, optimizer, batch))
        scheduler.step()
        out_of_time = max_seconds is not None and time.monotonic() - start > max_seconds
        if step % log_every == 0 or step == config.steps or out_of_time:
            record = {"step": step, "loss": float(np.mean(running)), "seconds": round(time.monotonic() - start, 1)}
            if eval_pairs is not None:
                record.update({f"heldout_{k}": v for k, v in evaluate_synthetic(spynet, eval_pairs).items()})
            records.append(record)
            log(json.dumps(record))
            running = []
        if out_of_time:
            log(f"stopped at step {step} of {config.steps}: the time budget of {max_seconds:.0f} s is used up")
            break
    return spynet.eval(), records


def load_spynet_file(path: str | Path) -> SPyNet:
    """A SPyNet (eval mode) from a SPyNet file (`save_spynet`'s, the official one, or a generator's; see
    `realbasicvsr.weights.release.load_spynet_weights`)."""
    return load_spynet_weights(SPyNet(), path).eval()


def config_dict(config: SpynetPretrainConfig) -> dict[str, object]:
    return asdict(config)
