"""Gather everything the report shows, by calling the library's own functions: ``stats`` (labels and exact pixels),
``check``, ``anchors``, ``dupes`` and the drawing code of ``visualize``.

Every number comes from the whole dataset; only the gallery is a sample (seeded, so the same ``seed`` gives the
same page). A part that cannot be computed (no boxes for anchors, a duplicate search that fails) becomes a note in
its section instead of failing the report.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Sequence

from datatools.core.errors import DatatoolsError
from datatools.core.model import Dataset, Finding
from datatools.core.parallel import Mapper, StageProgress, stage_callbacks
from datatools.core.paths import input_folders
from datatools.ops.sanitize import prepare
from datatools.ops.stats import LabelStats, StatsReport, dataset_stats, label_stats
from datatools.report.gallery import Thumb, draw_thumbs, items_for, sample_per_class
from datatools.viz.draw import class_colour

EXAMPLES_PER_CODE = 20  # finding rows listed per code (all of them are counted)
THUMBS_PER_CODE = 3  # drawn examples per finding code
MAX_CODES_DRAWN = 20
EST_THUMB_BYTES = 9_000  # a 192-px JPEG thumbnail in base64, measured on sample_data and BCCD (6 to 12 KB)


@dataclass
class ReportData:
    """What the page shows. ``notes`` holds, per section, why a part is missing (``anchors``, ``duplicates``,
    ``pixels``, ``findings``); ``gallery`` and ``finding_thumbs`` are drawn thumbnails in display order."""

    src: str
    format: str
    stats: StatsReport
    splits: dict[str, LabelStats]
    colours: dict[str, tuple[int, int, int]]
    findings: list[Finding] = field(default_factory=list)
    finding_counts: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    warnings: int = 0
    anchors: object | None = None  # datatools.ops.anchors.AnchorResult
    dupes: object | None = None  # datatools.ops.dupes.DupesReport
    gallery: list[Thumb] = field(default_factory=list)
    gallery_candidates: int = 0
    finding_thumbs: dict[str, list[Thumb]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)  # the folders read (the page must not be written inside them)
    objects_read: int = 0  # every object met in the files, including those the reader had to drop (see findings)

    @property
    def labels(self) -> LabelStats:
        return self.stats.labels

    def summary(self) -> dict:
        """The headline numbers (what ``report --json`` prints, with the page's path and size)."""
        lab, px = self.labels, self.stats.pixels
        d = self.dupes
        return {
            "src": self.src, "format": self.format, "images": lab.images, "objects": lab.objects,
            "objects_read": max(self.objects_read, lab.objects),
            "empty_images": lab.empty_images, "classes": len(lab.class_objects), "class_objects": lab.class_objects,
            "splits": {s: {"images": st.images, "objects": st.objects} for s, st in self.splits.items()},
            "errors": self.errors, "warnings": self.warnings, "findings_by_code": self.finding_counts,
            "pixels": None if px is None or not px.images else
            {"images": px.images, "mean": list(px.mean), "std": list(px.std), "estimate": px.estimate},
            "anchors": None if self.anchors is None else
            {"anchors": [list(a) for a in self.anchors.anchors], "mean_iou": self.anchors.mean_iou,  # type: ignore[attr-defined]
             "bpr": self.anchors.bpr, "img_size": self.anchors.img_size},  # type: ignore[attr-defined]
            "duplicates": None if d is None else
            {"clusters": len(d.clusters), "duplicate_images": d.duplicate_images, **d.counts()},  # type: ignore[attr-defined]
            "gallery": {"candidates": self.gallery_candidates,
                        "drawn": sum(1 for t in self.gallery if t.jpeg)},
            "notes": self.notes,
        }


def split_stats(ds: Dataset) -> dict[str, LabelStats]:
    """Label statistics of each split the dataset names (VOC ImageSets lists, YOLO/COCO parts), in its order."""
    groups: dict[str, list] = defaultdict(list)
    for im in ds.images:
        for s in im.splits:
            groups[s].append(im)
    return {s: label_stats(ds.evolve(images=tuple(groups[s]))) for s in ds.splits}


def build_report(src: str | os.PathLike, *, format: str = "auto", images=None, sets=None,
                 classes: Sequence[str] | None = None, pixels: bool = True, dupes: bool = True, k: int = 9,
                 img_size: int | None = 640, per_class: int = 8, thumb: int = 192, budget_bytes: int = 20_000_000,
                 seed: int = 0, workers: int | None = None, engine: str = "local", ray_address: str | None = None,
                 max_xml_bytes: int | None = None, update: StageProgress | None = None) -> ReportData:
    """Read ``src`` once and gather every section of the report from it (statistics, ``check``'s findings through
    :func:`~datatools.ops.check.check_dataset`, anchors, duplicates, the gallery). ``update(stage, advance, total)`` reports progress.

    Use :func:`datatools.report.write_report` to turn the result into the page."""
    from datatools.formats.common import keep_headers
    from datatools.ops.convert import read_source, reader_classes, resolve_source, source_classes

    mapper = Mapper(engine, ray_address, workers)
    # The reader's header reads (the sizes) also serve check's header checks: each image is opened once.
    with keep_headers():
        fmt = resolve_source(src, format)
        ds = read_source(src, fmt, classes=reader_classes(fmt, classes), mapper=mapper, images=images,
                         sets=sets, workers=workers, max_xml_bytes=max_xml_bytes,
                         **stage_callbacks(update, "read"))
        # the boxes a conversion keeps, as `stats` counts them (check sees them as read)
        counted = prepare(source_classes(ds))
        st = dataset_stats(counted, labels_only=not pixels, workers=workers, engine=engine, ray_address=ray_address,
                           **stage_callbacks(update, "pixels"))
        colours = {c: class_colour(c) for c in st.labels.class_objects}
        data = ReportData(src=str(src), format=ds.format, stats=st, splits=split_stats(counted), colours=colours,
                          options={"seed": seed, "per_class": per_class, "thumb": thumb, "budget_bytes": budget_bytes,
                                   "k": k, "img_size": img_size, "pixels": pixels, "dupes": dupes},
                          inputs=input_folders(ds, src, images), objects_read=ds.objects_read)
        if not pixels:
            data.notes["pixels"] = "not computed (--no-pixels)"
        elif st.pixels is not None and not st.pixels.images:
            data.notes["pixels"] = ("no image could be read" if any(im.image_path for im in ds.images)
                                    else "no image files were found")
        _add_check(data, ds, src=src, classes=list(classes) if classes else None, mapper=mapper, up=update)
    _add_anchors(data, ds, k=k, img_size=img_size, seed=seed)
    if dupes:
        _add_dupes(data, ds, mapper, update)
    else:
        data.notes["duplicates"] = "not searched (--no-dupes)"
    _add_thumbs(data, ds, per_class=per_class, thumb=thumb, budget_bytes=budget_bytes, seed=seed, workers=workers,
                up=update)
    return data


def _add_check(data: ReportData, ds: Dataset, *, up: StageProgress | None, **opts) -> None:
    from datatools.ops.check import check_dataset

    try:  # on the dataset read above: SRC is read once
        rep = check_dataset(ds, progress=up, **opts)
    except DatatoolsError as e:
        data.notes["findings"] = f"check could not run: {e}"
        return
    data.findings = rep.findings
    data.finding_counts = rep.counts
    data.errors, data.warnings = rep.errors, rep.warnings


def _add_anchors(data: ReportData, ds: Dataset, *, k: int, img_size: int | None, seed: int) -> None:
    from datatools.ops.anchors import compute_anchors

    try:
        data.anchors = compute_anchors(ds, k=k, img_size=img_size, seed=seed)
        return
    except DatatoolsError as e:  # too few boxes or sizes for k anchors: say so and go on
        data.notes["anchors"] = str(e)
    if img_size and not any(im.has_size for im in ds.images if im.annotations):
        try:  # no image has a known size to scale by: the anchors in original pixels are still worth showing
            data.anchors = compute_anchors(ds, k=k, img_size=None, seed=seed)
            data.notes["anchors"] = "no image has a known size to scale by: anchors in original pixels"
        except DatatoolsError as e:
            data.notes["anchors"] = str(e)


def _add_dupes(data: ReportData, ds: Dataset, mapper: Mapper, up: StageProgress | None) -> None:
    try:
        from datatools.ops.dupes import find_duplicates

        data.dupes = find_duplicates(ds, mapper=mapper, **stage_callbacks(up, "dupes"))
    except Exception as e:  # noqa: BLE001 - the page is still worth writing; the section says what went wrong
        data.notes["duplicates"] = f"the duplicate search failed ({type(e).__name__}: {e})"


def _add_thumbs(data: ReportData, ds: Dataset, *, per_class: int, thumb: int, budget_bytes: int, seed: int,
                workers: int | None, up: StageProgress | None) -> None:
    """Draw the gallery sample and the finding examples. How many are drawn is capped from the budget (about
    ``EST_THUMB_BYTES`` each at 192 px); the page writer then keeps as many as fit the budget exactly."""
    by_id = {im.image_id: im for im in ds.images}
    scale = (thumb / 192) ** 2
    cap = max(8, int(budget_bytes * 0.9 / (EST_THUMB_BYTES * scale)))
    jobs = []
    # finding examples first: few, and the check section links to them
    per_code: Counter = Counter()
    codes_seen: list[str] = []
    for f in data.findings:
        im = by_id.get(f.image_id)
        if im is None or not im.image_path or per_code[f.code] >= THUMBS_PER_CODE:
            continue
        if f.code not in codes_seen:
            if len(codes_seen) >= MAX_CODES_DRAWN:
                continue
            codes_seen.append(f.code)
        per_code[f.code] += 1
        jobs.append((f.code, im.image_id, im.image_path, f"{im.image_id}: {f.field}", items_for(im, f)))
    picks, data.gallery_candidates = sample_per_class(ds, list(data.labels.class_objects), per_class, seed,
                                                      max(0, cap - len(jobs)))
    n_findings = len(jobs)  # the finding thumbs first (grouped by code), then the gallery's (by class)
    jobs += [(c, im.image_id, im.image_path or "", f"{im.image_id} ({len(im.annotations)})", items_for(im))
             for c, im in picks]
    thumbs = draw_thumbs(jobs, size=thumb, workers=workers, **stage_callbacks(up, "thumbs"))
    data.gallery = thumbs[n_findings:]
    for t in thumbs[:n_findings]:
        data.finding_thumbs.setdefault(t.group, []).append(t)
