"""Export the EMA generator of a training run as release weights (.safetensors), loadable by `upscale`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a training run folder (its newest checkpoint) or a checkpoint file")
    parser.add_argument("output", help="the release file to write, ending in .safetensors")
    parser.add_argument("--raw", action="store_true", help="export the raw generator instead of its EMA")


def run(args: argparse.Namespace) -> int:
    from realbasicvsr.train.export import export_run

    path, step = export_run(args.run, args.output, ema=not args.raw)
    print(f"wrote {path} ({'raw' if args.raw else 'EMA'} generator at step {step})")
    return 0
