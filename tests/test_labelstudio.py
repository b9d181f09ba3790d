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
