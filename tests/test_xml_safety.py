"""Issue 16, the XML reader: no DOCTYPE gets past the check however it is hidden, no external subset or parameter
entity is ever opened (a FIFO target must not hang the reader; item 20), and annotation files over a size limit are
refused unread (item 21). Every case that could hang runs in a subprocess under a timeout, so a regression fails
instead of hanging the suite."""
from __future__ import annotations

import codecs
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from datatools.cli import cli
from datatools.formats import voc
from datatools.formats.safe_xml import declares_dtd, parse_document, stream_document
from tests.conftest import ROOT, make_jpeg, make_voc_root, voc_xml

TIMEOUT = 60  # seconds; a hang on a FIFO is forever, a pass takes about one
BODY = ("<annotation><filename>a.jpg</filename><size><width>40</width><height>30</height></size>"
        "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
        "</annotation>")

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a hang is a TimeoutExpired failure after TIMEOUT seconds."""
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the read hung (killed after {TIMEOUT} s): {e}")


def hidden_doctypes(target: str) -> dict[str, bytes]:
    """Documents whose DOCTYPE names ``target``, hidden the ways that got past the old check (which looked only up
    to the first ``>`` after ``<annotation``)."""
    dtd = f'<!DOCTYPE annotation SYSTEM "{target}">'
    pe = f'<!DOCTYPE annotation [<!ENTITY % pe SYSTEM "{target}"> %pe;]>'
    text = {
        "plain": f'<?xml version="1.0"?>{dtd}{BODY}',
        "after-comment": f'<?xml version="1.0"?><!-- <annotation> -->{dtd}{BODY}',
        "after-pi": f'<?xml version="1.0"?><?x <annotation> ?>{dtd}{BODY}',
        "parameter-entity": f'<?xml version="1.0"?><!-- <annotation> -->{pe}{BODY}',
    }
    docs = {k: v.encode("utf-8") for k, v in text.items()}
    docs["utf-16-bom"] = codecs.BOM_UTF16_LE + text["after-comment"].replace(
        '"1.0"?>', '"1.0" encoding="UTF-16"?>', 1).encode("utf-16-le")
    docs["utf-16-no-bom"] = text["after-comment"].replace('"1.0"?>', '"1.0" encoding="UTF-16"?>', 1).encode(
        "utf-16-be")
    docs["utf-16-pe"] = codecs.BOM_UTF16_BE + text["parameter-entity"].replace(
        '"1.0"?>', '"1.0" encoding="UTF-16"?>', 1).encode("utf-16-be")
    return docs


def refusal(doc: bytes, how: str):
    """The finding that refuses ``doc``, parsed whole (VOC) or streamed (CVAT), or None when it is read."""
    if how == "whole":
        root, finding = parse_document(doc, path="a.xml", image_id="a", root_tag="annotation")
        assert (root is None) == (finding is not None)
        return finding
    seen = []
    finding = stream_document(doc, path="a.xml", root_tag="annotation", children=("object",), handle=seen.append)
    if finding is None:  # read: the same objects as read whole
        assert len(seen) == len(parse_document(doc, path="a.xml", image_id="a", root_tag="annotation")[0].findall(
            "object"))
    return finding


@pytest.mark.parametrize("how", ["whole", "streamed"])
@pytest.mark.parametrize("name", sorted(hidden_doctypes("x")))
def test_a_doctype_anywhere_is_refused(name, how):
    doc = hidden_doctypes("file:///etc/passwd")[name]
    finding = refusal(doc, how)
    assert finding.code == "xml-dtd" and finding.image_dropped
    assert refusal(f'<?xml version="1.0"?><!-- <annotation> -->{BODY}'.encode(), how) is None


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-be", "cp037", "utf-7", "latin-1", "utf-8-sig"])
def test_the_check_reads_the_document_in_its_own_encoding(encoding):
    declared = {"utf-8-sig": "UTF-8", "cp037": "IBM037"}.get(encoding, encoding.upper())
    doc = f'<?xml version="1.0" encoding="{declared}"?><!-- x --><!DOCTYPE a SYSTEM "y"><annotation/>'
    assert declares_dtd(doc.encode(encoding)) is True
    assert declares_dtd(doc.replace('<!DOCTYPE a SYSTEM "y">', "").encode(encoding)) is False


@pytest.mark.parametrize("how", ["whole", "streamed"])
def test_an_undecodable_declared_encoding_is_refused(how):
    finding = refusal(b'<?xml version="1.0" encoding="X-NO-SUCH-CODEC"?><annotation/>', how)
    assert finding.code == "xml-parse" and "X-NO-SUCH-CODEC" in finding.message


@pytest.mark.parametrize("how", ["whole", "streamed"])
@pytest.mark.parametrize("doc, code", [(b"", "empty-file"), (b"<annotation><object>", "xml-parse"),
                                       (b"<other><object/></other>", "xml-root"), (b"<object/>", "xml-root")])
def test_what_is_not_a_document_is_refused(doc, code, how):
    finding = refusal(doc, how)
    assert finding.code == code and finding.image_dropped


def test_the_refusal_does_not_tell_whether_a_file_exists(tmp_path):
    there = tmp_path / "there.dtd"
    there.write_text("")
    messages = set()
    for target in (there, tmp_path / "absent.dtd"):
        doc = hidden_doctypes(target.as_uri())["after-comment"]
        messages.add(parse_document(doc, path="a.xml", image_id="a", root_tag="annotation")[1].message)
    assert len(messages) == 1


@needs_fifo
def test_a_fifo_as_the_system_target_does_not_hang_the_reader(tmp_path):
    """A SYSTEM subset or parameter entity pointing at a FIFO hung check, convert and stats forever: opening a FIFO
    blocks until a writer comes. Every hidden DOCTYPE is refused, the rest of the dataset is read, and it finishes."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    docs = hidden_doctypes(str(fifo))
    docs.update({f"{k}-uri": v for k, v in hidden_doctypes(fifo.as_uri()).items()})
    root = make_voc_root(tmp_path / "v", {"good": BODY, **docs})
    r = run_python(f"""
        from datatools.formats import voc
        ds = voc.read({str(root)!r}, workers=1)
        dtd = sorted(f.image_id for f in ds.findings if f.code == "xml-dtd")
        print([im.image_id for im in ds.images], len(dtd))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == f"['good'] {len(docs)}"


@needs_fifo
def test_the_parser_itself_opens_nothing(tmp_path):
    """The second wall on its own: the parser's resolver answers every external reference with an empty document,
    so even a document that reached lxml would never open the FIFO."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = run_python(f"""
        from lxml import etree
        from datatools.formats.safe_xml import pull_parser, xml_parser
        for target in ({str(fifo)!r}, {fifo.as_uri()!r}):
            for doc in ('<!DOCTYPE a SYSTEM "@@"><a>x</a>', '<!DOCTYPE a [<!ENTITY % pe SYSTEM "@@"> %pe;]><a>x</a>',
                        '<!DOCTYPE a [<!ENTITY e SYSTEM "@@">]><a>&e;</a>'):
                try:
                    etree.fromstring(doc.replace("@@", target).encode(), xml_parser())
                except etree.XMLSyntaxError:
                    pass
                parser = pull_parser(["a"])
                try:
                    parser.feed(doc.replace("@@", target).encode())
                    parser.close()
                except etree.XMLSyntaxError:
                    pass
        print("done")
    """)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr


# ------------------------------------------------------------------------------------------ item 21: size limit

def test_a_huge_annotation_file_is_refused_unread(tmp_path):
    """A 38 MiB VOC file took 4.2 s and 826 MiB per worker. Over 16 MiB, a file is refused without being read (a
    sparse 17 MiB file: reading it would be 17 MiB of zeros and an xml-parse error instead)."""
    root = make_voc_root(tmp_path / "v", {"good": BODY})
    big = root / "Annotations" / "big.xml"
    with open(big, "wb") as f:
        f.write(b"<annotation>")
        f.truncate(17 * 2**20)
    ds = voc.read(root)
    assert [im.image_id for im in ds.images] == ["good"]
    (f,) = [f for f in ds.findings if f.image_id == "big"]
    assert f.code == "file-too-large" and f.image_dropped and f.path == str(big)
    assert f"{17 * 2**20:,}" in f.message and f"{16 * 2**20:,}" in f.message


def test_the_limit_can_be_raised_and_lowered(tmp_path):
    xml = voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}] * 40)
    root = make_voc_root(tmp_path / "v", {"a": xml})
    size = len(xml.encode())
    low = voc.read(root, max_xml_bytes=size - 1)
    assert low.images == () and [f.code for f in low.findings if f.image_id] == ["file-too-large"]
    exact = voc.read(root, max_xml_bytes=size)
    assert len(exact.images[0].annotations) == 40


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "16M"])
def test_a_bad_limit_is_a_value_error(tmp_path, bad):
    root = make_voc_root(tmp_path / "v", {"a": BODY})
    with pytest.raises(ValueError, match="max_xml_bytes"):
        voc.read(root, max_xml_bytes=bad)


@needs_fifo
def test_a_fifo_as_an_annotation_file_is_refused(tmp_path):
    root = make_voc_root(tmp_path / "v", {"good": BODY})
    os.mkfifo(root / "Annotations" / "pipe.xml")
    r = run_python(f"""
        from datatools.formats import voc
        ds = voc.read({str(root)!r}, workers=1)
        print([im.image_id for im in ds.images], [(f.code, f.message) for f in ds.findings if f.image_id == "pipe"])
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['good'] [('unreadable-file', 'not a regular file')]"


@needs_fifo
@pytest.mark.parametrize("fmt, files, pipe", [
    ("labelme", {"good.json": '{"shapes": [{"label": "cat", "points": [[1, 1], [9, 9]], "shape_type": "rectangle"}], '
                              '"imagePath": "good.jpg"}'}, "pipe.json"),
    ("yolo", {"data.yaml": "train: images/train\nnames: [cat]\n", "labels/train/good.txt": "0 0.5 0.5 0.2 0.2\n"},
     "labels/train/pipe.txt"),
])
def test_a_fifo_in_a_labelme_or_yolo_folder_is_refused_as_in_voc(tmp_path, fmt, files, pipe):
    """LabelMe JSON and YOLO label files are read by VOC's rule (common.read_annotation_file): a FIFO named x.json
    hung labelme.read forever. The reader and ``check`` (which detects the format first) report it and return."""
    root = tmp_path / fmt
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    image_dir = root / ("images/train" if fmt == "yolo" else "")
    for stem in ("good", "pipe"):
        make_jpeg(image_dir / f"{stem}.jpg", 40, 30)
    os.mkfifo(root / pipe)
    r = run_python(f"""
        from click.testing import CliRunner
        from datatools import formats
        from datatools.cli import cli
        ds = formats.get({fmt!r}).read({str(root)!r}, workers=1)
        print([im.image_id for im in ds.images], [(f.code, f.message) for f in ds.findings if f.image_id == "pipe"])
        print(CliRunner().invoke(cli, ["check", {str(root)!r}, "--workers", "1"], catch_exceptions=False).exit_code)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["['good'] [('unreadable-file', 'not a regular file')]", "1"], r.stdout


@pytest.mark.parametrize("command", [["check"], ["stats", "--labels-only"], ["anchors", "-k", "1"],
                                     ["split", "{out}", "--dry-run"], ["voc2coco", "{out}"]])
def test_every_reading_command_takes_max_xml_mb(tmp_path, command):
    """--max-xml-mb reaches the reader from every command that reads VOC: one byte under the file's size refuses it,
    the default reads it."""
    xml = voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}])
    root = make_voc_root(tmp_path / "v", {"a": xml, "b": xml.replace("a.jpg", "b.jpg")})
    limit = f"{(len(xml.encode()) - 1) / 2**20:.9f}"
    args = [a.replace("{out}", str(tmp_path / "out")) for a in command]
    low = CliRunner().invoke(cli, [args[0], str(root), *args[1:], "--max-xml-mb", limit, "--json"])
    assert low.exit_code == 1, low.output
    assert "file-too-large" in low.output, low.output
    ok = CliRunner().invoke(cli, [args[0], str(root), *args[1:], "--json"])
    assert ok.exit_code == 0, ok.output
    assert "file-too-large" not in ok.output


def test_a_conversion_where_every_file_is_refused_writes_nothing(tmp_path):
    root = make_voc_root(tmp_path / "v", {"a": BODY})
    res = CliRunner().invoke(cli, ["voc2yolo", str(root), str(tmp_path / "out"), "--max-xml-mb", "0.00001"])
    assert res.exit_code == 1
    assert "every image of" in res.output and "was dropped (file-too-large 1)" in res.output
    assert not (tmp_path / "out").exists()


def test_max_xml_mb_must_be_positive(tmp_path):
    root = make_voc_root(tmp_path / "v", {"a": BODY})
    res = CliRunner().invoke(cli, ["check", str(root), "--max-xml-mb", "0"])
    assert res.exit_code == 2 and "--max-xml-mb" in res.output


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-le", "utf-32-be", "utf-16", "utf-8-sig", "cp1251", "shift_jis"])
def test_a_document_in_any_declared_encoding_reads_whole_and_streamed(encoding):
    """lxml's fed parser does not take a UTF-32 byte-order mark: a CVAT file saved as UTF-32 was refused when
    streamed, and read whole."""
    declared = {"utf-8-sig": "UTF-8"}.get(encoding, encoding.upper())
    word = "猫" if encoding == "shift_jis" else "кот"
    doc = f'<?xml version="1.0" encoding="{declared}"?><annotation><object>{word}</object></annotation>'.encode(
        encoding)
    assert refusal(doc, "whole") is None and refusal(doc, "streamed") is None


@needs_fifo
def test_a_fifo_among_the_images_is_an_unreadable_image_not_a_hang(tmp_path):
    """A FIFO named x.jpg blocked check, stats, dupes and the torch datasets forever (annotation files were guarded,
    images not)."""
    from tests.conftest import SAMPLE

    root = tmp_path / "v"
    shutil.copytree(SAMPLE, root)
    (root / "JPEGImages" / "shapes_0001.jpg").unlink()
    os.mkfifo(root / "JPEGImages" / "shapes_0001.jpg")
    r = run_python(f"""
        from click.testing import CliRunner
        from datatools.cli import cli
        from datatools.datasets import DetectionDataset
        for command in ("check", "stats", "dupes"):
            res = CliRunner().invoke(cli, [command, {str(root)!r}, "--json"])
            print(command, res.exit_code, "shapes_0001.jpg: not a regular file" in res.output)
        ds = DetectionDataset.from_path({str(root)!r}, ids=["shapes_0001"])
        try:
            ds[0]
        except RuntimeError as e:
            print("dataset", "not a regular file" in str(e))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:4] == ["check 1 True", "stats 0 True", "dupes 0 True", "dataset True"], r.stdout
