"""A starting point for SPyNet training that already estimates flow: the gradient constraint, wired into its weights.

Trained from random weights, SPyNet sits on a long plateau at the zero-flow answer: the flow is a product of the
temporal difference and the image gradient, and a random ReLU network has almost no feature that correlates with
such a product, so the gradient that would lead out of the plateau is tiny (our 2-core CPU runs of a few hundred
steps never left it). Each pyramid level is therefore initialised to compute a normal-flow estimate from the
brightness-constancy constraint `grad(I) . du = ref - warped`:

1. layer 1 forms `T +- g` with `T = warped - ref` (grey) and `g` the central difference of the mean image, for x and
   y, each with both signs (ReLU keeps one sign per channel);
2. layer 2 forms `|T + g| - |T - g| = 2 sign(T g) min(|T|, |g|)`, averaged over its 7x7 window (a local, Lucas-Kanade
   like pooling), split into positive and negative parts;
3. layers 3 and 4 pass the four channels through; layer 5 outputs `du = -c (pos - neg)` per axis, where the gain
   `c` of each level is fitted by least squares on a calibration batch (`calibrate`).

Only 8, 4, 4 and 4 of the 32, 64, 32 and 16 channels are wired; the others keep PyTorch's random initialisation,
with zero weight into the wired channels and into the output, so at the start they change nothing and training can
use them freely.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from realbasicvsr.models.spynet import SPyNet, SPyNetBasicModule, level_inputs

_WIRED = (8, 4, 4, 4)  # wired output channels of layers 1-4


def _layers(module: SPyNetBasicModule) -> list[torch.nn.Conv2d]:
    return [block.conv for block in module.basic_module]


@torch.no_grad()
def wire_level(module: SPyNetBasicModule, gain: float = 1.0) -> None:
    """Write the normal-flow estimator into one level's weights (see the module docstring)."""
    conv1, conv2, conv3, conv4, conv5 = _layers(module)
    for conv, wired in zip((conv1, conv2, conv3, conv4), _WIRED):
        conv.weight[:wired].zero_()  # wired channels read only what is set below
        conv.bias[:wired].zero_()
    conv5.weight.zero_()
    conv5.bias.zero_()
    centre = 3
    # Layer 1: inputs 0-2 ref, 3-5 warped supp, 6-7 flow (ImageNet-normalised images).
    temporal = torch.zeros(8, 7, 7)
    temporal[3:6, centre, centre] = 1 / 3
    temporal[0:3, centre, centre] = -1 / 3
    grad_x = torch.zeros(8, 7, 7)
    grad_x[0:6, centre, centre + 1] = 1 / 12  # mean of the 6 image channels, central difference / 2
    grad_x[0:6, centre, centre - 1] = -1 / 12
    grad_y = grad_x.transpose(1, 2).clone()
    for axis, grad in enumerate((grad_x, grad_y)):
        for k, combo in enumerate((temporal + grad, temporal - grad)):
            conv1.weight[4 * axis + 2 * k] = combo
            conv1.weight[4 * axis + 2 * k + 1] = -combo
    # Layer 2: s = (|T+g|) - (|T-g|), box-averaged over 7x7, then split by sign.
    for axis in range(2):
        base = 4 * axis
        signed = torch.zeros(8, 7, 7)
        signed[base : base + 2] = 1 / 49
        signed[base + 2 : base + 4] = -1 / 49
        conv2.weight[2 * axis, :8] = signed
        conv2.weight[2 * axis + 1, :8] = -signed
    # Layers 3 and 4: pass the (pos_x, neg_x, pos_y, neg_y) channels through, re-splitting by sign.
    for conv in (conv3, conv4):
        for axis in range(2):
            pos, neg = 2 * axis, 2 * axis + 1
            conv.weight[pos, pos, centre, centre] = 1.0
            conv.weight[pos, neg, centre, centre] = -1.0
            conv.weight[neg, neg, centre, centre] = 1.0
            conv.weight[neg, pos, centre, centre] = -1.0
    # Layer 5: du = -gain * (pos - neg).
    for axis in range(2):
        conv5.weight[axis, 2 * axis, centre, centre] = -gain
        conv5.weight[axis, 2 * axis + 1, centre, centre] = gain


@torch.no_grad()
def calibrate(spynet: SPyNet, ref: torch.Tensor, supp: torch.Tensor, gt: torch.Tensor) -> list[float]:
    """Wire every level and fit its gain by least squares against the ground-truth residual, coarse to fine.

    ref, supp (n, 3, h, w) and gt flow (n, 2, h, w) with h, w multiples of 32. Returns the fitted gains.
    """
    refs, supps = spynet.pyramids(ref, supp)
    n, _, h, w = ref.shape
    flow = ref.new_zeros(n, 2, h // 32, w // 32)
    gains = []
    for level, module in enumerate(spynet.basic_module):
        factor = 2 ** (len(spynet.basic_module) - 1 - level)
        target = F.avg_pool2d(gt, factor) / factor if factor > 1 else gt
        inputs, flow_up = level_inputs(refs[level], supps[level], flow, level)
        wire_level(module, gain=1.0)
        unit = module(inputs)  # the estimate with gain 1
        residual = target - flow_up
        gain = float((unit * residual).sum() / (unit * unit).sum().clamp_min(1e-12))
        gain = max(gain, 0.0)  # a negative fit would mean the data disagree with the constraint's sign
        wire_level(module, gain=gain)
        gains.append(gain)
        flow = flow_up + module(inputs)
    return gains
