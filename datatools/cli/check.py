"""``check``: list annotation findings; exit 1 when there are errors."""
from __future__ import annotations

import click

from datatools.cli.common import (OutPath, console, count, counts_table, emit_json, engine_options, errors_to_click,
                                  esc, findings_table, images_mode_option, json_option, normalize_names_option,
                                  reader_options, SourcePath, stage_progress, workers_option)


@click.command("check")
@click.argument("src", type=SourcePath())
@reader_options(classes_help="Expected class list (file or 'a,b,c'); other names are errors.", convention=True)
@normalize_names_option
@click.option("--no-headers", is_flag=True,
              help="Skip the extra image checks (EXIF rotation, unreadable images). Sizes are still read from the "
                   "image headers, as every reader does; the checks reuse those reads.")
@click.option("--fix", "fix_out", type=OutPath(), default=None,
              help="Write a repaired copy here (boxes clipped, invalid boxes dropped), in the same format.")
@click.option("--dupes", is_flag=True,
              help="Also find exact and near-duplicate images (as `datatools dupes` does, default threshold) and "
                   "copies whose labels differ.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="Rows to show in the table.")
@images_mode_option
@workers_option
@engine_options
@json_option
def check_cmd(src, reader, normalize_names, no_headers, fix_out, images_mode, dupes, limit, workers, engine,
              ray_address, as_json):
    """Check the annotations in SRC and list every finding with its code, severity, file and field.

    Exit status: 0 when there are no errors (warnings allowed), 1 when there are errors.
    """
    from datatools.ops.check import check, write_fixed

    with errors_to_click():
        with stage_progress(not as_json) as update:
            report = check(src, **reader, normalize_names=normalize_names, headers=not no_headers,
                           workers=workers or None, progress=update, engine=engine, ray_address=ray_address,
                           dupes=dupes)
            if fix_out:
                write_fixed(report, fix_out, images_mode=images_mode, convention=reader["convention"],
                            workers=workers or None, progress=update)
    if as_json:
        emit_json(report.to_dict())
    else:
        con = console()
        if report.findings:
            con.print(findings_table(report.findings, limit=limit))
            if len(report.findings) > limit:
                con.print(f"... {len(report.findings) - limit} more (use --limit or --json)")
            con.print(counts_table("Findings by code", report.counts, key="code"))
        colour = "red" if report.errors else ("yellow" if report.warnings else "green")
        con.print(f"[{colour}]{count(report.images, 'image')}, {count(report.objects, 'object')}: "
                  f"{count(report.errors, 'error')}, {count(report.warnings, 'warning')}[/]")
        if fix_out:
            changed = sum(1 for f in report.fixed.findings if f.objects or f.code == "box-out-of-bounds")
            con.print(f"[green]wrote the repaired copy to[/] [bold]{esc(fix_out)}[/] ({count(changed, 'change')}, listed above)")
    if report.errors:
        raise SystemExit(1)
