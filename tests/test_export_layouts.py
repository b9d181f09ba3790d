"""The layouts exporters really write (Roboflow's VOC and YOLO Darknet, Windows paths, CVAT projects) and the folders
that hold two formats at once: each read whole, or refused by name, never guessed."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

import datatools
from datatools.cli import cli
from datatools.core.errors import UsageError
from datatools.formats import cvat, detect
from datatools.ops.convert import read_source
from tests.conftest import make_jpeg, voc_xml


def check_json(src: Path, *args: str) -> tuple[int, dict]:
    res = CliRunner().invoke(cli, ["check", str(src), "--json", *args])
    return res.exit_code, json.loads(res.stdout.strip().splitlines()[-1] if res.exit_code == 2 else res.stdout)


def labelimg_folder(folder: Path, *, voc: bool, yolo_labels: bool, n: int = 2, width: int = 40) -> Path:
    """LabelImg's save folder: images with a VOC .xml, a YOLO .txt (and classes.txt), or both beside each."""
    folder.mkdir(parents=True)
    for i in range(n):
        make_jpeg(folder / f"p{i}.jpg", width, 30)
        if voc:
            (folder / f"p{i}.xml").write_text(voc_xml(f"p{i}.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 10, 10)}]))
        if yolo_labels:
            (folder / f"p{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.2 0.2 0.1 0.1\n")
    if yolo_labels:
        (folder / "classes.txt").write_text("cat\n")
    return folder


@pytest.mark.parametrize("voc,labelme", [(True, False), (False, True)])
def test_a_folder_of_two_formats_is_refused_naming_both(tmp_path, voc, labelme):
    # LabelImg saved as VOC, then as YOLO: the first format checked used to win and the other's boxes were lost
    src = labelimg_folder(tmp_path / "mixed", voc=voc, yolo_labels=not labelme)
    if labelme:
        (src / "p0.json").write_text(json.dumps({"shapes": [], "imagePath": "p0.jpg", "imageWidth": 40,
                                                 "imageHeight": 30}))
        (src / "p1.xml").write_text(voc_xml("p1.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 10, 10)}]))
    with pytest.raises(UsageError, match="2 formats") as e:
        detect(src)
    assert ("labelme" if labelme else "yolo") in str(e.value) and "voc" in str(e.value)
    code, doc = check_json(src)
    assert code == 2 and "pass --format" in doc["error"]
    code, doc = check_json(src, "--format", "voc")  # the way out it names
    assert code == 0 and doc["images"] == (2 if voc else 1)


def test_a_coco_file_beside_labelme_files_is_refused_whichever_sorts_first(tmp_path):
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}], "annotations": [],
            "categories": [{"id": 1, "name": "cat"}]}
    labelme = {"shapes": [], "imagePath": "b.jpg", "imageWidth": 40, "imageHeight": 30}
    for first in ("coco", "labelme"):
        src = tmp_path / first
        src.mkdir()
        (src / ("a.json" if first == "coco" else "z.json")).write_text(json.dumps(coco))
        (src / ("b.json" if first == "coco" else "a.json")).write_text(json.dumps(labelme))
        with pytest.raises(UsageError, match="JSON of two formats"):
            detect(src)


def test_json_that_is_no_coco_beside_a_coco_file_is_left_out_and_said(tmp_path):
    src = tmp_path / "coco"
    src.mkdir()
    make_jpeg(src / "a.jpg", 40, 30)
    (src / "instances.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "cat"}]}))
    (src / "package.json").write_text(json.dumps({"name": "x", "version": "1.0"}))
    code, doc = check_json(src)
    assert code == 0 and doc["images"] == 1 and doc["objects"] == 1
    assert doc["counts"] == {"json-not-coco": 1}


def test_roboflow_voc_export_reads_each_split_from_its_folder(tmp_path):
    src = tmp_path / "rf"
    for split, n in (("train", 3), ("valid", 2), ("test", 1)):
        (src / split).mkdir(parents=True)
        for i in range(n):
            make_jpeg(src / split / f"{split}{i}_jpg.rf.x.jpg", 40, 30)
            (src / split / f"{split}{i}_jpg.rf.x.xml").write_text(
                voc_xml(f"{split}{i}_jpg.rf.x.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 10, 10)}]))
    (src / "README.dataset.txt").write_text("exported from roboflow\n")
    assert detect(src) == "voc"
    ds = read_source(src)
    by_split = {s: sum(1 for r in ds.images if r.splits == (s,)) for s in ("train", "valid", "test")}
    assert by_split == {"train": 3, "valid": 2, "test": 1}
    # ids without the split's folder, as the YOLO and COCO readers of the same export give them
    assert [r.image_id for r in ds.images][:2] == ["test0_jpg.rf.x", "train0_jpg.rf.x"]
    out = tmp_path / "y"
    res = CliRunner().invoke(cli, ["convert", str(src), str(out), "--to", "yolo"])
    assert res.exit_code == 0, res.output
    data = (out / "data.yaml").read_text()
    assert 'val: "images/valid"' in data and 'train: "images/train"' in data  # validation pictures kept out of training


def test_roboflow_yolo_darknet_export_is_read_with_its_class_file(tmp_path):
    src = tmp_path / "darknet"
    for width, split in enumerate(("train", "valid"), start=40):  # other pictures (the same bytes: one picture)
        labelimg_folder(src / split, voc=False, yolo_labels=True, width=width)
        (src / split / "classes.txt").rename(src / split / "_darknet.labels")
        (src / split / "_darknet.labels").write_text("raccoon\n")
    assert detect(src) == "yolo"
    ds = read_source(src)
    assert ds.classes == ("raccoon",) and len(ds.images) == 4 and sum(len(r.annotations) for r in ds.images) == 8
    assert {r.splits for r in ds.images} == {("train",), ("valid",)}


def test_yolo_data_yaml_written_on_windows(tmp_path):
    src = tmp_path / "pets"
    for width, split in enumerate(("train", "valid"), start=40):
        (src / split / "images").mkdir(parents=True)
        (src / split / "labels").mkdir()
        make_jpeg(src / split / "images" / "a.jpg", width, 30)
        (src / split / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (src / "data.yaml").write_text("path: C:\\Users\\bob\\datasets\\pets\ntrain: train\\images\nval: valid\\images\n"
                                   "names: ['cat']\n")
    ds = read_source(src)
    assert len(ds.images) == 2 and sum(len(r.annotations) for r in ds.images) == 2
    assert [f.code for f in ds.findings] == ["yaml-path-elsewhere"]
    (src / "data.yaml").write_text("train: ..\\train\\images\nval: ..\\valid\\images\nnames: ['cat']\n")  # Roboflow's
    assert len(read_source(src).images) == 2
    (src / "train.txt").write_text("train\\images\\a.jpg\n.\\valid\\images\\a.jpg\n")  # a list file of Windows paths
    (src / "data.yaml").write_text("train: train.txt\nval: train.txt\nnames: ['cat']\n")
    ds = read_source(src)
    assert len(ds.images) == 2 and not [f for f in ds.findings if f.code == "missing-image"]


def test_label_studio_coco_export_made_on_windows_finds_its_images(tmp_path):
    src = tmp_path / "ls"
    (src / "images").mkdir(parents=True)
    make_jpeg(src / "images" / "abcd-photo0.JPG", 40, 30)
    (src / "result.json").write_text(json.dumps({
        "images": [{"id": 0, "file_name": "images\\abcd-photo0.jpg", "width": 40, "height": 30}],
        "annotations": [{"id": 0, "image_id": 0, "category_id": 0, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 0, "name": "cat"}]}))
    ds = read_source(src)
    assert ds.images[0].image_path and ds.images[0].image_path.endswith("abcd-photo0.JPG")
    assert "missing-image-dir" not in {f.code for f in ds.findings}


def test_cvat_with_subsets_is_a_project_export(tmp_path):
    # datumaro, which CVAT imports with, reads a <task> file as one subset named after the file: every image with
    # subset="train" was skipped (0 of 4,886 boxes of BCCD). A project meta lists a task per subset.
    src = labelimg_folder(tmp_path / "src", voc=False, yolo_labels=True, n=3)
    ds = read_source(src)
    plain = cvat.to_xml([replace(ds.images[0], splits=())], ds.classes, names=["p0.jpg"])
    assert "<project>" not in plain and "<task>" in plain  # without subsets: a task export, as before
    ds = replace(ds, images=tuple(replace(r, splits=(s,)) for r, s in zip(ds.images, ("train", "val", "train"))))
    text = cvat.to_xml(ds.images, ds.classes, names=[f"p{i}.jpg" for i in range(3)])
    assert "<project>" in text and "<task>" in text and "<subset>train</subset>" in text
    assert text.count('task_id="0"') == 2 and text.count('task_id="1"') == 1
    out = tmp_path / "cv"
    out.mkdir()
    (out / "annotations.xml").write_text(text)
    back = cvat.read(out / "annotations.xml")
    assert back.classes == ("cat",) and [r.splits for r in back.images] == [("train",), ("val",), ("train",)]


def test_voc_split_list_comment_lines_are_no_images(tmp_path):
    src = tmp_path / "voc"
    (src / "Annotations").mkdir(parents=True)
    (src / "ImageSets" / "Main").mkdir(parents=True)
    (src / "Annotations" / "a.xml").write_text(voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 10, 10)}]))
    (src / "ImageSets" / "Main" / "train.txt").write_text("\n# a comment\na\n")
    ds = read_source(src)
    assert len(ds.images) == 1 and not [f for f in ds.findings if f.code == "missing-annotation"]


def test_an_archive_is_named_and_createml_is_refused(tmp_path):
    z = tmp_path / "export.zip"
    z.write_bytes(b"PK\x03\x04")
    with pytest.raises(UsageError, match="an archive; unpack it"):
        detect(z)
    cm = tmp_path / "_annotations.createml.json"
    cm.write_text(json.dumps([{"image": "a.jpg", "annotations": [
        {"label": "cat", "coordinates": {"x": 5, "y": 5, "width": 4, "height": 4}}]}]))
    with pytest.raises(UsageError, match="CreateML"):
        detect(cm)


def test_convert_takes_format_as_every_command_does(tmp_path):
    src = labelimg_folder(tmp_path / "mixed", voc=True, yolo_labels=True)
    res = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "o"), "--to", "coco", "--format", "yolo"])
    assert res.exit_code == 0, res.output
    coco = json.loads((tmp_path / "o" / "annotations" / "instances_all.json").read_text())
    assert len(coco["annotations"]) == 4  # the YOLO files' two boxes an image, not the XMLs' one


def test_a_yolo_dataset_read_from_a_relative_path_keeps_its_labels(tmp_path, monkeypatch):
    # `cd dataset && datatools check .`: images/train/a.jpg has no leading /images/, and its label was looked for
    # beside it: 0 objects, each image an info-level "no label file"
    for width, split in enumerate(("train", "val"), start=40):
        (tmp_path / "ds" / "images" / split).mkdir(parents=True)
        (tmp_path / "ds" / "labels" / split).mkdir(parents=True)
        make_jpeg(tmp_path / "ds" / "images" / split / "a.jpg", width, 30)
        (tmp_path / "ds" / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "ds" / "data.yaml").write_text("train: images/train\nval: images/val\nnames: ['cat']\n")
    monkeypatch.chdir(tmp_path / "ds")
    for src in (".", "data.yaml"):
        ds = read_source(src)
        assert sum(len(r.annotations) for r in ds.images) == 2 and not ds.findings


def test_check_says_one_verdict_for_an_unreadable_image_without_size(tmp_path):
    # the reader's warnings (no <size>; a header it could not read) stood beside check's errors of the same codes
    src = tmp_path / "v"
    src.mkdir()
    (src / "a.xml").write_text(voc_xml("a.jpg", None, [{"name": "cat", "box": (1, 1, 5, 5)}]))
    (src / "a.jpg").write_bytes(make_jpeg(tmp_path / "x.jpg", 40, 30).read_bytes()[:300])
    code, doc = check_json(src)
    assert code == 1
    assert sorted((f["code"], f["severity"]) for f in doc["findings"]) == [("image-unreadable", "error"),
                                                                          ("missing-size", "error")]


def test_the_folder_above_a_dataset_names_the_dataset(tmp_path):
    # an export unzipped into a folder of its own: the message listed every layout it looked for, not the one there
    labelimg_folder(tmp_path / "up" / "export", voc=True, yolo_labels=False)
    code, doc = check_json(tmp_path / "up")
    assert code == 1 and doc["error"] == (f"no dataset in {tmp_path / 'up'} itself, but in a folder of it: "
                                          f"{tmp_path / 'up' / 'export'} (voc); pass that folder")


def test_a_coco_file_name_with_a_windows_drive_is_a_finding_not_a_refused_run(tmp_path):
    # C:\data\a.jpg made the id "C:/data/a", and the writer refused the whole conversion (exit 2) for one entry
    (tmp_path / "images").mkdir()
    make_jpeg(tmp_path / "images" / "a.jpg", 40, 30)
    (tmp_path / "win.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "C:\\data\\a.jpg", "width": 40, "height": 30}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "cat"}]}))
    for given in ([], ["--images", str(tmp_path / "images")]):  # the image folder is found by the base name too
        out = tmp_path / f"o{len(given)}"
        res = CliRunner().invoke(cli, ["convert", str(tmp_path / "win.json"), str(out), "--to", "yolo", "--json",
                                       *given])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["warnings"] == {"unsafe-filename": 1}
        # named as the image it found, never after the other machine's folders (C:/data/a)
        assert (out / "labels" / "all" / "a.txt").read_text().startswith("0 ")
        assert sorted(p.name for p in (out / "images" / "all").iterdir()) == ["a.jpg"]


def test_a_roboflow_export_unzipped_into_an_older_ones_folder_says_which_it_reads(tmp_path):
    # data.yaml's ../train/images is the older export's folder (as ultralytics reads it), with no word of it
    def export(root: Path, n: int) -> None:
        for split in ("train", "valid"):
            (root / split / "images").mkdir(parents=True)
            (root / split / "labels").mkdir(parents=True)
            for i in range(n):
                make_jpeg(root / split / "images" / f"{split}{i}.jpg", 40, 30)
                (root / split / "labels" / f"{split}{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
        (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnames: ['cat']\n")

    export(tmp_path / "nest", 1)
    export(tmp_path / "nest" / "v2", 3)
    ds = read_source(tmp_path / "nest" / "v2")
    assert len(ds.images) == 2  # ultralytics' reading: the older export's
    assert [f.code for f in ds.findings] == ["yaml-path-elsewhere"] * 2
    assert "write train/images to read that one" in " ".join(f.message for f in ds.findings)


def test_a_coco_file_whose_keys_come_late_is_still_read(tmp_path):
    # a 70 KB "info" first: no COCO key in the first 64 KiB, and the train file was left out as json-not-coco
    src = tmp_path / "coco"
    (src / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        doc = {"info": {"description": "x" * (70_000 if split == "train" else 10)},
               "images": [{"id": 1, "file_name": f"{split}.jpg", "width": 40, "height": 30}],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
               "categories": [{"id": 1, "name": "cat"}]}
        (src / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    ds = read_source(src)
    assert sorted(r.splits[0] for r in ds.images) == ["train", "val"]
    assert "json-not-coco" not in {f.code for f in ds.findings}


def test_a_voc_valid_list_is_read_by_default(tmp_path):
    # Roboflow's VOC export through remap/filter/sample/merge: ImageSets/Main/valid.txt, skipped by the default lists
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for split, ids in (("train", ["a", "b"]), ("valid", ["c"]), ("test", ["d"])):
        for i in ids:
            (root / "Annotations" / f"{i}.xml").write_text(voc_xml(f"{i}.jpg", (40, 30),
                                                                   [{"name": "cat", "box": (1, 1, 10, 10)}]))
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
    ds = read_source(root)
    assert sorted((r.image_id, r.splits) for r in ds.images) == [("a", ("train",)), ("b", ("train",)),
                                                                 ("c", ("valid",)), ("d", ("test",))]


def test_yolo_data_yaml_names_every_split_of_a_role(tmp_path):
    # a merge of Roboflow (train, valid) and COCO (train2017, val2017) sets: data.yaml named one split per role,
    # and ultralytics trained without train2017's images and validated without valid's
    pytest.importorskip("ultralytics")
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.data.utils import check_det_dataset

    src = labelimg_folder(tmp_path / "src", voc=False, yolo_labels=True, n=4)
    ds = read_source(src)
    ds = replace(ds, images=tuple(replace(r, splits=(s,)) for r, s in
                                  zip(ds.images, ("train", "train2017", "valid", "val2017"))))
    out = tmp_path / "y"
    datatools.save(ds, "yolo", out)
    data = check_det_dataset(str(out / "data.yaml"))
    assert sorted(Path(p).name for p in data["train"]) == ["train", "train2017"]
    assert sorted(Path(p).name for p in data["val"]) == ["val2017", "valid"]
    assert len(read_source(out).images) == 4


def test_split_of_a_per_split_coco_export_with_one_file_name_in_two_splits(tmp_path):
    # train/x0.jpg and valid/x0.jpg, two pictures: valid/x0 took x0.jpg first and split refused the run (exit 1)
    src = tmp_path / "rf"
    for split, n, w in (("train", 3, 40), ("valid", 2, 50)):
        (src / split).mkdir(parents=True)
        for i in range(n):
            make_jpeg(src / split / f"x{i}.jpg", w + i, 30)
        (src / split / "_annotations.coco.json").write_text(json.dumps({
            "images": [{"id": i, "file_name": f"x{i}.jpg", "width": w + i, "height": 30} for i in range(n)],
            "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5]} for i in range(n)],
            "categories": [{"id": 1, "name": "cat"}]}))
    res = CliRunner().invoke(cli, ["split", str(src), str(tmp_path / "o"), "--val", "2", "--json"])
    assert res.exit_code == 0, res.output
    back = read_source(tmp_path / "o")
    assert len(back.images) == 5 and sorted(r.width for r in back.images) == [40, 41, 42, 50, 51]


def test_roboflow_voc_names_in_two_splits_stay_two_images(tmp_path):
    src = tmp_path / "rf"
    for split, w in (("train", 40), ("valid", 50)):
        (src / split).mkdir(parents=True)
        make_jpeg(src / split / "x.jpg", w, 30)
        (src / split / "x.xml").write_text(voc_xml("x.jpg", (w, 30), [{"name": "cat", "box": (1, 1, 10, 10)}]))
    ds = read_source(src)
    assert [(r.image_id, r.splits, r.width, Path(r.image_path).parent.name) for r in ds.images] == [
        ("valid/x", ("valid",), 50, "valid"), ("x", ("train",), 40, "train")]


def test_a_large_json_that_is_no_coco_beside_a_coco_file_is_left_out(tmp_path):
    # over 64 KiB it cannot be told by its head: read, then left out (it stopped the whole read)
    src = tmp_path / "c"
    (src / "annotations").mkdir(parents=True)
    (src / "annotations" / "instances_train.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}], "annotations": [],
        "categories": [{"id": 1, "name": "cat"}]}))
    (src / "annotations" / "metadata.json").write_text(json.dumps({"run": 1, "history": ["x" * 100] * 1000}))
    ds = read_source(src)
    assert len(ds.images) == 1 and [f.code for f in ds.findings if f.code == "json-not-coco"] == ["json-not-coco"]


def test_roboflow_voc_findings_name_the_images_by_their_ids(tmp_path):
    src = tmp_path / "rf"
    (src / "train").mkdir(parents=True)
    make_jpeg(src / "train" / "b.jpg", 40, 30)
    (src / "train" / "b.xml").write_text(voc_xml("b.jpg", (40, 30), [{"name": "cat", "box": (5, 5, 5, 9)}]))
    ds = read_source(src)
    assert [r.image_id for r in ds.images] == ["b"]
    assert {f.image_id for f in ds.findings if f.code == "zero-area"} == {"b"}  # was train/b: visualize --check lost it


def test_voc_lists_by_role(tmp_path):
    from datatools.formats.voc import choose_sets

    # trainval and test only: trainval trains (the test list alone was read, and trained on)
    assert choose_sets({"trainval": [], "test": []}, None) == ["trainval", "test"]
    # test-dev beside test is not a second copy of its images
    assert choose_sets({"train": [], "val": [], "test": [], "test-dev": []}, None) == ["train", "val", "test"]
    # evaluate --split val, train --val-split val: Roboflow's valid list
    assert choose_sets({"train": [], "valid": []}, ["val"]) == ["valid"]


def test_split_of_coco_with_absolute_file_names_places_the_images(tmp_path):
    (tmp_path / "images").mkdir()
    for i in range(4):
        make_jpeg(tmp_path / "images" / f"000{i}.jpg", 40 + i, 30)
    (tmp_path / "instances.json").write_text(json.dumps({
        "images": [{"id": i, "file_name": f"C:\\Users\\al\\data\\000{i}.jpg", "width": 40 + i, "height": 30}
                   for i in range(4)],
        "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5]} for i in range(4)],
        "categories": [{"id": 1, "name": "cat"}]}))
    res = CliRunner().invoke(cli, ["split", str(tmp_path / "instances.json"), str(tmp_path / "o"), "--val", "0.5",
                                   "--images", str(tmp_path / "images")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o" / "images").iterdir()) == [f"000{i}.jpg" for i in range(4)]
    assert len(read_source(tmp_path / "o").images) == 4


def test_an_image_two_folders_answer_to_by_base_name_is_not_guessed(tmp_path):
    # /mnt/data/cityA/0001.jpg and cityB/0001.jpg: both were paired with cityA's picture
    from datatools.formats.common import ImageIndex

    for city in ("cityA", "cityB"):
        (tmp_path / "images" / city).mkdir(parents=True)
        make_jpeg(tmp_path / "images" / city / "0001.jpg", 40, 30)
    path, notes, _ = ImageIndex(tmp_path / "images").find("/mnt/data/cityB/0001.jpg", "0001", id_names_image=False)
    assert path is None and "none is used" in notes[-1].message
