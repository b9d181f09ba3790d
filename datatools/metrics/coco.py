"""COCO detection metrics through pycocotools (or faster-coco-eval, which computes the same numbers faster).

Use :func:`coco_evaluate` with a ground-truth dict that went through
:func:`datatools.metrics.data.sanitize_coco` (or was built by ``datatools.formats.coco.to_coco``) and a list of
result dicts. The 12 numbers are ``COCOeval.stats`` after ``summarize()``, unchanged; the per-class AP comes from the
same ``eval['precision']`` array that ``summarize()`` averages.

Traps handled here: ``loadRes([])`` crashes in pycocotools (``anns[0]``), so with pycocotools the result set is built
directly, as ``loadRes`` would build it (:func:`_result_set`; no results means every AP is 0 where there is ground
truth, -1 where there is none, as COCOeval defines it); pycocotools prints to stdout, which is captured into
:attr:`CocoResult.summary_text`.
"""
from __future__ import annotations

import contextlib
import gc
import io
import importlib.util
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from datatools.core.errors import UsageError

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
STAT_LABELS = (
    "AP @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "AP @[IoU=0.50 | area=all | maxDets=100]",
    "AP @[IoU=0.75 | area=all | maxDets=100]",
    "AP @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "AP @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AP @[IoU=0.50:0.95 | area=large | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=all | maxDets=1]",
    "AR @[IoU=0.50:0.95 | area=all | maxDets=10]",
    "AR @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "AR @[IoU=0.50:0.95 | area=large | maxDets=100]",
)
BACKENDS = ("auto", "pycocotools", "faster-coco-eval")


@dataclass(frozen=True)
class CocoResult:
    """The 12 COCOeval numbers (``-1`` where COCOeval has nothing to average), per-class AP and AP50 (``None`` for
    classes without ground truth), the backend used and its printed summary."""

    stats: tuple[float, ...]
    per_class_ap: dict[str, float | None]
    per_class_ap50: dict[str, float | None]
    backend: str
    summary_text: str = field(default="", repr=False, compare=False)  # holds timings

    def stat(self, name: str) -> float:
        return self.stats[STAT_NAMES.index(name)]

    def to_dict(self) -> dict:
        return {"backend": self.backend, "stats": {n: round(float(v), 6) for n, v in zip(STAT_NAMES, self.stats)},
                "per_class": [{"class": c, "ap": _r(self.per_class_ap[c]), "ap50": _r(self.per_class_ap50[c])}
                              for c in self.per_class_ap]}


def _r(v):
    return None if v is None else round(float(v), 6)


def available_backends() -> list[str]:
    out = ["pycocotools"] if importlib.util.find_spec("pycocotools") else []
    if importlib.util.find_spec("faster_coco_eval"):
        out.append("faster-coco-eval")
    return out


def resolve_backend(backend: str) -> str:
    """``auto`` picks faster-coco-eval when it is installed (same numbers, faster), else pycocotools."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown COCO backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    have = available_backends()
    if backend == "auto":
        if not have:
            raise UsageError("COCO metrics need pycocotools (pip install pycocotools) or faster-coco-eval")
        return "faster-coco-eval" if "faster-coco-eval" in have else "pycocotools"
    if backend not in have:
        raise UsageError(f"the {backend} backend is not installed (pip install {backend})")
    return backend


def results_from_arrays(image_ids: np.ndarray, category_ids: np.ndarray, xywh: np.ndarray,
                        scores: np.ndarray) -> list[dict]:
    """COCO results dicts from column arrays (plain Python numbers, as json.load would give)."""
    ids = np.asarray(image_ids).tolist()
    cats = np.asarray(category_ids).tolist()
    boxes = np.asarray(xywh, dtype=np.float64).reshape(-1, 4).tolist()
    sc = np.asarray(scores, dtype=np.float64).tolist()
    return [{"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in zip(ids, cats, boxes, sc)]


def coco_evaluate(gt: dict, results: Sequence[dict], *, backend: str = "auto",
                  class_names: Sequence[str] | None = None, copy_results: bool = True,
                  workers: int | None = None) -> CocoResult:
    """Run COCOeval (bbox) and return its 12 numbers and per-class AP.

    ``gt`` must hold ``images``, ``annotations`` (with ``area`` and ``iscrowd``) and ``categories``; every result's
    ``image_id`` must be one of the ground truth's (the caller filters and reports the others: pycocotools would
    assert). ``results`` are not modified unless ``copy_results=False`` (loadRes adds fields to the dicts it gets;
    pass False for dicts built just for this call, to save the copy).

    With pycocotools and at least :data:`PARALLEL_MIN_RESULTS` results, the categories are evaluated in up to
    ``workers`` forked processes (``None`` or 0: all cores; 1: in this process), with the same numbers, bit for
    bit: see :func:`_evaluate_by_category`. Ground truth with repeated annotation ids is evaluated in this process
    (:func:`datatools.metrics.data.sanitize_coco` renumbers them).
    """
    backend = resolve_backend(backend)
    buf = io.StringIO()
    # The annotation dicts are copied: COCOeval writes "ignore" into the ground truth's.
    gt_dict = {"info": {}, "licenses": [], "images": gt["images"], "categories": gt["categories"],
               "annotations": [dict(a) for a in gt["annotations"]]}
    with contextlib.redirect_stdout(buf):
        if backend == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            coco_gt = COCO()
            coco_gt.dataset = gt_dict
            coco_gt.createIndex()
            coco_dt = _result_set(COCO, coco_gt, results, copy_results)
            ev = COCOeval(coco_gt, coco_dt, "bbox")
            groups = _category_groups(coco_gt, coco_dt, workers) if len(results) >= PARALLEL_MIN_RESULTS else []
        else:
            from faster_coco_eval import COCO, COCOeval_faster

            coco_gt = COCO(gt_dict)
            coco_dt = _load_results(COCO, coco_gt, results, copy_results)
            ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=print)
            groups = []
        if len(groups) > 1:
            _evaluate_by_category(ev, groups)
        else:
            with _collector_paused():
                ev.evaluate()
                ev.accumulate()
        ev.summarize()
    stats = tuple(float(v) for v in np.asarray(ev.stats[:12], dtype=np.float64))
    cat_ids = list(ev.params.catIds)
    names_by_id = {c["id"]: str(c.get("name", c["id"])) for c in gt_dict["categories"]}
    precision = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
    per_ap: dict[str, float | None] = {}
    per_ap50: dict[str, float | None] = {}
    for k, cid in enumerate(cat_ids):
        name = names_by_id.get(cid, str(cid))
        p = precision[:, :, k, 0, -1]
        per_ap[name] = float(p[p > -1].mean()) if (p > -1).any() else None
        p50 = precision[0, :, k, 0, -1]
        per_ap50[name] = float(p50[p50 > -1].mean()) if (p50 > -1).any() else None
    if class_names is not None:
        per_ap = {n: per_ap.get(n) for n in class_names}
        per_ap50 = {n: per_ap50.get(n) for n in class_names}
    return CocoResult(stats=stats, per_class_ap=per_ap, per_class_ap50=per_ap50, backend=backend,
                      summary_text=buf.getvalue())


PARALLEL_MIN_RESULTS = 20_000
"""Below this many results, pycocotools runs in the calling process: a pool would cost more than it saves."""


def _category_groups(coco_gt, coco_dt, workers: int | None) -> list[list]:
    """The ground truth's category ids in up to ``workers`` groups of about equal work, for
    :func:`_evaluate_by_category` (one group or none: evaluate in this process).

    COCOeval's cost is its Python loop over IoU thresholds x detections x ground truth of each image and category,
    so a category weighs the sum over images of detections x (ground truth + 1). The groups are filled heaviest
    first, each category into the lightest group (LPT)."""
    from datatools.core.io import plan_workers

    cat_ids = sorted(coco_gt.getCatIds())
    w = plan_workers(len(cat_ids), workers, min_per_worker=1)
    if w <= 1:
        return []
    if len(coco_gt.anns) != len(coco_gt.dataset["annotations"]):
        return []  # repeated annotation ids: pycocotools resolves an id to its last dict, across all categories
    pairs: dict[tuple, list[int]] = {}
    for anns, slot in ((coco_dt.dataset["annotations"], 0), (coco_gt.dataset["annotations"], 1)):
        for a in anns:
            n = pairs.setdefault((a["image_id"], a["category_id"]), [0, 0])
            n[slot] += 1
    weight = dict.fromkeys(cat_ids, 0)
    for (_, c), (nd, ng) in pairs.items():
        if c in weight:
            weight[c] += nd * (ng + 1)
    groups: list[list] = [[] for _ in range(w)]
    load = [0] * w
    for c in sorted(cat_ids, key=lambda c: -weight[c]):
        g = load.index(min(load))
        groups[g].append(c)
        load[g] += weight[c]
    return [sorted(g) for g in groups if g]


def _evaluate_by_category(ev, groups: list[list]) -> None:
    """``ev.evaluate(); ev.accumulate()`` with each group of categories evaluated and accumulated in a process of
    its own; only the small accumulated arrays come back.

    Each worker gets its group's ground-truth and detection dicts (the same dicts, in their order) and builds its
    own two indexes from them, so it holds its share of the work and nothing more: a forked worker that read the
    parent's indexes instead would copy most of their pages (reference counts), a few hundred MB per worker on
    500k detections.

    The numbers are the same as in one process, given unique annotation ids (:func:`_category_groups` checks them):
    with ``useCats`` (bbox evaluation always has it), COCOeval matches each category's detections to its ground
    truth alone, in the order the annotations were given (kept here), and ``accumulate`` fills the precision,
    recall and scores of category k from category k's per-image results alone.
    ``ev`` ends as ``accumulate`` leaves it, without ``evalImgs`` and ``ious`` (``summarize`` reads neither)."""
    from datatools.core.io import fork_imap

    p = ev.params  # normalized as evaluate() normalizes it
    p.imgIds = list(np.unique(p.imgIds))
    p.catIds = list(np.unique(p.catIds))
    p.maxDets = sorted(p.maxDets)
    group_of = {c: g for g, group in enumerate(groups) for c in group}
    parts: list[tuple[list, list, list]] = [(sorted(group), [], []) for group in groups]
    for coco, slot in ((ev.cocoGt, 1), (ev.cocoDt, 2)):
        for a in coco.dataset["annotations"]:
            g = group_of.get(a["category_id"])
            if g is not None:
                parts[g][slot].append(a)
    shared = (ev.cocoGt.dataset["images"], ev.cocoGt.dataset["categories"], p)
    T, R, K, A, M = len(p.iouThrs), len(p.recThrs), len(p.catIds), len(p.areaRng), len(p.maxDets)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    scores = -np.ones((T, R, K, A, M))
    column = {c: k for k, c in enumerate(p.catIds)}
    done = list(fork_imap(_accumulate_part, shared, parts, workers=len(parts)))
    for (group, _, _), (prec, rec, sc) in zip(parts, done):
        ks = [column[c] for c in group]
        precision[:, :, ks] = prec
        recall[:, ks] = rec
        scores[:, :, ks] = sc
    import datetime

    ev.eval = {"params": p, "counts": [T, R, K, A, M], "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
               "precision": precision, "recall": recall, "scores": scores}


def _accumulate_part(shared, part):
    """Worker: COCOeval's evaluate and accumulate over ``shared`` = (images, categories, params) for one group of
    categories, ``part`` = (its sorted category ids, its ground-truth dicts, its detection dicts)."""
    import copy as copy_module

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, categories, params = shared
    cat_ids, gts, dts = part
    with contextlib.redirect_stdout(io.StringIO()):
        indexes = []
        for anns in (gts, dts):
            c = COCO()
            c.dataset = {"images": images, "categories": categories, "annotations": anns}
            c.createIndex()
            indexes.append(c)
        e = COCOeval(indexes[0], indexes[1], "bbox")
        e.params = copy_module.deepcopy(params)
        e.params.catIds = list(cat_ids)
        with _collector_paused():
            e.evaluate()
            e.accumulate()
    return e.eval["precision"], e.eval["recall"], e.eval["scores"]


@contextlib.contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off for the block, and back as it was after. COCOeval's evaluate and
    accumulate make millions of small dicts and arrays but no reference cycles, so the collector's full passes over
    them find nothing; they were 8-12% of the time (18 s against 20-24 s on 200k detections)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _result_set(coco_cls, coco_gt, results: Sequence[dict], copy: bool):
    """The result set pycocotools' ``loadRes`` builds for bbox results, built directly: each detection gets the
    fields ``loadRes`` adds, ``id`` 1..N in order, ``area`` = w * h (the same float product) and ``iscrowd`` 0, but
    not the box polygon it adds as ``segmentation``, which bbox evaluation never reads. That skips a Python loop
    over every detection and half a million small lists on 500k detections; the numbers are the same (tested
    against ``loadRes``). No results is an empty set (``loadRes([])`` raises IndexError)."""
    import copy as copy_module

    anns = []
    for k, r in enumerate(results, 1):
        bb = r["bbox"]
        fields = {"area": bb[2] * bb[3], "id": k, "iscrowd": 0}
        if copy:
            anns.append({**r, **fields})  # never edit the caller's dicts
        else:
            r.update(fields)
            anns.append(r)
    res = coco_cls()
    res.dataset = {"info": copy_module.deepcopy(coco_gt.dataset.get("info", {})),
                   "images": list(coco_gt.dataset["images"]),
                   "categories": copy_module.deepcopy(coco_gt.dataset["categories"]), "annotations": anns}
    res.createIndex()
    return res


def _load_results(coco_cls, coco_gt, results: Sequence[dict], copy: bool):
    if results:
        # loadRes edits the dicts it gets (adds id, area, segmentation): give it copies unless they are ours
        return coco_gt.loadRes([dict(r) for r in results] if copy else list(results))
    return _result_set(coco_cls, coco_gt, [], False)  # loadRes([]) raises IndexError: "nothing detected"
