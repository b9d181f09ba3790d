"""Safe I/O: paths never escape the output, folders are swapped in whole, headers are read without pixels."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import datatools
from datatools.core import io
from tests.conftest import make_jpeg, make_voc_root, voc_xml


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/etc/passwd", "C:/x", "..", "", "a/./.."])
def test_safe_relpath_refuses_escapes(rel):
    with pytest.raises(datatools.UsageError):
        io.safe_relpath(rel)


@pytest.mark.parametrize("rel,expected", [("a/b.txt", "a/b.txt"), ("./a//b", "a/b"), ("a\\b", "a/b"), ("猫.txt", "猫.txt")])
def test_safe_relpath_keeps_plain_names(rel, expected):
    assert io.safe_relpath(rel) == expected


def test_staged_dir_replaces_whole_folder(tmp_path):
    final = tmp_path / "labels"
    with io.staged_dir(final) as stage:
        io.write_files([(os.path.join(stage, "a.txt"), "1"), (os.path.join(stage, "b.txt"), "2")])
    with io.staged_dir(final) as stage:
        io.write_files([(os.path.join(stage, "a.txt"), "3")])
    assert sorted(p.name for p in final.iterdir()) == ["a.txt"] and (final / "a.txt").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"]  # no stage or trash left behind


def test_staged_dir_removes_the_parents_it_made_on_error(tmp_path):
    """A first run that fails leaves no OUT behind (the stage's parents it created), but never a folder that was
    there before, nor one that holds something else."""
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError):
        with io.staged_dir(out / "labels") as stage:
            (Path(stage) / "x.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "other.txt").write_text("mine")
    with pytest.raises(RuntimeError):
        with io.staged_dir(tmp_path / "kept" / "deeper" / "labels"):
            raise RuntimeError("boom")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == ["other.txt"]


def test_staged_dir_keeps_old_folder_on_error(tmp_path):
    final = tmp_path / "labels"
    with io.staged_dir(final) as stage:
        io.write_files([(os.path.join(stage, "a.txt"), "old")])
    with pytest.raises(RuntimeError):
        with io.staged_dir(final) as stage:
            io.write_files([(os.path.join(stage, "a.txt"), "half")])
            raise RuntimeError("interrupted")
    assert (final / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"]


def test_rerun_with_fewer_images_leaves_no_stale_labels(tmp_path):
    items = {k: voc_xml(f"{k}.jpg", (20, 20), [{"name": "x", "box": (1, 1, 9, 9)}]) for k in "abc"}
    root = make_voc_root(tmp_path / "v", items, sets={"train": list("abc"), "small": ["a"]})
    datatools.convert("voc", root, "yolo", tmp_path / "y", sets="train", images_mode="none")
    datatools.convert("voc", root, "yolo", tmp_path / "y", sets="small", images_mode="none")
    assert sorted(p.relative_to(tmp_path / "y").as_posix() for p in (tmp_path / "y/labels").rglob("*.txt")) == \
        ["labels/small/a.txt"]


def test_atomic_write_leaves_no_temp(tmp_path):
    p = tmp_path / "d" / "f.json"
    io.atomic_write(p, "x")
    io.atomic_write(p, "y")
    assert p.read_text() == "y" and os.listdir(p.parent) == ["f.json"]


@pytest.mark.parametrize("orientation,expected", [(1, (40, 20)), (3, (40, 20)), (5, (20, 40)), (6, (20, 40)),
                                                  (7, (20, 40)), (8, (20, 40))])
def test_header_size_applies_exif_orientation(tmp_path, orientation, expected):
    h = io.read_image_header(make_jpeg(tmp_path / "r.jpg", 40, 20, exif_orientation=orientation))
    assert (h.width, h.height) == expected and (h.raw_width, h.raw_height) == (40, 20) and h.orientation == orientation


def test_header_reports_truncated_and_missing(tmp_path):
    p = make_jpeg(tmp_path / "ok.jpg", 64, 64)
    (tmp_path / "cut.jpg").write_bytes(p.read_bytes()[:20])
    assert io.read_image_header(tmp_path / "cut.jpg").error
    assert io.read_image_header(tmp_path / "none.jpg").error == "missing"


def test_parallel_map_keeps_order_and_reports_progress():
    seen = []
    out = io.parallel_map(abs, list(range(-500, 0)), workers=2, progress=seen.append, min_per_worker=100)
    assert out == [abs(x) for x in range(-500, 0)] and sum(seen) == 500


def _scaled_pid(state, task):
    return state["k"] * task, os.getpid()


def _range_sum(state, start, stop):
    return sum(state[start:stop])


@pytest.mark.parametrize("workers", [1, 3])
def test_fork_imap_inherits_state_and_keeps_task_order(workers):
    tasks = list(range(40))
    out = list(io.fork_imap(_scaled_pid, {"k": 3}, tasks, workers=workers))
    assert [v for v, _ in out] == [3 * t for t in tasks]
    pids = {pid for _, pid in out}
    assert (os.getpid() in pids) == (workers == 1)  # several workers: none of it in this process
    assert io._FORK_STATE is None


def _fail_on_three(state, task):
    if task == 3:
        raise ValueError("task 3")
    return task


def test_fork_imap_raises_a_workers_error_and_cleans_up():
    import gc

    with pytest.raises(ValueError, match="task 3"):
        list(io.fork_imap(_fail_on_three, None, list(range(8)), workers=2))
    assert io._FORK_STATE is None and gc.get_freeze_count() == 0
    gc.freeze()  # a caller's own freeze is kept
    try:
        assert list(io.fork_imap(_fail_on_three, None, [0, 1], workers=2)) == [0, 1]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_fork_ranges_sums_every_range_once():
    seen = []
    data = list(range(10_000))
    assert io.fork_ranges(_range_sum, data, len(data), workers=2, progress=seen.append, min_per_worker=100) == sum(data)
    assert sum(seen) == len(data) and len(seen) > 1
    assert io.fork_ranges(_range_sum, data, 0, workers=2) == 0


def _pillow_open():
    """Pillow's own ``Image.open``, whether or not ultralytics (imported by another test) has replaced it."""
    import sys

    from PIL import Image

    if Image.open.__module__ == "PIL.Image":
        return Image.open
    return sys.modules["ultralytics.utils.patches"]._image_open


_PILLOW_OPEN = _pillow_open()


def _pip_installing_open(fp, *args, **kwargs):
    """What ultralytics puts in place of ``PIL.Image.open``: on a file Pillow cannot identify it tries to install a
    plugin, which fails offline with ModuleNotFoundError."""
    from PIL import UnidentifiedImageError

    try:
        return _PILLOW_OPEN(fp, *args, **kwargs)
    except UnidentifiedImageError:
        raise ModuleNotFoundError("No module named 'pi_heif'") from None


def _wrapped_open():
    """A replacement made with functools.wraps: it carries Pillow's name and module, so only its code tells."""
    import functools

    @functools.wraps(_PILLOW_OPEN)
    def open_(fp, *args, **kwargs):
        return _pip_installing_open(fp, *args, **kwargs)

    return open_


def _closure_open():
    """A replacement that holds Pillow's function in a closure cell, not in its globals."""
    from PIL import UnidentifiedImageError

    inner = _PILLOW_OPEN

    def open_(fp, *args, **kwargs):
        try:
            return inner(fp, *args, **kwargs)
        except UnidentifiedImageError:
            raise ModuleNotFoundError("No module named 'pi_heif'") from None

    return open_


@pytest.mark.parametrize("make", [lambda: _pip_installing_open, _wrapped_open, _closure_open],
                         ids=["global", "functools.wraps", "closure"])
def test_image_reads_see_through_a_replaced_pil_open(tmp_path, monkeypatch, make):
    """A corrupt image gets Pillow's own message in a process where another library replaced ``PIL.Image.open``
    (ultralytics does on import), as in a clean one, and the good image still reads."""
    from PIL import Image

    from datatools.core import io
    from datatools.ops.stats import image_histogram

    replacement = make()

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    good = tmp_path / "good.png"
    Image.new("RGB", (7, 5), (10, 20, 30)).save(good)
    monkeypatch.setattr(Image, "open", replacement)
    monkeypatch.setattr(io, "_PIL_OPEN", None)
    for error in (io.read_image_header(str(bad)).error, image_histogram(str(bad))[2]):
        assert error.startswith("unreadable image: cannot identify image file"), error
    assert io.read_image_header(str(good)).width == 7
    assert image_histogram(str(good))[0][2, 30] == 35
    monkeypatch.setattr(io, "_PIL_OPEN", replacement)  # without the unwrapping: the other message
    assert "pi_heif" in io.read_image_header(str(bad)).error


def test_image_reads_see_through_ultralytics_patch(tmp_path, monkeypatch):
    pytest.importorskip("ultralytics")
    import ultralytics.utils.patches  # noqa: F401  (replaces PIL.Image.open on import)

    from datatools.core import io

    monkeypatch.setattr(io, "_PIL_OPEN", None)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    error = io.read_image_header(str(bad)).error
    assert error.startswith("unreadable image: cannot identify image file"), error
