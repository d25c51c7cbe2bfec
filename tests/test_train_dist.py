"""A 2-process gloo run started by torchrun: both ranks end with identical networks; rank 0 alone writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from test_train_data import make_clips

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import io, os, sys
    from dataclasses import replace
    import torch
    sys.path.insert(0, {tests!r})
    from test_train_data import tiny_config
    from realbasicvsr.train.config import CheckpointConfig, LossConfig
    from realbasicvsr.train.loop import train

    config = tiny_config(loss=LossConfig(gan_weight=0.05, discriminator_channels=8),
                         checkpoint=CheckpointConfig(every=2, keep=2))
    result = train(config, {data!r}, {run!r}, max_steps=3, device="cpu")
    rank = os.environ["RANK"]
    torch.save({{"generator": result.generator.state_dict(), "ema": result.generator_ema.state_dict()}},
               os.path.join({out!r}, "rank" + rank + ".pt"))
    """
)


@pytest.mark.slow
@pytest.mark.dist
def test_two_gloo_processes_end_with_identical_parameters(tmp_path):
    data = make_clips(tmp_path / "data", n_clips=3, n_frames=4, size=(32, 40))
    run_dir, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(tests=str(REPO / "tests"), data=str(data), run=str(run_dir), out=str(out)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key in ("generator", "ema"):
        assert all(torch.equal(rank0[key][k], rank1[key][k]) for k in rank0[key]), key
    initial = torch.load(run_dir / "checkpoints" / "step_00000002.pt", weights_only=True)["generator"]
    assert not torch.equal(initial["basicvsr.conv_last.weight"], rank0["generator"]["basicvsr.conv_last.weight"])
    # rank 0 alone logs: one progress line per step, one JSON record per step
    assert done.stderr.count("step 3/3") == 1
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3
    assert "2 process(es) on cpu, batch 2 (1 per process)" in done.stderr
