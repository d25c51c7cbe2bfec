"""`export_onnx`: the step graphs of `deploy.steps` as ONNX files plus `realbasicvsr_onnx.json`, which says how to
drive them (docs/export.md).

Two of torch 2.13's exporters work, and give the same graphs up to float rounding:
- "torchscript" (`torch.onnx.export(..., dynamo=False)`, the default here): deprecated since torch 2.9 but still
  shipped; it writes the opset asked for natively and exports the five graphs of a small model in seconds. Sizes
  in the trace stay symbolic where they feed torch ops (`padded`, the flow's resize), and the one Python `max` on a
  size in `flow_warp` is frozen to `side - 1`, right for every side >= 2 (MIN_SIDE).
- "dynamo" (`dynamo=True`, torch.export + onnxscript, torch's default): measured ~100 s for the five graphs of a
  c4 model with dynamic H/W, ~30 s with a fixed size (fake-tensor decomposition of grid_sampler_2d under symbolic
  shapes takes most of it), and it always writes opset 18: to reach 16 or 17 it falls back on the onnx version
  converter, which left an invalid `noop_with_empty_axes` on ReduceMean (so the clean graph sums and divides).
Both map `F.grid_sample` to ONNX GridSample (opset >= 16) with the model's mode (bilinear), padding (zeros in
the propagation, border in SPyNet) and align_corners (1); tests read those attributes back and check parity.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Literal

import torch

from realbasicvsr.deploy.steps import GRAPHS, SCALE, SPYNET_MULTIPLE, GraphSpec, example_inputs, plain_convolutions
from realbasicvsr.errors import UserError
from realbasicvsr.media.files import atomic_output
from realbasicvsr.models.realbasicvsr import RealBasicVSR

MANIFEST = "realbasicvsr_onnx.json"
FORMAT = "realbasicvsr-onnx-steps"
FORMAT_VERSION = 1
MIN_OPSET, MAX_OPSET = 16, 23  # GridSample needs 16; 23 is the newest the onnx 1.23 checker knows here
MIN_SIDE, MAX_SIDE = 2, 8192  # flow_warp divides by (side - 1): a 1-pixel side is refused
TRACE_SIZE = (48, 40)  # (w, h) of the example inputs of a dynamic export: not a multiple of 32 on purpose
Exporter = Literal["torchscript", "dynamo"]
OWN_FILES = frozenset([MANIFEST, *(spec.file for spec in GRAPHS)])


def export_onnx(
    weights: str | Path | RealBasicVSR,
    out_dir: str | Path,
    *,
    opset: int = 17,
    fp16: bool = False,
    size: tuple[int, int] | None = None,
    cleaning_passes: int | None = None,
    overwrite: bool = False,
    exporter: Exporter = "torchscript",
) -> Path:
    """Write the step graphs of `weights` (a weights path or known name, or a loaded model) into `out_dir`.

    `size` (width, height) fixes the LR frame size of the graphs (what TensorRT builds fastest for); None gives
    dynamic height and width. The batch axis is always dynamic. `fp16` writes half-precision graphs (inputs and
    outputs too; for GPU execution providers). `cleaning_passes` N makes the manifest tell hosts to clean exactly N
    times; None keeps the model's rule (a pass, then another while mean |residue| >= threshold / 255, at most
    max_passes: one pass in practice at the official threshold 255). The folder is written under a temporary name
    and renamed when complete; an existing export is replaced only with `overwrite`, other files never.
    """
    out_dir = Path(out_dir)
    check_export_settings(opset, size, cleaning_passes)
    if exporter not in ("torchscript", "dynamo"):
        raise UserError(f"exporter must be torchscript or dynamo, got {exporter!r}", option="exporter")
    existing = check_target(out_dir, overwrite)
    model, source = _model(weights)
    dtype = torch.float16 if fp16 else torch.float32
    graph_model = model
    if fp16:  # a copy: the caller's model stays as it is; SPyNet stays float32 (FlowStep)
        graph_model = copy.deepcopy(model).to(dtype)
        graph_model.basicvsr.spynet.float()
    trace_size = size or TRACE_SIZE
    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        graphs = {}
        for spec in GRAPHS:
            path = tmp / spec.file
            _export_graph(spec, graph_model, path, opset, dtype, trace_size, dynamic=size is None, exporter=exporter)
            graphs[spec.name] = {
                "file": spec.file,
                "sha256": file_sha256(path),
                "inputs": {name: list(shape) for name, shape in spec.inputs.items()},
                "outputs": {name: list(shape) for name, shape in spec.outputs.items()},
            }
        manifest = _manifest(model, source, graphs, opset, fp16, size, cleaning_passes, exporter)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if existing:  # checked again: only a folder holding nothing but an earlier export goes
            check_target(out_dir, overwrite)
            shutil.rmtree(out_dir)
    return out_dir


def check_export_settings(opset: int, size: tuple[int, int] | None, cleaning_passes: int | None) -> None:
    """Refuse an opset without GridSample, a frame size SPyNet or flow_warp cannot take, a negative pass count."""
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise UserError(
            f"opset must be {MIN_OPSET}..{MAX_OPSET} (GridSample needs opset 16), got {opset!r}; use 17", option="opset"
        )
    if size is not None and not all(isinstance(v, int) and MIN_SIDE <= v <= MAX_SIDE for v in size):
        raise UserError(
            f"size must be (width, height) of {MIN_SIDE}..{MAX_SIDE} pixels each, got {size!r}; give e.g. 320x180 "
            "or export with dynamic sizes",
            option="size",
        )
    if cleaning_passes is not None and not (isinstance(cleaning_passes, int) and 0 <= cleaning_passes <= 10):
        raise UserError(f"cleaning_passes must be 0..10, got {cleaning_passes!r}", option="cleaning_passes")


def check_target(out_dir: Path, overwrite: bool) -> bool:
    """True when `out_dir` holds an earlier export that `overwrite` lets go; False when it is absent or empty.
    Raises `UserError` for a file in its place, other files in it, or an export without `overwrite`."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return False
    if not out_dir.is_dir() or out_dir.is_symlink():
        raise UserError(f"{out_dir} exists and is not a folder; give a new or empty folder for the ONNX export")
    names = {entry.name for entry in out_dir.iterdir()}
    if not names:
        return False
    others = sorted(names - OWN_FILES)
    if others:
        raise UserError(
            f"{out_dir} holds files that are not an ONNX export ({', '.join(others[:3])}); give a new or empty folder"
        )
    if not overwrite:
        raise UserError(f"{out_dir} already holds an ONNX export; set overwrite to replace it", option="overwrite")
    return True


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model(weights: str | Path | RealBasicVSR) -> tuple[RealBasicVSR, str]:
    if isinstance(weights, RealBasicVSR):
        return weights.eval(), "the model given"
    from realbasicvsr.weights.release import load_generator

    return load_generator(weights), str(weights)


def _export_graph(
    spec: GraphSpec,
    model: RealBasicVSR,
    path: Path,
    opset: int,
    dtype: torch.dtype,
    size: tuple[int, int],
    *,
    dynamic: bool,
    exporter: Exporter,
) -> None:
    """Export one step graph to `path` and check it (onnx.checker with shape inference, the opset written)."""
    module = spec.module(model).eval()
    args = example_inputs(spec, model.config.mid_channels, size, dtype)
    with plain_convolutions(), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation, tracer and opset-conversion notes: checked below instead
        if exporter == "dynamo":
            from torch.export import Dim

            batch = Dim("n", min=1, max=4096)
            height, width = Dim("h", min=MIN_SIDE, max=MAX_SIDE), Dim("w", min=MIN_SIDE, max=MAX_SIDE)
            axes = {0: batch, 2: height, 3: width} if dynamic else {0: batch}
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=list(spec.inputs),
                output_names=list(spec.outputs),
                dynamic_shapes={name: dict(axes) for name in spec.inputs},
                external_data=False,
                verbose=False,
            )
            program.save(str(path), external_data=False)
        else:
            names = {0: "n", 2: "h", 3: "w"} if dynamic else {0: "n"}
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=list(spec.inputs),
                output_names=list(spec.outputs),
                dynamic_axes=_dynamic_axes(spec, names),
                do_constant_folding=True,
            )
    import onnx

    graph = onnx.load(str(path))
    try:
        onnx.checker.check_model(graph, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        first = str(error).strip().splitlines()[0]
        raise UserError(
            f"the {exporter} exporter wrote an invalid {spec.file} at opset {opset} ({first}); use opset 18 or the "
            "other exporter",
            option="opset",
        ) from None
    versions = {entry.domain: entry.version for entry in graph.opset_import}
    if versions.get("", versions.get("ai.onnx")) != opset:
        raise UserError(
            f"the exporter wrote opset {versions.get('')} instead of {opset} for {spec.file}; use opset 18",
            option="opset",
        )


def _dynamic_axes(spec: GraphSpec, names: dict[int, str]) -> dict[str, dict[int, str]]:
    """The TorchScript exporter's dynamic axes: the batch (and H/W) of every input and output; the x4 output's
    H/W get their own names (4h, 4w)."""
    axes = {name: dict(names) for name in spec.inputs}
    for name, shape in spec.outputs.items():
        axes[name] = {axis: shape[axis] for axis in names if axis < len(shape)}
    return axes


def _manifest(
    model: RealBasicVSR,
    source: str,
    graphs: dict,
    opset: int,
    fp16: bool,
    size: tuple[int, int] | None,
    cleaning_passes: int | None,
    exporter: Exporter,
) -> dict:
    from realbasicvsr.upscale.plan import weights_fingerprint

    config = model.config
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "architecture": {
            "mid_channels": config.mid_channels,
            "num_propagation_blocks": config.num_propagation_blocks,
            "num_cleaning_blocks": config.num_cleaning_blocks,
            "scale": SCALE,
        },
        "weights": {"source": source, "state_sha256": weights_fingerprint(model)},
        "precision": "fp16" if fp16 else "fp32",
        "opset": opset,
        "size": None if size is None else {"width": size[0], "height": size[1]},
        "dynamic": size is None,
        "spynet": {"multiple": SPYNET_MULTIPLE, "resize": "bilinear, align_corners false, inside the flow graph"},
        "cleaning": {
            "passes": cleaning_passes,
            "threshold": model.cleaning_threshold,
            "max_passes": model.max_cleaning_passes,
            "rule": "passes N: call clean N times; passes null: call clean, stop when residue_abs_mean < "
            "threshold / 255 or after max_passes calls",
        },
        "exporter": {"torch": torch.__version__, "kind": exporter},
        "graphs": graphs,
        "schedule": SCHEDULE,
    }


# The call order per window, for hosts (docs/export.md has the full contract).
SCHEDULE = [
    "window = the carried look-ahead (already cleaned) + new LR frames; keep = frames output, the rest look-ahead",
    "clean the new frames (n*t, 3, h, w) by the cleaning rule",
    "flow(ref=lr[i], supp=lr[i+1]) for i < t-1: backward flows; flow(ref=lr[i], supp=lr[i-1]) for 1 <= i < keep",
    "b = zeros; for i = t-1 .. 0: b = backward_step(lr[i], flow_b[i] or zeros at i = t-1, b); keep b for i < keep",
    "f = the carried h_f and flow_f[0] = flow(ref=lr[0], supp=the carried lr); a new clip: both zeros",
    "for i = 0 .. keep-1: hr[i], f = forward_step(lr[i], flow_f[i], f, b[i])",
    "carry (lr[keep-1], f) and the cleaned look-ahead lr[keep:] to the next window",
]
