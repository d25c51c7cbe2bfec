"""Scoring clips of frames with the MATLAB-compatible metrics: the library behind `realbasicvsr evaluate`.

A prediction (and its ground truth) is anything `media.clips.find_clips` finds: a folder of clip folders and/or
video files (like VideoLQ), a folder of images (one clip) or one video file. Frames are decoded one at a time
and scored in this process or in a pool of worker processes, a few frames in flight at most, so memory stays
at a few frames even for all 4771 frames of VideoLQ.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.media.clips import ClipSource, find_clips, iter_video_frames, read_image
from realbasicvsr.media.files import write_bytes_atomic, write_text_atomic
from realbasicvsr.metrics.color import ConvertTo

if TYPE_CHECKING:
    from tqdm import tqdm

METRIC_NAMES = ("psnr", "ssim", "niqe", "brisque", "nrqm", "pi")
FULL_REFERENCE = ("psnr", "ssim")
# preset -> (frames, convert_to, crop_border)
PROTOCOLS: dict[str, tuple[tuple[int, ...] | None, ConvertTo, int]] = {
    "pirm": (None, "y", 4),
    "videolq": ((0, 50, 99), "y", 4),
}
ShortClips = Literal["skip", "spread"]
Scores = dict[str, float]
Notify = Callable[[str], None]


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class EvaluateConfig:
    """What to compute for every frame; sent to the worker processes."""

    metrics: tuple[str, ...]
    convert_to: ConvertTo = "y"
    crop_border: int = 0
    upscale: int = 1  # enlarge the prediction first (MATLAB bicubic), e.g. 4 to score the inputs
    params_dir: Path | None = None
    nrqm_model: Path | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if unknown or not self.metrics:
            raise ConfigError(
                f"unknown metric(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(METRIC_NAMES)}",
                option="metrics",
            )
        if self.crop_border < 0:
            raise ConfigError(f"crop_border must be >= 0, got {self.crop_border}", option="crop_border")
        if self.upscale < 1:
            raise ConfigError(f"upscale must be >= 1, got {self.upscale}", option="upscale")
        if self.params_dir is not None and not Path(self.params_dir).is_dir():
            raise ConfigError(
                f"the parameter folder {self.params_dir} does not exist or is not a folder; give the folder "
                "holding niqe/, brisque/ and nrqm/",
                option="params_dir",
            )

    @property
    def needs_ground_truth(self) -> bool:
        return any(m in FULL_REFERENCE for m in self.metrics)


def check_report_path(path: Path, option: str) -> None:
    """Refuse a report file name that cannot be written: an existing folder, or one below a file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"{path} is a folder; give a file name for the {option} report, e.g. {path / 'scores'}.{option}",
            option=option,
        )
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"cannot write the {option} report {path}: {parent} is a file, not a folder", option=option)


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


def score_frame(pred: np.ndarray, gt: np.ndarray | None, config: EvaluateConfig, label: str = "") -> Scores:
    """All requested metrics of one frame (runs in a worker process when workers > 1); `label` names it."""
    from realbasicvsr.metrics import METRICS
    from realbasicvsr.metrics.imresize import imresize_uint8

    if config.upscale > 1:
        pred = imresize_uint8(pred, config.upscale)
    scores: Scores = {}
    common = {"convert_to": config.convert_to, "crop_border": config.crop_border}
    # PI last: when NRQM and NIQE are asked for too, PI is derived from them instead of computed twice.
    for name in sorted(config.metrics, key=lambda m: m == "pi"):
        function, needs_gt, _ = METRICS[name]
        if needs_gt:
            if gt is None or gt.shape != pred.shape:
                shape = None if gt is None else gt.shape
                raise UserError(f"{name} of {label}: ground truth has shape {shape}, prediction {pred.shape}")
            scores[name] = function(pred, gt, **common)
        elif name == "pi" and "nrqm" in scores and "niqe" in scores:
            scores[name] = ((10.0 - scores["nrqm"]) + scores["niqe"]) / 2.0
        elif name in ("nrqm", "pi"):
            scores[name] = function(pred, params_dir=config.params_dir, model_path=config.nrqm_model, **common)
        else:
            scores[name] = function(pred, params_dir=config.params_dir, **common)
    return scores


def parameter_files(config: EvaluateConfig) -> dict[str, str]:
    """Find (or download) every parameter file once, before any work and before workers start.

    Returns path -> sha256 of the files used, recorded in the JSON report so that numbers can be traced.
    """
    from realbasicvsr.metrics.params import NRQM_MODEL, param_file, sha256_of

    niqe_module = importlib.import_module("realbasicvsr.metrics.niqe")  # the package exports a function of that name
    used: list[Path] = []
    for name in config.metrics:
        if name in ("niqe", "pi"):
            used.append(niqe_module.pristine_model_file(config.params_dir))
        if name == "brisque":
            used += [param_file(f"brisque/{file}", config.params_dir) for file in ("allmodel", "allrange")]
        if name in ("nrqm", "pi"):
            if config.nrqm_model is not None and not config.nrqm_model.is_file():
                raise UserError(f"the NRQM model {config.nrqm_model} does not exist", option="nrqm_model")
            used.append(config.nrqm_model or param_file(NRQM_MODEL, config.params_dir))
    return {str(path): sha256_of(path) for path in dict.fromkeys(used)}


@dataclass(frozen=True)
class Evaluation:
    """The scores of every frame of every clip, with what produced them."""

    config: EvaluateConfig
    frames: list[int] | None  # the requested indices (None = all)
    short_clips: ShortClips
    clips: list[ClipSource]
    results: dict[str, dict[int, Scores]]  # clip name -> frame index -> metric -> value
    parameter_files: dict[str, str]

    def clip_means(self, clip: str) -> Scores:
        frames = self.results[clip].values()
        return {m: float(np.mean([f[m] for f in frames])) for m in self.config.metrics}

    @property
    def means(self) -> Scores:
        """Means over all scored frames (not over clip means)."""
        every = [f for frames in self.results.values() for f in frames.values()]
        return {m: float(np.mean([f[m] for f in every])) for m in self.config.metrics}

    def table(self) -> str:
        """One row per clip (frame count, mean of each metric) and the mean over all frames."""
        header = ["clip", "frames", *self.config.metrics]
        rows = []
        for clip, frames in self.results.items():
            means = self.clip_means(clip)
            rows.append([clip, str(len(frames)), *(_fmt(means[m]) for m in self.config.metrics)])
        count = sum(len(frames) for frames in self.results.values())
        means = self.means
        rows.append(["mean (all frames)", str(count), *(_fmt(means[m]) for m in self.config.metrics)])
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            for row in [header, *rows]
        )

    def report(self) -> dict[str, object]:
        """Settings, parameter files, per-clip and per-frame scores (the JSON report)."""
        sources = {clip.name: str(clip.path) for clip in self.clips}
        return {
            "settings": {
                "metrics": list(self.config.metrics),
                "convert_to": self.config.convert_to,
                "crop_border": self.config.crop_border,
                "frames": self.frames,
                "upscale": self.config.upscale,
                "short_clips": self.short_clips,
            },
            "parameter_files": self.parameter_files,
            "mean": self.means,
            "clips": {
                clip: {
                    "mean": self.clip_means(clip),
                    "frames": {str(i): s for i, s in sorted(frames.items())},
                    "source": sources[clip],
                }
                for clip, frames in self.results.items()
            },
        }

    def write_json(self, path: Path) -> None:
        check_report_path(path, "json")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.report(), indent=2, allow_nan=True))

    def write_csv(self, path: Path) -> None:
        """One row per frame: clip, frame index, file name (image clips), then the metrics."""
        by_name = {clip.name: clip for clip in self.clips}
        text = io.StringIO(newline="")  # csv writes its own \r\n line ends
        writer = csv.writer(text)
        writer.writerow(["clip", "frame", "file", *self.config.metrics])
        for clip, frames in self.results.items():
            for index, scores in sorted(frames.items()):
                file = by_name[clip].frames[index].name if by_name[clip].video is None else ""
                writer.writerow([clip, index, file, *(repr(scores[m]) for m in self.config.metrics)])
        check_report_path(path, "csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, text.getvalue().encode("utf-8"))


def evaluate(
    pred: str | Path,
    gt: str | Path | None = None,
    *,
    config: EvaluateConfig,
    frames: list[int] | None = None,
    short_clips: ShortClips = "skip",
    workers: int = 1,
    progress: bool = False,
    notify: Notify = _to_stderr,
) -> Evaluation:
    """Score every clip of `pred` (against the same-named clip of `gt` for PSNR/SSIM).

    `frames`: indices to score in each clip (None: all); `workers`: processes (1 = this one); `progress`: a
    tqdm bar on stderr. Parameter files are checked (or downloaded) before any frame is decoded.
    """
    if workers < 1:
        raise UserError(f"workers must be >= 1, got {workers}", option="workers")
    if workers > (os.cpu_count() or 1):  # more processes than CPUs only add memory (1000 would start 1000)
        notify(
            f"warning: workers={workers} is more than the {os.cpu_count() or 1} CPUs here; using {os.cpu_count() or 1}"
        )
        workers = os.cpu_count() or 1
    if config.needs_ground_truth and gt is None:
        raise UserError("psnr and ssim compare with ground truth: give the ground-truth folder", option="gt")
    clips = discover_clips(Path(pred))
    gt_clips = {c.name: c for c in discover_clips(Path(gt))} if gt is not None else {}
    if gt_clips:
        missing = [c.name for c in clips if c.name not in gt_clips]
        if missing:
            raise UserError(f"no ground truth for clip(s) {', '.join(missing[:5])} in {gt}")
    param_files = parameter_files(config)
    pairs = frame_pairs(clips, gt_clips, frames, short_clips, notify)
    bar = _progress_bar(clips, frames, short_clips) if progress else None
    try:
        results = _score_all(pairs, config, workers, bar.update if bar is not None else None)
    except ValueError as error:  # metric functions reject frames that are too small, etc.
        raise UserError(f"cannot score {pred}: {error}") from error
    finally:
        if bar is not None:
            bar.close()
    if not results:
        raise UserError(f"no frames to score in {pred} (check the frame indices)", option="frames")
    return Evaluation(config, frames, short_clips, clips, results, param_files)


def _score_all(
    pairs: Iterator[tuple[str, int, np.ndarray, np.ndarray | None]],
    config: EvaluateConfig,
    workers: int,
    advance: Callable[[], object] | None,
) -> dict[str, dict[int, Scores]]:
    results: dict[str, dict[int, Scores]] = {}
    if workers == 1:
        for clip, index, pred, gt in pairs:
            results.setdefault(clip, {})[index] = score_frame(pred, gt, config, f"clip {clip} frame {index}")
            if advance is not None:
                advance()
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[tuple[str, int, Future]] = deque()

        def collect() -> None:
            clip, index, future = pending.popleft()
            results.setdefault(clip, {})[index] = future.result()
            if advance is not None:
                advance()

        for clip, index, pred, gt in pairs:
            pending.append((clip, index, pool.submit(score_frame, pred, gt, config, f"clip {clip} frame {index}")))
            # Only a few decoded frames in flight: an all-frames VideoLQ run has 4771 of them.
            while len(pending) > 2 * workers:
                collect()
        while pending:
            collect()
    return results


def _progress_bar(clips: list[ClipSource], frames: list[int] | None, short_clips: ShortClips) -> tqdm:
    from tqdm import tqdm

    total = None  # frame counts of videos are unknown until decoded
    if all(c.video is None for c in clips):
        planned = [(len(c.frames), wanted_indices(len(c.frames), frames, short_clips)) for c in clips]
        total = sum(n if w is None else sum(i < n for i in w) for n, w in planned)
    return tqdm(total=total, desc="scoring", unit="frame", file=sys.stderr)


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)
