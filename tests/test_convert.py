"""Conversion engine: round trips, validity in the consumers' own loaders, determinism, data safety."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import datatools
from datatools import formats
from datatools.cli import cli
from datatools.core.boxes import PixelConvention
from datatools.core.errors import NoInputError
from tests.conftest import SAMPLE, make_jpeg, make_voc_root, tree_digest, voc_xml

CONVENTIONS = [c.value for c in PixelConvention]


def voc_boxes(path, convention="as-is", **kw):
    """{image_id: [(label, box)]} read with as-is, i.e. the integers written in the XML."""
    ds = formats.get("voc").read(path, convention=convention, **kw)
    return {im.image_id: [(a.label, a.box) for a in im.annotations] for im in ds.images}


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("via", ["yolo", "coco"])
def test_round_trip_gives_back_original_integers(tmp_path, convention, via):
    mid, back = tmp_path / "mid", tmp_path / "back"
    s1 = datatools.convert("voc", SAMPLE, via, mid, convention=convention)
    s2 = datatools.convert(via, mid, "voc", back, convention=convention, images_mode="none")
    assert s1.balanced and s2.balanced
    assert s1.objects_dropped == {} and s2.objects_dropped == {}
    original, returned = voc_boxes(SAMPLE), voc_boxes(back)
    assert returned == original
    assert all(v == int(v) for boxes in returned.values() for _, b in boxes for v in b)


@pytest.mark.parametrize("via", ["yolo", "openimages", "cvat"])
def test_round_trip_of_a_phone_photo_gives_back_original_integers(tmp_path, via):
    """4032x3024: 6 decimals of a normalized coordinate are off by up to 0.004 px there, past the 1e-3 px that was
    taken for float noise: ymin 2001 came back as 2001.001968 (a float that VOC parsers calling int() refuse)."""
    boxes = [(1001, 2001, 3517, 2999), (1, 1, 4031, 3023), (2017, 1511, 2018, 1513)]
    root = make_voc_root(tmp_path / "voc", {"p": voc_xml("p.jpg", (4032, 3024), [
        {"name": "cup", "box": b} for b in boxes])}, images={"p.jpg": (4032, 3024)})
    datatools.convert("voc", root, via, tmp_path / "mid")
    datatools.convert(via, tmp_path / "mid", "voc", tmp_path / "back", images_mode="none")
    assert [b for _, b in voc_boxes(tmp_path / "back")["p"]] == [tuple(float(v) for v in b) for b in boxes]
    text = (tmp_path / "back" / "Annotations" / "p.xml").read_text()
    assert "<ymin>2001</ymin>" in text and "." not in text.split("<object>", 1)[1]


@pytest.mark.parametrize("convention,expected", [
    ("devkit", (0.0, 0.0, 64.0, 48.0)),       # 1-based inclusive 1..64 covers the whole 64-px image
    ("as-is", (1.0, 1.0, 64.0, 48.0)),
    ("ultralytics", (0.0, 0.0, 63.0, 47.0)),
])
def test_pixel_conventions_read_as_documented(small_voc, convention, expected):
    ds = formats.get("voc").read(small_voc, convention=convention)
    a = next(im for im in ds.images if im.image_id == "a")
    assert a.annotations[0].box == expected


def test_yolo_numbers_for_a_full_image_box(small_voc, tmp_path):
    datatools.convert("voc", small_voc, "yolo", tmp_path / "y", convention="devkit")
    row = (tmp_path / "y/labels/train/a.txt").read_text().splitlines()[0]
    assert row == "0 0.5 0.5 1 1"  # devkit: xmin=1..xmax=W spans the image exactly


def test_voc2yolo_layout_and_data_yaml(small_voc, tmp_path):
    import yaml

    out = tmp_path / "y"
    s = datatools.convert("voc", small_voc, "yolo", out)
    assert (out / "labels/train/a.txt").is_file() and (out / "labels/val/c.txt").read_text() == ""
    assert (out / "images/train/a.jpg").is_file() and (out / "images/val/c.jpg").is_file()
    assert (out / "classes.txt").read_text() == "cat\ndog\n"
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "cat", 1: "dog"} and data["nc"] == 2
    assert data["train"] == "images/train" and data["val"] == "images/val"
    assert "path" not in data  # issue 16 item 9: ultralytics then uses the data.yaml's folder
    assert s.images_written == 3 and s.objects_written == 3 and s.splits == {"train": 2, "val": 1}


def test_yolo_output_passes_ultralytics_checks(tmp_path):
    pytest.importorskip("ultralytics")
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.data.utils import check_det_dataset, verify_image_label

    out = tmp_path / "y"
    datatools.convert("voc", SAMPLE, "yolo", out)
    data = check_det_dataset(str(out / "data.yaml"))
    assert data["nc"] == 4
    n_labels = 0
    for split in ("train", "val"):
        for img in sorted((out / "images" / split).iterdir()):
            lb = out / "labels" / split / (img.stem + ".txt")
            im_file, lb_arr, shape, segments, kpts, nm, nf, ne, nc, msg = verify_image_label(
                (str(img), str(lb), "", False, 4, 0, 0, False))
            assert nc == 0, msg  # not corrupt
            assert nm == 0 and (nf == 1 or ne == 1)
            n_labels += len(lb_arr)
    assert n_labels == sum(1 for x in (out / "labels").rglob("*.txt") for ln in x.read_text().splitlines() if ln)


def test_ultralytics_dataset_loads_our_yolo(tmp_path):
    pytest.importorskip("ultralytics")
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    out = tmp_path / "y"
    datatools.convert("voc", SAMPLE, "yolo", out)
    data = check_det_dataset(str(out / "data.yaml"))
    ds = YOLODataset(img_path=str(data["val"]), data=data, imgsz=160, augment=False, cache=False, task="detect")
    n = sum(len(lb["cls"]) for lb in ds.labels)
    ours = formats.get("voc").read(SAMPLE, sets="val")
    assert len(ds.labels) == len(ours.images) and n == ours.num_objects


def test_yolo_paths_with_an_images_folder_keep_their_labels(tmp_path):
    """A COCO file_name ``images/a.jpg`` (Label Studio's and CVAT's exports name them so) was placed at
    images/all/images/a.jpg with its label in labels/all/images/a.txt: ultralytics looks in images/all/labels/ (the
    last /images/ of the path) and found no label, nor did reading OUT back."""
    pytest.importorskip("ultralytics")
    from ultralytics.data.utils import img2label_paths

    src = tmp_path / "src"
    names = ["images/a.jpg", "images_/a.jpg", "x/images/b.jpg"]
    for k, name in enumerate(names):
        make_jpeg(src / name, 100, 80)
    (src / "train.json").write_text(json.dumps({
        "images": [{"id": k + 1, "file_name": n, "width": 100, "height": 80} for k, n in enumerate(names)],
        "annotations": [{"id": k + 1, "image_id": k + 1, "category_id": 1, "bbox": [10, 10 + k, 5, 5], "area": 25,
                         "iscrowd": 0} for k in range(3)],
        "categories": [{"id": 1, "name": "dog"}]}))
    s = datatools.convert("coco", src / "train.json", "yolo", tmp_path / "y")
    assert s.objects_written == 3 and s.notes == {"folder-renamed": 1}  # one finding: "2 image or split path(s)"
    images = sorted(str(p) for p in (tmp_path / "y" / "images").rglob("*.jpg"))
    assert [p.split("/y/images/")[1] for p in images] == ["all/images_/a.jpg", "all/images__/a.jpg",
                                                          "all/x/images_/b.jpg"]
    assert all(Path(p).is_file() for p in img2label_paths(images))  # where ultralytics looks
    back = formats.get("yolo").read(tmp_path / "y")
    assert sorted((r.image_id, r.annotations[0].box[1]) for r in back.images) == [
        ("images_/a", 11.0), ("images__/a", 10.0), ("x/images_/b", 12.0)]  # images_/a was another's name


@pytest.mark.parametrize("splits", [("val2017",), ("val", "test")])
def test_a_set_of_evaluation_splits_is_never_written_as_training_data(tmp_path, splits):
    """COCO's val2017 converted to YOLO (to evaluate a model on it) wrote train: images/val2017 under a comment that
    said the val entry pointed at training images, with no finding; read back, the split was called train."""
    src = tmp_path / "src"
    for split in splits:
        make_jpeg(src / split / "a.jpg", 100, 80)
        (src / f"{split}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": f"{split}/a.jpg", "width": 100, "height": 80}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 5, 5], "area": 25,
                             "iscrowd": 0}], "categories": [{"id": 1, "name": "dog"}]}))
    res = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "y"), "--to", "yolo", "--json"])
    assert res.exit_code == 0, res.output
    [warning] = [f for f in json.loads(res.stdout)["findings"] if f["code"] == "no-train-split"]
    assert f"images/{splits[0]}" in warning["message"] and "do not train on them" in warning["message"]
    text = (tmp_path / "y" / "data.yaml").read_text()
    assert "# no training split" in text and "measure training data" not in text
    back = formats.get("yolo").read(tmp_path / "y")
    assert sorted(back.splits) == sorted(splits)


def test_the_summary_says_what_the_output_format_cannot_hold(tmp_path):
    """field-not-kept notes (truncated flags, scores, attributes) were in --json only: the printed summary showed
    none of them, though the docs promise them in the summary too."""
    res = CliRunner().invoke(cli, ["convert", str(SAMPLE), str(tmp_path / "y"), "--to", "yolo"])
    assert res.exit_code == 0, res.output
    assert "not kept (truncated): 100 truncated flag(s): yolo has no place for them" in res.output


def test_an_image_in_two_splits_reads_back_from_yolo_as_one_image(tmp_path):
    """VOC lists a in train and val: YOLO holds it in both folders (as ultralytics needs), and reading it back made
    two images, a and val/a, with the boxes twice (VOC written from it had Annotations/val/a.xml)."""
    items = {i: voc_xml(f"{i}.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 10, 10)}]) for i in "abc"}
    voc = make_voc_root(tmp_path / "voc", items, images={f"{i}.jpg": (40, 30) for i in "abc"},
                        sets={"train": ["a", "b"], "val": ["a", "c"]})
    datatools.convert("voc", voc, "yolo", tmp_path / "y")
    back = formats.get("yolo").read(tmp_path / "y")
    assert {r.image_id: r.splits for r in back.images} == {"a": ("train", "val"), "b": ("train",), "c": ("val",)}
    assert sum(len(r.annotations) for r in back.images) == 3
    assert [f.code for f in back.findings if f.image_id == "a"] == ["repeated-image"]


def test_yolo_rows_that_repeat_are_written_and_said(tmp_path):
    """Two equal boxes of one class: ultralytics loads one ("duplicate labels removed") where the summary said 2
    written and nothing more."""
    root = make_voc_root(tmp_path / "voc", {
        "a": voc_xml("a.jpg", (50, 40), [{"name": "c", "box": (5, 5, 20, 20)}] * 3 + [{"name": "d", "box": (5, 5, 20, 20)}]),
        "b": voc_xml("b.jpg", (50, 40), [{"name": "c", "box": (5, 5, 20, 20)}, {"name": "c", "box": (6, 5, 20, 20)}])},
        images={"a.jpg": (50, 40), "b.jpg": (50, 40)})
    s = datatools.convert("voc", root, "yolo", tmp_path / "y")
    assert s.objects_written == 6 and s.warnings == {"duplicate-box": 1}
    (f,) = [f for f in s.findings if f.code == "duplicate-box"]
    assert f.message.startswith("2 row(s) in 1 label file(s) repeat another row of their file (e.g. 'a')")
    assert len((tmp_path / "y" / "labels" / "all" / "a.txt").read_text().splitlines()) == 4


def test_voc_depth_of_a_grayscale_picture_from_any_source(tmp_path):
    """<depth> 1 from a YOLO source but 3 from COCO (and CVAT, LabelMe, Label Studio, Open Images), whose readers
    read the same header for the size."""
    make_jpeg(tmp_path / "src" / "g.jpg", 64, 48, mode="L")
    (tmp_path / "src" / "a.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "g.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [3, 4, 27, 36], "area": 1, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "dog"}]}))
    datatools.convert("coco", tmp_path / "src" / "a.json", "voc", tmp_path / "v")
    assert "<depth>1</depth>" in (tmp_path / "v" / "Annotations" / "g.xml").read_text()


def test_coco_output_is_valid_for_pycocotools_and_scores_perfectly(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = tmp_path / "c.json"
    s = datatools.convert("voc", SAMPLE, "coco", out)
    obj = json.loads(out.read_text())
    assert [im["id"] for im in obj["images"]] == list(range(1, len(obj["images"]) + 1))
    assert [a["id"] for a in obj["annotations"]] == list(range(1, len(obj["annotations"]) + 1))
    assert [c["id"] for c in obj["categories"]] == [1, 2, 3, 4]
    for a in obj["annotations"]:
        assert a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3]) and a["iscrowd"] in (0, 1)
        assert set(a["attributes"]) >= {"difficult", "truncated", "occluded"}
        assert a["iscrowd"] == int(a["attributes"]["difficult"])  # default policy: difficult -> crowd
    gt = COCO(str(out))
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in obj["annotations"] if not a["iscrowd"]]
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate(); ev.accumulate(); ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[1] == pytest.approx(1.0)
    assert s.difficult["as_crowd"] == sum(a["iscrowd"] for a in obj["annotations"]) > 0


def test_coco_output_loads_in_torchvision_cocodetection(tmp_path):
    from torchvision.datasets import CocoDetection

    out = tmp_path / "coco"
    datatools.convert("voc", SAMPLE, "coco", out)
    ds = CocoDetection(str(out / "images" / "val"), str(out / "annotations" / "instances_val.json"))
    img, target = ds[0]
    assert img.size[0] > 0 and isinstance(target, list)
    assert len(ds) == len(formats.get("voc").read(SAMPLE, sets="val").images)


@pytest.mark.parametrize("src_fmt,dst_fmt", [("voc", "yolo"), ("voc", "coco"), ("yolo", "coco"), ("coco", "yolo"),
                                             ("yolo", "voc"), ("coco", "voc"), ("voc", "voc")])
def test_every_direction_keeps_boxes(tmp_path, src_fmt, dst_fmt):
    src = SAMPLE
    if src_fmt != "voc":
        src = tmp_path / "src"
        datatools.convert("voc", SAMPLE, src_fmt, src)
    out = tmp_path / "out"
    s = datatools.convert(src_fmt, src, dst_fmt, out)
    assert s.balanced and s.objects_written == s.objects_read == 591
    read_back = formats.get(dst_fmt).read(out, **({"images": SAMPLE / "JPEGImages"} if dst_fmt == "coco" else {}))
    orig = formats.get("voc").read(SAMPLE)
    box_of = lambda ds: {im.image_id: sorted((a.label, tuple(round(v, 3) for v in a.box)) for a in im.annotations)
                         for im in ds.images}
    assert box_of(read_back) == box_of(orig)


def test_same_command_twice_gives_same_bytes_and_inputs_untouched(small_voc, tmp_path):
    before = tree_digest(small_voc)
    for fmt in ("yolo", "coco", "voc"):
        datatools.convert("voc", small_voc, fmt, tmp_path / f"{fmt}1", images_mode="copy")
        datatools.convert("voc", small_voc, fmt, tmp_path / f"{fmt}2", images_mode="copy")
        d1, d2 = tree_digest(tmp_path / f"{fmt}1"), tree_digest(tmp_path / f"{fmt}2")
        if fmt == "yolo":  # data.yaml holds the absolute output path, by design
            d1.pop("data.yaml"); d2.pop("data.yaml")
        assert d1 == d2
        first = tree_digest(tmp_path / f"{fmt}1")
        datatools.convert("voc", small_voc, fmt, tmp_path / f"{fmt}1", images_mode="copy")  # rerun in place
        assert tree_digest(tmp_path / f"{fmt}1") == first
    assert tree_digest(small_voc) == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_hard_links_do_not_modify_inputs_on_rerun(small_voc, tmp_path):
    before = tree_digest(small_voc)
    datatools.convert("voc", small_voc, "yolo", tmp_path / "y", images_mode="link")
    datatools.convert("voc", small_voc, "yolo", tmp_path / "y", images_mode="copy")
    assert tree_digest(small_voc) == before


def test_output_cannot_be_the_input(small_voc):
    with pytest.raises(datatools.UsageError):
        datatools.convert("voc", small_voc, "voc", small_voc)


@pytest.mark.parametrize("policy,kept,dropped", [("keep", 3, 0), ("skip", 2, 1)])
def test_difficult_policy_is_counted(small_voc, tmp_path, policy, kept, dropped):
    s = datatools.convert("voc", small_voc, "yolo", tmp_path / "y", difficult=policy)
    assert s.objects_written == kept and s.objects_dropped.get("difficult-skipped", 0) == dropped
    assert s.difficult["read"] == 1 and s.balanced


def test_classes_option_orders_and_filters(small_voc, tmp_path):
    s = datatools.convert("voc", small_voc, "yolo", tmp_path / "y", classes=["dog"])
    assert (tmp_path / "y/classes.txt").read_text() == "dog\n"
    assert s.objects_dropped == {"unknown-class": 1} and s.balanced
    assert (tmp_path / "y/labels/train/b.txt").read_text().startswith("0 ")


def test_precision_option(small_voc, tmp_path):
    datatools.convert("voc", small_voc, "yolo", tmp_path / "y", precision=2)
    row = (tmp_path / "y/labels/train/b.txt").read_text().split()
    assert all(len(v.split(".")[-1]) <= 2 for v in row[1:])


def test_sets_option_selects_lists(small_voc, tmp_path):
    s = datatools.convert("voc", small_voc, "yolo", tmp_path / "y", sets="val")
    assert s.images_written == 1 and s.splits == {"val": 1}
    assert any(f.code == "not-in-sets" for f in s.findings)
    with pytest.raises(datatools.UsageError, match="nope"):
        datatools.convert("voc", small_voc, "yolo", tmp_path / "z", sets="nope")


@pytest.mark.parametrize("sets", ["all", ["all"], ("all",), ("train", "extra"), "train,extra"])
def test_sets_take_a_string_list_or_tuple_alike(tmp_path, sets):
    # a tuple ("all",) fell through to the default lists (train and val) and left "extra" unread
    items = {k: voc_xml(f"{k}.jpg", (20, 20), [{"name": "x", "box": (2, 2, 9, 9)}]) for k in "abc"}
    root = make_voc_root(tmp_path / "voc", items, sets={"train": ["a"], "val": ["b"], "extra": ["c"]})
    ds = formats.get("voc").read(root, sets=sets)
    want = {"a", "b", "c"} if "all" in sets else {"a", "c"}
    assert {im.image_id for im in ds.images} == want


def test_plain_xml_folder_with_images_option(tmp_path):
    xmls = tmp_path / "xml"
    xmls.mkdir()
    (xmls / "p.xml").write_text(voc_xml("p.jpg", (20, 20), [{"name": "x", "box": (2, 2, 10, 10)}]))
    from tests.conftest import make_jpeg

    make_jpeg(tmp_path / "imgs" / "p.jpg", 20, 20)
    s = datatools.convert("voc", xmls, "yolo", tmp_path / "y", images=tmp_path / "imgs", convention="devkit")
    assert s.images_written == 1 and (tmp_path / "y/images/all/p.jpg").is_file()
    assert (tmp_path / "y/labels/all/p.txt").read_text().strip() == "0 0.275 0.275 0.45 0.45"  # devkit: [1, 1, 10, 10]


def test_strict_writes_nothing(tmp_path):
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (20, 20), [{"name": "x", "box": (5, 5, 5, 9)}])},
                         images={"a.jpg": (20, 20)})  # YOLO output without any image is refused (issue 16 item 6)
    with pytest.raises(datatools.StrictModeError):
        datatools.convert("voc", root, "yolo", tmp_path / "out", strict=True)
    assert not (tmp_path / "out").exists()
    s = datatools.convert("voc", root, "yolo", tmp_path / "out2")
    assert s.objects_dropped == {"zero-area": 1} and s.balanced


def test_yolo_input_exif_rotated_image_size(tmp_path):
    """YOLO needs sizes from headers: an EXIF orientation 6 JPEG stored 40x20 is 20x40 as displayed."""
    from tests.conftest import make_jpeg

    root = tmp_path / "y"
    make_jpeg(root / "images/train/r.jpg", 40, 20, exif_orientation=6)
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/r.txt").write_text("0 0.5 0.5 0.5 0.25\n")
    (root / "classes.txt").write_text("thing\n")
    ds = formats.get("yolo").read(root)
    im = ds.images[0]
    assert (im.width, im.height) == (20, 40)
    assert im.annotations[0].box == pytest.approx((5.0, 15.0, 15.0, 25.0))
    assert any(f.code == "exif-rotation" for f in ds.findings)


def test_yolo_input_without_image_is_dropped_and_counted(tmp_path):
    root = tmp_path / "y"
    (root / "images/train").mkdir(parents=True)
    (root / "images/train/broken.jpg").write_bytes(b"not a jpeg")
    (root / "labels/train").mkdir(parents=True)
    (root / "labels/train/broken.txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.1 0.1\n")
    (root / "labels/train/orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "classes.txt").write_text("thing\n")
    with pytest.raises(NoInputError, match=r"nothing to work on: every image of .* was dropped \(image-unreadable 1\)"):
        datatools.convert("yolo", root, "coco", tmp_path / "c.json")  # no image left: an error, not an empty file
    assert not (tmp_path / "c.json").exists()
    make_jpeg(root / "images/train/ok.jpg", 32, 32)
    (root / "labels/train/ok.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    s = datatools.convert("yolo", root, "coco", tmp_path / "c.json")
    assert s.objects_read == 3 and s.objects_dropped == {"image-unreadable": 2} and s.balanced
    assert s.images_dropped == {"image-unreadable": 1} and s.objects_written == 1
    assert s.warnings.get("label-without-image") == 1


def test_python_api_load_and_save(small_voc, tmp_path):
    ds = datatools.load("voc", small_voc)
    assert isinstance(ds, datatools.Dataset) and ds.classes == ("cat", "dog")
    datatools.save(ds, "coco", tmp_path / "x.json")
    back = datatools.load("coco", tmp_path / "x.json", images=small_voc / "JPEGImages")
    assert [im.image_id for im in back.images] == ["a", "b", "c"]
    assert back.images[1].annotations[0].attrs == {"pose": "Left"} and back.images[1].annotations[0].truncated
    (tmp_path / "empty").mkdir()
    with pytest.raises(datatools.DatatoolsError, match="no annotated images found"):
        datatools.load("voc", tmp_path / "empty")  # an empty Dataset with no finding, where every command says so


@pytest.mark.parametrize("fmt", ["yolo", "voc", "coco"])
def test_parallel_paths_give_the_same_bytes(tmp_path, fmt):
    """Large enough for forked readers and writers: 1 and 2 workers must write identical trees."""
    items = {f"img_{i:05d}": voc_xml(f"img_{i:05d}.jpg", (100 + i % 7, 80), [
        {"name": ["cat", "dog", "cow"][i % 3], "box": (1 + i % 5, 2, 40 + i % 13, 50), "difficult": i % 2},
        {"name": "dog", "box": (10, 10, 90, 70 + i % 3), "truncated": 1}]) for i in range(2400)}
    root = make_voc_root(tmp_path / "v", items, sets={"train": list(items)[:2000], "val": list(items)[2000:]})
    a = datatools.convert("voc", root, fmt, tmp_path / "a", images_mode="none", workers=1)
    b = datatools.convert("voc", root, fmt, tmp_path / "b", images_mode="none", workers=2)
    assert a.to_dict()["objects"] == b.to_dict()["objects"] and a.objects_written == 4800
    da, db = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    da.pop("data.yaml", None); db.pop("data.yaml", None)
    assert da == db and len(da) >= 2


def test_yolo_root_is_the_data_yaml_folder_when_it_names_no_path(tmp_path, monkeypatch):
    """Without a ``path`` key the dataset root is the data.yaml's folder, even when a folder of the same name sits
    inside it (an older reader took ``nest/nest`` for ``nest/data.yaml``); path spellings do not change findings."""
    from PIL import Image

    from datatools.formats import yolo

    monkeypatch.chdir(tmp_path)
    for sub in ("nest/images/train", "nest/nest/images/train", "nest/labels/train"):
        (tmp_path / sub).mkdir(parents=True)
    Image.new("RGB", (8, 6)).save(tmp_path / "nest/images/train/a.jpg")
    Image.new("RGB", (8, 6)).save(tmp_path / "nest/nest/images/train/zzz.jpg")
    (tmp_path / "nest/labels/train/a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tmp_path / "nest/data.yaml").write_text("train: images/train\nval: images/missing\nnames: [x]\n")
    root, splits, names, findings, _ = yolo.discover("nest/data.yaml")
    assert str(root) == "nest" and names == ["x"]
    assert splits == {"train": [("a", "nest/images/train/a.jpg")], "val": []}
    for spelling in ("nest//data.yaml", "./nest/data.yaml", "nest/data.yaml/"):
        assert yolo.discover(spelling)[:4] == (root, splits, names, findings), spelling
    assert [(f.code, f.path) for f in findings] == [("missing-split", "nest/data.yaml")]


@pytest.mark.parametrize("cmd", [["convert", "--to", "voc"], ["split"]])
def test_output_that_would_replace_the_input_folder_is_refused(cmd, tmp_path):
    """OUT = the parent of a plain XML folder named Annotations: writing VOC there swaps OUT/Annotations (the input)
    for the converted copy, and the XML that could not be converted was lost. Now it is a usage error, nothing is
    written and the input keeps every file."""
    src = tmp_path / "x" / "Annotations"
    shutil.copytree(SAMPLE / "Annotations", src)
    (src / "broken.xml").write_text("<annotation><object>")
    before = tree_digest(tmp_path)
    r = CliRunner().invoke(cli, [cmd[0], str(src), str(tmp_path / "x"), *cmd[1:], "--images-mode", "none"])
    assert r.exit_code == 2 and "holds the input" in r.output, r.output
    assert tree_digest(tmp_path) == before


def test_yolo_output_over_its_own_data_yaml_is_refused(tmp_path):
    src = tmp_path / "y"
    assert CliRunner().invoke(cli, ["voc2yolo", str(SAMPLE), str(src)]).exit_code == 0
    before = (src / "data.yaml").read_bytes()
    r = CliRunner().invoke(cli, ["convert", str(src / "data.yaml"), str(src / "images" / ".."), "--to", "yolo"])
    assert r.exit_code == 2, r.output
    r = CliRunner().invoke(cli, ["convert", str(src / "labels"), str(src), "-f", "yolo", "--to", "yolo",
                                 "--classes", "circle,square,triangle,star"])
    assert (src / "data.yaml").read_bytes() == before
    alongside = CliRunner().invoke(cli, ["convert", str(src / "data.yaml"), str(tmp_path / "z"), "--to", "voc"])
    assert alongside.exit_code == 0, alongside.output  # OUT beside the input: fine


def test_labels_beside_images_that_stay_put_are_allowed_with_images_mode_none(tmp_path):
    """Under --images-mode none the image folder is not replaced, so writing YOLO labels into the folder whose
    images/ the source uses is fine (only labels/, data.yaml and classes.txt are written); with link it is refused,
    since images/ would be swapped for a copy of itself."""
    root = tmp_path / "ds"
    shutil.copytree(SAMPLE / "Annotations", root / "xml")
    shutil.copytree(SAMPLE / "JPEGImages", root / "images")
    before = tree_digest(root / "images")
    ok = CliRunner().invoke(cli, ["convert", str(root / "xml"), str(root), "--to", "yolo", "--images",
                                  str(root / "images"), "--images-mode", "none"])
    assert ok.exit_code == 0, ok.output
    assert (root / "labels").is_dir() and tree_digest(root / "images") == before
    refused = CliRunner().invoke(cli, ["convert", str(root / "xml"), str(root), "--to", "yolo", "--images",
                                       str(root / "images")])
    assert refused.exit_code == 2 and "holds the input" in refused.output
    assert tree_digest(root / "images") == before


@pytest.mark.parametrize("splits,train,val", [(["test", "trainval"], "trainval", "trainval"),
                                              (["test", "val", "zzz"], "zzz", "val"), (["train", "val"], "train", "val"),
                                              (["test"], "test", "test"), ([], "all", "all")])
def test_data_yaml_never_trains_on_test_when_another_split_can(splits, train, val):
    import yaml

    from datatools.formats.yolo_layout import data_yaml

    doc = yaml.safe_load(data_yaml(splits, ["a"]))
    assert (doc["train"], doc["val"]) == (f"images/{train}", f"images/{val}")



def test_class_names_of_any_text_round_trip_through_data_yaml(tmp_path):
    # an emoji was written as a JSON surrogate pair, which PyYAML (and ultralytics) reads as two lone surrogates:
    # reading the output back was a UnicodeEncodeError traceback
    import yaml

    names = ["💥", "é", "a\tb", "x\u2028y", "n\u0085el", "d\x7fel"]
    items = {f"i{k}": voc_xml(f"i{k}.jpg", (20, 20), [{"name": n, "box": (2, 2, 9, 9)}]) for k, n in enumerate(names)}
    root = make_voc_root(tmp_path / "voc", items)
    datatools.convert("voc", root, "yolo", tmp_path / "y", images_mode="none")
    assert yaml.safe_load((tmp_path / "y" / "data.yaml").read_text(encoding="utf-8"))["names"] == dict(
        enumerate(sorted(names)))
