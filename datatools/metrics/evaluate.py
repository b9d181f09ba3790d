"""One call from files to a full report: COCO metrics (faster-coco-eval or pycocotools) and VOC AP, per class, plus optional plots.

Use :func:`evaluate` from code and ``datatools evaluate`` from the shell; use :func:`evaluate_loaded` when the
ground truth and predictions are already in memory (the trainer does this every N epochs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from datatools.core.errors import NoInputError, UsageError
from datatools.core.model import Finding, Severity
from datatools.metrics.coco import CocoResult, coco_evaluate, results_from_arrays
from datatools.metrics.inputs import GroundTruth, load_ground_truth
from datatools.metrics.predictions import Predictions, load_predictions
from datatools.metrics.voc import APMethod, VOCResult, evaluate_voc, json_float

METRICS = ("all", "coco", "voc")


@dataclass
class EvalReport:
    """What ``evaluate`` found: the COCO and VOC results (either may be ``None`` when not asked for), counts and
    findings about the inputs, and the plot files written."""

    gt_source: str
    pred_source: str
    images: int
    gt_boxes: int
    gt_ignored: int
    predictions_read: int
    predictions_used: int
    classes: tuple[str, ...]
    coco: CocoResult | None
    voc: VOCResult | None
    findings: list[Finding] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = field(default=None, repr=False)

    def per_class_rows(self) -> list[dict]:
        rows = []
        for k, name in enumerate(self.classes):
            row: dict = {"class": name}
            if self.voc is not None:
                c = self.voc.classes[k]
                row.update(gt=c.positives, ignored=c.ignored_gt, detections=c.detections, tp=c.tp, fp=c.fp,
                           ap=json_float(c.ap), ap_allpoint=json_float(c.ap_allpoint),
                           ap_11point=json_float(c.ap_11point), recall=json_float(c.final_recall))
            if self.coco is not None:
                row.update(coco_ap=json_float(self.coco.per_class_ap.get(name)),
                           coco_ap50=json_float(self.coco.per_class_ap50.get(name)))
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        return {"gt": self.gt_source, "predictions": self.pred_source, "images": self.images,
                "gt_boxes": self.gt_boxes, "gt_ignored": self.gt_ignored, "predictions_read": self.predictions_read,
                "predictions_used": self.predictions_used, "classes": list(self.classes),
                "coco": self.coco.to_dict() if self.coco else None, "voc": self.voc.to_dict() if self.voc else None,
                "per_class": self.per_class_rows(), "findings": [f.to_dict() for f in self.findings],
                "plots": self.plots,
                "confusion_matrix": self.confusion.tolist() if self.confusion is not None else None}

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity is Severity.ERROR)


def evaluate_loaded(gt: GroundTruth, pred: Predictions, *, metric: str = "all", iou: float = 0.5,
                    method: APMethod | str = APMethod.ALL_POINT, legacy_plus_one: bool = False,
                    backend: str = "auto", plots: str | os.PathLike | None = None, conf: float = 0.25,
                    pred_source: str = "") -> EvalReport:
    """Evaluate predictions already matched to the ground truth (see :mod:`datatools.metrics.predictions`)."""
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    if not 0.0 < iou <= 1.0:
        raise UsageError(f"--iou must be in (0, 1], not {iou}")
    t = pred.table
    voc = coco = None
    if metric in ("all", "voc"):
        voc = evaluate_voc(gt.table, t, gt.classes, iou_threshold=iou, method=method, legacy_plus_one=legacy_plus_one)
    if metric in ("all", "coco"):
        ids = np.asarray(gt.image_ids, dtype=object)[t.image] if len(t) else np.zeros(0)
        cats = np.asarray(gt.category_ids, dtype=object)[t.label] if len(t) else np.zeros(0)
        results = results_from_arrays(ids, cats, pred.xywh, t.score)
        coco = coco_evaluate(gt.coco, results, backend=backend, class_names=gt.classes, copy_results=False)
    report = EvalReport(gt_source=gt.source, pred_source=pred_source, images=len(gt.images),
                        gt_boxes=int((~gt.table.ignore).sum()), gt_ignored=int(gt.table.ignore.sum()),
                        predictions_read=pred.read, predictions_used=len(t), classes=gt.classes, coco=coco, voc=voc,
                        findings=list(gt.findings) + list(pred.findings))
    if plots:
        from datatools.metrics.confusion import confusion_matrix
        from datatools.metrics.plots import plot_confusion, plot_pr_curves

        pr = voc if voc is not None else evaluate_voc(gt.table, t, gt.classes, iou_threshold=iou, method=method,
                                                      legacy_plus_one=legacy_plus_one)
        report.plots = plot_pr_curves(pr, plots)
        report.confusion = confusion_matrix(gt.table, t, len(gt.classes), iou=iou, conf=conf,
                                            legacy_plus_one=legacy_plus_one)
        report.plots.append(plot_confusion(report.confusion, gt.classes, plots, iou=iou, conf=conf))
    return report


def evaluate(gt: str | os.PathLike, pred: str | os.PathLike, *, gt_format: str | None = None,
             split: str | None = None, classes: Sequence[str] | None = None, convention: str | None = None,
             images: str | None = None, metric: str = "all", iou: float = 0.5, method: APMethod | str = APMethod.ALL_POINT,
             legacy_plus_one: bool = False, backend: str = "auto", plots: str | os.PathLike | None = None,
             conf: float = 0.25, workers: int | None = None, max_xml_bytes: int | None = None) -> EvalReport:
    """Evaluate a predictions file (COCO results JSON, or a folder of YOLO txt with confidences) against ground
    truth in any format. See :mod:`datatools.metrics.inputs` for how ids are matched; ``workers`` is for reading
    the ground truth. ``gt_format`` None (or ``auto``) detects the format of ``gt``, as ``convert`` does. ``plots``
    is never inside an input (a COCO or Label Studio file's folder included, where its images usually lie)."""
    if plots:
        from datatools.core.paths import check_output_dir

        beside = [os.path.dirname(os.path.abspath(gt))] if os.path.isfile(gt) else []
        check_output_dir(plots, [gt, images, pred, *beside])
    g = load_ground_truth(gt, format=gt_format, split=split, classes=classes, convention=convention, images=images,
                          workers=workers, max_xml_bytes=max_xml_bytes)
    if not len(g.table.label):  # every metric would be -1 (pycocotools) or NaN, reported as a result
        listed = f" of the classes {', '.join(map(repr, classes))}" if classes else ""
        n = len(g.images)
        raise NoInputError(f"{gt}: the ground truth holds no box{listed} in its {n} image{'s' * (n != 1)}: nothing "
                           "to evaluate against")
    p = load_predictions(pred, g)
    return evaluate_loaded(g, p, metric=metric, iou=iou, method=method, legacy_plus_one=legacy_plus_one,
                           backend=backend, plots=plots, conf=conf, pred_source=str(pred))
