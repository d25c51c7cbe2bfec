"""realbasicvsr: RealBasicVSR real-world video super-resolution.

Public API (imported lazily so that `import realbasicvsr` stays light):
`RealBasicVSR`, `ModelConfig`, `load_generator`, `save_release`, `UNetDiscriminator`; `upscale_video` with its
`UpscaleConfig` (the look controls included), `load_upscale_model` (weights, strength blends) and `preview_video`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "RealBasicVSR": "realbasicvsr.models.realbasicvsr",
    "ModelConfig": "realbasicvsr.models.realbasicvsr",
    "UNetDiscriminator": "realbasicvsr.models.discriminator",
    "load_generator": "realbasicvsr.weights",
    "save_release": "realbasicvsr.weights",
    "UserError": "realbasicvsr.errors",
    "upscale_video": "realbasicvsr.upscale.run",
    "UpscaleConfig": "realbasicvsr.upscale.config",
    "load_upscale_model": "realbasicvsr.weights.strength",
    "preview_video": "realbasicvsr.preview",
    "PreviewResult": "realbasicvsr.preview",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'realbasicvsr' has no attribute {name!r}")
