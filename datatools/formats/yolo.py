"""YOLO txt (ultralytics layout): ``images/<split>/x.jpg`` + ``labels/<split>/x.txt`` + ``data.yaml``.

Each label row is ``class cx cy w h`` normalized to [0, 1] by the image size, class ids from 0. Reading needs the image
size, which comes from the image header only (never the pixels), with EXIF orientations 5-8 swapping width/height,
the way ultralytics sizes images.
"""
from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Sequence

from datatools.core.boxes import fmt_numbers, is_finite, xyxy_to_yolo, yolo_to_xyxy
from datatools.core.errors import FormatError, UsageError
from datatools.core import fs
from datatools.core.atomic import ImagesMode, place_images, atomic_write, staged_dir, write_staged
from datatools.core.fs import files_for
from datatools.core.images import ImageHeader
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import safe_relpath
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord, all_classes
from datatools.formats.common import (DEFAULT_SPLIT, WriteResult, err, id_in_split, info, output_image_name,
                                      read_annotation_file, read_headers, split_role, warn)
from datatools.formats.shapes import box_notes
# The layout (data.yaml, split folders) lives in yolo_layout; discover and data_yaml are re-exported for callers.
from datatools.formats.yolo_layout import (SPLIT_KEYS, data_yaml, discover, no_training_split,  # noqa: F401
                                           placeholder_names, refuse_splits_without_images, splits_not_in_yaml)

NAME = "yolo"
# What write() replaces whole in OUT (see core.paths.refuse_replacing_inputs); the image folder only when it
# places images (not under --images-mode none).
OWNED = ("images", "labels", "data.yaml", "classes.txt")
IMAGE_FOLDER = "images"
NEEDS_SIZE = True  # boxes are written relative to the image size: images without one are dropped first
# A row is class and box: no flag, no attribute (ops.convert reports them); the split is the images/<split> folder.
KEEPS = frozenset({"splits", "classes"})  # no score: a 6th column makes a label file ultralytics (and read) refuse


# --------------------------------------------------------------------------------------------------- layout

def _label_path_for(image_path: str, beside: bool = False) -> str:
    """ultralytics' rule: the last ``/images/`` in the path becomes ``/labels/`` and the extension ``.txt``
    (``/`` always separates the parts of an fsspec URL); ``beside``: the same path with ``.txt`` (a layout that keeps
    each label beside its image, even under a folder named ``images``)."""
    if beside:
        return os.path.splitext(image_path)[0] + ".txt"
    sep_ = "/" if fs.is_url(image_path) else os.sep
    sa, sb = f"{sep_}images{sep_}", f"{sep_}labels{sep_}"
    head, sep, tail = (sep_ + image_path).rpartition(sa)  # images/a.jpg, read from a relative root, is one too
    base = (head + sb + tail)[1:] if sep else image_path
    return os.path.splitext(base)[0] + ".txt"


# --------------------------------------------------------------------------------------------------- reading

def parse_label_text(text: str, *, path: str, image_id: str, names: Sequence[str], width: int, height: int,
                     scores: bool = True, refuse_pixels: bool = False, keypoints: int = 0
                     ) -> tuple[list[Annotation], list[Finding], int]:
    """Parse one label file's text: ``(annotations, findings, rows met)``; each annotation carries its line number.

    Rows are ``class cx cy w h`` (5 numbers) or a polygon ``class x1 y1 x2 y2 x3 y3 ...`` (an even number, at least 6,
    of coordinates; read as its bounding box), as ultralytics' ``verify_image_label`` accepts them. ``scores``
    also accepts ``class cx cy w h conf`` (6 numbers), a prediction's row; ground truth is read with
    ``scores=False``, where a 6th column is a ``bad-row`` (ultralytics rejects such a label file).
    ``refuse_pixels`` raises :class:`~datatools.core.errors.FormatError` for a box row whose ``cx cy w h`` is not
    normalized (outside [0, 1] by more than rounding): for predictions, where a file in pixel coordinates would
    otherwise be read as fractions of the image, match nothing and score AP 0.0 with no finding. ``keypoints``: the
    values of a pose dataset's row after its box (data.yaml's ``kpt_shape``): every row is then ``class cx cy w h``
    and exactly that many values, read as its box (an odd count is no polygon there), the keypoints not kept.
    """
    anns: list[Annotation] = []
    findings: list[Finding] = []
    rows = 0
    polygons = boxes = posed = 0
    rejects: tuple[str, str] | None = None  # (line, why) ultralytics drops the whole file: it drops no single row
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        rows += 1
        where = f"line {lineno}"
        try:
            vals = [float(x) for x in parts]
        except ValueError:
            findings.append(err("bad-number", path, where, f"expected numbers, found {line.strip()!r}; row dropped",
                                image_id=image_id, objects=1))
            rejects = rejects or (where, "a value that is no number")
            continue
        n = len(vals)
        if keypoints and n not in (5, 5 + keypoints):
            findings.append(err("bad-row", path, where, f"expected {5 + keypoints} values (class cx cy w h and the "
                                f"{keypoints} keypoint values of kpt_shape) or 5, found {n}; row dropped",
                                image_id=image_id, objects=1))
            rejects = rejects or (where, f"a row of {n} values")
            continue
        if not keypoints and not (n == 5 or (n == 6 and scores) or (n >= 7 and n % 2 == 1)):
            expected = "5 values (class cx cy w h)" + (", 6 (with a confidence)" if scores else "")
            hint = "; a 6th column is a prediction's confidence, not ground truth" if n == 6 else ""
            findings.append(err("bad-row", path, where,
                                f"expected {expected} or a polygon (class and 3 or more x y pairs), found {n} "
                                f"values{hint}; row dropped", image_id=image_id, objects=1))
            rejects = rejects or (where, f"a row of {n} values")
            continue
        if not all(v - v == 0.0 for v in vals):  # NaN and inf are no numbers either (values.text_number's rule)
            findings.append(err("bad-number", path, where, f"expected finite numbers, found {line.strip()!r}; row "
                                "dropped", image_id=image_id, objects=1))
            rejects = rejects or (where, "a value that is no finite number")
            continue
        if refuse_pixels and n in (5, 6):
            _refuse_pixel_row(vals[1:5], f"{path}:{lineno}")
        cid = vals[0]
        if not rejects and (keypoints or n < 7) and (max(vals[1:5]) > 1.01 or min(vals[1:5]) < -0.01):
            rejects = (where, "a coordinate outside [0, 1] by more than 1%")
        if cid != int(cid) or not (0 <= int(cid) < len(names)):
            findings.append(err("unknown-class", path, where,
                                f"class id {parts[0]} is not in 0..{len(names) - 1}; row dropped", image_id=image_id,
                                objects=1))
            rejects = rejects or (where, f"class id {parts[0]}")
            continue
        score = None
        if n >= 7 and not keypoints:
            xs, ys = vals[1::2], vals[2::2]
            box = (min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height)
            polygons += 1
        else:
            box = yolo_to_xyxy(vals[1], vals[2], vals[3], vals[4], width, height)
            boxes += n == 5
            posed += n > 6
            if n == 6 and not keypoints:
                score = vals[5]
        if not is_finite(box):
            findings.append(err("bad-number", path, where, f"the box of {line.strip()!r} is no finite number of "
                                "pixels; row dropped", image_id=image_id, objects=1))
            continue
        anns.append(Annotation(names[int(cid)], box, score=score, where=f"line {lineno}"))
    if rejects and not scores and rows > 1:
        findings.append(warn("file-rejected-by-ultralytics", path, rejects[0], f"{rejects[1]}: ultralytics calls the "
                             f"whole label file (all {rows} rows) corrupt and leaves the image out of training; "
                             "datatools keeps the other rows", image_id=image_id))
    if posed:
        findings.append(info("keypoints-not-kept", path, "keypoints", f"{posed} pose row(s) read as their box; "
                             "the keypoints are not kept", image_id=image_id))
    if polygons:
        findings += box_notes(path, image_id, at="segments", noun="row", polygons=polygons)
        if boxes and not scores:
            findings.append(warn("mixed-rows", path, "segments",
                                 f"{boxes} box row(s) beside {polygons} polygon row(s): datatools reads both, "
                                 "ultralytics rejects the whole file (\"labels mix segment and detection rows\")",
                                 image_id=image_id))
    return anns, findings, rows


# How far a normalized YOLO value may stray outside [0, 1] and still be rounding (a 6-decimal writer, a box touching
# the border); 25 or 188 is a pixel coordinate.
_NORMALIZED_SLACK = 0.01


def _refuse_pixel_row(coords: Sequence[float], where: str) -> None:
    """See ``refuse_pixels`` of :func:`parse_label_text` (finite values: NaN and inf are a row's ``bad-number``)."""
    lo, hi = -_NORMALIZED_SLACK, 1.0 + _NORMALIZED_SLACK
    bad = [v for v in coords if not lo <= v <= hi]
    if bad:
        raise FormatError(where, "", f"coordinate {bad[0]:g} is outside [0, 1]: the file looks like pixel "
                          "coordinates, but YOLO rows are 'class cx cy w h conf' normalized by the image size "
                          "(divide x and w by the width, y and h by the height)")


def _read_one(image_path: str, image_id: str, names: Sequence[str], header: ImageHeader, keypoints: int = 0,
              beside: bool = False) -> tuple[ImageRecord | None, list[Finding], int]:
    """One image's label file, sized by the image's ``header`` (read before, by the parent): (record or None when the
    image cannot be sized, findings, rows met)."""
    findings: list[Finding] = []
    label_path = _label_path_for(image_path, beside)
    text, unreadable = read_annotation_file(label_path, image_id, missing_ok=True, text=True)  # None, None: no file
    if unreadable is not None:
        return None, [unreadable], 0
    if header.error:
        # Without a size, normalized boxes cannot be placed: the image and its rows are dropped, and counted.
        n = len([ln for ln in (text or "").splitlines() if ln.strip()])
        code = "missing-image" if header.error == "missing" else "image-unreadable"
        return None, [err(code, image_path, "image", f"cannot read the image size: {header.error}; "
                          f"{n} object(s) dropped", image_id=image_id, objects=n, image_dropped=True)], n
    if text is None:
        findings.append(info("no-label-file", label_path, "", "no label file: the image has no objects",
                             image_id=image_id))
        anns, rows = [], 0
    else:
        anns, f2, rows = parse_label_text(text, path=label_path, image_id=image_id, names=names, width=header.width,
                                          height=header.height, scores=False, keypoints=keypoints)
        findings.extend(f2)
    if header.orientation in (5, 6, 7, 8):
        findings.append(info("exif-rotation", image_path, "EXIF Orientation",
                             f"orientation {header.orientation}: boxes are relative to the rotated image "
                             f"({header.width}x{header.height})", image_id=image_id))
    rec = ImageRecord(image_id=image_id, file_name=os.path.basename(image_path), width=header.width,
                      height=header.height, annotations=tuple(anns), image_path=image_path, source=label_path,
                      depth=header.depth)
    return rec, findings, rows


def read_chunk(items: Sequence[tuple[str, str, tuple[str, ...], ImageHeader]], *, names: tuple[str, ...],
               keypoints: int = 0, beside: bool = False) -> tuple[list[ImageRecord], list[Finding], int]:
    """Worker: read the label files of a chunk of ``(image_id, image path, splits, image header)``: (records,
    findings, rows met), in the chunk's order. Module-level so that worker processes and Ray tasks can run it."""
    records: list[ImageRecord] = []
    findings: list[Finding] = []
    objects = 0
    for iid, path, in_splits, header in items:
        rec, fnd, n = _read_one(path, iid, names, header, keypoints, beside)
        findings.extend(fnd)
        objects += n
        if rec is not None:
            records.append(replace(rec, splits=in_splits))
    return records, findings, objects


def read(src: str | os.PathLike, *, classes: Sequence[str] | None = None, workers: int | None = None,
         progress: ProgressFn | None = None, on_total=None, mapper: Mapper | None = None, **_ignored) -> Dataset:
    """Read a YOLO dataset from a data.yaml (or a folder with images/ and labels/).

    Class ids are named by data.yaml, else classes.txt. ``classes`` is the class list and order of the result, as for
    every reader: on a dataset that names its classes the objects keep those names and ``classes`` selects and orders
    them by name (``ops.sanitize.prepare`` then drops, and counts, objects of unlisted classes); only a dataset with
    no names (or only ultralytics' ``class_<i>`` for ``nc``) takes ``classes`` as the names of ids 0..n-1.
    The image headers (the sizes) are read first, by :func:`~datatools.formats.common.read_headers` (inside
    ``keep_headers()``, ``check`` reuses them), then the label files as :func:`read_chunk`, both on ``mapper``
    (default: local processes, ``workers`` of them). ``progress`` counts each image once, when its header is read.
    """
    mapper = mapper or Mapper(workers=workers)
    root, splits, names_t, findings, items, labels = plan_reads(src, classes)
    if classes and tuple(classes) != names_t:
        absent = [c for c in classes if c not in names_t]
        if absent:
            findings.append(warn("class-not-in-source", str(root), "names",
                                 f"--classes names {', '.join(map(repr, absent))}, which the dataset does not name "
                                 f"(it names {', '.join(names_t)}); --classes selects and orders classes by name, "
                                 "it does not rename them"))
    twice = sorted({n for n in names_t if names_t.count(n) > 1})
    if twice:  # the model knows classes by name (as a COCO file's two categories of one name)
        findings.append(warn("duplicate-class-name", str(root), "names", f"class name(s) {', '.join(map(repr, twice))} "
                             "name several ids: read as one class each (ultralytics trains those ids apart)"))
    if on_total:
        on_total(len(items))
    headers = read_headers([path for _, path, _ in items], mapper=mapper, progress=progress)
    chunks = mapper.chunks([(iid, path, in_splits, h) for (iid, path, in_splits), h in zip(items, headers)])
    records: list[ImageRecord] = []
    objects_read = 0
    for recs, fnd, n in mapper(partial(read_chunk, names=names_t, **labels), chunks):
        records.extend(recs)
        findings.extend(fnd)
        objects_read += n
    findings.extend(_orphan_labels({path for _, path, _ in items}, labels["beside"]))
    return Dataset(images=tuple(records), classes=tuple(classes) if classes else tuple(dict.fromkeys(names_t)),
                   findings=tuple(findings), objects_read=objects_read, root=str(root), format=NAME,
                   meta={"splits": list(splits), "names": list(names_t)})  # names: what the file's ids mean


def plan_reads(src: str | os.PathLike, classes: Sequence[str] | None = None
               ) -> tuple[Path | str, dict[str, list[tuple[str, str]]], tuple[str, ...], list[Finding],
                          list[tuple[str, str, tuple[str, ...]]], dict]:
    """What is known before any label file is read: ``(root, splits, names of ids 0..n-1, findings, items, how the
    label files are read)`` (the last as :func:`~datatools.formats.yolo_layout.discover` gives it).
    ``items`` are ``(image_id, image path, splits)`` sorted by id; an id met twice with another path is a finding and
    read once. ``classes`` names the ids only when the dataset does not (no names, or ultralytics' ``class_<i>``
    placeholders for ``nc``). The YOLO reader starts here."""
    root, splits, names, findings, labels = discover(src)
    if classes and (not names or names == placeholder_names(len(names))):
        names = list(classes)
    if not names:
        raise UsageError(f"{src}: no class names: add names to data.yaml, a classes.txt, or pass --classes")
    order: list[str] = []
    where: dict[str, tuple[str, list[str]]] = {}
    for split, items in splits.items():
        for iid, path in items:
            if iid in where and where[iid][0] != path:
                # another image of the same name: in another split (images/train/a.jpg, images/val/a.jpg) another
                # image, kept under its split; in the same one, another image when its label file is another
                # (images/cam1/0.jpg, images/cam2/0.jpg: cam2/0), one label file for both (a.jpg, a.png) otherwise
                if split not in where[iid][1] and _same_picture(path, where[iid][0], labels["beside"]):
                    findings.append(info("repeated-image", path, "image", f"the same picture and labels as "
                                         f"{where[iid][0]}: one image in splits {where[iid][1][0]} and {split}",
                                         image_id=iid))
                    other = iid  # one image in both splits, as a VOC list or a COCO file per split says it
                elif split not in where[iid][1]:
                    other = id_in_split(iid, split, where)
                elif _label_path_for(path, labels["beside"]) != _label_path_for(where[iid][0], labels["beside"]):
                    other = _longer_id(path, where)
                else:
                    other = None
                if other is None:
                    findings.append(warn("duplicate-file-name", path, "image",
                                         f"image id {iid!r} also names {where[iid][0]}; only the first is read",
                                         image_id=iid))
                    continue
                iid = other
            if iid in where:
                where[iid][1].append(split)
            else:
                where[iid] = (path, [split])
                order.append(iid)
    order.sort()
    return root, splits, tuple(names), findings, [(i, where[i][0], tuple(where[i][1])) for i in order], labels


def _same_picture(path: str, first: str, beside: bool) -> bool:
    """Whether two images of one name in two splits are one image: the same file (a hard link, as our writer
    places it) or the same bytes, with label files of the same bytes (or none)."""
    if not fs.same_file(path, first, contents=True):
        return False
    a, b = _label_path_for(path, beside), _label_path_for(first, beside)
    (x, bad_x), (y, bad_y) = (read_annotation_file(p, "", missing_ok=True) for p in (a, b))
    return bad_x is None and bad_y is None and x == y


def _longer_id(path: str, taken) -> str | None:
    """The shortest tail of ``path`` (without extension), two parts or more, that no image has yet."""
    parts = Path(path).with_suffix("").parts
    return next((t for t in ("/".join(parts[-n:]) for n in range(2, len(parts) + 1)) if t not in taken), None)


def _orphan_labels(image_paths: set[str], beside: bool) -> list[Finding]:
    """Label files with no image: ultralytics ignores them silently; we report them. Local paths are compared
    normalized (a list file's ``./../images/a.jpg`` and a folder's ``images/a.jpg`` are one image)."""
    expected = {_label_path_for(p, beside) for p in image_paths}
    expected = {p if fs.is_url(p) else os.path.normpath(p) for p in expected}
    label_dirs = {os.path.dirname(p) for p in expected}
    out = []
    for d in sorted(label_dirs):
        files = files_for(d)
        if not files.isdir(d):
            continue
        for name in files.listdir(d)[1]:
            full = os.path.join(d, name)
            if name.endswith(".txt") and full not in expected and name != "classes.txt":
                out.append(warn("label-without-image", full, "", "label file has no image; it was not read"))
    return out


# --------------------------------------------------------------------------------------------------- writing

def label_text(record: ImageRecord, class_ids: dict[str, int], *, precision: int = 6) -> str:
    """The label file for one record: ``class cx cy w h`` rows, never a confidence column (a dataset's label file
    with one is refused by ultralytics; a lost score is a ``field-not-kept`` note). Requires a known image size;
    boxes should already be clipped."""
    w, h = record.width, record.height
    return "".join(f"{class_ids[a.label]} {fmt_numbers(xyxy_to_yolo(a.box, w, h), precision)}\n"
                   for a in record.annotations)


def write(ds: Dataset, out: str | os.PathLike, *, images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6,
          workers: int | None = None, progress: ProgressFn | None = None, mapper: Mapper | None = None,
          **_ignored) -> WriteResult:
    """Write ``ds`` in the ultralytics layout. Records without a size must have been removed before (see ops.convert).

    ``labels/`` and ``images/`` are each built in a staging folder and swapped in whole (see core.atomic.staged_dir).
    The label text is made here; the files are written and the images placed on ``mapper`` (default: local threads,
    ``workers`` of them): on Ray the workers write straight into the stage (see core.atomic.write_staged).
    """
    images_mode = ImagesMode(images_mode)
    mapper = mapper or Mapper(workers=workers)
    out = Path(out)
    result = WriteResult(out=str(out))
    splits_seen: dict[str, None] = {}
    safe_splits: dict[str, str] = {}
    rels: list[tuple[str, ...]] = []  # tuples of strings, which the cyclic GC stops tracking: 17k lists made it scan
    pictures: list[tuple[str, str]] = []
    clear = _ClearOfImages(ds.images)
    for rec in ds.images:
        if not rec.has_size:
            raise ValueError(f"{rec.source}: YOLO needs the image size; run ops.convert.prepare(require_size=True) first")
        rel = clear.rel(safe_relpath(rec.image_id), file=True)
        pic = rel + os.path.splitext(output_image_name(rec))[1]
        mine = []
        for split in rec.splits or (DEFAULT_SPLIT,):
            split = safe_splits.get(split) or safe_splits.setdefault(split, clear.rel(safe_relpath(split), file=False))
            splits_seen.setdefault(split, None)
            mine.append(f"{split}/{rel}")
            if rec.image_path and images_mode is not ImagesMode.NONE:
                pictures.append((rec.image_path, f"{split}/{pic}"))
        rels.append(tuple(mine))
        result.objects_written += len(rec.annotations)
        result.images_written += 1
    order = {key: k for k, key in enumerate(SPLIT_KEYS)}
    splits = sorted(splits_seen, key=lambda s: (order.get(split_role(s), 3), s))
    if images_mode is not ImagesMode.NONE:
        refuse_splits_without_images(ds, splits, {r.partition("/")[0] for _, r in pictures}, out)
    result.findings += no_training_split(splits, out) + splits_not_in_yaml(ds, splits, out)
    gifs = sum(1 for rec in ds.images if os.path.splitext(rec.image_path or rec.file_name or "")[1].lower() == ".gif")
    if gifs:  # ultralytics lists GIF as a video: it trains without them
        result.findings.append(warn("image-not-read-by-ultralytics", str(out / "images"), "images", f"{gifs} image(s) "
                                    "are GIF, which ultralytics does not read as images: their labels are written, "
                                    "ultralytics trains without them (convert them to PNG)"))
    if clear.renamed:
        result.findings.append(info("folder-renamed", str(out / "images"), "images",
                                    f"{clear.renamed} image or split path(s) with a folder named 'images' or a "
                                    "name starting with '.' are written with 'images_' or '_.' there: ultralytics "
                                    "finds a label by the last /images/ in an image's path, and skips hidden names"))
    # A conversion has dropped objects of unlisted classes (ops.sanitize.prepare); a dataset written as it is (a
    # split) keeps them: ids are the class list, then any other label, sorted, as stats and split count them.
    names = all_classes(ds.classes, ds.images)
    class_ids = {n: i for i, n in enumerate(names)}
    texts = [label_text(rec, class_ids, precision=precision) for rec in ds.images]
    result.findings += _repeated_rows(ds.images, texts)
    with staged_dir(out / "labels") as stage:
        write_staged([(text.encode("utf-8"), tuple([os.path.join(stage, r + ".txt") for r in mine]))
                      for text, mine in zip(texts, rels)], stage=stage, mapper=mapper, progress=progress)
    place_images(out / "images", pictures, images_mode, mapper=mapper)
    lines = [" ".join(n.splitlines()) for n in names]  # one name a line: a line break in one moved every later id
    for name, line in zip(names, lines):
        if line != name:
            result.findings.append(warn("name-not-kept", str(out / "classes.txt"), "classes", f"class {name!r} holds "
                                        f"a line break: classes.txt has {line!r} (data.yaml keeps the name)"))
    items = [(str(out / "classes.txt"), "".join(line + "\n" for line in lines)),
             (str(out / "data.yaml"), data_yaml(splits, names))]
    for path, text in items:
        atomic_write(path, text)
    for split in splits if images_mode is ImagesMode.NONE else ():
        if not (out / "images" / split).is_dir():  # labels written for images that were to be there already
            result.findings.append(warn("missing-split", str(out / "data.yaml"), split,
                                        f"images/{split} does not exist in {out} (--images-mode none places no "
                                        "images): put the images there before training"))
    labels = os.path.join(str(out), "labels", "")
    result.files = [labels + r + ".txt" for mine in rels for r in mine] + [p for p, _ in items]
    return result


def _repeated_rows(records: Sequence[ImageRecord], texts: Sequence[str]) -> list[Finding]:
    """One ``duplicate-box`` warning for label files holding a row twice (two boxes of one class, equal to the
    written precision): written as they are, but ultralytics keeps one of them ("duplicate labels removed")."""
    files = rows = 0
    first = None
    for rec, text in zip(records, texts):
        n = text.count("\n")
        if n > 1 and (extra := n - len(set(text.splitlines()))):
            files, rows, first = files + 1, rows + extra, first or rec
    if not first:
        return []
    return [warn("duplicate-box", first.source, "labels",
                 f"{rows} row(s) in {files} label file(s) repeat another row of their file (e.g. {first.image_id!r}): "
                 "written as they are; ultralytics keeps one of equal rows", image_id=first.image_id)]


class _ClearOfImages:
    """Output paths ultralytics reads as they were written: no folder named ``images`` below ``images/`` (ultralytics
    and :func:`_label_path_for` turn the last ``/images/`` of an image's path into ``/labels/``, so
    ``images/train/images/a.jpg`` would have its label looked for in ``images/train/labels/``) and no name starting
    with ``.`` (its listing, and ours, skip hidden files and folders: ``.a.jpg`` was written and never read back).
    Such a folder becomes ``images_``, such a name ``_.a`` (more ``_`` while that names another record's path);
    ``renamed`` counts the paths changed."""

    def __init__(self, records: Sequence[ImageRecord]) -> None:
        self._records, self._taken, self.renamed = records, None, 0

    def rel(self, rel: str, *, file: bool) -> str:
        parts = rel.split("/")
        folders = len(parts) - 1 if file else len(parts)
        bad = [p.startswith(".") or (p == "images" and k < folders) for k, p in enumerate(parts)]
        if not any(bad):
            return rel
        if self._taken is None:  # built on the first such path only
            self._taken = {safe_relpath(r.image_id) for r in self._records} | {
                safe_relpath(s) for r in self._records for s in r.splits}
        fix = "_"
        while True:
            new = "/".join((fix + p if p.startswith(".") else p + fix) if b else p for b, p in zip(bad, parts))
            if new not in self._taken:
                break
            fix += "_"
        self._taken.add(new)
        self.renamed += 1
        return new
