"""CVAT for images 1.1 XML: reading CVAT's documented export, findings for bad input, the writer, round trips."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import datatools
from datatools import formats
from datatools.cli import cli
from datatools.formats import cvat
from tests.conftest import make_jpeg

# Written after CVAT's "XML annotation format" page (version 1.1, annotation mode): meta/task/labels, images with
# width/height, boxes with occluded/z_order/source and <attribute> children, polygons as "x,y;x,y".
EXPORT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>7</id>
      <name>street</name>
      <size>3</size>
      <mode>annotation</mode>
      <labels>
        <label><name>person</name><attributes><attribute><name>pose</name></attribute></attributes></label>
        <label><name>car</name><attributes></attributes></label>
      </labels>
    </task>
    <dumped>2024-01-01 00:00:00.000000+00:00</dumped>
  </meta>
  <image id="0" name="a.jpg" width="64" height="48" subset="train">
    <box label="person" source="manual" occluded="1" xtl="1.5" ytl="2.25" xbr="30" ybr="40" z_order="0">
      <attribute name="pose">standing</attribute>
    </box>
    <polygon label="car" source="manual" occluded="0" points="10.00,5.00;50.00,8.00;40.00,30.00" z_order="0">
    </polygon>
    <polyline label="car" source="manual" occluded="0" points="1,1;5,5" z_order="0"></polyline>
    <points label="person" source="manual" occluded="0" points="3,3" z_order="0"></points>
  </image>
  <image id="1" name="sub/b.jpg" width="32" height="32" subset="val">
    <box label="car" source="manual" occluded="0" xtl="0" ytl="0" xbr="32" ybr="16" z_order="1"></box>
  </image>
  <image id="2" name="c.jpg" width="40" height="20" subset="train">
  </image>
</annotations>
"""


@pytest.fixture
def export(tmp_path: Path) -> Path:
    root = tmp_path / "task"
    make_jpeg(root / "images" / "a.jpg", 64, 48)
    make_jpeg(root / "images" / "sub" / "b.jpg", 32, 32)
    make_jpeg(root / "images" / "c.jpg", 40, 20)
    (root / "annotations.xml").write_text(EXPORT)
    return root


def boxes(ds):
    return {im.image_id: sorted((a.label, tuple(round(v, 4) for v in a.box)) for a in im.annotations)
            for im in ds.images}


def codes(ds):
    return [f.code for f in ds.findings]


def test_reads_cvat_export(export):
    ds = cvat.read(export)
    assert ds.classes == ("person", "car")  # the <meta> order, not sorted
    assert boxes(ds) == {"a": [("car", (10.0, 5.0, 50.0, 30.0)), ("person", (1.5, 2.25, 30.0, 40.0))],
                         "c": [], "sub/b": [("car", (0.0, 0.0, 32.0, 16.0))]}
    person = next(a for a in ds.images[0].annotations if a.label == "person")
    assert person.occluded and person.attrs == {"pose": "standing"}
    assert [im.splits for im in ds.images] == [("train",), ("train",), ("val",)]
    assert all(im.image_path for im in ds.images)
    assert codes(ds).count("polygon-to-box") == 1
    dropped = [f for f in ds.findings if f.code == "unsupported-shape"]
    assert sorted(f.field for f in dropped) == ["image[0]/points", "image[0]/polyline"]
    # The books: 5 shapes met = 3 kept + 2 dropped and counted.
    assert ds.objects_read == 5 == ds.num_objects + sum(f.objects for f in ds.findings)


def test_project_labels_and_file_path(tmp_path):
    xml = ("<annotations><version>1.1</version><meta><project><labels><label><name>zebra</name></label>"
           "<label><name>ant</name></label></labels></project></meta>"
           '<image id="0" name="x.png" width="10" height="10"><box label="ant" xtl="1" ytl="1" xbr="2" ybr="2" '
           'occluded="0"/><box label="bee" xtl="1" ytl="1" xbr="3" ybr="3" occluded="0"/></image></annotations>')
    f = tmp_path / "export.xml"
    f.write_text(xml)
    ds = cvat.read(f)
    assert ds.classes == ("zebra", "ant", "bee")
    assert "label-not-in-meta" in codes(ds)


def test_detects_cvat_and_not_voc(export, tmp_path):
    assert formats.detect(export) == "cvat"
    assert formats.detect(export / "annotations.xml") == "cvat"
    voc = tmp_path / "voc"
    voc.mkdir()
    (voc / "a.xml").write_text("<annotation><filename>a.jpg</filename></annotation>")
    assert formats.detect(voc) == "voc"


def test_rotated_box_reads_as_enclosing_box(tmp_path):
    (tmp_path / "annotations.xml").write_text(
        '<annotations><image id="0" name="r.jpg" width="100" height="100"><box label="a" xtl="40" ytl="45" xbr="60" '
        'ybr="55" rotation="90" occluded="0"/></image></annotations>')
    ds = cvat.read(tmp_path)
    (x1, y1, x2, y2), = [tuple(round(v, 6) for v in a.box) for a in ds.images[0].annotations]
    assert (x1, y1, x2, y2) == (45, 40, 55, 60)
    assert "rotated-box" in codes(ds)


@pytest.mark.parametrize("body,code,objects", [
    ('<box label="a" xtl="x" ytl="1" xbr="5" ybr="5" occluded="0"/>', "bad-number", 1),
    ('<box label="a" xtl="nan" ytl="1" xbr="5" ybr="5" occluded="0"/>', "bad-number", 1),
    ('<box xtl="1" ytl="1" xbr="5" ybr="5" occluded="0"/>', "missing-field", 1),
    ('<box label="a" xtl="3" ytl="1" xbr="3" ybr="5" occluded="0"/>', "zero-area", 1),
    ('<polygon label="a" points="1,1;2,2" occluded="0"/>', "bad-number", 1),
    ('<polygon label="a" points="1,1;2,x;3,3" occluded="0"/>', "bad-number", 1),
    ('<ellipse label="a" cx="3" cy="3" rx="1" ry="1" occluded="0"/>', "unsupported-shape", 1),
])
def test_bad_shapes_are_findings(tmp_path, body, code, objects):
    (tmp_path / "annotations.xml").write_text(
        f'<annotations><image id="0" name="a.jpg" width="10" height="10">{body}'
        '<box label="ok" xtl="1" ytl="1" xbr="4" ybr="4" occluded="0"/></image></annotations>')
    ds = cvat.read(tmp_path)
    assert [a.label for a in ds.images[0].annotations] == ["ok"]
    hit = [f for f in ds.findings if f.code == code]
    assert hit and hit[0].objects == objects
    assert ds.objects_read == 2 == ds.num_objects + sum(f.objects for f in ds.findings)


@pytest.mark.parametrize("data,code", [
    (b"", "empty-file"),
    (b"<annotations><image", "xml-parse"),
    (b"<annotation><filename>a.jpg</filename></annotation>", "xml-root"),
    (b'<?xml version="1.0"?>\n<!DOCTYPE annotations [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
     b'<annotations><image id="0" name="&x;" width="1" height="1"/></annotations>', "xml-dtd"),
])
def test_refused_files_are_findings(tmp_path, data, code):
    (tmp_path / "annotations.xml").write_bytes(data)
    ds = cvat.read(tmp_path / "annotations.xml")
    assert ds.images == () and codes(ds) == [code]
    assert ds.findings[0].image_dropped


def test_doctype_refused_through_the_cli(tmp_path):
    src = tmp_path / "task"
    src.mkdir()
    (src / "annotations.xml").write_bytes(
        b'<!DOCTYPE annotations SYSTEM "http://example.com/x.dtd"><annotations><image id="0" name="a.jpg" '
        b'width="9" height="9"/></annotations>')
    res = CliRunner().invoke(cli, ["check", str(src)])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "xml-dtd" in res.output


def test_image_without_name_is_dropped_and_counted(tmp_path):
    (tmp_path / "annotations.xml").write_text(
        '<annotations><image id="0" width="10" height="10"><box label="a" xtl="1" ytl="1" xbr="4" ybr="4" '
        'occluded="0"/></image><image id="1" name="b.jpg" width="10" height="10"/></annotations>')
    ds = cvat.read(tmp_path)
    assert [im.image_id for im in ds.images] == ["b"]
    f, = [f for f in ds.findings if f.code == "missing-field"]
    assert f.image_dropped and f.objects == 1


def test_missing_image_and_size_from_header(tmp_path):
    make_jpeg(tmp_path / "images" / "a.jpg", 30, 20)
    (tmp_path / "annotations.xml").write_text(
        '<annotations><image id="0" name="a.jpg"><box label="a" xtl="1" ytl="1" xbr="4" ybr="4" occluded="0"/>'
        '</image><image id="1" name="gone.jpg" width="10" height="10"/></annotations>')
    ds = cvat.read(tmp_path)
    assert [(im.image_id, im.width, im.height) for im in ds.images] == [("a", 30, 20), ("gone", 10, 10)]
    assert {"size-from-image", "missing-image"} <= set(codes(ds))


def test_write_then_read_keeps_everything(export, tmp_path):
    ds = cvat.read(export)
    out = tmp_path / "out"
    res = cvat.write(ds, out, images_mode="copy")
    assert res.objects_written == 3 and (out / "images" / "sub" / "b.jpg").is_file()
    back = cvat.read(out)
    assert boxes(back) == boxes(ds) and back.classes == ds.classes
    assert [im.splits for im in back.images] == [im.splits for im in ds.images]
    a = {x.label: x for x in back.images[0].annotations}
    assert a["person"].occluded and a["person"].attrs == {"pose": "standing"}
    text = (out / "annotations.xml").read_text()
    assert "<version>1.1</version>" in text and "<labels>" in text
    cvat.write(ds, tmp_path / "again", images_mode="copy")
    assert (tmp_path / "again" / "annotations.xml").read_bytes() == (out / "annotations.xml").read_bytes()


def test_round_trip_through_coco_box_for_box(export, tmp_path):
    s = datatools.convert("cvat", export, "coco", tmp_path / "coco")
    assert s.balanced
    s2 = datatools.convert("coco", tmp_path / "coco", "cvat", tmp_path / "cvat")
    assert s2.balanced
    back = cvat.read(tmp_path / "cvat")
    orig = cvat.read(export)
    assert boxes(back) == boxes(orig)
    assert set(back.classes) == set(orig.classes)


def test_flags_survive_write(tmp_path):
    from datatools.core.model import Annotation, Dataset, ImageRecord

    rec = ImageRecord("x", "x.jpg", 10, 10, (Annotation("a&b", (1, 1, 5, 5), difficult=True, truncated=True,
                                                        iscrowd=True, attributes=(("note", 'say "<hi>"'),)),))
    cvat.write(Dataset(images=(rec,), classes=("a&b",)), tmp_path / "o", images_mode="none")
    a, = cvat.read(tmp_path / "o").images[0].annotations
    assert (a.label, a.difficult, a.truncated, a.iscrowd, a.attrs) == ("a&b", True, True, True, {"note": 'say "<hi>"'})


def test_export_without_images_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "annotations.xml").write_text("<annotations><version>1.1</version><meta/></annotations>")
    res = CliRunner().invoke(cli, ["convert", str(tmp_path / "src"), str(tmp_path / "out"), "--to", "coco"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "<image> entries in annotations.xml" in res.output
