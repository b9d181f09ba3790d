"""Pascal VOC XML: one XML file per image, 1-based inclusive pixel coordinates.

Reads a VOCdevkit-style root (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/*.txt``) or a plain folder of XML
files. Each document is read by :mod:`datatools.formats.voc_xml` through :mod:`datatools.formats.safe_xml` (lxml with
entities unresolved, no network and no DTD loading; files that declare a DTD are refused, so billion-laughs and
external-entity files cannot expand or reach anything). This module plans the files, puts the chunks together and
writes VOC.
"""
from __future__ import annotations

import os
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Sequence

from datatools.core.boxes import DEFAULT_CONVENTION, PixelConvention, fmt_number, snap, xyxy_to_voc
from datatools.core.errors import UsageError
from datatools.core.atomic import ImagesMode, place_images, staged_dir, write_files, write_staged
from datatools.core.fs import files_for, folder_prefix, is_url, read_text
from datatools.core.parallel import Mapper, ProgressFn
from datatools.core.paths import safe_relpath
from datatools.core.model import Dataset, Finding, ImageRecord, all_classes, sorted_classes
from datatools.formats.common import (DEFAULT_SPLIT, ImageIndex, WriteResult, err, existing_source,
                                      fill_sizes_from_headers, fold_no_images, info, no_image_dir,
                                      output_image_name, split_named, split_role, warn)
from datatools.formats.safe_xml import escape, names_not_xml
from datatools.formats.voc_xml import KNOWN_OBJECT_TAGS, MAX_XML_BYTES, read_chunk  # the XML reading lives in voc_xml

NAME = "voc"
# What write() replaces whole in OUT (see core.paths.refuse_replacing_inputs); the image folder only when it
# places images (not under --images-mode none).
OWNED = ("Annotations", "JPEGImages", "ImageSets")
IMAGE_FOLDER = "JPEGImages"
NEEDS_SIZE = False  # boxes are written in pixels: an image without a size can be written
# What the writer keeps of an object besides its box and class (ops.convert reports the rest, field by field):
# iscrowd is written as <difficult>1 (VOC evaluation ignores it as COCO's does a crowd), an attribute as a tag of
# its own when keeps_attribute(name).
KEEPS = frozenset({"difficult", "truncated", "occluded", "iscrowd", "attributes", "splits"})


def keeps_attribute(name: str, value: str | None = None) -> bool:
    """Whether to_xml writes an attribute: ``pose`` has its tag, others need a name that is a tag and not VOC's own."""
    return name == "pose" or (name.isidentifier() and name not in KNOWN_OBJECT_TAGS)


# --------------------------------------------------------------------------------------------------- layout

def devkit_years(src: str) -> list[str]:
    """The ``VOC<year>/`` folders with an ``Annotations/`` inside a VOCdevkit root (local path or URL alike)."""
    files = files_for(src)
    return [d for d in files.listdir(src)[0] if d.startswith("VOC") and files.isdir(files.join(src, d, "Annotations"))]


def year_folders(root: str) -> dict[str, str]:
    """``{"VOC2012": path, ...}``: the year folders (with ``Annotations/``) in ``root`` itself, in ``root/VOCdevkit``
    and in ``root/TrainVal/VOCdevkit`` (torchvision's download layouts); the first of a name wins."""
    files = files_for(root)
    if not files.isdir(root):
        return {}
    bases = [root] + [files.join(root, *d) for d in (("VOCdevkit",), ("TrainVal", "VOCdevkit"))
                      if files.isdir(files.join(root, *d))]
    found: dict[str, str] = {}
    for b in bases:
        for y in sorted(devkit_years(b)):
            found.setdefault(y, files.join(b, y))
    return found


def refuse_devkit_root(src: str) -> None:
    """A VOCdevkit root (``VOC2007/``... and no XML of its own) is not one dataset: a usage error that names the
    years, on a local path and behind a URL alike (it is not read as a folder of XML files)."""
    years = devkit_years(src)
    if years and not any(n.lower().endswith(".xml") for n in files_for(src).listdir(src)[1]):
        raise UsageError(f"{src} holds {', '.join(years)}: point SRC at one of them")


def voc_folders(src: str) -> tuple[str, str] | None:
    """``(annotation folder, image folder)`` of a VOC root, or None when ``src`` has neither layout:

    * the devkit's ``Annotations/`` with ``JPEGImages/`` (Label Studio's VOC export puts ``images/`` there instead);
    * ``annotations/`` holding XML files beside ``images/``, as many Kaggle sets and exports have it (raccoon,
      face-mask, road-sign and licence-plate sets).

    The image folder is the layout's own one when it is there, else the other one, else the layout's own one
    (reported missing)."""
    files = files_for(src)
    for ann_name, images in (("Annotations", ("JPEGImages", "images")), ("annotations", ("images", "JPEGImages"))):
        ann = files.join(src, ann_name)
        if not files.isdir(ann):
            continue
        if ann_name == "annotations" and not any(n.lower().endswith(".xml") for n in files.listdir(ann)[1]):
            continue
        found = [files.join(src, n) for n in images if files.isdir(files.join(src, n))]
        return ann, found[0] if found else files.join(src, images[0])
    return None


class Layout:
    """Where the annotations, images and split lists of a VOC source are: a devkit root (``Annotations/``,
    ``JPEGImages/``, ``ImageSets/Main/``), the ``annotations/`` + ``images/`` layout (:func:`voc_folders`), or a
    folder of XML files with its images beside them. A local path or an fsspec URL, the same rules
    (:func:`~datatools.core.fs.files_for`); every folder is a string."""

    def __init__(self, src: str | os.PathLike, images: str | os.PathLike | None = None) -> None:
        self.images_given = bool(images)
        self.src, self.files = existing_source(src)
        if self.files.isfile(self.src):
            raise UsageError(f"{src}: expected a VOC root (with Annotations/) or a folder of XML files")
        folders = voc_folders(self.src)
        if folders:
            self.ann_dir, self.image_dir = folders
            self.sets_dir: str | None = self.files.join(self.src, "ImageSets", "Main")
        else:
            refuse_devkit_root(self.src)
            self.ann_dir, self.image_dir, self.sets_dir = self.src, self.src, None
        if images:
            self.image_dir = os.fspath(images) if is_url(os.fspath(images)) else str(Path(images))

    def xml_files(self) -> list[tuple[str, str]]:
        """(image_id, path) for every XML file, sorted by image_id. The id is the path below the annotation folder."""
        folder = folder_prefix(self.ann_dir)
        out = [(rel[:-4], folder + rel) for rel in self.files.find(self.ann_dir, suffixes=(".xml",))]
        out.sort(key=lambda t: t[0])
        return out

    def available_sets(self) -> dict[str, list[str]]:
        """Split lists in ImageSets/Main (class-specific lists such as ``cat_train.txt`` excluded), a stripped line
        each, ``#`` comment lines left out, as datumaro writes them (see :func:`plan_files` for which id a line
        names)."""
        if not self.sets_dir:
            return {}
        out = {}
        for rel in sorted(self.files.find(self.sets_dir, suffixes=(".txt",), recursive=False), key=lambda r: r[:-4]):
            stem = rel[:-4]
            if "_" in stem or "/" in stem:
                continue
            text = read_text(self.files.join(self.sets_dir, rel), fallback="cp1252")  # a list saved on Windows
            out[stem] = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        return out


def choose_sets(available: dict[str, list[str]], sets: Sequence[str] | str | None) -> list[str]:
    """Which split lists to use. Default: the lists of a train, val or test role (``train``, ``val``, ``test``;
    ``valid``, ``val2017`` as Roboflow and COCO name theirs: :func:`~datatools.formats.common.split_role`) where
    present, else trainval, else every list found."""
    sets = [s.strip() for s in sets.split(",") if s.strip()] if isinstance(sets, str) else list(sets or ())
    if sets and sets != ["all"]:
        sets = [split_named(s, available) or s for s in sets]  # val: the valid list of a Roboflow export
        missing = [s for s in sets if s not in available]
        if missing:
            raise UsageError(f"split list(s) not found in ImageSets/Main: {', '.join(missing)} "
                             f"(found: {', '.join(available) or 'none'})")
        return sets
    if sets == ["all"]:
        return list(available)
    main = []
    for role in ("train", "val", "test"):  # the list of the role's name, else every other of the role (Roboflow's
        named = [s for s in available if split_role(s) == role]  # valid), trainval last: it holds val's images too
        main += [role] if role in named else sorted(s for s in named if s != "trainval") or named
    if main:
        return main
    if "trainval" in available:
        return ["trainval"]
    return list(available)


# --------------------------------------------------------------------------------------------------- reading

def plan_files(layout: Layout, sets: Sequence[str] | str | None
               ) -> tuple[list[tuple[str, str]], dict[str, list[str]], list[str], list[Finding]]:
    """What is known before any XML is parsed: ``(files, splits of each id, chosen split lists, findings)``.
    ``files`` are the ``(image_id, path)`` to read, sorted; the findings name split lists entries without an XML and
    files in none of the chosen lists. The reader starts here."""
    files = layout.xml_files()
    findings: list[Finding] = []
    available = layout.available_sets()
    split_of: dict[str, list[str]] = {}
    chosen: list[str] = []
    if available:
        chosen = choose_sets(available, sets)
        by_id = {iid: p for iid, p in files}
        for s in chosen:
            for line in available[s]:
                # the whole line when it names an annotation (an id with a space, as torchvision reads the lists),
                # else its first word (a line "id 1" of the devkit's per-class layout)
                iid = line if line in by_id else line.split()[0]
                listed = split_of.get(iid)
                if listed is None:
                    split_of[iid] = [s]
                elif s not in listed:
                    listed.append(s)
        missing = [iid for iid in split_of if iid not in by_id]
        for iid in missing:
            findings.append(err("missing-annotation", os.path.join(layout.ann_dir, f"{iid}.xml"), "ImageSets",
                                "listed in a split list but there is no XML for it", image_id=iid, image_dropped=True))
        listed_files = [(iid, p) for iid, p in files if iid in split_of]
        not_listed = len(files) - len(listed_files)
        if not_listed:
            findings.append(info("not-in-sets", str(layout.sets_dir), "ImageSets",
                                 f"{not_listed} annotation file(s) are in none of the chosen split lists "
                                 f"({', '.join(chosen)}) and were not read"))
        files = listed_files
    elif sets and (list(sets) if not isinstance(sets, str) else [sets]) != ["all"]:
        raise UsageError(f"{layout.src}: --sets was given but there is no ImageSets/Main folder with split lists")
    elif layout.sets_dir is None and files and all("/" in iid and split_role(iid.split("/", 1)[0]) for iid, _ in files):
        split_of = {iid: [iid.split("/", 1)[0]] for iid, _ in files}  # train/a.xml: Roboflow's VOC export
        chosen = sorted({s for (s,) in split_of.values()})
    return files, split_of, chosen, findings


def read(src: str | os.PathLike, *, images: str | os.PathLike | None = None, sets: Sequence[str] | str | None = None,
         convention: PixelConvention | str = DEFAULT_CONVENTION, classes: Sequence[str] | None = None,
         workers: int | None = None, progress: ProgressFn | None = None, on_total: "callable | None" = None,
         mapper: Mapper | None = None, max_xml_bytes: int = MAX_XML_BYTES) -> Dataset:
    """Read a VOC dataset into the model.

    Use ``sets`` to pick ImageSets/Main split lists (default: :func:`choose_sets`). Malformed files and
    objects become findings; nothing raises for bad data. ``classes`` fixes the class order (default: sorted names).
    The XML files are parsed in chunks by :func:`datatools.formats.voc_xml.read_chunk`, run by ``mapper`` (a
    :class:`~datatools.core.parallel.Mapper`: local processes over ``workers`` by default, Ray tasks when ops/ hands
    in one for ``--engine ray``): the same records and findings, in the same order, either way.

    The image of an annotation is the one named after the XML file itself, then the one its ``<filename>`` names
    (:class:`~datatools.formats.common.ImageIndex`); a found image's header is the size, whatever ``<size>`` says
    (:func:`~datatools.formats.common.fill_sizes_from_headers`). Files over ``max_xml_bytes`` (16 MiB) are refused
    unread with a ``file-too-large`` finding; raise it for a dataset of huge annotation files.
    """
    convention = PixelConvention(convention)
    if isinstance(max_xml_bytes, bool) or not isinstance(max_xml_bytes, int) or max_xml_bytes < 1:
        raise ValueError(f"max_xml_bytes must be a positive number of bytes, not {max_xml_bytes!r}")
    layout = Layout(src, images)
    files, split_of, chosen, findings = plan_files(layout, sets)
    if on_total:
        on_total(len(files))
    no_split: tuple[str, ...] = ()
    jobs = [(p, iid, tuple(split_of[iid]) if iid in split_of else no_split) for iid, p in files]
    mapper = mapper or Mapper(workers=workers)
    chunks = mapper.chunks(jobs)
    index = ImageIndex(layout.image_dir)  # the image folder, local or a URL, whatever SRC is
    image_dir = str(layout.image_dir)
    if files and not index.exists:
        findings.append(no_image_dir(image_dir, "images", "the image folder does not exist; images are neither "
                                     "checked nor copied", given=layout.images_given))
    records: list[ImageRecord] = []
    objects_read = 0
    results = mapper(partial(read_chunk, convention=convention, max_bytes=max_xml_bytes), chunks, progress=progress)
    for chunk, (recs, found) in zip(chunks, results):
        # The books: every object met is kept or dropped with a finding that counts it.
        objects_read += sum(len(r.annotations) for r in recs) + sum(f.objects for f in found)
        # File by file, as the chunk lists them: its findings, then what the image lookup notices.
        fi = ri = 0
        for path, _, _ in chunk:
            start = fi
            while fi < len(found) and found[fi].path == path:
                fi += 1
            findings.extend(found[start:fi])
            if ri < len(recs) and recs[ri].source == path:
                rec = recs[ri]
                ri += 1
                if index.exists:  # file_name becomes the image's relative path
                    image_path, notes, rel = index.locate(rec.file_name, rec.image_id, path=path, fld="filename",
                                                          shown=rec.file_name or rec.image_id)
                    findings.extend(notes)
                    if image_path is not None:
                        rec = replace(rec, file_name=rel, image_path=image_path)
                records.append(rec)
        findings.extend(found[fi:])  # none: every finding of a file names it
    if layout.sets_dir is None and split_of:  # Roboflow's VOC (train/a.xml): a of split train, as YOLO and COCO
        renamed: dict[str, str] = {}  # read it; a name two splits hold stays <split>/<name> for the second
        taken: set[str] = set()
        for rec in records:
            short = rec.image_id.split("/", 1)[1]
            renamed[rec.image_id] = short if short not in taken else rec.image_id
            taken.add(renamed[rec.image_id])
        records = sorted((replace(r, image_id=renamed[r.image_id]) for r in records), key=lambda r: r.image_id)
        findings = [replace(f, image_id=renamed.get(f.image_id, f.image_id)) for f in findings]
    fold_no_images(records, findings, image_dir, given=layout.images_given)
    records = fill_sizes_from_headers(records, findings, mapper=mapper)
    cls = tuple(classes) if classes else sorted_classes(records)
    return Dataset(images=tuple(records), classes=cls, findings=tuple(findings), objects_read=objects_read,
                   root=str(layout.src), format=NAME,
                   meta={"sets": chosen, "image_dir": image_dir, "convention": convention.value})


# --------------------------------------------------------------------------------------------------- writing

def to_xml(record: ImageRecord, *, image_name: str, convention: PixelConvention = DEFAULT_CONVENTION,
           precision: int = 6) -> str:
    """Serialize one record as VOC XML text (deterministic)."""
    lines = ["<annotation>", f"\t<folder>{IMAGE_FOLDER}</folder>", f"\t<filename>{escape(image_name)}</filename>"]
    if record.has_size:
        lines += ["\t<size>", f"\t\t<width>{record.width}</width>", f"\t\t<height>{record.height}</height>",
                  f"\t\t<depth>{record.depth or 3}</depth>", "\t</size>"]
    lines.append("\t<segmented>0</segmented>")
    side = max(record.width or 0, record.height or 0)
    for a in record.annotations:
        x1, y1, x2, y2 = (fmt_number(snap(v, side=side), precision) for v in xyxy_to_voc(a.box, convention))
        attrs = dict(a.attributes)
        lines += ["\t<object>", f"\t\t<name>{escape(a.label)}</name>", f"\t\t<pose>{escape(attrs.pop('pose', 'Unspecified'))}</pose>",
                  f"\t\t<truncated>{int(a.truncated)}</truncated>", f"\t\t<difficult>{int(a.difficult or a.iscrowd)}</difficult>"]
        if a.occluded:
            lines.append("\t\t<occluded>1</occluded>")
        for k, v in sorted(attrs.items()):
            if keeps_attribute(k):  # the one rule, which ops.convert reports by
                lines.append(f"\t\t<{k}>{escape(str(v))}</{k}>")
        lines += ["\t\t<bndbox>", f"\t\t\t<xmin>{x1}</xmin>", f"\t\t\t<ymin>{y1}</ymin>", f"\t\t\t<xmax>{x2}</xmax>",
                  f"\t\t\t<ymax>{y2}</ymax>", "\t\t</bndbox>", "\t</object>"]
    lines.append("</annotation>\n")
    return "\n".join(lines)


def write(ds: Dataset, out: str | os.PathLike, *, convention: PixelConvention | str = DEFAULT_CONVENTION,
          images_mode: ImagesMode | str = ImagesMode.LINK, precision: int = 6, workers: int | None = None,
          progress: ProgressFn | None = None, mapper: Mapper | None = None) -> WriteResult:
    """Write ``ds`` as a VOCdevkit-style tree: Annotations/, JPEGImages/ and ImageSets/Main/<split>.txt.

    Each folder is built in a staging folder and swapped in whole (see core.atomic.staged_dir). The XML text is made
    here; the files are written and the images placed on ``mapper`` (default: local threads, ``workers`` of them):
    on Ray the workers write straight into the stage (see core.atomic.write_staged).
    """
    convention = PixelConvention(convention)
    images_mode = ImagesMode(images_mode)
    mapper = mapper or Mapper(workers=workers)
    out = Path(out)
    result = WriteResult(out=str(out))
    rels: list[str] = []
    names: list[str] = []
    pictures: list[tuple[str, str]] = []
    split_ids: dict[str, list[str]] = {}
    for rec in ds.images:
        name = output_image_name(rec)
        rels.append(safe_relpath(rec.image_id) + ".xml")
        names.append(name)
        for s in rec.splits:
            split_ids.setdefault(safe_relpath(s), []).append(rec.image_id)
        if rec.image_path and images_mode is not ImagesMode.NONE:
            pictures.append((rec.image_path, name))
    with staged_dir(out / "Annotations") as stage:
        write_staged([(to_xml(rec, image_name=name, convention=convention, precision=precision).encode("utf-8"),
                       [os.path.join(stage, rel)]) for rec, rel, name in zip(ds.images, rels, names)],
                     stage=stage, mapper=mapper, progress=progress)
    place_images(out / "JPEGImages", pictures, images_mode, mapper=mapper)
    unsplit = [rec.image_id for rec in ds.images if not rec.splits]
    if split_ids and unsplit:  # in no list: listed as "all", so that --sets all reads them
        split_ids.setdefault(DEFAULT_SPLIT, []).extend(unsplit)
    if split_ids:  # images only in lists that reading by default leaves out (trainval beside train/val, all)
        chosen = set(choose_sets(split_ids, None))
        left = sorted({i for s, ids in split_ids.items() if s not in chosen for i in ids}
                      - {i for s in chosen for i in split_ids[s]})
        if left:
            result.findings.append(warn("split-not-read-by-default", str(out / "ImageSets" / "Main"), "splits",
                                        f"{len(left)} image(s) (e.g. {left[0]!r}) are only in the list(s) "
                                        f"{', '.join(sorted(set(split_ids) - chosen))}, which reading OUT with the "
                                        f"default lists ({', '.join(sorted(chosen))}) leaves out; read it with "
                                        "--sets all"))
        with staged_dir(out / "ImageSets") as stage:
            write_files([(os.path.join(stage, "Main", s + ".txt"), "".join(i + "\n" for i in ids))
                         for s, ids in sorted(split_ids.items())])
    anns = os.path.join(str(out), "Annotations", "")
    result.files = [anns + r for r in rels]
    result.findings += names_not_xml(all_classes(ds.classes, ds.images), ds.images, anns)
    return result.wrote_all(ds)
