"""Cut large training frames into overlapping sub-images, as the official REDS preprocessing.

The official `crop_sub_images.py` cuts 480x480 crops with step 240 (and threshold 0): offsets 0, step, 2·step, ...
plus one last crop flush with the far edge when more than `threshold` pixels would otherwise be left out. A
720x1280 REDS frame gives rows {0, 240} x columns {0, 240, 480, 720, 800} = 10 sub-clips `<clip>_s001` ..
`<clip>_s010` (row-major), each frame keeping its file name; PNG with compression level 3.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import clip_folders, image_size, list_frames, read_image
from realbasicvsr.media.files import commit, remove_partial, temporary_path


def crop_offsets(length: int, crop: int, step: int, threshold: int = 0) -> list[int]:
    """Start offsets along one axis (the official rule)."""
    if length < crop:
        return []
    offsets = list(range(0, length - crop + 1, step))
    if length - (offsets[-1] + crop) > threshold:
        offsets.append(length - crop)
    return offsets


def cut_clip(clip_dir: Path, out_root: Path, crop: int = 480, step: int = 240, threshold: int = 0) -> tuple[int, int]:
    """Cut one clip folder; returns (sub-clips written, sub-clips already present and skipped).

    Each sub-clip is written into a temporary folder and renamed when complete, so an interrupted run leaves no
    half-filled sub-clip and a rerun skips the finished ones.
    """
    frames = list_frames(clip_dir)
    if not frames:
        return 0, 0
    width, height = image_size(frames[0])
    positions = [
        (y, x) for y in crop_offsets(height, crop, step, threshold) for x in crop_offsets(width, crop, step, threshold)
    ]
    targets = [out_root / f"{clip_dir.name}_s{i:03d}" for i in range(1, len(positions) + 1)]
    todo = [(pos, target) for pos, target in zip(positions, targets) if not target.exists()]
    if not todo:
        return 0, len(targets)
    temps = [temporary_path(target) for _, target in todo]
    try:
        for temp in temps:
            temp.mkdir(parents=True)
        for frame_path in frames:
            array = read_image(frame_path, rgb=False)  # sub-images keep the frame's own mode (grey, 16-bit, ...)
            if array.shape[:2] != (height, width):
                raise UserError(
                    f"{frame_path} is {array.shape[1]}x{array.shape[0]}, not {width}x{height} like its clip"
                )
            for ((y, x), _), temp in zip(todo, temps):
                sub = Image.fromarray(np.ascontiguousarray(array[y : y + crop, x : x + crop]))
                sub.save(temp / (frame_path.stem + ".png"), compress_level=3)
        for (_, target), temp in zip(todo, temps):
            commit(temp, target)
    finally:
        for temp in temps:
            remove_partial(temp)  # the ones not committed (after an error)
    return len(todo), len(targets) - len(todo)


def cut_dataset(
    src: str | Path,
    dst: str | Path,
    crop: int = 480,
    step: int = 240,
    threshold: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[int, int]:
    """Cut every clip folder of `src` into `dst`; returns (sub-clips written, skipped as already present)."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise UserError(f"{src} is not a folder of clip folders")
    if crop < 8:
        raise UserError(f"crop must be at least 8, got {crop}", option="crop")
    if step < 1:
        raise UserError(f"step must be at least 1, got {step}", option="step")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise UserError(f"the output folder {dst} must not be inside the input folder {src}")
    clips = [clip.path for clip in clip_folders(src)]
    if not clips:
        raise UserError(f"{src} has no clip folders with image frames")
    created = not dst.exists()
    dst.mkdir(parents=True, exist_ok=True)
    written = skipped = 0
    try:
        for clip in clips:
            done, present = cut_clip(clip, dst, crop, step, threshold)
            written, skipped = written + done, skipped + present
            if progress is not None:
                progress(f"{clip.name}: {done} sub-clips written, {present} already present")
    except BaseException:  # cleans up, then re-raises: an output folder this run made and left empty goes
        if created and not any(dst.iterdir()):
            dst.rmdir()
        raise
    if written + skipped == 0:
        raise UserError(f"no frame in {src} is at least {crop}x{crop}; use a smaller crop", option="crop")
    return written, skipped
