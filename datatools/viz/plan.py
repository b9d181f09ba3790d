"""What ``visualize`` draws: the images it picks, and for each one the boxes, findings and predictions to draw.

Use :func:`select_images` to pick images like ``datatools visualize`` does (ids, classes, ``--check``, shuffle,
limit) and :func:`plan_image` to turn one image into an :class:`ImageJob`, a picklable list of what to draw that a
worker renders (:mod:`datatools.viz.render`). Predictions are read and matched by
:func:`datatools.metrics.predictions.load_predictions`, as ``datatools evaluate`` reads them, then grouped by image
(:func:`predictions_to_draw`).
"""
from __future__ import annotations

import fnmatch
import os
import posixpath
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from datatools.core.errors import UsageError
from datatools.core.fs import read_text
from datatools.core.model import Annotation, Dataset, ImageRecord
from datatools.ops.sanitize import BOX_MESSAGES, box_problem
from datatools.viz.draw import WARNING_COLOUR, DrawItem, class_colour

# ------------------------------------------------------------------------------------------------ predictions

@dataclass
class PredictionSet:
    """Predictions grouped for drawing: ``by_image`` maps image_id -> annotations with scores (no threshold applied),
    and the counts of what could not be matched (nothing is dropped silently)."""

    path: str
    by_image: dict[str, list[Annotation]]
    total: int = 0
    matched: int = 0
    unknown_image: int = 0
    unknown_category: int = 0
    malformed: int = 0

    def to_dict(self) -> dict:
        return {"path": self.path, "total": self.total, "matched": self.matched, "unknown_image": self.unknown_image,
                "unknown_category": self.unknown_category, "malformed": self.malformed}


def predictions_to_draw(path: str | os.PathLike, ds: Dataset) -> PredictionSet:
    """The predictions file ``path`` matched to ``ds`` by :func:`datatools.metrics.predictions.load_predictions`
    (the rules of ``datatools evaluate``; an entry without a score reads as 1 here, as it is only drawn), grouped
    by image."""
    from datatools.metrics.inputs import dataset_keys
    from datatools.metrics.predictions import load_predictions

    keys = dataset_keys(ds)
    pred = load_predictions(path, keys, missing_score=1.0)
    t = pred.table
    out = PredictionSet(path=str(path), by_image={}, total=pred.read, matched=len(t),
                        unknown_image=pred.unmatched_images, unknown_category=sum(pred.unknown_categories.values()),
                        malformed=pred.malformed)
    for i, k, box, score in zip(t.image.tolist(), t.label.tolist(), t.box.tolist(), t.score.tolist()):
        out.by_image.setdefault(keys.images[i].image_id, []).append(
            Annotation(keys.classes[k], tuple(box), score=score))  # type: ignore[arg-type]
    return out


# ------------------------------------------------------------------------------------------------ planning

@dataclass(frozen=True, slots=True)
class ImageJob:
    """Everything a worker needs to draw one image (picklable, no dataset reference)."""

    image_id: str
    image_path: str
    caption: str
    note: str
    gt: tuple[DrawItem, ...]
    pred: tuple[DrawItem, ...] | None = None  # None: no prediction panel


def _stem(name: str) -> str:
    return posixpath.splitext(posixpath.basename(name.replace("\\", "/")))[0]


def _match_ids(images: Sequence[ImageRecord], ids: str) -> list[ImageRecord]:
    """``ids``: a file with one id per line (image_id, file name or stem), or comma-separated globs."""
    p = Path(ids)
    if p.is_file():
        try:  # a file the user wrote: UTF-8 or Notepad's UTF-16; other bytes are one line, not a traceback
            text = read_text(p)
        except OSError as e:
            raise UsageError(f"--ids {ids}: cannot read the file: {e.strerror or e}") from e
        wanted = {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")}
        return [im for im in images if im.image_id in wanted or im.file_name in wanted or _stem(im.file_name) in wanted
                or _stem(im.image_id) in wanted]
    globs = [g.strip() for g in ids.split(",") if g.strip()]
    if not globs:
        raise UsageError("--ids is empty")
    return [im for im in images if any(fnmatch.fnmatchcase(im.image_id, g) or fnmatch.fnmatchcase(im.file_name, g)
                                       for g in globs)]


def reader_box_findings(ds: Dataset) -> dict[str, list[tuple[str, tuple[float, float, float, float] | None]]]:
    """Boxes the reader already dropped (e.g. VOC boxes with ``xmin == xmax``): image_id -> [(code, box or None)].

    These objects are not in the model, only in ``ds.findings``, whose ``box`` (continuous pixels, the reader's
    convention applied) lets ``--check`` mark the spot. A finding without a box is still counted on its image.
    """
    out: dict[str, list] = {}
    for f in ds.findings:
        if f.code not in BOX_MESSAGES or not f.image_id or not f.objects:
            continue
        out.setdefault(f.image_id, []).append((f.code, f.box))
    return out


def select_images(ds: Dataset, *, classes: Sequence[str] | None = None, ids: str | None = None,
                  limit: int | None = None, shuffle: bool = False, seed: int = 0, check: bool = False,
                  predictions: PredictionSet | None = None) -> list[ImageRecord]:
    """The images to draw, in order: ``ids`` filter, then ``classes`` (images with at least one such object, in the
    ground truth or the predictions), then ``check`` (images with a box problem), then a seeded shuffle, then
    ``limit``. Never reorders or changes ``ds``."""
    images = list(ds.images)
    if ids:
        images = _match_ids(images, ids)
    if classes:
        wanted = set(classes)
        pb = predictions.by_image if predictions else {}
        images = [im for im in images if any(a.label in wanted for a in im.annotations)
                  or any(a.label in wanted for a in pb.get(im.image_id, ()))]
    if check:
        dropped = reader_box_findings(ds)
        images = [im for im in images if im.image_id in dropped
                  or any(box_problem(a.box, im.width, im.height) for a in im.annotations)]
    if shuffle:
        random.Random(seed).shuffle(images)
    if limit is not None:
        images = images[:limit]
    return images


def plan_image(im: ImageRecord, *, classes: set[str] | None, show_difficult: bool, check: bool, labels: bool,
               predictions: Sequence[Annotation] | None, score_thr: float, overlay: bool,
               counts: Counter, dropped: Sequence[tuple[str, tuple[float, float, float, float] | None]] = ()
               ) -> ImageJob:
    """What to draw on one image, counting into ``counts`` (boxes drawn, difficult hidden, findings, predictions).
    ``dropped``: boxes the reader dropped (see :func:`reader_box_findings`), drawn as findings under ``check``."""
    gt: list[DrawItem] = []
    marks: list[DrawItem] = []  # objects the reader dropped: findings, not boxes
    findings = 0
    for code, box in dropped if check else ():
        counts[f"finding:{code}"] += 1
        findings += 1
        if box is not None:
            marks.append(DrawItem(box, WARNING_COLOUR, f"{code} (dropped on read)" if labels else "", "warning"))
    for a in im.annotations:
        if classes is not None and a.label not in classes:
            counts["boxes_filtered"] += 1
            continue
        problem = box_problem(a.box, im.width, im.height) if check else None
        if problem:
            gt.append(DrawItem(a.box, class_colour(a.label), f"{problem}: {a.label}" if labels else "", "warning"))
            counts[f"finding:{problem}"] += 1
            findings += 1
            continue
        if a.difficult and not show_difficult:
            counts["difficult_hidden"] += 1
            continue
        if a.difficult:
            counts["difficult_drawn"] += 1
        # a crowd region (COCO iscrowd) is no object either: evaluation and training ignore it, so it is drawn so
        kind = "difficult" if a.difficult else "crowd" if a.iscrowd else ""
        text = (f"{a.label} ({kind})" if kind else a.label) if labels else ""
        gt.append(DrawItem(a.box, class_colour(a.label), text, "dashed" if kind else "solid"))
    counts["boxes_drawn"] += len(gt)
    pred: list[DrawItem] | None = None
    if predictions is not None:
        pred = []
        for p in sorted(predictions, key=lambda p: p.score or 0.0):  # best drawn last, on top
            if classes is not None and p.label not in classes:
                continue
            if (p.score or 0.0) < score_thr:
                counts["preds_below_thr"] += 1
                continue
            pred.append(DrawItem(p.box, class_colour(p.label), f"{p.label} {p.score:.2f}" if labels else "",
                                 "solid", thin=overlay))
        counts["preds_drawn"] += len(pred)
    if pred is not None:
        note = f"{len(gt)} gt · {len(pred)} pred"
    else:
        note = f"{len(gt)} box" + ("" if len(gt) == 1 else "es")
    if findings:
        note = f"!{findings} finding{'s' if findings > 1 else ''} · {note}"
    return ImageJob(im.image_id, im.image_path or "", im.file_name or im.image_id, note, tuple(gt + marks),
                    tuple(pred) if pred is not None else None)
