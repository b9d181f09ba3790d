"""``stats``: exact per-channel pixel mean/std in one pass, and dataset statistics from the labels alone.

Use :func:`pixel_stats` for the numbers that go into ``transforms.v2.Normalize``; :func:`label_stats` for what the
annotations hold (classes, objects per image, box sizes, image sizes) without reading a pixel; :func:`dataset_stats`
does both from a dataset folder.

How the pixel statistics stay exact: every image becomes three 256-bin integer histograms (PIL's ``histogram()``),
summed as int64 in any order and for any number of workers; only at the end ``mean = S1 / (255 N)`` and
``var = (N S2 - S1^2) / (255 N)^2`` are taken with Python integers, so the result is bit-identical between runs and
worker counts. The colour rule (:func:`datatools.core.images.to_rgb`), what ``--resize`` does and why EXIF orientation
is applied only before a resize: docs/stats.md.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Sequence

import numpy as np

from datatools.core.images import exif_orientation, image_error, opened_image, to_rgb, upright
from datatools.core.model import Dataset, Finding, all_classes, json_ready
from datatools.core.parallel import Mapper, ProgressFn
from datatools.formats.common import err, warn

COCO_SMALL, COCO_MEDIUM = 32 ** 2, 96 ** 2
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_Q_NAMES = ("min", "p5", "p25", "median", "p75", "p95", "max")


# --------------------------------------------------------------------------------------------------- pixels

MAX_RESIZE = 16384  # a side; 100000 made every image a 40 GB array (the process was killed)


def parse_resize(value: str | int | None) -> int | tuple[int, int] | None:
    """``"512"`` -> 512 (shorter side), ``"640x480"`` -> (640, 480) (exact W x H); ``None``/``""`` -> no resize.
    Zero, a negative size or one over :data:`MAX_RESIZE` is an error, not a quiet "no resize"."""
    if value in (None, ""):
        return None
    if isinstance(value, int):
        if not 0 < value <= MAX_RESIZE:
            raise ValueError(f"{value}: the size must be 1..{MAX_RESIZE}")
        return value
    text = str(value).lower().strip()
    try:
        sides = tuple(int(v) for v in text.split("x", 1))
        if not all(0 < v <= MAX_RESIZE for v in sides):
            raise ValueError
    except ValueError as e:
        raise ValueError(f"{value!r}: expected N (shorter side, 1..{MAX_RESIZE}) or WxH") from e
    return sides if len(sides) == 2 else sides[0]


def resized_size(width: int, height: int, resize: int | tuple[int, int]) -> tuple[int, int]:
    """The output size of ``transforms.v2.Resize(resize)`` for an int (shorter side) or an exact (W, H)."""
    if isinstance(resize, tuple):
        return resize
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = resize, int(resize * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def image_histogram(path: str, resize: int | tuple[int, int] | None = None) -> tuple[np.ndarray | None, str, str]:
    """One image's (3, 256) int64 histogram under the colour rule, its mode, and an error ("" when fine).

    Never raises for a bad image: corrupt, truncated and unsupported images come back with ``error`` set.
    """
    hist = np.zeros((3, 256), dtype=np.int64)
    mode, error = add_image_histogram(path, resize, hist)
    return (None if error else hist), mode, error


def add_image_histogram(path: str, resize: int | tuple[int, int] | None, total: np.ndarray, *,
                        notes: list[str] | None = None) -> tuple[str, str]:
    """Add one image's histogram (see :func:`image_histogram`) to ``total``, a C-contiguous (3, 256) int64 array,
    and return ``(mode, error)``. On an error nothing is added.

    The warnings PIL raises while reading (a palette with byte transparency, a corrupt EXIF block, a size near the
    decompression-bomb limit) are caught, so they never reach the terminal from a worker, and their texts appended
    to ``notes`` when it is given: the caller turns them into findings."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with opened_image(path) as im:
                mode = im.mode
                if resize is None and mode in ("RGB", "RGBA", "L", "LA"):
                    # No conversion needed: PIL counts the decoded pixels as they are, every band in one C loop.
                    h = im.histogram()
                    hist = np.asarray(h, dtype=np.int64).reshape(-1, 256)
                    total += np.repeat(hist[:1], 3, axis=0) if mode in ("L", "LA") else hist[:3]
                else:
                    rgb = to_rgb(im)
                    if resize is not None:  # resized upright: the two passes of a resize round between them
                        rgb = upright(rgb, exif_orientation(im))
                        rgb = rgb.resize(resized_size(rgb.width, rgb.height, resize), Image.Resampling.BILINEAR)
                    total += np.asarray(rgb.histogram(), dtype=np.int64).reshape(3, 256)
            out = mode, ""
        except Exception as e:  # noqa: BLE001 - see image_error
            out = "", image_error(e)
    if notes is not None:
        notes.extend(dict.fromkeys(str(w.message) for w in caught))
    return out


def histogram_chunk(paths: Sequence[str], *, resize: int | tuple[int, int] | None = None
                    ) -> tuple[np.ndarray, dict[str, int], list[tuple[str, str]], list[tuple[str, str]]]:
    """A chunk of images summed into a (3, 256) int64 histogram, with its mode counts, failed images and the
    warnings PIL raised (in path order): what :func:`pixel_stats` maps over chunks. A chunk ships a list of paths
    and returns about 6 KB, whatever the image sizes; summing chunk histograms is exact, so any chunking gives the
    same bits."""
    total = np.zeros((3, 256), dtype=np.int64)
    modes: Counter = Counter()
    failed: list[tuple[str, str]] = []
    warned: list[tuple[str, str]] = []
    for p in paths:
        notes: list[str] = []
        mode, error = add_image_histogram(p, resize, total, notes=notes)
        warned += [(p, n) for n in notes]
        if error:
            failed.append((p, error))
            continue
        modes[mode] += 1
    return total, dict(modes), failed, warned


@dataclass(frozen=True)
class PixelStats:
    """Exact channel statistics in [0, 1] scale over every pixel of ``images`` images.

    ``estimate`` is true when only a seeded sample of ``population`` images was read. ``failed`` lists
    (path, reason) for images that could not be read; they are skipped, never fatal.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    images: int
    pixels: int
    histogram: np.ndarray  # (3, 256) int64
    modes: dict[str, int]
    failed: tuple[tuple[str, str], ...] = ()
    # (path, warning) PIL raised on images that were still counted: dataset_stats reports them as findings
    warned: tuple[tuple[str, str], ...] = ()
    estimate: bool = False
    population: int = 0
    resize: int | tuple[int, int] | None = None

    @property
    def normalize(self) -> str:
        """A line to paste into a torchvision pipeline."""
        m = ", ".join(f"{v:.4f}" for v in self.mean)
        s = ", ".join(f"{v:.4f}" for v in self.std)
        return f"transforms.v2.Normalize(mean=[{m}], std=[{s}])"

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "images": self.images, "pixels": self.pixels,
                "estimate": self.estimate, "population": self.population,
                "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize, "modes": self.modes,
                "normalize": self.normalize, "failed": [{"path": p, "error": e} for p, e in self.failed],
                "histogram": self.histogram.tolist()}  # warned: reported once, as image-warning findings


def stats_from_histogram(hist: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """(mean, std, pixels) in [0, 1] scale from (channels, 256) integer counts, exactly: Python integers until the
    final, correctly rounded division."""
    values = list(range(256))
    means, stds = [], []
    n = 0
    for ch in np.asarray(hist):
        counts = [int(c) for c in ch]
        n = sum(counts)
        if n == 0:
            means.append(math.nan)
            stds.append(math.nan)
            continue
        s1 = sum(v * c for v, c in zip(values, counts))
        s2 = sum(v * v * c for v, c in zip(values, counts))
        means.append(s1 / (255 * n))
        stds.append(math.sqrt((n * s2 - s1 * s1) / (255 * 255 * n * n)))
    return tuple(means), tuple(stds), n


def pixel_stats(paths: Sequence[str], *, resize: int | tuple[int, int] | None = None, sample: int | None = None,
                seed: int = 0, workers: int | None = None, progress: ProgressFn | None = None,
                on_total=None, engine: str = "local", ray_address: str | None = None) -> PixelStats:
    """Exact mean/std over all pixels of ``paths`` (each file once), or of a seeded ``sample`` of them.

    Use it once per training resolution: the statistics after ``resize`` are the ones the network sees.
    The images are counted in chunks (:func:`histogram_chunk`) on local processes, or as Ray tasks at
    ``ray_address`` with ``engine="ray"``: the same numbers, bit for bit.
    """
    unique = sorted(dict.fromkeys(str(p) for p in paths))
    population = len(unique)
    chosen = unique
    if sample and sample < population:
        chosen = sorted(random.Random(seed).sample(unique, sample))
    if on_total:
        on_total(len(chosen))
    total = np.zeros((3, 256), dtype=np.int64)
    modes: Counter = Counter()
    failed = []
    warned = []
    # Chunks of images summed in the workers: one 6 KB histogram comes back per chunk rather than per image, on
    # local processes and on Ray alike.
    mapper = Mapper(engine=engine, address=ray_address, workers=workers)
    for hist, m, fail, warn_ in mapper(partial(histogram_chunk, resize=resize), mapper.chunks(chosen),
                                       progress=progress):
        total += hist
        modes.update(m)
        failed.extend(fail)
        warned.extend(warn_)
    mean, std, n = stats_from_histogram(total)
    return PixelStats(mean=mean, std=std, images=sum(modes.values()), pixels=n, histogram=total,  # type: ignore[arg-type]
                      modes=dict(sorted(modes.items())), failed=tuple(failed), warned=tuple(warned),
                      estimate=len(chosen) < population,
                      population=population, resize=resize)


# --------------------------------------------------------------------------------------------------- labels

def describe(values: np.ndarray) -> dict[str, float]:
    """min, p5, p25, median, p75, p95, max and mean of ``values`` (NaN when empty)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {k: math.nan for k in (*_Q_NAMES, "mean")}
    with np.errstate(invalid="ignore", over="ignore"):  # an area of 1e308 squared is inf: no warning on stderr
        q = np.quantile(v, QUANTILES)
    return {k: float(x) for k, x in zip(_Q_NAMES, q)} | {"mean": float(v.mean())}


@dataclass(frozen=True)
class LabelStats:
    """What the annotations hold, read from the labels only (no pixel is decoded).

    ``arrays`` keeps the raw per-box and per-image values (for plots); :meth:`to_dict` summarizes them.
    Boxes are absolute continuous pixels; relative values divide by the image size (boxes of images without a
    known size are left out of the relative figures and counted in ``no_size``).
    """

    images: int
    objects: int
    empty_images: int
    class_objects: dict[str, int]
    class_images: dict[str, int]
    objects_per_image: dict[str, float]
    objects_per_image_counts: dict[int, int]
    boxes_abs: dict[str, dict[str, float]]
    boxes_rel: dict[str, dict[str, float]]
    coco_sizes: dict[str, int]
    image_sizes: dict[str, object]
    flags: dict[str, int]
    no_size: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"images": self.images, "objects": self.objects, "empty_images": self.empty_images,
                "class_objects": self.class_objects, "class_images": self.class_images,
                "objects_per_image": self.objects_per_image,
                "objects_per_image_counts": {str(k): v for k, v in self.objects_per_image_counts.items()},
                "boxes_absolute": self.boxes_abs, "boxes_relative": self.boxes_rel, "coco_sizes": self.coco_sizes,
                "image_sizes": self.image_sizes, "flags": self.flags, "images_without_size": self.no_size}


FLAGS = ("difficult", "truncated", "occluded", "iscrowd")


def label_stats(ds: Dataset) -> LabelStats:
    """Count classes, objects per image, box and image size distributions. Reads no pixels. One pass over the
    records makes arrays (classes are ``ds.classes`` then any other label met, sorted); every figure is then a numpy
    reduction, so millions of boxes take well under a second."""
    images = ds.images
    anns = [a for im in images for a in im.annotations]
    classes = all_classes(ds.classes, images)
    index = {c: i for i, c in enumerate(classes)}
    per_image = np.fromiter((len(im.annotations) for im in images), dtype=np.int64, count=len(images))
    cls = np.fromiter((index[a.label] for a in anns), dtype=np.int64, count=len(anns))
    boxes = np.array([a.box for a in anns], dtype=np.float64).reshape(-1, 4)
    flag_rows = np.array([(a.difficult, a.truncated, a.occluded, a.iscrowd) for a in anns], dtype=bool).reshape(-1, 4)
    # ImageRecord.has_size for every image at once: width and height both > 0 (None counts as 0)
    wh = np.array([(im.width or 0, im.height or 0) for im in images], dtype=np.float64).reshape(-1, 2)
    sized = (wh > 0).all(axis=1)
    sizes = np.where(sized[:, None], wh, 0).astype(np.int64)
    n_images, n_classes = len(per_image), len(classes)
    n_boxes = int(per_image.sum())
    image_of = np.repeat(np.arange(n_images, dtype=np.int64), per_image)
    objs = np.bincount(cls, minlength=n_classes)
    pairs = np.unique(image_of * max(1, n_classes) + cls)  # (image, class) present at least once
    imgs = np.bincount(pairs % max(1, n_classes), minlength=n_classes) if n_boxes else np.zeros(n_classes, np.int64)
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    box_sized = sized[image_of]
    iw = sizes[image_of, 0].astype(np.float64)
    ih = sizes[image_of, 1].astype(np.float64)
    flags = {name: int(n) for name, n in zip(FLAGS, flag_rows.sum(axis=0))}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        areas = w * h
        aspect = np.where(h > 0, w / h, np.nan)
    rw, rh = w[box_sized] / iw[box_sized], h[box_sized] / ih[box_sized]
    rarea = areas[box_sized] / (iw[box_sized] * ih[box_sized])
    ok_aspect = aspect[~np.isnan(aspect)]
    image_w, image_h = sizes[sized, 0], sizes[sized, 1]
    top = Counter(zip(image_w.tolist(), image_h.tolist())).most_common(10)
    return LabelStats(
        images=n_images, objects=n_boxes, empty_images=int((per_image == 0).sum()),
        class_objects={c: int(objs[i]) for i, c in enumerate(classes)},
        class_images={c: int(imgs[i]) for i, c in enumerate(classes)},
        objects_per_image=describe(per_image),
        objects_per_image_counts={int(k): int(v) for k, v in enumerate(np.bincount(per_image)) if v},
        boxes_abs={"width": describe(w), "height": describe(h), "area": describe(areas), "aspect": describe(ok_aspect)},
        boxes_rel={"width": describe(rw), "height": describe(rh), "area": describe(rarea)},
        coco_sizes={"small": int((areas < COCO_SMALL).sum()),
                    "medium": int(((areas >= COCO_SMALL) & (areas < COCO_MEDIUM)).sum()),
                    "large": int((areas >= COCO_MEDIUM).sum())},
        image_sizes={"width": describe(image_w), "height": describe(image_h),
                     "distinct": len(set(zip(image_w.tolist(), image_h.tolist()))),
                     "most_common": [{"width": a, "height": b, "images": c} for (a, b), c in top]},
        flags=flags, no_size=n_images - int(sized.sum()),
        arrays={"objects_per_image": per_image, "width": w, "height": h, "area": areas, "aspect": ok_aspect,
                "rel_width": rw, "rel_height": rh, "rel_area": rarea, "image_width": image_w, "image_height": image_h})


# --------------------------------------------------------------------------------------------------- both

@dataclass(frozen=True)
class StatsReport:
    src: str
    format: str
    labels: LabelStats
    pixels: PixelStats | None
    findings: tuple[Finding, ...] = ()  # images left out of the pixel statistics, and PIL's warnings (image-warning)
    read_findings: tuple[Finding, ...] = ()  # what reading the annotations noticed (as ``datatools check`` lists)

    def to_dict(self) -> dict:
        """JSON-ready: a statistic of no value (no image with a size) is None, never NaN."""
        return json_ready({"src": self.src, "format": self.format, "labels": self.labels.to_dict(),
                "pixels": self.pixels.to_dict() if self.pixels else None,
                "findings": [f.to_dict() for f in self.findings],
                "read_errors": sum(1 for f in self.read_findings if f.severity.value == "error"),
                "read_warnings": sum(1 for f in self.read_findings if f.severity.value == "warning"),
                "objects_not_selected": self.not_selected})

    @property
    def not_selected(self) -> int:
        """Objects of classes ``--classes`` left out (``class-not-kept``): not in the label statistics."""
        return sum(f.objects for f in self.read_findings if f.code == "class-not-kept")


def dataset_stats(ds: Dataset, *, labels_only: bool = False, resize: int | tuple[int, int] | None = None,
                  sample: int | None = None, seed: int = 0, workers: int | None = None,
                  progress: ProgressFn | None = None, on_total=None, engine: str = "local",
                  ray_address: str | None = None) -> StatsReport:
    """Label statistics of ``ds`` and, unless ``labels_only``, the exact pixel statistics of its images
    (on ``engine``, see :func:`pixel_stats`)."""
    findings: list[Finding] = []
    px = None
    if not labels_only:
        missing = [im for im in ds.images if not im.image_path]
        for im in missing:
            findings.append(warn("missing-image", im.source, "image", "no image file: left out of the pixel statistics",
                                 image_id=im.image_id))
        paths = [im.image_path for im in ds.images if im.image_path]
        px = pixel_stats(paths, resize=resize, sample=sample, seed=seed, workers=workers, progress=progress,  # type: ignore[arg-type]
                         on_total=on_total, engine=engine, ray_address=ray_address)
        for p, e in px.failed:
            findings.append(err("image-unreadable", p, "image", f"{e}; skipped"))
        for p, w in px.warned:
            findings.append(warn("image-warning", p, "image", f"PIL warned while reading it: {w}; the image was "
                                 "counted"))
    return StatsReport(src=ds.root, format=ds.format, labels=label_stats(ds), pixels=px, findings=tuple(findings),
                       read_findings=ds.findings)
