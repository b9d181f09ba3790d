"""YOLO txt (ultralytics layout): ``images/<split>/x.jpg`` + ``labels/<split>/x.txt`` + ``data.yaml``.

Each label row is ``class cx cy w h`` normalized to [0, 1] by the image size, class ids from 0. Reading needs the image
size, which comes from the image header only (never the pixels), with EXIF orientations 5-8 swapping width/height,
the way ultralytics sizes images.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Sequence

from datatools.core.boxes import fmt_numbers, xyxy_to_yolo, yolo_to_xyxy
from datatools.core.errors import UsageError
from datatools.core import fs
from datatools.core.atomic import ImagesMode, place_images, staged_dir, write_many, write_staged
from datatools.core.fs import files_for, read_small_file
from datatools.core.images import list_images, read_image_header
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import safe_relpath
from datatools.core.model import Annotation, Dataset, Finding, ImageRecord
from datatools.formats.common import DEFAULT_SPLIT, WriteResult, err, info, warn

NAME = "yolo"
# What write() replaces whole in OUT (see core.paths.refuse_replacing_inputs); the image folder only when it
# places images (not under --images-mode none).
OWNED = ("images", "labels", "data.yaml", "classes.txt")
IMAGE_FOLDER = "images"


# --------------------------------------------------------------------------------------------------- layout

def _load_yaml(path: Path | str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(read_small_file(path).decode("utf-8-sig"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read the dataset YAML: {e}") from e
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping with train/val/names keys")
    return data


def _names_from(value, where: str) -> list[str]:
    if isinstance(value, dict):
        try:
            ids = sorted(int(k) for k in value)
        except (TypeError, ValueError) as e:
            raise UsageError(f"{where}: names keys must be integers") from e
        if ids != list(range(len(ids))):
            raise UsageError(f"{where}: names ids must run 0..{len(ids) - 1}")
        return [str(value.get(i, value.get(str(i)))) for i in ids]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise UsageError(f"{where}: names must be a list or a mapping of id -> name")


def _yaml_names(data: dict, where: str) -> list[str]:
    """The class names of a data.yaml: ``names`` (list or dict), else ``class_<i>`` for ``nc``, else none."""
    if "names" in data and data["names"] is not None:
        return _names_from(data["names"], where)
    if "nc" in data:
        return [f"class_{i}" for i in range(int(data["nc"]))]
    return []


def _label_path_for(image_path: str) -> str:
    """ultralytics' rule: the last ``/images/`` in the path becomes ``/labels/`` and the extension ``.txt``
    (``/`` always separates the parts of an fsspec URL)."""
    sep_ = "/" if fs.is_url(image_path) else os.sep
    sa, sb = f"{sep_}images{sep_}", f"{sep_}labels{sep_}"
    head, sep, tail = image_path.rpartition(sa)
    base = (head + sb + tail) if sep else image_path
    return os.path.splitext(base)[0] + ".txt"


def _resolve(files, base: str, p: str) -> str | None:
    """``p`` from a data.yaml or a list file, as a path: relative ones under ``base``. On a URL source an absolute
    local path names the machine the dataset was written on, not the URL copy: None."""
    if not files.url:
        return str(Path(p)) if os.path.isabs(p) else files.join(base, p)
    p = p.strip()
    if fs.is_url(p):
        return p
    if os.path.isabs(p) or p.startswith("/") or (len(p) > 1 and p[1] == ":"):
        return None
    return files.join(base, p)


def discover(src: str | os.PathLike) -> tuple[Path | str, dict[str, list[tuple[str, str]]], list[str], list[Finding]]:
    """Find the splits of a YOLO dataset: (root, {split: [(image_id, image_path)]}, class names, findings).

    ``src`` is a data.yaml (or a folder holding one), or a folder with ``images/`` (and ``labels/``) beside it. It
    may be an fsspec URL: the root is then a URL string and every image path a URL under it, and every file is
    reached through :mod:`datatools.core.fs`. There a data.yaml ``path`` that is a relative path or a URL is
    followed, but an absolute local path (what datatools and ultralytics write) names the place the dataset was
    written, not where the URL copy is, so the root is the data.yaml's folder; split entries and list-file lines
    that are absolute local paths are reported as missing splits / missing images rather than read from this
    machine's disk."""
    src = os.fspath(src)
    files = files_for(src)
    if not files.url:
        src = str(Path(src))  # as pathlib spells it: "ds//data.yaml/" is "ds/data.yaml", "" is "."
    findings: list[Finding] = []
    if not files.url and not os.path.exists(src):
        raise UsageError(f"{src}: no such file or directory")
    yaml_path = None
    if files.isfile(src):
        yaml_path = src
    else:
        for cand in ("data.yaml", "dataset.yaml", "data.yml"):
            if files.isfile(files.join(src, cand)):
                yaml_path = files.join(src, cand)
                break
    names: list[str] = []
    splits: dict[str, list[tuple[str, str]]] = {}
    if yaml_path is not None:
        data = _load_yaml(yaml_path)
        here = files.parent(yaml_path)
        root = _yaml_root(files, here, data.get("path"))
        names = _yaml_names(data, str(yaml_path))
        for split in ("train", "val", "test"):
            entry = data.get(split)
            if not entry:
                continue
            seen: dict[str, str] = {}
            for e in entry if isinstance(entry, list) else [entry]:
                p = _resolve(files, root, str(e))
                if p is not None and p.endswith(".txt") and files.isfile(p):
                    for line in files.cat(p).decode("utf-8-sig").splitlines():
                        if not line.strip():
                            continue
                        ip = _resolve(files, root, line.strip())
                        if ip is not None:
                            seen[ip] = ip
                        else:
                            findings.append(warn("missing-image", p, split,
                                                 f"{line.strip()} is a local path; not read for a URL source"))
                elif p is not None and files.isdir(p):
                    for full in list_images(p).values():
                        seen[full] = full
                else:
                    findings.append(warn("missing-split", str(yaml_path), split, f"{p or e} does not exist"))
            splits[split] = [(_image_id(full, root), full) for full in sorted(seen)]
    else:
        root = src.rstrip("/") if files.url else str(Path(src))
        img_root = files.join(root, "images")
        if not files.isdir(img_root):
            raise UsageError(f"{src}: expected a data.yaml or an images/ folder next to labels/")
        subdirs, loose = files.listdir(img_root)
        if subdirs:
            for d in subdirs:
                splits[d] = [(_image_id(full, root), full) for full in list_images(files.join(img_root, d)).values()]
            if loose:
                findings.append(warn("loose-images", img_root, "images",
                                     f"{len(loose)} image(s) directly in images/ next to split folders were not read"))
        else:
            splits[DEFAULT_SPLIT] = [(_image_id(full, root), full) for full in list_images(img_root).values()]
    if not names:
        ct = files.join(root, "classes.txt")
        if files.isfile(ct):
            names = [ln.strip() for ln in files.cat(ct).decode("utf-8-sig").splitlines() if ln.strip()]
    return (root if files.url else Path(root)), splits, names, findings


def _yaml_root(files, here: str, path) -> str:
    """The dataset root a data.yaml in folder ``here`` names with its ``path`` key (default: ``here``). Locally a
    relative ``path`` is taken under ``here`` when that exists, else as given (from the working folder), as
    ultralytics does; on a URL source a ``path`` that cannot be followed falls back to ``here``."""
    if not path:
        return here
    if not files.url:
        p = Path(str(path))
        if p.is_absolute():
            return str(p)
        return str(Path(here) / p) if (Path(here) / p).exists() else str(p)
    root = _resolve(files, here, str(path)) or here
    return root if root == here or files.isdir(root) else here


def _image_id(image_path: str, root: Path) -> str:
    """The image path below its split folder, without extension (``images/train/a/b.jpg`` -> ``a/b``)."""
    p = Path(image_path)
    parts = p.parts
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        rest = parts[i + 1:]
        if len(rest) > 1:
            rest = rest[1:]  # drop the split folder
        return Path(*rest).with_suffix("").as_posix()
    return p.stem


# --------------------------------------------------------------------------------------------------- reading

def parse_label_text(text: str, *, path: str, image_id: str, names: Sequence[str], width: int, height: int
                     ) -> tuple[list[Annotation], list[Finding], int]:
    """Parse one label file's text. Rows: 5 numbers (box), 6 (box + score), or an odd count >= 7 (polygon -> box)."""
    anns: list[Annotation] = []
    findings: list[Finding] = []
    rows = 0
    polygons = 0
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
            continue
        n = len(vals)
        if n not in (5, 6) and (n < 7 or n % 2 == 0):
            findings.append(err("bad-row", path, where, f"expected 5 values (class cx cy w h), found {n}; row dropped",
                                image_id=image_id, objects=1))
            continue
        cid = vals[0]
        if cid != int(cid) or not (0 <= int(cid) < len(names)):
            findings.append(err("unknown-class", path, where,
                                f"class id {parts[0]} is not in 0..{len(names) - 1}; row dropped", image_id=image_id,
                                objects=1))
            continue
        score = None
        if n >= 7:
            xs, ys = vals[1::2], vals[2::2]
            box = (min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height)
            polygons += 1
        else:
            box = yolo_to_xyxy(vals[1], vals[2], vals[3], vals[4], width, height)
            if n == 6:
                score = vals[5]
        anns.append(Annotation(names[int(cid)], box, score=score))
    if polygons:
        findings.append(info("polygon-to-box", path, "segments", f"{polygons} polygon row(s) read as their bounding box",
                             image_id=image_id))
    return anns, findings, rows


def _read_one(image_path: str, image_id: str, names: Sequence[str]) -> tuple[ImageRecord | None, list[Finding], int]:
    """One image and its label file: (record or None when the image cannot be sized, findings, rows met)."""
    findings: list[Finding] = []
    header = read_image_header(image_path)
    label_path = _label_path_for(image_path)
    try:
        text = read_small_file(label_path).decode("utf-8-sig")  # local or fsspec URL
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as e:
        return None, [err("unreadable-file", label_path, "", f"cannot read: {e}", image_id=image_id, image_dropped=True)], 0
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
                                          height=header.height)
        findings.extend(f2)
    if header.orientation in (5, 6, 7, 8):
        findings.append(info("exif-rotation", image_path, "EXIF Orientation",
                             f"orientation {header.orientation}: boxes are relative to the rotated image "
                             f"({header.width}x{header.height})", image_id=image_id))
    rec = ImageRecord(image_id=image_id, file_name=os.path.basename(image_path), width=header.width,
                      height=header.height, annotations=tuple(anns), image_path=image_path, source=label_path,
                      depth=_depth(header.mode))
    return rec, findings, rows


def _depth(mode: str) -> int | None:
    return {"L": 1, "P": 3, "RGB": 3, "RGBA": 4, "I;16": 1, "I": 1, "LA": 2, "CMYK": 4}.get(mode)


def read_chunk(items: Sequence[tuple[str, str, tuple[str, ...]]], *, names: tuple[str, ...]
               ) -> tuple[list[ImageRecord], list[Finding], int]:
    """Worker: read a chunk of ``(image_id, image path, splits)`` (label file + image header each): (records,
    findings, rows met), in the chunk's order. Module-level so that worker processes and Ray tasks can run it."""
    records: list[ImageRecord] = []
    findings: list[Finding] = []
    objects = 0
    for iid, path, in_splits in items:
        rec, fnd, n = _read_one(path, iid, names)
        findings.extend(fnd)
        objects += n
        if rec is not None:
            records.append(replace(rec, splits=in_splits))
    return records, findings, objects


def read(src: str | os.PathLike, *, classes: Sequence[str] | None = None, workers: int | None = None,
         progress: ProgressFn | None = None, on_total=None, mapper: Mapper | None = None, **_ignored) -> Dataset:
    """Read a YOLO dataset from a data.yaml (or a folder with images/ and labels/).

    Class names come from data.yaml, else classes.txt; ``classes`` overrides both. The per-image reads (label file +
    image header) run as :func:`read_chunk` on ``mapper`` (default: local processes, ``workers`` of them).
    """
    mapper = mapper or Mapper(workers=workers)
    root, splits, names_t, findings, items = plan_reads(src, classes)
    if on_total:
        on_total(len(items))
    chunks = mapper.chunks(items)
    records: list[ImageRecord] = []
    objects_read = 0
    for recs, fnd, n in mapper(partial(read_chunk, names=names_t), chunks, progress=progress):
        records.extend(recs)
        findings.extend(fnd)
        objects_read += n
    findings.extend(_orphan_labels(splits, {path for _, path, _ in items}))
    return Dataset(images=tuple(records), classes=names_t, findings=tuple(findings), objects_read=objects_read,
                   root=str(root), format=NAME, meta={"splits": list(splits)})


def plan_reads(src: str | os.PathLike, classes: Sequence[str] | None = None
               ) -> tuple[Path | str, dict[str, list[tuple[str, str]]], tuple[str, ...], list[Finding],
                          list[tuple[str, str, tuple[str, ...]]]]:
    """What is known before any label file is read: ``(root, splits, class names, findings, items)``. ``items`` are
    ``(image_id, image path, splits)`` sorted by id; an id met twice with another path is a finding and read once.
    The YOLO reader starts here."""
    root, splits, names, findings = discover(src)
    if classes:
        names = list(classes)
    if not names:
        raise UsageError(f"{src}: no class names: add names to data.yaml, a classes.txt, or pass --classes")
    order: list[str] = []
    where: dict[str, tuple[str, list[str]]] = {}
    for split, items in splits.items():
        for iid, path in items:
            if iid in where:
                if where[iid][0] != path:
                    findings.append(warn("duplicate-file-name", path, "image",
                                         f"image id {iid!r} also names {where[iid][0]}; only the first is read",
                                         image_id=iid))
                    continue
                where[iid][1].append(split)
            else:
                where[iid] = (path, [split])
                order.append(iid)
    order.sort()
    return root, splits, tuple(names), findings, [(i, where[i][0], tuple(where[i][1])) for i in order]


def _orphan_labels(splits: dict[str, list[tuple[str, str]]], image_paths: set[str]) -> list[Finding]:
    """Label files with no image: ultralytics ignores them silently; we report them."""
    label_dirs = {os.path.dirname(_label_path_for(p)) for p in image_paths}
    expected = {_label_path_for(p) for p in image_paths}
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
    """The label file for one record. Requires a known image size; boxes should already be clipped."""
    w, h = record.width, record.height
    rows = []
    for a in record.annotations:
        cx, cy, bw, bh = xyxy_to_yolo(a.box, w, h)
        if a.score is None:
            rows.append(f"{class_ids[a.label]} {fmt_numbers((cx, cy, bw, bh), precision)}")
        else:
            rows.append(f"{class_ids[a.label]} {fmt_numbers((cx, cy, bw, bh, a.score), precision)}")
    return "".join(r + "\n" for r in rows)


def data_yaml(out: Path, splits: Sequence[str], names: Sequence[str]) -> str:
    """An ultralytics data.yaml. ``path`` is absolute because ultralytics resolves a relative one against the CWD."""
    q = json.dumps  # a JSON string is a valid YAML double-quoted scalar
    lines = ["# written by datatools", f"path: {q(str(out.resolve()))}"]
    train = "train" if "train" in splits else (splits[0] if splits else DEFAULT_SPLIT)
    val = "val" if "val" in splits else train
    lines.append(f"train: {q('images/' + train)}")
    if val == train and "val" not in splits:
        lines.append("# no val split: val points at the training images, since ultralytics needs a val entry; "
                     "validation scores on them measure training data (datatools split --val makes a val split)")
    lines.append(f"val: {q('images/' + val)}")
    if "test" in splits:
        lines.append(f"test: {q('images/test')}")
    extra = [s for s in splits if s not in ("train", "val", "test")]
    for s in extra:
        if s != train:
            lines.append(f"# also written: images/{s}")
    lines.append(f"nc: {len(names)}")
    lines.append("names:")
    lines += [f"  {i}: {q(n)}" for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"


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
    rels: list[list[str]] = []
    pictures: list[tuple[str, str]] = []
    for rec in ds.images:
        if not rec.has_size:
            raise ValueError(f"{rec.source}: YOLO needs the image size; run ops.convert.prepare(require_size=True) first")
        ext = os.path.splitext(rec.image_path or rec.file_name or "")[1] or ".jpg"
        rel = safe_relpath(rec.image_id)
        mine = []
        for split in rec.splits or (DEFAULT_SPLIT,):
            split = safe_splits.get(split) or safe_splits.setdefault(split, safe_relpath(split))
            splits_seen.setdefault(split, None)
            mine.append(f"{split}/{rel}")
            if rec.image_path and images_mode is not ImagesMode.NONE:
                pictures.append((rec.image_path, f"{split}/{rel}{ext}"))
        rels.append(mine)
        result.objects_written += len(rec.annotations)
        result.images_written += 1
    splits = sorted(splits_seen, key=lambda s: (("train", "val", "test").index(s) if s in ("train", "val", "test") else 3, s))
    class_ids = {n: i for i, n in enumerate(ds.classes)}
    with staged_dir(out / "labels") as stage:
        write_staged([(label_text(rec, class_ids, precision=precision).encode("utf-8"),
                       [os.path.join(stage, r + ".txt") for r in mine]) for rec, mine in zip(ds.images, rels)],
                     stage=stage, mapper=mapper, progress=progress)
    if pictures:
        with staged_dir(out / "images") as stage:
            place_images([(src, os.path.join(stage, r)) for src, r in pictures], images_mode, stage=stage,
                         mapper=mapper)
    items = [(str(out / "classes.txt"), "".join(n + "\n" for n in ds.classes)),
             (str(out / "data.yaml"), data_yaml(out, splits, ds.classes))]
    write_many(items)
    labels = os.path.join(str(out), "labels", "")
    result.files = [labels + r + ".txt" for mine in rels for r in mine] + [p for p, _ in items]
    return result
