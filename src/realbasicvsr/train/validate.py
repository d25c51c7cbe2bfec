"""Periodic validation of the EMA generator: PSNR/SSIM on a paired clip set and a saved sample strip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import clip_folders, read_image
from realbasicvsr.media.files import atomic_output
from realbasicvsr.train.config import DataConfig
from realbasicvsr.train.data import SCALE


@dataclass(frozen=True)
class ValClip:
    name: str
    lq: torch.Tensor  # (1, t, 3, h, w) in [0, 1]
    gt: torch.Tensor  # (1, t, 3, 4h, 4w) in [0, 1]


def _read(paths: list[Path]) -> np.ndarray:
    return np.stack([read_image(path) for path in paths])


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255.0).unsqueeze(0)


def load_val_clips(config: DataConfig) -> list[ValClip]:
    """GT clip folders of `val_dir`; LQ from `val_lq_dir` (same folder and file names) or bicubic x1/4 of the GT."""
    if config.val_dir is None:
        return []
    root = Path(config.val_dir)
    if not root.is_dir():
        raise UserError(f"data.val_dir {root} does not exist")
    clips = []
    # Clip folders only (no videos, not the root itself): the LQ frames mirror them by folder and file name.
    for source in clip_folders(root)[: config.val_max_clips]:
        folder, paths = source.path, list(source.frames[: config.val_max_frames])
        gt = _read(paths)
        h, w = (gt.shape[1] // SCALE) * SCALE, (gt.shape[2] // SCALE) * SCALE
        gt = gt[:, :h, :w]
        if config.val_lq_dir is not None:
            lq_paths = [Path(config.val_lq_dir) / folder.name / p.name for p in paths]
            missing = [p for p in lq_paths if not p.is_file()]
            if missing:
                raise UserError(f"validation LQ frame {missing[0]} is missing (data.val_lq_dir mirrors data.val_dir)")
            lq = _read(lq_paths)
            if lq.shape[1:3] != (h // SCALE, w // SCALE):
                raise UserError(f"validation LQ of {folder.name} is {lq.shape[2]}x{lq.shape[1]}, not GT/4")
        else:
            size = (w // SCALE, h // SCALE)
            lq = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in gt])
        clips.append(ValClip(folder.name, _to_tensor(lq), _to_tensor(gt)))
    if not clips:
        raise UserError(f"data.val_dir {root} has no clip folders with frames")
    return clips


def frame_scores(output: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean PSNR and SSIM over the frames of (1, t, 3, H, W) clips, on RGB 8-bit values, no border crop (as 0.x)."""
    from realbasicvsr.metrics.full_reference import psnr, ssim

    out = quantize(output)[0].byte().permute(0, 2, 3, 1).numpy()
    ref = quantize(target)[0].byte().permute(0, 2, 3, 1).numpy()
    psnrs = [psnr(a, b, convert_to="rgb") for a, b in zip(out, ref)]
    ssims = [ssim(a, b, convert_to="rgb") for a, b in zip(out, ref)]
    return float(np.mean(psnrs)), float(np.mean(ssims))


def quantize(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clamp(0, 1).mul(255).round()


@torch.no_grad()
def validate(model: nn.Module, clips: list[ValClip], device: torch.device) -> tuple[dict[str, float], np.ndarray]:
    """Mean PSNR/SSIM over clips, and the strip LQ (nearest x4) | output | GT of the first clip's middle frame."""
    was_training = model.training
    model.eval()
    psnrs, ssims = [], []
    strip = np.zeros((0, 0, 3), np.uint8)
    try:
        for i, clip in enumerate(clips):
            output = model(clip.lq.to(device))[0].float().cpu()
            clip_psnr, clip_ssim = frame_scores(output, clip.gt)
            psnrs.append(clip_psnr)
            ssims.append(clip_ssim)
            if i == 0:
                mid = clip.lq.shape[1] // 2
                lq_big = F.interpolate(clip.lq[:, mid], scale_factor=SCALE, mode="nearest")
                row = torch.cat([lq_big, output[:, mid], clip.gt[:, mid]], dim=-1)[0]
                strip = quantize(row).byte().permute(1, 2, 0).numpy()
    finally:
        model.train(was_training)
    return {"val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims))}, strip


def save_strip(strip: np.ndarray, path: Path) -> None:
    """Write a PNG via a temporary file and a rename (no half-written images on interruption)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        Image.fromarray(strip).save(tmp, format="PNG")
