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
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

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
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    results: dict[str, object] = {
        "machine": platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "torch": torch.__version__,
    }
    print(f"# {results['device']}, torch {torch.__version__}")

    if not args.skip_tiny:
        tiny_part(args, device, results)
    if args.official:
        official_part(args, device, results)
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


if __name__ == "__main__":
    sys.exit(main())
