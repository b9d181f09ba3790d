"""Every bad-input case from the foundation issue: named with its reason, the rest of the run goes on."""
from __future__ import annotations

import pytest

import datatools
from datatools import formats
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
    ds = formats.get("voc").read(make_voc_root(tmp_path / "v", {"a": xml}))
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
    s = datatools.convert("voc", root, "yolo", tmp_path / "out", normalize_names=True)
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


@pytest.mark.parametrize("root", ["sample", "bccd", "datumaro"])
def test_fast_and_general_object_paths_agree(monkeypatch, root, request):
    """parse_xml reads regular objects through a fast path; the general path must give the very same records."""
    from tests.conftest import REALWORLD, SAMPLE
    from datatools.formats import voc

    folder = {"sample": SAMPLE, "bccd": REALWORLD / "bccd", "datumaro": REALWORLD / "datumaro_voc" / "voc_dataset1"}[root]
    if not folder.is_dir():
        pytest.skip("real-world data absent")
    files = sorted((folder / "Annotations").glob("*.xml"))[:80]
    parse = lambda: [voc.parse_xml(p.read_bytes(), path=str(p), image_id=p.stem) for p in files]
    fast = parse()
    monkeypatch.setattr(voc, "_fast_object", lambda obj, convention: None)
    general = parse()
    assert fast == general and sum(len(r.annotations) for r, _, _ in fast if r) > 0


_TRICKY_OBJECTS = [
    "<name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult><occluded>1</occluded>"
    "<bndbox><ymax>40</ymax><xmax>30</xmax><ymin>2</ymin><xmin>1</xmin></bndbox>",
    "<name> dog </name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>\n\tdog\n</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><name>cat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>"
    "<bndbox><xmin>5</xmin><ymin>5</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>",
    "<name>dog</name><bndbox><xmin>1</xmin><xmin>3</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax><extra>1</extra></bndbox>",
    "<name>dog</name><bndbox><xmin> 45.70000076293945 </xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><bndbox><xmin>nan</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><bndbox><xmin>inf</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><bndbox><xmin>7</xmin><ymin>2</ymin><xmax>7</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><bndbox><xmin>50</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><bndbox><xmin>-3</xmin><ymin>2</ymin><xmax>3000</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><bndbox><xmin></xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><bndbox><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name>",
    "<name></name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><difficult>true</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><difficult></difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><difficult>1</difficult><difficult>0</difficult>"
    "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>person</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>"
    "<part><name>head</name><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></part>",
    "<name>person</name><actions><jumping>1</jumping></actions>"
    "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><pose>Left</pose><pose>Right</pose>"
    "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><meta><a>1</a></meta><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><xmin>99</xmin><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog<b/>x</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>狗</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog &amp; cat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name><![CDATA[dog]]></name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
    "<name>dog</name><!-- c --><bndbox><xmin>1<!-- c --></xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>",
]


@pytest.mark.parametrize("obj", _TRICKY_OBJECTS)
@pytest.mark.parametrize("convention", ["devkit", "as-is", "ultralytics"])
def test_fast_path_agrees_with_general_path_on_tricky_objects(monkeypatch, obj, convention):
    """Whatever the fast path accepts it must read exactly as the general path does, findings included; whatever
    is irregular it must hand to the general path."""
    from datatools.core.boxes import PixelConvention
    from datatools.formats import voc

    doc = (f"<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height><depth>3</depth></size>"
           f"<object>{obj}</object><object><name>cat</name><bndbox><xmin>5</xmin><ymin>6</ymin><xmax>50</xmax>"
           f"<ymax>60</ymax></bndbox></object></annotation>").encode("utf-8")
    parse = lambda: voc.parse_xml(doc, path="a.xml", image_id="a", convention=PixelConvention(convention))
    fast = parse()
    monkeypatch.setattr(voc, "_fast_object", lambda obj, convention: None)
    assert fast == parse()


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


def _as_values(rec, fnd, n):
    if rec is None:
        return None, fnd, n
    anns = rec.annotations
    return ((rec.file_name, rec.width, rec.height, rec.depth, [a.label for a in anns], [v for a in anns for v in a.box],
             [a.difficult | a.truncated << 1 | a.occluded << 2 for a in anns]), fnd, n)


_TRICKY_DOCS = [
    b"",
    b"  \n",
    b"<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size></annotation>",
    b"<annotation><filename> </filename><size><width>100</width><height>80</height></size>"
    b"<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>",
    b"<annotation><filename>a.jpg</filename><size><width>0</width><height>80</height></size>"
    b"<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>",
    b"<annotation><filename>a.jpg</filename>"
    b"<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>",
    b"<annotation><filename>a.jpg</filename><size><width>10.6</width><height>8</height><depth>1</depth></size>"
    b"<object><name>a</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object></annotation>",
    b"<foo/>",
    b"<annotation><object>",
    b'<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY a "dog">]><annotation><filename>a</filename></annotation>',
]


@pytest.mark.parametrize("doc", _TRICKY_DOCS + [
    (f"<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size><object>{o}</object>"
     f"</annotation>").encode() for o in _TRICKY_OBJECTS])
def test_scan_xml_agrees_with_parse_xml(doc):
    """``stats`` reads labels through scan_xml: the same values and findings as parse_xml, document by document."""
    from datatools.formats import voc

    assert voc.scan_xml(doc, path="a.xml", image_id="a") == _as_values(*voc.parse_xml(doc, path="a.xml", image_id="a"))


@pytest.mark.parametrize("root", ["sample", "bccd", "datumaro", "raccoon"])
def test_read_labels_gives_the_label_stats_of_read(root):
    """``read_labels`` + its object columns give exactly the label statistics and findings of ``read`` + its
    annotations."""
    import json

    from tests.conftest import REALWORLD, SAMPLE
    from datatools.formats import voc
    from datatools.ops.stats import label_stats

    folder = {"sample": SAMPLE, "bccd": REALWORLD / "bccd", "raccoon": REALWORLD / "raccoon",
              "datumaro": REALWORLD / "datumaro_voc" / "voc_dataset1"}[root]
    if not folder.is_dir():
        pytest.skip("real-world data absent")
    full = voc.read(folder)
    lite, objects = voc.read_labels(folder)
    assert lite.findings == full.findings and lite.classes == full.classes and lite.objects_read == full.objects_read
    assert [im.annotations for im in lite.images] == [()] * len(full.images)
    dump = lambda s: json.dumps(s.to_dict(), sort_keys=True)
    assert dump(label_stats(lite, objects)) == dump(label_stats(full)) and label_stats(full).objects > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_read_labels_columns_line_up_with_records_across_chunks(tmp_path, workers):
    """Over many chunks (and on 2 worker processes), with refused files, empty files and irregular objects between
    regular ones, the object columns still line up with the records: the same statistics, findings and classes as
    ``read``. Each chunk numbers its labels on its own; the driver must map them to one class list."""
    import json

    from datatools.formats import voc
    from datatools.ops.stats import label_stats

    docs = list(_TRICKY_DOCS) + [
        (f"<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size><object>{o}</object>"
         f"</annotation>").encode() for o in _TRICKY_OBJECTS]
    ann = tmp_path / "Annotations"
    ann.mkdir()
    for i in range(900):  # > 2 x 200 files, so plan_workers uses 2 processes; chunks of 64 in one process
        obj = "".join(f"<object><name>c{(i * 7 + k) % 13}</name><difficult>{k % 2}</difficult><bndbox><xmin>{k + 1}</xmin>"
                      f"<ymin>2</ymin><xmax>{k + 20 + i % 50}</xmax><ymax>{30 + i % 9}</ymax></bndbox></object>"
                      for k in range(i % 4))
        doc = docs[i % len(docs)] if i % 3 == 0 else (
            f"<annotation><filename>{i}.jpg</filename><size><width>{200 + i}</width><height>150</height></size>"
            f"{obj}</annotation>").encode()
        (ann / f"{i:04d}.xml").write_bytes(doc)
    full = voc.read(tmp_path, workers=workers)
    lite, objects = voc.read_labels(tmp_path, workers=workers)
    assert lite.findings == full.findings and lite.classes == full.classes and lite.objects_read == full.objects_read
    assert len(lite.images) == len(full.images) and int(objects.counts.sum()) == len(objects.cls) == len(objects.boxes)
    dump = lambda s: json.dumps(s.to_dict(), sort_keys=True)
    stats = label_stats(full)
    assert dump(label_stats(lite, objects)) == dump(stats)
    assert stats.objects > 900 and len(stats.class_objects) >= 13 and stats.empty_images > 0


@pytest.mark.parametrize("doc", _TRICKY_DOCS + [
    (f"<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size><object>{o}</object>"
     f"</annotation>").encode() for o in _TRICKY_OBJECTS])
def test_packed_worker_result_agrees_with_parse_xml(tmp_path, doc):
    """Worker processes send regular documents straight as tuples; that must be pack_record(parse_xml(...))."""
    from datatools.core.model import pack_finding, pack_record
    from datatools.formats import voc

    p = tmp_path / "a.xml"
    p.write_bytes(doc)
    args = (str(p), "a", "devkit", ("train",))
    rec, fnd, n = voc.parse_file(args)
    assert voc._parse_file_packed(args) == ((pack_record(rec) if rec else None), [pack_finding(f) for f in fnd], n)
