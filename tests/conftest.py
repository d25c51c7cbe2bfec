"""Shared fixtures. Third-party reference files are read from ../shared and never copied here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

# `dtype="auto"` picks bf16 on CPUs with native bf16 (AMX, AVX512-BF16), so what the tests compute would depend on
# the CI machine's CPU kind: they run as a CPU without it unless REALBASICVSR_CPU_BF16 is set (=1 runs the suite
# as a native-bf16 machine would). tests/test_precision_auto.py sets it per test to check both choices.
os.environ.setdefault("REALBASICVSR_CPU_BF16", "0")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REALBASICVSR_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared; skips the calling test with a clear reason when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference file {path} is not available (set REALBASICVSR_SHARED to the shared/ folder)")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy shared CPU OpenMP spin-waits make them much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_checkpoint() -> Path:
    """The official-format c16b2 checkpoint of ../shared/refvectors."""
    return shared_path("refvectors", "small_c16b2_checkpoint.pth")


@dataclass(frozen=True)
class OfficialCheckpoint:
    """A checkpoint in the official mmediting layout, an input clip for it, and a threshold that makes its cleaning
    run more than once (with the number of passes it then makes)."""

    path: Path
    lq: torch.Tensor
    multi_pass_threshold: float
    multi_passes: int


def write_official_layout(path: Path, seed: int = 2024) -> Path:
    """A c16b2 RealBasicVSR saved as the official release is: legacy torch serialisation of {'meta', 'state_dict'}
    with `generator.*`, `generator_ema.*` (other values), `discriminator.*` and `step_counter`. Made by this
    project from a seed, so the loading tests need no third-party file."""
    from realbasicvsr.models import ModelConfig, RealBasicVSR, UNetDiscriminator

    torch.manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for prefix in ("generator.", "generator_ema."):
        model = RealBasicVSR(ModelConfig(16, 2, 2))
        state.update({prefix + k: v for k, v in model.state_dict().items()})
    state.update({"discriminator." + k: v for k, v in UNetDiscriminator(3, 4).state_dict().items()})
    state["step_counter"] = torch.zeros(1)
    meta = {"mmedit_version": "0.16.0", "exp_name": "realbasicvsr_selfmade_c16b2", "seed": seed, "iter": 0}
    torch.save({"meta": meta, "state_dict": state}, path, _use_new_zipfile_serialization=False)
    return path


def moving_lq(t: int = 5, h: int = 32, w: int = 48) -> torch.Tensor:
    """(1, t, 3, h, w) smooth content drifting 1 px per frame, so flows and propagation are not trivial."""
    yy, xx = torch.meshgrid(torch.arange(h + t), torch.arange(w + t), indexing="ij")
    scene = torch.stack([torch.sin(xx / 5.0), torch.cos(yy / 7.0), torch.sin((xx + yy) / 9.0)]) * 0.4 + 0.5
    return torch.stack([scene[:, i : i + h, i : i + w] for i in range(t)]).unsqueeze(0)


@pytest.fixture(scope="session")
def selfmade_checkpoint(tmp_path_factory) -> Path:
    return write_official_layout(tmp_path_factory.mktemp("official_layout") / "selfmade_c16b2.pth")


@pytest.fixture(params=["selfmade", "reference"])
def official_checkpoint(request, selfmade_checkpoint) -> OfficialCheckpoint:
    """Each test runs on our self-made file (always) and on ../shared's reference checkpoint (where present)."""
    if request.param == "selfmade":
        # threshold 0 never stops early: all 3 passes
        return OfficialCheckpoint(selfmade_checkpoint, moving_lq(), 0.0, 3)
    path = shared_path("refvectors", "small_c16b2_checkpoint.pth")
    lq = torch.load(shared_path("refvectors", "input_a_32x48.pt"), weights_only=True)["lq"]
    return OfficialCheckpoint(path, lq, 5.0, 2)


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """A tiny untrained generator (c4, 1 + 1 blocks) in our release format, for command-line tests that only need
    the pipeline to run fast."""
    from realbasicvsr.models import ModelConfig, RealBasicVSR
    from realbasicvsr.weights import save_release

    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_release(RealBasicVSR(ModelConfig(4, 1, 1)), path)
    return path


def pass_through_model():
    """A tiny generator whose residuals are zero: its output is the bilinear x4 of its input, so the output's
    pictures and levels follow the source's."""
    from realbasicvsr.models import ModelConfig, RealBasicVSR

    model = RealBasicVSR(ModelConfig(4, 1, 1))
    with torch.no_grad():
        for conv in (model.image_cleaning[-1], model.basicvsr.conv_last):
            conv.weight.zero_()
            conv.bias.zero_()
    return model
