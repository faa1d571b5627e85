"""The package reads top-down: each layer imports only the layers below it, and only through `printroom.*`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Higher imports lower, never the reverse; workflows and activities are peers that never import each other
# (a workflow calls activities by their registered names, so its sandbox never loads SMTP or Jinja).
LAYERS = {"cli": 4, "worker": 3, "workflows": 2, "activities": 2, "printroom": 1, "statemachines": 0, "templates": 0}
OWN_FOLDERS = {"workflows", "activities", "statemachines", "templates", "worker", "cli"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in OWN_FOLDERS else "printroom"


def modules() -> list[tuple[str, Path]]:
    found = [("printroom." + p.stem, p) for p in (ROOT / "printroom").glob("*.py") if p.stem != "__init__"]
    for folder in sorted(OWN_FOLDERS):
        found += [(f"printroom.{folder}.{p.stem}", p) for p in (ROOT / folder).glob("*.py")]
    return found


def imports_of(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append((node.module, node.lineno))
    return names


@pytest.mark.parametrize("module,path", modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_run_downward_and_only_through_the_printroom_namespace(module: str, path: Path):
    mine = layer_of(module)
    for imported, line in imports_of(path):
        top = imported.split(".")[0]
        assert top not in OWN_FOLDERS, f"{path.name}:{line} imports {imported!r}; write printroom.{imported}"
        if top != "printroom" or imported == "printroom":
            continue
        theirs = layer_of(imported)
        assert LAYERS[theirs] < LAYERS[mine] or theirs == mine, (
            f"{module} ({mine}) imports {imported} ({theirs}) at line {line}: imports only run downward"
        )


def test_the_check_sees_every_layer():
    seen = {layer_of(m) for m, _ in modules()}
    assert seen == set(LAYERS)
