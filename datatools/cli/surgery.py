"""``merge``, ``remap``, ``filter`` and ``sample``: thin commands over :mod:`datatools.ops.surgery`."""
from __future__ import annotations

import functools

import click

from datatools.cli.common import (OutPath, Number, convention_option, count, esc, format_option, images_mode_option,
                                  images_option, json_option, max_xml_option, normalize_names_option, parse_classes,
                                  precision_option, run_writer, sets_option, SourcePath, with_options, workers_option)
from datatools.formats import FORMATS  # the registry only: no format module is imported


def output_options(f, *, one_source: bool = True):
    """What every surgery command takes: how SRC is read (convert's reader options: --format, --images, --sets,
    --pixel-convention, --max-xml-mb; ``merge`` makes its own --images, one per source), the output format, images,
    workers, --json."""
    options = [
        format_option,
        *([images_option] if one_source else []),
        sets_option,
        convention_option,
        max_xml_option,
        click.option("--to", "to", type=click.Choice(list(FORMATS)), default=None,
                     help="Output format. Default: the (first) source's format."),
        images_mode_option,
        precision_option,
        workers_option,
        json_option,
    ]
    return with_options(f, options)


def _run(fn, *args, as_json: bool, workers: int, fmt: str, **kwargs) -> None:
    run_writer(fn, *args, as_json=as_json, render=render, fmt=None if fmt == "auto" else fmt,
               workers=workers or None, **kwargs)


def render(report) -> None:
    """Convert's summary (:func:`datatools.cli.convert.render_summary`) with the command's own details."""
    from datatools.cli.convert import render_summary

    s, d = report.summary, report.details
    before = d.get("classes_before")
    mapping = d.get("map") or {}
    if before is not None and mapping:  # a class's "before" is what the map sends into it: circle:round counts circles
        into: dict[str, int] = {}
        for old, n in before.items():
            new = mapping.get(old, old)
            if new is not None:
                into[new] = into.get(new, 0) + n
        before = into

    def details(con) -> None:
        for old, new in mapping.items():
            n = d["classes_before"].get(old, 0)
            con.print(f"map: {esc(old)} " + (f"-> {esc(new)}" if new is not None else "dropped") + f" ({count(n, 'object')})")
        if before is not None:
            gone = [k for k in d["classes_before"] if k not in s.class_counts and k not in mapping]
            if gone:
                con.print("classes no longer present: " + ", ".join(esc(k) for k in gone))
        if d.get("collisions"):
            con.print(f"[yellow]{count(len(d['collisions']), 'image id')} collided[/] and were renamed "
                      f"(first: {esc(d['collisions'][0]['image_id'])} -> {esc(d['collisions'][0]['renamed'])})")
        for names in d.get("case_variants", []):
            folded = "folded" if d.get("case_variants_folded") else "kept apart (--normalize-names folds them)"
            con.print(f"[yellow]case variants[/] {esc(', '.join(names))}: {folded}")
        if d.get("sample", {}).get("classes_missing"):
            con.print("[yellow]classes not in the sample[/]: "
                      + ", ".join(esc(c) for c in d["sample"]["classes_missing"]))

    # collisions are summed up in the details; the findings table keeps room for the rest
    render_summary(s, command=report.command, before=before, details=details, summed_up=("name-collision",))


@click.command("merge")
@click.argument("paths", nargs=-1, required=True, type=OutPath())
@normalize_names_option
@click.option("--splits", default=None, help="Keep only these splits, comma-separated (e.g. train,val); a split "
              "no source has is an error that lists those found. Default: all.")
@click.option("--images", "images", multiple=True, type=click.Path(file_okay=False),
              help="Image folder of a source, once per source in the sources' order (all of them or none).")
@functools.partial(output_options, one_source=False)
def merge_cmd(paths, normalize_names, splits, images, **opts):
    """Merge datasets A B [C ...] into OUT (the last path).

    Classes are united by name; image ids that two sources share are renamed <id>__src<k> (k: the source's
    position) and reported; splits are kept. OUT is a folder, in the first source's format unless --to.
    --sets, --pixel-convention and --max-xml-mb apply to every source.
    """
    if len(paths) < 3:
        raise click.UsageError("give at least two sources and OUT")
    srcs = [SourcePath().convert(p, None, None) for p in paths[:-1]]
    from datatools.ops.surgery import merge

    wanted = [s.strip() for s in splits.split(",") if s.strip()] if splits else None
    _run(merge, srcs, paths[-1], normalize_names=normalize_names, splits=wanted, images=list(images) or None,
         **opts)


@click.command("remap")
@click.argument("src", type=SourcePath())
@click.argument("out", type=OutPath())
@click.option("--map", "mapping", required=True,
              help="'old:new,old2:new,gone:' (empty target drops the class), or a .yaml ({old: new}) or .csv "
                   "(old,new rows) file. Several old names to one new name merge them.")
@click.option("--order", default=None,
              help="The output class order: 'a,b,c' or a file with one name per line. Default: the source order, "
                   "each class replaced by its new name.")
@output_options
def remap_cmd(src, out, mapping, order, **opts):
    """Rename, merge or drop classes of SRC and write OUT; the summary shows counts before and after."""
    from datatools.ops.surgery import remap

    _run(remap, src, out, mapping, order=parse_classes(order), **opts)


@click.command("filter")
@click.argument("src", type=SourcePath())
@click.argument("out", type=OutPath())
@click.option("--classes", default=None, help="Keep only these classes ('a,b' or a file), in this order.")
@click.option("--min-size", type=Number(min=0), default=None,
              help="Drop boxes whose shorter side is below this many pixels.")
@click.option("--max-size", type=Number(min=0), default=None,
              help="Drop boxes whose longer side is above this many pixels.")
@click.option("--min-area", type=Number(min=0), default=None, help="Drop boxes with w*h below this (px²).")
@click.option("--drop-empty", is_flag=True, help="Drop images left without objects.")
@click.option("--only-empty", is_flag=True, help="Keep only images without objects (negatives).")
@click.option("--ids", default=None, metavar="REGEX", help="Keep only images whose id matches this regex (search).")
@output_options
def filter_cmd(src, out, classes, **opts):
    """Keep the objects and images of SRC that pass every test; everything dropped is counted by reason."""
    from datatools.ops.surgery import filter_data

    if opts["min_size"] is not None and opts["max_size"] is not None and opts["min_size"] > opts["max_size"]:
        raise click.UsageError("--min-size is above --max-size: no box has a shorter side above its longer side")
    names = parse_classes(classes)
    if classes is not None and not names:
        raise click.BadParameter("no class named", param_hint="--classes")
    _run(filter_data, src, out, classes=names, **opts)


@click.command("sample")
@click.argument("src", type=SourcePath())
@click.argument("out", type=OutPath())
@click.option("-n", "n", type=click.IntRange(min=1), default=None, help="Number of images to keep.")
@click.option("--frac", type=Number(0, 1, min_open=True), default=None, help="Share of images to keep.")
@click.option("--stratified", is_flag=True,
              help="Keep each class's share (split's stratification) and every class present where the size allows.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Random seed: the same seed, the same sample.")
@output_options
def sample_cmd(src, out, n, frac, stratified, seed, **opts):
    """Write a subset of SRC (-n images or --frac of them) to OUT."""
    if (n is None) == (frac is None):
        raise click.UsageError("give one of -n and --frac")
    from datatools.ops.surgery import sample

    _run(sample, src, out, n=n, frac=frac, stratified=stratified, seed=seed, **opts)
