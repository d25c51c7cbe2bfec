"""Training configs: presets, YAML/TOML files, strict keys, overrides, the train command's config handling."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from realbasicvsr.cli import main
from realbasicvsr.degrade.config import fast, official
from realbasicvsr.errors import ConfigError, UserError
from realbasicvsr.train.config import PRESETS, DataConfig, config_from_dict, dump_yaml, load_config, stage1, stage2

REPO = Path(__file__).resolve().parents[1]


def test_presets_hold_the_official_recipe():
    s1, s2 = stage1(), stage2()
    assert (s1.data.batch_size, s1.optim.lr_g, s1.run.steps) == (16, 1e-4, 300_000)
    assert (s1.loss.perceptual_weight, s1.loss.gan_weight) == (0.0, 0.0)
    assert (s2.data.batch_size, s2.optim.lr_g, s2.optim.lr_d, s2.run.steps) == (8, 5e-5, 1e-4, 150_000)
    assert (s2.loss.perceptual_weight, s2.loss.gan_weight) == (1.0, 0.05)
    for config in (s1, s2):
        assert config.optim.betas == (0.9, 0.99) and config.optim.ema_decay == 0.999
        assert (config.data.num_frames, config.data.mirror, config.data.gt_size) == (15, True, 256)
        assert config.model.mid_channels == 64 and config.model.num_propagation_blocks == 20


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_yaml_files_equal_the_presets(name):
    assert load_config(REPO / "configs" / f"{name}.yaml") == PRESETS[name]()


def test_example_file_starts_from_a_preset():
    config = load_config(REPO / "configs" / "finetune_example.yaml")
    assert config.loss.gan_weight == 0.05 and config.data.batch_size == 2 and config.run.steps == 5000


def test_toml_and_overrides(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('preset = "tiny"\n[optim]\nlr_g = 1e-5\n[data]\ndegradation = "none"\n')
    config = load_config(path, ["data.batch_size=4", "run.init_from=runs/s1", "optim.betas=[0.5, 0.9]"])
    assert config.optim.lr_g == 1e-5 and config.data.degradation is None and config.data.batch_size == 4
    assert config.run.init_from == "runs/s1" and config.optim.betas == (0.5, 0.9)
    assert config.model == PRESETS["tiny"]().model


def test_yaml_one_e_minus_four_is_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr_g: 1e-4\n")  # YAML 1.1 reads this as a string
    assert load_config(path).optim.lr_g == 1e-4


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data": {"batchsize": 4}}, r"unknown config key\(s\) data.batchsize; known in data: .*batch_size"),
        ({"trainer": {}}, r"unknown config key\(s\) trainer"),
        ({"data": {"batch_size": "four"}}, "data.batch_size must be int"),
        ({"data": {"batch_size": True}}, "data.batch_size must be int"),
        ({"data": {"degradation": "jpeg"}}, "data.degradation must be one of official, fast, none or a mapping"),
        ({"data": {"degradation": {"noise1": {"sigma": 3}}}}, r"unknown config key\(s\) data.degradation.noise1.sigma"),
        ({"data": {"degradation": {"blur1": {"prob": 2.0}}}}, r"data.degradation.blur1: prob must be in \[0, 1\]"),
        ({"data": {"degradation": {"preset": "slow"}}}, "data.degradation.preset must be one of official, fast"),
        ({"run": {"precision": "fp8"}}, "run.precision must be one of auto, fp32, bf16, fp16"),
        ({"data": {"gt_size": 100}}, "multiple of 8"),
        ({"optim": {"betas": [0.9]}}, "list of 2 values"),
        ({"optim": {"ema_decay": 1.0}}, r"ema_decay must be in \[0, 1\)"),
        ({"model": {"mid_channels": 0}}, "mid_channels"),
        ({"run": "fast"}, "must be a mapping"),
    ],
)
def test_bad_configs_are_user_errors(data, message):
    with pytest.raises(ConfigError, match=message) as caught:
        config_from_dict(data)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


def test_degradation_is_a_preset_none_or_a_partial_recipe(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\ndata:\n  degradation: fast\n")
    assert load_config(path).data.degradation == fast()
    path.write_text("preset: tiny\ndata:\n  degradation: none\n")
    assert load_config(path).data.degradation is None
    # A mapping changes only what it names; the rest stays the official recipe (nested sections included:
    # noise2 keeps its second-order sigma range).
    path.write_text("preset: tiny\ndata:\n  degradation:\n    noise2:\n      prob: 0.5\n    usm_weight: 0.3\n")
    recipe = load_config(path).data.degradation
    assert recipe == replace(official(), noise2=replace(official().noise2, prob=0.5), usm_weight=0.3)
    # Over another preset, and with list-valued fields checked against their choices.
    path.write_text(
        "data:\n  degradation:\n    preset: fast\n    blur1: {kernel_types: [iso, sinc], kernel_probs: [0.5, 0.5]}\n"
    )
    recipe = load_config(path).data.degradation
    assert recipe.codec1 == fast().codec1 and recipe.blur1.kernel_types == ("iso", "sinc")
    path.write_text("data:\n  degradation:\n    blur1: {kernel_types: [iso, box], kernel_probs: [0.5, 0.5]}\n")
    with pytest.raises(ConfigError, match=r"data\.degradation\.blur1\.kernel_types must be one of iso, aniso"):
        load_config(path)
    # Python code may name a preset too.
    assert DataConfig(degradation="fast").degradation == fast() and DataConfig(degradation="none").degradation is None


@pytest.mark.parametrize("degradation", ["official", "fast", "none", "custom"])
def test_run_configs_round_trip_through_yaml(tmp_path, degradation):
    recipe = (
        replace(fast(), jpeg2=replace(fast().jpeg2, quality_range=(40.0, 90.0)))
        if degradation == "custom"
        else degradation
    )
    config = replace(stage2(), data=DataConfig(degradation=recipe, batch_size=4))
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(config))
    assert load_config(path) == config
    text = path.read_text()
    assert (f"degradation: {degradation}" in text) == (degradation != "custom")


def test_old_run_configs_say_realworld_for_the_official_recipe():
    data = stage1().to_dict()
    data["data"]["degradation"] = "realworld"  # as saved in checkpoints before the recipes had names
    assert config_from_dict(data) == stage1()


def test_bad_sources(tmp_path):
    with pytest.raises(UserError, match=r"not found; give a \.yaml/\.toml file or a preset"):
        load_config("stage3")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(UserError, match="unknown file type"):
        load_config(tmp_path / "c.json")
    (tmp_path / "broken.yaml").write_text("data: [1,\n")
    with pytest.raises(UserError, match="could not be parsed"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(UserError, match=r"must look like section\.key=value"):
        load_config("tiny", ["batch_size=4"])
    (tmp_path / "p.yaml").write_text("preset: stage9\n")
    with pytest.raises(UserError, match="unknown preset 'stage9'"):
        load_config(tmp_path / "p.yaml")


def test_train_command_prints_resolved_config_and_reports_errors(tmp_path, capsys):
    assert main(["train", "stage2", "data.batch_size=4", "--data", "x", "--out", "y", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "batch_size: 4" in printed and "gan_weight: 0.05" in printed
    assert (
        main(["train", "tiny", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r"), "--set", "x.y=1"]) == 1
    )
    assert "unknown config key(s) x" in capsys.readouterr().err
    assert main(["train", "tiny", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 1
    assert "training data folder" in capsys.readouterr().err
