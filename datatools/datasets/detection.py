"""PyTorch detection datasets over the datatools annotation model.

Use these classes in training code. Each one reads its annotations ONCE, at construction, through the same readers
the CLI uses (``datatools.formats.get(fmt).read``) and the same box policies as ``datatools convert``
(:func:`datatools.ops.sanitize.prepare`), so VOC and the YOLO or COCO converted from it give the same boxes, the same
class order and the same pixel convention.

``dataset[i]`` returns ``(image, target)``:

* ``image``: a :class:`torchvision.tv_tensors.Image`, uint8, ``(3, H, W)``, decoded with
  :func:`torchvision.io.decode_image` in RGB (grayscale and palette images become 3 channels) with the EXIF orientation
  applied. Boxes are in that displayed frame, which is datatools' convention for image sizes.
* ``target``: a dict of tensors only (so ``{k: v.to(device) for k, v in t.items()}`` works):

  ============ ===================================================================================================
  ``boxes``     :class:`~torchvision.tv_tensors.BoundingBoxes`, float32, ``(N, 4)``, XYXY, continuous pixels,
                ``canvas_size=(H, W)``. ``(0, 4)`` for an image without objects, never a missing key.
  ``labels``    int64 ``(N,)``: index in :attr:`DetectionDataset.classes` plus ``label_offset``.
  ``image_id``  int64 scalar: the position of the image in this dataset; ``ds.image_ids[i]`` is its string key.
  ``area``      float32 ``(N,)``: box area in the original image (COCO's ``area``).
  ``iscrowd``   int64 ``(N,)``: 1 for COCO crowd objects.
  ``difficult`` bool ``(N,)``: VOC's difficult flag.
  ``orig_size`` int64 ``(2,)``: ``(H, W)`` of the decoded image before any transform.
  ``masks``     only with ``return_masks=True``: :class:`~torchvision.tv_tensors.Mask` ``(N, H, W)`` uint8, the
                filled boxes (the annotation model holds boxes only, no polygons).
  ============ ===================================================================================================

Every torchvision.transforms.v2 transform then works with no adapter; see :mod:`datatools.datasets.transforms` for
presets, including a ``SanitizeBoundingBoxes`` that keeps ``area``/``iscrowd``/``difficult`` aligned with ``boxes``.

Datasets store only plain data (strings, numpy arrays, picklable transforms), so they work with DataLoader workers
under both the ``fork`` and the ``spawn`` start methods.
"""
from __future__ import annotations

import os
import warnings
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image, read_file

from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention
from datatools.core.errors import NoInputError, UsageError
from datatools.core.model import Dataset, Finding

__all__ = ["COCODetection", "DetectionDataset", "VOCDetection", "YOLODetection", "decode", "make_target"]

# torchvision 0.29 deprecates its image codecs in favour of TorchCodec and warns on EVERY decode call. The decoders
# still work and are what this package measures and uses; silence only that message, only from torchvision.io.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated",
                        category=DeprecationWarning, module=r"torchvision\.io")

Transform = Callable[[Any, Any], tuple[Any, Any]]


def decode(path: str) -> torch.Tensor:
    """Decode an image file to uint8 ``(3, H, W)`` RGB with its EXIF orientation applied.

    ``read_file`` + ``decode_image`` (libjpeg-turbo / libpng) is faster than PIL followed by a tensor conversion and
    returns the tensor directly. Grayscale, palette and alpha images are converted to 3 channels.
    """
    return decode_image(read_file(path), mode=ImageReadMode.RGB, apply_exif_orientation=True)


def make_target(boxes: np.ndarray | torch.Tensor, labels: Sequence[int] | np.ndarray | torch.Tensor, *,
                canvas_size: tuple[int, int], image_id: int = 0, iscrowd=None, difficult=None,
                area=None) -> dict[str, torch.Tensor]:
    """Build a target dict in the layout the datasets return, for tests and for hand-made samples.

    ``boxes`` are XYXY pixels; the per-box fields default to zeros/False and ``area`` to the box areas.
    """
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
    n = b.shape[0]
    if area is None:
        area_t = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    else:
        area_t = torch.as_tensor(area, dtype=torch.float32).reshape(n)
    return {
        "boxes": tv_tensors.BoundingBoxes(b, format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=tuple(canvas_size)),
        "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(n)),
        "image_id": torch.tensor(image_id, dtype=torch.int64),
        "area": area_t,
        "iscrowd": torch.zeros(n, dtype=torch.int64) if iscrowd is None else torch.as_tensor(iscrowd, dtype=torch.int64).reshape(n),
        "difficult": torch.zeros(n, dtype=torch.bool) if difficult is None else torch.as_tensor(difficult, dtype=torch.bool).reshape(n),
        "orig_size": torch.tensor(tuple(canvas_size), dtype=torch.int64),
    }


class DetectionDataset(torch.utils.data.Dataset):
    """A map-style detection dataset built from a :class:`datatools.Dataset` (the annotation model).

    Use :meth:`from_path` (or :class:`VOCDetection`, :class:`YOLODetection`, :class:`COCODetection`) to read from
    disk; use the constructor directly when you already hold a model, e.g. after ``datatools.ops.sanitize.prepare``.

    Options (keyword-only):

    * ``transforms``: a callable ``(image, target) -> (image, target)``, typically a torchvision.transforms.v2
      pipeline such as :func:`datatools.datasets.transforms.train_preset`. It must be picklable for ``spawn`` workers
      (v2 transforms are; lambdas are not).
    * ``splits``: keep images in any of these splits (VOC ImageSets lists, YOLO ``train``/``val``, COCO json names).
    * ``ids``: keep only these image ids (string keys, in this order).
    * ``classes``: the class list and order; objects of other classes are dropped and counted. Default: the
      dataset's classes (sorted names for VOC, ``data.yaml`` order for YOLO, category order for COCO).
    * ``label_offset``: added to every label, e.g. ``1`` for torchvision detection models, which reserve 0 for the
      background.
    * ``keep_difficult``: keep VOC difficult objects (flagged in ``target["difficult"]``); ``False`` drops them.
    * ``keep_crowd``: keep COCO crowd objects (flagged in ``target["iscrowd"]``).
    * ``return_masks``: add ``target["masks"]``, filled box masks.
    * ``skip_empty``: drop images without objects (after filtering), e.g. for training Faster R-CNN on old versions.

    Boxes go through the same policy as ``datatools convert``: boxes reaching outside the image are clipped, and
    zero-area, inverted or wholly outside boxes are dropped (BCCD has two zero-area boxes: the reader drops them as
    ``zero-area``). Images whose file is missing are dropped. Everything dropped is counted in :attr:`dropped`
    (reason -> objects; ``images:<reason>`` -> images) and described in :attr:`findings`, so
    ``num_objects + (objects dropped) == objects read`` when no ``splits``/``ids`` narrow the selection (images they
    leave out are not drops).
    """

    def __init__(self, data: Dataset, *, transforms: Transform | None = None,
                 splits: Sequence[str] | str | None = None, ids: Sequence[str] | None = None,
                 classes: Sequence[str] | None = None, label_offset: int = 0, keep_difficult: bool = True,
                 keep_crowd: bool = True, return_masks: bool = False, skip_empty: bool = False) -> None:
        from datatools.ops.sanitize import prepare

        if not isinstance(data, Dataset):
            raise TypeError(f"expected a datatools.Dataset, got {type(data).__name__}; use DetectionDataset.from_path")
        if isinstance(splits, str):
            splits = [splits]
        if classes is not None and len(set(classes)) != len(classes):
            raise ValueError(f"classes has duplicates: {list(classes)}")
        prepared = prepare(data, classes=list(classes) if classes else None,
                           difficult="keep" if keep_difficult else "skip", clip_boxes=True)
        records = list(prepared.images)
        dropped: Counter[str] = Counter()
        if splits:
            wanted = set(splits)
            unknown = wanted - set(prepared.splits)
            if unknown:
                raise UsageError(f"unknown split(s) {sorted(unknown)}: the dataset has {list(prepared.splits) or 'none'}")
            records = [r for r in records if wanted.intersection(r.splits)]
        if ids is not None:
            by_id = {r.image_id: r for r in records}
            missing = [i for i in ids if i not in by_id]
            if missing:
                raise UsageError(f"{len(missing)} id(s) not in the dataset, e.g. {missing[:3]}")
            records = [by_id[i] for i in ids]
        # Objects the reader dropped (e.g. zero-area boxes) and those the policies dropped, by reason.
        for f in prepared.findings:
            if f.objects:
                dropped[f.code] += f.objects
        class_index = {c: k for k, c in enumerate(prepared.classes)}
        kept_records = []
        boxes, labels, crowd, difficult, offsets = [], [], [], [], [0]
        for r in records:
            if not r.image_path:
                dropped["missing-image"] += len(r.annotations)
                dropped["images:missing-image"] += 1
                continue
            anns = r.annotations
            if not keep_crowd:
                n0 = len(anns)
                anns = tuple(a for a in anns if not a.iscrowd)
                if n0 - len(anns):
                    dropped["crowd-skipped"] += n0 - len(anns)
            if skip_empty and not anns:
                dropped["images:empty"] += 1
                continue
            kept_records.append(r)
            for a in anns:
                boxes.append(a.box)
                labels.append(class_index[a.label])
                crowd.append(a.iscrowd)
                difficult.append(a.difficult)
            offsets.append(len(boxes))
        if not kept_records:
            # an error (exit 1 in the CLI), not a dataset of length 0 that fails later or trains on nothing
            raise NoInputError(_empty_message(data, prepared, records, splits=splits, ids=ids,
                                              skip_empty=skip_empty))
        self.classes: tuple[str, ...] = tuple(prepared.classes)
        self.label_offset = int(label_offset)
        self.transforms = transforms
        self.return_masks = bool(return_masks)
        self.root = prepared.root
        self.format = prepared.format
        self.findings: tuple[Finding, ...] = tuple(prepared.findings)
        self.dropped: dict[str, int] = dict(sorted(dropped.items()))
        # Plain data only: strings and numpy arrays pickle cheaply for spawn workers and hold no handles.
        self.image_ids: tuple[str, ...] = tuple(r.image_id for r in kept_records)
        self.paths: tuple[str, ...] = tuple(str(r.image_path) for r in kept_records)
        self.sizes = np.array([(r.height or 0, r.width or 0) for r in kept_records], dtype=np.int64).reshape(-1, 2)
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self._labels = np.asarray(labels, dtype=np.int64)
        self._crowd = np.asarray(crowd, dtype=bool)
        self._difficult = np.asarray(difficult, dtype=bool)
        # The per-object arrays in the dtypes of the target, so __getitem__ only slices and copies (no tensor maths
        # per sample: each small torch op costs microseconds, which added up to 5% of a 512 px training sample).
        self._boxes32 = self._boxes.astype(np.float32)
        self._area32 = ((self._boxes32[:, 2] - self._boxes32[:, 0]) * (self._boxes32[:, 3] - self._boxes32[:, 1]))
        self._crowd64 = self._crowd.astype(np.int64)

    # ------------------------------------------------------------------------------------------------ builders

    @classmethod
    def from_path(cls, path: str | os.PathLike, format: str = "auto", *, images: str | os.PathLike | None = None,
                  sets: Sequence[str] | str | None = None, convention: PixelConvention | str = DEFAULT_CONVENTION,
                  workers: int | None = None, **options: Any) -> "DetectionDataset":
        """Read ``path`` in ``format`` (voc, yolo, coco; ``auto`` detects it as the CLI does) with the CLI's readers
        and build a dataset.

        ``sets`` (VOC only) chooses which ImageSets/Main lists are read (default: all of train/val/test present);
        ``splits`` (in ``options``) then filters images. ``convention`` is the VOC pixel convention (default
        ``as-is``). Other keyword options are those of :class:`DetectionDataset`.
        """
        from datatools import formats

        mod = formats.get(formats.resolve(format, path))
        read_opts: dict[str, Any] = {"workers": workers}
        if images:
            read_opts["images"] = images
        if mod.NAME == "voc":
            splits = options.get("splits")
            read_opts["sets"] = sets if sets is not None else (None if splits is None else _as_list(splits))
            read_opts["convention"] = PixelConvention(convention)
        elif sets:
            raise UsageError("sets applies to VOC only; use splits= to filter YOLO or COCO splits")
        data = mod.read(path, **read_opts)
        return cls(data, **options)

    # ------------------------------------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        """Number of classes including the ``label_offset`` (e.g. ``len(classes) + 1`` with a background class)."""
        return len(self.classes) + self.label_offset

    @property
    def num_objects(self) -> int:
        return int(self._boxes.shape[0])

    def annotations(self, index: int) -> dict[str, np.ndarray]:
        """The stored annotations of one image as numpy arrays, without decoding it (for samplers and statistics)."""
        index = self._check_index(index)
        lo, hi = self._offsets[index], self._offsets[index + 1]
        return {"boxes": self._boxes[lo:hi].copy(), "labels": self._labels[lo:hi] + self.label_offset,
                "iscrowd": self._crowd[lo:hi].copy(), "difficult": self._difficult[lo:hi].copy()}

    def aspect_ratios(self) -> np.ndarray:
        """Width / height per image from the annotations (or image headers), without decoding; 1.0 when unknown."""
        h, w = self.sizes[:, 0].astype(np.float64), self.sizes[:, 1].astype(np.float64)
        return np.where((h > 0) & (w > 0), w / np.maximum(h, 1), 1.0)

    def load_image(self, index: int) -> tv_tensors.Image:
        """Decode image ``index`` (uint8 RGB, EXIF applied). Raises ``RuntimeError`` naming the file when corrupt."""
        index = self._check_index(index)
        path = self.paths[index]
        try:
            return decode(path).as_subclass(tv_tensors.Image)
        except (RuntimeError, OSError) as e:
            raise RuntimeError(f"{path}: cannot decode the image: {e}") from e

    def load_target(self, index: int, canvas_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The untransformed target of image ``index`` for an image of ``canvas_size`` ``(H, W)``."""
        index = self._check_index(index)
        lo, hi = int(self._offsets[index]), int(self._offsets[index + 1])
        # copies, never views: a caller editing a target in place must not change the dataset
        b = torch.from_numpy(self._boxes32[lo:hi].copy())
        target = {
            "boxes": tv_tensors.BoundingBoxes(b, format=tv_tensors.BoundingBoxFormat.XYXY, canvas_size=canvas_size),
            "labels": torch.from_numpy(self._labels[lo:hi] + self.label_offset),
            "image_id": torch.tensor(index, dtype=torch.int64),
            "area": torch.from_numpy(self._area32[lo:hi].copy()),
            "iscrowd": torch.from_numpy(self._crowd64[lo:hi].copy()),
            "difficult": torch.from_numpy(self._difficult[lo:hi].copy()),
            "orig_size": torch.tensor(canvas_size, dtype=torch.int64),
        }
        if self.return_masks:
            target["masks"] = box_masks(b, canvas_size)
        return target

    def __getitem__(self, index: int) -> tuple[Any, dict[str, torch.Tensor]]:
        image = self.load_image(index)
        target = self.load_target(index, (int(image.shape[-2]), int(image.shape[-1])))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        return index % n

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={self.root!r}, format={self.format!r}, images={len(self)}, "
                f"objects={self.num_objects}, classes={list(self.classes)}, label_offset={self.label_offset}, "
                f"transforms={self.transforms!r})")


def box_masks(boxes: torch.Tensor, canvas_size: tuple[int, int]) -> tv_tensors.Mask:
    """Filled rectangle masks ``(N, H, W)`` uint8 for XYXY boxes; a pixel is inside when its centre is."""
    h, w = canvas_size
    ys = torch.arange(h, dtype=torch.float32).add_(0.5)
    xs = torch.arange(w, dtype=torch.float32).add_(0.5)
    inside_y = (ys[None, :] >= boxes[:, 1:2]) & (ys[None, :] < boxes[:, 3:4])
    inside_x = (xs[None, :] >= boxes[:, 0:1]) & (xs[None, :] < boxes[:, 2:3])
    return tv_tensors.Mask((inside_y[:, :, None] & inside_x[:, None, :]).to(torch.uint8))


def _as_list(v: Sequence[str] | str) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def _empty_message(data: Dataset, prepared: Dataset, selected: Sequence, *, splits, ids, skip_empty: bool) -> str:
    """Why a dataset would have no sample, naming what was looked for where: a dataset of length 0 only fails
    later (a DataLoader that yields nothing, a training run that trains on nothing)."""
    from datatools.metrics.inputs import no_images_message

    root = data.root or "the dataset"
    if not prepared.images or not any(r.image_path for r in prepared.images):
        return no_images_message(prepared, root)
    if not selected:
        chosen = f"splits={list(splits)}" if splits else f"ids={list(ids or [])[:5]}"
        return f"{root}: {chosen} selects no image"
    if skip_empty:
        return f"{root}: every selected image is without objects (skip_empty=True)"
    return no_images_message(prepared.evolve(images=tuple(selected)), root)


def voc_year_root(root: str | os.PathLike, year: str | None = None) -> str:
    """The VOC root to read for ``root``, found as torchvision's ``VOCDetection(root, year)`` finds it.

    A root with ``Annotations/`` or XML files of its own is itself. A torchvision download root holds
    ``VOCdevkit/VOC<year>`` (``TrainVal/VOCdevkit/VOC2011`` for 2011) and a VOCdevkit folder holds ``VOC<year>``
    folders: ``year`` picks one, and without it the only one is taken. Several years without ``year``, or a
    ``year`` that is not there, is a :class:`UsageError` that names the year folders found."""
    from datatools.core import fs
    from datatools.formats.voc import devkit_years

    root = os.fspath(root)
    files = fs.files_for(root)
    if not files.isdir(root) or files.isdir(files.join(root, "Annotations")):
        return root
    if any(n.lower().endswith(".xml") for n in files.listdir(root)[1]):
        return root
    bases = [root] + [files.join(root, *d) for d in (("VOCdevkit",), ("TrainVal", "VOCdevkit"))
                      if files.isdir(files.join(root, *d))]
    found = {y: files.join(b, y) for b in bases for y in sorted(devkit_years(b))}
    if not found:
        return root  # nothing VOC-shaped: the reader and the empty-dataset check say what was looked for
    if year is not None:
        name = f"VOC{year}" if not str(year).startswith("VOC") else str(year)
        if name in found:
            return found[name]
        raise UsageError(f"{root}: no {name} folder with Annotations/; found {', '.join(found.values())}")
    if len(found) == 1:
        return next(iter(found.values()))
    raise UsageError(f"{root} holds {', '.join(found.values())}: pass year= (e.g. year=\"{sorted(found)[-1][3:]}\") "
                     "or point root at one of them")


class VOCDetection(DetectionDataset):
    """A Pascal VOC root (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main``) or a folder of XML files.

    ``VOCDetection("VOC2012", splits="train", label_offset=1, transforms=train_preset(512))``. ``splits`` picks
    ImageSets/Main lists (only those are read); ``convention`` is the VOC pixel convention (default ``as-is``:
    the numbers as written, as torchvision's ``VOCDetection``), the same as ``datatools convert``.

    ``root`` may also be a torchvision download root (``VOCdevkit/VOC2012`` inside) or a ``VOCdevkit`` folder:
    ``year`` picks the ``VOC<year>`` folder as torchvision's ``year=`` does (see :func:`voc_year_root`). No image
    found is an error that says what was looked for where, never a dataset of length 0.
    """

    def __init__(self, root: str | os.PathLike, *, year: str | None = None,
                 splits: Sequence[str] | str | None = None,
                 convention: PixelConvention | str = DEFAULT_CONVENTION, images: str | os.PathLike | None = None,
                 workers: int | None = None, **options: Any) -> None:
        from datatools import formats

        root = voc_year_root(root, year)
        data = formats.get("voc").read(root, images=images, sets=None if splits is None else _as_list(splits),
                                       convention=PixelConvention(convention), workers=workers)
        super().__init__(data, splits=splits, **options)


class YOLODetection(DetectionDataset):
    """An ultralytics-layout dataset: a ``data.yaml`` (or a folder with ``images/`` and ``labels/``).

    Class order comes from ``data.yaml`` (or ``classes.txt``), or ``classes=`` (by name; for a set without names, the
    names of its ids); ``splits`` picks its ``train``/``val``/``test`` lists.
    Image sizes come from image headers, so normalized boxes become the same pixels as the VOC they came from.
    """

    def __init__(self, root: str | os.PathLike, *, splits: Sequence[str] | str | None = None,
                 workers: int | None = None, **options: Any) -> None:
        from datatools import formats

        # classes= names the ids of a YOLO set without names (no data.yaml names, no classes.txt), as in the CLI
        classes = options.get("classes")
        data = formats.get("yolo").read(root, workers=workers, classes=list(classes) if classes else None)
        super().__init__(data, splits=splits, **options)


class COCODetection(DetectionDataset):
    """A COCO JSON file (or a folder whose ``annotations/*.json`` are splits). ``images`` is the image folder when
    it is not found next to the JSON. Category order (sorted by id) is the class order; crowd objects are kept and
    flagged unless ``keep_crowd=False``."""

    def __init__(self, root: str | os.PathLike, *, images: str | os.PathLike | None = None,
                 splits: Sequence[str] | str | None = None, workers: int | None = None, **options: Any) -> None:
        from datatools import formats

        data = formats.get("coco").read(root, images=images, workers=workers)
        super().__init__(data, splits=splits, **options)


def concat_classes(datasets: Iterable[DetectionDataset]) -> tuple[str, ...]:
    """The shared class list of several datasets; raises ``ValueError`` when they disagree (labels would mix)."""
    out: tuple[str, ...] | None = None
    for d in datasets:
        if out is None:
            out = d.classes
        elif d.classes != out:
            raise ValueError(f"class lists differ: {list(out)} vs {list(d.classes)}; pass classes= to both")
    return out or ()
