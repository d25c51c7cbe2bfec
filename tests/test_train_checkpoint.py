"""run.checkpoint_activations (same gradients, fewer saved activations, inference untouched) and run.precision=auto
on CPUs with and without native bf16."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from realbasicvsr.errors import ConfigError
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.models import cpu_features as cpu_features_module
from realbasicvsr.train.config import load_config
from realbasicvsr.train.dist import DistInfo
from realbasicvsr.train.loop import train
from realbasicvsr.train.setup import build_trainer, resolve_precision
from realbasicvsr.train.step import train_step
from test_train_data import make_clips, tiny_config
from test_train_step import batch

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


def checkpointing(enabled: bool, **run_fields: object):
    config = tiny_config(model=ModelConfig(mid_channels=8, num_propagation_blocks=2, num_cleaning_blocks=2))
    return replace(config, run=replace(config.run, checkpoint_activations=enabled, **run_fields))


def gradients(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("channels_last", ["never", "always"])
def test_checkpointed_step_has_the_same_losses_gradients_and_weights(channels_last):
    results = []
    for enabled in (False, True):
        trainer = build_trainer(checkpointing(enabled, channels_last=channels_last), DistInfo())
        assert trainer.generator_module.basicvsr.checkpoint_activations is enabled
        losses, ok = train_step(trainer, batch(t=6, size=32), CPU)
        assert ok
        results.append((losses, gradients(trainer.generator_module), trainer.generator_module.state_dict()))
    (losses_a, grads_a, weights_a), (losses_b, grads_b, weights_b) = results
    assert losses_a == losses_b
    assert grads_a.keys() == grads_b.keys() and any(k.startswith("image_cleaning.") for k in grads_a)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-5, atol=1e-7, msg=name)
    for name in weights_a:
        torch.testing.assert_close(weights_b[name], weights_a[name], rtol=1e-5, atol=1e-7, msg=name)


def saved_bytes_of_forward(model: RealBasicVSR, lq: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for the backward pass during one forward (views counted in full)."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        hr, cleaned = model(lq)
    (hr.mean() + cleaned.mean()).backward()
    return total


def test_checkpointing_keeps_a_fraction_of_the_activations():
    torch.manual_seed(0)
    model = RealBasicVSR(ModelConfig(mid_channels=16, num_propagation_blocks=4, num_cleaning_blocks=4))
    lq = torch.rand(1, 8, 3, 24, 24)
    plain = saved_bytes_of_forward(model, lq)
    checkpointed = saved_bytes_of_forward(copy.deepcopy(model).use_activation_checkpointing(), lq)
    assert checkpointed < 0.3 * plain, (checkpointed, plain)


def stream_frames(model: RealBasicVSR, lq: torch.Tensor, keep: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack(list(model.stream_window(lq, keep)), dim=1)


@pytest.mark.parametrize("channels_last", [False, True])
def test_inference_is_unchanged_by_the_checkpointing_flag(channels_last):
    torch.manual_seed(0)
    model = RealBasicVSR(ModelConfig(mid_channels=8, num_propagation_blocks=2, num_cleaning_blocks=2)).eval()
    model.use_channels_last(channels_last)
    lq = torch.rand(1, 5, 3, 20, 24)
    with torch.inference_mode():
        expected = model(lq)
    expected_stream = stream_frames(model, lq, 3)
    model.use_activation_checkpointing()
    with torch.inference_mode():
        got = model(lq)
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    assert torch.equal(stream_frames(model, lq, 3), expected_stream)


def test_the_option_is_a_run_key_off_by_default(tmp_path):
    assert load_config("tiny").run.checkpoint_activations is False
    assert load_config("stage1", ["run.checkpoint_activations=true"]).run.checkpoint_activations is True
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\nrun:\n  checkpoint_activations: true\n")
    assert load_config(path).run.checkpoint_activations is True
    with pytest.raises(ConfigError, match=r"run\.checkpoint_activations"):
        load_config("tiny", ["run.checkpoint_activations=sometimes"])


@pytest.fixture
def forced_bf16(monkeypatch):
    """Sets REALBASICVSR_CPU_BF16 for one test (a function of the wanted value) and clears the detection cache."""

    def force(value: str) -> None:
        monkeypatch.setenv(cpu_features_module.OVERRIDE_VARIABLE, value)
        cpu_features_module.cpu_features.cache_clear()

    yield force
    monkeypatch.delenv(cpu_features_module.OVERRIDE_VARIABLE, raising=False)
    cpu_features_module.cpu_features.cache_clear()


def test_auto_precision_is_bf16_on_a_native_bf16_cpu_and_fp32_elsewhere(forced_bf16):
    auto = checkpointing(False, precision="auto")
    forced_bf16("1")
    choice = resolve_precision(auto, CPU)
    assert choice.dtype == torch.bfloat16 and not choice.needs_scaler and choice.name == "bf16"
    assert "bf16 autocast" in choice.reason and "native bf16" in choice.reason
    assert build_trainer(auto, DistInfo()).autocast_dtype == torch.bfloat16
    forced_bf16("0")
    choice = resolve_precision(auto, CPU)
    assert choice.dtype is None and choice.name == "fp32" and "no native bf16" in choice.reason
    assert build_trainer(auto, DistInfo()).autocast_dtype is None
    forced_bf16("1")  # an explicit precision is never changed
    assert resolve_precision(checkpointing(False, precision="fp32"), CPU).dtype is None


def test_the_run_log_says_which_precision_and_why(tmp_path, forced_bf16):
    forced_bf16("0")
    data = make_clips(tmp_path / "data", n_clips=2, n_frames=4, size=(32, 40))
    config = checkpointing(True, precision="auto")
    log = tmp_path / "log.txt"
    with log.open("w") as stream:
        result = train(config, data, tmp_path / "run", max_steps=2, stream=stream)
    assert result.step == 2 and all(torch.isfinite(torch.tensor(v)) for v in result.losses.values())
    text = log.read_text()
    assert "precision: fp32 (run.precision=auto: no native bf16 on this CPU" in text
    assert "activation checkpointing on" in text


DDP_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from dataclasses import replace
    import torch
    sys.path.insert(0, {tests!r})
    from test_train_checkpoint import checkpointing, gradients
    from test_train_step import batch
    from realbasicvsr.train import dist
    from realbasicvsr.train.setup import build_trainer, wrap_ddp
    from realbasicvsr.train.step import train_step

    info = dist.setup("cpu", timeout=120)
    grads = []
    for enabled in (False, True):
        trainer = build_trainer(checkpointing(enabled), info)
        wrap_ddp(trainer, info)
        losses, ok = train_step(trainer, batch(t=6, size=32, seed=info.rank), info.device, info.distributed)
        grads.append(gradients(trainer.generator_module))
    torch.save(grads, os.path.join({out!r}, "rank" + str(info.rank) + ".pt"))
    dist.teardown(info)
    """
)


@pytest.mark.slow
@pytest.mark.dist
def test_checkpointing_under_ddp_gives_the_same_averaged_gradients(tmp_path):
    script = tmp_path / "ddp_checkpoint.py"
    script.write_text(DDP_SCRIPT.format(tests=str(REPO / "tests"), out=str(tmp_path)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    (plain0, checkpointed0), (plain1, checkpointed1) = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for name in plain0:
        assert torch.equal(plain0[name], plain1[name]), name  # DDP averaged them: the same on both ranks
        torch.testing.assert_close(checkpointed0[name], plain0[name], rtol=1e-5, atol=1e-7, msg=name)
        assert torch.equal(checkpointed0[name], checkpointed1[name]), name
