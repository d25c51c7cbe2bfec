"""`preview_video`: the exact upscale settings on a short stretch of a video, pictures to judge the look, and an
honest projection of the time and size of the whole run.

The stretch is run as a full run runs a segment (`realbasicvsr.preview.stretch`): the same `Upscaler`, the same
warm-up and look-ahead context (discarded), the same frame indices (so the grain is the full run's). Each strength
of a list loads its blend and runs the same frames. What it writes into the folder (each file atomically; the JSON
last, so a folder with `preview.json` holds a complete preview):

- `compare.png`: bicubic vs each result, a 1:1 crop and the whole frame (`realbasicvsr.preview.compare`);
- `wipe.mp4`: the stretch at the output size, bicubic left of a moving divider, the result right of it;
- `result.<ext>`: the stretch encoded with the run's encoder settings and container (its bytes give the size);
- `preview.json`: the measured rates, the projection (`realbasicvsr.preview.projection`), the settings, the stretch.

With several strengths the wipe and result files are named per strength (`wipe-s0.5.mp4`, `result-s0.5.mp4`).
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from realbasicvsr.errors import UserError
from realbasicvsr.media.encode import check_codec, container_format, encode_for_source
from realbasicvsr.media.files import human_bytes, remove_orphans, write_text_atomic
from realbasicvsr.media.preflight import preflight_video
from realbasicvsr.media.read import Frame, VideoInfo, probe, read_frames
from realbasicvsr.media.write import EncodeConfig
from realbasicvsr.preview import compare, measure, projection, stretch
from realbasicvsr.upscale.budget import apply_plan, plan_memory
from realbasicvsr.upscale.config import UpscaleConfig, output_size, resolve_config
from realbasicvsr.upscale.plan import Segment, SegmentConfig, check_cut_list
from realbasicvsr.upscale.run import even_for_encoder, limit_cpu_threads
from realbasicvsr.upscale.windows import Upscaler

CONTAINERS = {"mp4": ".mp4", "mkv": ".mkv", "mov": ".mov", "webm": ".webm"}
# A folder holding one of these is an earlier preview: it is replaced only with overwrite.
PREVIEW_NAMES = ("compare.png", "preview.json")
PREVIEW_STEMS = ("wipe", "result")
# The context frames are held in memory (every strength runs the same frames): refuse beyond this.
MAX_BUFFER_BYTES = 4 << 30


@dataclass(frozen=True)
class StrengthResult:
    """One strength of a preview: its weights, the measured speed and the projection for the whole video."""

    strength: float | None
    weights: str
    fps: float  # output frames per second of model time (warm-up and windows)
    model_seconds: float
    projected_seconds: float
    projected_bytes: int
    result: Path
    wipe: Path
    result_bytes: int
    key_bytes: int
    rates: projection.Rates


@dataclass(frozen=True)
class PreviewResult:
    """What `preview_video` wrote and measured. `fps`, `projected_seconds` and `projected_bytes` are the first
    strength's (`results[0]`)."""

    out_dir: Path
    compare: Path
    json: Path
    first_frame: int
    last_frame: int
    num_frames: int
    width: int
    height: int
    results: tuple[StrengthResult, ...]

    @property
    def fps(self) -> float:
        return self.results[0].fps

    @property
    def projected_seconds(self) -> float:
        return self.results[0].projected_seconds

    @property
    def projected_bytes(self) -> int:
        return self.results[0].projected_bytes

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.compare, *(p for r in self.results for p in (r.wipe, r.result)), self.json)

    def summary(self) -> str:
        first = self.results[0]
        size = human_bytes(first.projected_bytes)
        if len(self.results) > 1:
            sizes = sorted(r.projected_bytes for r in self.results)
            values = ", ".join(f"{r.strength:g}" for r in self.results if r.strength is not None)
            size = f"{human_bytes(sizes[0])} to {human_bytes(sizes[-1])} (strengths {values})"
        return (
            f"preview: {self.last_frame - self.first_frame + 1} frames at {first.fps:.2f} fps "
            f"({short_weights(first.weights, len(self.results) == 1)}); "
            f"the whole video ({self.num_frames} frames) would take about "
            f"{projection.human_seconds(first.projected_seconds)} and {size} with these settings -> {self.compare}"
        )


def short_weights(note: str, with_strength: bool = True) -> str:
    """The weights note (`load_upscale_model`) for the summary line: its first clause without the parentheses, and
    the strength: 'the bundled compact RealBasicVSR x4, strength 0.5'."""
    plain = re.sub(r"\s*\([^()]*\)", "", re.sub(r"\s*\([^()]*\)", "", note))  # two levels of parentheses
    clauses = [c.strip() for c in plain.split(";")]
    strength = next((c.split(" of ")[0] for c in clauses[1:] if c.startswith("strength ")), None)
    return clauses[0] + (f", {strength}" if strength and with_strength else "")


def preview_video(
    input_path: str | Path,
    out_dir: str | Path,
    *,
    weights: str | Path | None = None,
    fidelity_weights: str | Path | None = None,
    options: UpscaleConfig | None = None,
    strengths: Sequence[float | None] = (None,),
    at: str | float | None = None,
    at_frame: int | None = None,
    frames: int = 30,
    encode: EncodeConfig | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    segments: SegmentConfig | None = None,
    container: str | None = None,
    copy_streams: bool = True,
    audio_codec: str = "copy",
) -> PreviewResult:
    """Upscale `frames` frames of `input_path` from `at` (seconds or [HH:]MM:SS[.fff]) or `at_frame` (default: the
    middle of the video) with `options`, once per strength of `strengths` (None: `options.strength`), into the
    folder `out_dir` (created); see the module docstring for the files. `segments` are the full run's scene and
    segment settings (the context and the projection follow them); `container` (mp4, mkv, mov or webm; default
    the input's when it is one of these, else mp4), `encode`, `copy_streams` and `audio_codec` are the full run's
    output settings. Everything is checked before any weights load; `progress` is told (frames done, to do)."""
    options = resolve_config(options or UpscaleConfig())
    segments = segments or SegmentConfig()
    runs = [options if s is None else replace(options, strength=s) for s in strengths]  # checks each strength
    if not runs:
        raise UserError("give at least one strength, or (None,) for the options' own", option="strength")
    moment = stretch.check_request(frames, at, at_frame)
    check_cut_list(segments)
    folder = _check_folder(Path(out_dir), overwrite)
    info = probe(input_path, on_error=options.on_error)
    _check_input(info, info.num_frames)
    suffix = _suffix(info, container)
    fmt = container_format(Path("result" + suffix))
    width, height = output_size(info.width, info.height, options)
    encode, notes = encode_for_source(encode or EncodeConfig(), info, fmt, (width, height))
    check_codec(encode, fmt, folder / ("result" + suffix), info.bit_depth)
    runs = [even_for_encoder(r, info, encode) for r in runs]  # as upscale_video rounds an odd size
    width, height = output_size(info.width, info.height, runs[0])
    streams = preflight_video(
        info, folder / ("result" + suffix), fmt, copy_streams=copy_streams, audio_codec=audio_codec,
        size=(width, height), lossless=encode.lossless or encode.codec == "ffv1", check_disk=False,
    )  # fmt: skip
    from realbasicvsr.weights.strength import load_upscale_model

    # Every blend loads before the planning pass, so that a wrong weights file is reported at once (as a run does).
    models = deque(load_upscale_model(weights, strength=r.strength, fidelity_weights=fidelity_weights) for r in runs)
    # The full run's memory plan (window, tiles): the stretch runs by it, and the projection counts its windows.
    mid = getattr(getattr(models[0][0], "config", None), "mid_channels", 64)
    memory_plan = plan_memory(runs[0], info.width, info.height, mid_channels=mid)
    runs = [apply_plan(r, memory_plan) for r in runs]
    options = runs[0]
    planned, num_frames, parts = _plan(info, frames, moment, at_frame, segments, options.overlap)
    first, stop = parts[0].start, parts[-1].stop
    source, read_seconds = _read_context(info, parts, planned.frame_pts)
    folder.mkdir(parents=True, exist_ok=True)
    remove_orphans(folder)  # temporary files of a preview that was killed
    tags = [f"-s{r.strength:g}" if len(runs) > 1 else "" for r in runs]
    done = 0

    def on_frame() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, (stop - first) * len(runs))

    plan_rate = planned.seconds / max(1, len(planned.frame_pts))
    read_rate = read_seconds / max(1, len(source))
    full = projection.full_run_work(
        num_frames, planned.cuts, segments.segment_frames, segments.warmup, options.window, options.overlap
    )
    other_bytes: int | None = None
    results: list[StrengthResult] = []
    pictures = []
    for run_options, tag in zip(runs, tags, strict=True):
        model, note = models.popleft()  # dropped after its run (a GPU holds one model at a time)
        upscaler = Upscaler(model, run_options)
        result_path, wipe_path = folder / f"result{tag}{suffix}", folder / f"wipe{tag}.mp4"
        with limit_cpu_threads(1 if upscaler.device.type != "cpu" else None):
            run = measure.run_stretch(upscaler, source, parts, info, encode, fmt, result_path, wipe_path, on_frame)
        if other_bytes is None:
            other_bytes = measure.other_stream_bytes(run, info, encode, fmt, result_path, streams, notes)
        rates = _rates(run, plan_rate, read_rate)
        size = projection.projected_bytes(
            num_frames, run.result_bytes, run.frames, run.key_bytes, encode.codec or "libx264", other_bytes
        )
        fps = run.frames / run.model_seconds if run.model_seconds > 0 else float("inf")
        results.append(
            StrengthResult(
                strength=run_options.strength,
                weights=note,
                fps=fps,
                model_seconds=run.model_seconds,
                projected_seconds=full.seconds(rates),
                projected_bytes=size,
                result=result_path,
                wipe=wipe_path,
                result_bytes=run.result_bytes,
                key_bytes=run.key_bytes,
                rates=rates,
            )
        )
        label = "result" if run_options.strength is None else f"strength {run_options.strength:g}"
        pictures.append((label, run.middle))
        del model, upscaler
    middle = (first + stop - 1) // 2
    compare_path = folder / "compare.png"
    caption = f"frame {middle} of {num_frames}" + (f" ({stretch.clock(middle / info.fps)})" if info.fps else "")
    compare.compare_image(source[middle].image, pictures, compare_path, caption)
    result = PreviewResult(folder, compare_path, folder / "preview.json", first, stop - 1, num_frames, width,
                           height, tuple(results))  # fmt: skip
    body = _report(result, info, planned, parts, full, runs[0], encode, segments, copy_streams, audio_codec, notes)
    write_text_atomic(result.json, json.dumps(body, indent=1) + "\n")
    return result


def _check_folder(folder: Path, overwrite: bool) -> Path:
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file; give a folder for the preview (it is created)", option="out_dir")
    if folder.is_dir() and not overwrite:
        earlier = sorted(p.name for p in folder.iterdir() if _is_preview_file(p.name))
        if earlier:
            raise UserError(
                f"{folder} holds an earlier preview ({', '.join(earlier[:3])}); use overwrite to replace it, or "
                "give another folder",
                option="overwrite",
            )
    return folder


def _is_preview_file(name: str) -> bool:
    suffix = Path(name).suffix
    stem = name[: len(name) - len(suffix)].split("-s")[0]  # result-s0.5.mp4 -> result
    return name in PREVIEW_NAMES or (stem in PREVIEW_STEMS and suffix in CONTAINERS.values())


def _check_input(info: VideoInfo, frames: int | None) -> None:
    if info.kind != "video" or (frames is not None and frames < 2):
        raise UserError(
            f"{info.path}: a preview needs a video of at least 2 frames; upscale an image directly with "
            "realbasicvsr upscale IN OUT"
        )


def _suffix(info: VideoInfo, container: str | None) -> str:
    if container is not None:
        if container not in CONTAINERS:
            raise UserError(f"unknown container {container!r}; use one of {', '.join(CONTAINERS)}", option="container")
        return CONTAINERS[container]
    suffix = info.path.suffix.lower()
    return suffix if suffix in CONTAINERS.values() else ".mp4"


def _plan(
    info: VideoInfo, frames: int, at: float | None, at_frame: int | None, segments: SegmentConfig, overlap: int
) -> tuple[stretch.Planned, int, list[Segment]]:
    """The planning pass up to the stretch, the video's frame count (counted when the pass reached the end, else
    the container's) and the stretch's parts."""
    claimed = info.num_frames
    first = None if claimed is None else stretch.first_frame(info, claimed, frames, at, at_frame)
    stop = None if first is None else stretch.scan_stop(claimed, first, frames, overlap)
    planned = stretch.plan_prefix(info, stop, segments, claimed)
    count = len(planned.frame_pts) if planned.reached_end or claimed is None else claimed
    _check_input(info, count)
    if first is None or count != claimed:
        first = stretch.first_frame(info, count, frames, at, at_frame)
    known = count if planned.reached_end else len(planned.frame_pts)
    end = min(count, first + frames)
    return planned, count, stretch.stretch_parts(first, end, planned.cuts, segments.warmup, overlap, known)


def _read_context(info: VideoInfo, parts: list[Segment], frame_pts: list[int | None]) -> tuple[dict[int, Frame], float]:
    """The frames of the stretch and its context, by index, read as a segment reads them (a seek), timed."""
    start, stop = parts[0].read_from, parts[-1].read_to
    needed = (stop - start) * info.width * info.height * 3 * (2 if info.bit_depth > 8 else 1)
    if needed > MAX_BUFFER_BYTES:
        raise UserError(
            f"the stretch and its context are {stop - start} frames of {info.width}x{info.height}, "
            f"{human_bytes(needed)} in memory; preview fewer frames",
            option="frames",
        )
    began = time.perf_counter()
    frames = {frame.index: frame for frame in read_frames(info, start, stop, frame_pts)}
    if len(frames) != stop - start:
        raise UserError(f"{info.path}: frames {start} to {stop - 1} did not all decode; preview another moment")
    return frames, time.perf_counter() - began


def _rates(run: measure.StretchRun, plan: float, read: float) -> projection.Rates:
    window = run.window_seconds / max(1, run.window_frames)
    # A stretch at the start of a scene has no warm-up to time: a warm-up frame (cleaning and the forward branch
    # only) costs less than a window frame, so the window rate is an upper bound for it.
    warmup = run.warmup_seconds / run.warmup_frames if run.warmup_frames else window
    return projection.Rates(plan, read, warmup, window, run.encode_seconds / max(1, run.frames))


def _report(
    result: PreviewResult,
    info: VideoInfo,
    planned: stretch.Planned,
    parts: list[Segment],
    full: projection.Work,
    options: UpscaleConfig,
    encode: EncodeConfig,
    segments: SegmentConfig,
    copy_streams: bool,
    audio_codec: str,
    notes: list[str],
) -> dict:
    """The body of preview.json."""
    fps = float(info.fps) if info.fps else None
    first, last = result.first_frame, result.last_frame
    seen = len(planned.frame_pts)
    if not planned.reached_end:
        notes.append(
            f"the frame count is the container's ({result.num_frames}); cuts were looked for in frames 0 to "
            f"{seen - 1} only, and the projection plans the rest as one scene"
        )
    return {
        "fps": result.fps,
        "projected_seconds": result.projected_seconds,
        "projected_bytes": result.projected_bytes,
        "projected": f"{projection.human_seconds(result.projected_seconds)}, {human_bytes(result.projected_bytes)}",
        "weights": result.results[0].weights,
        "input": {
            "path": str(info.path),
            "frames": result.num_frames,
            "frames_counted": planned.reached_end,
            "fps": fps,
            "width": info.width,
            "height": info.height,
            "duration_seconds": result.num_frames / fps if fps else None,
        },
        "output": {"width": result.width, "height": result.height, "codec": encode.codec},
        "stretch": {
            "first_frame": first,
            "last_frame": last,
            "frames": last - first + 1,
            "start": stretch.clock(first / fps) if fps else None,
            "start_seconds": first / fps if fps else None,
            "end_seconds": (last + 1) / fps if fps else None,
            "parts": [asdict(p) for p in parts],
        },
        "strengths": [
            {
                "strength": r.strength,
                "weights": r.weights,
                "fps": r.fps,
                "model_seconds": r.model_seconds,
                "projected_seconds": r.projected_seconds,
                "projected_bytes": r.projected_bytes,
                "result": r.result.name,
                "result_bytes": r.result_bytes,
                "key_frame_bytes": r.key_bytes,
                "wipe": r.wipe.name,
                "seconds_per_frame": asdict(r.rates),
            }
            for r in result.results
        ],
        "full_run_work": asdict(full),
        "planning": {"frames_scanned": seen, "seconds": planned.seconds, "cuts_seen": planned.cuts},
        "settings": {
            "upscale": {**asdict(options), "strength": [r.strength for r in result.results]},
            "encode": asdict(encode),
            "segments": asdict(segments),
            "copy_streams": copy_streams,
            "audio_codec": audio_codec,
        },
        "files": [p.name for p in result.paths],
        "notes": notes,
        "projection": "see docs/preview.md (realbasicvsr.preview.projection)",
    }
