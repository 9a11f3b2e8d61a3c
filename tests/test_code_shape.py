"""The shape rules of the code, held by a test: no class over 300 lines, no constructor over 7 arguments (a class that
grows past them is doing several things; a constructor that takes many values wants a settings object or a RunContext)."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

MAX_CLASS_LINES = 300
MAX_INIT_ARGS = 7


def test_no_class_is_over_300_lines_and_no_constructor_takes_more_than_7_arguments():
    too_long, too_many = [], []
    for path in sorted([*(ROOT / "compressor").rglob("*.py"), *(ROOT / "backends").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
            if node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"{where} ({node.end_lineno - node.lineno + 1} lines)")
            init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
            if init is not None:
                n = len(init.args.args) - 1 + len(init.args.kwonlyargs) + len(init.args.posonlyargs)
                if n > MAX_INIT_ARGS:
                    too_many.append(f"{where} ({n} arguments)")
    assert not too_long and not too_many, (too_long, too_many)
