"""Benchmark of the hard-cut detector (realbasicvsr.upscale.scenes) on the labelled set of tests/scene_cases.py.

    python benchmarks/bench_scenes.py [--sensitivities 0,0.25,0.5,0.75,1] [--widths 64] [--repeats 5]

Prints, for each thumbnail width and sensitivity, hits / false cuts / missed cuts and precision / recall per case
family and overall (a hit is a detected cut at exactly a true cut's frame), then the detector's cost in
microseconds per frame (best of --repeats runs over every thumbnail of the set, one process, numpy on one thread
of work) with the CPU model. `--widths 32,64,128` rebuilds the set at other thumbnail widths, to show what
THUMBNAIL_WIDTH buys. Timing on a shared machine is noisy: read the load average printed with it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np

import scene_cases
from machine import cpu_model
from realbasicvsr.upscale import scenes


def cases_at_width(width: int) -> tuple[scene_cases.SceneCase, ...]:
    """The labelled set with thumbnails `width` wide (the module constant is what thumbnail_size reads)."""
    scenes.THUMBNAIL_WIDTH = width
    for cached in (scene_cases.all_cases, scene_cases._wide_thumbs, scene_cases.bikes_ffmpeg_thumbs):
        cached.cache_clear()
    return scene_cases.all_cases()


def ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "  -  "


def report_quality(cases, sensitivity: float) -> None:
    config = scenes.SceneConfig(sensitivity=sensitivity)
    totals: dict[str, list[int]] = {}
    wrong = []
    for case in cases:
        found = scenes.detect_cuts(case.thumbs, config)
        hits, false, missed = scene_cases.score(found, case.cuts)
        for key in (case.family, "overall"):
            row = totals.setdefault(key, [0, 0, 0, 0])
            row[0] += hits
            row[1] += false
            row[2] += missed
            row[3] += 1
        if false or missed:
            wrong.append(f"    {case.name}: found {found}, true {list(case.cuts)}")
    print(f"  sensitivity {sensitivity:.2f}")
    overall = totals.pop("overall")
    for family, (hits, false, missed, count) in [*totals.items(), ("overall", overall)]:
        precision, recall = ratio(hits, hits + false), ratio(hits, hits + missed)
        print(
            f"    {family:11s} cases {count:2d}  hits {hits:2d}  false {false:2d}  missed {missed:2d}"
            f"  precision {precision}  recall {recall}"
        )
    print("\n".join(wrong) if wrong else "    (every case exact)")


def report_cost(cases, repeats: int) -> None:
    thumbs = [t for case in cases for t in case.thumbs]
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for case in cases:
            scenes.detect_cuts(case.thumbs)
        best = min(best, time.perf_counter() - start)
    shape = cases[0].thumbs[0].shape
    print(
        f"  cost: {best / len(thumbs) * 1e6:.0f} us per frame (best of {repeats}, {len(thumbs)} frames, e.g. {shape})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensitivities", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--widths", default=str(scenes.THUMBNAIL_WIDTH))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical), load {', '.join(f'{x:.2f}' for x in load)}")
    print(f"numpy {np.__version__}, python {platform.python_version()}; default {scenes.SceneConfig()}")
    for width in (int(w) for w in args.widths.split(",")):
        start = time.perf_counter()
        cases = cases_at_width(width)
        cuts = sum(len(c.cuts) for c in cases)
        print(
            f"\nthumbnails {width} px wide: {len(cases)} cases, {sum(len(c.thumbs) for c in cases)} frames,"
            f" {cuts} true cuts (set built in {time.perf_counter() - start:.1f} s)"
        )
        for sensitivity in (float(s) for s in args.sensitivities.split(",")):
            report_quality(cases, sensitivity)
        report_cost(cases, args.repeats)


if __name__ == "__main__":
    main()
