"""Ground truth for the evaluator, and the names predictions use for a dataset's images and classes.

Use :func:`load_ground_truth` to read ground truth in any format (local path or URL) into column arrays plus a
pycocotools-ready dict, and :func:`dataset_keys` when only the matching rules are needed (``visualize --pred``):
both feed :func:`datatools.metrics.predictions.load_predictions`, so a predictions file is matched the same way
wherever it is read.

The image and category ids (those ``datatools voc2coco`` writes for VOC and YOLO, the file's own for COCO) and how a
prediction is matched (by ``file_name`` first, else by ``image_id``): docs/evaluate.md#inputs.
"""
from __future__ import annotations

import math
import os
import posixpath
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from datatools.core import fs
from datatools.core.boxes import DEFAULT_CONVENTION
from datatools.core.errors import UsageError
from datatools.core.model import Dataset, Finding, ImageRecord, class_list
from datatools.formats.coco_ids import coco_documents, id_text, image_numbers
from datatools.formats.common import err, info, split_named, split_role, warn
from datatools.formats.values import json_flag
from datatools.metrics.voc import BoxTable


@dataclass
class DatasetKeys:
    """How predictions name the images and classes of one dataset: ``by_id`` maps ``str(image_id)`` to an index of
    ``images`` (``None``: the id names images in more than one COCO file), ``by_name`` maps file names, base names
    and stems to an index (``None``: a base name or stem two images share), ``cat_index`` maps ``str(category_id)`` to an index of ``classes``. ``id_names`` is what a
    bare class id of a YOLO predictions file names: the source's own id order (its data.yaml names, which the model
    was trained on), when ``classes`` selected or reordered them; empty means ``classes``."""

    images: tuple[ImageRecord, ...]
    classes: tuple[str, ...]
    by_id: dict[str, int | None]
    by_name: dict[str, int | None]
    cat_index: dict[str, int]
    id_names: tuple[str, ...] = ()

    def index_of(self, *, image_id=None, file_name: str | None = None) -> int | None:
        """The image index for a prediction, by file name first (exact, base name, stem), else by id. A name two
        images answer to (YOLO's ``train/im0.jpg`` and ``val/im0.jpg`` are both ``im0.jpg``) is the one of them
        ``image_id`` names; a name in a split folder (``train/im0.jpg``) names no image of another split."""
        if not file_name:
            return None if image_id is None else self.by_id.get(id_text(image_id))
        for n, key in enumerate(_name_keys(str(file_name))):
            if key in self.by_name:
                i = self.by_name[key]
                if i is None and image_id is not None:
                    j = self.by_id.get(id_text(image_id))
                    i = j if j is not None and key in _record_keys(self.images[j]) else None
                whole = n in (0, 2) and i is not None and key in (self.images[i].file_name, self.images[i].image_id)
                return None if i is None or (not whole and _other_split(str(file_name), self.images[i])) else i
        return None


@dataclass
class GroundTruth(DatasetKeys):
    """Everything the evaluator needs about the ground truth.

    ``images`` and ``classes`` define the indices used in :class:`BoxTable`; ``coco`` is a COCO dict that pycocotools
    accepts (int ids, ``area`` and ``iscrowd`` on every annotation); ``image_ids[i]`` / ``category_ids[c]`` are the
    ids image ``i`` / class ``c`` have in it.
    """

    table: BoxTable = field(default_factory=BoxTable.empty)
    coco: dict = field(default_factory=dict)
    image_ids: list[int] = field(default_factory=list)
    category_ids: list[int] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    source: str = ""
    format: str = ""


def _record_keys(rec: ImageRecord) -> set[str]:
    """Every name a prediction may give ``rec`` by (:func:`_index_names`)."""
    return {k for name in (rec.file_name, rec.image_id) if name for k in _name_keys(name)}


def _other_split(name: str, rec: ImageRecord) -> bool:
    """Whether a prediction's name sits in a split's folder that is not the image's (``train/im0.jpg`` for the
    image ``im0.jpg`` of split val): matched by its base name, it would score one split's picture as another's."""
    parts = name.replace("\\", "/").split("/")
    folder = parts[-2] if len(parts) > 1 else ""
    own = set(rec.splits) | set(str(rec.image_path or "").replace("\\", "/").split("/")[-2:-1])
    return bool(split_role(folder)) and folder not in own


def _name_keys(name: str) -> tuple[str, ...]:
    name = name.replace("\\", "/")
    return (name, posixpath.basename(name), posixpath.splitext(name)[0],
            posixpath.splitext(posixpath.basename(name))[0])


def _index_names(images: Sequence[ImageRecord]) -> dict[str, int | None]:
    """Every name a prediction may give an image by: its file name and id, each whole, as a base name and without
    the extension. A name that two images answer to (``b/x.jpg`` and ``c/x.jpg`` both to ``x.jpg``) names neither
    (None: the prediction is reported, not given to the first), unless it is one image's whole name. A name two images'
    files answer to stays ambiguous even when it is one image's id: a reader made that id unique (YOLO's
    ``train/im0.png`` and ``val/im0.png`` are ``im0`` and ``val/im0``), the prediction ``im0`` still names both."""
    whole: dict[str, int | None] = {}
    derived: dict[str, int | None] = {}
    of_files: dict[str, int | None] = {}
    for i, rec in enumerate(images):
        for name in (rec.file_name, rec.image_id):
            if name:
                first, *rest = _name_keys(name)
                tables = ((whole, (first,)), (derived, rest)) + (((of_files, rest),) if name == rec.file_name else ())
                for table, keys in tables:
                    for k in keys:
                        table[k] = i if table.get(k, i) == i else None
    return {**derived, **whole, **{k: None for k, i in of_files.items() if i is None}}


def dataset_keys(ds: Dataset, *, categories: Sequence[dict] | None = None) -> DatasetKeys:
    """The matching rules for predictions on ``ds`` (any format, local or URL; see the module docstring).

    COCO: ``image_id`` is the image's ``id`` in its JSON file and ``category_id`` a category ``id`` of it (any id of
    a name: the reader reads categories of one name as one class; ``categories`` saves reading the files again when the caller has them). VOC and YOLO:
    ``image_id`` ``k`` is the k-th image of ``ds.images`` and ``category_id`` ``c`` the c-th class of ``ds.classes``
    (both 1-based, as ``datatools voc2coco`` numbers them)."""
    images = tuple(ds.images)
    classes = tuple(ds.classes)
    class_index = {c: k for k, c in enumerate(classes)}
    if ds.format != "coco":
        return DatasetKeys(images=images, classes=classes, by_id={str(k): k - 1 for k in range(1, len(images) + 1)},
                           by_name=_index_names(images),
                           cat_index={str(k): k - 1 for k in range(1, len(classes) + 1)},
                           id_names=tuple(ds.meta.get("names") or ()) if ds.format == "yolo" and ds.meta else ())
    by_id: dict[str, int | None] = {}
    jpaths: dict[str, None] = {}
    for i, rec in enumerate(images):
        jpath, raw = rec.source_key
        if not jpath:
            continue
        jpaths.setdefault(jpath, None)
        prev = by_id.get(raw, i)
        by_id[raw] = i if prev == i else None  # the same id in two files: ambiguous
    if categories is None:
        docs = coco_documents(jpaths)
        categories = [c for p in jpaths for c in docs[p].get("categories") or [] if isinstance(c, dict)]
    cat_index: dict[str, int | None] = {}
    for c in categories:
        name = str(c.get("name", "")).strip()
        if c.get("id") is not None and name in class_index:  # every id of a name (the reader reads them as one class)
            cat_index.setdefault(id_text(c["id"]), class_index[name])
    return DatasetKeys(images=images, classes=classes, by_id=by_id, by_name=_index_names(images), cat_index=cat_index)


def _table_from_records(images: Sequence[ImageRecord], classes: Sequence[str]) -> BoxTable:
    cid = {c: i for i, c in enumerate(classes)}
    columns: tuple[list, list, list, list] = ([], [], [], [])
    for i, rec in enumerate(images):
        append_columns(rec.annotations, i, cid, columns, scored=False)
    img, lab, box, ign = columns
    return BoxTable.build(img, lab, box, None, ign)


def append_columns(anns, image_index: int, cid: dict[str, int], columns: tuple[list, list, list, list], *,
                   scored: bool) -> int:
    """Append the annotations of known classes (``cid``: label -> class index; others are left out) of one image to
    the (image, label, XYXY box, last) columns of a :class:`BoxTable`: the ground truth's and the predictions' one
    walk. ``last`` is the ignore flag (difficult or crowd) of ground truth, or with ``scored`` the score of a
    detection; a detection without a usable score is left out and counted (returned), not evaluated."""
    img, lab, box, last = columns
    missing = 0
    for a in anns:
        if a.label not in cid:
            continue
        if scored and (a.score is None or not np.isfinite(a.score)):
            missing += 1
            continue
        img.append(image_index)
        lab.append(cid[a.label])
        box.append(a.box)
        last.append(a.score if scored else a.difficult or a.iscrowd)
    return missing


def sanitize_coco(data: dict, *, path: str = "", kept: set[int] | None = None
                  ) -> tuple[dict, dict[str, int], dict[str, int], list[Finding]]:
    """A copy of a COCO dict that pycocotools evaluates correctly, and what was changed.

    Guards the known traps: a missing ``area`` (pycocotools raises KeyError) becomes ``w * h``; a missing
    ``iscrowd`` becomes 0; string or non-unique image/category ids are mapped to ints (returned mappings for images
    and categories: ``id_text(original id) -> new id``, where a whole float id is its integer, as pycocotools takes it); annotation ids are renumbered 1..M in file order, because
    pycocotools keys annotations by id (duplicates silently overwrite each other) and treats an id of 0 as
    "unmatched". Image ids are numbered by :func:`datatools.formats.coco_ids.image_numbers` (as the torch datasets
    number them): kept when they are unique integers, else 1..N in the sorted order of their texts. ``kept``: the positions in ``annotations`` that the COCO reader kept (it reported each one it
    dropped), so that COCO and VOC metrics judge the same ground truth; a kept one without a usable ``bbox`` (the
    reader took its box from the segmentation) is left out here with a ``bad-annotation`` error.
    """
    findings: list[Finding] = []
    images = [im for im in data.get("images") or [] if isinstance(im, dict) and im.get("id") is not None]
    id_map, renumbered = image_numbers([id_text(im["id"]) for im in images])
    if renumbered:
        findings.append(warn("string-ids", path, "images/id",
                             "image ids are not unique integers; they were mapped to 1..N in the order of the sorted "
                             "ids (predictions are matched by the original id or by file_name)"))
    cats = [c for c in data.get("categories") or [] if isinstance(c, dict) and c.get("id") is not None]
    cat_ids = [id_text(c["id"]) for c in cats]
    cat_ints = all(isinstance(c["id"], (int, float)) and not isinstance(c["id"], bool) and float(c["id"]).is_integer()
                   for c in cats) and len(set(cat_ids)) == len(cat_ids)
    cat_map = {i: (int(i) if cat_ints else k) for k, i in enumerate(cat_ids, 1)}
    if not cat_ints:
        findings.append(warn("string-ids", path, "categories/id", "category ids are not unique integers; mapped to 1..K"))
    first_of: dict[str, int] = {}  # categories of one name are one class, as the reader reads them: one id
    named_once = []
    for i, c in zip(cat_ids, cats):
        own = cat_map[i]
        cat_map[i] = first_of.setdefault(str(c.get("name", "")).strip(), own)
        if cat_map[i] == own:
            named_once.append(c)
    cats = named_once
    out_images = [dict(im, id=id_map[id_text(im["id"])]) for im in images]
    out_anns = []
    missing_area = missing_crowd = dropped = 0
    for n, a in enumerate(data.get("annotations") or []):
        if kept is not None and n not in kept:
            continue  # dropped by the reader, with its finding
        if not isinstance(a, dict):
            dropped += 1
            continue
        iid = id_map.get(id_text(a.get("image_id")))
        cid = cat_map.get(id_text(a.get("category_id")))
        bb = a.get("bbox")
        if iid is None or cid is None or not (isinstance(bb, (list, tuple)) and len(bb) == 4 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bb)):
            dropped += 1
            continue
        b = dict(a, image_id=iid, category_id=cid, id=len(out_anns) + 1)
        if not isinstance(b.get("area"), (int, float)) or isinstance(b.get("area"), bool):
            b["area"] = float(bb[2]) * float(bb[3])
            missing_area += 1
        if "iscrowd" not in b:
            b["iscrowd"] = 0
            missing_crowd += 1
        elif type(b["iscrowd"]) is not int or b["iscrowd"] not in (0, 1):
            # "0", "false", null, true: the reader's flag rule (and its finding), as 0 or 1 for the evaluator, which
            # took "0" for a crowd (every number -1) or stopped on null
            b["iscrowd"] = int(json_flag(b["iscrowd"], path, f"annotations[{n}]/iscrowd", "", []))
        out_anns.append(b)
    if missing_area:
        findings.append(info("missing-area", path, "annotations/area",
                             f"{missing_area} annotation(s) had no area; w*h used (pycocotools needs it)"))
    if missing_crowd:
        findings.append(info("missing-iscrowd", path, "annotations/iscrowd",
                             f"{missing_crowd} annotation(s) had no iscrowd; 0 used (pycocotools needs it)"))
    if dropped:
        findings.append(err("bad-annotation", path, "annotations",
                            f"{dropped} annotation(s) with an unknown image or category or no usable bbox were not "
                            "evaluated", objects=dropped))
    out_cats = [dict(c, id=cat_map[id_text(c["id"])]) for c in cats]
    return {"images": out_images, "annotations": out_anns, "categories": out_cats}, id_map, cat_map, findings


def load_ground_truth(src: str | os.PathLike, *, format: str | None = None, split: str | None = None,
                      classes: Sequence[str] | None = None, convention: str | None = None,
                      images: str | os.PathLike | None = None, workers: int | None = None,
                      max_xml_bytes: int | None = None) -> GroundTruth:
    """Read ground truth in any format as every command reads its source (:func:`datatools.ops.convert.read_source`;
    a local path or a URL).

    ``format`` None (or ``auto``) detects it as ``convert`` and ``check`` do (:func:`datatools.formats.resolve`);
    ``convention`` None is the package's default VOC pixel convention. Ground truth without a single image is an
    error that says what was looked for where (evaluating it would give every metric -1).

    ``split`` picks VOC ImageSets/Main lists, the split of every other format that keeps one per image (YOLO, CVAT,
    Open Images; none in LabelMe or Label Studio: then every split is an error, never ignored), or a COCO split's JSON (``instances_<split>.json``,
    Roboflow's ``<split>/_annotations.coco.json``: :func:`datatools.formats.coco_layout.json_for_split`). VOC/YOLO are
    prepared as ``datatools voc2coco`` does (difficult objects become ``iscrowd``, boxes clipped to the image,
    degenerate boxes dropped and reported), so evaluating against VOC or against its voc2coco JSON gives the same
    COCO numbers. COCO ground truth is given to pycocotools as in the file (areas from the file), after
    :func:`sanitize_coco`.
    """
    from datatools.formats import coco as coco_fmt
    from datatools.formats.coco_layout import json_for_split
    from datatools.ops.convert import read_source, reader_classes, resolve_source
    from datatools.ops.sanitize import prepare

    src = os.fspath(src)
    classes = class_list(classes)  # ["circle", "circle"] counted every prediction twice
    files = fs.files_for(src)
    if not (files.isfile(src) or files.isdir(src)):
        raise UsageError(f"{src}: no such file or directory")
    fmt = resolve_source(src, format)  # as every command detects it; an unrelated folder says what was looked for
    if fmt == "coco":
        if classes:
            raise UsageError("--classes applies to VOC and YOLO ground truth: a COCO file numbers its own categories")
        jpath = json_for_split(src, split)
        ds: Dataset = read_source(jpath, "coco", images=images, workers=workers)
        raw = coco_documents([jpath])[jpath]  # areas and ids as written, for pycocotools
        kept = {int(a.where[12:-1]) for r in ds.images for a in r.annotations if a.where.startswith("annotations[")}
        coco, id_map, cat_map, fnd = sanitize_coco(raw, path=str(jpath), kept=kept)
        keys = dataset_keys(ds, categories=[c for c in raw.get("categories") or [] if isinstance(c, dict)])
        recs = keys.images
        image_ids = [id_map[r.source_key[1]] for r in recs]
        by_id = dict(keys.by_id)
        by_id.update({str(new): by_id[old] for old, new in id_map.items() if old in by_id and str(new) not in by_id})
        # predictions may use the ids pycocotools sees (mapped from string ids); the file's own ids win a clash
        cat_index = {str(cat_map[old]): k for old, k in keys.cat_index.items() if old in cat_map}
        cat_index.update(keys.cat_index)
        new_of = {k: cat_map[old] for old, k in keys.cat_index.items() if old in cat_map}
        return GroundTruth(images=recs, classes=keys.classes, by_id=by_id, by_name=keys.by_name, cat_index=cat_index,
                           table=_table_from_records(recs, keys.classes), coco=coco, image_ids=image_ids,
                           category_ids=[new_of[k] for k in range(len(keys.classes))],
                           findings=list(ds.findings) + fnd, source=str(jpath), format="coco")
    ds = read_source(src, fmt, classes=reader_classes(fmt, classes), images=images,
                     sets=split if fmt == "voc" else None, convention=convention or DEFAULT_CONVENTION, workers=workers,
                     max_xml_bytes=max_xml_bytes)
    if split and fmt != "voc":  # VOC chose its lists while reading; YOLO, CVAT, Open Images... keep a split per image
        chosen = split_named(split, ds.splits)
        if chosen is None:
            raise UsageError(f"{src}: no split {split!r} (found: {', '.join(ds.splits) or 'none'})")
        ds = ds.evolve(images=tuple(r for r in ds.images if chosen in r.splits))
    ds = prepare(ds, classes=classes if fmt != "yolo" else None, difficult="crowd")
    keys = dataset_keys(ds)
    recs, cls = keys.images, keys.classes
    coco = coco_fmt.to_coco(recs, cls, file_names=[r.file_name or r.image_id for r in recs])
    return GroundTruth(images=recs, classes=cls, by_id=keys.by_id, by_name=keys.by_name, cat_index=keys.cat_index,
                       id_names=keys.id_names, table=_table_from_records(recs, cls),
                       coco={k: coco[k] for k in ("images", "annotations", "categories")},
                       image_ids=list(range(1, len(recs) + 1)), category_ids=list(range(1, len(cls) + 1)),
                       findings=list(ds.findings), source=src, format=fmt)
