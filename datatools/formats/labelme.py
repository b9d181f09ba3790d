"""LabelMe JSON: one ``.json`` per image with ``shapes`` (``label``, ``points``, ``shape_type``), ``imagePath``,
``imageHeight`` and ``imageWidth``. Rectangles are boxes; polygons, circles, masks and rotated rectangles become
their envelope (noted); other shapes are counted and dropped. ``imageData`` is never decoded: the size comes from the
image header when the image is found, else from the JSON. See docs/format-labelme.md.
"""
from __future__ import annotations

import json
import math
import os
import posixpath
import re
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Sequence

from datatools.core import fs
from datatools.core.atomic import ImagesMode, place_images, staged_dir, write_staged
from datatools.core.boxes import is_finite
from datatools.core.fs import files_for
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, sorted_classes
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import is_absolute_name, safe_relpath
from datatools.formats.common import (ImageIndex, WriteResult, err, existing_source, fill_sizes_from_headers,
                                      fold_no_images, image_folder, info, json_num, no_image_dir, placed_names,
                                      read_annotation_file, warn)
from datatools.formats.values import annotation_size, json_flag
from datatools.formats.shapes import POLYGON, box_notes, envelope, shape_points

NAME = "labelme"
# labelme embeds the image in each file (imageData, base64) by default: a large photo's JSON is tens of MB. Larger
# files are refused unread (file-too-large), as VOC's and CVAT's are over their limits.
MAX_JSON_BYTES = 256 * 2**20
# What write() replaces whole in OUT (see core.paths.refuse_replacing_inputs); the image folder only when it
# places images (not under --images-mode none).
OWNED = ("annotations", "images")
IMAGE_FOLDER = "images"
NEEDS_SIZE = True  # imageWidth/imageHeight are the format's (labelme writes them; a null one is read back as no size)
# The shape's flags hold difficult, truncated and occluded; of the attributes, group_id and description (its keys).
KEEPS = frozenset({"difficult", "truncated", "occluded", "attributes"})


def keeps_attribute(name: str, value: str | None = None) -> bool:
    """``description``, and a ``group_id`` that is a whole number (labelme 6 refuses a file with another)."""
    return name == "description" or (name == "group_id" and (value is None or _group_id(value) is not None))


def _group_id(value) -> int | None:
    """A ``group_id`` as labelme reads one: a whole number (``"3"``, ``"-2"``, ``"3.0"``); None for any other."""
    m = re.fullmatch(r"\s*(-?[0-9]+)(?:\.0*)?\s*", str(value)) if value is not None else None
    return int(m.group(1)) if m else None


# The version written into each file: the field labelme itself writes (it warns, and still loads, on another).
LABELME_VERSION = "5.5.0"
_FLAGS = ("difficult", "truncated", "occluded")  # shape flags that mean the model's own flags
# The shape types read as boxes: (what the message says is needed, the point counts allowed; () = 3 or more).
# labelme's own rule for a shape's box is the min/max of its points. A rectangle is 2 opposite corners (labelme) or
# its 4 corners (X-AnyLabeling and other labelme forks write these); an oriented rectangle (labelme 5.x) or a
# "rotation" shape (X-AnyLabeling) is 4 corners of a rotated rectangle. A circle is its centre and a point on it; a
# mask (labelme 5.x) its top-left and bottom-right pixels, both inside it (labelme pastes the mask PNG over
# [y1:y2+1, x1:x2+1]), so its box in continuous coordinates ends one pixel after the second point.
_NEED: dict[str, tuple[str, tuple[int, ...]]] = {
    "rectangle": ("2 (or its 4 corners)", (2, 4)), "polygon": POLYGON,
    "oriented_rectangle": ("exactly 4", (4,)), "rotation": ("exactly 4", (4,)),
    "circle": ("exactly 2", (2,)), "mask": ("exactly 2", (2,))}
_ROTATED = ("oriented_rectangle", "rotation")
_TO_BOX = ("circle", "mask")  # read as their exact box, with a shape-to-box note


def _shape_box(kind: str, xs: list[float], ys: list[float]) -> tuple[float, float, float, float]:
    """The pixel XYXY box of a shape of ``kind`` from its points (counted already)."""
    if kind == "circle":  # labelme's own rule: the radius is the distance from the centre to the second point
        r = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
        return (xs[0] - r, ys[0] - r, xs[0] + r, ys[0] + r)
    if kind == "mask":  # whole pixels, as labelme truncates them (int())
        px, py = [float(int(v)) for v in xs], [float(int(v)) for v in ys]
        return (min(px), min(py), max(px) + 1, max(py) + 1)
    return envelope(xs, ys)


# --------------------------------------------------------------------------------------------------- layout

def _layout(src: str, images: str | os.PathLike | None) -> tuple[str, list[str], str | None]:
    """``(json root, json files relative to it, image folder)``: SRC's ``annotations/`` (what the writer makes) or
    SRC itself; the images in ``--images``, else SRC's ``images/``, else beside the JSON files (LabelMe's own
    layout), else the folder the first file's ``imagePath`` points into."""
    files = files_for(src)
    if files.isfile(src):
        root = files.parent(src)
        return root, [posixpath.basename(src.replace("\\", "/"))], os.fspath(images) if images else root
    ann = files.join(src, "annotations")
    names = files.find(ann, suffixes=(".json",))
    root = ann if names else src
    names = names or files.find(src, suffixes=(".json",))
    return root, names, image_folder(src, images)


# --------------------------------------------------------------------------------------------------- reading

def parse_shapes(shapes, *, path: str, image_id: str) -> tuple[list[Annotation], list[Finding], int]:
    """The shapes of one LabelMe file: ``(annotations, findings, shapes met)``. Every shape is counted: a box, a
    polygon's bounding box, or a finding that says why it was dropped."""
    anns: list[Annotation] = []
    findings: list[Finding] = []
    polygons = 0
    to_box: Counter = Counter()
    unsupported: Counter = Counter()
    for k, s in enumerate(shapes):
        where = f"shapes[{k}]"
        if not isinstance(s, dict):
            findings.append(err("missing-field", path, where, "shape is not an object; dropped", image_id=image_id,
                                objects=1))
            continue
        # labelme before 3.0 wrote no shape_type: every shape was a polygon.
        kind = s.get("shape_type") or "polygon"
        if not isinstance(kind, str) or kind not in _NEED:
            unsupported[str(kind)] += 1
            continue
        label = s.get("label")
        if not isinstance(label, str) or not label.strip():
            findings.append(err("missing-field", path, f"{where}/label", f"expected a label, found {label!r}; dropped",
                                image_id=image_id, objects=1))
            continue
        got = shape_points(s.get("points"), kind=kind, need=_NEED[kind], path=path, fld=f"{where}/points",
                           image_id=image_id, findings=findings)
        if got is None:
            continue
        xs, ys = got
        polygons += kind == "polygon"
        if kind in _TO_BOX:
            to_box[kind] += 1
        # An oriented rectangle, or a rectangle written as 4 corners that are not axis-aligned, has a rotation that a
        # box cannot hold: its envelope is read, never silently as if it were upright.
        if kind in _ROTATED or (len(xs) == 4 and kind == "rectangle" and (len(set(xs)) > 2 or len(set(ys)) > 2)):
            findings.append(warn("rotated-box", path, f"{where}/points", f"a rotated {kind} (4 corners); read as "
                                 "the axis-aligned box around it", image_id=image_id))
        flags = s.get("flags") if isinstance(s.get("flags"), dict) else {}
        attrs = []
        if s.get("group_id") is not None:
            attrs.append(("group_id", str(s["group_id"])))
        if isinstance(s.get("description"), str) and s["description"]:
            attrs.append(("description", s["description"]))
        box = _shape_box(kind, xs, ys)
        if not is_finite(box):
            findings.append(err("bad-number", path, f"{where}/points", "the shape's box is no finite number of "
                                "pixels; dropped", image_id=image_id, objects=1))
            continue
        anns.append(Annotation(label.strip(), box, attributes=tuple(attrs), where=where, **{
            k: json_flag(flags.get(k), path, f"{where}/flags/{k}", image_id, findings) for k in _FLAGS}))
    findings += box_notes(path, image_id, at="shapes", boxable="a rectangle, polygon, circle or mask",
                          polygons=polygons, to_box=to_box, unsupported=unsupported,
                          kind_at=lambda kind: "shapes/shape_type")
    return anns, findings, len(shapes)


def _image_name(json_dir: str, image_path: str, image_root: str) -> str:
    """``imagePath`` (relative to its JSON file) as a path inside the image folder, else its base name."""
    raw = image_path.replace("\\", "/")
    if is_absolute_name(raw):
        return posixpath.basename(raw)
    joined = posixpath.normpath(posixpath.join(json_dir.replace("\\", "/"), raw))
    rel = posixpath.relpath(joined, image_root.replace("\\", "/")) if not fs.is_url(image_root) else raw
    return posixpath.basename(raw) if rel.startswith("..") else rel


def _beside_json(rec: ImageRecord, root: str) -> str | None:
    """The image ``imagePath`` names relative to its own JSON file, where labelme itself opens it (``ann/a.json``
    naming ``../img/a.jpg``, or ``..\\img\\a.jpg`` as labelme on Windows writes it), when that file exists inside the
    folder above the JSON root, local or behind a URL alike; None for an absolute path or a path that leaves that
    folder."""
    raw = (rec.file_name or "").replace("\\", "/").strip()
    if not raw or is_absolute_name(raw):
        return None
    if fs.is_url(root):  # the same rule on the URL's path: memory:///d/ann/a.json naming ../img/a.jpg
        url, top = fs.resolve(fs.parent(str(rec.source)), raw), fs.parent(root)
        return url if url.startswith(top.rstrip("/") + "/") and fs.files_for(url).isfile(url) else None
    top = os.path.dirname(os.path.abspath(root))
    path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(rec.source)), raw))
    if os.path.commonpath([top, path]) != top or not os.path.isfile(path):
        return None
    return path


def read_chunk(items: Sequence[tuple[str, str]], *, root: str, image_root: str | None
               ) -> tuple[list[tuple[ImageRecord, str]], list[Finding], int]:
    """Worker: parse a chunk of ``(image_id, JSON path)``: ((record, name of its image), findings, shapes met).
    Module-level so that worker processes and Ray tasks can run it; images are paired on the driver."""
    out: list[tuple[ImageRecord, str]] = []
    findings: list[Finding] = []
    shapes_met = 0
    for iid, path in items:
        raw, unreadable = read_annotation_file(path, iid, max_bytes=MAX_JSON_BYTES)
        if raw is None:
            findings.append(unreadable)  # type: ignore[arg-type]
            continue
        if not raw.strip():
            findings.append(err("empty-file", path, "", "the file is empty; dropped", image_id=iid,
                                image_dropped=True))
            continue
        try:
            data = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            findings.append(err("json-parse", path, "", f"not valid JSON: {e}; dropped", image_id=iid,
                                image_dropped=True))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
            findings.append(err("missing-field", path, "shapes", "not a LabelMe file (expected an object with a "
                                "'shapes' list); dropped", image_id=iid, image_dropped=True))
            continue
        anns, fnd, n = parse_shapes(data["shapes"], path=path, image_id=iid)
        findings.extend(fnd)
        shapes_met += n
        image_path = data.get("imagePath")
        name = ""
        if isinstance(image_path, str) and image_path.strip():
            rel_dir = posixpath.dirname(iid)
            json_dir = posixpath.join(root.replace("\\", "/"), rel_dir) if rel_dir else root.replace("\\", "/")
            name = _image_name(json_dir, image_path.strip(), image_root or root)
        else:
            findings.append(warn("missing-filename", path, "imagePath", "no imagePath; the image is looked up by "
                                 "the JSON file's name", image_id=iid))
        w, h = annotation_size(data.get("imageWidth"), data.get("imageHeight"), path=path, image_id=iid,
                               findings=findings, fields=("imageWidth", "imageHeight"),
                               names=("imageWidth", "imageHeight"))
        rec = ImageRecord(image_id=iid, file_name=image_path if isinstance(image_path, str) else "", width=w,
                          height=h, annotations=tuple(anns), source=path)
        out.append((rec, name))
    return out, findings, shapes_met


def read(src: str | os.PathLike, *, images: str | os.PathLike | None = None, classes: Sequence[str] | None = None,
         workers: int | None = None, progress: ProgressFn | None = None, on_total=None,
         mapper: Mapper | None = None, **_ignored) -> Dataset:
    """Read a folder of LabelMe JSON files (recursive; ``annotations/`` when SRC has one), or one such file.

    Each image is the one named after its JSON file, else the one ``imagePath`` names (relative to the JSON file, or
    by base name in ``images``); its size is its header's, else ``imageWidth``/``imageHeight``. Use it for what the
    labelme tool saves; the per-file parsing runs as :func:`read_chunk` on ``mapper``.
    """
    src, files = existing_source(src)
    mapper = mapper or Mapper(workers=workers)
    root, names, image_root = _layout(src, images)
    items = [(posixpath.splitext(n)[0], files.join(root, n)) for n in names]
    if on_total:
        on_total(len(items))
    findings: list[Finding] = []
    parsed: list[tuple[ImageRecord, str]] = []
    objects_read = 0
    fn = partial(read_chunk, root=root, image_root=image_root)
    for recs, fnd, n in mapper(fn, mapper.chunks(items), progress=progress):
        parsed.extend(recs)
        findings.extend(fnd)
        objects_read += n
    index = ImageIndex(image_root)
    from dataclasses import replace

    records = []
    dropped_in = {f.image_id for f in findings if f.objects}
    no_folder = False
    for rec, name in parsed:
        found, notes, _ = index.locate(name, rec.image_id, path=rec.source, fld="imagePath",
                                       shown=rec.file_name or rec.image_id, or_else=partial(_beside_json, rec, root))
        findings.extend(notes)
        no_folder = no_folder or (found is None and not index.exists)
        rec = replace(rec, image_path=found)
        if not rec.has_size and not rec.image_path:  # as VOC: without a size the boxes cannot be judged
            findings.append(err("missing-size", rec.source, "imageWidth", "no imageWidth/imageHeight and no image "
                                f"to read the size from; dropped with its {len(rec.annotations)} object(s)",
                                image_id=rec.image_id, objects=len(rec.annotations), image_dropped=True))
            continue
        if not rec.annotations and rec.image_id not in dropped_in:
            findings.append(info("empty-annotation", rec.source, "shapes", "no objects", image_id=rec.image_id))
        records.append(rec)
    if no_folder:
        findings.append(no_image_dir(src, "imagePath", f"the image folder {image_root} does not exist: no image "
                                     "can be checked, sized or copied; pass --images DIR", given=bool(images)))
    fold_no_images(records, findings, str(image_root), given=bool(images))
    records = fill_sizes_from_headers(records, findings, workers=workers, mapper=mapper)
    cls = tuple(classes) if classes else sorted_classes(records)
    meta = {"image_dir": str(index.folder)} if index.exists else {}
    return Dataset(images=tuple(records), classes=cls, findings=tuple(findings), objects_read=objects_read, root=src,
                   format=NAME, meta=meta)


# --------------------------------------------------------------------------------------------------- writing

def to_labelme(rec: ImageRecord, image_path: str, *, precision: int = 6) -> dict:
    """One record as a LabelMe document: rectangle shapes, ``imageData`` null (labelme reads the image from
    ``imagePath``, relative to the JSON file)."""
    shapes = []
    for a in rec.annotations:
        attrs = a.attrs
        gid = attrs.get("group_id")
        flags = {k: True for k in _FLAGS if getattr(a, k)}
        shapes.append({"label": a.label,
                       "points": [[json_num(a.box[0], precision), json_num(a.box[1], precision)],
                                  [json_num(a.box[2], precision), json_num(a.box[3], precision)]],
                       "group_id": _group_id(gid),
                       "description": attrs.get("description", ""), "shape_type": "rectangle", "flags": flags})
    return {"version": LABELME_VERSION, "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": None,
            "imageHeight": rec.height, "imageWidth": rec.width}


def write(ds: Dataset, out: str | os.PathLike, *, images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6,
          workers: int | None = None, progress: ProgressFn | None = None, mapper: Mapper | None = None,
          **_ignored) -> WriteResult:
    """Write ``ds`` as LabelMe: ``annotations/<id>.json`` and, unless ``images_mode`` is ``none``,
    ``images/<id><ext>`` (each JSON's ``imagePath`` is ``../images/<id><ext>``, so labelme opens it). Under
    ``none`` (or for a record without an image file) ``imagePath`` is the source image relative to the JSON file, or
    the name the source wrote. Each folder is staged and swapped in whole. Splits are not a LabelMe notion: each
    image is written once."""
    images_mode = ImagesMode(images_mode)
    mapper = mapper or Mapper(workers=workers)
    out = Path(out)
    result = WriteResult(out=str(out))
    entries: list[tuple[bytes, list[str]]] = []
    placed, pictures = placed_names(ds.images, images_mode)
    rels: list[str] = []
    with staged_dir(out / "annotations") as stage:
        for rec, pic in zip(ds.images, placed):
            rel = safe_relpath(rec.image_id)
            depth = rel.count("/")
            if pic:
                image_path = "../" * (depth + 1) + "images/" + pic
            elif rec.image_path and not fs.is_url(rec.image_path):
                where = os.path.dirname(os.path.abspath(out / "annotations" / rel))
                image_path = os.path.relpath(os.path.abspath(rec.image_path), where).replace(os.sep, "/")
            else:
                image_path = rec.file_name or posixpath.basename(rel)
            text = json.dumps(to_labelme(rec, image_path, precision=precision), ensure_ascii=False, indent=2) + "\n"
            entries.append((text.encode("utf-8"), [os.path.join(stage, rel + ".json")]))
            rels.append(rel)
        write_staged(entries, stage=stage, mapper=mapper, progress=progress)
    place_images(out / "images", pictures, images_mode, mapper=mapper)
    result.files = [str(out / "annotations" / (r + ".json")) for r in rels]
    return result.wrote_all(ds)
