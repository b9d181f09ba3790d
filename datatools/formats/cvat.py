"""CVAT for images 1.1 XML: one ``annotations.xml`` for the whole task or project, as CVAT exports it, read (boxes,
and the envelope of polygons, ellipses, masks and rotated boxes, each noted; other shapes counted and dropped) and
written (meta with the labels, images with boxes). Parsed only through :mod:`datatools.formats.safe_xml`. What each
shape becomes and where the images are: docs/format-cvat.md.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from datatools.core.atomic import ImagesMode, atomic_write, place_images
from datatools.core.boxes import fmt_number, is_finite, snap
from datatools.core.errors import UsageError
from datatools.core.fs import files_for
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, all_classes
from datatools.core.parallel import Mapper, ProgressFn
from datatools.formats.common import (ImageIndex, WriteResult, err, existing_source, fill_sizes_from_headers,
                                      fold_no_images, id_in_split, image_folder, name_id, no_image_dir, placed_names,
                                      read_annotation_file, split_not_kept, warn)
from datatools.formats.values import annotation_size, read_flag, text_number
from datatools.formats.safe_xml import document_encoding, escape, names_not_xml, stream_document
from datatools.formats.shapes import box_notes, centred_envelope, envelope, shape_points
from datatools.formats.voc_xml import RAISE_XML_LIMIT

NAME = "cvat"
# What write() replaces whole in OUT; the image folder only when it places images.
OWNED = ("annotations.xml", "images")
IMAGE_FOLDER = "images"
NEEDS_SIZE = False  # boxes are written in pixels: an image without a size can be written
# What the writer keeps of an object besides box and class: occluded="1", the other flags and attributes as
# <attribute>s; an image's split as its subset.
KEEPS = frozenset({"difficult", "truncated", "occluded", "iscrowd", "attributes", "splits", "classes"})
ANNOTATIONS = "annotations.xml"
# One file holds the whole dataset, so the limit is larger than VOC's per-image 16 MiB; a 256 MiB CVAT export holds
# well over a million boxes. ``read(max_xml_bytes=...)`` raises it.
MAX_CVAT_BYTES = 256 * 2**20
# Shapes read as boxes: a box as it is, the others as their exact bounding box (polygon-to-box, shape-to-box).
BOX_SHAPES = ("box", "polygon", "ellipse", "mask")
# Shapes CVAT for images writes that are not objects with an area of their own (a cuboid is a 3-D box drawn in 2-D,
# a skeleton a set of points): counted and dropped, never silently.
OTHER_SHAPES = frozenset({"polyline", "points", "cuboid", "skeleton", "tag"})
# Attributes read into the model's flags (and written back from them) rather than kept as plain attributes.
_FLAG_ATTRS = ("difficult", "truncated", "iscrowd")


def annotation_file(src: str) -> str:
    """The ``annotations.xml`` of SRC: the file itself, or the one inside a folder."""
    files = files_for(src)
    if files.isfile(src):
        return src
    if files.isdir(src) and files.isfile(files.join(src, ANNOTATIONS)):
        return files.join(src, ANNOTATIONS)
    raise UsageError(f"{src}: expected a CVAT annotations.xml or a folder holding one")


def is_cvat_xml(path: str) -> bool:
    """Whether an XML file's root element is ``<annotations>`` (CVAT), looking at its first 4 KiB only (so that
    detection never parses a whole export)."""
    import re

    from datatools.core.fs import read_head

    head = read_head(path, 4096)
    if head is None:
        return False
    encoding = document_encoding(head)
    if not encoding.replace("_", "-").startswith("utf-8"):  # a UTF-16 export (a BOM), a declared one
        try:
            head = head.decode(encoding, errors="ignore").encode("utf-8")
        except LookupError:
            return False
    head = re.sub(rb"<\?.*?\?>|<!--.*?-->", b"", head, flags=re.S)
    m = re.search(rb"<\s*([A-Za-z_][\w.:-]*)", head)
    return bool(m and m.group(1) == b"annotations")


def meta_labels(meta) -> list[str]:
    """The label names of the ``<meta>`` element in their order: the task's, else the job's, else the project's
    (what CVAT writes for a task, job or project export; duplicates once). A label with a ``<parent>`` is a
    skeleton's point, not a class of its own, and a ``skeleton`` label names shapes that are never read as boxes:
    both are left out (an empty class in the list moved the YOLO ids after it)."""
    names: list[str] = []
    for where in ("task/labels/label", "job/labels/label", "project/labels/label"):
        for el in meta.iterfind(where):
            if (el.findtext("parent") or "").strip() or (el.findtext("type") or "").strip() == "skeleton":
                continue
            name = (el.findtext("name") or "").strip()
            if name and name not in names:
                names.append(name)
        if names:
            break
    return names


def _attributes(shape, where: str, path: str, image_id: str, findings: list[Finding]
                ) -> tuple[dict[str, bool], tuple[tuple[str, str], ...]]:
    """A shape's ``<attribute>`` children: (the model's flags, the other attributes). A flag that is not 0/1 or
    true/false is a ``bad-flag`` warning (read as VOC reads it); an attribute without a name, or a name given twice,
    is a ``bad-attribute`` warning: its value is not kept, the object is."""
    flags: dict[str, bool] = {}
    attrs: dict[str, str] = {}
    for j, a in enumerate(shape.iterfind("attribute")):
        key = (a.get("name") or "").strip()
        value = (a.text or "").strip()
        if not key or key in attrs or key in flags:
            why = "has no name" if not key else f"{key!r} is given again"
            findings.append(warn("bad-attribute", path, f"{where}/attribute[{j}]", f"the attribute {why}; its value "
                                 f"{value!r} is not kept", image_id=image_id))
            continue
        if key in _FLAG_ATTRS:
            flags[key] = read_flag(value, path, f"{where}/attribute[{j}]", image_id, findings)
        else:
            attrs[key] = value
    return flags, tuple(sorted(attrs.items()))


def _numbers(shape, keys: Sequence[str], where: str, path: str, image_id: str,
             findings: list[Finding]) -> list[float] | None:
    """The attributes ``keys`` of a shape as finite numbers, or None after a ``bad-number`` finding that drops it."""
    vals = [text_number(shape.get(k)) for k in keys]
    for k, v in zip(keys, vals):
        if v is None:
            findings.append(err("bad-number", path, f"{where}/@{k}", f"{k} is {shape.get(k)!r}, not a finite number; "
                                f"<{shape.tag}> dropped", image_id=image_id, objects=1))
            return None
    return vals


def _centred_box(shape, where: str, path: str, image_id: str, findings: list[Finding]):
    """A <box> (corners) or an <ellipse> (centre and radii) as pixel XYXY: with a ``rotation`` (degrees about the
    centre, as CVAT rotates both), the exact axis-aligned envelope of the rotated shape, and a ``rotated-box``
    warning. None after a finding that drops it."""
    keys = ("xtl", "ytl", "xbr", "ybr") if shape.tag == "box" else ("cx", "cy", "rx", "ry")
    vals = _numbers(shape, keys, where, path, image_id, findings)
    if vals is None:
        return None
    if shape.tag == "box":
        x1, y1, x2, y2 = vals
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    else:
        cx, cy, hw, hh = vals[0], vals[1], abs(vals[2]), abs(vals[3])
    angle = text_number(shape.get("rotation", "0"))
    if angle is None:  # never read as unrotated: the box would silently lose its rotation
        findings.append(err("bad-number", path, f"{where}/@rotation", f"rotation is {shape.get('rotation')!r}, "
                            f"not a finite number; <{shape.tag}> dropped", image_id=image_id, objects=1))
        return None
    if angle % 360:
        what = "box" if shape.tag == "box" else "ellipse"
        findings.append(warn("rotated-box", path, f"{where}/@rotation",
                             f"{what} rotated by {angle:g} degrees; read as the axis-aligned box around it",
                             image_id=image_id))
    return centred_envelope(cx, cy, hw, hh, angle, ellipse=shape.tag != "box")


def _polygon_box(shape, where: str, path: str, image_id: str, findings: list[Finding]):
    """A <polygon points="x,y;x,y;..."> as the box of its points, by the rule of every format's polygons
    (:func:`~datatools.formats.shapes.shape_points`)."""
    raw = shape.get("points") or ""
    got = shape_points([pair.split(",") for pair in raw.split(";")], kind="polygon", path=path, fld=f"{where}/@points",
                       image_id=image_id, findings=findings, number=text_number, shown=raw)
    return None if got is None else envelope(*got)


def _mask_box(shape, where: str, path: str, image_id: str, findings: list[Finding]):
    """A <mask rle left top width height> as the pixel XYXY box of its set pixels. CVAT writes the mask's pixels
    ``left``..``left+width-1`` and ``top``..``top+height-1`` (inclusive: its exporter writes width = right - left + 1),
    their row-major runs in ``rle``, background first. The envelope is found from the runs, never a pixel array."""
    vals = _numbers(shape, ("left", "top", "width", "height"), where, path, image_id, findings)
    if vals is None:
        return None
    left, top, w, h = vals
    if any(v != int(v) for v in vals) or w < 1 or h < 1:
        findings.append(err("bad-number", path, f"{where}/@width", f"left/top/width/height {left:g}/{top:g}/{w:g}/"
                            f"{h:g} are not whole pixels with a width and height of 1 or more; dropped",
                            image_id=image_id, objects=1))
        return None
    w, h = int(w), int(h)
    try:
        runs = [int(t) for t in (shape.get("rle") or "").split(",")]
    except ValueError:
        runs = [-1]
    if any(n < 0 for n in runs):
        findings.append(err("bad-number", path, f"{where}/@rle", f"rle {(shape.get('rle') or '')[:40]!r} is not a "
                            "list of run lengths; dropped", image_id=image_id, objects=1))
        return None
    if sum(runs) != w * h:
        findings.append(err("bad-shape", path, f"{where}/@rle", f"the rle covers {sum(runs)} pixels, not width x "
                            f"height = {w * h}; dropped", image_id=image_id, objects=1))
        return None
    cols: list[int] = []
    rows: list[int] = []
    pos = 0
    for k, n in enumerate(runs):
        if k % 2 and n:  # a run of set pixels, from pos to pos + n - 1
            (r1, c1), (r2, c2) = divmod(pos, w), divmod(pos + n - 1, w)
            rows += (r1, r2)
            cols += (c1, c2) if r1 == r2 else (0, w - 1)  # a run over a row's end spans every column
        pos += n
    if not rows:
        findings.append(err("zero-area", path, where, "the mask has no set pixel; dropped", image_id=image_id,
                            objects=1))
        return None
    return (left + min(cols), top + min(rows), left + max(cols) + 1, top + max(rows) + 1)


_BOX_OF = {"box": _centred_box, "ellipse": _centred_box, "polygon": _polygon_box, "mask": _mask_box}


def _shape_box(shape, where: str, path: str, image_id: str, findings: list[Finding]):
    """The pixel XYXY box of a shape of :data:`BOX_SHAPES`, or None after a finding that drops it."""
    box = _BOX_OF[shape.tag](shape, where, path, image_id, findings)
    if box is None:
        return None
    x1, y1, x2, y2 = box
    if not is_finite(box):
        findings.append(err("bad-number", path, where, "the box of the shape is no finite number of pixels; dropped",
                            image_id=image_id, objects=1))
        return None
    if x1 == x2 or y1 == y2:
        findings.append(err("zero-area", path, where, f"box {x1:g},{y1:g},{x2:g},{y2:g} has no extent; dropped",
                            image_id=image_id, objects=1, box=(x1, y1, x2, y2)))
        return None
    return (x1, y1, x2, y2)


def parse_cvat(data: bytes, *, path: str) -> tuple[list[ImageRecord], list[str], list[Finding], int]:
    """Parse one CVAT for images document: (records, meta label names, findings, objects met). Bad shapes and
    images are dropped one by one with a finding each; a refused file is one finding and nothing else. The document is
    streamed: one ``<image>`` element is held at a time, never the whole tree."""
    labels: list[str] = []
    findings: list[Finding] = []
    records: list[ImageRecord] = []
    seen: dict[str, str] = {}  # image id -> its subset
    met = k = 0

    def handle(el) -> None:
        nonlocal met, k
        if el.tag == "meta":
            labels.extend(n for n in meta_labels(el) if n not in labels)
            return
        record, shapes = _image_record(el, k, path, seen, findings)
        k += 1
        met += shapes
        if record is not None:
            records.append(record)

    refused = stream_document(data, path=path, root_tag="annotations", children=("meta", "image"), handle=handle)
    if refused is not None:
        return [], [], [refused], 0
    return records, labels, findings, met


def _image_record(im, k: int, path: str, seen: dict[str, str], findings: list[Finding]
                  ) -> tuple[ImageRecord | None, int]:
    """The record of the ``k``-th ``<image>`` element (None when it is dropped) and the number of shapes in it."""
    where = f"image[{k}]"
    name = im.get("name") or ""  # ' a.jpg' is a name, '  ' none
    name = name if name.strip() else ""
    shapes = [c for c in im if isinstance(c.tag, str) and (c.tag in BOX_SHAPES or c.tag in OTHER_SHAPES)]
    if not name:
        findings.append(err("missing-field", path, f"{where}/@name", "the image has no name; dropped with "
                            f"its {len(shapes)} shape(s)", objects=len(shapes), image_dropped=True))
        return None, len(shapes)
    iid = name_id(name, fallback=f"image_{im.get('id', k)}")
    subset = (im.get("subset") or "").strip()
    if iid in seen:
        # A project export keeps names unique within a subset only (its zip holds images/<subset>/<name>): the
        # same name in another subset is another image, kept as <subset>/<id>.
        other = id_in_split(iid, subset, seen) if seen[iid] != subset else None
        if other:
            iid = other
        else:
            iid = name_id(name, fallback=f"image_{im.get('id', k)}", key=im.get("id", k), taken=seen)
            findings.append(warn("duplicate-file-name", path, f"{where}/@name",
                                 f"image name {name!r} appears twice; this one is kept as {iid}", image_id=iid))
    seen[iid] = subset
    anns: list[Annotation] = []
    to_box: dict[str, int] = {}  # polygons, ellipses and masks read as their box
    other: dict[str, int] = {}
    for j, shape in enumerate(shapes):
        swhere = f"{where}/{shape.tag}[{j}]"
        if shape.tag in OTHER_SHAPES:
            other[shape.tag] = other.get(shape.tag, 0) + 1
            continue
        label = (shape.get("label") or "").strip()
        if not label:
            findings.append(err("missing-field", path, f"{swhere}/@label", "the shape has no label; dropped",
                                image_id=iid, objects=1))
            continue
        box = _shape_box(shape, swhere, path, iid, findings)
        if box is None:
            continue
        if shape.tag != "box":
            to_box[shape.tag] = to_box.get(shape.tag, 0) + 1
        flags, attrs = _attributes(shape, swhere, path, iid, findings)
        occluded = read_flag(shape.get("occluded"), path, f"{swhere}/@occluded", iid, findings)
        anns.append(Annotation(label, box, difficult=flags.get("difficult", False),
                               truncated=flags.get("truncated", False), occluded=occluded,
                               iscrowd=flags.get("iscrowd", False), attributes=attrs, where=swhere))
    polygons = to_box.pop("polygon", 0)
    findings += box_notes(path, iid, at=where, boxable="a box, polygon, ellipse or mask", polygons=polygons,
                          to_box=to_box, unsupported=other, show="<{}>", kind_at=lambda tag: f"{where}/{tag}")
    w, h = annotation_size(im.get("width"), im.get("height"), path=path, image_id=iid, findings=findings,
                           fields=(f"{where}/@width", f"{where}/@height"), names=("width", "height"), text=True)
    return ImageRecord(image_id=iid, file_name=name, width=w, height=h, annotations=tuple(anns), source=path,
                       splits=(subset,) if subset else ()), len(shapes)


def read(src: str | os.PathLike, *, images: str | os.PathLike | None = None, classes: Sequence[str] | None = None,
         workers: int | None = None, progress: ProgressFn | None = None, on_total=None, mapper: Mapper | None = None,
         max_xml_bytes: int = MAX_CVAT_BYTES, **_ignored) -> Dataset:
    """Read a CVAT for images 1.1 export: ``annotations.xml`` or the folder holding it (images in ``images/`` beside
    it, else beside the file; ``images`` overrides). The class order is ``classes``, else the ``<meta>`` labels, then
    any other label used (sorted, with a ``label-not-in-meta`` warning). Bad data becomes findings."""
    src, files = existing_source(src)
    xml_path = annotation_file(src)
    if on_total:
        on_total(1)
    data, unreadable = read_annotation_file(xml_path, "", max_bytes=max_xml_bytes, raise_with=RAISE_XML_LIMIT)
    if data is None:
        records, labels, findings, met = [], [], [unreadable], 0
    else:
        records, labels, findings, met = parse_cvat(data, path=xml_path)
        records.sort(key=lambda r: r.image_id)  # as every reader orders images: by id
    image_dir = image_folder(files.parent(xml_path), images)
    index = ImageIndex(image_dir)
    located: list[ImageRecord] = []
    for rec in records:
        name = rec.file_name.replace("\\", "/")
        # a project export: images/<subset>/<name>; a name that is a file as written comes first (datatools writes
        # images/<name>, and images/<subset>/<name> can be another image's: val/a beside a of subset val)
        if rec.splits and name not in index.by_rel and f"{rec.splits[0]}/{name}" in index.by_rel:
            name = f"{rec.splits[0]}/{name}"
        image_path, notes, _ = index.locate(name, rec.image_id, path=xml_path, fld="image/@name", shown=rec.file_name,
                                            id_names_image=False)
        findings.extend(notes)
        located.append(rec if image_path is None else replace(rec, image_path=image_path))
    if records and not index.exists:
        findings.append(no_image_dir(str(image_dir), "images", "the image folder does not exist; images are "
                                     "neither checked nor copied", given=bool(images)))
    fold_no_images(located, findings, str(image_dir), given=bool(images))
    located = fill_sizes_from_headers(located, findings, workers=workers, mapper=mapper)
    used = sorted({a.label for r in located for a in r.annotations} - set(labels))
    if labels and used:
        findings.append(warn("label-not-in-meta", xml_path, "meta/labels",
                             f"label(s) {', '.join(used)} are used but not listed in <meta>; put after its labels"))
    if progress:
        progress(1)
    cls = tuple(classes) if classes else tuple(labels) + tuple(used)
    return Dataset(images=tuple(located), classes=cls, findings=tuple(findings), objects_read=met, root=src,
                   format=NAME, meta={"image_dir": str(image_dir)} if index.exists else {})


# --------------------------------------------------------------------------------------------------- writing

def to_xml(records: Sequence[ImageRecord], classes: Sequence[str], *, names: Sequence[str], precision: int = 6) -> str:
    """Serialize records as one CVAT for images 1.1 document (deterministic)."""
    classes = all_classes(classes, records)
    # Images with a subset make a project export (CVAT writes subset= only there, and a task per subset in <meta>:
    # datumaro, which CVAT imports with, reads a task file as one subset named after the file and skips the rest).
    subsets = {sub: k for k, sub in enumerate(dict.fromkeys(r.splits[0] for r in records if r.splits))}
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>", "  <meta>",
             f"    <{'project' if subsets else 'task'}>", "      <name>datatools</name>"]
    if not subsets:
        lines += [f"      <size>{len(records)}</size>", "      <mode>annotation</mode>"]
    # Each attribute a label's boxes carry is declared under it: CVAT imports only declared ones (datumaro's export
    # skips the others too). The flags are checkboxes, the rest text.
    declared: dict[str, dict[str, bool]] = {c: {} for c in classes}
    for rec in records:
        for a in rec.annotations:
            for k in _FLAG_ATTRS:
                if getattr(a, k):
                    declared[a.label][k] = True
            for k, _ in a.attributes:
                declared[a.label].setdefault(k, False)
    lines.append("      <labels>")
    for c in classes:
        lines += ["        <label>", f"          <name>{escape(c)}</name>", "          <type>rectangle</type>",
                  "          <attributes>"]
        for k, flag in sorted(declared[c].items()):
            lines += ["            <attribute>", f"              <name>{escape(k)}</name>",
                      "              <mutable>False</mutable>",
                      f"              <input_type>{'checkbox' if flag else 'text'}</input_type>",
                      f"              <default_value>{'false' if flag else ''}</default_value>",
                      f"              <values>{'false&#10;true' if flag else ''}</values>", "            </attribute>"]
        lines += ["          </attributes>", "        </label>"]
    lines.append("      </labels>")
    if subsets:
        sizes = Counter(r.splits[0] if r.splits else "" for r in records)
        lines.append("      <tasks>")
        for sub, k in subsets.items():
            lines += ["        <task>", f"          <id>{k}</id>", f"          <name>{escape(sub)}</name>",
                      f"          <size>{sizes[sub]}</size>", "          <mode>annotation</mode>",
                      f"          <subset>{escape(sub)}</subset>", "        </task>"]
        lines.append("      </tasks>")
    lines += [f"    </{'project' if subsets else 'task'}>", "  </meta>"]
    for i, (rec, name) in enumerate(zip(records, names)):
        head = f'  <image id="{i}" name="{escape(name, quote=True)}" width="{rec.width or 0}" height="{rec.height or 0}"'
        if rec.splits:
            head += f' subset="{escape(rec.splits[0], quote=True)}" task_id="{subsets[rec.splits[0]]}"'
        if not rec.annotations:
            lines.append(head + " />")
            continue
        lines.append(head + ">")
        side = max(rec.width or 0, rec.height or 0)
        for a in rec.annotations:
            x1, y1, x2, y2 = (fmt_number(snap(v, side=side), precision) for v in a.box)
            attrs = [(k, "true") for k in _FLAG_ATTRS if getattr(a, k)] + list(a.attributes)
            body = (f'    <box label="{escape(a.label, quote=True)}" source="manual" occluded="{int(a.occluded)}" '
                    f'xtl="{x1}" ytl="{y1}" xbr="{x2}" ybr="{y2}" z_order="0"')
            if not attrs:
                lines.append(body + " />")
                continue
            lines.append(body + ">")
            lines += [f'      <attribute name="{escape(k, quote=True)}">{escape(str(v))}</attribute>' for k, v in attrs]
            lines.append("    </box>")
        lines.append("  </image>")
    lines.append("</annotations>\n")
    return "\n".join(lines)


def write(ds: Dataset, out: str | os.PathLike, *, images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6,
          workers: int | None = None, progress: ProgressFn | None = None, mapper: Mapper | None = None,
          **_ignored) -> WriteResult:
    """Write ``ds`` as ``OUT/annotations.xml`` and, unless ``images_mode`` is ``none``, ``OUT/images/`` with the
    images renamed after their ids (the layout of CVAT's own export zip, which CVAT imports back)."""
    images_mode = ImagesMode(images_mode)
    out = Path(out)
    result = WriteResult(out=str(out))
    placed, pictures = placed_names(ds.images, images_mode)
    names = [p or r.file_name or r.image_id for p, r in zip(placed, ds.images)]
    text = to_xml(ds.images, ds.classes, names=names, precision=precision)
    result.findings += split_not_kept(ds.images, "an <image> has one subset")
    result.findings += names_not_xml(all_classes(ds.classes, ds.images), ds.images, str(out / ANNOTATIONS))
    place_images(out / IMAGE_FOLDER, pictures, images_mode, mapper=mapper or Mapper(workers=workers))
    atomic_write(out / ANNOTATIONS, text)
    result.files = [str(out / ANNOTATIONS)]
    return result.wrote_all(ds, progress)
