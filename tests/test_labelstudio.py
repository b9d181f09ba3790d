"""Label Studio JSON export: reading an export, the task list written for import, round trips through COCO, bad
input as findings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from datatools import formats
from datatools.cli import cli
from datatools.formats import coco, labelstudio
from datatools.ops.convert import convert
from tests.conftest import make_jpeg


def region(label, x, y, w, h, *, ow=200, oh=100, rotation=0, kind="rectanglelabels", rid="r"):
    # A region as Label Studio's export writes it (labelstud.io/tags/rectanglelabels: percent of original size).
    return {"id": rid, "type": kind, "from_name": "label", "to_name": "image", "original_width": ow,
            "original_height": oh, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, kind: [label]}}


def task(tid, image, *annotations):
    return {"id": tid, "data": {"image": image}, "annotations": list(annotations), "predictions": [],
            "project": 3, "created_at": "2024-01-01T00:00:00Z"}


def annotation(aid, *results, cancelled=False):
    return {"id": aid, "completed_by": 1, "result": list(results), "was_cancelled": cancelled,
            "ground_truth": False, "lead_time": 4.2}


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """An export of three tasks: an uploaded image (hashed name), a local-files image with two annotations (the
    first cancelled), and a task nobody annotated; the images in img/."""
    make_jpeg(tmp_path / "img" / "cat.jpg", 200, 100)
    make_jpeg(tmp_path / "img" / "sub" / "dog.jpg", 200, 100)
    make_jpeg(tmp_path / "img" / "empty.jpg", 200, 100)
    tasks = [
        task(1, "/data/upload/3/1a2b3c4d-cat.jpg",
             annotation(11, region("Cat", 10, 20, 25, 50), region("Dog", 0, 0, 100, 100, rid="r2"),
                        {"id": "c", "type": "choices", "value": {"choices": ["indoor"]}})),
        task(2, "/data/local-files/?d=photos/sub/dog.jpg",
             annotation(21, region("Cat", 0, 0, 50, 50), cancelled=True),
             annotation(22, region("Dog", 50, 50, 25.5, 10))),
        task(3, "https://example.com/media/empty.jpg"),
    ]
    p = tmp_path / "project-3-at-2024.json"
    p.write_text(json.dumps(tasks))
    return p


def boxes(ds):
    return {im.image_id: sorted((a.label, tuple(round(v, 9) for v in a.box)) for a in im.annotations)
            for im in ds.images}


def codes(ds):
    return sorted(f.code for f in ds.findings)


def test_reads_an_export(export):
    ds = labelstudio.read(export, images=export.parent / "img")
    assert boxes(ds) == {"cat": [("Cat", (20.0, 20.0, 70.0, 70.0)), ("Dog", (0.0, 0.0, 200.0, 100.0))],
                         "dog": [("Dog", (100.0, 50.0, 151.0, 60.0))], "empty": []}
    assert [im.image_path for im in ds.images] == [str(export.parent / "img" / p)
                                                   for p in ("cat.jpg", "sub/dog.jpg", "empty.jpg")]
    # the unannotated task has no region to give a size: its image header does
    assert codes(ds) == ["empty-annotation", "several-annotations", "size-from-image", "unsupported-shape"]
    assert ds.objects_read == 4 == ds.num_objects + sum(f.objects for f in ds.findings)


def test_without_images_sizes_come_from_the_regions(export, tmp_path):
    alone = tmp_path / "alone" / "export.json"
    alone.parent.mkdir()
    alone.write_bytes(export.read_bytes())
    ds = labelstudio.read(alone)  # no image near the export: one warning, not one error per task
    assert [f.code for f in ds.findings if f.severity.value != "info"].count("missing-image-dir") == 1
    assert "missing-image" not in codes(ds)
    assert boxes(ds)["cat"][0] == ("Cat", (20.0, 20.0, 70.0, 70.0))
    cat = next(im for im in ds.images if im.image_id == "cat")
    assert (cat.width, cat.height, cat.image_path) == (200, 100, None)
    assert "empty" not in boxes(ds)  # an unannotated task without an image has no size: dropped, and counted
    assert "missing-size" in codes(ds)


def test_rotation_is_a_warning_and_the_envelope_is_used(tmp_path):
    p = tmp_path / "e.json"
    p.write_text(json.dumps([task(1, "a.jpg", annotation(1, region("c", 10, 10, 10, 20, ow=100, oh=100,
                                                                   rotation=90)))]))
    ds = labelstudio.read(p)
    assert "rotated-box" in codes(ds)
    # a 10x20 box rotated 90 degrees clockwise about its top-left corner (10, 10): x from -10 to 0 relative
    assert boxes(ds)["a"] == [("c", (-10.0, 10.0, 10.0, 20.0))]


def test_polygon_regions_become_boxes(tmp_path):
    p = tmp_path / "e.json"
    poly = {"id": "p", "type": "polygonlabels", "original_width": 100, "original_height": 50,
            "value": {"points": [[10, 10], [50, 20], [30, 80]], "polygonlabels": ["c"]}}
    p.write_text(json.dumps([task(1, "a.jpg", annotation(1, poly))]))
    ds = labelstudio.read(p)
    assert boxes(ds)["a"] == [("c", (10.0, 5.0, 50.0, 40.0))] and "polygon-to-box" in codes(ds)


@pytest.mark.parametrize("result,code", [
    ({"type": "rectanglelabels", "original_width": 10, "original_height": 10,
      "value": {"x": "a", "y": 1, "width": 1, "height": 1, "rectanglelabels": ["c"]}}, "bad-number"),
    ({"type": "rectanglelabels", "original_width": 10, "original_height": 10,
      "value": {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": []}}, "missing-field"),
    ({"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 1, "height": 1, "rectanglelabels": ["c"]}},
     "missing-size"),
    ({"type": "polygonlabels", "original_width": 10, "original_height": 10,
      "value": {"points": [[1, 1]], "polygonlabels": ["c"]}}, "bad-shape"),
    ({"type": "labels", "original_width": 10, "original_height": 10,
      "value": {"x": 1, "y": None, "width": 1, "height": 1, "labels": ["c"]}}, "bad-number"),
    ("not a region", "unsupported-shape"),
])
def test_bad_regions_are_findings(tmp_path, result, code):
    p = tmp_path / "e.json"
    p.write_text(json.dumps([task(1, "a.jpg", annotation(1, result)),
                             task(2, "ok.jpg", annotation(2, region("c", 1, 1, 2, 2)))]))
    ds = labelstudio.read(p)
    assert code in codes(ds)
    assert any(im.image_id == "ok" and len(im.annotations) == 1 for im in ds.images)
    assert ds.objects_read == ds.num_objects + sum(f.objects for f in ds.findings)


def test_not_an_export_is_one_message(tmp_path):
    p = tmp_path / "e.json"
    p.write_text("[{")
    r = CliRunner().invoke(cli, ["check", str(p), "--format", "labelstudio"])
    assert r.exit_code != 0 and "not valid JSON" in r.output and "Traceback" not in r.output


def test_detect(export, tmp_path):
    assert formats.detect(export) == "labelstudio"
    assert formats.get("label-studio").NAME == "labelstudio"


def test_written_tasks_import_and_read_back(export, tmp_path):
    out = tmp_path / "ls"
    s = convert("labelstudio", export, "labelstudio", out, images=export.parent / "img")
    assert s.balanced and s.objects_written == 3
    tasks = json.loads((out / "tasks.json").read_text())
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=images/cat.jpg"
    assert (out / "images" / "cat.jpg").is_file()
    r = tasks[0]["annotations"][0]["result"][0]
    assert (r["type"], r["from_name"], r["to_name"], r["original_width"]) == ("rectanglelabels", "label", "image", 200)
    assert r["value"] == {"x": 10, "y": 20, "width": 25, "height": 50, "rotation": 0, "rectanglelabels": ["Cat"]}
    assert boxes(labelstudio.read(out)) == boxes(labelstudio.read(export, images=export.parent / "img"))


def test_round_trip_through_coco_box_for_box(export, tmp_path):
    src = labelstudio.read(export, images=export.parent / "img")
    convert("labelstudio", export, "coco", tmp_path / "coco", images=export.parent / "img")
    assert boxes(coco.read(tmp_path / "coco")) == boxes(src)
    convert("coco", tmp_path / "coco", "labelstudio", tmp_path / "back")
    assert boxes(labelstudio.read(tmp_path / "back")) == boxes(src)
    # percentages come back as written (to 1e-9), not only the pixels
    first = json.loads((tmp_path / "back" / "tasks.json").read_text())[1]["annotations"][0]["result"][0]["value"]
    assert first["width"] == pytest.approx(25.5, abs=1e-9)


def test_writer_refuses_no_size_through_convert(tmp_path):
    # A COCO image without a size and without its image: dropped and counted before writing, never a traceback.
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg",
                                                                       "width": 10, "height": 10}],
                             "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]},
                                             {"id": 2, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]}],
                             "categories": [{"id": 1, "name": "c"}]}))
    r = CliRunner().invoke(cli, ["convert", str(c), str(tmp_path / "o"), "--to", "labelstudio", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["objects"]["balanced"] and out["objects"]["written"] == 1
    assert len(json.loads((tmp_path / "o" / "tasks.json").read_text())) == 1


# ------------------------------------------------------------------------------------------ documented layouts
# Written by hand in the layout of Label Studio's export guide (docs/source/guide/export.md, "Label Studio JSON format
# of annotated tasks" and "JSON_MIN"): the same field names, nesting and order, with our own values. Neither gives
# original_width/original_height, so the size is the image header's. The predictions must not be read.
DOC_JSON = """[{
    "id": 7,

    "data": {
        "image": "https://example.com/media/examples/moon.jpg"
    },
    "created_at":"2021-03-09T21:52:49.513742Z",
    "updated_at":"2021-03-09T22:16:08.746926Z",
    "project":83,
    "annotations": [
        {
            "id": "1001",
            "result": [
                {
                    "from_name": "tag",
                    "id": "Dx_aB91ISN",
                    "source": "$image",
                    "to_name": "img",
                    "type": "rectanglelabels",
                    "value": {
                        "height": 12.5,
                        "rectanglelabels": [
                            "Moonwalker"
                        ],
                        "rotation": 0,
                        "width": 12.4,
                        "x": 50.8,
                        "y": 5
                    }
                }
            ],
            "was_cancelled":false,
            "ground_truth":false,
            "created_at":"2021-03-09T22:16:08.728353Z",
            "updated_at":"2021-03-09T22:16:08.728378Z",
            "lead_time":4.288,
            "result_count":0,
            "task":7,
            "completed_by":10
        }
    ],

    "predictions": [
        {
            "created_ago": "3 hours",
            "model_version": "model 1",
            "result": [
                {
                    "from_name": "tag",
                    "id": "t5sp3TyXPo",
                    "source": "$image",
                    "to_name": "img",
                    "type": "rectanglelabels",
                    "value": {
                        "height": 11.6,
                        "rectanglelabels": [
                            "Moonwalker"
                        ],
                        "rotation": 0,
                        "width": 39.6,
                        "x": 13.2,
                        "y": 34.7
                    }
                }
            ]
        }
    ]
}]
"""
DOC_JSON_MIN = """[
{
  "image": "https://example.com/media/examples/moon.jpg",
  "tag": [{
    "height": 12.5,
    "rectanglelabels": [
        "Moonwalker"
    ],
    "rotation": 0,
    "width": 12.4,
    "x": 50.8,
    "y": 5
  }]
}
]
"""
MOON = [("Moonwalker", (254.0, 20.0, 316.0, 70.0))]  # 50.8% of 500 = 254, 12.4% = 62; 5% of 400 = 20, 12.5% = 50


@pytest.mark.parametrize("text", [DOC_JSON, DOC_JSON_MIN], ids=["JSON", "JSON_MIN"])
def test_documented_layouts_are_read_box_for_box(tmp_path, text):
    make_jpeg(tmp_path / "images" / "moon.jpg", 500, 400)
    p = tmp_path / "export.json"
    p.write_text(text)
    assert formats.detect(p) == "labelstudio"
    ds = labelstudio.read(p)  # images/ beside the export
    assert boxes(ds) == {"moon": MOON}
    assert (ds.images[0].width, ds.images[0].height) == (500, 400) and "size-from-image" in codes(ds)
    assert ds.objects_read == 1  # the prediction is not an annotation


def test_documented_json_min_through_the_cli(tmp_path):
    make_jpeg(tmp_path / "images" / "moon.jpg", 500, 400)
    (tmp_path / "min.json").write_text(DOC_JSON_MIN)
    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "min.json"), str(tmp_path / "coco"), "--to", "coco",
                                 "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["src_format"] == "labelstudio"
    assert boxes(coco.read(tmp_path / "coco")) == {"moon": MOON}


# -------------------------------------------------------------------------------------------------- JSON-MIN
def min_item(tid, image, annotation_id, **controls):
    # One JSON-MIN item as label-studio-converter's convert_to_json_min writes it: the task's data keys, the task id,
    # the control tags' result values (with original_width/height, without type), then the annotation's fields.
    return {"image": image, "id": tid, **controls, "annotator": 1, "annotation_id": annotation_id,
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "lead_time": 3.5}


def min_region(label, x, y, w, h, *, ow=200, oh=100, rotation=0, kind="rectanglelabels"):
    return {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, kind: [label], "original_width": ow,
            "original_height": oh}


def test_json_min_gives_the_boxes_of_the_full_export(export, tmp_path):
    # The fixture's export as JSON-MIN: the cancelled annotation is not exported; the unannotated task is data only.
    items = [
        min_item(1, "/data/upload/3/1a2b3c4d-cat.jpg", 11,
                 label=[min_region("Cat", 10, 20, 25, 50), min_region("Dog", 0, 0, 100, 100)],
                 indoor="indoor"),  # a single choice: a bare string, read as task data, not as a region
        min_item(2, "/data/local-files/?d=photos/sub/dog.jpg", 22, label=[min_region("Dog", 50, 50, 25.5, 10)]),
        {"image": "https://example.com/media/empty.jpg", "id": 3, "annotator": None, "annotation_id": None,
         "created_at": None, "updated_at": None, "lead_time": None},
    ]
    p = tmp_path / "min.json"
    p.write_text(json.dumps(items, indent=2))
    full = labelstudio.read(export, images=export.parent / "img")
    ds = labelstudio.read(p, images=export.parent / "img")
    assert boxes(ds) == boxes(full)
    assert [im.image_path for im in ds.images] == [im.image_path for im in full.images]
    assert codes(ds) == ["empty-annotation", "size-from-image"]
    assert ds.objects_read == 3 == ds.num_objects


def test_json_min_findings_name_the_items_fields(tmp_path):
    poly = {"points": [[10, 10], [50, 20], [30, 80]], "polygonlabels": ["c"], "original_width": 100,
            "original_height": 100}
    keypoint = {"x": 5, "y": 5, "width": 0.5, "keypointlabels": ["nose"], "original_width": 100,
                "original_height": 100}
    items = [min_item(1, "a.jpg", 5, label=[min_region("c", 10, 10, 10, 20, ow=100, oh=100, rotation=90),
                                            min_region("c", 1, 1, 2, 2, ow=100, oh=100),
                                            min_region("c", 1, 1, 2, 2, ow=100, oh=100)],
                      poly=[poly], kp=[keypoint],
                      tags=[{"choices": ["indoor", "day"]}])]  # several choices: a list of values
    items[0]["label"][2]["rectanglelabels"] = ["c", "d"]
    p = tmp_path / "min.json"
    p.write_text(json.dumps(items))
    ds = labelstudio.read(p)
    assert boxes(ds)["a"] == [("c", (-10.0, 10.0, 10.0, 20.0)), ("c", (1.0, 1.0, 3.0, 3.0)),
                              ("c", (1.0, 1.0, 3.0, 3.0)), ("c", (10.0, 10.0, 50.0, 80.0))]
    by_code = {f.code: f for f in ds.findings}
    assert by_code["rotated-box"].field == "[0]/label[0]/value/rotation"
    assert by_code["several-labels"].field == "[0]/label[2]/value/rectanglelabels"
    assert "polygon-to-box" in by_code
    dropped = [f for f in ds.findings if f.code == "unsupported-shape"]
    assert sorted(f.message.split("'")[1] for f in dropped) == ["choices", "keypointlabels"]
    assert ds.objects_read == 6 == ds.num_objects + sum(f.objects for f in ds.findings)


def test_json_min_items_of_one_task_are_its_annotations(tmp_path):
    # convert_to_json_min writes one item per completed annotation: two items with task id 4 are one image
    items = [min_item(4, "a.jpg", 40, label=[min_region("x", 0, 0, 10, 10)]),
             min_item(4, "a.jpg", 41, label=[min_region("y", 0, 0, 20, 20)]),
             {"img": "photos/b.png", "id": 5, "annotation_id": 50, "annotator": "ann@example.com"}]
    p = tmp_path / "min.json"
    p.write_text(json.dumps(items))
    ds = labelstudio.read(p)
    assert [im.image_id for im in ds.images] == ["a"]  # b has no region to give a size and no image: dropped
    assert boxes(ds)["a"] == [("x", (0.0, 0.0, 20.0, 10.0))]
    several = next(f for f in ds.findings if f.code == "several-annotations")
    assert "2 annotations" in several.message and "40" in several.message
    assert "duplicate-file-name" not in codes(ds)
    assert any(f.code == "missing-size" and f.image_id == "b" for f in ds.findings)  # $img named it


def test_a_list_that_is_no_label_studio_export_is_one_message(tmp_path):
    p = tmp_path / "detections.json"  # a COCO results file: a list, but no task and no JSON-MIN item
    p.write_text(json.dumps([{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.9}]))
    r = CliRunner().invoke(cli, ["check", str(p), "--format", "labelstudio"])
    assert r.exit_code != 0 and "not a Label Studio export" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("doc,want", [
    ([{"image": "a.jpg", "label": [{"x": 1, "y": 1, "width": 2, "height": 2, "rectanglelabels": ["c"]}]}],
     "labelstudio"),
    ([{"image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.9}], "coco"),  # COCO results
    ({"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}], "annotations": [],
      "categories": [{"id": 1, "name": "c", "supercategory": "data"}]}, "coco"),
    ({"version": "5.2.1", "flags": {}, "shapes": [{"label": "c", "points": [[1, 1], [2, 2]],
                                                   "shape_type": "rectangle"}],
      "imagePath": "a.jpg", "imageData": None, "imageHeight": 4, "imageWidth": 4}, "labelme"),
    ({"version": "5.2.1", "imageData": "A" * 70000, "shapes": [], "imagePath": "a.jpg"}, "labelme"),
])
def test_sniffing_json_min_and_its_neighbours(tmp_path, doc, want):
    p = tmp_path / "x.json"
    p.write_text(json.dumps(doc))
    assert formats.detect(p) == want


# ------------------------------------------------------------------------------------ the full export, audited
def one_task(tmp_path, *tasks, w=200, h=100, images=("cat.jpg",)):
    for name in images:
        make_jpeg(tmp_path / "img" / name, w, h)
    p = tmp_path / "e.json"
    p.write_text(json.dumps(list(tasks)))
    return labelstudio.read(p, images=tmp_path / "img")


def test_the_image_is_the_data_value_naming_an_image(tmp_path):
    # <Image value="$img"/> with a text field first: the caption is not the image
    t = task(1, "", annotation(1, region("c", 0, 0, 50, 50)))
    t["data"] = {"caption": "A cat. On a mat.", "img": "/data/upload/3/1a2b3c4d-cat.jpg", "source": "cam/7"}
    ds = one_task(tmp_path, t)
    assert ds.images[0].image_id == "cat" and ds.images[0].image_path == str(tmp_path / "img" / "cat.jpg")


@pytest.mark.parametrize("ref,name", [
    ("/data/upload/3/1a2b3c4d-cat.jpg", "3/1a2b3c4d-cat.jpg"),
    ("http://localhost:8080/data/upload/3/1a2b3c4d-cat.jpg", "3/1a2b3c4d-cat.jpg"),
    ("/data/local-files/?d=photos%2Fmy%20cat.jpg", "photos/my cat.jpg"),
    ("http://localhost:8080/data/local-files/?d=photos/cat.jpg", "photos/cat.jpg"),
    ("s3://bucket/dir/cat.jpg", "dir/cat.jpg"),
    ("gs://bucket/cat.jpg", "cat.jpg"),
    ("https://bucket.s3.amazonaws.com/dir/my%20cat.jpg?X-Amz-Signature=ab%2Fc", "dir/my cat.jpg"),
    ("C:\\photos\\cat.jpg", "C:\\photos\\cat.jpg"),
    ("photos/cat.jpg", "photos/cat.jpg"),
])
def test_image_references(ref, name):
    assert labelstudio.image_name(ref) == name


@pytest.mark.parametrize("ref", [
    "/data/upload/3/1a2b3c4d-cat.jpg", "http://localhost:8080/data/upload/3/1a2b3c4d-cat.jpg",
    "http://localhost:8080/data/local-files/?d=photos/cat.jpg", "s3://bucket/dir/cat.jpg", "gs://bucket/cat.jpg",
    "https://cdn.example.com/cat.jpg?sig=1"])
def test_every_reference_finds_its_image(tmp_path, ref):
    ds = one_task(tmp_path, task(1, ref, annotation(1, region("c", 0, 0, 50, 50))))
    assert (ds.images[0].image_id, ds.images[0].image_path) == ("cat", str(tmp_path / "img" / "cat.jpg"))
    assert "missing-image" not in codes(ds)


def test_ground_truth_wins_and_skipped_is_cancelled(tmp_path):
    skipped = {"id": 1, "result": [region("skip", 0, 0, 10, 10)], "skipped": True}  # before 1.0
    first = annotation(2, region("first", 0, 0, 20, 20))
    truth = annotation(3, region("truth", 0, 0, 30, 30))
    truth["ground_truth"] = True
    ds = one_task(tmp_path, task(1, "cat.jpg", skipped, first, truth))
    assert [a.label for a in ds.images[0].annotations] == ["truth"]
    assert "ground-truth one (id 3)" in next(f.message for f in ds.findings if f.code == "several-annotations")
    ds = one_task(tmp_path, task(1, "cat.jpg", skipped, first))
    assert [a.label for a in ds.images[0].annotations] == ["first"]
    # every annotation cancelled: Label Studio's converter drops the task; it was an image with no objects
    ds = one_task(tmp_path, task(1, "cat.jpg", skipped), task(2, "dog.jpg", first), images=("cat.jpg", "dog.jpg"))
    assert [im.image_id for im in ds.images] == ["dog"]
    (f,) = [f for f in ds.findings if f.code == "cancelled-annotation"]
    assert f.image_dropped and f.severity.value == "warning"


def test_predictions_and_drafts_are_not_read(tmp_path):
    t = task(1, "cat.jpg")
    t["predictions"] = [{"model_version": "m", "score": 0.5, "result": [region("pred", 0, 0, 10, 10)]}]
    t["drafts"] = [{"id": 9, "result": [region("draft", 0, 0, 10, 10)]}]
    ds = one_task(tmp_path, t)
    assert ds.images[0].annotations == () and ds.objects_read == 0
    assert "2 prediction(s)/draft(s) are not read" in next(f.message for f in ds.findings
                                                            if f.code == "empty-annotation")


def test_several_labels_on_one_box_is_a_warning(tmp_path):
    r = region("Cat", 10, 20, 25, 50)
    r["value"]["rectanglelabels"] = ["Cat", "Pet"]
    ds = one_task(tmp_path, task(1, "cat.jpg", annotation(1, r)))
    assert boxes(ds)["cat"] == [("Cat", (20.0, 20.0, 70.0, 70.0))]
    f = next(f for f in ds.findings if f.code == "several-labels")
    assert f.severity.value == "warning" and f.field == "[0]/annotations[0]/result[0]/value/rectanglelabels"


def test_a_result_without_original_size_takes_the_image_header(tmp_path):
    r = region("Cat", 10, 20, 25, 50)
    del r["original_width"], r["original_height"]
    ds = one_task(tmp_path, task(1, "cat.jpg", annotation(1, r)), w=400, h=300)
    assert boxes(ds)["cat"] == [("Cat", (40.0, 60.0, 140.0, 210.0))] and "size-from-image" in codes(ds)


def test_a_flipped_box_is_its_extent(tmp_path):
    # Label Studio keeps the signs of a box resized past its anchor (HumanSignal/label-studio issue 1141): said, once
    ds = one_task(tmp_path, task(1, "cat.jpg", annotation(1, region("c", 60, 70, -20, -40), region("c", 0, 0, 5, 5))))
    assert boxes(ds)["cat"] == [("c", (0.0, 0.0, 10.0, 5.0)), ("c", (80.0, 30.0, 120.0, 70.0))]
    assert [(f.severity.value, f.field) for f in ds.findings if f.code == "flipped-box"] == [
        ("info", "[0]/annotations[0]/result[0]/value")] and ds.num_objects == ds.objects_read == 2


# <Rectangle> + <Labels> exports results of type "labels" holding the rectangle and "labels", which Label Studio's
# converter reads as boxes; <Polygon> + <Labels> holds points. Other geometry (a keypoint's x, y and size, an
# ellipse's radii, a brush's rle) is counted, not read. The image is 200x100, as original_width/height say.
@pytest.mark.parametrize("value,want,notes", [
    ({"x": 10, "y": 20, "width": 25, "height": 50}, [("Cat", (20.0, 20.0, 70.0, 70.0))], []),
    ({"x": 60, "y": 70, "width": -20, "height": -40}, [("Cat", (80.0, 30.0, 120.0, 70.0))], ["flipped-box"]),
    # 20x20 px at (20, 20) rotated 90 degrees clockwise about (20, 20): x 0..20, y 20..40
    ({"x": 10, "y": 20, "width": 10, "height": 20, "rotation": 90}, [("Cat", (0.0, 20.0, 20.0, 40.0))],
     ["rotated-box"]),
    ({"x": 10, "y": 20, "width": 25, "height": 50, "labels": ["Cat", "Pet"]}, [("Cat", (20.0, 20.0, 70.0, 70.0))],
     ["several-labels"]),
    ({"points": [[10, 10], [50, 20], [30, 80]]}, [("Cat", (20.0, 10.0, 100.0, 80.0))], ["polygon-to-box"]),
    # not read: no box or polygon gives the size, the image header does (size-from-image)
    ({"x": 5, "y": 5, "width": 0.5}, [], ["size-from-image", "unsupported-shape"]),
    ({"x": 5, "y": 5, "radiusX": 2, "radiusY": 3}, [], ["size-from-image", "unsupported-shape"]),
    ({"format": "rle", "rle": [1, 2]}, [], ["size-from-image", "unsupported-shape"]),
])
def test_labels_results_are_read_by_their_geometry(tmp_path, value, want, notes):
    r = {"id": "r", "type": "labels", "from_name": "tag", "to_name": "image", "original_width": 200,
         "original_height": 100, "value": {"labels": ["Cat"], **value}}
    ds = one_task(tmp_path, task(1, "cat.jpg", annotation(1, r)))
    assert boxes(ds)["cat"] == want and codes(ds) == notes
    assert ds.objects_read == 1 == ds.num_objects + sum(f.objects for f in ds.findings)
    if want and "x" in value:  # the same region as rectanglelabels: the same box and notes (one parsing path)
        r = dict(r, type="rectanglelabels", value={k.replace("labels", "rectanglelabels"): v
                                                   for k, v in r["value"].items()})
        ds = one_task(tmp_path, task(1, "cat.jpg", annotation(1, r)))
        assert boxes(ds)["cat"] == want and codes(ds) == notes


def test_labels_results_in_json_min(tmp_path):
    # JSON-MIN keeps a value under its control's name: "labels" is its *labels key, as "rectanglelabels" would be
    value = {"x": 10, "y": 20, "width": 25, "height": 50, "labels": ["Cat"], "original_width": 200,
             "original_height": 100}
    (tmp_path / "min.json").write_text(json.dumps([min_item(1, "a.jpg", 5, tag=[value])]))
    ds = labelstudio.read(tmp_path / "min.json")
    assert boxes(ds) == {"a": [("Cat", (20.0, 20.0, 70.0, 70.0))]} and ds.num_objects == ds.objects_read == 1


# ------------------------------------------------------------------------------ malformed values (issue 18 audit)
def _with(t, **changes):
    t = json.loads(json.dumps(t))
    for key, value in changes.items():
        if key == "annotations":
            t["annotations"] = value
        elif key == "result":
            t["annotations"][0]["result"] = value
        else:
            t["annotations"][0]["result"][0]["value"][key] = value
    return t


@pytest.mark.parametrize("change,field", [
    ({"annotations": "nope"}, "[0]/annotations"),
    ({"annotations": {"result": []}}, "[0]/annotations"),
    ({"result": "nope"}, "[0]/annotations[0]/result"),
    ({"annotations": ["nope"]}, "[0]/annotations[0]"),  # not "the only annotation was cancelled"
])
def test_annotations_that_are_no_list_drop_the_task(tmp_path, change, field):
    good = task(2, "ok.jpg", annotation(2, region("c", 1, 1, 2, 2)))
    bad = _with(task(1, "a.jpg", annotation(1, region("c", 1, 1, 2, 2))), **change)
    ds = one_task(tmp_path, bad, good, images=("a.jpg", "ok.jpg"))
    dropped = [f for f in ds.findings if f.image_dropped]
    # not read as an image without objects: a background image would teach a model that nothing is there
    assert [(f.code, f.field, f.image_id) for f in dropped] == [("missing-field", field, "a")]
    assert dropped[0].message.startswith("expected a") and "the task is dropped" in dropped[0].message
    assert [im.image_id for im in ds.images] == ["ok"] and "empty-annotation" not in codes(ds)


@pytest.mark.parametrize("rotation,kept", [("abc", False), (True, False), ([90], False), (None, True), (0, True)])
def test_a_rotation_that_is_no_number_drops_the_box_as_cvat_does(tmp_path, rotation, kept):
    ds = one_task(tmp_path, _with(task(1, "cat.jpg", annotation(1, region("c", 10, 10, 20, 20))), rotation=rotation))
    assert len(ds.images[0].annotations) == int(kept)
    bad = [f for f in ds.findings if f.code == "bad-number"]
    assert [(f.field, f.objects) for f in bad] == ([] if kept else [("[0]/annotations[0]/result[0]/value/rotation", 1)])
    assert ds.objects_read == ds.num_objects + sum(f.objects for f in ds.findings)


def test_one_image_in_three_exports_gets_three_ids(tmp_path):
    """Three exports of one task each for a.jpg, without task ids: the second and third both became a__0, so one
    task's boxes were lost and another's doubled while objects in still balanced. The suffix now loops until free."""
    for k, label in enumerate(["cat", "dog", "fox"]):
        t = {"data": {"image": "a.jpg"}, "annotations": [annotation(1, region(label, 10, 10, 20, 20))]}
        (tmp_path / f"e{k}.json").write_text(json.dumps([t]))
    ds = labelstudio.read(tmp_path)
    assert [(im.image_id, [a.label for a in im.annotations]) for im in ds.images] == [
        ("a", ["cat"]), ("a__0", ["dog"]), ("a__0_2", ["fox"])]
    assert [f.image_id for f in ds.findings if f.code == "duplicate-file-name"] == ["a__0", "a__0_2"]
    assert ds.objects_read == ds.num_objects == 3


def test_the_image_lookup_reports_what_every_reader_reports(tmp_path):
    """Images are paired by ImageIndex.locate, as in every reader: a task naming cat.png, where only cat.jpg is,
    gets cat.jpg with the filename-mismatch warning COCO and CVAT give (the lookup's notes were dropped), and a task
    whose image is not there a missing-image error at its data field, naming the task's image."""
    ds = one_task(tmp_path, task(1, "/data/local-files/?d=cat.png", annotation(1, region("c", 10, 20, 25, 50))),
                  task(2, "dog.jpg", annotation(2, region("c", 10, 20, 25, 50))))
    assert [(im.image_id, Path(im.image_path or "").name) for im in ds.images] == [("cat", "cat.jpg"), ("dog", "")]
    said = [(f.code, f.severity.value, f.field, f.image_id) for f in ds.findings
            if f.code in ("filename-mismatch", "missing-image")]
    assert said == [("filename-mismatch", "warning", "filename", "cat"), ("missing-image", "error", "[1]/data", "dog")]
    note = next(f for f in ds.findings if f.code == "filename-mismatch")
    assert "'cat.png'" in note.message and note.path == str(tmp_path / "e.json")  # the export, not the image folder


def test_images_of_one_name_in_two_folders_are_paired_by_their_path(tmp_path):
    # ?d=dir1/0001.jpg and ?d=dir2/0001.jpg: both tasks were paired with dir1's picture, the second box computed in
    # its pixels (a size-mismatch), and a --fix copy linked dir1's file for both
    make_jpeg(tmp_path / "img" / "dir1" / "0001.jpg", 200, 100)
    make_jpeg(tmp_path / "img" / "dir2" / "0001.jpg", 400, 300)
    tasks = [task(k, f"/data/local-files/?d=dir{k}/0001.jpg",
                  annotation(k, region("Car", 10, 20, 30, 40, ow=w, oh=h))) for k, (w, h) in ((1, (200, 100)),
                                                                                            (2, (400, 300)))]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    ds = labelstudio.read(tmp_path / "export.json", images=tmp_path / "img")
    got = sorted((Path(im.image_path).parent.name, im.width, im.annotations[0].box) for im in ds.images)
    assert got == [("dir1", 200, (20.0, 20.0, 80.0, 60.0)), ("dir2", 400, (40.0, 60.0, 160.0, 180.0))], got
    assert not [f for f in ds.findings if f.code in ("size-mismatch", "filename-mismatch")]


def test_written_paths_come_back_to_their_own_pictures(tmp_path):
    """What write() puts in ?d= is read back as that file: images/d1/0001.jpg and images/d2/0001.jpg were both
    looked for under images/images/ and paired by base name with d1's picture; names with %, + or # were written
    unescaped and decoded into other names on reading (missing-image); an image without boxes had its size nowhere
    but in its picture, so without the pictures it was dropped."""
    from PIL import Image

    src = tmp_path / "src"
    names = ["d1/0001.png", "d2/0001.png", "x%41y.png", "a+b.png", "h#1.png", "empty.png"]  # PNG: exact colours
    colours = {}
    for k, n in enumerate(names):
        (src / n).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (100, 80), (40 * k, 0, 0)).save(src / n)
        colours[n] = 40 * k
    (src / "a.json").write_text(json.dumps({
        "images": [{"id": k + 1, "file_name": n, "width": 100, "height": 80} for k, n in enumerate(names)],
        "annotations": [{"id": k + 1, "image_id": k + 1, "category_id": 1, "bbox": [10, 10 + k, 5, 5], "area": 25,
                         "iscrowd": 0} for k in range(5)],
        "categories": [{"id": 1, "name": "a"}]}))
    assert convert("coco", src / "a.json", "labelstudio", tmp_path / "ls").images_written == 6
    back = labelstudio.read(tmp_path / "ls")
    assert not [f for f in back.findings if f.severity.value == "error"], back.findings
    got = {}
    for r in back.images:
        with Image.open(r.image_path) as im:
            got[im.getpixel((0, 0))[0]] = [a.box[1] for a in r.annotations]
    assert {c: got.get(c) for c in colours.values()} == {40 * k: ([10.0 + k] if k < 5 else []) for k in range(6)}
    convert("coco", src / "a.json", "labelstudio", tmp_path / "ls2", images_mode="none")
    s = convert("labelstudio", tmp_path / "ls2", "coco", tmp_path / "c2", images_mode="none")
    assert s.images_read == s.images_written == 6 and s.objects_written == 5


def test_a_task_of_two_images_reads_the_regions_of_its_image(tmp_path):
    """data.image and data.image2: a box drawn on the second (to_name img2, 400x300) was put on the first, rescaled,
    with no finding."""
    cat, dog = region("Cat", 10, 10, 20, 20), region("Dog", 50, 50, 10, 10)
    cat["to_name"], dog["to_name"] = "img1", "img2"
    t = task(1, "cat.jpg", annotation(1, cat, dog))
    t["data"]["image2"] = "/data/upload/1/dog.jpg"
    ds = one_task(tmp_path, t)
    assert [a.label for a in ds.images[0].annotations] == ["Cat"]
    assert [(f.code, f.objects) for f in ds.findings if f.code == "other-image"] == [("other-image", 1)]


def test_per_region_choices_are_the_regions_attributes(tmp_path):
    """A choices and a textarea result with a box's id are that box's attributes: they were 2 dropped objects."""
    box = region("Car", 10, 10, 20, 20)
    box["id"] = "r1"
    colour = {"id": "r1", "type": "choices", "from_name": "color", "to_name": "image", "value": {"choices": ["red"]}}
    plate = {"id": "r1", "type": "textarea", "from_name": "plate", "to_name": "image", "value": {"text": ["AB123"]}}
    ds = one_task(tmp_path, task(1, "cat.jpg", annotation(1, box, colour, plate)))
    (a,) = ds.images[0].annotations
    assert a.attributes == (("color", "red"), ("plate", "AB123")) and ds.objects_read == 1
    assert "unsupported-shape" not in codes(ds)


def test_a_bucket_key_keeps_its_hash_and_question_mark(tmp_path):
    """s3://bucket/raw/shot #1.jpg was cut at '#' and paired with shot.jpg, its box on another picture."""
    ds = one_task(tmp_path, task(1, "s3://bucket/raw/shot #1.jpg", annotation(1, region("A", 10, 10, 20, 20))),
                  images=("shot #1.jpg", "shot.jpg"))
    assert [(im.image_id, Path(im.image_path).name) for im in ds.images] == [("shot #1", "shot #1.jpg")]
