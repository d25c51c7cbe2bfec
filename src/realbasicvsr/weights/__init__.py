"""Generator weights: which exist (`known`: published names, the cache, the bundled model) and how their files are
read and written (`release`: the official checkpoint, our safetensors release format)."""

from realbasicvsr.weights.known import (
    DEFAULT_WEIGHTS,
    KNOWN_WEIGHTS,
    KnownWeights,
    bundled_description,
    bundled_weights_path,
    cached_known_weights,
    resolve_weights,
    verify_bundled,
    weights_cache_dir,
)
from realbasicvsr.weights.release import (
    infer_model_config,
    load_generator,
    load_state_strict,
    read_release_config,
    read_state_file,
    save_release,
    select_generator_state,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "KNOWN_WEIGHTS",
    "KnownWeights",
    "bundled_description",
    "bundled_weights_path",
    "cached_known_weights",
    "infer_model_config",
    "load_generator",
    "load_state_strict",
    "read_release_config",
    "read_state_file",
    "resolve_weights",
    "save_release",
    "select_generator_state",
    "verify_bundled",
    "weights_cache_dir",
]
