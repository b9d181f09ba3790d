"""CPU/GPU agreement: the transforms, the collate + device transfer and the evaluation give the same results on a
CUDA device as on the CPU. Skipped without CUDA; ``benchmarks/gpu_check.sh`` runs them on a lent GPU.

Every test name holds "cuda" (the GPU check selects them with ``-k cuda``). The GPU runs in true fp32 here (TF32
off): the claim is that the code paths agree, and TF32's 10-bit mantissa would blur that.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


@pytest.fixture(autouse=True)
def true_fp32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def sample(i: int = 0):
    """One sample_data image (uint8, as the datasets return it) with three boxes of its canvas."""
    from torchvision import tv_tensors
    from torchvision.io import decode_image

    path = sorted((SAMPLE / "JPEGImages").iterdir())[i]
    img = tv_tensors.Image(decode_image(str(path)))
    h, w = img.shape[-2:]
    boxes = torch.tensor([[0.1 * w, 0.2 * h, 0.5 * w, 0.6 * h], [0.4 * w, 0.1 * h, 0.9 * w, 0.5 * h],
                          [0.05 * w, 0.7 * h, 0.3 * w, 0.95 * h]])
    target = {"boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
              "labels": torch.tensor([1, 2, 3])}
    return img, target


def on(device, img, target):
    return img.to(device), {k: v.to(device) for k, v in target.items()}


def presets():
    from datatools.datasets.transforms import eval_preset, train_preset

    return {
        "eval-letterbox": eval_preset(320, dtype=None),
        "eval-keep-aspect": eval_preset(320, mode="keep-aspect", dtype=None),
        "eval-float": eval_preset(320),
        "train-letterbox": train_preset(320, dtype=None),
        "train-keep-aspect": train_preset(320, mode="keep-aspect", dtype=None),
        "train-ssd": train_preset(320, dtype=None, iou_crop=True, zoom_out=True),
        "train-jitter": train_preset(320, dtype=None, scale_jitter=(0.5, 1.5)),
    }


@pytest.mark.parametrize("name", ["eval-letterbox", "eval-keep-aspect", "eval-float", "train-letterbox",
                                  "train-keep-aspect", "train-ssd", "train-jitter"])
def test_cuda_transforms_agree_with_cpu(name):
    """The same preset with the same seed on a CPU and a CUDA tensor: the same geometry (boxes, labels, size) and
    pixels within interpolation rounding. The random draws come from the CPU generator either way."""
    t = presets()[name]
    for seed in range(4):
        img, target = sample(seed)
        torch.manual_seed(seed)
        ci, ct = t(*on("cpu", img, target))
        torch.manual_seed(seed)
        gi, gt = t(*on("cuda", img, target))
        assert gi.device.type == "cuda" and gt["boxes"].device.type == "cuda"
        assert gi.shape == ci.shape and gi.dtype == ci.dtype
        assert torch.equal(gt["labels"].cpu(), ct["labels"])
        torch.testing.assert_close(gt["boxes"].cpu().as_subclass(torch.Tensor), ct.get("boxes").as_subclass(torch.Tensor),
                                   atol=1e-3, rtol=0)
        diff = (gi.cpu().float() - ci.float()).abs()
        scale = 255.0 if ci.dtype == torch.uint8 else 1.0
        assert float(diff.max()) <= 2 * scale / 255, (name, seed, float(diff.max()))  # uint8 rounding: 1-2 levels
        assert float(diff.mean()) <= 0.5 * scale / 255, (name, seed, float(diff.mean()))


def test_cuda_collate_and_transfer_agree_with_cpu():
    """A loader batch (workers, shared-memory transport, pinned memory where CUDA is present) moved with to_device:
    the same float images (uint8 / 255 is exact on both) in the same memory order, and the same targets."""
    from datatools.datasets import detection_collate, make_loader, to_device
    from datatools.datasets.transforms import eval_preset

    t = eval_preset(256, dtype=None)
    items = [t(*sample(i)) for i in range(6)]

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            return items[i]

    loader = make_loader(Items(), batch_size=3, shuffle=False, num_workers=2)
    n = 0
    for images, targets in loader:
        ref_images, ref_targets = detection_collate(items[n:n + len(targets)])
        ci, ctg = to_device(ref_images, ref_targets, "cpu")
        gi, gtg = to_device(images, targets, torch.device("cuda"))
        assert gi.device.type == "cuda" and gi.dtype == torch.float32
        assert torch.equal(gi.cpu(), ci)
        assert gi.is_contiguous(memory_format=torch.channels_last) == ci.is_contiguous(
            memory_format=torch.channels_last)
        for g, c in zip(gtg, ctg):
            assert torch.equal(g["boxes"].cpu(), c["boxes"]) and torch.equal(g["labels"].cpu(), c["labels"])
        n += len(targets)
    assert n == len(items)


@pytest.fixture(scope="module")
def cuda_checkpoint(tmp_path_factory) -> Path:
    """A small model trained a few epochs on the GPU (confident boxes: their order does not hang on rounding)."""
    from datatools.training import TrainConfig, train

    out = tmp_path_factory.mktemp("cuda_ckpt")
    train(TrainConfig(data=str(SAMPLE), out=str(out), model="fasterrcnn_mobilenet_v3_large_fpn", image_size=192,
                      epochs=10, batch_size=8, limit=48, workers=2, device="cuda", seed=1))
    return out / "last.pt"


def test_cuda_evaluation_agrees_with_cpu(cuda_checkpoint):
    """The same checkpoint evaluated on the CPU and on the GPU: the same mAP (within 0.01) and, for each image's top
    CPU detections (up to 5, score at least half the image's best), a GPU detection of the same class on the same
    place (every corner within 1 px) with about the same score."""
    from datatools.training import evaluate_checkpoint

    c50, cm, cpred = evaluate_checkpoint(cuda_checkpoint, device="cpu")
    g50, gm, gpred = evaluate_checkpoint(cuda_checkpoint, device="cuda")
    assert sorted(cpred) == sorted(gpred) and cpred
    assert abs(c50 - g50) <= 0.01 and abs(cm - gm) <= 0.01, (c50, g50, cm, gm)
    compared = 0
    for i, c in cpred.items():
        cs, cb, cl = (torch.as_tensor(c[k]).cpu() for k in ("scores", "boxes", "labels"))
        gs, gb, gl = (torch.as_tensor(gpred[i][k]).cpu() for k in ("scores", "boxes", "labels"))
        if len(cs) == 0:
            continue
        top = cs.argsort(descending=True)[:5]
        top = top[cs[top] >= max(0.05, 0.5 * float(cs.max()))]
        if len(top) == 0:
            continue
        assert len(gs), f"image {i}: detections on the CPU, none on the GPU"
        # Corner distance, not IoU: a barely trained model also gives zero-area boxes (IoU 0/0).
        dist = (cb[top].float()[:, None, :] - gb.float()[None, :, :]).abs().amax(dim=-1)
        dist[cl[top][:, None] != gl[None, :]] = float("inf")
        best, j = dist.min(dim=1)
        assert bool((best <= 1.0).all()), (i, best)
        assert torch.allclose(gs[j], cs[top], atol=0.05), (i, gs[j], cs[top])
        compared += len(top)
    assert compared > 0  # the comparison compared something


def test_cuda_logged_map_equals_evaluation_on_the_gpu(cuda_checkpoint):
    """The mAP the run logged for its last epoch equals a fresh evaluation of last.pt on the GPU."""
    import csv

    from datatools.training import evaluate_checkpoint

    with open(cuda_checkpoint.parent / "results.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    m50, _, _ = evaluate_checkpoint(cuda_checkpoint, device="cuda")
    assert abs(float(last["map50"]) - m50) <= 0.005, (last["map50"], m50)
