"""Scoring clips of frames with the MATLAB-compatible metrics: the library behind `realbasicvsr evaluate`.

A prediction (and its ground truth) is anything `media.clips.find_clips` finds: a folder of clip folders and/or
video files (like VideoLQ), a folder of images (one clip) or one video file. Frames are decoded one at a time
and scored in this process or in a pool of worker processes, a few frames in flight at most, so memory stays
at a few frames even for all 4771 frames of VideoLQ.

A frame too small for a metric (NIQE needs two 96x96 blocks after the border crop, BRISQUE 8x8, NRQM 64x64,
SSIM 11x11), or on which a metric comes out undefined (NaN: BRISQUE of a few pixels), is skipped for that
metric only: the run goes on, and `Evaluation.skipped` / `skip_summary()` say which clips lost which metric, and why.
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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.media.clips import ClipSource
from realbasicvsr.media.files import write_bytes_atomic, write_text_atomic
from realbasicvsr.metrics.clip_frames import Notify, ShortClips, discover_clips, frame_pairs, wanted_indices
from realbasicvsr.metrics.color import ConvertTo
from realbasicvsr.metrics.skips import Skipped, size_problems, undefined_reason

if TYPE_CHECKING:
    from tqdm import tqdm

METRIC_NAMES = ("psnr", "ssim", "niqe", "brisque", "nrqm", "pi")
FULL_REFERENCE = ("psnr", "ssim")
# preset -> (frames, convert_to, crop_border)
PROTOCOLS: dict[str, tuple[tuple[int, ...] | None, ConvertTo, int]] = {
    "pirm": (None, "y", 4),
    "videolq": ((0, 50, 99), "y", 4),
}
Scores = dict[str, float]  # a metric that could not score the frame is absent


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
    """The scores of every frame of every clip, with what produced them and what was skipped."""

    config: EvaluateConfig
    frames: list[int] | None  # the requested indices (None = all)
    short_clips: ShortClips
    clips: list[ClipSource]
    results: dict[str, dict[int, Scores]]  # clip name -> frame index -> metric -> value (absent: skipped)
    parameter_files: dict[str, str]
    skipped: tuple[Skipped, ...] = ()

    def clip_means(self, clip: str) -> Scores:
        """Mean of each metric over the clip's scored frames; NaN for a metric that scored none of them."""
        return _means(self.results[clip].values(), self.config.metrics)

    @property
    def means(self) -> Scores:
        """Means over all scored frames (not over clip means); NaN for a metric that scored no frame at all."""
        return _means([f for frames in self.results.values() for f in frames.values()], self.config.metrics)

    def scored(self, metric: str) -> int:
        """How many frames `metric` scored."""
        return sum(metric in f for frames in self.results.values() for f in frames.values())

    @property
    def scored_nothing(self) -> bool:
        """True when no metric could score any frame (every frame skipped for every metric)."""
        return not any(self.scored(m) for m in self.config.metrics)

    def skip_summary(self) -> list[str]:
        """One plain line per clip and metric skipped, then one per metric that lost frames (empty: none)."""
        lines = [skip.line() for skip in self.skipped]
        total = sum(len(frames) for frames in self.results.values())
        for metric in dict.fromkeys(skip.metric for skip in self.skipped):
            count = self.scored(metric)
            if count == 0:
                lines.append(f"{metric}: no frame of any clip could be scored, so there is no {metric} score")
            else:
                lines.append(f"{metric}: scored {count} of {total} frames; its means leave out the skipped ones")
        return lines

    def table(self) -> str:
        """One row per clip (frame count, mean of each metric) and the mean over all frames."""
        header = ["clip", "frames", *self.config.metrics]
        rows = []
        for clip, frames in self.results.items():
            means = self.clip_means(clip)
            rows.append([clip, str(len(frames)), *(_cell(means[m]) for m in self.config.metrics)])
        count = sum(len(frames) for frames in self.results.values())
        means = self.means
        rows.append(["mean (all frames)", str(count), *(_cell(means[m]) for m in self.config.metrics)])
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            for row in [header, *rows]
        )

    def report(self) -> dict[str, object]:
        """Settings, parameter files, per-clip and per-frame scores, skipped frames (the JSON report).
        A metric without a score (skipped frame, or no frame scored) is null."""
        sources = {clip.name: str(clip.path) for clip in self.clips}
        metrics = self.config.metrics
        return {
            "settings": {
                "metrics": list(metrics),
                "convert_to": self.config.convert_to,
                "crop_border": self.config.crop_border,
                "frames": self.frames,
                "upscale": self.config.upscale,
                "short_clips": self.short_clips,
            },
            "parameter_files": self.parameter_files,
            "mean": _nulls(self.means),
            "clips": {
                clip: {
                    "mean": _nulls(self.clip_means(clip)),
                    "frames": {str(i): {m: s.get(m) for m in metrics} for i, s in sorted(frames.items())},
                    "source": sources[clip],
                }
                for clip, frames in self.results.items()
            },
            "skipped": [
                {"clip": s.clip, "metric": s.metric, "frames": list(s.frames), "reason": s.reason} for s in self.skipped
            ],
        }

    def write_json(self, path: Path) -> None:
        check_report_path(path, "json")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.report(), indent=2, allow_nan=True))

    def write_csv(self, path: Path) -> None:
        """One row per frame: clip, frame index, file name (image clips), then the metrics (empty: skipped)."""
        by_name = {clip.name: clip for clip in self.clips}
        text = io.StringIO(newline="")  # csv writes its own \r\n line ends
        writer = csv.writer(text)
        writer.writerow(["clip", "frame", "file", *self.config.metrics])
        for clip, frames in self.results.items():
            for index, scores in sorted(frames.items()):
                file = by_name[clip].frames[index].name if by_name[clip].video is None else ""
                cells = (repr(scores[m]) if m in scores else "" for m in self.config.metrics)
                writer.writerow([clip, index, file, *cells])
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
    tqdm bar on stderr, with the notes of `notify` printed above it (never onto its line). Parameter files are
    checked (or downloaded) before any frame is decoded. A frame too small for a metric is not scored with it
    and is listed in `Evaluation.skipped`; the run goes on.
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
    bar = _progress_bar(clips, frames, short_clips) if progress else None
    pairs = frame_pairs(clips, gt_clips, frames, short_clips, notify if bar is None else _above(bar, notify))
    try:
        results, skipped = _score_all(pairs, config, workers, bar.update if bar is not None else None)
    except ValueError as error:  # what neither the size checks nor a NaN score foresee
        raise UserError(f"cannot score {pred}: {error}") from error
    finally:
        if bar is not None:
            bar.close()
    if not results:
        raise UserError(f"no frames to score in {pred} (check the frame indices)", option="frames")
    return Evaluation(config, frames, short_clips, clips, results, param_files, skipped)


def _score_all(
    pairs: Iterator[tuple[str, int, np.ndarray, np.ndarray | None]],
    config: EvaluateConfig,
    workers: int,
    advance: Callable[[], object] | None,
) -> tuple[dict[str, dict[int, Scores]], tuple[Skipped, ...]]:
    results: dict[str, dict[int, Scores]] = {}
    skipped: dict[tuple[str, str, str], list[int]] = {}  # (clip, metric, reason) -> frames

    def scorable(clip: str, index: int, pred: np.ndarray) -> EvaluateConfig | None:
        """The config restricted to the metrics this frame is large enough for (None: none is)."""
        problems = size_problems(pred.shape, config)
        for metric, reason in problems.items():
            skipped.setdefault((clip, metric, reason), []).append(index)
        kept = tuple(m for m in config.metrics if m not in problems)
        return None if not kept else config if not problems else replace(config, metrics=kept)

    def done(clip: str, index: int, shape: tuple[int, ...], scores: Scores) -> None:
        for metric in [m for m, value in scores.items() if math.isnan(value)]:
            skipped.setdefault((clip, metric, undefined_reason(metric, shape, config)), []).append(index)
            del scores[metric]
        results.setdefault(clip, {})[index] = scores
        if advance is not None:
            advance()

    if workers == 1:
        for clip, index, pred, gt in pairs:
            frame_config = scorable(clip, index, pred)
            label = f"clip {clip} frame {index}"
            done(clip, index, pred.shape, {} if frame_config is None else score_frame(pred, gt, frame_config, label))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending: deque[tuple[str, int, tuple[int, ...], Future | None]] = deque()

            def collect() -> None:
                clip, index, shape, future = pending.popleft()
                done(clip, index, shape, {} if future is None else future.result())

            for clip, index, pred, gt in pairs:
                frame_config = scorable(clip, index, pred)
                label = f"clip {clip} frame {index}"
                future = None if frame_config is None else pool.submit(score_frame, pred, gt, frame_config, label)
                pending.append((clip, index, pred.shape, future))
                # Only a few decoded frames in flight: an all-frames VideoLQ run has 4771 of them.
                while len(pending) > 2 * workers:
                    collect()
            while pending:
                collect()
    # clip order, then metric order, whether found before scoring (size) or after (NaN), with or without workers
    clip_order = {clip: n for n, clip in enumerate(results)}
    keys = sorted(skipped, key=lambda k: (clip_order.get(k[0], len(clip_order)), config.metrics.index(k[1])))
    found = (Skipped(clip, metric, tuple(sorted(skipped[clip, metric, why])), why) for clip, metric, why in keys)
    return results, tuple(found)


def _above(bar: tqdm, notify: Notify) -> Notify:
    """`notify`, with the bar cleared first and redrawn after, so that a note gets a line of its own."""

    def write(message: str) -> None:
        with bar.external_write_mode(file=bar.fp):
            notify(message)

    return write


def _means(frames: Iterable[Scores], metrics: tuple[str, ...]) -> Scores:
    frames = list(frames)
    values = {m: [f[m] for f in frames if m in f] for m in metrics}
    return {m: float(np.mean(v)) if v else math.nan for m, v in values.items()}


def _nulls(scores: Scores) -> dict[str, float | None]:
    """NaN (a mean of no frames; NaN scores are skipped, never averaged) as JSON null."""
    return {m: None if math.isnan(value) else value for m, value in scores.items()}


def _cell(value: float) -> str:
    return "skipped" if math.isnan(value) else _fmt(value)


def _progress_bar(clips: list[ClipSource], frames: list[int] | None, short_clips: ShortClips) -> tqdm:
    from tqdm import tqdm

    total = None  # frame counts of videos are unknown until decoded
    if all(c.video is None for c in clips):
        planned = [(len(c.frames), wanted_indices(len(c.frames), frames, short_clips)) for c in clips]
        total = sum(n if w is None else sum(i < n for i in w) for n, w in planned)
    return tqdm(total=total, desc="scoring", unit="frame", file=sys.stderr)


def _fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)
