"""Label Studio JSON export (a list of tasks with ``data`` and ``annotations``) and its JSON-MIN export (turned into
the same tasks by :mod:`datatools.formats.labelstudio_min`), read by one code path: rectangle regions in percent of
the image are boxes, polygons and rotated rectangles their envelope (noted), other results counted and dropped; of
several annotations on one task, one is read. The rules: docs/format-labelstudio.md.
"""
from __future__ import annotations

import json
import math
import os
import posixpath
import re
from collections import Counter
from pathlib import Path
from typing import Sequence
from urllib.parse import parse_qs, quote, unquote, urlparse

from datatools.core import fs
from datatools.core.atomic import ImagesMode, atomic_write, place_images
from datatools.core.boxes import is_finite
from datatools.core.errors import DatatoolsError, FormatError, UsageError
from datatools.core.fs import files_for, read_json
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, Severity, sorted_classes
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import IMAGE_EXTENSIONS, is_absolute_name
from datatools.formats.common import (ImageIndex, WriteResult, err, existing_source, fill_sizes_from_headers,
                                      image_folder, info, json_num, name_id, no_image_dir, placed_names, warn)
from datatools.formats.values import annotation_size, json_number
from datatools.formats.labelstudio_min import Located, is_region_list, is_task
from datatools.formats.labelstudio_min import to_tasks as min_to_tasks
from datatools.formats.shapes import box_notes, shape_points

NAME = "labelstudio"
# What write() replaces in OUT (see core.paths.refuse_replacing_inputs); the image folder only when it places
# images (not under --images-mode none).
OWNED = ("tasks.json", "images")
IMAGE_FOLDER = "images"
NEEDS_SIZE = True  # boxes are written relative to the image size: images without one are dropped first
KEEPS: frozenset[str] = frozenset()  # a region is a label and a rectangle: no flag, no attribute
TASKS_FILE = "tasks.json"
# Where Label Studio serves local files from (LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to OUT): written before each
# image path, and stripped on reading, as is the upload folder.
LOCAL_FILES = "/data/local-files/?d="
_UPLOAD_HASH = re.compile(r"^[0-9a-f]{8}-")  # Label Studio renames uploads to <8 hex digits>-<name>
_IMAGE_EXTS = frozenset(IMAGE_EXTENSIONS)


# --------------------------------------------------------------------------------------------------- reading

def _ref_path(ref: str) -> tuple[str, str] | None:
    """``(path, query)`` of a Label Studio or storage URL (``/data/...``, ``http://host/data/...``, ``s3://b/k``);
    None for a plain file path, which may hold ``?`` or ``:`` (``C:\\x.jpg``) and is not parsed."""
    ref = ref.strip()
    if not (ref.startswith("/data/") or fs.is_url(ref)):  # http(s)://, s3://, gs://, azure-blob://
        return None
    url = urlparse(ref)
    return url.path, url.query


def image_name(ref: str) -> str:
    """The image path a task's ``data`` value names, without Label Studio's prefixes, whether the reference is a path
    on the server or a full URL to it: ``/data/local-files/?d=a/b.jpg`` is ``a/b.jpg``, ``/data/upload/3/x.jpg`` is
    ``3/x.jpg``, ``s3://bucket/a/b.jpg`` and ``https://host/a/b.jpg?sig=..`` are ``a/b.jpg`` (a bucket key as it is:
    ``s3://b/shot #1.jpg`` is ``shot #1.jpg``)."""
    key = fs.bucket_key(ref.strip())
    if key is not None:  # Label Studio stores a bucket's key as it is: '#', '?' and '%' are part of the name
        return key
    parts = _ref_path(ref)
    if parts is None:
        return ref.strip()
    path, query = parts
    if path.startswith("/data/local-files"):
        return parse_qs(query).get("d", [""])[0]  # parse_qs decodes the %-escapes already
    if path.startswith("/data/upload/"):
        return unquote(path[len("/data/upload/"):])
    return unquote(path).lstrip("/")


def _is_upload(ref: str) -> bool:
    """Whether Label Studio stored the image as an upload (renamed ``<8 hex digits>-<name>``)."""
    parts = _ref_path(ref)
    return parts is not None and parts[0].startswith("/data/upload/")


def _looks_like_image(v: str) -> bool:
    """Whether a data value names an image file (by its extension, after Label Studio's prefixes and any query)."""
    return posixpath.splitext(image_name(v))[1].lower() in _IMAGE_EXTS


def _task_image(task: dict) -> tuple[str, str]:
    """The task's image reference and its ``data`` key: ``data.image``; else, for a labeling config with another
    variable (``$img``, ``$image_url``), the first data value that names an image file, then the first URL or Label
    Studio path, then the first text that could be a file name."""
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    ref = data.get("image")
    if isinstance(ref, str):
        return ref, "image"
    texts = [(k, v) for k, v in data.items() if isinstance(v, str) and v.strip()]
    for ok in (_looks_like_image, lambda v: _ref_path(v) is not None, lambda v: "/" in v or "." in v):
        found = next(((k, v) for k, v in texts if ok(v)), None)
        if found is not None:
            return found[1], found[0]
    return "", ""


def _choose(anns, *, path: str, where: str, image_id: str, findings: list[Finding]) -> tuple[int, dict] | None:
    """``(index, annotation)`` to read: the first one marked ``ground_truth``, else the first one neither cancelled
    (``was_cancelled``) nor skipped (``skipped``, before 1.0), as Label Studio's own converter skips both; several
    make a ``several-annotations`` warning."""
    if not isinstance(anns, list):
        return None
    usable = [(i, a) for i, a in enumerate(anns)
              if isinstance(a, dict) and not (a.get("was_cancelled") or a.get("skipped"))]
    truth = [(i, a) for i, a in usable if a.get("ground_truth") is True]
    chosen = (truth or usable or [None])[0]
    if chosen is None and any(isinstance(a, dict) for a in anns):  # an image the annotators refused is no negative
        findings.append(Finding("cancelled-annotation", Severity.WARNING, path, where, f"every annotation "
                                f"({len(anns)}) was cancelled: the task is dropped, as Label Studio's converter "
                                "drops it", image_id, image_dropped=True))
    elif len(anns) > 1 and chosen is not None:
        which = f"the {'ground-truth' if truth else 'first completed'} one (id {chosen[1].get('id')!r}) is read"
        findings.append(warn("several-annotations", path, where,
                             f"{len(anns)} annotations ({len(anns) - len(usable)} cancelled); {which}, the others "
                             "are not", image_id=image_id))
    return chosen


def _unreadable(listed, ann: dict | None, *, anns_at: str, result_at: str) -> tuple[str, str, object] | None:
    """``(field, what was expected, what was found)`` when a task's labels cannot be read: ``annotations`` that is
    no list, or holds no object to read (``ann`` None: none was chosen), or the chosen annotation's ``result`` that
    is no list; else None."""
    if listed is not None and not isinstance(listed, list):
        return anns_at, "a list of annotations", listed
    if ann is None and listed:
        k, item = next(((k, a) for k, a in enumerate(listed) if not isinstance(a, dict)), (None, None))
        if k is not None:
            return f"{anns_at}[{k}]", "an annotation object", item
    if ann is not None and ann.get("result") is not None and not isinstance(ann["result"], list):
        return result_at, "a list of regions", ann["result"]
    return None


def _shape_of(kind, value: dict) -> str | None:
    """``"box"`` or ``"poly"``: what a result of type ``kind`` holds; None for a result that is not read. A
    ``labels`` result comes from a ``<Labels>`` tag beside a ``<Rectangle>`` (or ``<Polygon>``) tag: it carries the
    region's geometry (``x``/``y``/``width``/``height``, or ``points``), and Label Studio's converter reads it as a
    box; one with other geometry (a keypoint's ``x``/``y``/``width``, an ellipse's radii, a brush) is not read."""
    if kind == "rectanglelabels" or (kind == "labels" and "width" in value and "height" in value):
        return "box"
    if kind == "polygonlabels" or (kind == "labels" and "points" in value):
        return "poly"
    return None


def parse_result(result, *, path: str, where: str, image_id: str, at: Sequence[str] | None = None, image_key: str = ""
                 ) -> tuple[list[tuple[str, tuple, float, str]], list[Finding], tuple | None, int]:
    """One annotation's regions: ``(pending, findings, size, regions met)``. A pending region is ``(label, ("box", x,
    y, w, h) | ("poly", points), rotation, its field)`` in percent: pixels need the image size, which the image
    header may still change (:func:`to_pixels`). ``size`` is ``(original_width, original_height, the region's
    field)`` as the first box or polygon that has either writes them (judged by the caller, :func:`_task_size`),
    None when none has. ``where`` is the result list's field (``[3]/annotations[0]/result``); ``at`` each region's
    field where that is not ``where[k]`` (JSON-MIN).

    A task with several images (``image`` and ``image2``, or a ``valueList``): the regions of the image read (their
    ``to_name`` is ``image_key``, else the first one met; ``item_index`` 0) are read, the others dropped as
    ``other-image`` (they were put on the first image). Results that share a region's ``id`` (a ``choices`` or
    ``textarea`` per box) are that region's attributes, not objects."""
    pending: list[tuple[str, tuple, float, str]] = []
    findings: list[Finding] = []
    size: tuple | None = None
    unsupported: Counter = Counter()
    result = result if isinstance(result, list) else []
    regions = [r for r in result if isinstance(r, dict) and isinstance(r.get("value"), dict)
               and _shape_of(r.get("type"), r["value"])]
    region_ids = {r.get("id") for r in regions if r.get("id") is not None}
    names = list(dict.fromkeys(r.get("to_name") for r in regions if r.get("to_name")))
    own = image_key if image_key in names else (names[0] if names else None)
    per_region: dict = {}  # region id -> its (from_name, value) attributes
    attributes = 0
    for k, r in enumerate(result):
        here = at[k] if at else f"{where}[{k}]"
        kind = r.get("type") if isinstance(r, dict) else None
        value = r.get("value") if isinstance(r, dict) and isinstance(r.get("value"), dict) else {}
        shape = _shape_of(kind, value)
        if shape is None:
            if isinstance(r, dict) and r.get("id") is not None and r.get("id") in region_ids:
                attributes += 1  # a per-region choice or text: part of its region, no object of its own
                per_region.setdefault(r["id"], []).append((str(r.get("from_name") or kind), _attribute_text(value)))
            else:
                unsupported[str(kind)] += 1
            continue
        if (r.get("to_name") and own and r.get("to_name") != own) or r.get("item_index") not in (None, 0):
            other = r.get("to_name") if r.get("to_name") != own else f"item {r.get('item_index')}"
            findings.append(err("other-image", path, here, f"a region of another image of the task ({other}); "
                                "datatools reads one image a task: dropped", image_id=image_id, objects=1))
            continue
        if size is None and (r.get("original_width") is not None or r.get("original_height") is not None):
            size = (r.get("original_width"), r.get("original_height"), here)
        labels = value.get(kind)
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels):
            findings.append(err("missing-field", path, f"{here}/value/{kind}", f"expected a label, found {labels!r}; "
                                "dropped", image_id=image_id, objects=1))
            continue
        if len(labels) > 1:
            findings.append(warn("several-labels", path, f"{here}/value/{kind}",
                                 f"{len(labels)} labels {labels!r}; the first is used", image_id=image_id))
        rotation = json_number(value.get("rotation") if value.get("rotation") is not None else 0)
        if rotation is None:  # as CVAT: a rotation that is no number leaves the box's place unknown
            findings.append(err("bad-number", path, f"{here}/value/rotation", "rotation must be a number of degrees, "
                                f"found {value.get('rotation')!r}; dropped", image_id=image_id, objects=1))
            continue
        if shape == "box":
            nums = [json_number(value.get(f)) for f in ("x", "y", "width", "height")]
            if any(v is None for v in nums):
                findings.append(err("bad-number", path, f"{here}/value", "x, y, width and height must be numbers, "
                                    f"found {[value.get(f) for f in ('x', 'y', 'width', 'height')]!r}; dropped",
                                    image_id=image_id, objects=1))
                continue
            geom: tuple = ("box", *nums)  # a negative width or height is kept: to_pixels spans it
            if nums[2] < 0 or nums[3] < 0:  # type: ignore[operator]
                findings.append(info("flipped-box", path, f"{here}/value", f"width {nums[2]:g}, height {nums[3]:g}: "
                                     "a box flipped while resized; read as spanning x+width..x, y+height..y",
                                     image_id=image_id))
        else:
            got = shape_points(value.get("points"), kind="polygon", path=path, fld=f"{here}/value/points",
                               image_id=image_id, findings=findings)
            if got is None:
                continue
            geom = ("poly", list(zip(*got)))
        if rotation % 360:
            findings.append(warn("rotated-box", path, f"{here}/value/rotation", f"rotated by {rotation:g} degrees; "
                                 "its axis-aligned envelope is used", image_id=image_id))
        pending.append((labels[0].strip(), geom, rotation % 360, here, r.get("id")))
    findings += box_notes(path, image_id, at=where, boxable="a labelled box or polygon", noun="region",
                          polygons=sum(1 for _, g, *_ in pending if g[0] == "poly"), unsupported=unsupported)
    pending = [(lab, g, rot, here, tuple(per_region.get(rid, ()))) for lab, g, rot, here, rid in pending]
    return pending, findings, size, len(result) - attributes


_GEOMETRY = frozenset({"x", "y", "width", "height", "rotation", "points"})


def _attribute_text(value: dict) -> str:
    """A per-region result's value as text: its ``choices``, ``text``, ``rating``... (lists joined by commas)."""
    kept = [v for k, v in value.items() if k not in _GEOMETRY]
    return ",".join(str(x) for v in kept for x in (v if isinstance(v, list) else [v]))


def _task_size(size: tuple | None, data: dict, data_at: str, *, path: str, image_id: str, findings: list[Finding]
               ) -> tuple[int | None, int | None]:
    """The size a task gives its image: the regions' ``original_width``/``original_height`` (``size`` from
    :func:`parse_result`), else ``data.width``/``height``; judged by the rule of every reader
    (:func:`~datatools.formats.values.annotation_size`: ``bad-size``, ``missing-size``). A task that gives none
    says nothing: Label Studio stores sizes only with regions, so an image without any (a negative) has none to give,
    and its header gives it."""
    names = ("original_width", "original_height")
    if size is None and (data.get("width") is not None or data.get("height") is not None):
        size, names = (data.get("width"), data.get("height"), data_at), ("width", "height")
    if size is None:
        return None, None
    w, h, at = size
    return annotation_size(w, h, path=path, image_id=image_id, findings=findings, names=names,
                           fields=(f"{at}/{names[0]}", f"{at}/{names[1]}") if at else names)


def to_pixels(geom: tuple, rotation: float, width: int, height: int) -> tuple[float, float, float, float]:
    """A pending region (percent) as a pixel XYXY box. Label Studio rotates a rectangle about its top-left corner,
    clockwise on screen; the box is the envelope of the rotated corners (of the flipped box too: a negative width
    or height spans leftwards or upwards from x, y)."""
    if geom[0] == "poly":
        xs = [x * width / 100 for x, _ in geom[1]]
        ys = [y * height / 100 for _, y in geom[1]]
        return (min(xs), min(ys), max(xs), max(ys))
    _, x, y, w, h = geom
    x0, y0, bw, bh = x * width / 100, y * height / 100, w * width / 100, h * height / 100
    if not rotation:
        return (min(x0, x0 + bw), min(y0, y0 + bh), max(x0, x0 + bw), max(y0, y0 + bh))
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    xs = [x0 + dx * c - dy * s for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
    ys = [y0 + dx * s + dy * c for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
    return (min(xs), min(ys), max(xs), max(ys))


def _load_tasks(src: str) -> list[tuple[str, list[Located]]]:
    """``(path, tasks)`` per export file: SRC itself, or every ``*.json`` of a folder (a list of tasks or one task, as
    cloud target storage writes them; or a JSON-MIN list)."""
    files = files_for(src)
    paths = [src] if files.isfile(src) else [files.join(src, n) for n in files.listdir(src)[1]
                                             if n.lower().endswith(".json")]
    if not paths:
        raise UsageError(f"{src}: no Label Studio JSON export found (expected a .json file or a folder of them)")
    out = []
    for p in paths:
        data = read_json(p)
        if isinstance(data, dict) and "data" in data:
            data = [data]
        if not isinstance(data, list):
            raise FormatError(p, "", "expected a Label Studio export (a list of tasks with 'data' and 'annotations')")
        if data and not any(is_task(x) or _is_min_item(x) for x in data):
            first = data[0]
            keys = sorted(first)[:8] if isinstance(first, dict) else type(first).__name__
            raise UsageError(f"{p}: not a Label Studio export: expected tasks with 'data' and 'annotations' (JSON) "
                             f"or items with an image and regions (JSON-MIN); item [0] is {keys}")
        out.append((p, min_to_tasks(data)))
    return out


def _is_min_item(item) -> bool:
    """Whether a list item can be a JSON-MIN item: an object with regions, an annotation id or an image reference
    (a COCO results list, of image_id/category_id/bbox, has none of them)."""
    return isinstance(item, dict) and (item.get("annotation_id") is not None or any(
        is_region_list(v) or (isinstance(v, str) and _looks_like_image(v)) for v in item.values()))


def read(src: str | os.PathLike, *, images: str | os.PathLike | None = None, classes: Sequence[str] | None = None,
         workers: int | None = None, progress: ProgressFn | None = None, on_total=None,
         mapper: Mapper | None = None, **_ignored) -> Dataset:
    """Read a Label Studio ``JSON`` or ``JSON_MIN`` export: one file, or a folder of them.

    Each task's image is found by its base name in ``images`` (else ``images/`` beside the export, else the export's
    folder), without the prefix Label Studio gives uploads (``1a2b3c4d-``), else with it. Sizes are the image
    header's, else ``original_width``/``original_height``; a task with neither is dropped (percent needs a size).
    """
    src, files = existing_source(src)
    exports = _load_tasks(src)
    if on_total:
        on_total(len(exports))
    folder = image_folder(files.parent(src) if files.isfile(src) else src, images)
    index = ImageIndex(folder)
    # the image folder's own name, for paths given from the export's folder (any separator: a URL, or Windows)
    folder_prefix = re.split(r"[/\\]", os.fspath(folder).rstrip("/\\"))[-1] + "/" if folder else "\0"
    findings: list[Finding] = []
    records: list[ImageRecord] = []
    pending: dict[str, list[tuple[str, tuple, float]]] = {}
    seen: set[str] = set()
    objects_read = 0
    looked_up = bool(images) or bool(index.by_rel)
    if not looked_up:
        findings.append(warn("missing-image-dir", src, "data/image", f"no images in {folder}: sizes come from "
                             "original_width/original_height and images are not copied; pass --images DIR"))
    elif images and not index.exists:
        findings.append(no_image_dir(src, "data/image", f"the image folder {folder} does not exist", given=True))
    for path, tasks in exports:
        for task, where, data_at, anns_at in tasks:
            t = where[1:-1]
            if not isinstance(task, dict):
                findings.append(err("missing-field", path, where, "task is not an object; dropped", image_dropped=True))
                continue
            ref, image_key = _task_image(task)
            full = image_name(ref).replace("\\", "/") if ref else ""
            name = posixpath.basename(full)
            # looked up by the whole path the task gives (dir1/0001.jpg and dir2/0001.jpg are two images), and by its
            # base name where that finds nothing; a path from the server's root (/home/...) by its base name only
            wanted = full if full and not is_absolute_name(full) and ".." not in full.split("/") else name
            if wanted not in index.by_rel and wanted.startswith(folder_prefix):
                # a path from the export's folder (Label Studio's document root), as write() puts it: images/d/a.jpg
                wanted = wanted[len(folder_prefix):]
            uploaded = ""
            if _is_upload(ref) and _UPLOAD_HASH.match(name):
                uploaded, name = name, name[9:]  # the name the user uploaded
                wanted = name
            stem = name_id(name, fallback=f"task_{task.get('id', t)}")
            found = None
            if looked_up:
                # else the images as Label Studio stores them (media/upload/<project>): the name as uploaded
                also = (lambda: index.find(uploaded, stem, id_names_image=False)[0]) if uploaded else None
                found, notes, _ = index.locate(wanted, stem, path=path, fld=data_at, id_names_image=False,
                                               or_else=also)
                findings.extend(notes)
            iid = name_id(name, fallback=f"task_{task.get('id', t)}", key=task.get("id", t), taken=seen)
            if iid != stem:
                findings.append(warn("duplicate-file-name", path, data_at,
                                     f"image name {name!r} appears twice; this one is kept as {iid}", image_id=iid))
            seen.add(iid)
            listed = task.get("annotations", task.get("completions"))
            chosen = _choose(listed, path=path, where=anns_at, image_id=iid, findings=findings)
            ann = chosen[1] if chosen else {}
            result_at = ann.get("_where", f"{anns_at}[{chosen[0] if chosen else 0}]/result")
            bad = _unreadable(listed, chosen[1] if chosen else None, anns_at=anns_at, result_at=result_at)
            if bad:  # labels that cannot be read are not "no objects": never kept as an image without objects
                findings.append(err("missing-field", path, bad[0], f"expected {bad[1]}, found {bad[2]!r:.60}; the task "
                                    "is dropped (its objects cannot be read)", image_id=iid, image_dropped=True))
                continue
            if chosen is None and isinstance(listed, list) and any(isinstance(a, dict) for a in listed):
                continue  # every annotation cancelled: dropped (_choose said so)
            regions, fnd, size, n = parse_result(ann.get("result"), path=path, image_id=iid, at=ann.get("_at"),
                                                 where=result_at, image_key=image_key)
            findings.extend(fnd)
            objects_read += n
            if chosen is None and not task.get("annotations", task.get("completions")):
                # predictions (a model's) and drafts (unsubmitted work) are not annotations: never read as boxes
                unread = sum(1 for k in ("predictions", "drafts") for x in task.get(k) or []
                             if isinstance(x, dict) and x.get("result"))
                note = f"; its {unread} prediction(s)/draft(s) are not read" if unread else ""
                findings.append(info("empty-annotation", path, anns_at, f"task not annotated{note}", image_id=iid))
            data = task.get("data") if isinstance(task.get("data"), dict) else {}
            w, h = _task_size(size, data, data_at, path=path, image_id=iid, findings=findings)
            pending[iid] = regions
            records.append(ImageRecord(image_id=iid, file_name=ref, width=w, height=h, image_path=found,
                                       source=f"{path}#{task.get('id', t)}"))
    records = fill_sizes_from_headers(records, findings, workers=workers, mapper=mapper)
    kept = []
    for rec in records:
        regions = pending[rec.image_id]
        if not rec.has_size:
            findings.append(err("missing-size", rec.source, "original_width", "no original_width/original_height and "
                                f"no image to read the size from: {len(regions)} object(s) dropped",
                                image_id=rec.image_id, objects=len(regions), image_dropped=True))
            continue
        w, h = int(rec.width or 0), int(rec.height or 0)
        anns = []
        for lab, g, rot, here, attrs in regions:
            box = to_pixels(g, rot, w, h)
            if is_finite(box):
                anns.append(Annotation(lab, box, attributes=attrs, where=here))
            else:
                findings.append(err("bad-number", rec.source, here, "the region is no finite number of pixels; "
                                    "dropped", image_id=rec.image_id, objects=1))
        kept.append(rec.with_annotations(anns))
    if progress:
        progress(len(exports))
    cls = tuple(classes) if classes else sorted_classes(kept)
    meta = {"image_dir": str(index.folder)} if index.exists and index.by_rel else {}
    return Dataset(images=tuple(kept), classes=cls, findings=tuple(findings), objects_read=objects_read, root=src,
                   format=NAME, meta=meta)


# --------------------------------------------------------------------------------------------------- writing

def _pct(v: float, total: int, precision: int) -> int | float:
    # Percent keeps 6 more places than pixels would: x% * width / 100 then gives back the pixel value to `precision`.
    return json_num(v * 100 / total, precision + 6)


def to_tasks(records: Sequence[ImageRecord], refs: Sequence[str], *, precision: int = 6) -> list[dict]:
    """Records as Label Studio tasks to import: one completed annotation each, ``rectanglelabels`` regions for the
    default object-detection labeling config (``<Image name="image" value="$image"/>`` with
    ``<RectangleLabels name="label" toName="image">``)."""
    tasks = []
    for t, (rec, ref) in enumerate(zip(records, refs)):
        if not rec.has_size:
            raise DatatoolsError(f"{rec.source or rec.image_id}: Label Studio needs the image size (boxes are in "
                                 "percent of it); give the images (--images) or drop images without a size")
        result = []
        for k, a in enumerate(rec.annotations):
            x1, y1, x2, y2 = a.box
            w, h = int(rec.width or 0), int(rec.height or 0)
            result.append({"id": f"r{t + 1}_{k + 1}", "type": "rectanglelabels", "from_name": "label",
                           "to_name": "image", "original_width": rec.width, "original_height": rec.height,
                           "image_rotation": 0,
                           "value": {"x": _pct(x1, w, precision), "y": _pct(y1, h, precision),
                                     "width": _pct(x2 - x1, w, precision), "height": _pct(y2 - y1, h, precision),
                                     "rotation": 0, "rectanglelabels": [a.label]}})
        # the size in data too: a task without regions has it nowhere else (read back without the images, it was lost)
        tasks.append({"data": {"image": ref, "width": rec.width, "height": rec.height},
                      "annotations": [{"result": result, "was_cancelled": False, "ground_truth": False}]})
    return tasks


def _source_ref(name: str) -> str:
    """A task's image reference for an image not placed in OUT: the name its source wrote, under Label Studio's local
    file serving unless it is already a URL or a Label Studio path."""
    return name if fs.is_url(name) or name.startswith("/data/") else LOCAL_FILES + quote(name)


def write(ds: Dataset, out: str | os.PathLike, *, images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6,
          workers: int | None = None, progress: ProgressFn | None = None, mapper: Mapper | None = None,
          **_ignored) -> WriteResult:
    """Write ``ds`` as a task list Label Studio imports: ``OUT/tasks.json`` and, unless ``images_mode`` is ``none``,
    ``OUT/images/<id><ext>``, each task's image ``/data/local-files/?d=images/<id><ext>`` (Label Studio's local file
    serving, rooted at OUT; the path %-escaped as a query value). Under ``none`` a task names its source's file name
    there. Splits are not a Label Studio notion: each image is one task."""
    images_mode = ImagesMode(images_mode)
    out = Path(out)
    result = WriteResult(out=str(out))
    placed, pictures = placed_names(ds.images, images_mode)
    refs = [LOCAL_FILES + quote("images/" + p) if p else _source_ref(r.file_name or r.image_id)
            for p, r in zip(placed, ds.images)]
    tasks = to_tasks(ds.images, refs, precision=precision)
    target = out / TASKS_FILE
    # compact: indent= takes Python's own encoder, 4x slower than the C one (24 of 37 s for 100k tasks), and 50% larger
    atomic_write(target, json.dumps(tasks, ensure_ascii=False, separators=(",", ":")) + "\n")
    place_images(out / "images", pictures, images_mode, mapper=mapper or Mapper(workers=workers))
    result.files = [str(target)]
    return result.wrote_all(ds, progress)
