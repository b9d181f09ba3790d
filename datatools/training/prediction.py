"""``predict``: a trained checkpoint + images -> COCO results JSON, ready for ``datatools evaluate`` and
``datatools visualize --pred``.

Use :func:`predict` with a folder of images (ids 1..N in sorted path order; every entry also carries ``file_name``,
which ``evaluate`` matches first) or with a dataset (``format=`` voc/yolo/coco, optional ``split``): then image and
category ids are exactly those ``evaluate`` uses for that ground truth (1..N in dataset order for VOC/YOLO, as
``voc2coco`` writes them; the file's own ids for COCO).
"""
from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datatools.core.errors import InputError, NoInputError, UsageError
from datatools.core.atomic import atomic_write
from datatools.core.paths import check_output_dir
from datatools.core.images import list_images
from datatools.core.parallel import StageProgress, stage_callbacks
from datatools.core.boxes import xyxy_to_xywh_array
from datatools.training.checkpoint import load_checkpoint
from datatools.training.config import TrainConfig
from datatools.training.distributed import resolve_device
from datatools.training.evaluation import EVAL_CONF, EVAL_MAX_DET, checkpoint_model, predict_batches


class ImageListDataset(torch.utils.data.Dataset):
    """Images by path with an empty target (so eval transforms record the letterbox or keep-aspect scale for mapping
    boxes back). An image that cannot be decoded comes as a small blank one whose target names the reason
    (``decode_error``): one broken file among thousands is skipped and counted, not the end of the run."""

    def __init__(self, paths: list[str], transforms) -> None:
        self.paths = list(paths)
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from torchvision import tv_tensors

        from datatools.datasets import decode, make_target
        from datatools.datasets.decode import ImageDecodeError

        error = None
        try:
            image = decode(self.paths[index])
        except ImageDecodeError as e:
            image, error = tv_tensors.Image(torch.zeros((3, 32, 32), dtype=torch.uint8)), str(e)
        h, w = int(image.shape[-2]), int(image.shape[-1])
        target = make_target(np.zeros((0, 4)), [], canvas_size=(h, w), image_id=index)
        if error:
            target["decode_error"] = error
        return self.transforms(image, target)


@dataclass
class PredictResult:
    out: str
    images: int
    detections: int
    classes: tuple[str, ...]
    device: str
    skipped: list[str] = dataclasses.field(default_factory=list)  # one line per image that could not be decoded


def _dataset_format(format: str | None, images: Path, split: str | None) -> str | None:
    """The dataset format of ``images`` for :func:`predict`, or None for a plain image folder."""
    from datatools import formats

    if format in (None, "", "images"):
        if split:
            raise UsageError("--split needs a dataset: pass --format FORMAT (or auto)")
        return None
    if format != "auto":
        return formats.get(format).NAME
    try:
        return formats.detect(images)
    except UsageError:  # no dataset layout: a folder of images (or one image)
        if split:
            raise UsageError(f"{images}: --split needs a dataset, and its format cannot be told; pass --format")
        return None


def result_names(records) -> list[str]:
    """The ``file_name`` of each record's results: its file name, with its split's folder when another image has the
    same base name (YOLO's ``train/im0.jpg`` and ``val/im0.jpg`` are both ``im0.jpg``): evaluate tells them apart by
    it, on the whole dataset and on one split."""
    names = [r.file_name or r.image_id for r in records]
    shared = Counter(posixpath.basename(n) for n in names)
    return [f"{r.splits[0]}/{n}" if shared[posixpath.basename(n)] > 1 and r.splits and "/" not in n else n
            for n, r in zip(names, records)]


def predict(checkpoint: str | os.PathLike, images: str | os.PathLike, out: str | os.PathLike, *,
            format: str | None = "auto", split: str | None = None, device: str = "auto", batch_size: int = 8,
            conf: float = EVAL_CONF, max_det: int = EVAL_MAX_DET, workers: int = 2, image_size: int | None = None,
            progress: StageProgress | None = None) -> PredictResult:
    """Run the checkpoint's model on ``images`` and write COCO results (``image_id, category_id, bbox [x, y, w, h],
    score, file_name``) to ``out``. The defaults of ``conf`` and ``max_det`` (0.001 and 100) are the usual settings
    for mAP and those of the evaluation during training, so ``predict`` + ``evaluate`` reproduce its numbers.

    ``format`` ``auto`` detects a dataset in ``images`` as ``convert`` and ``check`` do (then its ids are the ones
    ``evaluate`` uses for it) and falls back to a plain image folder when it is none; ``voc``/``yolo``/``coco``
    name the dataset's format; ``images`` (or None) always reads a plain image folder. ``progress``: a command's
    progress bar (the ``predict`` stage, in images)."""
    from datatools.datasets import make_loader
    from datatools.datasets.transforms import eval_preset

    check_output_dir(out, [images, checkpoint])  # results never replace the model or land among the images
    ckpt = load_checkpoint(checkpoint)
    # The checkpoint's resize mode: letterboxed squares, or keep-aspect (shorter side ``size``; the model pads each
    # batch itself). Either way the eval preset records the scale and boxes are mapped back to the original image.
    cfg = TrainConfig.from_dict(ckpt["args"])
    cfg = dataclasses.replace(cfg, image_size=image_size or cfg.image_size)
    classes = tuple(ckpt.get("classes") or ())
    images = Path(images)
    if not images.exists():
        raise UsageError(f"{images}: no such file or directory")
    format = _dataset_format(format, images, split)
    if format:
        from datatools.metrics.inputs import load_ground_truth

        gt = load_ground_truth(images, format=format, split=split)
        classes = gt.classes
        found = [(i, r) for i, r in enumerate(gt.images) if r.image_path]
        paths = [str(r.image_path) for _, r in found]
        ids = [gt.image_ids[i] for i, _ in found]
        names = result_names([r for _, r in found])
        cat_ids = list(gt.category_ids)
    else:
        if images.is_file():
            found = {images.name: str(images)}
        else:
            found = list_images(images)
        if not found:
            raise NoInputError(f"{images}: no images found")
        names = sorted(found)
        paths = [found[n] for n in names]
        ids = list(range(1, len(paths) + 1))
        # the training data's ids (COCO's own, with gaps: 1..K scored mango as apple), else 1..K as voc2coco numbers
        trained = list(ckpt.get("category_ids") or ())
        cat_ids = trained if len(trained) == len(classes) else list(range(1, len(classes) + 1))
    dev = resolve_device(device)
    # a dataset's classes are checked against the checkpoint's; a plain folder's are the checkpoint's own
    model = checkpoint_model(ckpt, cfg, classes=classes if format else None, conf=conf, max_det=max_det).to(dev)
    ds = ImageListDataset(paths, eval_preset(cfg.image_size, mode=cfg.resize_mode, dtype=None))
    loader = make_loader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    # The model keeps at most ``max_det`` boxes scored above ``conf``, best first.
    results, skipped = [], []
    preds = predict_batches(model, loader, dev, **stage_callbacks(progress, "predict", total=len(paths)))
    for idx, p in sorted(preds.items()):
        if "error" in p:
            skipped.append(p["error"])
            continue
        xywh = np.round(xyxy_to_xywh_array(p["boxes"]), 2).tolist()
        results += [{"image_id": ids[idx], "file_name": names[idx], "category_id": cat_ids[int(label)], "bbox": box,
                     "score": round(float(score), 5)} for box, label, score in zip(xywh, p["labels"], p["scores"])]
    if len(skipped) == len(paths):
        raise InputError(images, f"none of its {len(paths)} image(s) could be decoded; the first: {skipped[0]}")
    atomic_write(out, json.dumps(results, separators=(",", ":")) + "\n")
    return PredictResult(out=str(out), images=len(paths) - len(skipped), detections=len(results), classes=classes,
                         device=str(dev), skipped=skipped)
