"""CVAT for images 1.1 XML: reading CVAT's documented export, findings for bad input, the writer, round trips."""
from __future__ import annotations

import subprocess
import sys
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
    ('<box label="a" xtl="1" ytl="1" xbr="5" ybr="5" rotation="nan" occluded="0"/>', "bad-number", 1),
    ('<polygon label="a" points="1,1;2,2" occluded="0"/>', "bad-shape", 1),  # too few points: as every format
    ('<polygon label="a" points="1,1;2,x;3,3" occluded="0"/>', "bad-number", 1),
    ('<ellipse label="a" cx="3" cy="x" rx="1" ry="1" occluded="0"/>', "bad-number", 1),
    ('<ellipse label="a" cx="3" cy="3" rx="1" ry="1" rotation="inf" occluded="0"/>', "bad-number", 1),
    ('<ellipse label="a" cx="3" cy="3" rx="0" ry="1" occluded="0"/>', "zero-area", 1),
    ('<mask label="a" rle="1, 2" left="0" top="0" width="2" height="2" occluded="0"/>', "bad-shape", 1),
    ('<mask label="a" rle="1, x, 1" left="0" top="0" width="2" height="2" occluded="0"/>', "bad-number", 1),
    ('<mask label="a" rle="1, -1, 4" left="0" top="0" width="2" height="2" occluded="0"/>', "bad-number", 1),
    ('<mask label="a" rle="4" left="0" top="0" width="2" height="2" occluded="0"/>', "zero-area", 1),
    ('<mask label="a" rle="0, 4" left="0.5" top="0" width="2" height="2" occluded="0"/>', "bad-number", 1),
    ('<mask label="a" rle="" left="0" top="0" width="0" height="2" occluded="0"/>', "bad-number", 1),
    ('<cuboid label="a" xtl1="1" ytl1="1" occluded="0"/>', "unsupported-shape", 1),
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
    # cut short after whole images: those already met are dropped too, as for any file that is not well-formed
    (EXPORT[:EXPORT.index('<image id="2"')].encode(), "xml-parse"),
    (b"<annotation><filename>a.jpg</filename></annotation>", "xml-root"),
    (b'<?xml version="1.0"?>\n<!DOCTYPE annotations [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
     b'<annotations><image id="0" name="&x;" width="1" height="1"/></annotations>', "xml-dtd"),
])
def test_refused_files_are_findings(tmp_path, data, code):
    (tmp_path / "annotations.xml").write_bytes(data)
    ds = cvat.read(tmp_path / "annotations.xml")
    assert ds.images == () and codes(ds) == [code]
    assert ds.findings[0].image_dropped


def test_a_large_export_is_never_held_whole(tmp_path):
    """An 86 MB export took 1.8 GB as one lxml tree; the document is streamed, one <image> at a time. Here 13 MB of
    XML grew a whole tree's process by about 235 MB and the streamed read by about 16 MB (its records and findings);
    measured in a fresh interpreter, whose peak is this read's own."""
    code = """if True:
        import resource
        from datatools.formats import cvat
        shape = '<points label="p" points="1,1"/>' * 100
        doc = ("<annotations><meta/>" + "".join(f'<image id="{k}" name="{k}.jpg" width="9" height="9">{shape}</image>'
               for k in range(4000)) + "</annotations>").encode()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        records, _, _, met = cvat.parse_cvat(doc, path="a.xml")
        print(len(records), met, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """
    pytest.importorskip("resource")  # POSIX only
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["4000", "400000"]
    assert int(out[2]) < 80_000  # KiB


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


# --------------------------------------------------------------------------------------------------- --max-xml-mb

@pytest.mark.parametrize("command", [["check"], ["convert", "{out}", "--to", "coco"], ["split", "{out}"]])
def test_max_xml_mb_reaches_the_cvat_reader(export, tmp_path, command):
    """--max-xml-mb one byte under annotations.xml's size refuses it as VOC files are (file-too-large, exit 1,
    nothing written); at its size (the MB rounded up to a whole byte) the file is read."""
    size = (export / "annotations.xml").stat().st_size
    args = [a.replace("{out}", str(tmp_path / "out")) for a in command]
    low = CliRunner().invoke(cli, [args[0], str(export), *args[1:], "--max-xml-mb", f"{(size - 1) / 2**20:.9f}"])
    assert low.exit_code == 1, low.output
    assert "file-too-large" in low.output and "Traceback" not in low.output
    assert not (tmp_path / "out").exists()
    ok = CliRunner().invoke(cli, [args[0], str(export), *args[1:], "--max-xml-mb", f"{(size + 0.5) / 2**20:.9f}"])
    assert ok.exit_code == 0, ok.output
    assert "file-too-large" not in ok.output


def test_cvat_limit_stays_256_mib_without_the_flag(export):
    """Without --max-xml-mb the CVAT reader keeps its own 256 MiB default, not VOC's 16 MiB: a 17 MiB export reads."""
    pad = ("<!--" + "x" * 2**20 + "-->\n") * 17  # lxml refuses a single comment over 10 MB
    (export / "annotations.xml").write_text(EXPORT.replace("<version>1.1</version>", "<version>1.1</version>" + pad))
    res = CliRunner().invoke(cli, ["check", str(export), "--json"])
    assert res.exit_code == 0, res.output[-2000:]
    assert "file-too-large" not in res.output and '"images": 3' in res.output
    res = CliRunner().invoke(cli, ["check", str(export), "--max-xml-mb", "16", "--json"])
    assert res.exit_code == 1 and "file-too-large" in res.output


# --------------------------------------------------------------------------------------------------- as CVAT writes

# Field for field the annotation-mode example of CVAT's "XML annotation format" page (version 1.1): a task's <meta>
# with a skeleton label whose points are labels with a <parent>, and one image holding every shape type CVAT for
# images writes. The coordinates are ours.
DOC_EXAMPLE = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>4</id>
      <name>segmentation</name>
      <size>1</size>
      <mode>annotation</mode>
      <overlap>0</overlap>
      <bugtracker></bugtracker>
      <flipped>False</flipped>
      <created>2018-09-25 11:34:24.617558+03:00</created>
      <updated>2018-09-25 11:38:27.301183+03:00</updated>
      <labels>
        <label><name>car</name><attributes></attributes></label>
        <label><name>traffic_line</name><attributes></attributes></label>
        <label><name>wheel</name><attributes></attributes></label>
        <label><name>plate</name><attributes></attributes></label>
        <label><name>s1</name><type>skeleton</type><attributes></attributes>
          <svg>&lt;circle r="1.5" data-type="element node" data-node-id="1" data-label-name="1"&gt;&lt;/circle&gt;</svg>
        </label>
        <label><name>1</name><type>points</type><attributes></attributes><parent>s1</parent></label>
        <label><name>2</name><type>points</type><attributes></attributes><parent>s1</parent></label>
      </labels>
      <segments>
        <segment><id>4</id><start>0</start><stop>0</stop><url>http://localhost:8080/?id=4</url></segment>
      </segments>
      <owner><username>admin</username><email></email></owner>
    </task>
    <dumped>2018-09-25 11:38:28.799808+03:00</dumped>
  </meta>
  <image id="0" name="filename000.jpg" width="1600" height="1200">
    <box label="plate" xtl="797.33" ytl="870.92" xbr="965.52" ybr="928.94" occluded="0" z_order="4">
    </box>
    <polygon label="car" points="561.30,916.23;554.72,761.63;1163.27,522.59;1199.46,840.57" occluded="0" z_order="1">
    </polygon>
    <polyline label="traffic_line" points="462.10,0.00;126.80,1200.00" occluded="0" z_order="3">
    </polyline>
    <polyline label="traffic_line" points="1212.40,0.00;1568.66,1200.00" occluded="0" z_order="2">
    </polyline>
    <points label="wheel" points="574.90,939.48;1170.16,907.90" occluded="0" z_order="5">
    </points>
    <tag label="good_frame" source="manual">
    </tag>
    <skeleton label="s1" source="manual" z_order="0">
      <points label="1" occluded="0" source="manual" outside="0" points="54.47,94.81">
      </points>
      <points label="2" occluded="0" source="manual" outside="0" points="68.02,162.34">
      </points>
    </skeleton>
    <mask label="car" source="manual" occluded="0" rle="3, 5, 2" left="707" top="888" width="2" height="5" z_order="0">
    </mask>
  </image>
</annotations>
"""


def test_reads_the_documented_example(tmp_path):
    (tmp_path / "annotations.xml").write_text(DOC_EXAMPLE)
    make_jpeg(tmp_path / "images" / "filename000.jpg", 1600, 1200)
    ds = cvat.read(tmp_path)
    # The task's labels in their order; a skeleton's point labels (with a <parent>) are not classes, nor is the
    # skeleton label itself: its shapes are never boxes (an empty class moved the YOLO ids after it)
    assert ds.classes == ("car", "traffic_line", "wheel", "plate")
    # By hand: the box as written; the polygon's min/max x and y.
    # The mask: rle "3, 5, 2" over 2x5 pixels from (707, 888) sets pixels 3..7, rows 1 to 3, both columns.
    assert boxes(ds) == {"filename000": [("car", (554.72, 522.59, 1199.46, 916.23)),
                                         ("car", (707.0, 889.0, 709.0, 892.0)),
                                         ("plate", (797.33, 870.92, 965.52, 928.94))]}
    assert [f.field for f in ds.findings if f.code == "shape-to-box"] == ["image[0]/mask"]
    dropped = {f.field.split("/")[-1]: f.objects for f in ds.findings if f.code == "unsupported-shape"}
    assert dropped == {"points": 1, "polyline": 2, "skeleton": 1, "tag": 1}  # a skeleton is one object
    assert ds.objects_read == 8 == ds.num_objects + sum(f.objects for f in ds.findings)
    assert not [f for f in ds.findings if f.severity.value == "error"]


# Boxes computed by hand. An ellipse rotated by t has half-widths sqrt((rx cos t)^2 + (ry sin t)^2) and
# sqrt((rx sin t)^2 + (ry cos t)^2): at 30 degrees with rx=3, ry=4, sqrt(6.75 + 4) = 3.27872 and sqrt(2.25 + 12) =
# 3.77492. A mask's pixels run row by row from (left, top), background first; its box ends after its last pixel.
@pytest.mark.parametrize("body,box,rotated", [
    ('<ellipse label="a" cx="50" cy="40" rx="10" ry="5" occluded="0"/>', (40.0, 35.0, 60.0, 45.0), False),
    ('<ellipse label="a" cx="50" cy="40" rx="10" ry="5" rotation="90" occluded="0"/>', (45.0, 30.0, 55.0, 50.0),
     True),
    ('<ellipse label="a" cx="50" cy="40" rx="3" ry="4" rotation="30.00" occluded="0"/>',
     (46.7213, 36.2251, 53.2787, 43.7749), True),
    ('<ellipse label="a" cx="50" cy="40" rx="3" ry="4" rotation="-150" occluded="0"/>',
     (46.7213, 36.2251, 53.2787, 43.7749), True),
    # every pixel of a 3x2 mask: the mask's own box
    ('<mask label="a" rle="0, 6" left="10" top="20" width="3" height="2" occluded="0"/>', (10.0, 20.0, 13.0, 22.0),
     False),
    # 4x3, pixels 1 (row 0, column 1) and 6 (row 1, column 2): shrunk to columns 1-2, rows 0-1
    ('<mask label="a" rle="1, 1, 4, 1, 5" left="10" top="20" width="4" height="3" occluded="0"/>',
     (11.0, 20.0, 13.0, 22.0), False),
    # 4x3, pixels 6-8: row 1 columns 2-3, then row 2 column 0 (a run over a row's end)
    ('<mask label="a" rle="6, 3, 3" left="10" top="20" width="4" height="3" occluded="0"/>',
     (10.0, 21.0, 14.0, 23.0), False),
])
def test_ellipses_and_masks_are_read_as_their_exact_box(tmp_path, body, box, rotated):
    (tmp_path / "annotations.xml").write_text(
        f'<annotations><image id="0" name="a.jpg" width="100" height="100">{body}</image></annotations>')
    ds = cvat.read(tmp_path)
    assert boxes(ds) == {"a": [("a", box)]}
    tag = body[1:body.index(" ")]
    note = next(f for f in ds.findings if f.code == "shape-to-box")
    assert (note.severity.value, note.field, note.message) == ("info", f"image[0]/{tag}",
                                                               f"1 <{tag}> shape(s) read as their bounding box")
    assert ("rotated-box" in codes(ds)) == rotated
    assert ds.objects_read == 1 == ds.num_objects


def test_job_export_keeps_the_label_order(tmp_path):
    # A job's export has <meta><job> (CVAT's JobData), its labels there: their order is the class order.
    (tmp_path / "annotations.xml").write_text(
        "<annotations><version>1.1</version><meta><job><id>12</id><size>1</size><mode>annotation</mode>"
        "<overlap>0</overlap><subset>default</subset><start_frame>0</start_frame><stop_frame>0</stop_frame><labels>"
        "<label><name>zebra</name><color>#ff0000</color><type>any</type><attributes></attributes></label>"
        "<label><name>ant</name><color>#00ff00</color><type>rectangle</type><attributes></attributes></label>"
        "</labels></job><dumped>2024-01-01</dumped></meta>"
        '<image id="0" name="x.png" width="10" height="10"><box label="ant" source="manual" occluded="0" xtl="1.00" '
        'ytl="1.00" xbr="2.00" ybr="2.00" z_order="0"></box><box label="zebra" source="manual" occluded="0" '
        'xtl="1.00" ytl="1.00" xbr="3.00" ybr="3.00" z_order="0"></box></image></annotations>')
    ds = cvat.read(tmp_path)
    assert ds.classes == ("zebra", "ant") and "label-not-in-meta" not in codes(ds)


def test_project_export_with_one_name_in_two_subsets(tmp_path):
    # A project export (CVAT's ProjectData): <meta><project> holds the labels and one <task> per task; each <image>
    # has subset and task_id; the zip holds images/<subset>/<name>, names unique within a subset only.
    (tmp_path / "annotations.xml").write_text(
        "<annotations><version>1.1</version><meta><project><id>3</id><name>p</name><tasks>"
        "<task><id>5</id><name>t1</name><size>1</size><mode>annotation</mode><subset>Train</subset></task>"
        "<task><id>6</id><name>t2</name><size>1</size><mode>annotation</mode><subset>Validation</subset></task>"
        "</tasks><subsets>Train\nValidation</subsets><labels><label><name>dog</name><type>any</type>"
        "<attributes></attributes></label><label><name>cat</name><type>any</type><attributes></attributes></label>"
        "</labels></project><dumped>2024-01-01</dumped></meta>"
        '<image id="0" name="0001.jpg" subset="Train" task_id="5" width="40" height="20"><box label="dog" '
        'source="manual" occluded="0" xtl="1.00" ytl="1.00" xbr="9.00" ybr="9.00" z_order="0"></box></image>'
        '<image id="0" name="0001.jpg" subset="Validation" task_id="6" width="30" height="30"><box label="cat" '
        'source="manual" occluded="0" xtl="2.00" ytl="2.00" xbr="8.00" ybr="8.00" z_order="0"></box></image>'
        "</annotations>")
    make_jpeg(tmp_path / "images" / "Train" / "0001.jpg", 40, 20)
    make_jpeg(tmp_path / "images" / "Validation" / "0001.jpg", 30, 30)
    ds = cvat.read(tmp_path)
    got = {im.image_id: (im.splits, im.image_path, im.width, im.height) for im in ds.images}
    assert got == {"0001": (("Train",), str(tmp_path / "images" / "Train" / "0001.jpg"), 40, 20),
                   "Validation/0001": (("Validation",), str(tmp_path / "images" / "Validation" / "0001.jpg"), 30, 30)}
    assert ds.classes == ("dog", "cat")
    assert codes(ds) == []  # each image paired with its own subset's file: no mismatch, no duplicate


# ------------------------------------------------------------------------------ malformed values (issue 18 audit)
@pytest.mark.parametrize("body,want,finding", [
    ('occluded="1"', {"occluded": True}, None),
    ('occluded="maybe"', {"occluded": False}, ("bad-flag", "image[0]/box[0]/@occluded")),
    ('occluded="2"', {"occluded": True}, ("bad-flag", "image[0]/box[0]/@occluded")),
    ('occluded="0"><attribute name="truncated">true</attribute></box', {"truncated": True}, None),
    ('occluded="0"><attribute name="iscrowd">maybe</attribute></box',
     {"iscrowd": False}, ("bad-flag", "image[0]/box[0]/attribute[0]")),
    ('occluded="0"><attribute>standing</attribute></box', {"attrs": {}},
     ("bad-attribute", "image[0]/box[0]/attribute[0]")),
    ('occluded="0"><attribute name="pose">a</attribute><attribute name="pose">b</attribute></box',
     {"attrs": {"pose": "a"}}, ("bad-attribute", "image[0]/box[0]/attribute[1]")),
])
def test_malformed_flags_and_attributes_are_findings(tmp_path, body, want, finding):
    end = "" if body.endswith("</box") else "/"
    (tmp_path / "annotations.xml").write_text(
        f'<annotations><image id="0" name="a.jpg" width="10" height="10">'
        f'<box label="a" xtl="1" ytl="1" xbr="5" ybr="5" {body}{end}></image></annotations>')
    ds = cvat.read(tmp_path)
    (a,) = ds.images[0].annotations  # the object is kept either way: only the value is in doubt
    assert {k: (a.attrs if k == "attrs" else getattr(a, k)) for k in want} == want
    got = [(f.code, f.field) for f in ds.findings if f.code in ("bad-flag", "bad-attribute")]
    assert got == ([finding] if finding else [])
    assert all(f.severity.value == "warning" and f.image_id == "a" for f in ds.findings if f.code.startswith("bad-"))


@pytest.mark.parametrize("names,want", [
    # the third a.jpg (id 2) would be a__2, which the second image's own name holds: it is renamed again
    (["a.jpg", "a__2.jpg", "a.jpg"], ["a", "a__2", "a__2_2"]),
    (["a.jpg", "a.jpg", "a.jpg"], ["a", "a__1", "a__2"]),
    (["../", "./"], ["image_0", "image_1"]),  # a name of nothing but dots and slashes: never an empty id
])
def test_image_ids_are_unique_and_never_empty(tmp_path, names, want):
    (tmp_path / "annotations.xml").write_text("<annotations>" + "".join(
        f'<image id="{k}" name="{n}" width="10" height="10"><box label="l{k}" xtl="1" ytl="1" xbr="5" ybr="5"/>'
        "</image>" for k, n in enumerate(names)) + "</annotations>")
    ds = cvat.read(tmp_path)
    assert [(im.image_id, [a.label for a in im.annotations]) for im in ds.images] == [
        (iid, [f"l{k}"]) for k, iid in enumerate(want)]


@pytest.mark.parametrize("fmt", ["cvat", "voc"])
def test_names_with_tabs_newlines_and_returns_come_back_as_written(tmp_path, fmt):
    # an XML parser turns a tab or newline in an attribute into a space and a return into a newline: a CVAT class
    # "a<TAB>b" read back as "a b", its objects moved to another class
    from datatools import formats
    from datatools.core.model import Annotation, Dataset, ImageRecord

    names = ("a\tb", "line1\nline2", "cr\rx", "plain")
    recs = tuple(ImageRecord(f"i{k}", f"i{k}.jpg", 20, 20, (Annotation(n, (2.0, 2.0, 9.0, 9.0)),))
                 for k, n in enumerate(names))
    formats.get(fmt).write(Dataset(images=recs, classes=names), tmp_path / "o", images_mode="none")
    back = formats.get(fmt).read(tmp_path / "o")
    assert sorted(a.label for im in back.images for a in im.annotations) == sorted(names)


def test_an_image_in_several_splits_is_written_in_one_and_said(tmp_path):
    """CVAT's <image> has one subset: an image listed in train and test was written in train, and test lost it
    without a word (Open Images said so)."""
    from datatools.core.model import Annotation, Dataset, ImageRecord

    recs = (ImageRecord("a", "a.jpg", 40, 30, (Annotation("cat", (1.0, 1.0, 9.0, 9.0)),), splits=("train", "test")),
            ImageRecord("b", "b.jpg", 40, 30, (Annotation("cat", (2.0, 2.0, 9.0, 9.0)),), splits=("train",)))
    res = cvat.write(Dataset(images=recs, classes=("cat",)), tmp_path / "c", images_mode="none")
    [f] = [f for f in res.findings if f.code == "split-not-kept"]
    assert "1 image(s) in several splits (e.g. 'a' in train, test)" in f.message and f.image_id == "a"


def test_a_class_name_with_a_control_character_still_writes_well_formed_xml(tmp_path):
    # "ctl\x01x" from a COCO file: the CVAT and VOC files written held a raw \x01, and nothing could read them
    import json

    from click.testing import CliRunner

    from datatools.cli import cli

    (tmp_path / "c.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "ctl\u0001x"}]}))
    for fmt in ("cvat", "voc"):
        res = CliRunner().invoke(cli, ["convert", str(tmp_path / "c.json"), str(tmp_path / fmt), "--to", fmt,
                                       "--images-mode", "none", "--json"])
        assert res.exit_code == 0 and json.loads(res.stdout)["warnings"].get("name-not-kept") == 1, res.output
        back = CliRunner().invoke(cli, ["check", str(tmp_path / fmt), "--json"])
        doc = json.loads(back.stdout)
        assert doc["objects"] == 1 and not doc["errors"], back.output


def test_every_attribute_a_label_carries_is_declared_in_meta(tmp_path):
    # CVAT imports only the attributes a label declares: difficult, truncated, pose... were dropped on import
    from lxml import etree

    from datatools.core.model import Annotation, ImageRecord

    recs = [ImageRecord(image_id="a", file_name="a.jpg", width=40, height=30, annotations=(
        Annotation("cat", (1.0, 1.0, 9.0, 9.0), difficult=True, attributes=(("pose", "Left"),)),
        Annotation("dog", (2.0, 2.0, 9.0, 9.0))))]
    root = etree.fromstring(cvat.to_xml(recs, ("cat", "dog"), names=["a.jpg"]).encode())
    declared = {lab.findtext("name"): {at.findtext("name"): at.findtext("input_type")
                                       for at in lab.iterfind("attributes/attribute")}
                for lab in root.iterfind("meta/task/labels/label")}
    assert declared == {"cat": {"difficult": "checkbox", "pose": "text"}, "dog": {}}
    values = root.find("meta/task/labels/label/attributes/attribute/values").text
    assert values == "false\ntrue"


def test_file_names_and_attributes_xml_cannot_hold_are_said(tmp_path):
    from datatools.core.model import Annotation, Dataset, ImageRecord

    ds = Dataset(images=(ImageRecord(image_id="a", file_name="a\u0001.jpg", width=40, height=30, annotations=(
        Annotation("cat", (1.0, 1.0, 9.0, 9.0), attributes=(("pose", "Le\u0002ft"),)),)),), classes=("cat",))
    res = cvat.write(ds, tmp_path / "o", images_mode="none")
    assert [f.field for f in res.findings if f.code == "name-not-kept"] == ["attributes"]
    assert "2 file name(s) or attribute(s)" in next(f.message for f in res.findings if f.code == "name-not-kept")


def test_the_attributes_of_cvats_voc_export_are_read(tmp_path):
    """CVAT's (and datumaro's) Pascal VOC export writes an object's attributes as <attributes><attribute><name>
    <value> elements: they were skipped without a word, so VOC -> CVAT lost 'kind' though CVAT keeps attributes."""
    from tests.conftest import make_voc_root, voc_xml

    inner = ("<attributes><attribute><name>kind</name><value>tabby</value></attribute>"
             "<attribute><name>occluded</name><value>true</value></attribute></attributes>")
    voc = make_voc_root(tmp_path / "voc", {"a": voc_xml("a.jpg", (40, 30), [
        {"name": "cat", "box": (1, 1, 10, 10), "inner": inner}])}, images={"a.jpg": (40, 30)})
    [ann] = formats.get("voc").read(voc).images[0].annotations
    assert ann.attributes == (("kind", "tabby"),) and ann.occluded
    datatools.convert("voc", voc, "cvat", tmp_path / "cvat")
    [back] = formats.get("cvat").read(tmp_path / "cvat").images[0].annotations
    assert dict(back.attributes)["kind"] == "tabby" and back.occluded
