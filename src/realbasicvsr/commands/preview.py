"""Try the upscale settings on a few seconds of a video before the long run: a before/after image, a wipe video,
the stretch encoded as the run would encode it, and the projected time and size of the whole run.

The stretch runs exactly as a full run runs a segment (the same model, settings, context and grain), so what
compare.png shows is what the full run outputs there. With --strength 0,0.5,1 the image compares the strengths.

Examples:
  realbasicvsr preview in.mp4 --out preview/
  realbasicvsr preview in.mp4 --at 00:01:23 --frames 60 --strength 0,0.5,1 --out preview/
  realbasicvsr preview in.mkv --at-frame 1200 --grain 3 --color-fix --crf 16 --out preview/ --overwrite
"""

from __future__ import annotations

import argparse

from realbasicvsr.commands import upscale_flags
from realbasicvsr.commands.upscale_flags import (
    add_look_arguments,
    add_model_arguments,
    add_plan_arguments,
    add_running_arguments,
    add_size_and_encoding_arguments,
    upscale_configs,
)

__all__ = ["FLAGS", "add_arguments", "run"]

# The shared settings' flags (not --resume and --batch: a preview has no run to resume, one stream) and its own.
FLAGS = {
    **{name: flag for name, flag in upscale_flags.FLAGS.items() if name not in ("resume", "batch")},
    "at": "--at",
    "at_frame": "--at-frame",
    "frames": "--frames",
    "out_dir": "--out",
    "scenes": "--scenes",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("input", help="the video to preview")
    where = parser.add_argument_group("stretch and output")
    where.add_argument("--out", required=True, metavar="DIR", help="folder for the preview files (created)")
    # --at and --at-frame are not an argparse group: the library refuses both in one line, as every other mistake.
    where.add_argument(
        "--at", metavar="TIME", help="where the stretch starts: seconds (83.5) or [HH:]MM:SS[.fff]; default the middle"
    )
    where.add_argument("--at-frame", type=int, metavar="N", help="where the stretch starts, as a frame index")
    where.add_argument(
        "--frames", type=int, default=30, help="frames in the stretch (default 30; context frames are added)"
    )
    where.add_argument(
        "--container",
        choices=("mp4", "mkv", "mov", "webm"),
        help="container of result.* (default: the input's when it is one of these, else mp4)",
    )
    where.add_argument("--overwrite", action="store_true", help="replace an earlier preview in DIR")
    where.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    add_model_arguments(parser)
    add_look_arguments(parser, strength_list=True)
    add_running_arguments(parser)
    add_plan_arguments(
        parser.add_argument_group("scenes and segments (as the full run will use them: the projection counts them)")
    )
    add_size_and_encoding_arguments(parser)


def run(args: argparse.Namespace) -> int:

    from realbasicvsr.commands.upscale import close_bar, one_line_warnings, progress_bar
    from realbasicvsr.preview import preview_video
    from realbasicvsr.upscale.plan import SegmentConfig

    options, encode = upscale_configs(args)  # --strength is a list here: each value is checked below
    strengths = args.strength if args.strength else (None,)
    for strength in strengths:
        upscale_configs(args, strength=strength)  # a strength outside 0..1 is reported before anything loads
    segments = SegmentConfig(args.scenes, args.scene_sensitivity, args.segment_frames, args.warmup)
    bar, progress = progress_bar(args.quiet, desc="preview")
    try:
        with one_line_warnings():
            result = preview_video(
                args.input,
                args.out,
                weights=args.weights,
                fidelity_weights=args.fidelity_weights,
                options=options,
                strengths=strengths,
                at=args.at,
                at_frame=args.at_frame,
                frames=args.frames,
                encode=encode,
                overwrite=args.overwrite,
                progress=progress,
                segments=segments,
                container=args.container,
                copy_streams=not args.no_copy_streams,
                audio_codec=args.audio_codec,
            )
    finally:
        close_bar(bar)
    if not args.quiet:
        print(result.summary())
    return 0
