"""Issue 18: one COCO source of 20 images and several classes, written by each writer (LabelMe, CVAT, Open Images,
Label Studio, VOC, YOLO), gives the same boxes back from each reader, and the same boxes through the CLI's
auto-detection. The per-format tests check each reader against hand-made files in the tools' documented layouts."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

import datatools
from datatools import formats
from datatools.cli import cli
from tests.conftest import make_jpeg

CLASSES = ["bicycle", "cat", "dog", "person", "traffic light"]
TARGETS = ["labelme", "cvat", "openimages", "labelstudio", "voc", "yolo"]


@pytest.fixture(scope="module")
def coco_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("agree")
    rng = random.Random(18)
    images, anns = [], []
    for i in range(1, 21):
        w, h = rng.choice([(64, 48), (48, 64), (80, 60)])
        make_jpeg(root / "images" / f"img_{i:02d}.jpg", w, h)
        images.append({"id": i, "file_name": f"img_{i:02d}.jpg", "width": w, "height": h})
        for _ in range(rng.randint(1, 4)):
            x, y = rng.randint(0, w // 2), rng.randint(0, h // 2)
            bw, bh = rng.randint(4, w - x), rng.randint(4, h - y)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": rng.randint(1, len(CLASSES)),
                         "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0})
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)]}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    return root


def boxes_of(ds) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    """{image stem: sorted (class, box rounded to 1e-3 px)}."""
    out: dict[str, list] = {}
    for im in ds.images:
        stem = Path(im.file_name or im.image_id).stem
        out[stem] = sorted((a.label, tuple(round(v, 3) for v in a.box)) for a in im.annotations)
    return out


@pytest.mark.parametrize("fmt", TARGETS)
def test_every_writer_and_reader_give_the_same_boxes(coco_source, tmp_path, fmt):
    src = coco_source / "annotations" / "instances_train.json"
    want = boxes_of(formats.get("coco").read(src, images=coco_source / "images"))
    assert len(want) == 20 and sum(map(len, want.values())) > 20
    out = tmp_path / fmt
    s = datatools.convert("coco", src, fmt, out, images=coco_source / "images", images_mode="copy")
    assert s.balanced and s.objects_written == sum(map(len, want.values()))
    assert formats.detect(out) == fmt  # what the CLI would detect
    back = formats.get(fmt).read(out)
    assert boxes_of(back) == want
    assert set(back.classes) == set(CLASSES)


def test_the_cli_converts_each_back_to_coco_box_for_box(coco_source, tmp_path):
    src = coco_source / "annotations" / "instances_train.json"
    want = boxes_of(formats.get("coco").read(src, images=coco_source / "images"))
    for fmt in ("labelme", "cvat", "openimages", "labelstudio"):
        mid, back = tmp_path / fmt, tmp_path / f"{fmt}.json"
        datatools.convert("coco", src, fmt, mid, images=coco_source / "images", images_mode="copy")
        r = CliRunner().invoke(cli, ["convert", "--to", "coco", str(mid), str(back), "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["src_format"] == fmt
        assert boxes_of(formats.get("coco").read(back, images=coco_source / "images")) == want, fmt


@pytest.fixture(scope="module")
def written(coco_source, tmp_path_factory) -> dict[str, Path]:
    """The 20-image source written once by every writer (images copied): one dataset per format."""
    root = tmp_path_factory.mktemp("written")
    src = coco_source / "annotations" / "instances_train.json"
    out = {"coco": root / "coco"}
    datatools.convert("coco", src, "coco", out["coco"], images=coco_source / "images", images_mode="copy")
    for fmt in TARGETS:
        out[fmt] = root / fmt
        datatools.convert("coco", src, fmt, out[fmt], images=coco_source / "images", images_mode="copy")
    return out


@pytest.mark.parametrize("src,dst", [(a, b) for a in ["coco", *TARGETS] for b in ["coco", *TARGETS] if a != b])
def test_every_pair_converts_box_for_box(coco_source, written, tmp_path, src, dst):
    """Each of the 7 formats into each of the others (auto-detected, as the CLI does) gives the source's boxes."""
    want = boxes_of(formats.get("coco").read(coco_source / "annotations" / "instances_train.json",
                                             images=coco_source / "images"))
    s = datatools.convert(formats.detect(written[src]), written[src], dst, tmp_path / "out", images_mode="link")
    assert s.balanced and s.images_written == 20 and s.objects_written == sum(map(len, want.values()))
    assert boxes_of(formats.get(dst).read(tmp_path / "out")) == want


# --------------------------------------------------------------------------------------------------- hand-made files

# One image (100x50) with a cat at COCO [10, 5, 30, 20] and a dog at [50, 0, 50, 50]: each writer's file, parsed with
# json/lxml/csv only (never our readers), must say what these files, written by hand in each tool's own layout, say.
HAND_MADE = {
    "labelme": ("annotations/a.json", """{"version": "5.5.0", "flags": {}, "shapes": [
        {"label": "cat", "points": [[10, 5], [40, 25]], "group_id": null, "description": "",
         "shape_type": "rectangle", "flags": {}, "mask": null},
        {"label": "dog", "points": [[100, 50], [50, 0]], "group_id": null, "description": "",
         "shape_type": "rectangle", "flags": {}, "mask": null}],
        "imagePath": "a.jpg", "imageData": null, "imageHeight": 50, "imageWidth": 100}"""),
    "cvat": ("annotations.xml", """<?xml version="1.0" encoding="utf-8"?>
<annotations><version>1.1</version><meta><task><id>1</id><name>t</name><size>1</size><mode>annotation</mode>
<labels><label><name>cat</name><attributes></attributes></label><label><name>dog</name><attributes></attributes>
</label></labels></task></meta>
<image id="0" name="a.jpg" width="100" height="50">
<box label="cat" source="manual" occluded="0" xtl="10.00" ytl="5.00" xbr="40.00" ybr="25.00" z_order="0"></box>
<box label="dog" source="manual" occluded="0" xtl="50.00" ytl="0.00" xbr="100.00" ybr="50.00" z_order="0"></box>
</image></annotations>"""),
    "openimages": ("annotations/all-annotations-bbox.csv",
                   "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,"
                   "IsDepiction,IsInside\na,xclick,cat,1,0.1,0.4,0.1,0.5,0,0,0,0,0\n"
                   "a,xclick,dog,1,0.5,1.0,0.0,1.0,0,0,0,0,0\n"),
    "labelstudio": ("tasks.json", """[{"id": 1, "data": {"image": "/data/upload/1/a.jpg"}, "annotations": [{"id": 1,
        "result": [
          {"id": "c", "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 100,
           "original_height": 50, "image_rotation": 0,
           "value": {"x": 10.0, "y": 10.0, "width": 30.0, "height": 40.0, "rotation": 0, "rectanglelabels": ["cat"]}},
          {"id": "d", "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 100,
           "original_height": 50, "image_rotation": 0,
           "value": {"x": 50.0, "y": 0.0, "width": 50.0, "height": 100.0, "rotation": 0, "rectanglelabels": ["dog"]}}],
        "was_cancelled": false}]}]"""),
}


def _said(fmt: str, text: str) -> object:
    """What a file says, in the format's own units: parsed with the standard parsers, not datatools'."""
    if fmt == "labelme":
        d = json.loads(text)
        return (d["imageWidth"], d["imageHeight"], sorted(
            (s["label"], s["shape_type"], min(p[0] for p in s["points"]), min(p[1] for p in s["points"]),
             max(p[0] for p in s["points"]), max(p[1] for p in s["points"])) for s in d["shapes"]))
    if fmt == "cvat":
        from lxml import etree

        root = etree.fromstring(text.encode())
        return ([n.text for n in root.iterfind("meta/task/labels/label/name")],
                [(im.get("name"), int(im.get("width")), int(im.get("height")),
                  sorted((b.get("label"), b.get("occluded"), *(float(b.get(k)) for k in ("xtl", "ytl", "xbr", "ybr")))
                         for b in im.iterfind("box"))) for im in root.iterfind("image")])
    if fmt == "openimages":
        import csv
        import io

        return sorted((r["ImageID"], r["LabelName"], r["Confidence"], *(float(r[k]) for k in ("XMin", "XMax", "YMin",
                       "YMax")), *(r[k] for k in ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")))
                      for r in csv.DictReader(io.StringIO(text)))
    tasks = json.loads(text)
    return [(Path(t["data"]["image"]).name, sorted(
        (r["type"], r["from_name"], r["to_name"], r["original_width"], r["original_height"],
         r["value"]["rectanglelabels"], *(float(r["value"][k]) for k in ("x", "y", "width", "height", "rotation")))
        for r in t["annotations"][0]["result"])) for t in tasks]


@pytest.mark.parametrize("fmt", sorted(HAND_MADE))
def test_each_writer_writes_what_a_hand_made_file_says(tmp_path, fmt):
    make_jpeg(tmp_path / "images" / "a.jpg", 100, 50)
    (tmp_path / "coco.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 30, 20], "area": 600, "iscrowd": 0},
                        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 0, 50, 50], "area": 2500,
                         "iscrowd": 0}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]}))
    out = tmp_path / fmt
    assert datatools.convert("coco", tmp_path / "coco.json", fmt, out, images=tmp_path / "images",
                             images_mode="copy").balanced
    rel, hand = HAND_MADE[fmt]
    assert _said(fmt, (out / rel).read_text()) == _said(fmt, hand)
    if fmt == "openimages":  # the class ids: the name as its own id, no header
        assert (out / "annotations" / "class-descriptions.csv").read_text() == "cat,cat\ndog,dog\n"
    # And the hand-made file, beside the image, reads back as the same boxes as the source.
    (tmp_path / "hand" / rel).parent.mkdir(parents=True)
    (tmp_path / "hand" / rel).write_text(hand)
    if fmt == "openimages":
        (tmp_path / "hand" / "annotations" / "class-descriptions.csv").write_text("cat,cat\ndog,dog\n")
    back = formats.get(fmt).read(tmp_path / "hand", images=tmp_path / "images")
    assert boxes_of(back) == {"a": [("cat", (10.0, 5.0, 40.0, 25.0)), ("dog", (50.0, 0.0, 100.0, 50.0))]}


# --------------------------------------------------------------------------------------------------- one verdict
# The size an annotation gives its image and the points of a polygon are judged by one rule in every format that has
# them (formats.values.annotation_size, formats.shapes.shape_points): the same value gets the same finding.

def _one_image(fmt: str, root: Path, *, width=None, height=None, shape: str = "box", points=()) -> Path:
    """One image ``a.jpg`` (not there) with one object in ``fmt``: a 2x2 box, or a polygon of ``points`` (pixels;
    a text for CVAT), and the size ``width``/``height`` as written (None: left out; a value other than a number is
    written as it is)."""
    root.mkdir(parents=True)
    sides = {k: v for k, v in (("width", width), ("height", height)) if v is not None}
    if fmt == "voc":
        size = "" if not sides else "<size>" + "".join(f"<{k}>{v}</{k}>" for k, v in sides.items()) + "</size>"
        (root / "a.xml").write_text(f"<annotation><filename>a.jpg</filename>{size}<object><name>c</name><bndbox>"
                                    "<xmin>1</xmin><ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object>"
                                    "</annotation>")
    elif fmt == "coco":
        (root / "a.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": "a.jpg", **sides}], "categories": [{"id": 1, "name": "c"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}]}))
    elif fmt == "cvat":
        attrs = "".join(f' {k}="{v}"' for k, v in sides.items())
        body = (f'<polygon label="c" points="{points}" occluded="0"/>' if shape == "polygon"
                else '<box label="c" xtl="1" ytl="1" xbr="3" ybr="3" occluded="0"/>')
        (root / "annotations.xml").write_text(f'<annotations><image id="0" name="a.jpg"{attrs}>{body}</image>'
                                              "</annotations>")
    elif fmt == "labelme":
        pts, kind = (points, "polygon") if shape == "polygon" else ([[1, 1], [3, 3]], "rectangle")
        doc = {"shapes": [{"label": "c", "points": pts, "shape_type": kind}], "imagePath": "a.jpg",
               **{f"image{k.title()}": v for k, v in sides.items()}}
        (root / "a.json").write_text(json.dumps(doc))
    else:  # labelstudio: percent of a 100x100 image
        value = ({"points": points, "polygonlabels": ["c"]} if shape == "polygon"
                 else {"x": 1, "y": 1, "width": 2, "height": 2, "rectanglelabels": ["c"]})
        region = {"type": f"{shape}labels".replace("box", "rectangle"), "value": value,
                  **{f"original_{k}": v for k, v in sides.items()}}
        (root / "tasks.json").write_text(json.dumps([{"id": 1, "data": {"image": "a.jpg"},
                                                      "annotations": [{"id": 1, "result": [region]}]}]))
    return root


SIZED = ["voc", "coco", "cvat", "labelme", "labelstudio"]


@pytest.mark.parametrize("fmt", SIZED)
@pytest.mark.parametrize("width,height,verdict", [
    (64, 48, None),
    (0, 48, "missing-size"),  # 0 is a size left unknown (LabelMe and CVAT said bad-size, Label Studio nothing)
    (None, 48, "missing-size"),
    (None, None, "missing-size"),  # no size at all (LabelMe and CVAT said nothing; Label Studio still says nothing
                                   # but size-from-image: it writes sizes with regions only, so none is normal)
    (64.5, 48, "bad-size"),
    (10**19, 48, "bad-size"),
    (-64, 48, "bad-size"),
    ("wide", 48, "bad-size"),  # a word (a JSON string)
])
def test_every_format_judges_the_annotations_size_alike(tmp_path, fmt, width, height, verdict):
    ds = formats.get(fmt).read(_one_image(fmt, tmp_path / fmt, width=width, height=height))
    said = [(f.code, f.severity.value, f.image_id) for f in ds.findings
            if f.code in ("bad-size", "missing-size") and f.severity.value == "warning"]
    quiet = verdict is None or (fmt == "labelstudio" and width is None and height is None)
    assert said == ([] if quiet else [(verdict, "warning", "a")])
    if verdict == "bad-size":  # at the side's own field, saying what it was
        (bad,) = [f for f in ds.findings if f.code == "bad-size"]
        assert bad.field.lower().endswith("width") and str(width) in bad.message
    # With a size the image is kept with it; without one (and without the image) it is unknown: LabelMe and Label
    # Studio drop the image with a missing-size error, the others keep it for check to report.
    sizes = [(im.width, im.height) for im in ds.images]
    assert sizes == [(64, 48)] if verdict is None else sizes in ([], [(None, None)])
    dropped = [f for f in ds.findings if f.code == "missing-size" and f.severity.value == "error"]
    assert len(dropped) == (0 if ds.images else 1)


@pytest.mark.parametrize("fmt", ["cvat", "labelme", "labelstudio"])
@pytest.mark.parametrize("points,verdict", [
    ([[10, 10], [50, 20], [30, 80]], "polygon-to-box"),
    ([[10, 10], [50, 20]], "bad-shape"),  # too few points: CVAT said bad-number
    ([[10, 10]], "bad-shape"),
    ([[10, 10], [50, "x"], [30, 80]], "bad-number"),  # Label Studio said bad-shape
])
def test_every_format_judges_a_polygons_points_alike(tmp_path, fmt, points, verdict):
    pts = ";".join(f"{x},{y}" for x, y in points) if fmt == "cvat" else points
    ds = formats.get(fmt).read(_one_image(fmt, tmp_path / fmt, width=100, height=100, shape="polygon", points=pts))
    said = [(f.code, f.objects) for f in ds.findings if f.code in ("polygon-to-box", "bad-shape", "bad-number")]
    if verdict == "polygon-to-box":
        assert said == [("polygon-to-box", 0)] and boxes_of(ds) == {"a": [("c", (10.0, 10.0, 50.0, 80.0))]}
        note = next(f for f in ds.findings if f.code == "polygon-to-box")
        assert note.message.startswith("1 polygon ") and note.message.endswith(" read as their bounding box")
    else:
        assert said == [(verdict, 1)] and ds.num_objects == 0 and ds.objects_read == 1
