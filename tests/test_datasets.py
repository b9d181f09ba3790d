"""datatools.datasets: the Dataset classes read the same boxes as the CLI, in the documented target layout."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torchvision import tv_tensors  # noqa: E402

import datatools  # noqa: E402
from datatools.core.errors import UsageError  # noqa: E402
from datatools.datasets import (COCODetection, DetectionDataset, VOCDetection, YOLODetection,  # noqa: E402
                                detection_collate, make_loader, padded_collate)
from tests.conftest import SAMPLE, make_voc_root, voc_xml  # noqa: E402

# torchvision 0.29 warns on every decode (its codecs are deprecated in favour of TorchCodec); see detection.py.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")

TARGET_KEYS = {"boxes", "labels", "image_id", "area", "iscrowd", "difficult", "orig_size"}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """sample_data converted by the library's own converter to YOLO, a COCO folder and a single COCO json."""
    d = tmp_path_factory.mktemp("conv")
    datatools.convert("voc", SAMPLE, "yolo", d / "yolo")
    datatools.convert("voc", SAMPLE, "coco", d / "coco")
    datatools.convert("voc", SAMPLE, "coco", d / "one.json")
    return {"yolo": d / "yolo", "coco": d / "coco", "json": d / "one.json"}


@pytest.fixture(scope="module")
def voc() -> VOCDetection:
    return VOCDetection(SAMPLE)


def _by_stem(ds: DetectionDataset) -> dict[str, dict[str, np.ndarray]]:
    return {Path(iid).name: ds.annotations(i) for i, iid in enumerate(ds.image_ids)}


@pytest.mark.parametrize("kind", ["yolo", "coco", "json"])
def test_converted_datasets_give_the_same_boxes(voc, converted, kind):
    if kind == "yolo":
        other = YOLODetection(converted["yolo"])
    elif kind == "coco":
        other = COCODetection(converted["coco"])
    else:
        other = COCODetection(converted["json"], images=SAMPLE / "JPEGImages")
    assert other.classes == voc.classes
    assert len(other) == len(voc) == 200
    assert other.dropped == {}
    a, b = _by_stem(voc), _by_stem(other)
    assert a.keys() == b.keys()
    for stem in a:
        np.testing.assert_allclose(b[stem]["boxes"], a[stem]["boxes"], atol=1e-3, err_msg=stem)
        np.testing.assert_array_equal(b[stem]["labels"], a[stem]["labels"], err_msg=stem)
    # And the decoded targets agree too (the same path through load_target).
    i, j = voc.image_ids.index("shapes_0007"), [Path(x).name for x in other.image_ids].index("shapes_0007")
    _, ta = voc[i]
    _, tb = other[j]
    torch.testing.assert_close(tb["boxes"].as_subclass(torch.Tensor), ta["boxes"].as_subclass(torch.Tensor),
                               atol=1e-3, rtol=0)


def test_voc_boxes_follow_the_default_convention(voc):
    from lxml import etree

    i = voc.image_ids.index("shapes_0003")
    root = etree.parse(str(SAMPLE / "Annotations" / "shapes_0003.xml")).getroot()
    expected = [[float(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")] for o in root.iter("object")]
    np.testing.assert_array_equal(voc.annotations(i)["boxes"], np.array(expected))
    names = [o.findtext("name") for o in root.iter("object")]
    assert [voc.classes[k - 1] for k in voc.annotations(i)["labels"]] == names  # labels 1..K: 0 is the background


def test_target_layout(voc):
    image, target = voc[5]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape[0] == 3
    assert set(target) == TARGET_KEYS
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and boxes.dtype == torch.float32
    assert tuple(boxes.canvas_size) == tuple(image.shape[-2:]) == tuple(target["orig_size"].tolist())
    n = boxes.shape[0]
    assert target["labels"].dtype == torch.int64 and target["labels"].shape == (n,)
    assert target["iscrowd"].dtype == torch.int64 and target["difficult"].dtype == torch.bool
    # the COCO id voc2coco writes (1-based over the 200 images), and back to the index
    assert target["image_id"].item() == voc.coco_ids[5] == 6 and voc.image_ids[5] == "shapes_0005"
    assert voc.index_of(6) == 5
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    torch.testing.assert_close(target["area"], w * h)
    assert all(isinstance(v, torch.Tensor) for v in target.values())


def test_targets_are_copies(voc):
    """Editing a returned target in place (some training code does) never changes the dataset."""
    _, target = voc[5]
    before = {k: v.clone() for k, v in voc[5][1].items()}
    for key in ("boxes", "labels", "area", "iscrowd", "difficult"):
        target[key].as_subclass(torch.Tensor).zero_() if target[key].dtype != torch.bool else target[key].fill_(True)
    after = voc[5][1]
    for key, value in before.items():
        assert torch.equal(after[key].as_subclass(torch.Tensor), value.as_subclass(torch.Tensor)), key


@pytest.mark.parametrize("as_array", [np.asarray, torch.as_tensor], ids=["numpy", "torch"])
def test_make_target_copies_its_inputs(as_array):
    """make_target (behind load_target) copies: editing the target never reaches the caller's arrays, even when they
    already have the target's dtypes (where a zero-copy conversion would share their memory)."""
    from datatools.datasets import make_target

    inputs = {"boxes": as_array(np.array([[1, 2, 5, 8], [0, 0, 3, 3]], dtype=np.float32)),
              "labels": as_array(np.array([3, 4], dtype=np.int64)),
              "iscrowd": as_array(np.array([0, 1], dtype=np.int64)),
              "difficult": as_array(np.array([True, False])),
              "area": as_array(np.array([24, 9], dtype=np.float32))}
    before = {k: np.array(v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    target = make_target(inputs["boxes"], inputs["labels"], canvas_size=(10, 10), iscrowd=inputs["iscrowd"],
                         difficult=inputs["difficult"], area=inputs["area"])
    for key in inputs:
        target[key].as_subclass(torch.Tensor).fill_(True if target[key].dtype == torch.bool else 7)
    for key, value in inputs.items():
        np.testing.assert_array_equal(np.asarray(value), before[key], err_msg=key)
    np.testing.assert_array_equal(make_target(inputs["boxes"], [1, 2], canvas_size=(10, 10))["area"], [24, 9])


@pytest.mark.parametrize("options, check", [
    ({"label_offset": 0}, lambda ds, base: ds.num_classes == len(base.classes) == base.num_classes - 1),
    ({"splits": "val"}, lambda ds, base: len(ds) == 40 and all(i in _ids("val") for i in ds.image_ids)),
    ({"splits": ["train", "val"]}, lambda ds, base: len(ds) == 200),
    ({"ids": ["shapes_0009", "shapes_0002"]}, lambda ds, base: ds.image_ids == ("shapes_0009", "shapes_0002")),
    ({"keep_difficult": False}, lambda ds, base: ds.num_objects + ds.dropped["difficult-skipped"] == base.num_objects
     and ds.dropped["difficult-skipped"] > 0),
    ({"classes": ["star", "circle"]}, lambda ds, base: ds.classes == ("star", "circle")
     and ds.num_objects + ds.dropped["unknown-class"] == base.num_objects),
    ({"skip_empty": True, "classes": ["star"]}, lambda ds, base: len(ds) + ds.dropped["images:empty"] == len(base)),
])
def test_options(voc, options, check):
    ds = VOCDetection(SAMPLE, **options)
    assert check(ds, voc)
    offset = options.get("label_offset", 1)
    for i in range(0, len(ds), 17):
        _, t = ds[i]
        if t["labels"].numel():
            assert t["labels"].min() >= offset and t["labels"].max() < len(ds.classes) + offset


def _ids(split: str) -> set[str]:
    return set((SAMPLE / "ImageSets" / "Main" / f"{split}.txt").read_text().split())


def test_class_filter_maps_labels_to_the_new_order(voc):
    ds = VOCDetection(SAMPLE, classes=["star", "circle"])
    for i in range(10):
        base = voc.annotations(voc.image_ids.index(ds.image_ids[i]))
        names = [voc.classes[k - 1] for k in base["labels"] if voc.classes[k - 1] in ("star", "circle")]
        assert [ds.classes[k - 1] for k in ds.annotations(i)["labels"]] == names


def test_bad_options_raise(voc):
    with pytest.raises(UsageError, match="nope"):
        VOCDetection(SAMPLE, splits="nope")
    with pytest.raises(UsageError, match="unknown split"):
        DetectionDataset(datatools.load("voc", SAMPLE), splits="nope")
    with pytest.raises(UsageError, match="not in the dataset"):
        DetectionDataset(datatools.load("voc", SAMPLE), ids=["missing"])
    with pytest.raises(ValueError, match="twice"):
        VOCDetection(SAMPLE, classes=["star", "star"])
    with pytest.raises(TypeError):
        DetectionDataset(str(SAMPLE))
    with pytest.raises(IndexError):
        voc[len(voc)]


def test_from_path_matches_the_named_class(voc, converted):
    a = DetectionDataset.from_path(SAMPLE, "voc", splits="train")
    assert a.image_ids == VOCDetection(SAMPLE, splits="train").image_ids
    b = DetectionDataset.from_path(converted["yolo"], "yolo", label_offset=0)
    assert len(b) == 200 and b.label_offset == 0 and b.num_classes == 4
    with pytest.raises(UsageError, match="VOC only"):
        DetectionDataset.from_path(converted["yolo"], "yolo", sets="train")


def test_pickles_without_handles(voc):
    from datatools.datasets.transforms import train_preset

    ds = VOCDetection(SAMPLE, transforms=train_preset(128))
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.image_ids == ds.image_ids and clone.classes == ds.classes
    torch.manual_seed(0)
    a = ds[3]
    torch.manual_seed(0)
    b = clone[3]
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1]["boxes"], b[1]["boxes"])


def _tiny_root(root: Path) -> Path:
    """Edge cases: an image without objects, a grayscale JPEG, an EXIF-rotated JPEG and a non-ASCII file name."""
    from PIL import Image

    items = {
        "empty": voc_xml("empty.jpg", (40, 30), []),
        "gray": voc_xml("gray.jpg", (40, 30), [{"name": "a", "box": (11, 6, 20, 15)}]),
        # Stored 60 wide x 20 high with EXIF orientation 6 (rotate 90 cw to display): displayed 20 wide x 60 high.
        "rotated": voc_xml("rotated.jpg", (20, 60), [{"name": "b", "box": (1, 1, 20, 30)}]),
        "café_ünï": voc_xml("café_ünï.jpg", (32, 32), [{"name": "a", "box": (1, 1, 16, 16)}]),
    }
    make_voc_root(root, items)
    img_dir = root / "JPEGImages"
    img_dir.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (10, 200, 10)).save(img_dir / "empty.jpg")
    Image.new("L", (40, 30), 77).save(img_dir / "gray.jpg")
    stored = Image.new("RGB", (60, 20), (0, 0, 0))
    # Displayed top half (rows 0..29 of 60) must be white: in the stored frame that is the LEFT 30 columns
    # (orientation 6 displays stored column x at displayed row x).
    stored.paste((255, 255, 255), (0, 0, 30, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(img_dir / "rotated.jpg", exif=exif.tobytes(), quality=95)
    Image.new("RGB", (32, 32), (200, 10, 10)).save(img_dir / "café_ünï.jpg")
    return root


def test_edge_cases(tmp_path):
    root = _tiny_root(tmp_path / "données" / "voc")
    ds = VOCDetection(root, convention="devkit")  # the boxes below are read [xmin-1, ymin-1, xmax, ymax]
    assert set(ds.image_ids) == {"empty", "gray", "rotated", "café_ünï"}
    i = ds.image_ids.index("empty")
    image, t = ds[i]
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,) and t["area"].shape == (0,)
    assert tuple(t["boxes"].canvas_size) == (30, 40)

    image, t = ds[ds.image_ids.index("gray")]
    assert image.shape == (3, 30, 40)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]) and abs(int(image[0, 0, 0]) - 77) <= 2

    image, t = ds[ds.image_ids.index("rotated")]
    assert image.shape == (3, 60, 20), "EXIF orientation must be applied"
    assert t["boxes"].tolist() == [[0.0, 0.0, 20.0, 30.0]]
    assert image[:, 5:25, 3:17].float().mean() > 240, "the box covers the white half in the displayed frame"
    assert image[:, 35:55, 3:17].float().mean() < 15

    image, t = ds[ds.image_ids.index("café_ünï")]
    assert image.shape == (3, 32, 32) and t["boxes"].tolist() == [[0.0, 0.0, 16.0, 16.0]]


def test_empty_image_through_presets_and_collate(tmp_path):
    from datatools.datasets.transforms import eval_preset, train_preset

    root = _tiny_root(tmp_path / "voc")
    for tf in (train_preset(64), eval_preset(64)):
        ds = VOCDetection(root, transforms=tf, ids=["empty", "gray"])
        batch = [ds[0], ds[1]]
        images, targets = detection_collate(batch)
        assert images.shape == (2, 3, 64, 64) and targets[0]["boxes"].shape == (0, 4)
        padded = padded_collate(batch)
        assert padded["mask"][0].sum() == 0 and padded["targets"][:, 0].tolist() == [1.0] * int(padded["mask"][1].sum())


def test_return_masks(tmp_path):
    root = _tiny_root(tmp_path / "voc")
    ds = VOCDetection(root, return_masks=True, convention="devkit")
    image, t = ds[ds.image_ids.index("gray")]
    m = t["masks"]
    assert isinstance(m, tv_tensors.Mask) and m.shape == (1, 30, 40)
    ys, xs = torch.nonzero(m[0], as_tuple=True)
    assert (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1) == (10, 5, 20, 15)
    _, t = ds[ds.image_ids.index("empty")]
    assert t["masks"].shape == (0, 30, 40)


def test_missing_and_corrupt_images_are_reported(tmp_path):
    root = _tiny_root(tmp_path / "voc")
    (root / "JPEGImages" / "gray.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "JPEGImages" / "empty.jpg").unlink()
    ds = VOCDetection(root)
    assert "empty" not in ds.image_ids and ds.dropped["images:missing-image"] == 1
    with pytest.raises(RuntimeError, match="gray.jpg"):
        ds[ds.image_ids.index("gray")]


@pytest.mark.realworld
def test_bccd_loads_and_drops_zero_area_boxes(realworld):
    root = realworld / "bccd"
    data = datatools.load("voc", root)
    ds = VOCDetection(root)
    # The two zero-area boxes (BloodImage_00338 and 00343, xmin == xmax) are dropped and counted, nothing else.
    assert ds.dropped == {"zero-area": 2}
    assert ds.num_objects + sum(ds.dropped.values()) == data.objects_read
    b = ds._boxes
    assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
    assert set(ds.classes) == {"RBC", "WBC", "Platelets"}
    i = ds.image_ids.index("BloodImage_00338")
    raw = [a for im in data.images if im.image_id == "BloodImage_00338" for a in im.annotations]
    image, t = ds[i]
    assert image.shape == (3, 480, 640) and t["boxes"].shape[0] == len(raw)
    assert (t["boxes"][:, 2] > t["boxes"][:, 0]).all()


@pytest.mark.realworld
def test_raccoon_grayscale_images_decode_to_rgb(realworld):
    root = realworld / "raccoon"
    ds = VOCDetection(root / "annotations", images=root / "images", ids=["raccoon-150", "raccoon-1"])
    for i in range(2):
        image, t = ds[i]
        assert image.shape[0] == 3 and tuple(t["boxes"].canvas_size) == tuple(image.shape[-2:])
        assert t["boxes"].shape[0] >= 1


@pytest.mark.slow
def test_dataloader_with_spawn_workers_runs_an_epoch(voc):
    from datatools.datasets.transforms import train_preset

    ds = VOCDetection(SAMPLE, splits="val", transforms=train_preset(96))
    loader = make_loader(ds, batch_size=8, num_workers=2, multiprocessing_context="spawn", shuffle=False)
    seen = 0
    for images, targets in loader:
        assert images.shape[1:] == (3, 96, 96)
        seen += len(targets)
    assert seen == len(ds) == 40


# ------------------------------------------------------------------------------------- the API for training code

def results_of(ds) -> list[dict]:
    """Every ground-truth box of ``ds`` as a COCO result, keyed as the datasets document it."""
    rows = []
    for i in range(len(ds)):
        t = ds.load_target(i, tuple(int(v) for v in ds.sizes[i]))
        for (x1, y1, x2, y2), label in zip(t["boxes"].tolist(), t["labels"].tolist()):
            rows.append({"image_id": int(t["image_id"]), "category_id": ds.category_ids[label - ds.label_offset],
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 0.9})
    return rows


def test_image_id_is_the_coco_id_so_predictions_evaluate_as_they_are(tmp_path, converted):
    """target["image_id"] and target["labels"] written straight into a COCO results file score 1.0 against the same
    split: image ids are those voc2coco writes (and evaluate reads), labels the category ids."""
    import json

    from datatools.metrics.evaluate import evaluate

    ds = VOCDetection(SAMPLE, image_set="val")
    (tmp_path / "pred.json").write_text(json.dumps(results_of(ds)))
    report = evaluate(SAMPLE, tmp_path / "pred.json", split="val")
    assert report.voc.map == pytest.approx(1.0) and report.coco.stat("AP") == pytest.approx(1.0)
    # the same numbers as the COCO file that voc2coco wrote for the split, and as YOLO's val split
    coco = json.loads((converted["coco"] / "annotations" / "instances_val.json").read_text())
    written = {Path(im["file_name"]).stem: im["id"] for im in coco["images"]}
    assert {iid: ds.coco_ids[k] for k, iid in enumerate(ds.image_ids)} == written
    yolo = YOLODetection(converted["yolo"], splits="val")
    assert {Path(iid).name: yolo.coco_ids[k] for k, iid in enumerate(yolo.image_ids)} == written
    assert [ds.index_of(c) for c in ds.coco_ids] == list(range(len(ds)))
    with pytest.raises(KeyError, match="not in this dataset"):
        ds.index_of(10_000)


def test_a_coco_files_own_category_ids_make_the_results_file(tmp_path):
    """Categories 1, 3, 4 (COCO's own run 1..90 for 80 classes): labels are 1..K, and the documented category_id
    was the label, so dog (4) was written as 3 and scored as a false cat, cat as an unknown 2."""
    import json

    from PIL import Image

    from datatools.metrics.evaluate import evaluate

    (tmp_path / "images").mkdir()
    images, anns = [], []
    for i in range(1, 4):
        Image.new("RGB", (80, 64), (40 * i, 0, 0)).save(tmp_path / "images" / f"im{i}.jpg")
        images.append({"id": i, "file_name": f"im{i}.jpg", "width": 80, "height": 64})
        anns += [{"id": 10 * i + c, "image_id": i, "category_id": c, "bbox": [5 + 10 * k, 5, 8, 8], "area": 64,
                  "iscrowd": 0} for k, c in enumerate((1, 3, 4))]
    cats = [{"id": 4, "name": "dog"}, {"id": 1, "name": "bird"}, {"id": 3, "name": "cat"}]
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    ds = COCODetection(tmp_path / "images", tmp_path / "gt.json")
    assert dict(zip(ds.classes, ds.category_ids)) == {"bird": 1, "cat": 3, "dog": 4}
    (tmp_path / "pred.json").write_text(json.dumps(results_of(ds)))
    report = evaluate(tmp_path / "gt.json", tmp_path / "pred.json")
    assert report.coco.stat("AP") == pytest.approx(1.0) and report.voc.map == pytest.approx(1.0)
    ds = COCODetection(tmp_path / "images", tmp_path / "gt.json", classes=["dog", "cat", "horse"])
    assert ds.category_ids == (4, 3, 5)  # the file's own, and a free id for the class it lacks
    # a folder of split files, each with ids of its own: the selected split's
    (tmp_path / "annotations").mkdir()
    for n, split, ids in ((1, "train", {"cat": 1, "dog": 2}), (2, "val", {"cat": 9, "dog": 7})):
        (tmp_path / "annotations" / f"instances_{split}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": f"im{n}.jpg", "width": 80, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": ids["dog"], "bbox": [5, 5, 8, 8]}],
            "categories": [{"id": v, "name": k} for k, v in ids.items()]}))
    for split, want in (("train", (1, 2)), ("val", (9, 7))):
        ds = COCODetection(root=tmp_path / "annotations", images=tmp_path / "images", splits=split)
        assert dict(zip(ds.classes, ds.category_ids)) == dict(zip(("cat", "dog"), want)), split
    with pytest.raises(ValueError, match="select one split"):
        COCODetection(root=tmp_path / "annotations", images=tmp_path / "images").category_ids


def _coco_file(tmp_path: Path) -> tuple[Path, Path]:
    """A COCO file with ids of its own (not 1..N) over two sample_data images."""
    import json
    import shutil

    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("shapes_0000.jpg", "shapes_0001.jpg"):
        shutil.copy(SAMPLE / "JPEGImages" / name, images / name)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({
        "images": [{"id": 907, "file_name": "shapes_0001.jpg", "width": 0, "height": 0},
                   {"id": 42, "file_name": "shapes_0000.jpg", "width": 0, "height": 0}],
        "annotations": [{"id": 1, "image_id": 907, "category_id": 3, "bbox": [10, 10, 20, 20], "area": 400,
                         "iscrowd": 0},
                        {"id": 2, "image_id": 42, "category_id": 7, "bbox": [5, 5, 10, 10], "area": 100,
                         "iscrowd": 0}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}))
    return images, ann


def test_coco_detection_takes_torchvisions_arguments(tmp_path):
    images, ann = _coco_file(tmp_path)
    ds = COCODetection(images, ann)  # torchvision: CocoDetection(root=image folder, annFile)
    by_name = {Path(iid).name: k for k, iid in enumerate(ds.image_ids)}
    _, t = ds[by_name["shapes_0001"]]
    assert int(t["image_id"]) == 907 and t["labels"].tolist() == [1]  # the file's own id; cat -> 1, dog -> 2
    _, t = ds[by_name["shapes_0000"]]
    assert int(t["image_id"]) == 42 and t["labels"].tolist() == [2]
    assert ds.index_of(907) == by_name["shapes_0001"]
    for other in (COCODetection(images=images, ann_file=ann), COCODetection(root=images, annFile=ann),
                  COCODetection(root=ann, images=images), COCODetection(ann, images=images)):  # + datatools' forms
        assert other.image_ids == ds.image_ids and other.coco_ids == ds.coco_ids
    with pytest.raises(UsageError, match="needs ann_file"):
        COCODetection()
    with pytest.raises(UsageError, match="twice"):
        COCODetection(images, ann, images=tmp_path)


def test_voc_detection_takes_torchvisions_arguments(tmp_path):
    items = {f"im{k}": voc_xml(f"im{k}.jpg", (40, 30), [{"name": "a", "box": (2, 2, 20, 20)}]) for k in range(3)}
    devkit = tmp_path / "dl" / "VOCdevkit" / "VOC2012"
    make_voc_root(devkit, items, images={f"im{k}.jpg": (40, 30) for k in range(3)},
                  sets={"train": ["im0", "im2"], "val": ["im1"]})
    ds = VOCDetection(tmp_path / "dl", "2012", "train")  # torchvision's positional order: root, year, image_set
    assert ds.image_ids == ("im0", "im2") and ds.coco_ids == (1, 2)
    assert VOCDetection(tmp_path / "dl", image_set="val").image_ids == ("im1",)
    assert VOCDetection(devkit.parent, year="2012", splits="val").image_ids == ("im1",)
    # the one builder: from_path reads a torchvision root the same way, and returns the class it is called on
    same = VOCDetection.from_path(tmp_path / "dl", year="2012", splits="train")
    assert isinstance(same, VOCDetection) and same.image_ids == ds.image_ids
    assert DetectionDataset.from_path(tmp_path / "dl", splits="train").image_ids == ds.image_ids
    with pytest.raises(UsageError, match="never downloads"):
        VOCDetection(tmp_path / "dl", "2012", "train", True)
    with pytest.raises(UsageError, match="disagree"):
        VOCDetection(tmp_path / "dl", image_set="train", splits="val")


def test_importing_the_package_changes_no_process_state():
    """No warning filter (or anything else global) is installed by importing datatools.datasets; decode() still
    keeps torchvision's codec deprecation message out of the user's logs, only around its own call."""
    import subprocess
    import sys

    code = (
        "import warnings, torch, torchvision, torchvision.io, torchvision.transforms.v2, numpy, PIL.Image\n"
        "before = list(warnings.filters); threads = torch.get_num_threads()\n"
        "import datatools.datasets, datatools.datasets.transforms\n"
        "from datatools.datasets import train_preset, eval_preset, VOCDetection\n"
        "assert warnings.filters == before, [f for f in warnings.filters if f not in before]\n"
        "assert torch.get_num_threads() == threads\n"
        "warnings.simplefilter('error')\n"
        "img = datatools.datasets.decode('sample_data/JPEGImages/shapes_0000.jpg')\n"
        "assert img.shape[0] == 3 and warnings.filters[0][0] == 'error'\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("ids,want", [((7, 3, 11), [7, 3, 11]), (("7", "3", "11"), [7, 3, 11]),
                                      ((7.0, 3.0, 11), [7, 3, 11]),
                                      (("7", "07", "3"), [3, 1, 2]), ((7, "x", 3), [2, 3, 1]),
                                      (("img-z", "img-m", "img-a"), [3, 2, 1]), (("b", "c", "a"), [2, 3, 1])])
def test_coco_image_ids_are_one_number_for_datasets_and_evaluate(tmp_path, ids, want):
    """Integer ids (7, 7.0 as pandas writes them, or "7" as some exporters do) are kept; ids that are not distinct
    integers are 1..N in the sorted order of their texts, the order pycocotools walks them in (it decides how
    detections of equal score in different images rank). The torch datasets' image_id and evaluate's ground truth
    give each image the same number either way, so predictions written from the targets are scored against the
    right images."""
    import json

    from datatools.metrics.inputs import load_ground_truth
    from tests.conftest import make_jpeg

    doc = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "dog"}]}
    names = ["z.jpg", "m.jpg", "a.jpg"]
    for k, iid in enumerate(ids):
        make_jpeg(tmp_path / names[k], 40, 30)
        doc["images"].append({"id": iid, "file_name": names[k], "width": 40, "height": 30})
        doc["annotations"].append({"id": k + 1, "image_id": iid, "category_id": 1, "bbox": [k, 1, 10, 10],
                                   "area": 100, "iscrowd": 0})
    (tmp_path / "gt.json").write_text(json.dumps(doc))
    ds = DetectionDataset.from_path(tmp_path / "gt.json")
    torch_ids = {Path(p).name: c for p, c in zip(ds.paths, ds.coco_ids)}
    gt = load_ground_truth(tmp_path / "gt.json")
    eval_ids = {Path(r.file_name).name: c for r, c in zip(gt.images, gt.image_ids)}
    assert torch_ids == eval_ids == dict(zip(names, want))
    assert {im["id"] for im in gt.coco["images"]} == set(want)
    assert any(f.code == "string-ids" for f in gt.findings) == (sorted(want) == [1, 2, 3])


def test_every_listed_image_format_decodes_to_uint8_rgb_in_the_frame_of_its_boxes(tmp_path):
    """decode gives uint8 (3, H, W) for each image format the readers list, H and W as the image header says (the
    frame boxes are in): a 16-bit PNG is its top 8 bits (it came out uint16), BMP/TIFF/GIF decode (they raised),
    a WebP with EXIF orientation 6 is turned (it was not, while its header size was)."""
    from PIL import Image

    from datatools.core.images import read_image_header
    from datatools.datasets import decode

    rgb = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    deep = np.random.default_rng(1).integers(0, 65536, (40, 60), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    for ext in ("bmp", "tiff", "gif", "webp"):
        Image.fromarray(rgb).save(tmp_path / f"x.{ext}")
    Image.fromarray(rgb).save(tmp_path / "turned.webp", exif=exif.tobytes(), lossless=True)
    for path in sorted(tmp_path.iterdir()):
        image, header = decode(str(path)), read_image_header(path)
        assert image.dtype == torch.uint8 and tuple(image.shape) == (3, header.height, header.width), path.name
    assert torch.equal(decode(str(tmp_path / "deep.png"))[0], torch.from_numpy((deep >> 8).astype(np.uint8)))
    assert torch.equal(decode(str(tmp_path / "x.bmp")), torch.from_numpy(rgb).permute(2, 0, 1))
    turned = decode(str(tmp_path / "turned.webp"))  # orientation 6: displayed turned 90 degrees clockwise
    assert torch.equal(turned, torch.from_numpy(np.rot90(rgb, -1).copy()).permute(2, 0, 1))


def test_an_exif_turned_tiff_is_turned_once_everywhere(tmp_path):
    """Pillow turns a TIFF by its orientation tag itself (its size is the turned one from the open, its pixels turn
    as they load); turning it again swapped its size twice: a YOLO box landed elsewhere (IoU 0.05), VOC and LabelMe
    boxes were clipped to a wrong size with a false size-mismatch. Every reader of pixels and headers agrees with
    the same picture stored upright."""
    from PIL import Image

    from datatools.core.images import read_image_header
    from datatools.datasets import decode
    from datatools.ops.dupes_hash import signature
    from datatools.ops.stats import image_histogram
    from datatools.viz.render import load_image

    upright = np.zeros((200, 120, 3), np.uint8)
    upright[100:180, 10:70] = (230, 20, 20)
    Image.fromarray(upright).save(tmp_path / "up.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "turned.tiff", exif=exif.tobytes())
    up, turned = str(tmp_path / "up.png"), str(tmp_path / "turned.tiff")
    assert (read_image_header(turned).width, read_image_header(turned).height) == (120, 200)
    assert torch.equal(decode(turned), decode(up))
    assert np.array_equal(np.asarray(load_image(turned)[0]), np.asarray(load_image(up)[0]))
    assert np.array_equal(image_histogram(turned, resize=(60, 100))[0], image_histogram(up, resize=(60, 100))[0])
    assert signature(turned).phash == signature(up).phash
