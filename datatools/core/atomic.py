"""Writes that are whole or absent: atomic files, staged folders swapped in whole, images linked or copied into them.

Everything that writes goes through :func:`atomic_write` (one file in place) or a :func:`staged_dir` (a whole output
folder, filled with :func:`write_files`, :func:`write_stage_file` and :func:`place_images`, then renamed into place).
Inside an :func:`output_transaction` (:mod:`datatools.core.staging`) both are only staged and swapped in together at
its end, so a run that fails anywhere leaves OUT as it was. Every failure to write is an
:class:`~datatools.core.errors.OutputError` naming the output (``cannot write PATH: why``).
Inputs are never written: OUT is always a local path (see :func:`datatools.core.paths.check_output_dir`).
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import uuid
from enum import Enum
from functools import partial
from typing import Callable, Iterator, Sequence

from datatools.core import fs
from datatools.core.errors import DatatoolsError, InputError, OutputError, UsageError
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import safe_relpath
from datatools.core.staging import (mark_written, output_transaction, public_path, remove_at_commit, staged_dir,
                                    staged_file, writing)

__all__ = ["ImagesMode", "atomic_write", "link_or_copy", "make_dirs", "mark_written", "output_transaction",
           "place_images", "remove_at_commit", "staged_dir", "write_files", "write_staged"]


def atomic_write(path: str | os.PathLike, data: bytes | str, *, fsync: bool = False) -> None:
    """Write a whole file or nothing: a temp file in the same folder, then ``os.replace``. Inside an
    :func:`output_transaction` the file is staged instead and swapped in with the rest of the run's output. A
    failure is an :class:`OutputError` naming ``path``.

    ``fsync=True`` (checkpoints: a power cut must not leave a renamed but empty file) flushes the temp file to disk
    before the rename and the folder after it, so the new name points at data that is on disk. It applies to the
    in-place write, not to a file staged in a transaction.

    The temp name is ``.<name>.<pid>.<thread>.datatools.tmp`` (the name cut to 100 bytes): unique per writer
    without mkstemp's random names and O_EXCL retries, which cost more than the write itself for small label files.
    """
    path = os.fspath(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with writing(path):
        stage = staged_file(path)
        if stage is not None:
            write_new_file(stage, data)  # the transaction's commit renames it into place
            return
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        head, name = os.path.split(path)
        short = name.encode()[:100].decode(errors="ignore")  # a 240-byte name plus the tag is over NAME_MAX (255)
        tmp = os.path.join(head, f".{short}.{os.getpid()}.{threading.get_ident()}.datatools.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
            if fsync:
                fsync_dir(head or ".")
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to disk. Where folders cannot be opened (Windows) it does
    nothing: there ``os.replace`` is the most a program can do."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems cannot fsync a folder: the rename is still atomic
        if e.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def write_new_file(path: str, data: bytes) -> None:
    """Plain write of a whole small file with raw ``os`` calls: a third cheaper than ``open()``, which builds a
    buffered file object per call. For files inside a :func:`staged_dir` (made atomic by the stage's rename)."""
    with writing(path):
        fd = os.open(path, _NEW_FILE_FLAGS, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)


def make_dirs(folder: str | os.PathLike) -> None:
    """``os.makedirs(folder, exist_ok=True)`` for an output folder: a failure is one :class:`OutputError`
    (``cannot write FOLDER: Not a directory (/etc/passwd is a file, not a folder)``), never a traceback."""
    with writing(folder):
        os.makedirs(folder, exist_ok=True)


def _make_dirs(paths) -> None:
    for d in sorted({os.path.dirname(os.fspath(p)) for p in paths}):
        make_dirs(d or ".")


def write_files(items: Sequence[tuple[str, bytes | str]]) -> None:
    """Write new files ``(path, data)`` inside a :func:`staged_dir` on this thread (plain writes; the stage's
    rename makes them atomic): the few aggregate files the driver writes. Per-image files go through
    :func:`write_staged`."""
    _make_dirs(p for p, _ in items)
    for path, data in items:
        write_new_file(os.fspath(path), data.encode("utf-8") if isinstance(data, str) else data)


def scratch_beside(stage: str) -> str:
    """The scratch folder of a stage: a sibling, ``<stage>.scratch``, on the same file system so that
    ``os.replace`` out of it is atomic, and outside the tree being written, so that no output path (an image id, a
    split name) can land in it."""
    return os.fspath(stage).rstrip("/" + os.sep) + ".scratch"


class ImagesMode(str, Enum):
    LINK = "link"  # hard link, falling back to a copy across file systems
    COPY = "copy"
    SYMLINK = "symlink"
    NONE = "none"  # leave images where they are


_WRITE_ERRNOS = frozenset(getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG") if hasattr(errno, n))


def _placing_error(e: OSError, src: str, shown: str) -> DatatoolsError:
    """Which side of a link or copy failed: the image read (``cannot read SRC``) or the output written."""
    if e.errno not in _WRITE_ERRNOS and e.filename == src and not e.filename2:
        return InputError(src, e)
    return OutputError(public_path(shown), e)


def link_or_copy(src: str, dst: str, mode: ImagesMode, *, shown: str | None = None) -> None:
    """Make a new file ``dst`` holding image ``src`` by ``mode`` (a hard link falls back to a copy across file
    systems). ``dst`` must not exist: use it inside a stage, or on a temp name that is then renamed (``shown``: the
    name to report, when ``dst`` is a temp name). An image that cannot be read is an :class:`InputError`, an output
    that cannot be made an :class:`OutputError`, and a ``dst`` that exists already is never written through.

    An image behind an fsspec URL is copied through :mod:`datatools.core.fs` for ``link`` and ``copy`` (a hard link
    to another file system is a copy anyway); ``symlink`` cannot point at it and is a usage error."""
    shown = shown or dst
    try:
        if fs.is_url(src):
            if mode is ImagesMode.SYMLINK:
                raise UsageError(f"{src}: --images-mode symlink cannot link to images behind a URL; use --images-mode "
                                 "copy (or link, which copies them), or none")
            fs.copy_to_local(src, dst)
        elif mode is ImagesMode.SYMLINK:
            os.symlink(os.path.realpath(src), dst)
        else:
            fs.require_regular_file(src)  # an "image" that is a device or a FIFO (x.jpg -> /dev/zero): never read
            if mode is ImagesMode.LINK:
                try:  # to the file an input symlink names: a hard link to the symlink itself dangles or loops
                    os.link(os.path.realpath(src), dst)
                except FileExistsError:
                    raise
                except OSError:  # another file system, or links not allowed: copy instead
                    shutil.copyfile(src, dst)
            else:
                if os.path.lexists(dst):
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
                shutil.copyfile(src, dst)
    except fs.NotRegularFile as e:
        raise InputError(src, "not a regular file (a device or a FIFO under an image's name); nothing was written") \
            from e
    except FileExistsError as e:
        raise OutputError(public_path(shown), "another image was placed under this name already (names that differ "
                          "only in case, on a file system that ignores case?); nothing was written") from e
    except OSError as e:
        raise _placing_error(e, src, shown) from e


def unique_targets(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(src, dst)`` pairs with each ``dst`` once: the same image asked for twice under one name (two annotations of
    one image) is placed once; two different images under one name are refused before anything is placed, with an
    :class:`OutputError` naming both, so no image silently stands in for another."""
    first: dict[str, str] = {}
    out = []
    for src, dst in pairs:
        key = os.path.normpath(dst)
        prev = first.get(key)
        if prev is None:
            first[key] = src
            out.append((src, dst))
        elif not fs.same_file(prev, src):
            raise OutputError(public_path(dst), f"two different images would be placed under this name, {prev} and "
                              f"{src}; nothing was written (two annotations name images of the same file name: "
                              "`datatools check` lists them as filename-mismatch)")
    return out


# ------------------------------------------------------------------------------------- writes a task may repeat

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
def retry_scratch(stage: str, mapper: Mapper) -> Iterator[str | None]:
    """The scratch folder that makes a stage's writes retry-safe under ``mapper`` (None where it never runs a chunk
    twice), removed when the block ends, however it ends."""
    if not mapper.may_repeat:
        yield None
        return
    scratch = scratch_beside(stage)
    make_dirs(scratch)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_stage_file(path: str, data: bytes, scratch: str | None = None) -> None:
    """:func:`write_new_file` for an output file inside a :func:`staged_dir`. With a ``scratch`` folder (see
    :func:`retry_scratch`) the file is written there and ``os.replace``d into place, so that a task run again (a Ray
    retry after its worker died) replaces the files of the first attempt instead of failing on them or leaving them
    half-written; without one (a local run, which never repeats a chunk) it is written in place, which is safe
    because the stage is swapped in whole. Every writer's per-file output goes through here."""
    if scratch is None:
        write_new_file(path, data)
    else:
        replace_into(scratch, path, lambda tmp: write_new_file(tmp, data))


def place_stage_file(src: str, dst: str, mode: ImagesMode, scratch: str | None = None) -> None:
    """:func:`link_or_copy` for an image inside a :func:`staged_dir`, retry-safe with a ``scratch`` folder (see
    :func:`write_stage_file`)."""
    if scratch is None:
        link_or_copy(src, dst, mode)
    else:
        replace_into(scratch, dst, lambda tmp: link_or_copy(src, tmp, mode, shown=dst))


def write_chunk(chunk: Sequence[tuple[bytes, Sequence[str]]], *, scratch: str | None = None) -> int:
    """Worker: write one chunk of ``(data, paths)`` (the same bytes at each path, e.g. a label file in every split it
    is in) into a stage whose folders exist. ``scratch``: see :func:`write_stage_file`. Returns the entries done."""
    for data, paths in chunk:
        for path in paths:
            write_stage_file(path, data, scratch)
    return len(chunk)


def write_staged(entries: Sequence[tuple[bytes, Sequence[str]]], *, stage: str, mapper: Mapper | None = None,
                 progress: ProgressFn | None = None) -> None:
    """Write per-image output files, ``(data, paths)`` each, every path inside ``stage`` (a :func:`staged_dir`):
    the folders are made here, the files by :func:`write_chunk` (locally on this thread). On Ray the workers write
    the files, each replaced atomically through a scratch folder beside the
    stage, so a retried task rewrites whole files. Progress counts entries.

    The caller turns records into bytes (a format's serializer is cheaper than shipping the records to a worker
    process: pickling a record costs more than formatting its label file)."""
    mapper = mapper or Mapper()
    if mapper.engine == "local":
        # Locally, on this thread: a small write is a short system call between Python work, so threads only take
        # turns at the GIL (17,125 label files on tmpfs: 0.25 s on one thread, 0.45 s on two, 0.44 s on four).
        mapper = Mapper(workers=1)
    _make_dirs(p for _, paths in entries for p in paths)
    with retry_scratch(stage, mapper) as scratch:
        mapper(partial(write_chunk, scratch=scratch), mapper.chunks(entries), threads=True, progress=progress)


def place_chunk(pairs: Sequence[tuple[str, str]], *, mode: str, scratch: str | None = None) -> int:
    """Worker: link or copy one chunk of ``(src, dst)`` images (see :func:`place_images`)."""
    images_mode = ImagesMode(mode)
    for src, dst in pairs:
        place_stage_file(src, dst, images_mode, scratch)
    return len(pairs)


def place_images(folder: str | os.PathLike, pictures: Sequence[tuple[str, str]], mode: ImagesMode | str, *,
                 mapper: Mapper | None = None, progress: ProgressFn | None = None) -> None:
    """Build ``folder`` from ``pictures``, ``(image, name)`` pairs (``name`` relative to ``folder``, made safe with
    :func:`~datatools.core.paths.safe_relpath`), linked or copied as ``mode`` says: a :func:`staged_dir` filled and
    swapped in whole. Nothing is done (and ``folder`` left as it is) under ``--images-mode none`` or without pictures.

    The chunks run on ``mapper`` (default: local) as threads where it runs locally (the work is system calls), or as
    Ray tasks, where the workers read and write the image files so the driver never touches image bytes. There
    every image goes through a scratch folder beside the stage and is ``os.replace``d into place, so a task retried
    after its worker died mid-copy leaves no partial file behind. Each ``dst`` is placed once
    (:func:`unique_targets`): two different images under one name are refused before any is placed.
    """
    mode, mapper = ImagesMode(mode), mapper or Mapper(workers=4)
    if mode is ImagesMode.NONE or not pictures:
        return
    with staged_dir(folder) as stage:
        pairs = [(src, os.path.join(stage, safe_relpath(name))) for src, name in pictures]
        pairs = unique_targets(pairs)
        _make_dirs(dst for _, dst in pairs)
        with retry_scratch(stage, mapper) as scratch:
            mapper(partial(place_chunk, mode=mode.value, scratch=scratch), mapper.chunks(pairs), threads=True,
                   progress=progress)
