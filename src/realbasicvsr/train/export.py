"""Turn a training checkpoint into release weights (the EMA generator, as the reference's test mode uses)."""

from __future__ import annotations

from pathlib import Path

from realbasicvsr.errors import UserError
from realbasicvsr.models import RealBasicVSR
from realbasicvsr.train.config import config_from_dict
from realbasicvsr.train.state import load_checkpoint, resolve_checkpoint


def generator_from_checkpoint(run_or_checkpoint: str | Path, *, ema: bool = True) -> tuple[RealBasicVSR, int]:
    """(generator in eval mode with the official inference cleaning settings, the checkpoint's step)."""
    state = load_checkpoint(resolve_checkpoint(run_or_checkpoint))
    config = config_from_dict(state["config"])
    model = RealBasicVSR(config.model)
    model.load_state_dict(state["generator_ema" if ema else "generator"])
    return model.eval(), int(state["step"])


def export_run(run_or_checkpoint: str | Path, output: str | Path, *, ema: bool = True) -> tuple[Path, int]:
    from realbasicvsr.weights import save_release

    output = Path(output)
    if output.suffix != ".safetensors":
        raise UserError(f"the export target must end in .safetensors, got {output.name}")
    model, step = generator_from_checkpoint(run_or_checkpoint, ema=ema)
    path = save_release(model, output, extra={"training_step": str(step), "ema": str(ema).lower()})
    return Path(path), step
