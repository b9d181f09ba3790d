"""One Pascal VOC XML document into one :class:`~datatools.core.model.ImageRecord` and its findings.

:func:`parse_xml` is the one VOC parser: lxml through :mod:`datatools.formats.safe_xml`, one walk over the
elements, every irregularity a finding. :func:`read_chunk` is what the reader maps over chunks of files (on local
processes or Ray tasks, see :mod:`datatools.core.parallel`); :mod:`datatools.formats.voc` plans the files and puts
the chunks together.
"""
from __future__ import annotations

from typing import Sequence

from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention, voc_to_xyxy
from datatools.core.model import Annotation, Finding, ImageRecord
from datatools.formats.common import MAX_ANNOTATION_BYTES, err, info, read_annotation_file, warn
from datatools.formats.values import MAX_SIDE, annotation_size, read_flag, size_side, text_number
from datatools.formats.safe_xml import parse_document

# Object children read for what they are; any other leaf child is kept as an attribute (``pose``, ...), as is each
# <attributes><attribute> (name, value) of CVAT's and datumaro's VOC export.
KNOWN_OBJECT_TAGS = frozenset({"name", "bndbox", "difficult", "truncated", "occluded", "part", "actions", "point",
                               "attributes"})
_FLAG_TAGS = ("difficult", "truncated", "occluded")
_FLAG_INDEX = {t: i for i, t in enumerate(_FLAG_TAGS)}
_COORDS = ("xmin", "ymin", "xmax", "ymax")
_COORD_INDEX = {t: i for i, t in enumerate(_COORDS)}
_PLAIN = {None: False, "0": False, "1": True}

# Annotation.where of the first objects: shared strings, which pickle sends once per chunk.
_OBJECT_AT = tuple(f"object[{k}]" for k in range(256))

# One file to read: (path, image_id, split lists it is in).
XmlFile = tuple[str, str, tuple[str, ...]]


def _size_of(size, path: str, image_id: str, findings: list[Finding]) -> tuple[int | None, int | None, int | None]:
    """(width, height, depth) of a <size> element (None: no <size>). Width and height are judged by
    :func:`~datatools.formats.values.annotation_size`, the rule of every reader (``bad-size``, ``missing-size``);
    a <depth> that is there but unusable is a ``bad-size`` warning too, and ignored."""
    dims: dict[str, str] = {}
    for c in () if size is None else size:
        if c.tag.__class__ is str and c.tag not in dims:
            dims[c.tag] = c.text or ""
    try:  # the common case in one step (whole numbers in range, depth too or none); anything else is named below
        w, h, d = int(dims["width"]), int(dims["height"]), int(dims.get("depth") or 0) or None
        if 0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE and (d is None or 0 < d <= MAX_SIDE):
            return w, h, d
    except (KeyError, ValueError):
        pass
    width, height = annotation_size(dims.get("width"), dims.get("height"), path=path, image_id=image_id,
                                    findings=findings, fields=("size/width", "size/height"),
                                    names=("<width>", "<height>"), text=True, size_field="size",
                                    holder="<size>" if size is None else "")
    depth = size_side(dims.get("depth"), text=True)
    if isinstance(depth, str):
        findings.append(warn("bad-size", path, "size/depth", f"<depth> is {dims['depth'].strip()!r}: {depth}; ignored",
                             image_id=image_id))
    return width, height, depth if isinstance(depth, int) else None


def parse_xml(data: bytes, *, path: str, image_id: str, convention: PixelConvention = DEFAULT_CONVENTION,
              splits: tuple[str, ...] = (), shared: dict | None = None) -> tuple[ImageRecord | None, list[Finding], int]:
    """Parse one VOC XML document. Returns (record or None when the file is refused, findings, objects met).

    Malformed objects are dropped one by one with a finding each (``objects=1``), so objects met == objects kept +
    objects dropped; the rest of the file is kept. Of a repeated tag the first wins (as with ``find()``).
    ``shared``: a dict kept across the files of a chunk, through which equal class names, attribute tuples and split
    tuples become one object (pickle then sends each once per chunk, and the driver holds one copy).
    """
    shared = {} if shared is None else shared
    splits = shared.setdefault(splits, splits)
    root, refused = parse_document(data, path=path, image_id=image_id, root_tag="annotation")
    if root is None:
        return None, [refused], 0
    findings: list[Finding] = []
    file_name_raw = size = None
    objects = []
    for child in root:  # one pass: cheaper than a findtext() per field
        tag = child.tag
        if tag == "object":
            objects.append(child)
        elif tag == "filename":
            if file_name_raw is None:
                file_name_raw = child.text or ""
        elif tag == "size" and size is None:
            size = child
    file_name = (file_name_raw or "").strip()
    if not file_name:
        findings.append(warn("missing-filename", path, "filename",
                             "no <filename>; the image is looked up by the XML name", image_id=image_id))
    width, height, depth = _size_of(size, path, image_id, findings)
    annotations: list[Annotation] = []
    parts = 0
    for k, obj in enumerate(objects):
        ann, part_count = _read_object(obj, k, path=path, image_id=image_id, convention=convention,
                                       findings=findings, shared=shared)
        parts += part_count
        if ann is not None:
            annotations.append(ann)
    if parts:
        findings.append(info("part-ignored", path, "object/part",
                             f"{parts} <part> box(es) ignored (body parts are not detection objects)",
                             image_id=image_id))
    if not objects:
        findings.append(info("empty-annotation", path, "object", "the annotation has no objects", image_id=image_id))
    record = ImageRecord(image_id=image_id, file_name=file_name, width=width, height=height, depth=depth,
                         annotations=tuple(annotations), source=path, splits=splits)
    return record, findings, len(objects)


def _read_object(obj, k: int, *, path: str, image_id: str, convention: PixelConvention, findings: list[Finding],
                 shared: dict) -> tuple[Annotation | None, int]:
    """One <object>: (its Annotation, or None when it is dropped with a finding; how many <part> boxes it has)."""
    raw_name = bb = None
    flags: list[str | None] = [None, None, None]  # difficult, truncated, occluded: raw text
    attrs: list[tuple[str, str]] = []
    seen: set[str] = set()
    parts = 0
    for child in obj:
        tag = child.tag
        if tag.__class__ is not str or tag in seen:  # a comment or processing instruction; a repeated tag
            if tag == "part":
                parts += 1
            continue
        seen.add(tag)
        if tag == "name":
            raw_name = child.text
        elif tag == "bndbox":
            bb = child
        elif tag in _FLAG_INDEX:
            flags[_FLAG_INDEX[tag]] = child.text or ""
        elif tag == "part":
            parts += 1
        elif tag == "attributes":  # CVAT's and datumaro's VOC: <attribute><name>color</name><value>red</value>
            for a in child:
                key = (a.findtext("name") or "").strip() if a.tag == "attribute" else ""
                if key in _FLAG_INDEX:  # a flag there too (CVAT's occluded): the element of its name wins
                    if flags[_FLAG_INDEX[key]] is None:
                        flags[_FLAG_INDEX[key]] = a.findtext("value") or ""
                elif key and key not in seen:
                    attrs.append((key, (a.findtext("value") or "").strip()))
        elif tag not in KNOWN_OBJECT_TAGS and len(child) == 0:
            attrs.append((tag, (child.text or "").strip()))
    if raw_name is None or not raw_name.strip():
        findings.append(err("missing-field", path, f"object[{k}]/name", "the object has no <name>; dropped",
                            image_id=image_id, objects=1))
        return None, parts
    name = raw_name.strip()
    if name != raw_name and "\n" not in raw_name:
        findings.append(warn("name-whitespace", path, f"object[{k}]/name",
                             f"class name {raw_name!r} has stray spaces; read as {name!r}", image_id=image_id))
    if bb is None:
        findings.append(err("missing-field", path, f"object[{k}]/bndbox", "the object has no <bndbox>; dropped",
                            image_id=image_id, objects=1))
        return None, parts
    raw: list[str | None] = [None, None, None, None]  # xmin, ymin, xmax, ymax
    for child in bb:
        i = _COORD_INDEX.get(child.tag)  # type: ignore[arg-type]
        if i is not None and raw[i] is None:
            raw[i] = child.text or ""
    try:  # the common case in one step; anything odd is named below
        x1, y1, x2, y2 = float(raw[0]), float(raw[1]), float(raw[2]), float(raw[3])  # type: ignore[arg-type]
        regular = x1 - x1 == y1 - y1 == x2 - x2 == y2 - y2 == 0.0  # NaN and inf fail this
    except (TypeError, ValueError):
        regular = False
    if not regular:
        for tag, text in zip(_COORDS, raw):
            if text_number(text) is None:
                what = "missing" if text is None else f"not a number: {text!r}"
                findings.append(err("missing-field" if text is None else "bad-number", path,
                                    f"object[{k}]/bndbox/{tag}", f"<{tag}> is {what}; object dropped",
                                    image_id=image_id, objects=1))
                return None, parts
    d, t, o = flags  # 0/1 (or absent) as written, else read by read_flag with a warning where it must guess
    difficult = _PLAIN[d] if d in _PLAIN else read_flag(d, path, f"object[{k}]/difficult", image_id, findings)
    truncated = _PLAIN[t] if t in _PLAIN else read_flag(t, path, f"object[{k}]/truncated", image_id, findings)
    occluded = _PLAIN[o] if o in _PLAIN else read_flag(o, path, f"object[{k}]/occluded", image_id, findings)
    if x1 == x2 or y1 == y2:
        # Written xmin == xmax is 1 pixel wide under devkit but 0 under as-is: a click, not an object. Dropped under
        # every convention so that the choice of convention never changes which boxes survive.
        findings.append(err("zero-area", path, f"object[{k}]/bndbox",
                            f"xmin/xmax {x1:g}/{x2:g}, ymin/ymax {y1:g}/{y2:g}: the box has no extent; object dropped",
                            image_id=image_id, objects=1, box=voc_to_xyxy(x1, y1, x2, y2, convention)))
        return None, parts
    if len(attrs) > 1:
        attrs.sort()
    attributes = tuple(attrs)
    return Annotation(shared.setdefault(name, name), voc_to_xyxy(x1, y1, x2, y2, convention), difficult, truncated,
                      occluded, False, None, shared.setdefault(attributes, attributes),
                      _OBJECT_AT[k] if k < len(_OBJECT_AT) else f"object[{k}]"), parts


# ``voc.read(max_xml_bytes=...)`` raises the limit on one annotation file (see common.read_annotation_file); the
# options that do are named in a file-too-large finding.
MAX_XML_BYTES = MAX_ANNOTATION_BYTES
RAISE_XML_LIMIT = "--max-xml-mb or max_xml_bytes="


def read_chunk(files: Sequence[XmlFile], *, convention: PixelConvention | str = DEFAULT_CONVENTION,
               max_bytes: int = MAX_XML_BYTES) -> tuple[list[ImageRecord], list[Finding]]:
    """Read and parse a chunk of VOC XML files: (records of the files that are not refused, findings), both in the
    files' order. An unreadable or refused file is a finding, never an exception.

    This is the function :func:`datatools.formats.voc.read` maps over chunks (``functools.partial`` it with the
    convention and the size limit); it is module-level so that worker processes and Ray tasks can run it. The objects
    met are the books' ``kept + dropped``: ``sum(len(r.annotations)) + sum(f.objects)`` over the result.
    """
    convention = PixelConvention(convention)
    records: list[ImageRecord] = []
    findings: list[Finding] = []
    shared: dict = {}
    for path, image_id, splits in files:
        data, unreadable = read_annotation_file(path, image_id, max_bytes=max_bytes, raise_with=RAISE_XML_LIMIT)
        if data is None:
            findings.append(unreadable)  # type: ignore[arg-type]
            continue
        rec, found, _ = parse_xml(data, path=path, image_id=image_id, convention=convention, splits=splits,
                                  shared=shared)
        findings.extend(found)
        if rec is not None:
            records.append(rec)
    return records, findings


def image_fields(path: str) -> dict[str, str]:
    """The image-level fields of one annotation file: every leaf tag below ``<annotation>`` other than the objects,
    by dotted name (``folder``, ``source.database``), the first occurrence winning, as :func:`parse_xml` reads
    them. For ``split --group-by attr:NAME``. An unreadable or refused file has none (the reader reports it)."""
    data, _ = read_annotation_file(path, "")
    root = parse_document(data, path=path, image_id="", root_tag="annotation")[0] if data is not None else None
    out: dict[str, str] = {}
    if root is None:
        return out

    def walk(el, prefix: str) -> None:
        for child in el:
            if not isinstance(child.tag, str) or (not prefix and child.tag == "object"):
                continue
            name = f"{prefix}.{child.tag}" if prefix else child.tag
            if len(child):
                walk(child, name)
            elif name not in out and (child.text or "").strip():
                out[name] = (child.text or "").strip()

    walk(root, "")
    return out
