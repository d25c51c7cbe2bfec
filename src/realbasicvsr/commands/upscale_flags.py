"""The flags that `upscale` and `preview` share (the same settings mean the same output), their types, and
`upscale_configs`, which turns them into the library's configs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    "tile": "--tile",
    "max_memory": "--max-memory",
    "tile_halo": "--tile-halo",
    "strength": "--strength",
    "fidelity_weights": "--fidelity-weights",
    "cleaning_threshold": "--cleaning-threshold",
    "cleaning_passes": "--cleaning-passes",
    "grain": "--grain",
    "grain_size": "--grain-size",
    "grain_seed": "--grain-seed",
    "color_fix": "--color-fix",
}


def size_type(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1920x1080, got {text!r}") from error
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def fps_type(text: str) -> float:
    # Bounded: inf/nan have no frame duration, and below 1/100 s the 1001-denominator rate would round to 0.
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of frames per second, got {text}") from None
    if not 0.01 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be a frame rate from 0.01 to 1000, got {text}")
    return value


def memory_type(text: str) -> int:
    """--max-memory: 6G, 6GB, 512M ... -> bytes (`realbasicvsr.upscale.budget.parse_memory`)."""
    from realbasicvsr.errors import UserError
    from realbasicvsr.upscale.budget import parse_memory

    try:
        return parse_memory(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def strength_list_type(text: str) -> tuple[float, ...]:
    """A comma list of strengths (preview: one comparison each); ranges are checked by the library."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected strengths such as 0,0.5,1, got {text!r}") from None
    if len(values) > 8:
        raise argparse.ArgumentTypeError(f"at most 8 strengths in one preview, got {len(values)}")
    return values


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--weights and --fidelity-weights."""
    model = parser.add_argument_group("model")
    model.add_argument(
        "--weights",
        default=None,
        help="weights: a .pth (official) or .safetensors (ours) path, or a known name (realbasicvsr_x4 = the "
        "official release, downloaded on first use); default: the official release if it is already cached, "
        "else the bundled compact model (never a download)",
    )
    model.add_argument(
        "--fidelity-weights",
        default=None,
        metavar="FILE",
        help="the stage-1 (no GAN) weights that --strength blends with --weights (same architecture); not needed "
        "for realbasicvsr_x4 (its partner realbasicvsr_wogan_x4 is downloaded) or the bundled model",
    )


def add_look_arguments(parser: argparse.ArgumentParser, *, strength_list: bool = False) -> None:
    """The restoration controls (docs/restoration.md). `strength_list`: --strength takes a comma list (preview)."""
    look = parser.add_argument_group(
        "look (no retraining; try them on a few seconds first with `realbasicvsr preview`)",
    )
    look.add_argument(
        "--strength",
        type=strength_list_type if strength_list else float,
        metavar="S[,S...]" if strength_list else "S",
        help="0..1: how much of the GAN look. 1 = the perceptual (stage 2, GAN) model: sharpest, and the 'oil "
        "painting' look on faces and text; 0 = the fidelity (stage 1) model: softer, faithful; values between "
        "blend the two models' weights. Default: the weights as given (realbasicvsr_x4: 1; the bundled model: 0, "
        "its fidelity end)" + ("; a comma list compares several in one image" if strength_list else ""),
    )
    look.add_argument(
        "--cleaning-passes",
        type=nonneg_int,
        metavar="N",
        help="how hard the input is cleaned before the upscale. Each pass runs the cleaning module again: it "
        "removes noise, blocking and ringing, and sharpens edges the way it was trained to; more passes push "
        "further (flatter areas, harder edges, up to a painted look), fewer keep more of the source as it is, "
        "noise included; 0 = no cleaning (for clean sources). Default: one pass",
    )
    look.add_argument(
        "--cleaning-threshold",
        type=float,
        metavar="T",
        help="instead of fixed passes, the official rule: clean up to 3 times, stopping once a pass changes the "
        "picture by less than T (0-255 units) on average; lower T = more passes. 255 = one pass (the official "
        "demo, the default), 5 = the official benchmark setting",
    )
    look.add_argument(
        "--grain",
        type=float,
        metavar="G",
        default=0.0,
        help="add film grain back so restored footage does not look plastic: its strength in 8-bit levels at "
        "mid-grey (2-6 is subtle to visible; default 0 = none). Luma only, new each frame, the same on every run",
    )
    look.add_argument(
        "--grain-size",
        type=float,
        default=1.0,
        metavar="PX",
        help="grain size in pixels of a 1080-line picture, scaled with the output (default 1.0; 2 = coarse)",
    )
    look.add_argument("--grain-seed", type=nonneg_int, default=0, metavar="N", help="grain seed (default 0)")
    look.add_argument(
        "--color-fix",
        nargs="?",
        const="all",
        default="off",
        choices=("all", "chroma"),
        help="keep the input's colours: match each output frame's broad colour and brightness (scales above ~2 input "
        "pixels) to its input frame, which removes colour shifts, blotches and brightness drift the model makes; "
        "fine detail is untouched. --color-fix chroma corrects the colour only and keeps the model's lightness",
    )


def add_plan_arguments(group: argparse._ArgumentGroup) -> None:
    """--scenes, --scene-sensitivity, --segment-frames and --warmup: how a video is planned (`SegmentConfig`)."""
    from realbasicvsr.upscale.plan import DEFAULT_SEGMENT_FRAMES, DEFAULT_WARMUP

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
        "--warmup",
        type=nonneg_int,
        default=DEFAULT_WARMUP,
        help=f"frames before a segment that warm its forward propagation up, not output (default {DEFAULT_WARMUP})",
    )


def add_running_arguments(parser: argparse.ArgumentParser) -> None:
    """Device, precision, windows, tiles, damaged input, memory layout."""
    from realbasicvsr.upscale.config import DEFAULT_OVERLAP, DEFAULT_WINDOW
    from realbasicvsr.upscale.tiles import DEFAULT_TILE_HALO

    run = parser.add_argument_group("running")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    run.add_argument(
        "--dtype",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="precision: auto (default) = fp16 on CUDA, bf16 on a CPU with native bf16 (AMX or AVX512-BF16), fp32 "
        "elsewhere; fp32 is the exact reference path; fp16 is CUDA-only; a window that gives NaN/Inf is redone in fp32",
    )
    run.add_argument(
        "--max-memory",
        type=memory_type,
        metavar="SIZE",
        help="memory the run may use at its peak, e.g. 6G (GiB) or 6GB: the whole process's RAM on a CPU, the GPU's "
        "memory on CUDA. The window, tiles and stripes are planned to fit and printed in one line; a size too small "
        "for any plan is refused before any work, naming the smallest that fits. Default: 3/4 of the free RAM (85 %% "
        "of the free GPU memory)",
    )
    run.add_argument(
        "--window",
        type=int,
        help=f"frames per window (default {DEFAULT_WINDOW}, fewer when --max-memory needs it); given, it is kept",
    )
    run.add_argument(
        "--overlap",
        type=nonneg_int,
        default=DEFAULT_OVERLAP,
        help=f"look-ahead frames run and discarded after each window (default {DEFAULT_OVERLAP})",
    )
    run.add_argument(
        "--tile",
        type=nonneg_int,
        metavar="PX",
        help="split each frame into tiles of about PX x PX input pixels, each run through the whole model on its "
        "own across time and blended back: memory of one tile instead of the frame (0 = whole frames; default: "
        "whole frames unless --max-memory needs tiles)",
    )
    run.add_argument(
        "--tile-halo",
        type=nonneg_int,
        default=DEFAULT_TILE_HALO,
        metavar="PX",
        help=f"input pixels of context around each tile (default {DEFAULT_TILE_HALO}, chosen by measurement: "
        "docs/upscaling.md)",
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


def add_size_and_encoding_arguments(parser: argparse.ArgumentParser) -> None:
    size = parser.add_argument_group("size")
    group = size.add_mutually_exclusive_group()
    group.add_argument("--outscale", type=positive_float, help="output scale vs the input, e.g. 1.5 (default 4)")
    group.add_argument("--size", type=size_type, help="exact output size WIDTHxHEIGHT, e.g. 1920x1080")
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
    enc.add_argument("--fps", type=fps_type, help="frame rate of a video made from images (default 25)")
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


def upscale_configs(args: argparse.Namespace, strength: float | None = None) -> tuple[UpscaleConfig, EncodeConfig]:
    """The library configs of the parsed flags, with "auto" device and dtype settled by the library's rule (so an
    unusable device or precision is reported before anything is loaded). `strength` overrides --strength (the
    preview runs each value of its list)."""
    if strength is None and not isinstance(args.strength, tuple):
        strength = args.strength
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
        tile=args.tile,
        tile_halo=args.tile_halo,
        max_memory=args.max_memory,
        strength=strength,
        cleaning_threshold=args.cleaning_threshold,
        cleaning_passes=args.cleaning_passes,
        grain=args.grain,
        grain_size=args.grain_size,
        grain_seed=args.grain_seed,
        color_fix=args.color_fix,
    )
    options = resolve_config(options)
    encode = EncodeConfig(
        codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt, lossless=args.lossless
    )
    return options, encode
