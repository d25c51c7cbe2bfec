"""`realbasicvsr_onnx.json`, read back and checked: what a host needs to know about a folder of step graphs.

Every problem with a folder (missing, not an export, broken JSON, a missing or changed graph, graphs that do not
match the architecture the JSON names, a frame size the graphs were not built for) is one `UserError` line that
names it and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realbasicvsr.deploy.export import FORMAT, FORMAT_VERSION, MANIFEST, file_sha256
from realbasicvsr.deploy.steps import GRAPHS
from realbasicvsr.errors import UserError
from realbasicvsr.models.realbasicvsr import ModelConfig


@dataclass(frozen=True)
class Manifest:
    """The checked content of `realbasicvsr_onnx.json` in `folder`."""

    folder: Path
    config: ModelConfig
    precision: str
    size: tuple[int, int] | None  # (width, height) of fixed-size graphs; None: dynamic
    cleaning_passes: int | None
    cleaning_threshold: float
    max_cleaning_passes: int
    weights_sha256: str
    graph_sha256: dict[str, str]

    def describe(self) -> str:
        c = self.config
        size = "any size" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        return (
            f"mid_channels {c.mid_channels}, {c.num_propagation_blocks} + {c.num_cleaning_blocks} blocks, "
            f"{self.precision}, {size}"
        )

    def identity(self) -> str:
        return json.dumps({"weights": self.weights_sha256, "graphs": self.graph_sha256}, sort_keys=True)

    def check_size(self, width: int, height: int) -> None:
        """Fixed-size graphs take only frames (or tiles) of their size."""
        if self.size is not None and (width, height) != self.size:
            raise UserError(
                f"the ONNX graphs in {self.folder} are for {self.size[0]}x{self.size[1]} frames, not {width}x{height}; "
                f"export them for size {width}x{height}, or with dynamic sizes",
                option="onnx",
            )

    def check_sessions(self, sessions: dict) -> None:
        """The graphs' feature inputs must have the manifest's mid_channels (a folder assembled from two exports)."""
        for name in ("backward_step", "forward_step", "forward_feature"):
            feat = next(i for i in sessions[name].get_inputs() if i.name == "feat")
            channels = feat.shape[1]
            if channels != self.config.mid_channels:
                raise UserError(
                    f"{self.folder}/{name}.onnx has {channels} feature channels but {MANIFEST} says mid_channels "
                    f"{self.config.mid_channels} (another architecture); export the folder again",
                    option="onnx",
                )


def read_manifest(folder: Path) -> Manifest:
    """Read and check `folder`/realbasicvsr_onnx.json and the graph files it lists (existence and sha256)."""
    fix = f"export it again (realbasicvsr export-onnx --weights W {folder} --overwrite)"
    if not folder.is_dir():
        raise UserError(f"the ONNX folder {folder} does not exist or is not a folder; {fix}", option="onnx")
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(
            f"{folder} has no {MANIFEST}, so it is not an ONNX export of this project; {fix}", option="onnx"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error}); {fix}", option="onnx") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path} is not a {FORMAT} manifest; {fix}", option="onnx")
    if data.get("version") != FORMAT_VERSION:
        raise UserError(
            f"{path} is version {data.get('version')!r}; this realbasicvsr reads version {FORMAT_VERSION}; {fix}",
            option="onnx",
        )
    try:
        manifest = _parse(folder, data)
    except (KeyError, TypeError, ValueError) as error:  # ConfigError is a ValueError
        raise UserError(f"{path} lacks or has a bad entry ({error}); {fix}", option="onnx") from None
    for spec in GRAPHS:
        graph = folder / spec.file
        if not graph.is_file():
            raise UserError(f"the ONNX folder {folder} lacks {spec.file}; {fix}", option="onnx")
        if file_sha256(graph) != manifest.graph_sha256[spec.name]:
            raise UserError(f"{graph} does not match its checksum in {MANIFEST} (changed or damaged); {fix}")
    return manifest


def _parse(folder: Path, data: dict[str, Any]) -> Manifest:
    arch = data["architecture"]
    config = ModelConfig(
        mid_channels=arch["mid_channels"],
        num_propagation_blocks=arch["num_propagation_blocks"],
        num_cleaning_blocks=arch["num_cleaning_blocks"],
    )
    if arch.get("scale", 4) != 4:
        raise ValueError(f"scale {arch['scale']} (only x4 graphs exist)")
    precision = data["precision"]
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision {precision!r}")
    size = data["size"]
    size = None if size is None else (_whole(size["width"], "size.width"), _whole(size["height"], "size.height"))
    cleaning = data["cleaning"]
    passes = cleaning["passes"]
    passes = None if passes is None else _whole(passes, "cleaning.passes")
    threshold = float(cleaning["threshold"])
    graphs = data["graphs"]
    return Manifest(
        folder=folder,
        config=config,
        precision=precision,
        size=size,
        cleaning_passes=passes,
        cleaning_threshold=threshold,
        max_cleaning_passes=max(1, _whole(cleaning["max_passes"], "cleaning.max_passes")),
        weights_sha256=str(data["weights"]["state_sha256"]),
        graph_sha256={spec.name: str(graphs[spec.name]["sha256"]) for spec in GRAPHS},
    )


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} = {value!r}")
    return value
