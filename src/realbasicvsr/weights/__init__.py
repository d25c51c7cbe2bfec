"""Weights: which exist (`known`: published names, the cache, the bundled model, the default choice) and how their
files are read and written (`release`: the official checkpoint, our safetensors release format, SPyNet files)."""

from realbasicvsr.weights.known import (
    DEFAULT_WEIGHTS,
    KNOWN_WEIGHTS,
    DefaultWeights,
    KnownWeights,
    bundled_description,
    bundled_weights_path,
    cached_known_weights,
    default_weights,
    resolve_weights,
    verify_bundled,
    weights_cache_dir,
)
from realbasicvsr.weights.release import (
    infer_model_config,
    load_generator,
    load_spynet_weights,
    load_state_strict,
    read_release_config,
    read_state_file,
    save_release,
    save_spynet,
    select_generator_state,
    write_safetensors,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "KNOWN_WEIGHTS",
    "DefaultWeights",
    "KnownWeights",
    "bundled_description",
    "bundled_weights_path",
    "cached_known_weights",
    "default_weights",
    "infer_model_config",
    "load_generator",
    "load_spynet_weights",
    "load_state_strict",
    "read_release_config",
    "read_state_file",
    "resolve_weights",
    "save_release",
    "save_spynet",
    "select_generator_state",
    "verify_bundled",
    "weights_cache_dir",
    "write_safetensors",
]
