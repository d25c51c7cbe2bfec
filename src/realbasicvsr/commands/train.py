"""Train or fine-tune RealBasicVSR (stage 1, stage 2 or your own config); runs with DDP under torchrun.

Examples:
  realbasicvsr train tiny --data clips/ --out runs/tiny
  realbasicvsr train stage1 --data REDS/train_sharp_sub --out runs/s1 data.batch_size=8
  realbasicvsr train stage2 --data REDS/train_sharp_sub --out runs/s2 --set run.init_from=runs/s1
  torchrun --nproc-per-node 8 -m realbasicvsr train stage1 --data REDS/train_sharp_sub --out runs/s1
  realbasicvsr train stage1 --data REDS/train_sharp_sub --out runs/s1 --resume auto
"""

from __future__ import annotations

import argparse

# Library setting (`UserError.option`) -> the flag that sets it, for the one-line error (cli.one_line).
FLAGS = {"resume": "--resume", "device": "--device"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("config", help="a preset (stage1, stage2, tiny) or a .yaml/.toml config file")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides right after CONFIG, e.g. data.batch_size=4 optim.lr_g=2e-5 (or use --set)",
    )
    parser.add_argument("--data", required=True, help="folder of clip sub-folders (frames) and/or video files")
    parser.add_argument("--out", required=True, help="run folder: config.yaml, metrics.jsonl, checkpoints/, samples/")
    parser.add_argument("--max-steps", type=int, help="stop when this many steps are done (overrides run.steps)")
    parser.add_argument("--resume", help="'auto': continue from the newest checkpoint in --out; or a checkpoint path")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a config override (repeatable)"
    )
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")


def run(args: argparse.Namespace) -> int:
    from realbasicvsr.errors import UserError
    from realbasicvsr.train.config import dump_yaml, load_config
    from realbasicvsr.train.loop import train

    config = load_config(args.config, [*args.overrides, *args.set])
    if args.print_config:
        print(dump_yaml(config), end="")
        return 0
    if args.max_steps is not None and args.max_steps < 1:
        raise UserError(f"--max-steps must be at least 1, got {args.max_steps}")
    from realbasicvsr.train.dist import check_device

    check_device(args.device)  # before the data are scanned
    result = train(config, args.data, args.out, max_steps=args.max_steps, resume=args.resume, device=args.device)
    # 128 + the signal that stopped it (SIGTERM 143, SIGHUP 129), as a shell reports; Ctrl-C 130
    return (128 + result.stop_signal if result.stop_signal else 130) if result.interrupted else 0
