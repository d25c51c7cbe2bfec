"""Seeded, bounded fuzzing of the media reader and of `realbasicvsr upscale` (issue 14).

Real clips made here with PyAV (mp4/h264+aac, mkv/h264+aac, webm/vp9+opus, PNG) are mutated deterministically
(`benchmarks/fuzz_media.py`: byte/bit flips, truncation, chunk duplication/deletion, header corruption). Every
mutant must decode or end in a one-line `UserError`: no other exception, no hang (per-case time limit in a worker
process), no crash. The inputs that once failed live in tests/fuzz_regressions/ and run every time.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
SEED = 14
READ_CASES = 320
CLI_CASES = 8


def load_fuzz_media():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_media.py"
    spec = importlib.util.spec_from_file_location("fuzz_media", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_media", module)  # dataclasses look their module up by name
    spec.loader.exec_module(sys.modules["fuzz_media"])
    return sys.modules["fuzz_media"]


fuzz = load_fuzz_media()


def bad(outcomes) -> list[str]:
    return [f"{o.status}: {o.case.recipe}: {o.detail}" for o in outcomes if o.status in fuzz.BAD]


def regression_cases() -> list:
    return [
        fuzz.Case(path, f"regression {path.name}") for path in sorted(REGRESSIONS.iterdir()) if path.suffix != ".md"
    ]


def test_mutations_are_deterministic():
    data = bytes(range(256)) * 8
    assert [fuzz.mutate(data, 3, i) for i in range(20)] == [fuzz.mutate(data, 3, i) for i in range(20)]
    assert fuzz.mutate(data, 3, 0) != fuzz.mutate(data, 4, 0)
    kinds = {fuzz.mutate(data, 3, i)[1].split()[0] for i in range(200)}
    assert kinds == {"flip", "bitflip", "truncate", "duplicate", "delete", "header", "interesting"}


def test_regression_inputs_read_without_traceback_or_hang():
    """The inputs the fuzzer found: a stream without codec context (video and audio), a non-UTF-8 tag, and a
    corrupt h264 packet that deadlocked FFmpeg's frame threads when the decoder closed."""
    cases = regression_cases()
    assert len(cases) >= 4 and all(case.path.stat().st_size < 8192 for case in cases)
    outcomes = fuzz.read_cases(cases, workers=2, timeout=15)
    assert bad(outcomes) == []
    by_name = {o.case.path.name: o for o in outcomes}
    assert by_name["non_utf8_tag.webm"].status == "ok"  # a bad tag no longer makes a readable video unreadable
    assert "no codec FFmpeg can decode" in by_name["video_stream_without_codec.mp4"].detail


@pytest.mark.slow
def test_fuzzed_videos_read_or_fail_on_one_line(tmp_path):
    seeds = fuzz.make_seeds(tmp_path / "seeds")
    cases = fuzz.make_cases(seeds, tmp_path / "cases", READ_CASES, SEED)
    outcomes = fuzz.read_cases(cases, workers=2, timeout=15)
    assert bad(outcomes) == []
    counts = fuzz.summary(outcomes)
    assert counts["ok"] > 50 and counts["user_error"] > 50  # the mutants exercise both paths


@pytest.mark.slow
def test_fuzzed_videos_through_the_upscale_command(tmp_path):
    """The real command in a subprocess: exit 0, or exit 1 with one `error:` line; never a traceback."""
    seeds = fuzz.make_seeds(tmp_path / "seeds")
    cases = fuzz.make_cases(seeds, tmp_path / "cases", 64, SEED + 1)
    videos = [case for case in cases if case.path.suffix != ".png"]
    readable = [o.case for o in fuzz.read_cases(videos, workers=2, timeout=15) if o.status == "ok"]
    # Mutants that decode reach the writer and the audio stream copy; a few that do not check the error path.
    chosen = readable[: CLI_CASES - 2] + [c for c in videos if c not in readable][:2]
    chosen += [case for case in regression_cases() if case.path.suffix == ".mp4"]  # the damaged video streams
    weights = fuzz.make_tiny_weights(tmp_path / "tiny.safetensors")
    outcomes = fuzz.upscale_cases(chosen, weights, tmp_path / "out", workers=2, timeout=90)
    assert bad(outcomes) == []
    assert {o.status for o in outcomes} == {"ok", "user_error"}
    # The fix the stream-copy error names works: without the damaged audio stream the video is upscaled.
    damaged_audio = [case for case in regression_cases() if case.path.name == "audio_stream_without_codec.mp4"]
    by_name = {o.case.path.name: o for o in outcomes}
    assert "(set with --no-copy-streams)" in by_name["audio_stream_without_codec.mp4"].detail
    retry = fuzz.upscale_cases(damaged_audio, weights, tmp_path / "out", timeout=90, extra=("--no-copy-streams",))
    assert [o.status for o in retry] == ["ok"], retry
