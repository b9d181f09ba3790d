"""Ground truth and predictions for the evaluator: any dataset format in, column arrays + a pycocotools-ready dict out.

Use :func:`load_ground_truth` and :func:`load_predictions` (or :func:`predictions_from_records` for in-memory
results, as the trainer does); :func:`datatools.metrics.evaluate.evaluate` ties them together.

Image ids. For VOC and YOLO ground truth the COCO image ids are 1..N in the order of ``Dataset.images`` and the
category ids 1..K in class order: exactly what ``datatools voc2coco`` writes. For COCO ground truth the file's own ids
are used (string ids are mapped to 1..N in file order and reported). A prediction that carries ``file_name`` is
matched by file name (full relative name, base name or stem), otherwise by ``image_id``.
"""
from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from datatools.core.boxes import xywh_to_xyxy_array, xyxy_to_xywh_array
from datatools.core.errors import UsageError
from datatools.core.model import Dataset, Finding, ImageRecord
from datatools.formats.common import err, info, warn
from datatools.metrics.voc import BoxTable


@dataclass
class GroundTruth:
    """Everything the evaluator needs about the ground truth.

    ``images`` and ``classes`` define the indices used in :class:`BoxTable`; ``coco`` is a COCO dict that pycocotools
    accepts (ints ids, ``area`` and ``iscrowd`` on every annotation); ``image_ids[i]`` / ``category_ids[c]`` are the
    ids image ``i`` / class ``c`` have in it.
    """

    images: tuple[ImageRecord, ...]
    classes: tuple[str, ...]
    table: BoxTable
    coco: dict
    image_ids: list[int]
    category_ids: list[int]
    findings: list[Finding] = field(default_factory=list)
    source: str = ""
    format: str = ""
    by_id: dict[str, int] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    cat_index: dict[str, int] = field(default_factory=dict)  # str(category id as predictions write it) -> class

    def __post_init__(self) -> None:
        if not self.cat_index:
            self.cat_index = {str(c): k for k, c in enumerate(self.category_ids)}

    def index_of(self, *, image_id=None, file_name: str | None = None) -> int | None:
        """The image index for a prediction, by file name first (exact, base name, stem), else by id."""
        if file_name:
            name = str(file_name).replace("\\", "/")
            for key in (name, posixpath.basename(name), posixpath.splitext(name)[0],
                        posixpath.splitext(posixpath.basename(name))[0]):
                if key in self.by_name:
                    return self.by_name[key]
            return None
        if image_id is None:
            return None
        return self.by_id.get(str(image_id))



def _append_scored(anns, image_index: int, cid: dict[str, int], columns: tuple[list, list, list, list]) -> int:
    """Append scored detections of known classes to the (image, label, box, score) columns; return how many had no
    usable score (those are counted, not evaluated)."""
    img, lab, box, score = columns
    missing = 0
    for a in anns:
        if a.score is None or not _finite(a.score):
            missing += 1
            continue
        img.append(image_index)
        lab.append(cid[a.label])
        box.append(a.box)
        score.append(a.score)
    return missing

def _index_names(images: Sequence[ImageRecord]) -> dict[str, int]:
    by_name: dict[str, int] = {}
    for i, rec in enumerate(images):
        keys = []
        for name in (rec.file_name, rec.image_id):
            if name:
                name = name.replace("\\", "/")
                keys += [name, posixpath.basename(name), posixpath.splitext(name)[0],
                         posixpath.splitext(posixpath.basename(name))[0]]
        for k in keys:
            by_name.setdefault(k, i)
    return by_name


def _table_from_records(images: Sequence[ImageRecord], classes: Sequence[str]) -> BoxTable:
    cid = {c: i for i, c in enumerate(classes)}
    img, lab, box, ign = [], [], [], []
    for i, rec in enumerate(images):
        for a in rec.annotations:
            if a.label not in cid:
                continue
            img.append(i)
            lab.append(cid[a.label])
            box.append(a.box)
            ign.append(a.difficult or a.iscrowd)
    return BoxTable.build(img, lab, np.asarray(box, dtype=np.float64).reshape(-1, 4), None, ign)


def _coco_json_file(src: Path, split: str | None) -> Path:
    if src.is_file():
        return src
    ann = src / "annotations" if (src / "annotations").is_dir() else src
    if split:
        for cand in (ann / f"instances_{split}.json", ann / f"{split}.json"):
            if cand.is_file():
                return cand
        raise UsageError(f"{src}: no instances_{split}.json or {split}.json")
    files = sorted(ann.glob("*.json"))
    if len(files) != 1:
        raise UsageError(f"{src}: {len(files)} JSON files found; pass the ground-truth JSON file itself or --split")
    return files[0]


def sanitize_coco(data: dict, *, path: str = "") -> tuple[dict, dict[str, int], dict[str, int], list[Finding]]:
    """A copy of a COCO dict that pycocotools evaluates correctly, and what was changed.

    Guards the known traps: a missing ``area`` (pycocotools raises KeyError) becomes ``w * h``; a missing
    ``iscrowd`` becomes 0; string or non-unique image/category ids are mapped to ints (returned mappings for images
    and categories: ``str(original id) -> new id``); annotation ids are renumbered 1..M in file order, because pycocotools keys
    annotations by id (duplicates silently overwrite each other) and treats an id of 0 as "unmatched".
    """
    findings: list[Finding] = []
    images = [im for im in data.get("images") or [] if isinstance(im, dict) and im.get("id") is not None]
    raw_ids = [im["id"] for im in images]
    ints = all(isinstance(i, int) and not isinstance(i, bool) for i in raw_ids)
    if ints and len(set(raw_ids)) == len(raw_ids):
        id_map = {str(i): i for i in raw_ids}
    else:
        id_map = {}
        for k, i in enumerate(raw_ids, 1):
            id_map.setdefault(str(i), k)
        findings.append(warn("string-ids", path, "images/id",
                             "image ids are not unique integers; they were mapped to 1..N in file order "
                             "(predictions are matched by the original id or by file_name)"))
    cats = [c for c in data.get("categories") or [] if isinstance(c, dict) and c.get("id") is not None]
    cat_ids = [c["id"] for c in cats]
    cat_ints = all(isinstance(i, int) and not isinstance(i, bool) for i in cat_ids) and len(set(cat_ids)) == len(cat_ids)
    cat_map = {str(i): (i if cat_ints else k) for k, i in enumerate(cat_ids, 1)}
    if not cat_ints:
        findings.append(warn("string-ids", path, "categories/id", "category ids are not unique integers; mapped to 1..K"))
    out_images = [dict(im, id=id_map[str(im["id"])]) for im in images]
    out_anns = []
    missing_area = missing_crowd = dropped = 0
    for a in data.get("annotations") or []:
        if not isinstance(a, dict):
            dropped += 1
            continue
        iid = id_map.get(str(a.get("image_id")))
        cid = cat_map.get(str(a.get("category_id")))
        bb = a.get("bbox")
        if iid is None or cid is None or not (isinstance(bb, (list, tuple)) and len(bb) == 4):
            dropped += 1
            continue
        b = dict(a, image_id=iid, category_id=cid, id=len(out_anns) + 1)
        if not isinstance(b.get("area"), (int, float)) or isinstance(b.get("area"), bool):
            b["area"] = float(bb[2]) * float(bb[3])
            missing_area += 1
        if "iscrowd" not in b:
            b["iscrowd"] = 0
            missing_crowd += 1
        out_anns.append(b)
    if missing_area:
        findings.append(info("missing-area", path, "annotations/area",
                             f"{missing_area} annotation(s) had no area; w*h used (pycocotools needs it)"))
    if missing_crowd:
        findings.append(info("missing-iscrowd", path, "annotations/iscrowd",
                             f"{missing_crowd} annotation(s) had no iscrowd; 0 used (pycocotools needs it)"))
    if dropped:
        findings.append(err("bad-annotation", path, "annotations",
                            f"{dropped} annotation(s) with an unknown image or category or no bbox were not evaluated",
                            objects=dropped))
    out_cats = [dict(c, id=cat_map[str(c["id"])]) for c in cats]
    return {"images": out_images, "annotations": out_anns, "categories": out_cats}, id_map, cat_map, findings


def load_ground_truth(src: str | os.PathLike, *, format: str = "voc", split: str | None = None,
                      classes: Sequence[str] | None = None, convention: str = "devkit",
                      images: str | os.PathLike | None = None, workers: int | None = None) -> GroundTruth:
    """Read ground truth in any format through :func:`datatools.formats.get`.

    ``split`` picks VOC ImageSets/Main lists, YOLO splits, or ``annotations/instances_<split>.json``. VOC/YOLO are
    prepared as ``datatools voc2coco`` does (difficult objects become ``iscrowd``, boxes clipped to the image,
    degenerate boxes dropped and reported), so evaluating against VOC or against its voc2coco JSON gives the same
    COCO numbers. COCO ground truth is given to pycocotools as in the file (areas from the file), after
    :func:`sanitize_coco`.
    """
    from datatools import formats
    from datatools.formats import coco as coco_fmt
    from datatools.ops.sanitize import prepare

    mod = formats.get(format)
    src = Path(src)
    if not src.exists():
        raise UsageError(f"{src}: no such file or directory")
    if mod.NAME == "coco":
        jpath = _coco_json_file(src, split)
        ds: Dataset = coco_fmt.read(jpath, images=images, workers=workers)
        try:
            raw = json.loads(jpath.read_bytes().decode("utf-8-sig"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(f"{jpath}: not valid JSON: {e}") from e
        coco, id_map, cat_map, fnd = sanitize_coco(raw, path=str(jpath))
        findings = list(ds.findings) + fnd
        recs = ds.images
        orig = [r.source.rsplit("#", 1)[1] for r in recs]
        image_ids = [id_map[o] for o in orig]
        name_to_cat: dict[str, int] = {}
        for c in coco["categories"]:
            name_to_cat.setdefault(str(c.get("name", "")).strip(), c["id"])
        cls = tuple(ds.classes)
        category_ids = [name_to_cat[c] for c in cls]
        by_id = {o: i for i, o in enumerate(orig)}
        by_id.update({str(v): by_id[k] for k, v in id_map.items() if k in by_id and str(v) not in by_id})
        table = _table_from_records(recs, cls)
        cat_index = {str(c): k for k, c in enumerate(category_ids)}
        cat_index.update({orig: cat_index[str(new)] for orig, new in cat_map.items() if str(new) in cat_index})
        return GroundTruth(images=recs, classes=cls, table=table, coco=coco, image_ids=image_ids,
                           category_ids=category_ids, findings=findings, source=str(jpath), format="coco",
                           by_id=by_id, by_name=_index_names(recs), cat_index=cat_index)
    opts: dict = {"workers": workers}
    if images:
        opts["images"] = images
    if mod.NAME == "voc":
        opts["sets"] = split
        opts["convention"] = convention
    ds = mod.read(src, classes=list(classes) if classes and mod.NAME == "yolo" else None, **opts)
    if split and mod.NAME == "yolo":
        if split not in ds.splits:
            raise UsageError(f"{src}: no split {split!r} (found: {', '.join(ds.splits) or 'none'})")
        ds = ds.evolve(images=tuple(r for r in ds.images if split in r.splits))
    ds = prepare(ds, classes=classes if mod.NAME != "yolo" else None, difficult="crowd")
    recs = ds.images
    cls = tuple(ds.classes)
    coco = coco_fmt.to_coco(recs, cls, file_names=[r.file_name or r.image_id for r in recs])
    coco = {k: coco[k] for k in ("images", "annotations", "categories")}
    n = len(recs)
    return GroundTruth(images=recs, classes=cls, table=_table_from_records(recs, cls), coco=coco,
                       image_ids=list(range(1, n + 1)), category_ids=list(range(1, len(cls) + 1)),
                       findings=list(ds.findings), source=str(src), format=mod.NAME,
                       by_id={str(i): i - 1 for i in range(1, n + 1)}, by_name=_index_names(recs))


@dataclass
class Predictions:
    """Detections matched to the ground-truth images: a :class:`BoxTable` plus the original ``[x, y, w, h]``
    (kept so pycocotools sees the numbers exactly as written) and what could not be used."""

    table: BoxTable
    xywh: np.ndarray
    findings: list[Finding] = field(default_factory=list)
    read: int = 0
    unmatched_images: int = 0
    unknown_categories: dict[str, int] = field(default_factory=dict)


def _summarize_drops(path: str, unknown_img: list, unknown_cat: dict[str, int], bad: int, no_score: int,
                     known_cats: Sequence) -> list[Finding]:
    out: list[Finding] = []
    if unknown_img:
        ex = ", ".join(repr(x) for x in unknown_img[:3])
        out.append(err("pred-unknown-image", path, "image_id",
                       f"{len(unknown_img)} prediction(s) name images that are not in the ground truth (e.g. {ex}); "
                       "not evaluated", objects=len(unknown_img)))
    if unknown_cat:
        ex = ", ".join(f"{k} ({v}x)" for k, v in sorted(unknown_cat.items())[:10])
        out.append(err("pred-unknown-category", path, "category_id",
                       f"{sum(unknown_cat.values())} prediction(s) use category ids that are not in the ground truth: "
                       f"{ex}; known ids: {', '.join(map(str, known_cats[:20]))}. pycocotools would ignore them "
                       "silently; they were not evaluated", objects=sum(unknown_cat.values())))
    if bad:
        out.append(err("pred-bad-box", path, "bbox", f"{bad} prediction(s) without a finite [x, y, w, h] bbox; dropped",
                       objects=bad))
    if no_score:
        out.append(err("pred-missing-score", path, "score",
                       f"{no_score} prediction(s) without a finite score; dropped", objects=no_score))
    return out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def predictions_from_coco_results(results: list, gt: GroundTruth, *, path: str = "") -> Predictions:
    """Match COCO results entries (``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``, optional
    ``file_name``) to the ground truth. Unmatched images / unknown categories are counted and reported."""
    fast = _fast_coco_results(results, gt, path=path)
    if fast is not None:
        return fast
    cat_index = gt.cat_index
    img, lab, xywh, score = [], [], [], []
    unknown_img: list = []
    unknown_cat: dict[str, int] = {}
    bad = no_score = 0
    cache: dict = {}
    for d in results:
        if not isinstance(d, dict):
            bad += 1
            continue
        fname = d.get("file_name")
        key = ("f", fname) if fname else ("i", str(d.get("image_id")))
        i = cache.get(key, -2)
        if i == -2:
            i = gt.index_of(file_name=fname) if fname else gt.index_of(image_id=d.get("image_id"))
            cache[key] = i
        if i is None:
            unknown_img.append(fname or d.get("image_id"))
            continue
        c = cat_index.get(str(d.get("category_id")))
        if c is None:
            k = str(d.get("category_id"))
            unknown_cat[k] = unknown_cat.get(k, 0) + 1
            continue
        bb = d.get("bbox")
        if not (isinstance(bb, (list, tuple)) and len(bb) == 4 and all(_finite(v) for v in bb)):
            bad += 1
            continue
        s = d.get("score")
        if not _finite(s):
            no_score += 1
            continue
        img.append(i)
        lab.append(c)
        xywh.append(bb)
        score.append(s)
    arr = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    box = xywh_to_xyxy_array(arr)
    table = BoxTable.build(img, lab, box, score)
    findings = _summarize_drops(path, unknown_img, unknown_cat, bad, no_score, gt.category_ids)
    return Predictions(table=table, xywh=arr, findings=findings, read=len(results), unmatched_images=len(unknown_img),
                       unknown_categories=unknown_cat)


def _fast_coco_results(results: list, gt: GroundTruth, *, path: str) -> Predictions | None:
    """Column-wise matching for well-formed results (500k detections in well under a second); ``None`` sends
    anything unusual (non-dict entries, unhashable ids, ragged boxes) to the entry-by-entry path."""
    try:
        if not all(type(d) is dict for d in results):
            return None
        fnames = [d.get("file_name") for d in results]
        ids = [d.get("image_id") for d in results]
        cats = [d.get("category_id") for d in results]
        box = np.array([d.get("bbox") for d in results], dtype=np.float64).reshape(len(results), 4)
        score = np.array([d.get("score") for d in results], dtype=np.float64).reshape(len(results))
        by_id = {u: gt.index_of(image_id=u) for u in set(ids)}
        by_name = {u: gt.index_of(file_name=u) for u in set(fnames) if u}
    except (TypeError, ValueError):
        return None
    img = np.array([by_name[f] if f else by_id[i] for f, i in zip(fnames, ids)], dtype=object)
    known_img = np.array([v is not None for v in img], dtype=bool)
    cat_lookup = {u: gt.cat_index.get(str(u)) for u in set(cats)}
    lab = np.array([cat_lookup[c] for c in cats], dtype=object)
    known_cat = np.array([v is not None for v in lab], dtype=bool)
    good_box = np.isfinite(box).all(axis=1)
    good_score = np.isfinite(score)
    unknown_img = [fnames[k] or ids[k] for k in np.flatnonzero(~known_img)]
    unknown_cat: dict[str, int] = {}
    for k in np.flatnonzero(known_img & ~known_cat):
        unknown_cat[str(cats[k])] = unknown_cat.get(str(cats[k]), 0) + 1
    rest = known_img & known_cat
    bad = int((rest & ~good_box).sum())
    no_score = int((rest & good_box & ~good_score).sum())
    keep = rest & good_box & good_score
    arr = box[keep]
    table = BoxTable.build(img[keep].astype(np.int64), lab[keep].astype(np.int64),
                           xywh_to_xyxy_array(arr), score[keep])
    findings = _summarize_drops(path, unknown_img, unknown_cat, bad, no_score, gt.category_ids)
    return Predictions(table=table, xywh=arr, findings=findings, read=len(results), unmatched_images=len(unknown_img),
                       unknown_categories=unknown_cat)


def predictions_from_records(records: Sequence[ImageRecord], gt: GroundTruth) -> Predictions:
    """Predictions held as :class:`ImageRecord` s with scored annotations (matched by file name, then image id)."""
    cid = {c: k for k, c in enumerate(gt.classes)}
    img, lab, box, score = [], [], [], []
    unknown_img: list = []
    unknown_cat: dict[str, int] = {}
    no_score = 0
    for rec in records:
        i = gt.index_of(file_name=rec.file_name) if rec.file_name else None
        if i is None:
            i = gt.by_name.get(rec.image_id)
        if i is None:
            unknown_img.extend([rec.image_id] * max(1, len(rec.annotations)))
            continue
        known = []
        for a in rec.annotations:
            if a.label not in cid:
                unknown_cat[a.label] = unknown_cat.get(a.label, 0) + 1
            else:
                known.append(a)
        no_score += _append_scored(known, i, cid, (img, lab, box, score))
    b = np.asarray(box, dtype=np.float64).reshape(-1, 4)
    table = BoxTable.build(img, lab, b, score)
    xywh = xyxy_to_xywh_array(b)
    n = sum(len(r.annotations) for r in records)
    return Predictions(table=table, xywh=xywh, findings=_summarize_drops("", unknown_img, unknown_cat, 0, no_score,
                                                                         list(gt.classes)),
                       read=n, unmatched_images=len(unknown_img), unknown_categories=unknown_cat)


def load_predictions(path: str | os.PathLike, gt: GroundTruth) -> Predictions:
    """Read predictions: a COCO results JSON (a list of detections, or a COCO dict whose annotations carry scores)
    or a folder of YOLO txt files with a confidence column (``class cx cy w h conf``; class ids index the ground
    truth's class list, boxes are normalized by the ground-truth image size)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    if path.is_dir():
        return _yolo_predictions(path, gt)
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path}: not valid JSON: {e}") from e
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        # a COCO dataset file with scores: ids refer to its own images, so match by file name through them
        names = {im.get("id"): im.get("file_name") for im in data.get("images") or [] if isinstance(im, dict)}
        results = [dict(a, file_name=names.get(a.get("image_id"))) if names.get(a.get("image_id")) else a
                   for a in data["annotations"] if isinstance(a, dict)]
        data = results
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a COCO results list [{{image_id, category_id, bbox, score}}, ...]")
    return predictions_from_coco_results(data, gt, path=str(path))


def _yolo_predictions(folder: Path, gt: GroundTruth) -> Predictions:
    from datatools.formats.yolo import parse_label_text

    files = sorted(folder.rglob("*.txt"))
    if not files:
        raise UsageError(f"{folder}: no .txt prediction files")
    img, lab, box, score = [], [], [], []
    findings: list[Finding] = []
    unknown_img: list = []
    no_score = 0
    rows = 0
    cid = {c: k for k, c in enumerate(gt.classes)}
    for f in files:
        if f.name == "classes.txt":
            continue
        stem = f.relative_to(folder).with_suffix("").as_posix()
        i = gt.by_name.get(stem, gt.by_name.get(f.stem))
        text = f.read_text(encoding="utf-8-sig")
        n = sum(1 for ln in text.splitlines() if ln.strip())
        rows += n
        if i is None:
            unknown_img.extend([stem] * n)
            continue
        rec = gt.images[i]
        if not rec.has_size:
            findings.append(err("missing-size", str(f), "", "the ground-truth image has no size; rows not evaluated",
                                objects=n))
            continue
        anns, fnd, _ = parse_label_text(text, path=str(f), image_id=rec.image_id, names=gt.classes,
                                        width=rec.width, height=rec.height)  # type: ignore[arg-type]
        findings.extend(fnd)
        no_score += _append_scored(anns, i, cid, (img, lab, box, score))
    b = np.asarray(box, dtype=np.float64).reshape(-1, 4)
    findings += _summarize_drops(str(folder), unknown_img, {}, 0, no_score, list(range(len(gt.classes))))
    return Predictions(table=BoxTable.build(img, lab, b, score),
                       xywh=xyxy_to_xywh_array(b), findings=findings, read=rows,
                       unmatched_images=len(unknown_img))
