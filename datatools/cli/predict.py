"""``predict``: run a trained checkpoint on images and write COCO results JSON."""
from __future__ import annotations

import click

from datatools.formats import FORMATS

from datatools.cli.common import (OutPath, Number, console, count, device_option, emit_json, errors_to_click, esc,
                                  json_option, stage_progress)


@click.command("predict")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.argument("images", type=click.Path(exists=True))
@click.option("--out", "-o", type=OutPath(dir_okay=False), default="preds.json", show_default=True,
              help="COCO results JSON to write: [{image_id, file_name, category_id, bbox [x,y,w,h], score}].")
@click.option("--format", "-f", "format", type=click.Choice(["auto", "images", *FORMATS]), default="auto",
              show_default=True,
              help="IMAGES is a dataset in this format: predict its images with the ids `evaluate` uses for it. "
                   "auto: detected as `convert` and `check` detect it, else a plain image folder; images: always "
                   "an image folder (or one image), ids 1..N in sorted path order.")
@click.option("--split", default=None, help="For a dataset: only this split (e.g. val).")
@device_option
@click.option("--batch-size", "-b", type=click.IntRange(1), default=8, show_default=True, help="Images per batch.")
@click.option("--conf", type=Number(0, 1), default=0.001, show_default=True,
              help="Minimum score kept (low for mAP; raise it for drawing).")
@click.option("--max-det", type=click.IntRange(1), default=100, show_default=True, help="Detections per image.")
@click.option("--image-size", type=click.IntRange(32), default=None, help="Letterbox size, or the shorter side for a --resize-mode keep-aspect model "
                   "(default: the training size).")
@click.option("--workers", "-j", type=click.IntRange(0), default=2, show_default=True, help="DataLoader workers.")
@json_option
def predict_cmd(model, images, as_json, **opts):
    """Run the checkpoint MODEL (last.pt / best.pt from `datatools train`) on IMAGES.

    Then: `datatools evaluate --gt DATA --pred preds.json` or `datatools visualize ... --pred preds.json`.
    """
    from datatools.training.prediction import predict

    with errors_to_click(), stage_progress(not as_json) as update:
        r = predict(model, images, progress=update, **opts)
    if as_json:
        emit_json({"out": r.out, "images": r.images, "detections": r.detections, "classes": list(r.classes),
                   "device": r.device, "skipped": r.skipped})
    else:
        for line in r.skipped:
            console().print(f"[yellow]skipped[/] {esc(line)}")
        console().print(f"[green]{count(r.detections, 'detection')}[/] on {count(r.images, 'image')} ({r.device}) -> "
                        f"[bold]{esc(r.out)}[/]")
