"""COCO detection metrics: pycocotools (the reference) or faster-coco-eval (the same 12 numbers, several times faster).

Use :func:`coco_evaluate` with a ground-truth dict that went through
:func:`datatools.metrics.inputs.sanitize_coco` (or was built by ``datatools.formats.coco.to_coco``) and a list of
result dicts. Either backend runs as its authors run it: ``COCO`` on the ground truth, ``loadRes`` on the results,
then ``COCOeval``'s ``evaluate``, ``accumulate`` and ``summarize``. The 12 numbers are ``COCOeval.stats`` unchanged;
the per-class AP comes from the same ``eval['precision']`` array that ``summarize()`` averages.

Traps guarded here: ``loadRes([])`` raises IndexError in pycocotools, so no results is an empty result set (every
AP is then 0 where there is ground truth, -1 where there is none, as COCOeval defines it); ``loadRes`` adds fields to
the result dicts it gets and ``COCOeval`` writes ``ignore`` into the ground truth's annotation dicts, so both get
copies, never the caller's dicts; both libraries print to stdout, which is captured into
:attr:`CocoResult.summary_text`. String or repeated ids are the ground truth loader's job
(:func:`~datatools.metrics.inputs.sanitize_coco`).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from datatools.core.errors import UsageError
from datatools.metrics.voc import json_float

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
        return {"backend": self.backend, "stats": {n: json_float(v) for n, v in zip(STAT_NAMES, self.stats)},
                "per_class": [{"class": c, "ap": json_float(self.per_class_ap[c]),
                               "ap50": json_float(self.per_class_ap50[c])}
                              for c in self.per_class_ap]}


def available_backends() -> list[str]:
    """The installed backends, pycocotools first."""
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
            raise UsageError("COCO metrics need faster-coco-eval or pycocotools (pip install faster-coco-eval)")
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
                  class_names: Sequence[str] | None = None, copy_results: bool = True) -> CocoResult:
    """Run COCOeval (bbox) and return its 12 numbers and per-class AP.

    ``gt`` must hold ``images``, ``annotations`` (with ``area`` and ``iscrowd``) and ``categories``; every result's
    ``image_id`` must be one of the ground truth's (the caller filters and reports the others: ``loadRes`` would
    assert). ``backend``: ``auto`` (faster-coco-eval when installed), ``pycocotools`` or ``faster-coco-eval``.
    Neither ``gt`` nor ``results`` is modified; ``copy_results=False`` lets ``loadRes`` add its fields to the result
    dicts themselves, which saves a copy of dicts built just for this call.
    """
    backend = resolve_backend(backend)
    # COCOeval writes "ignore" into the ground truth's annotation dicts: it gets copies.
    gt_dict = {"info": {}, "licenses": [], "images": list(gt["images"]), "categories": list(gt["categories"]),
               "annotations": [dict(a) for a in gt["annotations"]]}
    dets = [dict(r) for r in results] if copy_results else list(results)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        if backend == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            coco_gt = COCO()  # COCO() reads only files: a dict goes in as its dataset, then the index is built
            coco_gt.dataset = gt_dict
            coco_gt.createIndex()
            ev = COCOeval(coco_gt, _load_results(COCO, coco_gt, dets), "bbox")
        else:
            from faster_coco_eval import COCO, COCOeval_faster

            coco_gt = COCO(gt_dict)
            ev = COCOeval_faster(coco_gt, _load_results(COCO, coco_gt, dets), "bbox", print_function=print)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = tuple(float(v) for v in np.asarray(ev.stats[:12], dtype=np.float64))
    names_by_id = {c["id"]: str(c.get("name", c["id"])) for c in gt_dict["categories"]}
    precision = np.asarray(ev.eval["precision"])  # [T, R, K, A, M]
    per_ap: dict[str, float | None] = {}
    per_ap50: dict[str, float | None] = {}
    for k, cid in enumerate(ev.params.catIds):
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


def _load_results(coco_cls, coco_gt, dets: list[dict]):
    """``coco_gt.loadRes(dets)``; no detections is an empty result set over the same images and categories, because
    pycocotools' ``loadRes([])`` raises IndexError (it reads ``anns[0]``)."""
    if dets:
        return coco_gt.loadRes(dets)
    empty = coco_cls()
    empty.dataset = {"images": list(coco_gt.dataset["images"]), "categories": list(coco_gt.dataset["categories"]),
                     "annotations": []}
    empty.createIndex()
    return empty
