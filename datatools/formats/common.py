"""Helpers shared by the format modules: finding constructors, image lookup and the write result."""
from __future__ import annotations

import os
import posixpath
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from datatools.core import fs
from datatools.core.atomic import ImagesMode
from datatools.core.boxes import fmt_number
from datatools.core.images import ImageHeader, list_images, read_image_header
from datatools.core.model import Finding, ImageRecord, Severity
from datatools.core.parallel import Mapper
from datatools.core.paths import IMAGE_EXTENSIONS, is_absolute_name, name_here, nfc, safe_relpath

DEFAULT_SPLIT = "all"


def err(code: str, path: str, fld: str, message: str, *, image_id: str = "", objects: int = 0,
        image_dropped: bool = False, box: tuple[float, float, float, float] | None = None) -> Finding:
    return Finding(code, Severity.ERROR, path, fld, message, image_id, objects, image_dropped, box)


def warn(code: str, path: str, fld: str, message: str, *, image_id: str = "", objects: int = 0,
         box: tuple[float, float, float, float] | None = None) -> Finding:
    return Finding(code, Severity.WARNING, path, fld, message, image_id, objects, box=box)


def info(code: str, path: str, fld: str, message: str, *, image_id: str = "", objects: int = 0) -> Finding:
    return Finding(code, Severity.INFO, path, fld, message, image_id, objects)


@dataclass
class WriteResult:
    """What a writer did: files written, objects written, and anything it had to drop (with findings)."""

    out: str
    files: list[str] = field(default_factory=list)
    images_written: int = 0
    objects_written: int = 0
    findings: list[Finding] = field(default_factory=list)

    def wrote_all(self, ds, progress=None) -> WriteResult:
        """Count every image and object of ``ds`` as written and tell ``progress`` when given (a writer that drops
        nothing ends with this)."""
        self.images_written = len(ds.images)
        self.objects_written = ds.num_objects
        if progress:
            progress(len(ds.images))
        return self


class ImageIndex:
    """Finds the image for an annotation inside one image folder, listing the folder once.

    The annotation's own id comes first, as torchvision's ``VOCDetection`` and ultralytics take the image from it: an
    image whose path without extension is the id (``Annotations/a_aug2.xml`` -> ``a_aug2.jpg``), preferring the
    extension the file name gives. Only when there is none, the file name the annotation writes (the exact relative
    path, then its stem), then the same two by base name (an id or a name in another folder). Augmented copies keep
    their original's ``<filename>``: pairing by it first gave one image's labels to another image's pixels. When the
    name written and the annotation's own name disagree (the name is another image, or none; or only the name found
    an image), that is a ``filename-mismatch`` warning, whichever image is used. A name that is the same image
    without its folder or extension is no disagreement. Unsafe names (``..``, absolute paths) are never followed.
    """

    def __init__(self, folder: str | os.PathLike | None) -> None:
        if folder and fs.is_url(os.fspath(folder)):  # an fsspec URL: kept as a string
            self.folder = os.fspath(folder)  # type: ignore[assignment]
        else:
            self.folder = Path(folder) if folder else None
        self.exists = bool(folder) and fs.files_for(os.fspath(folder)).isdir(os.fspath(folder))
        self.by_rel = list_images(self.folder, hidden=True) if self.exists else {}
        # Keys in NFC: macOS names files decomposed (e + U+0301), annotation tools write them composed; one name
        self.canon: dict[str, str] = {}
        self.by_stem: dict[str, list[str]] = {}
        self.by_base_stem: dict[str, list[str]] = {}
        for rel in self.by_rel:
            key = nfc(rel)
            self.canon.setdefault(key, rel)
            stem = posixpath.splitext(key)[0]
            self.by_stem.setdefault(stem, []).append(rel)
            self.by_base_stem.setdefault(posixpath.basename(stem), []).append(rel)

    def _by_name(self, name: str) -> list[str]:
        """The images the written file name denotes, best first (empty for no name or no such image)."""
        if not name:
            return []
        if name in self.by_rel:  # as written first: on Linux 'café.jpg' composed and decomposed are two files
            return [name]
        name = nfc(name)
        if name in self.canon:
            return [self.canon[name]]
        return self.by_stem.get(posixpath.splitext(name)[0], []) or self.by_stem.get(name, [])

    def find(self, file_name: str, image_id: str, *, id_names_image: bool = True
             ) -> tuple[str | None, list[Finding], str]:
        """Return (absolute path or None, findings, resolved relative name). ``id_names_image=False``: the id is not
        a file's own name (a COCO id, made from the file name), so the written name alone pairs, without a
        ``filename-mismatch``. A name is taken as written, then without the blanks around it (an XML text
        ``<filename> a.jpg </filename>``); letters composed or decomposed are one name."""
        notes: list[Finding] = []
        name = (file_name or "").replace("\\", "/")
        if name != name.strip() and not self._by_name(name):
            name = name.strip()
        if is_absolute_name(name) or ".." in name.split("/"):
            name = name_here(name) if is_absolute_name(name) else ""  # ../a.jpg is not here; C:/al/a.jpg's a.jpg may be
            notes.append(warn("unsafe-filename", "", "filename",
                              f"file name {file_name!r} points outside the image folder; "
                              + (f"only its base name {name!r} is looked up there" if name else "it is ignored"),
                              image_id=image_id))
        named = self._by_name(name)
        own = self.by_stem.get(nfc(image_id), []) if id_names_image else []
        base = posixpath.basename(posixpath.splitext(name)[0])
        if not own and not named:  # neither id nor name as written: the same by base name, id first
            own = self.by_base_stem.get(nfc(posixpath.basename(image_id)), []) if id_names_image else []
            named = self.by_base_stem.get(nfc(base), []) if name else []
            if len(own or named) > 1:  # cityA/0001.jpg and cityB/0001.jpg: the first would be a guess
                notes.append(warn("filename-mismatch", "", "filename", f"{len(own or named)} images answer to the "
                                  f"base name of {file_name or image_id!r} ({', '.join((own or named)[:2])}, ...); "
                                  "none is used", image_id=image_id))
                return None, notes, name
        candidates = own or named
        if not candidates:
            return None, notes, name
        # Of the id's images (a.jpg and a.png side by side) the one the file name names.
        rel = next((r for r in candidates if r in named), candidates[0])
        if name and ((named and rel not in named) or not _same_image(name, rel)):
            if named and rel not in named:  # the name written is another image: the copy of an augmented file
                message = (f"file name {file_name!r} is the image {named[0]!r}; the annotation's own image {rel!r} "
                           "is used")
            else:
                message = f"file name {file_name!r} does not match an image; using {rel!r}"
            notes.append(warn("filename-mismatch", "", "filename", message, image_id=image_id))
        elif id_names_image and not own and nfc(posixpath.basename(image_id)) != nfc(base):  # paired by the name
            notes.append(warn("filename-mismatch", "", "filename",
                              f"no image is named after the annotation ({image_id!r}); paired by its file name "
                              f"{file_name!r}", image_id=image_id))
        return self.by_rel[rel], notes, rel

    def locate(self, name: str, image_id: str, *, path: str, fld: str, shown: str | None = None,
               id_names_image: bool = True, or_else: Callable[[], str | None] | None = None
               ) -> tuple[str | None, list[Finding], str]:
        """How every reader pairs an annotation with its image: :meth:`find`, its notes given the annotation file's
        ``path``, and no image (nor one from ``or_else``, a reader's own last place to look) a ``missing-image``
        error at ``fld`` that names ``shown`` (default ``name``). Returns (image path or None, findings, relative
        name). A folder that does not exist finds nothing and says nothing here: the reader reports it once
        (:func:`no_image_dir`, :func:`fold_no_images`)."""
        image_path, notes, rel = None, [], name
        if self.exists:
            image_path, notes, rel = self.find(name, image_id, id_names_image=id_names_image)
        found = [replace(f, path=path) for f in notes]
        if image_path is None and or_else is not None:
            image_path = or_else()
        if image_path is None and self.exists:
            what = name if shown is None else shown
            found.append(err("missing-image", path, fld, f"no image {what!r} in {self.folder}{self._why_not(name)}",
                             image_id=image_id))
        return image_path, found, rel

    def _why_not(self, name: str) -> str:
        """Why a name that is a file in the folder is no image: a link to nothing, or no image extension."""
        if fs.is_url(os.fspath(self.folder)) or not name or is_absolute_name(name) or ".." in name.split("/"):
            return ""
        p = os.path.join(self.folder, name.replace("\\", "/"))
        if os.path.islink(p) and not os.path.exists(p):
            return f" ({name} is a link to {os.readlink(p)}, which is not there)"
        if os.path.isfile(p):
            return f" ({name} is a file there, but not named as an image: {', '.join(IMAGE_EXTENSIONS)})"
        return ""


def split_not_kept(records: Sequence[ImageRecord], why: str) -> list[Finding]:
    """The finding of a writer that keeps one split per image (``why``): the written ``records`` in several splits
    are in the first one only."""
    several = [r for r in records if len(r.splits) > 1]
    if not several:
        return []
    return [warn("split-not-kept", several[0].source, "splits",
                 f"{len(several)} image(s) in several splits (e.g. {several[0].image_id!r} in "
                 f"{', '.join(several[0].splits)}): written in the first one only ({why})",
                 image_id=several[0].image_id)]


def output_image_name(rec: ImageRecord) -> str:
    """The name every writer gives an image it places: the record's id (made safe: never text from inside an
    annotation) plus the image's extension, ``.jpg`` for a file without one (VOC, YOLO and their tools find images by
    extension)."""
    return safe_relpath(rec.image_id) + (os.path.splitext(rec.image_path or rec.file_name or "")[1] or ".jpg")


def placed_names(records: Sequence[ImageRecord], images_mode: ImagesMode, *, under: str = ""
                 ) -> tuple[list[str | None], list[tuple[str, str]]]:
    """Which images a writer places in its image folder, and as what: per record its :func:`output_image_name`, or
    None when it is not placed (``--images-mode none``, or no image file: the caller names the source's image
    then); and the ``(source, destination)`` pairs for ``place_images`` (destinations under ``under/``, a split's
    folder, when given)."""
    names: list[str | None] = []
    pictures: list[tuple[str, str]] = []
    for rec in records:
        if images_mode is ImagesMode.NONE or not rec.image_path:
            names.append(None)
            continue
        name = output_image_name(rec)
        names.append(name)
        pictures.append((rec.image_path, f"{under}/{name}" if under else name))
    return names, pictures


def json_num(v: float, precision: int) -> int | float:
    """A coordinate as a JSON number at ``precision`` places: the number :func:`~datatools.core.boxes.fmt_number`
    writes, a whole one as an int (``12``, not ``12.0``). The JSON writers (COCO, LabelMe, Label Studio) write every
    number through here, so the same box is the same text in each."""
    f = float(fmt_number(v, precision))
    return int(f) if f == int(f) else f


def image_folder(base: str, images: str | os.PathLike | None) -> str:
    """A reader's image folder: ``images`` (``--images``) when given, else ``base``'s ``images/``, else ``base``."""
    if images:
        return os.fspath(images)
    files = fs.files_for(base)
    default = files.join(base, "images")
    return default if files.isdir(default) else base


def existing_source(src: str | os.PathLike) -> tuple[str, Any]:
    """``(src as a string, its file access)`` for a reader's SRC (a local path or an fsspec URL), or
    :class:`~datatools.core.errors.UsageError` when nothing is there."""
    from datatools.core.errors import UsageError

    src = os.fspath(src)
    files = fs.files_for(src)
    if not files.url:
        src = str(Path(src))
    if not (files.isfile(src) or files.isdir(src)):
        raise UsageError(f"{src}: no such file or directory")
    return src, files


# Annotation files over this size are refused unread: a 38 MiB VOC file took 4.2 s and 826 MiB per worker, and a real
# one is a few KB.
MAX_ANNOTATION_BYTES = 16 * 2**20


def read_annotation_file(path: str, image_id: str, *, max_bytes: int = MAX_ANNOTATION_BYTES, missing_ok: bool = False,
                         raise_with: str = "", text: bool = False) -> tuple[Any, Finding | None]:
    """One annotation file's bytes (local or fsspec URL), or None and the finding that says why it is unreadable or
    refused: larger than ``max_bytes`` (``file-too-large``; ``raise_with`` names the option that raises it), or not a
    regular file (a FIFO or a device would block the read forever). Every reader reads its per-image files through
    here (VOC, CVAT, LabelMe, YOLO labels and predictions), so one bad file is one finding whatever the format.
    ``missing_ok``: a missing file is ``(None, None)``, for a format where that means no objects (a YOLO image
    without labels). ``text``: the file decoded as UTF-8 (a BOM allowed); other bytes make it unreadable."""
    try:
        data = fs.read_small_file(path, limit=max_bytes)
        return (data.decode("utf-8-sig") if text else data), None
    except UnicodeDecodeError as e:
        return None, err("unreadable-file", path, "", f"cannot read: {e}", image_id=image_id, image_dropped=True)
    except fs.FileTooLarge as e:
        hint = f" (raise {raise_with} to read it)" if raise_with else ""
        return None, err("file-too-large", path, "", f"the file is {e.size:,} bytes, over the limit of {max_bytes:,} "
                         f"for an annotation file; refused unread{hint}", image_id=image_id, image_dropped=True)
    except fs.NotRegularFile:
        return None, err("unreadable-file", path, "", "not a regular file", image_id=image_id, image_dropped=True)
    except OSError as e:
        if missing_ok and isinstance(e, FileNotFoundError):
            return None, None
        return None, err("unreadable-file", path, "", f"cannot read: {e.strerror or e}", image_id=image_id,
                         image_dropped=True)


# A split's role by its name as datasets spell it: train2017/val2017 (COCO), valid (Roboflow), validation (Open
# Images), trainval (VOC), test-dev.
_ROLE = re.compile(r"^(train|training|trainval|val|valid|validation|test|testing|test-?dev)(?:[-_]?\d+)?$", re.I)


def split_role(name: str) -> str | None:
    """The data.yaml key (``train``, ``val`` or ``test``) that a split of this name plays, or None for another name:
    ``train2017``, ``training`` and VOC's ``trainval`` train; ``val2017``, ``valid`` and ``validation`` validate."""
    m = _ROLE.match(name)
    if not m:
        return None
    word = m.group(1).lower()
    return "train" if word.startswith("train") else "val" if word.startswith("val") else "test"


def role_folders(src: str, holds: Callable[[str], bool]) -> dict[str, str]:
    """``{name: path}`` of the folders of ``src`` named after a split (``train``, ``valid``, ``test``: see
    :func:`split_role`) that ``holds`` a dataset: an export's folder per split (Roboflow's VOC and YOLO Darknet)."""
    files = fs.files_for(src)
    subs = files.listdir(src)[0] if files.isdir(src) else []
    return {d: files.join(src, d) for d in subs if split_role(d) and holds(files.join(src, d))}


def split_of_role(splits: Sequence[str], role: str) -> str | None:
    """The split of ``splits`` that plays ``role`` (``train``, ``val`` or ``test``, see :func:`split_role`): the one
    named ``role``, else the first other one of that role, VOC's ``trainval`` last; None when no split plays it."""
    named = [s for s in splits if split_role(s) == role]
    return role if role in named else next((s for s in named if s != "trainval"), named[0] if named else None)


def split_named(name: str | None, splits) -> str | None:
    """The split of ``splits`` that ``name`` asks for: itself where there is one of that name; for a role name
    (``train``, ``val``, ``test``, and ``valid`` or ``validation`` for val, as a Roboflow data.yaml names its valid/
    folder) the split that plays the role (``train2017``, ``valid``, ``val``: see :func:`split_role`); else None: a
    name with a number (``val3``) or a union (``trainval``) is that split or none. ``train``, ``evaluate --split``
    and ``predict --split`` pick splits by it."""
    if not name or name in splits:
        return name if name else None
    role = {"valid": "val", "validation": "val"}.get(name, name)
    return split_of_role(sorted(splits), role) if role in ("train", "val", "test") else None


def id_in_split(iid: str, split: str | None, taken) -> str | None:
    """The id of an image whose name ``iid`` an image of another split already has: ``<split>/<iid>``, as names are
    unique within a split only (a CVAT project's subsets, Open Images' split CSVs, YOLO's split folders); None when
    ``split`` cannot prefix an id or that id is ``taken`` too (the caller then names a true duplicate)."""
    if not split or "/" in split or split in (".", ".."):
        return None
    other = f"{split}/{iid}"
    return None if other in taken else other


def name_id(name: str, *, fallback: str, key: object = None, taken=()) -> str:
    """The image id a reader makes from a file name (COCO's ``file_name``, CVAT's ``@name``, a Label Studio image):
    the path (:func:`~datatools.core.paths.name_here`: of an absolute one, the base name) without extension and
    without empty, ``.`` and ``..`` parts, else ``fallback`` (``/`` or ``../`` left an empty id). Call it again with
    ``key`` (the entry's own id) and ``taken`` once the id is known to be another image's: ``__<key>``, then
    ``__<key>_2``, ... until free. The caller notes the rename."""
    iid = posixpath.splitext(name_here(name))[0]
    iid = "/".join(p for p in iid.split("/") if p not in ("", ".", "..")) or fallback
    new, n = iid, 1
    while new in taken:
        new, n = f"{iid}__{key}" + (f"_{n}" if n > 1 else ""), n + 1
    return new


def _same_image(name: str, rel: str) -> bool:
    """Whether a written file name is ``rel`` up to its folder or a missing extension (``a`` or ``JPEGImages/a.jpg``
    for ``a.jpg``): another way to write the same image, not a different one."""
    base, rel_base = nfc(posixpath.basename(name)).strip(), nfc(posixpath.basename(rel)).strip()
    return base == rel_base or base == posixpath.splitext(rel_base)[0].strip()


def no_image_dir(path: str, fld: str, message: str, *, given: bool) -> Finding:
    """The one ``missing-image-dir`` finding of a reader whose annotations have no image folder: a warning for a
    dataset read without its images (annotations alone are still read, converted and checked), an error when the
    ``--images`` folder the user gave does not exist. Every reader reports it by this rule, so one dataset gets one
    verdict from ``check`` whatever its format."""
    return (err if given else warn)("missing-image-dir", path, fld, message)


def fold_no_images(records: Sequence[ImageRecord], findings: list[Finding], folder: str, *, given: bool) -> None:
    """An annotations-only dataset (not one record found its image, and no ``--images`` was given) is one
    ``missing-image-dir`` warning, in place of a ``missing-image`` error per image (which dropped nothing): the
    annotations are read, checked and converted, as a VOC root without JPEGImages/ always was. Called by the readers
    whose image folder defaults to the annotations' own (a folder of XMLs, LabelMe, CVAT) and by Open Images (its
    images.meta sizes them), so that one dataset gets one verdict from ``check`` whatever its format
    (:func:`no_image_dir`)."""
    missing = [f for f in findings if f.code == "missing-image"]
    if given or not missing or any(r.image_path for r in records) or any(f.image_dropped or f.objects
                                                                          for f in missing):
        return
    findings[:] = [f for f in findings if f.code != "missing-image"]
    findings.append(no_image_dir(folder, "images", f"none of the {len(missing)} image(s) is in {folder}: images are "
                                 "neither checked nor copied; pass --images DIR", given=False))


def fill_sizes_from_headers(records: list[ImageRecord], findings: list[Finding], *, workers: int | None = None,
                            mapper: Mapper | None = None) -> list[ImageRecord]:
    """The image is the size: every record whose image was found gets the size of its header, after EXIF
    orientation (the header only, never the pixels). Call it once per read, after the images are paired, so that
    the boxes are judged against the real image.

    A record without a usable size gets the header's with a ``size-from-image`` note; one whose size disagrees gets
    the header's with a ``size-mismatch`` warning (augmented copies keep their original's ``<size>``: trusting it
    dropped valid boxes as outside the image). Without an image, or with an unreadable one, the annotation's size
    stays (an unreadable image is an ``image-unreadable`` warning: ``check`` reports it as an error).
    The header reads run on ``mapper`` (default: local processes, ``workers`` of them)."""
    todo = [i for i, r in enumerate(records) if r.image_path]
    if not todo:
        return records
    paths = [records[i].image_path for i in todo]
    headers = read_headers(paths, mapper=mapper or Mapper(workers=workers))  # type: ignore[arg-type]
    out = list(records)
    for i, h in zip(todo, headers):
        r = records[i]
        if h.error:  # said here even with a size: a conversion places the file (check makes it an error)
            why = " to get its size" if not r.has_size else "; the annotation's size is used, the file placed as it is"
            findings.append(warn("image-unreadable", r.image_path or "", "image",
                                 f"cannot read the image header ({h.error}){why}", image_id=r.image_id))
            continue
        depth = r.depth or h.depth  # VOC output's <depth>: 1 for a grayscale picture, as from a YOLO source
        if not r.has_size:
            out[i] = replace(r, width=h.width, height=h.height, depth=depth)
            findings.append(info("size-from-image", r.source, "size",
                                 f"size taken from the image header: {h.width}x{h.height}", image_id=r.image_id))
        elif (r.width, r.height) != (h.width, h.height):
            hint = ""
            if (r.width, r.height) == (h.raw_width, h.raw_height):
                hint = " (the annotation has the stored size, before EXIF rotation)"
            out[i] = replace(r, width=h.width, height=h.height, depth=depth)
            findings.append(warn("size-mismatch", r.source, "size",
                                 f"annotation says {r.width}x{r.height}, image is {h.width}x{h.height}{hint}; "
                                 "the image's size is used", image_id=r.image_id))
        elif depth not in (r.depth, 3):  # only a depth VOC's default (3) does not say: not every record rebuilt
            out[i] = replace(r, depth=depth)
    return out


# The headers read inside a keep_headers() block, by path (None outside one): see keep_headers.
_KEPT_HEADERS: ContextVar[dict[str, ImageHeader] | None] = ContextVar("datatools_kept_headers", default=None)


@contextmanager
def keep_headers() -> Iterator[dict[str, ImageHeader]]:
    """Within the block, :func:`read_headers` keeps every header it reads, by path, and reuses it: a command that
    reads a dataset (the reader takes the sizes from the headers) and then checks its images (``check``'s EXIF and
    unreadable-image checks) opens each image once. Use it around one command's work only: a header kept longer
    would hide an image changed since. A block inside another shares the outer one's headers."""
    kept = _KEPT_HEADERS.get()
    if kept is not None:
        yield kept
        return
    token = _KEPT_HEADERS.set({})
    try:
        yield _KEPT_HEADERS.get()  # type: ignore[misc]
    finally:
        _KEPT_HEADERS.reset(token)


def read_headers(paths: Sequence[str], *, mapper: Mapper, progress=None) -> list[ImageHeader]:
    """:func:`~datatools.core.images.read_image_header` of each path, in order, on ``mapper``: how the readers and
    ``check`` read image headers. A path met twice (two annotations of one image) is read once; inside
    :func:`keep_headers` a header read before is reused too, and each new one is kept. ``progress`` counts every
    path, the reused ones at once."""
    kept = _KEPT_HEADERS.get()
    if kept is None:
        kept = {}
    fresh = [p for p in dict.fromkeys(paths) if p not in kept]
    if progress and len(paths) > len(fresh):
        progress(len(paths) - len(fresh))
    kept.update(zip(fresh, mapper.items(read_image_header, fresh, progress=progress)))
    return [kept[p] for p in paths]
