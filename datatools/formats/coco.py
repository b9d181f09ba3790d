"""COCO detection JSON: ``images``, ``annotations`` (bbox = [x, y, w, h] in pixels) and ``categories``.

Written files follow what pycocotools and torchvision's CocoDetection need: integer ids from 1, categories from 1,
``area = w * h``, ``iscrowd`` on every annotation. Extra VOC fields (difficult, truncated, occluded, pose) travel in
an ``attributes`` object per annotation.
"""
from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from datatools.core.boxes import is_finite, xywh_to_xyxy, xyxy_to_xywh
from datatools.core.errors import FormatError
from datatools.core import fs
from datatools.core.atomic import ImagesMode, atomic_write, place_images, staged_dir, write_files
from datatools.core.fs import read_json
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import safe_relpath
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, all_classes
from datatools.formats.common import (DEFAULT_SPLIT, ImageIndex, WriteResult, err, existing_source,
                                      fill_sizes_from_headers, info, json_num, name_id, placed_names, warn)
from datatools.formats.coco_ids import id_text, image_numbers
from datatools.formats.coco_layout import COCO_KEYS, NOT_COCO, guess_image_dir, json_files, no_images_found
from datatools.formats.shapes import centred_envelope
from datatools.formats.values import annotation_size, json_flag, json_number, text_number

NAME = "coco"
# What write() replaces whole in OUT (see core.paths.refuse_replacing_inputs); the image folder only when it
# places images (not under --images-mode none).
OWNED = ("annotations", "images")
IMAGE_FOLDER = "images"
NEEDS_SIZE = False  # boxes are written in pixels: an image without a size can be written
# What the writer keeps of an object besides box and class: iscrowd, the flags and attributes in "attributes".
OUR_INFO = {"description": "written by datatools", "version": "1.0"}  # no info given: what is written, and no loss
KEEPS = frozenset({"difficult", "truncated", "occluded", "iscrowd", "attributes", "extra", "splits", "score",
                   "classes"})
# The keys the model holds; every other key of an image, annotation or category is kept as it was read (the
# records' ``extra``, the dataset's ``meta["coco"]``) and written back, so COCO -> COCO loses no field.
_IMAGE_KEYS = frozenset({"id", "file_name", "width", "height"})
_ANN_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "iscrowd", "attributes", "score"})
_TOP_KEYS = frozenset({"info", "licenses", "images", "annotations", "categories"})
_CAT_KEYS = frozenset({"id", "name"})
_FLAGS = ("difficult", "truncated", "occluded")
# What an id may be: a number or a string (1.0, as pandas writes the ids of a column with a gap, finds 1); a list or
# an object is no id (and no dict key).
_ID = (int, float, str)


def _category_order(c: dict) -> tuple:
    """Categories in id order: numbers (2 and 2.0 alike) by value, then string ids, then entries without an id."""
    cid = c.get("id")
    if isinstance(cid, (int, float)) and not isinstance(cid, bool):
        return (0, cid, "")
    return (1, 0, cid) if isinstance(cid, str) else (2, 0, "")


def read(src: str | os.PathLike, *, images: str | os.PathLike | None = None, classes: Sequence[str] | None = None,
         workers: int | None = None, progress: ProgressFn | None = None, on_total=None,
         mapper: Mapper | None = None, **_ignored) -> Dataset:
    """Read one COCO JSON file, or every ``annotations/*.json`` of a folder (one split each, named after the file).

    Image sizes come from the JSON, else from the image header (read on ``mapper``, default local processes).
    String ids are accepted and mapped in file order.
    """
    src, _ = existing_source(src)
    findings: list[Finding] = []
    records: dict[str, ImageRecord] = {}
    order: list[str] = []
    class_names: list[str] | None = None
    image_dirs: list[str] = []
    objects_read = 0
    coco_meta: dict = {"info": None, "licenses": {}, "categories": {}, "other": {}}
    category_ids: dict[str, dict[str, object]] = {}  # file -> name -> its id there (the first, for a name twice)
    not_read: list[tuple[str, str, str]] = []
    found = json_files(src, not_read)
    for path, code, why in not_read:
        findings.append(info(code, path, "", why))
    if on_total:
        on_total(len(found))
    for split, jpath in found:
        data = read_json(jpath)
        if len(found) > 1 and isinstance(data, dict) and not set(COCO_KEYS) & set(data):
            findings.append(info("json-not-coco", jpath, "", NOT_COCO))  # one too large to tell by its head
            continue
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise FormatError(jpath, "", "expected a COCO object with an 'images' list")
        cats = data.get("categories") or []
        cat_name: dict = {}
        group = _group_category(cats, data.get("annotations"))
        if group is not None:
            findings.append(info("category-is-group", str(jpath), "categories",
                                 f"category {group['id']!r} {group['name']!r} has no boxes and is the supercategory of "
                                 "every other category (Roboflow names the dataset so): a group, not a class; it is "
                                 "left out of the class list"))
        by_id = sorted((c for c in cats if isinstance(c, dict) and c is not group), key=_category_order)
        for c in by_id:
            name = str(c.get("name", "")).strip()
            if not isinstance(c.get("id"), _ID) or not name:
                findings.append(warn("bad-category", str(jpath), "categories", f"category {c!r} has no id or name"))
                continue
            first = next((i for i, n in cat_name.items() if n == name), None)
            if first is not None:  # the model knows classes by name: the two are one class from here on
                findings.append(warn("duplicate-category-name", str(jpath), "categories", f"categories {first!r} and "
                                     f"{c['id']!r} are both {name!r}: read as one class (pycocotools on this file "
                                     "scores them apart)"))
            cat_name[c["id"]] = name
            category_ids.setdefault(str(jpath), {}).setdefault(name, c["id"])
            coco_meta["categories"].setdefault(name, dict(_extra(c, _CAT_KEYS)))
        _collect_meta(data, coco_meta)
        names_here = list(dict.fromkeys(cat_name.values()))  # the group (by its id) is no class
        if class_names is None:
            class_names = names_here
        else:
            class_names += [n for n in names_here if n not in class_names]
        img_by_id: dict = {}
        repeated: set[str] = set()  # images an earlier split's file listed already (the same picture)
        file_names = [str(im.get("file_name", "")) for im in data["images"] if isinstance(im, dict)]
        index = ImageIndex(images if images else guess_image_dir(jpath, split, file_names))
        if index.exists:
            image_dirs.append(str(index.folder))
        elif file_names:
            findings.append(no_images_found(jpath, split, images, len(file_names)))
        for k, im in enumerate(data["images"]):
            where = f"images[{k}]"
            if not isinstance(im, dict) or not isinstance(im.get("id"), _ID):
                found = f", found {im.get('id')!r:.60}" if isinstance(im, dict) and im.get("id") is not None else ""
                findings.append(err("missing-field", str(jpath), f"{where}/id", f"image entry without an id (a number "
                                    f"or a string){found}; dropped", image_dropped=True))
                continue
            if im["id"] in img_by_id:  # annotations name an image by id: the first entry of the id keeps them
                findings.append(err("duplicate-image-id", str(jpath), f"{where}/id", f"image id {im['id']!r} is "
                                    f"listed twice (first as {img_by_id[im['id']]!r}); this entry is dropped, the "
                                    "annotations of the id go to the first", image_dropped=True))
                continue
            fname = str(im.get("file_name") or "")  # ' a.jpg' is a name (torchvision opens it), '  ' none
            fname = fname if fname.strip() else ""
            iid = name_id(fname, fallback=f"image_{id_text(im['id'])}")
            source = f"{jpath}#{id_text(im['id'])}"
            if iid in records and records[iid].source != source:
                prev = records[iid]
                if split and split not in prev.splits and prev.file_name == fname:
                    # Another split's file names the same file name: the same picture in two splits (train and
                    # trainval), unless this split's image folder holds another file of that name (a CVAT project's
                    # images/<subset>/frame_000000.jpg, a Roboflow train/ and valid/): then another image,
                    # <split>/<id>, as the CVAT XML and YOLO readers keep it.
                    here = index.find(fname, iid, id_names_image=False)[0] if index.exists else None
                    if here is None or prev.image_path is None or fs.same_file(here, prev.image_path, contents=True):
                        img_by_id[im["id"]] = iid
                        records[iid] = replace(prev, splits=prev.splits + (split,),
                                               image_path=prev.image_path or here)
                        repeated.add(iid)
                        continue
                    iid = name_id(f"{split}/{fname}", fallback=f"image_{id_text(im['id'])}", key=id_text(im["id"]),
                                  taken=records)
                else:
                    was = prev.file_name
                    iid = name_id(fname, fallback=f"image_{id_text(im['id'])}", key=id_text(im["id"]), taken=records)
                    twice = (f"file name {fname!r} appears twice" if was == fname else
                             f"file name {fname!r} has the id of {was!r} (an id is the name without its extension)")
                    findings.append(warn("duplicate-file-name", str(jpath), f"{where}/file_name",
                                         f"{twice}; this one is kept as {iid}", image_id=iid))
            image_path, notes, _ = index.locate(fname, iid, path=str(jpath), fld=f"{where}/file_name",
                                                id_names_image=False)
            findings.extend(notes)
            w, h = annotation_size(im.get("width"), im.get("height"), path=str(jpath), image_id=iid,
                                   findings=findings, fields=(f"{where}/width", f"{where}/height"),
                                   names=("width", "height"))
            records[iid] = ImageRecord(image_id=iid, file_name=fname, width=w, height=h, image_path=image_path,
                                       source=source, splits=(split,) if split else (),
                                       extra=_extra(im, _IMAGE_KEYS))
            order.append(iid)
            img_by_id[im["id"]] = iid
        anns_by_img: dict[str, list[Annotation]] = {}
        ann_ids: set = set()
        for k, a in enumerate(data.get("annotations") or []):
            where = f"annotations[{k}]"
            objects_read += 1
            if isinstance(a, dict) and isinstance(a.get("id"), _ID):
                if a["id"] in ann_ids:  # pycocotools' index keeps one of them: CocoDetection loads it twice
                    findings.append(warn("duplicate-annotation-id", str(jpath), f"{where}/id", f"annotation id "
                                         f"{a['id']!r} is used twice; both boxes are read, pycocotools keeps one"))
                ann_ids.add(a["id"])
            if not isinstance(a, dict):
                findings.append(err("missing-field", str(jpath), where, "annotation is not an object; dropped", objects=1))
                continue
            iid = img_by_id.get(a.get("image_id")) if isinstance(a.get("image_id"), _ID) else None
            if iid is None:
                findings.append(err("unknown-image", str(jpath), f"{where}/image_id",
                                    f"image_id {a.get('image_id')!r} is not in images; dropped", objects=1))
                continue
            if not isinstance(a.get("category_id"), _ID) or a["category_id"] not in cat_name:
                findings.append(err("unknown-class", str(jpath), f"{where}/category_id",
                                    f"category_id {a.get('category_id')!r} is not in categories; dropped",
                                    image_id=iid, objects=1))
                continue
            box = _box_of(a)
            if box is None:
                findings.append(err("missing-field", str(jpath), f"{where}/bbox",
                                    f"expected bbox [x, y, w, h] of numbers, found {a.get('bbox')!r}; dropped",
                                    image_id=iid, objects=1))
                continue
            if not is_finite(box):  # finite as written, x + w past any float
                findings.append(err("bad-number", str(jpath), f"{where}/bbox", f"bbox {a.get('bbox')!r} is no finite "
                                    "number of pixels; dropped", image_id=iid, objects=1))
                continue
            attrs = a.get("attributes") if isinstance(a.get("attributes"), dict) else {}
            if "rotation" in attrs:  # CVAT's COCO export: the unrotated bbox, turned about its centre
                box = _rotated(box, attrs, str(jpath), where, iid, findings)
                if box is None:
                    continue
                attrs = {k2: v for k2, v in attrs.items() if k2 != "rotation"}  # the box is the envelope now
            plain = tuple(sorted((str(k2), str(v)) for k2, v in attrs.items()
                                 if k2 not in _FLAGS and not isinstance(v, (dict, list))))
            nested = {k2: v for k2, v in attrs.items() if k2 not in _FLAGS and isinstance(v, (dict, list))}
            kept = _extra(a, _ANN_KEYS) + ((("attributes", nested),) if nested else ())
            score = json_number(a.get("score")) if "score" in a else None
            # A flag written as text ("false", "0") is read by the one flag rule: bool("false") is True.
            flags = {k2: v if v.__class__ is bool else json_flag(v, str(jpath), f"{where}/attributes/{k2}", iid,
                                                                  findings) for k2, v in attrs.items() if k2 in _FLAGS}
            crowd = a.get("iscrowd", 0)
            crowd = crowd == 1 if crowd in (0, 1) else json_flag(crowd, str(jpath), f"{where}/iscrowd", iid, findings)
            anns_by_img.setdefault(iid, []).append(Annotation(
                cat_name[a["category_id"]], box, difficult=flags.get("difficult", False),
                truncated=flags.get("truncated", False), occluded=flags.get("occluded", False),
                iscrowd=crowd and not flags.get("difficult", False), score=score, attributes=plain,
                where=where, extra=kept))
        for iid, anns in anns_by_img.items():
            rec = records[iid]
            if iid in repeated:  # the same picture in two split files: each of its boxes once
                anns, again = _not_read_yet(rec.annotations, anns)
                if again:
                    findings.append(info("repeated-image", str(jpath), "images", f"the image is listed in an earlier "
                                         f"split's file too; its {again} box(es) there were read already and are "
                                         "not read twice", image_id=iid, objects=again))
            records[iid] = rec.with_annotations(rec.annotations + tuple(anns))
    recs = [records[i] for i in sorted(dict.fromkeys(order))]
    recs = fill_sizes_from_headers(recs, findings, workers=workers, mapper=mapper)
    if progress:
        progress(len(found))
    cls = tuple(classes) if classes else tuple(class_names or ())
    meta: dict = {"image_dir": image_dirs[0]} if len(set(image_dirs)) == 1 else {}
    meta["coco"] = {"info": coco_meta["info"], "licenses": list(coco_meta["licenses"].values()),
                    "categories": {n: e for n, e in coco_meta["categories"].items() if e},
                    "other": coco_meta["other"]}
    meta["category_ids"] = category_ids
    return Dataset(images=tuple(recs), classes=cls, findings=tuple(findings), objects_read=objects_read, root=str(src),
                   format=NAME, meta=meta)


def _rotated(box, attrs: dict, path: str, where: str, image_id: str, findings: list[Finding]):
    """A box with CVAT's ``attributes.rotation`` (degrees about its centre): the axis-aligned box around it, with a
    ``rotated-box`` warning, as the CVAT XML reader reads it; None after a ``bad-number`` error that drops it."""
    raw = attrs["rotation"]
    angle = json_number(raw) if not isinstance(raw, str) else text_number(raw)
    if angle is None:
        findings.append(err("bad-number", path, f"{where}/attributes/rotation", f"rotation is {raw!r}, not a finite "
                            "number; dropped", image_id=image_id, objects=1))
        return None
    if not angle % 360:
        return box
    findings.append(warn("rotated-box", path, f"{where}/attributes/rotation", f"box rotated by {angle:g} degrees; "
                         "read as the axis-aligned box around it", image_id=image_id))
    x1, y1, x2, y2 = box
    return centred_envelope((x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2, angle)


def _not_read_yet(have: Sequence[Annotation], new: Sequence[Annotation]) -> tuple[list[Annotation], int]:
    """The annotations of ``new`` that ``have`` does not hold already (the same class and box, counted as a
    multiset), and how many were left out."""
    left = Counter((a.label, a.box) for a in have)
    out = []
    for a in new:
        if left[(a.label, a.box)]:
            left[(a.label, a.box)] -= 1
        else:
            out.append(a)
    return out, len(new) - len(out)


def _group_category(cats: list, annotations) -> dict | None:
    """The category that only groups the others, as Roboflow's COCO export writes one (id 0, the dataset's name,
    ``supercategory: "none"``, no boxes, the supercategory of every other category), or None. Nothing less exact is
    taken for a group: a category without boxes in one split may have boxes in another."""
    cats = [c for c in cats if isinstance(c, dict) and c.get("id") is not None and str(c.get("name", "")).strip()]
    tops = [c for c in cats if c.get("supercategory") == "none"]
    if len(tops) != 1 or len(cats) < 2:
        return None
    top = tops[0]
    if any(c.get("supercategory") != top["name"] for c in cats if c is not top):
        return None
    if any(isinstance(a, dict) and a.get("category_id") == top["id"] for a in annotations or ()):
        return None
    return top


def _extra(entry: dict, known: frozenset) -> tuple:
    """The keys of a COCO entry that the model does not hold, as (key, value) pairs in the file's order."""
    return tuple((k, v) for k, v in entry.items() if k not in known)


def _collect_meta(data: dict, meta: dict) -> None:
    """The dataset-level fields of one COCO file: its ``info`` (the first file's), ``licenses`` (by id, the first
    of an id wins) and any other top-level key (``type``, a dataset version; the first file's)."""
    if meta["info"] is None and isinstance(data.get("info"), dict):
        meta["info"] = data["info"]
    for key, value in data.items():
        if key not in _TOP_KEYS:
            meta["other"].setdefault(key, value)
    for lic in data.get("licenses") or ():
        if isinstance(lic, dict):
            meta["licenses"].setdefault(json.dumps(lic.get("id")), lic)


def merge_meta(metas: Sequence[dict], *, sources: Sequence[str] = ()) -> tuple[dict, list[dict], list[Finding]]:
    """The ``meta["coco"]`` of several datasets merged: the first ``info``, categories' extra fields by name (per
    field, first wins: a field such as ``supercategory`` that a later dataset gives otherwise is a
    ``category-conflict`` warning at that dataset's ``sources`` entry), licenses united. A license whose id an
    earlier dataset uses for another license gets the next free id. Returns the merged meta, per dataset its
    ``{old id: new id}`` for :func:`relicense`, and the findings."""
    info, cats, licenses, remaps, findings, other = None, {}, [], [], [], {}
    used = {}
    for k, meta in enumerate(metas):
        meta = meta or {}
        info = info if info is not None else meta.get("info")
        for key, value in (meta.get("other") or {}).items():
            other.setdefault(key, value)
        for name, e in (meta.get("categories") or {}).items():
            first = cats.setdefault(name, {})
            clash = sorted(key for key, v in e.items() if key in first and first[key] != v)
            if clash:
                where = sources[k] if k < len(sources) else f"source {k + 1}"
                findings.append(warn("category-conflict", str(where), "categories", f"category {name!r}: "
                                     + ", ".join(f"{key} {e[key]!r} here, {first[key]!r} in an earlier source"
                                                 for key in clash) + "; the earlier one is kept"))
            first.update((key, v) for key, v in e.items() if key not in first)
        remap = {}
        for lic in meta.get("licenses") or ():
            lid, key = lic.get("id"), json.dumps(lic, sort_keys=True)
            if not isinstance(lid, (int, str)):
                lid = json.dumps(lid)
            if lid in used and used[lid] != key:
                new = max((v for v in used if isinstance(v, int)), default=0) + 1
                remap[lid], lic = new, {**lic, "id": new}
                lid = new
            if lid not in used:
                used[lid] = json.dumps(lic, sort_keys=True)
                licenses.append(lic)
        remaps.append(remap)
    return {"info": info, "licenses": licenses, "categories": cats, "other": other}, remaps, findings


def relicense(rec: ImageRecord, remap: dict) -> ImageRecord:
    """``rec`` with its COCO ``license`` id renumbered by ``remap`` (from :func:`merge_meta`)."""
    if not remap or not any(k == "license" and v in remap for k, v in rec.extra):
        return rec
    return replace(rec, extra=tuple((k, remap[v] if k == "license" and v in remap else v) for k, v in rec.extra))


def _box_of(a: dict):
    """The XYXY box of an annotation: its ``bbox``; the segmentation polygon's box only when there is no ``bbox``
    (absent, null or ``[]``); a malformed one (``["10", ...]``, five numbers) is none: the caller drops it, it never
    takes the polygon's."""
    bb = a.get("bbox")
    if bb is not None and bb != []:
        vals = [json_number(v) for v in bb] if isinstance(bb, (list, tuple)) and len(bb) == 4 else [None]
        return xywh_to_xyxy(*vals) if all(v is not None for v in vals) else None  # type: ignore[arg-type]
    seg = a.get("segmentation")
    if isinstance(seg, list) and seg and all(isinstance(p, list) and len(p) >= 6 for p in seg):
        # the bbox's number rule: a string is no number
        xs = [json_number(v) for p in seg for v in p[0::2]]
        ys = [json_number(v) for p in seg for v in p[1::2]]
        if None not in xs and None not in ys:
            return (min(xs), min(ys), max(xs), max(ys))  # type: ignore[type-var]
    return None


# --------------------------------------------------------------------------------------------------- writing

def to_coco(records: Sequence[ImageRecord], classes: Sequence[str], *, file_names: Sequence[str],
            precision: int = 6, meta: dict | None = None, source_ids: bool = False) -> dict:
    """Build the COCO dict: ids from 1 in record order, categories from 1 in class order (then any label the class
    list lacks, sorted: a dataset written as it is keeps every object; a conversion has dropped them before).
    ``source_ids`` (a dataset read from COCO): the images and categories keep the ids of their file where those are
    unique integers (:func:`_kept_ids`), so a results file keyed by them still scores against the copy.

    Fields read from a COCO source are written back: ``meta`` (a dataset's ``meta["coco"]``) gives ``info``,
    ``licenses`` and the categories' other fields; records and annotations carry theirs in ``extra``. ``area`` is
    the box's, unless the annotation kept a ``segmentation`` and its ``area`` (then that is the mask's)."""
    meta = meta or {}
    cat_extra = meta.get("categories") or {}
    classes = all_classes(classes, records)
    image_ids, cat_id = _kept_ids(records, classes, meta) if source_ids else (None, None)
    cat_id = cat_id or {n: i + 1 for i, n in enumerate(classes)}
    images, anns = [], []
    aid = 0
    for i, (rec, fname) in zip(image_ids or range(1, len(records) + 1), zip(records, file_names)):
        images.append({"id": i, "file_name": fname, "width": rec.width or 0, "height": rec.height or 0,
                       **dict(rec.extra)})
        for a in rec.annotations:
            aid += 1
            bbox = [json_num(v, precision) for v in xyxy_to_xywh(a.box)]
            kept = dict(a.extra)
            nested = kept.pop("attributes", {})
            area = kept.pop("area", None)
            if area is None or "segmentation" not in kept:
                area = json_num(bbox[2] * bbox[3], precision)
            entry = {"id": aid, "image_id": i, "category_id": cat_id[a.label], "bbox": bbox, "area": area, "iscrowd": int(a.iscrowd), **kept,
                     "attributes": {"difficult": a.difficult, "truncated": a.truncated, "occluded": a.occluded,
                                    **dict(a.attributes), **nested}}
            if a.score is not None:
                entry["score"] = a.score
            anns.append(entry)
    return {"info": meta.get("info") or dict(OUR_INFO),
            "licenses": list(meta.get("licenses") or ()), "images": images, "annotations": anns,
            "categories": [{"id": cat_id[n], "name": n, **(cat_extra.get(n) or {"supercategory": "none"})}
                           for n in classes], **(meta.get("other") or {})}


def _kept_ids(records: Sequence[ImageRecord], classes: Sequence[str], meta: dict
              ) -> tuple[list[int] | None, dict[str, int] | None]:
    """The image ids and category ids (by name) the records' COCO files gave them, each None where they are not
    unique integers (string ids, two files' colliding ids, a name with two ids) or where an image was listed by two
    files (its id in the second is not kept): those are numbered from 1. A class no file names takes the next free
    id."""
    raw = [rec.source_key[1] for rec in records]
    numbers, renumbered = image_numbers(raw)  # the one integer rule of COCO image ids
    image_ids = None if renumbered or any(len(r.splits) > 1 for r in records) else [numbers[r] for r in raw]
    try:
        cat_id = category_numbers((meta.get("category_ids") or {}).values(), classes)
    except ValueError:
        return image_ids, None
    if any(type(c) is not int for c in cat_id.values()) or len(set(cat_id.values())) != len(cat_id):
        return image_ids, None
    return image_ids, cat_id


def category_numbers(files: Iterable[Mapping[str, object]], classes: Sequence[str]) -> dict[str, object]:
    """The COCO category id of each of ``classes``: the one the files (each ``{name: id}``, a reader's
    ``meta["category_ids"]`` values) give it, else the next id past the largest integer one. ``ValueError`` when two
    files give one name two ids."""
    known: dict[str, object] = {}
    for ids in files:
        for name, cid in ids.items():
            if known.setdefault(name, cid) != cid:
                raise ValueError(f"{name!r} has the category id {known[name]!r} in one file and {cid!r} in another")
    fresh = itertools.count(max((v for v in known.values() if type(v) is int), default=0) + 1)
    return {n: known[n] if n in known else next(fresh) for n in classes}


def dumps(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def write(ds: Dataset, out: str | os.PathLike, *, images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6,
          workers: int | None = None, progress: ProgressFn | None = None, mapper: Mapper | None = None,
          **_ignored) -> WriteResult:
    """Write ``ds`` as COCO. The JSON files are written here; the images are placed on ``mapper`` (default: local
    threads; on Ray by the workers).

    ``out`` ending in ``.json``: one file with every image; ``file_name`` stays relative to the source image folder
    and images are not copied. Otherwise a folder: ``annotations/instances_<split>.json`` per split and, unless
    ``images_mode`` is ``none``, ``images/<split>/`` with the images renamed after their ids.
    """
    images_mode = ImagesMode(images_mode)
    out = Path(out)
    result = WriteResult(out=str(out))
    coco_meta = dict((ds.meta or {}).get("coco") or {}, category_ids=(ds.meta or {}).get("category_ids"))
    keep = ds.format == NAME  # COCO -> COCO keeps its ids
    if out.suffix.lower() == ".json":
        recs = list(ds.images)
        obj = to_coco(recs, ds.classes, file_names=[r.file_name or r.image_id for r in recs], precision=precision,
                      meta=coco_meta, source_ids=keep)
        atomic_write(out, dumps(obj))
        result.files = [str(out)]
    else:
        by_split: dict[str, list[ImageRecord]] = {}
        for rec in ds.images:
            for s in rec.splits or (DEFAULT_SPLIT,):
                by_split.setdefault(safe_relpath(s), []).append(rec)
        items = []
        pictures: list[tuple[str, str]] = []
        for split, recs in sorted(by_split.items()):
            placed, pics = placed_names(recs, images_mode, under=split)
            pictures += pics
            names = [p or r.file_name or r.image_id for p, r in zip(placed, recs)]
            obj = to_coco(recs, ds.classes, file_names=names, precision=precision, meta=coco_meta, source_ids=keep)
            items.append((f"instances_{split}.json", dumps(obj)))
        with staged_dir(out / "annotations") as stage:
            write_files([(os.path.join(stage, r), t) for r, t in items])
        place_images(out / "images", pictures, images_mode, mapper=mapper or Mapper(workers=workers))
        result.files = [str(out / "annotations" / r) for r, _ in items]
    return result.wrote_all(ds, progress)
