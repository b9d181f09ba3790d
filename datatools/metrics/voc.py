"""Pascal VOC average precision, written with numpy (no torch, no loops over detections).

Use :func:`evaluate_voc` when you want the VOC devkit's numbers (per-class AP at one IoU threshold, VOC2007 11-point
or VOC2010+ all-point interpolation). For COCO's 12 numbers use :mod:`datatools.metrics.coco`.

The definition, as in the devkit's ``VOCevaldet.m``:

* detections of one class are ranked by score, highest first (ties keep their input order: a stable sort);
* each detection is compared with every ground-truth box of its image and class and takes the one with the highest
  IoU (ties: the first in file order);
* if that IoU is ``>= iou_threshold`` (the devkit's ``ovmax >= minoverlap``) and the box is ``difficult`` (or
  ``iscrowd``), the detection is ignored: neither TP nor FP. If the box is not yet taken, the detection is a TP and
  takes it; if it was taken by a higher-scored detection, it is an FP (the devkit does *not* fall back to the next
  best box, unlike COCO);
* below the threshold it is an FP. Difficult boxes are not counted in the positives.

Boxes are continuous pixel XYXY (see :mod:`datatools.core.boxes`). VOC read with the ``devkit`` pixel convention
already gives ``xmax - xmin + 1`` widths, so the devkit's numbers come out without any +1. Under the default
``as-is`` convention the numbers are taken as written (as torchvision, mmdetection and COCO files have them).
``legacy_plus_one=True`` adds the devkit's +1 to every width and height: use it only when the boxes are
*inclusive pixel indices* (VOC read ``as-is``, or detectors that output ``[x1, y1, x2, y2]`` as pixel indices, such as
py-faster-rcnn), otherwise it counts the pixel twice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class APMethod(str, Enum):
    """How a precision/recall curve becomes one number."""

    ALL_POINT = "allpoint"  # VOC2010+: area under the monotone precision envelope
    ELEVEN_POINT = "11point"  # VOC2007: mean of the envelope at recall 0, 0.1, ..., 1


@dataclass(frozen=True)
class BoxTable:
    """Boxes of many images as column arrays (the evaluator's input, built by :mod:`datatools.metrics.inputs` and :mod:`datatools.metrics.predictions`).

    ``image`` indexes the evaluated image list, ``label`` the class list, ``box`` is (N, 4) XYXY float64,
    ``score`` the confidence (1 for ground truth), ``ignore`` marks difficult/crowd ground truth.
    """

    image: np.ndarray
    label: np.ndarray
    box: np.ndarray
    score: np.ndarray
    ignore: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.image)
        if self.box.shape != (n, 4) or len(self.label) != n or len(self.score) != n or len(self.ignore) != n:
            raise ValueError(f"BoxTable columns disagree: image {n}, label {len(self.label)}, box {self.box.shape}, "
                             f"score {len(self.score)}, ignore {len(self.ignore)}")

    def __len__(self) -> int:
        return len(self.image)

    @classmethod
    def build(cls, image, label, box, score=None, ignore=None) -> "BoxTable":
        image = np.asarray(image, dtype=np.int64).reshape(-1)
        n = len(image)
        box = np.asarray(box, dtype=np.float64).reshape(n, 4) if n else np.zeros((0, 4))
        score = np.ones(n) if score is None else np.asarray(score, dtype=np.float64).reshape(-1)
        ignore = np.zeros(n, dtype=bool) if ignore is None else np.asarray(ignore, dtype=bool).reshape(-1)
        return cls(image, np.asarray(label, dtype=np.int64).reshape(-1), box, score, ignore)

    @classmethod
    def empty(cls) -> "BoxTable":
        return cls.build([], [], np.zeros((0, 4)))


@dataclass(frozen=True)
class ClassAP:
    """One class: AP by both interpolations, counts, and the raw precision/recall curve (for plots)."""

    name: str
    ap: float  # with the chosen method (NaN when the class has no non-difficult ground truth)
    ap_allpoint: float
    ap_11point: float
    positives: int  # non-difficult ground-truth boxes
    ignored_gt: int  # difficult/crowd boxes
    detections: int
    tp: int
    fp: int
    ignored_detections: int  # matched a difficult box
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)

    @property
    def final_recall(self) -> float:
        """The recall at the lowest score: 0 for a class with ground truth and no detection, NaN without ground
        truth (as its AP)."""
        if not self.positives:
            return float("nan")
        return float(self.recall[-1]) if len(self.recall) else 0.0

    def to_dict(self) -> dict:
        return {"class": self.name, "ap": json_float(self.ap), "ap_allpoint": json_float(self.ap_allpoint),
                "ap_11point": json_float(self.ap_11point), "positives": self.positives, "ignored_gt": self.ignored_gt,
                "detections": self.detections, "tp": self.tp, "fp": self.fp,
                "ignored_detections": self.ignored_detections, "recall": json_float(self.final_recall)}


@dataclass(frozen=True)
class VOCResult:
    """Per-class AP and their mean over classes that have ground truth."""

    classes: tuple[ClassAP, ...]
    iou_threshold: float
    method: APMethod
    legacy_plus_one: bool

    @property
    def map(self) -> float:
        return self.map_of(self.method)

    def map_of(self, method: APMethod) -> float:
        vals = [(c.ap_allpoint if method is APMethod.ALL_POINT else c.ap_11point) for c in self.classes
                if c.positives > 0]
        return float(np.mean(vals)) if vals else float("nan")

    def to_dict(self) -> dict:
        return {"iou_threshold": self.iou_threshold, "method": self.method.value,
                "legacy_plus_one": self.legacy_plus_one, "map": json_float(self.map),
                "map_allpoint": json_float(self.map_of(APMethod.ALL_POINT)),
                "map_11point": json_float(self.map_of(APMethod.ELEVEN_POINT)),
                "per_class": [c.to_dict() for c in self.classes]}


def json_float(v) -> float | None:
    """A metric for JSON output: rounded to 6 places; None for a missing or undefined (NaN, infinite) value. Every
    number ``evaluate --json`` prints goes through here."""
    if v is None:
        return None
    v = float(v)
    return round(v, 6) if v - v == 0.0 else None


def average_precision(recall: np.ndarray, precision: np.ndarray, method: APMethod | str = APMethod.ALL_POINT) -> float:
    """AP of one precision/recall curve (points in rank order).

    ``allpoint``: the area under the precision envelope (precision made non-increasing from the right), summed where
    recall changes (VOC2010+ devkit ``VOCap``). ``11point``: the mean over recall thresholds 0, 0.1, ..., 1 of the
    highest precision at recall >= t (0 when none), with the thresholds every reference computes them with
    (``np.arange(0, 1.1, 0.1)`` in py-faster-rcnn's ``voc_eval``, detectron2 and mmdetection, ``np.linspace`` in
    Padilla et al.'s): 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001, so a recall of exactly 3/10
    does not count for t = 0.3 there, and does not here.
    """
    method = APMethod(method)
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if recall.shape != precision.shape:
        raise ValueError("recall and precision must have the same length")
    if method is APMethod.ELEVEN_POINT:
        if not len(recall):
            return 0.0
        # highest precision at recall >= t: a suffix maximum, looked up at the first index with recall >= t
        suffix_max = np.maximum.accumulate(precision[::-1])[::-1]
        thresholds = np.arange(0.0, 1.1, 0.1)
        idx = np.searchsorted(np.maximum.accumulate(recall), thresholds, side="left")
        vals = np.where(idx < len(recall), suffix_max[np.minimum(idx, len(recall) - 1)], 0.0)
        return float(vals.sum() / 11.0)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def box_iou(a: np.ndarray, b: np.ndarray, plus: float = 0.0) -> np.ndarray:
    """IoU of continuous XYXY boxes, broadcast over the leading axes: two (P, 4) arrays give the P pairs' IoU,
    ``a[:, None]`` with ``b[None]`` the N x M matrix. ``plus`` is 1 under ``--legacy-plus-one`` (the VOC devkit's
    inclusive pixel count), else 0. Every IoU of the evaluator (AP matching, the confusion matrix) is this one."""
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + plus
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + plus
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = ((a[..., 2] - a[..., 0] + plus) * (a[..., 3] - a[..., 1] + plus)
             + (b[..., 2] - b[..., 0] + plus) * (b[..., 3] - b[..., 1] + plus) - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def best_overlaps(gt: BoxTable, det: BoxTable, *, num_classes: int, legacy_plus_one: bool = False,
                  chunk_pairs: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """For each detection: the index of the ground-truth box of the same image and class with the highest IoU
    (-1 when there is none) and that IoU. Vectorized over (detection, box) pairs, in chunks to bound memory."""
    n = len(det)
    jmax = np.full(n, -1, dtype=np.int64)
    ovmax = np.zeros(n, dtype=np.float64)
    if n == 0 or len(gt) == 0:
        return jmax, ovmax
    k = max(int(num_classes), int(gt.label.max()) + 1, int(det.label.max()) + 1)
    gkey = gt.image * k + gt.label
    g_order = np.argsort(gkey, kind="stable")  # stable: ties in IoU go to the first box in file order
    gkey_sorted = gkey[g_order]
    dkey = det.image * k + det.label
    start = np.searchsorted(gkey_sorted, dkey, side="left")
    count = np.searchsorted(gkey_sorted, dkey, side="right") - start
    plus = 1.0 if legacy_plus_one else 0.0
    bounds = np.concatenate(([0], np.cumsum(count)))
    lo = 0
    while lo < n:
        # grow the chunk until it holds about chunk_pairs pairs
        hi = int(np.searchsorted(bounds, bounds[lo] + chunk_pairs, side="right")) - 1
        hi = min(max(hi, lo + 1), n)
        cnt = count[lo:hi]
        total = int(cnt.sum())
        if total:
            pair_det = np.repeat(np.arange(lo, hi), cnt)
            first = np.repeat(np.cumsum(cnt) - cnt, cnt)
            pair_gt = g_order[np.repeat(start[lo:hi], cnt) + (np.arange(total) - first)]
            iou = box_iou(det.box[pair_det], gt.box[pair_gt], plus)
            has = np.flatnonzero(cnt > 0)
            seg_start = (np.cumsum(cnt) - cnt)[has]
            seg_max = np.maximum.reduceat(iou, seg_start)
            is_max = iou == np.repeat(seg_max, cnt[has])
            pos = np.flatnonzero(is_max)
            _, first_pos = np.unique(pair_det[pos], return_index=True)  # first box (file order) with the max
            winners = pos[first_pos]
            jmax[pair_det[winners]] = pair_gt[winners]
            ovmax[pair_det[winners]] = iou[winners]
        lo = hi
    return jmax, ovmax


def evaluate_voc(gt: BoxTable, det: BoxTable, class_names: list[str] | tuple[str, ...], *,
                 iou_threshold: float = 0.5, method: APMethod | str = APMethod.ALL_POINT,
                 legacy_plus_one: bool = False) -> VOCResult:
    """VOC AP per class (see the module docstring for the exact definition). ``gt.score`` is unused."""
    method = APMethod(method)
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], not {iou_threshold}")
    k = len(class_names)
    for name, t in (("ground truth", gt), ("detections", det)):
        if len(t) and (t.label.min() < 0 or t.label.max() >= k):
            raise ValueError(f"{name} labels must be in 0..{k - 1}")
    if len(det) and not np.all(np.isfinite(det.score)):
        raise ValueError("detection scores must be finite")
    jmax, ovmax = best_overlaps(gt, det, num_classes=k, legacy_plus_one=legacy_plus_one)
    n = len(det)
    order = np.lexsort((np.arange(n), -det.score, det.label))  # by class, score high to low, then input order
    matched = (jmax >= 0) & (ovmax >= iou_threshold)
    ignored = matched & gt.ignore[np.maximum(jmax, 0)] if len(gt) else np.zeros(n, dtype=bool)
    candidate = matched & ~ignored
    tp = np.zeros(n, dtype=bool)
    cand_sorted = order[candidate[order]]
    _, first = np.unique(jmax[cand_sorted], return_index=True)  # the highest-ranked detection takes each box
    tp[cand_sorted[first]] = True
    labels_sorted = det.label[order]
    seg = np.searchsorted(labels_sorted, np.arange(k + 1))
    pos_count = np.bincount(gt.label[~gt.ignore], minlength=k) if len(gt) else np.zeros(k, dtype=np.int64)
    ign_count = np.bincount(gt.label[gt.ignore], minlength=k) if len(gt) else np.zeros(k, dtype=np.int64)
    results = []
    for c in range(k):
        idx = order[seg[c]:seg[c + 1]]
        keep = idx[~ignored[idx]]
        t = tp[keep]
        ctp = np.cumsum(t)
        cfp = np.cumsum(~t)
        npos = int(pos_count[c])
        if npos:
            rec = ctp / npos
            prec = ctp / np.maximum(ctp + cfp, 1)
            ap_all = average_precision(rec, prec, APMethod.ALL_POINT)
            ap_11 = average_precision(rec, prec, APMethod.ELEVEN_POINT)
        else:
            rec = np.zeros(len(keep))
            prec = ctp / np.maximum(ctp + cfp, 1)
            ap_all = ap_11 = float("nan")
        results.append(ClassAP(
            name=str(class_names[c]), ap=ap_all if method is APMethod.ALL_POINT else ap_11, ap_allpoint=ap_all,
            ap_11point=ap_11, positives=npos, ignored_gt=int(ign_count[c]), detections=len(idx),
            tp=int(t.sum()), fp=int((~t).sum()), ignored_detections=int(len(idx) - len(keep)),
            precision=prec.astype(np.float64), recall=rec.astype(np.float64), scores=det.score[keep]))
    return VOCResult(classes=tuple(results), iou_threshold=float(iou_threshold), method=method,
                     legacy_plus_one=legacy_plus_one)
