"""The command line: every command's FLAGS names real flags of that command, and errors become one line."""

from __future__ import annotations

import importlib

import pytest

from realbasicvsr.cli import COMMANDS, build_parser, one_line
from realbasicvsr.errors import ConfigError, UserError


def _subparsers() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_flags_tables_name_flags_the_command_has(name):
    module = importlib.import_module(f"realbasicvsr.commands.{name.replace('-', '_')}")
    flags = getattr(module, "FLAGS", {})
    options = {s for action in _subparsers()[name]._actions for s in action.option_strings}
    assert set(flags.values()) <= options, f"{name}: {set(flags.values()) - options} are not flags of the command"


def test_one_line_adds_the_flag_of_the_setting_and_folds_newlines():
    error = ConfigError("window must be at least 1 frame,\n got 0", option="window")
    assert isinstance(error, ValueError) and isinstance(error, UserError)
    assert one_line(error, {"window": "--window"}) == "window must be at least 1 frame, got 0 (set with --window)"
    assert one_line(UserError("no such file"), {"window": "--window"}) == "no such file"
    quoted = UserError("cannot be copied into .mp4: write .mkv, or pass audio_codec='aac'", option="audio_codec")
    assert (
        one_line(quoted, {"audio_codec": "--audio-codec"})
        == "cannot be copied into .mp4: write .mkv, or pass --audio-codec aac"
    )


@pytest.mark.parametrize(
    ("device", "says"), [("tpu", "unknown training device 'tpu'"), ("cuda:x", "unknown training device")]
)
def test_train_refuses_an_unusable_device_before_reading_data(tmp_path, capsys, device, says):
    from realbasicvsr.cli import main

    code = main(
        ["train", "tiny", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), "--device", device]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0
    assert says in err and err.endswith("(set with --device)")
    assert not (tmp_path / "run").exists()
