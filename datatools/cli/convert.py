"""``convert``, ``voc2yolo`` and ``voc2coco``: thin commands over :func:`datatools.ops.convert.convert`."""
from __future__ import annotations

from typing import Any, Callable, Collection

import click

from datatools.cli.common import (OutPath, class_rows, console, convention_option, count, counts_table,
                                  engine_options, esc, findings_table, images_mode_option, images_option, json_option,
                                  max_xml_option, normalize_names_option, parse_classes, precision_option, run_writer,
                                  sets_option, SourcePath, table, with_options, workers_option)

from datatools.formats import FORMATS  # the registry only: no format module is imported

FORMAT_CHOICE = click.Choice(list(FORMATS), case_sensitive=False)


def conversion_options(f):
    options = [
        images_option,
        sets_option,
        click.option("--classes", default=None,
                     help="Class list and order: a file with one name per line, or 'a,b,c'. "
                          "Default: a YOLO source's own order, else sorted discovered names. Objects of other "
                          "classes are dropped and counted."),
        click.option("--difficult", type=click.Choice(["keep", "skip", "crowd"]), default=None,
                     help="What to do with VOC difficult objects: keep, skip, or crowd (COCO iscrowd=1, ignored by "
                          "COCO evaluation). Default: crowd for COCO output, keep otherwise."),
        normalize_names_option,
        convention_option,
        images_mode_option,
        precision_option,
        max_xml_option,
        workers_option,
        engine_options,
        click.option("--strict", is_flag=True, help="Any data error means exit 1 and nothing is written."),
        json_option,
    ]
    return with_options(f, options)


def render_summary(s, *, command: str | None = None, before: dict[str, int] | None = None,
                   details: Callable[[Any], None] | None = None, summed_up: Collection[str] = ()) -> None:
    """Print a :class:`~datatools.ops.convert.Summary`: the books, drops by reason, classes, difficult objects,
    splits, the errors and warnings, what was written. Every command that writes a dataset prints through here:
    ``command`` names it in the first line, ``before`` adds the class counts before the command's job as a column,
    ``details(console)`` prints the command's own lines after the classes, and the codes in ``summed_up`` (which
    those lines already sum up) are left out of the first-findings table."""
    con = console()
    direction = f"{esc(s.src_format)} -> {esc(s.dst_format)}"
    head = f"[bold]{esc(command)}[/] ({direction})" if command else f"[bold]{direction}[/]"
    con.print(f"{head}: {esc(s.src)} -> {esc(s.out)}")
    t = table()
    for col, just in (("", "left"), ("read", "right"), ("written", "right"), ("dropped", "right")):
        t.add_column(col, justify=just)
    t.add_row("images", f"{s.images_read:,}", f"{s.images_written:,}", f"{sum(s.images_dropped.values()):,}")
    t.add_row("objects", f"{s.objects_read:,}", f"{s.objects_written:,}", f"{sum(s.objects_dropped.values()):,}")
    con.print(t)
    if s.objects_dropped or s.images_dropped:
        rows = ({f"object: {k}": v for k, v in s.objects_dropped.items()}
                | {f"image: {k}": v for k, v in s.images_dropped.items()})
        con.print(counts_table("Dropped, by reason", rows))
    ct = table(title="Classes", title_justify="left")
    ct.add_column("id", justify="right")
    ct.add_column("class")
    if before is not None:
        ct.add_column("before", justify="right")
    ct.add_column("objects", justify="right")
    base = 1 if s.dst_format == "coco" else 0
    names, more = class_rows(s.class_counts)
    for i, name in enumerate(names):
        ct.add_row(str(i + base), name, *([f"{before.get(name, 0):,}"] if before is not None else []),
                   f"{s.class_counts[name]:,}")
    if more:
        ct.add_row("", more, *[""] * (len(ct.columns) - 2))
    con.print(ct)
    if details is not None:
        details(con)
    d = s.difficult
    lost = f", {d['not_kept']} written without the flag (no place for it in {esc(s.dst_format)})" \
        if d.get("not_kept") else ""
    con.print(f"difficult objects: {d.get('read', 0)} read, {d.get('kept', 0)} kept, {d.get('as_crowd', 0)} as crowd, "
              f"{d.get('skipped', 0)} skipped, {d.get('dropped', 0)} dropped{lost}")
    if s.splits:
        lost = any(f.code == "field-not-kept" and f.field == "splits" for f in s.findings)
        con.print(("splits read (not kept by the output format: field-not-kept): " if lost else "splits: ")
                  + ", ".join(f"{esc(k)} {v:,}" for k, v in s.splits.items()))
    problems = [f for f in s.findings if f.severity.value != "info"]
    # What the output format cannot hold, field by field (a note, so not in the table below): said here too
    for f in s.findings:
        if f.code == "field-not-kept" and f.field not in ("splits", "difficult") and f.severity.value == "info":
            con.print(f"not kept ({esc(f.field)}): {esc(f.message)}", soft_wrap=True)
    notes = {k: v for k, v in s.notes.items() if k != "field-not-kept"}
    if problems or notes:
        con.print(counts_table("Findings", {**{f"error: {k}": v for k, v in s.errors.items()},
                                            **{f"warning: {k}": v for k, v in s.warnings.items()},
                                            **{f"note: {k}": v for k, v in notes.items()}}, key="code"))
    if problems:
        shown = [f for f in problems if f.code not in summed_up]
        if shown:
            con.print(findings_table(shown, limit=20, title="First findings (all of them with --json)"))
    con.print(f"[green]wrote[/] {count(s.files_written, 'file')} to [bold]{esc(s.out)}[/]")


def _convert_command(name: str, src_format: str | None, dst_format: str | None, doc: str):
    def body(src, out, as_json, classes, workers, from_format=None, to_format=None, **opts):
        from datatools.ops.convert import convert

        run_writer(convert, from_format or src_format, src, to_format or dst_format, out, as_json=as_json,
                   render=render_summary, classes=parse_classes(classes), workers=workers or None, **opts)

    body.__doc__ = doc
    cmd = conversion_options(body)
    cmd = click.argument("out", type=OutPath())(cmd)
    cmd = click.argument("src", type=SourcePath())(cmd)
    if src_format is None:
        cmd = click.option("--to", "to_format", type=FORMAT_CHOICE, required=True, help="Output format.")(cmd)
        cmd = click.option("--from", "--format", "-f", "from_format",
                           type=click.Choice(["auto", *FORMATS], case_sensitive=False), default="auto",
                           show_default=True, help="Input format (auto: detected from SRC, as in `datatools check`; "
                           "--format as in every other command).")(cmd)
    return click.command(name)(cmd)


convert_cmd = _convert_command("convert", None, None, """Convert SRC to OUT between any two formats: VOC, YOLO, COCO, CVAT,
LabelMe, Label Studio, Open Images.

SRC is a VOC root or XML folder, a YOLO data.yaml or folder, a COCO JSON (or a folder with annotations/*.json), a CVAT
annotations.xml, an Open Images *-bbox.csv, a LabelMe JSON folder or a Label Studio JSON export (see docs/format-*.md).
OUT is a folder; for COCO, a path ending in .json writes one file, a folder writes annotations/instances_<split>.json.
""")

voc2yolo_cmd = _convert_command("voc2yolo", "voc", "yolo", """Convert Pascal VOC XML in SRC to a YOLO dataset in OUT.

SRC is a VOCdevkit-style root (Annotations/, JPEGImages/, ImageSets/Main/) or a folder of XML files (with --images).
OUT gets images/<split>/, labels/<split>/, data.yaml and classes.txt, ready for ultralytics.
""")

voc2coco_cmd = _convert_command("voc2coco", "voc", "coco", """Convert Pascal VOC XML in SRC to COCO JSON.

OUT ending in .json writes one file; a folder gets annotations/instances_<split>.json (and images/<split>/).
""")
