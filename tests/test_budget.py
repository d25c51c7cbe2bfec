"""The memory budget (`upscale.budget`): sizes, plans under budgets, refusals, the measured peak of a real run
under a budget (a subprocess reads its own peak RSS), and the redo after the GPU runs out of memory."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.models.realbasicvsr import ModelConfig, RealBasicVSR
from realbasicvsr.upscale import budget, memory
from realbasicvsr.upscale.budget import GB, MemoryPlan, parse_memory, plan_memory, shrink
from realbasicvsr.upscale.config import DEFAULT_WINDOW, UpscaleConfig
from realbasicvsr.upscale.windows import Upscaler

HELD = 500 * 1000**2  # what a process holds before a run, for the plans that are not measured


@pytest.mark.parametrize(
    ("text", "value"),
    [("6G", 6 << 30), ("6g", 6 << 30), ("6GiB", 6 << 30), ("6GB", 6 * GB), ("512M", 512 << 20),
     ("1.5T", int(1.5 * (1 << 40))), ("123456", 123456), (" 2 G ", 2 << 30), ("700MB", 700 * 1000**2)],
)  # fmt: skip
def test_memory_sizes(text, value):
    assert parse_memory(text) == value


@pytest.mark.parametrize("text", ["", "six gigs", "6X", "-1G", "0", "0G", "1e9", "G"])
def test_a_bad_memory_size_names_the_form(text):
    with pytest.raises(UserError, match=r"6G|more than 0"):
        parse_memory(text)


def test_a_budget_in_the_config_is_checked():
    with pytest.raises(ConfigError, match="max_memory"):
        UpscaleConfig(max_memory=0)
    with pytest.raises(ConfigError, match="max_memory"):
        UpscaleConfig(max_memory=True)


def test_a_generous_budget_keeps_the_unplanned_computation():
    plan = plan_memory(UpscaleConfig(max_memory=1 << 40), 320, 180, held=HELD)
    assert (plan.window, plan.tile, plan.grid) == (DEFAULT_WINDOW, 0, (1, 1))
    assert (plan.stripe_pixels, plan.cleaning_chunk, plan.flow_batch_bytes) == (
        budget.STRIPE_CHOICES[0], budget.CHUNK_CHOICES[0], budget.FLOW_BATCH_CHOICES[0])  # fmt: skip
    assert plan.line().startswith("plan: window 30 + 12, whole frames, stripes 256x256; est. peak ")


@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720), (1920, 1080)])
def test_smaller_budgets_give_plans_that_fit_and_no_larger_work(width, height):
    last: MemoryPlan | None = None
    for gigabytes in (64, 16, 8, 6):
        options = UpscaleConfig(max_memory=gigabytes * GB)
        try:
            plan = plan_memory(options, width, height, held=HELD)
        except UserError:
            assert last is not None or gigabytes < 64
            break
        assert plan.estimate <= gigabytes * GB
        if last is not None:  # less memory never buys a larger window on the same grid
            assert plan.estimate <= last.estimate
        last = plan
    assert last is not None


def test_explicit_window_and_tile_are_kept():
    options = UpscaleConfig(window=5, tile=64, max_memory=3 * GB)
    plan = plan_memory(options, 640, 360, held=HELD)
    assert (plan.window, plan.tile, plan.grid) == (5, 64, (6, 10))
    whole = plan_memory(UpscaleConfig(tile=0, max_memory=4 * GB), 640, 360, held=HELD)
    assert whole.grid == (1, 1)


def test_an_impossible_budget_names_the_smallest_that_works():
    with pytest.raises(UserError, match=r"need at least ([0-9.]+) GB.*--max-memory") as caught:
        plan_memory(UpscaleConfig(max_memory=1 * GB), 1920, 1080, held=HELD)
    needed = float(caught.value.args[0].split("at least ")[1].split(" GB")[0])
    assert caught.value.option == "max_memory"
    plan = plan_memory(UpscaleConfig(max_memory=int(needed * GB)), 1920, 1080, held=HELD)
    assert plan.estimate <= needed * GB


def test_low_precision_and_batches_change_the_estimate_the_right_way():
    fp32 = plan_memory(UpscaleConfig(window=8, tile=0, max_memory=1 << 40), 640, 360, held=HELD)
    bf16 = plan_memory(UpscaleConfig(window=8, tile=0, dtype="bf16", max_memory=1 << 40), 640, 360, held=HELD)
    two = plan_memory(UpscaleConfig(window=8, tile=0, max_memory=1 << 40), 640, 360, batch=2, held=HELD)
    assert bf16.estimate < fp32.estimate < two.estimate


def test_the_automatic_budget_is_a_share_of_what_is_free():
    available, resident = memory.available_bytes(), memory.resident_bytes()
    automatic = budget.automatic_budget("cpu")
    assert 0 < resident < automatic <= resident + available
    assert memory.peak_resident_bytes() >= resident * 0.5  # the peak so far is a real reading, near or above now


def test_shrink_halves_the_window_and_takes_the_smallest_pieces():
    plan = plan_memory(UpscaleConfig(max_memory=1 << 40), 320, 180, held=HELD)
    smaller = shrink(plan)
    assert smaller.window == plan.window // 2 and smaller.grid == plan.grid
    assert (smaller.cleaning_chunk, smaller.flow_batch_bytes) == (1, 0)
    assert shrink(replace(smaller, window=1)).window == 1


# ------------------------------------------------------------------------------------ a real run under a budget
def _clip(path: Path, frames: int, width: int, height: int) -> Path:
    """A real H.264 file of moving noise (the content does not change the memory)."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (height + 8, width + 8, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.ascontiguousarray(base[i % 8 : i % 8 + height, :width])
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = i
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    return path


# The child: the real command under a budget; prints its peak RSS and what it held once the weights were loaded.
CHILD = """
import json, sys
from realbasicvsr.cli import main
from realbasicvsr.upscale import memory, windows
held = []
plan_for = windows.Upscaler.plan_for
def spy(self, *args, **kwargs):
    held.append(memory.resident_bytes())
    return plan_for(self, *args, **kwargs)
windows.Upscaler.plan_for = spy
code = main(sys.argv[1:])
print(json.dumps({"code": code, "peak": memory.peak_resident_bytes(), "held": held[0] if held else None}))
"""


def _run_child(args: list[str]) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=600)
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.fixture(scope="module")
def mid_model_weights(tmp_path_factory) -> Path:
    from realbasicvsr.weights.release import save_release

    torch.manual_seed(5)
    path = tmp_path_factory.mktemp("budget") / "c24b2.safetensors"
    save_release(RealBasicVSR(ModelConfig(24, 2, 2)), path)
    return path


def _plan_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("plan: window")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.slow  # ~1 min: three real runs in their own processes
def test_the_measured_peak_stays_under_the_budget(tmp_path, mid_model_weights):
    clip = _clip(tmp_path / "in.mp4", 12, 256, 144)
    base = ["upscale", str(clip), "--weights", str(mid_model_weights), "--scenes", "off", "--overlap", "4"]
    free, stderr = _run_child([*base, str(tmp_path / "free.mp4"), "--max-memory", "64G"])
    assert free["code"] == 0, stderr
    free_line = _plan_line(stderr)
    assert free["peak"] <= parse_memory(free_line.split("est. peak ")[1].split(" of")[0].replace(" ", ""))
    refused, stderr = _run_child([*base, str(tmp_path / "none.mp4"), "--max-memory", "1M"])
    assert refused["code"] == 1 and not (tmp_path / "none.mp4").exists()
    smallest = parse_memory(stderr.split("need at least ")[1].split(" GB")[0] + "GB")
    # Between the smallest plan and the unplanned one: the plan must shrink, and the real peak must fit.
    limit = (smallest + parse_memory(free_line.split("est. peak ")[1].split(" of")[0].replace(" ", ""))) // 2
    out = tmp_path / "out.mp4"
    result, stderr = _run_child([*base, str(out), "--max-memory", str(limit)])
    assert result["code"] == 0, stderr
    line = _plan_line(stderr)
    assert line.split(";")[0] != free_line.split(";")[0], (line, free_line)  # something was planned smaller
    assert result["peak"] <= limit, (result, limit, line)
    assert out.stat().st_size > 0


def test_an_impossible_budget_is_refused_before_work(tmp_path, mid_model_weights):
    clip = _clip(tmp_path / "in.mp4", 4, 64, 48)
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "realbasicvsr", "upscale", str(clip), str(out), "--weights", str(mid_model_weights),
           "--max-memory", "10M"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "--max-memory" in lines[0] and "need at least" in lines[0], done.stderr
    assert not out.exists() and not list(tmp_path.glob("out.mp4*"))


def test_a_bad_size_on_the_command_line_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "realbasicvsr", "upscale", "in.mp4", "out.mp4", "--max-memory", "lots"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "6G" in done.stderr


# ------------------------------------------------------------------------------------ out of memory on a GPU
class RunsOutOnce(RealBasicVSR):
    """Fault injection for the CUDA guard (no GPU here): the first window raises the allocator's error after
    its first output, as a GPU does when a later frame's x4 stage does not fit."""

    failures = 1

    def stream_window(self, lq, keep, state=None, **kwargs):
        steps = super().stream_window(lq, keep, state, **kwargs)
        yield next(steps)
        if self.failures:
            self.failures -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return (yield from steps)


def test_out_of_memory_redoes_the_window_with_a_smaller_plan():
    torch.manual_seed(1)
    model = RunsOutOnce(ModelConfig(8, 1, 1), cleaning_passes=1)
    clean = RealBasicVSR(ModelConfig(8, 1, 1), cleaning_passes=1)
    clean.load_state_dict(model.state_dict())
    frames = [torch.rand(3, 24, 32) for _ in range(11)]
    options = UpscaleConfig(window=4, overlap=2)
    expected = list(Upscaler(clean, options).iter_tensors(frames))
    upscaler = Upscaler(model, options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = list(upscaler.iter_tensors(frames))
    assert len(got) == len(expected) == 11
    assert upscaler.out_of_memory_redos == 1 and upscaler.options.window == 2
    assert any("out of memory" in str(w.message) and "plan: window 2" in str(w.message) for w in caught)
    torch.testing.assert_close(got[0], expected[0])  # before the failure: the same window
    for a, b in zip(got, expected, strict=True):  # after it: smaller windows, the same picture
        assert 10 * torch.log10(1 / ((a - b) ** 2).mean()) > 40


def test_a_second_out_of_memory_is_one_line_with_the_fix():
    model = RunsOutOnce(ModelConfig(8, 1, 1), cleaning_passes=1)
    model.failures = 5
    upscaler = Upscaler(model, UpscaleConfig(window=4, overlap=2))
    with warnings.catch_warnings(), pytest.raises(UserError, match=r"--max-memory.*--resume"):
        warnings.simplefilter("ignore")
        list(upscaler.iter_tensors([torch.rand(3, 16, 16) for _ in range(9)]))
