"""Output transactions: every folder and file a run writes is built beside its place and swapped in at the end,
all together, and what a killed run left behind is finished or removed by the next one.

Use :func:`output_transaction` around a whole write (``ops.convert`` and ``ops.split`` do): inside it,
:func:`staged_dir` folders and :func:`datatools.core.atomic.atomic_write` files are only staged, and the block's
end swaps them all in with renames. An error anywhere in the block (a full disk, a collision, Ctrl-C) removes the
stages and leaves OUT exactly as it was. Outside a transaction, a :func:`staged_dir` is its own one-folder
transaction.

The names (``.<name>.datatools-staging-<pid>``, ``.<name>.datatools-old-<pid>``, the journal
``.datatools-commit-<pid>.json``) and what the next run does with those a killed run left (:func:`clean_leftovers`):
docs/data-safety.md.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from typing import Iterator

from datatools.core.errors import OutputError, UsageError

# Every name a run leaves beside an output says "datatools": a user's own .notes.txt.old-7 is never taken for one
_DEBRIS = re.compile(r"^\.(?P<name>.+)\.datatools-(?P<kind>staging|old)-(?P<pid>\d+)(?P<scratch>\.scratch)?$")
# What a datatools before these names left (.labels.staging-<pid>): its leftover only beside a folder datatools wrote
_OLD_DEBRIS = re.compile(r"^\.(?P<name>.+)\.(?P<kind>staging|old)-(?P<pid>\d+)(?P<scratch>\.scratch)?$")
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.\d{5,}\.datatools\.tmp$")  # atomic_write's
_JOURNAL = re.compile(r"^\.datatools-commit-(?P<pid>\d+)\.json(?P<tmp>\.tmp)?$")
_STAGE_IN_PATH = re.compile(r"(^|[/\\])\.([^/\\]+)\.datatools-staging-\d+(?:\.scratch)?(?=[/\\]|$)")
_active: set[str] = set()  # this process's own stages, journals and temp files, while in use
# Beside every folder a run swaps in (``.<name>`` + this): a folder without one that holds files is someone else's,
# never replaced or removed. Beside it, not in it: tools that list a folder and parse every file would choke on it.
MARKER = ".written-by-datatools"
_local = threading.local()  # .tx: the transaction open in this thread


def sibling(final: str, kind: str, pid: int | None = None) -> str:
    """``.<name>.datatools-<kind>-<pid>`` beside ``final`` (kind: ``staging`` or ``old``)."""
    parent, name = os.path.split(os.path.abspath(final))
    return os.path.join(parent, f".{name}.datatools-{kind}-{os.getpid() if pid is None else pid}")


def public_path(path: str) -> str:
    """``path`` as the user knows it: a stage folder in it named after the folder it becomes."""
    return _STAGE_IN_PATH.sub(lambda m: m.group(1) + m.group(2), os.fspath(path))


def _not_a_folder(path: str) -> str:
    """For ENOTDIR: the first folder on ``path`` that is a file, said plainly."""
    p = os.path.abspath(path)
    while True:
        up = os.path.dirname(p)
        if up == p:
            return ""
        if os.path.lexists(up) and not os.path.isdir(up):
            blocker = up
        elif os.path.lexists(p) and not os.path.isdir(p) and p != os.path.abspath(path):
            blocker = p
        else:
            p = up
            continue
        return f" ({blocker} is a file, not a folder)"


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Report an OSError raised inside the block as :class:`OutputError` ``cannot write PATH: why``. Use it around
    every write of an output, so a full disk, a read-only place or a file where a folder goes is one line naming
    the output, never a traceback, and never mistaken for an unreadable input."""
    try:
        yield
    except OutputError:
        raise
    except OSError as e:
        target = public_path(os.fspath(path))
        reason = e.strerror or str(e)
        if e.errno in (errno.ENOTDIR, errno.EEXIST):  # makedirs says EEXIST where a folder on the way is a file
            reason += _not_a_folder(target)
        raise OutputError(target, reason) from e


def remove(path: str) -> None:
    """Remove a file, a link (never what it points at) or a folder tree; gone already is fine."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------------------- leftovers of dead runs

def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), where the system says (Linux ``/proc``); else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            btime = next(int(ln.split()[1]) for ln in f if ln.startswith(b"btime"))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def owner_alive(pid: int, path: str) -> bool:
    """Whether the run that made ``path`` (named with ``pid``) may still be running: this process only while it
    uses the path; another pid while it is alive and started before the path was last changed (a pid given again
    to a newer process is not the owner)."""
    if pid == os.getpid():
        return path in _active
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    except (OverflowError, ValueError, OSError):
        return False
    started = _process_start(pid)
    if started is None:
        return True
    try:
        changed = os.lstat(path).st_mtime
    except OSError:
        return True  # gone meanwhile: nothing to do
    return started <= changed + 2.0  # /proc's boot time has whole seconds


def _own_move(staged, final, pid: int, folder: str) -> bool:
    """A journal entry as :meth:`Transaction.commit` writes it: a final path under the journal's folder and its
    own stage beside it (so a stray file never makes this rename anything else)."""
    if not isinstance(final, str) or not (staged is None or isinstance(staged, str)):
        return False
    inside = os.path.commonpath([folder, os.path.abspath(final)]) == folder
    return inside and (staged is None or staged == sibling(final, "staging", pid))


def clean_leftovers(folder: str | os.PathLike) -> list[str]:
    """Finish or undo what dead runs left in ``folder``, before a new run writes there: a journalled swap is rolled
    forward, an ``.old`` folder whose place is empty is put back, the rest is removed. Leftovers of live runs (a live
    process started before the leftover was made) are not touched. Returns the names handled."""
    folder = os.path.abspath(os.fspath(folder))
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    done = []
    for name in names:  # journals first: their stages are the new state
        m = _JOURNAL.match(name)
        path = os.path.join(folder, name)
        if m and not owner_alive(int(m["pid"]), path):
            if not m["tmp"]:
                try:
                    with open(path, encoding="utf-8") as f:
                        moves = [tuple(x) for x in json.load(f)["moves"]]
                    if not all(_own_move(staged, final, int(m["pid"]), folder) for staged, final in moves):
                        raise ValueError("not a journal of ours")
                    with writing(folder):
                        _swap_in(moves, int(m["pid"]))
                except (OSError, OutputError, ValueError, KeyError, TypeError):
                    pass  # unreadable or unfinishable journal: its stages are removed below, the old state stays
            remove(path)
            done.append(name)
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        m = _DEBRIS.match(name) or _OLD_DEBRIS.match(name)
        if m and "datatools-" not in name and not os.path.lexists(marker_of(os.path.join(folder, m["name"]))):
            m = None  # a user's own .notes.txt.old-7
        t = None if m else _TEMP.match(name)
        pid = int(m["pid"]) if m else int(t["pid"]) if t else None
        if pid is None or owner_alive(pid, path):
            continue
        final = os.path.join(folder, m["name"]) if m else ""
        with writing(path):
            if m and m["kind"] == "old" and not m["scratch"] and not os.path.lexists(final):
                os.rename(path, final)  # killed between the two renames of a swap: the old state comes back
            else:
                remove(path)
        done.append(name)
    return done


# ------------------------------------------------------------------------------------------------ transactions

@dataclass
class Transaction:
    """What a run has staged: ``(stage or None to remove, final)`` pairs, swapped in together by :meth:`commit`."""

    root: str
    moves: dict[str, str | None] = field(default_factory=dict)  # final -> stage (None: remove final)
    made: list[str] = field(default_factory=list)  # folders this run created (removed again on failure if empty)

    def stage(self, final: str, staged: str | None) -> None:
        _active.discard(self.moves.get(final) or "")
        self.moves[final] = staged

    def abort(self) -> None:
        """Remove what was staged, best effort: this runs while another error is on its way out, which a cleanup
        that fails too (a read-only file system refuses even to unlink what is not there) must not replace."""
        for staged in self.moves.values():
            if staged:
                try:
                    remove(staged)
                except OSError:
                    pass  # the next run removes a leftover stage
                _active.discard(staged)
        self.moves.clear()
        for folder in sorted(set(self.made), key=len, reverse=True):
            try:
                os.rmdir(folder)  # only if empty
            except OSError:
                pass

    def commit(self) -> None:
        """Swap everything in: folders first, then files (``data.yaml`` last: when it is new, so is the rest).
        Several swaps are journalled first, so a run killed halfway is rolled forward by the next one."""
        moves = sorted(self.moves.items(), key=lambda kv: kv[1] is not None and not os.path.isdir(kv[1]))
        moves = [(staged, final) for final, staged in moves]
        if not moves:
            return
        with _interrupts_held():
            self._commit(moves)

    def _commit(self, moves: list[tuple[str | None, str]]) -> None:
        journal = None
        if len(moves) > 1:
            where = os.path.commonpath([os.path.dirname(f) for _, f in moves])
            journal = os.path.join(where, f".datatools-commit-{os.getpid()}.json")
            _active.add(journal)
            with writing(os.path.join(where, "")):
                tmp = journal + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump({"pid": os.getpid(), "moves": moves}, f)
                os.replace(tmp, journal)
        try:
            with writing(self.root):
                _swap_in(moves, os.getpid())
                if journal:
                    os.unlink(journal)
        except BaseException:
            if journal is None:
                raise  # the one swap did not happen: abort() removes its stage
            self.moves.clear()  # the journal and its stages stay: the next run into this place finishes the swap
            raise
        finally:
            for staged, _ in moves:
                _active.discard(staged or "")
            _active.discard(journal or "")
        self.moves.clear()


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C (or SIGTERM) during the swap takes effect once it is done: OUT is then the complete new output, never
    one without ``labels/`` until the next run (an interrupt between two renames), and the old folders are gone."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)  # SIGTERM: the CLI makes it a Ctrl-C
    previous = [signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held]
    try:
        yield
    finally:
        for s, handler in zip(held, previous):
            signal.signal(s, handler)
    if caught:
        raise KeyboardInterrupt


def _swap_in(moves: list[tuple[str | None, str]], pid: int) -> None:
    """Rename each stage to its final place (a folder there waits as ``.old`` until all are in, then goes). Safe to
    run again on what it has done already: a journal's moves are rolled forward this way after a kill."""
    olds = []
    for staged, final in moves:
        old = sibling(final, "old", pid)
        olds.append(old)
        if staged is None:
            if os.path.lexists(final):
                os.rename(final, old)
            continue
        if not os.path.lexists(staged):
            continue  # moved already
        if os.path.isdir(staged) and not os.path.islink(staged):
            if os.path.lexists(final):
                remove(old)
                os.rename(final, old)
            os.rename(staged, final)
        else:
            os.replace(staged, final)
    for old in olds:
        remove(old)


def current() -> Transaction | None:
    """The transaction open in this thread, if any."""
    return getattr(_local, "tx", None)


def _make_parents(folder: str, tx: Transaction, *, shown: str | None = None) -> None:
    """Make ``folder`` and the parents it lacks, recorded in ``tx`` (removed if it fails); errors name ``shown``
    (default ``folder``): the output the caller writes."""
    missing = []
    up = folder
    while not os.path.isdir(up) and os.path.dirname(up) != up:
        missing.append(up)
        up = os.path.dirname(up)
    with writing(shown or folder):
        os.makedirs(folder, exist_ok=True)
    tx.made.extend(missing)


@contextlib.contextmanager
def output_transaction(root: str | os.PathLike) -> Iterator[Transaction]:
    """Stage every output written inside the block and swap it all in at its end; on any error remove the stages
    and leave the outputs as they were (see the module doc). ``root`` is the folder written into (OUT, or the
    folder of an output file): dead runs' leftovers there are cleaned up first. Inside an open transaction this
    joins it."""
    outer = current()
    if outer is not None:
        yield outer
        return
    root = os.path.abspath(os.fspath(root))
    clean_leftovers(root)
    tx = Transaction(root=root)
    _local.tx = tx
    try:
        yield tx
    except BaseException:
        _local.tx = None
        tx.abort()
        raise
    _local.tx = None
    try:
        tx.commit()
    except BaseException:
        tx.abort()  # the stages not swapped in, unless a journal (left for the next run) names them
        raise


@contextlib.contextmanager
def staged_dir(final: str | os.PathLike) -> Iterator[str]:
    """Build a whole output folder beside its final place (``.<name>.datatools-staging-<pid>``) and swap it in at the
    end of the :func:`output_transaction` (or, outside one, at the end of this block).

    Readers see the old folder or the new one, never a half-written one, and files left by an earlier run vanish,
    so a rerun gives the same tree. Files inside the stage are written plainly (see
    :func:`datatools.core.atomic.write_files`): the folder-level rename is what makes them atomic, which is far
    cheaper than a rename per small file. On error the stage is removed, and so are the parent folders this run
    made (OUT itself, on a first run) when nothing else was put in them.
    """
    final = os.path.abspath(os.fspath(final))
    parent = os.path.dirname(final)
    with output_transaction(parent) as tx:
        _make_parents(parent, tx)
        clean_leftovers(parent)  # first: a killed run's journal may be what finishes the folder and its marker
        refuse_foreign(final)
        stage = sibling(final, "staging")
        _active.add(stage)
        with writing(final):
            remove(stage)
            os.makedirs(stage)
        try:
            yield stage
            mark_written(final)
        except BaseException:
            remove(stage)
            _active.discard(stage)
            raise
        tx.stage(final, stage)


def mark_written(folder: str | os.PathLike) -> None:
    """Put ``folder``'s :func:`marker_of` beside it: with the open transaction's output, or now outside one."""
    marker = marker_of(os.fspath(folder))
    text = (f"datatools wrote {os.path.basename(os.path.abspath(folder))}/ beside this file: a datatools run that "
            "writes it again replaces it whole.\n").encode("utf-8")
    with writing(folder):
        stage = staged_file(marker)
        with open(stage or marker, "wb") as f:
            f.write(text)


def marker_of(folder: str) -> str:
    """The :data:`MARKER` file of ``folder``: ``.<name>.written-by-datatools`` beside it."""
    parent, name = os.path.split(os.path.abspath(folder))
    return os.path.join(parent, f".{name}{MARKER}")


def refuse_foreign(folder: str | os.PathLike, *, within: bool = False) -> None:
    """Refuse to replace or remove ``folder`` when it holds files and has no :func:`marker_of`: a user's own
    ``images/`` in a folder given as OUT was deleted with the rest. Absent or empty is fine. ``within``: a folder a
    run writes into (a split's ``fold_<i>``), which is datatools' when a marked folder is under it."""
    folder = os.fspath(folder)
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries]
    except (FileNotFoundError, NotADirectoryError):
        return
    marker = marker_of(folder)
    if not names or os.path.lexists(marker):
        return
    parent, staged = os.path.split(marker)
    if any(_DEBRIS.match(n) and n.startswith(f".{staged}.datatools-staging-") for n in os.listdir(parent)):
        return  # a run killed while it swapped the folder in: the next run into it finishes that (clean_leftovers)
    if within and any(f.endswith(MARKER) for _, _, files in os.walk(folder) for f in files):
        return
    raise UsageError(f"{folder} holds files datatools did not write (there is no {os.path.basename(marker_of(folder))} "
                     "beside it): choose another output folder, or remove that one")


def remove_at_commit(path: str | os.PathLike) -> None:
    """Remove ``path`` (a folder an earlier run left, which this one does not write) when the open transaction
    commits, or now outside one."""
    path = os.path.abspath(os.fspath(path))
    refuse_foreign(path, within=True)
    tx = current()
    if tx is None:
        with writing(path):
            remove(path)
            remove(marker_of(path))
    else:
        tx.stage(path, None)
        tx.stage(marker_of(path), None)  # its marker goes too: left, it would vouch for a folder made there later


def staged_file(final: str | os.PathLike) -> str | None:
    """Inside a transaction: the stage to write the file ``final`` to (``.<name>.datatools-staging-<pid>``), swapped
    in at commit, its folder made. Outside one: None (write it in place atomically)."""
    tx = current()
    if tx is None:
        return None
    final = os.path.abspath(os.fspath(final))
    _make_parents(os.path.dirname(final), tx, shown=final)  # recorded: a run that fails removes them
    stage = sibling(final, "staging")
    _active.add(stage)
    tx.stage(final, stage)
    return stage
