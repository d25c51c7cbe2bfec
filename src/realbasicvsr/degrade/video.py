"""Degrading whole clips: a clean video, frame folder or image -> a realistic low-quality one, with a plan.

The training degradations (blur, resize, noise, JPEG, video codec; second order, per-frame drift) run on whole
frames; the output is `scale` times smaller (rounded down to even sizes) and written losslessly (.mkv: FFV1 RGB;
.mp4: x264 at CRF 0 in YUV 4:4:4) or as a folder of PNGs (no extension), so what one sees is the degradation.
The plan (every sampled value) can be saved and replayed. The whole clip is held in memory (`clip_bytes`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from realbasicvsr.degrade.config import DegradationConfig, official
from realbasicvsr.degrade.plan import DegradationPlan, plan_from_json, plan_to_json
from realbasicvsr.degrade.random_plan import sample_plan
from realbasicvsr.degrade.training_sample import degrade_clip, full_frame_target
from realbasicvsr.errors import UserError
from realbasicvsr.media.files import atomic_output, write_text_atomic
from realbasicvsr.media.read import VideoInfo, probe, read_frames
from realbasicvsr.media.write import EncodeConfig, write_frames

# Lossless (FFV1 RGB) or visually lossless (x264 CRF 0, 4:4:4) outputs, so the file shows the degradation only.
ENCODINGS = {
    ".mkv": EncodeConfig(codec="ffv1"),
    ".mp4": EncodeConfig(codec="libx264", crf=0, pix_fmt="yuv444p"),
}
# Peak memory of the full-frame pipeline per input pixel of the clip (measured: 1.05 GB for 30 frames of 1280x720,
# i.e. ~3.2 float32 RGB copies); 4 keeps a margin.
BYTES_PER_PIXEL = 4 * 3 * 4


@dataclass(frozen=True)
class DegradeResult:
    """What `degrade_video` wrote."""

    output: Path
    frames: int
    width: int  # of the input
    height: int
    out_width: int
    out_height: int
    plan: DegradationPlan


def output_kind(path: Path) -> Literal["video", "folder"]:
    """'video' for .mp4 / .mkv, 'folder' (of PNG frames) for a name without extension."""
    if path.suffix == "":
        return "folder"
    if path.suffix.lower() in ENCODINGS:
        return "video"
    raise UserError(f"unsupported output {path}: use a .mp4 or .mkv file, or a folder name without extension")


def clip_bytes(num_frames: int, height: int, width: int) -> int:
    """About how much memory degrading `num_frames` frames of height x width at once needs."""
    return num_frames * height * width * BYTES_PER_PIXEL


def frames_that_fit(height: int, width: int, total_bytes: int) -> int:
    """How many frames of height x width fit in 80 % of `total_bytes` (at least 1)."""
    return max(1, int(0.8 * total_bytes // (height * width * BYTES_PER_PIXEL)))


def total_memory() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_paths(
    source: Path,
    output: Path,
    *,
    overwrite: bool = False,
    extra_outputs: tuple[Path | None, ...] = (),
    scale: int = 4,
    max_frames: int | None = None,
) -> None:
    """Refuse before any work: a missing input, the input as output, existing outputs, impossible numbers."""
    if not source.exists():
        raise UserError(f"input {source} does not exist; give a video file or a folder of frames")
    if source.resolve() == output.resolve():
        raise UserError("output is the input; choose another output path (inputs are never overwritten)")
    for path in (output, *extra_outputs):
        if path is not None and path.exists() and not overwrite:
            raise UserError(
                f"{path} exists; allow overwriting to replace it or choose another path", option="overwrite"
            )
    if scale < 1:
        raise UserError(f"scale must be a positive integer, got {scale}", option="scale")
    if max_frames is not None and max_frames < 1:
        raise UserError(f"max_frames must be at least 1, got {max_frames}", option="max_frames")


def read_clip(info: VideoInfo, max_frames: int | None = None) -> np.ndarray:
    """The frames of a probed input (up to `max_frames`) as uint8 (T, H, W, 3) RGB."""
    frames = []
    for frame in read_frames(info):
        image = frame.image
        if image.dtype != np.uint8:  # 16-bit sources: keep the 8 most significant bits, rounded
            image = np.clip((image.astype(np.uint32) + 128) // 257, 0, 255).astype(np.uint8)
        frames.append(image)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise UserError(f"{info.path} contains no frames")
    return np.stack(frames)


def load_plan(path: Path) -> DegradationPlan:
    """A plan saved as JSON (by `plan_out`)."""
    if not path.is_file():
        raise UserError(f"plan {path} does not exist; save one with plan_out first", option="plan")
    try:
        return plan_from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path} is not a valid degradation plan ({error})", option="plan") from error


def check_plan(plan: DegradationPlan, num_frames: int, target: tuple[int, int], scale: int, name: str) -> None:
    """A replayed plan must be for this many frames and this output size."""
    if plan.num_frames != num_frames:
        raise UserError(
            f"{name} is a plan for {plan.num_frames} frames but the input has {num_frames}; "
            "limit max_frames or use the plan of this input",
            option="max_frames",
        )
    if plan.target_size != target:
        raise UserError(
            f"{name} makes {plan.target_size[1]}x{plan.target_size[0]} frames but this input at scale {scale} "
            f"needs {target[1]}x{target[0]}; use the scale and input of the plan",
            option="scale",
        )


def write_preview(path: Path, gt: np.ndarray, lq: np.ndarray, count: int = 4) -> None:
    """Contact sheet: one row per sampled frame, GT on the left, LQ enlarged (nearest) to GT size on the right."""
    from PIL import Image

    indices = np.unique(np.linspace(0, len(gt) - 1, min(count, len(gt))).round().astype(int))
    height, width = gt.shape[1:3]
    shrink = min(1.0, 480 / max(height, width))  # keep the sheet small for big frames
    cell = (max(1, round(width * shrink)), max(1, round(height * shrink)))
    sheet = Image.new("RGB", (2 * cell[0] + 8, len(indices) * (cell[1] + 8)), (255, 255, 255))
    for row, i in enumerate(indices):
        left = Image.fromarray(gt[i]).resize(cell, Image.Resampling.BICUBIC)
        right = Image.fromarray(lq[i]).resize(cell, Image.Resampling.NEAREST)
        sheet.paste(left, (0, row * (cell[1] + 8)))
        sheet.paste(right, (cell[0] + 8, row * (cell[1] + 8)))
    with atomic_output(path) as tmp:
        sheet.save(tmp, format="PNG")


def degrade_video(
    source: str | Path | VideoInfo,
    output: str | Path,
    *,
    config: DegradationConfig | None = None,
    seed: int = 0,
    scale: int = 4,
    plan: DegradationPlan | Path | None = None,
    unsharp: bool = False,
    max_frames: int | None = None,
    fps: Fraction = Fraction(25),
    overwrite: bool = False,
    plan_out: Path | None = None,
    preview: Path | None = None,
) -> DegradeResult:
    """Degrade a video, frame folder or image (a path, or what `media.read.probe` returned) into `output`.

    `config` is the recipe (default: the official one) a plan is sampled from with `seed`, unless `plan` (a plan,
    or a JSON file saved with `plan_out`) is replayed. `unsharp` sharpens the input first, as training does.
    `fps` is the frame rate of a video made from frames (a video keeps its own). `preview` writes a GT | LQ sheet.
    """
    config = config or official()
    info = source if isinstance(source, VideoInfo) else None
    output = Path(output)
    kind = output_kind(output)
    input_path = info.path if info is not None else Path(source)
    check_paths(
        input_path, output, overwrite=overwrite, extra_outputs=(plan_out, preview), scale=scale, max_frames=max_frames
    )
    if isinstance(plan, Path):
        plan_name, plan = str(plan), load_plan(plan)
    else:
        plan_name = "the plan"
    info = info or probe(input_path)
    gt = read_clip(info, max_frames)
    num, height, width = gt.shape[:3]
    target = full_frame_target(height, width, scale)
    if plan is None:
        plan = sample_plan(config, num, target, np.random.default_rng(seed))
    else:
        check_plan(plan, num, target, scale, plan_name)
    lq = degrade_clip(gt, plan, unsharp=config if unsharp else None)
    if plan_out is not None:
        write_text_atomic(plan_out, plan_to_json(plan))
    rate = info.fps if info.kind == "video" and info.fps else Fraction(fps).limit_denominator(1001)
    source_info = info if info.kind == "video" else None
    encoding = ENCODINGS.get(output.suffix.lower()) if kind == "video" else None
    write_frames(output, lq, fps=rate, settings=encoding, source=source_info)
    if preview is not None:
        write_preview(preview, gt, lq)
    return DegradeResult(output, num, width, height, lq.shape[2], lq.shape[1], plan)
