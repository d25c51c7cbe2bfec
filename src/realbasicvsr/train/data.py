"""Training data: REDS-style clip folders and video files, random windows and crops, LQ synthesis in workers.

The sample stream is a pure function of (seed, step): position p of the global stream is clip `perm_e[p % n]`
of epoch `e = p // n` (one permutation of the clips per epoch), and every random choice for that sample comes
from a generator seeded with (seed, epoch, index, rank). So the data does not depend on the number of DataLoader
workers, and a resumed run sees exactly the samples the uninterrupted run would have seen.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import (
    UnreadableImage,
    find_clips,
    image_size,
    probe_video_shape,
    read_image,
    read_image_window,
    read_video_window,
)
from realbasicvsr.train.config import DataConfig

SCALE = 4
# A corrupt frame is reported on the 1st, (N+1)th, (2N+1)th ... skip of each process, not once per frame.
WARN_EVERY = 50


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
            size = _first_readable_size(source.frames)
            if size is None:
                _warn(f"training clip {source.path} skipped: none of its frames is a readable image")
                skipped.append(f"{source.path.name} (no readable frame)")
                continue
            width, height = size
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


class NoTrainingData(UserError):
    """Every clip of the training set failed to give a readable window."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker's exception is re-raised in the main process as `type(message + its traceback)`;
        # keep only our own last line, so the command still prints one line.
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


def _warn(text: str) -> None:
    # Straight to stderr, as the loop's other warnings: DataLoader workers print here too, whatever the
    # `warnings` filters of the parent process were when it forked them.
    sys.stderr.write(f"warning: {text}\n")
    sys.stderr.flush()


def _readable(frame: Path) -> bool:
    try:
        read_image(frame)
    except UnreadableImage:
        return False
    return True


def _first_readable_size(frames: tuple[Path, ...]) -> tuple[int, int] | None:
    """(width, height) from the first frame whose header reads; None when no frame's does (headers only: cheap)."""
    for frame in frames:
        try:
            return image_size(frame)
        except UnreadableImage:
            continue
    return None


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
        # What this process learnt about damaged data (each DataLoader worker has its own copy).
        self.bad_frames: set[Path] = set()
        self.dead_clips: set[int] = set()
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The sample of `key`; when its window holds a corrupt frame, the sample of the next clip instead (seeded
        by the attempt, so it stays a function of the key), with a warning counting the skips."""
        epoch, index = key
        for attempt in range(len(self.clips)):
            clip_index = (index + attempt) % len(self.clips)
            if clip_index in self.dead_clips:
                continue
            seeds = [self.seed, epoch, index, self.rank] + ([attempt] if attempt else [])
            rng = np.random.default_rng(seeds)
            gt = self._window(clip_index, rng)
            if gt is not None:
                return self._sample(gt, rng)
        raise NoTrainingData(
            f"no readable training window is left: {len(self.bad_frames)} frames are corrupt and "
            f"{len(self.dead_clips)} of {len(self.clips)} clips have no readable frame; re-save or remove the "
            "damaged files"
        )

    def _window(self, clip_index: int, rng: np.random.Generator) -> np.ndarray | None:
        """The random crop of one random window of a clip, or None (counted and reported) when it cannot be read."""
        clip = self.clips[clip_index]
        cfg = self.config
        start = int(rng.integers(0, clip.length - cfg.num_frames + 1))
        window = clip.frames[start : start + cfg.num_frames]
        if any(frame in self.bad_frames for frame in window):
            self._skip(clip_index, "a frame found corrupt before")
            return None
        try:
            return crop_and_flip(read_window(clip, start, cfg.num_frames), cfg.gt_size, rng)
        except UnreadableImage as error:
            # On a clip's first failure, find all its bad frames (once per process): later windows over them are
            # skipped unread, and a clip of only bad frames is dropped at once.
            self.bad_frames.update(frame for frame in clip.frames if not _readable(frame))
            self.bad_frames.add(error.path)
            self._skip(clip_index, str(error))
        except UserError as error:  # a video that cannot be decoded at that window (or at all)
            if not clip.is_video:
                raise
            self._skip(clip_index, str(error))
        return None

    def _skip(self, clip_index: int, reason: str) -> None:
        clip = self.clips[clip_index]
        if clip.frames and all(frame in self.bad_frames for frame in clip.frames):
            self.dead_clips.add(clip_index)
        self.skipped += 1
        if self.skipped % WARN_EVERY == 1:
            _warn(
                f"skipped {self.skipped} training sample(s) in this process because of corrupt data "
                f"({len(self.bad_frames)} corrupt frames, {len(self.dead_clips)} clips dropped so far; "
                f"reported once per {WARN_EVERY}); latest: {clip.path}: {reason}"
            )

    def _sample(self, gt: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cfg = self.config
        if cfg.colour_jitter and rng.random() < cfg.colour_jitter:
            from realbasicvsr.train.graphics import jitter_colours

            gt = jitter_colours(gt, rng)
        if cfg.degradation is None or (cfg.clean_fraction and rng.random() < cfg.clean_fraction):
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
