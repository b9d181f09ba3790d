"""Helpers shared by the format modules: finding constructors, image lookup and the write result."""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from datatools.core import fs
from datatools.core.images import list_images, read_image_header
from datatools.core.model import Finding, ImageRecord, Severity
from datatools.core.parallel import Mapper

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


class ImageIndex:
    """Finds the image for an annotation inside one image folder, listing the folder once.

    Lookup order: the annotation's own file name (when it is a safe relative path), then the same stem with any image
    extension, then the annotation file's stem. Unsafe names (``..``, absolute paths) are never followed.
    """

    def __init__(self, folder: str | os.PathLike | None) -> None:
        if folder and fs.is_url(os.fspath(folder)):  # an fsspec URL: kept as a string
            self.folder = os.fspath(folder)  # type: ignore[assignment]
            self.exists = fs.isdir(self.folder)
        else:
            self.folder = Path(folder) if folder else None
            self.exists = bool(self.folder and self.folder.is_dir())
        self.by_rel = list_images(self.folder) if self.exists else {}
        self.by_stem: dict[str, list[str]] = {}
        self.by_base_stem: dict[str, list[str]] = {}
        for rel in self.by_rel:
            stem = posixpath.splitext(rel)[0]
            self.by_stem.setdefault(stem, []).append(rel)
            self.by_base_stem.setdefault(posixpath.basename(stem), []).append(rel)

    def find(self, file_name: str, image_id: str) -> tuple[str | None, list[Finding], str]:
        """Return (absolute path or None, findings, resolved relative name)."""
        notes: list[Finding] = []
        name = (file_name or "").replace("\\", "/").strip()
        unsafe = name.startswith("/") or ".." in name.split("/") or (len(name) > 1 and name[1] == ":")
        if unsafe:
            notes.append(warn("unsafe-filename", "", "filename",
                              f"file name {file_name!r} points outside the image folder; it is ignored",
                              image_id=image_id))
            name = ""
        if name and name in self.by_rel:
            return self.by_rel[name], notes, name
        candidates: list[str] = []
        if name:
            candidates = self.by_stem.get(posixpath.splitext(name)[0], []) or self.by_stem.get(name, [])
            if not candidates:
                candidates = self.by_base_stem.get(posixpath.basename(posixpath.splitext(name)[0]), [])
        if not candidates:
            candidates = self.by_stem.get(image_id, []) or self.by_base_stem.get(posixpath.basename(image_id), [])
        if candidates:
            rel = candidates[0]
            if name and name != rel:
                notes.append(warn("filename-mismatch", "", "filename",
                                  f"file name {file_name!r} does not match an image; using {rel!r}", image_id=image_id))
            return self.by_rel[rel], notes, rel
        return None, notes, name


def fill_sizes_from_headers(records: list[ImageRecord], findings: list[Finding], *, workers: int | None = None,
                            mapper: Mapper | None = None) -> list[ImageRecord]:
    """Give records without a usable size the size from their image header (never the pixels). The header reads
    run on ``mapper`` (default: local processes, ``workers`` of them)."""
    from dataclasses import replace

    todo = [i for i, r in enumerate(records) if r.image_path and not r.has_size]
    if not todo:
        return records
    paths = [records[i].image_path for i in todo]
    headers = (mapper or Mapper(workers=workers)).items(read_image_header, paths)
    out = list(records)
    for i, h in zip(todo, headers):
        r = records[i]
        if h.error:
            findings.append(warn("image-unreadable", r.image_path or "", "image",
                                 f"cannot read the image header to get its size: {h.error}", image_id=r.image_id))
            continue
        out[i] = replace(r, width=h.width, height=h.height)
        findings.append(info("size-from-image", r.source, "size",
                             f"size taken from the image header: {h.width}x{h.height}", image_id=r.image_id))
    return out
