"""Open Images box CSV: one row per box, coordinates normalized to [0, 1] of the image.

Columns (the header names them; order free): ``ImageID, Source, LabelName, Confidence, XMin, XMax, YMin, YMax,
IsOccluded, IsTruncated, IsGroupOf, IsDepiction, IsInside``; the first six of ``ImageID, LabelName, XMin, XMax, YMin,
YMax`` are required. ``LabelName`` is a machine id (``/m/01g317``); a class-description CSV (``/m/01g317,Person``, no
header, or a ``LabelName,DisplayName`` header) maps ids to names: the ``class_descriptions`` option, else a
``*class-descriptions*.csv`` beside the box CSV. ``IsGroupOf`` becomes COCO ``iscrowd``, ``IsOccluded`` and
``IsTruncated`` the flags (``-1``, unknown, reads as 0); ``Source``, ``IsDepiction`` and ``IsInside`` are kept as
attributes.

Other columns (the V6/V7 ``XClick1X``..``XClick4Y`` extreme clicks, ``Confidence``) are ignored.

The CSV carries no image size: each image (``<ImageID>.jpg`` in the image folder) gives it from its header. An image
that is not there keeps its boxes only when an ``images.meta`` beside the CSV (CVAT's and datumaro's exports write
one) gives its size; otherwise it cannot place its boxes and is dropped with them (``missing-image``), counted.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path
from typing import Sequence

from datatools.core.atomic import ImagesMode, place_images, staged_dir, write_files
from datatools.core.boxes import fmt_number
from datatools.core.errors import UsageError
from datatools.core.fs import files_for, read_small_file
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, Severity, all_classes, sorted_classes
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import safe_relpath
from datatools.formats.common import (DEFAULT_SPLIT, ImageIndex, WriteResult, err, existing_source, info,
                                      read_headers, warn)

NAME = "openimages"
OWNED = ("annotations", "images")
IMAGE_FOLDER = "images"
NEEDS_SIZE = True  # boxes are written relative to the image size: images without one are dropped first
REQUIRED = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
COLUMNS = ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
           "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
_KEPT = (("Source", "source"), ("IsDepiction", "is_depiction"), ("IsInside", "is_inside"))
IMAGE_META = "images.meta"  # image sizes beside the box CSV, in CVAT's and datumaro's exports
_BBOX_RE = re.compile(r"^(?:oidv\d+-)?(.*?)-?(?:annotations-)?bbox\.csv$", re.I)


def is_box_csv(path: str) -> bool:
    """Whether a CSV's header (its first line only) has the Open Images box columns."""
    from datatools.core import fs

    try:
        with (fs.open_binary(path) if fs.is_url(path) else open(path, "rb")) as f:
            head = f.readline(4096).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    cols = [c.strip() for c in head.split(",")]
    return all(c in cols for c in ("ImageID", "LabelName", "XMin"))


def box_csvs(src: str) -> list[tuple[str | None, str]]:
    """``(split or None, path)`` of the box CSVs of SRC: the file itself, or every ``*bbox.csv`` of the folder or of
    its ``annotations/`` (the split named after the file: ``validation-annotations-bbox.csv`` is ``validation``)."""
    files = files_for(src)
    if files.isfile(src):
        return [(None, src)]
    out: list[tuple[str | None, str]] = []
    for folder in (src, files.join(src, "annotations")):
        if files.isdir(folder):
            for n in sorted(files.listdir(folder)[1]):
                m = _BBOX_RE.match(n)
                if m:
                    out.append((m.group(1) or None, files.join(folder, n)))
    if not out:
        raise UsageError(f"{src}: no Open Images box CSV found (expected a *-bbox.csv file or annotations/*-bbox.csv)")
    return out


def find_class_descriptions(csv_path: str) -> str | None:
    """A ``*class-descriptions*.csv`` beside the box CSV (the boxable list first), or None."""
    files = files_for(csv_path)
    folder = files.parent(csv_path)
    names = [n for n in files.listdir(folder)[1] if "class-descriptions" in n.lower() and n.lower().endswith(".csv")]
    names.sort(key=lambda n: ("boxable" not in n.lower(), n))
    return files.join(folder, names[0]) if names else None


def read_class_descriptions(path: str) -> dict[str, str]:
    """``{id: name}`` from a class-description CSV (``/m/xxx,Name`` rows; a ``LabelName,DisplayName`` header is
    skipped)."""
    try:
        text = read_small_file(path).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read the class descriptions: {e}") from e
    out: dict[str, str] = {}
    for k, row in enumerate(csv.reader(io.StringIO(text))):
        if len(row) < 2 or (k == 0 and row[0].strip() == "LabelName"):
            continue
        out.setdefault(row[0].strip(), row[1].strip())
    return out


def read_image_meta(path: str, findings: list[Finding]) -> dict[str, tuple[int, int]]:
    """``{image id: (width, height)}`` from an ``images.meta`` (``<id> <height> <width>`` lines, ``#`` comments,
    shell quoting), which CVAT's and datumaro's Open Images exports put beside the box CSV; {} when there is none. It
    gives the size of an image that is not there (an annotations-only export). A bad line is a ``bad-size``
    warning."""
    import shlex

    files = files_for(path)
    if not files.isfile(path):
        return {}
    try:
        text = read_small_file(path).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        findings.append(warn("bad-size", path, "", f"cannot read {IMAGE_META}: {e}; ignored"))
        return {}
    out: dict[str, tuple[int, int]] = {}
    for k, line in enumerate(text.splitlines(), 1):
        try:
            parts = shlex.split(line, comments=True)
        except ValueError:
            parts = [line]
        if not parts:
            continue
        sides = [_number(v) for v in parts[1:]]
        if len(parts) != 3 or not all(v is not None and v == int(v) and 1 <= v <= 1_000_000 for v in sides):
            findings.append(warn("bad-size", path, f"line {k}", f"expected '<image id> <height> <width>' in whole "
                                 f"pixels, found {line.strip()!r}; ignored"))
            continue
        out[parts[0]] = (int(sides[1]), int(sides[0]))  # type: ignore[arg-type]
    return out


def _number(raw) -> float | None:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _flag(raw) -> bool:
    return (raw or "").strip() == "1"


def _image_dir(csv_path: str, split: str | None, images) -> str:
    """Where a box CSV's images are: ``images`` if given, else the first of ``images/<split>``, ``<split>``,
    ``images`` beside the CSV or its parent folder, else the CSV's own folder."""
    if images:
        return os.fspath(images)
    files = files_for(csv_path)
    here = files.parent(csv_path)
    cands = []
    for base in (here, files.parent(here)):
        if split:
            cands += [files.join(base, IMAGE_FOLDER, split), files.join(base, split)]
        cands.append(files.join(base, IMAGE_FOLDER))
    return next((c for c in cands if files.isdir(c)), here)


def _read_rows(path: str, names: dict[str, str] | None, findings: list[Finding]
               ) -> tuple[dict[str, list[tuple]], int]:
    """Rows of one box CSV grouped by ImageID: ``{image_id: [(label, xmin, xmax, ymin, ymax, flags, attrs)]}``,
    and the rows met. A bad row is a finding that drops it."""
    try:
        text = read_small_file(path).decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read: {e}") from e
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise UsageError(f"{path}: not an Open Images box CSV: the header lacks {', '.join(missing)}")
    rows: dict[str, list[tuple]] = {}
    met = 0
    unknown: set[str] = set()
    for row in reader:
        met += 1
        where = f"line {reader.line_num}"
        iid = (row.get("ImageID") or "").strip()
        label = (row.get("LabelName") or "").strip()
        if not iid or not label:
            findings.append(err("missing-field", path, where, "the row has no ImageID or LabelName; dropped",
                                image_id=iid, objects=1))
            continue
        coords = [_number(row.get(c)) for c in ("XMin", "XMax", "YMin", "YMax")]
        if None in coords:
            bad = next(c for c, v in zip(("XMin", "XMax", "YMin", "YMax"), coords) if v is None)
            findings.append(err("bad-number", path, f"{where}/{bad}", f"{bad} is {row.get(bad)!r}, not a finite "
                                "number; dropped", image_id=iid, objects=1))
            continue
        if names is not None:
            if label not in names and label not in unknown:
                unknown.add(label)
                findings.append(warn("unknown-class", path, f"{where}/LabelName",
                                     f"{label!r} is not in the class descriptions; its id is used as the name",
                                     image_id=iid))
            label = names.get(label, label)
        flags = (_flag(row.get("IsOccluded")), _flag(row.get("IsTruncated")), _flag(row.get("IsGroupOf")))
        attrs = tuple(sorted((key, (row.get(col) or "").strip()) for col, key in _KEPT
                             if (row.get(col) or "").strip() not in ("", "0", "-1")))
        rows.setdefault(iid, []).append((label, *coords, flags, attrs, reader.line_num))
    return rows, met


def read(src: str | os.PathLike, *, images: str | os.PathLike | None = None, classes: Sequence[str] | None = None,
         class_descriptions: str | os.PathLike | None = None, workers: int | None = None,
         progress: ProgressFn | None = None, on_total=None, mapper: Mapper | None = None, **_ignored) -> Dataset:
    """Read an Open Images box CSV (or a folder of ``*-bbox.csv``, one split each) into the model.

    Use when starting from Open Images (or a tool's Open Images export). Each image's size is its header's
    (``<ImageID>.<ext>`` in the image folder), read on ``mapper``; an image that is missing (and not sized by an
    ``images.meta`` beside the CSV) or unreadable is dropped with its boxes and counted. Class order: ``classes``,
    else the sorted names."""
    src, files = existing_source(src)
    csvs = box_csvs(src)
    if on_total:
        on_total(len(csvs))
    findings: list[Finding] = []
    desc = os.fspath(class_descriptions) if class_descriptions else find_class_descriptions(csvs[0][1])
    names = read_class_descriptions(desc) if desc else None
    if names is None:
        findings.append(info("no-class-descriptions", csvs[0][1], "LabelName",
                             "no class-description CSV beside the box CSV; class names are the label ids"))
    # (iid, split, csv, image path, size when there is no image to read it from, rows)
    pending: list[tuple[str, str | None, str, str | None, tuple[int, int] | None, list[tuple]]] = []
    objects_read = 0
    image_dirs: list[str] = []
    for split, path in csvs:
        rows, met = _read_rows(path, names, findings)
        objects_read += met
        image_dir = _image_dir(path, split, images)
        index = ImageIndex(image_dir)
        image_dirs.append(image_dir)
        meta_sizes = read_image_meta(files.join(files.parent(path), IMAGE_META), findings)
        for iid in sorted(rows):
            image_path = index.find(f"{iid}.jpg", iid)[0] if index.exists else None
            if image_path is None and iid in meta_sizes:
                findings.append(err("missing-image", path, "ImageID", f"no image {iid!r} in {image_dir}; its boxes "
                                    f"are kept with the size {IMAGE_META} gives", image_id=iid))
                pending.append((iid, split, path, None, meta_sizes[iid], rows[iid]))
            elif image_path is None:
                findings.append(err("missing-image", path, "ImageID", f"no image {iid!r} in {image_dir}: its size is "
                                    f"unknown, so the image and its {len(rows[iid])} box(es) are dropped",
                                    image_id=iid, objects=len(rows[iid]), image_dropped=True))
            else:
                pending.append((iid, split, path, image_path, None, rows[iid]))
    headers = iter(read_headers([p[3] for p in pending if p[3]], mapper=mapper or Mapper(workers=workers)))
    records: dict[str, ImageRecord] = {}
    for iid, split, path, image_path, size, rows in pending:
        if size is None:  # the image is there: its header is the size
            h = next(headers)
            if h.error:
                findings.append(err("image-unreadable", image_path or "", "image", "cannot read the image header to "
                                    f"get its size: {h.error}; the image and its {len(rows)} box(es) are dropped",
                                    image_id=iid, objects=len(rows), image_dropped=True))
                continue
            size = (h.width, h.height)
        w, h_ = size
        anns = tuple(Annotation(label, (x1 * w, y1 * h_, x2 * w, y2 * h_), truncated=fl[1], occluded=fl[0],
                                iscrowd=fl[2], attributes=attrs)
                     for label, x1, x2, y1, y2, fl, attrs, _ in rows)
        key = iid if iid not in records else f"{split}/{iid}"
        records[key] = ImageRecord(image_id=key, file_name=os.path.basename(image_path or f"{iid}.jpg"), width=w,
                                   height=h_, annotations=anns, image_path=image_path, source=path,
                                   splits=(split,) if split else ())
    if progress:
        progress(len(csvs))
    recs = tuple(records[k] for k in sorted(records))
    cls = tuple(classes) if classes else sorted_classes(recs)
    meta = {"image_dir": image_dirs[0]} if len(set(image_dirs)) == 1 else {}
    if names:
        meta["label_ids"] = {v: k for k, v in names.items()}
    return Dataset(images=recs, classes=cls, findings=tuple(findings), objects_read=objects_read, root=src,
                   format=NAME, meta=meta)


# --------------------------------------------------------------------------------------------------- writing

def write(ds: Dataset, out: str | os.PathLike, *, images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6,
          workers: int | None = None, progress: ProgressFn | None = None, mapper: Mapper | None = None,
          **_ignored) -> WriteResult:
    """Write ``OUT/annotations/<split>-annotations-bbox.csv`` and ``class-descriptions.csv`` (a class's Open Images
    id when the dataset was read from Open Images, else its name, as its own id) and ``OUT/images/<split>/`` with
    the images renamed ``<id>.<ext>``. An image without a size cannot be normalized: it is left out with a
    ``missing-size`` finding that counts its boxes. An image without boxes has no row to be listed in (the box CSV
    lists images by their boxes): its image is placed, but a reader of OUT does not get it back, so it is not counted
    as written and a ``no-boxes-not-listed`` warning names it (marked as a dropped image, for the summary's books)."""
    images_mode = ImagesMode(images_mode)
    out = Path(out)
    result = WriteResult(out=str(out))
    ids = dict(ds.meta.get("label_ids") or {})
    classes = all_classes(ds.classes, ds.images)
    by_split: dict[str, list[str]] = {}
    pictures: list[tuple[str, str]] = []

    def num(v: float) -> str:
        return fmt_number(v, precision)

    for rec in ds.images:
        if not rec.has_size:
            result.findings.append(err("missing-size", rec.source, "size", "no image size: the boxes cannot be "
                                       "normalized; image left out", image_id=rec.image_id,
                                       objects=len(rec.annotations), image_dropped=True))
            continue
        split = safe_relpath(rec.splits[0]) if rec.splits else DEFAULT_SPLIT
        iid = rec.image_id.replace("/", "_")
        lines = by_split.setdefault(split, [])
        for a in rec.annotations:
            x1, y1, x2, y2 = a.box
            attrs = a.attrs
            lines.append(",".join([iid, attrs.get("source", "datatools"), _csv(ids.get(a.label, a.label)), "1",
                                   num(x1 / rec.width), num(x2 / rec.width), num(y1 / rec.height),  # type: ignore[operator]
                                   num(y2 / rec.height), str(int(a.occluded)), str(int(a.truncated)),  # type: ignore[operator]
                                   str(int(a.iscrowd)), str(int(attrs.get("is_depiction") == "1")),
                                   str(int(attrs.get("is_inside") == "1"))]))
        placed = bool(rec.image_path) and images_mode is not ImagesMode.NONE
        if placed:
            pictures.append((rec.image_path, f"{split}/{iid}{os.path.splitext(rec.image_path)[1] or '.jpg'}"))
        if not rec.annotations:
            result.findings.append(_not_listed(rec, iid, split, out, placed))
            continue
        result.images_written += 1
        result.objects_written += len(rec.annotations)
    items = [(f"{s}-annotations-bbox.csv", ",".join(COLUMNS) + "\n" + "".join(line + "\n" for line in lines))
             for s, lines in sorted(by_split.items())]
    items.append(("class-descriptions.csv", "".join(f"{_csv(ids.get(c, c))},{_csv(c)}\n" for c in classes)))
    with staged_dir(out / "annotations") as stage:
        write_files([(os.path.join(stage, r), t) for r, t in items])
    if pictures:
        with staged_dir(out / IMAGE_FOLDER) as stage:
            place_images([(s, os.path.join(stage, r)) for s, r in pictures], images_mode, stage=stage,
                         mapper=mapper or Mapper(workers=workers))
    result.files = [str(out / "annotations" / r) for r, _ in items]
    if progress:
        progress(len(ds.images))
    return result


def _not_listed(rec: ImageRecord, iid: str, split: str, out: Path, placed: bool) -> Finding:
    """The ``no-boxes-not-listed`` warning for an image without boxes: the box CSV has no row for it, so reading OUT
    back loses it. It counts as a dropped image (``image_dropped``): the summary must not book it as written."""
    where = f"it is placed in images/{split}/, but" if placed else "no image file is placed, and"
    return Finding("no-boxes-not-listed", Severity.WARNING, str(out / "annotations" / f"{split}-annotations-bbox.csv"),
                   "ImageID", f"image {iid!r} has no boxes, and the box CSV lists images by their boxes only: {where} "
                   "reading this output back will not find it", image_id=rec.image_id, image_dropped=True)


def _csv(text: str) -> str:
    """A CSV field, quoted when it must be."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
