"""The C reader of regular VOC documents (datatools/formats/_voc_scan.c) against the lxml reader it stands in for.

The C reader may decline any document (it returns None and lxml reads it), but a document it accepts must give
exactly what lxml plus ``voc._regular_document`` give: the same file name, size, labels, boxes, flags and extra
tags. These tests feed both readers real-world files, crafted edge cases and thousands of seeded mutations, and
check that the C reader does accept the plain documents (or the fast path would be dead without anyone noticing).
"""
from __future__ import annotations

import random
import shutil
import sysconfig
from pathlib import Path

import pytest

from datatools.core.boxes import PixelConvention
from datatools.formats import voc
from tests.conftest import REALWORLD, SAMPLE, voc_xml

try:
    from datatools.formats import _voc_scan
except ImportError:  # pragma: no cover - only without a compiler
    _voc_scan = None

if _voc_scan is None:
    if shutil.which(sysconfig.get_config_var("CC") or "cc") or shutil.which("cc"):
        pytest.fail("datatools.formats._voc_scan is not built although a C compiler is present: "
                    "reinstall with `pip install -e .`", pytrace=False)
    pytest.skip("built without a C compiler: every document is read by lxml", allow_module_level=True)

OFFSETS = [c.offsets for c in PixelConvention]


def lxml_regular(data: bytes, lo: float, hi: float):
    """What the C reader must return, computed with lxml and voc.py's own Python walk."""
    root, _ = voc._parse_root(data, "a.xml", "a")
    if root is None:
        return None
    regular = voc._regular_document(root)
    if regular is None:
        return None
    file_name, width, height, depth, fields = regular
    return (file_name, width, height, depth, [f[0] for f in fields],
            [v for f in fields for v in (f[1] + lo, f[2] + lo, f[3] + hi, f[4] + hi)],
            [f[5] | f[6] << 1 | f[7] << 2 for f in fields], [f[8] for f in fields])


def agree(data: bytes, lo: float = -1.0, hi: float = 0.0):
    """Assert the C reader declines ``data`` or agrees with lxml; return (C result, lxml result)."""
    got = _voc_scan.scan(data, lo, hi)
    want = lxml_regular(data, lo, hi)
    if got is not None:
        assert got == want, data
        # the same types too: 3 == 3.0 would hide an int where a float belongs
        assert [type(v) for v in got[:4]] == [type(v) for v in want[:4]], data
    return got, want


def _corpus() -> list[bytes]:
    files = sorted(SAMPLE.rglob("*.xml"))
    if REALWORLD.is_dir():
        files += sorted(REALWORLD.rglob("*.xml"))
    return [p.read_bytes() for p in files]


CORPUS = _corpus()

OBJ = "<name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>"


def doc(obj: str = OBJ, *, head: str = "", root_attrs: str = "", size: str = "<width>100</width><height>80</height>",
        filename: str = "a.jpg", tail: str = "") -> bytes:
    return (f"{head}<annotation{root_attrs}><filename>{filename}</filename><size>{size}</size>"
            f"<object>{obj}</object></annotation>{tail}").encode()


def test_accepts_every_plain_real_world_document():
    """Every document lxml reads as regular in the sample and real-world data is read by C, identically."""
    accepted = regular = 0
    for data in CORPUS:
        for lo, hi in OFFSETS:
            got, want = agree(data, lo, hi)
            regular += want is not None
            accepted += got is not None
    assert regular > 100  # the corpus is there and mostly regular
    assert accepted == regular


@pytest.mark.parametrize("data, accepted", [
    (doc(), True),
    (doc(head='<?xml version="1.0"?>'), True),
    (doc(head='<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'), True),
    (doc(head="<?xml version='1.0' encoding='utf-8'?>"), True),
    (doc(root_attrs=' verified="yes"'), True),  # labelImg
    (doc(root_attrs=" a='1'\tb=\"2\""), True),
    (doc(obj=OBJ + "<pose>Left</pose><truncated>1</truncated><difficult>0</difficult><occluded>1</occluded>"), True),
    (doc(obj=OBJ + "<pose>  Left \n</pose><custom/><zeta>z</zeta><alpha>a</alpha>"), True),
    (doc(obj="<name>狗</name>" + OBJ[16:]), True),
    (doc(filename=" b c.jpg\n"), True),
    (doc(size="<width>10.5</width><height>8.5</height><depth>3.9</depth>"), True),  # round half even, int()
    (doc(size="<width>100</width><height>80</height><depth>-1</depth>"), True),
    (doc(size="<width>100</width><height>80</height><depth>x</depth><width>7</width>"), True),
    (doc(obj=OBJ.replace("<xmin>1</xmin>", "<xmin>\r\n 1.25e1 \t</xmin>")), True),
    (doc(obj=OBJ.replace("</name>", "</name >")), True),
    (doc(tail="\n \r\n"), True),
    # declined: lxml reads these differently or refuses them
    (doc(head="\ufeff"), False),  # byte-order mark
    (doc(head=" "), False),
    (doc(head='<?xml version="1.0" encoding="ISO-8859-1"?>'), False),
    (doc(head='<?xml version="1.1"?>'), False),
    (doc(head='<?xml version="1.0" standalone="maybe"?>'), False),
    (doc(head='<!DOCTYPE annotation>'), False),
    (doc(head='<?xml version="1.0"?><?pi x?>'), False),
    (doc(obj=OBJ + "<!-- c -->"), False),
    (doc(obj=OBJ + "<pose><![CDATA[x]]></pose>"), False),
    (doc(obj=OBJ.replace("dog", "d&amp;g")), False),
    (doc(obj=OBJ.replace("dog", "d&#111;g")), False),
    (doc(obj=OBJ.replace("dog", "d>g")), False),
    (doc(obj=OBJ.replace("dog", "d\r\ng")), False),  # lxml reads the line end as "\n"
    (doc(obj=OBJ + "<pose>a\rb</pose>"), False),
    (doc(filename="a\rb.jpg"), False),
    (doc(root_attrs=' xmlns="http://x"'), False),
    (doc(root_attrs=' a="1" a="2"'), False),
    (doc(root_attrs=' a="1"b="2"'), False),
    (doc(root_attrs=' a="<"'), False),
    (doc(root_attrs=' a=1'), False),
    (doc(obj=OBJ.replace("<name>", "<x:name>").replace("</name>", "</x:name>")), False),
    (doc(obj=OBJ + "<\u00e9t\u00e9>1</\u00e9t\u00e9>"), False),
    (doc(obj=OBJ.replace("dog", "d\x01g")), False),
    (doc(obj=OBJ.replace("dog", "d\ufffeg")), False),
    (doc(obj=OBJ.replace("dog", "dog\u00a0")), False),  # str.strip() strips U+00A0
    (doc(obj=OBJ.replace("<xmin>1</xmin>", "<xmin>1_0</xmin>")), True),  # float() reads "1_0" as 10.0
    (doc(obj=OBJ.replace("<xmin>1</xmin>", "<xmin>\u0661</xmin>")), True),  # float() reads Arabic-Indic digits
    (doc(obj=OBJ.replace("<xmin>1</xmin>", "<xmin>1e400</xmin>")), False),
    (doc(obj=OBJ.replace("<xmin>1</xmin>", "<xmin>nan</xmin>")), False),
    (doc(obj=OBJ.replace("<xmin>1</xmin>", "<xmin>--1</xmin>")), False),
    (doc(obj=OBJ.replace("<xmin>1</xmin>", "<xmin/>")), False),
    (doc(obj=OBJ + "<difficult/>"), False),
    (doc(obj=OBJ + "<part><name>hand</name></part>"), False),
    (doc(obj=OBJ + "<pose><a>1</a></pose>"), False),
    (doc(tail="<annotation/>"), False),
    (doc(tail="x"), False),
    (doc()[:-1], False),
    (doc().replace(b"</size>", b"</sizes>"), False),
    (b"<annotation>" + b"<a>" * 70 + b"</a>" * 70 + doc()[12:], False),  # deeper than the C reader goes
    (doc(obj=OBJ + f"<{'p' * 1200}>1</{'p' * 1200}>"), False),
    (doc().replace(b"dog", b"d\xffg"), False),  # invalid UTF-8
    (doc().replace(b"a.jpg", b"a\xc3.jpg"), False),
    (b"", False),
    (b"<foo/>", False),
])
def test_crafted_documents(data, accepted):
    got, want = agree(data)
    assert (got is not None) == accepted, (data, want)


_MUTATIONS = [b"&amp;", b"&#60;", b"<!-- x -->", b"<![CDATA[y]]>", b"<?p?>", b"\r\n", b"\r", b"\t", b" ", b"\x00",
              b"\x0b", b"\xc2\xa0", b"\xe2\x80\x83", b"\xff", b"\xef\xbf\xbf", b"<", b">", b"/", b"=", b'"', b"'",
              b"<a/>", b"<b>1</b>", b"</", b"<pose>x</pose>", b"<name>cat</name>", b"<xmin>5</xmin>", b"1e3", b"_",
              b"-", b".", b"+", b"0", b"1", b"nan", b"x:", b' k="v"', b" xmlns:x='u'", "\u0663".encode(),
              "名".encode(), b"<difficult>1</difficult>", b"<object>", b"</object>", b"<bndbox>", b"</bndbox>"]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(data) + 1)
        kind = rng.random()
        if kind < 0.45:
            data = data[:i] + rng.choice(_MUTATIONS) + data[i:]
        elif kind < 0.7:
            data = data[:i] + data[i + rng.randint(1, 4):]
        elif kind < 0.85 and i < len(data):
            data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
        else:  # move a piece elsewhere: reorders tags, splits names
            j = rng.randrange(len(data) + 1)
            a, b = sorted((i, j))
            piece = data[a:b][:40]
            data = data[:a] + data[a + len(piece):]
            k = rng.randrange(len(data) + 1)
            data = data[:k] + piece + data[k:]
    return data


def test_seeded_mutations_never_disagree():
    """10,000 seeded mutations of real documents (inserted markup, references, odd whitespace and bytes, deleted or
    moved pieces): the C reader declines or agrees, every time. Many mutants stay regular, so both outcomes occur."""
    rng = random.Random(20261201)
    seeds = [d for d in CORPUS if lxml_regular(d, -1.0, 0.0) is not None][:200]
    seeds.append(doc(obj=OBJ + "<pose>Left</pose><truncated>0</truncated>", head='<?xml version="1.0"?>\n',
                     root_attrs=' verified="no"'))
    outcomes = {True: 0, False: 0}
    for k in range(10000):
        mutant = _mutate(rng, rng.choice(seeds))
        lo, hi = OFFSETS[k % len(OFFSETS)]
        got, _ = agree(mutant, lo, hi)
        outcomes[got is not None] += 1
    assert outcomes[True] > 400 and outcomes[False] > 400, outcomes


def test_generated_voc_documents():
    """The conftest builder's documents with many objects and every flag and extra tag."""
    rng = random.Random(3)
    for _ in range(50):
        objects = [{"name": rng.choice(["dog", "cat", "traffic light"]),
                    "box": (rng.randint(0, 50), rng.randint(0, 50), rng.randint(51, 99), f"{rng.uniform(51, 99):.3f}"),
                    "difficult": rng.choice("01"), "truncated": rng.choice("01"), "pose": rng.choice(["Left", ""])}
                   for _ in range(rng.randint(1, 30))]
        data = voc_xml("x.jpg", (100, 100), objects).encode()
        got, want = agree(data)
        assert got is not None and want is not None


@pytest.mark.parametrize("data", [doc(), doc(obj=OBJ + "<pose>Left</pose><difficult>1</difficult>")] + CORPUS[:40])
def test_parse_xml_same_with_and_without_the_c_reader(data, monkeypatch):
    """The records that parse_xml and the worker's packed form build from the C reader's values are the ones lxml
    gives, findings and object counts included."""
    with_c = voc.parse_xml(data, path="a.xml", image_id="a", splits=("train",))
    packed_c = voc._parse_file_packed_data(data, "a.xml", "a", "devkit", ("train",))
    monkeypatch.setattr(voc, "_scan_regular", None)
    assert voc.parse_xml(data, path="a.xml", image_id="a", splits=("train",)) == with_c
    assert voc._parse_file_packed_data(data, "a.xml", "a", "devkit", ("train",)) == packed_c


def test_whole_read_same_without_the_c_reader(monkeypatch):
    """A whole dataset read, labels-only read included, is the same with lxml alone."""
    folder = REALWORLD / "bccd" if (REALWORLD / "bccd").is_dir() else SAMPLE
    ds = voc.read(folder, workers=1)
    labels, cols = voc.read_labels(folder, workers=1)
    monkeypatch.setattr(voc, "_scan_regular", None)
    assert voc.read(folder, workers=1) == ds
    labels2, cols2 = voc.read_labels(folder, workers=1)
    assert labels2 == labels
    assert cols2.names == cols.names
    for a, b in zip((cols.counts, cols.cls, cols.boxes, cols.flags), (cols2.counts, cols2.cls, cols2.boxes, cols2.flags)):
        assert (a == b).all()


def test_scan_never_reads_past_the_buffer():
    """Every prefix of a document is declined (no end of input mistaken for a tag end), and a view into a larger
    buffer is read only within its bounds."""
    data = doc(head='<?xml version="1.0"?>', root_attrs=' v="1"')
    for n in range(len(data)):
        assert _voc_scan.scan(data[:n], -1.0, 0.0) is None
    view = memoryview(data + b"<more/>")[:len(data)]
    assert _voc_scan.scan(view, -1.0, 0.0) == lxml_regular(data, -1.0, 0.0)
    with pytest.raises(TypeError):
        _voc_scan.scan("text", -1.0, 0.0)

