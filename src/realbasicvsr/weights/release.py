"""Reading and writing weight files: the generator's, and SPyNet's (the flow network inside it).

Two generator formats are read:
- the official mmediting/OpenMMLab checkpoint as published (legacy torch serialisation, `{'meta', 'state_dict'}`
  with `generator.*`, `generator_ema.*`, `discriminator.*` and possibly `perceptual_loss.*` / `step_counter`);
- our release format: a `.safetensors` file of the generator state dict whose metadata carries the architecture
  (`ModelConfig`) as JSON, with a human-readable `<name>.json` beside it.

Our module names mirror the reference's, so mapping an official file is: choose the prefix, strip it, load strictly.
A SPyNet file is any of these that holds SPyNet's `basic_module.*` weights (the official SPyNet checkpoint, ours
from `pretrain-spynet`, or a generator). Every `.safetensors` we write goes through `write_safetensors`: the file
plus its `.json` sidecar with the sha256, both written atomically (`realbasicvsr.media.files`).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from realbasicvsr.errors import UserError
from realbasicvsr.media.files import atomic_output
from realbasicvsr.models.realbasicvsr import OFFICIAL_INFERENCE_THRESHOLD, ModelConfig, RealBasicVSR
from realbasicvsr.models.spynet import SPyNet
from realbasicvsr.weights.known import bundled_weights_path, resolve_weights, verify_bundled

CONFIG_METADATA_KEY = "realbasicvsr_model_config"
FORMAT_METADATA_KEY = "realbasicvsr_format"
# A file that holds only the tensors differing from a base file names the base by its sha256 under this key.
BASE_SHA256_KEY = "realbasicvsr_base_sha256"
RELEASE_FORMAT_VERSION = "1"
SPYNET_METADATA = {"realbasicvsr_spynet": "synthetic-pretrained"}
# Where SPyNet's weights sit in the files we accept: training checkpoints (generator / EMA), a generator state dict
# (our release), a bare SPyNet (ours), or the official SPyNet checkpoint (no prefix).
_SPYNET_PREFIXES = ("generator.spynet.", "generator_ema.spynet.", "basicvsr.spynet.", "spynet.", "")


# What torch.load(weights_only=True) raises for a truncated, foreign or unsafe file (KeyError: a missing memo entry).
TORCH_LOAD_ERRORS = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    ValueError,
    KeyError,
    IndexError,
    struct.error,
    UnicodeDecodeError,
)


def refused_as_unsafe(error: BaseException) -> bool:
    """True when `error` is torch.load's weights_only refusal of a pickle that holds Python objects."""
    text = str(error)
    return isinstance(error, (pickle.UnpicklingError, RuntimeError)) and (
        "weights_only" in text or "Weights only load failed" in text
    )


def unsafe_file_error(path: str | Path) -> UserError:
    """The one message for a file refused as unsafe. Never repeats torch's advice: weights_only=False would run
    whatever code the file contains."""
    return UserError(f"{path} is not a checkpoint this tool can load safely (it contains Python objects)")


def read_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a `.safetensors` or torch checkpoint into a flat dict of tensors (no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise UserError(
                f"{path} is not a readable safetensors file ({error}); re-download or re-export it"
            ) from error
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except TORCH_LOAD_ERRORS as error:
        if refused_as_unsafe(error):
            raise unsafe_file_error(path) from None
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            f"{path} is not a readable PyTorch checkpoint ({first_line}); the file may be truncated or corrupted: "
            "download it again"
        ) from error
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} does not hold a state dict of tensors (expected {{'state_dict': {{name: tensor}}}})")
    return dict(state)


def select_generator_state(state: dict[str, torch.Tensor], *, ema: bool = True) -> tuple[dict[str, torch.Tensor], str]:
    """Pick the generator's entries from a checkpoint state dict and strip their prefix.

    `generator_ema.` is preferred (inference uses the EMA weights, as the reference's test mode); `generator.` is
    used with `ema=False` or when no EMA copy exists; a bare generator state dict (our format) has no prefix.
    Everything else (discriminator, perceptual-loss VGG, step_counter) is ignored.
    """
    prefixes = ("generator_ema.", "generator.") if ema else ("generator.", "generator_ema.")
    for prefix in prefixes:
        selected = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if selected:
            return selected, prefix
    if any(k.startswith(("image_cleaning.", "basicvsr.")) for k in state):
        return dict(state), ""
    sample = ", ".join(list(state)[:5])
    raise UserError(
        f"no RealBasicVSR generator weights found (no keys starting with 'generator_ema.', 'generator.' or "
        f"'image_cleaning.'; first keys: {sample}). Is this a RealBasicVSR checkpoint?"
    )


def infer_model_config(state: Mapping[str, torch.Tensor]) -> ModelConfig:
    """Read the architecture (channels, block counts) from the tensor shapes of a generator state dict."""
    return _config_from_shapes({k: tuple(v.shape) for k, v in state.items()})


def _config_from_shapes(shapes: Mapping[str, tuple[int, ...]]) -> ModelConfig:
    """`infer_model_config` from names and shapes only (no tensor data; `ModelConfig` checks the ranges)."""
    try:
        mid = shapes["image_cleaning.0.main.0.weight"][0]
    except (KeyError, IndexError) as error:
        raise UserError(
            "generator weights lack 'image_cleaning.0.main.0.weight': not a RealBasicVSR generator"
        ) from error

    def count_blocks(prefix: str) -> int:
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.conv1\.weight$")
        indices = [int(m.group(1)) for k in shapes if (m := pattern.match(k))]
        return max(indices) + 1 if indices else 0

    return ModelConfig(
        mid_channels=int(mid),
        num_propagation_blocks=count_blocks("basicvsr.backward_resblocks.main.2."),
        num_cleaning_blocks=count_blocks("image_cleaning.0.main.2."),
    )


def load_state_strict(model: RealBasicVSR, state: dict[str, torch.Tensor], source: str) -> None:
    """`load_state_dict(strict=True)` with an error that lists what is missing, unexpected or mis-shaped."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
            problems.append(f"{len(keys)} {label}: {shown}")
    if problems:
        raise UserError(
            f"weights in {source} do not fit the RealBasicVSR architecture {model.config}: " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)


def load_generator(
    path_or_name: str | Path,
    *,
    ema: bool = True,
    cleaning_threshold: float = OFFICIAL_INFERENCE_THRESHOLD,
    max_cleaning_passes: int = 3,
    download: bool = True,
) -> RealBasicVSR:
    """Build a `RealBasicVSR` from an official mmediting checkpoint, our release file or a known name; eval mode."""
    state, config = generator_state(path_or_name, ema=ema, download=download)
    model = RealBasicVSR(config, cleaning_threshold=cleaning_threshold, max_cleaning_passes=max_cleaning_passes)
    load_state_strict(model, state, str(path_or_name))
    return model.eval()


def generator_state(
    path_or_name: str | Path, *, ema: bool = True, download: bool = True
) -> tuple[dict[str, torch.Tensor], ModelConfig]:
    """The generator tensors (EMA preferred, prefixes stripped) and the architecture of a weights file or known
    name. A file of differences (`write_differences`: the bundled GAN fine-tune) comes back applied to its base."""
    path = resolve_weights(path_or_name, download=download)
    if path.suffix != ".safetensors":
        state, _ = select_generator_state(read_state_file(path), ema=ema)
        return state, infer_model_config(state)
    config = read_release_config(path)  # checked against the file's tensor shapes before anything is read
    state, _ = select_generator_state(read_state_file(path), ema=ema)
    base_digest = _release_metadata(path).get(BASE_SHA256_KEY)
    if base_digest is not None:
        state = _apply_differences(path, state, base_digest)
    return state, config


def _release_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def _apply_differences(path: Path, differences: dict[str, torch.Tensor], base_digest: str) -> dict[str, torch.Tensor]:
    """The base file's tensors with `differences` in place. Files of differences are made for the bundled model
    only, so the base is the bundled file, checked by sha256 (and the file itself when it is bundled too)."""
    base = bundled_weights_path()
    if base is None or verify_bundled(base) != base_digest:
        raise UserError(f"{path} holds differences to a base file that this installation does not have; reinstall")
    if path.parent == base.parent:
        verify_bundled(path)
    state, _ = select_generator_state(read_state_file(base))
    for name, tensor in differences.items():
        if name not in state or state[name].shape != tensor.shape:
            raise UserError(f"{path} does not fit its base file {base.name} ({name}); reinstall")
        state[name] = tensor
    return state


def write_differences(base: Path, model_file: Path, target: Path, record: dict[str, object]) -> Path:
    """Write `target`: the tensors of the release file `model_file` that differ from those of the release file
    `base`, with the base's sha256 in the metadata (so `generator_state` can apply them). The bundled GAN
    fine-tune is stored this way: its SPyNet, most of the model, is the bundled file's."""
    base_state = read_state_file(base)
    changed = {k: v.contiguous() for k, v in read_state_file(model_file).items() if not torch.equal(base_state[k], v)}
    config = read_release_config(model_file)
    metadata = {
        CONFIG_METADATA_KEY: json.dumps(config.to_dict(), sort_keys=True),
        FORMAT_METADATA_KEY: RELEASE_FORMAT_VERSION,
        BASE_SHA256_KEY: hashlib.sha256(base.read_bytes()).hexdigest(),
    }
    header = {"format": f"realbasicvsr-differences-v{RELEASE_FORMAT_VERSION}", "model_config": config.to_dict()}
    return write_safetensors(target, changed, metadata, header=header, extra={**record, "base": base.name})


def read_release_config(path: Path) -> ModelConfig:
    """The architecture stored in our release file (metadata), checked against the tensors in the file before
    anything is built: a record that claims more (or other) blocks or channels than the file holds is refused.
    Without a record, the architecture is read from the shapes."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            # Shapes come from the header: no tensor is read.
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"{path} is not a readable safetensors file ({_brief(error)}); re-download it") from error
    generator_shapes, _ = select_generator_state(shapes)  # type: ignore[arg-type]
    from_tensors = _config_from_shapes(generator_shapes)
    if CONFIG_METADATA_KEY not in metadata:
        return from_tensors
    try:
        record = json.loads(metadata[CONFIG_METADATA_KEY])
        if not isinstance(record, dict):
            raise TypeError(f"expected a JSON object, got {type(record).__name__}")
        config = ModelConfig(**record)
    except (TypeError, ValueError) as error:
        raise UserError(f"{path} has an invalid architecture record ({_brief(error)}); re-export the file") from error
    if config != from_tensors:
        raise UserError(
            f"{path}: its architecture record {config.to_dict()} does not match the tensors in the file "
            f"({from_tensors.to_dict()}); the file is damaged or was edited: re-export or re-download it"
        )
    return config


def _brief(error: BaseException, limit: int = 200) -> str:
    """An exception's text cut to `limit` characters (messages never print unbounded values)."""
    text = str(error).strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def save_release(model: RealBasicVSR, path: str | Path, *, extra: dict[str, str] | None = None) -> Path:
    """Write the generator in our release format: `path` (.safetensors) plus `path.json` with config and sha256."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise UserError(f"release weights must end in .safetensors, got {path.name}")
    config_json = json.dumps(model.config.to_dict(), sort_keys=True)
    metadata = {
        CONFIG_METADATA_KEY: config_json,
        FORMAT_METADATA_KEY: RELEASE_FORMAT_VERSION,
        **(extra or {}),
    }
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    header = {"format": f"realbasicvsr-release-v{RELEASE_FORMAT_VERSION}", "model_config": model.config.to_dict()}
    return write_safetensors(path, state, metadata, header=header, extra=extra or {})


def write_safetensors(
    path: Path,
    state: dict[str, torch.Tensor],
    metadata: dict[str, str],
    *,
    header: dict[str, object] | None = None,
    extra: dict[str, object] | None = None,
) -> Path:
    """Write `state` to `path` (.safetensors with `metadata`) and a `.json` beside it:
    `{**header, "weights_file": NAME, "sha256": DIGEST, **extra}`.

    Both files are written under unique temporary names and renamed when both are complete, the weights first
    (after a crash between the two renames, a reader that checks the sha256, such as `verify_bundled`, sees it).
    """
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = path.with_suffix(".json")
    # Leaving the block commits the inner (weights) file first, then the sidecar; an error removes both.
    with atomic_output(sidecar) as sidecar_tmp, atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        record = {**(header or {}), "weights_file": path.name, "sha256": digest, **(extra or {})}
        sidecar_tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def save_spynet(spynet: SPyNet, path: str | Path, info: dict[str, object]) -> Path:
    """Write SPyNet's `basic_module.*` weights (what `load_spynet_weights` reads) + a `.json` with the sha256
    and `info`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise UserError(f"the SPyNet file must end in .safetensors, got {path.name}")
    state = {k: v.detach().float().contiguous() for k, v in spynet.state_dict().items() if k.startswith("basic_")}
    return write_safetensors(path, state, SPYNET_METADATA, extra=info)


def load_spynet_weights(spynet: SPyNet, path: str | Path) -> SPyNet:
    """Load a SPyNet file into `spynet` (its `basic_module.*` weights; the normalisation buffers stay) and return it.

    A SPyNet file is the official one (keys `basic_module.*`, maybe under `state_dict`), ours from
    `realbasicvsr pretrain-spynet`, or the SPyNet inside a generator file (a training checkpoint or one of our
    releases, such as the bundled compact model).
    """
    state = read_state_file(path)
    picked: dict[str, torch.Tensor] = {}
    for prefix in _SPYNET_PREFIXES:
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix + "basic_module.")}
        if picked:
            break
    expected = {k for k in spynet.state_dict() if k.startswith("basic_module.")}
    if set(picked) != expected:
        raise UserError(
            f"{path} is not a SPyNet checkpoint ({len(set(picked) & expected)} of {len(expected)} SPyNet keys "
            "found); give the official SPyNet file, one from `realbasicvsr pretrain-spynet` or a generator file"
        )
    spynet.load_state_dict(picked, strict=False)
    return spynet
