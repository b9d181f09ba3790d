"""Issue 18 audit: nothing is lost silently when the output format cannot hold a field.

Each format module declares what its writer keeps (``KEEPS``, and ``keeps_attribute`` where it keeps only some
attributes); the write tail reports every field the data uses and the output drops with one ``field-not-kept``
finding and its count. The declarations are tested against the writers themselves: a source using every flag and
some attributes is written in each format and read back, and a finding must name exactly what did not come back.
The YOLO writer warns about images that data.yaml does not name (split-less ones beside split ones)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import datatools
from datatools import formats
from datatools.cli import cli
from datatools.ops import surgery
from tests.conftest import SAMPLE, make_jpeg, make_voc_root, voc_xml

FLAGS = ("difficult", "truncated", "occluded", "iscrowd")
# (COCO annotation fields beyond the box, what the object uses): one field per object, and one plain object.
OBJECTS = [
    ({"attributes": {"difficult": True}}, "difficult"),
    ({"attributes": {"truncated": True}}, "truncated"),
    ({"attributes": {"occluded": True}}, "occluded"),
    ({"iscrowd": 1}, "iscrowd"),
    ({"attributes": {"color": "red", "group_id": "3", "source": "manual", "pose": "Left", "my-tag": "x"}},
     "attributes"),
    ({"score": 0.75}, "score"),  # a pseudo-label's confidence: COCO keeps it, a YOLO label file must not
    ({}, None),
]


@pytest.fixture(scope="module")
def coco_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lost")
    make_jpeg(root / "images" / "a.jpg", 120, 80)
    anns = [{"id": k + 1, "image_id": 1, "category_id": 1, "bbox": [2 + 15 * k, 5 + 2 * k, 12, 20],
             "area": 240, "iscrowd": 0, **fields} for k, (fields, _) in enumerate(OBJECTS)]
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 120, "height": 80}], "annotations": anns,
           "categories": [{"id": 1, "name": "thing"}]}
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    return root / "annotations" / "instances_train.json"


def by_box(ds) -> dict[tuple, object]:
    return {tuple(round(v, 2) for v in a.box): a for im in ds.images for a in im.annotations}


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_a_finding_names_exactly_what_the_written_format_did_not_keep(coco_source, tmp_path, fmt):
    source = by_box(formats.get("coco").read(coco_source))
    s = datatools.convert("coco", coco_source, fmt, tmp_path / fmt, images_mode="copy", difficult="keep")
    back = by_box(formats.get(fmt).read(tmp_path / fmt))
    assert back.keys() == source.keys() and s.balanced  # the objects are all written: only fields go
    lost_flags, lost_attrs = set(), set()
    for box, a in source.items():
        b = back[box]
        for flag in FLAGS:
            # A crowd box written as difficult (VOC) is still ignored by evaluation: kept.
            if getattr(a, flag) and not (getattr(b, flag) or (flag == "iscrowd" and b.difficult)):
                lost_flags.add(flag)
        if a.score is not None and b.score != a.score:
            lost_flags.add("score")
        lost_attrs |= {k for k, v in a.attributes if (k, v) not in b.attributes}
    found = {f.field: f for f in s.findings if f.code == "field-not-kept"}
    assert set(found) == lost_flags | ({"attributes"} if lost_attrs else set()), fmt
    for flag in lost_flags:
        assert found[flag].message.startswith("1 "), found[flag].message
        assert found[flag].severity.value == ("warning" if flag == "iscrowd" else "info")
    if lost_attrs:
        message = found["attributes"].message
        assert message.startswith(f"{len(lost_attrs)} attribute value(s) on 1 object(s)"), message
        kept = {k for a in source.values() for k, _ in a.attributes} - lost_attrs
        assert all(f"{k} 1" in message for k in lost_attrs) and not any(f"{k} 1" in message for k in kept), message
    # The summary books them: notes and warnings by code, and the difficult line never says kept for a lost flag.
    assert s.notes.get("field-not-kept", 0) + s.warnings.get("field-not-kept", 0) == len(found)
    assert s.difficult["kept"] == (0 if "difficult" in lost_flags else 1)
    assert s.difficult["not_kept"] == (1 if "difficult" in lost_flags else 0)


@pytest.fixture(scope="module")
def sample_flags() -> dict[str, int]:
    ds = formats.get("voc").read(SAMPLE)
    return {f: sum(getattr(a, f) for im in ds.images for a in im.annotations) for f in ("difficult", "truncated")}


def test_sample_data_to_labelstudio_counts_the_lost_flags_not_kept(sample_flags, tmp_path):
    assert sample_flags["difficult"] > 0 and sample_flags["truncated"] > 0
    r = CliRunner().invoke(cli, ["convert", "--to", "labelstudio", str(SAMPLE), str(tmp_path / "ls"), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    lost = {f["field"]: f["message"] for f in s["findings"] if f["code"] == "field-not-kept"}
    # VOC's default pose "Unspecified" is no information lost; sample_data's train/val lists are
    assert set(lost) == {"difficult", "truncated", "splits"}
    for flag, n in sample_flags.items():
        assert lost[flag].startswith(f"{n} {flag} flag(s): labelstudio has no place for them")
    splits = ", ".join(f"{k} {v:,}" for k, v in sorted(s["splits"].items()))
    assert lost["splits"].startswith(f"the images' splits ({splits}): labelstudio has no place for them")
    assert s["difficult"]["read"] == s["difficult"]["not_kept"] == sample_flags["difficult"]
    assert s["difficult"]["kept"] == 0
    # ... and it is true: back to VOC, no flag is left.
    r = CliRunner().invoke(cli, ["convert", "--to", "voc", str(tmp_path / "ls"), str(tmp_path / "voc"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["difficult"]["read"] == 0


def test_voc_to_voc_and_coco_lose_nothing(sample_flags, tmp_path):
    for fmt in ("voc", "coco"):
        s = datatools.convert("voc", SAMPLE, fmt, tmp_path / fmt, images_mode="none", difficult="keep")
        assert not [f for f in s.findings if f.code == "field-not-kept"], fmt
        assert s.difficult["kept"] == sample_flags["difficult"] and s.difficult["not_kept"] == 0


def _voc(root: Path, ids: list[str], sets: dict[str, list[str]] | None) -> Path:
    items = {i: voc_xml(f"{i}.jpg", (60, 40), [{"name": "cat", "box": (2, 2, 30, 30)}]) for i in ids}
    return make_voc_root(root, items, images={f"{i}.jpg": (60, 40) for i in ids}, sets=sets)


def test_yolo_warns_about_images_data_yaml_does_not_name(tmp_path):
    split = _voc(tmp_path / "split", ["s1", "s2", "s3"], {"train": ["s1", "s2"], "val": ["s3"]})
    loose = _voc(tmp_path / "loose", ["u1", "u2"], None)  # no ImageSets: split-less
    r = CliRunner().invoke(cli, ["merge", str(split), str(loose), str(tmp_path / "m"), "--to", "yolo", "--json"])
    assert r.exit_code == 0, r.output
    warned = [f for f in json.loads(r.output)["findings"] if f["code"] == "split-not-in-yaml"]
    assert len(warned) == 1 and warned[0]["severity"] == "warning", warned
    assert warned[0]["message"].startswith("2 image(s) are written to images/all, which data.yaml does not name")
    assert (tmp_path / "m" / "images" / "all").is_dir()
    # What the warning is about: reading OUT back (as ultralytics trains) gets the split images only.
    assert sorted(im.image_id for im in formats.get("yolo").read(tmp_path / "m").images) == ["s1", "s2", "s3"]


@pytest.mark.parametrize("sets", [None, {"train": ["a"], "val": ["b"]}])
def test_yolo_does_not_warn_when_data_yaml_names_every_image(tmp_path, sets):
    src = _voc(tmp_path / "src", ["a", "b"], sets)
    s = datatools.convert("voc", src, "yolo", tmp_path / "y")
    assert "split-not-in-yaml" not in s.warnings
    assert len(formats.get("yolo").read(tmp_path / "y").images) == 2


@pytest.mark.parametrize("train, val", [("train2017", "val2017"), ("train", "validation"), ("train", "valid")])
def test_data_yaml_validates_on_the_validation_split_whatever_its_name(tmp_path, train, val):
    """COCO 2017 (instances_train2017/val2017.json), Open Images (validation) and Roboflow (valid) name their
    validation split otherwise: data.yaml's val must still be that split, never the training images."""
    root = tmp_path / "coco"
    for split, n in ((train, 2), (val, 1)):
        names = [f"{split}_{k}.jpg" for k in range(n)]
        for name in names:
            make_jpeg(root / "images" / split / name, 60, 40)
        doc = {"images": [{"id": k + 1, "file_name": name, "width": 60, "height": 40} for k, name in enumerate(names)],
               "annotations": [{"id": k + 1, "image_id": k + 1, "category_id": 1, "bbox": [2, 2, 20, 20], "area": 400,
                                "iscrowd": 0} for k in range(n)], "categories": [{"id": 1, "name": "cat"}]}
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    s = datatools.convert("coco", root, "yolo", tmp_path / "y", images_mode="copy")
    assert "split-not-in-yaml" not in s.warnings and s.errors == {}, s.findings
    text = (tmp_path / "y" / "data.yaml").read_text()
    assert f'train: "images/{train}"' in text and f'val: "images/{val}"' in text and "also written" not in text
    back = formats.get("yolo").read(tmp_path / "y")  # as ultralytics reads it: by the data.yaml keys
    assert {im.image_id.rsplit("/", 1)[-1]: im.splits for im in back.images} == \
        {f"{train}_0": ("train",), f"{train}_1": ("train",), f"{val}_0": ("val",)}


@pytest.mark.parametrize("fmt", sorted(formats.FORMATS))
def test_a_class_list_the_output_cannot_hold_is_a_note(tmp_path, fmt):
    """--classes in an order other than sorted, with a class no object uses: YOLO (data.yaml), COCO (categories) and
    CVAT (labels) read it back as written; the others read back the names their objects use, sorted, so the
    conversion says so (it did not: the order and the unused class were lost without a word)."""
    wanted = ("circle", "hexagon", "square", "triangle", "star")
    r = CliRunner().invoke(cli, ["convert", str(SAMPLE), str(tmp_path / "o"), "--to", fmt, "--classes",
                                 ",".join(wanted), "--images-mode", "none", "--json"])
    assert r.exit_code == 0, r.output
    found = json.loads(r.output)["findings"]
    assert [f["code"] for f in found if f["field"] == "classes"].count("class-not-in-source") == 1  # 'hexagon'
    notes = [f["message"] for f in found if f["field"] == "classes" and f["code"] != "class-not-in-source"]
    back = formats.get(fmt).read(str(tmp_path / "o"), images=str(SAMPLE / "JPEGImages")).classes
    if "classes" in formats.get(fmt).KEEPS:
        assert back == wanted and not notes
    else:
        assert back == ("circle", "square", "star", "triangle") and len(notes) == 1
        assert "1 class(es) without objects" in notes[0] and "pass --classes" in notes[0]


def test_the_summary_says_when_the_splits_are_not_kept(tmp_path):
    # "splits: train 160, val 40" was printed for LabelMe output, which has no splits (read back: one)
    from click.testing import CliRunner

    from datatools.cli import cli

    for fmt, lost in (("labelme", True), ("yolo", False)):
        r = CliRunner().invoke(cli, ["convert", str(SAMPLE), str(tmp_path / fmt), "--to", fmt, "--images-mode", "none"])
        line = next(ln for ln in r.output.splitlines() if "train 160, val 40" in ln)
        assert ("not kept by the output format" in line) is lost, line


@pytest.mark.parametrize("fmt", sorted(formats.FORMATS))
def test_the_coco_files_own_fields_are_said_when_not_kept(tmp_path, fmt):
    """A COCO file's info, licenses, categories' supercategory and its category ids (3, 7) were lost on the way to
    any other format without a word; our own defaults (no info given, supercategory none) are no loss."""
    make_jpeg(tmp_path / "images" / "a.jpg", 40, 30)
    doc = {"info": {"description": "pets"}, "licenses": [{"id": 1, "name": "CC"}],
           "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": c, "bbox": [1, 1, 9, 9], "area": 81, "iscrowd": 0}
                           for c in (3, 7)],
           "categories": [{"id": 3, "name": "cat", "supercategory": "animal"}, {"id": 7, "name": "dog"}]}
    (tmp_path / "ann.json").write_text(json.dumps(doc))

    def coco_notes(src: Path, out: Path, images: Path = tmp_path / "images") -> list[str]:
        r = CliRunner().invoke(cli, ["convert", str(src), str(out), "--to", fmt, "--images", str(images), "--json"])
        assert r.exit_code == 0, r.output
        return [f["message"] for f in json.loads(r.output)["findings"] if f["field"] == "coco"]

    found = coco_notes(tmp_path / "ann.json", tmp_path / "o")
    if fmt == "coco":
        assert found == []
        assert coco_notes(tmp_path / "o", tmp_path / "o2" / "again") == []  # still all there
    else:
        assert found == [f"the COCO file's info, licenses, categories' supercategory, category ids: {fmt} has no "
                         "place for them (written back to COCO from COCO only)"]
    plain = tmp_path / "plain"
    plain.mkdir()
    datatools.convert("voc", SAMPLE, "coco", plain / "c", images_mode="none")
    assert coco_notes(plain / "c", tmp_path / "p", SAMPLE / "JPEGImages") == []  # our COCO writer's defaults
