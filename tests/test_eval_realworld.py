"""Issue 16, the evaluate side: what a new user hit on public datasets, each rebuilt as a small case of the same shape.

Items: 4 (COCO-dict predictions matched to the ground truth by category NAME), 5 (YOLO prediction rows in pixels),
6 and 12 (no image found is an error, never an empty dataset or every metric at -1; VOCDetection on a torchvision
root), 15 (every command detects the format), 19 (no literal markup, no PIL warning through, "1 file").
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from datatools.cli import cli
from datatools.core.errors import DatatoolsError, FormatError, NoInputError, UsageError
from tests.conftest import make_jpeg, make_voc_root, voc_xml

# Two images, three classes; boxes in pixels (x, y, w, h) on 100x80 images.
GT_BOXES = {"a.jpg": [("cat", (10, 10, 30, 20)), ("dog", (50, 30, 40, 40))],
            "b.jpg": [("dog", (5, 5, 20, 20)), ("person", (40, 10, 30, 50))]}
GT_CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "person"}]


def coco_gt(tmp_path: Path, *, with_images: bool = True) -> Path:
    """A COCO ground truth (ids 1..) beside its images."""
    root = tmp_path / "gt"
    root.mkdir(parents=True)
    images, anns = [], []
    cid = {c["name"]: c["id"] for c in GT_CATEGORIES}
    for k, (name, boxes) in enumerate(GT_BOXES.items(), 1):
        images.append({"id": k, "file_name": name, "width": 100, "height": 80})
        if with_images:
            make_jpeg(root / name, 100, 80)
        for label, (x, y, w, h) in boxes:
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": cid[label], "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": 0})
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": GT_CATEGORIES}))
    return path


def yolo_gt(tmp_path: Path) -> Path:
    """The same boxes as a YOLO folder (images/ + labels/ + classes.txt), no data.yaml."""
    root = tmp_path / "yolo"
    names = [c["name"] for c in GT_CATEGORIES]
    (root / "labels").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    for name, boxes in GT_BOXES.items():
        make_jpeg(root / "images" / name, 100, 80)
        rows = [f"{names.index(lab)} {(x + w / 2) / 100:.6f} {(y + h / 2) / 80:.6f} {w / 100:.6f} {h / 80:.6f}"
                for lab, (x, y, w, h) in boxes]
        (root / "labels" / (Path(name).stem + ".txt")).write_text("\n".join(rows) + "\n")
    return root


def voc_gt(root: Path) -> Path:
    items = {Path(n).stem: voc_xml(n, (100, 80), [{"name": lab, "box": (x, y, x + w, y + h)}
                                                 for lab, (x, y, w, h) in boxes])
             for n, boxes in GT_BOXES.items()}
    return make_voc_root(root, items, images={n: (100, 80) for n in GT_BOXES})


# ------------------------------------------------------------------------------------------------ item 4

def coco_dict_predictions(tmp_path: Path, *, extra_category: bool = True) -> Path:
    """Perfect predictions in a COCO dict that numbers images AND categories its own way (as a public example
    does): ids match the ground truth's for none of them, names do."""
    own_cats = [{"id": 7, "name": "person"}, {"id": 8, "name": "cat"}, {"id": 9, "name": "dog"}]
    if extra_category:
        own_cats.append({"id": 1, "name": "bicycle"})  # id 1 is "cat" in the ground truth
    by_name = {c["name"]: c["id"] for c in own_cats}
    images = [{"id": 100 + k, "file_name": n} for k, n in enumerate(GT_BOXES)]
    anns = []
    for k, boxes in enumerate(GT_BOXES.values()):
        for label, box in boxes:
            anns.append({"id": len(anns) + 1, "image_id": 100 + k, "category_id": by_name[label], "bbox": list(box),
                         "score": 0.9})
    if extra_category:
        anns.append({"id": len(anns) + 1, "image_id": 100, "category_id": 1, "bbox": [10, 10, 30, 20], "score": 0.8})
    path = tmp_path / "pred_dict.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": own_cats}))
    return path


def test_coco_dict_predictions_match_categories_by_name(tmp_path: Path) -> None:
    from datatools.metrics.evaluate import evaluate

    gt = coco_gt(tmp_path)
    rep = evaluate(gt, coco_dict_predictions(tmp_path), backend="pycocotools")
    # by raw id, cat (8) / dog (9) / person (7) matched nothing and bicycle (1) became a "cat": AP 0
    assert rep.coco.stat("AP") == pytest.approx(1.0)
    assert rep.voc.map == pytest.approx(1.0)
    unmatched = [f for f in rep.findings if f.code == "pred-category-unmatched"]
    assert len(unmatched) == 1 and unmatched[0].objects == 1 and "'bicycle'" in unmatched[0].message
    assert unmatched[0].severity.value == "error"
    assert not [f for f in rep.findings if f.code == "pred-unknown-category"]


def test_unused_unmatched_category_name_is_a_warning(tmp_path: Path) -> None:
    from datatools.metrics.inputs import load_ground_truth
    from datatools.metrics.predictions import load_predictions

    gt = load_ground_truth(coco_gt(tmp_path))
    path = coco_dict_predictions(tmp_path, extra_category=False)
    data = json.loads(path.read_text())
    data["categories"].append({"id": 42, "name": "zebra"})
    path.write_text(json.dumps(data))
    p = load_predictions(path, gt)
    assert len(p.table) == 4
    (f,) = [f for f in p.findings if f.code == "pred-category-unmatched"]
    assert f.severity.value == "warning" and "'zebra'" in f.message and f.objects == 0


def test_visualize_pred_uses_the_same_name_matching(tmp_path: Path) -> None:
    """visualize --pred goes through the same load_predictions: the cat box is drawn as a cat."""
    from datatools.formats import coco
    from datatools.metrics.inputs import dataset_keys
    from datatools.metrics.predictions import load_predictions

    ds = coco.read(coco_gt(tmp_path))
    p = load_predictions(coco_dict_predictions(tmp_path), dataset_keys(ds), missing_score=1.0)
    labels = sorted(ds.classes[int(k)] for k in p.table.label)
    assert labels == ["cat", "dog", "dog", "person"]
    assert p.unknown_categories == {"bicycle": 1}


def test_results_list_still_matches_by_id(tmp_path: Path) -> None:
    """A plain results list has no categories of its own: its ids are the ground truth's, as before."""
    from datatools.metrics.evaluate import evaluate

    gt = coco_gt(tmp_path)
    rows = [{"image_id": k, "category_id": {"cat": 1, "dog": 2, "person": 3}[lab], "bbox": list(box), "score": 0.9}
            for k, boxes in enumerate(GT_BOXES.values(), 1) for lab, box in boxes]
    pred = tmp_path / "results.json"
    pred.write_text(json.dumps(rows))
    rep = evaluate(gt, pred, backend="pycocotools")
    assert rep.coco.stat("AP") == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ item 5

def yolo_predictions(tmp_path: Path, *, pixels: bool) -> Path:
    names = [c["name"] for c in GT_CATEGORIES]
    out = tmp_path / "pred_txt"
    out.mkdir()
    for name, boxes in GT_BOXES.items():
        rows = []
        for lab, (x, y, w, h) in boxes:
            if pixels:
                rows.append(f"{names.index(lab)} {x + w / 2:g} {y + h / 2:g} {w:g} {h:g} 0.9")
            else:
                rows.append(f"{names.index(lab)} {(x + w / 2) / 100:.6f} {(y + h / 2) / 80:.6f} {w / 100:.6f} "
                            f"{h / 80:.6f} 0.9")
        (out / (Path(name).stem + ".txt")).write_text("\n".join(rows) + "\n")
    return out


def test_yolo_prediction_rows_in_pixels_are_an_error(tmp_path: Path) -> None:
    from datatools.metrics.evaluate import evaluate

    gt = yolo_gt(tmp_path)
    with pytest.raises(FormatError) as e:
        evaluate(gt, yolo_predictions(tmp_path, pixels=True))
    assert "pixel" in str(e.value) and "a.txt:1" in str(e.value)
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(gt), "--pred", str(tmp_path / "pred_txt")])
    assert r.exit_code == 1 and "pixel" in r.output and "a.txt:1" in r.output
    assert "Traceback" not in r.output


def test_normalized_yolo_predictions_still_evaluate(tmp_path: Path) -> None:
    from datatools.metrics.evaluate import evaluate

    gt = yolo_gt(tmp_path)
    pred = yolo_predictions(tmp_path, pixels=False)
    # a value a hair past 1 is rounding, not pixels
    (pred / "b.txt").write_text((pred / "b.txt").read_text() + "2 1.004 0.5 0.002 0.1 0.1\n")
    rep = evaluate(gt, pred, backend="pycocotools")
    assert rep.voc.map == pytest.approx(1.0)


def test_yolo_predictions_beside_other_files_are_still_read(tmp_path: Path) -> None:
    """A prediction folder with a run's own .json or .xml beside the txt files is predictions (only a folder whose
    .txt files all lie in sub-folders, as a VOC root's split lists do, is refused as a dataset)."""
    from datatools.metrics.evaluate import evaluate

    gt = yolo_gt(tmp_path)
    pred = yolo_predictions(tmp_path, pixels=False)
    (pred / "args.json").write_text('{"conf": 0.25}')
    (pred / "notes.xml").write_text("<notes/>")
    assert evaluate(gt, pred, backend="pycocotools").voc.map == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ items 6 and 12

def test_coco_detection_without_images_refuses(tmp_path: Path) -> None:
    from datatools.datasets import COCODetection

    gt = coco_gt(tmp_path, with_images=False)
    with pytest.raises(NoInputError) as e:
        COCODetection(gt)
    msg = str(e.value)
    assert str(gt) in msg and "image" in msg
    assert len(COCODetection(coco_gt(tmp_path / "ok"))) == 2


def test_every_dataset_class_refuses_an_empty_folder(tmp_path: Path) -> None:
    from datatools.datasets import DetectionDataset, VOCDetection, YOLODetection

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatatoolsError, match="no .*found") as e:
        VOCDetection(empty)
    assert str(empty) in str(e.value) and "xml" in str(e.value).lower()
    (empty / "images").mkdir()
    (empty / "labels").mkdir()
    with pytest.raises(DatatoolsError, match=str(empty)):
        YOLODetection(empty)
    # VOC annotations whose images are nowhere: the message names the folder looked in
    root = make_voc_root(tmp_path / "voc", {"x": voc_xml("x.jpg", (10, 10), [{"name": "a", "box": (1, 1, 5, 5)}])})
    with pytest.raises(DatatoolsError, match="JPEGImages"):
        DetectionDataset.from_path(root, "voc")


def test_voc_detection_on_a_torchvision_root(tmp_path: Path) -> None:
    from datatools.datasets import VOCDetection

    voc_gt(tmp_path / "dl" / "VOCdevkit" / "VOC2012")
    ds = VOCDetection(tmp_path / "dl")  # torchvision: VOCDetection(root="dl", year="2012")
    assert len(ds) == 2 and ds.num_objects == 4
    assert len(VOCDetection(tmp_path / "dl" / "VOCdevkit")) == 2
    voc_gt(tmp_path / "dl" / "VOCdevkit" / "VOC2007")
    with pytest.raises(UsageError) as e:
        VOCDetection(tmp_path / "dl")
    assert "VOC2007" in str(e.value) and "VOC2012" in str(e.value) and "year" in str(e.value)
    assert len(VOCDetection(tmp_path / "dl", year="2007")) == 2
    with pytest.raises(UsageError, match="VOC2010"):
        VOCDetection(tmp_path / "dl", year="2010")


def test_evaluate_empty_ground_truth_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "EMPTY"
    empty.mkdir()
    pred = tmp_path / "p.json"
    pred.write_text("[]")
    for fmt in ([], ["-f", "voc"]):
        r = CliRunner().invoke(cli, ["evaluate", "--gt", str(empty), "--pred", str(pred), *fmt])
        assert r.exit_code == 1, (fmt, r.output)
        # the words of every command for the same folder (convert, check): ops.convert.read_source
        said = "no annotations found" if fmt else "no dataset found"
        assert said in r.output and str(empty) in r.output and "looked for" in r.output
        assert "COCO metrics" not in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(empty), "--pred", str(pred), "-f", "voc"])
    assert "*.xml" in r.output  # what was looked for
    # a COCO file without a single image entry
    gt = tmp_path / "e.json"
    gt.write_text(json.dumps({"images": [], "annotations": [], "categories": GT_CATEGORIES}))
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(gt), "--pred", str(pred)])
    assert r.exit_code == 1 and "no annotated images found" in r.output


def test_visualize_an_empty_dataset_exits_1(tmp_path: Path) -> None:
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    r = CliRunner().invoke(cli, ["visualize", str(root), str(tmp_path / "out")])
    assert r.exit_code == 1 and "*.xml" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ item 15

def test_evaluate_detects_the_ground_truth_format(tmp_path: Path) -> None:
    gt = coco_gt(tmp_path)
    pred = coco_dict_predictions(tmp_path, extra_category=False)
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(gt), "--pred", str(pred), "--json",
                                 "--backend", "pycocotools"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["coco"]["stats"]["AP"] == pytest.approx(1.0)
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(yolo_gt(tmp_path)), "--pred", str(pred), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["voc"]["map"] == pytest.approx(1.0)
    # an explicit format still wins
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(gt), "--pred", str(pred), "-f", "voc"])
    assert r.exit_code != 0 and "VOC" in r.output


def test_visualize_detects_yolo(tmp_path: Path) -> None:
    out = tmp_path / "viz"
    r = CliRunner().invoke(cli, ["visualize", str(yolo_gt(tmp_path)), str(out), "--json", "-j", "1"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["images_drawn"] == 2 and res["boxes_drawn"] == 4
    assert sorted(p.name for p in out.glob("*.jpg")) == ["a.jpg", "b.jpg"]


def test_train_data_detects_yolo(tmp_path: Path) -> None:
    from datatools.training.config import TrainConfig
    from datatools.training.data import build_datasets

    data, train_ds, val_ds, _, _ = build_datasets(TrainConfig(data=str(yolo_gt(tmp_path)), val_split=None))
    assert data.format == "yolo" and len(train_ds) == 2 and train_ds.num_objects == 4
    r = CliRunner().invoke(cli, ["train", "--help"])
    assert "auto" in r.output


def test_predict_format_detection(tmp_path: Path) -> None:
    from datatools.training.prediction import _dataset_format

    folder = tmp_path / "pics"
    make_jpeg(folder / "x.jpg", 20, 20)
    assert _dataset_format("auto", folder, None) is None
    assert _dataset_format("auto", yolo_gt(tmp_path), None) == "yolo"
    assert _dataset_format("auto", coco_gt(tmp_path), None) == "coco"
    assert _dataset_format("coco", folder, None) == "coco"  # explicit wins
    assert _dataset_format("images", yolo_gt(tmp_path / "y2"), None) is None
    with pytest.raises(UsageError):
        _dataset_format("auto", folder, "val")


# ------------------------------------------------------------------------------------------------ item 19

def test_evaluate_table_prints_no_literal_markup(tmp_path: Path) -> None:
    gt = coco_gt(tmp_path)
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(gt), "--pred", str(coco_dict_predictions(tmp_path))])
    assert r.exit_code == 0, r.output
    assert "[bold]" not in r.output and "[/]" not in r.output
    assert "mean" in r.output and "2 images" in r.output


def test_stats_catches_pil_warnings_and_says_1_image(tmp_path: Path) -> None:
    """A palette PNG with byte transparency makes PIL warn on convert("RGB"); stats turns it into a finding."""
    root = tmp_path / "voc"
    make_voc_root(root, {"p": voc_xml("p.png", (8, 8), [{"name": "a", "box": (1, 1, 5, 5)}])})
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    (root / "JPEGImages").mkdir()
    im.save(root / "JPEGImages" / "p.png", transparency=bytes([0, 128, 255]))
    with _no_warnings():
        r = CliRunner().invoke(cli, ["stats", str(root), "-j", "1"])
    assert r.exit_code == 0, r.output
    assert "UserWarning" not in r.output.replace("image-warning", "")
    assert "1 image," in r.output and "1 images" not in r.output
    assert "image-warning" in r.output
    r = CliRunner().invoke(cli, ["stats", str(root), "-j", "1", "--json"])
    codes = [f["code"] for f in json.loads(r.output)["findings"]]
    assert codes == ["image-warning"]


class _no_warnings:
    """No warning escapes the block (pytest.warns(None) is gone from pytest 8)."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings(record=True)
        self.caught = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        assert not [w for w in self.caught if "PIL" in str(w.filename) or "Palette" in str(w.message)], \
            [str(w.message) for w in self.caught]
        return False


def test_count_helper() -> None:
    from datatools.cli.common import count

    assert count(1, "file") == "1 file"
    assert count(2, "file") == "2 files"
    assert count(1000, "box", "boxes") == "1,000 boxes"
    assert count(0, "image") == "0 images"


def test_evaluate_split_by_role_and_classes_only_where_they_apply(tmp_path):
    """evaluate --split val finds a YOLO split named val2017, as train and a COCO export do; --classes with COCO
    ground truth is a usage error (its file numbers its own categories), not silently ignored."""
    from click.testing import CliRunner

    from datatools.cli import cli
    from datatools.metrics.inputs import load_ground_truth

    root = tmp_path / "y"
    for split, names in (("train2017", ["a", "b"]), ("val2017", ["c"])):
        (root / "labels" / split).mkdir(parents=True)
        for n in names:
            make_jpeg(root / "images" / split / f"{n}.jpg", 64, 48)
            (root / "labels" / split / f"{n}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (root / "classes.txt").write_text("dog\n")
    gt = load_ground_truth(root, split="val")
    assert [(r.image_id, r.splits) for r in gt.images] == [("c", ("val2017",))]
    with pytest.raises(UsageError, match="no split 'extra'"):
        load_ground_truth(root, split="extra")
    coco = tmp_path / "gt.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "c.jpg", "width": 64, "height": 48}],
                                "annotations": [], "categories": [{"id": 1, "name": "dog"}]}))
    (tmp_path / "p.json").write_text("[]")
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(coco), "--pred", str(tmp_path / "p.json"), "--classes",
                                 "dog"])
    assert r.exit_code == 2 and "--classes applies to VOC and YOLO" in r.output, r.output
