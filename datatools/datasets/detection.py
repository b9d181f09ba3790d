"""PyTorch detection datasets over the datatools annotation model.

Each reads its annotations once, at construction, through the CLI's readers and policies (docs/training.md#reading).

``dataset[i]`` returns ``(image, target)``:

* ``image``: a :class:`torchvision.tv_tensors.Image`, uint8, ``(3, H, W)``, decoded with
  :func:`torchvision.io.decode_image` in RGB (grayscale and palette images become 3 channels) with the EXIF orientation
  applied. Boxes are in that displayed frame, which is datatools' convention for image sizes.
* ``target``: a dict of tensors only (so ``{k: v.to(device) for k, v in t.items()}`` works):

  ============ ===================================================================================================
  ``boxes``     :class:`~torchvision.tv_tensors.BoundingBoxes`, float32, ``(N, 4)``, XYXY, continuous pixels,
                ``canvas_size=(H, W)``. ``(0, 4)`` for an image without objects, never a missing key.
  ``labels``    int64 ``(N,)``: index in :attr:`DetectionDataset.classes` plus ``label_offset`` (default 1: labels
                1..K, with 0 left for the background, as torchvision's detectors take them). Its COCO
                ``category_id`` is ``ds.category_ids[label - label_offset]`` (a COCO file's own ids).
  ``image_id``  int64 scalar: the image's COCO id: its own ``id`` in a COCO file, the id ``voc2coco`` writes
                for VOC and YOLO (1..N over the selected split); so predictions can be written straight to a COCO
                results file. ``ds.index_of(id)`` is the dataset index, ``ds.image_ids[i]`` the string key.
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

import operator
import os
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torchvision import tv_tensors

from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention
from datatools.core.errors import NoInputError, UsageError
from datatools.core.model import Dataset, Finding, class_list
from datatools.datasets.decode import ImageDecodeError, decode
from datatools.datasets.sources import as_list, read_source, source_ids, voc_year_root

__all__ = ["COCODetection", "DetectionDataset", "ImageDecodeError", "VOCDetection", "YOLODetection", "decode",
           "make_target", "voc_year_root"]

Transform = Callable[[Any, Any], tuple[Any, Any]]


class _Separate:
    """torchvision's ``transform`` and ``target_transform`` as one ``transforms(image, target)`` (picklable when they
    are)."""

    def __init__(self, transform: Callable | None, target_transform: Callable | None) -> None:
        self.transform, self.target_transform = transform, target_transform

    def __call__(self, image, target):
        return (image if self.transform is None else self.transform(image),
                target if self.target_transform is None else self.target_transform(target))

    def __repr__(self) -> str:
        return f"transform={self.transform!r}, target_transform={self.target_transform!r}"


def as_xyxy(boxes) -> torch.Tensor:
    """``boxes`` as a plain ``(N, 4)`` XYXY tensor: a ``BoundingBoxes`` in another format (after
    ``v2.ConvertBoundingBoxFormat("CXCYWH")``) is converted, as torchvision's own transforms honour ``.format``;
    anything else is taken as XYXY."""
    if isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format != tv_tensors.BoundingBoxFormat.XYXY:
        from torchvision.transforms.v2 import functional as F

        boxes = F.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
    return torch.as_tensor(boxes).as_subclass(torch.Tensor).reshape(-1, 4)


def make_target(boxes: np.ndarray | torch.Tensor, labels: Sequence[int] | np.ndarray | torch.Tensor, *,
                canvas_size: tuple[int, int], image_id: int = 0, iscrowd=None, difficult=None,
                area=None) -> dict[str, torch.Tensor]:
    """Build a target dict in the layout the datasets return: the one builder behind
    :meth:`DetectionDataset.load_target`, :class:`~datatools.datasets.transforms.Mosaic` and hand-made samples.

    ``boxes`` are XYXY pixels (a ``BoundingBoxes`` of another format is converted); the per-box fields default to
    zeros/False and ``area`` to the box areas. Every tensor holds a copy, so a caller editing the target in place
    never changes the arrays passed in (a dataset's own storage among them).
    """
    # np.array copies (always) and from_numpy wraps that copy: the same guarantee as torch.tensor(values) at a third
    # of its cost per column (5 columns a sample: ~7 us saved per load_target)
    def copy(values, dtype) -> np.ndarray:  # a tensor through .numpy(): numpy's __array__ protocol warns on tensors
        return np.array(values.numpy(force=True) if isinstance(values, torch.Tensor) else values, dtype=dtype)

    b = copy(as_xyxy(boxes) if isinstance(boxes, torch.Tensor) else boxes, np.float32).reshape(-1, 4)
    n = b.shape[0]
    canvas_size = (int(canvas_size[0]), int(canvas_size[1]))

    def column(values, dtype) -> torch.Tensor:
        return torch.from_numpy(copy(values, dtype).reshape(n))

    return {
        "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(b), format=tv_tensors.BoundingBoxFormat.XYXY,
                                          canvas_size=canvas_size),
        "labels": column(labels, np.int64),
        "image_id": torch.tensor(image_id, dtype=torch.int64),
        "area": column(_box_areas(b) if area is None else area, np.float32),
        "iscrowd": torch.zeros(n, dtype=torch.int64) if iscrowd is None else column(iscrowd, np.int64),
        "difficult": torch.zeros(n, dtype=torch.bool) if difficult is None else column(difficult, np.bool_),
        "orig_size": torch.tensor(canvas_size, dtype=torch.int64),
    }


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``(N, 4)`` XYXY boxes in their own dtype; 0 for an inverted box (COCO's ``area`` of a box)."""
    return np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)


class DetectionDataset(torch.utils.data.Dataset):
    """A map-style detection dataset built from a :class:`datatools.Dataset` (the annotation model).

    Use :meth:`from_path` (or :class:`VOCDetection`, :class:`YOLODetection`, :class:`COCODetection`) to read from
    disk; use the constructor directly when you already hold a model, e.g. after ``datatools.ops.sanitize.prepare``.

    Options (keyword-only):

    * ``transforms``: a callable ``(image, target) -> (image, target)``, typically a torchvision.transforms.v2
      pipeline such as :func:`datatools.datasets.transforms.train_preset`. It must be picklable for ``spawn`` workers
      (v2 transforms are; lambdas are not). torchvision's ``transform`` (the image alone) and ``target_transform``
      (the target alone) work too, as in its datasets, instead of ``transforms``.
    * ``splits``: keep images in any of these splits (VOC ImageSets lists, YOLO ``train``/``val``, COCO json names;
      ``val`` also finds ``val2017``, ``valid`` or ``validation`` where there is no ``val``).
    * ``ids``: keep only these image ids (string keys, in this order).
    * ``classes``: the class list and order; objects of other classes are dropped and counted. Default: the
      dataset's classes (sorted names for VOC, ``data.yaml`` order for YOLO, category order for COCO).
    * ``label_offset``: added to every label. The default ``1`` is what torchvision's detectors take (0 is the
      background); ``0`` gives plain class indices (e.g. for a YOLO-style head).
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

    def __init__(self, data: Dataset, *, transforms: Transform | None = None, transform: Callable | None = None,
                 target_transform: Callable | None = None,
                 splits: Sequence[str] | str | None = None, ids: Sequence[str] | None = None,
                 classes: Sequence[str] | None = None, label_offset: int = 1, keep_difficult: bool = True,
                 keep_crowd: bool = True, return_masks: bool = False, skip_empty: bool = False) -> None:
        from datatools.ops.sanitize import prepare

        if not isinstance(data, Dataset):
            raise TypeError(f"expected a datatools.Dataset, got {type(data).__name__}; use DetectionDataset.from_path")
        if isinstance(splits, str):
            splits = [splits]
        try:  # a string would be its letters; a name twice two ids of one class
            classes = class_list(classes)
        except UsageError as e:
            raise ValueError(str(e)) from e
        prepared = prepare(data, classes=list(classes) if classes else None,
                           difficult="keep" if keep_difficult else "skip", clip_boxes=True)
        records = list(prepared.images)
        dropped: Counter[str] = Counter()
        if splits:
            from datatools.formats.common import split_named

            wanted = {split_named(s, prepared.splits) or s for s in splits}  # "val" finds val2017, valid, ...
            unknown = wanted - set(prepared.splits)
            if unknown:
                raise UsageError(f"unknown split(s) {sorted(unknown)}: the dataset has {list(prepared.splits) or 'none'}")
            records = [r for r in records if wanted.intersection(r.splits)]
        # COCO ids over the selected split(s), before ids= and drops: the ids a COCO file of this selection holds
        coco_id = source_ids(records, prepared.format)
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
        if transform is not None or target_transform is not None:  # torchvision's keywords (VisionDataset's rule)
            if transforms is not None:
                raise ValueError("pass transforms, or transform/target_transform, not both (as torchvision)")
            transforms = _Separate(transform, target_transform)
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
        #: ``target["image_id"]`` of each index: the image's COCO id (see the module docstring)
        self.coco_ids: tuple[int, ...] = tuple(coco_id[r.image_id] for r in kept_records)
        per_file = (prepared.meta or {}).get("category_ids") or {}
        self._category_files = {f: per_file[f] for f in dict.fromkeys(r.source_key[0] for r in kept_records)
                                if f in per_file}
        counts = Counter(self.coco_ids)
        self._index_of = {c: i for i, c in enumerate(self.coco_ids) if counts[c] == 1}
        self._offsets = np.asarray(offsets, dtype=np.int64)
        self._boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self._labels = np.asarray(labels, dtype=np.int64)
        self._crowd = np.asarray(crowd, dtype=bool)
        self._difficult = np.asarray(difficult, dtype=bool)
        # The per-object arrays in the dtypes of the target, so __getitem__ only slices and copies (no tensor maths
        # per sample: each small torch op costs microseconds, which added up to 5% of a 512 px training sample).
        self._boxes32 = self._boxes.astype(np.float32)
        self._area32 = _box_areas(self._boxes32)
        self._crowd64 = self._crowd.astype(np.int64)

    # ------------------------------------------------------------------------------------------------ builders

    @classmethod
    def from_path(cls, path: str | os.PathLike, format: str = "auto", *, images: str | os.PathLike | None = None,
                  sets: Sequence[str] | str | None = None, year: str | None = None,
                  convention: PixelConvention | str = DEFAULT_CONVENTION, workers: int | None = None,
                  **options: Any) -> "DetectionDataset":
        """Read ``path`` in ``format`` (voc, yolo, coco; ``auto`` detects it as the CLI does) with the CLI's readers
        and build a dataset: the same reading as :class:`VOCDetection`, :class:`YOLODetection` and
        :class:`COCODetection`. ``images``, ``sets``, ``year``, ``convention`` and ``workers`` are
        :func:`datatools.datasets.sources.read_source`'s; ``splits`` (in ``options``) then filters images. Other
        keyword options are those of :class:`DetectionDataset`.
        """
        data = read_source(path, format, images=images, splits=options.get("splits"), sets=sets, year=year,
                           convention=convention, classes=options.get("classes"), workers=workers)
        obj = cls.__new__(cls)
        DetectionDataset.__init__(obj, data, **options)
        return obj

    # ------------------------------------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def category_ids(self) -> tuple:
        """The COCO ``category_id`` of each class (of label ``l``: ``category_ids[l - label_offset]``), for a results
        file: a COCO source's own ids, from the file(s) of the images selected (COCO's 80 classes have ids 1..90);
        a class the file lacks gets the next free id; 1..K for other formats, as ``voc2coco`` writes them. Splits
        whose files give one class two ids cannot share one results file: select one split."""
        from datatools.formats.coco import category_numbers

        try:
            ids = category_numbers(self._category_files.values(), self.classes)
        except ValueError as e:
            raise ValueError(f"{e} of the selected splits: select one split") from e
        return tuple(ids[c] for c in self.classes)

    def index_of(self, image_id: int) -> int:
        """The dataset index of the image whose ``target["image_id"]`` is ``image_id`` (its COCO id), e.g. to map
        predictions back. ``KeyError`` when no image has it, or several do (a folder of COCO files may reuse ids
        across its splits: select one split)."""
        try:
            return self._index_of[int(image_id)]
        except KeyError:
            n = self.coco_ids.count(int(image_id))
            raise KeyError(f"image_id {image_id} is {'not in this dataset' if not n else f'shared by {n} images'}"
                           ) from None

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
        """Decode image ``index`` (uint8 RGB, EXIF applied). Raises :class:`ImageDecodeError` naming the file when corrupt."""
        return decode(self.paths[self._check_index(index)])

    def load_target(self, index: int, canvas_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The untransformed target of image ``index`` for an image of ``canvas_size`` ``(H, W)``."""
        index = self._check_index(index)
        lo, hi = int(self._offsets[index]), int(self._offsets[index + 1])
        # make_target copies: a caller editing a target in place must not change the dataset
        target = make_target(self._boxes32[lo:hi], self._labels[lo:hi] + self.label_offset, canvas_size=canvas_size,
                             image_id=self.coco_ids[index], iscrowd=self._crowd64[lo:hi],
                             difficult=self._difficult[lo:hi], area=self._area32[lo:hi])
        if self.return_masks:
            target["masks"] = box_masks(target["boxes"], canvas_size)
        return target

    def __getitem__(self, index: int) -> tuple[Any, dict[str, torch.Tensor]]:
        image = self.load_image(index)
        target = self.load_target(index, (int(image.shape[-2]), int(image.shape[-1])))
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def _check_index(self, index: int) -> int:
        n = len(self)
        try:
            index = operator.index(index)  # an int, numpy's, a 0-d integer tensor
        except TypeError:
            raise TypeError(f"a dataset index is an integer, not {index!r}: torch.utils.data.Subset(ds, range(...)) "
                            "takes a slice of it") from None
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


def _empty_message(data: Dataset, prepared: Dataset, selected: Sequence, *, splits, ids, skip_empty: bool) -> str:
    """Why a dataset would have no sample, naming what was looked for where: a dataset of length 0 only fails
    later (a DataLoader that yields nothing, a training run that trains on nothing)."""
    from datatools.ops.convert import no_images_message

    root = data.root or "the dataset"
    if not prepared.images or not any(r.image_path for r in prepared.images):
        return no_images_message(prepared, root)
    if not selected:
        chosen = f"splits={list(splits)}" if splits else f"ids={list(ids or [])[:5]}"
        return f"{root}: {chosen} selects no image"
    if skip_empty:
        return f"{root}: every selected image is without objects (skip_empty=True)"
    return no_images_message(prepared.evolve(images=tuple(selected)), root)


class VOCDetection(DetectionDataset):
    """A Pascal VOC root (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main``), a folder of XML files, a
    ``VOCdevkit`` folder or a torchvision download root, with torchvision's signature::

        VOCDetection("data", year="2012", image_set="train", transforms=train_preset(512))
        VOCDetection("VOCdevkit/VOC2012", "2012", "train")        # torchvision's positional order

    ``year`` picks ``VOC<year>`` as torchvision's ``year=`` does (without it, the only year there;
    :func:`~datatools.datasets.sources.voc_year_root`); ``image_set`` (or ``splits``, several allowed) picks
    ImageSets/Main lists, and only those are read (default: every train/val/test list present, or every XML of a
    folder without lists). ``download=True`` is refused: datatools reads what is on disk. ``convention`` is the VOC
    pixel convention (default ``as-is``: the numbers as written, as torchvision's ``VOCDetection``), the same as
    ``datatools convert``. Labels are 1..K and ``target["image_id"]`` is the id ``voc2coco`` writes for the split.
    No image found is an error that says what was looked for where, never a dataset of length 0.
    """

    def __init__(self, root: str | os.PathLike, year: str | None = None, image_set: str | None = None,
                 download: bool = False, *, splits: Sequence[str] | str | None = None,
                 convention: PixelConvention | str = DEFAULT_CONVENTION, images: str | os.PathLike | None = None,
                 workers: int | None = None, **options: Any) -> None:
        if download:
            raise UsageError("datatools reads VOC from disk and never downloads: download it once with torchvision's "
                             "VOCDetection(root, year, download=True), then pass the same root here")
        if image_set is not None:
            if splits is not None and as_list(splits) != [image_set]:
                raise UsageError(f"image_set={image_set!r} and splits={splits!r} disagree: pass one of them")
            splits = image_set
        data = read_source(root, "voc", images=images, splits=splits, year=year, convention=convention,
                           workers=workers)
        super().__init__(data, splits=splits, **options)


class YOLODetection(DetectionDataset):
    """An ultralytics-layout dataset: a ``data.yaml`` (or a folder with ``images/`` and ``labels/``).

    Class order comes from ``data.yaml`` (or ``classes.txt``), or ``classes=`` (by name; for a set without names, the
    names of its ids); ``splits`` picks its ``train``/``val``/``test`` lists. Labels are YOLO's ids + 1 (0 is the
    background) and ``target["image_id"]`` is the id ``datatools convert`` gives the image in a COCO file of its
    split.
    Image sizes come from image headers, so normalized boxes become the same pixels as the VOC they came from.
    """

    def __init__(self, root: str | os.PathLike, *, splits: Sequence[str] | str | None = None,
                 workers: int | None = None, **options: Any) -> None:
        data = read_source(root, "yolo", classes=options.get("classes"), workers=workers)
        super().__init__(data, splits=splits, **options)


class COCODetection(DetectionDataset):
    """A COCO JSON file with torchvision's signature, ``COCODetection(images, ann_file, transforms=...)`` (the image
    folder first, as torchvision's ``CocoDetection(root, annFile)``; ``images=``/``annFile=`` as keywords work too).

    ``COCODetection(root=...)`` (or one positional argument that is a JSON file) also takes a COCO JSON or a folder
    whose ``annotations/*.json`` are splits, with the images found next to it (``images=`` when they are not).
    Category order (sorted by id) is the class order, labels are 1..K in that order, and ``target["image_id"]`` is
    the image's own ``id`` in the file. Crowd objects are kept and flagged unless ``keep_crowd=False``."""

    def __init__(self, root: str | os.PathLike | None = None, ann_file: str | os.PathLike | None = None, *,
                 images: str | os.PathLike | None = None, splits: Sequence[str] | str | None = None,
                 workers: int | None = None, **options: Any) -> None:
        ann_file = ann_file if ann_file is not None else options.pop("annFile", None)  # torchvision's keyword
        if ann_file is not None:
            if root is not None and images is not None and os.fspath(root) != os.fspath(images):
                raise UsageError(f"the image folder is given twice ({root} and images={images}): pass one")
            src, image_dir = ann_file, images if images is not None else root
        elif root is not None:
            src, image_dir = root, images  # datatools' form: the annotations (a JSON file or a folder of splits)
        else:
            raise UsageError("COCODetection needs ann_file (a COCO JSON) and the image folder, as "
                             "COCODetection(images, ann_file), or root= a COCO JSON or a folder with annotations/")
        data = read_source(src, "coco", images=image_dir, workers=workers)
        super().__init__(data, splits=splits, **options)

