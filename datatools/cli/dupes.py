"""``dupes``: exact and near-duplicate images and whether their labels agree; thin over :mod:`datatools.ops.dupes`."""
from __future__ import annotations

from collections import Counter

import click

from datatools.cli.common import (console, count, emit_json, engine_options, errors_to_click, esc, findings_table,
                                  json_option, read_dataset, reader_options, SourcePath, stage_progress,
                                  table, workers_option)


@click.command("dupes")
@click.argument("src", type=SourcePath())
@reader_options()
@click.option("--threshold", "-t", type=click.IntRange(0, 24), default=10, show_default=True,
              help="Largest perceptual-hash distance (bits of 64) for a near copy. 0: exact copies only (the same "
                   "file or the same decoded pixels).")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Clusters to show in the table.")
@workers_option
@engine_options
@json_option
def dupes_cmd(src, reader, threshold, limit, workers, engine, ray_address, as_json):
    """Find exact and near-duplicate images in SRC, grouped into clusters, and whether the copies' labels agree.

    Exact: the same file, or the same decoded pixels (a PNG and a JPEG of one image). Near: re-encoded, resized,
    mirrored or slightly cropped copies (64-bit pHash within --threshold bits). Copies whose labels differ are label
    noise. Keep clusters in one split with `datatools split --dedup`.
    """
    from datatools.core.parallel import Mapper, stage_callbacks
    from datatools.ops.dupes import find_duplicates

    with errors_to_click():
        with stage_progress(not as_json) as update:
            ds = read_dataset(src, **reader, workers=workers, update=update, engine=engine, ray_address=ray_address)
            report = find_duplicates(ds, threshold=threshold, mapper=Mapper(engine, ray_address, workers or None),
                                     **stage_callbacks(update, "hash"))
    if as_json:
        emit_json(report.to_dict())
    else:
        render(report, limit=limit)
    if not report.hashed and report.findings:  # nothing was compared: not a clean "0 clusters"
        raise click.ClickException(f"none of the {count(len(report.findings), 'image')} could be compared (the "
                                   "reasons are listed above, or under --json's findings)")


def render(report, *, limit: int) -> None:
    """The clusters as a table (largest first), then the counts."""
    con = console()
    if report.clusters:
        t = table(title="Duplicate clusters", title_justify="left")
        for col, just in (("#", "right"), ("kind", "left"), ("images", "right"), ("max dist", "right"),
                          ("labels", "left"), ("members (relation, distance)", "left")):
            t.add_column(col, justify=just, overflow="fold")
        for n, c in enumerate(report.clusters[:limit], 1):
            shown = [f"{m.image_id}" if m.relation == "first" else f"{m.image_id} ({m.relation}, {m.distance})"
                     for m in c.members[:4]]
            more = f", ... {len(c.members) - 4} more" if len(c.members) > 4 else ""
            t.add_row(str(n), c.kind, str(len(c.members)), str(c.max_distance),
                      "agree" if c.labels_agree else "DIFFER", ", ".join(shown) + more)
        con.print(t)
        if len(report.clusters) > limit:
            con.print(f"... {len(report.clusters) - limit} more (use --limit or --json)")
    if report.findings:
        con.print(findings_table(report.findings, limit=10, title="Images not compared"))
        by_code = Counter(f.code for f in report.findings)
        con.print(f"{count(len(report.findings), 'image')} not compared: "
                  + ", ".join(f"{n:,} {esc(code)}" for code, n in sorted(by_code.items()))
                  + (" (all of them: --json)" if len(report.findings) > 10 else ""))
    c = report.counts()
    colour = "yellow" if report.clusters else "green"
    con.print(f"[{colour}]{count(report.hashed, 'image')} compared (threshold {report.threshold}): "
              f"{count(len(report.clusters), 'cluster')} ({c['exact_clusters']:,} exact, {c['near_clusters']:,} near), "
              f"{count(report.duplicate_images, 'copy', 'copies')} beyond the first of each[/]")
    if c["labels_disagree"]:
        con.print(f"[red]{count(c['labels_disagree'], 'cluster')} with labels that differ between copies "
                  "(label noise: datatools check --dupes lists them)[/]")
    if report.clusters:
        con.print(f"keep each cluster in one split: datatools split {esc('SRC OUT')} --dedup")
