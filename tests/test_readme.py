"""The README is a first page that works: its training code runs, it stays short, and its links lead somewhere.

The documentation pages under docs/ are checked for dead relative links, and docs/check.md for every finding code
the package can emit, so the pages cannot quietly fall behind the code.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 200
EXAMPLE_HEADING = "## Training code"

# [text](target): relative targets only; web links and pure anchors are not files.
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A finding is made by err/warn/info("code", ...) or Finding("code", ...); codes are lower-case kebab-case.
_FINDING_CALL = re.compile(r"\b(?:err|warn|info|Finding)\(\s*\"([a-z][a-z0-9]*(?:-[a-z0-9]+)+)\"")


def python_block_after(text: str, heading: str) -> str:
    """The first ```python block after ``heading`` (a whole line of the README)."""
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        raise AssertionError(f"README.md has no line {heading!r}") from None
    block: list[str] | None = None
    for line in lines[start + 1:]:
        if block is None:
            if line.startswith("## "):
                break
            if line.strip() == "```python":
                block = []
        elif line.strip() == "```":
            return "\n".join(block) + "\n"
        else:
            block.append(line)
    raise AssertionError(f"no complete ```python block under {heading!r} in README.md")


def relative_links(path: Path) -> list[str]:
    out = []
    for target in _LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        out.append(target.split("#", 1)[0])
    return out


def test_readme_is_at_most_200_lines() -> None:
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail into docs/ (limit {MAX_README_LINES})"


@pytest.mark.parametrize("page", sorted([README, *DOCS.glob("*.md")]), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files(page: Path) -> None:
    links = relative_links(page)
    missing = [t for t in links if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_readme_links_every_docs_page() -> None:
    linked = {(ROOT / t).resolve() for t in relative_links(README)}
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "docs/ holds no pages"
    orphans = [p.name for p in pages if p.resolve() not in linked]
    assert not orphans, f"docs pages the README does not link: {orphans}"
    assert any(t.startswith("docs/") for t in relative_links(README))


def test_check_page_documents_every_finding_code() -> None:
    emitted: set[str] = set()
    for path in (ROOT / "datatools").rglob("*.py"):
        emitted.update(_FINDING_CALL.findall(path.read_text(encoding="utf-8")))
    from datatools.ops.sanitize import box_problem  # the box codes come back from one function, not a call above

    emitted.update(c for c in (box_problem((2, 2, 1, 1), 10, 10), box_problem((1, 1, 1, 5), 10, 10),
                               box_problem((20, 20, 30, 30), 10, 10), box_problem((-5, 1, 5, 5), 10, 10)) if c)
    assert len(emitted) > 30, f"the scan found only {sorted(emitted)}; did the finding helpers get renamed?"
    page = (DOCS / "check.md").read_text(encoding="utf-8")
    undocumented = sorted(c for c in emitted if f"`{c}`" not in page)
    assert not undocumented, f"finding codes missing from docs/check.md: {undocumented}"


@pytest.mark.parametrize("start", [None, "spawn"])
def test_readme_training_code_runs(tmp_path: Path, start: str | None) -> None:
    """As written, and where processes are spawned (macOS, Windows; forkserver from Python 3.14): there the dataset
    read its annotations on a process pool, whose children re-ran the script (no main guard) and died."""
    code = python_block_after(README.read_text(encoding="utf-8"), EXAMPLE_HEADING)
    assert "from datatools.datasets import" in code and "collate" in code
    script = tmp_path / "readme_example.py"
    head = f"import multiprocessing\nmultiprocessing.set_start_method({start!r}, force=True)\n" if start else ""
    script.write_text(head + code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, f"the README example failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    losses = [float(v) for v in re.findall(r"^step \d+: loss (\S+)$", proc.stdout, flags=re.M)]
    assert len(losses) == 2, proc.stdout
    assert all(math.isfinite(v) and v > 0 for v in losses), losses
