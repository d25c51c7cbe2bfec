"""Weights shipped inside the package, so that the main commands work without any download.

- `realbasicvsr_compact_x4.safetensors`: a compact RealBasicVSR (our own training on bundled data, see
  docs/compact_model/); the offline fallback of `upscale` when the official weights are not cached. It is much
  smaller and weaker than the official model: prefer the official weights whenever they can be had.
  Its SPyNet is our own, pretrained on synthetic motion (`realbasicvsr pretrain-spynet`); the file also serves as
  `run.spynet_weights` for training other models without a download.

The shipped file has a `.json` beside it with its sha256 and training steps.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from realbasicvsr.errors import UserError

BUNDLED_DIR = Path(__file__).resolve().parent
COMPACT_WEIGHTS = "realbasicvsr_compact_x4.safetensors"
BUNDLED_DESCRIPTION = (
    "bundled compact RealBasicVSR x4 (c{mid_channels}, {num_propagation_blocks}+{num_cleaning_blocks} blocks; "
    "trained by this project on bundled offline data, with its synthetic-motion SPyNet; weaker than the official "
    "weights)"
)


def bundled_weights_path() -> Path | None:
    """The bundled compact generator (release format), or None when this installation does not ship it."""
    path = BUNDLED_DIR / COMPACT_WEIGHTS
    return path if path.is_file() else None


def bundled_description() -> str:
    """One line saying what the bundled generator is, for `upscale` to print when it falls back to it."""
    path = bundled_weights_path()
    if path is None:
        return "no bundled weights in this installation"
    config = json.loads(path.with_suffix(".json").read_text())["model_config"]
    return BUNDLED_DESCRIPTION.format(**config)


def verify_bundled(path: Path) -> str:
    """Check a bundled file against the sha256 in its `.json`; returns the digest or raises `UserError`."""
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise UserError(f"{sidecar} is missing; reinstall realbasicvsr")
    expected = json.loads(sidecar.read_text())["sha256"]
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise UserError(f"{path} is corrupted (sha256 {actual[:12]}..., expected {expected[:12]}...); reinstall")
    return actual
