"""Predictions read from a file and matched to a dataset's images and classes: the one ``load_predictions`` behind
``datatools evaluate --pred`` and ``datatools visualize --pred``.

Use :func:`load_predictions` with the :class:`~datatools.metrics.inputs.GroundTruth` of the evaluator or the
:func:`~datatools.metrics.inputs.dataset_keys` of any :class:`~datatools.core.model.Dataset`; the matching rules
(ids, file names, category ids or names) are those of :mod:`datatools.metrics.inputs`. Nothing is dropped silently:
every entry that matches no image or class, or has no usable box or score, is counted and reported as a finding.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from datatools.core import fs
from datatools.core.boxes import xywh_to_xyxy_array, xyxy_to_xywh_array
from datatools.core.errors import FormatError, UsageError
from datatools.core.model import Finding
from datatools.formats.common import err, info, warn
from datatools.formats.coco_ids import id_text
from datatools.metrics.inputs import DatasetKeys, append_columns
from datatools.metrics.voc import BoxTable


@dataclass
class Predictions:
    """Detections matched to the ground-truth images: a :class:`BoxTable` (image and class indices of the keys they
    were matched with, XYXY boxes, scores) plus the original ``[x, y, w, h]`` (kept so pycocotools sees the numbers
    exactly as written) and what could not be used."""

    table: BoxTable
    xywh: np.ndarray
    findings: list[Finding] = field(default_factory=list)
    read: int = 0
    unmatched_images: int = 0
    unknown_categories: dict[str, int] = field(default_factory=dict)
    malformed: int = 0  # entries without a usable box or score (or not an object at all)


def _summarize_drops(path: str, unknown_img: list, unknown_cat: dict[str, int], bad: int, no_score: int,
                     known_cats: Sequence, *, own_categories: bool = False) -> list[Finding]:
    out: list[Finding] = []
    if unknown_img:
        ex = ", ".join(repr(x) for x in unknown_img[:3])
        out.append(err("pred-unknown-image", path, "image_id",
                       f"{len(unknown_img)} prediction(s) name images that are not in the ground truth, or a base "
                       f"name two of its images share (e.g. {ex}); not evaluated", objects=len(unknown_img)))
    if unknown_cat:
        ex = ", ".join(f"{k} ({v}x)" for k, v in sorted(unknown_cat.items())[:10])
        if own_categories:  # the file names its categories: an id it does not define cannot be matched by name
            out.append(err("pred-unknown-category", path, "category_id",
                           f"{sum(unknown_cat.values())} prediction(s) use category ids that the file's own "
                           f"'categories' do not define: {ex}; not evaluated", objects=sum(unknown_cat.values())))
        else:
            out.append(err("pred-unknown-category", path, "category_id",
                           f"{sum(unknown_cat.values())} prediction(s) use category ids that are not in the ground "
                           f"truth: {ex}; known ids: {', '.join(map(str, list(known_cats)[:20]))}. pycocotools "
                           "would ignore them silently; they were not evaluated", objects=sum(unknown_cat.values())))
    if bad:
        out.append(err("pred-bad-box", path, "bbox", f"{bad} prediction(s) without a finite [x, y, w, h] bbox; dropped",
                       objects=bad))
    if no_score:
        out.append(err("pred-missing-score", path, "score",
                       f"{no_score} prediction(s) without a finite score; dropped", objects=no_score))
    return out


def _float_rows(values: list, width: int) -> np.ndarray:
    """``values`` as an ``(n, width)`` float array (``(n,)`` for width 0); an entry that is not ``width`` JSON numbers
    (a string such as ``"10"``, a boolean: ground truth refuses them, and so does pycocotools' ``loadRes``) becomes
    NaN, so the caller's ``isfinite`` test drops it."""
    n = len(values)
    shape = (n, width) if width else (n,)
    try:
        arr = np.array(values)
        if arr.shape != shape or arr.dtype.kind not in "iuf":
            if n:
                raise ValueError("ragged, or not numbers")
            arr = arr.reshape(shape)
        return arr.astype(np.float64)
    except (TypeError, ValueError):  # a ragged or non-numeric entry somewhere: convert one by one
        arr = np.full(shape, np.nan)
        for k, v in enumerate(values):
            try:
                a = np.asarray(v)
                if a.dtype.kind in "iuf":
                    arr[k] = a.astype(np.float64).reshape(shape[1:])
            except (TypeError, ValueError):
                pass
        return arr


def predictions_from_coco_results(results: list, keys: DatasetKeys, *, path: str = "",
                                  missing_score: float | None = None,
                                  category_names: Mapping[str, str] | None = None) -> Predictions:
    """Match COCO results entries (``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``, optional
    ``file_name``) to ``keys``. A ``category_name`` (or ``label``) naming one of the classes wins over
    ``category_id``. An entry without ``score`` gets ``missing_score`` (``None``: it is dropped and counted, as the
    evaluator needs a ranking). Unmatched images and unknown categories are counted and reported.

    ``category_names`` (``str(id) -> name``, the ``categories`` of a COCO-dict predictions file) switches category
    matching to names only: the file's ids are its own numbering, not the ground truth's. A name the ground truth
    lacks is reported as ``pred-category-unmatched``; an id the file's categories lack, as ``pred-unknown-category``."""
    class_index = {c: k for k, c in enumerate(keys.classes)}
    unknown_name: dict[str, int] = {}
    # Lookups cached on the raw values (with their type: 1 and 1.0 are equal keys but different ids as text)
    image_of: dict = {}
    class_of: dict = {}
    img: list[int] = []
    lab: list[int] = []
    bbs: list = []
    scores: list = []
    unknown_img: list = []
    unknown_cat: dict[str, int] = {}
    not_dict = 0
    for d in results:
        if not isinstance(d, dict):
            not_dict += 1
            continue
        fname, iid = d.get("file_name"), d.get("image_id")
        try:
            i = image_of.get((fname, iid, type(iid)), -1)
        except TypeError:  # an unhashable id: never matches, but is reported like any other
            i = None
        if i == -1:
            i = _image_index(keys, fname, iid, path)
            image_of[(fname, iid, type(iid))] = i
        if i is None:
            unknown_img.append(fname or iid)
            continue
        name, cid = d.get("category_name") or d.get("label"), d.get("category_id")
        try:
            c = class_of.get((name, cid, type(cid)), -1)
        except TypeError:
            c = None
        if c == -1:
            c = _class_of(name, cid, class_index, keys, category_names)
            class_of[(name, cid, type(cid))] = c
        if isinstance(c, str):  # a category name the ground truth does not have
            unknown_name[c] = unknown_name.get(c, 0) + 1
            continue
        if c is None:
            unknown_cat[id_text(cid)] = unknown_cat.get(id_text(cid), 0) + 1
            continue
        img.append(i)
        lab.append(c)
        bbs.append(d.get("bbox"))
        scores.append(d.get("score", missing_score))
    xywh = _float_rows(bbs, 4)
    score = _float_rows(scores, 0)
    good_box = np.isfinite(xywh).all(axis=1)
    good_score = np.isfinite(score)
    keep = good_box & good_score
    bad = not_dict + int((~good_box).sum())
    no_score = int((good_box & ~good_score).sum())
    arr = xywh[keep]
    table = BoxTable.build(np.asarray(img, dtype=np.int64)[keep], np.asarray(lab, dtype=np.int64)[keep],
                           xywh_to_xyxy_array(arr), score[keep])
    findings = _summarize_drops(path, unknown_img, unknown_cat, bad, no_score, dict.fromkeys(keys.cat_index),
                                own_categories=category_names is not None)
    empty = int(((arr[:, 2] <= 0) | (arr[:, 3] <= 0)).sum())
    if empty:  # kept, as pycocotools keeps them (the same 12 numbers): they match no box
        findings.append(warn("pred-empty-box", path, "bbox", f"{empty} prediction(s) with no width or height "
                             "(w or h <= 0); evaluated as they are, as pycocotools does: they match nothing",
                             objects=0))
    if category_names is not None:
        findings += _unmatched_names(path, category_names, unknown_name, keys.classes)
    return Predictions(table=table, xywh=arr, findings=findings, read=len(results), unmatched_images=len(unknown_img),
                       unknown_categories=unknown_cat | unknown_name, malformed=bad + no_score)


def _class_of(name, cid, class_index: dict[str, int], keys: DatasetKeys,
              category_names: Mapping[str, str] | None) -> int | str | None:
    """The class index of one prediction: by its own ``category_name``/``label``, else by name through the file's
    ``category_names``, else (a file without categories) by the ground truth's category id. A name that matches no
    class comes back as the name itself (str), an id that cannot be resolved as None."""
    if isinstance(name, str) and name.strip() in class_index:
        return class_index[name.strip()]
    if category_names is None:
        return keys.cat_index.get(id_text(cid))
    if isinstance(name, str) and name.strip():
        return name.strip()
    named = category_names.get(id_text(cid))
    if named is None:
        return None
    return class_index.get(named, named)


def _unmatched_names(path: str, category_names: Mapping[str, str], dropped: dict[str, int],
                     classes: Sequence[str]) -> list[Finding]:
    """One finding for the category names of a predictions file that the ground truth does not have: an error when
    predictions were dropped for them, a warning when no prediction uses them."""
    names = sorted(set(category_names.values()) - set(classes) | set(dropped))
    if not names:
        return []
    n = sum(dropped.values())
    listed = ", ".join(f"{k!r} ({dropped[k]}x)" if dropped.get(k) else repr(k) for k in names[:10])
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    known = ", ".join(repr(c) for c in list(classes)[:20])
    if n:
        return [err("pred-category-unmatched", path, "categories/name",
                    f"{n} prediction(s) use categories whose names are not in the ground truth: {listed}{more}; "
                    f"ground-truth classes: {known}. Categories are matched by name; these were not evaluated",
                    objects=n)]
    return [warn("pred-category-unmatched", path, "categories/name",
                 f"categories not in the ground truth (no prediction uses them): {listed}{more}")]


def _file_categories(data: dict) -> dict[str, str] | None:
    """``str(id) -> name`` of a COCO-dict predictions file's ``categories``; None when it has no named category (its
    ids are then taken as the ground truth's)."""
    out: dict[str, str] = {}
    for c in data.get("categories") or []:
        if isinstance(c, dict) and c.get("id") is not None and str(c.get("name", "")).strip():
            out.setdefault(id_text(c["id"]), str(c["name"]).strip())
    return out or None


def _image_index(keys: DatasetKeys, file_name, image_id, path: str) -> int | None:
    if file_name:
        return keys.index_of(file_name=str(file_name), image_id=image_id)
    i = keys.index_of(image_id=image_id)
    if i is None and id_text(image_id) in keys.by_id:
        raise UsageError(f"{path}: image_id {image_id} names images in more than one COCO file; point the ground "
                         "truth at the JSON file the predictions were made for")
    return i


def load_predictions(path: str | os.PathLike, keys: DatasetKeys, *, missing_score: float | None = None
                     ) -> Predictions:
    """Read predictions (a local path or a URL) and match them to ``keys`` (a ground truth, or
    :func:`~datatools.metrics.inputs.dataset_keys` of a dataset).

    Accepted: a COCO results JSON (a list of detections, or a COCO dict whose annotations carry scores; its own
    image ids are then resolved through its ``images`` to file names), or a folder of YOLO txt files with a
    confidence column (``class cx cy w h conf``; class ids index ``keys.classes``, boxes are normalized by the
    ground-truth image size). See :func:`predictions_from_coco_results` for the matching and ``missing_score``."""
    path = os.fspath(path)
    files = fs.files_for(path)
    if files.isdir(path):
        return _yolo_predictions(path, keys, files)
    if not files.isfile(path):
        raise UsageError(f"{path}: no such file or directory")
    data = fs.read_json(path)
    category_names = None
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        # a COCO dataset file with scores: ids refer to its own images and categories, so match by file name and
        # category name through them (pycocotools would pair its raw ids with the ground truth's)
        # (ids by their one text, as the ground truth's: "1" and 1 are one id, a list is no dict key)
        names = {id_text(im["id"]): im.get("file_name") for im in data.get("images") or []
                 if isinstance(im, dict) and im.get("id") is not None}
        category_names = _file_categories(data)
        data = [dict(a, file_name=names[id_text(a.get("image_id"))]) if names.get(id_text(a.get("image_id"))) else a
                for a in data["annotations"] if isinstance(a, dict)]
    if not isinstance(data, list):
        raise FormatError(path, "", "expected a COCO results list [{image_id, category_id, bbox, score}, ...]")
    return predictions_from_coco_results(data, keys, path=path, missing_score=missing_score,
                                         category_names=category_names)


def _refuse_a_dataset(folder: str, names: Sequence[str], files) -> None:
    """A folder of another format's dataset (a VOC root, its Annotations/) is not a folder of YOLO prediction files:
    its split lists would be read as rows. Prediction files lie at the top (as ultralytics' ``predict save_txt``
    writes them in labels/), so a folder with .txt files at its top is taken as predictions unless it holds a
    dataset's annotation folder (a VOC root with a README.txt); say what it is and what --pred takes."""
    from datatools import formats

    if any("/" not in n for n in names) and not any(
            files.isdir(files.join(folder, d)) for d in ("Annotations", "annotations")):
        return
    try:
        fmt = formats.detect(folder)
    except UsageError:  # nothing a dataset reader knows: nested prediction files
        return
    if fmt != "yolo":
        raise UsageError(f"{folder}: a {fmt} dataset, not predictions: give a COCO results JSON "
                         "([{image_id, category_id, bbox, score}, ...]) or a folder of YOLO txt files with a "
                         "confidence column (class cx cy w h conf)")


def _yolo_predictions(folder: str, keys: DatasetKeys, files) -> Predictions:
    from datatools.formats.common import read_annotation_file
    from datatools.formats.yolo import parse_label_text

    names = [n for n in files.find(folder, suffixes=(".txt",)) if posixpath.basename(n) != "classes.txt"]
    _refuse_a_dataset(folder, names, files)
    if not names:
        raise UsageError(f"{folder}: no .txt prediction files")
    img, lab, box, score = [], [], [], []
    findings: list[Finding] = []
    unknown_img: list = []
    no_score = 0
    rows = 0
    cid = {c: k for k, c in enumerate(keys.classes)}
    id_names = keys.id_names or keys.classes  # a row's id means what it meant to the model: the source's own order
    not_selected: dict[str, int] = {}
    for rel in names:
        where = files.join(folder, rel)
        stem = posixpath.splitext(rel)[0]
        i = keys.index_of(file_name=stem)
        text, unreadable = read_annotation_file(where, stem, text=True)
        if unreadable is not None:  # not evaluated, and said: its rows cannot be counted
            findings.append(unreadable)
            continue
        n = sum(1 for ln in text.splitlines() if ln.strip())
        rows += n
        rec = keys.images[i] if i is not None else None
        w, h = (rec.width, rec.height) if rec is not None and rec.has_size else (1, 1)
        # Parsed even when its rows cannot be used (no such image, no size): pixel coordinates are refused anywhere.
        anns, fnd, _ = parse_label_text(text, path=where, image_id=rec.image_id if rec else stem, names=id_names,
                                        width=w, height=h, refuse_pixels=True)  # type: ignore[arg-type]
        if rec is None:
            unknown_img.extend([stem] * n)
            continue
        if not rec.has_size:
            findings.append(err("missing-size", where, "", "the ground-truth image has no size; rows not evaluated",
                                objects=n))
            continue
        findings.extend(fnd)
        for a in anns:
            if a.label not in cid:
                not_selected[a.label] = not_selected.get(a.label, 0) + 1
        no_score += append_columns(anns, i, cid, (img, lab, box, score), scored=True)
    b = np.asarray(box, dtype=np.float64).reshape(-1, 4)
    findings += _summarize_drops(folder, unknown_img, {}, 0, no_score, list(range(len(keys.classes))))
    if not_selected:
        n = sum(not_selected.values())
        listed = ", ".join(f"{k!r} ({v}x)" for k, v in sorted(not_selected.items()))
        findings.append(info("pred-class-not-selected", folder, "class", f"{n} prediction row(s) of classes left out "
                             f"of the ground truth's class list ({listed}); not evaluated", objects=n))
    return Predictions(table=BoxTable.build(img, lab, b, score), xywh=xyxy_to_xywh_array(b), findings=findings,
                       read=rows, unmatched_images=len(unknown_img), malformed=no_score)
