"""Shared CLI pieces: options used by several commands, progress bars, tables and error translation."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Callable, Iterator

import click

from datatools.core.errors import DatatoolsError, StrictModeError, UsageError


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


@contextlib.contextmanager
def errors_to_click() -> Iterator[None]:
    """Turn library errors into clean messages: usage problems exit 2, data problems exit 1. Never a traceback."""
    try:
        yield
    except StrictModeError as e:
        lines = [str(e)]
        for f in e.findings[:20]:
            lines.append(f"  {f.path}: {f.field}: [{f.code}] {f.message}")
        if len(e.findings) > 20:
            lines.append(f"  ... and {len(e.findings) - 20} more")
        raise click.ClickException("\n".join(lines)) from e
    except UsageError as e:
        raise click.UsageError(str(e)) from e
    except DatatoolsError as e:
        raise click.ClickException(str(e)) from e


@contextlib.contextmanager
def stage_progress(enabled: bool = True) -> Iterator[Callable[[str, int, "int | None"], None]]:
    """A rich progress bar on stderr with one task per stage; yields the ``progress(stage, advance, total)`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    con = console(stderr=True)
    prog = Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=con, transient=False,
                    disable=not (enabled and con.is_terminal))
    tasks: dict[str, int] = {}

    def update(stage: str, advance: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = prog.add_task(stage, total=total, rate="")
        tid = tasks[stage]
        if total is not None:
            prog.update(tid, total=total)
        if advance:
            prog.advance(tid, advance)
            t = prog.tasks[tid]
            if t.elapsed:
                prog.update(tid, rate=f"{t.completed / t.elapsed:,.0f}/s")

    with prog:
        yield update


def progress_fn(update: Callable[[str, int, "int | None"], None], stage: str, total: int) -> Callable[[int], None]:
    update(stage, 0, total)
    return lambda n: update(stage, n, None)


def read_dataset(src, fmt: str | None, *, images=None, sets=None, classes: str | None = None, workers: int = 0,
                 update: Callable[[str, int, "int | None"], None] | None = None, **extra):
    """Read SRC for a command: resolve ``--format`` (auto-detect), apply ``--images/--sets/--classes/--workers`` and
    report progress as the ``read`` stage. Returns the annotation model."""
    from datatools import formats
    from datatools.ops.convert import read_options

    mod = formats.get(formats.resolve(fmt, src))
    opts = read_options(mod.NAME, images=images, sets=sets, workers=workers or None, **extra)
    progress = {}
    if update is not None:
        progress = {"progress": lambda n: update("read", n, None), "on_total": lambda t: update("read", 0, t)}
    return mod.read(src, classes=parse_classes(classes), **progress, **opts)


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def parse_classes(value: str | None) -> list[str] | None:
    """``--classes``: a file with one name per line, or a comma-separated list."""
    if not value:
        return None
    p = Path(value)
    if p.is_file():
        names = [ln.strip() for ln in p.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    else:
        names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("no class names given", param_hint="--classes")
    if len(set(names)) != len(names):
        raise click.BadParameter("class names repeat", param_hint="--classes")
    return names


def format_option(f):
    """``--format/-f auto|voc|yolo|coco`` (the ``fmt`` parameter); resolve it with ``formats.resolve(fmt, src)``."""
    return click.option("--format", "-f", "fmt", type=click.Choice(["auto", "voc", "yolo", "coco"]), default="auto",
                        show_default=True,
                        help="Format of SRC (auto: a .json or annotations/*.json is COCO, data.yaml or images/+labels/ "
                             "is YOLO, Annotations/ or *.xml is VOC).")(f)


def workers_option(f):
    return click.option("--workers", "-j", type=click.IntRange(0), default=0, show_default="all cores",
                        help="Worker processes (0 = all cores).")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout instead of tables.")(f)


def findings_table(findings, *, limit: int = 50, title: str = "Findings"):
    from rich.table import Table

    colours = {"error": "red", "warning": "yellow", "info": "dim"}
    t = Table(title=title, show_lines=False, title_justify="left")
    for col in ("severity", "code", "file", "field", "message"):
        t.add_column(col, overflow="fold")
    for f in findings[:limit]:
        sev = f.severity.value
        t.add_row(f"[{colours[sev]}]{sev}[/]", f.code, _short(f.path), f.field, f.message)
    return t


def _short(path: str, keep: int = 60) -> str:
    return path if len(path) <= keep else "…" + path[-(keep - 1):]


def counts_table(title: str, rows: dict, *, key: str = "reason", value: str = "count"):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column(key)
    t.add_column(value, justify="right")
    for k, v in rows.items():
        t.add_row(str(k), f"{v:,}")
    return t
