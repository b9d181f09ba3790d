"""``anchors``: k-means anchors (1 - IoU distance); thin over :mod:`datatools.ops.anchors`."""
from __future__ import annotations

import click

from datatools.cli.common import (Number, console, emit_json, errors_to_click, esc, json_option, read_dataset,
                                  reader_options, SourcePath, stage_progress, table, workers_option)


@click.command("anchors")
@click.argument("src", type=SourcePath())
@reader_options(classes_help="Cluster only these classes' boxes (file or 'a,b,c'): objects of other classes are left out "
                             "and counted; for YOLO without names, the names of ids 0..n-1.")
@click.option("-k", "--num-anchors", "k", type=click.IntRange(1), default=9, show_default=True, help="Number of anchors.")
@click.option("--img-size", type=click.IntRange(0), default=640, show_default=True,
              help="Training input size: boxes are scaled so each image's longer side is this (0 = original pixels).")
@click.option("--iou-thr", type=Number(0, 1, min_open=True), default=0.5, show_default=True,
              help="IoU a box needs with its best anchor to count towards the BPR (best possible recall).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed for the k-means++ initialisation.")
@click.option("--n-init", type=click.IntRange(1), default=3, show_default=True,
              help="k-means runs from different seeds; the best mean IoU is kept.")
@workers_option
@json_option
def anchors_cmd(src, reader, k, img_size, iou_thr, seed, n_init, workers, as_json):
    """Cluster the box sizes of SRC into K anchors with k-means under the 1 - IoU distance.

    Prints the anchors (input pixels at --img-size, sorted by area), the mean best IoU over all boxes, the BPR at
    --iou-thr and the rows to paste under `anchors:` in a YOLOv5-style model yaml.
    """
    from datatools.ops.anchors import compute_anchors

    with errors_to_click(), stage_progress(not as_json) as update:
        ds = read_dataset(src, **reader, workers=workers, update=update, select=True)
        res = compute_anchors(ds, k=k, img_size=img_size or None, iou_thr=iou_thr, seed=seed, n_init=n_init)
    if as_json:
        emit_json(res.to_dict())
        return

    con = console()
    size = f"at --img-size {res.img_size}" if res.img_size else "in original pixels"
    t = table(title=f"{len(res.anchors)} anchors {size} (seed {res.seed}), sorted by area", title_justify="left")
    for col in ("#", "width", "height", "area", "aspect w/h", "boxes"):
        t.add_column(col, justify="right")
    for i, ((w, h), n) in enumerate(zip(res.anchors, res.cluster_sizes)):
        t.add_row(str(i), f"{w:.1f}", f"{h:.1f}", f"{w * h:,.0f}", f"{w / h:.2f}", f"{n:,}")
    con.print(t)
    con.print(f"boxes: {res.boxes:,}" + (" (left out: " + ", ".join(f"{k2} {v:,}" for k2, v in res.skipped.items()) + ")"
                                          if res.skipped else ""))
    con.print(f"mean best IoU: [bold]{res.mean_iou:.4f}[/]   BPR at IoU >= {res.iou_thr:g}: [bold]{res.bpr:.4f}[/]")
    con.print("anchors:", soft_wrap=True)
    for row in res.yaml_rows():
        con.print(esc(f"  - [{', '.join(str(v) for v in row)}]"), soft_wrap=True)
    if len(res.anchors) % 3:
        con.print(f"[yellow]note:[/] a YOLOv5 head of 3 levels takes k = 3, 6 or 9 anchors (P6: 12), not {k}")
