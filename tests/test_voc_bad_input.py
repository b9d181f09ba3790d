"""Every bad-input case from the foundation issue: named with its reason, the rest of the run goes on."""
from __future__ import annotations

import pytest

import datatools
from datatools import formats
from datatools.core.boxes import PixelConvention
from datatools.core.model import Annotation
from tests.conftest import make_jpeg, make_voc_root, tree_digest, voc_xml

GOOD = voc_xml("good.jpg", (100, 80), [{"name": "cat", "box": (10, 10, 50, 50)}])

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotation><filename>x.jpg</filename><size><width>10</width><height>10</height></size>
<object><name>&lol9;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
</annotation>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> <!ENTITY net SYSTEM "http://127.0.0.1:9/x"> ]>
<annotation><filename>x.jpg</filename><size><width>10</width><height>10</height></size>
<object><name>&xxe;&net;</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
</annotation>"""


def run(tmp_path, xml, *, images=None, name="bad"):
    """Convert a root holding one good file and one bad one; return (summary, findings for the bad file)."""
    root = make_voc_root(tmp_path / "voc", {"good": GOOD, name: xml}, images={"good.jpg": (100, 80), **(images or {})})
    s = datatools.convert("voc", root, "yolo", tmp_path / "out")
    assert s.balanced
    assert (tmp_path / "out/labels/all/good.txt").read_text().count("\n") == 1  # the rest of the run goes on
    return s, [f for f in s.findings if f.image_id == name or name in f.path]


# (case, xml, expected code, objects dropped, image dropped)
DROP_CASES = [
    ("broken-xml", "<annotation><object><name>cat</name>", "xml-parse", 0, True),
    ("empty-file", "", "empty-file", 0, True),
    ("whitespace-file", "  \n\t\n", "empty-file", 0, True),
    ("wrong-root", "<foo><bar/></foo>", "xml-root", 0, True),
    ("missing-bndbox", voc_xml("bad.jpg", (100, 80), [{"name": "cat"}]), "missing-field", 1, False),
    ("missing-coordinate", voc_xml("bad.jpg", (100, 80), [{"name": "cat", "box": (1, 2, 30, None)}]),
     "missing-field", 1, False),
    ("not-a-number", voc_xml("bad.jpg", (100, 80), [{"name": "cat", "box": (1, 2, "3O", 40)}]), "bad-number", 1, False),
    ("missing-name", voc_xml("bad.jpg", (100, 80), [{"box": (1, 2, 30, 40)}]), "missing-field", 1, False),
    ("inverted", voc_xml("bad.jpg", (100, 80), [{"name": "cat", "box": (50, 2, 30, 40)}]), "box-inverted", 1, False),
    ("zero-area", voc_xml("bad.jpg", (100, 80), [{"name": "cat", "box": (30, 2, 30, 40)}]), "zero-area", 1, False),
    ("outside", voc_xml("bad.jpg", (100, 80), [{"name": "cat", "box": (150, 100, 190, 140)}]),
     "box-outside-image", 1, False),
    ("billion-laughs", BILLION_LAUGHS, "xml-dtd", 0, True),
    ("external-entity", XXE, "xml-dtd", 0, True),
]


@pytest.mark.parametrize("case,xml,code,objects,image_dropped", DROP_CASES, ids=[c[0] for c in DROP_CASES])
def test_bad_file_is_named_and_counted(tmp_path, case, xml, code, objects, image_dropped):
    s, mine = run(tmp_path, xml)
    hit = [f for f in mine if f.code == code]
    assert hit, [f.code for f in mine]
    f = hit[0]
    assert f.path.endswith("bad.xml") and f.message
    assert "<string>" not in f.message  # libxml2 says where once (lxml's str() repeated it as "(<string>, line 1)")
    assert f.objects == objects and f.image_dropped == image_dropped
    assert s.objects_dropped.get(code, 0) == objects
    if code in ("zero-area", "box-inverted", "box-outside-image"):
        assert f.box is not None and len(f.box) == 4  # tools (visualize --check) can show where it was
    if image_dropped:
        assert s.images_dropped.get(code) == 1 and not (tmp_path / "out/labels/all/bad.txt").exists()


def test_entities_are_never_expanded_or_fetched(tmp_path):
    import time

    t = time.perf_counter()
    ds = formats.get("voc").read(make_voc_root(tmp_path / "v", {"lol": BILLION_LAUGHS, "xxe": XXE}))
    assert time.perf_counter() - t < 5
    assert ds.images == () and {f.code for f in ds.findings} >= {"xml-dtd"}
    assert "root:" not in repr(ds)  # /etc/passwd content never read


@pytest.mark.parametrize("raw,expected", [
    ("45.70000076293945", 44.70000076293945),  # devkit: xmin - 1
    (" 12 ", 11.0),
    ("\n\t12\n", 11.0),
    ("-3", -4.0),
])
def test_odd_but_readable_numbers(tmp_path, raw, expected):
    xml = voc_xml("a.jpg", (100, 80), [{"name": "cat", "box": (raw, 10, 60, 50)}])
    ds = formats.get("voc").read(make_voc_root(tmp_path / "v", {"a": xml}), convention="devkit")
    assert ds.images[0].annotations[0].box[0] == pytest.approx(expected)


def test_values_past_the_image_are_clipped_and_reported(tmp_path):
    s, mine = run(tmp_path, voc_xml("bad.jpg", (100, 80), [{"name": "cat", "box": ("-3", 10, 120, 50)}]))
    assert [f.code for f in mine if f.code == "box-out-of-bounds"]
    row = (tmp_path / "out/labels/all/bad.txt").read_text().split()
    vals = [float(v) for v in row[1:]]
    assert vals[0] - vals[2] / 2 == pytest.approx(0) and vals[0] + vals[2] / 2 == pytest.approx(1)


def test_names_with_spaces_and_case_are_reported_and_kept(tmp_path):
    xml = voc_xml("bad.jpg", (100, 80), [{"name": " Cat ", "box": (1, 1, 20, 20)}])
    s, mine = run(tmp_path, xml)
    assert any(f.code == "name-whitespace" for f in mine)
    assert s.warnings.get("name-case") == 1
    assert (tmp_path / "out/classes.txt").read_text() == "Cat\ncat\n"


def test_normalize_names_merges_variants(tmp_path):
    root = make_voc_root(tmp_path / "v", {"good": GOOD, "b": voc_xml("b.jpg", (10, 10), [{"name": "CAT", "box": (1, 1, 5, 5)}])})
    s = datatools.convert("voc", root, "yolo", tmp_path / "out", normalize_names=True,
                          images_mode="none")  # no images here: YOLO output with images is refused (issue 16 item 6)
    assert (tmp_path / "out/classes.txt").read_text() == "cat\n" and s.class_counts == {"cat": 2}


@pytest.mark.parametrize("filename,image,code", [
    ("bad", "bad.jpg", None),                # no extension: found by stem, no complaint needed beyond the lookup
    ("other.jpg", "bad.jpg", "filename-mismatch"),
    ("../../etc/passwd", "bad.jpg", "unsafe-filename"),
    ("/etc/passwd", "bad.jpg", "unsafe-filename"),
])
def test_filename_lookup_is_safe(tmp_path, filename, image, code):
    xml = voc_xml(filename, (30, 30), [{"name": "cat", "box": (1, 1, 10, 10)}])
    s, mine = run(tmp_path, xml, images={image: (30, 30)})
    out = tmp_path / "out"
    assert (out / "images/all/bad.jpg").is_file()  # named after the XML, never after <filename>
    if code:
        assert any(f.code == code for f in mine)
    assert all(out in p.parents for p in (tmp_path / "out").rglob("*"))
    assert not (tmp_path / "etc").exists()


def test_unicode_and_space_file_names(tmp_path):
    name = "猫 の 写真"
    xml = voc_xml(f"{name}.jpg", (40, 30), [{"name": "猫", "box": (1, 1, 10, 10)}])
    root = make_voc_root(tmp_path / "v", {name: xml}, images={f"{name}.jpg": (40, 30)})
    for fmt in ("yolo", "coco", "voc"):
        s = datatools.convert("voc", root, fmt, tmp_path / fmt)
        assert s.objects_written == 1 and s.errors == {}
    assert (tmp_path / "yolo/labels/all" / f"{name}.txt").is_file()
    assert (tmp_path / "yolo/classes.txt").read_text(encoding="utf-8") == "猫\n"
    back = formats.get("voc").read(tmp_path / "voc")
    assert back.images[0].image_id == name and back.images[0].annotations[0].label == "猫"


def test_crlf_and_bom(tmp_path):
    xml = ("\ufeff" + voc_xml("a.jpg", (50, 50), [{"name": "cat", "box": (1, 1, 10, 10)}])).replace("\n", "\r\n")
    ds = formats.get("voc").read(make_voc_root(tmp_path / "v", {"a": xml.encode("utf-8")}))
    assert ds.images[0].annotations[0].label == "cat" and ds.images[0].width == 50
    assert not [f for f in ds.findings if f.severity.value == "error"]


def test_part_boxes_are_ignored_and_counted(tmp_path):
    inner = "<part><name>head</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></part>"
    xml = voc_xml("a.jpg", (50, 50), [{"name": "person", "box": (1, 1, 10, 10), "inner": inner * 2}])
    ds = formats.get("voc").read(make_voc_root(tmp_path / "v", {"a": xml}))
    assert [a.label for a in ds.images[0].annotations] == ["person"]
    parts = [f for f in ds.findings if f.code == "part-ignored"]
    assert parts and "2 <part>" in parts[0].message


def test_missing_size_is_read_from_the_image_header(tmp_path):
    xml = voc_xml("a.jpg", None, [{"name": "cat", "box": (1, 1, 10, 10)}])
    root = make_voc_root(tmp_path / "v", {"a": xml}, images={"a.jpg": (37, 21)})
    ds = formats.get("voc").read(root)
    assert (ds.images[0].width, ds.images[0].height) == (37, 21)
    assert {"missing-size", "size-from-image"} <= {f.code for f in ds.findings}


def test_missing_size_and_no_image_drops_image_for_yolo(tmp_path):
    xml = voc_xml("a.jpg", (0, 0), [{"name": "cat", "box": (1, 1, 10, 10)}])
    root = make_voc_root(tmp_path / "v", {"a": xml, "good": GOOD})
    s = datatools.convert("voc", root, "yolo", tmp_path / "out", images_mode="none")
    assert s.images_dropped == {"missing-size": 1} and s.objects_dropped == {"missing-size": 1} and s.balanced


def test_inputs_never_modified_by_bad_data_runs(tmp_path):
    root = make_voc_root(tmp_path / "v", {"good": GOOD, "lol": BILLION_LAUGHS, "e": ""}, images={"good.jpg": (100, 80)})
    before = tree_digest(root)
    datatools.convert("voc", root, "coco", tmp_path / "c.json")
    assert tree_digest(root) == before


@pytest.mark.parametrize("precision", range(0, 9))
def test_fmt_numbers_equals_fmt_number(precision):
    import random

    from datatools.core.boxes import fmt_number, fmt_numbers

    rng = random.Random(precision)
    values = [0.0, -0.0, 1.0, 10.0, 100.0, 0.5, -0.5, 1e-9, -1e-9, 123.456, 4e-7, -4e-7, 9.9999999, -9.9999999, 1e6]
    values += [rng.uniform(-2, 2) * 10 ** rng.randint(-8, 5) for _ in range(500)]
    for i in range(0, len(values), 4):
        row = values[i:i + 4]
        assert fmt_numbers(row, precision) == " ".join(fmt_number(v, precision) for v in row)


BOX = "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>"

# (object XML, label kept (None: dropped), (difficult, truncated, occluded), attributes, finding codes)
OBJECT_CASES = [
    (f"<name>dog</name>{BOX}", "dog", (0, 0, 0), {}, []),
    ("<name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult><occluded>1</occluded>"
     "<bndbox><ymax>40</ymax><xmax>30</xmax><ymin>2</ymin><xmin>1</xmin></bndbox>", "dog", (0, 1, 1), {"pose": "Left"}, []),
    (f"<name> dog </name>{BOX}", "dog", (0, 0, 0), {}, ["name-whitespace"]),
    (f"<name>\n\tdog\n</name>{BOX}", "dog", (0, 0, 0), {}, []),  # pretty-printed: no complaint
    (f"<name>dog</name><name>cat</name>{BOX}", "dog", (0, 0, 0), {}, []),  # the first of a repeated tag wins
    (f"<name>dog</name>{BOX}<bndbox><xmin>5</xmin><ymin>5</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>", "dog",
     (0, 0, 0), {}, []),
    ("<name>dog</name><bndbox><xmin>1</xmin><xmin>3</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>", "dog",
     (0, 0, 0), {}, []),
    ("<name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax><extra>1</extra></bndbox>",
     "dog", (0, 0, 0), {}, []),
    ("<name>dog</name><bndbox><xmin>nan</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>", None, (0, 0, 0),
     {}, ["bad-number"]),
    ("<name>dog</name><bndbox><xmin>inf</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>", None, (0, 0, 0),
     {}, ["bad-number"]),
    ("<name>dog</name><bndbox><xmin></xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>", None, (0, 0, 0),
     {}, ["bad-number"]),
    ("<name>dog</name><bndbox><xmin>7</xmin><ymin>2</ymin><xmax>7</xmax><ymax>40</ymax></bndbox>", None, (0, 0, 0),
     {}, ["zero-area"]),
    ("<name>dog</name><bndbox><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>", None, (0, 0, 0), {},
     ["missing-field"]),
    ("<name>dog</name>", None, (0, 0, 0), {}, ["missing-field"]),
    (f"<name></name>{BOX}", None, (0, 0, 0), {}, ["missing-field"]),
    (f"<name> </name>{BOX}", None, (0, 0, 0), {}, ["missing-field"]),
    (f"<name>\n  <b/>\n</name>{BOX}", None, (0, 0, 0), {}, ["missing-field"]),
    (f"<name>dog</name><pose> </pose><truncated> 1 </truncated>{BOX}", "dog", (0, 1, 0), {"pose": ""}, []),
    (BOX, None, (0, 0, 0), {}, ["missing-field"]),
    (f"<name>dog</name><difficult>true</difficult>{BOX}", "dog", (1, 0, 0), {}, []),
    (f"<name>dog</name><difficult></difficult>{BOX}", "dog", (0, 0, 0), {}, []),
    (f"<name>dog</name><difficult>2</difficult><truncated>x</truncated>{BOX}", "dog", (1, 0, 0), {},
     ["bad-flag", "bad-flag"]),
    (f"<name>dog</name><difficult>1</difficult><difficult>0</difficult>{BOX}", "dog", (1, 0, 0), {}, []),
    (f"<name>person</name>{BOX}<part><name>head</name><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>9</xmax><ymax>9</ymax>"
     "</bndbox></part>", "person", (0, 0, 0), {}, ["part-ignored"]),
    (f"<name>person</name><actions><jumping>1</jumping></actions>{BOX}", "person", (0, 0, 0), {}, []),
    (f"<name>dog</name><pose>Left</pose><pose>Right</pose>{BOX}", "dog", (0, 0, 0), {"pose": "Left"}, []),
    (f"<name>dog</name><meta><a>1</a></meta>{BOX}", "dog", (0, 0, 0), {}, []),  # only leaf tags become attributes
    (f"<name>dog</name><xmin>99</xmin>{BOX}", "dog", (0, 0, 0), {"xmin": "99"}, []),
    (f"<name>dog<b/>x</name>{BOX}", "dog", (0, 0, 0), {}, []),
    (f"<name>狗</name>{BOX}", "狗", (0, 0, 0), {}, []),
    (f"<name>dog &amp; cat</name>{BOX}", "dog & cat", (0, 0, 0), {}, []),
    (f"<name><![CDATA[dog]]></name>{BOX}", "dog", (0, 0, 0), {}, []),
    ("<name>dog</name><!-- c --><bndbox><xmin>1<!-- c --></xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
     "dog", (0, 0, 0), {}, []),
]


@pytest.mark.parametrize("obj,label,flags,attrs,codes", OBJECT_CASES)
def test_tricky_objects_are_read_or_dropped_with_a_reason(obj, label, flags, attrs, codes):
    """Each odd object is read as written or dropped with its finding; a second, regular object in the same file is
    always kept, and the books balance (objects met = kept + dropped)."""
    from datatools.formats.voc_xml import parse_xml

    doc = (f"<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height><depth>3</depth></size>"
           f"<object>{obj}</object><object><name>cat</name><bndbox><xmin>5</xmin><ymin>6</ymin><xmax>50</xmax>"
           f"<ymax>60</ymax></bndbox></object></annotation>").encode("utf-8")
    rec, findings, met = parse_xml(doc, path="a.xml", image_id="a", convention=PixelConvention.DEVKIT)
    assert sorted(f.code for f in findings) == sorted(codes)
    assert all(f.path == "a.xml" and f.image_id == "a" and f.message for f in findings)
    assert met == 2 and met == len(rec.annotations) + sum(f.objects for f in findings)
    assert rec.annotations[-1] == Annotation("cat", (4.0, 5.0, 50.0, 60.0))
    if label is None:
        assert len(rec.annotations) == 1 and sum(f.objects for f in findings) == 1
        return
    a = rec.annotations[0]
    assert (a.label, (a.difficult, a.truncated, a.occluded), a.attrs) == (label, tuple(map(bool, flags)), attrs)
    if "xmax" in obj and "<xmin>1</xmin>" in obj:
        assert a.box == (0.0, 1.0, 30.0, 40.0)  # devkit: [xmin - 1, ymin - 1, xmax, ymax]


@pytest.mark.parametrize("convention,box", [("devkit", (0.0, 1.0, 30.0, 40.0)), ("as-is", (1.0, 2.0, 30.0, 40.0)),
                                            ("ultralytics", (0.0, 1.0, 29.0, 39.0))])
def test_conventions_read_the_written_numbers(convention, box):
    """devkit: [xmin - 1, ymin - 1, xmax, ymax]; as-is: the numbers; ultralytics: the whole box 1 pixel up-left."""
    from datatools.formats.voc_xml import parse_xml

    doc = f"<annotation><filename>a.jpg</filename><object><name>dog</name>{BOX}</object></annotation>".encode()
    rec, _, _ = parse_xml(doc, path="a.xml", image_id="a", convention=PixelConvention(convention))
    assert rec.annotations[0].box == pytest.approx(box)


# (document, (file_name, width, height, depth, objects) of the record or None when refused, [(code, image dropped)])
DOCUMENT_CASES = [
    (b"", None, [("empty-file", True)]),
    (b"  \n", None, [("empty-file", True)]),
    (b"<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size></annotation>",
     ("a.jpg", 100, 80, None, 0), [("empty-annotation", False)]),
    (b"<annotation><filename> </filename><size><width>100</width><height>80</height></size>"
     b"<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>"
     b"</annotation>", ("", 100, 80, None, 1), [("missing-filename", False)]),
    (b"<annotation><filename>a.jpg</filename><size><width>0</width><height>80</height></size>"
     b"<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>"
     b"</annotation>", ("a.jpg", None, None, None, 1), [("missing-size", False)]),
    (b"<annotation><filename>a.jpg</filename>"
     b"<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>"
     b"</annotation>", ("a.jpg", None, None, None, 1), [("missing-size", False)]),
    (b"<annotation><filename>a.jpg</filename><size><width>10.6</width><height>8</height><depth>1</depth></size>"
     b"<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>"
     b"</annotation>", ("a.jpg", None, None, 1, 1), [("bad-size", False)]),  # 10.6 px: not a size (issue 16)
    (b"<foo/>", None, [("xml-root", True)]),
    (b"<annotation><object>", None, [("xml-parse", True)]),
    (b'<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY a "dog">]><annotation><filename>a</filename></annotation>',
     None, [("xml-dtd", True)]),
    (b'<?xml version="1.0"?><!DOCTYPE annotation SYSTEM "http://127.0.0.1:9/voc.dtd"><annotation/>', None,
     [("xml-dtd", True)]),
]


@pytest.mark.parametrize("doc,record,codes", DOCUMENT_CASES)
def test_tricky_documents(doc, record, codes):
    from datatools.formats.voc_xml import parse_xml

    rec, findings, _ = parse_xml(doc, path="a.xml", image_id="a")
    assert [(f.code, f.image_dropped) for f in findings] == codes
    got = rec and (rec.file_name, rec.width, rec.height, rec.depth, len(rec.annotations))
    assert got == record


@pytest.mark.parametrize("workers", [1, 2])
def test_many_chunks_keep_file_order_and_balance_the_books(tmp_path, workers):
    """Over many chunks (and on 2 worker processes), with refused, empty and irregular files between regular ones,
    the records and findings come back in file order, each finding beside its file, and the books balance."""
    from datatools.formats import voc

    ann = tmp_path / "Annotations"
    ann.mkdir()
    bad = [doc for doc, _, _ in DOCUMENT_CASES]
    expect_ids, objects = [], 0
    for i in range(900):
        iid = f"{i:04d}"
        if i % 3 == 0:
            doc = bad[i % len(bad)]
        else:
            doc = (f"<annotation><filename>{i}.jpg</filename><size><width>{200 + i}</width><height>150</height>"
                   f"</size>" + "".join(f"<object><name>c{(i + k) % 13}</name>{BOX}</object>" for k in range(i % 4))
                   + "</annotation>").encode()
            objects += i % 4
        (ann / f"{iid}.xml").write_bytes(doc)
    ds = voc.read(tmp_path, workers=workers)
    assert ds.objects_read == ds.num_objects + sum(f.objects for f in ds.findings) and ds.num_objects >= objects
    ids = [im.image_id for im in ds.images]
    assert ids == sorted(ids) and len(ids) > 600
    finding_ids = [f.image_id for f in ds.findings if f.image_id]
    assert finding_ids == sorted(finding_ids)  # each file's findings beside it, files in order
    assert len(ds.classes) == 14  # c0..c12 and "a" of a tricky document
    assert {"xml-dtd", "xml-parse", "empty-file", "missing-size"} <= {f.code for f in ds.findings}
    assert voc.read(tmp_path, workers=1) == ds  # the same dataset whatever the number of processes


def test_indentation_between_elements_changes_nothing():
    """The shared parser drops the whitespace between elements: a pretty-printed file and the same file on one
    line give the same record, findings and books (blank leaf texts included)."""
    from datatools.formats.voc_xml import parse_xml

    compact = ("<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height><depth> </depth>"
               "</size><object><name>dog</name><pose> </pose><difficult> </difficult>" + BOX + "</object><object>"
               "<name>\n</name>" + BOX + "</object></annotation>")
    pretty = compact.replace("><", ">\n    <")
    assert pretty.count("\n") > 20
    got = [parse_xml(doc.encode(), path="a.xml", image_id="a") for doc in (compact, pretty)]
    assert got[0] == got[1]
    rec, findings, met = got[0]
    assert (rec.width, rec.height, rec.depth, met) == (100, 80, None, 2)
    assert [a.label for a in rec.annotations] == ["dog"] and rec.annotations[0].attrs == {"pose": ""}
    assert [f.code for f in findings] == ["missing-field"]


def test_a_chunk_shares_equal_names_and_attributes(tmp_path):
    """Within a chunk, equal class names, attribute tuples and split tuples are one object each: pickle sends each
    once per chunk, and the driver holds one copy of "dog" rather than one per object."""
    import pickle

    from datatools.formats.voc_xml import read_chunk

    obj = "<object><name>dog</name><pose>Left</pose>" + BOX + "</object>"
    files = []
    for k in range(3):
        (tmp_path / f"{k}.xml").write_text(f"<annotation><filename>{k}.jpg</filename>{obj * 2}</annotation>")
        files.append((str(tmp_path / f"{k}.xml"), str(k), tuple(["train"])))
    records, _ = read_chunk(files)
    records = pickle.loads(pickle.dumps(records))  # as the driver gets them
    anns = [a for r in records for a in r.annotations]
    assert len(anns) == 6 and all(a.label == "dog" and a.attrs == {"pose": "Left"} for a in anns)
    assert len({id(a.label) for a in anns}) == len({id(a.attributes) for a in anns}) == 1
    assert len({id(r.splits) for r in records}) == 1
