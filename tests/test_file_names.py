"""File names as real exports hold them: linked folders, links to nothing, hidden names, blanks around a name,
letters composed or decomposed, names near the file system's length limit, macOS' AppleDouble files."""
from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

from datatools.cli import cli
from datatools.core import fs
from datatools.ops.convert import read_source
from tests.conftest import make_jpeg, make_voc_root, voc_xml


def run(*args: str):
    return CliRunner().invoke(cli, [*args])


def one_box(name: str) -> str:
    return voc_xml(name, (40, 30), [{"name": "cat", "box": (2, 2, 20, 20)}])


def yolo_split(root: Path, rel: str) -> None:
    make_jpeg(root / "images" / "train" / f"{rel}.jpg", 40, 30)
    label = root / "labels" / "train" / f"{rel}.txt"
    label.parent.mkdir(parents=True, exist_ok=True)
    label.write_text("0 0.5 0.5 0.2 0.2\n")


def test_a_linked_camera_folder_is_read_as_ultralytics_reads_it(tmp_path):
    """images/train/camA -> a folder elsewhere (and its labels likewise): its images were left out with no word;
    ultralytics trains on them."""
    pool = tmp_path / "pool"
    yolo_split(pool, "camA/1")
    yolo_split(pool, "camA/2")
    data = tmp_path / "yolo"
    yolo_split(data, "own/3")
    (data / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [cat]\n")
    os.symlink(pool / "images" / "train" / "camA", data / "images" / "train" / "camA")
    os.symlink(pool / "labels" / "train" / "camA", data / "labels" / "train" / "camA")
    ds = read_source(str(data), None)
    assert sorted(r.image_id for r in ds.images) == ["camA/1", "camA/2", "own/3"]
    assert sum(len(r.annotations) for r in ds.images) == 3


def test_links_back_into_the_folder_list_each_file_once_and_never_loop(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "a.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "d" / "sub", tmp_path / "d" / "again")  # a second name for a folder already listed
    os.symlink(tmp_path / "d", tmp_path / "d" / "sub" / "up")  # a cycle
    (tmp_path / "d" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble: no picture
    (tmp_path / "d" / ".b.jpg").write_bytes(b"x")
    os.symlink("/", tmp_path / "d" / "root")  # the whole file system is no folder of the dataset
    assert fs.LocalFiles.find(str(tmp_path / "d")) == [".b.jpg", "sub/a.jpg"]
    assert fs.LocalFiles.find(str(tmp_path / "d"), hidden=False) == ["sub/a.jpg"]


def test_a_link_to_nothing_is_a_missing_image_not_the_end_of_the_run(tmp_path):
    """A dangling JPEGImages/c.jpg link stopped convert, split and filter with 'cannot read', nothing written;
    check called the same image missing. It is one missing image, named as a link, and the rest is written."""
    voc = make_voc_root(tmp_path / "voc", {"a": one_box("a.jpg"), "c": one_box("c.jpg")}, images={"a.jpg": (40, 30)})
    os.symlink("/nonexistent/c.jpg", voc / "JPEGImages" / "c.jpg")
    res = run("convert", str(voc), str(tmp_path / "out"), "--to", "yolo", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    [missing] = [f for f in report["findings"] if f["code"] == "missing-image"]
    assert "is a link to /nonexistent/c.jpg, which is not there" in missing["message"]
    assert sorted(p.name for p in (tmp_path / "out" / "images" / "all").iterdir()) == ["a.jpg"]


def test_hidden_names_are_renamed_in_yolo_output_so_they_are_read_back(tmp_path):
    """VOC's .hidden.jpg (or a COCO file_name in .cam/) was written as it was into images/: ultralytics' listing and
    ours skip hidden names, so the image and its boxes were gone when the output was read, with 0 warnings."""
    voc = make_voc_root(tmp_path / "voc", {".hidden": one_box(".hidden.jpg"), "a": one_box("a.jpg")},
                        images={".hidden.jpg": (40, 30), "a.jpg": (40, 30)})
    res = run("convert", str(voc), str(tmp_path / "out"), "--to", "yolo", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["notes"].get("folder-renamed") == 1
    back = read_source(str(tmp_path / "out"), None)
    assert sorted(r.image_id for r in back.images) == ["_.hidden", "a"]
    assert sum(len(r.annotations) for r in back.images) == 2


@pytest.mark.parametrize("fmt", ["coco", "cvat", "openimages", "labelstudio"])
def test_blanks_around_a_file_name_do_not_lose_the_image(tmp_path, fmt):
    """' lead.jpg' was written as it is and read back as 'lead.jpg', which is no file: a missing-image error (COCO,
    CVAT, Label Studio) or the image and its boxes dropped (Open Images)."""
    voc = make_voc_root(tmp_path / "voc", {" lead": one_box(" lead.jpg"), "trail ": one_box("trail .jpg")},
                        images={" lead.jpg": (40, 30), "trail .jpg": (40, 30)})
    out = tmp_path / fmt
    assert run("convert", str(voc), str(out), "--to", fmt).exit_code == 0
    back = read_source(str(out), None)
    assert len(back.images) == 2 and all(r.image_path for r in back.images)
    assert sum(len(r.annotations) for r in back.images) == 2
    assert not [f for f in back.findings if f.code == "missing-image"]


def test_a_decomposed_name_on_disk_is_the_composed_name_an_annotation_writes(tmp_path):
    """macOS writes 'cafe' + U+0301; the COCO file (and VOC's <filename>) says U+00E9: 'no image café.jpg in
    images', about a file listed right there."""
    composed = "caf\u00e9.jpg"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    make_jpeg(tmp_path / "images" / decomposed, 40, 30)
    coco = {"images": [{"id": 1, "file_name": composed, "width": 40, "height": 30}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100,
                             "iscrowd": 0}],
            "categories": [{"id": 1, "name": "cat"}]}
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    ds = read_source(str(tmp_path / "ann.json"), None, images=tmp_path / "images")
    assert [r.image_path for r in ds.images] == [str(tmp_path / "images" / decomposed)]
    assert not [f for f in ds.findings if f.code in ("missing-image", "filename-mismatch")]


def test_a_name_near_the_length_limit_is_drawn(tmp_path):
    """visualize stopped at a 224-character name: its temp name added 40 characters, past the 255 bytes a name may
    have ('File name too long'), with half the images drawn."""
    name = "x" * 224
    voc = make_voc_root(tmp_path / "voc", {name: one_box(f"{name}.jpg")}, images={f"{name}.jpg": (40, 30)})
    res = run("visualize", str(voc), str(tmp_path / "viz"))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "viz" / f"{name}.jpg").is_file()


def test_appledouble_files_are_no_annotations(tmp_path):
    """A dataset copied through a macOS disk has ._a.xml beside a.xml (binary, not XML): check exited 1 with an
    xml-parse error for each."""
    voc = make_voc_root(tmp_path / "voc", {"a": one_box("a.jpg")}, images={"a.jpg": (40, 30)})
    (voc / "Annotations" / "._a.xml").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    res = run("check", str(voc), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["errors"] == 0


def test_of_two_names_that_differ_in_composition_the_one_written_is_found(tmp_path):
    """On Linux 'café.jpg' composed and decomposed are two files: the annotation's exact name wins."""
    from datatools.formats.common import ImageIndex

    composed = "caf\u00e9.jpg"
    decomposed = unicodedata.normalize("NFD", composed)
    for name in (composed, decomposed):
        make_jpeg(tmp_path / name, 40, 30)
    index = ImageIndex(tmp_path)
    for name in (composed, decomposed):
        assert index.find(name, "x", id_names_image=False)[0] == str(tmp_path / name)
