"""Upscale a video, a folder of frames or an image x4 (or to any size), streaming, with audio and timing kept.

Examples:
  realbasicvsr upscale in.mp4 out.mp4
  realbasicvsr upscale in.mkv out.mkv --outscale 1.5 --crf 16 --preset slow
  realbasicvsr upscale frames/ out_frames/          (a folder of PNGs)
  realbasicvsr upscale in.mp4 out.mkv --codec ffv1  (lossless)
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tqdm import tqdm

    from realbasicvsr.media.write import EncodeConfig
    from realbasicvsr.upscale.config import UpscaleConfig

# Library setting (`UserError.option`) -> the flag that sets it, for the one-line error (cli.one_line).
FLAGS = {
    "weights": "--weights",
    "device": "--device",
    "dtype": "--dtype",
    "window": "--window",
    "overlap": "--overlap",
    "outscale": "--outscale",
    "out_size": "--size",
    "overwrite": "--overwrite",
    "codec": "--codec",
    "crf": "--crf",
    "preset": "--preset",
    "pix_fmt": "--pix-fmt",
    "copy_streams": "--no-copy-streams",
    "audio_codec": "--audio-codec",
    "resume": "--resume",
    "scene_sensitivity": "--scene-sensitivity",
    "segment_frames": "--segment-frames",
    "warmup": "--warmup",
    "batch": "--batch",
    "container": "--container",
    "on_error": "--on-error",
}


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}") from error
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _fps(text: str) -> float:
    # Bounded: inf/nan have no frame duration, and below 1/100 s the 1001-denominator rate would round to 0.
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of frames per second, got {text}") from None
    if not 0.01 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be a frame rate from 0.01 to 1000, got {text}")
    return value


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("input", help="video file, folder of images (natural order) or one image")
    parser.add_argument(
        "output",
        help="video (.mp4/.mkv/.mov/.webm: container by extension), a folder for PNG frames, or an image "
        "(for an image input)",
    )
    _add_model_and_running(parser)
    _add_long_videos(parser)
    _add_size_encoding_and_output(parser)


def _add_long_videos(parser: argparse.ArgumentParser) -> None:
    from realbasicvsr.upscale.plan import DEFAULT_SEGMENT_FRAMES, DEFAULT_WARMUP

    group = parser.add_argument_group(
        "scenes, segments and resume",
        "Each scene (cut at hard cuts) is upscaled on its own; long scenes in segments of --segment-frames. "
        "Finished segments are kept in OUTPUT.parts/ until the output is written, so an interrupted run loses "
        "at most one segment: run the same command with --resume. Under torchrun or a Slurm job array the "
        "processes share the segments.",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run from its finished segments (same input, options and weights)",
    )
    group.add_argument(
        "--scenes",
        default="auto",
        metavar="auto|off|FILE",
        help="auto (default): detect hard cuts and restart the propagation there; off: one scene; FILE: cut "
        "frame indices from an editor (whitespace or comma separated, # comments)",
    )
    group.add_argument(
        "--scene-sensitivity",
        type=float,
        help="0..1 (default 0.5): higher finds more cuts, also weaker ones (a jump cut within one place), lower "
        "fewer; at the default no fade, pan, zoom or flash of our labelled set is cut, above 0.75 some are",
    )
    group.add_argument(
        "--segment-frames",
        type=int,
        default=DEFAULT_SEGMENT_FRAMES,
        help=f"frames per segment of a long scene: the unit of resume and sharing (default {DEFAULT_SEGMENT_FRAMES})",
    )
    group.add_argument(
        "--batch",
        type=int,
        help="segments of one video run side by side in one batch (default: 1 on CPU; on CUDA up to 8 for small "
        "frames, where one stream leaves the GPU idle)",
    )
    group.add_argument(
        "--warmup",
        type=_nonneg_int,
        default=DEFAULT_WARMUP,
        help=f"frames before a segment that warm its forward propagation up, not output (default {DEFAULT_WARMUP})",
    )


def _add_model_and_running(parser: argparse.ArgumentParser) -> None:
    from realbasicvsr.upscale.config import DEFAULT_OVERLAP, DEFAULT_WINDOW

    model = parser.add_argument_group("model")
    model.add_argument(
        "--weights",
        default=None,
        help="weights: a .pth (official) or .safetensors (ours) path, or a known name (realbasicvsr_x4 = the "
        "official release, downloaded on first use); default: the official release if it is already cached, "
        "else the bundled compact model (never a download)",
    )
    model.add_argument(
        "--cleaning-threshold",
        type=float,
        default=255.0,
        help="dynamic refinement threshold in 0-255 units: 255 = one cleaning pass (official demo, default), "
        "5 = the benchmark setting (up to 3 passes)",
    )
    run = parser.add_argument_group("running")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    run.add_argument(
        "--dtype",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="precision: auto = fp16 on CUDA, fp32 elsewhere; fp16 is CUDA-only; a window that gives NaN/Inf is "
        "redone in fp32",
    )
    run.add_argument("--window", type=int, default=DEFAULT_WINDOW, help=f"frames per window (default {DEFAULT_WINDOW})")
    run.add_argument(
        "--overlap",
        type=_nonneg_int,
        default=DEFAULT_OVERLAP,
        help=f"look-ahead frames run and discarded after each window (default {DEFAULT_OVERLAP})",
    )
    run.add_argument(
        "--on-error",
        choices=("stop", "conceal"),
        default="conceal",
        help="damaged input: conceal (default) keeps what FFmpeg conceals and repeats the previous frame for one "
        "that does not decode, with one warning listing them; stop ends at the first, before any model work",
    )
    run.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="NHWC memory layout for weights and activations (default on: faster with oneDNN on CPU and on CUDA)",
    )


def _add_size_encoding_and_output(parser: argparse.ArgumentParser) -> None:
    size = parser.add_argument_group("size")
    group = size.add_mutually_exclusive_group()
    group.add_argument("--outscale", type=_positive_float, help="output scale vs the input, e.g. 1.5 (default 4)")
    group.add_argument("--size", type=_size, help="exact output size WIDTHxHEIGHT, e.g. 1920x1080")
    enc = parser.add_argument_group("encoding (video outputs)")
    enc.add_argument(
        "--codec",
        help="libx264, libx265, libvpx-vp9 or ffv1 (lossless); default libx264, and for a 10-bit or deeper source "
        "HEVC Main 10 (libx265; VP9 profile 2 in .webm), which plays where H.264 High 10 does not",
    )
    enc.add_argument("--crf", type=float, help="quality (lower is better): default 18 x264, 20 x265, 24 VP9")
    enc.add_argument("--preset", help="encoder speed preset (x264/x265: ultrafast ... veryslow; default medium)")
    enc.add_argument("--pix-fmt", help="output pixel format (default yuv420p; yuv420p10le for 10-bit sources)")
    enc.add_argument("--lossless", action="store_true", help="lossless encode (x264 qp 0, x265/VP9 lossless=1)")
    enc.add_argument("--fps", type=_fps, help="frame rate of a video made from images (default 25)")
    enc.add_argument(
        "--no-copy-streams",
        action="store_true",
        help="do not copy the source's other streams (audio, subtitles, cover art, further tracks)",
    )
    enc.add_argument(
        "--audio-codec",
        choices=("copy", "aac", "opus"),
        default="copy",
        help="copy (default): the audio streams as they are; aac or opus: re-encode every audio stream (its "
        "language, title and dispositions kept), for a container that cannot hold the source's audio",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--overwrite", action="store_true", help="replace an existing output")
    out.add_argument(
        "--container",
        choices=("mp4", "mkv", "mov", "webm"),
        help="for a folder of videos: the container of every output (default: each input's own when it is one of "
        "these and the codec fits in it, else mkv)",
    )
    out.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def run(args: argparse.Namespace) -> int:
    import os
    import sys
    import warnings
    from fractions import Fraction

    from realbasicvsr.upscale.library import is_video_library
    from realbasicvsr.upscale.plan import SegmentConfig
    from realbasicvsr.upscale.run import upscale_video

    options, encode = _configs(args)  # before the weights: a bad setting is reported at once
    segments = SegmentConfig(args.scenes, args.scene_sensitivity, args.segment_frames, args.warmup, args.batch)
    weights = args.weights if args.weights is not None else _default_weights()
    if is_video_library(args.input) or args.container is not None:  # a folder of videos: each one into OUT_DIR
        from realbasicvsr.commands.upscale_library import run_library

        return run_library(args, options, encode, weights, {"segments": segments, "audio_codec": args.audio_codec})
    # Under torchrun every rank upscales, rank 0 alone draws the bar (it counts the others' finished segments).
    rank = os.environ.get("RANK", "0")
    bar, progress = progress_bar(args.quiet or rank != "0")
    on_plan = None if bar is None else planning_progress(bar)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", RuntimeWarning)
            warnings.showwarning = one_line_warning  # restored by catch_warnings
            result = upscale_video(
                args.input,
                args.output,
                weights=weights,
                cleaning_threshold=args.cleaning_threshold,
                options=options,
                encode=encode,
                overwrite=args.overwrite,
                fps=Fraction(args.fps).limit_denominator(1001) if args.fps else None,
                copy_streams=not args.no_copy_streams,
                audio_codec=args.audio_codec,
                progress=progress,
                segments=segments,
                resume=args.resume,
                on_plan=on_plan,
            )
    except KeyboardInterrupt:
        close_bar(bar)
        print(f"interrupted: {kept_after_stop(args) or 'the partial output was removed'}", file=sys.stderr)
        raise
    finally:
        close_bar(bar)
    if not args.quiet:
        print(result.summary() if rank == "0" else f"rank {rank}: {result.summary()}")
        for note in result.notes:
            print(f"note: {note}")
        if result.scenes > 1 or result.segments > 1:
            print(f"plan: {result.scenes} scene(s), {result.segments} segment(s)")
        if result.fp32_fallbacks:
            print(f"note: {result.fp32_fallbacks} window(s) were redone in fp32 after reduced precision overflowed")
    return 0


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library warning as one line on stderr ("warning: ..."), without Python's file and source line, above the
    progress bar (tqdm.write), not on it."""
    import sys

    from tqdm import tqdm

    tqdm.write(f"warning: {message}", file=file or sys.stderr)


def kept_after_stop(args: argparse.Namespace) -> str | None:
    """What an interrupted run kept for --resume (its finished segments), for the line the command ends with."""
    from pathlib import Path

    from realbasicvsr.upscale.workspace import work_folder_of

    work = work_folder_of(Path(args.output))
    done = sum(1 for p in work.glob("*.done.json")) if work.is_dir() else 0
    if done:
        return f"{done} finished segment(s) are kept in {work}; run the same command with --resume to continue"
    return None


def _configs(args: argparse.Namespace) -> tuple[UpscaleConfig, EncodeConfig]:
    """The library configs of the parsed flags, with "auto" device and dtype settled by the library's rule (so an
    unusable device or precision is reported before anything is loaded)."""
    from realbasicvsr.media.write import EncodeConfig
    from realbasicvsr.upscale.config import UpscaleConfig, resolve_config

    options = UpscaleConfig(
        window=args.window,
        overlap=args.overlap,
        device=args.device,
        dtype=args.dtype,
        channels_last=args.channels_last,
        outscale=args.outscale,
        out_size=args.size,
        on_error=args.on_error,
    )
    options = resolve_config(options)
    encode = EncodeConfig(
        codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt, lossless=args.lossless
    )
    return options, encode


def _default_weights() -> Path:
    """The library's default weights, with a line on stderr saying which (and, for the bundled model, how to get
    the official one)."""
    import sys

    from realbasicvsr.weights import DEFAULT_WEIGHTS, default_weights

    choice = default_weights()
    # Never download by default: an offline machine would stall. Say which weights are used and how to upgrade.
    upgrade = f" (pass --weights {DEFAULT_WEIGHTS} to download them once)" if choice.source == "bundled" else ""
    print(f"using {choice.note}{upgrade}", file=sys.stderr)
    return choice.path


def progress_bar(quiet: bool, desc: str = "upscaling") -> tuple[tqdm | None, Callable[[int, int | None], None] | None]:
    """(a tqdm bar or None, the progress callback of `upscale_video`). The bar shows once it is told something
    (an error before that stays one line)."""
    if quiet:
        return None, None
    import sys

    from tqdm import tqdm

    bar = tqdm(unit="frame", dynamic_ncols=True, file=sys.stderr, desc=desc, delay=0.01)

    started = False

    def progress(done: int, total: int | None) -> None:
        nonlocal started
        if not started and bar.desc.startswith("planning"):  # the same bar, from the planning pass on
            bar.reset(total)
            bar.set_description(desc, refresh=False)
        if total is not None and bar.total != total:
            bar.total = total
        if not started and done:  # a resumed run: the frames done before do not count in the rate or the ETA
            bar.initial = bar.n = bar.last_print_n = done
            bar.refresh()
        started = True
        bar.update(done - bar.n)

    return bar, progress


def planning_progress(bar: tqdm) -> Callable[[int, int | None], None]:
    """The `on_plan` callback of `upscale_video`: the bar counts the planning pass first (one quick decode)."""

    def on_plan(done: int, total: int | None) -> None:
        bar.set_description("planning", refresh=False)
        bar.total = total if total is not None and total >= done else None
        bar.update(done - bar.n)

    return on_plan


def close_bar(bar: tqdm | None) -> None:
    if bar is not None:
        bar.close()
