"""Score super-resolved frames with MATLAB-compatible metrics (NIQE, BRISQUE, NRQM, PI, PSNR, SSIM).

PRED (and --gt) is a folder of clips (one sub-folder of frames per clip, like VideoLQ), a folder of video
files, a folder of images (one clip) or a single video file. `--protocol videolq` is the RealBasicVSR paper's
protocol: frames 0, 50 and 99 of each clip, Y channel, 4-pixel shave (PIRM2018).
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import os
import re
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realbasicvsr.errors import UserError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".y4m"}
METRIC_NAMES = ("psnr", "ssim", "niqe", "brisque", "nrqm", "pi")
# preset -> (frames, convert_to, crop_border)
PROTOCOLS = {"pirm": (None, "y", 4), "videolq": ((0, 50, 99), "y", 4)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", type=Path, help="folder of clip folders / videos / images, or a video file")
    parser.add_argument("--gt", type=Path, help="ground truth with the same layout (needed for psnr, ssim)")
    parser.add_argument("--metrics", default="niqe,brisque", help=f"comma list of {', '.join(METRIC_NAMES)}")
    parser.add_argument("--frames", help="comma list of frame indices to score in each clip (default: all)")
    parser.add_argument(
        "--protocol",
        choices=sorted(PROTOCOLS),
        help="preset: pirm = Y + 4-px shave; videolq = pirm on frames 0,50,99 (the RealBasicVSR paper)",
    )
    parser.add_argument("--convert-to", choices=("y", "gray", "rgb"), help="channel to score (default y)")
    parser.add_argument("--crop-border", type=int, help="pixels shaved on each side (default 0; 4 with a preset)")
    parser.add_argument("--upscale", type=int, default=1, help="enlarge PRED first, MATLAB bicubic (4: score inputs)")
    parser.add_argument(
        "--short-clips",
        choices=("skip", "spread"),
        default="skip",
        help="clips lacking some --frames: score the frames they have (skip, default) or their first, middle "
        "and last frame (spread, as NegVSR did on VideoLQ)",
    )
    parser.add_argument("--params-dir", type=Path, help="folder with niqe/, brisque/, nrqm/ parameter files")
    parser.add_argument("--nrqm-model", type=Path, help="sr-metric model.mat for nrqm and pi")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--json", type=Path, help="write per-frame and per-clip scores as JSON")
    parser.add_argument("--csv", type=Path, help="write per-frame scores as CSV")


@dataclass(frozen=True)
class Settings:
    """What to compute for every frame; sent to the worker processes."""

    metrics: tuple[str, ...]
    convert_to: str
    crop_border: int
    upscale: int
    params_dir: Path | None
    nrqm_model: Path | None


@dataclass(frozen=True)
class Clip:
    """A named sequence: either image files or one video file."""

    name: str
    images: tuple[Path, ...] = ()
    video: Path | None = None


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _images_in(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=_natural_key))


def discover_clips(root: Path) -> list[Clip]:
    """Clips under `root`, by the layouts described in the module docstring."""
    if not root.exists():
        raise UserError(f"{root} does not exist; give a folder of clips, of images, or a video file")
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXTS:
            raise UserError(f"{root} is not a video file ({', '.join(sorted(VIDEO_EXTS))}) nor a folder")
        return [Clip(root.stem, video=root)]
    entries = sorted(root.iterdir(), key=_natural_key)
    subdirs = [Clip(d.name, images=_images_in(d)) for d in entries if d.is_dir() and _images_in(d)]
    if subdirs:
        return subdirs
    videos = [Clip(p.stem, video=p) for p in entries if p.is_file() and p.suffix.lower() in VIDEO_EXTS]
    if videos:
        return videos
    images = _images_in(root)
    if images:
        return [Clip(root.name, images=images)]
    raise UserError(f"{root} holds no clip folders, videos or images ({', '.join(sorted(IMAGE_EXTS))})")


def iter_frames(clip: Clip, indices: list[int] | None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, HxWx3 uint8 RGB frame) for the wanted indices (all when None) that exist, one at a time."""
    if clip.video is None:
        wanted = range(len(clip.images)) if indices is None else [i for i in indices if i < len(clip.images)]
        for i in wanted:
            yield i, _read_image(clip.images[i])
        return
    import av

    last = None if indices is None else max(indices)
    try:
        with av.open(str(clip.video)) as container:
            if not container.streams.video:
                raise UserError(f"{clip.video} has no video stream")
            for index, frame in enumerate(container.decode(video=0)):
                if last is not None and index > last:
                    break
                if indices is None or index in indices:
                    yield index, frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as error:
        raise UserError(f"cannot decode {clip.video}: {error}") from error


def clip_length(clip: Clip) -> int:
    """Number of frames (image count, or decoded-frame count of the video's first stream)."""
    if clip.video is None:
        return len(clip.images)
    return sum(1 for _ in iter_frames(clip, None))


def wanted_indices(length: int, indices: list[int] | None, short_clips: str) -> list[int] | None:
    """Frames to score in a clip of `length` frames. With "spread", a clip that lacks some of `indices` gets
    its first, middle and last frame, as NegVSR scored VideoLQ's short clips (0, 20, 40 of 41 frames)."""
    if indices is not None and short_clips == "spread" and length <= max(indices):
        return sorted({0, length // 2, length - 1})
    return indices


def frame_pairs(
    clips: list[Clip], gt_clips: dict[str, Clip], indices: list[int] | None, short_clips: str = "skip"
) -> Iterator[tuple[str, int, np.ndarray, np.ndarray | None]]:
    """(clip name, index, prediction, ground truth or None), streamed so that memory stays at a few frames.

    `short_clips`: for a clip without some of the requested indices, "skip" scores the ones it has and
    "spread" scores its first, middle and last frame instead.
    """
    for clip in clips:
        wanted = indices
        if indices is not None and short_clips == "spread":  # counting a video's frames means decoding it
            wanted = wanted_indices(clip_length(clip), indices, short_clips)
            if wanted != indices:
                print(f"note: clip {clip.name} is short; scoring frames {wanted}", file=sys.stderr)
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
            print(f"warning: clip {clip.name} has no frame(s) {skipped}; they are skipped", file=sys.stderr)


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise UserError(f"cannot read image {path}: {error}") from error


def score_frame(pred: np.ndarray, gt: np.ndarray | None, settings: Settings, label: str = "") -> dict[str, float]:
    """All requested metrics of one frame (runs in a worker process when --workers > 1); `label` names it."""
    from realbasicvsr.metrics import METRICS
    from realbasicvsr.metrics.imresize import imresize_uint8

    if settings.upscale > 1:
        pred = imresize_uint8(pred, settings.upscale)
    scores: dict[str, float] = {}
    common = {"convert_to": settings.convert_to, "crop_border": settings.crop_border}
    # PI last: when NRQM and NIQE are asked for too, PI is derived from them instead of computed twice.
    for name in sorted(settings.metrics, key=lambda m: m == "pi"):
        function, needs_gt, _ = METRICS[name]
        if needs_gt:
            if gt is None or gt.shape != pred.shape:
                shape = None if gt is None else gt.shape
                raise UserError(f"{name} of {label}: ground truth has shape {shape}, prediction {pred.shape}")
            scores[name] = function(pred, gt, **common)
        elif name == "pi" and "nrqm" in scores and "niqe" in scores:
            scores[name] = ((10.0 - scores["nrqm"]) + scores["niqe"]) / 2.0
        elif name in ("nrqm", "pi"):
            scores[name] = function(pred, params_dir=settings.params_dir, model_path=settings.nrqm_model, **common)
        else:
            scores[name] = function(pred, params_dir=settings.params_dir, **common)
    return scores


def _parse_list(text: str, what: str, convert: Callable[[str], object]) -> list:
    try:
        return [convert(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError as error:
        raise UserError(f"bad {what} list {text!r}: {error}") from error


def _settings(args: argparse.Namespace) -> tuple[Settings, list[int] | None]:
    frames_preset, convert_preset, crop_preset = PROTOCOLS.get(args.protocol, (None, "y", 0))
    metrics = tuple(_parse_list(args.metrics, "metrics", str.lower))
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown or not metrics:
        raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METRIC_NAMES)}")
    frames = _parse_list(args.frames, "frames", int) if args.frames else frames_preset
    if frames is not None and (not frames or min(frames) < 0):
        raise UserError("--frames must list frame indices >= 0, e.g. --frames 0,50,99")
    crop = crop_preset if args.crop_border is None else args.crop_border
    if crop < 0 or args.upscale < 1 or args.workers < 1:
        raise UserError("--crop-border must be >= 0, --upscale and --workers >= 1")
    no_reference = [m for m in metrics if m not in ("psnr", "ssim")]
    if args.convert_to == "rgb" and no_reference:
        raise UserError(f"--convert-to rgb applies to psnr/ssim only; {', '.join(no_reference)} need y or gray")
    if any(m in ("psnr", "ssim") for m in metrics) and args.gt is None:
        raise UserError("psnr and ssim compare with ground truth: add --gt FOLDER")
    settings = Settings(
        metrics, args.convert_to or convert_preset, crop, args.upscale, args.params_dir, args.nrqm_model
    )
    return settings, None if frames is None else sorted(set(frames))


def _check_params(settings: Settings) -> dict[str, str]:
    """Find (or download) every parameter file once, before any work and before workers start.

    Returns path -> sha256 of the files used, recorded in the JSON report so that numbers can be traced.
    """
    from realbasicvsr.metrics.params import NRQM_MODEL, param_file, sha256_of

    niqe_module = importlib.import_module("realbasicvsr.metrics.niqe")  # the package exports a function of that name
    used: list[Path] = []
    for name in settings.metrics:
        if name in ("niqe", "pi"):
            used.append(niqe_module.pristine_model_file(settings.params_dir))
        if name == "brisque":
            used += [param_file(f"brisque/{file}", settings.params_dir) for file in ("allmodel", "allrange")]
        if name in ("nrqm", "pi"):
            if settings.nrqm_model is not None and not settings.nrqm_model.is_file():
                raise UserError(f"--nrqm-model {settings.nrqm_model} does not exist")
            used.append(settings.nrqm_model or param_file(NRQM_MODEL, settings.params_dir))
    return {str(path): sha256_of(path) for path in dict.fromkeys(used)}


def _atomic_write(path: Path, write: Callable[[object], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as out:
            write(out)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def _print_table(results: dict[str, dict[int, dict[str, float]]], metrics: tuple[str, ...]) -> dict[str, float]:
    header = ["clip", "frames", *metrics]
    rows = []
    for clip, frames in results.items():
        rows.append([clip, str(len(frames)), *(_fmt(float(np.mean([f[m] for f in frames.values()]))) for m in metrics)])
    all_frames = [f for frames in results.values() for f in frames.values()]
    means = {m: float(np.mean([f[m] for f in all_frames])) for m in metrics}
    rows.append(["mean (all frames)", str(len(all_frames)), *(_fmt(means[m]) for m in metrics)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
    return means


def _write_outputs(
    args: argparse.Namespace,
    settings: Settings,
    frames: list[int] | None,
    clips: list[Clip],
    results: dict[str, dict[int, dict[str, float]]],
    means: dict[str, float],
    param_files: dict[str, str],
) -> None:
    """--json (settings, parameter files, per-clip and per-frame scores) and --csv (one row per frame)."""
    by_name = {clip.name: clip for clip in clips}
    source = {name: str(clip.video or (clip.images[0].parent if clip.images else "")) for name, clip in by_name.items()}
    if args.json:
        report = {
            "settings": {
                "metrics": list(settings.metrics),
                "convert_to": settings.convert_to,
                "crop_border": settings.crop_border,
                "frames": frames,
                "upscale": settings.upscale,
                "short_clips": args.short_clips,
            },
            "parameter_files": param_files,
            "mean": means,
            "clips": {
                clip: {
                    "mean": {m: float(np.mean([f[m] for f in fr.values()])) for m in settings.metrics},
                    "frames": {str(i): s for i, s in sorted(fr.items())},
                    "source": source[clip],
                }
                for clip, fr in results.items()
            },
        }
        _atomic_write(args.json, lambda out: json.dump(report, out, indent=2, allow_nan=True))
    if args.csv:

        def write_csv(out: object) -> None:
            writer = csv.writer(out)
            writer.writerow(["clip", "frame", "file", *settings.metrics])
            for clip, fr in results.items():
                for index, scores in sorted(fr.items()):
                    file = by_name[clip].images[index].name if by_name[clip].video is None else ""
                    writer.writerow([clip, index, file, *(repr(scores[m]) for m in settings.metrics)])

        _atomic_write(args.csv, write_csv)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    settings, frames = _settings(args)
    clips = discover_clips(args.pred)
    gt_clips = {c.name: c for c in discover_clips(args.gt)} if args.gt is not None else {}
    if gt_clips:
        missing = [c.name for c in clips if c.name not in gt_clips]
        if missing:
            raise UserError(f"no ground truth for clip(s) {', '.join(missing[:5])} in {args.gt}")
    param_files = _check_params(settings)

    results: dict[str, dict[int, dict[str, float]]] = {}
    total = None  # frame counts of videos are unknown until decoded
    if all(c.video is None for c in clips):
        planned = [(len(c.images), wanted_indices(len(c.images), frames, args.short_clips)) for c in clips]
        total = sum(n if w is None else sum(i < n for i in w) for n, w in planned)
    progress = tqdm(total=total, desc="scoring", unit="frame", file=sys.stderr)
    pairs = frame_pairs(clips, gt_clips, frames, args.short_clips)
    try:
        if args.workers == 1:
            for clip, index, pred, gt in pairs:
                results.setdefault(clip, {})[index] = score_frame(pred, gt, settings, f"clip {clip} frame {index}")
                progress.update()
        else:
            with ProcessPoolExecutor(max_workers=args.workers) as pool:
                pending: deque = deque()

                def collect() -> None:
                    clip, index, future = pending.popleft()
                    results.setdefault(clip, {})[index] = future.result()
                    progress.update()

                for clip, index, pred, gt in pairs:
                    pending.append(
                        (clip, index, pool.submit(score_frame, pred, gt, settings, f"clip {clip} frame {index}"))
                    )
                    # Only a few decoded frames in flight: an all-frames VideoLQ run has 4771 of them.
                    while len(pending) > 2 * args.workers:
                        collect()
                while pending:
                    collect()
    except ValueError as error:  # metric functions reject frames that are too small, etc.
        raise UserError(f"cannot score {args.pred}: {error}") from error
    finally:
        progress.close()
    if not results:
        raise UserError(f"no frames to score in {args.pred} (check --frames)")

    print(
        f"protocol: {settings.convert_to} channel, crop border {settings.crop_border}, "
        f"frames {'all' if frames is None else ','.join(map(str, frames))}, upscale x{settings.upscale}"
    )
    means = _print_table(results, settings.metrics)
    _write_outputs(args, settings, frames, clips, results, means, param_files)
    return 0
