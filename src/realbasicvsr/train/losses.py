"""Training losses: pixel and cleaning L1, VGG19 perceptual loss, vanilla GAN loss (as the reference, spec c)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from realbasicvsr.errors import UserError

# torchvision's VGG19 `features` (configuration "E"): numbers are conv output channels, "M" a 2x2 max-pool.
# Our own definition with the same layer indices, so torchvision's `features.N.*` state-dict keys load as is.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512)
# Feature taps (index into `features`, taken right after the conv, before its ReLU) and their weights.
PERCEPTUAL_LAYERS = {2: 0.1, 7: 0.1, 16: 1.0, 25: 1.0, 34: 1.0}
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
# torchvision names files `<name>-<first 8 hex digits of the sha256>.pth` and checks that prefix on download;
# we check the same prefix (the full digest is not published next to the file).
VGG19_SHA256_PREFIX = "dcbb9e9d"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """VGG19 `features[:35]` (up to conv5_4), frozen; returns the pre-ReLU features of the tapped layers."""

    def __init__(self, last_layer: int = 34) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for item in VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                in_channels = int(item)
        self.features = nn.Sequential(*layers[: last_layer + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        return super().train(False)  # always eval: a frozen feature extractor

    def forward(self, x: torch.Tensor, taps: tuple[int, ...]) -> dict[int, torch.Tensor]:
        x = (x - self.mean) / self.std
        out: dict[int, torch.Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                out[index] = x
            if index >= max(taps):
                break
        return out


def vgg19_state_from_file(path: str | Path, *, check_hash: bool = True) -> dict[str, torch.Tensor]:
    """The `features.*` tensors of a torchvision-layout VGG19 state dict (e.g. vgg19-dcbb9e9d.pth)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"VGG19 weights {path} not found; give the path to vgg19-dcbb9e9d.pth or use 'imagenet'")
    if check_hash and path.name.startswith("vgg19-dcbb9e9d"):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(VGG19_SHA256_PREFIX):
            raise UserError(f"{path} has sha256 {digest[:16]}..., not the ImageNet VGG19; download it again")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise UserError(f"{path} is not a state dict")
    state = state.get("state_dict", state)
    features = {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) <= 34}
    if len(features) != 32:  # 16 convs x (weight, bias)
        raise UserError(f"{path} does not look like a torchvision VGG19 state dict (found {len(features)} conv keys)")
    return features


def imagenet_vgg19_path() -> Path:
    """The cached ImageNet VGG19 file; downloaded (hash-prefix checked) on first use into torch's hub cache."""
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    path = cache / Path(VGG19_URL).name
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(VGG19_URL, str(path), hash_prefix=VGG19_SHA256_PREFIX, progress=False)
        except (OSError, RuntimeError) as error:  # urllib errors are OSErrors; a bad hash is a RuntimeError
            raise UserError(
                f"could not download the VGG19 weights ({error}); put vgg19-dcbb9e9d.pth from {VGG19_URL} in "
                f"{cache} or set loss.vgg_weights to its path"
            ) from error
    return path


def build_vgg19(weights: str) -> VGG19Features:
    """`weights`: "imagenet", a file path, or "random" (tests/benchmarks: no meaningful perceptual signal)."""
    model = VGG19Features()
    if weights == "random":
        return model
    path = imagenet_vgg19_path() if weights == "imagenet" else Path(os.path.expanduser(weights))
    model.load_state_dict(vgg19_state_from_file(path), strict=False)
    return model


class PerceptualLoss(nn.Module):
    """Sum over taps of weight · L1(features(output), features(target)); the target features get no gradient."""

    def __init__(self, vgg: VGG19Features, layers: dict[int, float] | None = None) -> None:
        super().__init__()
        self.vgg = vgg
        self.layers = dict(layers or PERCEPTUAL_LAYERS)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        taps = tuple(self.layers)
        out_features = self.vgg(output, taps)
        with torch.no_grad():
            target_features = self.vgg(target.detach(), taps)
        loss = output.new_zeros(())
        for index, weight in self.layers.items():
            loss = loss + weight * F.l1_loss(out_features[index], target_features[index])
        return loss


def gan_loss(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Vanilla GAN loss: BCE-with-logits against a tensor of 1 (real) or 0 (fake), mean over every logit."""
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def cleaning_target(gt: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """(n, t, 3, H, W) -> (n, t, 3, H/scale, W/scale) by area averaging (the reference's interpolate 'area')."""
    n, t, c, h, w = gt.shape
    small = F.avg_pool2d(gt.reshape(n * t, c, h, w), kernel_size=scale)
    return small.view(n, t, c, h // scale, w // scale)
