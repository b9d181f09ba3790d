"""Detection confusion matrix: which class each ground-truth box was detected as, plus misses and false alarms.

Use it to see *which* classes a detector confuses; AP says how much, not with what. Per image, detections with a score
``>= conf`` are matched to ground-truth boxes of any class, greedily by IoU (highest first, each box and each
detection used once, IoU ``>= iou``). Row = true class (last row: background, i.e. a false detection), column =
predicted class (last column: background, i.e. a missed box). Ignored (difficult/crowd) boxes and the detections
matched to them are left out.
"""
from __future__ import annotations

import numpy as np

from datatools.metrics.voc import BoxTable, box_iou


def confusion_matrix(gt: BoxTable, det: BoxTable, num_classes: int, *, iou: float = 0.5, conf: float = 0.25,
                     legacy_plus_one: bool = False) -> np.ndarray:
    """(K+1) x (K+1) counts; see the module docstring. ``legacy_plus_one``: IoU as AP computes it under
    ``--legacy-plus-one``, so that a pair AP counts as a match is one here too."""
    k = num_classes
    plus = 1.0 if legacy_plus_one else 0.0
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
        ov = box_iou(d_box[di][:, None], gt.box[gi][None], plus)
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
