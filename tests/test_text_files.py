"""Text as editors and tools write it: Notepad's UTF-16, a cp1252 class list, Excel for Mac's lone-CR CSV, a blank
line in classes.txt, zero-padded data.yaml keys, a row ultralytics calls corrupt. Each is read as the tool that
wrote it meant, or refused in one line that names the file; never a traceback, never ids shifted without a word."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from datatools.cli import cli
from datatools.formats import detect
from datatools.formats.yolo import parse_label_text
from datatools.ops.convert import read_source
from tests.conftest import make_jpeg, make_voc_root, voc_xml


def run(*args: str):
    return CliRunner().invoke(cli, [*args])


def yolo_folder(root: Path, rows: dict[str, str]) -> Path:
    """LabelImg's YOLO save: images with their label files beside them."""
    root.mkdir(parents=True, exist_ok=True)
    for stem, text in rows.items():
        make_jpeg(root / f"{stem}.jpg", 100, 80)
        (root / f"{stem}.txt").write_text(text)
    return root


def test_a_class_list_that_is_not_utf8_is_one_line_naming_the_file(tmp_path):
    """cp1252's 'café' in classes.txt ended check with a UnicodeDecodeError traceback."""
    src = yolo_folder(tmp_path / "y", {"a": "0 0.5 0.5 0.2 0.2\n"})
    (src / "classes.txt").write_bytes("café\nneko\n".encode("cp1252"))
    res = run("check", str(src), "--json")
    assert res.exit_code == 1 and "Traceback" not in res.output
    message = f"{src / 'classes.txt'}: not UTF-8 text (byte 3: b'\\xe9'); save it as UTF-8"
    assert json.loads(res.stdout)["error"] == message


def test_notepads_utf16_lists_are_read(tmp_path):
    """A YOLO list file (train.txt of image paths) and a VOC ImageSets list saved as Notepad's "Unicode": the first
    stopped with a traceback, the second gave ids with NUL characters in them and left the real files out."""
    src = tmp_path / "y"
    for stem in ("a", "b"):
        make_jpeg(src / "images" / f"{stem}.jpg", 100, 80)
        (src / "labels").mkdir(exist_ok=True)
        (src / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (src / "train.txt").write_bytes("./images/a.jpg\r\n".encode("utf-16"))
    (src / "val.txt").write_bytes("./images/b.jpg\r\n".encode("utf-16"))
    (src / "data.yaml").write_text("train: train.txt\nval: val.txt\nnames: {0: cat}\n")
    ds = read_source(str(src))
    assert {r.image_id: r.splits for r in ds.images} == {"a": ("train",), "b": ("val",)}

    items = {i: voc_xml(f"{i}.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 10, 10)}]) for i in ("a", "b")}
    voc = make_voc_root(tmp_path / "voc", items, images={"a.jpg": (40, 30), "b.jpg": (40, 30)})
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_bytes("a\r\nb\r\n".encode("utf-16"))
    ds = read_source(str(voc))
    assert sorted(r.image_id for r in ds.images) == ["a", "b"] and not ds.findings


def test_excel_for_macs_lone_cr_csv_is_read(tmp_path):
    """Open Images CSVs with \\r line ends stopped with "_csv.Error: new-line character seen in unquoted field"."""
    src = tmp_path / "oi"
    for stem in ("a", "b"):
        make_jpeg(src / "train" / f"{stem}.jpg", 100, 80)
    head = ("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,"
            "IsInside")
    rows = [head, "a,xclick,/m/01,1,0.1,0.5,0.1,0.5,0,0,0,0,0", "b,xclick,/m/02,1,0.1,0.5,0.1,0.5,0,0,0,0,0"]
    (src / "train-annotations-bbox.csv").write_bytes("\r".join(rows).encode() + b"\r")
    (src / "class-descriptions-boxable.csv").write_bytes(b"/m/01,Cat\r/m/02,Dog\r")
    ds = read_source(str(src))
    assert sorted((r.image_id, r.annotations[0].label) for r in ds.images) == [("a", "Cat"), ("b", "Dog")]


def test_visualize_ids_from_a_utf16_file(tmp_path):
    src = yolo_folder(tmp_path / "y", {"a": "0 0.5 0.5 0.2 0.2\n", "b": "0 0.5 0.5 0.2 0.2\n"})
    (src / "classes.txt").write_text("cat\n")
    (tmp_path / "ids.txt").write_bytes("a\r\n".encode("utf-16"))
    res = run("visualize", str(src), str(tmp_path / "viz"), "--ids", str(tmp_path / "ids.txt"))
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "viz").glob("*.jpg")] == ["a.jpg"]


def test_a_blank_line_in_classes_txt_keeps_the_ids_after_it(tmp_path):
    """LabelImg and darknet read a blank line as a class: dropping it named id 1 'dog' where the file means 'dog' is
    id 2, with no finding."""
    src = yolo_folder(tmp_path / "y", {"a": "2 0.5 0.5 0.2 0.2\n"})
    (src / "classes.txt").write_text("\ncat\n\ndog\nbird\n\n")  # blank at the ends: no ids (LabelImg strips them)
    ds = read_source(str(src))
    assert ds.classes == ("cat", "class_1", "dog", "bird")
    assert [a.label for a in ds.images[0].annotations] == ["dog"]
    assert [(f.code, f.field) for f in ds.findings] == [("blank-class-name", "line 3")]  # the file's own line


def test_data_yaml_names_keyed_by_zero_padded_strings(tmp_path):
    """names: {'00': cat, '01': dog} read as two classes named 'None', as ultralytics reads int(key)."""
    src = tmp_path / "y"
    make_jpeg(src / "images" / "a.jpg", 100, 80)
    (src / "labels").mkdir()
    (src / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (src / "data.yaml").write_text("train: images\nval: images\nnames:\n  '00': cat\n  '01': dog\n")
    ds = read_source(str(src))
    assert ds.classes == ("cat", "dog") and ds.images[0].annotations[0].label == "dog"


def test_a_utf16_cvat_file_is_cvat(tmp_path):
    """CVAT's annotations.xml saved as UTF-16 was taken for VOC and refused (expected <annotation>)."""
    make_jpeg(tmp_path / "images" / "a.jpg", 100, 80)
    doc = ('<?xml version="1.0" encoding="UTF-16"?>\n<annotations><version>1.1</version><meta><task><labels><label>'
           '<name>cat</name></label></labels></task></meta><image id="0" name="a.jpg" width="100" height="80">'
           '<box label="cat" occluded="0" xtl="10" ytl="10" xbr="50" ybr="50"/></image></annotations>\n')
    (tmp_path / "annotations.xml").write_bytes(doc.encode("utf-16"))
    assert detect(str(tmp_path)) == "cvat"
    assert len(read_source(str(tmp_path)).images[0].annotations) == 1


def test_rows_that_are_no_finite_numbers(tmp_path):
    """A predictions row with inf stopped the whole evaluation as 'pixel coordinates' (a NaN row was dropped); a
    NaN row or a comment at a row's end makes ultralytics call the file corrupt and leave the image out, which the
    warning said it did not (it said ultralytics trains on the image as having no objects)."""
    text = "0 0.5 0.5 0.2 0.2 0.9\n0 inf 0.5 0.1 0.1 0.3\n"
    anns, found, rows = parse_label_text(text, path="p.txt", image_id="a", names=["cat"], width=100, height=80,
                                         refuse_pixels=True)
    assert rows == 2 and len(anns) == 1 and [f.code for f in found] == ["bad-number"]
    for bad in ("0 nan 0.5 0.1 0.1", "0 0.5 0.5 0.2 0.2 # a cat"):
        anns, found, _ = parse_label_text(f"0 0.5 0.5 0.2 0.2\n{bad}\n", path="l.txt", image_id="a", names=["cat"],
                                          width=100, height=80, scores=False)
        [rejected] = [f for f in found if f.code == "file-rejected-by-ultralytics"]
        assert len(anns) == 1 and "leaves the image out of training" in rejected.message


def test_a_users_own_data_yaml_keeps_its_train_split(tmp_path):
    """train: images/val and val: images/val written by hand trains on those images, as ultralytics does: the split
    is train (the rename to val is for the data.yaml datatools writes for evaluation splits only)."""
    src = tmp_path / "y"
    make_jpeg(src / "images" / "val" / "a.jpg", 100, 80)
    (src / "labels" / "val").mkdir(parents=True)
    (src / "labels" / "val" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (src / "data.yaml").write_text("train: images/val\nval: images/val\nnames: [cat]\n")
    assert read_source(str(src)).splits == ("train",)


def test_a_voc_list_saved_on_windows_is_read_in_its_encoding(tmp_path):
    """A list in cp1252 naming caf\u00e9_1 (and a stray readme.txt beside it) stopped the whole read; read as the
    Windows encoding it is, its ids are the files' names."""
    items = {i: voc_xml(f"{i}.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}]) for i in ("a", "caf\u00e9_1")}
    voc = make_voc_root(tmp_path / "voc", items, images={"a.jpg": (40, 30), "caf\u00e9_1.jpg": (40, 30)})
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_bytes("a\r\ncaf\u00e9_1\r\n".encode("cp1252"))
    (voc / "ImageSets" / "Main" / "readme.txt").write_bytes("notes about caf\xe9\n".encode("latin-1"))
    ds = read_source(str(voc), sets="train")
    assert sorted(r.image_id for r in ds.images) == ["a", "caf\u00e9_1"]
    assert not [f for f in ds.findings if f.severity.value != "info"]


def test_a_blank_line_in_a_classes_file_given_on_the_command_line_is_refused(tmp_path):
    """--classes obj.names with a blank line dropped it: every later id named the next class, without a word."""
    src = yolo_folder(tmp_path / "y", {"a": "2 0.5 0.5 0.2 0.2\n"})
    (tmp_path / "obj.names").write_text("\ncat\n\ndog\n")
    res = run("check", str(src), "--classes", str(tmp_path / "obj.names"))
    assert res.exit_code == 2 and "line 3 of" in res.output and "is blank" in res.output
    (tmp_path / "obj.names").write_text("\r\ncat\r\nbird\r\ndog\r\n \r\n")  # blank ends are no ids: trimmed
    from datatools.cli.common import parse_classes

    assert parse_classes(str(tmp_path / "obj.names")) == ["cat", "bird", "dog"]
