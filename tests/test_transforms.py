"""Box-aware transforms: boxes move exactly with the pixels (hand-computed coordinates and drawn boxes)."""
from __future__ import annotations

import pickle

import pytest

torch = pytest.importorskip("torch")
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from datatools.datasets import VOCDetection, make_loader, make_target, set_epoch  # noqa: E402
from torchvision.transforms.v2 import functional as F  # noqa: E402

from datatools.datasets.transforms import (Letterbox, Mosaic, MosaicDataset, PhotometricDistort,  # noqa: E402
                                           SanitizeBoxes,
                                           boxes_to_original, eval_preset, letterbox_params, train_preset)
from tests.conftest import SAMPLE  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
# Three non-overlapping boxes on a 120 x 200 (H x W) black image; box k is painted COLORS[k].
BOXES = [[10, 10, 50, 40], [120, 30, 190, 110], [60, 70, 100, 115]]


def drawn_sample(h: int = 120, w: int = 200, boxes=BOXES, *, difficult=(True, False, True)):
    img = torch.zeros(3, h, w, dtype=torch.uint8)
    for (x1, y1, x2, y2), color in zip(boxes, COLORS):
        img[:, y1:y2, x1:x2] = torch.tensor(color, dtype=torch.uint8)[:, None, None]
    target = make_target(boxes, list(range(len(boxes))), canvas_size=(h, w), difficult=list(difficult)[:len(boxes)])
    return tv_tensors.Image(img), target


def assert_boxes_match_pixels(image: torch.Tensor, target: dict, *, tol: int = 60, inset: int = 2) -> int:
    """Every box's inside has its colour and just outside each edge (inside the canvas) does not. Returns how many
    boxes were checked."""
    img = image.as_subclass(torch.Tensor)
    if img.is_floating_point():
        img = (img * 255).round()
    img = img.to(torch.int32)
    h, w = img.shape[-2:]
    checked = 0
    for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
        color = torch.tensor(COLORS[label], dtype=torch.int32)
        x1, y1, x2, y2 = box
        if x2 - x1 < 2 * inset + 2 or y2 - y1 < 2 * inset + 2:
            continue  # slivers left by a crop are too thin to probe through the resampling blur
        inside = img[:, int(y1) + inset:int(y2) - inset, int(x1) + inset:int(x2) - inset]
        diff = (inside - color[:, None, None]).abs().amax(0)
        assert (diff < tol).float().mean() > 0.98, f"box {box} (label {label}) does not cover its colour"
        cy, cx = int((y1 + y2) / 2), int((x1 + x2) / 2)
        probes = [(cy, int(x1) - 3), (cy, int(x2) + 2), (int(y1) - 3, cx), (int(y2) + 2, cx)]
        for py, px in probes:
            if 0 <= py < h and 0 <= px < w:
                assert (img[:, py, px] - color).abs().max() >= tol, f"box {box} is smaller than its colour region"
        checked += 1
    return checked


# ------------------------------------------------------------------------------------------- exact coordinates

def test_horizontal_flip_exact():
    image, target = drawn_sample()
    image, target = v2.RandomHorizontalFlip(p=1.0)(image, target)
    assert target["boxes"].tolist() == [[150, 10, 190, 40], [10, 30, 80, 110], [100, 70, 140, 115]]
    assert assert_boxes_match_pixels(image, target) == 3


@pytest.mark.parametrize("image_hw, size, kwargs, new_hw, pad", [
    ((120, 200), 400, {}, (240, 400), [0, 80, 0, 80]),
    ((120, 200), (100, 300), {}, (100, 167), [66, 0, 67, 0]),
    ((120, 200), 100, {}, (60, 100), [0, 20, 0, 20]),
    ((120, 200), 100, {"center": False}, (60, 100), [0, 0, 0, 40]),
    ((120, 200), 400, {"scaleup": False}, (120, 200), [100, 140, 100, 140]),
    ((200, 120), 64, {}, (64, 38), [13, 0, 13, 0]),
])
def test_letterbox_exact(image_hw, size, kwargs, new_hw, pad):
    h, w = image_hw
    params = letterbox_params(image_hw, size, **kwargs)
    assert params["new_size"] == new_hw and params["padding"] == pad
    image, target = drawn_sample(h, w, [[10, 10, 50, 40]] if h < w else [[10, 10, 50, 40]])
    out_img, out = Letterbox(size, **kwargs)(image, target)
    th, tw = (size, size) if isinstance(size, int) else size
    assert out_img.shape == (3, th, tw) and tuple(out["boxes"].canvas_size) == (th, tw)
    sx, sy = new_hw[1] / w, new_hw[0] / h
    expected = [10 * sx + pad[0], 10 * sy + pad[1], 50 * sx + pad[0], 40 * sy + pad[1]]
    torch.testing.assert_close(out["boxes"].as_subclass(torch.Tensor)[0], torch.tensor(expected), atol=1e-4, rtol=0)
    torch.testing.assert_close(out["letterbox"], torch.tensor([sx, sy, pad[0], pad[1]], dtype=torch.float64))
    assert "letterbox" not in target, "the input target must not be modified"
    # padding is the fill value; the box keeps its colour
    if pad[1]:
        assert out_img[:, 0, tw // 2].tolist() == [114, 114, 114]
    assert assert_boxes_match_pixels(out_img, out) == 1


def test_center_crop_moves_clips_and_sanitizes_every_per_box_field():
    image, target = drawn_sample()
    pipeline = v2.Compose([v2.CenterCrop(100), v2.ClampBoundingBoxes(), SanitizeBoxes()])
    out_img, out = pipeline(image, target)
    # crop offset: top (120-100)/2 = 10, left (200-100)/2 = 50; box 0 lands at x <= 0 and is removed
    assert out["boxes"].tolist() == [[70, 20, 100, 100], [10, 60, 50, 100]]
    assert out["labels"].tolist() == [1, 2]
    assert out["difficult"].tolist() == [False, True]
    assert out["iscrowd"].tolist() == [0, 0]
    assert out["area"].tolist() == [70 * 80, 40 * 45]  # the original area is carried, not recomputed
    assert assert_boxes_match_pixels(out_img, out) == 2


@pytest.mark.parametrize("kwargs, kept", [({}, [0, 1, 3]), ({"min_size": 3}, [0, 3]), ({"min_area": 90}, [0])])
def test_sanitize_boxes_drops_small_boxes_with_every_per_box_field(kwargs, kept):
    boxes = [[0, 0, 10, 10], [20, 20, 22, 40], [30, 30, 30.5, 60], [40, 0, 60, 4]]  # areas 100, 40, 15, 80
    target = make_target(boxes, [5, 6, 7, 8], canvas_size=(100, 100), difficult=[True, False, True, False],
                         iscrowd=[0, 1, 0, 1])
    target["masks"] = tv_tensors.Mask(torch.arange(4)[:, None, None].expand(4, 100, 100).clone())
    _, out = SanitizeBoxes(**kwargs)(tv_tensors.Image(torch.zeros(3, 100, 100, dtype=torch.uint8)), target)
    assert isinstance(out["boxes"], tv_tensors.BoundingBoxes)
    assert out["boxes"].tolist() == [boxes[i] for i in kept]
    assert out["labels"].tolist() == [5 + i for i in kept]
    assert out["difficult"].tolist() == [i in (0, 2) for i in kept]
    assert out["iscrowd"].tolist() == [int(i in (1, 3)) for i in kept]
    assert out["area"].tolist() == [target["area"][i].item() for i in kept]
    assert out["masks"][:, 0, 0].tolist() == kept


def test_every_box_cropped_away_gives_empty_targets():
    pipeline = v2.Compose([v2.CenterCrop((4, 4)), v2.ClampBoundingBoxes(), SanitizeBoxes()])
    image, target = drawn_sample(boxes=[[0, 0, 20, 20], [180, 100, 200, 120]])
    out_img, out = pipeline(image, target)
    assert out["boxes"].shape == (0, 4)
    for key in ("labels", "area", "iscrowd", "difficult"):
        assert out[key].shape == (0,), key


def test_mosaic_exact():
    samples = []
    specs = [  # (H, W, boxes, colour)
        (50, 100, [[70, 5, 90, 45], [10, 10, 50, 20]]),
        (200, 100, [[20, 100, 60, 160], [0, 150, 100, 200]]),
        (40, 40, [[30, 0, 40, 10]]),
        (100, 100, [[0, 0, 100, 100]]),
    ]
    for k, (h, w, boxes) in enumerate(specs):
        img = torch.full((3, h, w), 10 * (k + 1), dtype=torch.uint8)
        samples.append((tv_tensors.Image(img), make_target(boxes, [k] * len(boxes), canvas_size=(h, w),
                                                           image_id=k + 7)))
    image, target = Mosaic(100)(samples, center=(40, 60))
    assert image.shape == (3, 100, 100)
    assert target["boxes"].tolist() == [[10, 15, 30, 55], [50, 10, 70, 40], [40, 35, 90, 60], [15, 60, 40, 85],
                                        [40, 60, 100, 100]]
    assert target["labels"].tolist() == [0, 1, 1, 2, 3]
    assert target["image_id"].item() == 7 and tuple(target["boxes"].canvas_size) == (100, 100)
    torch.testing.assert_close(target["area"], torch.tensor([800.0, 600.0, 1250.0, 625.0, 2400.0]))
    # pixels: each tile's colour in its visible part, the fill where a tile does not reach
    assert image[0, 30, 20].item() == 10 and image[0, 5, 20].item() == 114      # tile 0 covers y 10..60 only
    assert image[0, 30, 60].item() == 20 and image[0, 30, 95].item() == 114     # tile 1 covers x 40..90 only
    assert image[0, 80, 20].item() == 30 and image[0, 80, 60].item() == 40


def test_mosaic_boxes_match_pixels():
    samples = [drawn_sample(), drawn_sample(boxes=BOXES[:2]), drawn_sample(), drawn_sample(boxes=BOXES[2:])]
    gen = torch.Generator().manual_seed(3)
    checked = 0
    for _ in range(6):
        image, target = Mosaic(160)(samples, generator=gen)
        assert target["labels"].shape[0] == target["boxes"].shape[0]
        checked += assert_boxes_match_pixels(image, target)
    assert checked > 6


# ------------------------------------------------------------------------------------------- pixels, any transform

@pytest.mark.parametrize("name, transform", [
    ("flip+letterbox preset", train_preset(256, photometric=False, flip=1.0, dtype=None)),
    ("resize preset float", train_preset((96, 160), mode="resize", photometric=False, flip=0.5)),
    ("scale jitter preset", train_preset(128, scale_jitter=(0.3, 2.0), photometric=False)),
    ("iou crop + zoom out preset", train_preset(128, iou_crop=True, zoom_out=True, photometric=False)),
    ("eval letterbox", eval_preset(160)),
    ("eval resize", eval_preset(160, mode="resize")),
])
def test_boxes_follow_pixels(name, transform):
    torch.manual_seed(1234)
    checked = 0
    for _ in range(8):
        out_img, out = transform(*drawn_sample())
        assert out["labels"].shape[0] == out["boxes"].shape[0] == out["difficult"].shape[0] == out["area"].shape[0]
        assert tuple(out["boxes"].canvas_size) == tuple(out_img.shape[-2:])
        checked += assert_boxes_match_pixels(out_img, out)
    assert checked >= 8, name


@pytest.mark.parametrize("preset", [eval_preset(160), eval_preset((128, 96)), eval_preset(160, mode="resize")])
def test_boxes_to_original_inverts_eval_presets(preset):
    image, target = drawn_sample()
    out_img, out = preset(image, target)
    back = boxes_to_original(out["boxes"], out)
    torch.testing.assert_close(back, torch.tensor(BOXES, dtype=torch.float32), atol=1e-3, rtol=0)


def test_boxes_to_original_clips_predictions():
    _, out = eval_preset(100)(*drawn_sample())  # 120x200 -> scale 0.5, pad top 20
    preds = torch.tensor([[-10.0, 0.0, 120.0, 50.0]])
    assert boxes_to_original(preds, out).tolist() == [[0.0, 0.0, 200.0, 60.0]]


def test_train_preset_order_and_output():
    tf = train_preset(128)
    names = [type(t).__name__ for t in tf.transforms]
    assert names.index("Letterbox") < names.index("PhotometricDistort"), "photometric runs after resizing"
    assert names.index("ClampBoundingBoxes") < names.index("SanitizeBoxes") < names.index("ToDtype") == len(names) - 1
    image, target = drawn_sample()
    out_img, out = tf(image, target)
    assert out_img.dtype == torch.float32 and out_img.shape == (3, 128, 128) and 0 <= out_img.min() <= out_img.max() <= 1
    assert image.dtype == torch.uint8 and target["boxes"].tolist() == BOXES, "inputs are not modified"
    clone = pickle.loads(pickle.dumps(tf))
    assert [type(t).__name__ for t in clone.transforms] == names


@pytest.mark.parametrize("bad", [
    lambda: train_preset(0), lambda: train_preset(64, mode="stretch"), lambda: train_preset(64, flip=2),
    lambda: Mosaic(64, center_range=(0.8, 0.2)), lambda: letterbox_params((0, 10), 32),
    lambda: Mosaic(64)([drawn_sample()] * 3),
])
def test_bad_arguments_raise_value_error(bad):
    with pytest.raises(ValueError):
        bad()


def test_mosaic_dataset_probability_and_switch():
    base = VOCDetection(SAMPLE, ids=[f"shapes_{i:04d}" for i in range(8)])
    ds = MosaicDataset(base, size=128, p=1.0, transforms=train_preset(128, photometric=False), close_after_epoch=3)
    torch.manual_seed(0)
    image, target = ds[2]
    assert image.shape == (3, 128, 128) and target["orig_size"].tolist() == [128, 128]
    assert target["image_id"].item() == base.coco_ids[2] and ds.classes == base.classes  # the main tile's image
    ds.set_epoch(3)
    assert not ds.enabled
    _, target = ds[2]
    assert target["orig_size"].tolist() == base.sizes[2].tolist(), "mosaic is off from close_after_epoch on"
    ds.set_epoch(0)
    ds.set_enabled(False)
    assert not ds.enabled
    clone = pickle.loads(pickle.dumps(ds))
    assert len(clone) == 8 and not clone.enabled
    never = MosaicDataset(base, size=128, p=0.0, transforms=train_preset(128))
    assert all(never[i][1]["orig_size"].tolist() == base.sizes[i].tolist() for i in range(4))


@pytest.mark.slow
def test_mosaic_switch_reaches_persistent_workers():
    base = VOCDetection(SAMPLE, ids=[f"shapes_{i:04d}" for i in range(8)])
    ds = MosaicDataset(base, size=64, p=1.0, transforms=train_preset(64, photometric=False))
    loader = make_loader(ds, batch_size=4, num_workers=2, persistent_workers=True, multiprocessing_context="fork")
    sizes = [t["orig_size"].tolist() for _, ts in loader for t in ts]
    assert sizes == [[64, 64]] * 8
    ds.set_enabled(False)
    set_epoch(loader, 1)
    sizes = sorted(t["orig_size"].tolist() for _, ts in loader for t in ts)
    assert sizes == sorted(base.sizes.tolist())


# ------------------------------------------------------------------------------------------- fused photometric

NO_OP = dict(brightness=None, contrast=None, saturation=None, hue=None, permutation=None, contrast_before=True)


@pytest.mark.parametrize("params, reference", [
    ({"brightness": 1.1}, lambda x: F.adjust_brightness(x, 1.1)),
    ({"brightness": 0.9}, lambda x: F.adjust_brightness(x, 0.9)),
    ({"contrast": 1.4}, lambda x: F.adjust_contrast(x, 1.4)),
    ({"contrast": 0.6}, lambda x: F.adjust_contrast(x, 0.6)),
    ({"saturation": 0.5}, lambda x: F.adjust_saturation(x, 0.5)),
    ({"saturation": 1.5}, lambda x: F.adjust_saturation(x, 1.5)),
    ({"permutation": [2, 0, 1]}, lambda x: F.permute_channels(x, [2, 0, 1])),
    ({"brightness": 1.1, "contrast": 1.2, "contrast_before": True},
     lambda x: F.adjust_contrast(F.adjust_brightness(x, 1.1), 1.2)),
])
def test_photometric_distort_matches_torchvision_ops(params, reference):
    torch.manual_seed(0)
    x = tv_tensors.Image(torch.randint(20, 230, (3, 32, 48), dtype=torch.uint8))
    ours = PhotometricDistort().transform(x, {**NO_OP, **params})
    assert isinstance(ours, tv_tensors.Image) and ours.dtype == torch.uint8 and ours.shape == x.shape
    diff = (ours.to(torch.int32) - reference(x).as_subclass(torch.Tensor).to(torch.int32)).abs()
    assert diff.max() <= 2 and diff.float().mean() < 1.0  # torchvision truncates the grey mean on uint8
    f = PhotometricDistort().transform(F.to_dtype(x, torch.float32, scale=True), {**NO_OP, **params})
    assert f.dtype == torch.float32 and 0 <= f.min() and f.max() <= 1
    assert (f * 255 - ours.float()).abs().max() <= 1.01


@pytest.mark.parametrize("h", [0.05, -0.05])
def test_photometric_hue_turns_the_same_way_as_adjust_hue(h):
    import colorsys

    x = torch.tensor([200, 50, 50], dtype=torch.uint8)[:, None, None].expand(3, 2, 2).clone()
    ours = PhotometricDistort().transform(x, {**NO_OP, "hue": h})[:, 0, 0]
    hue = colorsys.rgb_to_hsv(*(v / 255 for v in ours.tolist()))[0]
    shift = (hue + 0.5) % 1.0 - 0.5  # red starts at hue 0
    assert shift * h > 0 and abs(shift) < 2 * abs(h)


def test_photometric_distort_leaves_boxes_and_other_inputs_alone():
    torch.manual_seed(3)
    image, target = drawn_sample()
    out_img, out = PhotometricDistort(p=1.0)(image, target)
    assert out["boxes"].tolist() == BOXES and out["labels"] is target["labels"]
    assert not torch.equal(out_img, image)


def _random_sample(gen: torch.Generator, n: int, hw=(100, 110), hwc: bool = True):
    """An image (HWC-ordered memory like decode_image's, or CHW) and n random boxes, some reaching outside."""
    h, w = hw
    pixels = torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8)
    image = tv_tensors.Image(pixels.permute(2, 0, 1) if hwc else pixels.permute(2, 0, 1).contiguous())
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([w + 20.0, h + 20.0]) - 10
    boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=gen) * 50], 1)
    return image, make_target(boxes, torch.arange(n), canvas_size=hw)


def test_letterbox_takes_any_sample_structure():
    """A dict sample (as v2 accepts) gets the same pixels, boxes and ``letterbox`` record as ``(image, target)``."""
    gen = torch.Generator().manual_seed(3)
    lb = Letterbox((96, 64))
    for n in (0, 5):
        image, target = _random_sample(gen, n)
        out_img, out = lb(image, target)
        as_dict = lb({"image": image, **target})
        assert torch.equal(out_img, as_dict["image"]) and out_img.shape == (3, 96, 64)
        for key in target:
            assert torch.equal(out[key].as_subclass(torch.Tensor), as_dict[key].as_subclass(torch.Tensor)), key
        assert out["letterbox"].tolist() == as_dict["letterbox"].tolist() == [64 / 110, 58 / 100, 0, 19]
        assert out["boxes"].canvas_size == as_dict["boxes"].canvas_size == (96, 64)
        assert "letterbox" not in target


@pytest.mark.parametrize("hwc", [True, False])
def test_photometric_distort_same_for_any_memory_layout(hwc):
    gen = torch.Generator().manual_seed(1)
    image, target = _random_sample(gen, 2, hwc=hwc)
    torch.manual_seed(0)
    a, _ = PhotometricDistort(p=1.0)(image, target)
    torch.manual_seed(0)
    b, _ = PhotometricDistort(p=1.0)(tv_tensors.Image(image.contiguous()), target)
    assert a.shape == image.shape and a.dtype == torch.uint8
    assert (a.int() - b.int()).abs().max() <= 1  # summation order may differ by one rounding step
