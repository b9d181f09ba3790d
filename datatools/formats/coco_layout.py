"""Where a COCO dataset's files are: its JSON files and their splits (one file, ``annotations/*.json``,
``instances_<split>.json``, Roboflow's ``<split>/_annotations.coco.json``), one split's file (:func:`json_for_split`,
for ``evaluate`` and ``predict``), and the image folder of each file. Local paths and URLs alike
(:func:`datatools.core.fs.files_for`); the reading itself is :mod:`datatools.formats.coco`."""
from __future__ import annotations

import os
import posixpath

from datatools.core.errors import UsageError
from datatools.core.fs import files_for
from datatools.core.model import Finding
from datatools.core.paths import name_here
from datatools.formats.common import no_image_dir, split_named

# COCO's own annotations/ folder holds a file per task and split: instances_val2017.json (the boxes),
# person_keypoints_val2017.json (the person boxes again, with keypoints), captions_val2017.json (no boxes). The split
# is the name without the task; of one split's files the boxes' are read (the first task here that it has).
COCO_KEYS = ("images", "annotations", "categories")  # a JSON object with none of them is no COCO file
NOT_COCO = 'not read: no COCO file (no "images", "annotations" or "categories" key)'
_TASKS = ("instances_", "person_keypoints_", "stuff_", "captions_", "panoptic_", "image_info_")
_NO_BOXES = ("captions_", "panoptic_", "image_info_")


def _task_split(name: str) -> tuple[int, str]:
    """(rank of the file's task in :data:`_TASKS`, or its length for a file without one; the split)."""
    stem = name[:-5]
    for k, task in enumerate(_TASKS):
        if stem.lower().startswith(task) and len(stem) > len(task):
            return k, stem[len(task):]
    return len(_TASKS), stem


def json_files(src: str, not_read: list[tuple[str, str, str]] | None = None) -> list[tuple[str | None, str]]:
    """``(split or None, path)`` of the COCO JSON files of ``src``: the file itself, or ``annotations/*.json`` (else
    ``*.json``, else :func:`split_folders`) of a folder, one split each (:func:`_one_task_per_split`); ``(path, code,
    why)`` of the files left out are added to ``not_read``: another task's, and JSON that is no COCO (``package.json``
    beside ``instances.json``). Local paths and URLs alike (:func:`datatools.core.fs.files_for`)."""
    files = files_for(src)
    if files.isfile(src):
        return [(None, src)]
    ann = files.join(src, "annotations") if files.isdir(files.join(src, "annotations")) else src
    names = [n for n in files.listdir(ann)[1] if n.lower().endswith(".json")]  # as formats.detect finds them
    other = [n for n in names if not _may_be_coco(files.join(ann, n))]
    if other and len(other) < len(names):
        names = [n for n in names if n not in other]
        if not_read is not None:
            not_read += [(files.join(ann, n), "json-not-coco", NOT_COCO) for n in sorted(other)]
    if not names and ann == src:
        nested = split_folders(src)
        if nested:
            return nested  # type: ignore[return-value]
    if not names:
        raise UsageError(f"{src}: no COCO JSON files found (expected a .json file, annotations/*.json or "
                         "<split>/_annotations.coco.json)")
    kept, skipped = _one_task_per_split(names)
    if not_read is not None:
        not_read += [(files.join(ann, n), "task-file-not-read", "not read: a file of another task (captions, "
                      "keypoints, panoptic) of a split whose boxes another file holds, or a task without boxes")
                     for n in skipped]
    if not kept:
        raise UsageError(f"{src}: no COCO JSON file with boxes ({', '.join(skipped)}: captions or panoptic files "
                         "hold none)")
    return [(split, files.join(ann, n)) for split, n in kept]


def _may_be_coco(path: str) -> bool:
    """Whether a JSON file may be a COCO dataset: any file over 64 KiB (a long ``info`` may come first), one that
    cannot be sniffed (the reader then says what is wrong with it), and an object with one of COCO's keys. A small
    object without any (``package.json``, ``config.json``) is no COCO file."""
    from datatools.formats import json_head, whole_head

    text = json_head(path)
    if text is None or not whole_head(text):
        return True
    return not text.startswith("{") or any(f'"{k}"' in text for k in COCO_KEYS)


def _one_task_per_split(names: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(split, name) read], [names not read])``: of the files of one split, the boxes' (instances before
    person_keypoints before stuff); a file of a task without boxes (captions, panoptic, image_info) is not read."""
    by_split: dict[str, tuple[int, str]] = {}
    skipped = []
    for n in sorted(names):
        rank, split = _task_split(n)
        if rank < len(_TASKS) and _TASKS[rank] in _NO_BOXES:
            skipped.append(n)
        elif split in by_split and by_split[split][0] <= rank:
            skipped.append(n)
        else:
            if split in by_split:
                skipped.append(by_split[split][1])
            by_split[split] = (rank, n)
    return [(split, n) for split, (_, n) in by_split.items()], sorted(skipped)


def json_for_split(src: str, split: str | None = None) -> str:
    """The one COCO JSON file of ``src`` (as :func:`json_files` finds them) for ``split``: the split of that name,
    else, for ``train``, ``val`` or ``test``, the split that plays the role (``val2017``, Roboflow's ``valid``: see
    :func:`~datatools.formats.common.split_of_role`); without ``split``, the only file. A usage error names the
    splits found otherwise. ``evaluate`` and ``predict`` read one split's ground truth through here."""
    found = json_files(src)
    if len(found) == 1 and (split is None or found[0][0] in (None, split)):
        return found[0][1]
    by_split = {name: path for name, path in found if name}
    chosen = split_named(split, by_split)
    if chosen is not None:
        return by_split[chosen]
    names = ", ".join(sorted(by_split)) or "none"
    if split:
        raise UsageError(f"{src}: no COCO JSON for split {split!r} (splits found: {names})")
    raise UsageError(f"{src}: {len(found)} COCO JSON files (splits {names}); pass --split or the JSON file itself")


def split_folders(src: str) -> list[tuple[str, str]]:
    """``(split, path)`` of the layout Roboflow exports COCO in: a folder per split (``train/``, ``valid/``,
    ``test/``), each with one JSON file (``_annotations.coco.json``) beside its images; the split is the folder's
    name. A folder with no JSON file, or several, is not one of them."""
    files = files_for(src)
    out = []
    for d in files.listdir(src)[0]:
        sub = files.join(src, d)
        jsons = [n for n in files.listdir(sub)[1] if n.lower().endswith(".json")]
        if len(jsons) == 1:
            out.append((d, files.join(sub, jsons[0])))
    return out


def _image_dir_candidates(json_path: str, split: str | None) -> list[str]:
    """Where the images of a COCO JSON file may be, in order: its folder, ``../images/<split>``, ``../<split>``,
    ``images/<split>``, ``../images``, ``..`` and ``images``."""
    files = files_for(json_path)
    parent = files.parent(json_path)
    up = files.parent(parent)
    if not split:  # a file given by itself: instances_val.json still names its split (what the COCO writer writes)
        name = posixpath.basename(str(json_path).replace("\\", "/"))
        if name.lower().endswith(".json"):
            rank, stem = _task_split(name)
            if rank < len(_TASKS) or stem.startswith(("train", "val", "test")):
                split = stem
    cands = [parent]
    if split:
        cands += [files.join(up, "images", split), files.join(up, split), files.join(parent, "images", split)]
    cands += [files.join(up, "images"), up, files.join(parent, "images")]
    return list(dict.fromkeys(cands))


def guess_image_dir(json_path: str, split: str | None, file_names: list[str]) -> str | None:
    """The image folder of a COCO JSON file: the first candidate (:func:`_image_dir_candidates`) that holds the first
    few images it names, else the one that holds most of them; None when none holds any."""
    files = files_for(json_path)
    probe = []  # as ImageIndex pairs them: a Windows file_name (images\\a.jpg), an extension in another case
    for f in (name_here(f) for f in file_names[:5] if f):  # C:\\Users\\al\\a.jpg: looked up as a.jpg
        stem, ext = posixpath.splitext(f)
        probe.append(list(dict.fromkeys((f, stem + ext.lower(), stem + ext.upper()))))
    best, found = None, 0
    for c in _image_dir_candidates(json_path, split):
        n = sum(1 for names in probe if any(files.isfile(files.join(c, f)) for f in names))
        if probe and n == len(probe):
            return c
        if n > found:
            best, found = c, n
    return best


def no_images_found(jpath: str, split: str | None, images, n: int) -> Finding:
    """The one finding for a COCO file none of whose images can be found (rather than one per image): an error when
    the ``--images`` folder given does not exist, else a warning, as every reader reports annotations without
    their images (:func:`~datatools.formats.common.no_image_dir`)."""
    if images:
        where = f"the image folder {os.fspath(images)} does not exist"
    else:
        files, here = files_for(jpath), files_for(jpath).parent(jpath)
        looked = [c if files.url else os.path.relpath(c, here) + "/" for c in _image_dir_candidates(jpath, split)]
        where = f"no image folder found beside {posixpath.basename(jpath)} (looked in {', '.join(looked)})"
    return no_image_dir(str(jpath), "images/file_name",
                        f"{where}: none of the {n} image(s) can be checked, sized or copied; pass --images DIR",
                        given=bool(images))
