"""Where sharded work runs: in local processes, or as Ray tasks on a cluster (``--engine local|ray``).

Use :func:`run_shards` for work that splits into independent shards of files (a few hundred paths each) whose results
are small (a histogram, counts, findings). It runs a module-level ``fn`` over every shard and returns the results in
shard order, whatever order the shards finished in, so callers that merge them (integer sums, concatenated findings)
get the same answer from one process, many processes or many machines.

The Ray path uses plain Ray tasks (``ray.remote(max_retries=...)`` and a ``ray.wait`` loop): Ray schedules, retries a
task whose worker died, and reports completions, which feed the progress bar. Nothing here schedules on its own.
``ray`` is imported only on that path; ``--engine local`` (the default) never imports it.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence, TypeVar
from urllib.parse import unquote, urlparse

from datatools.core.errors import DatatoolsError, UsageError

T = TypeVar("T")
R = TypeVar("R")

ENGINES = ("local", "ray")
DEFAULT_MAX_RETRIES = 3
# Fault injection for tests: "K:/path/marker" makes the first attempt of shard K kill its worker with os._exit (the
# marker file records that the attempt happened, so the retry runs normally). "NAME@K:/path/marker" picks shard K of
# the tasks running function NAME only, and kills the worker after the task has done its work (written its files)
# but before it returns, so the retry meets the first attempt's output. Read on the driver and shipped with the task,
# so it works whatever environment the Ray workers were started with.
FAULT_ENV = "DATATOOLS_RAY_FAULT"


def check_engine(engine: str | None) -> str:
    engine = (engine or "local").lower()
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def local_path(src: str | os.PathLike) -> str:
    """``file://`` URLs become local paths; plain paths pass through. Other schemes (s3://, memory://, ...) are
    refused with a clear message: use it where a local path is required (OUT). A SRC (VOC, YOLO or COCO) may be
    any fsspec URL: see :func:`source_path` and :mod:`datatools.core.fs`."""
    text = os.fspath(src)
    if "://" not in text:
        return text
    url = urlparse(text)
    if url.scheme == "file":
        if url.netloc not in ("", "localhost"):
            raise UsageError(f"{text}: a file:// URL must name a local path (file:///abs/path), not host {url.netloc!r}")
        return unquote(url.path) or "/"
    raise UsageError(f"{text}: {url.scheme}:// needs a local path here: outputs (OUT) must be a local path, "
                     "a file:// URL, or a shared file system mounted at the same path on every Ray node; fsspec URLs "
                     "(s3://, memory://, simplecache::...) are read as inputs (SRC) only")


def source_path(src: str | os.PathLike) -> str:
    """SRC for a reader: a local path (``file://`` URLs made local, as :func:`local_path`), or any other fsspec URL
    kept as a string (it must exist; checked through fsspec, imported only then)."""
    text = os.fspath(src)
    if "://" not in text:
        return text
    if text.startswith("file://"):
        return local_path(text)
    from datatools.core import fs

    return fs.check_source(text)


def make_shards(items: Sequence[T], *, size: int | None = None) -> list[list[T]]:
    """Contiguous chunks of ``items`` (keep them sorted: shard order is output order).

    The default size gives at least ~16 shards (so a small cluster stays busy and a retry redoes little) and at most
    256 items per shard (so a task ships a list of paths of a few kilobytes and its result stays small).
    """
    n = len(items)
    if size is None:
        size = min(256, max(8, -(-n // 16)))
    size = max(1, int(size))
    return [list(items[i:i + size]) for i in range(0, n, size)]


def _local_call(job: tuple[Callable, object]):
    fn, shard = job
    return fn(shard)


def run_shards(fn: Callable[[T], R], shards: Sequence[T], *, engine: str = "local", address: str | None = None,
               progress: Callable[[int], None] | None = None, sizes: Sequence[int] | None = None,
               max_retries: int = DEFAULT_MAX_RETRIES, workers: int | None = None) -> list[R]:
    """``[fn(s) for s in shards]`` locally (processes, :func:`datatools.core.io.parallel_map`) or as Ray tasks.

    ``fn`` must be a module-level function (it is pickled by reference, so every Ray node needs datatools installed).
    ``progress(n)`` is called as shards finish, with ``sizes[i]`` (default 1) for shard i. On the Ray engine a task
    whose worker dies is retried up to ``max_retries`` times; an exception raised by ``fn`` is not retried (bad data
    should come back as findings, not exceptions). Ctrl-C cancels every pending task and re-raises.
    """
    engine = check_engine(engine)
    sizes = list(sizes) if sizes is not None else [1] * len(shards)
    if engine == "ray":
        return _run_ray(fn, shards, address=address, progress=progress, sizes=sizes, max_retries=max_retries,
                        workers=workers)
    from datatools.core.io import parallel_map

    done = iter(sizes)

    def advance(n: int) -> None:  # parallel_map reports shards in order; map them back to item counts
        if progress:
            progress(sum(next(done, 0) for _ in range(n)))

    return parallel_map(_local_call, [(fn, s) for s in shards], workers=workers, chunksize=1, progress=advance,
                        min_per_worker=1)


def _map_shard(job: tuple[Callable, Sequence]) -> list:
    fn, items = job
    return [fn(x) for x in items]


def map_items(fn: Callable[[T], R], items: Sequence[T], *, engine: str = "local", address: str | None = None,
              workers: int | None = None, progress: Callable[[int], None] | None = None) -> list[R]:
    """``[fn(x) for x in items]``, in order, on local processes (:func:`datatools.core.io.parallel_map`) or as Ray
    tasks over contiguous shards of ``items``. The readers take it as their ``mapper``, so one per-item function
    (a YOLO image and its label file, an image header) runs on either engine with the same results."""
    engine = check_engine(engine)
    if engine == "local":
        from datatools.core.io import parallel_map

        return parallel_map(fn, items, workers=workers, progress=progress)
    shards = make_shards(items)
    parts = run_shards(_map_shard, [(fn, s) for s in shards], engine=engine, address=address, progress=progress,
                       sizes=[len(s) for s in shards], workers=workers)
    return [r for part in parts for r in part]


def _range_task(job: tuple) -> int:
    from datatools.core.io import retry_safe_writes

    fn, state, n, scratch = job
    with retry_safe_writes(scratch):
        return fn(state, 0, n)


def write_ranges(fn: Callable[[object, int, int], int], state: object, n: int, *,
                 slicer: Callable[[object, int, int], object], stage: str, engine: str = "local",
                 address: str | None = None, workers: int | None = None,
                 progress: Callable[[int], None] | None = None) -> int:
    """A writer's per-file output work, ``fn(state, start, stop)`` over ``range(n)``, wherever the engine runs.

    Locally: forked processes (:func:`datatools.core.io.fork_ranges`; ``state`` is inherited, nothing shipped). On
    Ray: tasks over contiguous ranges, each shipped ``slicer(state, start, stop)`` (the packed records and output
    paths of its range, re-indexed from 0); the workers write the files into ``stage`` straight away, each one
    replaced atomically (:func:`datatools.core.io.retry_safe_writes`), so a retried task rewrites whole files.
    Returns the sum of ``fn``'s results."""
    if check_engine(engine) == "local":
        from datatools.core.io import fork_ranges

        return fork_ranges(fn, state, n, workers=workers, progress=progress)
    from datatools.core.io import removed_after, scratch_beside

    bounds = [(s[0], s[-1] + 1) for s in make_shards(range(n))]
    with removed_after(scratch_beside(stage)) as scratch:
        jobs = [(fn, slicer(state, a, b), b - a, scratch) for a, b in bounds]
        return sum(run_shards(_range_task, jobs, engine=engine, address=address, progress=progress,
                              sizes=[b - a for a, b in bounds], workers=workers))


def _place_task(job: tuple) -> int:
    from datatools.core.io import ImagesMode, place_files, retry_safe_writes

    pairs, mode, scratch = job
    with retry_safe_writes(scratch):
        place_files(pairs, ImagesMode(mode))
    return len(pairs)


def place_images(pairs: Sequence[tuple[str, str]], mode, *, stage: str, engine: str = "local",
                 address: str | None = None, workers: int | None = None) -> None:
    """Link or copy images to ``(src, dst)`` paths on ``engine``: on Ray the workers read and write the image files,
    shard by shard, so the driver never touches image bytes.

    Every ``dst`` is inside ``stage``, a :func:`datatools.core.io.staged_dir` (files written plainly; the stage's
    rename makes them atomic). On Ray every image goes through a scratch folder beside the stage and is
    ``os.replace``d into place, so a task retried after its worker died mid-copy leaves no partial file behind.
    """
    from datatools.core.io import ImagesMode, place_files, refuse_symlinks_to_urls, removed_after, scratch_beside

    mode = ImagesMode(mode)
    if mode is ImagesMode.NONE or not pairs:
        return
    if check_engine(engine) == "local":
        place_files(pairs, mode, workers=workers or 1)
        return
    refuse_symlinks_to_urls(pairs, mode)  # before any task starts
    with removed_after(scratch_beside(stage)) as scratch:
        run_shards(_place_task, [(s, mode.value, scratch) for s in make_shards(pairs)], engine=engine,
                   address=address, workers=workers)


def mapper_for(engine: str, address: str | None = None, workers: int | None = None):
    """A ``mapper(fn, items, progress=None)`` for the readers on ``engine`` (see :func:`map_items`)."""
    def mapper(fn, items, progress=None):
        return map_items(fn, items, engine=engine, address=address, workers=workers, progress=progress)

    return mapper


def reader_options(engine: str, address: str | None = None, workers: int | None = None) -> dict:
    """Keyword arguments that make a YOLO or COCO reader run its per-image reads on ``engine``: ``{}`` locally."""
    return {"mapper": mapper_for(engine, address, workers)} if check_engine(engine) == "ray" else {}


# ---------------------------------------------------------------------------------------------------------- Ray

def import_ray():
    """``import ray`` or a usage error that says how to get it."""
    try:
        import ray
    except ImportError as e:
        raise UsageError("--engine ray needs Ray, which is not installed: pip install 'datatools[ray]'") from e
    return ray


def ensure_ray(address: str | None = None, *, workers: int | None = None):
    """Connect to Ray once per process and return the module.

    ``address=None`` reuses a Ray already initialized in this process (a notebook, a test), else starts a local one on
    this machine (``workers`` CPUs, default all). ``"auto"`` joins the cluster started with ``ray start`` on this
    machine; ``HOST:PORT`` (or ``ray://HOST:PORT``) a remote one.
    """
    ray = import_ray()
    _ray_messages_to_stderr()
    if ray.is_initialized():
        return ray
    kwargs: dict = {"include_dashboard": False, "configure_logging": True, "logging_level": "warning",
                    "log_to_driver": False}
    if address in (None, "", "local"):
        # A fresh local cluster, not whatever /tmp/ray/ray_current_cluster points at: what you ask is what you get.
        kwargs["address"] = "local"
        if workers:
            kwargs["num_cpus"] = int(workers)
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise DatatoolsError(f"cannot start or reach Ray at {address or 'a new local cluster'}: {e}") from e
    return ray


def _ray_messages_to_stderr() -> None:
    """Ray prints cluster messages ("a worker died ...") on the driver's stdout from a background thread, which
    would corrupt ``--json`` output; send them to stderr. Best effort: a Ray without this hook is left alone."""
    try:
        from ray._private import worker as w

        original = w.print_to_stdstream
        if getattr(original, "_datatools", False):
            return

        def to_stderr(data, *args, **kwargs):
            return original({**data, "is_err": True}, *args, **kwargs)

        to_stderr._datatools = True  # type: ignore[attr-defined]
        w.print_to_stdstream = to_stderr
    except Exception:  # pragma: no cover - another Ray version
        pass


def _fault_due(spec: str, fn: Callable, index: int) -> tuple[bool, str]:
    """(whether this attempt of shard ``index`` of ``fn`` is to die, and when: "before" or "after" its work)."""
    k, _, marker = spec.partition(":")
    name, at, k = k.rpartition("@")
    if not marker or int(k) != index or (at and name != getattr(fn, "__name__", "")) or os.path.exists(marker):
        return False, ""
    with open(marker, "w") as f:
        f.write(f"{os.getpid()}\n")
    return True, "after" if at else "before"


def _ray_task(fn: Callable, index: int, shard, fault: str):
    """See :data:`FAULT_ENV` for ``fault``. A worker death (os._exit), not an exception: Ray retries it."""
    due, when = _fault_due(fault, fn, index) if fault else (False, "")
    if due and when == "before":
        os._exit(17)
    result = fn(shard)
    if due:
        os._exit(17)
    return result


_REMOTE: dict[int, object] = {}


def _run_ray(fn, shards, *, address, progress, sizes, max_retries, workers):
    ray = ensure_ray(address, workers=workers)
    from ray.exceptions import RayError, RayTaskError

    key = max_retries
    if key not in _REMOTE:
        _REMOTE[key] = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_ray_task)
    task = _REMOTE[key]
    fault = os.environ.get(FAULT_ENV, "")
    n = len(shards)
    results: list = [None] * n
    # Keep a bounded number of tasks in flight (Ray's own "limit pending tasks" pattern): the driver never has every
    # shard's arguments and results in the object store at once, and Ctrl-C has little to cancel.
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
    except Exception:  # pragma: no cover - a cluster that cannot say
        cpus = 1
    window = max(4, 4 * cpus)
    pending: dict = {}
    nxt = 0
    try:
        while nxt < n or pending:
            while nxt < n and len(pending) < window:
                pending[task.remote(fn, nxt, shards[nxt], fault)] = nxt
                nxt += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    results[i] = ray.get(ref)
                except RayTaskError as e:
                    if isinstance(e.cause, DatatoolsError):  # a usage or data error: as it would be raised locally
                        raise e.cause from None
                    raise DatatoolsError(f"shard {i} failed on a Ray worker: {e.cause if e.cause else e}") from e
                except RayError as e:
                    raise DatatoolsError(f"shard {i} failed after {max_retries} retries: {e}") from e
                if progress:
                    progress(sizes[i])
    except BaseException:
        # Ctrl-C or a failed shard: stop everything still queued or running, then let the caller clean up its stage.
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        if pending:
            # Wait (briefly) until the cancelled workers are gone, so none writes after the caller's cleanup.
            try:
                ray.wait(list(pending), num_returns=len(pending), timeout=10)
            except Exception:
                pass
        raise
    return results
