"""Turn a clean video or frame folder into a realistic low-quality one with the RealBasicVSR training
degradations (blur, resize, noise, JPEG, video codec; second order, per-frame drift), on whole frames.

The output is `scale` times smaller (rounded down to even sizes). It is written losslessly (.mkv: FFV1 RGB;
.mp4: x264 at CRF 0 in YUV 4:4:4) or as a folder of PNGs (no extension), so what you see is the degradation.
The plan (every sampled value) can be saved with --plan-out and replayed with --plan.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from realbasicvsr.errors import UserError

# setting name (UserError.option) -> the flag that sets it
FLAGS = {
    "overwrite": "--overwrite",
    "scale": "--scale",
    "max_frames": "--max-frames",
    "plan": "--plan",
    "plan_out": "--plan-out",
    "preview": "--preview",
    "seed": "--seed",
    "fps": "--fps",
    "preset": "--preset",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from realbasicvsr.degrade.config import PRESETS  # light: dataclasses only

    parser.add_argument("input", type=Path, help="clean video file or folder of frames")
    parser.add_argument("output", type=Path, help="output .mp4 / .mkv file, or a folder (no extension) for PNGs")
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="official",
        help="degradation recipe: official (the released model's training recipe, default) or fast (x264 "
        "'veryfast' in the codec steps, about 3x faster codec steps)",
    )
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


def check_memory(num_frames: int, height: int, width: int, max_frames: int | None, total_bytes: int) -> None:
    """Refuse a clip whose in-memory degradation would need more than 80 % of `total_bytes`."""
    from realbasicvsr.degrade.video import clip_bytes, frames_that_fit

    count = num_frames if max_frames is None else min(num_frames, max_frames)
    needed = clip_bytes(count, height, width)
    if needed > 0.8 * total_bytes:
        fits = frames_that_fit(height, width, total_bytes)
        raise UserError(
            f"degrading {count} frames of {width}x{height} at once needs about {needed / 2**30:.1f} GiB of the "
            f"{total_bytes / 2**30:.1f} GiB of memory; pass --max-frames {fits} (or fewer) or cut the video"
        )


def run(args: argparse.Namespace) -> int:
    from realbasicvsr.degrade.config import PRESETS
    from realbasicvsr.degrade.video import degrade_video, output_kind, total_memory
    from realbasicvsr.media.read import probe

    output_kind(args.output)  # an unsupported output is refused before the input is even opened
    info = probe(args.input)
    if info.num_frames:  # the whole clip is held in memory: fail before decoding a video that cannot fit
        check_memory(info.num_frames, info.height, info.width, args.max_frames, total_memory())
    result = degrade_video(
        info,
        args.output,
        config=PRESETS[args.preset](),
        seed=args.seed,
        scale=args.scale,
        plan=args.plan,
        unsharp=args.unsharp,
        max_frames=args.max_frames,
        fps=Fraction(args.fps),
        overwrite=args.overwrite,
        plan_out=args.plan_out,
        preview=args.preview,
    )
    print(
        f"{args.input} ({result.frames} frames, {result.width}x{result.height}) -> {args.output} "
        f"({result.out_width}x{result.out_height})"
    )
    print(f"plan: {' -> '.join(result.plan.stages())}")
    return 0
