"""Bounded resources and one-line refusals for hostile architectures, configs and degradation plans (issue 14).

Each "bomb" (a tiny file or value that claims a huge model, kernel or expansion) must be refused with one line, in
well under a second and without allocating: the tests measure the time and the growth of the peak RSS.
"""

from __future__ import annotations

import copy
import json
import math
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from realbasicvsr.cli import main
from realbasicvsr.degrade.config import official
from realbasicvsr.degrade.plan import plan_from_dict, plan_from_json, plan_to_dict
from realbasicvsr.degrade.random_plan import sample_plan
from realbasicvsr.errors import ConfigError, UserError, brief
from realbasicvsr.models import ModelConfig
from realbasicvsr.train.config import load_config, stage1
from realbasicvsr.train.loop import capped_workers
from realbasicvsr.weights.release import CONFIG_METADATA_KEY, load_generator, read_release_config

REPO = Path(__file__).resolve().parents[1]
PEAK_GROWTH_LIMIT_MB = 200  # far below what any of the bombs would allocate if built (GBs)


class Bounded:
    """Wall time and growth of the process's peak RSS (ru_maxrss, KiB on Linux) inside a `with` block."""

    def __enter__(self) -> Bounded:
        self.peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.peak_before) / 1024

    def check(self, seconds: float = 1.0) -> None:
        assert self.seconds < seconds, f"took {self.seconds:.2f} s"
        assert self.peak_growth_mb < PEAK_GROWTH_LIMIT_MB, f"peak RSS grew by {self.peak_growth_mb:.0f} MB"


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# ---------------------------------------------------------------- architectures from metadata or config


def _crafted_release(path: Path, record: dict[str, object], mid: int = 4) -> Path:
    """A safetensors file with one tiny tensor and an architecture record that may lie."""
    from safetensors.torch import save_file

    state = {"image_cleaning.0.main.0.weight": torch.zeros(mid, 3, 3, 3)}
    save_file(state, str(path), metadata={CONFIG_METADATA_KEY: json.dumps(record)})
    return path


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"mid_channels": 64, "num_propagation_blocks": 10**7, "num_cleaning_blocks": 20}, "0..200"),
        ({"mid_channels": 10**9, "num_propagation_blocks": 20, "num_cleaning_blocks": 20}, "1..1024"),
        ({"mid_channels": 4, "num_propagation_blocks": 150, "num_cleaning_blocks": 0}, "does not match the tensors"),
        ({"mid_channels": 64, "num_propagation_blocks": 0, "num_cleaning_blocks": 0}, "does not match the tensors"),
        ({"mid_channels": "64"}, "invalid architecture record"),
        ([1, 2], "invalid architecture record"),
    ],
)
def test_release_file_with_a_lying_architecture_is_refused_before_building(tmp_path, record, message):
    path = _crafted_release(tmp_path / "bomb.safetensors", record)
    assert path.stat().st_size < 2000
    with Bounded() as bounded, pytest.raises(UserError, match=message) as caught:
        load_generator(path, download=False)
    bounded.check()
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_info_command_refuses_the_metadata_bomb_in_one_line(tmp_path, capsys):
    record = {"mid_channels": 64, "num_propagation_blocks": 10**7, "num_cleaning_blocks": 20}
    path = _crafted_release(tmp_path / "bomb.safetensors", record)
    with Bounded() as bounded:
        assert main(["info", "--weights", str(path)]) == 1
    bounded.check(seconds=3.0)  # the command imports more; the refusal itself is the parametrized test above
    assert "0..200" in _one_line(capsys.readouterr().err)


def test_checkpoint_whose_key_names_claim_ten_million_blocks_is_refused(tmp_path):
    state = {
        "image_cleaning.0.main.0.weight": torch.zeros(4, 3, 3, 3),
        "image_cleaning.0.main.2.9999999.conv1.weight": torch.zeros(1),
    }
    path = tmp_path / "bomb.pth"
    torch.save({"state_dict": state}, path)
    with Bounded() as bounded, pytest.raises(UserError, match=r"num_cleaning_blocks must be an integer in 0\.\.200"):
        load_generator(path, download=False)
    bounded.check()


def test_honest_release_files_still_load(tmp_path):
    from realbasicvsr.models import RealBasicVSR
    from realbasicvsr.weights.release import save_release

    model = RealBasicVSR(ModelConfig(mid_channels=8, num_propagation_blocks=1, num_cleaning_blocks=2))
    path = save_release(model, tmp_path / "ok.safetensors")
    assert read_release_config(path) == model.config
    assert load_generator(path, download=False).config == model.config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mid_channels": 0},
        {"mid_channels": 1025},
        {"num_propagation_blocks": -1},
        {"num_cleaning_blocks": 201},
        {"num_propagation_blocks": 10**7},
        {"mid_channels": True},
        {"mid_channels": 8.0},
    ],
)
def test_model_config_ranges(kwargs):
    with pytest.raises(ConfigError, match="must be an integer in"):
        ModelConfig(**kwargs)
    ModelConfig(mid_channels=1024, num_propagation_blocks=200, num_cleaning_blocks=0)  # the bounds are inclusive


# ---------------------------------------------------------------- config values


BAD_OVERRIDES = [
    ("model.num_propagation_blocks=10000000", "0..200"),
    ("model.mid_channels=1000000000", "1..1024"),
    ("optim.lr_g=nan", "optim.lr_g"),
    ("optim.lr_d=.inf", "optim.lr_d"),
    ("optim.lr_g=inf", "optim.lr_g"),  # YAML reads `inf` as a string; as a float it is inf: refused
    ("optim.betas=[2,3]", "optim.betas"),
    ("optim.betas=[0.9]", "optim.betas"),
    ("optim.ema_decay=nan", "optim.ema_decay"),
    ("optim.grad_clip=-1", "optim.grad_clip"),
    ("optim.grad_clip=.nan", "optim.grad_clip"),
    ("run.seed=-1", "run.seed"),
    ("run.seed=99999999999999999999999", "run.seed"),
    ("run.dist_timeout=0", "run.dist_timeout"),
    ("run.dist_timeout=.nan", "run.dist_timeout"),
    ("loss.gan_weight=nan", "loss.gan_weight"),
    ("loss.pixel_weight=-.inf", "loss.pixel_weight"),
    ("loss.perceptual_weight=1e999", "loss.perceptual_weight"),
    ("data.degradation.blur1.kernel_sizes=[20001]", "kernel sizes"),
    ("data.degradation.blur1.sigma_range=[.nan, 1]", "sigma_range"),
    ("data.degradation.jpeg1.quality_range=[30, 1000]", "quality_range"),
    ("data.degradation.noise1.gaussian_sigma_range=[-50, 1]", "gaussian_sigma_range"),
    ("data.degradation.resize1.scale_range=[0, 1]", "scale_range"),
    ("data.degradation.codec1.codecs=[vp9, h264, mpeg4]", "codecs"),
    ("data.degradation.noise1.type_probs=[.nan, 1]", "type_probs"),
    ("data.degradation.usm_kernel_size=20001", "usm_kernel_size"),
    ("data.degradation.codec1.x264_preset=warp", "x264_preset"),
]


@pytest.mark.parametrize(("override", "field"), BAD_OVERRIDES)
def test_bad_config_values_are_one_line_errors(override, field):
    with Bounded() as bounded, pytest.raises(UserError) as caught:
        load_config("tiny", [override])
    bounded.check()
    assert field in str(caught.value) and "\n" not in str(caught.value)


def test_bad_override_through_the_train_command(tmp_path, capsys):
    argv = ["train", "tiny", "optim.betas=[2,3]", "--data", str(tmp_path), "--out", str(tmp_path / "r")]
    assert main([*argv, "--print-config"]) == 1
    assert "optim.betas" in _one_line(capsys.readouterr().err)


def test_integers_beyond_int64_in_toml_and_yaml(tmp_path):
    for name, text in (("c.toml", "[run]\nsteps = 99999999999999999999\n"), ("c.yaml", "run:\n  steps: 1" + "0" * 30)):
        (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError, match=r"run.steps must be an integer within"):
            load_config(tmp_path / name)
    (tmp_path / "huge.toml").write_text("[run]\nsteps = " + "9" * 5000 + "\n")  # over Python's int-string limit
    with Bounded() as bounded, pytest.raises(UserError) as caught:
        load_config(tmp_path / "huge.toml")
    bounded.check()
    assert len(str(caught.value)) < 500


def test_empty_config_file_is_refused_not_the_full_stage1_model(tmp_path):
    for text in ("", "# only a comment\n", "{}\n"):
        (tmp_path / "empty.yaml").write_text(text)
        with pytest.raises(UserError, match=r"is empty; .*preset: stage1"):
            load_config(tmp_path / "empty.yaml")
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(UserError, match="is empty"):
        load_config(tmp_path / "empty.toml")
    (tmp_path / "preset.yaml").write_text("preset: stage1\n")  # what the message tells the user to write
    assert load_config(tmp_path / "preset.yaml") == stage1()


def test_non_utf8_config_is_one_line(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("run:\n  steps: 10 # é\n".encode("latin-1"))
    with pytest.raises(UserError, match="is not UTF-8 text"):
        load_config(tmp_path / "latin1.yaml")


BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)


@pytest.mark.parametrize("where", ["run.seed", "data.degradation", "optim.betas", "run.precision", "log", "model"])
def test_billion_laughs_value_is_refused_fast_with_a_bounded_message(tmp_path, where):
    section, _, key = where.partition(".")
    # The anchors live inside the value itself, as an attacker would put them: key: {a: &a [...], ..., i: &i [...]}.
    value = "{" + ", ".join(BILLION_LAUGHS.splitlines()) + "}"
    text = f"{section}:\n  {key}: {value}\n" if key else f"{section}: {value}\n"
    assert len(text) < 800
    path = tmp_path / "laughs.yaml"
    path.write_text(text)
    with Bounded() as bounded, pytest.raises(UserError) as caught:
        load_config(path)
    bounded.check()
    assert len(str(caught.value)) < 600 and "\n" not in str(caught.value)


def test_billion_laughs_as_an_override_value():
    value = "{" + ", ".join(BILLION_LAUGHS.splitlines()) + "}"
    with Bounded() as bounded, pytest.raises(UserError) as caught:
        load_config("tiny", [f"run.seed={value}"])
    bounded.check()
    assert len(str(caught.value)) < 600


def test_brief_never_builds_the_full_repr():
    shared: list[object] = ["lol"] * 9
    for _ in range(12):  # 9**13 leaves: the full repr would never finish
        shared = [shared] * 9
    with Bounded() as bounded:
        text = brief(shared)
    bounded.check(seconds=0.2)
    assert len(text) <= 80 and text.endswith("...")
    assert brief(10**5000).startswith("<an integer of about 5001 digits")
    assert "..." in brief("x" * 1000) and len(brief("x" * 1000)) <= 80
    assert brief(0.5) == "0.5"


# ---------------------------------------------------------------- degradation plans


def _plan(num_frames: int = 6, size: tuple[int, int] = (18, 25), seed: int = 3) -> dict:
    return json.loads(json.dumps(plan_to_dict(sample_plan(official(), num_frames, size, np.random.default_rng(seed)))))


def _step(plan: dict, op: str) -> dict:
    return next(step for step in plan["steps"] if step["op"] == op)


def _mutations():
    """(name, mutate(plan dict) -> JSON value, field the message must name)."""

    def blur(**values):
        return lambda p: _step(p, "blur").update(values) or p

    def first(op, key, value):
        return lambda p: _step(p, op).__setitem__(key, value) or p

    return [
        ("kernel 20001", blur(kernel_size=20001), "kernel_size"),
        ("kernel even", blur(kernel_size=20), "kernel_size"),
        ("kernel float", blur(kernel_size=7.0), "kernel_size"),
        ("nan sigma", lambda p: _step(p, "blur")["sigma_x"].__setitem__(0, math.nan) or p, "sigma_x"),
        ("unknown kernel", blur(kernel_type="box"), "kernel_type"),
        ("short sigma list", lambda p: _step(p, "blur")["sigma_x"].pop() and p, "sigma_x"),
        ("jpeg 1000", lambda p: _step(p, "jpeg")["qualities"].__setitem__(0, 1000) or p, "qualities"),
        ("jpeg 0", lambda p: _step(p, "jpeg")["qualities"].__setitem__(0, 0) or p, "qualities"),
        ("noise -50", lambda p: _step(p, "noise")["levels"].__setitem__(0, -50) or p, "levels"),
        ("noise kind", first("noise", "kind", "speckle"), "kind"),
        ("gray string", first("noise", "gray", "yes"), "gray"),
        ("codec name", first("codec", "codec", "vp9"), "codec"),
        ("bitrate 0", first("codec", "bitrate", 0), "bitrate"),
        ("x264 preset", first("codec", "x264_preset", "warp"), "x264_preset"),
        ("interpolation", first("resize", "interpolation", "lanczos"), "interpolation"),
        ("resize mode", first("resize", "mode", "sideways"), "mode"),
        ("a JSON list", lambda p: [p], "JSON object"),
        ("missing key", lambda p: p.pop("noise_seed") and p, "noise_seed"),
        ("negative seed", lambda p: p.__setitem__("noise_seed", -1) or p, "noise_seed"),
        ("target 0", lambda p: p.__setitem__("target_size", [0, 25]) or p, "target_size"),
        ("steps object", lambda p: p.__setitem__("steps", {}) or p, "steps"),
        ("step list", lambda p: p["steps"].__setitem__(0, [1]) or p, "steps[0]"),
        ("extra field", blur(strength=3), "fields"),
        ("format 2", lambda p: p.__setitem__("format", 2) or p, "format"),
    ]


def resize_down_plan() -> dict:
    for seed in range(200):
        plan = _plan(seed=seed)
        resize = [s for s in plan["steps"] if s["op"] == "resize" and s["mode"] != "target"]
        ops = {s["op"] for s in plan["steps"]}
        if resize and ops >= {"blur", "noise", "jpeg", "codec"}:
            return plan
    raise AssertionError("no sampled plan with every step")


@pytest.mark.parametrize(("name", "mutate", "field"), _mutations(), ids=[m[0] for m in _mutations()])
def test_bad_plans_are_refused_naming_the_field(name, mutate, field):
    data = mutate(copy.deepcopy(resize_down_plan()))
    with Bounded() as bounded, pytest.raises(ConfigError, match=field.replace("[", r"\[")):
        plan_from_json(json.dumps(data))
    bounded.check()


def test_resize_scale_zero_and_huge_are_refused():
    plan = resize_down_plan()
    step = next(s for s in plan["steps"] if s["op"] == "resize" and s["mode"] != "target")
    for bad in (0, -1, 1e9, math.inf):
        step["scales"][0] = bad
        with pytest.raises(ConfigError, match="scales"):
            plan_from_dict(json.loads(json.dumps(plan, allow_nan=True)))


def test_non_json_and_deep_json_plans():
    for text in ("{", "[" * 100_000, "\x00", '{"format": 1'):
        with pytest.raises(ConfigError):
            plan_from_json(text)


@pytest.fixture
def clean_video(tmp_path):
    from fractions import Fraction

    import av

    path = tmp_path / "clean.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.height, stream.width, stream.pix_fmt = 72, 100, "yuv420p"
        for t in range(6):
            frame = np.full((72, 100, 3), 20 * t, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_degrade_command_refuses_bad_plans_in_one_line(tmp_path, clean_video, capsys):
    pytest.importorskip("cv2")
    good = tmp_path / "good.json"
    assert main(["degrade", str(clean_video), str(tmp_path / "ok.mkv"), "--plan-out", str(good)]) == 0
    capsys.readouterr()
    cases = {
        "kernel_size": lambda p: [s.update(kernel_size=20001) for s in p["steps"] if s["op"] == "blur"] and p,
        "qualities": lambda p: [s.update(qualities=[1000] * 6) for s in p["steps"] if s["op"] == "jpeg"] and p,
        "levels": lambda p: [s.update(levels=[-50.0] * 6) for s in p["steps"] if s["op"] == "noise"] and p,
        "codec": lambda p: [s.update(codec="vp9") for s in p["steps"] if s["op"] == "codec"] and p,
        "JSON object": lambda p: [p],
        "sigma_x": lambda p: [s.update(sigma_x=[math.nan] * 6) for s in p["steps"] if s["op"] == "blur"] and p,
    }
    for field, mutate in cases.items():
        data = mutate(json.loads(good.read_text()))
        if data in (False, []):
            continue  # the sampled plan skipped that stage
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(data))
        with Bounded() as bounded:
            code = main(["degrade", str(clean_video), str(tmp_path / "y.mkv"), "--plan", str(bad)])
        bounded.check(seconds=3.0)
        line = _one_line(capsys.readouterr().err)
        assert code == 1 and field in line and "--plan" in line, line
        assert not (tmp_path / "y.mkv").exists()


# ---------------------------------------------------------------- worker counts and DDP start timeout


def test_worker_counts_are_capped_by_the_cpu_count(monkeypatch, capsys):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert capped_workers(2, sys.stderr) == 2
    assert capsys.readouterr().err == ""
    assert capped_workers(1000, sys.stderr) == 4
    assert "data.workers=1000 is more than the 4 CPUs here; using 4" in capsys.readouterr().err


STALL_SCRIPT = textwrap.dedent(
    """
    import contextlib, io, os, sys, time
    if os.environ["RANK"] == "1":
        time.sleep(600)  # a rank that never joins (stopped, lost)
    from realbasicvsr.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["train", "tiny", "run.dist_timeout=3", "data.workers=0", "data.degradation=none",
                     "--data", {data!r}, "--out", {run!r}, "--device", "cpu", "--max-steps", "1"])
    with open(os.path.join({out!r}, "rank" + os.environ["RANK"] + ".err"), "w") as handle:
        handle.write(err.getvalue())
    sys.exit(code)
    """
)


def _torchrun_two(script: Path, cwd: Path, timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    """Run `script` as 2 torchrun ranks (1 thread each); returns the finished process and the seconds it took."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    start = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - start


@pytest.mark.slow
@pytest.mark.dist
def test_a_rank_that_never_joins_ends_the_job_within_the_timeout(tmp_path):
    from test_train_data import make_clips

    data = make_clips(tmp_path / "data", n_clips=2, n_frames=5, size=(64, 64))
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "stall.py"
    script.write_text(STALL_SCRIPT.format(data=str(data), run=str(tmp_path / "run"), out=str(out)))
    done, elapsed = _torchrun_two(script, tmp_path, timeout=120)
    assert done.returncode != 0
    # 3 s of timeout + interpreter and torch start-up of both ranks on a shared 2-core machine
    assert elapsed < 3 + 45, elapsed
    line = _one_line((out / "rank0.err").read_text())
    assert "process rank(s) 1 of 2 did not join within 3 s" in line and "run.dist_timeout" in line


SIGSTOP_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    if os.environ["RANK"] == "1":  # stops itself (SIGSTOP: alive, not dead) a few steps into training
        def stop():
            time.sleep(12)
            os.kill(os.getpid(), signal.SIGSTOP)
        threading.Thread(target=stop, daemon=True).start()
    from realbasicvsr.cli import main
    sys.exit(main(["train", "tiny", "run.dist_timeout=4", "data.workers=0", "data.degradation=none",
                   "--data", {data!r}, "--out", {run!r}, "--device", "cpu", "--max-steps", "1000"]))
    """
)


@pytest.mark.slow
@pytest.mark.dist
def test_a_sigstopped_rank_makes_the_others_stop_naming_it(tmp_path):
    from test_train_data import make_clips

    data = make_clips(tmp_path / "data", n_clips=2, n_frames=5, size=(64, 64))
    script = tmp_path / "sigstop.py"
    script.write_text(SIGSTOP_SCRIPT.format(data=str(data), run=str(tmp_path / "run")))
    done, elapsed = _torchrun_two(script, tmp_path, timeout=180)
    assert done.returncode != 0
    # 12 s to the stop + 4 s timeout + torchrun's 30 s SIGTERM grace for the stopped process (it then SIGKILLs it)
    assert elapsed < 12 + 4 + 30 + 45, elapsed
    errors = [line for line in done.stderr.splitlines() if line.startswith("realbasicvsr train: error:")]
    assert len(errors) == 1 and "rank(s) 1 " in errors[0] and "run.dist_timeout" in errors[0], done.stderr[-2000:]
    assert "[rank0]: Traceback" not in done.stderr  # torchrun's own ChildFailedError report is not ours
