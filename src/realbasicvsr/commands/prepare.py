"""Cut large training frames into overlapping sub-images (the official REDS preprocessing: 480x480, step 240)."""

from __future__ import annotations

import argparse

# Library setting (`UserError.option`) -> the flag that sets it, for the one-line error (cli.one_line).
FLAGS = {"crop": "--crop", "step": "--step", "threshold": "--threshold"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="folder of clip folders with frames (e.g. REDS/train_sharp)")
    parser.add_argument("dst", help="output folder for <clip>_sNNN sub-clip folders (e.g. REDS/train_sharp_sub)")
    parser.add_argument("--crop", type=int, default=480, help="sub-image size (default 480)")
    parser.add_argument("--step", type=int, default=240, help="distance between sub-images (default 240)")
    parser.add_argument(
        "--threshold", type=int, default=0, help="add an edge-aligned crop when more than this many pixels remain"
    )


def run(args: argparse.Namespace) -> int:
    from realbasicvsr.train.prepare import cut_dataset

    written, skipped = cut_dataset(args.src, args.dst, args.crop, args.step, args.threshold, progress=print)
    print(f"done: {written} sub-clips written, {skipped} already present in {args.dst}")
    return 0
