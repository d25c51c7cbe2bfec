"""The media layer: one frame order for every journey, atomic writes under concurrency, the writers' interface."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import ClipSource, find_clips, list_frames, natural_key
from realbasicvsr.media.files import atomic_output, atomic_write, commit_replacing, temporary_path, write_bytes_atomic
from realbasicvsr.media.read import VideoInfo, probe, read_frames
from realbasicvsr.media.write import (
    EncodeConfig,
    FrameWriter,
    ImageFolderWriter,
    ImageWriter,
    VideoWriter,
    write_frames,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "realbasicvsr"
# The tricky folder: unpadded numbers, a mixed-case name and extension, a hidden file that must be skipped.
TRICKY = ("f1.png", "f2.png", "f10.png", "F3.PNG", ".hidden.png")
EXPECTED = ["f1.png", "f2.png", "F3.PNG", "f10.png"]
SIZE = 32  # big enough for validation (a multiple of 4) and a 16-px prepare crop


def _content(name: str) -> np.ndarray:
    """A frame that only this file has: a gradient plus a value from the name's number (hidden: 250)."""
    number = int(re.sub(r"\D", "", name) or 25)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return np.stack([xx * 4, yy * 4, np.full_like(xx, number * 10)], -1).astype(np.uint8)


@pytest.fixture
def tricky(tmp_path: Path) -> Path:
    """root/clip holding the tricky folder's PNGs (real files with distinct pixels)."""
    folder = tmp_path / "root" / "clip"
    folder.mkdir(parents=True)
    for name in TRICKY:
        Image.fromarray(_content(name)).save(folder / name, format="PNG")
    return folder


def _expected_pixels() -> np.ndarray:
    return np.stack([_content(name) for name in EXPECTED])


# ------------------------------------------------------------------------------------------- one order


def test_natural_key_and_listing(tricky):
    assert sorted(["f10.png", "F3.PNG", "f2.png", "f1.png"], key=natural_key) == EXPECTED
    assert [p.name for p in list_frames(tricky)] == EXPECTED
    assert find_clips(tricky.parent) == [ClipSource("clip", tricky, tuple(tricky / n for n in EXPECTED))]
    assert [p.name for p in find_clips(tricky)[0].frames] == EXPECTED  # a folder of frames is one clip


def test_upscale_reads_the_tricky_folder_in_order(tricky):
    info = probe(tricky)
    assert [p.name for p in info.files] == EXPECTED
    frames = list(read_frames(info))
    assert [f.name for f in frames] == EXPECTED
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), _expected_pixels())


def test_train_reads_the_tricky_folder_in_order(tricky):
    from realbasicvsr.train.config import DataConfig
    from realbasicvsr.train.data import read_window, scan_clips
    from realbasicvsr.train.validate import load_val_clips

    (clip,) = scan_clips(tricky.parent, min_frames=4, min_size=SIZE)
    assert [p.name for p in clip.frames] == EXPECTED and clip.length == 4
    np.testing.assert_array_equal(read_window(clip, 0, 4), _expected_pixels())
    np.testing.assert_array_equal(read_window(clip, 1, 2), _expected_pixels()[1:3])
    (val,) = load_val_clips(DataConfig(val_dir=str(tricky.parent)))
    gt = (val.gt[0].permute(0, 2, 3, 1) * 255).round().byte().numpy()
    np.testing.assert_array_equal(gt, _expected_pixels())


def test_prepare_cuts_every_visible_frame(tricky, tmp_path):
    from realbasicvsr.train.prepare import cut_dataset

    assert cut_dataset(tricky.parent, tmp_path / "sub", crop=16, step=16) == (4, 0)
    first = tmp_path / "sub" / "clip_s001"
    assert [p.name for p in list_frames(first)] == ["f1.png", "f2.png", "F3.png", "f10.png"]  # stems kept
    cut = np.stack([np.asarray(Image.open(p)) for p in list_frames(first)])
    np.testing.assert_array_equal(cut, _expected_pixels()[:, :16, :16])
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_evaluate_reads_the_tricky_folder_in_order(tricky):
    pytest.importorskip("scipy")
    from realbasicvsr.metrics.clip_frames import discover_clips, iter_frames

    for root in (tricky.parent, tricky):  # a folder of clip folders, or the clip folder itself
        (clip,) = discover_clips(root)
        assert clip.name == "clip" and [p.name for p in clip.frames] == EXPECTED
        read = list(iter_frames(clip, None))
        assert [i for i, _ in read] == [0, 1, 2, 3]
        np.testing.assert_array_equal(np.stack([frame for _, frame in read]), _expected_pixels())


def test_degrade_reads_the_tricky_folder_in_order(tricky):
    pytest.importorskip("cv2")
    from realbasicvsr.degrade.video import read_clip

    np.testing.assert_array_equal(read_clip(probe(tricky)), _expected_pixels())
    np.testing.assert_array_equal(read_clip(probe(tricky), max_frames=2), _expected_pixels()[:2])


def test_clip_discovery_mixes_folders_and_videos_in_natural_order(tmp_path):
    for name in ("clip10", "clip2", ".cache"):
        (tmp_path / name).mkdir()
        Image.fromarray(_content("f1.png")).save(tmp_path / name / "f1.png")
    (tmp_path / "empty").mkdir()
    write_frames(tmp_path / "Clip3.mkv", [_content("f1.png")] * 2, settings=EncodeConfig(codec="ffv1"))
    (tmp_path / "notes.txt").write_text("not a clip")
    clips = find_clips(tmp_path)
    assert [(c.name, c.video is not None) for c in clips] == [("clip2", False), ("Clip3", True), ("clip10", False)]


# ------------------------------------------------------------------------------------------- atomic writes

_WRITER = textwrap.dedent(
    """
    import pathlib, sys, time
    from realbasicvsr.media.files import write_bytes_atomic

    target, tag, times = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
    go = pathlib.Path(target).with_name("go")
    while not go.exists():  # both writers start together
        time.sleep(0.001)
    for i in range(times):
        write_bytes_atomic(target, tag * 200_000 + str(i % 10).encode())
    """
)


def test_two_processes_writing_one_target_never_mix(tmp_path):
    target = tmp_path / "shared.bin"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(target), tag, "60"], stderr=subprocess.PIPE)
        for tag in ("A", "B")
    ]
    (tmp_path / "go").touch()
    seen, reads = set(), 0
    while any(w.poll() is None for w in writers):
        if target.exists():
            data = target.read_bytes()  # the target is always one whole version: one writer's bytes, full length
            assert len(data) == 200_001 and data[:-1] == data[:1] * 200_000 and data[-1:].isdigit(), len(data)
            seen.add(data[:1])
            reads += 1
    for w in writers:
        assert w.wait() == 0, w.stderr.read().decode()
    final = target.read_bytes()
    assert len(final) == 200_001 and final[:1] in (b"A", b"B") and final[:-1] == final[:1] * 200_000
    assert reads > 10, reads  # the reader did look while they wrote
    (tmp_path / "go").unlink()
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]  # no temporary file left


def test_an_error_inside_atomic_write_keeps_the_old_target(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target, "w") as handle:
        handle.write("new and half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "frames") as tmp:  # a folder, on Ctrl-C
        tmp.mkdir()
        (tmp / "0.png").write_bytes(b"x")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert write_bytes_atomic(target, b"new") == target and target.read_bytes() == b"new"


def test_temporary_names_are_unique_hidden_and_keep_the_suffix(tmp_path):
    names = {temporary_path(tmp_path / "out.mp4").name for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith(".out.mp4.") and n.endswith(".partial.mp4") for n in names)


def test_commit_replacing_a_folder_and_a_file(tmp_path):
    old = tmp_path / "out"
    old.mkdir()
    (old / "stale.png").write_bytes(b"old")
    new = temporary_path(old)
    new.mkdir()
    (new / "00000000.png").write_bytes(b"new")
    commit_replacing(new, old)
    assert [p.name for p in old.iterdir()] == ["00000000.png"] and not new.exists()
    file_target, file_tmp = tmp_path / "a.txt", temporary_path(tmp_path / "a.txt")
    file_target.write_text("old")
    file_tmp.write_text("new")
    commit_replacing(file_tmp, file_target)
    assert file_target.read_text() == "new" and not file_tmp.exists()


# ------------------------------------------------------------------------------------------- writers


def _info(path: Path, kind: str = "folder") -> VideoInfo:
    return VideoInfo(path, kind, SIZE, SIZE, 2, Fraction(25), None, 8, False, None)


def test_every_writer_is_a_frame_writer(tmp_path):
    video = VideoWriter(
        tmp_path / "v.mkv",
        fmt="matroska",
        width=SIZE,
        height=SIZE,
        source=_info(tmp_path),
        settings=EncodeConfig(codec="ffv1"),
        fps=Fraction(25),
    )
    writers = [video, ImageFolderWriter(tmp_path / "frames"), ImageWriter(tmp_path / "one.png", ".png")]
    for writer in writers:
        assert isinstance(writer, FrameWriter) and writer.frames_written == 0
    video.abort()


def test_write_frames_video_and_folder(tmp_path):
    frames = [_content(name) for name in EXPECTED]
    assert write_frames(tmp_path / "v.mkv", frames, fps=Fraction(30000, 1001), settings=EncodeConfig("ffv1")) == 4
    info = probe(tmp_path / "v.mkv")
    assert info.fps == Fraction(30000, 1001) and info.num_frames in (None, 4)
    np.testing.assert_array_equal(np.stack([f.image for f in read_frames(info)]), np.stack(frames))  # lossless
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "stale.png").write_bytes(b"old")  # an existing output is replaced as a whole
    assert write_frames(folder, iter(frames)) == 4
    assert [p.name for p in list_frames(folder)] == [f"{i:08d}.png" for i in range(4)]
    np.testing.assert_array_equal(np.stack([np.asarray(Image.open(p)) for p in list_frames(folder)]), np.stack(frames))
    # a failure midway (a frame of another size) leaves the old output and no temporary file
    with pytest.raises(UserError, match="frame 1 is 32x16 but the video is 32x32"):
        write_frames(tmp_path / "v.mkv", [frames[0], frames[1][:16]], settings=EncodeConfig("ffv1"))
    assert probe(tmp_path / "v.mkv").width == SIZE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pngs", "v.mkv"]


def test_media_messages_name_settings_not_flags():
    """Library messages say which setting to change; the command line adds its flag (cli.one_line)."""
    for path in sorted((SRC / "media").glob("*.py")):
        strings = re.findall(r'"[^"\n]*"', path.read_text(encoding="utf-8"))
        flags = [s for s in strings if re.search(r"(^|\s)--[a-z]", s)]
        assert not flags, f"{path.name} names command-line flags: {flags}"


def test_implausible_decode_times_are_repaired_and_plausible_ones_kept():
    """libx265 sometimes stamps a short clip's packets with garbage decode times (seen: pts - 2.9e18), which the
    muxer refuses; the writer replaces only those, keeping real reorder delays and a strictly rising order."""
    from realbasicvsr.media.write import plausible_dts

    span = 64 * 1001
    garbage = -2931323117324347012
    assert plausible_dts(0, garbage, None, span) == 0
    assert plausible_dts(1001, garbage + 1001, 0, span) == 1001
    assert plausible_dts(5005, 3003, 2002, span) == 3003  # a real B-frame delay stays
    assert plausible_dts(2002, 2002, 2002, span) == 2003  # never equal to the previous one
    assert plausible_dts(1001, 9009, 0, span) == 1001  # decode after presentation is impossible
    assert plausible_dts(None, 7, 0, span) == 7  # no presentation time: nothing to check against


@pytest.mark.parametrize("side", [16000, 12000])  # over PIL's own header limit, and under it but over ours
def test_a_header_claiming_a_huge_frame_is_refused_before_decoding(tmp_path, side):
    """An 800-byte PNG whose header says 16000x16000 used to cost 779 MB before its refusal: now it is refused
    from the header, in a moment and without the allocation."""
    import resource
    import struct
    import time
    import zlib

    from PIL import Image

    from realbasicvsr.errors import UserError
    from realbasicvsr.media.read import probe

    path = tmp_path / "bomb.png"
    Image.new("RGB", (8, 8), (10, 200, 30)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", side, side)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    path.write_bytes(bytes(data))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(UserError, match=rf"{side}x{side}|{side * side} pixels"):  # ours, or PIL's header check
        probe(path)
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: far below 779 MB
