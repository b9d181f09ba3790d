"""``visualize``: draw boxes on images, write contact sheets, put predictions beside the ground truth."""
from __future__ import annotations

import click

from datatools.cli.common import (OutPath, Number, console, count, counts_table, emit_json, errors_to_click, esc,
                                  json_option, read_dataset, reader_options, SourcePath, stage_progress, table,
                                  workers_option)


def _grid(ctx, param, value):
    if value is None:
        return None
    from datatools.viz.sheet import parse_grid

    try:
        return parse_grid(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e


@click.command("visualize")
@click.argument("src", type=SourcePath())
@click.argument("out", type=OutPath())
@reader_options(classes_help="Draw only these classes (file or 'a,b,c'), and only images that contain at least one "
                             "of them.", convention=True)
@click.option("--ids", default=None,
              help="Images to draw: comma-separated globs on image id or file name ('2008_*'), or a file with one "
                   "id, file name or stem per line.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Draw at most N images (after the filters).")
@click.option("--shuffle", is_flag=True, help="Pick images in a random order (reproducible with --seed).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed for --shuffle.")
@click.option("--show-difficult", is_flag=True, help="Also draw difficult objects (dashed, labelled '(difficult)').")
@click.option("--pred", "pred", type=SourcePath(), default=None,
              help="Predictions to draw beside the ground truth, matched as `evaluate --pred` matches them: COCO "
                   "results JSON [{image_id, category_id, bbox, score}] or a folder of YOLO txt with confidences. "
                   "For VOC/YOLO, image_id k is the k-th image in sorted order and category_id c the c-th class "
                   "(as voc2coco writes them); an entry with file_name matches by file name or stem.")
@click.option("--score-thr", type=Number(0, 1), default=0.3, show_default=True,
              help="Draw predictions with at least this score.")
@click.option("--pred-layout", type=click.Choice(["side", "overlay"]), default="side", show_default=True,
              help="Predictions in a panel beside the ground truth, or drawn over it (thinner, with scores).")
@click.option("--check", "check_mode", is_flag=True,
              help="Draw only images with box problems (as `datatools check` finds them: out of bounds, zero area, "
                   "inverted, outside) and mark those boxes as red/yellow hazard tape.")
@click.option("--grid", callback=_grid, default=None, metavar="RxC",
              help="Write contact sheets of R rows x C columns of captioned thumbnails instead of one file per image.")
@click.option("--tile-size", "tile", type=click.IntRange(32, 2048), default=320, show_default=True,
              help="Thumbnail width in pixels for --grid (height is 3/4 of it).")
@click.option("--max-size", type=click.IntRange(0), default=0, show_default="full size",
              help="Shrink each output image to fit this many pixels (one file per image only).")
@click.option("--ext", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True,
              help="Output type: JPEG, or lossless PNG (larger, much slower to write for photos).")
@click.option("--quality", type=click.IntRange(1, 100), default=90, show_default=True, help="JPEG quality.")
@click.option("--no-labels", is_flag=True, help="Draw boxes without label text.")
@workers_option
@json_option
def visualize_cmd(src, out, reader, ids, limit, shuffle, seed, show_difficult, pred, score_thr, pred_layout,
                  check_mode, grid, tile, max_size, ext, quality, no_labels, workers, as_json):
    """Draw the boxes of SRC (any format datatools reads) on its images and write them into the folder OUT.

    Each class has a fixed colour (from a hash of its name). Boxes are drawn upright after the image's EXIF
    orientation, the frame annotations are in. Missing or unreadable images are listed and skipped.

    \b
    Examples:
      datatools visualize sample_data out/viz --grid 4x4 --limit 64
      datatools visualize VOC2012 out/bad --check --grid 5x5
      datatools visualize data/coco/instances_val.json out/pred -f coco --pred results.json --score-thr 0.5
    """
    from datatools.core.parallel import stage_callbacks
    from datatools.viz.render import visualize

    with errors_to_click():
        with stage_progress(enabled=not as_json) as update:
            # read as every command reads SRC (--classes here picks what to draw, so the reader keeps every class)
            classes = reader.pop("classes")
            ds = read_dataset(src, **reader, workers=workers, update=update)
            result = visualize(ds, out, classes=classes, ids=ids, limit=limit, shuffle=shuffle,
                               seed=seed, show_difficult=show_difficult, predictions=pred, score_thr=score_thr,
                               pred_layout=pred_layout, check=check_mode, grid=grid, tile=tile, max_size=max_size,
                               ext=ext, quality=quality, labels=not no_labels, workers=workers or None,
                               **stage_callbacks(update, "sheets" if grid else "images"))
    if as_json:
        emit_json(result.to_dict())
    else:
        render(result, out, grid, score_thr)
    if not result.images_selected and (ids or classes) and not check_mode:  # a selection that matched nothing
        raise click.ClickException("no image matched " + " and ".join(
            o for o, v in (("--ids", ids), ("--classes", classes)) if v) + ": nothing drawn")
    if result.images_selected and not result.images_drawn:  # every picture failed: not "nothing matched"
        raise click.ClickException(f"none of the {count(result.images_selected, 'selected image')} could be drawn "
                                   "(the reasons are listed above, or under --json's skipped)")


def render(result, out, grid, score_thr: float) -> None:
    """The counts, the skipped images and where the pictures are."""
    con = console()
    rows = {"images selected": result.images_selected, "images drawn": result.images_drawn,
            "boxes drawn": result.boxes_drawn}
    if grid:
        rows["contact sheets"] = len(result.sheets)
    if result.difficult_hidden or result.difficult_drawn:
        rows["difficult hidden" if result.difficult_hidden else "difficult drawn (dashed)"] = (
            result.difficult_hidden or result.difficult_drawn)
    if result.boxes_filtered:
        rows["boxes of other classes (not drawn)"] = result.boxes_filtered
    if result.predictions is not None:
        p = result.predictions
        rows[f"predictions drawn (score ≥ {score_thr:g})"] = result.preds_drawn
        rows["predictions below the threshold"] = result.preds_below_thr
        for key, label in (("unknown_image", "predictions for unknown images"),
                           ("unknown_category", "predictions of unknown categories"),
                           ("malformed", "malformed prediction entries")):
            if p[key]:
                rows[label] = p[key]
    for code, n in result.findings_drawn.items():
        rows[f"finding drawn: {code}"] = n
    rows["images skipped"] = len(result.skipped)
    con.print(counts_table("visualize", rows, key="what"))
    if result.skipped:
        t = table(title="Skipped images", title_justify="left")
        for col in ("image", "path", "reason"):
            t.add_column(col, overflow="fold")
        for s in result.skipped[:50]:
            t.add_row(s["image_id"], s["path"], s["reason"])
        con.print(t)
        if len(result.skipped) > 50:
            con.print(f"... {len(result.skipped) - 50} more (use --json)")
    # soft_wrap: a path is printed whole on one line, so it can be copied
    if not result.images_selected:
        con.print(f"[yellow]nothing drawn[/] (no image matched the filters); output folder: [bold]{esc(out)}[/]",
                  soft_wrap=True)
    elif not result.files:
        return  # every selected image failed: the command says so
    elif grid:
        con.print(f"[green]wrote {count(len(result.files), 'contact sheet')}[/]: [bold]{esc(result.files[0])}[/]"
                  + (f" ... {esc(result.files[-1])}" if len(result.files) > 1 else ""), soft_wrap=True)
    else:
        con.print(f"[green]wrote {count(len(result.files), 'image')} to[/] [bold]{esc(out)}[/]", soft_wrap=True)
