"""Seconds per 720p frame for each metric on one CPU core.

    python benchmarks/bench_metrics.py [--repeats 5] [--params-dir ../shared/iqa_params]

The frame is a calibration image enlarged to 1280x720 with light noise (NIQE/BRISQUE time depends little on
content). Thread pools are limited to one thread before NumPy is imported; the metrics are interleaved in each
repeat and the median is reported, with the machine named in the JSON line printed at the end.
NRQM is timed on its features plus a synthetic 3 x 2000-tree forest, because the real model.mat is not shipped.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from realbasicvsr.media.clips import read_image  # noqa: E402
from realbasicvsr.metrics import brisque, niqe, psnr, ssim  # noqa: E402
from realbasicvsr.metrics.color import prepare  # noqa: E402
from realbasicvsr.metrics.imresize import imresize  # noqa: E402
from realbasicvsr.metrics.nrqm import NRQMModel, RegressionForest, nrqm_features  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"


def make_frame(seed: int = 0) -> np.ndarray:
    source = read_image(SHARED / "iqa_calib" / "I06.bmp").astype(np.float64)
    enlarged = imresize(source, output_shape=(720, 1280))
    noise = np.random.default_rng(seed).normal(0, 2, enlarged.shape)
    return np.clip(np.floor(enlarged + noise + 0.5), 0, 255).astype(np.uint8)


def synthetic_model(trees: int = 2000, depth: int = 12, seed: int = 0) -> NRQMModel:
    """Complete binary trees of the given depth with random splits: same traversal cost as trained ones."""
    rng = np.random.default_rng(seed)
    nodes = 2 ** (depth + 1) - 1
    index = np.arange(1, nodes + 1, dtype=np.float64)[:, None]
    internal = index <= 2**depth - 1
    forests = []
    for n_features in (18, 45, 75):
        shape = (nodes, trees)
        forests.append(
            RegressionForest(
                left=np.where(internal, 2 * index, 0) * np.ones(shape),
                right=np.where(internal, 2 * index + 1, 0) * np.ones(shape),
                status=np.where(internal, -3.0, -1.0) * np.ones(shape),
                threshold=rng.normal(size=shape),
                value=rng.uniform(0, 10, size=shape),
                variable=rng.integers(1, n_features + 1, size=shape).astype(np.float64),
            )
        )
    return NRQMModel(tuple(forests), np.array([0.0, 0.3, 0.3, 0.4]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--params-dir", type=Path, default=SHARED / "iqa_params")
    parser.add_argument("--skip-nrqm", action="store_true", help="NRQM takes several seconds per frame")
    args = parser.parse_args()
    frame, other = make_frame(0), make_frame(1)
    model = synthetic_model()
    plane = prepare(frame, "y", 4)
    tasks = {
        "niqe": lambda: niqe(frame, crop_border=4, params_dir=args.params_dir),
        "brisque": lambda: brisque(frame, crop_border=4, params_dir=args.params_dir),
        "psnr": lambda: psnr(frame, other, crop_border=4),
        "ssim": lambda: ssim(frame, other, crop_border=4),
    }
    if not args.skip_nrqm:
        tasks["nrqm_features"] = lambda: nrqm_features(plane)
        features = nrqm_features(plane)
        tasks["nrqm_forests"] = lambda: model.predict(*features)
    for task in tasks.values():  # warm-up: parameter files, caches
        task()
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(args.repeats):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:14s} {value:7.3f} s per 1280x720 frame (median of {args.repeats}, one thread)")
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "cpu_model": _cpu_model(),
                "numpy": np.__version__,
                "seconds_per_720p_frame": medians,
            }
        )
    )


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
