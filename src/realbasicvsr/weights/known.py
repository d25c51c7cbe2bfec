"""Which weights exist: the published files (downloaded by name into the torch hub cache, sha256-checked) and the
weights shipped inside the package, so that the main commands work without any download.

- `realbasicvsr_compact_x4.safetensors`: a compact RealBasicVSR (our own training on bundled data, see
  docs/compact_model/); the offline fallback of `upscale` when the official weights are not cached. It is much
  smaller and weaker than the official model: prefer the official weights whenever they can be had.
  Its SPyNet is our own, pretrained on synthetic motion (`realbasicvsr pretrain-spynet`); the file also serves as
  `run.spynet_weights` for training other models without a download.

The shipped file has a `.json` beside it with its sha256 and training steps. `default_weights()` is the rule for
which weights run when none are given (the cached official release, else this bundled file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from realbasicvsr.errors import UserError

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
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


@dataclass(frozen=True)
class KnownWeights:
    """A published weights file that `resolve_weights` can download by name."""

    name: str
    url: str
    filename: str
    sha256_prefix: str
    description: str
    fidelity: str = ""  # the known name of its stage-1 (no GAN) partner, for a strength blend


# name -> published file. The official x4 releases of RealBasicVSR: stage 2 (GAN) and stage 1 (no GAN, "wogan").
KNOWN_WEIGHTS: dict[str, KnownWeights] = {
    "realbasicvsr_x4": KnownWeights(
        name="realbasicvsr_x4",
        url="https://download.openmmlab.com/mmediting/restorers/real_basicvsr/"
        "realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds_20211104-52f77c2c.pth",
        filename="realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds_20211104-52f77c2c.pth",
        sha256_prefix="52f77c2c",
        description="official RealBasicVSR x4 release (c64b20, REDS, stage 2 with GAN), OpenMMLab",
        fidelity="realbasicvsr_wogan_x4",
    ),
    "realbasicvsr_wogan_x4": KnownWeights(
        name="realbasicvsr_wogan_x4",
        url="https://download.openmmlab.com/mmediting/restorers/real_basicvsr/"
        "realbasicvsr_wogan_c64b20_2x30x8_lr1e-4_300k_reds_20211027-0e2ff207.pth",
        filename="realbasicvsr_wogan_c64b20_2x30x8_lr1e-4_300k_reds_20211027-0e2ff207.pth",
        sha256_prefix="0e2ff207",
        description="official RealBasicVSR x4 stage-1 release (c64b20, REDS, L1 + cleaning, no GAN), OpenMMLab; "
        "the fidelity end of --strength",
    ),
}
DEFAULT_WEIGHTS = "realbasicvsr_x4"


def weights_cache_dir() -> Path:
    """Where downloaded weights live: the usual torch hub cache (`$TORCH_HOME/hub/checkpoints`)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_known_weights(name: str) -> Path | None:
    """The cached file of a known name, or None when it has not been downloaded."""
    path = weights_cache_dir() / KNOWN_WEIGHTS[name].filename
    return path if path.is_file() else None


def resolve_weights(name_or_path: str | Path, *, download: bool = True) -> Path:
    """Turn a path or a known name (see `KNOWN_WEIGHTS`) into a local file, downloading a known one if needed."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = str(name_or_path)
    if name not in KNOWN_WEIGHTS:
        if path.exists():
            raise UserError(f"weights path {path} is not a file", option="weights")
        known = ", ".join(KNOWN_WEIGHTS)
        raise UserError(
            f"weights {name!r} not found: give the path of a .pth/.safetensors file or a known name ({known})",
            option="weights",
        )
    info = KNOWN_WEIGHTS[name]
    target = weights_cache_dir() / info.filename
    if target.is_file():
        return target
    if not download:
        raise UserError(_offline_message(info, target, "downloading is disabled"), option="weights")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Writes to a temporary file, checks the sha256 prefix, then moves into place.
        torch.hub.download_url_to_file(info.url, str(target), hash_prefix=info.sha256_prefix, progress=True)
    except OSError as error:  # URLError and socket errors are OSErrors
        raise UserError(_offline_message(info, target, f"download failed: {error}"), option="weights") from error
    except RuntimeError as error:  # torch.hub raises RuntimeError on a hash mismatch
        raise UserError(
            f"downloaded {info.url} but its sha256 does not start with {info.sha256_prefix}: {error}"
        ) from error
    return target


def _offline_message(info: KnownWeights, target: Path, reason: str) -> str:
    return (
        f"the {info.name} weights are not cached and {reason}. Download {info.url} on a machine with internet "
        f"and put it at {target} (or give that file's path as the weights)"
    )


@dataclass(frozen=True)
class DefaultWeights:
    """The weights used when none are given: the file, where it comes from, and one line saying so."""

    path: Path
    source: Literal["official", "bundled"]
    note: str  # e.g. "the official realbasicvsr_x4 weights (/root/.cache/torch/hub/checkpoints/...)"


def default_weights() -> DefaultWeights:
    """The default-weights rule of `upscale_video` and the `upscale` command.

    The official release when it is already in the cache, else the bundled compact model after its sha256 check.
    It never downloads: an offline machine would stall, and the user did not ask for a download. Raises
    `UserError` (option "weights") saying how to get the official file, online or offline, when neither is there.
    """
    cached = cached_known_weights(DEFAULT_WEIGHTS)
    if cached is not None:
        return DefaultWeights(cached, "official", f"the official {DEFAULT_WEIGHTS} weights ({cached})")
    target = weights_cache_dir() / KNOWN_WEIGHTS[DEFAULT_WEIGHTS].filename
    bundled = bundled_weights_path()
    if bundled is None:
        raise UserError(
            f"no weights were given, the official {DEFAULT_WEIGHTS} weights are not cached and this installation "
            f"has no bundled model: set the weights to {DEFAULT_WEIGHTS!r} to download them once, or to the path "
            f"of a .pth/.safetensors file (offline: download {KNOWN_WEIGHTS[DEFAULT_WEIGHTS].url} elsewhere and "
            f"put it at {target})",
            option="weights",
        )
    verify_bundled(bundled)
    note = f"the {bundled_description()}; the official {DEFAULT_WEIGHTS} weights are not in {target.parent}"
    return DefaultWeights(bundled, "bundled", note)
