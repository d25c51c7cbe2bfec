"""Training data: REDS-style clip folders and video files, random windows and crops, LQ synthesis in workers.

The sample stream is a pure function of (seed, step): position p of the global stream is clip `perm_e[p % n]`
of epoch `e = p // n` (one permutation of the clips per epoch), and every random choice for that sample comes
from a generator seeded with (seed, epoch, index, rank). So the data does not depend on the number of DataLoader
workers, and a resumed run sees exactly the samples the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import find_clips, image_size, probe_video_shape, read_image_window, read_video_window
from realbasicvsr.train.config import DataConfig

SCALE = 4


@dataclass(frozen=True)
class Clip:
    """One training source: a folder of frames (`frames` set) or a video file (`length` frames)."""

    path: Path
    length: int
    height: int
    width: int
    frames: tuple[Path, ...] = ()

    @property
    def is_video(self) -> bool:
        return not self.frames


def scan_clips(root: str | Path, min_frames: int, min_size: int) -> list[Clip]:
    """Every sub-folder of frames and every video file directly under `root` (`media.clips.find_clips`, in
    natural order; a folder holding only frames is one clip).

    Clips that are too short or too small are skipped; if none is left the error says why.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"training data folder {root} does not exist")
    clips: list[Clip] = []
    skipped: list[str] = []
    for source in find_clips(root):
        if source.frames:
            width, height = image_size(source.frames[0])
            clip = Clip(source.path, len(source.frames), height, width, source.frames)
        else:
            shape = probe_video_shape(source.path)
            clip = Clip(source.path, shape.frames, shape.height, shape.width)
        if clip.length < min_frames or min(clip.height, clip.width) < min_size:
            skipped.append(f"{source.path.name} ({clip.length} frames of {clip.width}x{clip.height})")
            continue
        clips.append(clip)
    if not clips:
        detail = f"; skipped: {', '.join(skipped[:5])}" if skipped else ""
        raise UserError(
            f"no usable clips in {root}: need sub-folders of frames or video files with at least "
            f"{min_frames} frames of at least {min_size}x{min_size}{detail}"
        )
    return clips


def read_window(clip: Clip, start: int, count: int) -> np.ndarray:
    """Frames start..start+count-1 as uint8 (count, H, W, 3) RGB."""
    if clip.is_video:
        return read_video_window(clip.path, start, count)
    return read_image_window(clip.frames, start, count)


def crop_and_flip(frames: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One random size x size crop, then h-flip, v-flip and transpose (p 0.5 each), decided once per clip."""
    _, h, w, _ = frames.shape
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    out = frames[:, top : top + size, left : left + size]
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = out.transpose(0, 2, 1, 3)
    return np.ascontiguousarray(out)


def bicubic_pair(gt: np.ndarray, mirror: bool) -> dict[str, np.ndarray]:
    """The `degradation: none` (None) sample: LQ = bicubic x1/4 (antialiased, rounded to 8 bits), no sharpening."""
    _, h, w, _ = gt.shape
    lq = np.stack([np.asarray(Image.fromarray(f).resize((w // SCALE, h // SCALE), Image.BICUBIC)) for f in gt])
    if mirror:
        gt, lq = np.concatenate([gt, gt[::-1]]), np.concatenate([lq, lq[::-1]])
    gt_f = gt.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return {"gt": gt_f, "gt_usm": gt_f, "lq": lq.transpose(0, 3, 1, 2).astype(np.float32) / 255.0}


class TrainDataset(Dataset):
    """Indexed by `(epoch, index)` pairs from `StepSampler`; returns float tensors lq, gt, gt_usm (T, 3, h, w)."""

    def __init__(self, clips: list[Clip], config: DataConfig, seed: int, rank: int = 0) -> None:
        self.clips = clips
        self.config = config
        self.seed = seed
        self.rank = rank

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index, self.rank])
        clip = self.clips[index]
        cfg = self.config
        start = int(rng.integers(0, clip.length - cfg.num_frames + 1))
        gt = crop_and_flip(read_window(clip, start, cfg.num_frames), cfg.gt_size, rng)
        if cfg.degradation is None:
            sample = bicubic_pair(gt, cfg.mirror)
        else:
            from realbasicvsr.degrade.training_sample import make_training_sample

            sample = make_training_sample(gt, rng, cfg.degradation, mirror=cfg.mirror, scale=SCALE)
        return {key: torch.from_numpy(np.ascontiguousarray(sample[key])) for key in ("lq", "gt", "gt_usm")}


class StepSampler(Sampler):
    """This rank's `(epoch, index)` keys for steps `start_step` .. `total_steps - 1`.

    Step s takes global stream positions [s·B, (s+1)·B); rank r gets its contiguous share of B / world.
    """

    def __init__(
        self, num_clips: int, batch_size: int, seed: int, start_step: int, total_steps: int, rank: int, world: int
    ) -> None:
        if batch_size % world:
            raise UserError(
                f"data.batch_size {batch_size} is the total over all processes and must be divisible by the "
                f"number of processes ({world})"
            )
        self.num_clips = num_clips
        self.global_batch = batch_size
        self.local_batch = batch_size // world
        self.seed = seed
        self.start_step = start_step
        self.total_steps = total_steps
        self.rank = rank
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.local_batch

    def key(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.num_clips)
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.num_clips)}
        return epoch, int(self._perms[epoch][offset])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for step in range(self.start_step, self.total_steps):
            first = step * self.global_batch + self.rank * self.local_batch
            for position in range(first, first + self.local_batch):
                yield self.key(position)
