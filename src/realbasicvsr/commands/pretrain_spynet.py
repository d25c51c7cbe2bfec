"""Pretrain SPyNet (optical flow) from scratch on synthetic motion over bundled photographs; no download needed.

Trains on scikit-image's photographs warped by random camera-like affine motion plus smooth deformations (exact
ground-truth flow), reports the end-point error on pairs from held-out photographs (against the zero-flow baseline)
and the photometric warping error on real clips (against not warping), and writes a `.safetensors` of the
`basic_module.*` weights with a `.json` beside it (sha256, recipe, numbers). Use it for training with
`run.spynet_weights=PATH`.
"""

from __future__ import annotations

import argparse

DEFAULT_OUT = "spynet_synthetic.safetensors"
REAL_CLIPS = ("carphone_pristine", "bikes")

# Library setting (`UserError.option`) -> the flag that sets it, for the one-line error (cli.one_line).
FLAGS = {"steps": "--steps", "batch_size": "--batch-size", "crop": "--crop", "init": "--init"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"weights file to write (default {DEFAULT_OUT})")
    parser.add_argument("--steps", type=int, default=600, help="optimisation steps (default 600)")
    parser.add_argument("--batch-size", type=int, default=16, help="pairs per step (default 16)")
    parser.add_argument("--crop", type=int, default=64, help="pair size in pixels, a multiple of 32 (default 64)")
    parser.add_argument("--lr", type=float, default=3e-5, help="Adam learning rate, cosine-decayed (default 3e-5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--init",
        choices=("gradient", "zero"),
        default="gradient",
        help="start from the wired normal-flow estimator (default) or from a zero-flow network",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop training early after this many minutes (then evaluate)"
    )
    parser.add_argument(
        "--evaluate", metavar="WEIGHTS", help="only evaluate an existing SPyNet file (no training, nothing written)"
    )


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np
    import torch

    from realbasicvsr.errors import UserError
    from realbasicvsr.train import offline_data
    from realbasicvsr.train.spynet import pretrain as flowtrain
    from realbasicvsr.weights.release import save_spynet

    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    config = flowtrain.SpynetPretrainConfig(
        steps=args.steps, batch_size=args.batch_size, crop=args.crop, lr=args.lr, seed=args.seed, init=args.init
    )
    out = Path(args.out)
    if args.evaluate is None and out.suffix != ".safetensors":
        raise UserError(f"--out must end in .safetensors, got {out.name}")
    # Held-out photographs, fixed seed: the same evaluation pairs for every run and for --evaluate.
    heldout = offline_data.images_for("heldout")
    eval_pairs = flowtrain.make_batch(
        heldout, np.random.default_rng(12345), config.eval_pairs, config.crop, config.motion, photometric=False
    )
    if args.evaluate is not None:
        spynet = flowtrain.load_spynet_file(args.evaluate)
        records: list[dict[str, float]] = []
    else:
        spynet, records = flowtrain.pretrain(
            config,
            offline_data.images_for("train"),
            eval_pairs,
            log=lambda line: print(line, flush=True),
            log_every=args.log_every,
            max_seconds=None if args.max_minutes is None else args.max_minutes * 60,
        )
    results: dict[str, object] = {"heldout_synthetic": flowtrain.evaluate_synthetic(spynet, eval_pairs)}
    for name in REAL_CLIPS:
        frames = offline_data.load_video(name, max_frames=30)
        results[f"real_{name}"] = flowtrain.photometric_error(spynet, frames)
    print(json.dumps(results, indent=2))
    if args.evaluate is None:
        info = {
            "description": "SPyNet pretrained from scratch on synthetic motion (realbasicvsr pretrain-spynet)",
            "training_images": [s.name for s in offline_data.IMAGE_SOURCES if s.split == "train"],
            "config": flowtrain.config_dict(config),
            "results": results,
            "log": records,
        }
        path = save_spynet(spynet, out, info)
        print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0
