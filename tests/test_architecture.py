"""The shape of the package: the import map between wings (no cycles, the doc matches the code), PyAV only in the
media layer, and module sizes. The scan is scripts/import_map.py, the same code that draws docs/architecture.md."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "realbasicvsr"
MAX_MODULE_LINES = 400
# av.open is for reading and writing media; degrade/codec.py is an in-memory codec round trip of the degradations.
AV_ALLOWED = ("media/", "degrade/codec.py")


def _load_import_map():
    spec = importlib.util.spec_from_file_location("import_map", REPO / "scripts" / "import_map.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


import_map = _load_import_map()


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_import_cycles_between_wings():
    edges = import_map.wing_edges()
    assert import_map.find_cycles(edges) == [], f"import cycles between wings: {import_map.find_cycles(edges)}"


def test_architecture_doc_shows_the_import_map_of_the_code():
    text = import_map.DOC.read_text(encoding="utf-8")
    section = import_map.doc_section(text)
    assert section is not None, "docs/architecture.md lost its import-map markers"
    assert section == import_map.generated_section(import_map.wing_edges()), (
        "docs/architecture.md's import map is out of date: run `python scripts/import_map.py --write`"
    )


def test_ground_floor_and_shell_rules():
    edges = import_map.wing_edges()
    allowed = {"errors": set(), "models": {"errors"}, "media": {"errors"}, "degrade": {"errors", "media"}}
    for wing, may_import in allowed.items():
        extra = edges.get(wing, set()) - may_import
        assert not extra, f"{wing} is on the ground floor but imports {sorted(extra)}"
    importers = {w for w, targets in edges.items() if targets & {"cli", "commands"}}
    assert importers <= {"cli"}, f"only cli.py may import the command layer, not {sorted(importers - {'cli'})}"


def test_the_scan_sees_lazy_and_dynamic_imports():
    """Imports inside functions and the CLI's importlib table are edges too, so the map cannot miss them."""
    edges = import_map.wing_edges()
    assert "commands" in edges["cli"]  # importlib.import_module(f"realbasicvsr.commands.{name}")
    assert "train" in edges["commands"]  # commands import their library inside run()


def av_uses(path: Path) -> list[int]:
    """Lines of `path` that import PyAV or call `av.open`."""

    def uses_av(node: ast.AST) -> bool:
        if isinstance(node, ast.Import):
            return any(alias.name.split(".")[0] == "av" for alias in node.names)
        if isinstance(node, ast.ImportFrom):
            return not node.level and (node.module or "").split(".")[0] == "av"
        return isinstance(node, ast.Attribute) and node.attr == "open" and getattr(node.value, "id", None) == "av"

    return sorted({node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if uses_av(node)})


def test_pyav_only_in_the_media_layer():
    offenders = {}
    for path in sources():
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(AV_ALLOWED):
            continue
        if found := av_uses(path):
            offenders[relative] = found
    assert not offenders, f"PyAV used outside media/ and degrade/codec.py (file: lines): {offenders}"


@pytest.mark.parametrize("path", sources(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_module_size(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)} has {lines} lines; split it by meaning"
