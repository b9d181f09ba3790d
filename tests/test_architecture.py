"""The shape rules of the package (docs/architecture.md), checked on its source so that CI holds them: one file-access
layer (only core/fs.py tells a URL from a path), formats that never learn the engine, no C sources, no module over
500 lines."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "datatools"
MODULES = sorted(PKG.rglob("*.py"))


def _url_tests(tree: ast.AST) -> list[int]:
    """Lines that test a string for ``://``: ``"://" in x``, ``x.startswith("s3://")``, ``re.compile(".*://")``."""
    def has_scheme(node) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and "://" in node.value

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            if has_scheme(node.left) or any(has_scheme(c) for c in node.comparators):
                found.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "startswith", "endswith", "find", "index", "compile", "match", "search", "fullmatch"):
            if any(has_scheme(a) for a in node.args):
                found.append(node.lineno)
    return found


def test_only_core_fs_tells_a_url_from_a_path():
    fs = PKG / "core" / "fs.py"
    assert _url_tests(ast.parse(fs.read_text())), "the check itself finds core/fs.py's own test"
    offenders = {str(p.relative_to(PKG)): lines for p in MODULES if p != fs
                 for lines in [_url_tests(ast.parse(p.read_text()))] if lines}
    assert not offenders, f"use datatools.core.fs.is_url instead: {offenders}"


def test_formats_never_learn_the_engine():
    for path in sorted((PKG / "formats").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"^\s*(import ray|from ray)", text, re.M), path
        assert "datatools.core.engine" not in text and "engine=" not in text, path  # the Mapper carries it


def test_no_c_sources_and_no_module_over_500_lines():
    assert not list(PKG.rglob("*.c"))
    long = {str(p.relative_to(PKG)): n for p in MODULES for n in [len(p.read_text().splitlines())] if n > 500}
    assert not long
