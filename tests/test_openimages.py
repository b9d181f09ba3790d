"""Open Images box CSV: reading the documented layout, class descriptions, missing images, bad rows, the writer."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import datatools
from datatools import formats
from datatools.cli import cli
from datatools.core.errors import UsageError
from datatools.formats import openimages, voc
from tests.conftest import SAMPLE, make_jpeg, make_voc_root, voc_xml

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
    ("000595fe6fee6369,xclick,/m/01g317,1,0.1", "bad-row"),  # too few columns: named, never "XMax is None"
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


def test_written_without_images_the_sizes_come_back_from_images_meta(oi, tmp_path):
    """Under --images-mode none no image is placed: images.meta (as CVAT and datumaro write it) keeps every size, so
    the annotations read back whole instead of every image being dropped for an unknown size."""
    ds = openimages.read(oi)
    openimages.write(ds, tmp_path / "out", images_mode="none")
    meta = (tmp_path / "out" / "annotations" / "images.meta").read_text().splitlines()
    assert meta[0].startswith("#") and len(meta) == 1 + len(ds.images)
    back = openimages.read(tmp_path / "out")
    assert not [f for f in back.findings if f.image_dropped or f.objects]
    # one verdict for annotations without images, as in every format: not a missing-image error per image
    assert [(f.code, f.severity) for f in back.findings if "image" in f.code] == [("missing-image-dir", "warning")]
    assert {im.image_id: (im.width, im.height) for im in back.images} == \
        {im.image_id: (im.width, im.height) for im in ds.images}
    assert boxes(back) == boxes(ds)


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



def test_images_without_boxes_round_trip_through_the_image_list(tmp_path):
    """The box CSV lists images by their boxes; the image list the writer adds names every image, so an image without
    boxes is written, booked as written, and comes back: VOC -> Open Images -> VOC keeps it."""
    items = {"a": voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}]),
             "b": voc_xml("b.jpg", (40, 30), [{"name": "dog", "box": (2, 2, 20, 20)}]),
             "empty": voc_xml("empty.jpg", (48, 36), [])}
    src = make_voc_root(tmp_path / "v", items, images={"a.jpg": (40, 30), "b.jpg": (40, 30), "empty.jpg": (48, 36)})
    out = tmp_path / "oi"
    r = CliRunner().invoke(cli, ["convert", str(src), str(out), "--to", "openimages", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["images"] == {"read": 3, "written": 3, "dropped": {}}
    assert s["objects"]["balanced"] and s["objects"]["written"] == 2 and s["warnings"] == {}
    # The list, parsed with csv alone: the official columns, every image, its split as Subset, the rest empty.
    rows = list(csv.DictReader(io.StringIO((out / "annotations" / "all-images-with-rotation.csv").read_text())))
    assert list(rows[0]) == list(LIST_HEADER.strip().split(","))
    assert [(r["ImageID"], r["Subset"]) for r in rows] == [("a", "all"), ("b", "all"), ("empty", "all")]
    assert {v for r in rows for k, v in r.items() if k not in ("ImageID", "Subset")} == {""}
    back = openimages.read(out)
    assert [(im.image_id, len(im.annotations), im.width, im.height) for im in back.images] == \
        [("a", 1, 40, 30), ("b", 1, 40, 30), ("empty", 0, 48, 36)]
    assert [f.code for f in back.findings] == []
    r = CliRunner().invoke(cli, ["convert", str(out), str(tmp_path / "voc"), "--to", "voc", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["images"] == {"read": 3, "written": 3, "dropped": {}}
    again = voc.read(tmp_path / "voc")
    assert boxes(again) == boxes(voc.read(src)) and "empty" in boxes(again)
    # The writer alone counts it too, also when no image file is placed.
    res = openimages.write(voc.read(src), tmp_path / "none", images_mode="none")
    assert res.images_written == 3 and res.findings == []
    assert "empty" in (tmp_path / "none" / "annotations" / "all-images-with-rotation.csv").read_text()


# The image lists as Open Images publishes them (train-images-boxable-with-rotation.csv, validation- and
# test-images-with-rotation.csv): these 12 columns, Rotation a float (0.0, 90.0, ...) or empty where unknown.
LIST_HEADER = ("ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,OriginalSize,"
               "OriginalMD5,Thumbnail300KURL,Rotation\n")


def list_row(iid: str, subset: str, rotation: str) -> str:
    return (f"{iid},{subset},https://farm3.staticflickr.com/5310/{iid}_o.jpg,https://www.flickr.com/photos/x/{iid},"
            "https://creativecommons.org/licenses/by/2.0/,https://www.flickr.com/people/x/,Some One,"
            f'"A title, with a comma",4405052,KFukvivpCM5QXl5SqKe41g==,https://c1.staticflickr.com/{iid}_z.jpg,'
            f"{rotation}\n")


@pytest.mark.parametrize("box_name,list_name,split,list_at_root", [
    ("validation-annotations-bbox.csv", "validation-images-with-rotation.csv", "validation", False),
    ("oidv6-train-annotations-bbox.csv", "train-images-boxable-with-rotation.csv", "train", False),
    ("test-annotations-bbox.csv", "test-images-with-rotation.csv", "test", True),  # the list beside annotations/
    ("default-annotations-bbox.csv", "default-image_ids_and_rotation.csv", "default", False),  # CVAT's name
])
def test_reads_an_official_image_list(tmp_path, box_name, list_name, split, list_at_root):
    root = tmp_path / "oi"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / box_name).write_text(HEADER + ROWS)
    (root / "annotations" / "class-descriptions-boxable.csv").write_text(DESCRIPTIONS)
    (root if list_at_root else root / "annotations").joinpath(list_name).write_text(
        LIST_HEADER + list_row("0001eeaf4aed83f9", split, "0.0")  # with boxes
        + list_row("0002ab0af02e4a77", split, "")  # no boxes; rotation unknown (nan)
        + list_row("0004886b7d043cfd", split, "90.0")  # no boxes; to be turned 90 degrees
        + list_row("000a1249af2bc5f0", split, "0.0"))  # no boxes, no image file
    # 000595fe6fee6369 has boxes and an image but is not in the list: read all the same, without a finding.
    for iid, (w, h) in {"0001eeaf4aed83f9": (80, 40), "000595fe6fee6369": (64, 64), "0002ab0af02e4a77": (30, 20),
                        "0004886b7d043cfd": (20, 30)}.items():
        make_jpeg(root / "images" / split / f"{iid}.jpg", w, h)
    ds = openimages.read(root)
    got = {im.image_id: (len(im.annotations), im.width, im.height, im.splits) for im in ds.images}
    assert got == {"0001eeaf4aed83f9": (2, 80, 40, (split,)), "000595fe6fee6369": (1, 64, 64, (split,)),
                   "0002ab0af02e4a77": (0, 30, 20, (split,)), "0004886b7d043cfd": (0, 20, 30, (split,))}
    assert [im.image_id for im in ds.images] == sorted(got)
    found = sorted((f.code, f.image_id, f.objects, f.image_dropped) for f in ds.findings)
    assert found == [("image-rotation", "0004886b7d043cfd", 0, False),
                     ("missing-image", "00075905539074f2", 1, True),  # in the box CSV only, as before
                     ("missing-image", "000a1249af2bc5f0", 0, True)]  # listed, without a file: the usual finding
    turn, = [f for f in ds.findings if f.code == "image-rotation"]
    assert turn.field == "line 4/Rotation" and turn.path.endswith(list_name) and "90" in turn.message
    assert ds.objects_read == 4 == ds.num_objects + sum(f.objects for f in ds.findings)
    # The box CSV given alone finds the list of its split beside it, too.
    if not list_at_root:
        alone = openimages.read(root / "annotations" / box_name, images=root / "images" / split)
        assert "0002ab0af02e4a77" in {im.image_id for im in alone.images}


def test_a_listed_image_without_a_file_keeps_the_size_images_meta_gives(tmp_path):
    ann = tmp_path / "task" / "annotations"
    ann.mkdir(parents=True)
    (ann / "default-annotations-bbox.csv").write_text(HEADER + "frame_01,,car,1,0,1,0,1,0,0,0,0,0\n")
    (ann / "default-images-with-rotation.csv").write_text(
        LIST_HEADER + "frame_01,default,,,,,,,,,,\nframe_02,default,,,,,,,,,,\nframe_03,default,,,,,,,,,,\n")
    (ann / "images.meta").write_text("frame_01 480 640\nframe_02 10 20\n")
    ds = openimages.read(tmp_path / "task")
    assert [(im.image_id, len(im.annotations), im.width, im.height) for im in ds.images] == \
        [("frame_01", 1, 640, 480), ("frame_02", 0, 20, 10)]
    assert sorted((f.code, f.image_id, f.image_dropped) for f in ds.findings if f.code != "no-class-descriptions") == [
        ("missing-image", "frame_01", False), ("missing-image", "frame_02", False), ("missing-image", "frame_03", True)]


@pytest.mark.parametrize("text,field", [
    ("Subset,Rotation\nvalidation,0\n", "ImageID"),  # not an image list: ignored
    (LIST_HEADER + ",validation,,,,,,,,,,0.0\n", "line 2/ImageID"),  # a row without an ImageID
    (LIST_HEADER + "0002ab0af02e4a77,validation,,,,,,,,,,abc\n", "line 2/Rotation"),  # not a number
    (LIST_HEADER + "0002ab0af02e4a77,validation,,,,,,,,,,45\n", "line 2/Rotation"),  # not a quarter turn
    (LIST_HEADER + "0002ab0af02e4a77,validation\n0002ab0af02e4a77,validation\n", "line 3/ImageID"),  # twice
    (LIST_HEADER + '0002ab0af02e4a77,validation\n"' + "x" * 200_000 + '",validation\n', "line 3"),  # csv refuses
    (b"ImageID,Subset\n\xff\xfe,validation\n", ""),  # not UTF-8
], ids=["no-ImageID-column", "no-ImageID", "rotation-abc", "rotation-45", "listed-twice", "huge-field", "not-utf8"])
def test_a_bad_image_list_row_is_a_finding_never_a_crash(tmp_path, text, field):
    (tmp_path / "validation-annotations-bbox.csv").write_text(HEADER + ROWS.splitlines(keepends=True)[2])
    listed = tmp_path / "validation-images-with-rotation.csv"
    listed.write_bytes(text if isinstance(text, bytes) else text.encode())
    make_jpeg(tmp_path / "000595fe6fee6369.jpg", 10, 10)
    make_jpeg(tmp_path / "0002ab0af02e4a77.jpg", 12, 12)
    ds = openimages.read(tmp_path)
    bad, = [f for f in ds.findings if f.code == "bad-image-list"]
    assert bad.field == field and bad.path == str(listed) and bad.objects == 0 and not bad.image_dropped
    ids = [im.image_id for im in ds.images]
    assert "000595fe6fee6369" in ids  # the box CSV's image is read whatever the list says
    assert ("0002ab0af02e4a77" in ids) == ("0002ab0af02e4a77,validation" in str(text))
    res = CliRunner().invoke(cli, ["check", str(tmp_path), "--json"])
    assert res.exit_code == 0 and "Traceback" not in res.output and "bad-image-list" in res.output


def test_an_image_list_of_a_split_without_a_box_csv_is_read(tmp_path):
    """A split whose images all lack boxes: the writer writes its header-only box CSV, but a list alone reads too."""
    (tmp_path / "validation-annotations-bbox.csv").write_text(HEADER + ROWS.splitlines(keepends=True)[2])
    (tmp_path / "test-images-with-rotation.csv").write_text(LIST_HEADER + "0002ab0af02e4a77,test,,,,,,,,,,\n")
    make_jpeg(tmp_path / "images" / "validation" / "000595fe6fee6369.jpg", 10, 10)
    make_jpeg(tmp_path / "images" / "test" / "0002ab0af02e4a77.jpg", 12, 8)
    ds = openimages.read(tmp_path)
    assert [(im.image_id, im.splits, len(im.annotations), im.width) for im in ds.images] == \
        [("0002ab0af02e4a77", ("test",), 0, 12), ("000595fe6fee6369", ("validation",), 1, 10)]
    assert [f.code for f in ds.findings] == ["no-class-descriptions"]

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


# ------------------------------------------------------------------------------ malformed values (issue 18 audit)
@pytest.mark.parametrize("flags,want,bad", [
    ("1,0,1,0,0", (True, False, True), []),
    ("-1,-1,-1,-1,-1", (False, False, False), []),  # -1: unknown, in the official rows of some sources
    (",,,,", (False, False, False), []),
    ("0,0,yes,0,0", (False, False, True), ["IsGroupOf"]),
    ("0,0,true,0,0", (False, False, True), ["IsGroupOf"]),  # not what the official files write
    ("maybe,2,0,0,x", (False, True, False), ["IsOccluded", "IsTruncated", "IsInside"]),
])
def test_flags_other_than_1_0_or_minus_1_are_bad_flag(tmp_path, flags, want, bad):
    (tmp_path / "x-bbox.csv").write_text(HEADER + f"000595fe6fee6369,xclick,/m/01g317,1,0.1,0.5,0.25,0.75,{flags}\n")
    make_jpeg(tmp_path / "000595fe6fee6369.jpg", 10, 10)
    ds = openimages.read(tmp_path)
    (a,) = ds.images[0].annotations
    assert (a.occluded, a.truncated, a.iscrowd) == want
    found = [f for f in ds.findings if f.code == "bad-flag"]
    assert [f.field for f in found] == [f"line 2/{c}" for c in bad]
    assert all(f.severity.value == "warning" and f.image_id == "000595fe6fee6369" for f in found)


def test_a_flag_column_read_as_an_attribute_is_checked_too(tmp_path):
    (tmp_path / "x-bbox.csv").write_text(HEADER + "000595fe6fee6369,xclick,/m/01g317,1,0.1,0.5,0.25,0.75,0,0,0,yes,0\n")
    make_jpeg(tmp_path / "000595fe6fee6369.jpg", 10, 10)
    ds = openimages.read(tmp_path)
    assert ds.images[0].annotations[0].attrs == {"is_depiction": "1", "source": "xclick"}  # the writer writes 1
    assert [f.field for f in ds.findings if f.code == "bad-flag"] == ["line 2/IsDepiction"]


@pytest.mark.parametrize("row,severity,kept,names", [
    ("000595fe6fee6369,xclick,/m/01g317,1,0.1,0.5", "error", 0, "YMin, YMax, IsOccluded"),
    ("000595fe6fee6369,xclick,/m/01g317,1,0.1,0.5,0.25,0.75,0,0", "warning", 1, "IsGroupOf, IsDepiction, IsInside"),
])
def test_a_short_row_names_the_missing_columns(tmp_path, row, severity, kept, names):
    (tmp_path / "x-bbox.csv").write_text(HEADER + row + "\n")
    make_jpeg(tmp_path / "000595fe6fee6369.jpg", 10, 10)
    ds = openimages.read(tmp_path)
    f, = [f for f in ds.findings if f.code == "bad-row"]
    assert f.severity.value == severity and f.field == "line 2" and names in f.message and "None" not in f.message
    assert f"the header 13" in f.message and ds.num_objects == kept and f.objects == 1 - kept
    assert ds.objects_read == ds.num_objects + sum(x.objects for x in ds.findings)


@pytest.mark.parametrize("text", ["", "\n", "\ufeff"])
def test_an_empty_box_csv_is_empty_file(tmp_path, text):
    csv_path = tmp_path / "validation-annotations-bbox.csv"
    csv_path.write_text(text, encoding="utf-8")
    assert formats.detect(csv_path) == "openimages" and formats.detect(tmp_path) == "openimages"
    for src in (csv_path, tmp_path):
        res = CliRunner().invoke(cli, ["check", str(src), "--json"])
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        codes = [(f["code"], f["path"]) for f in json.loads(res.output)["findings"] if f["severity"] == "error"]
        assert codes == [("empty-file", str(csv_path))]
    other = tmp_path / "notes.csv"  # an empty CSV of another name is not taken for a box CSV
    other.write_text("")
    with pytest.raises(UsageError, match="cannot tell its format"):
        formats.detect(other)


def test_an_image_in_several_splits_is_written_once_and_said(tmp_path):
    from datatools.core.model import Annotation, Dataset, ImageRecord

    recs = (ImageRecord("a", "a.jpg", 40, 30, (Annotation("cat", (1.0, 1.0, 9.0, 9.0)),), splits=("train", "trainval")),
            ImageRecord("b", "b.jpg", 40, 30, (Annotation("cat", (2.0, 2.0, 9.0, 9.0)),), splits=("val",)))
    res = openimages.write(Dataset(images=recs, classes=("cat",)), tmp_path / "oi", images_mode="none")
    [f] = [f for f in res.findings if f.code == "split-not-kept"]
    assert "1 image(s) in several splits" in f.message and f.image_id == "a"
    names = sorted(p.name for p in (tmp_path / "oi" / "annotations").glob("*-annotations-bbox.csv"))
    assert names == ["train-annotations-bbox.csv", "val-annotations-bbox.csv"]


def test_ids_that_flatten_to_one_image_id_stay_two_images(tmp_path):
    # an ImageID has no "/": x/a became x_a, the id of another image, and the two read back as one image
    from datatools.core.model import Annotation, Dataset, ImageRecord

    recs = tuple(ImageRecord(iid, iid + ".jpg", w, 30, (Annotation("cat", box),))
                 for iid, w, box in (("x/a", 40, (1.0, 1.0, 9.0, 9.0)), ("x_a", 60, (2.0, 2.0, 19.0, 9.0))))
    res = openimages.write(Dataset(images=recs, classes=("cat",)), tmp_path / "oi", images_mode="none")
    [f] = [f for f in res.findings if f.code == "name-collision"]
    assert f.image_id == "x_a" and "written as 'x_a__2'" in f.message
    back = openimages.read(tmp_path / "oi")
    assert sorted((im.image_id, im.width, len(im.annotations)) for im in back.images) == [("x_a", 40, 1),
                                                                                          ("x_a__2", 60, 1)]


def test_the_source_the_writer_fills_in_is_read_back_as_none(tmp_path):
    """A box without a source is written with Source 'datatools' (the column is required); read back it has no
    source attribute again (every box carried source=datatools, which the next conversion reported as lost)."""
    from datatools.ops.convert import convert

    convert("voc", str(SAMPLE), "openimages", str(tmp_path / "o"), images_mode="none")
    ds = openimages.read(tmp_path / "o", images=SAMPLE / "JPEGImages")
    assert ds.num_objects == 591 and not any(a.attributes for im in ds.images for a in im.annotations)


def test_the_image_level_label_list_adds_no_image(tmp_path):
    """V6's oidv6-train-images-with-labels-with-rotation.csv lists 9M images with image-level labels, 1.7M with
    boxes: an image in it without boxes was read as an image without objects (a negative to train on)."""
    root = tmp_path / "oi"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "oidv6-train-annotations-bbox.csv").write_text(HEADER + ROWS)
    (root / "annotations" / "class-descriptions-boxable.csv").write_text(DESCRIPTIONS)
    (root / "annotations" / "oidv6-train-images-with-labels-with-rotation.csv").write_text(
        LIST_HEADER + list_row("0002ab0af02e4a77", "train", "0.0"))
    make_jpeg(root / "images" / "train" / "0002ab0af02e4a77.jpg", 30, 20)
    assert "0002ab0af02e4a77" not in {im.image_id for im in openimages.read(root).images}
