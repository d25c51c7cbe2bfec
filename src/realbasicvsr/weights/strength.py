"""Restoration strength: network interpolation between a fidelity model and a perceptual model of one architecture.

RealBasicVSR is trained in two stages: stage 1 with L1 and the cleaning loss only (faithful, a little soft), stage 2
adds the GAN and perceptual losses (sharper, and the "oil painting" look users complain about). Blending the two
weight files parameter by parameter, `fidelity + strength * (perceptual - fidelity)`, gives the looks in between
without retraining, as Real-ESRGAN's `--denoise_strength` does for its two models.

The pairs this tool knows (`weights_pair`):
- the official release `realbasicvsr_x4` (stage 2) with the official stage-1 release `realbasicvsr_wogan_x4`;
- the bundled compact model (stage 1, the offline default) with its GAN fine-tune
  (`realbasicvsr_compact_x4_gan.safetensors`, stored as the tensors that differ from the bundled file, about
  0.9 MB; its SPyNet is the bundled one);
- any two files the user gives (`--weights PERCEPTUAL --fidelity-weights FIDELITY`).

`strength` None runs the given weights untouched. Strength 1 loads the perceptual file alone and 0 the fidelity
file alone (no arithmetic, so each end is bitwise that model's output); for the bundled model, whose default is
its fidelity end, no strength means 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from realbasicvsr.errors import UserError
from realbasicvsr.models.realbasicvsr import ModelConfig, RealBasicVSR
from realbasicvsr.weights.known import (
    BUNDLED_DIR,
    DEFAULT_WEIGHTS,
    KNOWN_WEIGHTS,
    bundled_weights_path,
    default_weights,
)
from realbasicvsr.weights.release import generator_state, load_generator, load_state_strict

BUNDLED_GAN = "realbasicvsr_compact_x4_gan.safetensors"


@dataclass(frozen=True)
class WeightsPair:
    """The two ends of a strength blend (paths or known names) and the strength that the pair's default is."""

    fidelity: str | Path
    perceptual: str | Path
    default_strength: float
    label: str  # e.g. "the official pair (realbasicvsr_wogan_x4 -> realbasicvsr_x4)"


def bundled_gan_path() -> Path | None:
    """The bundled GAN fine-tune of the compact model (a file of differences), or None when not shipped."""
    path = BUNDLED_DIR / BUNDLED_GAN
    return path if path.is_file() else None


def weights_pair(weights: str | Path, fidelity_weights: str | Path | None = None) -> WeightsPair:
    """The pair that a strength blends for `weights`: the user's `fidelity_weights` when given, else the known
    partner of `weights` (the official release, the bundled model). Raises `UserError` when none is known."""
    if fidelity_weights is not None:
        return WeightsPair(fidelity_weights, weights, 1.0, f"{fidelity_weights} (fidelity) -> {weights} (perceptual)")
    bundled = bundled_weights_path()
    gan = bundled_gan_path()
    path = Path(weights).expanduser()
    if bundled is not None and gan is not None and path.is_file() and path.resolve() == bundled.resolve():
        return WeightsPair(bundled, gan, 0.0, "the bundled pair (compact stage 1 -> its GAN fine-tune)")
    name = path.name if path.is_file() else str(weights)
    for known in KNOWN_WEIGHTS.values():
        if known.fidelity and name in (known.name, known.filename):
            return WeightsPair(known.fidelity, weights, 1.0, f"the official pair ({known.fidelity} -> {known.name})")
    raise UserError(
        f"strength blends a fidelity (stage 1, no GAN) model with {weights}, and none is known for it: pass the "
        f"stage-1 weights of the same architecture as fidelity_weights, or use {DEFAULT_WEIGHTS} or the bundled "
        "model, whose pairs are known",
        option="fidelity_weights",
    )


def load_upscale_model(
    weights: str | Path | None = None,
    *,
    strength: float | None = None,
    fidelity_weights: str | Path | None = None,
    download: bool = True,
) -> tuple[RealBasicVSR, str]:
    """The generator an upscale runs, and one line saying which weights it is (for the summary and the log).

    `weights` None is the default choice (`default_weights`: the cached official release, else the bundled
    model). With `strength`, the generator is the blend of `weights_pair(weights, fidelity_weights)`; without it,
    `weights` as they are (`fidelity_weights` alone is refused: it would be ignored).
    """
    if weights is None:
        choice = default_weights()
        weights, note = choice.path, choice.note
    else:
        note = str(weights)
    if strength is None:
        if fidelity_weights is not None:
            raise UserError(
                "fidelity weights are only used by a strength blend: also set the strength (0..1)", option="strength"
            )
        return _load(weights, download), note
    pair = weights_pair(weights, fidelity_weights)
    line = f"{note}; strength {strength:g} of {pair.label}"
    # A known pair's ends load alone (no download of the other file); a user's pair is always checked whole.
    if fidelity_weights is None and strength in (0.0, 1.0):
        return _load(pair.perceptual if strength == 1.0 else pair.fidelity, download), line
    fidelity_state, fidelity_config = generator_state(pair.fidelity, download=download)
    perceptual_state, perceptual_config = generator_state(pair.perceptual, download=download)
    if fidelity_config != perceptual_config:
        raise UserError(
            f"the fidelity weights {pair.fidelity} ({_describe(fidelity_config)}) and the weights {pair.perceptual} "
            f"({_describe(perceptual_config)}) are different architectures: a strength blend needs two models of "
            "one architecture (stage 1 and stage 2 of the same training)",
            option="fidelity_weights",
        )
    if strength in (0.0, 1.0):  # an end: that file's tensors as they are
        state = perceptual_state if strength == 1.0 else fidelity_state
    else:
        state = blend_states(fidelity_state, perceptual_state, strength)
    model = RealBasicVSR(perceptual_config)
    load_state_strict(model, state, f"the blend {pair.label}")
    return model.eval(), line


def blend_states(
    fidelity: dict[str, torch.Tensor], perceptual: dict[str, torch.Tensor], strength: float
) -> dict[str, torch.Tensor]:
    """`fidelity + strength * (perceptual - fidelity)` for every tensor, computed in float64 and stored as the
    perceptual tensor's dtype: a tensor the two share (SPyNet, buffers) comes out unchanged."""
    if fidelity.keys() != perceptual.keys():
        only = sorted(fidelity.keys() ^ perceptual.keys())
        raise UserError(f"the two weights of a strength blend hold different tensors ({', '.join(only[:4])} ...)")
    blended = {}
    for name, end in perceptual.items():
        start = fidelity[name]
        if start.shape != end.shape:
            raise UserError(f"the two weights of a strength blend differ in the shape of {name}")
        if not end.is_floating_point() or torch.equal(start, end):
            blended[name] = end.clone()
            continue
        mixed = start.double() + strength * (end.double() - start.double())
        blended[name] = mixed.to(end.dtype)
    return blended


def _load(weights: str | Path, download: bool) -> RealBasicVSR:
    return load_generator(weights, download=download)


def _describe(config: ModelConfig) -> str:
    return f"c{config.mid_channels}, {config.num_propagation_blocks}+{config.num_cleaning_blocks} blocks"
