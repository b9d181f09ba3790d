"""Open Images box CSV (one row per box, coordinates normalized to [0, 1]), its class descriptions, per-split image
lists (which name the images without boxes too) and ``images.meta`` (sizes, as CVAT and datumaro write it): read and
written. The CSV carries no image size: each image's header gives it, else ``images.meta``; an image with neither
cannot place its boxes and is dropped with them (``missing-image``), counted. Columns and flags:
docs/format-openimages.md.
"""
from __future__ import annotations

import csv
import io
import os
import re
import shlex
from pathlib import Path
from typing import Sequence

from datatools.core.atomic import ImagesMode, place_images, staged_dir, write_files
from datatools.core.boxes import fmt_number, is_finite
from datatools.core.errors import FormatError, UsageError
from datatools.core.fs import files_for, read_text
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, all_classes, sorted_classes
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import safe_relpath
from datatools.formats.common import (DEFAULT_SPLIT, ImageIndex, WriteResult, err, existing_source, fold_no_images,
                                      id_in_split, info, read_headers, split_not_kept, warn)
from datatools.formats.values import read_flag, size_side, text_number

NAME = "openimages"
OWNED = ("annotations", "images")
IMAGE_FOLDER = "images"
NEEDS_SIZE = True  # boxes are written relative to the image size: images without one are dropped first
# IsOccluded, IsTruncated, IsGroupOf (iscrowd) columns; of the attributes, the Source/IsDepiction/IsInside ones; the
# split as the CSVs' <split>- prefix.
KEEPS = frozenset({"occluded", "truncated", "iscrowd", "attributes", "splits"})


def keeps_attribute(name: str, value: str | None = None) -> bool:
    return name in {key for _, key in _KEPT}
REQUIRED = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
COLUMNS = ("ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsOccluded",
           "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
_KEPT = (("Source", "source"), ("IsDepiction", "is_depiction"), ("IsInside", "is_inside"))
# The Source the writer gives a box that had none: read back as none, so that a round trip adds no attribute.
WRITTEN_SOURCE = "datatools"
IMAGE_META = "images.meta"  # image sizes beside the box CSV, in CVAT's and datumaro's exports
_BBOX_RE = re.compile(r"^(?:oidv\d+-)?(.*?)-?(?:annotations-)?bbox\.csv$", re.I)
# The image lists: Open Images' ``<split>-images-with-rotation.csv`` (validation, test),
# ``train-images-boxable-with-rotation.csv``, and the ``<subset>-image_ids_and_rotation.csv`` CVAT's documentation
# names. Not read: the all-splits ``image_ids_and_rotation.csv`` (9M images, no split in its name), and V6's
# ``oidv6-train-images-with-labels-with-rotation.csv``, whose 9M images have image-level labels and only 1.7M boxes:
# the others were read as images without objects.
_LIST_RE = re.compile(r"^(?:oidv\d+-)?(.+?)-(?:images(?:-boxable)?-with-rotation|image_ids_and_rotation)\.csv$",
                      re.I)
LIST_COLUMNS = ("ImageID", "Subset", "OriginalURL", "OriginalLandingURL", "License", "AuthorProfileURL", "Author",
                "Title", "OriginalSize", "OriginalMD5", "Thumbnail300KURL", "Rotation")


def is_box_csv(path: str) -> bool:
    """Whether a CSV's header (its first line only) has the Open Images box columns."""
    from datatools.core.fs import read_head

    first = read_head(path, 4096)
    if first is None:
        return False
    head = (first.splitlines() or [b""])[0].decode("utf-8-sig", errors="replace")  # \r\n, \n or a lone \r
    cols = [c.strip() for c in head.split(",")]
    if not head.strip():  # an empty box CSV is one by its name: the reader says it is empty (empty-file)
        return bool(_BBOX_RE.match(path.replace("\\", "/").rsplit("/", 1)[-1]))
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


def image_lists(src: str, csvs: list[tuple[str | None, str]]) -> dict[str, list[str]]:
    """``{split: [path]}`` of the image-list CSVs beside the box CSVs (and, for a folder SRC, in it and its
    ``annotations/``), by the split their name gives (``validation-images-with-rotation.csv`` is ``validation``)."""
    files = files_for(src)
    folders = [files.parent(p) for _, p in csvs]
    if files.isdir(src):
        folders += [f for f in (src, files.join(src, "annotations")) if files.isdir(f)]
    out: dict[str, list[str]] = {}
    for folder in dict.fromkeys(folders):
        for n in sorted(files.listdir(folder)[1]):
            m = _LIST_RE.match(n)
            if m:
                out.setdefault(m.group(1), []).append(files.join(folder, n))
    return out


def _read_image_list(path: str, findings: list[Finding]) -> dict[str, None]:
    """The ImageIDs an image list names, in its order, each once. The list is advice, never a reason to stop: an
    unreadable file or one without an ``ImageID`` column is ignored with a ``bad-image-list`` warning, and so is a
    row without an ImageID; a second row for an image is read once (``bad-image-list``). ``Rotation`` (Open Images:
    the degrees, counter-clockwise, that the image *and its boxes* should be turned to the author's orientation;
    empty or ``nan`` when unknown) other than 0 is an ``image-rotation`` warning: the boxes are read as they are,
    for the image as stored, and nothing is turned."""
    try:
        reader = csv.DictReader(_csv_text(read_text(path)))
        fields = reader.fieldnames or []
    except (OSError, FormatError, csv.Error) as e:
        findings.append(warn("bad-image-list", path, "", f"cannot read the image list: {e}; ignored"))
        return {}
    if "ImageID" not in fields:
        findings.append(warn("bad-image-list", path, "ImageID", f"the header has no ImageID column (found "
                             f"{', '.join(fields) or 'nothing'}); the image list is ignored"))
        return {}
    ids: dict[str, None] = {}
    try:
        for row in reader:
            where = f"line {reader.line_num}"
            iid = (row.get("ImageID") or "").strip()
            if not iid:
                findings.append(warn("bad-image-list", path, f"{where}/ImageID", "the row has no ImageID; ignored"))
                continue
            if iid in ids:
                findings.append(warn("bad-image-list", path, f"{where}/ImageID", f"image {iid!r} is listed again; "
                                     "read once", image_id=iid))
                continue
            ids[iid] = None
            raw = (row.get("Rotation") or "").strip()
            turn = text_number(raw) if raw.lower() not in ("", "nan") else 0
            if turn in (90, 180, 270):
                findings.append(warn("image-rotation", path, f"{where}/Rotation", f"image {iid!r} should be "
                                     f"turned {raw} degrees counter-clockwise, with its boxes, to stand as its author "
                                     "meant; read as stored (boxes as written, nothing turned)", image_id=iid))
            elif turn != 0:
                findings.append(warn("bad-image-list", path, f"{where}/Rotation", f"Rotation is {raw!r}, not 0, 90, "
                                     "180, 270 or empty; the image is read as stored", image_id=iid))
    except csv.Error as e:
        findings.append(warn("bad-image-list", path, f"line {reader.line_num + 1}", f"cannot parse the image list: "
                             f"{e}; this row and those after it are ignored"))
    return ids


def find_class_descriptions(csv_path: str) -> str | None:
    """A ``*class-descriptions*.csv`` beside the box CSV (the boxable list first), or None."""
    files = files_for(csv_path)
    folder = files.parent(csv_path)
    names = [n for n in files.listdir(folder)[1] if "class-descriptions" in n.lower() and n.lower().endswith(".csv")]
    names.sort(key=lambda n: ("boxable" not in n.lower(), n))
    return files.join(folder, names[0]) if names else None


def _csv_text(text: str) -> io.StringIO:
    """``text`` for the csv module, line ends as written: a lone CR (Excel for Mac's CSV) ends a row too."""
    return io.StringIO(text, newline="")


def read_class_descriptions(path: str) -> dict[str, str]:
    """``{id: name}`` from a class-description CSV (``/m/xxx,Name`` rows; a ``LabelName,DisplayName`` header is
    skipped)."""
    try:
        text = read_text(path)
    except OSError as e:
        raise UsageError(f"{path}: cannot read the class descriptions: {e}") from e
    out: dict[str, str] = {}
    for k, row in enumerate(csv.reader(_csv_text(text))):
        if len(row) < 2 or (k == 0 and row[0].strip() == "LabelName"):
            continue
        out.setdefault(row[0].strip(), row[1].strip())
    return out


def read_image_meta(path: str, findings: list[Finding]) -> dict[str, tuple[int, int]]:
    """``{image id: (width, height)}`` from an ``images.meta`` (``<id> <height> <width>`` lines, ``#`` comments,
    shell quoting), which CVAT's and datumaro's Open Images exports put beside the box CSV; {} when there is none. It
    gives the size of an image that is not there (an annotations-only export). A bad line is a ``bad-size``
    warning."""
    files = files_for(path)
    if not files.isfile(path):
        return {}
    try:
        text = read_text(path)
    except (OSError, FormatError) as e:
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
        sides = [size_side(v, text=True) for v in parts[1:]]
        if len(parts) != 3 or not all(isinstance(v, int) for v in sides):
            findings.append(warn("bad-size", path, f"line {k}", f"expected '<image id> <height> <width>' in whole "
                                 f"pixels, found {line.strip()!r}; ignored"))
            continue
        out[parts[0]] = (sides[1], sides[0])  # type: ignore[assignment]
    return out


# The values the official box CSVs hold in the Is* columns: 1, 0, and -1 (unknown: rows of some sources); empty where
# a tool wrote no value.
_FLAG_VALUES = {"1": True, "0": False, "-1": False, "": False}
_FLAG_COLUMNS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")


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
        text = read_text(path)
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e}") from e
    if not text.strip():  # a split without boxes, or a failed export: no header, no rows
        findings.append(err("empty-file", path, "", "the box CSV is empty (not even a header); no boxes read",
                            image_dropped=True))  # as an empty CVAT annotations.xml: check lists it, convert stops
        return {}, 0
    reader = csv.DictReader(_csv_text(text))
    fields = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in fields]
    if missing:
        raise UsageError(f"{path}: not an Open Images box CSV: the header lacks {', '.join(missing)}")
    rows: dict[str, list[tuple]] = {}
    met = 0
    unknown: set[str] = set()
    for row in reader:
        met += 1
        where = f"line {reader.line_num}"
        iid = (row.get("ImageID") or "").strip()
        short = [c for c in fields if row.get(c) is None]  # DictReader fills the columns a short row lacks with None
        if short:
            lost = [c for c in short if c in REQUIRED]
            what = f"{', '.join(short)} missing"
            if lost:
                findings.append(err("bad-row", path, where, f"the row has {len(fields) - len(short)} columns, the "
                                    f"header {len(fields)}: {what}; dropped", image_id=iid, objects=1))
                continue
            findings.append(warn("bad-row", path, where, f"the row has {len(fields) - len(short)} columns, the "
                                 f"header {len(fields)}: {what}; read as empty", image_id=iid))
        label = (row.get("LabelName") or "").strip()
        if not iid or not label:
            findings.append(err("missing-field", path, where, "the row has no ImageID or LabelName; dropped",
                                image_id=iid, objects=1))
            continue
        coords = [text_number(row.get(c)) for c in ("XMin", "XMax", "YMin", "YMax")]
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
        values: dict = {c: read_flag(row.get(c), path, f"{where}/{c}", iid, findings, quiet=_FLAG_VALUES,
                                     expected="1, 0 or -1 (unknown)") for c in _FLAG_COLUMNS}
        source = (row.get("Source") or "").strip()
        values["Source"] = "" if source == WRITTEN_SOURCE else source
        attrs = tuple(sorted((key, "1" if values[col] is True else values[col]) for col, key in _KEPT if values[col]))
        flags = (values["IsOccluded"], values["IsTruncated"], values["IsGroupOf"])
        rows.setdefault(iid, []).append((label, *coords, flags, attrs, reader.line_num))
    return rows, met


def read(src: str | os.PathLike, *, images: str | os.PathLike | None = None, classes: Sequence[str] | None = None,
         class_descriptions: str | os.PathLike | None = None, workers: int | None = None,
         progress: ProgressFn | None = None, on_total=None, mapper: Mapper | None = None, **_ignored) -> Dataset:
    """Read an Open Images box CSV (or a folder of ``*-bbox.csv``, one split each) into the model.

    Use when starting from Open Images (or a tool's Open Images export). An image list of a split (see
    :func:`image_lists`) adds the images it names that have no boxes; it does not filter. Each image's size is its
    header's (``<ImageID>.<ext>`` in the image folder), read on ``mapper``; an image that is missing (and not sized
    by an ``images.meta`` beside the CSV) or unreadable is dropped with its boxes and counted. Class order:
    ``classes``, else the sorted names."""
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
    # Each box CSV with the image lists of its split; then (for a folder) the lists of a split without a box CSV.
    lists = image_lists(src, csvs)
    sources: list[tuple[str | None, str | None, list[str]]] = []
    for split, path in csvs:
        m = _BBOX_RE.match(os.path.basename(path))
        sources.append((split, path, lists.pop(split if split else (m.group(1) if m else ""), [])))
    if files.isdir(src):
        sources += [(split, None, paths) for split, paths in sorted(lists.items())]
    # (iid, split, csv, image path, size when there is no image to read it from, rows)
    pending: list[tuple[str, str | None, str, str | None, tuple[int, int] | None, list[tuple]]] = []
    objects_read = 0
    image_dirs: list[str] = []
    for split, box_csv, list_paths in sources:
        rows, met = _read_rows(box_csv, names, findings) if box_csv else ({}, 0)
        listed: dict[str, None] = {}
        for lp in list_paths:
            listed.update(_read_image_list(lp, findings))
        path = box_csv or list_paths[0]
        objects_read += met
        image_dir = _image_dir(path, split, images)
        index = ImageIndex(image_dir)
        image_dirs.append(image_dir)
        meta_sizes = read_image_meta(files.join(files.parent(path), IMAGE_META), findings)
        for iid in sorted(rows.keys() | listed.keys()):
            boxes = rows.get(iid, [])
            image_path = index.find(f"{iid}.jpg", iid)[0] if index.exists else None
            if image_path is None and iid in meta_sizes:
                findings.append(err("missing-image", path, "ImageID", f"no image {iid!r} in {image_dir}; it is kept "
                                    f"with the size {IMAGE_META} gives", image_id=iid))
                pending.append((iid, split, path, None, meta_sizes[iid], boxes))
            elif image_path is None:
                what = f"the image and its {len(boxes)} box(es) are" if boxes else "the image (listed, no boxes) is"
                findings.append(err("missing-image", path, "ImageID", f"no image {iid!r} in {image_dir}: its size is "
                                    f"unknown, so {what} dropped",
                                    image_id=iid, objects=len(boxes), image_dropped=True))
            else:
                pending.append((iid, split, path, image_path, None, boxes))
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
        anns = []
        for label, x1, x2, y1, y2, fl, attrs, line in rows:
            box = (x1 * w, y1 * h_, x2 * w, y2 * h_)
            if not is_finite(box):
                findings.append(err("bad-number", path, f"line {line}", "the box is no finite number of pixels; "
                                    "dropped", image_id=iid, objects=1))
                continue
            anns.append(Annotation(label, box, truncated=fl[1], occluded=fl[0], iscrowd=fl[2], attributes=attrs,
                                   where=f"line {line}"))
        anns = tuple(anns)
        key = iid if iid not in records else id_in_split(iid, split, records)
        if key is None:  # the same ImageID twice in one split (two of its CSVs): the first is kept
            findings.append(err("duplicate-file-name", path, "ImageID", f"image {iid!r} appears twice in split "
                                f"{split!r}; the first is kept and this one's {len(anns)} box(es) are dropped",
                                image_id=iid, objects=len(anns), image_dropped=True))
            continue
        records[key] = ImageRecord(image_id=key, file_name=os.path.basename(image_path or f"{iid}.jpg"), width=w,
                                   height=h_, annotations=anns, image_path=image_path, source=path,
                                   splits=(split,) if split else ())
    if progress:
        progress(len(csvs))
    recs = tuple(records[k] for k in sorted(records))
    one_dir = image_dirs[0] if len(set(image_dirs)) == 1 else None
    if image_dirs:  # annotations-only, sized by images.meta (--images-mode none output): one missing-image-dir
        fold_no_images(recs, findings, one_dir or os.fspath(src), given=bool(images))
    cls = tuple(classes) if classes else sorted_classes(recs)
    meta = {"image_dir": one_dir} if one_dir else {}
    if names:
        meta["label_ids"] = {v: k for k, v in names.items()}
    return Dataset(images=recs, classes=cls, findings=tuple(findings), objects_read=objects_read, root=src,
                   format=NAME, meta=meta)


# --------------------------------------------------------------------------------------------------- writing

def write(ds: Dataset, out: str | os.PathLike, *, images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6,
          workers: int | None = None, progress: ProgressFn | None = None, mapper: Mapper | None = None,
          **_ignored) -> WriteResult:
    """Write ``OUT/annotations/<split>-annotations-bbox.csv``, ``<split>-images-with-rotation.csv`` and
    ``class-descriptions.csv`` (a class's Open Images id when the dataset was read from Open Images, else its name, as
    its own id), ``images.meta`` (every image's size, as CVAT and datumaro write it: the annotations read back
    with their sizes where the images are not there, under ``--images-mode none``) and ``OUT/images/<split>/`` with
    the images renamed ``<id>.<ext>``. The image list names every image
    of the split (the box CSV only those with boxes), so an image without boxes is read back. It is named
    ``<split>-images-with-rotation.csv`` for every split, train too: it lists all images, so the train download's
    ``-boxable-`` name would be untrue, and datumaro reads ``*-images-with-rotation.csv``. Its other columns are
    empty; ``Rotation`` is empty (unknown, the official files' ``nan``): boxes are written for the image as read.
    An image without a size cannot be normalized: it is left out with a ``missing-size`` finding that counts its
    boxes."""
    images_mode = ImagesMode(images_mode)
    out = Path(out)
    result = WriteResult(out=str(out))
    ids = dict(ds.meta.get("label_ids") or {})
    classes = all_classes(ds.classes, ds.images)
    by_split: dict[str, list[str]] = {}
    listed: dict[str, list[str]] = {}
    sizes: list[str] = []
    pictures: list[tuple[str, str]] = []

    def num(v: float) -> str:
        return fmt_number(v, precision)

    taken: set[str] = set()
    for rec in ds.images:
        if not rec.has_size:
            result.findings.append(err("missing-size", rec.source, "size", "no image size: the boxes cannot be "
                                       "normalized; image left out", image_id=rec.image_id,
                                       objects=len(rec.annotations), image_dropped=True))
            continue
        split = safe_relpath(rec.splits[0]) if rec.splits else DEFAULT_SPLIT
        # An ImageID is one name: x/a and x_a would be one image; readers strip a CSV field (' a' is 'a')
        iid = flat = rec.image_id.replace("/", "_").strip() or "_"
        n = 1
        while iid in taken:
            n += 1
            iid = f"{flat}__{n}"
        if n > 1:
            result.findings.append(warn("name-collision", rec.source, "image_id", f"ImageID {flat!r} is another image's "
                                        f"already (an ImageID has no '/': it is written '_'); written as {iid!r}", image_id=rec.image_id))
        taken.add(iid)
        lines = by_split.setdefault(split, [])
        listed.setdefault(split, []).append(",".join([_csv(iid), _csv(split)] + [""] * (len(LIST_COLUMNS) - 2)))
        sizes.append(f"{shlex.quote(iid)} {rec.height} {rec.width}\n")
        for a in rec.annotations:
            x1, y1, x2, y2 = a.box
            attrs = a.attrs
            lines.append(",".join([_csv(iid), _csv(attrs.get("source", WRITTEN_SOURCE)), _csv(ids.get(a.label, a.label)),
                                   "1",
                                   num(x1 / rec.width), num(x2 / rec.width), num(y1 / rec.height),  # type: ignore[operator]
                                   num(y2 / rec.height), str(int(a.occluded)), str(int(a.truncated)),  # type: ignore[operator]
                                   str(int(a.iscrowd)), str(int(attrs.get("is_depiction") == "1")),
                                   str(int(attrs.get("is_inside") == "1"))]))
        placed = bool(rec.image_path) and images_mode is not ImagesMode.NONE
        if placed:
            pictures.append((rec.image_path, f"{split}/{iid}{os.path.splitext(rec.image_path)[1] or '.jpg'}"))
        result.images_written += 1
        result.objects_written += len(rec.annotations)
    result.findings += split_not_kept([r for r in ds.images if r.has_size], "an ImageID belongs to one subset")
    items = [(f"{s}-annotations-bbox.csv", ",".join(COLUMNS) + "\n" + "".join(line + "\n" for line in lines))
             for s, lines in sorted(by_split.items())]
    items += [(f"{s}-images-with-rotation.csv", ",".join(LIST_COLUMNS) + "\n" + "".join(r + "\n" for r in rows))
              for s, rows in sorted(listed.items())]
    items.append(("class-descriptions.csv", "".join(f"{_csv(ids.get(c, c))},{_csv(c)}\n" for c in classes)))
    items.append((IMAGE_META, "# <image id> <height> <width>\n" + "".join(sizes)))
    with staged_dir(out / "annotations") as stage:
        write_files([(os.path.join(stage, r), t) for r, t in items])
    place_images(out / IMAGE_FOLDER, pictures, images_mode, mapper=mapper or Mapper(workers=workers))
    result.files = [str(out / "annotations" / r) for r, _ in items]
    if progress:
        progress(len(ds.images))
    return result


def _csv(text: str) -> str:
    """A CSV field, quoted when it must be."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
