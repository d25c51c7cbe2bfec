"""Turn a clean video or frame folder into a realistic low-quality one with the RealBasicVSR training
degradations (blur, resize, noise, JPEG, video codec; second order, per-frame drift), on whole frames.

The output is `scale` times smaller (rounded down to even sizes). It is written losslessly (.mkv: FFV1 RGB;
.mp4: x264 at CRF 0 in YUV 4:4:4) or as a folder of PNGs (no extension), so what you see is the degradation.
The plan (every sampled value) can be saved with --plan-out and replayed with --plan.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from realbasicvsr.errors import UserError

VIDEO_OUTPUTS = {".mp4": ("libx264", "yuv444p", {"crf": "0"}), ".mkv": ("ffv1", "bgr0", {})}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="clean video file or folder of frames")
    parser.add_argument("output", type=Path, help="output .mp4 / .mkv file, or a folder (no extension) for PNGs")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the degradation plan (default 0)")
    parser.add_argument("--scale", type=int, default=4, help="downscaling factor of the output (default 4)")
    parser.add_argument("--plan", type=Path, help="replay this plan JSON instead of sampling one")
    parser.add_argument("--plan-out", type=Path, help="save the plan that was used as JSON")
    parser.add_argument("--preview", type=Path, help="write a GT | LQ contact sheet of a few frames (PNG)")
    parser.add_argument(
        "--unsharp", action="store_true", help="unsharp-mask the input first, as the training recipe does"
    )
    parser.add_argument("--max-frames", type=int, help="use only the first N frames (the clip is held in memory)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate for a frame-folder input (default 25)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")


def _output_kind(path: Path) -> str:
    if path.suffix == "":
        return "folder"
    if path.suffix.lower() in VIDEO_OUTPUTS:
        return "video"
    raise UserError(f"unsupported output {path}: use a .mp4 or .mkv file, or a folder name without extension")


def _check_paths(args: argparse.Namespace) -> None:
    if not args.input.exists():
        raise UserError(f"input {args.input} does not exist; give a video file or a folder of frames")
    if args.input.resolve() == args.output.resolve():
        raise UserError("output is the input; choose another output path (inputs are never overwritten)")
    for path in (args.output, args.plan_out, args.preview):
        if path is not None and path.exists() and not args.overwrite:
            raise UserError(f"{path} exists; pass --overwrite to replace it or choose another path")
    if args.scale < 1:
        raise UserError(f"--scale must be a positive integer, got {args.scale}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.plan is not None and not args.plan.is_file():
        raise UserError(f"plan {args.plan} does not exist; write one with --plan-out first")


# Peak memory of the full-frame pipeline per input pixel of the clip (measured: 1.05 GB for 30 frames of 1280x720,
# i.e. ~3.2 float32 RGB copies); 4 keeps a margin.
BYTES_PER_PIXEL = 4 * 3 * 4


def check_memory(num_frames: int, height: int, width: int, max_frames: int | None, total_bytes: int) -> None:
    """Refuse a clip whose in-memory degradation would need more than 80 % of `total_bytes`."""
    count = num_frames if max_frames is None else min(num_frames, max_frames)
    needed = count * height * width * BYTES_PER_PIXEL
    if needed > 0.8 * total_bytes:
        fits = max(1, int(0.8 * total_bytes // (height * width * BYTES_PER_PIXEL)))
        raise UserError(
            f"degrading {count} frames of {width}x{height} at once needs about {needed / 2**30:.1f} GiB of the "
            f"{total_bytes / 2**30:.1f} GiB of memory; pass --max-frames {fits} (or fewer) or cut the video"
        )


def read_clip(path: Path, max_frames: int | None) -> tuple[np.ndarray, Fraction | None]:
    """All frames (up to max_frames) as uint8 (T, H, W, 3) RGB, and the source frame rate (None for folders)."""
    from realbasicvsr.media.read import probe, read_frames

    info = probe(path)
    if info.num_frames:  # the whole clip is held in memory: fail before decoding a video that cannot fit
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        check_memory(info.num_frames, info.height, info.width, max_frames, total)
    frames = []
    for frame in read_frames(info):
        image = frame.image
        if image.dtype != np.uint8:  # 16-bit sources: keep the 8 most significant bits, rounded
            image = np.clip((image.astype(np.uint32) + 128) // 257, 0, 255).astype(np.uint8)
        frames.append(image)
        if max_frames is not None and len(frames) >= max_frames:
            break
    if not frames:
        raise UserError(f"{path} contains no frames")
    return np.stack(frames), info.fps if info.kind == "video" else None


def _atomic_target(path: Path) -> Path:
    """A fresh temporary path next to `path` (same folder, so the final rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; give the final file the usual permissions
    return Path(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_video(path: Path, frames: np.ndarray, fps: Fraction) -> None:
    """Lossless (or, for .mp4, near-lossless) encode of uint8 RGB frames, via a temporary file and a rename."""
    import av

    codec, pix_fmt, options = VIDEO_OUTPUTS[path.suffix.lower()]
    tmp = _atomic_target(path)
    try:
        with av.open(str(tmp), mode="w", format="mp4" if path.suffix.lower() == ".mp4" else "matroska") as out:
            stream = out.add_stream(codec, rate=fps)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = pix_fmt
            stream.codec_context.options = options
            for image in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_folder(path: Path, frames: np.ndarray) -> None:
    """PNG frames 00000000.png ... into `path`, built in a temporary folder and renamed into place."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        for index, image in enumerate(frames):
            Image.fromarray(image).save(tmp / f"{index:08d}.png")
        if path.exists():  # only reached with --overwrite
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


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
    tmp = _atomic_target(path)
    try:
        sheet.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> None:
    tmp = _atomic_target(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    from realbasicvsr.degrade import official, plan_from_json, plan_to_json, sample_plan
    from realbasicvsr.degrade.training_sample import degrade_clip, full_frame_target

    kind = _output_kind(args.output)
    _check_paths(args)
    config = official()
    gt, fps = read_clip(args.input, args.max_frames)
    num, height, width = gt.shape[:3]
    target = full_frame_target(height, width, args.scale)
    if args.plan is not None:
        try:
            plan = plan_from_json(args.plan.read_text())
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(f"{args.plan} is not a valid degradation plan ({error})") from error
        if plan.num_frames != num:
            raise UserError(
                f"{args.plan} is a plan for {plan.num_frames} frames but the input has {num}; "
                "use --max-frames or the plan of this input"
            )
        if plan.target_size != target:
            raise UserError(
                f"{args.plan} makes {plan.target_size[1]}x{plan.target_size[0]} frames but this input at "
                f"--scale {args.scale} needs {target[1]}x{target[0]}; use the scale and input of the plan"
            )
    else:
        plan = sample_plan(config, num, target, np.random.default_rng(args.seed))
    lq = degrade_clip(gt, plan, unsharp=config if args.unsharp else None)
    if args.plan_out is not None:
        _write_text(args.plan_out, plan_to_json(plan))
    if kind == "video":
        write_video(args.output, lq, fps or Fraction(args.fps).limit_denominator(1001))
    else:
        write_folder(args.output, lq)
    if args.preview is not None:
        write_preview(args.preview, gt, lq)
    order = " -> ".join(plan.stages())
    print(f"{args.input} ({num} frames, {width}x{height}) -> {args.output} ({lq.shape[2]}x{lq.shape[1]})")
    print(f"plan: {order}")
    return 0
