"""The shape of the package (docs/dev/README.md): the data flow of the imports, small files, short
functions. Read from the source, so a change that breaks a rule fails here, naming the place."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bids_amyloid"
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 60

LAYER = {
    "errors": 0, "config": 1, "logs": 1, "bids": 2, "space": 2, "synth": 2, "models": 3,
    "preprocess": 4, "train": 4, "infer": 4, "report": 5, "workflows": 6, "cli": 7, "__main__": 8,
}
"""A module may import only from layers below its own: the stages of one layer (preprocess, train,
infer) never import each other, nothing imports the workflows but the CLI."""


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(PACKAGE.rglob("*.py"))]


def _unit(path: Path) -> str:
    """The top-level subpackage or module a file belongs to."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imported_units(tree: ast.Module) -> set[str]:
    units = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bids_amyloid":
            parts = node.module.split(".")
            units |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names if a.name in LAYER}
        elif isinstance(node, ast.Import):
            units |= {a.name.split(".")[1] for a in node.names if a.name.startswith("bids_amyloid.")}
    return units


def test_imports_follow_the_data_flow():
    wrong = []
    for path, tree in _sources():
        unit = _unit(path)
        if unit == "__init__":
            continue
        for other in _imported_units(tree) - {unit}:
            if LAYER[other] >= LAYER[unit]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {other} (layer {LAYER[other]} >= {LAYER[unit]})")
    assert not wrong, wrong
    assert set(LAYER) == {_unit(p) for p, _ in _sources()} - {"__init__"}, "a new unit needs its layer here"


def test_files_are_small():
    long = [f"{p.relative_to(PACKAGE)}: {n} lines" for p, _ in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]
    assert not long, long


def test_functions_are_short():
    """Body length without the docstring."""
    long = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                has_doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and len(body) > 1
                first = body[1] if has_doc else body[0]
                n = node.end_lineno - first.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {n} lines")
    assert not long, long
