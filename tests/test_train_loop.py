"""The training loop end to end on CPU: overfitting, exact resume, checkpoints, NaN stop, Ctrl-C, validation, export."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import realbasicvsr.train.loop as loop
from realbasicvsr.cli import main
from realbasicvsr.degrade.config import fast
from realbasicvsr.errors import UserError
from realbasicvsr.models import ModelConfig
from realbasicvsr.train.config import (
    CheckpointConfig,
    DataConfig,
    LogConfig,
    LossConfig,
    OptimConfig,
    load_config,
    stage1,
)
from realbasicvsr.train.loop import train
from realbasicvsr.train.state import list_checkpoints, load_checkpoint
from test_train_data import make_clips, tiny_config

REPO = Path(__file__).resolve().parents[1]


def gan_config(**sections):
    """Stage-2-like (GAN, no VGG to stay fast), a checkpoint every step, the newest 2 kept."""
    return tiny_config(
        loss=LossConfig(gan_weight=0.05, discriminator_channels=8),
        checkpoint=CheckpointConfig(every=1, keep=2),
        **sections,
    )


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_clips(tmp_path_factory.mktemp("clips") / "data", n_clips=2, n_frames=4, size=(32, 40))


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, data_dir) -> Path:
    """An uninterrupted 3-step run."""
    run_dir = tmp_path_factory.mktemp("runs") / "a"
    result = train(gan_config(), data_dir, run_dir, max_steps=3, stream=io.StringIO())
    assert result.step == 3 and not result.interrupted
    return run_dir


def test_tiny_model_overfits_a_tiny_set(tmp_path):
    data = make_clips(tmp_path / "data", n_clips=1, n_frames=4, size=(32, 32))
    config = tiny_config(
        optim=OptimConfig(lr_g=2e-3),
        data=DataConfig(degradation="none", num_frames=2, gt_size=32, batch_size=1, workers=0),
    )
    train(config, data, tmp_path / "run", max_steps=25, stream=io.StringIO())
    totals = [r["pix"] + r["clean"] for r in records(tmp_path / "run")]
    assert len(totals) == 25
    first, last = sum(totals[:3]) / 3, sum(totals[-5:]) / 5
    assert last < 0.6 * first, totals


def test_a_degradation_preset_in_yaml_reaches_the_training_samples(tmp_path, data_dir, monkeypatch):
    """`data.degradation: fast` in a config file: the samples of a real (tiny) step use x264's veryfast preset,
    and the run's config.yaml says `fast` again."""
    pytest.importorskip("cv2")
    from realbasicvsr.degrade import codec

    presets = []
    real_encode = codec.encode_yuv

    def spy(*args, **kwargs):
        presets.append(kwargs.get("x264_preset"))
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(codec, "encode_yuv", spy)
    path = tmp_path / "fast.yaml"
    path.write_text(
        "preset: tiny\nmodel: {mid_channels: 4, num_propagation_blocks: 1, num_cleaning_blocks: 1}\n"
        "data: {degradation: fast, num_frames: 2, gt_size: 32, batch_size: 1, workers: 0}\n"
    )
    config = load_config(path)
    assert config.data.degradation == fast()
    assert train(config, data_dir, tmp_path / "run", max_steps=1, stream=io.StringIO()).step == 1
    assert presets and set(presets) == {"veryfast"}  # both codec steps of the sample, fast() settings
    assert "degradation: fast" in (tmp_path / "run" / "config.yaml").read_text()
    assert load_config(tmp_path / "run" / "config.yaml") == replace(config, run=replace(config.run, steps=1))


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path, data_dir, run_a):
    run_b = tmp_path / "b"
    train(gan_config(), data_dir, run_b, max_steps=2, stream=io.StringIO())
    with pytest.raises(UserError, match="already holds checkpoints"):
        train(gan_config(), data_dir, run_b, max_steps=3, stream=io.StringIO())
    log = io.StringIO()
    result = train(gan_config(), data_dir, run_b, max_steps=3, resume="auto", stream=log)
    assert result.step == 3 and "resumed from" in log.getvalue() and "differs" not in log.getvalue()
    a = load_checkpoint(run_a / "checkpoints" / "step_00000003.pt")
    b = load_checkpoint(run_b / "checkpoints" / "step_00000003.pt")
    for key in ("generator", "generator_ema", "discriminator"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    for key in ("optim_g", "optim_d"):
        for index, state in a[key]["state"].items():
            assert all(torch.equal(state[k], b[key]["state"][index][k]) for k in ("exp_avg", "exp_avg_sq"))
    assert records(run_b)[-1]["pix"] == records(run_a)[-1]["pix"]  # the resumed step logged the same loss


def test_only_the_newest_checkpoints_are_kept_and_hold_the_full_state(run_a):
    assert [p.name for p in list_checkpoints(run_a)] == ["step_00000002.pt", "step_00000003.pt"]
    state = load_checkpoint(run_a / "checkpoints" / "step_00000003.pt")
    assert {"generator", "generator_ema", "discriminator", "optim_g", "optim_d", "rng", "config", "step"} <= set(state)
    assert state["step"] == 3 and state["config"]["model"]["mid_channels"] == 8
    assert not list((run_a / "checkpoints").glob(".*"))  # no temporary files left behind
    assert (run_a / "config.yaml").read_text().startswith("model:")


def test_export_writes_the_ema_generator_for_upscale(tmp_path, run_a):
    from realbasicvsr.weights import load_generator

    out = tmp_path / "tiny.safetensors"
    assert main(["export", str(run_a), str(out)]) == 0
    model = load_generator(out)
    ema = load_checkpoint(run_a / "checkpoints" / "step_00000003.pt")["generator_ema"]
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    frames = make_clips(tmp_path / "lq", n_clips=1, n_frames=3, size=(16, 20)) / "clip000"
    assert main(["upscale", str(frames), str(tmp_path / "hr"), "--weights", str(out), "--device", "cpu"]) == 0
    from PIL import Image

    with Image.open(sorted((tmp_path / "hr").iterdir())[0]) as first:
        assert first.size == (80, 64)  # upscale ran the exported weights at x4
    assert main(["export", str(run_a), str(tmp_path / "x.pt")]) == 1  # wrong suffix: a one-line error
    assert main(["export", str(tmp_path / "nothing"), str(out)]) == 1


def test_repeated_nan_losses_stop_the_run_with_a_clear_message(tmp_path, data_dir, monkeypatch):
    real_step = loop.train_step

    def poisoned_step(trainer, batch, device, distributed=False):
        batch["gt_usm"][:, 0, 0, 0, 0] = float("nan")  # a corrupt target: the loss becomes NaN
        return real_step(trainer, batch, device, distributed)

    monkeypatch.setattr(loop, "train_step", poisoned_step)
    log = io.StringIO()
    config = tiny_config(run=replace(tiny_config().run, max_bad_steps=3))
    with pytest.raises(UserError, match="3 steps in a row had NaN/Inf losses"):
        train(config, data_dir, tmp_path / "run", max_steps=10, stream=log)
    assert log.getvalue().count("skipped, non-finite loss") == 2


def test_gpu_out_of_memory_names_the_batch_and_the_fix(tmp_path, data_dir, monkeypatch):
    """A CUDA OOM (seen on an H200: the stage-2 preset's batch 8 on one GPU in fp32) becomes a one-line error that
    names the per-GPU batch and what to lower. No GPU here, so the step raises the error CUDA would."""
    real_step = loop.train_step
    calls = []

    def step_then_oom(trainer, batch, device, distributed=False):
        calls.append(1)
        if len(calls) == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.75 GiB.")
        return real_step(trainer, batch, device, distributed)

    monkeypatch.setattr(loop, "train_step", step_then_oom)
    config = tiny_config(checkpoint=CheckpointConfig(every=2, keep=2))
    with pytest.raises(UserError) as caught:
        train(config, data_dir, tmp_path / "run", max_steps=10, stream=io.StringIO())
    message = str(caught.value)
    assert "out of GPU memory at step 3: 2 sequences per GPU of 6 frames, GT 32x32, fp32" in message
    assert "lower data.batch_size" in message and "run.precision=bf16" in message
    assert "step_00000002.pt" in message and "resume=auto" in message and caught.value.option == "resume"
    assert isinstance(caught.value.__cause__, torch.cuda.OutOfMemoryError)


def test_validation_logs_psnr_ssim_and_saves_strips(tmp_path, data_dir):
    val = make_clips(tmp_path / "val", n_clips=1, n_frames=3, size=(48, 64))
    config = tiny_config(data=replace(tiny_config().data, val_dir=str(val)), log=LogConfig(every=1, val_every=2))
    train(config, data_dir, tmp_path / "run", max_steps=2, stream=io.StringIO())
    scores = [r for r in records(tmp_path / "run") if "val_psnr" in r]
    assert len(scores) == 1 and 10 < scores[0]["val_psnr"] < 60 and 0 < scores[0]["val_ssim"] <= 1
    from PIL import Image

    with Image.open(tmp_path / "run" / "samples" / "step_00000002.png") as strip:
        assert strip.size == (3 * 64, 48)  # LQ (x4 nearest) | output | GT


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "realbasicvsr", "train", "tiny", "data.degradation=none", "data.workers=0",
               "model.mid_channels=8", "data.num_frames=3", "data.gt_size=32", "log.every=1",
               "--data", str(data_dir), "--out", str(run_dir), "--max-steps", "1000"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ((run_dir / "metrics.jsonl").is_file() and (run_dir / "metrics.jsonl").read_text()):
            assert time.monotonic() < deadline and process.poll() is None, "training did not start"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted: saved step" in err
    (saved,) = list_checkpoints(run_dir)
    assert load_checkpoint(saved)["step"] == int(saved.stem.split("_")[1]) >= 1


def test_stage2_starts_from_the_stage1_ema_weights(tmp_path, run_a):
    from realbasicvsr.train.setup import build_generator

    ema = load_checkpoint(run_a / "checkpoints" / "step_00000003.pt")["generator_ema"]
    config = tiny_config(run=replace(tiny_config().run, init_from=str(run_a)))
    assert all(torch.equal(v, ema[k]) for k, v in build_generator(config).state_dict().items())
    release = tmp_path / "s1.safetensors"
    assert main(["export", str(run_a), str(release)]) == 0
    config = tiny_config(run=replace(tiny_config().run, init_from=str(release)))
    model = build_generator(config)
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    assert not any(p.requires_grad for p in model.basicvsr.spynet.parameters())
    wider = replace(tiny_config(run=replace(tiny_config().run, init_from=str(run_a))), model=ModelConfig(16, 1, 1))
    with pytest.raises(UserError, match="does not match model"):
        build_generator(wider)


def test_official_spynet_file_is_loaded(tmp_path):
    from realbasicvsr.models import SPyNet
    from realbasicvsr.train.setup import build_generator

    spynet = SPyNet()
    # the official file holds only the pyramid's convolutions (no mean/std buffers), under `state_dict`
    state = {k: v for k, v in spynet.state_dict().items() if k.startswith("basic_module.")}
    torch.save({"state_dict": state}, tmp_path / "spynet.pth")
    config = tiny_config(run=replace(tiny_config().run, spynet_weights=str(tmp_path / "spynet.pth")))
    loaded = build_generator(config).basicvsr.spynet.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in spynet.state_dict().items())
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    config = tiny_config(run=replace(tiny_config().run, spynet_weights=str(tmp_path / "other.pth")))
    with pytest.raises(UserError, match="not a SPyNet checkpoint"):
        build_generator(config)


def test_resuming_with_a_changed_config_names_the_changes():
    saved = gan_config().to_dict()
    current = gan_config(optim=OptimConfig(lr_g=5e-5)).to_dict()
    current["run"]["steps"] = 99  # --max-steps: not a change worth a warning
    assert loop._changed_keys(saved, current) == ["optim.lr_g"]
    # A checkpoint from before the recipes had names says `realworld`: the official recipe, not a change.
    old = stage1().to_dict()
    old["data"]["degradation"] = "realworld"
    assert loop._changed_keys(loop._as_current(old), stage1().to_dict()) == []
