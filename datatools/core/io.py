"""Safe file I/O: atomic writes, output paths that cannot escape their root, image headers, parallel maps.

Everything that writes goes through :func:`atomic_write`, a :func:`staged_dir` or :func:`replace_into`; everything
that builds an output path goes through :func:`safe_join`.
"""
from __future__ import annotations

import contextlib
import gc
import os
import shutil
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from datatools.core.errors import UsageError

T = TypeVar("T")
R = TypeVar("R")

ProgressFn = Callable[[int], None]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".JPG", ".JPEG", ".PNG",
                    ".BMP", ".TIF", ".TIFF", ".WEBP")


def safe_relpath(relative: str) -> str:
    """Check that ``relative`` stays inside whatever folder it is joined to (no ``..``, no absolute path, no drive)
    and return it with ``/`` separators. Use it on every name that becomes part of an output path."""
    rel = relative.replace("\\", "/")
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise UsageError(f"refusing to write outside the output directory: {relative!r}")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UsageError(f"refusing to write outside the output directory: {relative!r}")
    return "/".join(parts)


def safe_join(root: str | os.PathLike, relative: str) -> Path:
    """Join ``relative`` under ``root`` and refuse anything that would land outside it (``..``, absolute paths)."""
    return Path(root).joinpath(*safe_relpath(relative).split("/"))


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


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def read_small_file(path: str | os.PathLike) -> bytes:
    """A whole file's bytes with raw ``os`` calls (no buffered file object): annotation files are a few KB and
    there are tens of thousands of them. An fsspec URL (``s3://...``, ``memory://...``) is read through
    :mod:`datatools.core.fs`; either way a missing file raises FileNotFoundError and a bad one OSError."""
    path = os.fspath(path)
    if "://" in path:
        from datatools.core.fs import cat

        return cat(path)
    fd = os.open(path, _READ_FLAGS)
    try:
        first = os.read(fd, 1 << 16)
        if len(first) < 1 << 16:  # a short read of a regular file is its end
            return first
        chunks = [first]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_many(items: Sequence[tuple[str, bytes | str]], *, workers: int = 1, progress: ProgressFn | None = None,
               atomic: bool = True) -> None:
    """Write many small files. Threads suffice: the work is syscalls, which release the GIL.

    ``atomic=True`` writes each file through a temp file and ``os.replace``. Inside a :func:`staged_dir` use
    ``atomic=False`` (or :func:`write_files`): plain writes, made atomic by the stage's single rename.
    """
    for d in sorted({os.path.dirname(os.fspath(p)) for p, _ in items}):
        os.makedirs(d or ".", exist_ok=True)

    def run(chunk: Sequence[tuple[str, bytes | str]]) -> int:
        for path, data in chunk:
            if atomic:
                atomic_write(path, data, mkdir=False)
            else:
                write_new_file(os.fspath(path), data.encode("utf-8") if isinstance(data, str) else data)
        return len(chunk)

    step = 512
    chunks = [items[i:i + step] for i in range(0, len(items), step)]
    if workers <= 1 or len(chunks) < 2:
        counts: Iterable[int] = map(run, chunks)
        for n in counts:
            if progress:
                progress(n)
        return
    with ThreadPoolExecutor(max_workers=min(workers, 4)) as pool:
        for n in pool.map(run, chunks):
            if progress:
                progress(n)


@contextlib.contextmanager
def staged_dir(final: str | os.PathLike) -> Iterator[str]:
    """Build a whole output folder beside its final place, then swap it in with renames.

    Readers see the old folder or the new one, never a half-written one, and files left by an earlier run vanish,
    so a rerun gives the same tree. Files inside the stage are written plainly (see :func:`write_files`): the
    folder-level rename is what makes them atomic, which is far cheaper than a rename per small file.
    On error the stage is removed and the old folder is left as it was, and so are the parent folders: those this
    call made (OUT itself, on a first run) are removed again when nothing else was put in them.
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


def write_files(items: Sequence[tuple[str, bytes | str]], *, workers: int = 1, progress: ProgressFn | None = None) -> None:
    """Write many new files inside a :func:`staged_dir` (plain writes; the stage's rename makes them atomic)."""
    write_many(items, workers=workers, progress=progress, atomic=False)


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
        url = next((src for src, _ in pairs if "://" in src), None)
        if url is not None:
            raise UsageError(symlink_url_message(url))


def link_or_copy(src: str, dst: str, mode: ImagesMode) -> None:
    """Make a new file ``dst`` holding image ``src`` by ``mode`` (a hard link falls back to a copy across file
    systems). ``dst`` must not exist: use it inside a stage, or on a temp name that is then renamed.

    An image behind an fsspec URL (``src`` contains ``://``) is copied through fsspec for ``link`` and ``copy``
    (a hard link to another file system is a copy anyway); ``symlink`` cannot point at it and is a usage error."""
    if "://" in src:
        if mode is ImagesMode.SYMLINK:
            raise UsageError(symlink_url_message(src))
        from datatools.core.fs import copy_to_local

        copy_to_local(src, dst)
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


def scratch_beside(stage: str) -> str:
    """The scratch folder of a stage (or of an output folder): a sibling, ``<stage>.scratch``, on the same file
    system so that ``os.replace`` out of it is atomic, and outside the tree being written, so that no output path
    (an image id, a split name) can land in it."""
    return os.fspath(stage).rstrip("/" + os.sep) + ".scratch"


@contextlib.contextmanager
def removed_after(folder: str) -> Iterator[str]:
    """Remove ``folder`` (a scratch folder, see :func:`scratch_beside`) when the block ends, however it ends."""
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_retry_scratch: str | None = None  # set by retry_safe_writes() inside a Ray task


def replace_into(tmp_dir: str, final: str, write: Callable[[str], None]) -> None:
    """Create ``final`` atomically: ``write(tmp)`` to a new hidden name in ``tmp_dir`` (``final``'s folder, or a
    stage's scratch folder on the same file system), then ``os.replace``. A retried task rewrites whole files; a
    killed one leaves only its temp file, which a scratch folder takes away with it."""
    tmp = os.path.join(tmp_dir, f".{os.path.basename(final)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextlib.contextmanager
def retry_safe_writes(scratch: str) -> Iterator[None]:
    """Inside this block :func:`write_stage_file` and :func:`place_files` write each file to ``scratch`` and
    ``os.replace`` it into place, so that a task run again (a Ray retry after its worker died) replaces the files
    of the first attempt instead of failing on them or leaving them half-written. Outside it they write in place,
    which is safe because the stage is swapped in whole and a local run never repeats a range."""
    global _retry_scratch
    os.makedirs(scratch, exist_ok=True)
    before, _retry_scratch = _retry_scratch, scratch
    try:
        yield
    finally:
        _retry_scratch = before


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


def place_files(pairs: Sequence[tuple[str, str]], mode: ImagesMode, *, workers: int = 1) -> None:
    """Link or copy images to new paths inside a :func:`staged_dir` (the stage's rename makes them atomic; under
    :func:`retry_safe_writes` each file is also replaced atomically)."""
    if mode is ImagesMode.NONE or not pairs:
        return
    refuse_symlinks_to_urls(pairs, mode)
    for d in sorted({os.path.dirname(dst) for _, dst in pairs}):
        os.makedirs(d, exist_ok=True)

    def one(pair: tuple[str, str]) -> None:
        place_stage_file(pair[0], pair[1], mode)

    if workers <= 1 or len(pairs) < 512:
        for pair in pairs:
            one(pair)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, 4)) as pool:
            list(pool.map(one, pairs, chunksize=256))


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def plan_workers(n: int, workers: int | None, *, min_per_worker: int = 200) -> int:
    """How many processes :func:`parallel_map` will use for ``n`` items (1 means: in the calling process)."""
    workers = default_workers() if workers is None or workers <= 0 else workers
    return max(1, min(workers, n // max(1, min_per_worker)))


def parallel_map(fn: Callable[[T], R], items: Sequence[T], *, workers: int | None = None, chunksize: int = 0,
                 progress: ProgressFn | None = None, min_per_worker: int = 200) -> list[R]:
    """``[fn(x) for x in items]`` across processes, in input order, reporting progress per finished chunk.

    Falls back to the calling process for small inputs, where a pool costs more than it saves. ``fn`` must be a
    module-level function (it is pickled).
    """
    out: list[R] = []
    for res in iter_chunks(partial(_run_chunk, fn), items, workers=workers, chunksize=chunksize, progress=progress,
                           min_per_worker=min_per_worker):
        out.extend(res)
    return out


def iter_chunks(fn: Callable[[Sequence[T]], R], items: Sequence[T], *, workers: int | None = None, chunksize: int = 0,
                progress: ProgressFn | None = None, min_per_worker: int = 200) -> Iterator[R]:
    """``fn(chunk)`` for each chunk of ``items`` across processes, yielded in order as soon as it (and every one
    before it) is done, so the caller's work on it overlaps the workers' work on later chunks. Progress is reported
    in items per finished chunk.

    For workers that give one compact result per chunk (arrays, say) instead of one object per item, which would
    cost more to pickle than to compute. Small inputs run in the calling process, in chunks of 64. ``fn`` must be
    picklable (a module-level function, or a partial of one)."""
    n = len(items)
    workers = plan_workers(n, workers, min_per_worker=min_per_worker)
    if not chunksize:
        chunksize = 64 if workers <= 1 else max(16, min(512, n // (workers * 8) or 1))
    chunks = [items[i:i + chunksize] for i in range(0, n, chunksize)]
    if workers <= 1:
        for chunk in chunks:
            res = fn(chunk)
            if progress:
                progress(len(chunk))
            yield res
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for chunk, res in zip(chunks, pool.map(fn, chunks)):
            if progress:
                progress(len(chunk))
            yield res


_FORK_STATE: object = None


def fork_imap(fn: Callable[[object, T], R], state: object, tasks: Sequence[T], *,
              workers: int | None = None) -> Iterator[R]:
    """``fn(state, task)`` for each task, yielded in task order, in forked workers that inherit ``state``
    copy-on-write: only the tasks and the results are pickled (the tasks may carry data of their own, which the
    workers then own). ``fn`` must be a module-level function (or a partial of one). Runs in the calling process for
    one worker or where ``fork`` is unavailable. Consume it to the end (the pool is joined there), and call it
    where no other thread of this process holds a lock a worker needs: a forked process gets only the calling
    thread (the trainer, with torch's threads, evaluates in-process for that reason)."""
    import multiprocessing as mp

    global _FORK_STATE
    w = plan_workers(len(tasks), workers, min_per_worker=1)
    if w <= 1 or "fork" not in mp.get_all_start_methods():
        for task in tasks:
            yield fn(state, task)
        return
    _FORK_STATE = state
    # The parent's objects go to the collector's permanent generation while the workers are forked, so that a
    # collection in a worker does not write to (and copy) every page of them. (A caller's own freeze is kept.)
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=w, mp_context=mp.get_context("fork")) as pool:
            try:
                futures = [pool.submit(_fork_call, fn, task) for task in tasks]  # forks every worker at once
                if freeze:
                    gc.unfreeze()
                    freeze = False
                for fut in futures:
                    yield fut.result()
            except BaseException:  # a worker failed, or the consumer stopped: do not run the remaining tasks
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        if freeze:
            gc.unfreeze()
        _FORK_STATE = None


def _fork_call(fn: Callable[[object, T], R], task: T) -> R:
    return fn(_FORK_STATE, task)


def fork_ranges(fn: Callable[[object, int, int], int], state: object, n: int, *, workers: int | None = None,
                progress: ProgressFn | None = None, min_per_worker: int = 1000) -> int:
    """Run ``fn(state, start, stop)`` over contiguous ranges of ``range(n)`` and return the sum of its results.

    Use it for output stages whose input is already in memory (writing label files from a dataset): forked workers
    inherit ``state`` copy-on-write (:func:`fork_imap`), so nothing but two integers per chunk is pickled. ``fn``
    must be a module-level function. Falls back to the calling process for small inputs.
    """
    w = plan_workers(n, workers, min_per_worker=min_per_worker)
    step = n if w <= 1 else max(64, -(-n // (w * 4)))
    ranges = [(a, min(a + step, n)) for a in range(0, n, step)] if n else [(0, 0)]
    total = 0
    # Consumed to the end (not zipped with ranges, which would stop before the pool is joined).
    for k, done in enumerate(fork_imap(partial(_range_call, fn), state, ranges, workers=w)):
        total += done
        if progress:
            progress(ranges[k][1] - ranges[k][0])
    return total


def _range_call(fn: Callable[[object, int, int], int], state: object, task: tuple[int, int]) -> int:
    return fn(state, *task)


def _run_chunk(fn: Callable[[T], R], chunk: Iterable[T]) -> list[R]:
    return [fn(x) for x in chunk]


# ---------------------------------------------------------------------------------------------- image headers

@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What an image header says, read without decoding pixels. ``width``/``height`` are as displayed (EXIF applied);
    ``raw_width``/``raw_height`` as stored."""

    width: int
    height: int
    raw_width: int
    raw_height: int
    orientation: int
    mode: str
    error: str = ""


def exif_orientation(im) -> int:
    """The EXIF orientation (1-8) of an open PIL image; 1 when absent or when the EXIF block is broken (a broken
    EXIF block is not a broken image). Reading it touches the header only."""
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:
        return 1


_PIL_OPEN: Callable | None = None


def _is_pillow_open(fn) -> bool:
    """Pillow's own ``Image.open`` (by where its code lives: a ``functools.wraps`` wrapper copies the name and
    module, not the code)."""
    from PIL import Image

    code = getattr(fn, "__code__", None)
    return code is not None and code.co_name == "open" and code.co_filename == Image.__file__


def _pillow_open():
    """Pillow's ``Image.open``, seen through replacements: ``__wrapped__`` chains, or a function of Pillow's among
    the replacement's globals or closure (ultralytics keeps it as ``_image_open``). Falls back to ``Image.open``
    as it is when nothing leads there."""
    from PIL import Image

    fn, seen = Image.open, set()
    while not _is_pillow_open(fn) and id(fn) not in seen:
        seen.add(id(fn))
        inner = getattr(fn, "__wrapped__", None)
        if inner is None:
            cells = [c.cell_contents for c in (getattr(fn, "__closure__", None) or ()) if _cell_filled(c)]
            candidates = list(getattr(fn, "__globals__", {}).values()) + cells
            inner = next((v for v in candidates if _is_pillow_open(v)), None)
        if inner is None:
            return Image.open
        fn = inner
    return fn if _is_pillow_open(fn) else Image.open


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def pil_open(fp, *args, **kwargs):
    """``PIL.Image.open`` as Pillow ships it, even where another library has replaced it.

    ultralytics replaces ``PIL.Image.open`` when it is imported: the first file that fails to open makes it try to
    pip-install a HEIF plugin, and where that fails every bad file raises ModuleNotFoundError. A training script
    that imports both would then see other messages for the same corrupt file than ``datatools check`` does, and
    wait on pip. So every datatools image read opens through here: the replacement's own reference to Pillow's
    function is found (see :func:`_pillow_open`) and used.
    """
    global _PIL_OPEN
    if _PIL_OPEN is None:
        _PIL_OPEN = _pillow_open()
    return _PIL_OPEN(fp, *args, **kwargs)


def read_image_header(path: str | os.PathLike) -> ImageHeader:
    """Image size from the header only (PIL opens lazily), with EXIF orientations 5-8 swapping width and height.

    Never raises for a bad image: the problem is returned in ``error`` so callers can count it.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(path, str) and "://" in path:
        return _url_image_header(path)
    try:
        with pil_open(path) as im:
            w, h = im.size
            orientation = exif_orientation(im)
            mode = im.mode
    except FileNotFoundError:
        return ImageHeader(0, 0, 0, 0, 1, "", "missing")
    except Image.DecompressionBombError as e:
        return ImageHeader(0, 0, 0, 0, 1, "", f"decompression bomb: {e}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return ImageHeader(0, 0, 0, 0, 1, "", f"unreadable image: {e}")
    except Exception as e:  # plugins (or libraries that patch Image.open) may raise anything for a bad file
        return ImageHeader(0, 0, 0, 0, 1, "", f"unreadable image: {type(e).__name__}: {e}")
    if orientation in (5, 6, 7, 8):
        return ImageHeader(h, w, w, h, orientation, mode)
    return ImageHeader(w, h, w, h, orientation, mode)


def open_url_image(url: str):
    """``(file object, "")`` for an image behind an fsspec URL, for PIL to read; ``(None, error)`` when it cannot be
    opened, with the error text the image readers report (``missing``, ``unreadable image: ...``)."""
    from datatools.core import fs

    try:
        return fs.open_binary(url), ""
    except FileNotFoundError:
        return None, "missing"
    except Exception as e:
        return None, f"unreadable image: {type(e).__name__}: {e}"


def _url_image_header(url: str) -> ImageHeader:
    """:func:`read_image_header` for an image behind an fsspec URL (PIL reads the header from ``fs.open``)."""
    f, error = open_url_image(url)
    if f is None:
        return ImageHeader(0, 0, 0, 0, 1, "", error)
    with f:
        header = read_image_header(f)  # type: ignore[arg-type]
    if header.error:
        return ImageHeader(0, 0, 0, 0, 1, "", url_error_text(header.error, f, url))
    return header


def url_error_text(error: str, f, url: str) -> str:
    """``error`` from reading the file object ``f`` of ``url`` with the URL in place of the object's repr (PIL says
    "cannot identify image file <LocalFileOpener object at 0x7f...>"), so that messages name the file and are the
    same in every run."""
    return error.replace(repr(f), repr(url))


def list_images(folder: str | os.PathLike, *, recursive: bool = True) -> dict[str, str]:
    """Map image path (relative, posix, with extension) -> absolute path for every image under ``folder``
    (a URL under an fsspec URL ``folder``)."""
    if isinstance(folder, str) and "://" in folder:
        from datatools.core import fs

        if not fs.isdir(folder):
            return {}
        exts = tuple({e.lower() for e in IMAGE_EXTENSIONS})
        return {rel: fs.join(folder, rel) for rel in fs.find(folder, suffixes=exts, recursive=recursive)}
    root = Path(folder)
    out: dict[str, str] = {}
    if not root.is_dir():
        return out
    exts = {e.lower() for e in IMAGE_EXTENSIONS}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if not recursive:
            dirnames[:] = []
        for name in filenames:
            if os.path.splitext(name)[1].lower() in exts:
                full = os.path.join(dirpath, name)
                out[os.path.relpath(full, root).replace(os.sep, "/")] = full
    return dict(sorted(out.items()))


def refuse_replacing_inputs(out: str | os.PathLike, owned: Iterable[str], inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse to write ``out`` when something the writer replaces whole (``OUT/<name>`` for each of ``owned``: a
    folder it builds as a :func:`staged_dir` and swaps in, or a file it rewrites) is an input or holds one.

    ``convert VOC/Annotations VOC --to voc`` would otherwise swap the input's own ``Annotations`` folder for the
    converted copy, and every file that was not converted (a broken XML, a dropped image) would be gone. ``inputs``
    are the source path, its image folder and, once read, the folders of every annotation and image file."""
    out_p = Path(out).resolve()
    targets = [(out_p / name).resolve() for name in owned]
    seen: set[str] = set()
    for src in inputs:
        text = os.fspath(src) if src else ""
        if not text or "://" in text or text in seen:
            continue
        seen.add(text)
        src_p = Path(text).resolve()
        for t in targets:
            if src_p == t or t in src_p.parents:
                raise UsageError(f"writing {out} replaces {t}, which holds the input {text}: choose an output "
                                 "directory where that does not happen")


def dataset_inputs(ds) -> list[str]:
    """Where a dataset's files are: its root, its image folder, and the folder of every annotation and image file
    (for :func:`refuse_replacing_inputs`)."""
    found = {ds.root, str(ds.meta.get("image_dir") or "")}
    for im in ds.images:
        if im.image_path:
            found.add(os.path.dirname(im.image_path))
        if im.source:
            found.add(os.path.dirname(im.source.rpartition("#")[0] or im.source))
    return sorted(p for p in found if p)


def check_output_dir(out: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> Path:
    """Refuse an output location that is one of the inputs, so a conversion can never overwrite its source."""
    if "://" in os.fspath(out):
        raise UsageError(f"{out}: OUT must be a local path (or a shared file system mounted at the same path on every "
                         "Ray node); URLs are read as inputs only")
    out_p = Path(out).resolve()
    for src in inputs:
        src_p = Path(src).resolve()
        if out_p == src_p:
            raise UsageError(f"the output {out} is the input {src}: choose another output directory")
    return out_p
