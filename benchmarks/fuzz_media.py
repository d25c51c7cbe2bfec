"""Mutation fuzzing of the media reader (`media.read.probe` + `read_frames`) and of the `upscale` command.

    python benchmarks/fuzz_media.py [--cases 2000] [--seed 0] [--workers 2] [--timeout 10] [--cli 0]
                                    [--cli-timeout 120] [--keep DIR]

Seed files are made with PyAV (mp4/h264+aac, mkv/h264+aac, webm/vp9+opus, PNG), then mutated deterministically
from (seed, case index): byte and bit flips, truncation, chunk duplication and deletion, header corruption and
"interesting" integers (0, 0xFF.., 0x7FFFFFFF) written over the data. Each mutant runs in a worker process that
reads it (a case that takes longer than --timeout is a hang, a worker that dies is a crash); with --cli N the
first N mutants also go through the real `realbasicvsr upscale` command with a tiny model. Reports the counts of
ok / one-line errors (`UserError`) / other exceptions / hangs / crashes, and with --keep the failing inputs.
`tests/test_fuzz_media.py` runs the same loop, a few hundred cases, in CI.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

MUTATIONS = ("flip", "bitflip", "truncate", "duplicate", "delete", "header", "interesting")
INTERESTING = (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\xff", b"\x00")
# Bad outcomes: anything but a decoded file or a UserError.
BAD = ("exception", "hang", "crash")
PEAK_WORKER_MB = 0.0  # the largest resident size a reader worker reached (read_cases updates it)


def make_seeds(folder: Path) -> dict[str, Path]:
    """Four small real files: mp4 (h264 + aac), mkv (h264 + aac), webm (vp9 + opus) and a PNG."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    seeds = {}
    for name, codec, audio in (("clip.mp4", "libx264", "aac"), ("clip.mkv", "libx264", "aac"),
                               ("clip.webm", "libvpx-vp9", "libopus")):  # fmt: skip
        path = folder / name
        _write_clip(av, path, codec, audio)
        seeds[name] = path
    png = folder / "frame.png"
    yy, xx = np.mgrid[0:24, 0:32]
    image = np.stack([xx * 8, yy * 10, (xx + yy) * 4], -1).astype(np.uint8)
    av.VideoFrame.from_ndarray(image, format="rgb24").to_image().save(png)
    seeds[png.name] = png
    return seeds


def _write_clip(av, path: Path, codec: str, audio_codec: str, frames: int = 4) -> None:
    rate = 48000 if audio_codec == "libopus" else 8000
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=Fraction(25))
        video.width, video.height, video.pix_fmt = 32, 24, "yuv420p"
        audio = container.add_stream(audio_codec, rate=rate)
        audio.layout = "mono"
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[0:24, 0:32]
        for i in range(frames):
            image = np.stack([xx * 8 + i * 5, yy * 10, (xx + yy) * 4], -1).astype(np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        samples_needed, pts = int(rate * frames / 25), 0
        while pts < samples_needed:
            chunk = (rng.standard_normal((1, 960)) * 0.1).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, pts
            pts += 960
            container.mux(audio.encode(frame))
        container.mux(audio.encode())


def mutate(data: bytes, seed: int, index: int) -> tuple[bytes, str]:
    """The mutant number `index` of `data` for `seed` (always the same bytes) and its recipe as text."""
    rng = np.random.default_rng([seed, index])
    kind = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
    buf = bytearray(data)
    n = len(buf)
    if kind == "flip":
        spots = rng.integers(0, n, int(rng.integers(1, 9)))
        for spot in spots:
            buf[spot] = int(rng.integers(256))
        recipe = f"flip {len(spots)} bytes"
    elif kind == "bitflip":
        spots = rng.integers(0, n, int(rng.integers(1, 17)))
        for spot in spots:
            buf[spot] ^= 1 << int(rng.integers(8))
        recipe = f"bitflip {len(spots)} bits"
    elif kind == "truncate":
        cut = int(rng.integers(0, n))
        buf = buf[:cut]
        recipe = f"truncate at {cut}"
    elif kind in ("duplicate", "delete"):
        start = int(rng.integers(0, n))
        length = int(rng.integers(1, max(2, min(n - start, 512))))
        chunk = buf[start : start + length]
        if kind == "delete":
            del buf[start : start + length]
            recipe = f"delete {length} at {start}"
        else:
            at = int(rng.integers(0, n))
            buf[at:at] = chunk
            recipe = f"duplicate {length} from {start} to {at}"
    elif kind == "header":
        head = min(n, 256)
        spots = rng.integers(0, head, int(rng.integers(1, 6)))
        for spot in spots:
            buf[spot] = int(rng.integers(256))
        recipe = f"header {len(spots)} bytes"
    else:
        spots = rng.integers(0, n, int(rng.integers(1, 4)))
        for spot in spots:
            value = INTERESTING[int(rng.integers(len(INTERESTING)))]
            buf[spot : spot + len(value)] = value
        recipe = f"interesting values at {len(spots)} places"
    return bytes(buf), recipe


@dataclass(frozen=True)
class Case:
    """One input to try: its file and how it was made."""

    path: Path
    recipe: str


@dataclass(frozen=True)
class Outcome:
    """What reading one case did: status is ok, user_error, exception, hang or crash."""

    case: Case
    status: str
    detail: str
    seconds: float


def make_cases(seeds: dict[str, Path], folder: Path, count: int, seed: int) -> list[Case]:
    """`count` mutants, round robin over the seed files, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(seeds)
    originals = {name: seeds[name].read_bytes() for name in names}
    cases = []
    for index in range(count):
        name = names[index % len(names)]
        data, recipe = mutate(originals[name], seed, index)
        path = folder / f"case{index:05d}{Path(name).suffix}"
        path.write_bytes(data)
        cases.append(Case(path, f"{name} seed {seed} case {index}: {recipe}"))
    return cases


# ---------------------------------------------------------------- the worker side


def _read_one(path: str, max_frames: int) -> dict[str, str]:
    from realbasicvsr.errors import UserError
    from realbasicvsr.media.read import probe, read_frames

    try:
        info = probe(path)
        frames = 0
        for _ in read_frames(info):
            frames += 1
            if frames >= max_frames:
                break
        return {"status": "ok", "detail": f"{frames} frames"}
    except UserError as error:
        text = str(error)
        if "\n" in text.strip() or not text.strip():
            return {"status": "exception", "detail": f"UserError not on one line: {text!r}"}
        return {"status": "user_error", "detail": text[:300]}
    except Exception as error:  # the fuzz target: any other exception is a finding, reported, not swallowed
        import traceback

        where = traceback.extract_tb(error.__traceback__)[-1]
        return {"status": "exception", "detail": f"{type(error).__name__}: {error} at {where.filename}:{where.lineno}"}


def worker_main(memory_gb: float) -> None:
    """Reads one JSON case per stdin line, answers one JSON outcome per stdout line."""
    import resource

    limit = int(memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import av

    av.logging.set_level(av.logging.PANIC)  # FFmpeg's own warnings about damaged data are expected here
    for line in sys.stdin:
        request = json.loads(line)
        answer = _read_one(request["path"], request["max_frames"])
        answer["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


# ---------------------------------------------------------------- the parent side


class _Worker:
    def __init__(self, memory_gb: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--memory-gb", str(memory_gb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        self.peak_mb = 0.0

    def ask(self, path: Path, timeout: float, max_frames: int) -> tuple[str, str]:
        self.process.stdin.write(json.dumps({"path": str(path), "max_frames": max_frames}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return "hang", f"no answer in {timeout:g} s"
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            return "crash", f"worker died with exit code {code}"
        answer = json.loads(line)
        self.peak_mb = max(self.peak_mb, answer["peak_mb"])
        return answer["status"], answer["detail"]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=10)


def read_cases(
    cases: list[Case], workers: int = 2, timeout: float = 10.0, memory_gb: float = 3.0, max_frames: int = 64
) -> list[Outcome]:
    """Every case through probe + read_frames, in `workers` processes; a fresh worker after a hang or crash."""
    todo: queue.Queue[tuple[int, Case]] = queue.Queue()
    for item in enumerate(cases):
        todo.put(item)
    results: dict[int, Outcome] = {}
    peaks: list[float] = []

    def slot() -> None:
        worker = _Worker(memory_gb)
        try:
            while True:
                try:
                    index, case = todo.get_nowait()
                except queue.Empty:
                    return
                start = time.perf_counter()
                status, detail = worker.ask(case.path, timeout, max_frames)
                results[index] = Outcome(case, status, detail, time.perf_counter() - start)
                if status in ("hang", "crash"):
                    peaks.append(worker.peak_mb)
                    worker = _Worker(memory_gb)
        finally:
            peaks.append(worker.peak_mb)
            worker.close()

    threads = [threading.Thread(target=slot) for _ in range(max(1, workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    global PEAK_WORKER_MB
    PEAK_WORKER_MB = max([PEAK_WORKER_MB, *peaks])
    return [results[i] for i in range(len(cases))]


def make_tiny_weights(path: Path) -> Path:
    """A random-init c4, 1 + 1 block generator in the release format (what the upscale tests use)."""
    from realbasicvsr.models import ModelConfig, RealBasicVSR
    from realbasicvsr.weights import save_release

    save_release(RealBasicVSR(ModelConfig(4, 1, 1)), path)
    return path


def upscale_case(case: Case, weights: Path, out_dir: Path, timeout: float, extra: tuple[str, ...] = ()) -> Outcome:
    """One case through `python -m realbasicvsr upscale` (an .mkv output, so audio is stream-copied), with the
    `extra` arguments."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{case.path.stem}{'-'.join(('', *extra))}.mkv"
    command = [sys.executable, "-m", "realbasicvsr", "upscale", str(case.path), str(target), "--weights",
               str(weights), "--device", "cpu", "--preset", "ultrafast", "--quiet", "--overwrite", *extra]  # fmt: skip
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return Outcome(case, "hang", f"upscale gave no result in {timeout:g} s", time.perf_counter() - start)
    seconds = time.perf_counter() - start
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if "Traceback" in done.stderr or done.returncode not in (0, 1):
        tail = " | ".join(lines[-3:])
        status = "crash" if done.returncode < 0 else "exception"
        return Outcome(case, status, f"exit {done.returncode}: {tail[:400]}", seconds)
    if done.returncode == 1:
        errors = [line for line in lines if line.startswith("realbasicvsr upscale: error: ")]
        if len(errors) != 1:
            return Outcome(case, "exception", f"exit 1 without one error line: {lines[-3:]}", seconds)
        return Outcome(case, "user_error", errors[0][:300], seconds)
    return Outcome(case, "ok", "upscaled", seconds)


def upscale_cases(
    cases: list[Case], weights: Path, out_dir: Path, workers: int = 2, timeout: float = 60.0, extra: tuple = ()
) -> list[Outcome]:
    """`upscale_case` for every case, `workers` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(lambda case: upscale_case(case, weights, out_dir, timeout, extra), cases))


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    counts = collections.Counter(outcome.status for outcome in outcomes)
    return {key: counts.get(key, 0) for key in ("ok", "user_error", "exception", "hang", "crash")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--memory-gb", type=float, default=3.0, help="address-space limit of each worker")
    parser.add_argument("--cli", type=int, default=0, help="also run the first N mutants through `upscale`")
    parser.add_argument("--cli-timeout", type=float, default=120.0, help="seconds per `upscale` run (torch import)")
    parser.add_argument("--keep", type=Path, help="copy the inputs of bad outcomes into this folder")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.memory_gb)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = make_cases(make_seeds(tmp / "seeds"), tmp / "cases", args.cases, args.seed)
        start = time.perf_counter()
        outcomes = read_cases(cases, args.workers, args.timeout, args.memory_gb)
        report("read", outcomes, time.perf_counter() - start, args.keep)
        print(f"read: peak resident memory of a worker {PEAK_WORKER_MB:.0f} MB")
        if args.cli:
            start = time.perf_counter()
            weights = make_tiny_weights(tmp / "tiny.safetensors")
            cli = upscale_cases(cases[: args.cli], weights, tmp / "out", args.workers, args.cli_timeout)
            report("upscale", cli, time.perf_counter() - start, args.keep)


def report(name: str, outcomes: list[Outcome], seconds: float, keep: Path | None) -> None:
    counts = summary(outcomes)
    slowest = max((o.seconds for o in outcomes), default=0.0)
    print(f"{name}: {len(outcomes)} cases in {seconds:.1f} s (slowest {slowest:.2f} s): {json.dumps(counts)}")
    distinct = collections.Counter(o.detail.split(" at ")[0][:120] for o in outcomes if o.status in BAD)
    for detail, count in distinct.most_common(20):
        print(f"  {count:5d}  {detail}")
    for outcome in outcomes:
        if outcome.status in BAD:
            print(f"  {outcome.status}: {outcome.case.recipe}: {outcome.detail[:200]}")
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / outcome.case.path.name).write_bytes(outcome.case.path.read_bytes())


if __name__ == "__main__":
    main()
