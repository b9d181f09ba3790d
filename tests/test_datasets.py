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
    assert [voc.classes[k] for k in voc.annotations(i)["labels"]] == names


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
    assert target["image_id"].item() == 5 and voc.image_ids[5] == "shapes_0005"
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


@pytest.mark.parametrize("options, check", [
    ({"label_offset": 1}, lambda ds, base: ds.num_classes == len(base.classes) + 1),
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
    offset = options.get("label_offset", 0)
    for i in range(0, len(ds), 17):
        _, t = ds[i]
        if t["labels"].numel():
            assert t["labels"].min() >= offset and t["labels"].max() < len(ds.classes) + offset


def _ids(split: str) -> set[str]:
    return set((SAMPLE / "ImageSets" / "Main" / f"{split}.txt").read_text().split())


def test_class_filter_maps_labels_to_the_new_order(voc):
    ds = VOCDetection(SAMPLE, classes=["star", "circle"], label_offset=1)
    for i in range(10):
        base = voc.annotations(voc.image_ids.index(ds.image_ids[i]))
        names = [voc.classes[k] for k in base["labels"] if voc.classes[k] in ("star", "circle")]
        assert [ds.classes[k - 1] for k in ds.annotations(i)["labels"]] == names


def test_bad_options_raise(voc):
    with pytest.raises(UsageError, match="nope"):
        VOCDetection(SAMPLE, splits="nope")
    with pytest.raises(UsageError, match="unknown split"):
        DetectionDataset(datatools.load("voc", SAMPLE), splits="nope")
    with pytest.raises(UsageError, match="not in the dataset"):
        DetectionDataset(datatools.load("voc", SAMPLE), ids=["missing"])
    with pytest.raises(ValueError, match="duplicates"):
        VOCDetection(SAMPLE, classes=["star", "star"])
    with pytest.raises(TypeError):
        DetectionDataset(str(SAMPLE))
    with pytest.raises(IndexError):
        voc[len(voc)]


def test_from_path_matches_the_named_class(voc, converted):
    a = DetectionDataset.from_path(SAMPLE, "voc", splits="train")
    assert a.image_ids == VOCDetection(SAMPLE, splits="train").image_ids
    b = DetectionDataset.from_path(converted["yolo"], "yolo", label_offset=1)
    assert len(b) == 200 and b.label_offset == 1
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

    ds = VOCDetection(SAMPLE, splits="val", transforms=train_preset(96), label_offset=1)
    loader = make_loader(ds, batch_size=8, num_workers=2, multiprocessing_context="spawn", shuffle=False)
    seen = 0
    for images, targets in loader:
        assert images.shape[1:] == (3, 96, 96)
        seen += len(targets)
    assert seen == len(ds) == 40
