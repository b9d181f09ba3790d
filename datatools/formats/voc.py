"""Pascal VOC XML: one XML file per image, 1-based inclusive pixel coordinates.

Reads a VOCdevkit-style root (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/*.txt``) or a plain folder of XML
files. XML is parsed with lxml with entities unresolved, no network and no DTD loading; files that declare a DTD are
refused, so billion-laughs and external-entity files cannot expand or reach anything.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Sequence

from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention, fmt_number, snap, voc_to_xyxy, xyxy_to_voc
from datatools.core.errors import UsageError
from datatools.core.engine import place_images, write_ranges
from datatools.core.io import (ImagesMode, ProgressFn, iter_chunks, parallel_map, plan_workers, read_small_file,
                               safe_relpath, staged_dir, write_files, write_stage_file)
from datatools.core.model import (Annotation, Dataset, Finding, ImageRecord, ObjectColumns, pack_finding, pack_record,
                                  sorted_classes, unpack_finding, unpack_record)
from datatools.formats.common import ImageIndex, WriteResult, err, fill_sizes_from_headers, info, warn

NAME = "voc"
# What write() replaces whole in OUT (see core.io.refuse_replacing_inputs); the image folder only when it
# places images (not under --images-mode none).
OWNED = ("Annotations", "JPEGImages", "ImageSets")
IMAGE_FOLDER = "JPEGImages"


def escape(text: str) -> str:
    """XML text escaping (``&``, ``<``, ``>``), as ``xml.sax.saxutils.escape``, whose import pulls in
    ``urllib.request`` and costs every command about 40 ms of start-up."""
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


SPLIT_NAMES = ("train", "val", "test", "trainval")
_KNOWN_OBJECT_TAGS = {"name", "bndbox", "difficult", "truncated", "occluded", "part", "actions", "point", "attributes"}
_BOOL = {"0": False, "1": True, "false": False, "true": True, "no": False, "yes": True, "": False}

_parser = None

# The regular document read in C (datatools/formats/_voc_scan.c, built by setup.py). It accepts only what lxml
# parses to the same tree and this module reads without a finding, and gives the same values; anything else, or
# every document when the extension is missing or DATATOOLS_PURE_PYTHON is set, goes through lxml.
try:
    from datatools.formats._voc_scan import scan as _scan_regular
except ImportError:  # built without a C compiler
    _scan_regular = None
if os.environ.get("DATATOOLS_PURE_PYTHON"):
    _scan_regular = None


def _c_regular(data: bytes, convention: PixelConvention) -> tuple | None:
    """``(file_name, width, height, depth, annotations packed as core.model.pack_record does)`` of a regular
    document, read by the C reader; None when it is missing or the document needs lxml."""
    if _scan_regular is None:
        return None
    regular = _scan_regular(data, *convention.offsets)
    if regular is None:
        return None
    file_name, width, height, depth, names, boxes, flags, attrs = regular
    anns = tuple((n, (boxes[j], boxes[j + 1], boxes[j + 2], boxes[j + 3]), bool(f & 1), bool(f & 2), bool(f & 4),
                  False, None, a) for n, j, f, a in zip(names, range(0, len(boxes), 4), flags, attrs))
    return file_name, width, height, depth, anns


def _get_parser():
    global _parser
    if _parser is None:
        from lxml import etree

        # collect_ids=False: no ID table is built (nothing here looks elements up by id); about 4% of a parse.
        _parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                                  huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False)
    return _parser


# --------------------------------------------------------------------------------------------------- layout

class Layout:
    """Where the annotations, images and split lists of a VOC source are."""

    def __init__(self, src: str | os.PathLike, images: str | os.PathLike | None = None) -> None:
        self.url = isinstance(src, str) and "://" in src
        if self.url:  # an fsspec URL (datatools.core.fs): the same layout rules, with URL strings for folders
            self._init_url(src, images)
            return
        self.src = Path(src)
        if not self.src.exists():
            raise UsageError(f"{src}: no such file or directory")
        if self.src.is_file():
            raise UsageError(f"{src}: expected a VOC root (with Annotations/) or a folder of XML files")
        if (self.src / "Annotations").is_dir():
            self.ann_dir = self.src / "Annotations"
            self.image_dir = Path(images) if images else self.src / "JPEGImages"
            self.sets_dir = self.src / "ImageSets" / "Main"
        else:
            years = sorted(p for p in self.src.glob("VOC*") if (p / "Annotations").is_dir())
            if years and not any(self.src.glob("*.xml")):
                raise UsageError(f"{src} holds {', '.join(p.name for p in years)}: point SRC at one of them")
            self.ann_dir = self.src
            self.image_dir = Path(images) if images else self.src
            self.sets_dir = None

    def _init_url(self, src: str, images) -> None:
        from datatools.core import fs

        self.src = src  # type: ignore[assignment]
        if not fs.exists(src):
            raise UsageError(f"{src}: no such file or directory")
        if fs.isfile(src):
            raise UsageError(f"{src}: expected a VOC root (with Annotations/) or a folder of XML files")
        image_dir = os.fspath(images) if images else None
        if fs.isdir(fs.join(src, "Annotations")):
            self.ann_dir = fs.join(src, "Annotations")  # type: ignore[assignment]
            self.image_dir = image_dir or fs.join(src, "JPEGImages")  # type: ignore[assignment]
            self.sets_dir = fs.join(src, "ImageSets", "Main")  # type: ignore[assignment]
        else:
            self.ann_dir = self.src
            self.image_dir = image_dir or self.src  # type: ignore[assignment]
            self.sets_dir = None

    def image_dir_exists(self) -> bool:
        """Whether the image folder is there (through fsspec for a URL source)."""
        if isinstance(self.image_dir, str) and "://" in self.image_dir:
            from datatools.core import fs

            return fs.isdir(self.image_dir)
        return Path(self.image_dir).is_dir()

    def _url_xml_files(self) -> list[tuple[str, str]]:
        from datatools.core import fs

        base = str(self.ann_dir)
        out = [(rel[:-4], fs.join(base, rel)) for rel in fs.find(base, suffixes=(".xml",))]
        out.sort(key=lambda t: t[0])
        return out

    def xml_files(self) -> list[tuple[str, str]]:
        """(image_id, path) for every XML file, sorted by image_id. The id is the path below the annotation folder."""
        if self.url:
            return self._url_xml_files()
        out = []
        base = os.fspath(self.ann_dir)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            prefix = os.path.relpath(dirpath, base).replace(os.sep, "/")
            prefix = "" if prefix == "." else prefix + "/"
            folder = os.path.join(dirpath, "")  # os.path.join(dirpath, name), without a call per file
            for name in filenames:
                if name.lower().endswith(".xml"):
                    out.append((prefix + name[:-4], folder + name))
        out.sort(key=lambda t: t[0])
        return out

    def available_sets(self) -> dict[str, list[str]]:
        """Split lists in ImageSets/Main (class-specific lists such as ``cat_train.txt`` excluded)."""
        if not self.sets_dir:
            return {}
        if self.url:
            from datatools.core import fs

            sets_dir = str(self.sets_dir)
            if not fs.isdir(sets_dir):
                return {}
            found = fs.find(sets_dir, suffixes=(".txt",), recursive=False)
            lists = [(rel[:-4], fs.join(sets_dir, rel)) for rel in found]
        else:
            if not self.sets_dir.is_dir():
                return {}
            lists = [(p.stem, str(p)) for p in sorted(self.sets_dir.glob("*.txt"))]
        out = {}
        for stem, path in sorted(lists):
            if "_" in stem or "/" in stem:
                continue
            text = read_small_file(path).decode("utf-8-sig", errors="replace")
            out[stem] = [line.split()[0] for line in text.splitlines() if line.strip()]
        return out


def choose_sets(available: dict[str, list[str]], sets: Sequence[str] | str | None) -> list[str]:
    """Which split lists to use. Default: train/val/test where present, else trainval, else every list found."""
    if isinstance(sets, str):
        sets = [s.strip() for s in sets.split(",") if s.strip()]
    if sets and list(sets) != ["all"]:
        missing = [s for s in sets if s not in available]
        if missing:
            raise UsageError(f"split list(s) not found in ImageSets/Main: {', '.join(missing)} "
                             f"(found: {', '.join(available) or 'none'})")
        return list(sets)
    if sets == ["all"]:
        return list(available)
    main = [s for s in ("train", "val", "test") if s in available]
    if main:
        return main
    if "trainval" in available:
        return ["trainval"]
    return list(available)


# --------------------------------------------------------------------------------------------------- reading

def _number(raw: str | None) -> float | None:
    """A finite float, or None. ``float`` already accepts surrounding whitespace (`` 12 ``, ``\\n12\\n``)."""
    if raw is None:
        return None
    try:
        v = float(raw)
    except ValueError:
        return None
    return v if v - v == 0.0 else None  # NaN and inf fail this


_FLAG = {None: False, "0": False, "1": True}
_COORDS = ("xmin", "ymin", "xmax", "ymax")


def _fast_fields(obj) -> tuple | None:
    """The common case in one walk over the children: every tag once, no <part>, a clean name, a <bndbox> of exactly
    the four coordinates as finite numbers, 0/1 flags, leaf-only extra tags.

    Returns ``(name, xmin, ymin, xmax, ymax, difficult, truncated, occluded, attributes)`` with the numbers as
    written, or None for anything else; the general path in :func:`parse_xml` then reads the object and reports
    what is wrong. Both paths give the same Annotation for everything this one accepts (tested on crafted and
    real-world files).
    """
    name = bb = None
    flags = [None, None, None]  # difficult, truncated, occluded: raw text
    attrs = None
    for c in obj:
        tag = c.tag
        if tag == "name":
            if name is not None:
                return None
            name = c.text
            if name is None:
                return None
        elif tag == "bndbox":
            if bb is not None:
                return None
            bb = c
        elif tag == "pose" or (tag.__class__ is str and tag not in _KNOWN_OBJECT_TAGS):
            if len(c):
                return None
            if attrs is None:
                attrs = [(tag, (c.text or "").strip())]
            else:
                attrs.append((tag, (c.text or "").strip()))
        else:
            i = _FLAG_INDEX.get(tag)
            if i is None or flags[i] is not None:
                return None  # <part>, <actions>, a comment or processing instruction, a repeated flag
            text = c.text
            flags[i] = "" if text is None else text
    if bb is None or not name or name.strip() != name:
        return None
    values = [None, None, None, None]
    for c in bb:
        i = _COORD_INDEX.get(c.tag)
        if i is None or values[i] is not None:
            return None
        try:
            values[i] = float(c.text)
        except (TypeError, ValueError):
            return None
    x1, y1, x2, y2 = values
    if y2 is None or x1 is None or y1 is None or x2 is None:
        return None
    if not (x1 - x1 == y1 - y1 == x2 - x2 == y2 - y2 == 0.0) or x1 == x2 or y1 == y2:
        return None
    try:
        diff, trunc, occl = _FLAG[flags[0]], _FLAG[flags[1]], _FLAG[flags[2]]
    except KeyError:
        return None
    if attrs is None:
        attrs_t: tuple = ()
    else:
        attrs.sort()
        for a, b in zip(attrs, attrs[1:]):
            if a[0] == b[0]:
                return None  # a repeated extra tag: the general path keeps the first
        attrs_t = tuple(attrs)
    return name, x1, y1, x2, y2, diff, trunc, occl, attrs_t


def _fast_object(obj, convention: PixelConvention) -> Annotation | None:
    """:func:`_fast_fields` as an Annotation, or None when the object needs the general path."""
    f = _fast_fields(obj)
    if f is None:
        return None
    return Annotation(f[0], voc_to_xyxy(f[1], f[2], f[3], f[4], convention), f[5], f[6], f[7], False, None, f[8])


_FLAG_INDEX = {"difficult": 0, "truncated": 1, "occluded": 2}
_COORD_INDEX = {t: i for i, t in enumerate(_COORDS)}


def _parse_root(data: bytes, path: str, image_id: str):
    """The <annotation> element of a document, or (None, the finding that says why the file is refused)."""
    from lxml import etree

    if not data or data.isspace():
        return None, err("empty-file", path, "", "the file is empty", image_id=image_id, image_dropped=True)
    head = data[:data.find(b">", data.find(b"<annotation")) + 1] if b"<annotation" in data else data
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        return None, err("xml-dtd", path, "DOCTYPE",
                         "the file declares a DTD or entities; they are never expanded, so the file is refused",
                         image_id=image_id, image_dropped=True)
    try:
        root = etree.fromstring(data, _get_parser())
    except etree.XMLSyntaxError as e:
        return None, err("xml-parse", path, "", f"not well-formed XML: {e}", image_id=image_id, image_dropped=True)
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        return None, err("xml-dtd", path, "DOCTYPE",
                         "the file declares a DTD; entities and DTDs are never expanded, so it is refused",
                         image_id=image_id, image_dropped=True)
    if root.tag != "annotation":
        return None, err("xml-root", path, root.tag if isinstance(root.tag, str) else "",
                         f"expected an <annotation> root element, found <{root.tag}>", image_id=image_id,
                         image_dropped=True)
    return root, None


def _top_level(root) -> tuple[str | None, object, list]:
    """(raw <filename> text, <size> element, <object> elements): the first of each wins, as with find()."""
    file_name_raw = size = None
    objects = []
    for child in root:  # one pass: cheaper than a findtext() per field
        tag = child.tag
        if tag == "object":
            objects.append(child)
        elif tag == "filename":
            if file_name_raw is None:
                file_name_raw = child.text or ""
        elif tag == "size":
            if size is None:
                size = child
    return file_name_raw, size, objects


def _size_of(size) -> tuple[int | None, int | None, int | None, dict[str, str]]:
    """(width, height, depth, raw texts) of a <size> element; width and height are None unless both are > 0."""
    dims: dict[str, str] = {}
    for c in size:
        if c.tag.__class__ is str and c.tag not in dims:
            dims[c.tag] = c.text or ""
    w, h, d = _number(dims.get("width")), _number(dims.get("height")), _number(dims.get("depth"))
    depth = int(d) if d is not None and d > 0 else None
    if w is None or h is None or w <= 0 or h <= 0:
        return None, None, depth, dims
    return int(round(w)), int(round(h)), depth, dims


def parse_xml(data: bytes, *, path: str, image_id: str, convention: PixelConvention = DEFAULT_CONVENTION,
              splits: tuple[str, ...] = ()) -> tuple[ImageRecord | None, list[Finding], int]:
    """Parse one VOC XML document. Returns (record or None when unusable, findings, objects met).

    Malformed objects are dropped one by one with a finding each; the rest of the file is kept.
    """
    regular = _c_regular(data, convention)
    if regular is not None:
        file_name, width, height, depth, anns = regular
        return (ImageRecord(image_id=image_id, file_name=file_name, width=width, height=height, depth=depth,
                            annotations=tuple(Annotation(*a) for a in anns), source=path, splits=splits),
                [], len(anns))
    root, refused = _parse_root(data, path, image_id)
    if root is None:
        return None, [refused], 0
    return _read_root(root, path=path, image_id=image_id, convention=convention, splits=splits)


def _read_root(root, *, path: str, image_id: str, convention: PixelConvention, splits: tuple[str, ...] = ()
               ) -> tuple[ImageRecord, list[Finding], int]:
    """:func:`parse_xml` of a document lxml has parsed (its <annotation> element), every irregularity a finding."""
    findings: list[Finding] = []
    file_name_raw, size, objects = _top_level(root)
    file_name = (file_name_raw or "").strip()
    if not file_name:
        findings.append(warn("missing-filename", path, "filename", "no <filename>; the image is looked up by the XML name",
                             image_id=image_id))
    width = height = depth = None
    if size is None:
        findings.append(warn("missing-size", path, "size", "no <size>; the size is read from the image header",
                             image_id=image_id))
    else:
        width, height, depth, dims = _size_of(size)
        if width is None:
            findings.append(warn("missing-size", path, "size",
                                 f"<size> has width={dims.get('width')!r} height={dims.get('height')!r}; "
                                 "the size is read from the image header", image_id=image_id))

    annotations: list[Annotation] = []
    parts = 0
    for k, obj in enumerate(objects):
        fast = _fast_object(obj, convention)
        if fast is not None:
            annotations.append(fast)
            continue
        # The general path: one pass over the children, the first occurrence of a tag wins (as with find()), and
        # every irregularity becomes a finding.
        raw_name = bb = None
        flags = [None, None, None]  # difficult, truncated, occluded (raw text)
        attrs = []
        seen: set[str] = set()
        for child in obj:
            tag = child.tag
            if tag.__class__ is not str or tag in seen:
                if tag == "part":
                    parts += 1
                continue
            seen.add(tag)
            if tag == "name":
                raw_name = child.text
            elif tag == "bndbox":
                bb = child
            elif tag == "difficult":
                flags[0] = child.text or ""
            elif tag == "truncated":
                flags[1] = child.text or ""
            elif tag == "occluded":
                flags[2] = child.text or ""
            elif tag == "part":
                parts += 1
            elif tag not in _KNOWN_OBJECT_TAGS and len(child) == 0:
                attrs.append((tag, (child.text or "").strip()))
        if raw_name is None or not raw_name.strip():
            findings.append(err("missing-field", path, f"object[{k}]/name", "the object has no <name>; dropped",
                                image_id=image_id, objects=1))
            continue
        name = raw_name.strip()
        if name != raw_name and "\n" not in raw_name:
            findings.append(warn("name-whitespace", path, f"object[{k}]/name",
                                 f"class name {raw_name!r} has stray spaces; read as {name!r}", image_id=image_id))
        if bb is None:
            findings.append(err("missing-field", path, f"object[{k}]/bndbox", "the object has no <bndbox>; dropped",
                                image_id=image_id, objects=1))
            continue
        raw = {"xmin": None, "ymin": None, "xmax": None, "ymax": None}
        for child in bb:
            tag = child.tag
            if tag in raw and raw[tag] is None:
                raw[tag] = child.text or ""
        coords = []
        for tag, text in raw.items():
            v = _number(text)
            if v is None:
                what = "missing" if text is None else f"not a number: {text!r}"
                findings.append(err("missing-field" if text is None else "bad-number", path,
                                    f"object[{k}]/bndbox/{tag}", f"<{tag}> is {what}; object dropped",
                                    image_id=image_id, objects=1))
                break
            coords.append(v)
        if len(coords) < 4:
            continue
        values = []
        for tag, text in zip(("difficult", "truncated", "occluded"), flags):
            if text is None or text == "0":
                values.append(False)
            elif text == "1":
                values.append(True)
            else:
                val = _BOOL.get(text.strip().lower())
                if val is None:
                    num = _number(text)
                    val = bool(num) if num is not None else False
                    findings.append(warn("bad-flag", path, f"object[{k}]/{tag}",
                                         f"expected 0 or 1, found {text!r}; read as {int(val)}", image_id=image_id))
                values.append(val)
        attrs.sort()
        x1, y1, x2, y2 = coords
        if x1 == x2 or y1 == y2:
            # Written xmin == xmax is 1 pixel wide under devkit but 0 under as-is: a click, not an object. Dropped
            # under every convention so that the choice of convention never changes which boxes survive.
            findings.append(err("zero-area", path, f"object[{k}]/bndbox",
                                f"xmin/xmax {x1:g}/{x2:g}, ymin/ymax {y1:g}/{y2:g}: the box has no extent; object dropped",
                                image_id=image_id, objects=1, box=voc_to_xyxy(x1, y1, x2, y2, convention)))
            continue
        annotations.append(Annotation(name, voc_to_xyxy(x1, y1, x2, y2, convention), difficult=values[0],
                                      truncated=values[1], occluded=values[2], attributes=tuple(attrs)))
    if parts:
        findings.append(info("part-ignored", path, "object/part",
                             f"{parts} <part> box(es) ignored (body parts are not detection objects)", image_id=image_id))
    if not objects:
        findings.append(info("empty-annotation", path, "object", "the annotation has no objects", image_id=image_id))
    record = ImageRecord(image_id=image_id, file_name=file_name, width=width, height=height, depth=depth,
                         annotations=tuple(annotations), source=path, splits=splits)
    return record, findings, len(objects)


def image_fields(path: str) -> dict[str, str]:
    """The image-level fields of one annotation file: every leaf tag below ``<annotation>`` other than the objects,
    by dotted name (``folder``, ``source.database``), the first occurrence winning, as :func:`parse_xml` reads
    them. For ``split --group-by attr:NAME``. An unreadable or refused file has none (the reader reports it)."""
    data, _ = _read_xml(path, "")
    root = _parse_root(data, path, "")[0] if data is not None else None
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


def _regular_document(root) -> tuple | None:
    """``(file_name, width, height, depth, [_fast_fields of each object])`` when :func:`parse_xml` would notice
    nothing about the document (a file name, a valid size, at least one object, every object regular); else None."""
    file_name_raw, size, objects = _top_level(root)
    if not file_name_raw or size is None or not objects:
        return None
    file_name = file_name_raw.strip()
    width, height, depth, _ = _size_of(size)
    if not file_name or width is None:
        return None
    fields = []
    for obj in objects:
        f = _fast_fields(obj)
        if f is None:
            return None
        fields.append(f)
    return file_name, width, height, depth, fields


def scan_xml(data: bytes, *, path: str, image_id: str, convention: PixelConvention = DEFAULT_CONVENTION
             ) -> tuple[tuple | None, list[Finding], int]:
    """What :func:`parse_xml` reads, as plain values for label statistics, without building the model's records.

    Returns ``((file_name, width, height, depth, labels, boxes, flags) or None, findings, objects met)``: ``boxes``
    is the flat XYXY list of every kept object, ``flags`` one int per object (bit 0 difficult, 1 truncated,
    2 occluded). A regular document is read by the C reader or in one walk; anything else goes through
    :func:`parse_xml`'s general path, so both give the same values and findings (tested).
    """
    if _scan_regular is not None:
        regular = _scan_regular(data, *convention.offsets)
        if regular is not None:
            return regular[:7], [], len(regular[4])
    root, refused = _parse_root(data, path, image_id)
    if root is None:
        return None, [refused], 0
    regular = _regular_document(root)
    if regular is not None:
        file_name, width, height, depth, fields = regular
        boxes: list[float] = []
        for f in fields:
            boxes.extend(voc_to_xyxy(f[1], f[2], f[3], f[4], convention))
        return ((file_name, width, height, depth, [f[0] for f in fields], boxes,
                 [f[5] | f[6] << 1 | f[7] << 2 for f in fields]), [], len(fields))
    rec, findings, n = _read_root(root, path=path, image_id=image_id, convention=convention)
    anns = rec.annotations
    return ((rec.file_name, rec.width, rec.height, rec.depth, [a.label for a in anns], [v for a in anns for v in a.box],
             [a.difficult | a.truncated << 1 | a.occluded << 2 for a in anns]), findings, n)


def _parse_file_packed(args: tuple[str, str, str, tuple[str, ...]]) -> tuple[tuple | None, list[tuple], int]:
    """Worker process: :func:`parse_file` with plain-tuple results (see core.model.pack_record), which pickle
    several times faster. A regular document goes straight to tuples, without building records to take apart."""
    path, image_id, convention, splits = args
    data, unreadable = _read_xml(path, image_id)
    if data is None:
        return None, [pack_finding(unreadable)], 0
    return _parse_file_packed_data(data, path, image_id, convention, splits)


def _parse_file_packed_data(data: bytes, path: str, image_id: str, convention: str, splits: tuple[str, ...]
                            ) -> tuple[tuple | None, list[tuple], int]:
    """:func:`_parse_file_packed` of a file's bytes."""
    regular = _c_regular(data, _CONVENTIONS[convention])
    if regular is not None:
        file_name, width, height, depth, anns = regular
        return (image_id, file_name, width, height, depth, None, path, splits, anns), [], len(anns)
    root, refused = _parse_root(data, path, image_id)
    if root is None:
        return None, [pack_finding(refused)], 0
    conv = _CONVENTIONS[convention]
    regular = _regular_document(root)
    if regular is not None:
        file_name, width, height, depth, fields = regular
        anns = tuple((f[0], voc_to_xyxy(f[1], f[2], f[3], f[4], conv), f[5], f[6], f[7], False, None, f[8])
                     for f in fields)
        return (image_id, file_name, width, height, depth, None, path, splits, anns), [], len(fields)
    rec, fnd, n = _read_root(root, path=path, image_id=image_id, convention=conv, splits=splits)
    return pack_record(rec), [pack_finding(f) for f in fnd], n


def parse_file(args: tuple[str, str, str, tuple[str, ...]]) -> tuple[ImageRecord | None, list[Finding], int]:
    """Read and parse one XML file; ``args`` is ``(path, image_id, convention value, splits)``. An unreadable file
    is a finding, never an exception."""
    path, image_id, convention, splits = args
    data, unreadable = _read_xml(path, image_id)
    if data is None:
        return None, [unreadable], 0
    return parse_xml(data, path=path, image_id=image_id, convention=_CONVENTIONS[convention], splits=splits)


_CONVENTIONS = {c.value: c for c in PixelConvention}


def _read_xml(path: str, image_id: str) -> tuple[bytes | None, Finding | None]:
    """An annotation file's bytes (local or fsspec URL), or None and the finding that says why it is unreadable."""
    try:
        return read_small_file(path), None
    except OSError as e:
        return None, err("unreadable-file", path, "", f"cannot read: {e.strerror or e}", image_id=image_id,
                         image_dropped=True)


def _scan_chunk(jobs: Sequence[tuple[str, str, str, tuple[str, ...]]]) -> tuple:
    """Worker for :func:`read_labels`, over a chunk of files. Returns ``(files, objects met, names, codes, counts,
    boxes, flags)``: ``files`` has ``(packed record without objects or None, packed findings)`` per file, and the
    kept records' objects come as arrays (label codes into ``names``, objects per record, flat XYXY boxes, flags).
    Arrays pickle as bytes, so shipping 40k boxes costs next to nothing."""
    from array import array

    names: dict[str, int] = {}
    codes, counts, boxes, flags = array("q"), array("q"), array("d"), array("b")
    files: list[tuple] = []
    met = 0
    for path, image_id, convention, splits in jobs:
        data, unreadable = _read_xml(path, image_id)
        if data is None:
            files.append((None, (pack_finding(unreadable),)))
            continue
        values, fnd, n = scan_xml(data, path=path, image_id=image_id, convention=_CONVENTIONS[convention])
        met += n
        packed = tuple(pack_finding(f) for f in fnd) if fnd else ()
        if values is None:
            files.append((None, packed))
            continue
        file_name, width, height, depth, labels, xyxy, fl = values
        files.append(((image_id, file_name, width, height, depth, None, path, splits, ()), packed))
        counts.append(len(labels))
        for label in labels:
            code = names.get(label)
            if code is None:
                code = names[label] = len(names)
            codes.append(code)
        boxes.extend(xyxy)
        flags.extend(fl)
    return files, met, tuple(names), codes, counts, boxes, flags


def _object_columns(parts: list[tuple]) -> ObjectColumns:
    """One :class:`ObjectColumns` from the ``(names, codes, counts, boxes, flags)`` of each chunk, in order."""
    import numpy as np

    names: dict[str, int] = {}
    cls, counts, boxes, flags = [], [], [], []
    for chunk_names, c, k, b, f in parts:
        remap = np.array([names.setdefault(n, len(names)) for n in chunk_names], dtype=np.int64)
        codes = np.frombuffer(c, dtype=np.int64)
        cls.append(remap[codes] if len(codes) else codes)
        counts.append(np.frombuffer(k, dtype=np.int64))
        boxes.append(np.frombuffer(b, dtype=np.float64))
        flags.append(np.frombuffer(f, dtype=np.int8))

    def joined(arrays, dtype):
        return np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype)

    return ObjectColumns(names=tuple(names), counts=joined(counts, np.int64), cls=joined(cls, np.int64),
                         boxes=joined(boxes, np.float64).reshape(-1, 4), flags=joined(flags, np.int64))


def plan_files(layout: Layout, sets: Sequence[str] | str | None
               ) -> tuple[list[tuple[str, str]], dict[str, list[str]], list[str], list[Finding]]:
    """What is known before any XML is parsed: ``(files, splits of each id, chosen split lists, findings)``.
    ``files`` are the ``(image_id, path)`` to read, sorted; the findings name split lists entries without an XML,
    files in none of the chosen lists, and a missing image folder. Every VOC reader (local or sharded) starts here."""
    files = layout.xml_files()
    findings: list[Finding] = []
    available = layout.available_sets()
    split_of: dict[str, list[str]] = {}
    chosen: list[str] = []
    if available:
        chosen = choose_sets(available, sets)
        by_id = {iid: p for iid, p in files}
        for s in chosen:
            for iid in available[s]:
                listed = split_of.get(iid)
                if listed is None:
                    split_of[iid] = [s]
                elif s not in listed:
                    listed.append(s)
        missing = [iid for iid in split_of if iid not in by_id]
        for iid in missing:
            findings.append(err("missing-annotation", os.path.join(layout.ann_dir, f"{iid}.xml"), "ImageSets",
                                "listed in a split list but there is no XML for it", image_id=iid, image_dropped=True))
        listed_files = [(iid, p) for iid, p in files if iid in split_of]
        not_listed = len(files) - len(listed_files)
        if not_listed:
            findings.append(info("not-in-sets", str(layout.sets_dir), "ImageSets",
                                 f"{not_listed} annotation file(s) are in none of the chosen split lists "
                                 f"({', '.join(chosen)}) and were not read"))
        files = listed_files
    elif sets and sets not in ("all", ["all"]):
        raise UsageError(f"{layout.src}: --sets was given but there is no ImageSets/Main folder with split lists")
    if files and not layout.image_dir_exists():
        findings.append(warn("missing-image-dir", str(layout.image_dir), "images",
                             "the image folder does not exist; images are neither checked nor copied"))
    return files, split_of, chosen, findings


def locate_image(rec: ImageRecord, xml_path: str, index: ImageIndex, image_dir: str
                 ) -> tuple[ImageRecord, list[Finding]]:
    """The record with its image found in ``index`` (``file_name`` made the image's relative path, ``image_path``
    set), and what the lookup noticed (a mismatched or unsafe name, a missing image)."""
    image_path, notes, rel = index.find(rec.file_name, rec.image_id)
    found = [replace(f, path=str(xml_path)) for f in notes]
    if image_path is None:
        found.append(err("missing-image", str(xml_path), "filename",
                         f"no image {rec.file_name or rec.image_id!r} in {image_dir}", image_id=rec.image_id))
        return rec, found
    return replace(rec, file_name=rel, image_path=image_path), found


def read(src: str | os.PathLike, *, images: str | os.PathLike | None = None, sets: Sequence[str] | str | None = None,
         convention: PixelConvention | str = DEFAULT_CONVENTION, classes: Sequence[str] | None = None,
         workers: int | None = None, progress: ProgressFn | None = None,
         on_total: "callable | None" = None) -> Dataset:
    """Read a VOC dataset into the model.

    Use ``sets`` to pick ImageSets/Main split lists (default: train/val/test where present). Malformed files and
    objects become findings; nothing raises for bad data. ``classes`` fixes the class order (default: sorted names).
    """
    return _read(src, images=images, sets=sets, convention=convention, classes=classes, workers=workers,
                 progress=progress, on_total=on_total)[0]


def read_labels(src: str | os.PathLike, *, images: str | os.PathLike | None = None,
                sets: Sequence[str] | str | None = None, convention: PixelConvention | str = DEFAULT_CONVENTION,
                classes: Sequence[str] | None = None, workers: int | None = None, progress: ProgressFn | None = None,
                on_total: "callable | None" = None) -> tuple[Dataset, ObjectColumns]:
    """:func:`read` for label statistics: the same dataset (images, sizes, findings, books) but with its records'
    objects given as columns (:class:`~datatools.core.model.ObjectColumns`) instead of Annotations.

    Use it where only the numbers matter (``stats --labels-only`` on hundreds of thousands of files): it skips
    building and shipping an object per box, which costs more than parsing the XML.
    """
    ds, objects = _read(src, images=images, sets=sets, convention=convention, classes=classes, workers=workers,
                        progress=progress, on_total=on_total, scan=True)
    return ds, objects


def _read(src, *, images, sets, convention, classes, workers, progress, on_total, scan: bool = False
          ) -> tuple[Dataset, ObjectColumns | None]:
    convention = PixelConvention(convention)
    layout = Layout(src, images)
    files, split_of, chosen, findings = plan_files(layout, sets)
    if on_total:
        on_total(len(files))
    conv, no_split = convention.value, ()
    jobs = [(p, iid, conv, tuple(split_of[iid]) if iid in split_of else no_split) for iid, p in files]
    objects_read = 0
    parts: list[tuple] = []  # scan: each chunk's object arrays
    if scan:
        def scanned():
            """Records and findings per file, chunk by chunk as the workers finish them: the loop below builds the
            records of one chunk while the workers parse the next ones."""
            nonlocal objects_read
            for chunk in iter_chunks(_scan_chunk, jobs, workers=workers, progress=progress):
                objects_read += chunk[1]  # counted per chunk, not per file
                parts.append(chunk[2:])
                for r, fs in chunk[0]:  # records without objects (those are in the chunk's arrays)
                    yield (unpack_record(r) if r is not None else None), [unpack_finding(f) for f in fs], 0

        results: Iterable = scanned()
    elif plan_workers(len(jobs), workers) > 1:
        packed = parallel_map(_parse_file_packed, jobs, workers=workers, progress=progress)
        results = [(unpack_record(r) if r is not None else None, [unpack_finding(f) for f in fs], n)
                   for r, fs, n in packed]
    else:
        results = parallel_map(parse_file, jobs, workers=1, progress=progress)
    index = ImageIndex(layout.image_dir)
    records: list[ImageRecord] = []
    for (iid, p), (rec, fnd, n) in zip(files, results):
        findings.extend(fnd)
        objects_read += n
        if rec is None:
            continue
        if index.exists:
            rec, notes = locate_image(rec, p, index, str(layout.image_dir))
            findings.extend(notes)
        records.append(rec)
    objects = _object_columns(parts) if scan else None
    records = fill_sizes_from_headers(records, findings, workers=workers)
    if classes:
        cls = tuple(classes)
    elif objects is not None:
        cls = tuple(sorted(objects.names))
    else:
        cls = sorted_classes(records)
    return Dataset(images=tuple(records), classes=cls, findings=tuple(findings), objects_read=objects_read,
                   root=str(layout.src), format=NAME, meta={"sets": chosen, "image_dir": str(layout.image_dir)}), objects


# --------------------------------------------------------------------------------------------------- writing

def to_xml(record: ImageRecord, *, image_name: str, folder: str = "JPEGImages",
           convention: PixelConvention = DEFAULT_CONVENTION, precision: int = 6) -> str:
    """Serialize one record as VOC XML text (deterministic)."""
    lines = ["<annotation>", f"\t<folder>{escape(folder)}</folder>", f"\t<filename>{escape(image_name)}</filename>"]
    if record.has_size:
        lines += ["\t<size>", f"\t\t<width>{record.width}</width>", f"\t\t<height>{record.height}</height>",
                  f"\t\t<depth>{record.depth or 3}</depth>", "\t</size>"]
    lines.append("\t<segmented>0</segmented>")
    for a in record.annotations:
        x1, y1, x2, y2 = (fmt_number(snap(v), precision) for v in xyxy_to_voc(a.box, convention))
        attrs = dict(a.attributes)
        lines += ["\t<object>", f"\t\t<name>{escape(a.label)}</name>", f"\t\t<pose>{escape(attrs.pop('pose', 'Unspecified'))}</pose>",
                  f"\t\t<truncated>{int(a.truncated)}</truncated>", f"\t\t<difficult>{int(a.difficult or a.iscrowd)}</difficult>"]
        if a.occluded:
            lines.append("\t\t<occluded>1</occluded>")
        for k, v in sorted(attrs.items()):
            if k.isidentifier() and k not in _KNOWN_OBJECT_TAGS:
                lines.append(f"\t\t<{k}>{escape(str(v))}</{k}>")
        lines += ["\t\t<bndbox>", f"\t\t\t<xmin>{x1}</xmin>", f"\t\t\t<ymin>{y1}</ymin>", f"\t\t\t<xmax>{x2}</xmax>",
                  f"\t\t\t<ymax>{y2}</ymax>", "\t\t</bndbox>", "\t</object>"]
    lines.append("</annotation>\n")
    return "\n".join(lines)


def output_image_name(record: ImageRecord) -> str:
    """Images are renamed after the record's id (never after text inside an annotation) plus their extension."""
    ext = os.path.splitext(record.image_path or record.file_name or "")[1] or ".jpg"
    return record.image_id + ext


def _write_xml_range(state, start: int, stop: int) -> int:
    """Worker: serialize and write the XML files of records ``start:stop`` (see core.io.fork_ranges)."""
    images, paths, names, convention, precision = state
    for i in range(start, stop):
        write_stage_file(paths[i], to_xml(images[i], image_name=names[i], convention=convention,
                                          precision=precision).encode("utf-8"))
    return stop - start


def _xml_slice(state, start: int, stop: int):
    """What a Ray task needs of :func:`_write_xml_range`'s state for records ``start:stop``."""
    images, paths, names, convention, precision = state
    return images[start:stop], paths[start:stop], names[start:stop], convention, precision


def write(ds: Dataset, out: str | os.PathLike, *, convention: PixelConvention | str = DEFAULT_CONVENTION,
          images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6, workers: int | None = None,
          progress: ProgressFn | None = None, engine: str = "local", address: str | None = None) -> WriteResult:
    """Write ``ds`` as a VOCdevkit-style tree: Annotations/, JPEGImages/ and ImageSets/Main/<split>.txt.

    Each folder is built in a staging folder and swapped in whole (see core.io.staged_dir).
    ``engine="ray"``: the XML files and images are written by Ray workers (see core.engine.write_ranges).
    """
    convention = PixelConvention(convention)
    images_mode = ImagesMode(images_mode)
    out = Path(out)
    result = WriteResult(out=str(out))
    rels: list[str] = []
    names: list[str] = []
    pictures: list[tuple[str, str]] = []
    split_ids: dict[str, list[str]] = {}
    for rec in ds.images:
        name = safe_relpath(output_image_name(rec))
        rels.append(safe_relpath(rec.image_id) + ".xml")
        names.append(name)
        for s in rec.splits:
            split_ids.setdefault(safe_relpath(s), []).append(rec.image_id)
        result.objects_written += len(rec.annotations)
        result.images_written += 1
        if rec.image_path and images_mode is not ImagesMode.NONE:
            pictures.append((rec.image_path, name))
    with staged_dir(out / "Annotations") as stage:
        paths = [os.path.join(stage, r) for r in rels]
        for d in sorted({os.path.dirname(p) for p in paths}):
            os.makedirs(d, exist_ok=True)
        write_ranges(_write_xml_range, (ds.images, paths, names, convention, precision), len(paths),
                     slicer=_xml_slice, stage=stage, engine=engine, address=address, workers=workers,
                     progress=progress)
    if pictures:
        with staged_dir(out / "JPEGImages") as stage:
            place_images([(src, os.path.join(stage, r)) for src, r in pictures], images_mode, stage=stage,
                         engine=engine, address=address, workers=workers)
    if split_ids:
        with staged_dir(out / "ImageSets") as stage:
            write_files([(os.path.join(stage, "Main", s + ".txt"), "".join(i + "\n" for i in ids))
                         for s, ids in sorted(split_ids.items())])
    anns = os.path.join(str(out), "Annotations", "")
    result.files = [anns + r for r in rels]
    return result
