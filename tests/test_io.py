"""Safe I/O: paths never escape the output, folders are swapped in whole, headers are read without pixels."""
from __future__ import annotations

import os

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
