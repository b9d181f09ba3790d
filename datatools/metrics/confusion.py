"""Detection confusion matrix: which class each ground-truth box was detected as, plus misses and false alarms.

Use it to see *which* classes a detector confuses; AP says how much, not with what. Per image, detections with a score
``>= conf`` are matched to ground-truth boxes of any class, greedily by IoU (highest first, each box and each
detection used once, IoU ``>= iou``). Row = true class (last row: background, i.e. a false detection), column =
predicted class (last column: background, i.e. a missed box). Ignored (difficult/crowd) boxes and the detections
matched to them are left out.
"""
from __future__ import annotations

import numpy as np

from datatools.metrics.voc import BoxTable


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), continuous XYXY."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def confusion_matrix(gt: BoxTable, det: BoxTable, num_classes: int, *, iou: float = 0.5,
                     conf: float = 0.25) -> np.ndarray:
    """(K+1) x (K+1) counts; see the module docstring."""
    k = num_classes
    m = np.zeros((k + 1, k + 1), dtype=np.int64)
    keep = det.score >= conf
    d_img, d_lab, d_box = det.image[keep], det.label[keep], det.box[keep]
    d_order = np.argsort(d_img, kind="stable")
    g_order = np.argsort(gt.image, kind="stable")
    images = np.union1d(gt.image, d_img)
    d_start = np.searchsorted(d_img[d_order], images, "left")
    d_end = np.searchsorted(d_img[d_order], images, "right")
    g_start = np.searchsorted(gt.image[g_order], images, "left")
    g_end = np.searchsorted(gt.image[g_order], images, "right")
    for s0, s1, t0, t1 in zip(d_start, d_end, g_start, g_end):
        di = d_order[s0:s1]
        gi = g_order[t0:t1]
        ov = iou_matrix(d_box[di], gt.box[gi]) if len(di) and len(gi) else np.zeros((len(di), len(gi)))
        pairs = np.argwhere(ov >= iou)
        used_d = np.zeros(len(di), dtype=bool)
        used_g = np.zeros(len(gi), dtype=bool)
        if len(pairs):
            pairs = pairs[np.argsort(-ov[pairs[:, 0], pairs[:, 1]], kind="stable")]
            for a, b in pairs:
                if used_d[a] or used_g[b]:
                    continue
                used_d[a] = used_g[b] = True
                if not gt.ignore[gi[b]]:
                    m[gt.label[gi[b]], d_lab[di[a]]] += 1
        for b in np.flatnonzero(~used_g):
            if not gt.ignore[gi[b]]:
                m[gt.label[gi[b]], k] += 1
        for a in np.flatnonzero(~used_d):
            m[k, d_lab[di[a]]] += 1
    return m
