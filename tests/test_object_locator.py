"""A finding about an object names the place its reader found it, in that format's own terms.

Each source below holds two objects: the first is dropped by the reader (with its own finding), the second has a box
that runs off the image, which the conversion policies clip later (``box-out-of-bounds``). That later finding must
name the second object where it is in the file (``annotations[1]``, ``line 3``, ``object[1]/bndbox``, ...), not its
position among the objects that survived reading, and in the reader's words for the same place.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from datatools import formats
from datatools.ops.sanitize import prepare
from tests.conftest import make_jpeg, make_voc_root, voc_xml


def _voc(root: Path) -> Path:
    xml = voc_xml("a.jpg", (100, 80), [{"name": "cat", "box": (10, 10, 150, 40)}])
    xml = xml.replace("<object>", "<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>"
                      "</object><object>", 1)  # an object without <name> first
    return make_voc_root(root, {"a": xml})


def _coco(root: Path) -> Path:
    doc = {"images": [{"id": 7, "file_name": "a.jpg", "width": 100, "height": 80}],
           "categories": [{"id": 1, "name": "cat"}],
           "annotations": [{"id": 1, "image_id": 7, "category_id": 99, "bbox": [1, 1, 4, 4]},
                           {"id": 2, "image_id": 7, "category_id": 1, "bbox": [10, 10, 140, 30]}]}
    path = root / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def _yolo(root: Path) -> Path:
    make_jpeg(root / "images" / "a.jpg", 100, 80)
    (root / "labels").mkdir()
    (root / "labels" / "a.txt").write_text("0 0.5 0.5\n0 0.9 0.5 0.4 0.2\n")
    (root / "classes.txt").write_text("cat\n")
    return root


def _cvat(root: Path) -> Path:
    (root / "annotations.xml").write_text(
        '<annotations><version>1.1</version><image id="0" name="a.jpg" width="100" height="80">'
        '<box xtl="1" ytl="1" xbr="5" ybr="5" occluded="0"/>'
        '<box label="cat" xtl="10" ytl="10" xbr="150" ybr="40" occluded="0"/></image></annotations>')
    return root


def _labelme(root: Path) -> Path:
    doc = {"version": "5.2.1", "flags": {}, "imagePath": "a.jpg", "imageData": None, "imageWidth": 100,
           "imageHeight": 80, "shapes": [
               {"label": "", "points": [[1, 1], [5, 5]], "shape_type": "rectangle", "flags": {}},
               {"label": "cat", "points": [[10, 10], [150, 40]], "shape_type": "rectangle", "flags": {}}]}
    (root / "a.json").write_text(json.dumps(doc))
    return root


def _labelstudio(root: Path) -> Path:
    def region(labels, x):
        return {"type": "rectanglelabels", "original_width": 100, "original_height": 80,
                "value": {"x": x, "y": 10, "width": 60, "height": 20, "rotation": 0, "rectanglelabels": labels}}
    tasks = [{"id": 3, "data": {"image": "/data/upload/1/a.jpg"},
              "annotations": [{"id": 1, "result": [region([], 1), region(["cat"], 50)]}]}]
    path = root / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def _openimages(root: Path) -> Path:
    make_jpeg(root / "validation" / "a.jpg", 100, 80)
    (root / "validation-annotations-bbox.csv").write_text(
        "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
        "a,xclick,/m/cat,1,x,0.5,0.1,0.5,0,0,0,0,0\n"
        "a,xclick,/m/cat,1,0.5,1.2,0.1,0.5,0,0,0,0,0\n")
    (root / "class-descriptions-boxable.csv").write_text("/m/cat,cat\n")
    return root


# format: (source builder, the dropped object's finding field starts with, the clipped object's field)
CASES = {
    "voc": (_voc, "object[0]/name", "object[1]/bndbox"),
    "coco": (_coco, "annotations[0]", "annotations[1]"),
    "yolo": (_yolo, "line 1", "line 2"),
    "cvat": (_cvat, "image[0]/box[0]", "image[0]/box[1]"),
    "labelme": (_labelme, "shapes[0]", "shapes[1]"),
    "labelstudio": (_labelstudio, "[0]/annotations[0]/result[0]", "[0]/annotations[0]/result[1]"),
    "openimages": (_openimages, "line 2", "line 3"),
}


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_a_clipped_box_is_named_where_its_reader_found_it(tmp_path, fmt):
    build, dropped_at, clipped_at = CASES[fmt]
    ds = formats.get(fmt).read(build(tmp_path))
    dropped = [f for f in ds.findings if f.objects]
    assert len(dropped) == 1 and dropped[0].field.startswith(dropped_at), [(f.code, f.field) for f in ds.findings]
    assert [a.label for im in ds.images for a in im.annotations] == ["cat"]
    clipped = [f for f in prepare(ds).findings if f.code == "box-out-of-bounds"]
    assert [f.field for f in clipped] == [clipped_at]
