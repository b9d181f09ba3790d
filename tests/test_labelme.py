"""LabelMe JSON: reading what labelme saves, the writer, round trips through COCO, bad input as findings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from datatools import formats
from datatools.cli import cli as main
from datatools.formats import coco, labelme
from datatools.ops.convert import convert
from tests.conftest import make_jpeg


def shape(label, points, kind="rectangle", **extra):
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": kind, "flags": {},
            **extra}


def doc(image_path, shapes, w=64, h=48, image_data=None):
    # The layout labelme 5.x saves (labelme/label_file.py): version, flags, shapes, imagePath, imageData, size.
    return {"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image_path, "imageData": image_data,
            "imageHeight": h, "imageWidth": w}


def write_docs(folder: Path, docs: dict[str, dict | str], images: dict[str, tuple[int, int]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, d in docs.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(d if isinstance(d, str) else json.dumps(d))
    for name, (w, h) in (images or {}).items():
        make_jpeg(folder / name, w, h)
    return folder


@pytest.fixture
def lm(tmp_path: Path) -> Path:
    """Two labelled images beside their JSON files (labelme's default), rectangles in either corner order, a
    polygon, a point and a circle."""
    return write_docs(tmp_path / "lm", {
        "a.json": doc("a.jpg", [shape("cat", [[10, 5], [30.5, 25]]), shape("dog", [[40, 40], [20, 10]]),
                                shape("dog", [[1, 2], [9, 2], [5, 12]], "polygon")]),
        "b.json": doc("b.jpg", [shape("cat", [[0, 0], [64, 48]]), shape("nose", [[3, 3]], "point"),
                                shape("eye", [[5, 5], [8, 9]], "circle")], image_data="bm90IGFuIGltYWdl"),
    }, images={"a.jpg": (64, 48), "b.jpg": (64, 48)})


def boxes(ds):
    return {im.image_id: sorted((a.label, a.box) for a in im.annotations) for im in ds.images}


def codes(ds):
    return sorted(f.code for f in ds.findings)


def test_reads_rectangles_polygons_and_counts_other_shapes(lm):
    ds = labelme.read(lm)
    # the circle: centre (5, 5), a point 3 across and 4 down, so a radius of 5
    assert boxes(ds) == {"a": [("cat", (10.0, 5.0, 30.5, 25.0)), ("dog", (1.0, 2.0, 9.0, 12.0)),
                               ("dog", (20.0, 10.0, 40.0, 40.0))],
                         "b": [("cat", (0.0, 0.0, 64.0, 48.0)), ("eye", (0.0, 0.0, 10.0, 10.0))]}
    assert ds.classes == ("cat", "dog", "eye")
    assert [im.image_path for im in ds.images] == [str(lm / "a.jpg"), str(lm / "b.jpg")]
    assert codes(ds) == ["polygon-to-box", "shape-to-box", "unsupported-shape"]
    # the books: 6 shapes met = 5 boxes + 1 dropped
    assert ds.objects_read == 6 == ds.num_objects + sum(f.objects for f in ds.findings)


def test_image_data_is_never_decoded_and_header_is_the_size(tmp_path):
    # imageData is garbage and the written size is wrong: the image header wins, with a size-mismatch warning.
    src = write_docs(tmp_path / "lm", {"a.json": doc("a.jpg", [shape("x", [[1, 1], [5, 5]])], w=10, h=10,
                                                     image_data="!!! not base64 !!!")}, images={"a.jpg": (40, 30)})
    ds = labelme.read(src)
    assert (ds.images[0].width, ds.images[0].height) == (40, 30)
    assert "size-mismatch" in codes(ds)


def test_a_file_with_a_large_embedded_image_is_read(tmp_path):
    """labelme embeds the image (imageData, base64) by default: a 17 MiB file, over the 16 MiB limit of a VOC XML,
    is read (it was refused unread as file-too-large)."""
    big = "A" * (17 * 2**20)
    src = write_docs(tmp_path / "lm", {"a.json": doc("a.jpg", [shape("x", [[1, 1], [5, 5]])], image_data=big)},
                     images={"a.jpg": (64, 48)})
    ds = labelme.read(src)
    assert boxes(ds) == {"a": [("x", (1.0, 1.0, 5.0, 5.0))]} and "file-too-large" not in codes(ds)


@pytest.mark.parametrize("image_path", ["../img/x.jpg", "..\\img\\x.jpg"])  # labelme on Windows writes backslashes
def test_image_path_relative_to_the_json_file_and_without_images(tmp_path, image_path):
    # JSON files in ann/, images in img/ with imagePath "../img/x.jpg" (the ann/ + img/ layout): with --images, and
    # without it, where labelme itself opens the image (relative to the JSON file); then with no image at all.
    root = tmp_path / "ds"
    write_docs(root / "ann", {"x.json": doc(image_path, [shape("c", [[1, 1], [2, 2]])], w=20, h=10)})
    make_jpeg(root / "img" / "x.jpg", 30, 10)
    for ds in (labelme.read(root / "ann", images=root / "img"), labelme.read(root / "ann"),
               labelme.read(root / "ann" / "x.json")):
        assert ds.images[0].image_path == str(root / "img" / "x.jpg")
        assert ds.images[0].width == 30 and codes(ds) == ["size-mismatch"]  # the header is the size
    (root / "img" / "x.jpg").unlink()
    ds = labelme.read(root / "ann")  # the size from imageWidth/imageHeight, the image missing
    assert (ds.images[0].width, ds.images[0].height) == (20, 10)
    # no image found at all: an annotations-only dataset, one warning (formats.common.fold_no_images)
    assert codes(ds) == ["missing-image-dir"] and ds.images[0].image_path is None


def test_image_path_never_followed_out_of_the_dataset(tmp_path):
    # "../../secret/x.jpg" from ds/ann/ leaves ds/: not followed, even though the file is there.
    make_jpeg(tmp_path / "secret" / "x.jpg", 8, 8)
    write_docs(tmp_path / "ds" / "ann", {"x.json": doc("../../secret/x.jpg", [shape("c", [[1, 1], [2, 2]])])})
    ds = labelme.read(tmp_path / "ds" / "ann")
    assert ds.images[0].image_path is None and codes(ds) == ["missing-image-dir"]
    write_docs(tmp_path / "ds" / "ann", {"y.json": doc("y.jpg", [shape("c", [[1, 1], [2, 2]])])})
    make_jpeg(tmp_path / "ds" / "ann" / "y.jpg", 8, 8)  # one image found: the other is a missing image
    ds = labelme.read(tmp_path / "ds" / "ann")
    assert ds.images[0].image_path is None and "missing-image" in codes(ds)


@pytest.mark.parametrize("text,code", [
    ("", "empty-file"),
    ("{not json", "json-parse"),
    (json.dumps({"images": []}), "missing-field"),
    (json.dumps(doc("a.jpg", [shape("c", [[1, 1]])])), "bad-shape"),
    (json.dumps(doc("a.jpg", [shape("c", [[1, 1], [2, 2], [3, 1]])])), "bad-shape"),
    (json.dumps(doc("a.jpg", [shape("c", [[1, "x"], [2, 2]])])), "bad-number"),
    (json.dumps(doc("a.jpg", [shape("", [[1, 1], [2, 2]])])), "missing-field"),
    (json.dumps(doc("a.jpg", ["not a shape"])), "missing-field"),
    (json.dumps(doc("a.jpg", [shape("c", [[1, 1], [2, 2]])], w="wide")), "bad-size"),
])
def test_bad_input_is_a_finding(tmp_path, text, code):
    src = write_docs(tmp_path / "lm", {"a.json": text, "ok.json": doc("ok.jpg", [shape("c", [[1, 1], [5, 5]])])})
    ds = labelme.read(src)
    assert code in codes(ds)
    assert any(im.image_id == "ok" and len(im.annotations) == 1 for im in ds.images)
    assert ds.objects_read == ds.num_objects + sum(f.objects for f in ds.findings)


def test_detect_tells_labelme_from_coco(lm, tmp_path):
    assert formats.detect(lm) == "labelme"
    assert formats.detect(lm / "a.json") == "labelme"
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    assert formats.detect(c) == "coco"


def test_writer_output_opens_in_labelme_layout(lm, tmp_path):
    out = tmp_path / "out"
    s = convert("labelme", lm, "labelme", out)
    assert s.balanced and s.objects_written == 5  # 3 rectangles, the polygon's box, the circle's
    d = json.loads((out / "annotations" / "a.json").read_text())
    assert d["imagePath"] == "../images/a.jpg" and d["imageData"] is None
    assert (d["imageWidth"], d["imageHeight"]) == (64, 48)
    assert {s["shape_type"] for s in d["shapes"]} == {"rectangle"}
    assert (out / "annotations" / d["imagePath"]).is_file()
    assert boxes(labelme.read(out)) == boxes(labelme.read(lm))
    # twice: the same bytes
    before = (out / "annotations" / "a.json").read_bytes()
    convert("labelme", lm, "labelme", out)
    assert (out / "annotations" / "a.json").read_bytes() == before


def test_round_trip_through_coco_box_for_box(lm, tmp_path):
    # labelme -> coco -> labelme gives back every box exactly, and the COCO file has them in pixels.
    convert("labelme", lm, "coco", tmp_path / "coco")
    c = coco.read(tmp_path / "coco")
    assert boxes(c) == boxes(labelme.read(lm))
    convert("coco", tmp_path / "coco", "labelme", tmp_path / "back")
    back = labelme.read(tmp_path / "back")
    assert boxes(back) == boxes(labelme.read(lm))
    assert formats.detect(tmp_path / "back") == "labelme"


def test_flags_and_group_ids_survive(tmp_path):
    src = write_docs(tmp_path / "lm", {"a.json": doc("a.jpg", [
        shape("c", [[1, 1], [9, 9]], group_id=3, description="left", flags={"occluded": True})])},
        images={"a.jpg": (64, 48)})
    convert("labelme", src, "labelme", tmp_path / "out")
    s = json.loads((tmp_path / "out" / "annotations" / "a.json").read_text())["shapes"][0]
    assert (s["group_id"], s["description"], s["flags"]) == (3, "left", {"occluded": True})


@pytest.mark.parametrize("gid, written", [("7", 7), ("-2", -2), ("3.0", 3), ("--5", None), ("\u00b2", None),
                                          ("a1", None), ("12345678901234567890123", 12345678901234567890123)])
def test_a_group_id_is_written_as_a_number_only_when_it_is_one(tmp_path, gid, written):
    # "--5" and a superscript two passed a digit test that int() then refused: a traceback from the writer; a group_id
    # that is no number was written as text, and labelme 6 refuses the whole file ("group_id must be int")
    src = write_docs(tmp_path / "lm", {"a.json": doc("a.jpg", [shape("c", [[1, 1], [9, 9]], group_id=gid)])})
    convert("labelme", src, "labelme", tmp_path / "out", images_mode="none")
    assert json.loads((tmp_path / "out" / "annotations" / "a.json").read_text())["shapes"][0]["group_id"] == written


@pytest.mark.parametrize("flags, want, bad", [
    ({"difficult": "false", "occluded": "0"}, (False, False, False), []),  # bool("false") was True
    ({"difficult": True, "truncated": 1, "occluded": "yes"}, (True, True, True), []),
    ({"difficult": "maybe"}, (False, False, False), ["shapes[0]/flags/difficult"]),
])
def test_shape_flags_written_as_text_are_read_by_the_flag_rule(tmp_path, flags, want, bad):
    src = write_docs(tmp_path / "lm", {"a.json": doc("a.jpg", [shape("c", [[1, 1], [9, 9]], flags=flags)])})
    ds = labelme.read(src)
    (a,) = ds.images[0].annotations
    assert (a.difficult, a.truncated, a.occluded) == want
    assert [f.field for f in ds.findings if f.code == "bad-flag"] == bad


def test_cli_convert_and_check(lm, tmp_path):
    r = CliRunner().invoke(main, ["convert", str(lm), str(tmp_path / "y"), "--to", "yolo", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["src_format"] == "labelme" and out["objects"]["balanced"]
    assert out["objects"]["dropped"] == {"unsupported-shape": 1}
    assert sorted(p.name for p in (tmp_path / "y" / "labels" / "all").iterdir()) == ["a.txt", "b.txt"]
    r = CliRunner().invoke(main, ["check", str(lm), "--format", "labelme"])
    assert r.exit_code == 0, r.output  # warnings and notes only
    (lm / "bad.json").write_text("{")
    r = CliRunner().invoke(main, ["check", str(lm)])
    assert r.exit_code == 1 and "json-parse" in r.output and "Traceback" not in r.output


def test_no_size_and_no_image_drops_the_image_counted(tmp_path):
    d = doc("gone.jpg", [shape("c", [[1, 1], [5, 5]])])
    del d["imageWidth"], d["imageHeight"]
    src = write_docs(tmp_path / "lm", {"gone.json": d, "ok.json": doc("ok.jpg", [shape("c", [[1, 1], [5, 5]])])})
    ds = labelme.read(src)
    assert [im.image_id for im in ds.images] == ["ok"]
    # the absent size is a missing-size warning when read (as VOC's and COCO's), the drop a missing-size error
    warning, f = [f for f in ds.findings if f.code == "missing-size"]
    assert warning.severity.value == "warning" and not warning.image_dropped and not warning.objects
    assert f.severity.value == "error" and f.image_dropped and f.objects == 1
    assert ds.objects_read == ds.num_objects + sum(f.objects for f in ds.findings)


def test_detect_with_sorted_keys_and_a_large_image_data(tmp_path):
    # json.dump(sort_keys=True) puts imageData (base64, here 100 KB) before shapes: still LabelMe, not COCO.
    src = write_docs(tmp_path / "lm", {"a.json": json.dumps(doc("a.jpg", [shape("c", [[1, 1], [5, 5]])],
                                                                image_data="QUJD" * 25_000), sort_keys=True)})
    assert formats.detect(src) == "labelme"
    assert len(labelme.read(src).images[0].annotations) == 1


# --------------------------------------------------------------------------------------------------- as labelme writes

# One image's annotation as three labelme generations save it, key for key (labelme/label_file.py of each): 3.x with
# lineColor/fillColor and per-shape colours, no group_id; 4.x with group_id; 5.x with description and mask. The same
# two objects in each: a rectangle written bottom-right corner first, and a polygon.
_RECT, _POLY = [[313.0, 329.5], [191.0, 107.25]], [[365.0, 83.0], [500.0, 90.5], [420.0, 333.0]]
LAYOUTS = {
    "3.16.7": {"version": "3.16.7", "flags": {}, "shapes": [
        {"label": "person", "line_color": None, "fill_color": None, "points": _RECT, "shape_type": "rectangle",
         "flags": {}},
        {"label": "person", "line_color": None, "fill_color": None, "points": _POLY, "shape_type": "polygon",
         "flags": {}}],
        "lineColor": [0, 255, 0, 128], "fillColor": [255, 0, 0, 128], "imagePath": "2011_000003.jpg",
        "imageData": "bm90IHJlYWQ=", "imageHeight": 338, "imageWidth": 500},
    "4.0.0": {"version": "4.0.0", "flags": {}, "shapes": [
        {"label": "person", "points": _RECT, "group_id": None, "shape_type": "rectangle", "flags": {}},
        {"label": "person", "points": _POLY, "group_id": None, "shape_type": "polygon", "flags": {}}],
        "imagePath": "2011_000003.jpg", "imageData": None, "imageHeight": 338, "imageWidth": 500},
    "5.5.0": {"version": "5.5.0", "flags": {}, "shapes": [
        {"label": "person", "points": _RECT, "group_id": None, "description": "", "shape_type": "rectangle",
         "flags": {}, "mask": None},
        {"label": "person", "points": _POLY, "group_id": None, "description": "", "shape_type": "polygon",
         "flags": {}, "mask": None}],
        "imagePath": "2011_000003.jpg", "imageData": None, "imageHeight": 338, "imageWidth": 500},
}


@pytest.mark.parametrize("version", sorted(LAYOUTS))
def test_reads_each_labelme_generation_as_saved(tmp_path, version):
    src = write_docs(tmp_path / "lm", {"2011_000003.json": LAYOUTS[version]}, images={"2011_000003.jpg": (500, 338)})
    ds = labelme.read(src)
    # By hand: the rectangle's corners sorted; the polygon's min/max x and y.
    assert boxes(ds) == {"2011_000003": [("person", (191.0, 107.25, 313.0, 329.5)),
                                         ("person", (365.0, 83.0, 500.0, 333.0))]}
    assert codes(ds) == ["polygon-to-box"]
    assert (ds.images[0].width, ds.images[0].height) == (500, 338)
    assert ds.images[0].image_path == str(src / "2011_000003.jpg")


@pytest.mark.parametrize("shape_type,points,box,code", [
    # A rectangle as its 4 corners (X-AnyLabeling and other labelme forks): the same box, no finding.
    ("rectangle", [[10, 5], [30, 5], [30, 25], [10, 25]], (10.0, 5.0, 30.0, 25.0), None),
    # 4 corners that are not axis-aligned, and labelme 5's oriented_rectangle: the envelope, never silently upright.
    ("rectangle", [[20, 0], [40, 20], [20, 40], [0, 20]], (0.0, 0.0, 40.0, 40.0), "rotated-box"),
    ("oriented_rectangle", [[1, 1], [5, 0], [6, 4], [2, 5]], (1.0, 0.0, 6.0, 5.0), "rotated-box"),
    ("rotation", [[1, 1], [5, 0], [6, 4], [2, 5]], (1.0, 0.0, 6.0, 5.0), "rotated-box"),
    ("oriented_rectangle", [[1, 1], [5, 0], [6, 4]], None, "bad-shape"),
    ("rectangle", [[1, 1], [5, 0], [6, 4]], None, "bad-shape"),
    # A circle: its centre +- the distance to its second point (4; then 5, 3 across and 4 up).
    ("circle", [[10, 10], [14, 10]], (6.0, 6.0, 14.0, 14.0), "shape-to-box"),
    ("circle", [[20.5, 30], [17.5, 26]], (15.5, 25.0, 25.5, 35.0), "shape-to-box"),
    ("circle", [[10, 10]], None, "bad-shape"),
    # A mask (labelme 5.x): its first and last pixel, inclusive (labelme pastes the PNG over [y1:y2+1, x1:x2+1]).
    ("mask", [[2, 3], [12, 13]], (2.0, 3.0, 13.0, 14.0), "shape-to-box"),
    ("mask", [[12.0, 13.0], [2.0, 3.0]], (2.0, 3.0, 13.0, 14.0), "shape-to-box"),
    ("mask", [[2, 3], [12, 13], [5, 5]], None, "bad-shape"),
    # Shapes without an area: dropped and counted.
    ("line", [[1, 1], [9, 9]], None, "unsupported-shape"),
    ("linestrip", [[1, 1], [9, 9], [3, 7]], None, "unsupported-shape"),
    ("point", [[4, 4]], None, "unsupported-shape"),
    ("points", [[4, 4], [5, 5]], None, "unsupported-shape"),
    (["rectangle"], [[1, 1], [5, 5]], None, "unsupported-shape"),  # not a string: counted, no crash
])
def test_shape_types(tmp_path, shape_type, points, box, code):
    extra = {"mask": "iVBORw0KGgo="} if shape_type == "mask" else {}
    src = write_docs(tmp_path / "lm", {"a.json": doc("a.jpg", [shape("c", points, shape_type, **extra)], w=64, h=64)},
                     images={"a.jpg": (64, 64)})
    ds = labelme.read(src)
    assert [a.box for a in ds.images[0].annotations] == ([box] if box else [])
    assert [c for c in codes(ds) if c != "empty-annotation"] == ([code] if code else [])
    assert ds.objects_read == 1 == ds.num_objects + sum(f.objects for f in ds.findings)


# ------------------------------------------------------------------------------------- nested folders (issue 18)
@pytest.mark.parametrize("layout", ["LMN/batch1/a.json", "LMN/2024/batch1/a.json", "LMN/annotations/batch1/a.json"])
def test_labelme_one_or_two_folders_down_is_detected(tmp_path, layout):
    rel = Path(layout)
    write_docs(tmp_path, {layout: doc("a.jpg", [shape("cat", [[1, 1], [9, 9]])])},
               images={str(rel.with_suffix(".jpg")): (64, 48)})
    (tmp_path / "LMN" / ".ipynb_checkpoints").mkdir()  # a hidden folder is not looked into
    assert formats.detect(tmp_path / "LMN") == "labelme"
    r = CliRunner().invoke(main, ["check", str(tmp_path / "LMN"), "--json"])  # auto-detected, then read (recursive)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["findings"] == []


def _coco_doc():
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}],
            "categories": [{"id": 1, "name": "cat"}]}


@pytest.mark.parametrize("files,want", [
    # Roboflow's COCO export: one COCO file per split folder; not LabelMe, but COCO (formats.coco_layout.split_folders)
    ({"train/_annotations.coco.json": _coco_doc(), "valid/_annotations.coco.json": _coco_doc()}, "coco"),
    ({"batch1/tasks.json": [{"data": {"image": "a.jpg"}, "annotations": []}]}, None),  # Label Studio, nested
    ({"a/b/c/deep.json": doc("a.jpg", [])}, None),  # three levels down: not looked for
    ({"batch1/notes.txt": "x"}, None),
    ({"images/x.json": doc("a.jpg", []), "labels/x.txt": "0 0.5 0.5 0.1 0.1\n"}, "yolo"),  # YOLO comes first
    ({"Annotations/x.xml": "<annotation/>", "sub/x.json": doc("a.jpg", [])}, "voc"),
    ({"annotations/instances.json": _coco_doc(), "more/x.json": doc("a.jpg", [])}, "coco"),
])
def test_nested_detection_leaves_other_layouts_alone(tmp_path, files, want):
    write_docs(tmp_path / "src", {k: v if isinstance(v, (dict, str)) else json.dumps(v) for k, v in files.items()})
    if want is None:
        with pytest.raises(Exception, match="cannot tell its format"):
            formats.detect(tmp_path / "src")
    else:
        assert formats.detect(tmp_path / "src") == want


def test_nested_detection_sniffs_a_few_files_only(tmp_path, monkeypatch):
    for k in range(20):  # twenty folders of non-LabelMe JSON: a handful sniffed, never the whole tree
        write_docs(tmp_path / "src" / f"f{k:02}", {"x.json": "{}", "sub/y.json": "{}"})
    seen = []
    real = formats.sniff_json
    monkeypatch.setattr(formats, "sniff_json", lambda p: seen.append(p) or real(p))
    with pytest.raises(Exception, match="cannot tell its format"):
        formats.detect(tmp_path / "src")
    assert 0 < len(seen) <= 4


@pytest.mark.parametrize("n", [2, 6, 13])
def test_one_duplicate_file_name_per_image_naming_every_annotation(tmp_path, n):
    names = [f"a{k:02}" for k in range(n)]
    write_docs(tmp_path / "lm", {f"{s}.json": doc("a00.jpg", [shape("cat", [[1, 1], [9, 9]])]) for s in names},
               images={"a00.jpg": (64, 48), "other.jpg": (64, 48)})
    write_docs(tmp_path / "lm", {"other.json": doc("other.jpg", [])})  # an image named once: no finding
    r = CliRunner().invoke(main, ["check", str(tmp_path / "lm"), "--json"])
    dup = [f for f in json.loads(r.output)["findings"] if f["code"] == "duplicate-file-name"]
    assert len(dup) == 1 and dup[0]["image_id"] == "a01" and dup[0]["path"].endswith("a00.jpg")
    listed = ", ".join(names[:10]) + (f" and {n - 10} more" if n > 10 else "")
    assert dup[0]["message"] == f"the image is named by {n} annotations: {listed}"


@pytest.mark.parametrize("first", ["", '{"broken": '])
def test_a_folder_whose_first_json_is_broken_is_still_labelme(tmp_path, first):
    # detection sniffed the first .json only: an empty or broken 0000.json made the folder "coco", and the whole
    # command failed on that one file instead of listing it as a finding
    src = write_docs(tmp_path / "lm", {"a.json": doc("a.jpg", [shape("c", [[1, 1], [9, 9]])])})
    (src / "0000.json").write_text(first)
    assert formats.detect(src) == "labelme"
    r = CliRunner().invoke(main, ["check", str(src), "--json"])
    codes = {f["code"] for f in json.loads(r.output)["findings"]}
    assert r.exit_code == 1 and codes & {"empty-file", "json-parse"}, r.output


def test_an_image_without_a_size_is_not_written_as_labelme(tmp_path):
    # imageWidth: null was written, and the LabelMe reader then dropped the image: a file we cannot read back
    from tests.conftest import make_voc_root, voc_xml

    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", None, [{"name": "cat", "box": (1, 1, 5, 5)}]),
                                          "b": voc_xml("b.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 5, 5)}])})
    s = convert("voc", root, "labelme", tmp_path / "lm", images_mode="none")
    assert s.images_written == 1 and s.images_dropped == {"missing-size": 1}
    assert sorted(p.name for p in (tmp_path / "lm").rglob("*.json")) == ["b.json"]


def test_a_group_id_that_is_no_number_is_said_not_kept(tmp_path):
    src = write_docs(tmp_path / "lm", {"a.json": doc("a.jpg", [shape("c", [[1, 1], [9, 9]], group_id="a1")])})
    s = convert("labelme", src, "labelme", tmp_path / "out", images_mode="none")
    (lost,) = [f for f in s.findings if f.code == "field-not-kept"]
    assert "group_id" in lost.message, lost.message
