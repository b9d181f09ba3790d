"""``evaluate``: COCO metrics (faster-coco-eval or pycocotools) and VOC AP of predictions against ground truth in
any format."""
from __future__ import annotations

import contextlib

import click

from datatools.formats import FORMATS

from datatools.cli.common import (OutPath, Number, console, convention_option, count, emit_json, errors_to_click, esc,
                                  findings_table, images_option, json_option, max_xml_option, parse_classes,
                                  SourcePath, table, workers_option)


@click.command("evaluate")
@click.option("--gt", "gt", required=True, type=SourcePath(),
              help="Ground truth: VOC root, YOLO data.yaml/folder, or COCO JSON (or a folder with annotations/).")
@click.option("--pred", "pred", required=True, type=SourcePath(),
              help="Predictions: COCO results JSON [{image_id, category_id, bbox [x,y,w,h], score}] (an optional "
                   "file_name is matched first), or a folder of YOLO txt files 'class cx cy w h conf'.")
@click.option("--gt-format", "-f", "gt_format", type=click.Choice(["auto", *FORMATS]), default="auto",
              show_default=True,
              help="Format of --gt (auto: detected as `convert` and `check` detect it; an explicit format wins).")
@click.option("--split", default=None,
              help="Evaluate one split: VOC ImageSets/Main list, YOLO split, or annotations/instances_<split>.json. "
                   "COCO image ids for VOC/YOLO are 1..N over this split's images sorted by id (not the list's order), as "
                   "voc2coco writes them.")
@click.option("--classes", default=None, help="Class list and order (file or 'a,b,c'); category ids are 1..K in it.")
@convention_option
@images_option
@click.option("--metric", type=click.Choice(["all", "coco", "voc"]), default="all", show_default=True,
              help="Which metrics to compute.")
@click.option("--iou", type=Number(0, 1, min_open=True), default=0.5, show_default=True,
              help="IoU threshold for VOC AP and the confusion matrix (a match needs IoU >= this).")
@click.option("--voc-method", "method", type=click.Choice(["allpoint", "11point"]), default="allpoint",
              show_default=True, help="VOC AP interpolation: allpoint (VOC2010+) or 11point (VOC2007).")
@click.option("--legacy-plus-one", is_flag=True,
              help="VOC AP with the devkit's +1 pixel widths. Only for boxes that are inclusive pixel indices "
                   "(VOC read --pixel-convention as-is); a devkit reading already includes the +1.")
@click.option("--backend", type=click.Choice(["auto", "pycocotools", "faster-coco-eval"]), default="auto",
              show_default=True, help="COCO backend: auto uses faster-coco-eval when installed (same numbers).")
@click.option("--plots", type=OutPath(file_okay=False), default=None,
              help="Write PR curves per class and a confusion matrix as PNG into this folder.")
@click.option("--conf", type=Number(0, 1), default=0.25, show_default=True,
              help="Score threshold for the confusion matrix (AP uses every detection).")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True, help="Findings to show in the table.")
@max_xml_option
@workers_option
@json_option
def evaluate_cmd(classes, limit, workers, as_json, **opts):
    """Evaluate detections against ground truth: COCO's 12 numbers (identical to pycocotools'
    COCOeval.summarize()) and VOC AP per class (difficult boxes ignored, one match per box, greedy by score).

    Predictions for images or categories that are not in the ground truth are counted and reported, never
    ignored silently. Exit status 0 when the evaluation ran (even with such findings); 1 when the ground truth
    holds no image, a predictions file cannot be used (e.g. YOLO rows in pixels), or not one of its predictions
    names an image of the ground truth.
    """
    from datatools.metrics.evaluate import evaluate

    with errors_to_click():
        with console(stderr=True).status("evaluating...") if not as_json else contextlib.nullcontext():
            report = evaluate(classes=parse_classes(classes), workers=workers or None, **opts)
    if as_json:
        emit_json(report.to_dict())
    else:
        render_report(report, limit=limit)
    elsewhere = sum(f.objects for f in report.findings if f.code == "pred-unknown-image")
    if report.predictions_read and elsewhere == report.predictions_read:  # a score of 0 for another dataset's
        raise click.ClickException(f"none of the {count(report.predictions_read, 'prediction')} names an image of the "
                                   "ground truth (the reasons are listed above, or under --json's findings)")


def render_report(report, *, limit: int = 20) -> None:
    from rich.text import Text

    from datatools.metrics.coco import STAT_LABELS

    con = console()
    shown = [f for f in report.findings if f.code.startswith("pred-") or f.severity.value == "error"]
    if shown:
        con.print(findings_table(shown, limit=limit, title="Input problems"))
    t = table(title=f"Per class ({count(report.images, 'image')}, {count(report.gt_boxes, 'box', 'boxes')} + "
                    f"{report.gt_ignored:,} ignored, {count(report.predictions_used, 'detection')})",
              title_justify="left")
    t.add_column("class")
    for col in ("GT", "det", "TP", "FP"):
        t.add_column(col, justify="right")
    if report.voc is not None:
        pct = int(round(report.voc.iou_threshold * 100))
        t.add_column(f"AP{pct}", justify="right")
        t.add_column("recall", justify="right")
    if report.coco is not None:
        t.add_column("COCO AP", justify="right")
        t.add_column("COCO AP50", justify="right")
    for row in report.per_class_rows():
        cells = [row["class"]]
        cells += [f"{row.get(k, 0):,}" if row.get(k) is not None else "" for k in ("gt", "detections", "tp", "fp")]
        if report.voc is not None:
            cells += [_fmt(row.get("ap")), _fmt(row.get("recall"))]
        if report.coco is not None:
            cells += [_fmt(row.get("coco_ap")), _fmt(row.get("coco_ap50"))]
        t.add_row(*cells)
    if report.voc is not None or report.coco is not None:
        # styled through Text: table() prints strings as they are, so "[bold]" would show up literally
        cells = [Text("mean", style="bold"), "", "", "", ""]
        if report.voc is not None:
            cells += [Text(_fmt(report.voc.map), style="bold"), ""]
        if report.coco is not None:
            cells += [Text(_fmt(report.coco.stat('AP')), style="bold"), Text(_fmt(report.coco.stat('AP50')), style="bold")]
        t.add_row(*cells)
    con.print(t)
    if report.coco is not None:
        ct = table(title=f"COCO metrics ({report.coco.backend})", title_justify="left")
        ct.add_column("metric")
        ct.add_column("value", justify="right")
        for label, v in zip(STAT_LABELS, report.coco.stats):
            ct.add_row(label, f"{v:.3f}")
        con.print(ct)
    if report.voc is not None:
        m = report.voc.map
        con.print(f"[bold]VOC mAP@{report.voc.iou_threshold:g} ({report.voc.method.value}"
                  f"{', +1 widths' if report.voc.legacy_plus_one else ''}): {_fmt(m)}[/]")
    if report.coco is not None:
        con.print(f"[bold]COCO AP@\\[.5:.95]: {report.coco.stat('AP'):.4f}   AP50: {report.coco.stat('AP50'):.4f}[/]")
    if report.plots:
        con.print(f"plots: {count(len(report.plots), 'PNG file')} in [bold]{esc(_common_dir(report.plots))}[/]")


def _fmt(v) -> str:
    return "-" if v is None or v != v else f"{v:.4f}"


def _common_dir(paths) -> str:
    import os

    return os.path.dirname(os.path.commonprefix(list(paths))) or "."
