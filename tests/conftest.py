"""Shared fixtures. Third-party reference files are read from ../shared and never copied here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("REALBASICVSR_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared; skips the calling test with a clear reason when it is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference file {path} is not available (set REALBASICVSR_SHARED to the shared/ folder)")
    return path


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy shared CPU OpenMP spin-waits make them much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_checkpoint() -> Path:
    """The official-format c16b2 checkpoint of ../shared/refvectors."""
    return shared_path("refvectors", "small_c16b2_checkpoint.pth")
