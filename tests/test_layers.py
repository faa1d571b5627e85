"""The package reads top-down: each layer imports only the layers below it, only through `printroom.*`, and
never another module's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Higher imports lower, never the reverse; workflows and activities are peers that never import each other
# (a workflow calls activities by their registered names, so its sandbox never loads SMTP or Jinja).
LAYERS = {"cli": 5, "web": 4, "worker": 3, "workflows": 2, "activities": 2, "printroom": 1, "statemachines": 0, "templates": 0}
OWN_FOLDERS = {"workflows", "activities", "statemachines", "templates", "worker", "web", "cli"}
# The one exception, by design: `printroom.PrintroomPlugin` is a lazy re-export of printroom.worker.plugin.
ALLOWED = {("printroom", "printroom.worker.plugin")}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in OWN_FOLDERS else "printroom"


def modules() -> list[tuple[str, Path]]:
    """Every module of the package, named as it is imported, read from the real folders (printroom/ links them)."""
    found = [(_name("printroom", p.relative_to(ROOT / "printroom")), p) for p in (ROOT / "printroom").glob("*.py")]
    for folder in sorted(OWN_FOLDERS):
        found += [(_name(f"printroom.{folder}", p.relative_to(ROOT / folder)), p) for p in (ROOT / folder).rglob("*.py")]
    return found


def _name(package: str, relative: Path) -> str:
    parts = [*relative.parent.parts, relative.stem]
    return ".".join([package, *(p for p in parts if p not in ("__init__", "."))])


def imports_of(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(absolute module, names taken from it, line) for every import, relative ones resolved."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [alias.name for alias in node.names]
            found.append((base, names, node.lineno))
            # `from printroom import worker` imports the module printroom.worker.
            found += [(f"{base}.{n}", [], node.lineno) for n in names if base == "printroom" and n in OWN_FOLDERS]
    return found


@pytest.mark.parametrize("module,path", modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_run_downward_through_the_printroom_namespace_and_skip_private_names(module: str, path: Path):
    mine = layer_of(module)
    for imported, names, line in imports_of(module, path):
        top = imported.split(".")[0]
        assert top not in OWN_FOLDERS, f"{path.name}:{line} imports {imported!r}; write printroom.{imported}"
        if top != "printroom" or imported == "printroom" or (module, imported) in ALLOWED:
            continue
        private = [n for n in names if n.startswith("_") and n != "__future__"]
        assert not private, f"{module} imports the private name(s) {private} of {imported} at line {line}"
        theirs = layer_of(imported)
        assert LAYERS[theirs] < LAYERS[mine] or theirs == mine, (
            f"{module} ({mine}) imports {imported} ({theirs}) at line {line}: imports only run downward"
        )


def test_the_check_sees_every_layer_and_resolves_what_it_must_refuse(tmp_path: Path):
    assert {layer_of(m) for m, _ in modules()} == set(LAYERS)
    upward = tmp_path / "table.py"
    upward.write_text("from ..worker import plugin\nfrom printroom import worker\nfrom .order import _private\n")
    found = imports_of("printroom.statemachines.table", upward)
    assert ("printroom.worker", ["plugin"], 1) in found
    assert ("printroom.worker", [], 2) in found
    assert ("printroom.statemachines.order", ["_private"], 3) in found
