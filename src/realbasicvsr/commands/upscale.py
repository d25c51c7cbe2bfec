"""Upscale a video, a folder of frames or an image x4 (or to any size), streaming, with audio and timing kept.

Examples:
  realbasicvsr upscale in.mp4 out.mp4
  realbasicvsr upscale in.mkv out.mkv --outscale 1.5 --crf 16 --preset slow
  realbasicvsr upscale frames/ out_frames/          (a folder of PNGs)
  realbasicvsr upscale in.mp4 out.mkv --codec ffv1  (lossless)
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from realbasicvsr.commands.upscale_flags import (
    FLAGS as SHARED_FLAGS,
)
from realbasicvsr.commands.upscale_flags import (
    add_look_arguments,
    add_model_arguments,
    add_plan_arguments,
    add_running_arguments,
    add_size_and_encoding_arguments,
    upscale_configs,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tqdm import tqdm

__all__ = ["FLAGS", "add_arguments", "run"]

FLAGS = {**SHARED_FLAGS, "backend": "--backend", "onnx": "--onnx"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("input", help="video file, folder of images (natural order) or one image")
    parser.add_argument(
        "output",
        help="video (.mp4/.mkv/.mov/.webm: container by extension), a folder for PNG frames, or an image "
        "(for an image input)",
    )
    add_model_arguments(parser)
    _add_backend(parser)
    add_look_arguments(parser)
    add_running_arguments(parser)
    _add_long_videos(parser)
    add_size_and_encoding_arguments(parser)
    _add_output(parser)


def _add_backend(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("backend (docs/export.md)")
    group.add_argument(
        "--backend",
        choices=("pytorch", "onnxruntime"),
        default="pytorch",
        help="pytorch (default), or onnxruntime: run the ONNX step graphs of `realbasicvsr export-onnx` (CPU, fp32) "
        "with the same windows, segments and I/O; needs the onnx extra",
    )
    group.add_argument("--onnx", metavar="DIR", help="the folder export-onnx wrote, for --backend onnxruntime")


def _onnx_model(args: argparse.Namespace, options):
    """(the onnxruntime model, its note, options on the CPU in fp32) for --backend onnxruntime."""
    from dataclasses import replace

    from realbasicvsr.errors import UserError

    if args.onnx is None:
        raise UserError(
            "--backend onnxruntime runs an exported folder: give --onnx DIR (made by export-onnx)", option="onnx"
        )
    given = [flag for flag, value in (("--weights", args.weights), ("--strength", args.strength),
             ("--fidelity-weights", args.fidelity_weights)) if value is not None]  # fmt: skip
    if given:
        raise UserError(
            f"{given[0]} does not apply to --backend onnxruntime: the weights are in the --onnx folder (export another "
            "folder for other weights)",
            option="onnx",
        )
    from realbasicvsr.deploy.runner import load_onnx_model

    model, note = load_onnx_model(args.onnx)
    return model, note, replace(options, device="cpu", dtype="fp32")


def _add_long_videos(parser: argparse.ArgumentParser) -> None:
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
    add_plan_arguments(group)
    group.add_argument(
        "--batch",
        type=int,
        help="segments of one video run side by side in one batch (default: 1 on CPU; on CUDA up to 8 for small "
        "frames, where one stream leaves the GPU idle)",
    )


def _add_output(parser: argparse.ArgumentParser) -> None:
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
    from fractions import Fraction

    from realbasicvsr.upscale.library import is_video_library
    from realbasicvsr.upscale.plan import SegmentConfig
    from realbasicvsr.upscale.run import upscale_video

    options, encode = upscale_configs(args)  # before the weights: a bad setting is reported at once
    segments = SegmentConfig(args.scenes, args.scene_sensitivity, args.segment_frames, args.warmup, args.batch)
    model = model_note = weights = None
    if args.backend == "onnxruntime":
        if is_video_library(args.input) or args.container is not None:
            from realbasicvsr.errors import UserError

            raise UserError("--backend onnxruntime upscales one video at a time, not a folder of videos", option="onnx")
        model, model_note, options = _onnx_model(args, options)
    else:
        weights = args.weights if args.weights is not None else _default_weights()
    if is_video_library(args.input) or args.container is not None:  # a folder of videos: each one into OUT_DIR
        from realbasicvsr.commands.upscale_library import run_library

        return run_library(args, options, encode, weights, {"segments": segments, "audio_codec": args.audio_codec})
    # Under torchrun every rank upscales, rank 0 alone draws the bar (it counts the others' finished segments).
    rank = os.environ.get("RANK", "0")
    bar, progress = progress_bar(args.quiet or rank != "0")
    on_plan = None if bar is None else planning_progress(bar)
    try:
        with one_line_warnings():
            result = upscale_video(
                args.input,
                args.output,
                model=model,
                model_note=model_note,
                weights=weights,
                fidelity_weights=args.fidelity_weights,
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
                on_note=None if args.quiet or rank != "0" else print_above_bar,
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


def print_above_bar(line: str) -> None:
    """A line the run says before its work (the memory plan), on stderr above the progress bar."""
    import sys

    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """While a command runs: every library RuntimeWarning (and its kinds) shown, each as one line."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("always", RuntimeWarning)
        warnings.showwarning = one_line_warning  # restored by catch_warnings
        yield


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
