"""Checkpoint reading: official mmediting layout, our release format, known-weights download and clear errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from conftest import shared_path
from realbasicvsr import UserError, load_generator, save_release
from realbasicvsr.models import ModelConfig, RealBasicVSR, UNetDiscriminator
from realbasicvsr.weights import (
    KNOWN_WEIGHTS,
    KnownWeights,
    infer_model_config,
    load_state_strict,
    read_state_file,
    resolve_weights,
    select_generator_state,
)


def _full_listing() -> dict:
    return json.loads(shared_path("refvectors", "c64b20_full_keys.json").read_text())


def _meta_state(entries: list) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, dtype=getattr(torch, dtype), device="meta") for key, shape, dtype in entries}


@pytest.mark.parametrize("ema", [True, False])
def test_full_c64b20_listing_maps_onto_model(ema: bool) -> None:
    listing = _full_listing()
    assert len(listing["keys"]) == listing["n_keys"] == 669
    state = _meta_state(listing["keys"] + listing["perceptual_loss_keys_if_saved"])
    generator_state, prefix = select_generator_state(state, ema=ema)
    assert prefix == ("generator_ema." if ema else "generator.")
    assert len(generator_state) == 320
    config = infer_model_config(generator_state)
    assert config == ModelConfig()  # c64, 20 + 20 blocks
    with torch.device("meta"):
        model = RealBasicVSR(config)
    expected = model.state_dict()
    assert list(expected) == list(generator_state)  # same names, same order
    for key, tensor in expected.items():
        assert tuple(generator_state[key].shape) == tuple(tensor.shape), key
    assert sum(t.numel() for t in generator_state.values()) == listing["numel"]["generator"]
    load_state_strict(model, generator_state, "c64b20 listing")

    disc_state = {k[len("discriminator.") :]: v for k, v in state.items() if k.startswith("discriminator.")}
    with torch.device("meta"):
        disc = UNetDiscriminator()
    assert {k: tuple(v.shape) for k, v in disc.state_dict().items()} == {
        k: tuple(v.shape) for k, v in disc_state.items()
    }


def test_ema_and_plain_generators_differ(official_checkpoint) -> None:
    checkpoint = official_checkpoint.path
    ema = load_generator(checkpoint)
    plain = load_generator(checkpoint, ema=False)
    assert not ema.training
    w_ema = ema.state_dict()["image_cleaning.1.weight"]
    assert not torch.equal(w_ema, plain.state_dict()["image_cleaning.1.weight"])
    raw = read_state_file(checkpoint)
    assert torch.equal(w_ema, raw["generator_ema.image_cleaning.1.weight"])


def test_generator_prefix_used_when_no_ema(official_checkpoint, tmp_path: Path) -> None:
    checkpoint = official_checkpoint.path
    raw = read_state_file(checkpoint)
    only_generator = {k: v.clone() for k, v in raw.items() if not k.startswith("generator_ema.")}
    path = tmp_path / "no_ema.pth"
    torch.save({"meta": {}, "state_dict": only_generator}, path, _use_new_zipfile_serialization=False)
    model = load_generator(path)
    assert torch.equal(model.state_dict()["image_cleaning.1.weight"], raw["generator.image_cleaning.1.weight"])


def test_release_round_trip(official_checkpoint, tmp_path: Path) -> None:
    checkpoint = official_checkpoint.path
    model = load_generator(checkpoint, cleaning_threshold=5)
    target = save_release(model, tmp_path / "small.safetensors")
    sidecar = json.loads(target.with_suffix(".json").read_text())
    assert sidecar["model_config"] == {"mid_channels": 16, "num_propagation_blocks": 2, "num_cleaning_blocks": 2}
    assert sidecar["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert not list(tmp_path.glob("*.tmp"))
    again = load_generator(target, cleaning_threshold=5)
    assert again.config == model.config
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[key]), key
    lq = torch.rand(1, 3, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(model(lq)[0], again(lq)[0])


def test_truncated_checkpoint_is_a_clear_error(official_checkpoint, tmp_path: Path) -> None:
    checkpoint = official_checkpoint.path
    broken = tmp_path / "broken.pth"
    broken.write_bytes(checkpoint.read_bytes()[:5000])
    with pytest.raises(UserError, match="truncated or corrupted"):
        load_generator(broken)
    not_torch = tmp_path / "notes.pth"
    not_torch.write_text("hello")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_generator(not_torch)
    bad_st = tmp_path / "broken.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_generator(bad_st)


def test_wrong_architecture_lists_keys(official_checkpoint) -> None:
    checkpoint = official_checkpoint.path
    state, _ = select_generator_state(read_state_file(checkpoint))
    model = RealBasicVSR(ModelConfig(16, 3, 2))
    with pytest.raises(UserError, match=r"missing: basicvsr\.backward_resblocks\.main\.2\.2\.conv1\.weight"):
        load_state_strict(model, state, "small")
    model = RealBasicVSR(ModelConfig(8, 2, 2))
    with pytest.raises(UserError, match=r"wrong shape: image_cleaning\.0\.main\.0\.weight \(file \(16, 3, 3, 3\)"):
        load_state_strict(model, state, "small")
    extra = dict(state, **{"basicvsr.extra.weight": torch.zeros(1)})
    with pytest.raises(UserError, match=r"1 unexpected: basicvsr\.extra\.weight"):
        load_state_strict(RealBasicVSR(ModelConfig(16, 2, 2)), extra, "small")


def test_not_a_generator_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "disc.pth"
    torch.save({"state_dict": {"discriminator.conv_0.weight": torch.zeros(1)}}, path)
    with pytest.raises(UserError, match="no RealBasicVSR generator weights"):
        load_generator(path)


def test_unknown_name_and_missing_path() -> None:
    with pytest.raises(UserError, match="known name"):
        resolve_weights("no_such_weights")


def _fake_known(monkeypatch, tmp_path: Path, url: str, prefix: str) -> KnownWeights:
    info = KnownWeights("test_weights", url, "test_weights.pth", prefix, "test entry")
    monkeypatch.setitem(KNOWN_WEIGHTS, "test_weights", info)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return info


def test_known_weights_download_checks_hash(official_checkpoint, tmp_path: Path, monkeypatch) -> None:
    checkpoint = official_checkpoint.path
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    _fake_known(monkeypatch, tmp_path, checkpoint.resolve().as_uri(), digest[:8])
    path = resolve_weights("test_weights")
    assert path.parent == tmp_path / "torch_home" / "hub" / "checkpoints"
    assert path.read_bytes() == checkpoint.read_bytes()
    assert load_generator("test_weights").config == ModelConfig(16, 2, 2)


def test_known_weights_hash_mismatch_is_rejected(official_checkpoint, tmp_path: Path, monkeypatch) -> None:
    checkpoint = official_checkpoint.path
    _fake_known(monkeypatch, tmp_path, checkpoint.resolve().as_uri(), "00000000")
    with pytest.raises(UserError, match="sha256"):
        resolve_weights("test_weights")
    assert not (tmp_path / "torch_home" / "hub" / "checkpoints" / "test_weights.pth").exists()


def test_offline_error_says_where_to_put_the_file(tmp_path: Path, monkeypatch) -> None:
    # Port 9 on the loopback address refuses the connection at once: the same path as having no internet.
    _fake_known(monkeypatch, tmp_path, "http://127.0.0.1:9/test_weights.pth", "12345678")
    with pytest.raises(UserError, match=r"put it at .*test_weights\.pth"):
        resolve_weights("test_weights")
    with pytest.raises(UserError, match="downloading is disabled"):
        resolve_weights("test_weights", download=False)


def test_one_writer_for_release_and_spynet_files(tmp_path: Path, monkeypatch) -> None:
    """save_release and save_spynet share `write_safetensors`: the same sidecar layout, no fixed temporary names
    left behind, and a failed write keeps the previous pair untouched."""
    from realbasicvsr.models import SPyNet
    from realbasicvsr.weights import load_spynet_weights, save_spynet

    model = RealBasicVSR(ModelConfig(4, 1, 1))
    release = save_release(model, tmp_path / "gen.safetensors", extra={"training_step": "7"})
    sidecar = json.loads(release.with_suffix(".json").read_text())
    assert list(sidecar) == ["format", "model_config", "weights_file", "sha256", "training_step"]
    flow = save_spynet(model.basicvsr.spynet, tmp_path / "flow.safetensors", {"note": "test"})
    flow_sidecar = json.loads(flow.with_suffix(".json").read_text())
    assert list(flow_sidecar) == ["weights_file", "sha256", "note"]
    assert flow_sidecar["sha256"] == hashlib.sha256(flow.read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "flow.json",
        "flow.safetensors",
        "gen.json",
        "gen.safetensors",
    ]
    # Both files load into a fresh SPyNet (the release holds it under basicvsr.spynet.).
    for source in (release, flow):
        loaded = load_spynet_weights(SPyNet(), source).state_dict()
        assert all(torch.equal(v, loaded[k]) for k, v in model.basicvsr.spynet.state_dict().items())

    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_release(RealBasicVSR(ModelConfig(8, 1, 1)), release)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


class _PickledObject:  # torch.save pickles it by reference; weights_only loading must refuse it
    pass


@pytest.mark.parametrize("suffix", [".pth", ".pt"])
def test_weights_holding_python_objects_are_refused_in_one_safe_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"unsafe{suffix}"
    torch.save({"state_dict": {"generator.x": torch.zeros(1)}, "payload": _PickledObject()}, path)
    with pytest.raises(UserError) as caught:
        load_generator(path)
    message = str(caught.value)
    assert message == f"{path} is not a checkpoint this tool can load safely (it contains Python objects)"
    assert "weights_only" not in message and "\x1b" not in message  # never torch's advice, no colour codes
