"""The conversion pipeline: read chunks -> ``prepare`` (policies) -> write chunks, with a summary whose books balance.

Every direction (VOC, YOLO, COCO to any of them) goes through :func:`convert`; ``voc2yolo`` and ``voc2coco`` are
this function with fixed formats. The source format's reader maps its per-chunk read function, and the output
format's writer its per-chunk write function, over a :class:`~datatools.core.parallel.Mapper` made here from
``engine``: local processes or Ray tasks run the same functions over the same chunks, so ``--engine local`` and
``--engine ray`` give the same bytes, summary and findings in the same order. On Ray the workers read the files and
write the outputs straight into the staged OUT; the driver holds the records (metadata, never pixels) and counts.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Callable, Sequence

from datatools import formats
from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention
from datatools.core.errors import InputError, NoInputError, StrictModeError, UsageError
from datatools.core.atomic import ImagesMode, output_transaction
from datatools.core.fs import files_for, in_this_process
from datatools.core.parallel import Mapper, StageProgress, stage_callbacks
from datatools.core.paths import check_output_dir, dataset_inputs, input_folders, refuse_replacing_inputs
from datatools.core.model import Dataset, Finding, Severity, class_list
from datatools.formats.common import WriteResult, info, warn
from datatools.ops.sanitize import prepare


@dataclass
class Summary:
    """What a conversion did. ``objects_read == objects_written + sum(objects_dropped.values())`` always holds."""

    src: str
    src_format: str
    out: str
    dst_format: str
    images_read: int = 0
    images_written: int = 0
    images_dropped: dict[str, int] = field(default_factory=dict)
    objects_read: int = 0
    objects_written: int = 0
    objects_dropped: dict[str, int] = field(default_factory=dict)
    difficult: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    files_written: int = 0
    written: bool = True

    @property
    def balanced(self) -> bool:
        return self.objects_read == self.objects_written + sum(self.objects_dropped.values())

    def to_dict(self, *, max_findings: int | None = None) -> dict:
        f = self.findings if max_findings is None else self.findings[:max_findings]
        return {"src": self.src, "src_format": self.src_format, "out": self.out, "dst_format": self.dst_format,
                "written": self.written, "images": {"read": self.images_read, "written": self.images_written,
                                                     "dropped": self.images_dropped},
                "objects": {"read": self.objects_read, "written": self.objects_written,
                            "dropped": self.objects_dropped, "balanced": self.balanced},
                "difficult": self.difficult, "classes": self.class_counts, "splits": self.splits,
                "errors": self.errors, "warnings": self.warnings, "notes": self.notes,
                "files_written": self.files_written, "findings": [x.to_dict() for x in f],
                "findings_total": len(self.findings)}


def summarize(ds_in: Dataset, ds_out: Dataset, *, src: str, out: str, src_format: str, dst_format: str) -> Summary:
    s = Summary(src=src, src_format=src_format, out=out, dst_format=dst_format)
    s.findings = list(ds_out.findings)
    s.images_read = len(ds_in.images) + sum(1 for f in ds_in.findings if f.image_dropped)
    s.images_written = len(ds_out.images)
    s.objects_read = ds_in.objects_read
    s.objects_written = ds_out.num_objects
    book_findings(s, ds_out.findings)
    hard = [a for a in chain.from_iterable(im.annotations for im in ds_out.images) if a.difficult]
    kept, crowd = len(hard), sum(map(attrgetter("iscrowd"), hard))
    skipped = s.objects_dropped.get("difficult-skipped", 0)
    read = sum(map(attrgetter("difficult"), chain.from_iterable(im.annotations for im in ds_in.images)))
    # "dropped": difficult objects that went under another reason (a command's own job, an invalid box, an image
    # left out), so that read = kept + as_crowd + skipped + dropped
    s.difficult = {"read": read, "kept": kept - crowd, "as_crowd": crowd, "skipped": skipped,
                   "dropped": read - kept - skipped}
    s.class_counts = ds_out.class_counts()
    split_counts: Counter = Counter()
    for im in ds_out.images:
        for sp in im.splits or ("all",):
            split_counts[sp] += 1
    canon = {"train": 0, "val": 1, "test": 2}
    s.splits = dict(sorted(split_counts.items(), key=lambda kv: (canon.get(kv[0], 3), kv[0])))
    return s


def book_findings(s: Summary, findings: Sequence[Finding], *, by_writer: bool = False) -> None:
    """Count ``findings`` into the books: by severity, and the images and objects they dropped, by reason. The
    prepared dataset's findings (:func:`summarize`) dropped what is already absent from it; the writer's
    (``by_writer``: an image or objects it could not put in OUT, such as ``missing-size``) come off the written
    counts, so that images written is what a reader of OUT gets back."""
    sev = {Severity.ERROR: s.errors, Severity.WARNING: s.warnings, Severity.INFO: s.notes}
    for f in findings:
        sev[f.severity][f.code] = sev[f.severity].get(f.code, 0) + 1
        if f.image_dropped:
            s.images_written -= 1 if by_writer else 0
            s.images_dropped[f.code] = s.images_dropped.get(f.code, 0) + 1
        if f.objects:
            s.objects_written -= f.objects if by_writer else 0
            s.objects_dropped[f.code] = s.objects_dropped.get(f.code, 0) + f.objects
    for counts in (*sev.values(), s.images_dropped, s.objects_dropped):
        ordered = sorted(counts.items())
        counts.clear()
        counts.update(ordered)


def read_options(fmt: str, *, images=None, sets=None, convention=DEFAULT_CONVENTION, workers=None,
                 max_xml_bytes: int | None = None) -> dict:
    """The reader options of format ``fmt`` from the options every command takes; VOC-only ones are refused for
    other formats rather than ignored. ``max_xml_bytes`` sets the XML readers' refusal limit: VOC's per file (default
    16 MiB) and CVAT's for its one annotations.xml (default 256 MiB); None keeps each reader's default."""
    opts: dict = {"workers": workers}
    if images:
        opts["images"] = images
    if fmt in ("voc", "cvat") and max_xml_bytes is not None:
        opts["max_xml_bytes"] = max_xml_bytes
    if fmt == "voc":
        opts["sets"] = sets
        opts["convention"] = PixelConvention(convention)
    elif sets:
        raise UsageError("--sets applies to VOC input only")
    return opts


LOOKED_FOR = {"voc": "Annotations/*.xml or *.xml",
              "yolo": "the image folders data.yaml names, images/ beside labels/, images beside their .txt labels "
                      "(LabelImg), or obj_<split>_data/ (CVAT's YOLO 1.1)",
              "coco": 'annotations/*.json, or a COCO JSON with entries in its "images" list',
              "cvat": "<image> entries in annotations.xml", "openimages": "rows in *-bbox.csv",
              "labelme": "LabelMe *.json (or annotations/*.json) with a 'shapes' list",
              "labelstudio": "a Label Studio JSON export (a list of tasks)"}
ANY_FORMAT = ("a COCO *.json, annotations/*.json or <split>/_annotations.coco.json; a YOLO data.yaml, images/ beside "
              "labels/, *.txt beside images with a classes.txt, or obj.names with obj_<split>_data/; a VOC "
              "Annotations/, annotations/*.xml or *.xml; a CVAT annotations.xml; Open Images *-bbox.csv; LabelMe or "
              "Label Studio *.json")


def resolve_source(src: str | os.PathLike, fmt: str | None) -> str:
    """``fmt``, or the format detected in SRC; a folder where nothing fits is :class:`NoInputError` (exit 1,
    saying what was looked for), not a usage error: the command was right, the folder holds no dataset."""
    try:
        return formats.resolve(fmt, src)
    except formats.UnknownFormat as e:
        folder = os.fspath(src)
        files = files_for(folder)
        if not files.isdir(folder):
            raise
        below = []  # the folder above a dataset (an export unzipped into a folder of its own): name the dataset
        for path in [files.join(folder, d) for d in files.listdir(folder)[0] if not d.startswith(".")][:8]:
            try:
                below.append(f"{path} ({formats.detect(path)})")
            except (UsageError, OSError):
                continue
        if below:
            raise NoInputError(f"no dataset in {src} itself, but in a folder of it: {', '.join(below)}; pass that "
                               "folder") from e
        raise NoInputError(f"no dataset found in {src} (looked for {ANY_FORMAT}); give --format if it is one of "
                           "them in another layout") from e


def reader_classes(fmt: str, classes: Sequence[str] | None) -> list[str] | None:
    """What ``--classes`` gives the reader of ``fmt``: a YOLO dataset's ids take their names from it (its reader
    reports a listed name it lacks); every other format is read whole, and ``prepare`` selects and orders by name
    (and reports a listed name the source lacks, which a reader given the list would have taken as its own)."""
    return class_list(classes) if classes and fmt == "yolo" else None


def source_classes(ds: Dataset) -> Dataset:
    """``ds`` with the classes its source names: a YOLO dataset read with ``--classes`` (:func:`reader_classes`)
    holds that list as its classes, and the names of its ids are kept aside (``meta["names"]``; the list itself where
    it names no class). Counting or selecting by name starts from these."""
    return ds.evolve(classes=tuple(ds.meta["names"])) if ds.format == "yolo" and ds.meta.get("names") else ds


def all_dropped(ds: Dataset, src, what: str) -> NoInputError:
    """The error for a source whose every image was dropped (each file unreadable, refused or invalid): the counts
    by reason, and where to see each file."""
    why = ", ".join(f"{code} {n:,}" for code, n in sorted(Counter(f.code for f in ds.findings
                                                                  if f.image_dropped).items()))
    return NoInputError(f"{what}: every image of {src} was dropped ({why}); `datatools check {src}` lists each file")


def read_source(src: str | os.PathLike, fmt: str | None = None, *, classes: Sequence[str] | None = None,
                mapper: Mapper | None = None, progress=None, on_total=None, all_dropped_ok: bool = False,
                **options) -> Dataset:
    """Read SRC for any command: the format (detected when ``fmt`` is None or ``auto``), the reader's options
    (:func:`read_options`: ``images``, ``sets``, ``convention``, ``workers``, ``max_xml_bytes``) and the one rule
    that nothing found is an error. An empty or wrong folder raises :class:`NoInputError` saying what was looked for
    where (never an empty dataset that a writer would write and exit 0 on); a source that cannot be read at all,
    :class:`InputError`. A source whose every image was dropped (unreadable, refused) is an error too, unless
    ``all_dropped_ok`` (``check``, which lists them)."""
    if mapper is not None and mapper.engine == "ray" and in_this_process(src):
        raise UsageError(f"{src}: a memory:// file system lives in this process only, where Ray's workers cannot "
                         "read it; use --engine local")
    classes = class_list(classes)
    mod = formats.get(resolve_source(src, fmt))
    files = files_for(os.fspath(src))
    if files.isdir(os.fspath(src)) and files.listdir(os.fspath(src)) == ([], []):
        raise NoInputError(f"no annotations found in {src}: the folder is empty (looked for {LOOKED_FOR[mod.NAME]})")
    try:
        ds = mod.read(src, classes=list(classes) if classes else None, mapper=mapper, progress=progress,
                      on_total=on_total, **read_options(mod.NAME, **options))
    except OSError as e:  # a reader turns a bad file into a finding; this is the source itself
        raise InputError(e.filename or src, e) from e
    if not ds.images and any(f.image_dropped for f in ds.findings):
        if all_dropped_ok:
            return ds
        raise all_dropped(ds, src, "nothing to work on")
    if not ds.images:
        raise NoInputError(no_images_message(ds, src))
    return ds


def no_images_message(ds: Dataset, src: str | os.PathLike, *, what: str = "annotated images") -> str:
    """The one wording of "``ds`` read from ``src`` gives nothing to work on", naming what was looked for where:
    no annotation at all (for each format, :data:`LOOKED_FOR`; the VOC split lists read; the year folders of a
    VOCdevkit), or annotations whose image files are all missing (``evaluate``, ``visualize`` and the torch datasets
    need the pictures). An empty input is an error, never an empty result."""
    src = os.fspath(src)
    files = files_for(src)
    problems = sum(1 for f in ds.findings if f.severity is Severity.ERROR)
    tail = f"; reading reported {problems} error(s) (details: datatools check {src})" if problems else ""
    if ds.images:  # the annotations are there, the image files are not
        missing = [f for f in ds.findings if f.code in ("missing-image", "missing-image-dir")]
        where = ds.meta.get("image_dir") if ds.meta else None
        example = f" (e.g. {missing[0].path}: {missing[0].message})" if missing else ""
        looked = f" in {where}" if where else ""
        return (f"{src}: none of the {len(ds.images)} {what} has its image file{looked}{example}; pass --images / "
                f"images= when the images live elsewhere{tail}")
    if ds.format == "coco" and files.isfile(src):
        return f'no {what} found in {src}: its "images" list is empty{tail}'
    looked = LOOKED_FOR.get(ds.format, "a dataset")
    if ds.format == "voc":
        sets = ds.meta.get("sets") if ds.meta else None
        looked += f"; split lists read: {', '.join(sets)}" if sets else ""
        from datatools.formats.voc import year_folders

        years = year_folders(src)
        if years:
            looked += f"; it holds {', '.join(years.values())}: point at one of those year folders"
    orphans = next((f for f in ds.findings if f.code == "label-without-image"), None)
    if orphans is not None:
        looked += f"; {orphans.path}: {orphans.message}"
    return f"no {what} found in {src} (looked for {looked}){tail}"


def output_root(out: str | os.PathLike, dst_mod) -> str:
    """The folder a writer writes into: OUT, or the folder of a single output file (a COCO .json)."""
    if dst_mod.NAME == "coco" and Path(out).suffix.lower() == ".json":
        return os.path.dirname(os.path.abspath(out))
    return os.fspath(out)


def write_dataset(ds: Dataset, dst_format: str, out: str | os.PathLike, *, inputs: Sequence = (),
                  images_mode: ImagesMode | str = ImagesMode.LINK, convention: PixelConvention | str | None = None,
                  **options) -> WriteResult:
    """Write ``ds`` to ``out`` in ``dst_format``: every command that writes a whole dataset (convert, check --fix)
    writes through here. OUT may not be an input, be inside one (``inputs``: SRC and ``--images``; the dataset's
    own folders are added), or replace one; then the format's writer runs inside one
    :func:`~datatools.core.atomic.output_transaction`, so OUT ends as it was or complete (labels, images, data.yaml
    together), a failure (a full disk, two images under one name) is one :class:`OutputError`, and what a killed
    earlier run left in OUT is cleaned up first. ``convention`` applies to VOC output (VOC boxes' pixel indices) and
    is ignored for the other formats."""
    dst_mod = formats.get(dst_format)
    if convention is not None:  # the VOC writer takes it; every other writer ignores it (**_ignored)
        options["convention"] = convention
    check_output_dir(out, input_folders(ds, *inputs))
    refuse_replacing_inputs(out, owned_by(dst_mod, out, images_mode), [*inputs, *dataset_inputs(ds)])
    with output_transaction(output_root(out, dst_mod)):
        return dst_mod.write(ds, out, images_mode=images_mode, **options)


def owned_by(dst_mod, out: str | os.PathLike, images_mode: ImagesMode | str) -> tuple[str, ...]:
    """What writing ``out`` in ``dst_mod``'s format replaces whole: nothing below OUT for one COCO JSON file, and not
    the image folder under ``--images-mode none`` (labels may then be written beside images that stay where they
    are)."""
    if dst_mod.NAME == "coco" and Path(out).suffix.lower() == ".json":
        return ()
    if ImagesMode(images_mode) is ImagesMode.NONE:
        return tuple(n for n in dst_mod.OWNED if n != dst_mod.IMAGE_FOLDER)
    return dst_mod.OWNED


def convert(src_format: str, src: str | os.PathLike, dst_format: str, out: str | os.PathLike, *,
            images: str | os.PathLike | None = None, sets: Sequence[str] | str | None = None,
            classes: Sequence[str] | None = None, difficult: str | None = None, normalize_names: bool = False,
            convention: PixelConvention | str = DEFAULT_CONVENTION, images_mode: ImagesMode | str = ImagesMode.LINK,
            precision: int = 6, workers: int | None = None, strict: bool = False,
            progress: StageProgress | None = None, engine: str = "local", ray_address: str | None = None,
            max_xml_bytes: int | None = None) -> Summary:
    """Convert a dataset between any two formats (VOC, YOLO, COCO, CVAT, LabelMe, Label Studio and Open Images).

    ``difficult`` defaults to ``crowd`` for COCO output (pycocotools then ignores them) and ``keep`` otherwise.
    Under ``strict`` any error finding raises :class:`StrictModeError` before anything is written.
    ``engine="ray"`` runs the per-chunk reads and writes as Ray tasks on the cluster at ``ray_address`` (OUT must be
    at the same path on every node); the result is the same as ``engine="local"``.
    """
    mapper = Mapper(engine, ray_address, workers)
    src_mod, dst_mod = formats.get(resolve_source(src, src_format)), formats.get(dst_format)
    src_format, dst_format = src_mod.NAME, dst_mod.NAME
    if precision < 0 or precision > 12:
        raise UsageError("--precision must be between 0 and 12")
    if difficult == "crowd" and dst_format != "coco":
        raise UsageError("--difficult crowd applies to COCO output only (use keep or skip)")
    check_output_dir(out, [src, images] + ([Path(src) / "Annotations"] if src_format == "voc" else []))
    owned = owned_by(dst_mod, out, images_mode)
    refuse_replacing_inputs(out, owned, [src, images])  # before any work; the files read are checked again below
    ds_in = read_source(src, src_format, classes=reader_classes(src_format, classes), mapper=mapper,
                        images=images, sets=sets, convention=convention, workers=workers, max_xml_bytes=max_xml_bytes,
                        **stage_callbacks(progress, "read"))
    check_output_dir(out, input_folders(ds_in, src, images))
    refuse_replacing_inputs(out, owned, dataset_inputs(ds_in))
    return prepare_and_write(ds_in, ds_in, dst_format, out, src=str(src), src_format=src_format, inputs=[src, images],
                             classes=classes if src_format != "yolo" else None, difficult=difficult,
                             normalize_names=normalize_names, strict=strict, progress=progress,
                             images_mode=images_mode, precision=precision, workers=workers, mapper=mapper,
                             convention=convention)


def _refuse_no_images(ds_in: Dataset, ds: Dataset, summary: Summary) -> Exception | None:
    """:func:`prepare_and_write`'s default ``empty_error``: no image left (an empty dataset written with exit 0 would
    hide that nothing was converted)."""
    return None if ds.images else all_dropped(ds, summary.src, "nothing to write")


def prepare_and_write(ds_in: Dataset, ds: Dataset, dst_format: str, out: str | os.PathLike, *, src: str,
                      src_format: str, inputs: Sequence = (), classes: Sequence[str] | None = None,
                      difficult: str | None = None, normalize_names: bool = False, strict: bool = False,
                      empty_error: Callable[[Dataset, Dataset, Summary], Exception | None] = _refuse_no_images,
                      progress: StageProgress | None = None, **write_options) -> Summary:
    """The tail of every command that writes a dataset it read (``convert``; ``merge``, ``remap``, ``filter`` and
    ``sample`` after their own job): :func:`~datatools.ops.sanitize.prepare` (the policies, ``difficult`` by default
    ``crowd`` for COCO output and ``keep`` otherwise), the books (:func:`summarize` of ``ds_in`` as read against what
    is written), the refusal of an empty result (``empty_error(ds_in, prepared, summary)`` returns the error to raise,
    or None), ``strict`` (any error finding: :class:`StrictModeError`, nothing written), then the atomic write
    (:func:`write_dataset`, ``inputs`` protected, ``write_options`` for the writer; ``progress`` gets the ``write``
    stage). Returns the summary with the writer's findings and file count."""
    dst_mod = formats.get(dst_format)
    if difficult is None:
        difficult = "crowd" if dst_mod.NAME == "coco" else "keep"
    ds = prepare(ds, classes=classes, difficult=difficult, normalize_names=normalize_names,
                 require_size=dst_mod.NEEDS_SIZE)
    summary = summarize(ds_in, ds, src=src, out=str(out), src_format=src_format, dst_format=dst_mod.NAME)
    error = empty_error(ds_in, ds, summary)
    if error is not None:
        raise error
    if strict and summary.errors:
        summary.written = False
        raise StrictModeError(f"{sum(summary.errors.values())} data error(s) under --strict; nothing was written",
                              tuple(f for f in ds.findings if f.severity is Severity.ERROR))
    write_options.update(stage_callbacks(progress, "write", total=len(ds.images)))
    result = write_dataset(ds, dst_mod.NAME, out, inputs=inputs, **write_options)
    lost = [*fields_not_kept(ds, dst_mod, out), *result.findings]
    summary.findings.extend(lost)
    book_findings(summary, lost, by_writer=True)
    _count_difficult_not_kept(summary.difficult, dst_mod.KEEPS)
    summary.files_written = len(result.files)
    return summary


# VOC's pose when none was given, written by VOC for every object: not information a format loses by lacking it.
_NO_INFORMATION = frozenset({("pose", "Unspecified")})
_FLAGS = ("difficult", "truncated", "occluded", "iscrowd")


def fields_not_kept(ds: Dataset, dst_mod, out: str | os.PathLike) -> list[Finding]:
    """One ``field-not-kept`` finding per object field that ``ds`` uses and ``dst_mod``'s writer has no place for
    (its ``KEEPS``: the flags, ``attributes``, ``score``, ``splits``, ``extra`` and the ``classes`` list, its order and
    classes without objects; of the attributes, those its
    ``keeps_attribute(name)`` accepts when it has one), with the count: the objects are written, without the field.
    A lost ``iscrowd`` is a warning (the box then counts as one object in training and evaluation); a lost flag or
    attribute is a note."""
    keeps, rule = dst_mod.KEEPS, getattr(dst_mod, "keeps_attribute", None)
    anns = list(chain.from_iterable(im.annotations for im in ds.images))
    # One bulk pass per question, not a loop per object: this runs on the driver after every conversion.
    flags = Counter({name: n for name in _FLAGS if name not in keeps
                     for n in (sum(map(attrgetter(name), anns)),) if n})
    extra: Counter = Counter()  # the source format's own fields (COCO segmentation, license, ...): see Annotation.extra
    if "extra" not in keeps:
        extra.update(f"image {k}" for im in ds.images if im.extra for k, _ in im.extra)
        extra.update(k for a in anns if a.extra for k, _ in a.extra if k != "area")
    attrs: Counter = Counter()
    holders = 0
    for attributes, n in Counter(a.attributes for a in anns if a.attributes).items():  # few distinct ones
        lost = [k for k, v in attributes if (k, v) not in _NO_INFORMATION
                and not ("attributes" in keeps and (rule is None or rule(k, v)))]
        for k in lost:
            attrs[k] += n
        holders += n if lost else 0
    fmt, where = dst_mod.NAME, os.fspath(out)
    out_findings = []
    for name, n in sorted(flags.items(), key=lambda kv: _FLAGS.index(kv[0])):
        if name == "iscrowd":
            keep = [f for f in formats.FORMATS if "iscrowd" in formats.get(f).KEEPS]
            out_findings.append(warn("field-not-kept", where, name,
                                     f"{n} crowd object(s) (iscrowd): {fmt} has no place for the flag; they are "
                                     "written as ordinary boxes, which training and evaluation count as one object "
                                     f"each ({', '.join(keep)} keep it)"))
        else:
            out_findings.append(info("field-not-kept", where, name,
                                     f"{n} {name} flag(s): {fmt} has no place for them; the objects are written "
                                     "without the flag"))
    scores = sum(a.score is not None for a in anns) if "score" not in keeps else 0
    if scores:
        keep = [f for f in formats.FORMATS if "score" in formats.get(f).KEEPS]
        out_findings.append(info("field-not-kept", where, "score",
                                 f"{scores} confidence score(s): {fmt} has no place for them; the objects are "
                                 f"written as ground truth, without the score ({', '.join(keep)} keep it)"))
    splits = Counter(s for im in ds.images for s in im.splits) if "splits" not in keeps else Counter()
    if splits:
        top = ", ".join(f"{k} {c:,}" for k, c in sorted(splits.items()))
        out_findings.append(info("field-not-kept", where, "splits",
                                 f"the images' splits ({top}): {fmt} has no place for them; `datatools split` "
                                 "writes one dataset per part"))
    if extra:
        top = ", ".join(f"{k} {c}" for k, c in sorted(extra.items(), key=lambda kv: (-kv[1], kv[0]))[:8])
        out_findings.append(info("field-not-kept", where, "extra",
                                 f"{sum(extra.values())} value(s) of source fields ({top}"
                                 f"{', ...' if len(extra) > 8 else ''}): {fmt} has no place for them"))
    used = {a.label for a in anns}
    if "classes" not in keeps and list(ds.classes) != sorted(used):  # OUT reads back the names its objects use, sorted
        unused = [c for c in ds.classes if c not in used]
        shown = ", ".join(ds.classes[:8]) + (", ..." if len(ds.classes) > 8 else "")
        out_findings.append(info("field-not-kept", where, "classes",
                                 f"the class list ({shown}): {fmt} output reads back with the names its objects "
                                 "use, sorted" + (f" ({len(unused)} class(es) without objects are not among them)"
                                                  if unused else "") + "; pass --classes when reading it for this order"))
    coco = ds.meta.get("coco") or {}
    if "extra" not in keeps and coco:  # the dataset's own COCO fields, which only COCO writes back
        ids = {i for by_name in (ds.meta.get("category_ids") or {}).values() for i in by_name.values()}
        lost = ["info"] * (coco.get("info") not in (None, {}, formats.get("coco").OUR_INFO)) + ["licenses"] * bool(
            coco.get("licenses")) + sorted(coco.get("other") or {})
        lost += [f"categories' {k}" for k in sorted({k for e in (coco.get("categories") or {}).values() for k, v in
                                                    e.items() if (k, v) != ("supercategory", "none")})]
        lost += ["category ids"] * (ids != set(range(1, len(ids) + 1)))
        if lost:
            out_findings.append(info("field-not-kept", where, "coco", f"the COCO file's {', '.join(lost)}: {fmt} "
                                     "has no place for them (written back to COCO from COCO only)"))
    if attrs:
        top = ", ".join(f"{k} {c}" for k, c in sorted(attrs.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
        more = f", and {len(attrs) - 5} other name(s)" if len(attrs) > 5 else ""
        out_findings.append(info("field-not-kept", where, "attributes",
                                 f"{sum(attrs.values())} attribute value(s) on {holders} object(s) ({top}{more}): "
                                 f"{fmt} has no place for them; the objects are written without them"))
    return out_findings


def _count_difficult_not_kept(d: dict[str, int], keeps: frozenset[str]) -> None:
    """The summary's difficult counts for an output that cannot hold the flag: those written without it are
    ``not_kept``, never ``kept``; a difficult crowd object where only iscrowd has no place is kept as difficult."""
    kept, crowd = d.get("kept", 0), d.get("as_crowd", 0)
    if "iscrowd" not in keeps:
        kept, crowd = kept + crowd, 0
    lost = 0 if "difficult" in keeps else kept
    d.update(kept=kept - lost, as_crowd=crowd, not_kept=lost)
