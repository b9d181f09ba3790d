"""``anchors``: anchor box sizes for an anchor-based detector, by k-means on box width/height with the 1 - IoU distance.

Use it before training a YOLOv2-v5-style or Faster R-CNN-style model on a dataset whose objects look unlike COCO's.
Boxes are first scaled the way training sees them: the image's longer side becomes ``img_size`` (letterbox), so the
anchors are in input pixels. The distance between a box and an anchor is 1 - IoU of the two placed on the same centre
(YOLOv2, Redmon and Farhadi 2017), so big boxes do not dominate as they do with Euclidean distance.

Initialisation is k-means++ under the same distance, from a seeded ``numpy.random.Generator``; Lloyd iterations move each
anchor to the median width and height of its boxes; the best of ``n_init`` runs (highest mean best IoU) is kept.
The same seed and data give the same anchors. Past ``MAX_FIT`` boxes the clustering runs on a seeded sample of that
many (every box is still scored): Lloyd's iterations over all of them grew faster than the data (35-40 s for 651k COCO
boxes, a third of ``report``; 2.5-5 s on the sample), for anchors within 0.001 mean IoU of the full fit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from datatools.core.boxes import clip
from datatools.core.errors import DatatoolsError, UsageError
from datatools.core.model import Dataset


def wh_iou(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of (n, 2) box sizes against (k, 2) anchor sizes, all placed on one centre: (n, k)."""
    wh = np.asarray(wh, dtype=np.float64)
    anchors = np.asarray(anchors, dtype=np.float64)
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = (wh[:, 0] * wh[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
    return inter / union


def box_sizes(ds: Dataset, *, img_size: int | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """(n, 2) widths and heights of every box, scaled so each image's longer side is ``img_size`` (when given), and
    clipped to the image as training clips it (a box reaching past the image gave anchors larger than any image).

    Returns the sizes and the count of boxes left out, by reason (``zero-size``: nothing inside the image, or no
    area; ``under-2px``: both sides under 2 pixels once scaled, as YOLOv5's autoanchor leaves them out, which
    would make anchors of 0 px; ``crowd``: a crowd or group-of region, which training leaves out too;
    ``no-image-size``; ``not-finite``: a size too large for a float; ``other-class``: objects ``--classes`` left
    out).
    """
    out: list[tuple[float, float]] = []
    skipped = {"zero-size": 0, "under-2px": 0, "crowd": 0, "no-image-size": 0, "not-finite": 0,
               "other-class": sum(f.objects for f in ds.findings if f.code == "class-not-kept")}
    for im in ds.images:
        scale = 1.0
        if img_size:
            if not im.has_size:
                skipped["no-image-size"] += len(im.annotations)
                continue
            scale = img_size / max(im.width, im.height)  # type: ignore[type-var, operator]
        for a in im.annotations:
            x1, y1, x2, y2 = clip(a.box, im.width, im.height) if im.has_size else a.box  # type: ignore[arg-type]
            w, h = (x2 - x1) * scale, (y2 - y1) * scale
            if a.iscrowd:
                skipped["crowd"] += 1
            elif not math.isfinite(w * h):
                skipped["not-finite"] += 1
            elif w <= 0 or h <= 0:
                skipped["zero-size"] += 1
            elif w < 2 and h < 2:
                skipped["under-2px"] += 1
            else:
                out.append((w, h))
    return np.asarray(out, dtype=np.float64).reshape(-1, 2), {k: v for k, v in skipped.items() if v}


def _init_pp(wh: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [wh[rng.integers(len(wh))]]
    dist = 1.0 - wh_iou(wh, np.asarray(centres))[:, 0]
    for _ in range(1, k):
        p = dist ** 2
        total = p.sum()
        idx = int(rng.choice(len(wh), p=p / total)) if total > 0 else int(rng.integers(len(wh)))
        centres.append(wh[idx])
        dist = np.minimum(dist, 1.0 - wh_iou(wh, wh[idx:idx + 1])[:, 0])
    return np.asarray(centres)


MAX_FIT = 100_000  # boxes the k-means runs on (a seeded sample past it; see the module doc)


def kmeans_iou(wh: np.ndarray, k: int, *, rng: np.random.Generator, n_init: int = 3, max_iter: int = 300
               ) -> np.ndarray:
    """k anchors (k, 2) for box sizes ``wh`` under the 1 - IoU distance (see the module doc), sorted by area."""
    wh = np.asarray(wh, dtype=np.float64)
    if k < 1:
        raise ValueError("k must be at least 1")
    if len(wh) < k:
        raise UsageError(f"{len(wh)} boxes cannot make {k} anchors: lower -k")
    sizes = np.unique(wh, axis=0)
    distinct = len(sizes)
    if distinct < k:  # k-means would return repeated anchors that no box picks
        raise UsageError(f"the {len(wh):,} boxes have only {distinct} distinct size(s), which cannot make {k} "
                         f"different anchors: lower -k to {distinct} at most")
    if len(wh) > MAX_FIT:
        sample = wh[np.sort(rng.choice(len(wh), MAX_FIT, replace=False))]
        # a sample of fewer than k sizes (rare sizes it missed) takes one box of every size along
        wh = sample if len(np.unique(sample, axis=0)) >= k else np.concatenate([sample, sizes])
    best, best_score = None, -1.0
    for _ in range(max(1, n_init)):
        centres = _init_pp(wh, k, rng)
        assign = None
        for _ in range(max_iter):
            iou = wh_iou(wh, centres)
            new = iou.argmax(axis=1)
            if assign is not None and np.array_equal(new, assign):
                break
            assign = new
            for j in range(k):
                members = wh[assign == j]
                if len(members):
                    centres[j] = np.median(members, axis=0)
                else:  # an empty cluster takes the box worst served by the others
                    centres[j] = wh[int(iou.max(axis=1).argmin())]
        score = float(wh_iou(wh, centres).max(axis=1).mean())
        if score > best_score:
            best, best_score = centres.copy(), score
    if best is None:  # unreachable: at least one run happens
        raise RuntimeError("k-means produced no result")
    return best[np.argsort(best[:, 0] * best[:, 1], kind="stable")]


@dataclass(frozen=True)
class AnchorResult:
    """Anchors (w, h) in input pixels sorted by area, how well they fit (mean best IoU) and the BPR: the share of boxes
    whose best anchor reaches ``iou_thr``."""

    anchors: tuple[tuple[float, float], ...]
    mean_iou: float
    bpr: float
    iou_thr: float
    boxes: int
    skipped: dict[str, int]
    img_size: int | None
    seed: int
    cluster_sizes: tuple[int, ...]

    def yaml_rows(self) -> list[list[int]]:
        """YOLOv5's ``anchors:`` rows, one per detection level, smallest first (whole pixels, at least 1): 3 levels
        when k is a multiple of 3 (its P3-P5 heads), 4 of 3 for k = 12 (P6); one row otherwise, which no YOLOv5 head
        of several levels takes (the command says so)."""
        flat = [v for a in self.anchors for v in (max(1, round(a[0])), max(1, round(a[1])))]
        k = len(self.anchors)
        levels = 4 if k == 12 else 3 if k % 3 == 0 else 1
        per = len(flat) // levels
        return [flat[i:i + per] for i in range(0, len(flat), per)]

    def to_dict(self) -> dict:
        return {"anchors": [list(a) for a in self.anchors], "mean_iou": self.mean_iou, "bpr": self.bpr,
                "iou_thr": self.iou_thr, "boxes": self.boxes, "skipped": self.skipped, "img_size": self.img_size,
                "seed": self.seed, "cluster_sizes": list(self.cluster_sizes), "yaml": self.yaml_rows()}


def compute_anchors(ds: Dataset, *, k: int = 9, img_size: int | None = 640, iou_thr: float = 0.5, seed: int = 0,
                    n_init: int = 3) -> AnchorResult:
    """Cluster the boxes of ``ds`` into ``k`` anchors; see the module doc for the method."""
    if not 0 < iou_thr <= 1:
        raise UsageError("--iou-thr must be in (0, 1]")
    wh, skipped = box_sizes(ds, img_size=img_size)
    if len(wh) == 0:
        if not skipped:
            raise UsageError("the dataset has no boxes to cluster")
        why = ", ".join(f"{k} {n:,}" for k, n in skipped.items())
        hint = ("; without image sizes, --img-size 0 clusters the boxes in pixels" if "no-image-size" in skipped
                else "")
        raise DatatoolsError(f"no box to cluster: every box was left out ({why}){hint}")
    anchors = kmeans_iou(wh, k, rng=np.random.default_rng(seed), n_init=n_init)
    return summarize(wh, anchors, iou_thr=iou_thr, skipped=skipped, img_size=img_size, seed=seed)


def summarize(wh: np.ndarray, anchors: np.ndarray, *, iou_thr: float = 0.5, skipped: dict[str, int] | None = None,
              img_size: int | None = None, seed: int = 0) -> AnchorResult:
    """Fit figures of any anchor set on box sizes (e.g. to judge the default anchors of a model)."""
    iou = wh_iou(wh, anchors)
    best = iou.max(axis=1)
    sizes = np.bincount(iou.argmax(axis=1), minlength=len(anchors))
    return AnchorResult(anchors=tuple((float(w), float(h)) for w, h in anchors), mean_iou=float(best.mean()),
                        bpr=float((best >= iou_thr).mean()), iou_thr=iou_thr, boxes=len(wh), skipped=skipped or {},
                        img_size=img_size, seed=seed, cluster_sizes=tuple(int(s) for s in sizes))
