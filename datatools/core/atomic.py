"""Writes that are whole or absent: atomic files, staged folders swapped in whole, images linked or copied into them.

Everything that writes goes through :func:`atomic_write` (one file in place) or a :func:`staged_dir` (a whole output
folder, filled with :func:`write_files`, :func:`write_stage_file` and :func:`place_images`, then renamed into place).
Inputs are never written: OUT is always a local path (see :func:`datatools.core.paths.check_output_dir`).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from enum import Enum
from functools import partial
from typing import Callable, Iterator, Sequence

from datatools.core import fs
from datatools.core.errors import UsageError
from datatools.core.parallel import Mapper, ProgressFn, chunked, ordered_map


def atomic_write(path: str | os.PathLike, data: bytes | str, *, mkdir: bool = True) -> None:
    """Write a whole file or nothing: a temp file in the same folder, then ``os.replace``.

    The temp name is ``.<name>.<pid>.<thread>.tmp``: unique per writer without mkstemp's random names and O_EXCL
    retries, which cost more than the write itself for small label files.
    """
    path = os.fspath(path)
    if mkdir:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    head, name = os.path.split(path)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def write_new_file(path: str, data: bytes) -> None:
    """Plain write of a whole small file with raw ``os`` calls: a third cheaper than ``open()``, which builds a
    buffered file object per call. For files inside a :func:`staged_dir` (made atomic by the stage's rename)."""
    fd = os.open(path, _NEW_FILE_FLAGS, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _atomic_write_chunk(chunk: Sequence[tuple[str, bytes | str]]) -> int:
    for path, data in chunk:
        atomic_write(path, data, mkdir=False)
    return len(chunk)


def write_many(items: Sequence[tuple[str, bytes | str]], *, workers: int | None = 1,
               progress: ProgressFn | None = None) -> None:
    """Write a few whole files in place, each through a temp file and ``os.replace`` (data.yaml, a COCO JSON beside
    other files). Threads: the work is system calls. Inside a :func:`staged_dir` use :func:`write_files`."""
    for d in sorted({os.path.dirname(os.fspath(p)) for p, _ in items}):
        os.makedirs(d or ".", exist_ok=True)
    ordered_map(_atomic_write_chunk, chunked(items, 512), workers=min(workers or 1, 4), threads=True,
                progress=progress)


def write_files(items: Sequence[tuple[str, bytes | str]], *, workers: int | None = 1,
                progress: ProgressFn | None = None) -> None:
    """Write new files ``(path, data)`` inside a :func:`staged_dir` on local threads (plain writes; the stage's
    rename makes them atomic): the few aggregate files the driver writes. Per-image files go through
    :func:`write_staged`."""
    for d in sorted({os.path.dirname(os.fspath(p)) for p, _ in items}):
        os.makedirs(d or ".", exist_ok=True)
    ordered_map(_plain_write_chunk, chunked(items, 512), workers=min(workers or 1, 4), threads=True,
                progress=progress)


def _plain_write_chunk(chunk: Sequence[tuple[str, bytes | str]]) -> int:
    for path, data in chunk:
        write_new_file(os.fspath(path), data.encode("utf-8") if isinstance(data, str) else data)
    return len(chunk)


@contextlib.contextmanager
def staged_dir(final: str | os.PathLike) -> Iterator[str]:
    """Build a whole output folder beside its final place, then swap it in with renames.

    Readers see the old folder or the new one, never a half-written one, and files left by an earlier run vanish,
    so a rerun gives the same tree. Files inside the stage are written plainly (see :func:`write_files`): the
    folder-level rename is what makes them atomic, which is far cheaper than a rename per small file.
    The stage is ``.<name>.staging-<pid>`` beside ``final``. On error it is removed and the old folder is left as it
    was, and so are the parent folders: those this call made (OUT itself, on a first run) are removed again when
    nothing else was put in them.
    """
    final = os.path.abspath(os.fspath(final))
    parent, name = os.path.split(final)
    made: list[str] = []  # the parent folders this call creates, deepest first
    up = parent
    while not os.path.isdir(up) and os.path.dirname(up) != up:
        made.append(up)
        up = os.path.dirname(up)
    os.makedirs(parent, exist_ok=True)
    stage = os.path.join(parent, f".{name}.staging-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in made:
            try:
                os.rmdir(folder)  # only if empty
            except OSError:
                break
        raise
    if os.path.lexists(final):
        trash = os.path.join(parent, f".{name}.old-{os.getpid()}")
        shutil.rmtree(trash, ignore_errors=True)
        os.rename(final, trash)
        os.rename(stage, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(stage, final)


def scratch_beside(stage: str) -> str:
    """The scratch folder of a stage: a sibling, ``<stage>.scratch``, on the same file system so that
    ``os.replace`` out of it is atomic, and outside the tree being written, so that no output path (an image id, a
    split name) can land in it."""
    return os.fspath(stage).rstrip("/" + os.sep) + ".scratch"


@contextlib.contextmanager
def removed_after(folder: str) -> Iterator[str]:
    """Remove ``folder`` (a scratch folder, see :func:`scratch_beside`) when the block ends, however it ends."""
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class ImagesMode(str, Enum):
    LINK = "link"  # hard link, falling back to a copy across file systems
    COPY = "copy"
    SYMLINK = "symlink"
    NONE = "none"  # leave images where they are


def symlink_url_message(src: str) -> str:
    return (f"{src}: --images-mode symlink cannot link to images behind a URL; use --images-mode copy (or link, "
            "which copies them), or none")


def refuse_symlinks_to_urls(pairs: Sequence[tuple[str, str]], mode: ImagesMode) -> None:
    """The usage error of :func:`link_or_copy` for symlinks to images behind a URL, raised before any file is made."""
    if mode is ImagesMode.SYMLINK:
        url = next((src for src, _ in pairs if fs.is_url(src)), None)
        if url is not None:
            raise UsageError(symlink_url_message(url))


def link_or_copy(src: str, dst: str, mode: ImagesMode) -> None:
    """Make a new file ``dst`` holding image ``src`` by ``mode`` (a hard link falls back to a copy across file
    systems). ``dst`` must not exist: use it inside a stage, or on a temp name that is then renamed.

    An image behind an fsspec URL is copied through :mod:`datatools.core.fs` for ``link`` and ``copy`` (a hard link
    to another file system is a copy anyway); ``symlink`` cannot point at it and is a usage error."""
    if fs.is_url(src):
        if mode is ImagesMode.SYMLINK:
            raise UsageError(symlink_url_message(src))
        fs.copy_to_local(src, dst)
        return
    if mode is ImagesMode.SYMLINK:
        os.symlink(os.path.abspath(src), dst)
    elif mode is ImagesMode.LINK:
        try:
            os.link(src, dst)
        except OSError:  # another file system, or links not allowed: copy instead
            shutil.copyfile(src, dst)
    else:
        shutil.copyfile(src, dst)


# ------------------------------------------------------------------------------------- writes a task may repeat

_retry_scratch: str | None = None  # set by retry_safe_writes() inside a task the mapper may run again


def replace_into(tmp_dir: str, final: str, write: Callable[[str], None]) -> None:
    """Create ``final`` atomically: ``write(tmp)`` to a new hidden name in ``tmp_dir`` (a stage's scratch folder on
    the same file system), then ``os.replace``. A retried task rewrites whole files; a killed one leaves only its
    temp file, which the scratch folder takes away with it."""
    tmp = os.path.join(tmp_dir, f".{os.path.basename(final)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, final)
        if os.path.lexists(tmp):  # a hard link to the file already at ``final``: rename(2) leaves both names
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextlib.contextmanager
def retry_safe_writes(scratch: str | None) -> Iterator[None]:
    """Inside this block :func:`write_stage_file` and :func:`place_stage_file` write each file to ``scratch`` and
    ``os.replace`` it into place, so that a task run again (a Ray retry after its worker died) replaces the files
    of the first attempt instead of failing on them or leaving them half-written. With ``scratch=None`` (a local
    run, which never repeats a chunk: a dead worker fails the run and the stage is removed) they write in place,
    which is safe because the stage is swapped in whole."""
    global _retry_scratch
    if scratch is None:
        yield
        return
    os.makedirs(scratch, exist_ok=True)
    before, _retry_scratch = _retry_scratch, scratch
    try:
        yield
    finally:
        _retry_scratch = before


def retry_scratch(stage: str, mapper: Mapper) -> str | None:
    """The scratch folder that makes a stage's writes retry-safe under ``mapper`` (None where it never runs a chunk
    twice); remove it after the run with :func:`removed_after`."""
    return scratch_beside(stage) if mapper.may_repeat else None


def write_stage_file(path: str, data: bytes) -> None:
    """:func:`write_new_file` for an output file inside a :func:`staged_dir`, retry-safe under
    :func:`retry_safe_writes`. Every writer's per-file output goes through here."""
    if _retry_scratch is None:
        write_new_file(path, data)
    else:
        replace_into(_retry_scratch, path, lambda tmp: write_new_file(tmp, data))


def place_stage_file(src: str, dst: str, mode: ImagesMode) -> None:
    """:func:`link_or_copy` for an image inside a :func:`staged_dir`, retry-safe under :func:`retry_safe_writes`."""
    if _retry_scratch is None:
        link_or_copy(src, dst, mode)
    else:
        replace_into(_retry_scratch, dst, lambda tmp: link_or_copy(src, tmp, mode))


def write_chunk(chunk: Sequence[tuple[bytes, Sequence[str]]], *, scratch: str | None = None) -> int:
    """Worker: write one chunk of ``(data, paths)`` (the same bytes at each path, e.g. a label file in every split it
    is in) into a stage whose folders exist. ``scratch``: see :func:`retry_safe_writes`. Returns the entries done."""
    with retry_safe_writes(scratch):
        for data, paths in chunk:
            for path in paths:
                write_stage_file(path, data)
    return len(chunk)


def write_staged(entries: Sequence[tuple[bytes, Sequence[str]]], *, stage: str, mapper: Mapper | None = None,
                 progress: ProgressFn | None = None) -> None:
    """Write per-image output files, ``(data, paths)`` each, every path inside ``stage`` (a :func:`staged_dir`):
    the folders are made here, the files by :func:`write_chunk` on ``mapper`` (default: local threads; the work is
    system calls). On Ray the workers write the files, each replaced atomically through a scratch folder beside the
    stage, so a retried task rewrites whole files. Progress counts entries.

    The caller turns records into bytes (a format's serializer is cheaper than shipping the records to a worker
    process: pickling a record costs more than formatting its label file)."""
    mapper = mapper or Mapper(workers=4)
    for d in sorted({os.path.dirname(p) for _, paths in entries for p in paths}):
        os.makedirs(d, exist_ok=True)
    scratch = retry_scratch(stage, mapper)
    with removed_after(scratch) if scratch else contextlib.nullcontext():
        mapper(partial(write_chunk, scratch=scratch), mapper.chunks(entries), threads=True, progress=progress)


def place_chunk(pairs: Sequence[tuple[str, str]], *, mode: str, scratch: str | None = None) -> int:
    """Worker: link or copy one chunk of ``(src, dst)`` images (see :func:`place_images`)."""
    images_mode = ImagesMode(mode)
    made: set[str] = set()
    with retry_safe_writes(scratch):
        for src, dst in pairs:
            d = os.path.dirname(dst)
            if d not in made:
                os.makedirs(d, exist_ok=True)
                made.add(d)
            place_stage_file(src, dst, images_mode)
    return len(pairs)


def place_images(pairs: Sequence[tuple[str, str]], mode: ImagesMode | str, *, stage: str,
                 mapper: Mapper | None = None, progress: ProgressFn | None = None) -> None:
    """Link or copy images to ``(src, dst)`` paths, every ``dst`` inside ``stage`` (a :func:`staged_dir`).

    The chunks run on ``mapper`` (default: local) as threads where it runs locally (the work is system calls), or as
    Ray tasks, where the workers read and write the image files so the driver never touches image bytes. There
    every image goes through a scratch folder beside the stage and is ``os.replace``d into place, so a task retried
    after its worker died mid-copy leaves no partial file behind.
    """
    mode, mapper = ImagesMode(mode), mapper or Mapper(workers=4)
    if mode is ImagesMode.NONE or not pairs:
        return
    refuse_symlinks_to_urls(pairs, mode)  # before any task starts
    scratch = retry_scratch(stage, mapper)
    with removed_after(scratch) if scratch else contextlib.nullcontext():
        mapper(partial(place_chunk, mode=mode.value, scratch=scratch), mapper.chunks(pairs), threads=True,
               progress=progress)
