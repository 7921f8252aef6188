"""Imports go one way (STYLE.md, "Dependency direction"): `store` and `knowledge` import
neither `bot` nor `actions`, `knowledge` not `store` either, and `bot` never imports `actions`."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"store": {"bot", "actions"}, "knowledge": {"bot", "actions", "store"}}
FORBIDDEN["bot"] = {"actions"}


def _imported(path: Path) -> set[str]:
    """Top-level package names a module imports, lazily imported ones included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_go_one_way(layer: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imported(path) & FORBIDDEN[layer])
        for path in sorted((ROOT / layer).rglob("*.py"))
    }
    assert {path: names for path, names in wrong.items() if names} == {}
