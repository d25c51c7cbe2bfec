"""The command line under real crashes and real torchrun: kill -9 at several points, then --resume, gives the frames
of an uninterrupted run; 2 torchrun processes (gloo, CPU) give the single process's output. Outputs are lossless
(FFV1) and compared frame by frame, with their timestamps and the audio packets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from test_segments import real_frames, write_clip

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
TORCHRUN = Path(sys.executable).with_name("torchrun")

# Runs the command line with one function replaced so that the process kills itself (SIGKILL: no cleanup at all) at
# an exact point: after a segment's piece is in place but before its marker ("marker"), or halfway through the
# stitch ("stitch").
DRIVER = """
import os, signal, sys
from realbasicvsr.upscale import segments, workspace
point, index = sys.argv[1], int(sys.argv[2])
if point == "marker":
    real_commit = workspace.commit
    def commit_then_die(tmp, target, **kwargs):
        real_commit(tmp, target, **kwargs)
        if target.name.startswith(f"{index:05d}."):
            os.kill(os.getpid(), signal.SIGKILL)
    workspace.commit = commit_then_die
elif point == "stitch":
    real_concat = segments.concat_pieces
    def half_then_die(pieces, target, *args):
        real_concat(pieces[: len(pieces) // 2], target, *args)
        os.kill(os.getpid(), signal.SIGKILL)
    segments.concat_pieces = half_then_die
from realbasicvsr.cli import main
sys.exit(main(sys.argv[3:]))
"""


def upscale_args(source: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return ["upscale", str(source), str(out), "--weights", str(weights), "--codec", "ffv1", "--segment-frames", "6",
            "--quiet", *extra]  # fmt: skip


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "realbasicvsr", *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300
    )


def video(path: Path) -> tuple[list[np.ndarray], list[int]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [f.to_ndarray(format="rgb24") for f in frames], [f.pts for f in frames]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def assert_same_output(out: Path, reference: Path) -> None:
    frames, pts = video(out)
    ref_frames, ref_pts = video(reference)
    assert len(frames) == len(ref_frames) and pts == ref_pts
    assert all(np.array_equal(a, b) for a, b in zip(frames, ref_frames, strict=True))


def leftovers(folder: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.fixture
def clip(tmp_path) -> Path:
    source = tmp_path / "in.mp4"
    write_clip(source, real_frames("bikes.mp4", 29, start=80), fps=Fraction(25))  # 29: no multiple of 6
    return source


@pytest.mark.slow
def test_kill_9_at_any_point_then_resume_gives_the_uninterrupted_frames(tmp_path, clip, weights):
    reference = tmp_path / "reference.mkv"
    assert cli(*upscale_args(clip, reference, weights)).returncode == 0
    out, work = tmp_path / "out.mkv", tmp_path / "out.mkv.parts"
    # From outside, at moments nobody chose: while segment 2, then segment 3 is being encoded (of 5: 29 frames).
    for segment in (2, 3):
        process = subprocess.Popen(
            [sys.executable, "-m", "realbasicvsr", *upscale_args(clip, out, weights, "--resume")],
            cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not (work.is_dir() and any(p.name.startswith(f".{segment:05d}.") for p in work.iterdir())):
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.01)
        process.kill()
        process.wait(timeout=60)
        assert not out.exists() and len(list(work.glob("*.done.json"))) == segment
    # At exact points: after the last segment's piece is renamed, before its marker; halfway through the stitch.
    for point, index in (("marker", 4), ("stitch", 0)):
        killed = subprocess.run(
            [sys.executable, "-c", DRIVER, point, str(index), *upscale_args(clip, out, weights, "--resume")],
            cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert not out.exists() and work.is_dir()
    finished = cli(*upscale_args(clip, out, weights, "--resume"))
    assert finished.returncode == 0, finished.stderr
    assert_same_output(out, reference)
    assert audio_packets(out) == audio_packets(clip)
    assert leftovers(tmp_path, "in.mp4", "reference.mkv", "out.mkv") == []  # no work folder, no partial file


@pytest.mark.slow
def test_an_unfinished_run_needs_resume_and_refuses_other_options(tmp_path, clip, weights):
    out = tmp_path / "out.mkv"
    killed = subprocess.run(
        [sys.executable, "-c", DRIVER, "marker", "2", *upscale_args(clip, out, weights)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    again = cli(*upscale_args(clip, out, weights))
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "--resume" in again.stderr, again.stderr
    other = cli(*upscale_args(clip, out, weights, "--resume", "--window", "7"))
    assert other.returncode == 1 and "window: 'planned' then, 7 now" in other.stderr, other.stderr
    assert (tmp_path / "out.mkv.parts" / "00001.done.json").exists()  # the finished work is still there


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess:
    command = [str(TORCHRUN), "--standalone", f"--nproc-per-node={nproc}", "-m", "realbasicvsr", *args]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("frames", [29, 1])
def test_two_torchrun_processes_write_what_one_process_writes(tmp_path, weights, frames):
    source = tmp_path / "in.mp4"
    write_clip(source, real_frames("carphone_pristine.mp4", frames, size=(40, 32)), fps=Fraction(30000, 1001))
    single, shared = tmp_path / "single.mkv", tmp_path / "shared.mkv"
    assert cli(*upscale_args(source, single, weights)).returncode == 0
    result = torchrun(*upscale_args(source, shared, weights))
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_output(shared, single)
    assert len(video(shared)[0]) == frames
    assert audio_packets(shared) == audio_packets(single) == audio_packets(source)
    assert leftovers(tmp_path, "in.mp4", "single.mkv", "shared.mkv") == []
