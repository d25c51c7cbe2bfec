"""The frames `evaluate` scores: clips found under a root, the wanted frames of each, paired with their ground
truth, streamed one at a time (`realbasicvsr.metrics.evaluate`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import ClipSource, find_clips, iter_video_frames, read_image

ShortClips = Literal["skip", "spread"]
Notify = Callable[[str], None]


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def discover_clips(root: Path) -> list[ClipSource]:
    """The clips of a prediction or ground-truth root (`media.clips.find_clips`); none is an error."""
    clips = find_clips(root)
    if not clips:
        raise UserError(f"{root} holds no clip folders, videos or images")
    names = [clip.name for clip in clips]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UserError(f"{root} holds several clips named {', '.join(twice)} (a folder and a video?); rename one")
    return clips


def iter_frames(clip: ClipSource, indices: list[int] | None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, HxWx3 uint8 RGB frame) for the wanted indices (all when None) that exist, one at a time."""
    if clip.video is None:
        wanted = range(len(clip.frames)) if indices is None else [i for i in indices if i < len(clip.frames)]
        for i in wanted:
            yield i, read_image(clip.frames[i])
        return
    stop = None if indices is None else max(indices) + 1
    for index, frame in enumerate(iter_video_frames(clip.video, stop)):
        if indices is None or index in indices:
            yield index, frame


def clip_length(clip: ClipSource) -> int:
    """Number of frames (image count, or decoded-frame count of the video's first stream)."""
    if clip.video is None:
        return len(clip.frames)
    return sum(1 for _ in iter_video_frames(clip.video))


def wanted_indices(length: int, indices: list[int] | None, short_clips: ShortClips) -> list[int] | None:
    """Frames to score in a clip of `length` frames. With "spread", a clip that lacks some of `indices` gets
    its first, middle and last frame, as NegVSR scored VideoLQ's short clips (0, 20, 40 of 41 frames)."""
    if indices is not None and short_clips == "spread" and length <= max(indices):
        return sorted({0, length // 2, length - 1})
    return indices


def frame_pairs(
    clips: list[ClipSource],
    gt_clips: dict[str, ClipSource],
    indices: list[int] | None,
    short_clips: ShortClips = "skip",
    notify: Notify = _to_stderr,
) -> Iterator[tuple[str, int, np.ndarray, np.ndarray | None]]:
    """(clip name, index, prediction, ground truth or None), streamed so that memory stays at a few frames.

    `short_clips`: for a clip without some of the requested indices, "skip" scores the ones it has and
    "spread" scores its first, middle and last frame instead. `notify` receives the notes about such clips.
    """
    for clip in clips:
        wanted = indices
        if indices is not None and short_clips == "spread":  # counting a video's frames means decoding it
            wanted = wanted_indices(clip_length(clip), indices, short_clips)
            if wanted != indices:
                notify(f"note: clip {clip.name} is short; scoring frames {wanted}")
        gt_iter = iter_frames(gt_clips[clip.name], wanted) if gt_clips else None
        seen = []
        for index, pred in iter_frames(clip, wanted):
            gt = None
            if gt_iter is not None:
                gt_index, gt = next(gt_iter, (None, None))
                if gt_index != index:
                    raise UserError(f"ground truth of clip {clip.name} has no frame {index}")
            seen.append(index)
            yield clip.name, index, pred, gt
        if wanted is not None and len(seen) < len(wanted):
            skipped = [i for i in wanted if i not in seen]
            notify(f"warning: clip {clip.name} has no frame(s) {skipped}; they are skipped")
