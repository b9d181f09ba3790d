"""``stats``: exact channel mean/std and dataset statistics; thin over :mod:`datatools.ops.stats`."""
from __future__ import annotations

import math

import click

from datatools.cli.common import (OutPath, class_rows, console, count, emit_json, engine_options, errors_to_click, esc,
                                  json_option, read_dataset, reader_options, SourcePath, stage_progress, table,
                                  workers_option)


@click.command("stats")
@click.argument("src", type=SourcePath())
@reader_options(classes_help="Count only these classes (file or 'a,b,c'): objects of other classes are left out "
                             "and counted; for YOLO without names, the names of ids 0..n-1.")
@click.option("--labels-only", is_flag=True, help="Label statistics only: no pixel is read.")
@click.option("--resize", default=None,
              help="Statistics after the resize training uses: N = shorter side to N (transforms.v2.Resize(N)), "
                   "WxH = exactly W x H.")
@click.option("--sample", type=click.IntRange(1), default=None,
              help="Quick estimate from N images drawn with --seed (reported as an estimate).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed for --sample.")
@click.option("--plots", "plots_dir", type=OutPath(file_okay=False), default=None,
              help="Write PNG histograms (classes, objects per image, box sizes, image sizes, pixel values) here.")
@workers_option
@engine_options
@json_option
def stats_cmd(src, reader, labels_only, resize, sample, seed, plots_dir, workers, engine, ray_address, as_json):
    """Exact per-channel pixel mean/std of SRC (in [0, 1]) and statistics of its labels.

    Pixels: every image is read once as RGB (grayscale replicated, alpha dropped, palette converted, 16-bit
    images keep their top 8 bits) and counted into integer histograms, so the result is exact and identical for any
    --workers. Corrupt images are listed and skipped. Prints a ready-to-paste transforms.v2.Normalize(...).
    """
    from datatools.core.parallel import stage_callbacks
    from datatools.ops.sanitize import prepare
    from datatools.ops.stats import dataset_stats, parse_resize

    try:
        resize_spec = parse_resize(resize)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--resize") from e
    if labels_only and (resize_spec or sample):
        raise click.UsageError("--resize and --sample apply to pixel statistics, not with --labels-only")
    with errors_to_click():
        with stage_progress(not as_json) as update:
            ds = read_dataset(src, **reader, workers=workers, update=update, engine=engine, ray_address=ray_address,
                              select=True)
            if plots_dir:  # never inside the dataset (see core.paths.check_output_dir)
                from datatools.core.paths import check_output_dir, input_folders

                check_output_dir(plots_dir, input_folders(ds, src, reader["images"]))
            # the boxes a conversion or a training set keeps: clipped to the image, the inverted, empty and outside
            # ones dropped and counted (read as written, an inverted box was a zero-width one, with no finding)
            report = dataset_stats(prepare(ds), labels_only=labels_only, resize=resize_spec, sample=sample, seed=seed,
                                   workers=workers or None, engine=engine, ray_address=ray_address,
                                   **stage_callbacks(update, "pixels"))
        plot_files = []
        if plots_dir:
            from datatools.viz.plots import write_stats_plots

            plot_files = write_stats_plots(report, plots_dir)
    # Every image unreadable: the pixel statistics asked for do not exist. Everything else is still reported, then
    # the command fails (exit 1), so a script cannot take NaN for a normalization constant.
    no_pixels = report.pixels is not None and report.pixels.images == 0
    left_out = [f for f in report.findings if f.code != "image-warning"]
    if as_json:
        d = report.to_dict()
        d["plots"] = plot_files
        if no_pixels:
            d["pixels"]["normalize"] = None
        emit_json(d)
    else:
        render(report, plot_files)
    if no_pixels:
        raise click.ClickException(
            f"none of the {count(len(left_out), 'image')} could be read: no pixel statistics (the reasons are "
            "listed above)" if left_out else "there are no images to read: no pixel statistics")


def _q(d: dict, digits: int = 1) -> list[str]:
    return ["-" if not math.isfinite(d[k]) else f"{d[k]:,.{digits}f}" for k in ("min", "p5", "median", "mean", "p95", "max")]


def render(report, plot_files) -> None:
    from rich.text import Text

    con = console()
    lab = report.labels
    t = table(title=f"{report.src} ({report.format}): {count(lab.images, 'image')}, {count(lab.objects, 'object')}, "
                    f"{lab.empty_images:,} without objects", title_justify="left")
    t.add_column("class")
    t.add_column("objects", justify="right")
    t.add_column("share", justify="right")
    t.add_column("images", justify="right")
    names, more = class_rows(lab.class_objects)
    for c in names:
        n = lab.class_objects[c]
        t.add_row(c, f"{n:,}", f"{n / lab.objects:.1%}" if lab.objects else "-", f"{lab.class_images[c]:,}")
    if more:
        t.add_row(more, "", "", "")
    con.print(t)
    d = table(title="Distributions", title_justify="left")
    d.add_column("")
    for col in ("min", "p5", "median", "mean", "p95", "max"):
        d.add_column(col, justify="right")
    d.add_row("objects per image", *_q(lab.objects_per_image, 2))
    for k in ("width", "height", "area", "aspect"):
        d.add_row(f"box {k} (px)" if k != "aspect" else "box aspect (w/h)", *_q(lab.boxes_abs[k], 2 if k == "aspect" else 1))
    for k in ("width", "height", "area"):
        d.add_row(f"box {k} / image", *_q(lab.boxes_rel[k], 4))
    d.add_row("image width (px)", *_q(lab.image_sizes["width"], 0))
    d.add_row("image height (px)", *_q(lab.image_sizes["height"], 0))
    con.print(d)
    cs = lab.coco_sizes
    tot = max(1, sum(cs.values()))
    con.print("COCO sizes (box area): " + ", ".join(f"{k} {v:,} ({v / tot:.1%})" for k, v in cs.items()))
    common = ", ".join(f"{s['width']}x{s['height']} ({s['images']:,})" for s in lab.image_sizes["most_common"][:5])
    con.print(f"image sizes: {lab.image_sizes['distinct']} distinct; most common {common or '-'}"
              + (f"; {lab.no_size:,} without a known size" if lab.no_size else ""))
    if report.not_selected:
        con.print(f"--classes: {count(report.not_selected, 'object')} of other classes left out")
    read_problems = [f for f in report.read_findings if f.severity.value != "info"]
    if read_problems:
        con.print(f"[yellow]reading found {count(len(read_problems), 'error or warning', 'errors or warnings')} "
                  "(details: datatools check)[/]")
    if lab.flags:
        con.print("flags: " + ", ".join(f"{k} {v:,}" for k, v in lab.flags.items()))
    px = report.pixels
    if px is not None and px.images:
        p = table(title="Pixels (RGB, [0, 1] scale)", title_justify="left")
        p.add_column("")
        for ch in "RGB":
            p.add_column(ch, justify="right")
        p.add_row("mean", *[f"{v:.6f}" for v in px.mean])
        p.add_row("std", *[f"{v:.6f}" for v in px.std])
        con.print(p)
        what = (f"[yellow]ESTIMATE from a sample of {px.images:,} of {count(px.population, 'image')} (seed)[/]"
                if px.estimate else f"exact over {count(px.images, 'image')}")
        size = f", after resize {px.resize if not isinstance(px.resize, tuple) else '%dx%d' % px.resize}" if px.resize else ""
        con.print(f"{what}, {px.pixels:,} pixels per channel{size}; modes: "
                  + ", ".join(f"{k} {v:,}" for k, v in px.modes.items()))
        con.print(Text(px.normalize, style="bold"), soft_wrap=True)  # one line, ready to paste; no markup in it
    left_out = [f for f in report.findings if f.code != "image-warning"]
    warned = [f for f in report.findings if f.code == "image-warning"]
    for found, head in ((left_out, f"{count(len(left_out), 'image')} left out of the pixel statistics:"),
                        (warned, f"{count(len(warned), 'warning')} from PIL (images counted):")):
        if not found:
            continue
        con.print(Text(head, style="yellow"))
        for f in found[:50]:  # one per line, unwrapped, so paths can be copied
            con.print(f"  {f.path}: [{f.code}] {f.message}", soft_wrap=True, markup=False)
        if len(found) > 50:
            con.print(f"  ... and {len(found) - 50:,} more (all of them with --json)")
    if plot_files:
        con.print(f"[green]wrote[/] {count(len(plot_files), 'plot')}: " + esc(", ".join(plot_files)))
