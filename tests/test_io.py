"""Safe I/O: paths never escape the output, folders are swapped in whole, headers are read without pixels."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import datatools
from datatools.core import atomic, images, parallel, paths
from tests.conftest import make_jpeg, make_voc_root, voc_xml


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/etc/passwd", "C:/x", "..", "", "a/./.."])
def test_safe_relpath_refuses_escapes(rel):
    with pytest.raises(datatools.UsageError):
        paths.safe_relpath(rel)


@pytest.mark.parametrize("rel,expected", [("a/b.txt", "a/b.txt"), ("./a//b", "a/b"), ("a\\b", "a/b"), ("猫.txt", "猫.txt")])
def test_safe_relpath_keeps_plain_names(rel, expected):
    assert paths.safe_relpath(rel) == expected


def test_staged_dir_replaces_whole_folder(tmp_path):
    final = tmp_path / "labels"
    with atomic.staged_dir(final) as stage:
        atomic.write_files([(os.path.join(stage, "a.txt"), "1"), (os.path.join(stage, "b.txt"), "2")])
    with atomic.staged_dir(final) as stage:
        atomic.write_files([(os.path.join(stage, "a.txt"), "3")])
    assert sorted(p.name for p in final.iterdir()) == ["a.txt"] and (final / "a.txt").read_text() == "3"
    # no stage or trash left behind; the marker beside it says datatools wrote it
    assert sorted(p.name for p in tmp_path.iterdir()) == [".labels.written-by-datatools", "labels"]


def test_staged_dir_removes_the_parents_it_made_on_error(tmp_path):
    """A first run that fails leaves no OUT behind (the stage's parents it created), but never a folder that was
    there before, nor one that holds something else."""
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError):
        with atomic.staged_dir(out / "labels") as stage:
            (Path(stage) / "x.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "other.txt").write_text("mine")
    with pytest.raises(RuntimeError):
        with atomic.staged_dir(tmp_path / "kept" / "deeper" / "labels"):
            raise RuntimeError("boom")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["other.txt"]


def test_staged_dir_keeps_old_folder_on_error(tmp_path):
    final = tmp_path / "labels"
    with atomic.staged_dir(final) as stage:
        atomic.write_files([(os.path.join(stage, "a.txt"), "old")])
    with pytest.raises(RuntimeError):
        with atomic.staged_dir(final) as stage:
            atomic.write_files([(os.path.join(stage, "a.txt"), "half")])
            raise RuntimeError("interrupted")
    assert (final / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".labels.written-by-datatools", "labels"]


def test_a_folder_datatools_did_not_write_is_never_replaced(tmp_path):
    """OUT/images holding the user's own pictures was replaced whole (deleted) by voc2yolo into OUT."""
    from datatools.core.errors import UsageError

    mine = tmp_path / "out" / "images"
    mine.mkdir(parents=True)
    (mine / "my_photo.jpg").write_text("precious")
    with pytest.raises(UsageError, match=r"out/images holds files datatools did not write"):
        with atomic.staged_dir(mine) as stage:
            (Path(stage) / "x.jpg").write_text("x")
    assert [p.name for p in mine.iterdir()] == ["my_photo.jpg"] and not list(tmp_path.glob("out/.*"))
    (mine / "my_photo.jpg").unlink()  # an empty folder is no one's
    with atomic.staged_dir(mine) as stage:
        (Path(stage) / "x.jpg").write_text("x")
    with atomic.staged_dir(mine) as stage:  # and then datatools'
        (Path(stage) / "y.jpg").write_text("y")
    assert [p.name for p in mine.iterdir()] == ["y.jpg"]
    # a folder a run writes into (a split's fold) is removed only when datatools wrote under it
    (tmp_path / "fold_9").mkdir()
    (tmp_path / "fold_9" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="fold_9 holds files"):
        atomic.remove_at_commit(tmp_path / "fold_9")
    atomic.remove_at_commit(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rerun_with_fewer_images_leaves_no_stale_labels(tmp_path):
    items = {k: voc_xml(f"{k}.jpg", (20, 20), [{"name": "x", "box": (1, 1, 9, 9)}]) for k in "abc"}
    root = make_voc_root(tmp_path / "v", items, sets={"train": list("abc"), "small": ["a"]})
    datatools.convert("voc", root, "yolo", tmp_path / "y", sets="train", images_mode="none")
    datatools.convert("voc", root, "yolo", tmp_path / "y", sets="small", images_mode="none")
    assert sorted(p.relative_to(tmp_path / "y").as_posix() for p in (tmp_path / "y/labels").rglob("*.txt")) == \
        ["labels/small/a.txt"]


def test_atomic_write_leaves_no_temp(tmp_path):
    p = tmp_path / "d" / "f.json"
    atomic.atomic_write(p, "x")
    atomic.atomic_write(p, "y")
    assert p.read_text() == "y" and os.listdir(p.parent) == ["f.json"]


@pytest.mark.parametrize("orientation,expected", [(1, (40, 20)), (3, (40, 20)), (5, (20, 40)), (6, (20, 40)),
                                                  (7, (20, 40)), (8, (20, 40))])
def test_header_size_applies_exif_orientation(tmp_path, orientation, expected):
    h = images.read_image_header(make_jpeg(tmp_path / "r.jpg", 40, 20, exif_orientation=orientation))
    assert (h.width, h.height) == expected and (h.raw_width, h.raw_height) == (40, 20) and h.orientation == orientation


def test_header_reports_truncated_and_missing(tmp_path):
    p = make_jpeg(tmp_path / "ok.jpg", 64, 64)
    (tmp_path / "cut.jpg").write_bytes(p.read_bytes()[:20])
    assert images.read_image_header(tmp_path / "cut.jpg").error
    assert images.read_image_header(tmp_path / "none.jpg").error == "missing"


def test_ordered_map_keeps_order_and_reports_progress():
    seen = []
    chunks = parallel.chunked(list(range(-500, 0)), 50)
    out = parallel.ordered_map(_abs_chunk, chunks, workers=2, progress=seen.append)
    assert [x for part in out for x in part] == [abs(x) for x in range(-500, 0)] and sum(seen) == 500
    assert len(seen) == 10


def _abs_chunk(chunk):
    return [abs(x) for x in chunk]


def _pid_chunk(chunk):
    return [(x, os.getpid()) for x in chunk]


@pytest.mark.parametrize("threads", [False, True])
def test_map_items_runs_in_workers_in_order(threads):
    out = parallel.map_items(_pid_chunk_item, list(range(600)), workers=2, threads=threads, min_per_worker=100)
    assert [x for x, _ in out] == list(range(600))
    assert (os.getpid() in {pid for _, pid in out}) is threads  # processes: none of it in this process


def _pid_chunk_item(x):
    return x, os.getpid()


def test_map_items_stays_in_process_for_small_inputs():
    out = parallel.map_items(_pid_chunk_item, list(range(50)), workers=4)
    assert {pid for _, pid in out} == {os.getpid()}


def _fail_on_three(chunk):
    if 3 in chunk:
        raise ValueError("chunk with 3")
    return chunk


def test_ordered_map_raises_a_workers_error():
    with pytest.raises(ValueError, match="chunk with 3"):
        parallel.ordered_map(_fail_on_three, [[0], [1], [2], [3], [4]], workers=2)


def test_a_function_processes_cannot_take_is_refused_before_a_pool_starts(monkeypatch):
    """A ProcessPoolExecutor fed a function it cannot pickle sometimes hangs in its shutdown on Python 3.11 (2 runs
    of 5 here): the map refuses such a function before it makes a pool."""
    import pickle

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_pool)
    with pytest.raises((pickle.PicklingError, AttributeError)):  # a lambda, a local function
        parallel.Mapper(workers=2)(lambda chunk: chunk, [[1], [2], [3]])
    assert parallel.Mapper(workers=2)(len, [[1], [2, 3]], threads=True) == [1, 2]  # threads need no pickling


@pytest.mark.skipif(not os.path.exists("/proc/self"), reason="Linux: PR_SET_PDEATHSIG")
def test_pool_workers_end_when_the_command_is_killed(tmp_path):
    """SIGKILL of a command (or the OOM killer) left its pool workers writing into OUT, then blocked forever."""
    import signal
    import subprocess
    import sys
    import time

    code = f"""
import os, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from datatools.core.parallel import ordered_map
from tests.test_io import _slow_chunk
ordered_map(_slow_chunk, [[{str(tmp_path)!r}, k] for k in range(4)], workers=2)
"""
    parent = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while len(list(tmp_path.glob("*.pid"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
    assert len(pids) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_pool_workers_run_under_every_start_method(method):
    """The workers' end-with-the-parent set-up compared the pid of the process that made the pool with the
    worker's parent: under forkserver (Python 3.14's default on Linux) that is the server, and every worker quit."""
    import subprocess
    import sys

    code = (f"import multiprocessing as mp; mp.set_start_method({method!r}); "
            "from datatools.core.parallel import ordered_map; from tests.test_io import _abs_chunk; "
            "print(ordered_map(_abs_chunk, [[-1], [-2], [-3], [-4]], workers=2))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=str(Path(__file__).resolve().parents[1]))
    assert p.returncode == 0 and p.stdout.strip() == "[[1], [2], [3], [4]]", p.stderr


def _slow_chunk(chunk):
    folder, k = chunk
    Path(folder, f"{k}.pid").write_text(str(os.getpid()))
    time.sleep(60)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_mapper_checks_its_engine():
    with pytest.raises(datatools.UsageError, match="unknown engine"):
        parallel.Mapper("spark")
    assert not parallel.Mapper().may_repeat and parallel.Mapper("RAY").may_repeat


@pytest.mark.parametrize("mode", ["link", "copy", "symlink"])
def test_place_images_links_or_copies_into_the_stage(tmp_path, mode):
    srcs = [make_jpeg(tmp_path / "in" / f"{i}.jpg", 8, 8) for i in range(40)]
    atomic.place_images(tmp_path / "out" / "images", [(str(p), f"train/{p.name}") for p in srcs], mode,
                        mapper=parallel.Mapper(workers=2))
    placed = sorted((tmp_path / "out" / "images" / "train").iterdir())
    assert [p.name for p in placed] == sorted(p.name for p in srcs)
    assert all(p.read_bytes() == (tmp_path / "in" / p.name).read_bytes() for p in placed)
    assert all(p.is_symlink() == (mode == "symlink") for p in placed)
    if mode == "link":
        assert placed[0].stat().st_ino == (tmp_path / "in" / placed[0].name).stat().st_ino
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".images.written-by-datatools", "images"]


def test_retry_safe_writes_replace_the_files_of_a_first_attempt(tmp_path):
    """A chunk run twice (a Ray retry) rewrites its files whole through the scratch folder, and places an image
    over the one of the first attempt, where a plain write would fail on the existing link."""
    src = make_jpeg(tmp_path / "a.jpg", 8, 8)
    stage = tmp_path / "stage"
    stage.mkdir()
    scratch = atomic.scratch_beside(str(stage))
    os.mkdir(scratch)
    for attempt in ("first", "second"):
        atomic.write_stage_file(str(stage / "a.txt"), attempt.encode(), scratch)
        atomic.place_stage_file(str(src), str(stage / "a.jpg"), atomic.ImagesMode.LINK, scratch)
    assert (stage / "a.txt").read_text() == "second" and sorted(os.listdir(stage)) == ["a.jpg", "a.txt"]
    assert os.listdir(scratch) == []
    with pytest.raises(datatools.core.errors.OutputError, match="already"):  # outside the block: plain writes,
        # which a repeat would trip on (never written through)
        atomic.place_stage_file(str(src), str(stage / "a.jpg"), atomic.ImagesMode.LINK)


def test_list_images_is_sorted_relative_and_skips_other_files(tmp_path):
    for rel in ("b/2.PNG", "a.jpg", "b/1.jpeg", "notes.txt", "c/.jpg.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = images.list_images(tmp_path)
    assert list(found) == ["a.jpg", "b/1.jpeg", "b/2.PNG"]
    assert found["b/1.jpeg"] == str(tmp_path / "b" / "1.jpeg")
    assert images.list_images(tmp_path, recursive=False) == {"a.jpg": str(tmp_path / "a.jpg")}
    assert images.list_images(tmp_path / "missing") == {}


@pytest.mark.parametrize("out,inputs,ok", [("o", ["i"], True), ("i", ["i"], False), ("i/", ["i"], False)])
def test_check_output_dir_refuses_the_input(tmp_path, out, inputs, ok):
    args = (tmp_path / out, [tmp_path / i for i in inputs])
    if ok:
        assert paths.check_output_dir(*args) == (tmp_path / out).resolve()
    else:
        with pytest.raises(datatools.UsageError, match="is the input"):
            paths.check_output_dir(*args)


def test_check_output_dir_refuses_a_url_output(tmp_path):
    with pytest.raises(datatools.UsageError, match="must be a local path"):
        paths.check_output_dir("memory://out", [tmp_path])


def test_refuse_replacing_inputs_guards_the_folders_a_writer_swaps(tmp_path):
    with pytest.raises(datatools.UsageError, match="holds the input"):
        paths.refuse_replacing_inputs(tmp_path, ["Annotations"], [tmp_path / "Annotations" / "sub"])
    paths.refuse_replacing_inputs(tmp_path, ["labels"], [tmp_path / "Annotations", "memory://x/labels"])


def test_default_workers_follow_the_cpu_affinity(monkeypatch):
    """Under taskset or a container's CPU set, the readers start as many processes as there are CPUs to run them
    (os.cpu_count() counts the machine's), and so does the torch loader's default."""
    import os

    from datatools.core.parallel import default_workers
    from datatools.datasets.loader import default_num_workers

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_workers() == 1 and default_num_workers(16) == 1
