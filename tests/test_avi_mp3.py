"""Issue 20's first failure: a plain AVI with MP3 audio (mpeg4 video, libmp3lame) whose header frame count is a
hint, upscaled to .mkv and .mp4: every decodable frame with its timestamp, the MP3 stream copied, exit 0."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from realbasicvsr.cli import main


def make_avi_mp3(path, frames: int = 14) -> None:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 48, 32, "yuv420p"
        audio = container.add_stream("libmp3lame", rate=22050)
        audio.layout = "mono"
        samples = 0
        for i in range(frames):
            image = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            container.mux(video.encode(frame))
            while samples < (i + 1) * 22050 // 25:
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
                chunk.sample_rate, chunk.pts = 22050, samples
                container.mux(audio.encode(chunk))
                samples += 1152
        container.mux(video.encode(None))
        container.mux(audio.encode(None))


def decoded(path) -> tuple[list[float], list[str]]:
    """Presentation times of the video frames (an independent decode) and the codecs of the other streams."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(video)]
    with av.open(str(path)) as container:
        # the codec's id, not the decoder's name (FFmpeg decodes MP3 with "mp3float")
        others = [av.codec.Codec(s.codec_context.name, "r").id for s in container.streams if s.type != "video"]
    return times, others


def test_avi_with_mp3_audio_upscales_to_mkv_and_mp4(tmp_path, weights):
    source = tmp_path / "old.avi"
    make_avi_mp3(source)
    times, others = decoded(source)
    mp3 = av.codec.Codec("mp3", "r").id
    assert others == [mp3] and len(times) >= 13
    for name in ("old_x4.mkv", "old_x4.mp4"):
        out = tmp_path / name
        assert main(["upscale", str(source), str(out), "--weights", str(weights), "--quiet"]) == 0
        out_times, out_others = decoded(out)
        assert out_others == [mp3]
        assert len(out_times) == len(times)
        assert np.allclose(np.array(out_times) - out_times[0], np.array(times) - times[0], atol=1e-3)
