"""Where the metrics' parameter files come from. They are never part of this repository.

Lookup order for a file such as `niqe/modelparameters.mat`:
1. the folder given as `params_dir=` (or `--params-dir` on the command line);
2. the folder in the environment variable REALBASICVSR_IQA_DIR;
3. the download cache (`$XDG_CACHE_HOME/realbasicvsr/iqa`, default `~/.cache/realbasicvsr/iqa`), filled on
   first use from the public source pinned below and checked against its sha256.
The folder layout is the same everywhere: `niqe/`, `brisque/`, `nrqm/`.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from realbasicvsr.errors import UserError
from realbasicvsr.media.files import atomic_output

ENV_VAR = "REALBASICVSR_IQA_DIR"


@dataclass(frozen=True)
class ParamSource:
    """A parameter file's public origin and the sha256 of its exact bytes."""

    url: str
    sha256: str


# Pinned commits, so that the checksums stay valid. See docs/metrics.md for the licences.
SOURCES: dict[str, ParamSource] = {
    "niqe/modelparameters.mat": ParamSource(
        "https://raw.githubusercontent.com/roimehrez/PIRM2018/d585552a22b4eb95ddcb23a6edb74a0a3a5d6fbf/"
        "utils/niqe_release/modelparameters.mat",
        "fa2aa4d12dd9595c3fb6bf8b4e1a15c79d5d1469238d0901c88dead195be578d",
    ),
    "brisque/allmodel": ParamSource(
        "https://raw.githubusercontent.com/utlive/BRISQUE/2e2a5ac04cd4b73ac0f5867de5b974581fa2d4d2/MATLAB/allmodel",
        "8b04d6045f1b27261610c8ab1730fdcc14ec80bfab0f1ab5f703bbc2927314de",
    ),
    "brisque/allrange": ParamSource(
        "https://raw.githubusercontent.com/utlive/BRISQUE/2e2a5ac04cd4b73ac0f5867de5b974581fa2d4d2/MATLAB/allrange",
        "e47d753d96b631e1aa2dbac8c4e51ade767f2def8ce678c7130b6b3f90ee915f",
    ),
}

# NRQM's model.mat (chaoma99/sr-metric, MIT) has no checksum we could verify, so it is never downloaded
# silently; the user points to a copy instead.
NRQM_MODEL = "nrqm/model.mat"
NRQM_HELP = (
    "get model.mat from https://github.com/chaoma99/sr-metric (MIT licence) and put it at "
    f"<params dir>/{NRQM_MODEL} (params dir = the params_dir setting or ${ENV_VAR}), "
    "or give its path as model_path"
)


def cache_dir() -> Path:
    """The download cache for parameter files."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "realbasicvsr" / "iqa"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _search_dirs(params_dir: str | Path | None) -> list[Path]:
    dirs = []
    if params_dir is not None:
        dirs.append(Path(params_dir))
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs.append(cache_dir())
    return dirs


def download(name: str, target: Path) -> Path:
    """Fetch `name` from its pinned source into `target`, checking the sha256 before the file is renamed in."""
    source = SOURCES[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Committed only when the checksum matches: a wrong or cut download never takes the file's name.
        with atomic_output(target) as tmp:
            with open(tmp, "wb") as out, urllib.request.urlopen(source.url, timeout=60) as response:
                out.write(response.read())
            got = sha256_of(tmp)
            if got != source.sha256:
                raise UserError(f"download of {source.url} has sha256 {got}, expected {source.sha256}; not used")
    except (urllib.error.URLError, TimeoutError) as error:
        raise UserError(
            f"cannot download {name} from {source.url} ({error}); put the file into a folder and give it as "
            f"params_dir, or set {ENV_VAR}",
            option="params_dir",
        ) from error
    return target


def param_file(name: str, params_dir: str | Path | None = None, allow_download: bool = True) -> Path:
    """Path of parameter file `name` (e.g. "brisque/allmodel"); downloads it into the cache when missing.

    A `params_dir` that is given is the only place looked at: a wrong folder is an error, never silently replaced
    by the environment's folder or the download cache (the scores would come from other files than asked for).
    """
    if params_dir is not None:
        return _given_dir_file(name, Path(params_dir))
    for folder in _search_dirs(params_dir):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    if name == NRQM_MODEL:
        raise UserError(
            f"NRQM/PI need the model file {NRQM_MODEL}, which was not found; {NRQM_HELP}", option="model_path"
        )
    if name not in SOURCES or not allow_download:
        searched = ", ".join(str(d) for d in _search_dirs(params_dir))
        raise UserError(
            f"parameter file {name} not found in {searched}; give its folder as params_dir, or set {ENV_VAR}",
            option="params_dir",
        )
    return download(name, cache_dir() / name)


def _given_dir_file(name: str, params_dir: Path) -> Path:
    if not params_dir.is_dir():
        raise UserError(
            f"parameter file {name} not found: the parameter folder {params_dir} does not exist or is not a "
            "folder; give its folder as params_dir (the folder holding niqe/, brisque/ and nrqm/)",
            option="params_dir",
        )
    candidate = params_dir / name
    if candidate.is_file():
        return candidate
    if name == NRQM_MODEL:
        raise UserError(f"NRQM/PI need {candidate}, which does not exist; {NRQM_HELP}", option="model_path")
    raise UserError(
        f"parameter file {name} not found in the parameter folder {params_dir} (no {candidate}); give its folder "
        "as params_dir (the folder holding niqe/, brisque/ and nrqm/)",
        option="params_dir",
    )
