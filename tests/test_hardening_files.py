"""Issue 14, never lose data: no-replace commits, concurrent upscales, SIGTERM/SIGHUP, orphans of dead processes,
checkpoint fallback and unsafe-pickle refusal, disk full (on a real tmpfs where one can be mounted)."""

from __future__ import annotations

import collections
import errno
import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import realbasicvsr.media.files as files
import realbasicvsr.upscale.run as upscale_run
from realbasicvsr.cli import disk_full, main
from realbasicvsr.errors import UserError
from realbasicvsr.media.files import commit, remove_orphans, rename_noreplace, temporary_path
from realbasicvsr.train.config import CheckpointConfig
from realbasicvsr.train.loop import train
from realbasicvsr.train.state import list_checkpoints, load_checkpoint
from test_train_data import make_clips, tiny_config
from test_video import make_clip

REPO = Path(__file__).resolve().parents[1]
UNSAFE = "is not a checkpoint this tool can load safely (it contains Python objects)"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_clips(tmp_path_factory.mktemp("clips") / "data", n_clips=2, n_frames=4, size=(32, 40))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name or ".tmp-" in p.name)


class PythonObject:  # a class torch.save pickles by reference: weights_only loading must refuse it
    pass


# --- the no-replace commit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("native", [True, False], ids=["renameat2", "fallback"])
def test_commit_without_replace_never_replaces_a_file_or_folder(tmp_path, monkeypatch, native):
    if not native:
        files._renameat2.cache_clear()
        monkeypatch.setattr(files, "_renameat2", lambda: None)
    (tmp_path / "target").write_text("theirs")
    tmp = tmp_path / "tmp"
    tmp.write_text("ours")
    with pytest.raises(FileExistsError):
        commit(tmp, tmp_path / "target", replace=False)
    assert (tmp_path / "target").read_text() == "theirs" and tmp.read_text() == "ours"
    (tmp_path / "folder").mkdir()  # an empty folder: os.rename would replace it
    folder_tmp = tmp_path / "folder_tmp"
    folder_tmp.mkdir()
    (folder_tmp / "0.png").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        rename_noreplace(folder_tmp, tmp_path / "folder")
    assert list((tmp_path / "folder").iterdir()) == []
    commit(tmp, tmp_path / "new", replace=False)
    commit(folder_tmp, tmp_path / "new_folder", replace=False)
    assert (tmp_path / "new").read_text() == "ours" and not tmp.exists()
    assert (tmp_path / "new_folder" / "0.png").is_file() and not folder_tmp.exists()


# --- orphans -----------------------------------------------------------------------------------------------------


def test_remove_orphans_removes_only_our_files_of_dead_processes(tmp_path):
    dead = dead_pid()
    orphan = tmp_path / f".out.mp4.{dead}-0123abcd.partial.mp4"
    orphan_folder = tmp_path / f".frames.{dead}-0123abcd.partial"
    legacy = tmp_path / f".out.mp4.partial-{dead}.mp4"
    old_checkpoint = tmp_path / f".step_00000002.pt.tmp-{dead}"
    live = temporary_path(tmp_path / "out.mp4")  # this process: a live writer
    other_target = tmp_path / f".other.mp4.{dead}-0123abcd.partial.mp4"
    users = [tmp_path / n for n in (".out.mp4.partial.mp4", f".out.mp4.{dead}-0123abcd.partial.mp4.bak", "out.mp4")]
    for path in [orphan, legacy, old_checkpoint, live, other_target, *users]:
        path.write_bytes(b"x")
    orphan_folder.mkdir()
    (orphan_folder / "00000000.png").write_bytes(b"x")

    assert sorted(remove_orphans(tmp_path, "out.mp4")) == sorted([orphan, legacy])
    assert all(p.exists() for p in [live, other_target, old_checkpoint, orphan_folder, *users])
    assert sorted(remove_orphans(tmp_path)) == sorted([orphan_folder, other_target, old_checkpoint])
    assert all(p.exists() for p in [live, *users])
    assert remove_orphans(tmp_path / "missing") == []


def test_upscale_and_checkpoints_clean_orphans_of_their_target(tmp_path, weights):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=2, width=16, height=16, audio=False)
    dead = dead_pid()
    orphan = tmp_path / f".out.mp4.{dead}-0123abcd.partial.mp4"
    orphan.write_bytes(b"x" * 1000)
    upscale_run.upscale_video(source, out, weights=weights)
    assert not orphan.exists() and out.is_file()

    from realbasicvsr.train.state import save_checkpoint

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    stale = folder / f".step_00000001.pt.{dead}-0123abcd.partial.pt"
    stale.write_bytes(b"x")
    save_checkpoint(tmp_path / "run", 1, {"step": 1, "generator": {}}, keep=2)
    assert not stale.exists() and [p.name for p in folder.iterdir()] == ["step_00000001.pt"]


# --- the final rename of upscale ---------------------------------------------------------------------------------


def _appear_during_run(monkeypatch, make_it):
    """Make `make_it()` run while the frames are being upscaled (after the start-up checks)."""
    real_run = upscale_run._run

    def run_then_appear(*args, **kwargs):
        written = real_run(*args, **kwargs)
        make_it()
        return written

    monkeypatch.setattr(upscale_run, "_run", run_then_appear)


@pytest.mark.parametrize("output_name", ["out.mp4", "frames"])
def test_upscale_never_replaces_what_appeared_at_the_target(tmp_path, weights, monkeypatch, output_name):
    source, out = tmp_path / "in.mp4", tmp_path / output_name
    make_clip(source, frames=2, width=16, height=16, audio=False)

    def user_folder():
        out.mkdir()
        (out / "thesis.txt").write_text("precious")

    _appear_during_run(monkeypatch, user_folder)
    with pytest.raises(UserError, match="appeared while upscaling") as caught:
        upscale_run.upscale_video(source, out, weights=weights)
    assert caught.value.option == "overwrite"
    assert (out / "thesis.txt").read_text() == "precious" and partials(tmp_path) == []


def test_an_empty_target_folder_filled_during_the_run_is_kept(tmp_path, weights, monkeypatch):
    source, out = tmp_path / "in.mp4", tmp_path / "frames"
    make_clip(source, frames=2, width=16, height=16, audio=False)
    out.mkdir()  # empty: accepted at the start
    _appear_during_run(monkeypatch, lambda: (out / "notes.txt").write_text("mine"))
    with pytest.raises(UserError, match="appeared while upscaling"):
        upscale_run.upscale_video(source, out, weights=weights)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and partials(tmp_path) == []


def test_overwrite_still_never_deletes_a_folder_that_gained_other_files(tmp_path, weights, monkeypatch):
    source, out = tmp_path / "in.mp4", tmp_path / "frames"
    make_clip(source, frames=2, width=16, height=16, audio=False)
    upscale_run.upscale_video(source, out, weights=weights)
    upscale_run.upscale_video(source, out, weights=weights, overwrite=True)  # PNG frames only: replaced
    _appear_during_run(monkeypatch, lambda: (out / "notes.txt").write_text("mine"))
    with pytest.raises(UserError, match="other than PNG frames"):
        upscale_run.upscale_video(source, out, weights=weights, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.glob("*.png"))) == 2
    assert partials(tmp_path) == []


def test_overwrite_replaces_a_file_that_appeared(tmp_path, weights, monkeypatch):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=2, width=16, height=16, audio=False)
    _appear_during_run(monkeypatch, lambda: out.write_bytes(b"old"))
    upscale_run.upscale_video(source, out, weights=weights, overwrite=True)
    assert out.stat().st_size > 3 and partials(tmp_path) == []


def _command(source: Path, out: Path, weights: Path) -> list[str]:
    return [sys.executable, "-m", "realbasicvsr", "upscale", str(source), str(out), "--weights", str(weights),
            "--preset", "ultrafast", "--quiet"]  # fmt: skip


ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


@pytest.mark.slow
def test_two_concurrent_upscales_on_one_target_exactly_one_wins(tmp_path, weights):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=8, width=32, height=24, audio=False)
    runs = [subprocess.Popen(_command(source, out, weights), cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)]
    runs.append(subprocess.Popen(_command(source, out, weights), cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True))
    errors = [run.communicate(timeout=240)[1] for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 1], errors
    loser = errors[[run.returncode for run in runs].index(1)]
    # The loser either found the winner at work, or lost the final rename (then its frames wait for --resume).
    assert len(loser.strip().splitlines()) == 1, loser
    assert "another run is writing" in loser or ("appeared while upscaling" in loser and "--overwrite" in loser), loser
    assert out.is_file() and partials(tmp_path) == []


# --- signals -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_upscale_with_one_line_and_no_partial_output(tmp_path, weights, sig):
    source, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_clip(source, frames=300, width=64, height=48, audio=False)
    process = subprocess.Popen(_command(source, out, weights), cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        work = tmp_path / "out.mp4.parts"
        while not (work.is_dir() and partials(work)):  # a segment's writer opened its file: frames are being upscaled
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(sig)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + sig, err
    assert err.strip().splitlines() == [f"realbasicvsr upscale: stopped by {sig.name}; partial output was removed"]
    assert not out.exists() and partials(tmp_path) == [] and not work.exists()


# --- checkpoints -------------------------------------------------------------------------------------------------


@pytest.fixture
def unsafe_checkpoint(tmp_path) -> Path:
    path = tmp_path / "step_00000001.pt"
    torch.save({"step": 1, "generator": {}, "generator_ema": {}, "hook": PythonObject()}, path)
    return path


def test_every_checkpoint_loader_refuses_python_objects_in_one_line(tmp_path, unsafe_checkpoint, data_dir, capsys):
    from realbasicvsr.train.setup import build_generator

    with pytest.raises(UserError) as caught:
        load_checkpoint(unsafe_checkpoint)
    assert str(caught.value) == f"{unsafe_checkpoint} {UNSAFE}"
    with pytest.raises(UserError, match=UNSAFE.replace("(", r"\(").replace(")", r"\)")):
        build_generator(tiny_config(run=replace(tiny_config().run, init_from=str(unsafe_checkpoint))))
    with pytest.raises(UserError, match="load safely"):
        train(tiny_config(), data_dir, tmp_path / "run", resume=str(unsafe_checkpoint), stream=io.StringIO())
    assert main(["export", str(unsafe_checkpoint), str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err == f"realbasicvsr export: error: {unsafe_checkpoint} {UNSAFE}\n"
    assert "weights_only" not in err and not (tmp_path / "x.safetensors").exists()
    run_dir = tmp_path / "run_auto"
    (run_dir / "checkpoints").mkdir(parents=True)
    os.link(unsafe_checkpoint, run_dir / "checkpoints" / unsafe_checkpoint.name)
    with pytest.raises(UserError, match="load safely"):  # not skipped as corrupt: a foreign file is an error
        train(tiny_config(), data_dir, run_dir, resume="auto", stream=io.StringIO())


def test_a_plain_container_checkpoint_still_loads(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"step": 1, "generator": collections.OrderedDict(w=torch.zeros(2))}, path)
    assert load_checkpoint(path)["step"] == 1


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_resume_auto_falls_back_to_the_newest_checkpoint_that_loads(tmp_path, data_dir, damage):
    config = tiny_config(checkpoint=CheckpointConfig(every=1, keep=3))
    run_dir = tmp_path / "run"
    train(config, data_dir, run_dir, max_steps=2, stream=io.StringIO())
    newest = list_checkpoints(run_dir)[-1]
    data = newest.read_bytes()
    newest.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])  # as after a power cut
    stream = io.StringIO()
    result = train(config, data_dir, run_dir, max_steps=3, resume="auto", stream=stream)
    log = stream.getvalue()
    assert f"warning: skipping {newest}" in log and "resumed from" in log and "step_00000001.pt at step 1" in log
    assert result.step == 3 and load_checkpoint(newest)["step"] == 2  # the damaged one was rewritten


def test_resume_auto_with_no_readable_checkpoint_is_one_error(tmp_path, data_dir):
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "step_00000001.pt").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 1 checkpoints") as caught:
        train(tiny_config(), data_dir, tmp_path / "run", resume="auto", stream=io.StringIO())
    assert caught.value.option == "resume"


# --- disk full ---------------------------------------------------------------------------------------------------


def test_disk_full_is_recognised_also_when_wrapped():
    assert disk_full(OSError(errno.ENOSPC, "No space left on device", "/data/out.mp4")) == (
        "no space left on /data/out.mp4: free some space (partial output was removed)"
    )
    wrapped = UserError("writing the output failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert disk_full(wrapped, "/data/out.mp4").startswith("no space left on the device of /data/out.mp4: free")
    in_temporary = OSError(errno.ENOSPC, "No space left", f"/data/{temporary_path('frames').name}/00000001.png")
    assert disk_full(in_temporary, "/data/frames").startswith("no space left on /data: free some space")
    assert disk_full(RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1088 vs 1000"))
    assert disk_full(OSError(errno.EACCES, "Permission denied")) is None
    assert disk_full(UserError("bad")) is None


@pytest.fixture
def tiny_disk(tmp_path):
    """A mounted tmpfs (as root on Linux); `resize(kb)` sets its size."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")

    def resize(kb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kb}k", str(mount)], check=True)

    try:
        yield mount, resize
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_upscale_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_disk, tmp_path, weights, capsys):
    disk, _ = tiny_disk
    source = tmp_path / "in.mp4"
    make_clip(source, frames=12, width=64, height=48, audio=False)
    for out in (disk / "frames", disk / "out.mkv"):
        args = ["upscale", str(source), str(out), "--weights", str(weights), "--quiet", "--lossless", "--codec", "ffv1"]
        assert main(args) == 1
        err = capsys.readouterr().err
        if out.suffix:  # a video: the pre-flight sees it cannot fit, before any model work
            expected = f"writing {out} needs up to about "
            assert err.startswith(f"realbasicvsr upscale: error: {expected}") and "free some space" in err, err
            assert err.count("\n") == 1
        else:  # a folder of frames: no estimate, the write itself runs out of space
            expected = f"no space left on {disk}: free some space (partial output was removed)"
            assert err == f"realbasicvsr upscale: error: {expected}\n"
        assert list(disk.iterdir()) == []


def test_a_checkpoint_that_does_not_fit_keeps_the_previous_one(tiny_disk, data_dir, capsys):
    disk, resize = tiny_disk
    resize(32768)
    run_dir = disk / "run"
    config = tiny_config(checkpoint=CheckpointConfig(every=1, keep=2))
    train(config, data_dir, run_dir, max_steps=1, stream=io.StringIO())
    (first,) = list_checkpoints(run_dir)
    used = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    resize((used + first.stat().st_size // 2) // 1024 + 8)  # room for the logs, not for a second checkpoint
    from realbasicvsr.train.config import dump_yaml

    config_file = data_dir.parent / "tiny.yaml"
    config_file.write_text(dump_yaml(config))
    code = main(["train", str(config_file), "--data", str(data_dir), "--out", str(run_dir), "--resume", "auto",
                 "--max-steps", "3"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.splitlines()[-1] == (
        f"realbasicvsr train: error: no space left on the device of {run_dir}: free some space (partial output was "
        "removed)"
    ), err
    assert "Traceback" not in err
    assert list_checkpoints(run_dir) == [first] and load_checkpoint(first)["step"] == 1
    assert partials(run_dir / "checkpoints") == [] and partials(run_dir) == []


def test_training_records_which_signal_stopped_it():
    import realbasicvsr.train.loop as loop

    with loop._StopRequest() as stop:
        assert signal.getsignal(signal.SIGHUP) == stop._handle
        stop._handle(signal.SIGTERM, None)
    assert stop.requested and stop.signum == signal.SIGTERM


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_of_a_command_dies_on_sigterm_as_by_default():
    """DataLoader workers are forks: the CLI's SIGTERM handler they inherit must not raise there (a worker that
    raised waited forever on its queue's feeder thread when the DataLoader terminated it)."""
    from realbasicvsr.cli import _terminate_as_exception

    with _terminate_as_exception():
        pid = os.fork()
        if pid == 0:  # the child: wait for the signal
            time.sleep(30)
            os._exit(0)
        time.sleep(0.5)  # a signal in the first instant after fork is dropped by Python's after-fork reset
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def test_prepare_and_make_dataset_on_a_full_disk_are_one_line_and_leave_no_folder(tiny_disk, tmp_path, capsys):
    from PIL import Image

    disk, _ = tiny_disk
    clip = tmp_path / "src" / "clip1"
    clip.mkdir(parents=True)
    noise = np.random.default_rng(0).integers(0, 255, (4, 520, 520, 3), dtype=np.uint8)
    for i, frame in enumerate(noise):  # noise: PNG cannot compress it into the 64 kB disk
        Image.fromarray(frame).save(clip / f"{i:03d}.png")
    for args, out in (
        (["prepare", str(tmp_path / "src"), str(disk / "sub")], disk / "sub"),
        (["make-dataset", str(disk / "ds"), "--clips-per-image", "1", "--frames", "5"], disk / "ds"),
    ):
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no space left on" in err and "Traceback" not in err, err
        assert not out.exists() and list(disk.iterdir()) == []
