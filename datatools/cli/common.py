"""Shared CLI pieces: options used by several commands, progress bars, tables and error translation."""
from __future__ import annotations

import contextlib
import functools
import json
import math
from pathlib import Path
from typing import Callable, Iterator

import click

from datatools.core.errors import DatatoolsError, FormatError, StrictModeError, UsageError


def console(stderr: bool = False):
    from rich.console import Console

    # soft_wrap: a line of text is never broken by rich (a path in "wrote N files to PATH" stays greppable in a log
    # that is not a terminal, where rich would wrap at 80 columns); tables still fit the width.
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def os_error_message(e: OSError) -> str:
    """One line for an OSError that no library code labelled (see :class:`datatools.core.errors.OutputError` and
    ``InputError``, which say ``cannot write`` / ``cannot read`` where the code knows which it was): a full disk or a
    read-only file system can only be a write; otherwise the path and the system's reason."""
    import errno

    reason = e.strerror or str(e)
    path = e.filename2 or e.filename
    if e.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG):
        return f"cannot write {path}: {reason}" if path else f"cannot write: {reason}"
    return f"{e.filename}: {reason}" if e.filename else reason


@contextlib.contextmanager
def errors_to_click() -> Iterator[None]:
    """Turn library errors into clean messages: usage problems exit 2, data problems and outputs that cannot be
    written (``cannot write PATH: why``) or inputs that cannot be read exit 1. Never a traceback. Every command runs
    its work inside this block."""
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
    except OSError as e:
        raise click.ClickException(os_error_message(e)) from e
    except UnicodeEncodeError as e:  # a lone surrogate (valid JSON: "a\ud800b") in a name: no file can hold it
        bad = e.object[max(e.start - 20, 0):e.end + 20] if isinstance(e.object, str) else ""
        raise click.ClickException(f"cannot write text holding {e.object[e.start:e.end]!r}, which is no character "
                                   f"(in {bad!r}): fix that name in the input; nothing was written") from e


@contextlib.contextmanager
def stage_progress(enabled: bool = True) -> Iterator[Callable[[str, int, "int | None"], None]]:
    """A rich progress bar on stderr with one task per stage; yields the ``progress(stage, advance, total)`` callback.
    Disabled (``--json``, or stderr not a terminal), it yields a no-op and imports nothing."""
    con = console(stderr=True) if enabled else None
    if con is None or not con.is_terminal:
        yield lambda stage, advance, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    prog = Progress(TextColumn("[bold]{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=con, transient=False)
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


def run_writer(fn, *args, as_json: bool, render: Callable, **kwargs) -> None:
    """Run a command that writes a dataset (``convert``, ``merge``, ``remap``, ``filter``, ``sample``) with a
    progress bar, then print its report as JSON or through ``render``. Books that do not balance (objects read !=
    written + dropped) are a bug, never a data problem: said loudly."""
    with errors_to_click(), stage_progress(not as_json) as update:
        try:
            report = fn(*args, progress=update, **kwargs)
        except StrictModeError as e:
            if not as_json:
                raise
            # --strict refused to write: with --json the refusal and its findings are JSON too, then exit 1
            emit_json({"written": False, "error": str(e), "findings": [f.to_dict() for f in e.findings]})
            raise click.exceptions.Exit(1) from e
    if as_json:
        emit_json(report.to_dict())
    else:
        render(report)
    if not report.balanced:
        raise click.ClickException("internal error: objects read != written + dropped")


def read_dataset(src, *, format: str | None, classes: list[str] | None = None, workers: int = 0,
                 update: Callable[[str, int, "int | None"], None] | None = None, engine: str = "local",
                 ray_address: str | None = None, images=None, sets=None, max_xml_bytes: int | None = None,
                 select: bool = False, **extra):
    """Read SRC for a command with its ``reader`` (:func:`reader_options`), ``--workers`` and ``--engine``, reporting
    progress as the ``read`` stage. The reader's chunks run on local processes or, with ``engine="ray"``, as Ray
    tasks (the same model either way). ``select``: ``--classes`` also selects, as in a conversion (objects of other
    classes left out and counted, by :func:`datatools.ops.surgery.filter_dataset`: ``stats``, ``anchors``). Returns
    the annotation model."""
    from datatools.core.parallel import Mapper, stage_callbacks
    from datatools.ops.convert import read_source, reader_classes, resolve_source, source_classes

    if select:  # read whole, then selected by name: a name the source lacks is refused (as `filter` refuses it)
        format = resolve_source(src, format)
    ds = read_source(src, format, classes=reader_classes(format, classes) if select else classes,
                     mapper=Mapper(engine, ray_address, workers or None),
                     images=images, sets=sets, workers=workers or None, max_xml_bytes=max_xml_bytes,
                     **stage_callbacks(update, "read"), **extra)
    if select and classes:
        from datatools.ops.surgery import filter_dataset

        return filter_dataset(source_classes(ds), classes=classes)
    return ds


def count(n: int, singular: str, plural: str | None = None) -> str:
    """A number before a noun in a summary: ``count(1, "file")`` is "1 file", ``count(2, "box", "boxes")`` "2 boxes"
    (never "file(s)", nor "1 files")."""
    return f"{n:,} {singular if n == 1 else (plural or singular + 's')}"


def emit_json(obj) -> None:
    """``--json`` output: JSON has no NaN or infinity, so an undefined number (an empty distribution) is null. A
    command that fails after it (exit 1 with its counts printed) prints no second document."""
    from datatools.core.model import json_ready

    click.echo(json.dumps(json_ready(obj), indent=2, ensure_ascii=False, default=str))
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta["datatools.json_done"] = True


def parse_classes(value: str | None) -> list[str] | None:
    """``--classes``: a file with one name per line, or a comma-separated list."""
    if not value:
        return None
    p = Path(value)
    if p.is_file():
        from datatools.core.fs import read_text, trimmed_lines

        try:
            first, names = trimmed_lines(read_text(p))
        except (OSError, FormatError) as e:
            raise click.BadParameter(f"cannot read {value}: {getattr(e, 'strerror', None) or e}",
                                     param_hint="--classes") from e
        blank = next((k for k, n in enumerate(names, first) if not n), 0)
        if blank:  # darknet's obj.names keeps a blank line's id: dropping it named every later id one off
            raise click.BadParameter(f"line {blank} of {value} is blank: the file names one class a line, its line "
                                     "its id; write the class there", param_hint="--classes")
    else:
        names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("no class names given", param_hint="--classes")
    if len(set(names)) != len(names):
        raise click.BadParameter("class names repeat", param_hint="--classes")
    return names


def format_option(f):
    """``--format/-f auto|<every format in formats.FORMATS>`` (the ``fmt`` parameter); resolve it with
    ``formats.resolve(fmt, src)``."""
    from datatools.formats import FORMATS  # the registry only: no format module is imported

    return click.option("--format", "-f", "fmt", type=click.Choice(["auto", *FORMATS]), default="auto",
                        show_default=True,
                        help="Format of SRC (auto: a .json or annotations/*.json is COCO, LabelMe or Label Studio by "
                             "its content, data.yaml or images/+labels/ is YOLO, Annotations/ or *.xml is VOC, an "
                             "annotations.xml with an <annotations> root is CVAT, a *-bbox.csv is Open Images).")(f)


class SourcePath(click.ParamType):
    """SRC: a local path or a ``file://`` URL (made a local path), which must exist; or another fsspec URL
    (``s3://...``, ``memory://...``, ``simplecache::file:///...``), kept as a URL and read through fsspec."""

    name = "path"

    def convert(self, value, param, ctx):
        from datatools.core import fs
        from datatools.core.errors import UsageError

        try:
            path = fs.source_path(value)
        except UsageError as e:
            self.fail(str(e), param, ctx)
        if fs.is_url(path):
            return path  # checked through fsspec by source_path
        if not Path(path).exists():
            self.fail(f"{value!r} does not exist.", param, ctx)
        return path


class OutPath(click.Path):
    """An output path (OUT, ``--fix``, ``--plots``, ``--out``): as ``click.Path``, and never empty. An unset shell
    variable (``datatools convert SRC "$OUT"``) wrote into the working folder and exited 0."""

    def convert(self, value, param, ctx):
        if not str(value).strip():
            self.fail("empty path", param, ctx)
        return super().convert(value, param, ctx)


def engine_options(f):
    """``--engine local|ray`` and ``--ray-address``: where the chunked work runs (see datatools.core.parallel)."""
    f = click.option("--ray-address", default=None, metavar="auto|HOST:PORT",
                     help="Ray cluster for --engine ray: 'auto' joins the cluster `ray start` made on this machine, "
                          "HOST:PORT (or ray://HOST:PORT) a remote one. Default: a new local Ray on this machine "
                          "(--workers CPUs). Every node needs datatools installed and SRC/OUT at the same paths.")(f)
    return click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                        help="Run on local processes, or as Ray tasks over chunks of files (pip install "
                             "'datatools[ray]'). Results are identical either way.")(f)


# How every command reads SRC and places images: one definition, one help text each.
CLASSES_HELP = "Class names (file or 'a,b,c'); needed for YOLO without names."
images_option = click.option(
    "--images", type=click.Path(file_okay=False), default=None,
    help="Image folder (default: JPEGImages/ of a VOC root, the XML folder, or next to the COCO JSON). YOLO "
         "finds its images through data.yaml and takes none.")
sets_option = click.option(
    "--sets", default=None,
    help="VOC ImageSets/Main lists to read, comma-separated (e.g. train,val), or 'all'. "
         "Default: the train, val and test lists (valid, val2017 too) where present, else trainval, else every "
         "list.")
convention_option = click.option(
    "--pixel-convention", "convention", type=click.Choice(["devkit", "as-is", "ultralytics"]), default="as-is",
    show_default=True,
    help="How VOC's 1-based pixel indices map to pixels: as-is = numbers as written (torchvision, mmdetection, "
         "globox, datumaro); devkit = [xmin-1, ymin-1, xmax, ymax]; ultralytics = VOC.yaml's centre-1 shift.")
normalize_names_option = click.option(
    "--normalize-names", is_flag=True,
    help="Lower-case class names and collapse runs of spaces ('Dog ', 'dog' -> 'dog'). Otherwise names are kept as "
         "written and case variants are reported.")
precision_option = click.option("--precision", type=click.IntRange(0, 12), default=6, show_default=True,
                                help="Decimal places for written coordinates.")
device_option = click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True,
                             help="auto = CUDA when present, else CPU.")
images_mode_option = click.option(
    "--images-mode", type=click.Choice(["link", "copy", "symlink", "none"]), default="link", show_default=True,
    help="How images reach the output: hard link (copy when linking fails), copy, symlink, or none (leave them "
         "where they are).")


def reader_options(*, classes_help: str = CLASSES_HELP, convention: bool = False):
    """``--format``, ``--images``, ``--sets``, ``--classes`` (with this command's meaning of it), ``--max-xml-mb``
    and, where the command reads VOC boxes, ``--pixel-convention``: the options every command reads SRC with,
    folded into the command's one ``reader`` argument, the keywords of :func:`read_dataset` (and of ``check`` and
    ``report``): ``format``, ``images``, ``sets``, ``classes`` (parsed), ``max_xml_bytes`` [, ``convention``]."""
    options = [format_option, images_option, sets_option, click.option("--classes", default=None, help=classes_help)]
    options += [convention_option] if convention else []
    options.append(max_xml_option)
    keys = ("images", "sets", "max_xml_bytes") + (("convention",) if convention else ())

    def decorate(f):
        @functools.wraps(f)
        def wrapper(*args, fmt, classes, **kwargs):
            reader = {"format": fmt, "classes": parse_classes(classes), **{k: kwargs.pop(k) for k in keys}}
            return f(*args, reader=reader, **kwargs)

        return with_options(wrapper, options)

    return decorate


def with_options(f, options):
    """``f`` with the click ``options`` applied, the first listed first in ``--help``: what a stack of decorators
    written in that order gives."""
    for opt in reversed(options):
        f = opt(f)
    return f


def workers_option(f):
    return click.option("--workers", "-j", type=click.IntRange(0), default=0, show_default="all cores",
                        help="Worker processes (0 = all cores).")(f)


class Number(click.FloatRange):
    """A float option in a range, and finite: ``nan`` slips through every range check (``--lr nan`` trained on, a
    ``--min-size nan`` filtered nothing) and ``inf`` overflowed the conversions after it (a traceback)."""

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


def max_xml_option(f):
    """``--max-xml-mb``: the VOC and CVAT readers refuse larger XML files (``file-too-large``) unless raised here;
    the ``max_xml_bytes`` parameter, None for each reader's own default (VOC 16 MiB, CVAT 256 MiB)."""
    def to_bytes(ctx, param, value):
        return None if value is None else max(1, int(value * 1024 * 1024))

    return click.option("--max-xml-mb", "max_xml_bytes", type=Number(min=0, min_open=True), default=None,
                        callback=to_bytes, metavar="MB",
                        help="Refuse XML annotation files larger than this, as a 'file-too-large' finding "
                             "[default: 16 for each VOC file, 256 for a CVAT annotations.xml]. Raise it for "
                             "genuinely huge annotation files.")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout instead of tables.")(f)


def esc(value) -> str:
    """``value`` as text that rich prints as it is: a class name ``[red]car``, a regex ``([a-z]+)_`` or a path with
    brackets is data, not console markup (unescaped, rich took it for a style and dropped it)."""
    from rich.markup import escape

    return escape(printable(str(value)))


def printable(text: str) -> str:
    """``text`` with its control characters escaped (``\\n``, ``\\t``): a class ``new\\nline`` printed as two
    table rows, ``new`` and ``line``."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_PLAIN_TABLE = None


def table(**kwargs):
    """A rich Table whose string cells, headers and title are plain text, never markup (see :func:`esc`): the cells
    hold class names, paths and messages from the data. Style a cell by passing a ``rich.text.Text``."""
    global _PLAIN_TABLE
    from rich.table import Table
    from rich.text import Text

    if _PLAIN_TABLE is None:
        class PlainTable(Table):
            def add_column(self, header="", *args, **kw):
                return super().add_column(Text(header) if isinstance(header, str) else header, *args, **kw)

            def add_row(self, *cells, **kw):
                return super().add_row(*(Text(printable(c)) if isinstance(c, str) else c for c in cells), **kw)

        _PLAIN_TABLE = PlainTable
    if isinstance(kwargs.get("title"), str):
        kwargs["title"] = Text(kwargs["title"], style="table.title")
    return _PLAIN_TABLE(**kwargs)


def findings_table(findings, *, limit: int = 50, title: str = "Findings"):
    from rich.text import Text

    colours = {"error": "red", "warning": "yellow", "info": "dim"}
    t = table(title=title, show_lines=False, title_justify="left")
    for col in ("severity", "code", "file", "field", "message"):
        t.add_column(col, overflow="fold")
    for f in findings[:limit]:
        sev = f.severity.value
        t.add_row(Text(sev, style=colours[sev]), f.code, _where(f), f.field, f.message)
    return t


def _where(f) -> str:
    """The file of a finding, and the image it is about when the file does not name it: a COCO JSON, a CVAT
    annotations.xml, a Label Studio export or an Open Images CSV holds every image, so ``annotations.xml`` alone
    does not say where to look (``annotations.xml [img_07]``). A VOC XML or LabelMe JSON named after its image
    needs no more."""
    import posixpath

    path = _short(f.path)
    stem = posixpath.splitext(posixpath.basename(f.path.replace("\\", "/").split("#")[0]))[0]
    if f.image_id and posixpath.basename(f.image_id) != stem:
        path += f" [{f.image_id}]"
    return path


def _short(path: str, keep: int = 60) -> str:
    return path if len(path) <= keep else "…" + path[-(keep - 1):]


MAX_CLASS_ROWS = 100  # LVIS' 1,203 classes printed 89 KB of table per command


def class_rows(names) -> tuple[list, str]:
    """The first :data:`MAX_CLASS_ROWS` of ``names`` for a table of per-class rows, and the text of its last row
    (how many more there are; empty when none)."""
    names = list(names)
    more = len(names) - MAX_CLASS_ROWS
    return names[:MAX_CLASS_ROWS], (f"... {more:,} more classes (all with --json)" if more > 0 else "")


def counts_table(title: str, rows: dict, *, key: str = "reason", value: str = "count"):
    t = table(title=title, title_justify="left")
    t.add_column(key)
    t.add_column(value, justify="right")
    for k, v in rows.items():
        t.add_row(str(k), f"{v:,}")
    return t
