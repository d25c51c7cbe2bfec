"""CUDA checks and timings, for a machine with an NVIDIA GPU (CI has none, so these paths are checked here).

    python benchmarks/bench_gpu.py [--sections exact,model,upscale,train,loop,data] [--workers 12] [--json out.json]

  exact    the refvector case (../shared/refvectors or REALBASICVSR_SHARED) on CUDA: fp32 (TF32 off) against the
           reference output, fp16 and bf16 autocast against fp32, windowed fp16 against the whole clip
  model    the full c64b20 model (random weights: speed does not depend on them) through `Upscaler`: frames/s
           at 180x320 for each dtype and layout (interleaved rounds, medians) and at 540x960, peak GPU memory
  upscale  `realbasicvsr upscale` end to end on a generated 320x180 clip with audio, c64b20 weights, default
           dtype (fp16 on CUDA): frames/s, and the output keeps frame count, frame rate and audio
  train    seconds per official-size training step (stage 1 batch 2, stage 2 batch 1; synthetic batches),
           bf16 autocast (the CUDA default) and fp32
  loop     `realbasicvsr train stage1` (official sizes, real degradations, DataLoader workers) for a few steps,
           then `--resume auto`: the data-wait share of a step and it/s, resume continuity
  data     degradation samples/s with W DataLoader workers, and the samples/s one GPU consumes in stage 1

Every section runs even if an earlier one failed; failures print their traceback and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # bench_train / bench_degrade helpers, make_clip

from realbasicvsr.inference import UpscaleOptions, Upscaler  # noqa: E402
from realbasicvsr.models.realbasicvsr import ModelConfig, RealBasicVSR  # noqa: E402

DEVICE = torch.device(os.environ.get("BENCH_GPU_DEVICE", "cuda"))  # cpu: a dry run of the logic
CLI = [sys.executable, "-m", "realbasicvsr"]


def smooth_clip(frames: int, height: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    """A panning textured scene in [0, 1], (3, h, w) per frame (a cleaning pass and real flows, like footage)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 8 + 8, width // 8 + 8, generator=g)
    big = torch.nn.functional.interpolate(coarse, scale_factor=8, mode="bicubic", align_corners=False).clamp(0, 1)[0]
    return [big[:, t % 32 : t % 32 + height, (2 * t) % 32 : (2 * t) % 32 + width].contiguous() for t in range(frames)]


def upscale_rate(model: RealBasicVSR, clip: list[torch.Tensor], dtype: str, channels_last: bool) -> float:
    upscaler = Upscaler(model, UpscaleOptions(device=str(DEVICE), dtype=dtype, channels_last=channels_last))
    torch.cuda.synchronize()
    start = time.perf_counter()
    for hr in upscaler.iter_tensors(clip):
        hr.float().cpu()  # what the CLI does with every frame
    torch.cuda.synchronize()
    return len(clip) / (time.perf_counter() - start)


def section_exact(results: dict) -> None:
    from conftest import SHARED_DIR
    from realbasicvsr.weights import load_generator

    ref_dir = SHARED_DIR / "refvectors"
    lq = torch.load(ref_dir / "input_a_32x48.pt", weights_only=True)["lq"]
    ref = torch.load(ref_dir / "ref_a_32x48_test_thr5.pt", weights_only=True)
    model = load_generator(ref_dir / "small_c16b2_checkpoint.pth", cleaning_threshold=5).to(DEVICE)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        out32 = model(lq.to(DEVICE))[0].cpu()
        diffs = {"fp32 vs reference": (out32 - ref["output"]).abs().max().item()}
        for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
            with torch.autocast("cuda", dtype=dtype):
                hr = model(lq.to(DEVICE))[0]
                diffs[f"{name} autocast vs fp32"] = (hr.float().cpu() - out32).abs().max().item()
    torch.backends.cudnn.allow_tf32 = True
    clip = list(lq[0])
    whole = torch.stack(list(Upscaler(model, UpscaleOptions(device=str(DEVICE), window=8)).iter_tensors(clip))).cpu()
    windowed = torch.stack(list(Upscaler(model, UpscaleOptions(device=str(DEVICE), window=2, overlap=1, dtype="fp16"))
                                .iter_tensors(clip))).float().cpu()  # fmt: skip
    diffs["Upscaler fp16 window 2+1 vs fp32 whole"] = (windowed - whole).abs().max().item()
    for name, value in diffs.items():
        print(f"  {name:42s} max abs diff {value:.2e}")
    results["exact"] = diffs
    assert diffs["fp32 vs reference"] < 1e-4, "CUDA fp32 does not reproduce the reference output"
    assert diffs["fp16 autocast vs fp32"] < 2e-2 and diffs["bf16 autocast vs fp32"] < 5e-2


def section_model(results: dict, rounds: int = 3) -> None:
    torch.backends.cudnn.benchmark = False
    model = RealBasicVSR(ModelConfig()).eval()
    clip = smooth_clip(60, 180, 320)
    variants = [("fp32", False), ("fp32", True), ("bf16", True), ("fp16", False), ("fp16", True)]
    rates: dict[str, list[float]] = {f"{d}-{'cl' if cl else 'nchw'}": [] for d, cl in variants}
    for d, cl in variants:  # warm-up: kernels, cuDNN heuristics
        upscale_rate(model, clip[:20], d, cl)
    for r in range(rounds):
        for d, cl in variants[r % len(variants) :] + variants[: r % len(variants)]:
            rates[f"{d}-{'cl' if cl else 'nchw'}"].append(upscale_rate(model, clip, d, cl))
    out = {name: statistics.median(v) for name, v in rates.items()}
    for name, fps in out.items():
        print(f"  180x320 -> 720x1280  {name:10s} {fps:7.1f} frames/s  ({1000 / fps:6.1f} ms/frame)")
    torch.backends.cudnn.benchmark = True  # not set by the CLI: does autotuning pay for a fixed frame size?
    upscale_rate(model, clip[:20], "fp16", True)
    tuned = statistics.median(upscale_rate(model, clip, "fp16", True) for _ in range(rounds))
    torch.backends.cudnn.benchmark = False
    print(f"  180x320 -> 720x1280  fp16-cl with cudnn.benchmark {tuned:7.1f} frames/s")
    out["fp16-cl cudnn.benchmark"] = tuned
    torch.cuda.reset_peak_memory_stats()
    big = smooth_clip(42, 540, 960)
    upscale_rate(model, big[:14], "fp16", True)
    fps = upscale_rate(model, big, "fp16", True)
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"  540x960 -> 2160x3840 fp16-cl    {fps:7.2f} frames/s, peak GPU memory {peak:.1f} GiB (window 30 + 12)")
    results["model"] = {"fps_180x320": out, "fps_540x960_fp16_cl": fps, "peak_gib_540x960": peak}


def section_upscale(results: dict, workdir: Path) -> None:
    from fractions import Fraction

    from realbasicvsr.weights import save_release
    from test_video import make_clip, packets_bytes, video_timing

    weights = save_release(RealBasicVSR(ModelConfig()), workdir / "c64b20_random.safetensors")
    source, target = workdir / "in.mp4", workdir / "out.mp4"
    make_clip(source, frames=240, width=320, height=180, fps=Fraction(24000, 1001))
    command = [*CLI, "upscale", str(source), str(target), "--weights", str(weights), "--device", DEVICE.type, "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - start
    count, _, rate = video_timing(target)
    audio_same = packets_bytes(target, "audio") == packets_bytes(source, "audio")
    print(f"  240 frames 320x180 -> 1280x720 (fp16, x264 CRF 18): {seconds:.1f} s wall incl. start-up, "
          f"{240 / seconds:.1f} frames/s; frames {count}, rate {rate}, audio kept {audio_same}")  # fmt: skip
    results["upscale"] = {"seconds": seconds, "fps": 240 / seconds, "frames": count, "rate": str(rate)}
    assert count == 240 and rate == Fraction(24000, 1001) and audio_same


def section_train(results: dict, steps: int = 3) -> dict:
    from bench_train import official_stage, time_steps

    out = {}
    for stage, batch in (("stage1", 2), ("stage2", 1)):
        for precision in ("bf16", "fp32"):
            config = official_stage(stage)
            config = replace(config, run=replace(config.run, precision=precision))
            times = time_steps(config, batch, DEVICE, warmup=2, steps=steps)
            out[f"{stage} batch {batch} {precision}"] = statistics.median(times)
            print(f"  {stage} batch {batch} (30 frames 64x64 -> 256x256) {precision}: "
                  f"{statistics.median(times):.3f} s/step (median of {steps})")  # fmt: skip
            torch.cuda.empty_cache()
    results["train"] = out
    return out


def section_loop(results: dict, workdir: Path, workers: int) -> None:
    from bench_train import make_clips

    data = make_clips(workdir / "clips", n_clips=4, n_frames=24, size=320)
    run = workdir / "run"
    common = ["--data", str(data), "--out", str(run), "--device", DEVICE.type, "--set", "log.every=1",
              "--set", "checkpoint.every=10", "--set", f"data.workers={workers}"]  # fmt: skip
    subprocess.run([*CLI, "train", "stage1", *common, "--max-steps", "20"], check=True)
    subprocess.run([*CLI, "train", "stage1", *common, "--max-steps", "25", "--resume", "auto"], check=True)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "step" in r and "data_wait" in r]
    timed = [r for r in records if "data_wait" in r and 3 <= r["step"] <= 20]
    wait = statistics.median(r["data_wait"] for r in timed)
    speed = statistics.median(r["it_per_s"] for r in timed)
    print(f"  stage 1, batch 2, {workers} workers: data-wait share {wait:.3f}, {speed:.2f} it/s "
          f"(steps 3-20); logged steps {steps[0]}..{steps[-1]} across the resume")  # fmt: skip
    results["loop"] = {"data_wait": wait, "it_per_s": speed, "steps": steps}
    assert steps[-1] == 25


def section_data(results: dict, workdir: Path, workers: int) -> None:
    import cv2

    from bench_degrade import loader_rate, per_op, source_frames, write_pngs

    cv2.setNumThreads(1)
    frames, _ = source_frames(40)
    paths = write_pngs(frames, workdir)
    shape = frames.shape[1:3]
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    per_sample = per_op(paths, shape, 12, seed=0)["total"]
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    torch.set_num_threads(threads)
    rate = loader_rate(paths, shape, workers, 60, seed=0)
    cpu_ms = 1000 * statistics.median(per_sample)
    print(f"  one core: {cpu_ms:.0f} ms CPU per official sample (median of 12); "
          f"DataLoader with {workers} workers: {rate:.1f} samples/s")  # fmt: skip
    out = {"ms_per_sample_one_core": cpu_ms, "loader_samples_per_s": rate, "workers": workers}
    step = results.get("train", {}).get("stage1 batch 2 bf16")
    if step:
        out["gpu_consumes_samples_per_s"] = 2 / step
        print(f"  one GPU in stage 1 (batch 2, bf16) consumes {2 / step:.1f} samples/s: the loader supplies "
              f"{rate / (2 / step):.1f}x that")  # fmt: skip
    results["data"] = out


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="exact,model,upscale,train,loop,data")
    parser.add_argument("--workers", type=int, default=12, help="DataLoader workers for loop and data")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA GPU; none is visible to this PyTorch")
    results: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cpus": os.cpu_count()}
    print(f"# {results['device']}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sections.split(","):
            print(f"\n## {name}")
            start = time.perf_counter()
            workdir = Path(tmp) / name
            workdir.mkdir()
            try:
                if name == "exact":
                    section_exact(results)
                elif name == "model":
                    section_model(results)
                elif name == "upscale":
                    section_upscale(results, workdir)
                elif name == "train":
                    section_train(results)
                elif name == "loop":
                    section_loop(results, workdir, args.workers)
                elif name == "data":
                    section_data(results, workdir, args.workers)
                else:
                    raise ValueError(f"unknown section {name!r}")
            except Exception:  # report it and go on to the next section; the exit status says it failed
                traceback.print_exc()
                failed.append(name)
            print(f"  ({time.perf_counter() - start:.0f} s)")
    results["failed"] = failed
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if failed:
        sys.exit(f"failed sections: {', '.join(failed)}")


if __name__ == "__main__":
    main()
