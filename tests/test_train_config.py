"""Training configs: presets, YAML/TOML files, strict keys, overrides, the train command's config handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from realbasicvsr.cli import main
from realbasicvsr.errors import UserError
from realbasicvsr.train.config import PRESETS, config_from_dict, load_config, stage1, stage2

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
    assert config.optim.lr_g == 1e-5 and config.data.degradation == "none" and config.data.batch_size == 4
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
        ({"data": {"degradation": "jpeg"}}, "data.degradation must be one of realworld, none"),
        ({"data": {"gt_size": 100}}, "multiple of 8"),
        ({"optim": {"betas": [0.9]}}, "list of 2 values"),
        ({"optim": {"ema_decay": 1.0}}, r"ema_decay must be in \[0, 1\)"),
        ({"model": {"mid_channels": 0}}, "mid_channels"),
        ({"run": "fast"}, "must be a mapping"),
    ],
)
def test_bad_configs_are_user_errors(data, message):
    with pytest.raises(UserError, match=message):
        config_from_dict(data)


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
