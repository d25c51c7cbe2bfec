"""The streaming recurrence of `RealBasicVSR` cut into step modules with explicit state, one ONNX graph each.

Each module wraps the model's own layers and functions (`image_cleaning`, `SPyNet.compute_flow`, `flow_warp`,
the resblocks, `BasicVSR.reconstruct`); nothing of the math is rewritten. A host (`deploy.runner`, or a C++ /
VapourSynth program following docs/export.md) calls them in the order `BasicVSR.propagate` does:

- `clean`: one pass of the cleaning module, `lq + residue`, and the mean |residue| that the dynamic-refinement rule
  compares with its threshold; the host calls it once per pass;
- `flow`: SPyNet for a batch of pairs, the resize to multiples of 32 inside the graph;
- `backward_step`: warp the backward feature of frame t+1 onto frame t and run the backward resblocks;
- `forward_step`: the same for the forward branch, fused with the x4 reconstruction of frame t;
- `forward_feature`: the forward step without the x4 stage (the warm-up of a segment needs only the state).

A step whose predecessor does not exist (the last frame of the backward sweep, the first frame of a clip) is
called with a zero feature and a zero flow: warping zeros gives exactly the zeros `propagate` starts from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from realbasicvsr.models import fused
from realbasicvsr.models.blocks import flow_warp
from realbasicvsr.models.realbasicvsr import RealBasicVSR

SPYNET_MULTIPLE = 32  # SPyNet's pyramid halves 5 times: its input is resized to multiples of 32
SCALE = 4


def padded(size: int) -> int:
    """The size SPyNet computes at: `size` rounded up to a multiple of 32 (what `SPyNet.forward` resizes to).
    Written without negative operands: the TorchScript exporter maps `//` to ONNX Div, which truncates, so the
    usual `-(-size // 32)` would round a traced size down (to 0 for sizes under 32)."""
    return (size + SPYNET_MULTIPLE - 1) // SPYNET_MULTIPLE * SPYNET_MULTIPLE


class CleanStep(nn.Module):
    """(lq (n, 3, h, w)) -> (cleaned = lq + residue, mean |residue| over the whole batch, a scalar)."""

    def __init__(self, model: RealBasicVSR) -> None:
        super().__init__()
        self.image_cleaning = model.image_cleaning

    def forward(self, lq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        residue = self.image_cleaning(lq)
        # A sum and a division, not mean(): the dynamo exporter's opset conversion broke ReduceMean. In float32, so
        # that a half-precision graph's sum over a large batch cannot overflow.
        return lq + residue, residue.abs().float().sum() / residue.numel()


class FlowStep(nn.Module):
    """(ref, supp (n, 3, h, w)) -> flow (n, 2, h, w) warping `supp` onto `ref`: `SPyNet.forward`.

    `SPyNet.forward` picks the padded size with a Python `if` on `h % 32`, which a trace would freeze; here the
    same size comes from `padded` (one expression for every h), so a graph with dynamic H/W resizes correctly. The
    resizes and the scale of the flow are those of `SPyNet.forward` (tests check equality with it).
    """

    def __init__(self, model: RealBasicVSR) -> None:
        super().__init__()
        self.spynet = model.basicvsr.spynet

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        dtype, (h, w) = ref.dtype, ref.shape[-2:]
        ref, supp = ref.float(), supp.float()  # SPyNet stays float32 in a half-precision export (see _warp)
        h_up, w_up = padded(h), padded(w)
        ref = F.interpolate(ref, size=(h_up, w_up), mode="bilinear", align_corners=False)
        supp = F.interpolate(supp, size=(h_up, w_up), mode="bilinear", align_corners=False)
        flow = self.spynet.compute_flow(ref, supp)
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        # x scaled by w / w_up, y by h / h_up (SPyNet.forward multiplies by the tensor [w / w_up, h / h_up]).
        return torch.cat([flow[:, :1] * (w / w_up), flow[:, 1:] * (h / h_up)], dim=1).to(dtype)


def _warp(feat: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`flow_warp` in float32 whatever the graph's precision, as CUDA autocast runs grid_sample; also because
    `flow_warp` builds its pixel grid with arange in the flow's dtype, and ONNX Range has no float16."""
    return flow_warp(feat.float(), flow.float().permute(0, 2, 3, 1)).to(feat.dtype)


class BackwardStep(nn.Module):
    """(lr_t, flow t+1 -> t, h_b_{t+1}) -> h_b_t: one step of `BasicVSR._backward_branch`."""

    def __init__(self, model: RealBasicVSR) -> None:
        super().__init__()
        self.resblocks = model.basicvsr.backward_resblocks

    def forward(self, lr: torch.Tensor, flow: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        return self.resblocks(torch.cat([lr, _warp(feat, flow)], dim=1))


class ForwardFeature(nn.Module):
    """(lr_t, flow t-1 -> t, h_f_{t-1}) -> h_f_t: the forward branch of `BasicVSR.propagate` for one frame."""

    def __init__(self, model: RealBasicVSR) -> None:
        super().__init__()
        self.resblocks = model.basicvsr.forward_resblocks

    def forward(self, lr: torch.Tensor, flow: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        return self.resblocks(torch.cat([lr, _warp(feat, flow)], dim=1))


class ForwardStep(nn.Module):
    """(lr_t, flow t-1 -> t, h_f_{t-1}, h_b_t) -> (hr_t (n, 3, 4h, 4w), h_f_t): `ForwardFeature` then
    `BasicVSR.reconstruct` (whole frames: stripes only bound PyTorch's memory)."""

    def __init__(self, model: RealBasicVSR) -> None:
        super().__init__()
        self.feature = ForwardFeature(model)
        self.basicvsr = model.basicvsr

    def forward(
        self, lr: torch.Tensor, flow: torch.Tensor, feat: torch.Tensor, backward_feat: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.feature(lr, flow, feat)
        return self.basicvsr.reconstruct(lr, backward_feat, feat), feat


@dataclass(frozen=True)
class GraphSpec:
    """One step graph: its file, the module that makes it, and its named inputs and outputs with their shapes
    ("n" = batch, "h"/"w" = LR size, "c" = mid_channels; 4h/4w the x4 size)."""

    name: str
    module: type[nn.Module]
    inputs: dict[str, tuple[str, ...]]
    outputs: dict[str, tuple[str, ...]]

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"


IMAGE, FLOW, FEAT = ("n", "3", "h", "w"), ("n", "2", "h", "w"), ("n", "c", "h", "w")
GRAPHS: tuple[GraphSpec, ...] = (
    GraphSpec("clean", CleanStep, {"lq": IMAGE}, {"cleaned": IMAGE, "residue_abs_mean": ()}),
    GraphSpec("flow", FlowStep, {"ref": IMAGE, "supp": IMAGE}, {"flow": FLOW}),
    GraphSpec("backward_step", BackwardStep, {"lr": IMAGE, "flow": FLOW, "feat": FEAT}, {"feat_out": FEAT}),
    GraphSpec(
        "forward_step",
        ForwardStep,
        {"lr": IMAGE, "flow": FLOW, "feat": FEAT, "backward_feat": FEAT},
        {"hr": ("n", "3", "4h", "4w"), "feat_out": FEAT},
    ),
    GraphSpec("forward_feature", ForwardFeature, {"lr": IMAGE, "flow": FLOW, "feat": FEAT}, {"feat_out": FEAT}),
)
GRAPH_NAMES = tuple(spec.name for spec in GRAPHS)


def example_inputs(spec: GraphSpec, mid_channels: int, size: tuple[int, int], dtype: torch.dtype) -> tuple:
    """Inputs of `spec` for an export trace: batch 2 (so the batch axis is not frozen at 1), LR `size` (w, h)."""
    w, h = size
    channels = {"3": 3, "2": 2, "c": mid_channels}
    generator = torch.Generator().manual_seed(0)
    tensors = []
    for shape in spec.inputs.values():
        dims = [2 if d == "n" else h if d == "h" else w if d == "w" else channels[d] for d in shape]
        tensors.append(torch.rand(dims, generator=generator).to(dtype))
    return tuple(tensors)


@contextlib.contextmanager
def plain_convolutions() -> Iterator[None]:
    """The model's plain PyTorch ops while exporting: the fused oneDNN convolutions (`models.fused`) are private
    operators no exporter knows. The previous setting is restored afterwards."""
    previous = fused._ENABLED  # no public getter; see the report to the lead
    fused.set_fused_convolutions(False)
    try:
        yield
    finally:
        fused.set_fused_convolutions(previous)
