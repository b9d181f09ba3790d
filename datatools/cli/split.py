"""``split``: train/val/test (or k folds) in the input's own convention; thin over :mod:`datatools.ops.split`."""
from __future__ import annotations

import functools

import click

from datatools.cli.common import (OutPath, class_rows, console, count, emit_json, engine_options, errors_to_click, esc,
                                  findings_table, images_mode_option, json_option, read_dataset, reader_options,
                                  SourcePath, stage_progress, table, with_options, workers_option)


def _amount(ctx, param, value):
    """The text as the library reads it (ops.split.plan_split): a whole number without a point is a count of images
    (``200``), anything else a ratio (``0.2``), which the library refuses when it is 1 or more."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError as e:
        raise click.BadParameter(f"{value!r} is neither a ratio nor a count") from e


def group_options(f):
    """``--group-by``, ``--groups``, ``--group-column``, ``--image-column``, folded into the command's one
    ``group_by`` argument (a string or a :class:`~datatools.ops.split.GroupFile`)."""

    @functools.wraps(f)
    def wrapper(*args, group_by, groups_file, group_column, image_column, **kwargs):
        if groups_file is None:
            if group_column or image_column:
                raise click.UsageError("--group-column and --image-column go with --groups FILE")
        elif group_by is not None:
            raise click.UsageError("give either --group-by or --groups, not both")
        else:
            from datatools.ops.split import read_group_file

            with errors_to_click():
                group_by = read_group_file(groups_file, group_column=group_column, image_column=image_column)
        return f(*args, group_by=group_by, **kwargs)

    return with_options(wrapper, [
        click.option("--group-by", default=None, metavar="[regex:|attr:]KEY",
                     help="Where an image's group comes from, so that frames of one video or crops of one source "
                          "never straddle splits. 'regex:PATTERN' (or a bare PATTERN): a regex on the image id, the "
                          "first capture group (or the whole match) names the group, e.g. '^(video\\d+)_'. "
                          "'attr:NAME': an image-level field: a key of the COCO image dict (attr:video_id; "
                          "attr:a.b for nested), a VOC tag below <annotation> (attr:folder, attr:source.database). "
                          "Images without one are each their own group and counted. With --method hash the group "
                          "is hashed."),
        click.option("--groups", "groups_file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="CSV/TSV file mapping images to groups: image id (or file name) in the first column, group "
                          "in the second; a header row is optional. Images not in the file are each their own group "
                          "and counted."),
        click.option("--group-column", default=None, metavar="NAME",
                     help="With --groups: the header name of the group column (the file then needs a header row)."),
        click.option("--image-column", default=None, metavar="NAME",
                     help="With --groups: the header name of the image id / file name column (default: the first "
                          "column that is not the group column)."),
    ])


@click.command("split")
@click.argument("src", type=SourcePath())
@click.argument("out", type=OutPath())
@reader_options()
@click.option("--val", callback=_amount, default=None,
              help="Validation share: a ratio (0.2) or a number of images (200). Default 0.2 (not with --kfold).")
@click.option("--test", callback=_amount, default="0", show_default=True,
              help="Test share: a ratio (0.1) or a number of images (100).")
@click.option("--method", "-m", type=click.Choice(["stratified", "random", "group", "hash"]), default=None,
              help="stratified (default): every class close to the asked share in every split; random; group: "
                   "groups from --group-by/--groups never straddle splits; hash: stable when images are added later. "
                   "Default: group when --group-by or --groups is given, else stratified.")
@group_options
@click.option("--dedup", is_flag=True,
              help="Keep exact and near-duplicate images (datatools dupes, default threshold) in one split, on top of "
                   "any --group-by, and report how many clusters of copies a split without it cuts across splits. "
                   "Recommended for any dataset that may hold copies. Same as --group-by dupes.")
@click.option("--kfold", type=click.IntRange(0), default=0,
              help="Write K folds (OUT/fold_<i>/, fold i as val); --test is held out first and shared by all folds.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed for the random choices (not used by hash).")
@click.option("--drop-empty", is_flag=True, help="Leave out images without objects (default: kept and spread).")
@click.option("--dry-run", is_flag=True, help="Show the split without writing anything.")
@images_mode_option
@workers_option
@engine_options
@json_option
def split_cmd(src, out, reader, val, test, method, group_by, dedup, kfold, seed, drop_empty, images_mode, dry_run,
              workers, engine, ray_address, as_json):
    """Split SRC into train/val/test (or k folds) and write OUT in the same format as SRC.

    \b
    VOC:  OUT/Annotations (original XMLs copied), JPEGImages, ImageSets/Main/{train,val,test,trainval}.txt
    YOLO: OUT/images/<split>, labels/<split>, data.yaml, classes.txt
    COCO: OUT/annotations/instances_<split>.json (original JSON filtered by image id), OUT/images
    CVAT: OUT/annotations.xml (a subset per image), OUT/images
    Open Images: OUT/annotations/<split>-annotations-bbox.csv, OUT/images/<split>
    LabelMe, Label Studio: OUT/<split>/, each a complete dataset
    The same seed and input give the same bytes. SRC is never modified.
    """
    from datatools.core.parallel import stage_callbacks
    from datatools.ops.split import plan_split, write_split

    if isinstance(group_by, str) and group_by.strip() == "dupes":
        group_by, dedup = None, True
    method = method or ("group" if group_by or dedup else "stratified")
    if engine == "ray" and method != "hash":
        raise click.UsageError("--engine ray splits with --method hash only (the other methods need every image at "
                               "once; they run locally and fast)")
    with errors_to_click():
        with stage_progress(not as_json) as update:
            ds = read_dataset(src, **reader, workers=workers, update=update, engine=engine, ray_address=ray_address)
            dupes = None
            if dedup:
                from datatools.core.errors import DatatoolsError
                from datatools.core.parallel import Mapper
                from datatools.ops.dupes import find_duplicates

                dupes = find_duplicates(ds, mapper=Mapper(engine, ray_address, workers or None),
                                        **stage_callbacks(update, "hash"))
                if not dupes.hashed and dupes.findings:  # as `dupes` says it: no copy could be kept together
                    raise DatatoolsError(f"--dedup: none of the {count(len(dupes.findings), 'image')} could be "
                                         f"compared (`datatools dupes {src}` lists why)")
            plan = plan_split(ds, val=val, test=test or 0.0, method=method, seed=seed, group_by=group_by,
                              kfold=kfold, drop_empty=drop_empty, dedup=dupes.cluster_ids() if dupes else None)
            written = None
            if not dry_run:
                total = len(plan.dataset.images) * max(1, kfold)
                written = write_split(plan, out, images_mode=images_mode, workers=workers or None, engine=engine,
                                      ray_address=ray_address, **stage_callbacks(update, "write", total=total))
    if as_json:
        d = plan.to_dict()
        d["out"] = None if dry_run else str(out)
        d["files_written"] = written.files if written else 0
        d["write_findings"] = [f.to_dict() for f in written.findings] if written else []
        read = plan.dataset.findings  # what reading SRC noticed (the details: datatools check SRC --json)
        d["read_errors"] = sum(1 for f in read if f.severity.value == "error")
        d["read_warnings"] = sum(1 for f in read if f.severity.value == "warning")
        d["read_objects_dropped"] = sum(f.objects for f in read)
        d["read_images_dropped"] = sum(1 for f in read if f.image_dropped)
        d["read_shapes_as_boxes"] = len(images_as_boxes(read))
        if dupes:
            d["dedup"]["not_compared"] = [f.to_dict() for f in dupes.findings]
        d["not_read"] = [f.message for f in read if f.code == "not-in-sets"]  # unlisted VOC files: in no part
        emit_json(d)
        return
    render(plan, out=None if dry_run else out, written=written, not_compared=dupes.findings if dupes else [])


# What a reader notes for an image whose shapes it read as boxes: a part split writes in another format holds the
# boxes (VOC and COCO parts are the original files).
AS_BOXES = frozenset({"polygon-to-box", "shape-to-box", "rotated-box", "keypoints-not-kept"})


def images_as_boxes(findings) -> set[tuple[str, str]]:
    """The images (file, id) of which a reader noted shapes read as their boxes (one finding per shape or kind)."""
    return {(f.path, f.image_id) for f in findings if f.code in AS_BOXES}


def render(plan, *, out, written, not_compared=()) -> None:
    """The plan as a table (asked and actual shares, per class), its findings, and what was written."""
    con = console()
    reports = plan.reports
    t = table(title=f"split ({plan.method}, seed {plan.seed}{f', {plan.kfold} folds' if plan.kfold else ''})",
              title_justify="left")
    t.add_column("")
    for r in reports:
        t.add_column(r.name, justify="right")
    t.add_column("total", justify="right")
    n = sum(r.images for r in reports)
    t.add_row("asked", *[f"{r.asked:.1%}" for r in reports], "")
    t.add_row("images", *[f"{r.images:,} ({r.images / n:.1%})" for r in reports], f"{n:,}")
    t.add_row("objects", *[f"{r.objects:,}" for r in reports], f"{sum(r.objects for r in reports):,}")
    t.add_row("empty images", *[f"{r.empty:,}" for r in reports], f"{sum(r.empty for r in reports):,}")
    t.add_section()
    names, more = class_rows(reports[0].class_objects if reports else {})
    for c in names:
        tot = sum(r.class_objects[c] for r in reports)
        cells = [f"{r.class_objects[c]:,} ({r.class_objects[c] / tot:.1%})" if tot else "0" for r in reports]
        t.add_row(c, *cells, f"{tot:,}")
    if more:
        t.add_row(more, *[""] * (len(reports) + 1))
    con.print(t)
    d = plan.deviation
    worst = f" ({esc(d['worst_class'])} in {esc(d['worst_part'])})" if d["worst_class"] else ""
    con.print(f"largest deviation from the asked share: images {d['images']:.2%}, class objects "
              f"{d['class_objects']:.2%}{worst}")
    if plan.groups:
        con.print(f"{count(plan.groups, 'group')} ({esc(plan.group_source)}); no group straddles two parts")
    if plan.group_source.endswith("duplicates"):
        con.print(f"{count(plan.dedup_clusters, 'cluster')} of duplicate images kept together; without --dedup "
                  f"{count(plan.straddled_before, 'cluster')} would have straddled parts")
    if plan.dropped_empty:
        con.print(f"{count(len(plan.dropped_empty), 'image')} without objects left out (--drop-empty)")
    for f in plan.dataset.findings:  # VOC files in none of the lists read: in no part, which a re-split may not mean
        if f.code == "not-in-sets":
            con.print(f"[yellow]{esc(f.message)}: they are in no part (--sets chooses the lists)[/]")
    read = plan.dataset.findings
    read_problems = [f for f in read if f.severity.value != "info"]
    if read_problems:
        objects, images = sum(f.objects for f in read), sum(1 for f in read if f.image_dropped)
        # VOC and COCO parts are the original files, filtered by image: a box the reader rejected is still there
        kept = plan.dataset.format in ("voc", "coco")
        lost = [f"{count(images, 'image')} could not be read and {'is' if images == 1 else 'are'} in no part"] * bool(
            images) + [f"{count(objects, 'object')} could not be read" + (
                ": OUT's copies of the original files still hold those of images in a part (check --fix writes a "
                "repaired copy)" if kept else f" and {'is' if objects == 1 else 'are'} not in OUT")] * bool(objects)
        con.print(f"[yellow]reading SRC found {count(len(read_problems), 'error or warning', 'errors or warnings')}"
                  f"{': ' if lost else ''}{'; '.join(lost)} (details: datatools check)[/]")
    as_boxes = len(images_as_boxes(read))
    if as_boxes and plan.dataset.format not in ("voc", "coco"):
        con.print(f"[yellow]{count(as_boxes, 'image')} held polygons, rotated or other shapes, or keypoints: OUT "
                  "holds their boxes (details: datatools check)[/]")
    problems = list(plan.findings) + list(not_compared) + (list(written.findings) if written else [])
    if problems:
        con.print(findings_table(problems, limit=20))
    if out is not None and written is not None:
        con.print(f"[green]wrote[/] {count(written.files, 'file')} and placed {count(written.images_placed, 'image')} "
                  f"in [bold]{esc(out)}[/]")
    else:
        con.print("[yellow]dry run: nothing written[/]")
