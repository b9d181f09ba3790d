"""Issue 16, YOLO and COCO side: what a new user hit on public datasets.

--classes selects and orders by name (3), missing COCO images are reported (6), a YOLO ground-truth row has 5
numbers or a polygon (7), a placeholder val split is one split (8), data.yaml has no absolute ``path`` (9),
``check --classes`` works on YOLO (17) and YOLO findings name the line (18). Each test builds a small case of the
shape the issue describes.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import datatools
from datatools.core.errors import UsageError
from datatools import formats
from datatools.cli import cli
from tests.conftest import make_jpeg, make_voc_root, tree_digest, voc_xml

# One VOC dataset, four classes; the sorted names (boat, cat, dog, person) are the ids of the YOLO we write from it.
OBJECTS = {
    "a": [("boat", (2, 2, 30, 20)), ("person", (10, 12, 40, 44))],
    "b": [("dog", (5, 6, 25, 26)), ("cat", (30, 10, 60, 40)), ("person", (1, 1, 20, 30))],
    "c": [("boat", (12, 8, 50, 30))],
}


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def base_voc(tmp_path: Path, *, sets: dict | None = None) -> Path:
    items = {k: voc_xml(f"{k}.jpg", (64, 48), [{"name": n, "box": b} for n, b in objs]) for k, objs in OBJECTS.items()}
    return make_voc_root(tmp_path / "voc", items, images={f"{k}.jpg": (64, 48) for k in OBJECTS}, sets=sets)


def names_by_box(ds) -> dict[tuple[str, tuple[int, ...]], str]:
    """{(image id, rounded box): class name} of a dataset."""
    return {(im.image_id.rsplit("/", 1)[-1], tuple(round(v) for v in a.box)): a.label
            for im in ds.images for a in im.annotations}


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """The same dataset as VOC, YOLO with data.yaml names, YOLO with only classes.txt, and COCO with categories."""
    voc = base_voc(tmp_path, sets={"train": ["a", "b", "c"]})
    datatools.convert("voc", voc, "yolo", tmp_path / "yolo")
    shutil.copytree(tmp_path / "yolo", tmp_path / "yolo_txt")
    (tmp_path / "yolo_txt" / "data.yaml").unlink()
    (tmp_path / "yolo_txt" / "classes.txt").write_text("boat\ncat\ndog\nperson\n")
    datatools.convert("voc", voc, "coco", tmp_path / "coco", images_mode="copy")
    return {"voc": voc, "yolo": tmp_path / "yolo", "yolo_txt": tmp_path / "yolo_txt",
            "coco": tmp_path / "coco" / "annotations" / "instances_train.json"}


# ------------------------------------------------------------------------------------------------ 3: --classes

@pytest.mark.parametrize("kind", ["voc", "yolo", "yolo_txt", "coco"])
def test_classes_select_and_order_by_name_for_every_named_source(kind, sources, tmp_path):
    """``convert --to coco SRC out.json --classes person,cat,dog``: every kept box keeps its own name, the order is
    the list's, and boats are dropped and counted (on a YOLO source they used to be renamed)."""
    out = tmp_path / f"{kind}.json"
    r = run("convert", sources[kind], out, "--to", "coco", "--classes", "person,cat,dog", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["objects"]["dropped"] == {"unknown-class": 2} and summary["objects"]["balanced"]
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["categories"]] == ["person", "cat", "dog"]
    got = formats.get("coco").read(out)
    want = {k: v for k, v in names_by_box(formats.get("voc").read(sources["voc"])).items() if v != "boat"}
    assert names_by_box(got) == want


def test_yolo_without_names_takes_classes_as_the_names_of_its_ids(sources, tmp_path):
    (sources["yolo_txt"] / "classes.txt").unlink()
    r = run("convert", sources["yolo_txt"], tmp_path / "o.json", "--to", "coco", "--classes", "boat,cat,dog,person")
    assert r.exit_code == 0, r.output
    assert names_by_box(formats.get("coco").read(tmp_path / "o.json")) == names_by_box(
        formats.get("voc").read(sources["voc"]))


def test_classes_the_source_lacks_are_reported(sources, tmp_path):
    ds = formats.get("yolo").read(sources["yolo"], classes=["person", "bicycle"])
    (f,) = [f for f in ds.findings if f.code == "class-not-in-source"]
    assert "'bicycle'" in f.message and ds.classes == ("person", "bicycle")


@pytest.mark.parametrize("kind", ["voc", "yolo", "coco"])
def test_a_misspelt_class_is_reported_once_in_convert_and_check(kind, sources, tmp_path):
    """--classes person,dgo on a VOC or COCO source dropped every dog as unknown-class without a word about the typo
    (only YOLO's reader said so)."""
    r = run("convert", sources[kind], tmp_path / "o.json", "--to", "coco", "--classes", "person,dgo", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["warnings"]["class-not-in-source"] == 1
    r = run("check", sources[kind], "--classes", "person,dgo", "--json")
    (f,) = [f for f in json.loads(r.output)["findings"] if f["code"] == "class-not-in-source"]
    assert "'dgo'" in f["message"] and "'person'" not in f["message"]
    r = run("check", sources[kind], "--classes", "person,boat,cat,dog", "--json")
    assert r.exit_code == 0 and "class-not-in-source" not in r.output, r.output
    # stats and anchors select as `filter` does: a name the dataset lacks is refused (a YOLO dataset's typo was only
    # a warning, and every table empty)
    for cmd in (["stats", "--labels-only"], ["anchors", "-k", "2"]):
        r = run(cmd[0], sources[kind], *cmd[1:], "--classes", "person,dgo", "--json")
        assert r.exit_code == 2 and "'dgo' not in the dataset" in r.output, r.output
        r = run(cmd[0], sources[kind], *cmd[1:], "--classes", "dog,person", "--json")
        assert r.exit_code == 0, r.output
    got = json.loads(run("stats", sources[kind], "--labels-only", "--classes", "dog,person", "--json").output)
    assert list(got["labels"]["class_objects"]) == ["dog", "person"]


def test_evaluate_yolo_ground_truth_with_reordered_classes(sources, tmp_path):
    """``evaluate -f yolo --gt DIR --classes <sorted names>`` used to rename persons: perfect predictions scored 0."""
    gt = formats.get("yolo").read(sources["yolo"])
    preds = [{"file_name": im.file_name, "category_name": a.label, "score": 0.9,
              "bbox": [a.box[0], a.box[1], a.box[2] - a.box[0], a.box[3] - a.box[1]]}
             for im in gt.images for a in im.annotations]
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    r = run("evaluate", "--gt", sources["yolo"], "--pred", tmp_path / "pred.json", "-f", "yolo",
            "--classes", "person,dog,cat,boat", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["classes"] == ["person", "dog", "cat", "boat"]
    assert rep["coco"]["stats"]["AP50"] == pytest.approx(1.0)
    assert [(row["class"], row["positives"], row["ap"]) for row in rep["voc"]["per_class"]] == [
        ("person", 2, 1.0), ("dog", 1, 1.0), ("cat", 1, 1.0), ("boat", 2, 1.0)]


def test_yolo_prediction_ids_mean_the_source_ids_under_classes(sources, tmp_path):
    """A YOLO predictions folder numbers classes as the model did (the data.yaml order), whatever order --classes
    asks for; predictions of classes left out are counted, not scored as another class."""
    preds = tmp_path / "preds"
    preds.mkdir()
    for txt in (sources["yolo"] / "labels").rglob("*.txt"):  # the ground truth itself, with a confidence
        rows = [ln + " 0.9" for ln in txt.read_text().splitlines() if ln.strip()]
        (preds / txt.name).write_text("\n".join(rows) + "\n")
    r = run("evaluate", "--gt", sources["yolo"], "--pred", preds, "-f", "yolo", "--classes", "person,dog,cat",
            "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["classes"] == ["person", "dog", "cat"]
    assert [(row["class"], row["positives"], row["ap"]) for row in rep["voc"]["per_class"]] == [
        ("person", 2, 1.0), ("dog", 1, 1.0), ("cat", 1, 1.0)]
    (f,) = [f for f in rep["findings"] if f["code"] == "pred-class-not-selected"]
    assert "'boat' (2x)" in f["message"] and f["objects_dropped"] == 2


def test_stats_and_check_count_yolo_classes_by_name(sources):
    r = run("stats", sources["yolo"], "--labels-only", "--classes", "person,cat,dog", "--json")
    assert r.exit_code == 0, r.output
    labels = json.loads(r.output)["labels"]
    assert labels["class_objects"] == {"person": 2, "cat": 1, "dog": 1}  # the boats left out, as a conversion does
    assert labels["objects"] == 4 and json.loads(r.output)["objects_not_selected"] == 2
    r = run("check", sources["yolo"], "--classes", "person,cat,dog", "--json")
    rep = json.loads(r.output)
    assert r.exit_code == 1 and rep["counts"].get("unknown-class") == 2, rep["counts"]
    lost = sorted((Path(f["path"]).name, f["field"]) for f in rep["findings"] if f["code"] == "unknown-class")
    assert lost == [("a.txt", "line 1"), ("c.txt", "line 1")]  # boats: named by their line (item 18)


# ------------------------------------------------------------------------------------------------ 6: COCO images

def coco_without_images(tmp_path: Path) -> Path:
    d = tmp_path / "c"
    d.mkdir()
    data = {"images": [{"id": 1, "file_name": "x.jpg", "width": 64, "height": 48},
                       {"id": 2, "file_name": "y.jpg", "width": 64, "height": 48}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10], "area": 100,
                             "iscrowd": 0}],
            "categories": [{"id": 1, "name": "cat"}]}
    (d / "coco.json").write_text(json.dumps(data))
    return d / "coco.json"


def test_check_reports_a_coco_file_whose_images_do_not_exist(tmp_path):
    """Annotations without their images: one missing-image-dir warning (exit 0, as for VOC: the annotations are
    still read and checked); the --images folder given that does not exist is an error (exit 1)."""
    src = coco_without_images(tmp_path)
    r = run("check", src, "--json")
    rep = json.loads(r.output)
    assert r.exit_code == 0 and rep["counts"].get("missing-image-dir") == 1, rep
    (f,) = [f for f in rep["findings"] if f["code"] == "missing-image-dir"]
    assert "2 image(s)" in f["message"] and "--images" in f["message"]
    r = run("check", src, "--images", tmp_path / "nowhere", "--json")
    assert r.exit_code == 1 and "does not exist" in r.output


@pytest.mark.parametrize("fmt", ["voc", "coco", "labelme", "cvat"])
def test_annotations_without_images_get_one_verdict_in_every_format(tmp_path, fmt):
    """The same annotations-only dataset (sizes written, no image folder) is one missing-image-dir warning and exit
    0 from check in every format (COCO and LabelMe made it an error); an --images folder that does not exist is an
    error in every format."""
    from tests.conftest import make_voc_root, voc_xml

    voc = make_voc_root(tmp_path / "voc", {"a": voc_xml("a.jpg", (64, 48), [{"name": "cat", "box": (2, 3, 30, 40)}]),
                                            "b": voc_xml("b.jpg", (64, 48), [{"name": "dog", "box": (5, 5, 20, 20)}])})
    src = voc
    if fmt != "voc":
        src = tmp_path / fmt
        r = run("convert", voc, src, "--to", fmt, "--images-mode", "none")
        assert r.exit_code == 0, r.output
    r = run("check", src, "--json")
    rep = json.loads(r.output)
    (f,) = [f for f in rep["findings"] if f["code"] == "missing-image-dir"]
    assert (r.exit_code, f["severity"]) == (0, "warning"), r.output
    r = run("check", src, "--images", tmp_path / "nowhere", "--json")
    assert r.exit_code == 1 and "does not exist" in r.output, r.output


def test_check_reports_each_missing_coco_image_when_the_folder_is_there(tmp_path):
    src = coco_without_images(tmp_path)
    make_jpeg(src.parent / "x.jpg", 64, 48)
    rep = json.loads(run("check", src, "--json").output)
    assert rep["counts"].get("missing-image") == 1 and "missing-image-dir" not in rep["counts"], rep["counts"]


def test_coco_to_yolo_without_images_writes_no_data_yaml(tmp_path):
    src = coco_without_images(tmp_path)
    out = tmp_path / "y"
    r = run("convert", src, out, "--to", "yolo")
    assert r.exit_code == 1, r.output
    assert "image" in r.output and "--images" in r.output and "Traceback" not in r.output
    assert not (out / "data.yaml").exists()
    r = run("convert", src, out, "--to", "yolo", "--images-mode", "none", "--json")  # labels only: allowed, said
    assert r.exit_code == 0, r.output
    assert any(f["code"] == "missing-split" for f in json.loads(r.output)["findings"])


# ------------------------------------------------------------------------------------------------ 7: YOLO rows

def yolo_dir(tmp_path: Path, rows: str, *, names=("a", "b")) -> Path:
    root = tmp_path / "yd"
    make_jpeg(root / "images/train/x.jpg", 100, 50)
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/x.txt").write_text(rows)
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "val": "images/train",
                                                    "names": list(names)}))
    return root


@pytest.mark.parametrize("row, ok", [
    ("0 0.5 0.5 0.2 0.2", True),
    ("0 0.5 0.5 0.2 0.2 0.9", False),  # a prediction row: ultralytics says "labels require 5 columns"
    ("0 0.1 0.1 0.5 0.1 0.3 0.4", True),  # a triangle
    ("0 0.1 0.1 0.5 0.1 0.3 0.4 0.2", False),  # an odd number of coordinates
    ("0 0.5 0.5 0.2", False),
])
def test_a_ground_truth_row_has_5_numbers_or_a_polygon(row, ok, tmp_path):
    root = yolo_dir(tmp_path, row + "\n")
    ds = formats.get("yolo").read(root)
    bad = [f for f in ds.findings if f.code == "bad-row"]
    assert ds.num_objects == int(ok) and len(bad) == int(not ok)
    if bad:
        assert bad[0].field == "line 1" and bad[0].objects == 1 and ds.objects_read == 1
    pytest.importorskip("ultralytics")
    from ultralytics.data.utils import verify_image_label

    img = root / "images/train/x.jpg"
    nc = verify_image_label((str(img), str(root / "labels/train/x.txt"), "", False, 2, 0, 0, False))[8]
    assert nc == int(not ok)  # ultralytics agrees: corrupt exactly when we drop the row


def test_prediction_rows_keep_their_confidence_column():
    from datatools.formats.yolo import parse_label_text

    anns, fnd, _ = parse_label_text("1 0.5 0.5 0.2 0.2 0.75\n", path="p.txt", image_id="x", names=["a", "b"],
                                    width=100, height=50)
    assert [a.score for a in anns] == [0.75] and not fnd


def test_mixed_box_and_polygon_rows_are_a_warning(tmp_path):
    ds = formats.get("yolo").read(yolo_dir(tmp_path, "0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.5 0.1 0.3 0.4\n"))
    assert ds.num_objects == 2 and [f.code for f in ds.findings if f.code == "mixed-rows"] == ["mixed-rows"]


@pytest.mark.parametrize("row", ["nan 0.5 0.5 0.2 0.2", "inf 0.5 0.5 0.2 0.2", "-inf 0.5 0.5 0.2 0.2",
                                 "0 nan 0.5 0.2 0.2", "0 0.5 0.5 inf 0.2", "0 abc 0.5 0.2 0.2"])
def test_nan_and_inf_in_a_row_are_bad_numbers_as_a_word_is(row, tmp_path):
    """float() reads nan and inf: a class id of either crashed int() (a traceback from check), and a NaN coordinate
    made a NaN box with no finding. Each is a bad-number on its line, the row dropped and counted."""
    root = yolo_dir(tmp_path, "0 0.5 0.5 0.2 0.2\n" + row + "\n")
    ds = formats.get("yolo").read(root)
    bad = [(f.code, f.field, f.objects) for f in ds.findings if f.severity.value == "error"]
    assert bad == [("bad-number", "line 2", 1)] and ds.num_objects == 1 and ds.objects_read == 2
    r = run("check", root, "--json")
    assert r.exit_code == 1, r.output
    assert [f["code"] for f in json.loads(r.output)["findings"] if f["severity"] == "error"] == ["bad-number"]


# ------------------------------------------------------------------------------------------------ 8: val = train

def test_voc_without_split_lists_round_trips_through_yolo_as_one_split(tmp_path):
    voc = base_voc(tmp_path)  # no ImageSets
    y = tmp_path / "y"
    datatools.convert("voc", voc, "yolo", y)
    data = yaml.safe_load((y / "data.yaml").read_text())
    assert data["train"] == data["val"] == "images/all"
    ds = formats.get("yolo").read(y)
    assert ds.splits == ("all",) and len(ds.images) == 3
    assert [f.code for f in ds.findings if f.code == "repeated-split"] == ["repeated-split"]
    # YOLO -> VOC: one list, not train.txt and val.txt with every image; YOLO -> COCO: one file
    datatools.convert("yolo", y, "voc", tmp_path / "v2")
    assert sorted(p.name for p in (tmp_path / "v2/ImageSets/Main").iterdir()) == ["all.txt"]
    datatools.convert("yolo", y, "coco", tmp_path / "c2", images_mode="none")
    assert sorted(p.name for p in (tmp_path / "c2/annotations").iterdir()) == ["instances_all.json"]
    # YOLO -> YOLO gives the same files
    datatools.convert("yolo", y, "yolo", tmp_path / "y2")
    assert tree_digest(tmp_path / "y2") == tree_digest(y)


def test_a_data_yaml_whose_val_is_its_train_is_one_split(tmp_path):
    root = yolo_dir(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    ds = formats.get("yolo").read(root)
    assert ds.splits == ("train",) and len(ds.images) == 1
    out = tmp_path / "v"
    datatools.convert("yolo", root, "voc", out)
    assert sorted(p.name for p in (out / "ImageSets/Main").iterdir()) == ["train.txt"]



@pytest.mark.parametrize("text, message", [
    ("just words", "data.yaml: expected a mapping with train/val/names keys"),
    ("names: 5", "data.yaml: names: expected a list or a mapping of id -> name"),
    ("names: {a: x}", "data.yaml: names: keys must be integers"),
    ("names: {0: a, 2: b}", "data.yaml: names: ids must run 0..1"),
    ("nc: x", "data.yaml: nc: expected an integer, found 'x'"),
    ("names: [a", "data.yaml: not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
])
def test_a_bad_data_yaml_is_bad_data_in_one_line(text, message, tmp_path):
    root = yolo_dir(tmp_path, "0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(text + "\n")
    r = run("convert", root, tmp_path / "out", "--to", "coco")
    assert r.exit_code == 1 and r.output.strip().endswith(message), r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ 9: no path:

def test_data_yaml_has_no_path_and_a_copy_reads_itself(sources, tmp_path):
    text = (sources["yolo"] / "data.yaml").read_text()
    assert "path" not in yaml.safe_load(text)
    copy = tmp_path / "moved"
    shutil.copytree(sources["yolo"], copy, symlinks=True)
    shutil.rmtree(sources["yolo"])
    ds = formats.get("yolo").read(copy)
    assert len(ds.images) == 3 and all(str(copy) in im.image_path for im in ds.images)
    pytest.importorskip("ultralytics")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(copy / "data.yaml"))
    assert Path(data["path"]).resolve() == copy.resolve() and Path(data["train"]).is_dir()


def test_an_absolute_path_written_by_others_still_works(sources, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "d.yaml").write_text(f"path: {sources['yolo']}\ntrain: images/train\nval: images/train\n"
                                      "names: [boat, cat, dog, person]\n")
    ds = formats.get("yolo").read(elsewhere / "d.yaml")
    assert len(ds.images) == 3 and not [f for f in ds.findings if f.code == "yaml-path-elsewhere"]


def test_a_copy_whose_data_yaml_names_the_original_is_reported(sources, tmp_path):
    """An older datatools data.yaml holds ``path: /abs/original``: a copy read the original silently."""
    y = sources["yolo"]
    (y / "data.yaml").write_text(f"path: {y}\n" + (y / "data.yaml").read_text())
    copy = tmp_path / "copy"
    shutil.copytree(y, copy)
    ds = formats.get("yolo").read(copy)
    (f,) = [f for f in ds.findings if f.code == "yaml-path-elsewhere"]
    assert str(y) in f.message and all(im.image_path.startswith(str(y)) for im in ds.images)  # as ultralytics
    shutil.rmtree(y)  # the original is gone: the copy reads its own files, and says so
    ds = formats.get("yolo").read(copy)
    assert len(ds.images) == 3 and all(im.image_path.startswith(str(copy)) for im in ds.images)
    assert [f.code for f in ds.findings if f.code == "yaml-path-elsewhere"] == ["yaml-path-elsewhere"]


# ------------------------------------------------------------------------------------------------ 17, 18

def test_check_yolo_accepts_a_classes_file(sources, tmp_path):
    src = sources["yolo_txt"]
    (src / "classes.txt").unlink()
    r = run("check", src)
    assert r.exit_code == 2 and "class names" in r.output
    (tmp_path / "names.txt").write_text("boat\ncat\ndog\nperson\n")
    r = run("check", src, "--classes", tmp_path / "names.txt", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["objects"] == 6 and rep["errors"] == 0


def test_yolo_findings_name_the_line(tmp_path):
    rows = "0 0.5 0.5 0.2 0.2\n\n1 0.95 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n"
    rep = json.loads(run("check", yolo_dir(tmp_path, rows), "--json").output)
    where = {(f["code"], Path(f["path"]).name, f["field"]) for f in rep["findings"]}
    assert ("box-out-of-bounds", "x.txt", "line 3") in where
    assert ("duplicate-box", "x.txt", "line 4") in where
    assert not [f for f in rep["findings"] if "object[" in f["field"]]


def test_split_of_a_named_yolo_with_classes_keeps_every_object_by_name(sources, tmp_path):
    """``split`` writes the dataset as it is: --classes orders the listed classes first, and boats stay boats
    (they once took another class's id; then a KeyError)."""
    r = run("split", sources["yolo"], tmp_path / "s", "--val", "0.5", "--classes", "person,cat,dog")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s/classes.txt").read_text() == "person\ncat\ndog\nboat\n"
    back = formats.get("yolo").read(tmp_path / "s")
    assert names_by_box(back) == names_by_box(formats.get("voc").read(sources["voc"]))


def test_a_roboflow_style_data_yaml_beside_its_split_folders(tmp_path):
    """Roboflow exports put data.yaml beside train/ and valid/ and write ``train: ../train/images``; ultralytics
    then drops the ``../`` when that path does not exist, and so do we."""
    root = tmp_path / "rf"
    for split, n in (("train", 2), ("valid", 1)):
        for i in range(n):
            make_jpeg(root / split / "images" / f"{split}{i}.jpg", 40, 30)
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            (root / split / "labels" / f"{split}{i}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['plate']\n")
    ds = formats.get("yolo").read(root / "data.yaml")
    assert {s: sum(s in im.splits for im in ds.images) for s in ds.splits} == {"train": 2, "val": 1}
    assert ds.num_objects == 3 and not [f for f in ds.findings if f.code == "missing-split"]



def test_yolo_detection_takes_classes_for_a_set_without_names(sources):
    """``YOLODetection(root, classes=...)`` names the ids of a YOLO set that has no names, as ``--classes`` does."""
    from datatools.datasets import YOLODetection

    bare = sources["yolo_txt"]
    (bare / "classes.txt").unlink()
    names = ["boat", "cat", "dog", "person"]
    ds = YOLODetection(bare, classes=names)
    assert ds.classes == tuple(names)
    labels = sorted(names[int(k) - 1] for i in range(len(ds)) for k in ds[i][1]["labels"])  # labels 1..K
    assert labels == sorted(n for objs in OBJECTS.values() for n, _ in objs)


def test_a_repeated_coco_file_name_is_one_finding(tmp_path):
    """Two image entries naming one file: one ``duplicate-file-name``, not a ``filename-mismatch`` for the renamed
    copy as well (a COCO id is made from its file name; the name alone pairs the image)."""
    (tmp_path / "images").mkdir()
    for n in ("a", "b"):
        make_jpeg(tmp_path / "images" / f"{n}.jpg", 64, 48)
    images = [{"id": i, "file_name": f, "width": 64, "height": 48} for i, f in ((1, "a.jpg"), (2, "a.jpg"), (3, "b.jpg"))]
    (tmp_path / "c.json").write_text(json.dumps({
        "images": images, "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10], "area": 100, "iscrowd": 0}]}))
    r = run("check", tmp_path / "c.json", "--images", tmp_path / "images", "--json")
    rep = json.loads(r.output)
    assert rep["counts"] == {"duplicate-file-name": 1}, rep["findings"]
    assert rep["findings"][0]["field"] == "images[1]/file_name"


def make_roboflow_coco(root: Path) -> Path:
    """A COCO export as Roboflow writes it: train/, valid/ and test/, each with _annotations.coco.json beside its
    images; category 0 is the dataset's name, the supercategory of the real classes."""
    for split, n in (("train", 3), ("valid", 2), ("test", 1)):
        names = [f"{split}_{k}.rf.0a1b2c.jpg" for k in range(n)]
        for name in names:
            make_jpeg(root / split / name, 64, 48)
        doc = {"info": {"description": "Exported from roboflow.com"}, "licenses": [{"id": 1, "name": "CC BY 4.0"}],
               "categories": [{"id": 0, "name": "pets", "supercategory": "none"},
                              {"id": 1, "name": "cat", "supercategory": "pets"},
                              {"id": 2, "name": "dog", "supercategory": "pets"}],
               "images": [{"id": k, "license": 1, "file_name": name, "height": 48, "width": 64,
                           "date_captured": "2024-01-01T00:00:00+00:00"} for k, name in enumerate(names)],
               "annotations": [{"id": k, "image_id": k, "category_id": 1 + k % 2, "bbox": [4, 5, 20, 12], "area": 240,
                                "segmentation": [], "iscrowd": 0} for k in range(n)]}
        (root / split / "_annotations.coco.json").write_text(json.dumps(doc))
    return root


def test_roboflow_coco_export_is_read_from_its_root(tmp_path):
    root = make_roboflow_coco(tmp_path / "rf")
    assert formats.detect(str(root)) == "coco"
    ds = formats.get("coco").read(root)
    assert sorted(ds.splits) == ["test", "train", "valid"] and len(ds.images) == 6
    assert all(im.image_path and Path(im.image_path).parent.name == im.splits[0] for im in ds.images)
    r = CliRunner().invoke(cli, ["convert", str(root), str(tmp_path / "y"), "--to", "yolo", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["images"]["written"] == 6 and s["errors"] == {} and "split-not-in-yaml" not in s["warnings"]
    data = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/valid", "images/test")
    # Category 0 names the dataset: not a class, so ids match Roboflow's own YOLO export (cat 0, dog 1).
    assert ds.classes == ("cat", "dog") and data["names"] == {0: "cat", 1: "dog"}
    assert [f["field"] for f in s["findings"] if f["code"] == "category-is-group"] == ["categories"] * 3


def test_roboflow_coco_ground_truth_is_found_by_split_and_role(tmp_path):
    """evaluate and predict read one split's ground truth from a Roboflow export (<split>/_annotations.coco.json)
    as the reader does: --split valid, or val (the split that plays the role, as train's default does)."""
    from datatools.metrics.inputs import load_ground_truth

    root = make_roboflow_coco(tmp_path / "rf")
    for split, n in (("valid", 2), ("val", 2), ("train", 3), ("test", 1)):
        gt = load_ground_truth(root, split=split)
        assert len(gt.images) == n and gt.source == str(root / ("valid" if split == "val" else split) /
                                                         "_annotations.coco.json")
    with pytest.raises(UsageError, match=r"no COCO JSON for split 'extra' \(splits found: test, train, valid\)"):
        load_ground_truth(root, split="extra")
    with pytest.raises(UsageError, match="3 COCO JSON files .*pass --split"):
        load_ground_truth(root)
    preds = [{"image_id": 0, "category_id": 1, "bbox": [4, 5, 20, 12], "score": 0.9},
             {"image_id": 1, "category_id": 2, "bbox": [4, 5, 20, 12], "score": 0.8}]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(root), "--split", "val", "--pred", str(tmp_path / "p.json"),
                                 "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["coco"]["stats"]["AP50"] == pytest.approx(1.0)


@pytest.mark.parametrize("change", ["a box of it", "another top", "other supercategory"])
def test_a_category_without_boxes_stays_a_class_unless_it_is_exactly_the_roboflow_group(tmp_path, change):
    root = make_roboflow_coco(tmp_path / "rf")
    path = root / "train" / "_annotations.coco.json"
    doc = json.loads(path.read_text())
    if change == "a box of it":
        doc["annotations"][0]["category_id"] = 0
    elif change == "another top":
        doc["categories"][2]["supercategory"] = "none"
    else:
        doc["categories"][2]["supercategory"] = "animal"
    path.write_text(json.dumps(doc))
    ds = formats.get("coco").read(path)
    assert "pets" in ds.classes and not [f for f in ds.findings if f.code == "category-is-group"]


def make_labelimg_yolo(root: Path) -> Path:
    """LabelImg's YOLO save: each a.txt beside a.jpg in one folder, with the classes.txt it writes there."""
    for k, rows in enumerate(["0 0.5 0.5 0.25 0.25\n", "1 0.25 0.25 0.1 0.2\n0 0.7 0.7 0.2 0.2\n", ""]):
        make_jpeg(root / f"img{k}.jpg", 80, 60)
        (root / f"img{k}.txt").write_text(rows)
    (root / "classes.txt").write_text("cat\ndog\n")
    return root


def test_labelimg_yolo_folder_is_read_with_labels_beside_images(tmp_path):
    root = make_labelimg_yolo(tmp_path / "li")
    (root / "stray.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # a label without an image is still reported
    assert formats.detect(str(root)) == "yolo"
    ds = formats.get("yolo").read(root)
    assert ds.classes == ("cat", "dog") and [im.image_id for im in ds.images] == ["img0", "img1", "img2"]
    assert [len(im.annotations) for im in ds.images] == [1, 2, 0]
    assert [f.code for f in ds.findings if f.code == "label-without-image"] == ["label-without-image"]
    s = datatools.convert("yolo", root, "coco", tmp_path / "c", images_mode="none")
    assert s.balanced and s.objects_written == 3


def test_classes_txt_alone_is_not_a_labelimg_folder(tmp_path):
    make_jpeg(tmp_path / "src" / "a.jpg", 8, 8)
    (tmp_path / "src" / "classes.txt").write_text("cat\n")
    (tmp_path / "src" / "notes.txt").write_text("no label of any image\n")
    with pytest.raises(Exception, match="cannot tell its format|no dataset found"):
        formats.detect(str(tmp_path / "src"))


def make_darknet_yolo(root: Path) -> Path:
    """CVAT's "YOLO 1.1" export with its images (Darknet): obj.data, obj.names, train.txt/valid.txt and
    obj_<subset>_data/ holding each image with its label file."""
    for split, frames in (("train", (0, 1)), ("valid", (2,))):  # the frames of one task: unique names
        for k in frames:
            make_jpeg(root / f"obj_{split}_data" / f"frame_{k:06}.jpg", 80, 60)
            (root / f"obj_{split}_data" / f"frame_{k:06}.txt").write_text(f"{k % 2} 0.5 0.5 0.25 0.25\n")
        (root / f"{split}.txt").write_text("".join(f"data/obj_{split}_data/frame_{k:06}.jpg\n" for k in frames))
    (root / "obj.names").write_text("cat\ndog\n")
    (root / "obj.data").write_text("classes = 2\nnames = data/obj.names\ntrain = data/train.txt\n"
                                   "valid = data/valid.txt\nbackup = backup/\n")
    return root


def test_cvat_darknet_yolo_export_is_read_from_its_root(tmp_path):
    root = make_darknet_yolo(tmp_path / "cvat")
    assert formats.detect(str(root)) == "yolo"
    ds = formats.get("yolo").read(root)
    assert ds.classes == ("cat", "dog") and sorted(ds.splits) == ["train", "valid"]
    assert sorted((im.image_id, im.splits, [a.label for a in im.annotations]) for im in ds.images) == [
        ("frame_000000", ("train",), ["cat"]), ("frame_000001", ("train",), ["dog"]), ("frame_000002", ("valid",), ["cat"])]
    s = datatools.convert("yolo", root, "yolo", tmp_path / "y", images_mode="copy")
    assert s.balanced and s.objects_written == 3 and "split-not-in-yaml" not in s.warnings
    data = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    assert (data["train"], data["val"]) == ("images/train", "images/valid")


@pytest.mark.parametrize("layout", ["cvat", "folders"])
def test_labels_without_images_say_that_the_images_are_needed(tmp_path, layout):
    """CVAT exports YOLO 1.1 without its images unless asked, and images/ may be left empty beside labels/: nothing
    can be converted (a YOLO box is a fraction of the image size), and the error says which folder holds labels and
    no images, not only that no images were found."""
    from click.testing import CliRunner

    from datatools.cli import cli

    root = make_darknet_yolo(tmp_path / "src")
    if layout == "folders":
        root = tmp_path / "flat"
        for split in ("train", "valid"):
            (root / "images" / split).mkdir(parents=True)
            shutil.copytree(tmp_path / "src" / f"obj_{split}_data", root / "labels" / split,
                            ignore=shutil.ignore_patterns("*.jpg"))
        (root / "classes.txt").write_text("cat\ndog\n")
    for jpg in root.rglob("*.jpg"):
        jpg.unlink()
    labels = root / ("obj_train_data" if layout == "cvat" else "labels/train")
    r = CliRunner().invoke(cli, ["convert", str(root), str(tmp_path / "out"), "--to", "coco"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"{labels}: 2 label file(s) and no image for any of them" in " ".join(r.output.split())
    assert ("Save images" in r.output) == (layout == "cvat")
    assert not (tmp_path / "out").exists()


def test_yolo_images_of_one_name_in_two_splits_are_both_read(tmp_path):
    """images/train/0001.jpg and images/val/0001.jpg are two images: both read, the later under its split (as CVAT's
    subsets and Open Images' splits are, formats.common.id_in_split); a.jpg beside a.png in one split is a duplicate."""
    for split, box in (("train", "0 0.5 0.5 0.2 0.2\n"), ("val", "0 0.25 0.25 0.1 0.1\n")):
        make_jpeg(tmp_path / "src" / "images" / split / "0001.jpg", 100, 100)
        (tmp_path / "src" / "labels" / split).mkdir(parents=True)
        (tmp_path / "src" / "labels" / split / "0001.txt").write_text(box)
    (tmp_path / "src" / "classes.txt").write_text("cat\n")
    ds = formats.get("yolo").read(tmp_path / "src")
    assert sorted((im.image_id, im.splits, round(im.annotations[0].box[0])) for im in ds.images) == [
        ("0001", ("train",), 40), ("val/0001", ("val",), 20)]
    assert not [f for f in ds.findings if f.code == "duplicate-file-name"]  # names are unique within a split only
    s = datatools.convert("yolo", tmp_path / "src", "yolo", tmp_path / "out", images_mode="copy")
    assert s.balanced and s.images_written == 2 and s.objects_written == 2
    make_jpeg(tmp_path / "src" / "images" / "val" / "0001.png", 100, 100)  # one split, one label file for both
    dup = [f for f in formats.get("yolo").read(tmp_path / "src").findings if f.code == "duplicate-file-name"]
    assert len(dup) == 1 and dup[0].path.endswith("0001.png") and "only the first is read" in dup[0].message


def pose_dataset(root: Path, kpt_shape: str, rows: list[str]) -> Path:
    make_jpeg(root / "images" / "train" / "t.jpg", 100, 100)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "t.txt").write_text("\n".join(rows) + "\n")
    (root / "data.yaml").write_text(f"train: images/train\nval: images/train\nkpt_shape: {kpt_shape}\n"
                                    "names:\n  0: tiger\n")
    return root


@pytest.mark.parametrize("dims", [2, 3])
def test_pose_rows_are_read_as_their_box(tmp_path, dims):
    """ultralytics' tiger-pose (kpt_shape [12, 2]) has 29 values a row, an odd count: it was read as a polygon whose
    box spanned every keypoint and the (w, h) pair, twice the size and elsewhere, without a word."""
    kp = " ".join(["0.55 0.6" + " 2" * (dims == 3)] * 12)
    root = pose_dataset(tmp_path / "pose", f"[12, {dims}]", [f"0 0.6 0.6 0.2 0.2 {kp}", "0 0.5 0.5 0.2 0.2 0.1 0.1"])
    ds = formats.get("yolo").read(root)
    (im,) = ds.images
    assert [a.box for a in im.annotations] == [pytest.approx((50, 50, 70, 70))]
    codes = sorted(f.code for f in ds.findings if f.code != "repeated-split")  # val: the train placeholder
    # the second row holds 2 values, not 12 x dims: ultralytics calls the file corrupt
    assert codes == ["bad-row", "file-rejected-by-ultralytics", "keypoints-not-kept"], codes
    r = run("convert", str(root), str(tmp_path / "out"), "--to", "yolo")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "labels" / "train" / "t.txt").read_text() == "0 0.6 0.6 0.2 0.2\n"


@pytest.mark.parametrize("shape", ["[12]", "[12, 4]", "[0, 2]", "tiger"])
def test_a_bad_kpt_shape_is_one_message(tmp_path, shape):
    root = pose_dataset(tmp_path / "pose", shape, ["0 0.6 0.6 0.2 0.2"])
    r = run("check", str(root))
    assert r.exit_code == 1 and "kpt_shape: expected" in r.output and "Traceback" not in r.output, r.output


def test_a_box_past_any_float_in_pixels_is_a_bad_number(tmp_path):
    """0 1e308 0.5 0.1 0.1 is finite as written and infinite once multiplied by the width: visualize stopped with an
    OverflowError and stats lost every box-width figure."""
    root = pose_dataset(tmp_path / "y", "null", ["0 1e308 0.5 0.1 0.1", "0 0.5 0.5 0.2 0.2"])
    ds = formats.get("yolo").read(root)
    assert [a.box for a in ds.images[0].annotations] == [pytest.approx((40, 40, 60, 60))]
    assert [(f.code, f.field, f.objects) for f in ds.findings if f.code != "repeated-split"] == [
        ("bad-number", "line 1", 1), ("file-rejected-by-ultralytics", "line 1", 0)]
    r = run("visualize", str(root), str(tmp_path / "viz"))
    assert r.exit_code == 0, r.output


OVERFLOWING = {  # one box finite as written and infinite in pixels, one good box (10,10)-(30,30), per format
    "coco": ("a.json", json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1e308, 1, 1e308, 3]},
                        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]}],
        "categories": [{"id": 1, "name": "c"}]}), "bad-number"),
    "labelstudio": ("tasks.json", json.dumps([{"id": 1, "data": {"image": "a.jpg"}, "annotations": [{"result": [
        {"type": "rectanglelabels", "original_width": 100, "original_height": 100,
         "value": {"x": x, "y": 10, "width": w, "height": 20, "rectanglelabels": ["c"]}}
        for x, w in ((-1e308, 10), (10, 20))]}]}]), "bad-number"),
    "cvat": ("annotations.xml", '<annotations><image id="0" name="a.jpg" width="100" height="100">'
             '<ellipse label="c" cx="1e308" cy="5" rx="1e308" ry="2"/>'
             '<box label="c" xtl="10" ytl="10" xbr="30" ybr="30"/></image></annotations>', "bad-number"),
}


OVERFLOWING["labelme"] = ("a.json", json.dumps({"imagePath": "a.jpg", "imageHeight": 100, "imageWidth": 100, "shapes": [
    {"label": "c", "shape_type": "circle", "points": [[10, 10], [-1.7e308, 1.7e308]]},
    {"label": "c", "shape_type": "rectangle", "points": [[10, 10], [30, 30]]}]}), "bad-number")
OVERFLOWING["openimages"] = ("validation-annotations-bbox.csv", "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,"
                             "YMax\na,x,c,1,0.1,1e308,0.1,0.5\na,x,c,1,0.1,0.3,0.1,0.3\n", "bad-number")


@pytest.mark.parametrize("fmt", sorted(OVERFLOWING))
def test_every_reader_drops_a_box_past_any_float_in_pixels(tmp_path, fmt):
    name, text, code = OVERFLOWING[fmt]
    (tmp_path / name).write_text(text)
    make_jpeg(tmp_path / "validation" / "a.jpg", 100, 100)  # Open Images: the size from the picture
    ds = formats.get(fmt).read(tmp_path / name, **({"images": tmp_path / "validation"} if fmt == "openimages" else {}))
    assert [a.box for im in ds.images for a in im.annotations] == [pytest.approx((10, 10, 30, 30))]
    assert [(f.code, f.objects) for f in ds.findings if f.severity.value != "info"
            and f.code not in ("missing-image", "missing-image-dir")] == [(code, 1)]


def test_labels_beside_their_images_are_read_under_a_folder_named_images(tmp_path):
    """LabelImg's folder called images/, and CVAT's YOLO 1.1 export unzipped under one (or of files uploaded in an
    images/ folder): ultralytics' rule sent every label to a labels/ folder that does not exist: 0 objects, exit 0."""
    labelimg = tmp_path / "proj" / "images"
    cvat = tmp_path / "images" / "task_1_export"
    uploaded = tmp_path / "export2"
    for folder, n in ((labelimg, 3), (cvat / "obj_train_data", 2), (uploaded / "obj_train_data" / "images", 2)):
        for i in range(n):
            make_jpeg(folder / f"a{i}.jpg", 40, 30)
            (folder / f"a{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (labelimg / "classes.txt").write_text("dog\ncat\n")
    for root in (cvat, uploaded):
        (root / "obj.names").write_text("car\n")
    for root, n in ((labelimg, 3), (cvat, 2), (uploaded, 2)):
        ds = formats.get("yolo").read(root)
        assert sum(len(im.annotations) for im in ds.images) == n, root
        assert not [f for f in ds.findings if f.code in ("no-label-file", "label-without-image")], root


@pytest.mark.parametrize("train", ["[images/cam1, images/cam2]", "images"])
def test_images_of_one_name_in_two_folders_of_a_split_are_two_images(tmp_path, train):
    """ultralytics trains on both images/cam1/0.jpg and images/cam2/0.jpg; only the first was read (the id dropped
    the folder under images/ as if it were a split folder)."""
    for cam in ("cam1", "cam2"):
        for i in range(2):
            make_jpeg(tmp_path / "images" / cam / f"{i}.jpg", 40, 30)
            (tmp_path / "labels" / cam).mkdir(parents=True, exist_ok=True)
            (tmp_path / "labels" / cam / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    make_jpeg(tmp_path / "images" / "cam1" / "0.png", 40, 30)  # beside 0.jpg: one label file for both, read once
    (tmp_path / "data.yaml").write_text(f"train: {train}\nnames: [x]\n")
    ds = formats.get("yolo").read(tmp_path)
    assert sorted(im.image_id for im in ds.images) == ["0", "1", "cam2/0", "cam2/1"]
    assert sum(len(im.annotations) for im in ds.images) == 4
    assert [f.code for f in ds.findings if f.code == "duplicate-file-name"] == ["duplicate-file-name"]


def test_a_name_given_to_two_ids_is_one_class_and_said(tmp_path):
    """names: [car, car, bus] gave COCO two categories with id 2 and none with 1, and YOLO rows of class 0 became 1."""
    root = tmp_path / "y"
    make_jpeg(root / "images" / "train" / "a.jpg", 100, 100)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n2 0.7 0.7 0.1 0.1\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [car, car, bus]\n")
    ds = formats.get("yolo").read(root)
    assert ds.classes == ("car", "bus") and [f.code for f in ds.findings] == ["duplicate-class-name"]
    r = run("convert", str(root), str(tmp_path / "c.json"), "--to", "coco")
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "c.json").read_text())
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(1, "car"), (2, "bus")]
    assert [a["category_id"] for a in doc["annotations"]] == [1, 1, 2]


def test_hidden_files_and_folders_are_no_images(tmp_path):
    """Jupyter's .ipynb_checkpoints/ copy of a labelled picture was read as one more image without boxes, and macOS'
    ._a1.jpg (AppleDouble, no picture) as an unreadable one; ultralytics skips both."""
    for i in range(2):
        make_jpeg(tmp_path / "images" / "train" / f"a{i}.jpg", 40, 30)
        (tmp_path / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (tmp_path / "labels" / "train" / f"a{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    make_jpeg(tmp_path / "images" / "train" / ".ipynb_checkpoints" / "a0-checkpoint.jpg", 40, 30)
    (tmp_path / "images" / "train" / "._a1.jpg").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [x]\n")
    ds = formats.get("yolo").read(tmp_path)
    assert sorted(im.image_id for im in ds.images) == ["a0", "a1"] and not ds.findings


def test_what_makes_ultralytics_drop_a_whole_label_file_is_said():
    """One row with cx 1.02 (or a class id past the names) and ultralytics drops every row of the file; check said
    0 errors and a clipped box."""
    from datatools.formats.yolo import parse_label_text

    def codes(text):
        return [(f.code, f.field) for f in parse_label_text(text, path="a.txt", image_id="a", names=["x"], width=100,
                                                             height=80, scores=False)[1]]

    assert ("file-rejected-by-ultralytics", "line 2") in codes("0 0.5 0.5 0.2 0.2\n0 1.02 0.5 0.1 0.1\n")
    assert ("file-rejected-by-ultralytics", "line 1") in codes("3 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.1 0.1\n")
    assert codes("0 0.5 0.5 0.2 0.2\n0 1.005 0.5 0.1 0.1\n") == []  # within ultralytics' 1%
    assert codes("0 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.9 0.1 0.9 0.9\n") == [("polygon-to-box", "segments"),
                                                                       ("mixed-rows", "segments")]


def test_a_plain_box_row_in_a_pose_dataset_is_a_box(tmp_path):
    """ultralytics' detect task keeps a 5-value row of a kpt_shape dataset (and the box of a pose row)."""
    root = pose_dataset(tmp_path / "pose", "[2, 2]", ["0 0.6 0.6 0.2 0.2 0.1 0.1 0.2 0.2", "0 0.5 0.5 0.2 0.2"])
    ds = formats.get("yolo").read(root)
    assert len(ds.images[0].annotations) == 2
    assert "bad-row" not in {f.code for f in ds.findings}


def test_list_file_lines_and_nc_are_read_as_ultralytics_reads_them(tmp_path):
    """A list file's ./ lines are its own folder's (they were the root's: every image missing); nc that disagrees
    with names (ultralytics refuses the file) is said."""
    for i in range(3):
        make_jpeg(tmp_path / "images" / f"a{i}.jpg", 40, 30)
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"a{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("./../images/a0.jpg\n./../images/a1.jpg\n")
    (tmp_path / "splits" / "val.txt").write_text("images/a2.jpg\n")
    (tmp_path / "data.yaml").write_text("train: splits/train.txt\nval: splits/val.txt\nnc: 3\nnames: [a]\n")
    ds = formats.get("yolo").read(tmp_path)
    assert sorted((im.image_id, im.splits) for im in ds.images) == [("a0", ("train",)), ("a1", ("train",)),
                                                                     ("a2", ("val",))]
    assert [f.code for f in ds.findings] == ["nc-not-names"]


def test_a_class_name_with_a_line_break_keeps_every_id_in_classes_txt(tmp_path):
    """classes.txt is one name a line: 'new\\nline' took two, so read back by it every later class had the name of
    the one before (plain's boxes became 'line')."""
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (40, 30), [{"name": "new\nline", "box": (1, 1, 9, 9)}]),
                                          "b": voc_xml("b.jpg", (40, 30), [{"name": "plain", "box": (2, 2, 9, 9)}])})
    r = run("convert", str(root), str(tmp_path / "y"), "--to", "yolo", "--images-mode", "none", "--json")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "y" / "classes.txt").read_text() == "new line\nplain\n"
    assert "name-not-kept" in r.output
    assert yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())["names"] == {0: "new\nline", 1: "plain"}


def test_an_nc_written_as_a_float_agrees_with_its_names(tmp_path):
    make_jpeg(tmp_path / "images" / "train" / "a.jpg", 40, 30)
    (tmp_path / "data.yaml").write_text("train: images/train\nnc: 3.0\nnames: [a, b, c]\n")
    assert "nc-not-names" not in {f.code for f in formats.get("yolo").read(tmp_path).findings}


def test_a_gif_written_to_yolo_is_said(tmp_path):
    """ultralytics lists GIF among videos: a YOLO written with one had an image ultralytics trains without, unsaid."""
    from PIL import Image

    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.gif", (40, 30), [{"name": "x", "box": (1, 1, 9, 9)}]),
                                          "b": voc_xml("b.jpg", (40, 30), [{"name": "x", "box": (1, 1, 9, 9)}])})
    (root / "JPEGImages").mkdir(exist_ok=True)
    Image.new("P", (40, 30)).save(root / "JPEGImages" / "a.gif")
    make_jpeg(root / "JPEGImages" / "b.jpg", 40, 30)
    r = run("convert", str(root), str(tmp_path / "y"), "--to", "yolo", "--json")
    assert r.exit_code == 0, r.output
    (f,) = [f for f in json.loads(r.output)["findings"] if f["code"] == "image-not-read-by-ultralytics"]
    assert f["message"].startswith("1 image(s) are GIF")
