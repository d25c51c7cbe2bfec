"""Damaged input (issue 20 item 6): real clips (scikit-video's bikes.mp4 re-encoded with PyAV, H.264 with B-frames
in .mp4 and MPEG-4 part 2 in .avi) with bytes overwritten inside some packets. Damaged picture data is concealed
by FFmpeg and kept; a packet the decoder refuses becomes a copy of the frame before it, at its own timestamp; the
video keeps the frame count and the timestamps of the undamaged file, and one warning counts the damage. Under
`on_error="stop"` the first damaged frame ends the run with one line, before any model work."""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import skvideo

from realbasicvsr.cli import main
from realbasicvsr.errors import UserError
from realbasicvsr.media.decode_errors import DamagedInputWarning
from realbasicvsr.media.read import probe, read_frames, scan

BIKES = Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "bikes.mp4"
FRAMES = 24
DAMAGED = (5, 17)  # packets in decode order: P or B frames, never a keyframe (0 and 12)


def real_clip(path: Path, codec: str) -> None:
    """The first FRAMES frames of bikes.mp4 at 64x48, GOPs of 12 (x264 with two B-frames)."""
    with av.open(str(BIKES)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 12
        if codec == "libx264":
            stream.options = {"bf": "2", "keyint_min": "12", "sc_threshold": "0"}
        for index, frame in enumerate(source.decode(video=0)):
            if index == FRAMES:
                break
            small = frame.reformat(width=64, height=48, format="yuv420p")
            small.pts, small.time_base = index, Fraction(1, 25)
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))


def damage(source: Path, target: Path, where: str) -> None:
    """Copy `source` packet by packet, overwriting bytes of the DAMAGED packets: "picture" overwrites a stretch in
    the middle of the coded picture (FFmpeg conceals it), "header" the packet's first bytes (the decoder refuses
    the packet)."""
    rng = np.random.default_rng(7)
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        copied = out.add_stream_from_template(inp.streams.video[0])
        for number, packet in enumerate(p for p in inp.demux(video=0) if p.size):
            data = bytearray(bytes(packet))
            if number in DAMAGED:
                assert not packet.is_keyframe
                start = 0 if where == "header" else len(data) // 3
                length = 40 if where == "header" else max(8, len(data) // 4)
                span = len(data[start : start + length])
                data[start : start + length] = rng.integers(0, 256, span, np.uint8).tobytes()
            damaged = av.Packet(bytes(data))
            damaged.pts, damaged.dts, damaged.time_base = packet.pts, packet.dts, packet.time_base
            damaged.is_keyframe, damaged.stream = packet.is_keyframe, copied
            out.mux(damaged)


def independent_decode(path: Path) -> tuple[list[int], list[int], list[int]]:
    """PyAV's plain decode, packet by packet: the timestamps of the frames that come out, of those among them
    flagged corrupt (concealed), and of the packets the decoder refused."""
    shown, concealed, refused = [], [], []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                refused.append(packet.pts)
                continue
            shown += [f.pts for f in frames]
            concealed += [f.pts for f in frames if f.is_corrupt]
    return shown, concealed, refused


@pytest.fixture(params=[("libx264", ".mp4"), ("mpeg4", ".avi")], ids=["h264-mp4", "mpeg4-avi"])
def clean(request, tmp_path) -> Path:
    path = tmp_path / f"clean{request.param[1]}"
    real_clip(path, request.param[0])
    return path


def seconds(path: Path, pts: list[int]) -> list[str]:
    with av.open(str(path)) as container:
        time_base = container.streams.video[0].time_base
    return [f"{float(p * time_base):.3f}" for p in pts]


def test_concealed_frames_are_kept_with_one_warning(clean):
    bad = clean.with_name("bad" + clean.suffix)
    damage(clean, bad, "picture")
    timeline, _, _ = independent_decode(clean)
    shown, concealed, refused = independent_decode(bad)
    assert len(timeline) == FRAMES and shown == timeline and refused == [] and len(concealed) >= 1
    info = probe(bad, on_error="conceal")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        planned = [pts for pts, _ in scan(info, 16)]
    assert planned == timeline
    damaged = [w for w in caught if issubclass(w.category, DamagedInputWarning)]
    assert len(damaged) == 1, [str(w.message) for w in caught]
    text = str(damaged[0].message)
    assert f"{len(concealed)} damaged frame(s)" in text and "FFmpeg concealed" in text
    assert all(t in text for t in seconds(bad, concealed[:5]))


def test_an_undecodable_frame_is_the_previous_one_at_its_own_time(clean):
    bad = clean.with_name("bad" + clean.suffix)
    damage(clean, bad, "header")
    timeline, _, _ = independent_decode(clean)
    shown, _, refused = independent_decode(bad)
    assert len(refused) == len(DAMAGED) and len(shown) == FRAMES - len(DAMAGED)
    assert sorted(shown + refused) == timeline  # the refused packets' timestamps are the missing frames'
    info = probe(bad, on_error="conceal")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(read_frames(info))
    assert [f.pts for f in frames] == timeline  # same length, same timing: the audio stays in sync
    for pts in refused:
        index = timeline.index(pts)
        assert np.array_equal(frames[index].image, frames[index - 1].image)
    (warning,) = [w for w in caught if issubclass(w.category, DamagedInputWarning)]
    text = str(warning.message)
    assert f"{len(refused)} that could not be decoded, each replaced by the frame before it" in text
    assert all(t in text for t in seconds(bad, refused))
    # A segment that starts after a refused frame (a seek) sees the same frames as the whole read.
    part = list(read_frames(info, 10, 20, timeline))
    assert [f.pts for f in part] == timeline[10:20]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(part, frames[10:20], strict=True))


@pytest.mark.parametrize("where", ["picture", "header"])
def test_stop_names_the_first_damaged_frame(clean, where):
    bad = clean.with_name("bad" + clean.suffix)
    damage(clean, bad, where)
    timeline, _, _ = independent_decode(clean)
    _, concealed, refused = independent_decode(bad)
    first = min(concealed + refused)
    with pytest.raises(UserError) as error:
        list(scan(probe(bad, on_error="stop"), 16))
    text = str(error.value)
    assert f"frame {timeline.index(first)} (at {seconds(bad, [first])[0]} s)" in text
    assert error.value.option == "on_error" and "'conceal'" in text


def test_the_command_conceals_by_default_and_stops_when_told(tmp_path, weights, capsys):
    clean = tmp_path / "clean.mp4"
    real_clip(clean, "libx264")
    bad = tmp_path / "bad.mp4"
    damage(clean, bad, "header")
    timeline, _, _ = independent_decode(clean)
    out = tmp_path / "out.mp4"
    common = ["--weights", str(weights), "--preset", "ultrafast", "--device", "cpu", "--quiet"]

    assert main(["upscale", str(bad), str(tmp_path / "refused.mp4"), *common, "--on-error", "stop"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frame 7 (at 0.280 s) cannot be decoded" in err[0] and "--on-error" in err[0], err
    assert not (tmp_path / "refused.mp4").exists() and not (tmp_path / "refused.mp4.parts").exists()

    assert main(["upscale", str(bad), str(out), *common]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "2 damaged frame(s)" in warned[0], warned
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        times = [round(float(f.pts * stream.time_base), 3) for f in container.decode(stream)]
    with av.open(str(clean)) as container:
        base = container.streams.video[0].time_base
    assert times == [round(float(p * base), 3) for p in timeline]
