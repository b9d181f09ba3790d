"""Issue 16, VOC side: which image an annotation pairs with (item 1), the image header is the size (item 2), the
default pixel convention (item 16) and impossible sizes (item 22). Each case has the shape of what a new user met on
public datasets, built small here."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import datatools
from datatools import formats
from datatools.cli import cli
from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention
from datatools.formats.common import ImageIndex
from tests.conftest import make_jpeg, make_voc_root, voc_xml


def codes(ds_or_findings, image_id: str | None = None) -> list[str]:
    found = getattr(ds_or_findings, "findings", ds_or_findings)
    return [f.code for f in found if image_id is None or f.image_id == image_id]


# ------------------------------------------------------------------------------------------ item 1: the image

def plate_set(tmp_path):
    """The license-plate set: an original and its augmented copy, whose XML still names the original's image and
    its stale 400x300 size; the copy's own image is 416x416. Annotations and images in separate folders."""
    ann, img = tmp_path / "ann", tmp_path / "img"
    ann.mkdir()
    (ann / "Cars315.xml").write_text(voc_xml("Cars315.png", (400, 300), [{"name": "plate", "box": (10, 10, 60, 40)}]))
    (ann / "Cars315_aug2.xml").write_text(
        voc_xml("Cars315.png", (400, 300), [{"name": "plate", "box": (100, 320, 200, 400)}]))
    make_jpeg(img / "Cars315.png", 400, 300)
    make_jpeg(img / "Cars315_aug2.jpg", 416, 416)
    return ann, img


def test_an_augmented_copy_pairs_with_its_own_image(tmp_path):
    """`voc2yolo ANN --images IMG OUT` linked Cars315.png as images/all/Cars315_aug2.*: one image's labels on
    another image's pixels. The XML's own stem wins, and the disagreement is a warning."""
    ann, img = plate_set(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["voc2yolo", str(ann), "--images", str(img), str(out), "--images-mode", "copy",
                                 "--json"])
    assert r.exit_code == 0, r.output
    assert (out / "images/all/Cars315_aug2.jpg").read_bytes() == (img / "Cars315_aug2.jpg").read_bytes()
    assert not (out / "images/all/Cars315_aug2.png").exists()
    assert (out / "images/all/Cars315.png").read_bytes() == (img / "Cars315.png").read_bytes()
    summary = json.loads(r.output)
    mismatch = [f for f in summary["findings"] if f["code"] == "filename-mismatch"]
    assert [f["image_id"] for f in mismatch] == ["Cars315_aug2"]
    assert "Cars315.png" in mismatch[0]["message"] and "Cars315_aug2.jpg" in mismatch[0]["message"]
    assert mismatch[0]["path"].endswith("Cars315_aug2.xml")


# (images in the folder, <filename>, annotation id) -> (image used, filename-mismatch?)
PAIRING = [
    (["a.jpg"], "a.jpg", "a", "a.jpg", False),
    (["a.jpg"], "a", "a", "a.jpg", False),                          # no extension: the same image
    (["a.jpg"], "JPEGImages/a.jpg", "a", "a.jpg", False),           # a folder in front: the same image
    (["a.jpg", "a.png"], "a.png", "a", "a.png", False),             # of the id's images, the one the name names
    (["a.jpg", "b.jpg"], "b.jpg", "a", "a.jpg", True),              # the name is another image: the id wins
    (["a_aug.jpg", "a.png"], "a.png", "a_aug", "a_aug.jpg", True),
    (["a.jpg"], "a.png", "a", "a.jpg", True),                       # the name is no image
    (["b.jpg"], "b.jpg", "a", "b.jpg", True),                       # only the name finds one: used, and said
    (["b.jpg"], "", "a", None, False),
    (["sub/a.jpg"], "a.jpg", "sub/a", "sub/a.jpg", False),           # an id below the annotation folder
    (["a.jpg"], "x.jpg", "sub/a", "a.jpg", True),                    # the id by base name
    (["a.jpg"], "../a.jpg", "zzz", None, False),                     # unsafe names are never followed
]


@pytest.mark.parametrize("images,file_name,image_id,expected,mismatch", PAIRING)
def test_image_index_pairs_by_the_annotation_name_first(tmp_path, images, file_name, image_id, expected, mismatch):
    for name in images:
        make_jpeg(tmp_path / name, 8, 8)
    path, notes, rel = ImageIndex(tmp_path).find(file_name, image_id)
    assert (rel if path else None) == expected
    assert ("filename-mismatch" in codes(notes)) is mismatch


# ------------------------------------------------------------------------------------------ item 2: the size

def test_a_stale_size_loses_to_the_image_header(tmp_path):
    """The copies said 400x300 while the image is 416x416, so valid boxes were dropped as box-outside-image."""
    ann, img = plate_set(tmp_path)
    ds = formats.get("voc").read(ann, images=img)
    aug = next(im for im in ds.images if im.image_id == "Cars315_aug2")
    assert (aug.width, aug.height) == (416, 416)
    mismatch = [f for f in ds.findings if f.code == "size-mismatch"]
    assert [f.image_id for f in mismatch] == ["Cars315_aug2"]
    assert "400x300" in mismatch[0].message and "416x416" in mismatch[0].message
    s = datatools.convert("voc", ann, "yolo", tmp_path / "out", images=img)
    assert s.objects_written == 2 and s.objects_dropped == {} and s.balanced
    row = (tmp_path / "out/labels/all/Cars315_aug2.txt").read_text().split()
    assert [float(v) for v in row[1:]] == pytest.approx([150 / 416, 360 / 416, 100 / 416, 80 / 416], abs=1e-6)


def test_the_size_is_the_image_as_displayed_after_exif(tmp_path):
    """An annotation that has the stored size of an EXIF-rotated image gets the displayed size and a warning
    that names EXIF."""
    root = make_voc_root(tmp_path / "v", {"r": voc_xml("r.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 25, 35)}])})
    make_jpeg(root / "JPEGImages/r.jpg", 40, 30, exif_orientation=6)
    ds = formats.get("voc").read(root)
    assert (ds.images[0].width, ds.images[0].height) == (30, 40)
    (f,) = [f for f in ds.findings if f.code == "size-mismatch"]
    assert "EXIF" in f.message


def test_without_the_image_the_annotation_size_is_used(tmp_path):
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (400, 300), [{"name": "cat", "box": (1, 1, 9, 9)}])})
    ds = formats.get("voc").read(root)
    assert (ds.images[0].width, ds.images[0].height) == (400, 300)
    assert "size-mismatch" not in codes(ds)


def test_a_matching_size_is_quiet(tmp_path):
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}])},
                         images={"a.jpg": (40, 30)})
    ds = formats.get("voc").read(root, workers=2)
    assert (ds.images[0].width, ds.images[0].height) == (40, 30)
    assert not {"size-mismatch", "size-from-image", "filename-mismatch"} & set(codes(ds))


def test_check_reports_one_size_mismatch(tmp_path):
    """The reader reports it; check does not report it a second time."""
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (99, 99), [{"name": "cat", "box": (1, 1, 9, 9)}])},
                         images={"a.jpg": (40, 30)})
    r = CliRunner().invoke(cli, ["check", str(root), "--json"])
    data = json.loads(r.output)
    assert [f["code"] for f in data["findings"]].count("size-mismatch") == 1


# ------------------------------------------------------------------------------------------ item 22: sane sizes

@pytest.mark.parametrize("width,why", [
    ("1e19", "outside 1..1_000_000"),
    ("0.4", "not a whole number"),
    ("10.6", "not a whole number"),
    ("-640", "outside"),
    ("2000000", "outside"),
    ("wide", "not a number"),
    ("nan", "not a number"),
])
@pytest.mark.parametrize("with_image", [True, False])
def test_an_impossible_size_is_a_finding_and_the_header_is_used(tmp_path, width, why, with_image):
    xml = voc_xml("a.jpg", None, [{"name": "cat", "box": (1, 1, 9, 9)}],
                  extra=f"<size><width>{width}</width><height>80</height><depth>3</depth></size>")
    root = make_voc_root(tmp_path / "v", {"a": xml}, images={"a.jpg": (64, 48)} if with_image else None)
    ds = formats.get("voc").read(root)
    (bad,) = [f for f in ds.findings if f.code == "bad-size"]
    assert bad.field == "size/width" and why in bad.message and repr(width) in bad.message
    im = ds.images[0]
    assert (im.width, im.height) == ((64, 48) if with_image else (None, None))


def test_an_impossible_size_never_reaches_stats(tmp_path):
    """`stats` printed -9223372036854775808x80 for <width>1e19</width>."""
    xml = voc_xml("a.jpg", (10**19, 80), [{"name": "cat", "box": (1, 1, 9, 9)}])
    root = make_voc_root(tmp_path / "v", {"a": xml})
    ds = formats.get("voc").read(root)
    assert ds.images[0].width is None and "bad-size" in codes(ds)


def test_a_whole_float_size_is_accepted(tmp_path):
    xml = voc_xml("a.jpg", ("416.0", 416), [{"name": "cat", "box": (1, 1, 9, 9)}])
    ds = formats.get("voc").read(make_voc_root(tmp_path / "v", {"a": xml}))
    assert (ds.images[0].width, ds.images[0].height) == (416, 416) and "bad-size" not in codes(ds)


# ------------------------------------------------------------------------------------------ item 16: convention

def test_the_default_pixel_convention_is_as_is():
    assert DEFAULT_CONVENTION is PixelConvention.AS_IS


def test_default_reading_agrees_with_coco_written_beside_it(tmp_path):
    """Public answer keys ship COCO next to VOC with x = xmin: the default reading gives the same numbers."""
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (64, 48), [{"name": "cat", "box": (10, 12, 30, 40)}])},
                         images={"a.jpg": (64, 48)})
    assert formats.get("voc").read(root).images[0].annotations[0].box == (10.0, 12.0, 30.0, 40.0)
    datatools.convert("voc", root, "coco", tmp_path / "c.json")
    ann = json.loads((tmp_path / "c.json").read_text())["annotations"][0]
    assert ann["bbox"] == [10, 12, 20, 28]


@pytest.mark.parametrize("convention", ["as-is", "devkit", "ultralytics"])
def test_findings_print_the_files_own_numbers(tmp_path, convention):
    """`xmin=0` showed as -1 under devkit: a finding shows what the file says, under every convention."""
    xml = voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (0, 5, 50, 20)}])
    root = make_voc_root(tmp_path / "v", {"a": xml}, images={"a.jpg": (40, 30)})
    s = datatools.convert("voc", root, "yolo", tmp_path / "out", convention=convention)
    (f,) = [f for f in s.findings if f.code == "box-out-of-bounds"]
    assert "[0, 5, 50, 20]" in f.message, f.message


@pytest.mark.parametrize("command", [["convert"], ["voc2yolo"], ["check"], ["visualize"]])
def test_cli_help_states_the_new_default(command):
    r = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "[default: as-is]" in text
