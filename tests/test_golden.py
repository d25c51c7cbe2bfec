"""Golden tensors of our own seeded small model (tests/golden/, made by scripts/make_golden.py): the model, iter_frames,
channels_last and the streaming Upscaler (windows, stripes, SPyNet cap) give bit for bit the recorded outputs.

Bitwise equality is checked where the kernels round as on the recording machine (same PyTorch, CPU capability and
fused-convolution support); elsewhere the recorded subset of each output is checked to 1e-5.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from golden_cases import GOLDEN_DIR, cases, digest, environment, make_model, subset, to_lq, weights_digest

pytestmark = pytest.mark.usefixtures("one_thread")

RECORDED = json.loads((GOLDEN_DIR / "golden.json").read_text())
TENSORS = load_file(GOLDEN_DIR / "golden.safetensors")
SAME_KERNELS = RECORDED["environment"] == environment()


def test_weights_and_input_are_the_recorded_ones() -> None:
    assert weights_digest(make_model()) == RECORDED["weights_sha256"]  # the hash-made weights are the same bits
    assert digest(TENSORS["input"]) == RECORDED["input_sha256"]


@pytest.mark.parametrize("name", list(RECORDED["cases"]))
def test_outputs_are_the_recorded_ones(name: str) -> None:
    recorded = RECORDED["cases"][name]
    outputs = cases()[name](to_lq(TENSORS["input"]))
    assert sorted(outputs) == sorted(recorded)
    for key, value in outputs.items():
        entry = recorded[key]
        assert (list(value.shape), str(value.dtype)) == (entry["shape"], entry["dtype"]), key
        if "values" in entry:
            assert value.reshape(-1).tolist() == entry["values"], key
            continue
        got, expected = subset(value), TENSORS[f"{name}.{key}"]
        error = (got - expected).abs().max().item()
        if SAME_KERNELS:
            assert torch.equal(got, expected), f"{key}: the recorded subset differs by up to {error:.3g}"
            assert digest(value) == entry["sha256"], f"{key}: not bitwise the recorded output"
        else:
            assert error <= 1e-5, f"{key}: differs by {error:.3g} (another machine: checked to 1e-5 only)"


def test_every_case_is_recorded() -> None:
    assert sorted(cases()) == sorted(RECORDED["cases"]), "run scripts/make_golden.py after adding a case"
