"""One training iteration: losses, EMA math, the NaN guard, one step of each stage at tiny size on CPU."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from realbasicvsr.errors import UserError
from realbasicvsr.train.config import LossConfig, stage2
from realbasicvsr.train.dist import DistInfo
from realbasicvsr.train.losses import (
    PERCEPTUAL_LAYERS,
    PerceptualLoss,
    VGG19Features,
    build_vgg19,
    cleaning_target,
    gan_loss,
    vgg19_state_from_file,
)
from realbasicvsr.train.setup import build_trainer
from realbasicvsr.train.step import ema_update, train_step
from test_train_data import tiny_config


def batch(n: int = 2, t: int = 4, size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(n, t, 3, size, size, generator=g)
    gt_usm = (gt * 1.1 - 0.05).clamp(0, 1)
    lq = F.avg_pool2d(gt_usm.flatten(0, 1), 4).view(n, t, 3, size // 4, size // 4)
    return {"lq": lq, "gt": gt, "gt_usm": gt_usm}


def stage2_tiny():
    return tiny_config(loss=replace(stage2().loss, vgg_weights="random", discriminator_channels=8))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_stage1_step_trains_generator_but_not_spynet():
    config = tiny_config()
    trainer = build_trainer(replace(config, run=replace(config.run, channels_last="always")), DistInfo())
    assert trainer.channels_last
    before = snapshot(trainer.generator_module)
    losses, ok = train_step(trainer, batch(), torch.device("cpu"))
    assert ok and set(losses) == {"pix", "clean"} and all(v > 0 for v in losses.values())
    after = trainer.generator_module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("image_cleaning.") for k in changed)
    assert any(k.startswith("basicvsr.backward_resblocks.") for k in changed)
    assert not any(k.startswith("basicvsr.spynet.") for k in changed)  # frozen
    assert trainer.discriminator is None and trainer.perceptual is None


def test_stage2_step_updates_generator_and_discriminator():
    trainer = build_trainer(stage2_tiny(), DistInfo())
    d_before = snapshot(trainer.discriminator_module)
    g_before = snapshot(trainer.generator_module)
    losses, ok = train_step(trainer, batch(n=1), torch.device("cpu"))
    assert ok and set(losses) == {"pix", "clean", "percep", "gan", "d_real", "d_fake"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    d_after = trainer.discriminator_module.state_dict()
    assert not torch.equal(d_before["conv_0.weight"], d_after["conv_0.weight"])
    assert not torch.equal(
        g_before["basicvsr.conv_last.weight"], trainer.generator_module.state_dict()["basicvsr.conv_last.weight"]
    )
    # the GAN term uses weight 0.05 and the discriminator starts near chance: BCE(logit ~ 0) ~ log 2
    assert 0.01 < losses["gan"] < 0.1


def test_ema_math():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    model[1].weight.requires_grad_(False)  # a frozen parameter is copied, like SPyNet
    ema = copy.deepcopy(model)
    old = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.fill_(3.0)
    ema_update(ema, model, decay=0.999)
    new = ema.state_dict()
    expected = 0.999 * old["0.weight"] + 0.001 * model[0].weight
    torch.testing.assert_close(new["0.weight"], expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(new["0.bias"], 0.999 * old["0.bias"] + 0.001 * model[0].bias, rtol=0, atol=1e-7)
    assert torch.equal(new["1.weight"], model[1].weight)  # frozen: copied
    assert torch.equal(new["1.running_mean"], torch.full((2,), 3.0))  # buffer: copied


def test_nan_loss_skips_the_whole_step():
    trainer = build_trainer(tiny_config(loss=LossConfig(gan_weight=0.05, discriminator_channels=8)), DistInfo())
    bad = batch(n=1)
    bad["gt_usm"][0, 0, 0, 0, 0] = float("nan")
    g, d, ema = (snapshot(m) for m in (trainer.generator_module, trainer.discriminator_module, trainer.generator_ema))
    losses, ok = train_step(trainer, bad, torch.device("cpu"))
    assert not ok and torch.isnan(torch.tensor(losses["pix"]))
    for before, module in (
        (g, trainer.generator_module),
        (d, trainer.discriminator_module),
        (ema, trainer.generator_ema),
    ):
        after = module.state_dict()
        # spectral norm's power-iteration vectors (weight_u/v) advance on every train-mode D forward, as in the
        # reference; they are estimates, not trained weights
        assert all(torch.equal(before[k], after[k]) for k in before if not k.endswith(("weight_u", "weight_v")))
    assert not trainer.optim_g.state  # Adam never stepped
    assert train_step(trainer, batch(n=1), torch.device("cpu"))[1]  # the next good batch trains normally


def test_cleaning_target_is_area_downsampling():
    gt = torch.rand(2, 3, 3, 16, 24)
    expected = F.interpolate(gt.flatten(0, 1), scale_factor=0.25, mode="area").view(2, 3, 3, 4, 6)
    torch.testing.assert_close(cleaning_target(gt), expected)


def test_gan_loss_is_bce_with_logits():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    torch.testing.assert_close(gan_loss(logits, True), -F.logsigmoid(logits).mean())
    torch.testing.assert_close(gan_loss(logits, False), -F.logsigmoid(-logits).mean())


def test_vgg19_taps_are_pre_relu_and_perceptual_loss_behaves():
    vgg = VGG19Features()
    x = torch.rand(1, 3, 16, 16)
    taps = tuple(PERCEPTUAL_LAYERS)
    features = vgg(x, taps)
    assert [features[i].shape[1] for i in taps] == [64, 128, 256, 512, 512]
    assert all((features[i] < 0).any() for i in taps)  # taken before the ReLU
    loss = PerceptualLoss(vgg)
    assert loss(x, x).item() == 0.0
    y = x.clone().requires_grad_(True)
    value = loss(y, torch.rand(1, 3, 16, 16))
    value.backward()
    assert value > 0 and y.grad.abs().sum() > 0 and all(p.grad is None for p in vgg.parameters())


def test_vgg19_loads_a_torchvision_layout_file(tmp_path):
    reference = VGG19Features()
    # a torchvision `vgg19().state_dict()` has features.* up to index 34 plus the classifier
    state = {f"features.{k.split('.', 1)[1]}": v.clone() for k, v in reference.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    path = tmp_path / "my_vgg19.pth"
    torch.save(state, path)
    loaded = build_vgg19(str(path))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), reference.state_dict().values()))
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="does not look like a torchvision VGG19"):
        vgg19_state_from_file(tmp_path / "bad.pth")
    with pytest.raises(UserError, match="not found"):
        build_vgg19(str(tmp_path / "missing.pth"))


def test_zero_weights_remove_networks():
    config = tiny_config(loss=LossConfig(perceptual_weight=0.0, gan_weight=0.0))
    trainer = build_trainer(config, DistInfo())
    assert trainer.perceptual is None and trainer.optim_d is None


# fp16 covers autocast and the gradient scaler (bf16 is the same path without the scaler); CPU autocast is slow.
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16"])
def test_mixed_precision_steps_and_scaler_state(precision, tmp_path):
    from realbasicvsr.train.setup import restore, training_state

    config = tiny_config(loss=LossConfig(gan_weight=0.05, discriminator_channels=8))
    config = replace(config, run=replace(config.run, precision=precision))
    trainer = build_trainer(config, DistInfo())
    before = snapshot(trainer.generator_module)
    losses, ok = train_step(trainer, batch(n=1), torch.device("cpu"))
    assert ok and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    after = trainer.generator_module.state_dict()
    assert not torch.equal(before["basicvsr.conv_last.weight"], after["basicvsr.conv_last.weight"])
    assert (trainer.scaler is not None) == (precision == "fp16")  # fp16 needs loss scaling, bf16 does not
    torch.save(training_state(trainer), tmp_path / "state.pt")
    fresh = build_trainer(config, DistInfo())
    restore(fresh, torch.load(tmp_path / "state.pt", weights_only=True))
    if precision == "fp16":
        assert fresh.scaler.state_dict() == trainer.scaler.state_dict()
    assert torch.equal(
        fresh.generator_module.state_dict()["basicvsr.conv_last.weight"], after["basicvsr.conv_last.weight"]
    )
