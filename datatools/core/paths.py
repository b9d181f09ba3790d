"""Output paths that cannot escape their root, and the guards that keep an output from replacing its input.

Use :func:`safe_join` (or :func:`safe_relpath`) on every name from the data (an image id, a split name) that becomes
part of an output path, and :func:`check_output_dir` / :func:`refuse_replacing_inputs` before a writer starts.
"""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Iterable

from datatools.core import fs
from datatools.core.errors import UsageError
from datatools.core.staging import refuse_foreign

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")  # compared in lower case


def is_absolute_name(text: str) -> bool:
    """Whether a name from the data is an absolute path on any system: POSIX (``/x``), Windows (``C:\\x``, ``C:x``)
    or UNC (``\\\\host\\x``), read with ``\\`` as ``/`` whatever the system reading it. Names written on another
    machine are judged by this rule, never by ``os.path.isabs`` (which knows only its own system's form)."""
    name = text.replace("\\", "/")
    return name.startswith("/") or (len(name) > 1 and name[1] == ":")


def name_here(text: str) -> str:
    """A file name from the data, ``\\`` read as ``/``; of an absolute one (``C:\\Users\\al\\a.jpg``,
    ``/home/al/a.jpg``: a path on the machine that wrote it) its base name, which is what can be looked up here."""
    name = text.replace("\\", "/")
    return name.rsplit("/", 1)[-1] if is_absolute_name(name) else name


def nfc(name: str) -> str:
    """``name`` in Unicode's composed form (NFC): macOS writes ``cafe\u0301.jpg`` where an annotation says
    ``caf\u00e9.jpg``, and both name one file there. Names are looked up by this key."""
    return name if name.isascii() else unicodedata.normalize("NFC", name)


def safe_relpath(relative: str) -> str:
    """Check that ``relative`` stays inside whatever folder it is joined to (no ``..``, no absolute path, no drive)
    and return it with ``/`` separators. Use it on every name that becomes part of an output path."""
    rel = relative.replace("\\", "/")
    if is_absolute_name(rel):
        raise UsageError(f"refusing to write outside the output directory: {relative!r}")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UsageError(f"refusing to write outside the output directory: {relative!r}")
    return "/".join(parts)


def safe_join(root: str | os.PathLike, relative: str) -> Path:
    """Join ``relative`` under ``root`` and refuse anything that would land outside it (``..``, absolute paths)."""
    return Path(root).joinpath(*safe_relpath(relative).split("/"))


def refuse_replacing_inputs(out: str | os.PathLike, owned: Iterable[str], inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse to write ``out`` when something the writer replaces whole (``OUT/<name>`` for each of ``owned``: a
    folder it builds as a staged folder and swaps in, or a file it rewrites) is an input or holds one.

    ``convert VOC/Annotations VOC --to voc`` would otherwise swap the input's own ``Annotations`` folder for the
    converted copy, and every file that was not converted (a broken XML, a dropped image) would be gone. ``inputs``
    are the source path, its image folder and, once read, the folders of every annotation and image file. Inputs
    behind a URL cannot be replaced by a local output and are skipped. A folder there that datatools did not write
    is refused too, before any work (:func:`~datatools.core.staging.refuse_foreign`)."""
    out_p = Path(out).resolve()
    targets = [(out_p / name).resolve() for name in owned]
    seen: set[str] = set()
    for src in inputs:
        text = os.fspath(src) if src else ""
        if not text or fs.is_url(text) or text in seen:
            continue
        seen.add(text)
        src_p = Path(text).resolve()
        for t in targets:
            if src_p == t or t in src_p.parents:
                raise UsageError(f"writing {out} replaces {t}, which holds the input {text}: choose an output "
                                 "directory where that does not happen")
    for name in owned:
        refuse_foreign(out_p / name, within=True)


def dataset_inputs(ds) -> list[str]:
    """Where a dataset's files are: its root, its image folder, and the folder of every annotation and image file,
    and of the file an image symlink names (for :func:`refuse_replacing_inputs`: the folder holding the pixels)."""
    found = {ds.root, str(ds.meta.get("image_dir") or "")}
    for im in ds.images:
        if im.image_path:
            found.add(os.path.dirname(im.image_path))
            if not fs.is_url(im.image_path) and os.path.islink(im.image_path):
                found.add(os.path.dirname(os.path.realpath(im.image_path)))
        if im.source:
            found.add(os.path.dirname(im.source_key[0] or im.source))
    return sorted(p for p in found if p)


def input_folders(ds, *extra: str | os.PathLike | None) -> list[str]:
    """The folders a dataset was read from: ``extra`` (SRC, ``--images``), its root and its image folder; the
    places an output must not be inside (for :func:`check_output_dir`)."""
    found = [os.fspath(p) for p in extra if p] + [ds.root, str(ds.meta.get("image_dir") or "")]
    return [p for p in dict.fromkeys(found) if p]


def check_output_dir(out: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> Path:
    """Refuse an output location that is one of the inputs or inside an input folder, so a writer never overwrites
    its source nor adds files to it (``convert --to voc IN IN/Annotations/sub`` would make the next ``check IN``
    see every image twice). OUT must be a local path (a ``file://`` URL is made one by the CLI). Every writer
    calls this before it writes anything: convert, check --fix, split, visualize, stats --plots,
    evaluate --plots, report."""
    if fs.is_url(os.fspath(out)):
        raise UsageError(f"{out}: OUT must be a local path (or a shared file system mounted at the same path on every "
                         "Ray node); URLs are read as inputs only")
    out_p = Path(out).resolve()
    for src in inputs:
        text = os.fspath(src) if src else ""
        if not text or fs.is_url(text):
            continue
        src_p = Path(text).resolve()
        if out_p == src_p:
            raise UsageError(f"the output {out} is the input {src}: choose another output directory")
        if src_p in out_p.parents and src_p.is_dir():
            raise UsageError(f"the output {out} is inside the input {src}: choose a folder outside it")
    return out_p
