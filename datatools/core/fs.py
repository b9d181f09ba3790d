"""The one file-access layer of the readers: local paths and fsspec URLs (``memory://``, ``s3://``,
``simplecache::file:///...``), with the few file operations the readers need.

:func:`files_for` gives the same operations on either: :class:`LocalFiles` for a local path (plain ``os`` calls;
fsspec is not even imported), fsspec for a URL; :func:`read_small_file` and :func:`read_json` take either. A URL
is kept as a plain string everywhere (records' ``source`` and ``image_path``), so a worker in another process or on
another Ray node reopens it; the filesystem instance is rebuilt from the URL there (fsspec caches instances per URL
options). Outputs are always local (or shared, mounted) paths.

A path is a URL when it contains ``://`` (``memory://x``, ``s3://b/k``, and chains such as
``simplecache::file:///abs``). :func:`source_path` and :func:`local_path` turn a plain ``file://`` URL into a local
path first, so only URLs that need fsspec reach fsspec. This is the only module that tests for ``://``: everything
else asks :func:`is_url`, or takes :func:`files_for` (the same operations on local paths and URLs).
"""
from __future__ import annotations

import json
import os
import posixpath
import stat
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from datatools.core.errors import FormatError, InputError, UsageError


url = True  # for code that takes this module or its local stand-in, LocalFiles (see files_for)


def bucket_key(ref: str) -> str | None:
    """The key of an object-store URL (``s3://``, ``gs://``, ``azure-blob://``) as written after its bucket, nothing
    parsed out of it (``s3://b/shot #1.jpg`` is ``shot #1.jpg``); None for anything else."""
    scheme, sep, rest = ref.partition("://")
    if not sep or scheme not in ("s3", "gs", "azure-blob") or "/" not in rest:
        return None
    return rest.split("/", 1)[1]


def is_url(path: str | os.PathLike | None) -> bool:
    """True for a URL that goes through fsspec (anything containing ``://``); False for local paths."""
    return isinstance(path, str) and "://" in path


def url_to_fs(url: str):
    """``(filesystem, path inside it)`` for ``url``; a usage error for an unknown protocol or a missing backend."""
    try:
        import fsspec.core

        return fsspec.core.url_to_fs(url)
    except ImportError as e:  # s3fs, gcsfs, ... not installed
        raise UsageError(f"{url}: this URL needs a filesystem package that is not installed: {e}") from e
    except (ValueError, TypeError, KeyError) as e:  # "Protocol not known", a malformed chain
        raise UsageError(f"{url}: not a URL fsspec can open: {e}") from e


def join(url: str, *parts: str) -> str:
    """``url`` with ``/``-separated ``parts`` appended (the URL form is kept as the user wrote it)."""
    out = url.rstrip("/")
    for p in parts:
        p = p.replace("\\", "/").strip("/")
        if p:
            out = out + "/" + p
    return out


def resolve(folder_url: str, relative: str) -> str:
    """``relative`` (``..`` allowed) under the folder ``folder_url``, normalized: ``memory:///d/ann`` and
    ``../img/a.jpg`` -> ``memory:///d/img/a.jpg``; it may leave ``folder_url``, which the caller checks."""
    proto, sep, inside = folder_url.partition("://")
    return proto + sep + posixpath.normpath(posixpath.join(inside, relative.replace("\\", "/")))


def in_this_process(src: str | os.PathLike) -> bool:
    """Whether ``src`` is on a file system that lives in this process alone (``memory://``), which Ray's workers
    cannot read."""
    return os.fspath(src).startswith("memory://")


def _ask(url: str, question: str) -> bool:
    """``fs.exists/isdir/isfile(path)``; an unreachable location answers False."""
    fs, path = url_to_fs(url)
    try:
        return bool(getattr(fs, question)(path))
    except OSError:
        return False


def exists(url: str) -> bool:
    return _ask(url, "exists")


def isdir(url: str) -> bool:
    return _ask(url, "isdir")


def isfile(url: str) -> bool:
    return _ask(url, "isfile")


def find(url: str, *, suffixes: tuple[str, ...] | None = None, recursive: bool = True,
         hidden: bool = True) -> list[str]:
    """Relative posix paths of the files under folder ``url`` (sorted), optionally only those ending in one of
    ``suffixes`` (compared in lower case). Join them back with :func:`join`. macOS' AppleDouble files (``._a.xml``
    beside ``a.xml`` on a copied disk: no annotation, no picture) are never listed; ``hidden=False`` leaves out
    every hidden file and folder (``.a.jpg``, Jupyter's ``.ipynb_checkpoints/``), as ultralytics lists images."""
    fs, path = url_to_fs(url)
    base = path.rstrip("/")
    try:
        found = fs.find(base, maxdepth=None if recursive else 1, withdirs=False)
    except FileNotFoundError:
        return []
    out = []
    for p in found:
        p = p if isinstance(p, str) else str(p)
        rel = p[len(base):].lstrip("/") if p.startswith(base) else posixpath.basename(p)
        if rel and (suffixes is None or rel.lower().endswith(suffixes)) and not _skipped(rel, hidden):
            out.append(rel)
    out.sort()
    return out


def _skipped(rel: str, hidden: bool) -> bool:
    """Whether :func:`find` leaves out the file (or folder) ``rel``."""
    base = rel.rsplit("/", 1)[-1]
    return base.startswith("._") or (not hidden and any(part.startswith(".") for part in rel.split("/")))


def open_binary(url: str):
    """A binary file object for ``url`` (for PIL); close it after use."""
    fs, path = url_to_fs(url)
    return fs.open(path, "rb")


def read_head(path: str | os.PathLike, n: int) -> bytes | None:
    """The first ``n`` bytes of a file (fewer when it is shorter), local path or URL alike; None when it cannot be
    opened or read. For sniffing a format (an XML root, a CSV header, a JSON document's first keys) without reading a
    file that may be gigabytes."""
    path = os.fspath(path)
    try:
        if not is_url(path):
            require_regular_file(path)  # a FIFO named x.json would block the sniff forever
        with (open_binary(path) if is_url(path) else open(path, "rb")) as f:
            return f.read(n)
    except OSError:
        return None


def copy_to_local(url: str, dst: str) -> None:
    """Copy the file at ``url`` to the new local file ``dst`` (streamed, not read whole)."""
    import shutil

    with open_binary(url) as f, open(dst, "xb") as out:
        shutil.copyfileobj(f, out, 1 << 20)


def parent(url: str) -> str:
    """The folder holding ``url`` (``memory:///a/b/c.json`` -> ``memory:///a/b``); never climbs past the
    protocol's root, so the result is still a URL."""
    head, sep, _ = url.rstrip("/").rpartition("/")
    if not sep or "://" not in head + sep or head.endswith(("://", ":/", ":")):
        return url
    return head


def listdir(url: str) -> tuple[list[str], list[str]]:
    """``(sub-folder names, file names)`` directly inside folder ``url``, each sorted; empty when it is no folder."""
    fs, path = url_to_fs(url)
    try:
        entries = fs.ls(path.rstrip("/") or path, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    dirs, files = set(), set()
    for e in entries:
        name = posixpath.basename(str(e.get("name", "")).rstrip("/"))
        if not name:
            continue
        (dirs if e.get("type") == "directory" else files).add(name)
    return sorted(dirs), sorted(files)


class LocalFiles:
    """The file operations of this module (``isfile``, ``isdir``, ``join``, ``parent``, ``listdir``, ``find``) on
    this machine's paths, for code that takes either (see :func:`files_for`). Paths are joined as
    :class:`pathlib.Path` does (``a//b``, ``./`` and a trailing ``/`` folded)."""

    url = False
    isfile = staticmethod(os.path.isfile)
    isdir = staticmethod(os.path.isdir)

    @staticmethod
    def join(base: str, *parts: str) -> str:
        return str(Path(base).joinpath(*parts))

    @staticmethod
    def parent(path: str) -> str:
        return str(Path(path).parent)

    @staticmethod
    def find(folder: str, *, suffixes: tuple[str, ...] | None = None, recursive: bool = True,
             hidden: bool = True) -> list[str]:
        """As :func:`find` (relative posix paths, sorted; empty when there is no such folder), on a local folder.
        Links to folders are followed as ultralytics' listing follows them (``images/train/camA -> /pool/camA``),
        except one into ``folder`` itself or into a folder already listed (listed once, under its own name; no
        cycle); a link to a file that is not there is no file."""
        out: list[str] = []
        top = os.path.realpath(folder)
        seen = {top}

        def walk(path: str, real: str, prefix: str) -> None:
            try:
                entries = list(os.scandir(path))
            except OSError:  # no such folder, or one that cannot be read: as os.walk, nothing under it
                return
            for e in entries:
                if e.name.startswith(".") and _skipped(e.name, hidden):
                    continue
                link = e.is_symlink()
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    sub = os.path.realpath(e.path) if link else os.path.join(real, e.name)
                    inside = sub == top or sub.startswith(top + os.sep) or top.startswith(sub.rstrip(os.sep) + os.sep)
                    if recursive and sub not in seen and not (link and inside):
                        seen.add(sub)
                        walk(e.path, sub, prefix + e.name + "/")
                elif not (link and not os.path.exists(e.path)) and (
                        suffixes is None or e.name.lower().endswith(suffixes)):
                    out.append(prefix + e.name)

        walk(folder, top, "")
        out.sort()
        return out

    @staticmethod
    def listdir(folder: str) -> tuple[list[str], list[str]]:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
        dirs = {e.name for e in entries if e.is_dir()}
        return sorted(dirs), [e.name for e in entries if e.name not in dirs]  # a broken link counts as a file


def folder_prefix(folder: str) -> str:
    """``folder`` with the separator its relative paths join on (``a/`` locally, ``s3://b/a/`` for a URL): the
    listings of a folder join thousands of names to it, one string concatenation each."""
    if is_url(folder):
        return folder if folder.endswith("/") else folder + "/"
    return os.path.join(folder, "")


def files_for(src: str):
    """This module for a URL ``src``, :class:`LocalFiles` for a local path: the same operations either way."""
    if is_url(src):
        return sys.modules[__name__]
    return LocalFiles


def check_source(url: str) -> str:
    """``url`` itself when it names an existing file or folder, else a usage error that says what is wrong."""
    try:
        ok = exists(url)
    except UsageError:
        raise
    except Exception as e:  # credentials, network: report, never a traceback
        raise UsageError(f"{url}: cannot open: {type(e).__name__}: {e}") from e
    if not ok:
        raise UsageError(f"{url}: no such file or directory")
    return url


def local_path(src: str | os.PathLike) -> str:
    """``file://`` URLs become local paths; plain paths pass through. Other schemes (s3://, memory://, ...) are
    refused with a clear message: use it where a local path is required (OUT). A SRC (VOC, YOLO or COCO) may be
    any fsspec URL: see :func:`source_path`."""
    text = os.fspath(src)
    if not is_url(text):
        return text
    parsed = urlparse(text)
    if parsed.scheme == "file":
        # the whole path, as fsspec reads file:// (urlparse's path stops at a '#' or '?', another folder: ds#2 -> ds);
        # %xx decoded, as Path.as_uri() writes them
        host, slash, path = text[len("file://"):].partition("/")
        if host not in ("", "localhost"):
            raise UsageError(f"{text}: a file:// URL must name a local path (file:///abs/path), not host {host!r}")
        return unquote("/" + path) if slash else "/"
    raise UsageError(f"{text}: {parsed.scheme}:// needs a local path here: outputs (OUT) must be a local path, "
                     "a file:// URL, or a shared file system mounted at the same path on every Ray node; fsspec URLs "
                     "(s3://, memory://, simplecache::...) are read as inputs (SRC) only")


def source_path(src: str | os.PathLike) -> str:
    """SRC for a reader: a local path (``file://`` URLs made local, as :func:`local_path`), or any other fsspec URL
    kept as a string (it must exist; checked through fsspec)."""
    text = os.fspath(src)
    if not is_url(text):
        return text
    if text.startswith("file://"):
        return local_path(text)
    return check_source(text)


def same_file(a: str, b: str, *, contents: bool = False) -> bool:
    """Whether two paths are one file (the same path, a link to it); with ``contents``, also two local files of the
    same bytes (an image's copy in each split's folder). URLs are the same only when written the same."""
    if a == b:
        return True
    if is_url(a) or is_url(b):
        return False
    import filecmp

    try:
        return os.path.samefile(a, b) or (contents and filecmp.cmp(a, b, shallow=False))
    except OSError:
        return False


def read_json(path: str | os.PathLike):
    """A JSON file's value (UTF-8, a BOM allowed), local path or URL. A file that cannot be read is an
    :class:`InputError` (``cannot read PATH: why``), one that is not JSON a :class:`FormatError` that names it. Every JSON input
    (COCO, Label Studio, predictions) is read through here."""
    try:
        return json.loads(read_small_file(path).decode("utf-8-sig"))
    except OSError as e:
        raise InputError(os.fspath(path), e) from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(os.fspath(path), "", f"not valid JSON: {e}") from e


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
# Opening a FIFO this way does not wait for a writer (fstat then refuses it); regular files ignore the flag.
_NO_WAIT = getattr(os, "O_NONBLOCK", 0)


class NotRegularFile(OSError):
    """A path that is not a regular file (a FIFO, a device): reading it could block forever."""


def require_regular_file(path: str) -> None:
    """Raise :class:`NotRegularFile` for a local path that exists and is not a regular file (a FIFO, a device):
    opening it to read could block forever. A missing path is left to the open that follows."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        raise NotRegularFile(f"{path}: not a regular file")


class FileTooLarge(OSError):
    """A file over the size limit its reader set, refused unread; ``size`` is its size in bytes."""

    def __init__(self, path: str, size: int) -> None:
        super().__init__(f"{path}: {size:,} bytes, over the limit")
        self.size = size


def read_text(path: str | os.PathLike, fallback: str | None = None) -> str:
    """A small text file (a list of ids or paths, class names, a CSV) as text: UTF-8 (a BOM allowed) or UTF-16 with
    its BOM (Windows Notepad's "Unicode"). Other bytes are read in the ``fallback`` encoding when given (a
    Windows list, ``cp1252``), else a :class:`FormatError` naming the file, the place and what to do: never a
    traceback."""
    data = read_small_file(path)
    codec = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        if fallback:
            return data.decode(fallback, "replace")
        raise FormatError(os.fspath(path), "", f"not {codec.removesuffix('-sig').upper()} text (byte {e.start}: "
                          f"{data[e.start:e.start + 1]!r}); save it as UTF-8") from e


def trimmed_lines(text: str) -> tuple[int, list[str]]:
    """The lines of a list of names, each stripped, without the blank ones at its start and end (those between stay:
    in a class list a line is an id), and the file's line number of the first one kept."""
    lines = [ln.strip() for ln in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    start = next((k for k, ln in enumerate(lines) if ln), len(lines))
    return start + 1, lines[start:]


def read_small_file(path: str | os.PathLike, *, limit: int | None = None) -> bytes:
    """A whole file's bytes, local path or URL. Every reader reads annotation files through here.

    Local files are read with raw ``os`` calls (no buffered file object): annotation files are a few KB and there are
    tens of thousands of them. A missing file raises FileNotFoundError and any other failure OSError. With ``limit``
    (an annotation file found in a dataset, where a FIFO or a device would block the read forever) a local file must
    be a regular file (else :class:`NotRegularFile`) of at most ``limit`` bytes (else :class:`FileTooLarge`,
    unread); without it a pipe the user named (``<(zcat x.json.gz)``) is read as any file."""
    path = os.fspath(path)
    if is_url(path):
        fs, inner = url_to_fs(path)
        try:
            data = fs.cat_file(inner)
        except OSError:
            raise
        except Exception as e:  # a backend's own error type: an OSError, so callers report it as unreadable
            raise OSError(f"{type(e).__name__}: {e}") from e
        if limit is not None and len(data) > limit:
            raise FileTooLarge(path, len(data))
        return data
    fd = os.open(path, _READ_FLAGS if limit is None else _READ_FLAGS | _NO_WAIT)
    try:
        if limit is not None:
            st = os.fstat(fd)  # on the open file: no second path lookup
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(f"{path}: not a regular file")
            if st.st_size > limit:
                raise FileTooLarge(path, st.st_size)
        first = os.read(fd, 1 << 16)
        if limit is not None and len(first) < 1 << 16:  # a short read of a regular file (fstat said so) is its end
            data = first
        else:
            chunks = [first]
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            data = b"".join(chunks)
        if limit is not None and len(data) > limit:  # it grew since fstat, or says 0 as /proc files do
            raise FileTooLarge(path, len(data))
        return data
    finally:
        os.close(fd)
