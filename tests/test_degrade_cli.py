"""`realbasicvsr degrade` on real files made in tmp_path: outputs, plan replay, refusals."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("cv2")
pytest.importorskip("scipy")

from realbasicvsr.cli import main


def _frames(num=6, height=72, width=100):
    yy, xx = np.mgrid[0:height, 0:width]
    return [
        (np.stack([np.sin((xx + 3 * t) / 6), np.cos((yy - t) / 5), np.sin((xx + yy) / 9)], -1) * 100 + 128).astype(
            np.uint8
        )
        for t in range(num)
    ]


@pytest.fixture
def clean_video(tmp_path):
    path = tmp_path / "clean.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.height, stream.width, stream.pix_fmt = 72, 100, "yuv420p"
        for frame in _frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _read_video(path):
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]), rate


def test_degrade_video_to_lossless_mkv_with_plan_and_preview(tmp_path, clean_video, capsys):
    out, plan, sheet = tmp_path / "lq.mkv", tmp_path / "plan.json", tmp_path / "sheet.png"
    args = ["degrade", str(clean_video), str(out), "--seed", "3", "--plan-out", str(plan), "--preview", str(sheet)]
    assert main(args) == 0
    frames, rate = _read_video(out)
    assert frames.shape == (6, 18, 24, 3)  # 72/4 = 18, 100/4 = 25 -> 24 (even)
    assert rate == Fraction(30000, 1001)  # the source fps is kept
    data = json.loads(plan.read_text())
    assert data["num_frames"] == 6 and data["target_size"] == [18, 24]
    assert Image.open(sheet).size[0] > 2 * 100
    assert "resize_final" in capsys.readouterr().out
    # replaying the plan into a PNG folder gives exactly the same frames (FFV1 is lossless)
    folder = tmp_path / "lq_frames"
    assert main(["degrade", str(clean_video), str(folder), "--plan", str(plan)]) == 0
    pngs = sorted(folder.glob("*.png"))
    assert [p.name for p in pngs][:2] == ["00000000.png", "00000001.png"] and len(pngs) == 6
    np.testing.assert_array_equal(np.stack([np.array(Image.open(p)) for p in pngs]), frames)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


def test_same_seed_same_output_and_frame_folder_input(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, frame in enumerate(_frames(4, 41, 53)):  # odd sizes
        Image.fromarray(frame).save(src / f"f{i}.png")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for path, seed in ((a, "5"), (b, "5"), (c, "6")):
        assert main(["degrade", str(src), str(path), "--seed", seed, "--scale", "2", "--unsharp"]) == 0
    load = lambda folder: np.stack([np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))])  # noqa: E731
    assert load(a).shape == (4, 20, 26, 3)
    np.testing.assert_array_equal(load(a), load(b))
    assert not np.array_equal(load(a), load(c))


def test_mp4_output_and_max_frames(tmp_path, clean_video):
    out = tmp_path / "lq.mp4"
    assert main(["degrade", str(clean_video), str(out), "--max-frames", "3"]) == 0
    frames, _ = _read_video(out)
    assert frames.shape == (3, 18, 24, 3)


def test_refusals(tmp_path, clean_video, capsys):
    out = tmp_path / "lq.mkv"
    assert main(["degrade", str(clean_video), str(out)]) == 0
    before = out.read_bytes()
    assert main(["degrade", str(clean_video), str(out), "--seed", "9"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before  # untouched
    assert main(["degrade", str(clean_video), str(out), "--seed", "9", "--overwrite"]) == 0
    assert out.read_bytes() != before
    assert main(["degrade", str(tmp_path / "missing.mp4"), str(tmp_path / "x.mkv")]) == 1
    assert main(["degrade", str(clean_video), str(tmp_path / "x.avi")]) == 1
    assert main(["degrade", str(clean_video), str(clean_video), "--overwrite"]) == 1
    bad_plan = tmp_path / "bad.json"
    bad_plan.write_text('{"format": 1, "steps": [{"op": "sharpen"}]}')
    assert main(["degrade", str(clean_video), str(tmp_path / "y.mkv"), "--plan", str(bad_plan)]) == 1
    err = capsys.readouterr().err
    assert "output is the input" in err and "not a valid degradation plan" in err
    assert err.count("realbasicvsr degrade: error:") == 4


def test_memory_check_names_the_fix():
    from realbasicvsr.commands.degrade import check_memory
    from realbasicvsr.errors import UserError

    check_memory(100, 720, 1280, None, 64 * 2**30)  # 100 frames of 720p fit in 64 GiB
    with pytest.raises(UserError, match=r"--max-frames 19 "):  # 19 frames of 44 MiB fit in 80 % of 1 GiB
        check_memory(100, 720, 1280, None, 2**30)
    check_memory(100, 720, 1280, 19, 2**30)  # the suggested limit is accepted
    with pytest.raises(UserError):
        check_memory(100, 720, 1280, 20, 2**30)


def test_preset_fast_changes_only_the_codec_preset(tmp_path, clean_video, capsys):
    plans = {}
    for preset in ("official", "fast"):
        out, plan = tmp_path / f"{preset}.mkv", tmp_path / f"{preset}.json"
        argv = ["degrade", str(clean_video), str(out), "--seed", "3", "--plan-out", str(plan), "--preset", preset]
        assert main(argv) == 0
        frames, _ = _read_video(out)
        assert frames.shape == (6, 18, 24, 3)  # a valid output either way
        plans[preset] = json.loads(plan.read_text())
    codec_steps = {p: [s for s in plans[p]["steps"] if s["op"] == "codec"] for p in plans}
    assert codec_steps["official"] and all(s["x264_preset"] is None for s in codec_steps["official"])
    assert all(s["x264_preset"] == "veryfast" for s in codec_steps["fast"])
    # the same seed draws the same plan otherwise: only the recorded encoder preset differs
    for step in plans["fast"]["steps"]:
        step.pop("x264_preset", None)
    for step in plans["official"]["steps"]:
        step.pop("x264_preset", None)
    assert plans["fast"] == plans["official"]
    assert not list(tmp_path.glob(".*partial*"))  # no temporary files left behind
    with pytest.raises(SystemExit) as exit_info:
        main(["degrade", str(clean_video), str(tmp_path / "x.mkv"), "--preset", "slow"])
    assert exit_info.value.code == 2 and "invalid choice: 'slow'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["degrade", "--help"])
    assert "--preset {official,fast}" in " ".join(capsys.readouterr().out.split())


def test_library_errors_get_the_flag_on_the_command_line(tmp_path, clean_video, capsys):
    from realbasicvsr.degrade.video import degrade_video
    from realbasicvsr.errors import UserError

    with pytest.raises(UserError) as error:
        degrade_video(clean_video, tmp_path / "x.mkv", scale=0)
    assert error.value.option == "scale" and "--" not in str(error.value)
    assert main(["degrade", str(clean_video), str(tmp_path / "x.mkv"), "--scale", "0"]) == 1
    assert "(set with --scale)" in capsys.readouterr().err
