"""The one parallel map: ``fn`` over chunks, results in chunk order, on local processes, threads or Ray tasks.

Every pipeline that splits its work (reading annotation files, reading image headers, writing label files, placing
images, counting pixels) cuts its items into chunks with :func:`chunked` and calls :func:`ordered_map`. ``engine``
picks the mapper and nothing else, so ``--engine local`` and ``--engine ray`` run the same function over the same chunks and give the
same results in the same order.

- ``engine="local"``: :class:`concurrent.futures.ProcessPoolExecutor` (or a :class:`ThreadPoolExecutor` with
  ``threads=True``, for work that is mostly system calls: links, copies, small writes). One worker, or one chunk,
  runs in the calling process.
- ``engine="ray"``: plain Ray tasks (``ray.remote(max_retries=...)`` and a ``ray.wait`` loop). Ray schedules,
  retries a task whose worker died, and reports completions. ``ray`` is imported only on this path.

``fn`` must be picklable (a module-level function, or a :func:`functools.partial` of one). Results should be small
(counts, findings, records without pixels): they travel back to the caller.
"""
from __future__ import annotations

import functools
import os
import pickle
import sys
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence, TypeVar

from datatools.core.errors import DatatoolsError, UsageError

T = TypeVar("T")
R = TypeVar("R")

ProgressFn = Callable[[int], None]
# A command's progress bar: update(stage name, items done since the last call, the stage's total or None)
StageProgress = Callable[[str, int, "int | None"], None]


def stage_callbacks(update: StageProgress | None, stage: str, *,
                    total: int | None = None) -> dict:
    """``progress=`` and ``on_total=`` for a reader or a mapped step, reported to ``update(stage, advance, total)``
    (a command's progress bar) as ``stage``; no callbacks without ``update``. A ``total`` known now is reported at
    once, and then only ``progress=`` is returned."""
    if update is None:
        return {}
    if total is not None:
        update(stage, 0, total)
        return {"progress": lambda n: update(stage, n, None)}
    return {"progress": lambda n: update(stage, n, None), "on_total": lambda t: update(stage, 0, t)}


ENGINES = ("local", "ray")
MAX_RETRIES = 3  # a Ray task whose worker died is run again up to this many times
# Fault injection for tests: "K:/path/marker" makes the first attempt of chunk K kill its Ray worker with os._exit
# (the marker file records that the attempt happened, so the retry runs normally). "NAME@K:/path/marker" picks chunk
# K of the tasks running function NAME only, and kills the worker after the task has done its work (written its
# files) but before it returns, so the retry meets the first attempt's output. Read on the driver and shipped with
# the task, so it works whatever environment the Ray workers were started with.
FAULT_ENV = "DATATOOLS_RAY_FAULT"


def check_engine(engine: str | None) -> str:
    """``engine`` lower-cased (``None`` is ``local``), or a usage error naming the choices."""
    engine = (engine or "local").lower()
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def default_workers() -> int:
    """The CPUs this process may use (its affinity: ``taskset``, a container's CPU set), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def plan_workers(n: int, workers: int | None, *, min_per_worker: int = 1) -> int:
    """How many local workers to use for ``n`` chunks (1 means: in the calling process)."""
    workers = default_workers() if workers is None or workers <= 0 else workers
    return max(1, min(workers, n // max(1, min_per_worker)))


def chunked(items: Sequence[T], size: int | None = None, *, workers: int | None = None) -> list[Sequence[T]]:
    """Contiguous chunks of ``items``, in order (keep them sorted: chunk order is output order).

    The default size gives about 8 chunks per worker (so a slow chunk does not hold the others up and a Ray retry
    redoes little), at least 16 and at most 512 items per chunk (so a task ships a few kilobytes of arguments and
    its result stays small).
    """
    n = len(items)
    if size is None:
        size = max(16, min(512, -(-n // (8 * (workers or default_workers())))))
    size = max(1, int(size))
    return [items[i:i + size] for i in range(0, n, size)]


def ordered_map(fn: Callable[[T], R], chunks: Sequence[T], *, engine: str = "local", address: str | None = None,
                workers: int | None = None, threads: bool = False, progress: ProgressFn | None = None) -> list[R]:
    """``[fn(c) for c in chunks]`` on ``engine``, in chunk order.

    ``progress(n)`` is called as chunks finish, with the chunk's length (1 for a chunk without one). ``workers``
    caps local processes or threads (default: all cores), or the CPUs of a new local Ray cluster. On Ray a task
    whose worker dies is retried up to :data:`MAX_RETRIES` times; an exception raised by
    ``fn`` is not retried (bad data should come back as findings, not exceptions) and is raised here as it would be
    locally. On an error or Ctrl-C the chunks not yet started are cancelled.
    """
    engine = check_engine(engine)
    sizes = [_size(c) for c in chunks]
    if engine == "ray":
        return _map_ray(fn, chunks, address=address, progress=progress, sizes=sizes, workers=workers)
    n_workers = plan_workers(len(chunks), workers)
    results = []
    if n_workers <= 1:
        for chunk, size in zip(chunks, sizes):
            results.append(fn(chunk))
            if progress:
                progress(size)
        return results
    if not threads:  # a function that cannot be pickled raises here: a pool fed one can hang in shutdown (3.11)
        pickle.dumps(fn)
        _prctl()
    pool: Executor = (ThreadPoolExecutor(max_workers=n_workers) if threads else
                      ProcessPoolExecutor(max_workers=n_workers, initializer=_end_with_parent,
                                          mp_context=_context()))
    try:
        futures = [pool.submit(fn, chunk) for chunk in chunks]
        for fut, size in zip(futures, sizes):
            results.append(fut.result())
            if progress:
                progress(size)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def _context():
    """The start method set, else the platform's default, without setting it: a pool made with the default context
    fixed the process's method, and a script that called set_start_method("spawn") after a library call failed."""
    import multiprocessing

    return multiprocessing.get_context(multiprocessing.get_start_method(allow_none=True)
                                       or multiprocessing.get_all_start_methods()[0])


@functools.cache
def _prctl():
    """libc's prctl, or None where there is none; loaded once, in the command before a pool forks its workers."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
    except Exception:  # noqa: BLE001 - no libc or no prctl (on Windows CDLL(None) raises TypeError)
        return None


def _end_with_parent() -> None:
    """A pool worker ends when the process that started it ends: a command killed (SIGKILL, the OOM killer) runs no
    cleanup, and its workers went on writing into OUT, then waited forever. Linux only (``PR_SET_PDEATHSIG``); the
    parent is whichever process forked the worker (the command, or a forkserver). libc is loaded in the command
    before the fork (importing ctypes in each worker cost ~10 ms a pool)."""
    import signal

    parent = os.getppid()
    prctl = _prctl()
    if prctl is None or prctl(1, signal.SIGKILL) != 0:  # 1: PR_SET_PDEATHSIG
        return
    if os.getppid() != parent:  # the parent died before that took effect
        os._exit(1)


@dataclass(frozen=True)
class Mapper:
    """:func:`ordered_map` bound to where it runs. ``ops/`` makes one from ``--engine``/``--ray-address``/``--workers``
    and hands it to the format readers and writers, which call it with their module-level per-chunk functions and
    never learn which engine it is. ``Mapper()`` runs on local processes over all cores.
    """

    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    threads: bool = False  # local threads, never processes (a library call in a script that spawns: see datasets)

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine", check_engine(self.engine))

    @property
    def may_repeat(self) -> bool:
        """Whether a chunk may run more than once (a Ray task retried after its worker died): writers then replace
        each output file atomically (see :func:`datatools.core.atomic.retry_scratch`). A local run never repeats
        a chunk: a dead worker fails the whole run."""
        return self.engine == "ray"

    def chunks(self, items: Sequence[T]) -> list[Sequence[T]]:
        """:func:`chunked` for this mapper's workers."""
        return chunked(items, workers=self.workers if self.engine == "local" else None)

    def __call__(self, fn: Callable[[T], R], chunks: Sequence[T], *, progress: ProgressFn | None = None,
                 threads: bool = False) -> list[R]:
        """``[fn(c) for c in chunks]`` in order (see :func:`ordered_map`; ``threads`` only applies locally)."""
        return ordered_map(fn, chunks, engine=self.engine, address=self.address, workers=self.workers,
                           threads=threads or self.threads, progress=progress)

    def items(self, fn: Callable[[T], R], items: Sequence[T], *, progress: ProgressFn | None = None) -> list[R]:
        """``[fn(x) for x in items]`` in order, in chunks (see :func:`map_items`)."""
        return map_items(fn, items, engine=self.engine, address=self.address, workers=self.workers,
                         threads=self.threads, progress=progress)


def map_items(fn: Callable[[T], R], items: Sequence[T], *, engine: str = "local", address: str | None = None,
              workers: int | None = None, threads: bool = False, progress: ProgressFn | None = None,
              chunk_size: int | None = None, min_per_worker: int = 200) -> list[R]:
    """``[fn(x) for x in items]`` through :func:`ordered_map` over :func:`chunked` items: for per-item work (an image
    header, a drawing) whose results are small. Locally, fewer than ``min_per_worker`` items per worker run in
    fewer processes (none below that: a pool costs more than it saves on a few hundred cheap items)."""
    engine = check_engine(engine)
    if engine == "local":
        workers = plan_workers(len(items), workers, min_per_worker=min_per_worker)
    parts = ordered_map(partial(_apply_each, fn), chunked(items, chunk_size, workers=workers), engine=engine,
                        address=address, workers=workers, threads=threads, progress=progress)
    return [r for part in parts for r in part]


def _apply_each(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [fn(x) for x in chunk]


def _size(chunk: object) -> int:
    try:
        return len(chunk)  # type: ignore[arg-type]
    except TypeError:
        return 1


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
    """(whether this attempt of chunk ``index`` of ``fn`` is to die, and when: "before" or "after" its work)."""
    k, _, marker = spec.partition(":")
    name, at, k = k.rpartition("@")
    target = getattr(fn, "func", fn)  # a partial names its function
    if not marker or int(k) != index or (at and name != getattr(target, "__name__", "")) or os.path.exists(marker):
        return False, ""
    with open(marker, "w") as f:
        f.write(f"{os.getpid()}\n")
    return True, "after" if at else "before"


def _ray_task(fn: Callable, index: int, chunk, fault: str, cwd: str = ""):
    """See :data:`FAULT_ENV` for ``fault``. A worker death (os._exit), not an exception: Ray retries it. ``cwd``: the
    driver's working folder, where its relative paths (``datatools check dvoc``) are, whatever folder the cluster was
    started from (the same path on every node, as absolute ones)."""
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    due, when = _fault_due(fault, fn, index) if fault else (False, "")
    if due and when == "before":
        os._exit(17)
    result = fn(chunk)
    if due:
        os._exit(17)
    return result


_REMOTE: list = []  # the Ray task of _ray_task, made once per process


def _map_ray(fn, chunks, *, address, progress, sizes, workers) -> list:
    ray = ensure_ray(address, workers=workers)
    from ray.exceptions import RayError, RayTaskError

    if not _REMOTE:
        _REMOTE.append(ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(_ray_task))
    task = _REMOTE[0]
    fault = os.environ.get(FAULT_ENV, "")
    n = len(chunks)
    results: dict[int, object] = {}
    # Keep a bounded number of tasks in flight (Ray's own "limit pending tasks" pattern): the driver never has every
    # chunk's arguments and results in the object store at once, and Ctrl-C has little to cancel.
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
    except Exception:  # pragma: no cover - a cluster that cannot say
        cpus = 1
    window = max(4, 4 * cpus)
    cwd = os.getcwd()  # where the driver's relative paths are (see _ray_task)
    pending: dict = {}
    nxt = 0
    try:
        while nxt < n or pending:
            while nxt < n and len(pending) < window:
                pending[task.remote(fn, nxt, chunks[nxt], fault, cwd)] = nxt
                nxt += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    results[i] = ray.get(ref)
                except RayTaskError as e:
                    if isinstance(e.cause, DatatoolsError):  # a usage or data error: as it would be raised locally
                        raise e.cause from None
                    raise DatatoolsError(f"chunk {i} failed on a Ray worker: {e.cause if e.cause else e}") from e
                except RayError as e:
                    raise DatatoolsError(f"chunk {i} failed after {MAX_RETRIES} retries: {e}") from e
                if progress:
                    progress(sizes[i])
    except BaseException:
        # Ctrl-C or a failed chunk: stop everything still queued or running, then let the caller clean up its stage.
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
    return [results[i] for i in range(n)]
