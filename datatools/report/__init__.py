"""``datatools report``: one static HTML page that shows a dataset (summary, classes, split balance, box and image
sizes, channel statistics, anchors, check findings, duplicates and a gallery), to open in a browser or send.

From Python: ``write_report(build_report("VOC"), "report.html")``, or :func:`report` for both steps with the same
guards as the command line. See docs/report.md.
"""
from __future__ import annotations

import os

from datatools.report.build import ReportData, build_report

__all__ = ["ReportData", "build_report", "report", "write_report"]


def write_report(data: ReportData, out: str | os.PathLike) -> dict:
    """Render ``data`` and write the page to ``out`` atomically (a temp file, then a rename), refusing an ``out``
    inside the dataset it describes. Returns :meth:`ReportData.summary` with the page's path, size and the number
    of gallery thumbnails that fit the budget."""
    from datatools.core.atomic import atomic_write
    from datatools.report.html import render_page

    _check_out(out, data.inputs)
    page, shown = render_page(data)
    body = page.encode("utf-8")
    atomic_write(out, body)
    summary = data.summary()
    summary["gallery"]["shown"] = shown
    return {"out": os.fspath(out), "bytes": len(body), **summary}


def report(src: str | os.PathLike, out: str | os.PathLike, *, images=None, **options) -> dict:
    """Check ``out`` first (so a wrong path fails before minutes of work), then :func:`build_report` and
    :func:`write_report`. ``options`` are those of :func:`build_report`."""
    _check_out(out, [os.fspath(src)] + ([os.fspath(images)] if images else []))
    return write_report(build_report(src, images=images, **options), out)


def _check_out(out: str | os.PathLike, inputs: list[str]) -> None:
    from datatools.core.errors import UsageError
    from datatools.core.paths import check_output_dir

    check_output_dir(out, inputs)  # not an input, not inside one, not a URL
    if os.path.isdir(out):
        raise UsageError(f"{out} is a folder: give the path of the HTML file to write")
