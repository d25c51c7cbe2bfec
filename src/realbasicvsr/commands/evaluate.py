"""Score super-resolved frames with MATLAB-compatible metrics (NIQE, BRISQUE, NRQM, PI, PSNR, SSIM).

PRED (and --gt) is a folder of clips (one sub-folder of frames per clip, like VideoLQ) and/or video files, a
folder of images (one clip) or a single video file. `--protocol videolq` is the RealBasicVSR paper's
protocol: frames 0, 50 and 99 of each clip, Y channel, 4-pixel shave (PIRM2018).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from realbasicvsr.errors import UserError

if TYPE_CHECKING:
    from realbasicvsr.metrics.evaluate import EvaluateConfig

METRIC_NAMES = ("psnr", "ssim", "niqe", "brisque", "nrqm", "pi")  # = metrics.evaluate.METRIC_NAMES (light here)
PROTOCOLS = ("pirm", "videolq")  # the presets of metrics.evaluate.PROTOCOLS
# setting name (UserError.option) -> the flag that sets it
FLAGS = {
    "metrics": "--metrics",
    "frames": "--frames",
    "convert_to": "--convert-to",
    "crop_border": "--crop-border",
    "upscale": "--upscale",
    "params_dir": "--params-dir",
    "nrqm_model": "--nrqm-model",
    "model_path": "--nrqm-model",  # metrics.params names the NRQM model file by nrqm()'s argument
    "workers": "--workers",
    "gt": "--gt",
    "short_clips": "--short-clips",
    "json": "--json",
    "csv": "--csv",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", type=Path, help="folder of clip folders / videos / images, or a video file")
    parser.add_argument("--gt", type=Path, help="ground truth with the same layout (needed for psnr, ssim)")
    parser.add_argument("--metrics", default="niqe,brisque", help=f"comma list of {', '.join(METRIC_NAMES)}")
    parser.add_argument("--frames", help="comma list of frame indices to score in each clip (default: all)")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
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


def _parse_list(text: str, what: str, convert: Callable[[str], object]) -> list:
    try:
        return [convert(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError as error:
        raise UserError(f"bad {what} list {text!r}: {error}") from error


def _config(args: argparse.Namespace) -> tuple[EvaluateConfig, list[int] | None]:
    """The scoring config and the frame indices the arguments ask for (presets filled in)."""
    from realbasicvsr.metrics.evaluate import FULL_REFERENCE, PROTOCOLS, EvaluateConfig

    frames_preset, convert_preset, crop_preset = PROTOCOLS.get(args.protocol, (None, "y", 0))
    metrics = tuple(_parse_list(args.metrics, "metrics", str.lower))
    frames = _parse_list(args.frames, "frames", int) if args.frames else frames_preset
    if frames is not None and (not frames or min(frames) < 0):
        raise UserError("--frames must list frame indices >= 0, e.g. --frames 0,50,99")
    crop = crop_preset if args.crop_border is None else args.crop_border
    config = EvaluateConfig(
        metrics, args.convert_to or convert_preset, crop, args.upscale, args.params_dir, args.nrqm_model
    )
    no_reference = [m for m in metrics if m not in FULL_REFERENCE]
    if args.convert_to == "rgb" and no_reference:
        raise UserError(f"--convert-to rgb applies to psnr/ssim only; {', '.join(no_reference)} need y or gray")
    if config.needs_ground_truth and args.gt is None:
        raise UserError("psnr and ssim compare with ground truth: add --gt FOLDER")
    return config, None if frames is None else sorted(set(frames))


def run(args: argparse.Namespace) -> int:
    from realbasicvsr.metrics.evaluate import check_report_path, evaluate

    config, frames = _config(args)
    for path, option in ((args.json, "json"), (args.csv, "csv")):
        if path is not None:
            check_report_path(path, option)  # before the scoring, which can take hours
    evaluation = evaluate(
        args.pred,
        args.gt,
        config=config,
        frames=frames,
        short_clips=args.short_clips,
        workers=args.workers,
        progress=True,
    )
    print(
        f"protocol: {config.convert_to} channel, crop border {config.crop_border}, "
        f"frames {'all' if frames is None else ','.join(map(str, frames))}, upscale x{config.upscale}"
    )
    if evaluation.scored_nothing:  # exit 1: nothing was measured, and a report of empty cells would hide that
        print("\n".join(evaluation.skip_summary()))
        raise UserError(
            f"nothing could be scored: no frame fits {', '.join(config.metrics)} (the lines above say why); no "
            "report was written; score larger frames, or choose metrics that fit them with --metrics"
        )
    print(evaluation.table())
    if evaluation.skipped:  # the run went on without them; say so under the table (exit 0: the rest was scored)
        print("\n".join(evaluation.skip_summary()))
    if args.json:
        evaluation.write_json(args.json)
    if args.csv:
        evaluation.write_csv(args.csv)
    return 0
