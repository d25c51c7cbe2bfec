"""Libraries of videos: `upscale_library` and `realbasicvsr upscale DIR_OF_VIDEOS OUT_DIR` on real clips made with
PyAV in tmp_path (tiny random-init model in our release format, 32x24 inputs)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import av
import numpy as np
import pytest

from realbasicvsr.cli import main
from realbasicvsr.errors import UserError
from realbasicvsr.media.read import probe
from realbasicvsr.media.write import EncodeConfig
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.library import is_video_library, output_names, upscale_library
from realbasicvsr.upscale.workers import worker_device, worker_share
from realbasicvsr.weights import load_generator
from test_video import make_clip

pytestmark = pytest.mark.usefixtures("one_thread")

SHARE_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    *(f"SLURM_ARRAY_TASK_{s}" for s in ("ID", "COUNT", "MIN", "STEP")),
)
FAST = {"encode": EncodeConfig(preset="ultrafast"), "options": UpscaleConfig(device="cpu")}


@pytest.fixture(autouse=True)
def single_worker(monkeypatch):
    """No launcher variables from the environment the tests run in: each test sets its own."""
    for name in SHARE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def model(weights):
    return load_generator(weights)


def make_library(folder: Path, names_and_frames: dict[str, int]) -> Path:
    """Real clips (32x24, no audio): libx264 for .mp4/.mkv/.mov, VP9 for .webm, MPEG-4 part 2 for .avi."""
    folder.mkdir(parents=True, exist_ok=True)
    codecs = {".webm": "libvpx-vp9", ".avi": "mpeg4"}
    for seed, (name, frames) in enumerate(names_and_frames.items()):
        path = folder / name
        make_clip(
            path, frames=frames, width=32, height=24, audio=False, seed=seed, codec=codecs.get(path.suffix, "libx264")
        )
    return folder


def frames_and_size(path: Path) -> tuple[int, int, int]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return len(frames), frames[0].width, frames[0].height


def faststart_mp4(path: Path, frames: int) -> bytes:
    """An MP4 with its index first (+faststart), so that cutting its end leaves a file that opens and then fails to
    decode midway; returns its bytes."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path.read_bytes()


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".partial" in p.name]


def test_cli_upscales_every_video_and_reports_the_corrupt_one(tmp_path, weights, capsys):
    library = make_library(tmp_path / "lib", {"b10.mp4": 7, "b2.mkv": 6, "old.avi": 8})
    (library / "bad.mp4").write_bytes(np.random.default_rng(1).bytes(3000))  # random bytes named .mp4
    whole = faststart_mp4(tmp_path / "whole.mp4", frames=10)
    (library / "cut.mp4").write_bytes(whole[: len(whole) * 7 // 10])  # its index lists 10 frames; 4 decode
    make_clip(library / ".hidden.mp4", frames=2, width=32, height=24, audio=False)  # hidden: not in the library
    make_library(library / "sub", {"nested.mp4": 2})  # sub-folders are not searched
    out = tmp_path / "out" / "up"  # created, parents too

    code = main(["upscale", str(library), str(out), "--weights", str(weights), "--preset", "ultrafast"])

    captured = capsys.readouterr()
    assert code == 1
    # The cut file still plays: by default (--on-error conceal) it is upscaled with its one undecodable frame
    # replaced by the one before (7 frames: 6 decode, as an independent decode shows), with one warning.
    assert sorted(p.name for p in out.iterdir()) == ["b10.mp4", "b2.mkv", "cut.mp4", "old.mkv"]  # .avi -> .mkv
    assert frames_and_size(out / "b10.mp4") == (7, 128, 96)
    assert frames_and_size(out / "b2.mkv") == (6, 128, 96)
    assert frames_and_size(out / "old.mkv") == (8, 128, 96)
    assert frames_and_size(out / "cut.mp4") == (7, 128, 96)
    errors = [line for line in captured.err.splitlines() if ": failed: " in line]
    assert [line.split(":")[0] for line in errors] == ["bad.mp4"]
    assert "is not a video or image that FFmpeg can read" in errors[0]
    warned = [line for line in captured.err.splitlines() if line.startswith("warning: ") and "cut.mp4" in line]
    assert len(warned) == 1 and "1 that could not be decoded, each replaced by the frame before it" in warned[0]
    table = captured.out.splitlines()
    assert [row.split()[0] for row in table[1:-1]] == ["b2.mkv", "b10.mp4", "bad.mp4", "cut.mp4", "old.avi"]  # natural
    assert "ok" in table[1] and "failed" in table[3] and "ok" in table[4]
    assert table[-1].startswith("5 videos: 4 ok, 0 skipped, 1 failed; 28 frames")
    assert leftovers(out) == []


def test_finished_outputs_are_skipped_and_overwrite_redoes_them(tmp_path, weights, model):
    library = make_library(tmp_path / "lib", {"a.mp4": 6, "b.mp4": 9})
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "b.mp4"
    mine.write_bytes(b"the user's own file")  # an existing output is a finished one: never replaced by default
    calls, events = [], []

    first = upscale_library(
        library,
        out,
        weights=weights,
        progress=lambda done, total: calls.append((done, total)),
        on_file=lambda position, count, source, result: events.append((position, count, source.name, result)),
        **FAST,
    )
    assert [(f.source.name, f.status, f.frames) for f in first.files] == [("a.mp4", "ok", 6), ("b.mp4", "skipped", 0)]
    assert mine.read_bytes() == b"the user's own file"
    assert calls[-1] == (6, 6) and all(b[0] >= a[0] for a, b in itertools.pairwise(calls))
    assert [(e[0], e[1], e[2], e[3] and e[3].status) for e in events] == [
        (1, 2, "a.mp4", None),
        (1, 2, "a.mp4", "ok"),
        (2, 2, "b.mp4", "skipped"),
    ]

    made = (out / "a.mp4").stat()
    # All finished: nothing to load (weights that do not exist would raise), nothing touched.
    again = upscale_library(library, out, weights=tmp_path / "missing.safetensors", **FAST)
    assert [f.status for f in again.files] == ["skipped", "skipped"] and not again.failed
    assert (out / "a.mp4").stat().st_mtime_ns == made.st_mtime_ns

    redone = upscale_library(library, out, model=model, overwrite=True, **FAST)
    assert [(f.status, f.frames) for f in redone.files] == [("ok", 6), ("ok", 9)]
    assert (out / "a.mp4").stat().st_ino != made.st_ino  # a new file renamed into place
    assert frames_and_size(mine) == (9, 128, 96)


def test_cli_notes_skipped_files_and_exits_0(tmp_path, weights, capsys):
    library = make_library(tmp_path / "lib", {"a.mp4": 6})
    out = tmp_path / "out"
    args = ["upscale", str(library), str(out), "--weights", str(weights), "--preset", "ultrafast"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 0
    captured = capsys.readouterr()
    assert f"a.mp4: skipped, {out / 'a.mp4'} exists (--overwrite redoes it)" in captured.err
    assert "1 videos: 0 ok, 1 skipped, 0 failed" in captured.out
    assert main([*args, "--overwrite", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")  # --quiet: no bar, no notes, no table


def test_container_choice(tmp_path, model):
    videos = [Path("a.mp4"), Path("b.webm"), Path("c.avi"), Path("d.MOV"), Path("e.mkv")]
    out = tmp_path / "out"
    names = [p.name for p in output_names(videos, out)]
    assert names == ["a.mp4", "b.mkv", "c.mkv", "d.mov", "e.mkv"]  # libx264 cannot be stored in .webm
    vp9 = EncodeConfig(codec="libvpx-vp9")
    assert [p.name for p in output_names(videos, out, encode=vp9)] == ["a.mp4", "b.webm", "c.mkv", "d.mov", "e.mkv"]
    assert [p.name for p in output_names(videos, out, "mov")] == ["a.mov", "b.mov", "c.mov", "d.mov", "e.mov"]
    with pytest.raises(UserError, match=r"cannot be stored in a \.webm file") as error:
        output_names(videos, out, "webm")  # chosen explicitly: refused, not changed
    assert error.value.option == "codec"
    with pytest.raises(UserError, match=r"a\.avi and a\.mp4 would both be written as") as error:
        output_names([Path("a.avi"), Path("a.mp4")], out, "mp4")
    assert error.value.option == "container"
    with pytest.raises(UserError, match="both be written"):
        output_names([Path("A.mkv"), Path("a.ts")], out)  # one file on a case-insensitive file system
    with pytest.raises(UserError, match="unknown codec"):
        output_names(videos, out, encode=EncodeConfig(codec="h264_nope"))

    library = make_library(tmp_path / "lib", {"a.mp4": 6, "b.webm": 6})
    calls = []
    result = upscale_library(library, out, container="mkv", model=model, progress=lambda *c: calls.append(c), **FAST)
    assert sorted(p.name for p in out.iterdir()) == ["a.mkv", "b.mkv"]
    assert calls[0][1] == 12 and calls[-1] == (12, 12)  # one bar: the total is both files' frames from the start
    assert all(probe(f.output).codec == "h264" for f in result.files)


def test_bad_folders_are_refused_before_any_work(tmp_path, weights, capsys):
    library = make_library(tmp_path / "lib", {"a.mp4": 2})
    with pytest.raises(UserError, match="is the input folder"):
        upscale_library(library, library, weights=weights)
    with pytest.raises(UserError, match="inside the input folder"):
        upscale_library(library, library / "up", weights=weights)
    assert not (library / "up").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        upscale_library(library, tmp_path / "file", weights=weights)
    with pytest.raises(UserError, match="is a video file name, but a folder of videos is upscaled into a folder"):
        upscale_library(library, tmp_path / "all.mp4", weights=weights)
    with pytest.raises(UserError, match="contains no video files"):
        upscale_library(_empty(tmp_path), tmp_path / "o", weights=weights)

    mixed = make_library(tmp_path / "mixed", {"clip.mp4": 2})
    (mixed / "frame1.png").write_bytes(_png())
    assert is_video_library(mixed)  # so the command line comes here, and refuses it
    w = ["--weights", str(weights)]
    assert main(["upscale", str(mixed), str(tmp_path / "m_out"), *w]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "holds both videos (1) and images (1); move the videos or the images into a folder of their own" in err
    assert not (tmp_path / "m_out").exists()

    # A folder with neither keeps the frame folder's message; a single video refuses --container.
    assert main(["upscale", str(_empty(tmp_path)), str(tmp_path / "e_out"), *w]) == 1
    assert "contains no images" in capsys.readouterr().err
    assert main(["upscale", str(library / "a.mp4"), str(tmp_path / "x.mp4"), *w, "--container", "mkv"]) == 1
    assert "container is for a folder of videos" in capsys.readouterr().err.replace("\n", " ")


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("no frames here")
    return folder


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_workers_share_the_library_by_index(tmp_path, model, monkeypatch):
    names = {f"v{i}.mp4": 6 for i in range(1, 6)}
    library = make_library(tmp_path / "lib", names)
    out = tmp_path / "out"
    written = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        result = upscale_library(library, out, model=model, **FAST)
        assert (result.rank, result.world, result.library_size) == (rank, 2, 5)
        assert f"(worker {rank} of 2: {len(result.files)} of 5)" in result.table()
        written.append({f.output.name for f in result.files if f.status == "ok"})
    assert written == [{"v1.mp4", "v3.mp4", "v5.mp4"}, {"v2.mp4", "v4.mp4"}]  # index % 2 == rank, natural order
    assert {p.name for p in out.iterdir()} == set(names)


def test_worker_share_reads_torchrun_and_slurm_arrays():
    assert worker_share({}) == (0, 1)
    assert worker_share({"RANK": "3", "WORLD_SIZE": "4"}) == (3, 4)
    array = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_STEP": "2"}
    assert worker_share({**array, "SLURM_ARRAY_TASK_COUNT": "3"}) == (1, 3)  # --array=5-9:2 -> tasks 5, 7, 9
    assert worker_share({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}) == (2, 3)
    both = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "RANK": "1", "WORLD_SIZE": "4"}
    assert worker_share(both) == (5, 8)  # torchrun with 4 processes in each of 2 array tasks
    with pytest.raises(UserError, match="WORLD_SIZE is set but RANK is not"):
        worker_share({"WORLD_SIZE": "2"})
    with pytest.raises(UserError, match="RANK='x' is not an integer"):
        worker_share({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(UserError, match="worker 2 of 2"):
        worker_share({"RANK": "2", "WORLD_SIZE": "2"})
    assert worker_device("cpu", {"LOCAL_RANK": "1"}) == "cpu"
    assert worker_device("cuda", {}) == "cuda"


def test_ctrl_c_stops_the_whole_job(tmp_path, model):
    library = make_library(tmp_path / "lib", {"a.mp4": 6, "b.mp4": 6, "c.mp4": 6})
    out = tmp_path / "out"

    def stop_in_b(done, total):
        if done == 6 + 3:  # all of a.mp4, half of b.mp4
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_library(library, out, model=model, progress=stop_in_b, **FAST)
    assert sorted(os.listdir(out)) == ["a.mp4"]  # b's partial file removed, c never started
    rest = upscale_library(library, out, model=model, **FAST)  # the same call again does what is left
    assert [f.status for f in rest.files] == ["skipped", "ok", "ok"]
