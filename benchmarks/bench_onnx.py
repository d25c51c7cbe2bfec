"""onnxruntime CPU vs PyTorch CPU per LR frame, fp32, the same streaming windows (`Upscaler`), interleaved round
after round in one run; medians and their ratio, with the CPU model.

The model is the bundled compact model (c24, 3 + 2 blocks) unless `--weights` names another; `--full` uses a
random-weight c64b20 (the official architecture: the speed does not depend on the values).

    python benchmarks/bench_onnx.py [--size 160x96] [--frames 6] [--rounds 3] [--threads 2] [--fixed]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model
from realbasicvsr.deploy.export import export_onnx
from realbasicvsr.deploy.runner import load_onnx_model
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.windows import Upscaler


def moving_frames(count: int, width: int, height: int) -> list[torch.Tensor]:
    """Smooth content drifting one pixel per frame, so the flows are not trivial."""
    yy, xx = torch.meshgrid(torch.arange(height + count), torch.arange(width + count), indexing="ij")
    scene = torch.stack([torch.sin(xx / 5.0), torch.cos(yy / 7.0), torch.sin((xx + yy) / 9.0)]) * 0.4 + 0.5
    return [scene[:, i : i + height, i : i + width].contiguous() for i in range(count)]


def seconds_per_frame(model, frames: list[torch.Tensor], config: UpscaleConfig) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in Upscaler(model, config).iter_tensors(frames))
    return (time.perf_counter() - start) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", help="weights file or known name (default: the bundled compact model)")
    parser.add_argument("--full", action="store_true", help="a random-weight c64b20 instead")
    parser.add_argument("--size", default="160x96", help="LR frame size WxH")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fixed", action="store_true", help="export fixed-size graphs (default: dynamic H/W)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(args.threads)
    if args.full:
        torch.manual_seed(0)
        model = RealBasicVSR(ModelConfig()).eval()
        label = "random c64b20"
    else:
        from realbasicvsr.weights.known import bundled_weights_path
        from realbasicvsr.weights.release import load_generator

        weights = args.weights or bundled_weights_path()
        model, label = load_generator(weights), str(weights)
    frames = moving_frames(args.frames, width, height)
    config = UpscaleConfig(window=args.frames, overlap=0, device="cpu", dtype="fp32")
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_onnx(model, Path(tmp) / "graphs", size=(width, height) if args.fixed else None)
        onnx_model, _ = load_onnx_model(folder, threads=args.threads)
        seconds_per_frame(onnx_model, frames[:2], config)  # warm both up (sessions, oneDNN primitives)
        seconds_per_frame(model, frames[:2], config)
        times: dict[str, list[float]] = {"pytorch": [], "onnxruntime": []}
        for _ in range(args.rounds):
            times["pytorch"].append(seconds_per_frame(model, frames, config))
            times["onnxruntime"].append(seconds_per_frame(onnx_model, frames, config))
    import onnxruntime

    print(
        f"CPU: {cpu_model()}; {args.threads} threads; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}"
    )
    shape = "fixed" if args.fixed else "dynamic"
    print(f"model: {label}; {args.frames} frames of {width}x{height} in one window; {shape} graphs; fp32")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        rounds = ", ".join(f"{v * 1000:.0f}" for v in values)
        print(f"{name:12s} median {medians[name] * 1000:8.1f} ms/frame  (rounds: {rounds})")
    print(f"onnxruntime / pytorch time: {medians['onnxruntime'] / medians['pytorch']:.2f}")


if __name__ == "__main__":
    main()
