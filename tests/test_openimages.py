"""Open Images box CSV: reading the documented layout, class descriptions, missing images, bad rows, the writer."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import datatools
from datatools import formats
from datatools.cli import cli
from datatools.core.errors import UsageError
from datatools.formats import openimages, voc
from tests.conftest import make_jpeg, make_voc_root, voc_xml

HEADER = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
# Rows in the form of Open Images' own validation-annotations-bbox.csv (download page): normalized XMin, XMax, YMin,
# YMax; flags 0/1 (-1 unknown).
ROWS = ("0001eeaf4aed83f9,xclick,/m/0cmf2,1,0.25,0.75,0.1,0.5,0,0,0,0,0\n"
        "0001eeaf4aed83f9,xclick,/m/01g317,1,0,0.5,0.5,1,1,1,1,0,-1\n"
        "000595fe6fee6369,activemil,/m/01g317,1,0.125,0.5,0.25,0.75,-1,0,0,1,0\n"
        "00075905539074f2,xclick,/m/0cmf2,1,0.1,0.2,0.1,0.2,0,0,0,0,0\n")
DESCRIPTIONS = "/m/0cmf2,Airplane\n/m/01g317,Person\n"


@pytest.fixture
def oi(tmp_path: Path) -> Path:
    root = tmp_path / "oi"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "validation-annotations-bbox.csv").write_text(HEADER + ROWS)
    (root / "annotations" / "class-descriptions-boxable.csv").write_text(DESCRIPTIONS)
    make_jpeg(root / "images" / "validation" / "0001eeaf4aed83f9.jpg", 80, 40)
    make_jpeg(root / "images" / "validation" / "000595fe6fee6369.jpg", 64, 64)
    return root  # 00075905539074f2 has no image


def boxes(ds):
    return {im.image_id: sorted((a.label, tuple(round(v, 4) for v in a.box)) for a in im.annotations)
            for im in ds.images}


def test_reads_open_images(oi):
    ds = openimages.read(oi)
    assert boxes(ds) == {"0001eeaf4aed83f9": [("Airplane", (20.0, 4.0, 60.0, 20.0)), ("Person", (0.0, 20.0, 40.0, 40.0))],
                         "000595fe6fee6369": [("Person", (8.0, 16.0, 32.0, 48.0))]}
    assert ds.classes == ("Airplane", "Person")
    person = next(a for a in ds.images[0].annotations if a.label == "Person")
    assert person.iscrowd and person.occluded and person.truncated  # IsGroupOf -> iscrowd
    other = ds.images[1].annotations[0]
    assert not other.occluded and other.attrs == {"is_depiction": "1", "source": "activemil"}  # -1 reads as 0
    assert [im.splits for im in ds.images] == [("validation",), ("validation",)]
    miss, = [f for f in ds.findings if f.code == "missing-image"]
    assert miss.image_id == "00075905539074f2" and miss.objects == 1 and miss.image_dropped
    assert ds.objects_read == 4 == ds.num_objects + sum(f.objects for f in ds.findings)


def test_detects_open_images(oi):
    assert formats.detect(oi) == "openimages"
    assert formats.detect(oi / "annotations" / "validation-annotations-bbox.csv") == "openimages"


def test_class_descriptions_option_with_header_and_unknown_ids(oi, tmp_path):
    desc = tmp_path / "names.csv"
    desc.write_text("LabelName,DisplayName\n/m/01g317,human\n")
    ds = openimages.read(oi / "annotations" / "validation-annotations-bbox.csv", class_descriptions=desc,
                         images=oi / "images" / "validation")
    assert ds.classes == ("/m/0cmf2", "human")
    unknown = [f for f in ds.findings if f.code == "unknown-class"]
    assert len(unknown) == 1 and "/m/0cmf2" in unknown[0].message


def test_without_descriptions_ids_are_names(tmp_path):
    (tmp_path / "train-annotations-bbox.csv").write_text(HEADER + ROWS.splitlines(keepends=True)[2])
    make_jpeg(tmp_path / "000595fe6fee6369.jpg", 10, 10)
    ds = openimages.read(tmp_path)
    assert ds.classes == ("/m/01g317",) and "no-class-descriptions" in [f.code for f in ds.findings]


@pytest.mark.parametrize("row,code", [
    ("000595fe6fee6369,xclick,/m/01g317,1,abc,0.5,0.25,0.75,0,0,0,0,0", "bad-number"),
    ("000595fe6fee6369,xclick,/m/01g317,1,inf,0.5,0.25,0.75,0,0,0,0,0", "bad-number"),
    ("000595fe6fee6369,xclick,,1,0.1,0.5,0.25,0.75,0,0,0,0,0", "missing-field"),
    ("000595fe6fee6369,xclick,/m/01g317,1,0.1", "bad-number"),
])
def test_bad_rows_are_findings(tmp_path, row, code):
    (tmp_path / "x-bbox.csv").write_text(HEADER + row + "\n" + ROWS.splitlines(keepends=True)[2])
    make_jpeg(tmp_path / "000595fe6fee6369.jpg", 10, 10)
    ds = openimages.read(tmp_path)
    f, = [f for f in ds.findings if f.code == code]
    assert f.objects == 1 and f.field.startswith("line 2")
    assert ds.num_objects == 1 and ds.objects_read == 2


def test_a_csv_without_the_columns_is_a_usage_error(tmp_path):
    (tmp_path / "a-bbox.csv").write_text("ImageID,LabelName\nx,y\n")
    with pytest.raises(UsageError, match="lacks XMin"):
        openimages.read(tmp_path)
    res = CliRunner().invoke(cli, ["check", str(tmp_path)])
    assert res.exit_code != 0 and "Traceback" not in res.output and "lacks XMin" in res.output


def test_unreadable_image_is_dropped_and_counted(tmp_path):
    (tmp_path / "x-bbox.csv").write_text(HEADER + ROWS.splitlines(keepends=True)[2])
    (tmp_path / "000595fe6fee6369.jpg").write_bytes(b"not a jpeg")
    ds = openimages.read(tmp_path)
    f, = [f for f in ds.findings if f.code == "image-unreadable"]
    assert ds.images == () and f.objects == 1


def test_write_then_read_gives_the_same_boxes_and_ids(oi, tmp_path):
    ds = openimages.read(oi)
    res = openimages.write(ds, tmp_path / "out", images_mode="copy")
    assert res.objects_written == 3
    text = (tmp_path / "out" / "annotations" / "validation-annotations-bbox.csv").read_text()
    assert text.startswith(HEADER) and "/m/01g317" in text
    assert (tmp_path / "out" / "annotations" / "class-descriptions.csv").read_text() == \
        "/m/0cmf2,Airplane\n/m/01g317,Person\n"
    back = openimages.read(tmp_path / "out")
    assert boxes(back) == boxes(ds)
    assert [(a.iscrowd, a.occluded, a.attrs) for im in back.images for a in im.annotations] == \
        [(a.iscrowd, a.occluded, a.attrs) for im in ds.images for a in im.annotations]


def test_round_trip_through_coco_box_for_box(oi, tmp_path):
    s = datatools.convert("openimages", oi, "coco", tmp_path / "coco")
    assert s.objects_read == 4 and s.objects_written == 3
    datatools.convert("coco", tmp_path / "coco", "openimages", tmp_path / "back")
    back = openimages.read(tmp_path / "back")
    assert boxes(back) == boxes(openimages.read(oi))


def test_cli_converts_a_detected_open_images_folder(oi, tmp_path):
    res = CliRunner().invoke(cli, ["convert", str(oi), str(tmp_path / "voc"), "--to", "voc", "--json"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "voc" / "Annotations").iterdir()) == \
        ["0001eeaf4aed83f9.xml", "000595fe6fee6369.xml"]



def test_an_image_without_boxes_is_not_booked_as_written(tmp_path):
    """The box CSV lists images by their boxes, so an image without boxes cannot be listed: it is placed, but a reader
    of OUT does not get it back. The writer names it (no-boxes-not-listed), and the summary books it as dropped, not
    written: images written is what reading OUT gives back."""
    items = {"a": voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}]),
             "b": voc_xml("b.jpg", (40, 30), [{"name": "dog", "box": (2, 2, 20, 20)}]),
             "empty": voc_xml("empty.jpg", (40, 30), [])}
    src = make_voc_root(tmp_path / "v", items, images={f"{k}.jpg": (40, 30) for k in items})
    out = tmp_path / "oi"
    r = CliRunner().invoke(cli, ["convert", str(src), str(out), "--to", "openimages", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["images"] == {"read": 3, "written": 2, "dropped": {"no-boxes-not-listed": 1}}
    assert s["objects"]["balanced"] and s["objects"]["written"] == 2
    assert s["warnings"].get("no-boxes-not-listed") == 1
    f, = [f for f in s["findings"] if f["code"] == "no-boxes-not-listed"]
    assert f["image_id"] == "empty" and f["image_dropped"] and f["severity"] == "warning"
    assert "'empty'" in f["message"] and "images/all/" in f["message"]
    assert (out / "images" / "all" / "empty.jpg").is_file()  # placed, as before; only not listed
    back = openimages.read(out)
    assert sorted(im.image_id for im in back.images) == ["a", "b"]
    assert len(back.images) == s["images"]["written"]
    # the writer alone: the same count and finding; without a placed image the message says so
    res = openimages.write(voc.read(src), tmp_path / "none", images_mode="none")
    assert res.images_written == 2 and [x.code for x in res.findings] == ["no-boxes-not-listed"]
    assert "no image file is placed" in res.findings[0].message

# --------------------------------------------------------------------------------------------------- as published

# The V6/V7 download's train box CSV, column for column: the 13 documented columns and the four extreme clicks
# (XClick1X..XClick4Y; -1 where a box was not drawn by extreme clicking), flags -1 for unknown.
V6_HEADER = HEADER.rstrip("\n") + ",XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,XClick2Y,XClick3Y,XClick4Y\n"
V6_ROWS = ("000002b66c9c498e,xclick,/m/01g317,1,0.0125,0.195,0.15,0.5875,0,1,0,0,0,"
           "0.15,0.0125,0.06,0.195,0.15,0.36,0.5875,0.325\n"
           "000002b66c9c498e,activemil,/m/0199g,1,0.5,1,0,0.25,-1,-1,1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1\n")


@pytest.mark.parametrize("desc_name,desc_text", [
    ("class-descriptions-boxable.csv", "/m/011k07,Tortoise\n/m/0199g,Bicycle\n/m/01g317,Person\n"),  # V5/V6: no header
    ("oidv7-class-descriptions-boxable.csv",  # V7: a header row
     "LabelName,DisplayName\n/m/011k07,Tortoise\n/m/0199g,Bicycle\n/m/01g317,Person\n"),
])
def test_reads_the_published_layout(tmp_path, desc_name, desc_text):
    root = tmp_path / "oi"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "oidv6-train-annotations-bbox.csv").write_text(V6_HEADER + V6_ROWS)
    (root / "annotations" / desc_name).write_text(desc_text)
    make_jpeg(root / "images" / "train" / "000002b66c9c498e.jpg", 800, 600)
    assert formats.detect(root) == "openimages"
    ds = openimages.read(root)
    # By hand: XMin*800, YMin*600, XMax*800, YMax*600; the extreme clicks are not the box.
    assert boxes(ds) == {"000002b66c9c498e": [("Bicycle", (400.0, 0.0, 800.0, 150.0)),
                                              ("Person", (10.0, 90.0, 156.0, 352.5))]}
    assert ds.classes == ("Bicycle", "Person")  # the header row is no class
    assert ds.images[0].splits == ("train",)
    bike, person = sorted(ds.images[0].annotations, key=lambda a: a.label)
    assert (bike.iscrowd, bike.occluded, bike.truncated) == (True, False, False)  # -1 (unknown) reads as 0
    assert person.truncated and person.attrs == {"source": "xclick"}
    assert [f.code for f in ds.findings] == []


def test_annotations_only_export_takes_sizes_from_images_meta(tmp_path):
    # CVAT's Open Images export without images: annotations/ holds the box CSV, class-descriptions.csv (the label
    # name as its own id) and images.meta ("<id> <height> <width>", datumaro's file); no images/ folder.
    ann = tmp_path / "task" / "annotations"
    ann.mkdir(parents=True)
    (ann / "default-annotations-bbox.csv").write_text(
        HEADER + "frame_01,,car,1,0.25,0.5,0.5,1,0,0,0,0,0\nframe_02,,car,1,0,1,0,1,0,0,0,0,0\n"
                 "frame_03,,car,1,0,1,0,1,0,0,0,0,0\n")
    (ann / "class-descriptions.csv").write_text("car,car\n")
    (ann / "images.meta").write_text("# image sizes\nframe_01 480 640\n'frame_02' 10 x\n")
    ds = openimages.read(tmp_path / "task")
    assert boxes(ds) == {"frame_01": [("car", (160.0, 240.0, 320.0, 480.0))]}
    assert (ds.images[0].width, ds.images[0].height, ds.images[0].image_path) == (640, 480, None)
    found = sorted((f.code, f.image_id, f.objects) for f in ds.findings)
    assert found == [("bad-size", "", 0), ("missing-image", "frame_01", 0), ("missing-image", "frame_02", 1),
                     ("missing-image", "frame_03", 1)]
    assert ds.objects_read == 3 == ds.num_objects + sum(f.objects for f in ds.findings)
