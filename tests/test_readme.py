"""The README and the manuals in docs/ say only what the code does.

Every command in a fenced bash block of README.md is checked offline: `realbasicvsr ...` (also under `torchrun
-m realbasicvsr` or `python -m realbasicvsr`) is parsed with the real argument parser, so a flag that does not exist
fails here; `make` targets and variables exist in the Makefile; `pip install ".[extra]"` extras exist in
pyproject.toml; `python benchmarks/...`/`scripts/...` files exist and know the flags given to them. The docs' bash
blocks get the `realbasicvsr` check. Every python block compiles and its `realbasicvsr` imports resolve; the
README's Python example runs on a tiny clip with the bundled weights. Backticked `realbasicvsr.x.y` names, repo
paths and relative links must exist.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
from fractions import Fraction
from pathlib import Path

import pytest

from realbasicvsr.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, REPO / "CONTRIBUTING.md", *DOCS]
SHELL = {"bash", "sh", "shell", "console", ""}  # an untagged block in docs/ holds commands too

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(path: Path, languages: set[str]) -> list[str]:
    """The bodies of the fenced code blocks of `path` whose language tag is in `languages`."""
    return [body for lang, body in FENCE.findall(path.read_text(encoding="utf-8")) if lang in languages]


def commands(block: str) -> list[list[str]]:
    """Shell commands of a block as token lists: continuations joined, comments and `VAR=value` prefixes dropped."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", tokens[0]):
            tokens.pop(0)
        if tokens:
            found.append(tokens)
    return found


def cli_argv(tokens: list[str]) -> list[str] | None:
    """The arguments given to the realbasicvsr CLI, or None when the command is something else."""
    if tokens[0] == "realbasicvsr":
        return tokens[1:]
    for i in range(len(tokens) - 1):
        if tokens[i] == "-m" and tokens[i + 1] == "realbasicvsr" and tokens[0] in ("torchrun", "python", "python3"):
            return tokens[i + 2 :]
    return None


def parse_error(argv: list[str]) -> str | None:
    """None if argparse accepts `argv` (files need not exist), else its error message."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as stop:
        return None if stop.code == 0 else stderr.getvalue().strip().splitlines()[-1]
    return None


def makefile() -> tuple[set[str], set[str]]:
    """(targets, variables) of the Makefile."""
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w.-]+)\s*:(?!=)", text, re.M))
    variables = set(re.findall(r"^([A-Z_]+)\s*[?:]?=", text, re.M))
    return targets, variables


def extras() -> set[str]:
    """The optional-dependency groups of pyproject.toml."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return set(project["optional-dependencies"])


def check_command(tokens: list[str]) -> str | None:
    """None if the command is right, else what is wrong with it. Unknown kinds of commands are reported too."""
    line = " ".join(tokens)
    argv = cli_argv(tokens)
    if argv is not None:
        error = parse_error(argv)
        return f"`{line}`: {error}" if error else None
    if tokens[:2] in (["pip", "install"], ["python", "-m"]) and "install" in tokens:
        wanted = {e for t in tokens for group in re.findall(r"\[([\w,-]+)\]", t) for e in group.split(",")}
        missing = wanted - extras()
        return f"`{line}`: no extra {sorted(missing)} in pyproject.toml" if missing else None
    if tokens[0] == "make":
        targets, variables = makefile()
        wrong = [t for t in tokens[1:] if "=" not in t and t not in targets]
        wrong += [t.split("=")[0] for t in tokens[1:] if "=" in t and t.split("=")[0] not in variables]
        return f"`{line}`: not in the Makefile: {wrong}" if wrong else None
    if tokens[0] in ("python", "python3") and len(tokens) > 1 and tokens[1].endswith(".py"):
        script = REPO / tokens[1]
        if not script.is_file():
            return f"`{line}`: {tokens[1]} does not exist"
        source = script.read_text(encoding="utf-8")
        unknown = [t.split("=")[0] for t in tokens[2:] if t.startswith("--") and f'"{t.split("=")[0]}"' not in source]
        return f"`{line}`: {tokens[1]} has no option {unknown}" if unknown else None
    if tokens[0] in ("cd", "git", "mkdir"):
        return None
    return f"`{line}`: tests/test_readme.py does not know how to check this command; add a rule"


def test_every_readme_command_is_right():
    found = [tokens for block in blocks(README, SHELL - {""}) for tokens in commands(block)]
    assert any(cli_argv(t) == ["upscale", "in.mp4", "out.mp4"] for t in found), "the first upscale command is gone"
    problems = [p for p in map(check_command, found) if p]
    assert not problems, "\n".join(problems)


def test_first_upscale_command_is_near_the_top():
    lines = README.read_text(encoding="utf-8").splitlines()
    first = next(i for i, line in enumerate(lines, 1) if line.startswith("realbasicvsr upscale"))
    assert first <= 40, f"the first `realbasicvsr upscale` is on line {first}"
    assert len(lines) <= 160, f"README.md has {len(lines)} lines; move material into docs/"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_docs_cli_commands_parse(page):
    found = [t for block in blocks(page, SHELL) for t in commands(block) if cli_argv(t) is not None]
    problems = [p for p in map(check_command, found) if p]
    assert not problems, "\n".join(problems)


def test_readme_subcommands_have_help(capsys):
    found = {cli_argv(t)[0] for block in blocks(README, SHELL) for t in commands(block) if cli_argv(t)}
    for name in sorted(found):
        with pytest.raises(SystemExit) as stop:
            build_parser().parse_args([name, "--help"])
        assert stop.value.code == 0
        assert f"usage: realbasicvsr {name}" in capsys.readouterr().out


def test_a_wrong_flag_or_extra_is_caught():
    """The checks above can fail: a flag, an extra and a make target that do not exist are all reported."""
    block = 'realbasicvsr upscale in.mp4 out.mp4 --no-such-flag\npip install -e ".[export]"\nmake deploy\n'
    problems = [check_command(t) for t in commands(block)]
    assert all(problems), problems
    assert "--no-such-flag" in problems[0] and "export" in problems[1] and "deploy" in problems[2]


def names_imported(code: str) -> list[tuple[str, str | None]]:
    """(module, name) for every `from realbasicvsr... import name` / `import realbasicvsr...` in `code`."""
    import ast

    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("realbasicvsr"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name.startswith("realbasicvsr")]
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_compile_and_their_imports_exist(page):
    for code in blocks(page, {"python"}):
        compile(code, str(page), "exec")
        for module, name in names_imported(code):
            imported = importlib.import_module(module)
            assert name is None or hasattr(imported, name), f"{page.name}: {module} has no {name}"


def resolve(dotted: str) -> bool:
    """True if `dotted` is a module of the package or an attribute reachable from one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_names_paths_and_links_exist(page):
    text = page.read_text(encoding="utf-8")
    names = {n for n in re.findall(r"`(realbasicvsr(?:\.\w+)+)", text) if not n.endswith(".py")}  # not a file
    assert not [n for n in sorted(names) if not resolve(n)], f"{page.name} names what the code does not have"
    paths = set(re.findall(r"`((?:src|tests|benchmarks|scripts|docs|configs)/[\w./*-]+)", text))
    assert not [p for p in sorted(paths) if not list(REPO.glob(p))], f"{page.name}: missing paths"
    links = [link for link in re.findall(r"\]\(([^)#\s]+)", text) if not re.match(r"\w+:", link)]
    assert not [link for link in links if not (page.parent / link).exists()], f"{page.name}: broken links"


def make_clip(path: Path, frames: int = 6, size: int = 32) -> Path:
    """A small H.264 clip of moving noise, written with PyAV."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size, size + frames, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.ascontiguousarray(base[:, i : i + size])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def readme_example() -> str:
    """The README's Python example: the python block that calls `upscale_video`."""
    examples = [code for code in blocks(README, {"python"}) if "upscale_video(" in code]
    assert len(examples) == 1, "README.md should have one Python example that calls upscale_video"
    return examples[0]


def test_readme_python_example_runs(tmp_path, monkeypatch, one_thread):
    from realbasicvsr.weights import bundled_weights_path

    code = readme_example()
    bundled = bundled_weights_path()
    if bundled is None:
        pytest.skip("the bundled compact weights are not installed")
    # Offline: the official release name becomes the bundled file, the paths a tiny clip of this test.
    substitutions = {
        '"realbasicvsr_x4"': repr(str(bundled)),
        '"in.mp4"': repr(str(make_clip(tmp_path / "in.mp4"))),
        '"out.mp4"': repr(str(tmp_path / "out.mp4")),
    }
    for old, new in substitutions.items():
        assert old in code, f"the README example no longer uses {old}; update the substitutions here"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    assert (tmp_path / "out.mp4").stat().st_size > 0
