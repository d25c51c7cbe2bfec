"""Issue 14, hostile data: corrupt training frames, metrics.jsonl after a resume, evaluate's --params-dir/--json.

Every case goes through the real training loop (tiny config) or the real `evaluate` command.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realbasicvsr.cli import main
from realbasicvsr.errors import UserError
from realbasicvsr.media.clips import UnreadableImage, image_size, read_image
from realbasicvsr.train.config import CheckpointConfig
from realbasicvsr.train.data import scan_clips
from realbasicvsr.train.loop import train
from realbasicvsr.train.state import list_checkpoints
from test_train_data import make_clips, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")
REGRESSIONS = Path(__file__).parent / "fuzz_regressions"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a valid header, then the image data stops


def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 700, dtype=np.uint8).tobytes())


def config(workers: int, **run):
    base = tiny_config()
    return replace(base, data=replace(base.data, workers=workers), run=replace(base.run, **run))


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_command(data: Path, run_dir: Path, workers: int, steps: int) -> subprocess.CompletedProcess:
    """The real `realbasicvsr train` in a fresh process (DataLoader workers forked from a clean interpreter, as in
    a real run, not from the test process), tiny model."""
    argv = [sys.executable, "-m", "realbasicvsr", "train", "tiny", "data.degradation=none", f"data.workers={workers}",
            "data.num_frames=3", "data.gt_size=32", "data.batch_size=2", "run.precision=fp32", "log.every=1",
            "model.mid_channels=4", "model.num_propagation_blocks=1", "model.num_cleaning_blocks=1",
            "loss.vgg_weights=random",
            "--data", str(data), "--out", str(run_dir), "--max-steps", str(steps)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_frames_are_skipped_with_a_counted_warning(tmp_path, workers):
    data = make_clips(tmp_path / "data", n_clips=3, n_frames=8, size=(32, 40))
    truncate(data / "clip000" / "00000000.png")  # the windows from frame 1 on are fine
    (data / "clip001" / "00000007.png").write_bytes((REGRESSIONS / "pil_syntaxerror.png").read_bytes())
    for frame in (data / "clip002").iterdir():
        truncate(frame)  # a clip of only bad frames: dropped on its first failures
    done = train_command(data, tmp_path / "run", workers, steps=6)
    text = done.stderr  # the main process's and the workers' warnings
    assert done.returncode == 0, text
    assert "warning: skipped 1 training sample(s) in this process because of corrupt data" in text, text
    assert "reported once per 50" in text and "Traceback" not in text
    assert "skipped 2 training" not in text  # not once per frame
    assert [r["step"] for r in records(tmp_path / "run")] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("name", ["pil_syntaxerror.png", "pil_valueerror.png"])
def test_pngs_that_pil_rejects_with_syntax_or_value_errors_are_user_errors(name):
    """Fuzzed PNGs (a broken chunk, a truncated IHDR) on which PIL raises SyntaxError / ValueError, which the
    frame readers let through as tracebacks before."""
    path = REGRESSIONS / name
    readers = [read_image] + ([image_size] if name == "pil_valueerror.png" else [])  # the other's header reads
    for reader in readers:
        with pytest.raises(UnreadableImage, match="cannot read image") as caught:
            reader(path)
        assert isinstance(caught.value, UserError) and caught.value.path == path
        assert isinstance(caught.value.__cause__, (SyntaxError, ValueError))


def test_a_clip_whose_headers_are_all_bad_is_dropped_at_scan_time(tmp_path, capsys):
    data = make_clips(tmp_path / "data", n_clips=2, n_frames=4, size=(32, 40))
    for frame in (data / "clip001").iterdir():
        garbage(frame)
    clips = scan_clips(data, min_frames=3, min_size=32)
    assert [c.path.name for c in clips] == ["clip000"]
    assert "clip001 skipped: none of its frames is a readable image" in capsys.readouterr().err
    for frame in (data / "clip000").iterdir():
        garbage(frame)
    with pytest.raises(UserError, match=r"no usable clips.*clip000 \(no readable frame"):
        scan_clips(data, min_frames=3, min_size=32)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_a_set_with_nothing_readable_left_is_a_one_line_error(tmp_path, workers):
    data = make_clips(tmp_path / "data", n_clips=2, n_frames=4, size=(32, 40))
    for frame in data.glob("*/*.png"):
        truncate(frame)  # headers read, so the scan keeps them; every decode fails
    done = train_command(data, tmp_path / "run", workers, steps=2)
    assert done.returncode == 1, done.stderr
    # (another worker's warning may still come after the error line)
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("realbasicvsr train: error:")]
    assert line.startswith("realbasicvsr train: error: no readable training window is left"), done.stderr
    assert "Traceback" not in done.stderr and "DataLoader worker" not in line
    assert "2 of 2 clips have no readable frame" in line


@pytest.mark.slow
def test_metrics_jsonl_holds_each_step_once_after_a_resume(tmp_path):
    """A run that logged steps 1-3 but whose newest kept checkpoint is step 2: the resumed run replays step 3 and
    its records replace the old ones from there (the old code wrote 1, 2, 3, 3, 4)."""
    data = make_clips(tmp_path / "data", n_clips=2, n_frames=4, size=(32, 40))
    run_dir = tmp_path / "run"
    checkpoints = CheckpointConfig(every=2, keep=5)
    train(replace(config(0), checkpoint=checkpoints), data, run_dir, max_steps=3, stream=io.StringIO())
    assert [r["step"] for r in records(run_dir)] == [1, 2, 3]
    old_step3 = records(run_dir)[2]
    list_checkpoints(run_dir)[-1].unlink()  # as if killed after logging step 3, before its checkpoint
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 3, "pix": 0.1')  # and a record cut by the kill
    log = io.StringIO()
    result = train(replace(config(0), checkpoint=checkpoints), data, run_dir, max_steps=4, resume="auto", stream=log)
    assert result.step == 4 and "resumed from" in log.getvalue()
    steps = [r["step"] for r in records(run_dir)]
    assert steps == [1, 2, 3, 4]
    assert records(run_dir)[2]["time"] > old_step3["time"]  # step 3 is the resumed run's record
    assert records(run_dir)[2]["pix"] == old_step3["pix"]  # ... and the replay computed the same loss


def write_pred(folder: Path) -> Path:
    (folder / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / "a" / f"{index}.png")
    return folder


def test_evaluate_refuses_a_params_dir_without_the_parameter_files(tmp_path, capsys, monkeypatch):
    pred = write_pred(tmp_path / "pred")
    (tmp_path / "wrong").mkdir()
    (tmp_path / "wrong" / "readme.txt").write_text("not the parameter files")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no cached copy to fall back on either
    cases = [
        (["--params-dir", str(tmp_path / "wrong"), "--metrics", "brisque"], "brisque/allmodel not found in"),
        (["--params-dir", str(tmp_path / "wrong"), "--metrics", "niqe"], "niqe/modelparameters.mat not found in"),
        (["--params-dir", str(tmp_path / "missing"), "--metrics", "niqe"], "does not exist or is not a folder"),
        (["--params-dir", str(pred / "a" / "0.png"), "--metrics", "psnr", "--gt", str(pred)], "is not a folder"),
    ]
    for extra, message in cases:
        assert main(["evaluate", str(pred), *extra]) == 1
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert lines[-1].startswith("realbasicvsr evaluate: error:") and message in lines[-1], err
        assert "(set with --params-dir)" in lines[-1] and "Traceback" not in err


def test_evaluate_json_or_csv_at_a_folder_is_one_line_before_scoring(tmp_path, capsys):
    pred = write_pred(tmp_path / "pred")
    (tmp_path / "reports").mkdir()
    (tmp_path / "afile").write_text("x")
    cases = [
        (["--json", str(tmp_path / "reports")], "is a folder; give a file name for the json report"),
        (["--csv", str(tmp_path / "reports")], "is a folder; give a file name for the csv report"),
        (["--json", str(tmp_path / "afile" / "scores.json")], "afile is a file, not a folder"),
    ]
    for extra, message in cases:
        assert main(["evaluate", str(pred), "--gt", str(pred), "--metrics", "psnr", *extra]) == 1
        out, err = capsys.readouterr()
        assert err.strip().splitlines()[-1].startswith("realbasicvsr evaluate: error:") and message in err, err
        assert "Traceback" not in err and "protocol:" not in out  # refused before anything was scored
    assert (
        main(["evaluate", str(pred), "--gt", str(pred), "--metrics", "psnr", "--json", str(tmp_path / "s.json")]) == 0
    )
    assert json.loads((tmp_path / "s.json").read_text())
