"""SPyNet pretraining on synthetic motion: exact ground truth, the supervised pyramid, learning, file round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from realbasicvsr.errors import UserError
from realbasicvsr.models import ModelConfig, RealBasicVSR
from realbasicvsr.models.blocks import flow_warp
from realbasicvsr.models.spynet import SPyNet
from realbasicvsr.train.offline_data import load_image
from realbasicvsr.train.spynet.pretrain import (
    MotionConfig,
    SpynetPretrainConfig,
    evaluate_synthetic,
    load_spynet_file,
    make_batch,
    make_pair,
    pretrain,
    pyramid_flows,
    train_step,
    zero_init,
)
from realbasicvsr.weights.release import save_spynet


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return load_image("chelsea")


def test_warping_supp_with_the_ground_truth_flow_reproduces_ref(photo):
    rng = np.random.default_rng(3)
    motion = MotionConfig(max_translation=10.0, max_rotation_deg=6.0, max_zoom=0.1, smooth_amplitude=3.0)
    for _ in range(4):
        ref, supp, flow = make_pair(photo, rng, 64, motion)
        warped = flow_warp(supp[None], flow[None].permute(0, 2, 3, 1), padding_mode="border")[0]
        ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        # Occlusion: where x + flow(x) leaves supp, ref shows content supp does not have.
        inside = (xs + flow[0] >= 0) & (xs + flow[0] <= 63) & (ys + flow[1] >= 0) & (ys + flow[1] <= 63)
        assert inside.float().mean() > 0.5
        assert torch.allclose(warped[:, inside], ref[:, inside], atol=1e-5)
        # And the motion is real: not warping leaves a clear error.
        assert (supp - ref)[:, inside].abs().mean() > 0.01
        assert flow.abs().max() > 0.5


def test_pyramid_flows_ends_with_compute_flow():
    spynet = SPyNet().eval()  # random init: all levels contribute
    ref, supp = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        flows = pyramid_flows(spynet, ref, supp)
        expected = spynet.compute_flow(ref, supp)
    assert [f.shape[-1] for f in flows] == [3, 6, 12, 24, 48, 96]
    torch.testing.assert_close(flows[-1], expected)


def test_zero_init_predicts_zero_flow():
    spynet = zero_init(SPyNet()).eval()
    with torch.no_grad():
        assert spynet(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)).abs().max() == 0


@pytest.mark.slow
def test_a_few_steps_of_pretraining_lower_the_end_point_error(photo):
    torch.set_num_threads(1)
    motion = MotionConfig(max_translation=2.0, max_rotation_deg=0.0, max_zoom=0.0, smooth_amplitude=0.0)
    batch = make_batch([photo], np.random.default_rng(99), 4, 32, motion, photometric=False)
    spynet = zero_init(SPyNet())
    optimizer = torch.optim.Adam(spynet.parameters(), lr=1e-3)
    before = evaluate_synthetic(spynet, batch)
    assert before["epe"] == pytest.approx(before["zero_flow_epe"])  # zero-initialised: predicts no motion
    losses = [train_step(spynet, optimizer, batch) for _ in range(20)]
    after = evaluate_synthetic(spynet, batch)
    assert after["epe"] < 0.85 * before["zero_flow_epe"]
    assert losses[-1] < losses[0]


def test_pretrain_stops_on_its_time_budget_and_logs(photo):
    config = SpynetPretrainConfig(steps=50, batch_size=1, crop=32)
    pairs = make_batch([photo], np.random.default_rng(1), 2, 32, config.motion, photometric=False)
    lines: list[str] = []
    spynet, records = pretrain(config, [photo], pairs, log=lines.append, log_every=10, max_seconds=0.0)
    assert [r["step"] for r in records] == [0, 1]  # the starting point, then the step where time ran out
    assert "heldout_epe" in records[1] and "stopped at step 1 of 50" in lines[-1]
    assert json.loads(lines[0])["init"] == "gradient" and len(json.loads(lines[0])["gains"]) == 6
    assert not spynet.training


def test_saved_weights_round_trip_and_load_into_the_generator(tmp_path):
    from realbasicvsr.train.setup import load_spynet

    spynet = SPyNet()
    path = save_spynet(spynet, tmp_path / "flow.safetensors", {"note": "test"})
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["note"] == "test" and len(sidecar["sha256"]) == 64
    loaded = load_spynet_file(path)
    for key, value in spynet.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    # The training code reads the same file into the generator's (frozen) flow network.
    model = RealBasicVSR(ModelConfig(mid_channels=8, num_propagation_blocks=1, num_cleaning_blocks=1))
    load_spynet(model, str(path))
    torch.testing.assert_close(
        model.basicvsr.spynet.basic_module[3].basic_module[1].conv.weight,
        spynet.basic_module[3].basic_module[1].conv.weight,
    )
    # A generator release (like the bundled model) serves as a SPyNet file too.
    from realbasicvsr.weights import save_release

    release = save_release(model, tmp_path / "gen.safetensors")
    other = RealBasicVSR(ModelConfig(mid_channels=4, num_propagation_blocks=1, num_cleaning_blocks=0))
    load_spynet(other, str(release))
    torch.testing.assert_close(other.basicvsr.spynet.state_dict(), model.basicvsr.spynet.state_dict())


def test_bad_inputs_raise_user_errors(tmp_path):
    with pytest.raises(UserError, match="multiple of 32"):
        SpynetPretrainConfig(crop=48)
    with pytest.raises(UserError, match=r"\.safetensors"):
        save_spynet(SPyNet(), tmp_path / "flow.pth", {})
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(UserError, match="not a SPyNet checkpoint"):
        load_spynet_file(tmp_path / "other.safetensors")


def test_wired_start_estimates_flow_on_unseen_pairs(photo):
    from realbasicvsr.train.spynet.init_weights import calibrate

    motion = MotionConfig()
    spynet = SPyNet()
    gains = calibrate(spynet, *make_batch([photo], np.random.default_rng(0), 8, 64, motion, photometric=True))
    assert all(g > 0 for g in gains[1:])
    other = load_image("astronaut")  # another photograph, other motions
    result = evaluate_synthetic(spynet, make_batch([other], np.random.default_rng(9), 8, 64, motion, False))
    assert result["epe"] < 0.8 * result["zero_flow_epe"]


def test_unwired_channels_do_not_change_the_wired_estimate():
    from realbasicvsr.models.spynet import SPyNetBasicModule
    from realbasicvsr.train.spynet.init_weights import wire_level

    module = SPyNetBasicModule().eval()
    wire_level(module, gain=2.0)
    inputs = torch.randn(2, 8, 20, 24)
    with torch.no_grad():
        before = module(inputs)
        for block, wired in zip(module.basic_module[:4], (8, 4, 4, 4)):
            block.conv.weight[wired:].normal_()  # scramble every unwired channel
            block.conv.bias[wired:].normal_()
        after = module(inputs)
    torch.testing.assert_close(after, before)
    assert before.abs().max() > 0  # and the wired part does respond to the input
