"""CUDA checks and timings, for a machine with an NVIDIA GPU (CI has none, so these paths are checked here).

    python benchmarks/bench_gpu.py [--sections exact,model,upscale,train,loop,pipeline,presets,realloop,data]
                                   [--workers 15] [--json out.json]

  exact    the refvector case (../shared/refvectors or REALBASICVSR_SHARED) on CUDA: fp32 (TF32 off) against the
           reference output, fp16 and bf16 autocast against fp32, windowed fp16 against the whole clip
  model    the full c64b20 model (random weights: speed does not depend on them) through `Upscaler`: frames/s
           at 180x320 for each dtype and layout (interleaved rounds, medians) and at 540x960, peak GPU memory
  upscale  `realbasicvsr upscale` end to end on a generated 320x180 clip with audio, c64b20 weights, default
           dtype (fp16 on CUDA): frames/s, and the output keeps frame count, frame rate and audio
  train    seconds per official-size training step (stage 1 batch 2 and 16, stage 2 batch 1 and 8; synthetic
           batches), bf16 autocast (the CUDA default) and fp32; a variant that does not fit says so
  loop     `realbasicvsr train stage1` (official sizes, real degradations, DataLoader workers) for a few steps,
           then `--resume auto`: the data-wait share of a step and it/s, resume continuity
  pipeline where the upscale pipeline loses time on a GPU (encoder alone, frames path alone, CPU threads)
  presets  the upscale pipeline in process for x264 presets medium / veryfast / ultrafast
  realloop `realbasicvsr train stage1` (batch 16 on one GPU) on real footage with W workers: data-wait share;
           then the stage-2 preset in fp32, which did not fit an H200 in `train`: the one-line error it gives
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

from realbasicvsr.models.realbasicvsr import ModelConfig, RealBasicVSR  # noqa: E402
from realbasicvsr.upscale.config import UpscaleConfig  # noqa: E402
from realbasicvsr.upscale.windows import Upscaler  # noqa: E402

DEVICE = torch.device(os.environ.get("BENCH_GPU_DEVICE", "cuda"))  # cpu: a dry run of the logic
CLI = [sys.executable, "-m", "realbasicvsr"]


def smooth_clip(frames: int, height: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    """A panning textured scene in [0, 1], (3, h, w) per frame (a cleaning pass and real flows, like footage)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 8 + 8, width // 8 + 8, generator=g)
    big = torch.nn.functional.interpolate(coarse, scale_factor=8, mode="bicubic", align_corners=False).clamp(0, 1)[0]
    return [big[:, t % 32 : t % 32 + height, (2 * t) % 32 : (2 * t) % 32 + width].contiguous() for t in range(frames)]


def upscale_rate(model: RealBasicVSR, clip: list[torch.Tensor], dtype: str, channels_last: bool) -> float:
    upscaler = Upscaler(model, UpscaleConfig(device=str(DEVICE), dtype=dtype, channels_last=channels_last))
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
    whole = torch.stack(list(Upscaler(model, UpscaleConfig(device=str(DEVICE), window=8)).iter_tensors(clip))).cpu()
    windowed = torch.stack(list(Upscaler(model, UpscaleConfig(device=str(DEVICE), window=2, overlap=1, dtype="fp16"))
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


def section_upscale(results: dict, workdir: Path, frames: int = 480) -> None:
    from fractions import Fraction

    from bench_upscale import io_only
    from realbasicvsr.media.read import probe, read_frames
    from realbasicvsr.upscale.run import upscale_video
    from realbasicvsr.upscale.windows import to_tensor
    from realbasicvsr.weights import save_release
    from test_video import make_clip, packets_bytes, video_timing

    model = RealBasicVSR(ModelConfig()).eval()
    weights = save_release(model, workdir / "c64b20_random.safetensors")
    source, target = workdir / "in.mp4", workdir / "out.mp4"
    make_clip(source, frames=frames, width=320, height=180, fps=Fraction(24000, 1001))
    command = [*CLI, "upscale", str(source), str(target), "--weights", str(weights), "--device", DEVICE.type]
    start = time.perf_counter()
    summary = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()
    cli_wall = time.perf_counter() - start
    count, _, rate = video_timing(target)
    audio_same = packets_bytes(target, "audio") == packets_bytes(source, "audio")
    print(f"  CLI, {frames} frames 320x180 -> 1280x720 (fp16, x264 CRF 18): {cli_wall:.1f} s wall with start-up")
    print(f"    its summary: {summary}")
    print(f"    output: {count} frames, rate {rate}, audio packets identical {audio_same}")
    options = UpscaleConfig(device=str(DEVICE), dtype="fp16" if DEVICE.type == "cuda" else "fp32")
    upscale_video(source, target, model=model, options=options, overwrite=True)  # warm-up in this process
    start = time.perf_counter()
    upscale_video(source, target, model=model, options=options, overwrite=True)
    in_process = time.perf_counter() - start
    lq = [to_tensor(f.image) for f in read_frames(probe(source))]
    start = time.perf_counter()
    for hr in Upscaler(model, options).iter_tensors(lq):
        hr.float().cpu()
    model_only = time.perf_counter() - start
    start = time.perf_counter()
    io_only(source, workdir / "io.mp4")
    io_seconds = time.perf_counter() - start
    print(f"  in process: pipeline {frames / in_process:.1f} fps, model only {frames / model_only:.1f} fps, "
          f"decode + x4 bicubic + encode without the model {frames / io_seconds:.1f} fps")  # fmt: skip
    results["upscale"] = {"cli_wall_s": cli_wall, "cli_summary": summary, "frames": count, "rate": str(rate),
                          "pipeline_fps": frames / in_process, "model_fps": frames / model_only,
                          "io_fps": frames / io_seconds}  # fmt: skip
    assert count == frames and rate == Fraction(24000, 1001) and audio_same


def section_train(results: dict, steps: int = 3) -> dict:
    from bench_train import official_stage, time_steps

    out = {}
    for stage, batch in (("stage1", 2), ("stage1", 16), ("stage2", 1), ("stage2", 8)):
        for precision in ("bf16", "fp32"):
            config = official_stage(stage)
            config = replace(config, run=replace(config.run, precision=precision))
            name = f"{stage} batch {batch} (30 frames 64x64 -> 256x256) {precision}"
            try:
                times = time_steps(config, batch, DEVICE, warmup=2, steps=steps)
            except torch.cuda.OutOfMemoryError:  # stage 2 at batch 8 in fp32 on an H200: a result, not a failure
                out[f"{stage} batch {batch} {precision}"] = "out of memory"
                print(f"  {name}: out of GPU memory")
            else:
                out[f"{stage} batch {batch} {precision}"] = statistics.median(times)
                print(f"  {name}: {statistics.median(times):.3f} s/step (median of {steps})")
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
    print(f"  stage 1 preset (batch 16 on one GPU), {workers} workers: data-wait share {wait:.3f}, {speed:.2f} it/s "
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
    for batch in (2, 16):
        step = results.get("train", {}).get(f"stage1 batch {batch} bf16")
        if step:
            out[f"gpu_consumes_samples_per_s_batch_{batch}"] = batch / step
            print(f"  one GPU in stage 1 (batch {batch}, bf16) consumes {batch / step:.1f} samples/s: "
                  f"{workers} workers supply {rate / (batch / step):.2f}x that; workers needed at "
                  f"{cpu_ms:.0f} ms/sample: {batch / step * cpu_ms / 1000:.1f}")  # fmt: skip
    results["data"] = out


def warm_pipeline(workdir: Path, frames: int) -> tuple[RealBasicVSR, Path, Path, UpscaleConfig]:
    """The full c64b20 model, a 320x180 clip of `frames` frames without audio, the output path and the options
    (fp16 on CUDA), after one warm-up run of `upscale_video`."""
    from fractions import Fraction

    from realbasicvsr.upscale.run import upscale_video
    from test_video import make_clip

    model = RealBasicVSR(ModelConfig()).eval()
    source, target = workdir / "in.mp4", workdir / "out.mp4"
    make_clip(source, frames=frames, width=320, height=180, fps=Fraction(24000, 1001), audio=False)
    options = UpscaleConfig(device=str(DEVICE), dtype="fp16" if DEVICE.type == "cuda" else "fp32")
    upscale_video(source, target, model=model, options=options, overwrite=True)
    return model, source, target, options


def section_presets(results: dict, workdir: Path, frames: int = 480) -> None:
    """Frames/s of the upscale pipeline in process for x264 presets (on the H200 they barely mattered)."""
    from realbasicvsr.media.write import EncodeConfig
    from realbasicvsr.upscale.run import upscale_video

    model, source, target, options = warm_pipeline(workdir, frames)
    out = {}
    for preset in ("medium", "veryfast", "ultrafast"):
        start = time.perf_counter()
        upscale_video(source, target, model=model, options=options, encode=EncodeConfig(preset=preset),
                      overwrite=True)  # fmt: skip
        out[preset] = frames / (time.perf_counter() - start)
        print(f"  x264 preset {preset:10s} {out[preset]:6.1f} frames/s (320x180 -> 1280x720, fp16)")
    results["presets"] = out


def section_realloop(results: dict, workdir: Path, workers: int, steps: int = 24) -> None:
    """`train stage1` (batch 16 on one GPU, official sizes) on real footage: is the GPU waiting for data?"""
    from PIL import Image

    from bench_degrade import source_frames

    frames, name = source_frames(90)
    data = workdir / "clips"
    for c in range(3):  # three 30-frame clips of real footage (640x272)
        (data / f"clip{c}").mkdir(parents=True)
        for t in range(30):
            Image.fromarray(frames[30 * c + t]).save(data / f"clip{c}" / f"{t:08d}.png")
    run = workdir / "run"
    command = [*CLI, "train", "stage1", "--data", str(data), "--out", str(run), "--device", DEVICE.type,
               "--set", "log.every=1", "--set", "checkpoint.every=1000", "--set", f"data.workers={workers}",
               "--max-steps", str(steps)]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in records if "data_wait" in r and r["step"] > 4]
    wait = statistics.median(r["data_wait"] for r in timed)
    speed = statistics.median(r["it_per_s"] for r in timed)
    print(f"  stage 1 preset on {name}, batch 16, {workers} workers: data-wait share {wait:.2f}, {speed:.2f} it/s "
          f"= {16 * speed:.1f} samples/s (median of steps 5-{steps})")  # fmt: skip
    results["realloop"] = {"data_wait": wait, "it_per_s": speed, "workers": workers}
    oom = subprocess.run(
        [*CLI, "train", "stage2", "--data", str(data), "--out", str(workdir / "oom"), "--device", DEVICE.type,
         "--set", "run.precision=fp32", "--set", "loss.vgg_weights=random", "--set", "data.workers=2",
         "--max-steps", "1"], capture_output=True, text=True,
    )  # fmt: skip
    last = (oom.stderr.strip().splitlines() or [""])[-1]
    print(f"  stage 2 preset (batch 8 on one GPU), fp32: exit status {oom.returncode}; last line: {last}")
    results["oom"] = {"returncode": oom.returncode, "last_line": last}


def section_pipeline(results: dict, workdir: Path, frames: int = 240) -> None:
    """Where the upscale pipeline loses time on a GPU: the whole pipeline, with 1 torch CPU thread, the frames
    path without the encoder (decode, model, to_image), and the encoder alone (720p frames, x264 medium)."""
    from dataclasses import replace as dc_replace

    from realbasicvsr.media.read import probe, read_frames
    from realbasicvsr.media.write import EncodeConfig, VideoWriter
    from realbasicvsr.upscale.run import upscale_video

    model, source, target, options = warm_pipeline(workdir, frames)
    out = {}

    def timed(name, fn):
        start = time.perf_counter()
        fn()
        out[name] = frames / (time.perf_counter() - start)
        print(f"  {name:44s} {out[name]:6.1f} frames/s")

    timed("pipeline", lambda: upscale_video(source, target, model=model, options=options, overwrite=True))
    # upscale_video now limits torch to 1 CPU thread on a GPU by itself, so this row should match the one above
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    timed("pipeline, torch.set_num_threads(1)",
          lambda: upscale_video(source, target, model=model, options=options, overwrite=True))  # fmt: skip
    torch.set_num_threads(threads)
    info = probe(source)
    images = []
    timed("decode + model + to_image, no encoder",
          lambda: images.extend(f.image for f in Upscaler(model, options).upscale(read_frames(info))))  # fmt: skip

    def encode_only():
        writer = VideoWriter(workdir / "enc.mp4", fmt="mp4", width=1280, height=720, source=info,
                             settings=EncodeConfig(), fps=info.fps, copy_streams=False)  # fmt: skip
        for frame, image in zip(read_frames(info), images):
            writer.write(dc_replace(frame, image=image))
        writer.close()

    timed("encoder alone (720p, x264 medium, RGB->YUV)", encode_only)
    results["pipeline"] = out


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="exact,model,upscale,train,loop,pipeline,presets,realloop,data")
    parser.add_argument("--workers", type=int, default=15, help="DataLoader workers for loop and data")
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
                elif name == "presets":
                    section_presets(results, workdir)
                elif name == "realloop":
                    section_realloop(results, workdir, args.workers)
                elif name == "pipeline":
                    section_pipeline(results, workdir)
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
