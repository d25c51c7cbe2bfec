"""`upscale_video`: probe -> decode -> windows through the model -> encode, with safe output handling.

The output is written under a temporary name next to the target and renamed only when every frame is written, so
a failure or Ctrl-C leaves no half-written file. Encoding runs in a background thread so that it overlaps with
the model (on this 2-core CPU the model dominates; on a GPU the encoder would otherwise stall it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import torch

from realbasicvsr.errors import UserError
from realbasicvsr.media.encode import encode_for_source
from realbasicvsr.media.files import human_bytes, remove_orphans, remove_partial, size_of, temporary_path
from realbasicvsr.media.preflight import AudioCodec, StreamPlan, preflight_video
from realbasicvsr.media.read import MediaKind, VideoInfo, probe
from realbasicvsr.media.write import (
    EncodeConfig,
    FrameWriter,
    ImageFolderWriter,
    ImageWriter,
    VideoWriter,
    check_codec,
    container_format,
)
from realbasicvsr.models.realbasicvsr import RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig, output_size, precision_line, resolve_config
from realbasicvsr.upscale.outputs import check_paths, commit_output, output_kind
from realbasicvsr.upscale.plan import Plan, SegmentConfig, auto_batch, check_cut_list, make_plan, run_identity
from realbasicvsr.upscale.segments import batch_groups, processing_order, run_segments, stitch
from realbasicvsr.upscale.windows import Upscaler
from realbasicvsr.upscale.workers import (
    cpu_threads_per_worker,
    in_slurm_array,
    plan_once,
    restarted_by_torchrun,
    worker_options,
    worker_share,
)
from realbasicvsr.upscale.workspace import WorkFolder

ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class UpscaleResult:
    """What a finished run produced."""

    output: Path
    kind: MediaKind
    frames: int
    seconds: float
    width: int
    height: int
    output_bytes: int
    fp32_fallbacks: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Which weights: the name or path given, the default's note (`default_weights`), or "the model given".
    weights: str = ""
    # False for a worker that finished its share while others still work: the last one to finish writes `output`.
    complete: bool = True
    segments: int = 1
    scenes: int = 1
    memory_plan: str = ""  # `MemoryPlan.line()`: the window, tiles and stripes the run used, its estimated peak

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        if not self.complete:
            return (
                f"upscaled {self.frames} frames in {self.seconds:.1f} s ({self.fps:.2f} fps); other workers are "
                f"still on the rest of the {self.segments} segments, and the last to finish writes {self.output}"
            )
        return (
            f"upscaled {self.frames} frames in {self.seconds:.1f} s ({self.fps:.2f} fps) -> {self.output} "
            f"({self.width}x{self.height}, {human_bytes(self.output_bytes)})"
        )


def upscale_video(
    input_path: str | Path,
    output_path: str | Path,
    *,
    model: RealBasicVSR | None = None,
    model_note: str | None = None,
    weights: str | Path | None = None,
    options: UpscaleConfig | None = None,
    encode: EncodeConfig | None = None,
    overwrite: bool = False,
    fps: Fraction | None = None,
    copy_streams: bool = True,
    audio_codec: AudioCodec = "copy",
    progress: ProgressCallback | None = None,
    fidelity_weights: str | Path | None = None,
    segments: SegmentConfig | None = None,
    resume: bool = False,
    workers: tuple[int, int] | None = None,
    on_plan: ProgressCallback | None = None,
    on_note: Callable[[str], None] | None = None,
) -> UpscaleResult:
    """Upscale a video, image folder or image to `output_path` (video, PNG folder or image by its extension).

    Give `model` (`model_note` says what it is, e.g. `realbasicvsr.deploy.runner.load_onnx_model`'s note) or
    `weights` (a path or known name for `realbasicvsr.weights.load_generator`); with neither, the
    default weights run (`realbasicvsr.weights.default_weights`: the cached official release, else the bundled
    compact model), and `UpscaleResult.weights` says which. `options.strength` blends them with their fidelity
    partner, or with `fidelity_weights` (`realbasicvsr.weights.strength`); a given `model` is run as it is.
    `options.device` / `options.dtype` "auto" are resolved
    here (`resolve_config`). `fps` sets the frame rate of a video made from images (default 25). The source's other
    streams (audio, subtitles, cover art, further tracks) are copied when `copy_streams`, its audio re-encoded with
    `audio_codec` "aac" or "opus" (default "copy"); what the output cannot hold is checked before any model work
    (`realbasicvsr.media.preflight`).

    The input is planned first (`segments`: scene cuts, then segments; one decode of the input), then each segment
    is upscaled into the work folder `OUTPUT.parts/`, then the pieces are stitched into the output and the work
    folder is removed. An interrupted run keeps its finished segments there: `resume=True` continues it (and
    refuses a work folder of another input, other settings or other weights); `overwrite=True` starts again. Under
    torchrun or a Slurm job array the processes share the segments (`realbasicvsr.upscale.workers`); the one that
    finishes last stitches, and the others return a result with `complete` False. `workers` = (rank, world) says
    so explicitly ((0, 1): this process alone, as a library of videos shared file by file does). `on_plan` is
    told (frames, estimated total) while the input is planned. The memory plan (`realbasicvsr.upscale.budget`:
    window, tiles, stripes under `options.max_memory`) is made once the weights are loaded, before any model work;
    a budget no plan fits is refused then. `on_note` is told the precision and the plan (`precision_line`,
    `MemoryPlan.line`). Input and output are checked before the weights are loaded, so mistakes are reported fast.
    """
    options = resolve_config(worker_options(options or UpscaleConfig()))
    encode = encode or EncodeConfig()
    segments = segments or SegmentConfig()
    output = Path(output_path)
    info = probe(input_path, on_error=options.on_error)
    check_cut_list(segments)
    kind = output_kind(info, output)
    notes: list[str] = []
    if kind == "video":  # the codec for the source (a deep one gets HEVC Main 10 / VP9 profile 2), before the pieces
        size = output_size(info.width, info.height, options)
        encode, notes = encode_for_source(encode, info, container_format(output), size)
    work = WorkFolder(output, _piece_suffix(kind, output, encode))
    rank, world = workers or worker_share()
    # A shared job (world > 1) joins the work folder its workers share (resume is implied; another input, other
    # settings or other weights are refused); a single run needs resume=True to continue an unfinished one.
    resume = resume or restarted_by_torchrun() or world > 1
    if overwrite and world > 1 and in_slurm_array():
        raise UserError(
            f"overwrite is not for a Slurm job array: a task that starts after the others finished would do the "
            f"whole video again; delete {output} before submitting the job instead",
            option="overwrite",
        )
    if world == 1 and work.in_use():
        raise work.busy()
    if world == 1 and work.exists() and not resume and not overwrite:
        raise _unfinished(output, work)
    if world > 1 and not work.exists() and output.exists() and not overwrite:
        return _written_by_another(output, kind, info, options)
    if not (work.exists() and resume):
        check_paths(info, output, overwrite)
    existed_empty = output.is_dir() and not output.is_symlink()  # an empty folder (check_paths): ours to fill
    if world == 1:  # partial outputs of earlier runs on this target that were killed (a shared job's stitcher may be
        remove_orphans(output.parent, output.name)  # on another machine, where a process id means nothing)
    streams = None
    if kind == "video":
        check_codec(encode, container_format(output), output, info.bit_depth)
        streams = preflight_video(
            info, output, container_format(output), copy_streams=copy_streams, audio_codec=audio_codec,
            size=output_size(info.width, info.height, options), lossless=encode.lossless or encode.codec == "ffv1",
            check_disk=not (work.exists() and resume),
        )  # fmt: skip
    if model is None:
        from realbasicvsr.weights.strength import load_upscale_model

        model, used = load_upscale_model(weights, strength=options.strength, fidelity_weights=fidelity_weights)
    elif options.strength is not None or fidelity_weights is not None:
        raise UserError("a strength blend loads its two weight files: give weights, not a model", option="strength")
    else:
        used = model_note or "the model given"
    if kind == "video":
        options = even_for_encoder(options, info, encode)
    width, height = output_size(info.width, info.height, options)
    start = time.perf_counter()
    segments = replace(segments, batch=auto_batch(segments, options.device, info.width, info.height))
    upscaler = Upscaler(model, options)
    # The longest stream a segment feeds the model: its frames plus warm-up and look-ahead (unknown: a full window).
    longest = None if info.num_frames is None else min(info.num_frames, segments.segment_frames + segments.warmup)
    memory_plan = upscaler.plan_for(info.width, info.height, segments.batch or 1, video_output=kind == "video",
                                    frames=longest)  # fmt: skip
    if on_note is not None:  # before any work: the precision picked here, and the memory plan
        for note in (precision_line(options), memory_plan.line()):
            on_note(note)
    identity = run_identity(info, kind, output, options, encode, segments, model, fps, width, height)

    def make_writer(tmp: Path) -> FrameWriter:
        # The piece's own name sets its format (`_piece_suffix`), which may differ from the output's.
        return _make_writer(kind, tmp, tmp, info, encode, width, height, fps, copy_streams=False)

    # One run holds the work folder; the workers of a distributed job share it (segment by segment, under locks).
    def make() -> Plan:
        if work.exists() and resume:
            return work.resume(identity, clean=world == 1)
        if work.exists():  # a single run, overwrite (checked above): the old work goes
            work.remove(keep_lock=True)
        return work.start(make_plan(info, segments, options.overlap, identity, on_plan), clean=world == 1)

    with work.hold() if world == 1 else contextlib.nullcontext():
        try:
            plan = plan_once(make, lambda: work.resume(identity, clean=False), collective=workers is None)
            with limit_cpu_threads(1 if upscaler.device.type != "cpu" else cpu_threads_per_worker()):
                written = _run(upscaler, info, plan, work, make_writer, progress, rank, world, segments.batch or 1)
            complete = all(work.is_done(s) for s in plan.segments)
            if complete:
                copied = copy_streams if streams is None else streams  # the pre-flight's choice of streams
                _stitch_and_commit(plan, work, kind, output, info, copied, overwrite, existed_empty)
        except BaseException:
            if world == 1 and not work.finished_segments():
                work.remove()  # nothing finished: nothing to resume, leave nothing behind
            raise
    seconds = time.perf_counter() - start
    return UpscaleResult(
        output,
        kind,
        written,
        seconds,
        width,
        height,
        size_of(output) if complete else 0,
        upscaler.fallbacks,
        notes=tuple(notes),
        weights=used,
        complete=complete,
        segments=len(plan.segments),
        scenes=len(plan.cuts) + 1,
        memory_plan=memory_plan.line(),
    )


def _piece_suffix(kind: MediaKind, output: Path, encode: EncodeConfig) -> str:
    """The file type of the pieces: the output's, except that reordering encoders (B-frames) go into .mp4 pieces,
    which store each packet's decode time; Matroska stores presentation times only, and the stitch needs both."""
    if kind == "folder":
        return ""
    suffix = output.suffix.lower()
    if kind == "video" and suffix in (".mkv", ".webm") and encode.codec in ("libx264", "libx265"):
        return ".mp4"
    return suffix


def _unfinished(output: Path, work: WorkFolder) -> UserError:
    return UserError(
        f"an unfinished run of {output} is in {work.path}; resume it with resume=True (same input, options and "
        "weights), or start again with overwrite=True",
        option="resume",
    )


def _written_by_another(output: Path, kind: MediaKind, info: VideoInfo, options: UpscaleConfig) -> UpscaleResult:
    """A worker of a shared job that starts after the others finished everything: nothing is left to do."""
    width, height = output_size(info.width, info.height, options)
    note = f"{output} was already written by the other workers of this job"
    return UpscaleResult(output, kind, 0, 0.0, width, height, size_of(output), notes=(note,))


def _run(
    upscaler: Upscaler,
    info: VideoInfo,
    plan: Plan,
    work: WorkFolder,
    make_writer: Callable[[Path], FrameWriter],
    progress: ProgressCallback | None,
    rank: int,
    world: int,
    batch: int = 1,
) -> int:
    """Upscale every unfinished segment this worker can take (its share first, then any other nobody holds), up to
    `batch` of one shape side by side; returns the frames this worker upscaled. Progress counts every finished
    segment (of earlier runs and of other workers, looked up after each group of ours) plus those in progress."""
    total = plan.num_frames
    finished = work.done_frames(plan)
    current = ours = 0

    def on_frame() -> None:
        nonlocal current, ours
        current, ours = current + width, ours + width
        if progress is not None:
            progress(min(total, finished + current), total)

    if progress is not None:
        progress(finished, total)
    width = 1
    unfinished = [s for s in processing_order(plan.segments, rank, world) if not work.is_done(s)]
    for candidates in batch_groups(unfinished, batch):
        with contextlib.ExitStack() as locks:
            # Each segment under its lock; skip those another process is on or finished meanwhile.
            group = [s for s in candidates if locks.enter_context(work.lock(f"{s.index:05d}")) and not work.is_done(s)]
            if not group:
                continue
            current, width = 0, len(group)
            try:
                run_segments(upscaler, info, plan, group, work, make_writer, on_frame)
            except BaseException:
                ours -= current  # the frames of unfinished segments do not count
                raise
            finished, current = work.done_frames(plan), 0
    return ours


def _stitch_and_commit(
    plan: Plan,
    work: WorkFolder,
    kind: MediaKind,
    output: Path,
    info: VideoInfo,
    copy_streams: bool | StreamPlan,
    overwrite: bool,
    existed_empty: bool,
) -> None:
    """Join the pieces into the output and remove the work folder, under the stitch lock: of workers that finish
    together one stitches, the others wait for it and find the work done."""
    try:
        with work.lock("stitch", wait=True):
            if not work.exists():
                return  # another worker stitched and cleaned up meanwhile
            tmp = temporary_path(output)
            try:
                fmt = container_format(output) if kind == "video" else None
                stitch(plan, work, kind, tmp, info, fmt, copy_streams)
                commit_output(tmp, output, overwrite, existed_empty)
            except BaseException:
                remove_partial(tmp)
                raise
            work.remove(finished=True)
    except FileNotFoundError:
        if work.path.exists():
            raise
        # the folder went before this worker could lock it: another worker stitched


def even_for_encoder(options: UpscaleConfig, info: VideoInfo, encode: EncodeConfig) -> UpscaleConfig:
    """`options` with a scale-derived odd output size rounded down to even when the encoder's pixel format is
    chroma-subsampled (4:2:0 and 4:2:2 need even sizes; as ffmpeg's scale=-2 does). An exact size is kept."""
    width, height = output_size(info.width, info.height, options)
    subsampled = encode.resolved_pix_fmt(info.bit_depth).startswith(("yuv420", "yuv422", "nv12"))
    if subsampled and options.out_size is None and (width % 2 or height % 2):
        return replace(options, out_size=(width - width % 2, height - height % 2))
    return options


@contextlib.contextmanager
def limit_cpu_threads(count: int | None) -> Iterator[None]:
    """Limit torch's CPU threads while a GPU runs the model. Measured on an H200 machine (16 vCPUs,
    benchmarks/bench_gpu.py pipeline): 34 -> 53 frames/s at 320x180 -> 720p, because idle intra-op threads
    kept spinning on the cores the encoder threads need. None leaves the setting alone (CPU inference)."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _make_writer(
    kind: MediaKind,
    tmp: Path,
    output: Path,
    info: VideoInfo,
    encode: EncodeConfig,
    width: int,
    height: int,
    fps: Fraction | None,
    copy_streams: bool,
) -> FrameWriter:
    """The writer of `kind` that writes to the temporary path `tmp` (the final `output` names the format)."""
    if kind == "folder":
        return ImageFolderWriter(tmp)
    if kind == "image":
        return ImageWriter(tmp, output.suffix)
    rate = info.fps if info.kind == "video" and info.fps else (fps or Fraction(25))
    try:
        return VideoWriter(
            tmp,
            fmt=container_format(output),
            width=width,
            height=height,
            source=info,
            settings=encode,
            fps=Fraction(rate).limit_denominator(1_000_000),
            copy_streams=copy_streams,
        )
    except BaseException:
        remove_partial(tmp)
        raise
