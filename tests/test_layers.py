"""The layers of docs/architecture.md hold: no import from a lower layer to a higher one, no import circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "resnet"


def test_layers_contract_is_kept():
    """import-linter's layers contract in pyproject.toml, with every import counted (lazy ones too)."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def _cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in imports.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle_between_modules():
    graph = grimp.build_graph("resnet")
    # A package's __init__ re-exporting its own modules is not a circle of the code; its modules
    # importing one another through it would be, and shows up between the modules themselves.
    imports = {
        m: {i for i in graph.find_modules_directly_imported_by(m) if not m.startswith(i + ".")} for m in graph.modules
    }
    assert _cycles(imports) == []


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_internal_modules_do_not_import_the_front_door():
    """``from resnet import X`` inside the package only for submodules (and the version, for the CLI)."""
    submodules = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if not p.name.startswith("__")}
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "resnet" and node.level == 0:
                names = {a.name for a in node.names} - submodules - {"__version__"}
                if names:
                    offenders.append(f"{path.relative_to(SRC)}: from resnet import {', '.join(sorted(names))}")
    assert offenders == []
