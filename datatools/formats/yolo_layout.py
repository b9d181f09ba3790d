"""The layout of a YOLO dataset: which images a ``data.yaml`` (or an ``images/`` folder) names, and the ``data.yaml``
datatools writes. The label files themselves are read and written in :mod:`datatools.formats.yolo`.

Paths in a data.yaml are resolved the way ultralytics' ``check_det_dataset`` does: against its ``path`` key, and
without one against the data.yaml's own folder. datatools writes no ``path`` key, so a copied or moved dataset reads
its own files.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

from datatools.core import fs
from datatools.core.errors import DatatoolsError, FormatError, InputError, UsageError
from datatools.core.fs import files_for, read_text, trimmed_lines
from datatools.core.images import list_images
from datatools.core.paths import IMAGE_EXTENSIONS, is_absolute_name, safe_relpath
from datatools.core.model import Dataset, Finding
from datatools.formats.common import DEFAULT_SPLIT, info, role_folders, split_role, warn

SPLIT_KEYS = ("train", "val", "test")


def yaml_splits(splits: Sequence[str]) -> dict[str, list[str]]:
    """``{data.yaml key: [splits]}`` for a dataset written with ``images/<split>`` folders (see :func:`split_role`).

    Every split of a role is named under its key (a merge of ``train`` and ``train2017``, of ``val`` and
    ``valid``), the one named as the role first. train: the training splits (VOC's ``trainval`` only without
    another: it holds val's images too), else the first split that plays no val or test role (never a test split: it
    would be trained on), else the first one. val: the validation splits, else the train entry (ultralytics needs a
    val entry). test: the test splits, when there are any."""
    def of_role(role: str) -> list[str]:
        return sorted((s for s in splits if split_role(s) == role), key=lambda s: s != role)

    trains = of_role("train")
    trains = [s for s in trains if s != "trainval"] or trains
    other = [s for s in splits if split_role(s) not in ("val", "test")]
    train = trains or [other[0] if other else (splits[0] if splits else DEFAULT_SPLIT)]
    out = {"train": train, "val": of_role("val") or train}
    if of_role("test"):
        out["test"] = of_role("test")
    return out


def evaluation_only(train: Sequence[str]) -> bool:
    """Whether data.yaml's train entry (:func:`yaml_splits`) names evaluation splits only (val2017, test): a
    dataset without a training split, whose train entry is there because ultralytics needs one."""
    return all(split_role(s) in ("val", "test") for s in train)


def _load_yaml(path: Path | str) -> dict:
    import yaml

    try:
        data = yaml.safe_load(read_text(path))
    except OSError as e:
        raise InputError(os.fspath(path), e) from e
    except yaml.YAMLError as e:  # one line: where the parser stopped and why, not its multi-line picture
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise FormatError(path, "", f"not valid YAML{at}: {getattr(e, 'problem', None) or e}") from e
    if not isinstance(data, dict):
        raise FormatError(path, "", "expected a mapping with train/val/names keys")
    return data


def _names_from(value, where: str) -> list[str]:
    if isinstance(value, dict):
        try:  # as ultralytics reads them: int(key), so '00' is 0
            by_id = {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError) as e:
            raise FormatError(where, "names", "keys must be integers") from e
        if sorted(by_id) != list(range(len(value))):
            raise FormatError(where, "names", f"ids must run 0..{len(value) - 1}")
        return [by_id[i] for i in range(len(value))]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise FormatError(where, "names", "expected a list or a mapping of id -> name")


def _yaml_names(data: dict, where: str) -> list[str]:
    """The class names of a data.yaml: ``names`` (list or dict), else ``class_<i>`` for ``nc``, else none."""
    if "names" in data and data["names"] is not None:
        return _names_from(data["names"], where)
    if "nc" in data:
        try:
            return placeholder_names(int(data["nc"]))
        except (TypeError, ValueError) as e:
            raise FormatError(where, "nc", f"expected an integer, found {data['nc']!r}") from e
    return []


def _number(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _yaml_keypoints(data: dict, where: str) -> int:
    """How many values a pose row holds after its box: ultralytics' ``kpt_shape: [points, dims]`` (dims 2: x y;
    3: x y visibility), whose rows are ``class cx cy w h`` and ``points * dims`` values. 0 without ``kpt_shape``."""
    shape = data.get("kpt_shape")
    if shape is None:
        return 0
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(v) is int and v > 0 for v in shape)
            and shape[1] in (2, 3)):
        raise FormatError(where, "kpt_shape", f"expected [points, 2 or 3], found {shape!r}")
    return shape[0] * shape[1]


def placeholder_names(n: int) -> list[str]:
    """The names ultralytics gives ``nc`` classes that have none: ``class_0 .. class_<n-1>``."""
    return [f"class_{i}" for i in range(n)]


def _resolve(files, base: str, p: str) -> str | None:
    """``p`` from a data.yaml or a list file, as a path: relative ones under ``base``. On a URL source an absolute
    local path names the machine the dataset was written on, not the URL copy: None."""
    if not files.url:  # C:/data/x, written on Windows, is no path under base here either
        return str(Path(p)) if os.path.isabs(p) or is_absolute_name(p) else files.join(base, p)
    p = p.strip()
    if fs.is_url(p):
        return p
    if is_absolute_name(p):
        return None
    return files.join(base, p)


def discover(src: str | os.PathLike) -> tuple[Path | str, dict[str, list[tuple[str, str]]], list[str], list[Finding],
                                              dict]:
    """Find the splits of a YOLO dataset: (root, {split: [(image_id, image_path)]}, class names, findings, how its
    label files are read: ``keypoints``, the values of a pose row after its box (:func:`_yaml_keypoints`; 0
    without), and ``beside``, whether each label file is beside its image (LabelImg, CVAT's YOLO 1.1) rather than
    where ultralytics' rule puts it).

    ``src`` is a data.yaml (or a folder holding one), or a folder with ``images/`` (and ``labels/``) beside it. It
    may be an fsspec URL: the root is then a URL string and every image path a URL under it, and every file is
    reached through :mod:`datatools.core.fs`. There a data.yaml ``path`` that is a relative path or a URL is
    followed, but an absolute local path (what datatools once wrote, and ultralytics' own yamls hold) names the place
    the dataset was written, not where the URL copy is, so the root is the data.yaml's folder; split entries and
    list-file lines that are absolute local paths are reported as missing splits / missing images rather than read
    from this machine's disk.

    A split that lists the same images as an earlier one (``val: images/train`` beside ``train: images/train``,
    the placeholder ultralytics needs when there is no validation set) is not a second split: it is reported as
    ``repeated-split`` and read once. datatools writes a dataset without splits as ``images/all`` with ``val`` =
    ``train``; that reads back as the one split ``all``, as a flat ``images/`` folder does."""
    src = os.fspath(src)
    files = files_for(src)
    if not files.url:
        src = str(Path(src))  # as pathlib spells it: "ds//data.yaml/" is "ds/data.yaml", "" is "."
    findings: list[Finding] = []
    if not files.url and not os.path.exists(src):
        raise UsageError(f"{src}: no such file or directory")
    yaml_path = None
    if files.isfile(src):
        yaml_path = src
    else:
        for cand in ("data.yaml", "dataset.yaml", "data.yml"):
            if files.isfile(files.join(src, cand)):
                yaml_path = files.join(src, cand)
                break
    names: list[str] = []
    splits: dict[str, list[tuple[str, str]]] = {}
    keypoints, beside = 0, False
    if yaml_path is not None:
        data = _load_yaml(yaml_path)
        here = files.parent(yaml_path)
        root, note = _yaml_root(files, here, data.get("path"), data.get("train"), str(yaml_path))
        findings += note
        names = _yaml_names(data, str(yaml_path))
        if data.get("names") is not None and _number(data.get("nc", len(names))) != len(names):
            findings.append(warn("nc-not-names", str(yaml_path), "nc", f"nc is {data['nc']!r} but names lists "
                                 f"{len(names)} classes (ultralytics refuses the file); the names are read"))
        keypoints = _yaml_keypoints(data, str(yaml_path))
        repeated: dict[str, str] = {}
        for split in SPLIT_KEYS:
            entry = data.get(split)
            if not entry:
                continue
            paths = _entry_images(files, root, entry, split, str(yaml_path), findings)
            same = next((s for s, items in splits.items() if items and [p for _, p in items] == paths), None)
            if same is not None:
                findings.append(info("repeated-split", str(yaml_path), split,
                                     f"{split} lists the same {len(paths)} image(s) as {same} (a placeholder): "
                                     "one split, read once"))
                repeated[split] = same
                continue
            splits[split] = [(_image_id(full), full) for full in paths]
        # Our own layout for a dataset without splits (train and val: images/all), or of evaluation splits only
        # (train and val: images/val2017, a placeholder train entry): the split keeps its folder's name
        entry = str(data.get("train") or "").strip().replace("\\", "/").rstrip("/").removeprefix("./")
        name = entry.removeprefix("images/") if entry.startswith("images/") else ""
        if "train" in splits and repeated.get("val") == "train" and name not in splits and (
                name == DEFAULT_SPLIT or split_role(name) in ("val", "test") and _ours(yaml_path)):
            splits = {(name if k == "train" else k): v for k, v in splits.items()}
    else:
        root = src.rstrip("/") if files.url else str(Path(src))
        splits, beside = _folder_splits(files, root, src, findings)
    class_files = [files.join(root, n) for n in ("classes.txt", "obj.names", "_darknet.labels")]
    class_files += [files.join(root, s, "_darknet.labels") for s in splits] if beside else []
    for ct in class_files if not names else ():
        if files.isfile(ct):
            names = _class_lines(ct, findings)
            break
    return (root if files.url else Path(root)), splits, names, findings, {"keypoints": keypoints, "beside": beside}


WRITTEN_BY = "# written by datatools"


def _ours(yaml_path) -> bool:
    """Whether a data.yaml is one datatools wrote (its first line says so): a user's own train: images/val trains on
    it, as ultralytics does, and keeps its train split."""
    return read_text(yaml_path).startswith(WRITTEN_BY)


def _class_lines(path: str, findings: list[Finding]) -> list[str]:
    """The names of a ``classes.txt`` (``obj.names``), one a line. A blank line between names keeps its id, as
    LabelImg and darknet read the file (dropping it gave every later id the next class's name): it is named
    ``class_<id>``, with a warning."""
    first, lines = trimmed_lines(read_text(path))
    for i, name in enumerate(lines):
        if not name:
            lines[i] = f"class_{i}"
            findings.append(warn("blank-class-name", path, f"line {first + i}", f"the line is blank: id {i} keeps its "
                                 f"place (as LabelImg and darknet read the file), named {lines[i]!r}"))
    return lines


def _folder_splits(files, root: str, src: str, findings: list[Finding]
                   ) -> tuple[dict[str, list[tuple[str, str]]], bool]:
    """The splits of a YOLO folder without a data.yaml, and whether its labels are beside their images: CVAT's
    Darknet export (:func:`darknet_splits`), else ``images/<split>/`` (or a flat ``images/``) beside ``labels/``,
    else LabelImg's labels beside their images (:func:`labels_beside_images`)."""
    def images(folder: str, recursive: bool = True) -> list[tuple[str, str]]:
        return [(_image_id(full), full) for full in list_images(folder, recursive=recursive).values()]

    def labels_only(split: str, found: list, label_folder: str, hint: str = "") -> list:
        """A split with label files and no image: say so (CVAT exports YOLO 1.1 without images unless asked)."""
        if not found and files.isdir(label_folder):
            n = sum(1 for name in files.listdir(label_folder)[1] if name.endswith(".txt") and name != "classes.txt")
            if n:
                findings.append(warn("label-without-image", label_folder, split,
                                     f"{n} label file(s) and no image for any of them: YOLO boxes are fractions of "
                                     f"the image size, so the images must be there too{hint}"))
        return found

    darknet = darknet_splits(root)
    if darknet:
        return {split: labels_only(split, images(folder), folder, " (CVAT: export with 'Save images')")
                for split, folder in darknet.items()}, True
    img_root = files.join(root, "images")
    if not files.isdir(img_root):
        if labels_beside_images(root):
            return {DEFAULT_SPLIT: images(root, recursive=False)}, True
        nested = role_folders(root, labels_beside_images)  # Roboflow's YOLO Darknet: train/, valid/, test/
        if nested:
            return {split: images(folder, recursive=False) for split, folder in nested.items()}, True
        raise UsageError(f"{src}: expected a data.yaml, an images/ folder next to labels/, images with their .txt "
                         "labels beside them and a classes.txt (LabelImg), or obj.names with obj_<split>_data/ (CVAT's "
                         "YOLO 1.1)")
    subdirs, loose = files.listdir(img_root)
    if not subdirs:
        return {DEFAULT_SPLIT: labels_only(DEFAULT_SPLIT, images(img_root), files.join(root, "labels"))}, False
    if loose:
        findings.append(warn("loose-images", img_root, "images",
                             f"{len(loose)} image(s) directly in images/ next to split folders were not read"))
    return {d: labels_only(d, images(files.join(img_root, d)), files.join(root, "labels", d)) for d in subdirs}, False


def darknet_splits(folder: str) -> dict[str, str]:
    """``{split: folder}`` of a Darknet YOLO export, as CVAT's "YOLO 1.1" writes it: ``obj.names`` (the class names)
    beside ``obj_<split>_data/`` folders (``train``, ``valid``) that hold each image with its label file; {} for
    any other folder."""
    files = files_for(folder)
    if not files.isfile(files.join(folder, "obj.names")):
        return {}
    found = (re.fullmatch(r"obj_(.+)_data", d) for d in files.listdir(folder)[0])
    return {m.group(1): files.join(folder, m.group(0)) for m in found if m}


def labels_beside_images(folder: str) -> bool:
    """Whether ``folder`` is a YOLO dataset as LabelImg saves one: a ``classes.txt`` (Roboflow's YOLO Darknet export:
    ``_darknet.labels``) and images with their ``.txt`` label files beside them (no ``images/`` and ``labels/``)."""
    files = files_for(folder)
    if not files.isdir(folder) or not any(files.isfile(files.join(folder, n))
                                          for n in ("classes.txt", "_darknet.labels")):
        return False
    names = files.listdir(folder)[1]
    stems = {os.path.splitext(n)[0] for n in names if n.lower().endswith(".txt") and n != "classes.txt"}
    return any(os.path.splitext(n)[0] in stems for n in names if n.lower().endswith(IMAGE_EXTENSIONS))


def _entry_images(files, root: str, entry, split: str, yaml_path: str, findings: list[Finding]) -> list[str]:
    """The sorted image paths one data.yaml split entry names: folders, list files, or a list of either."""
    seen: dict[str, str] = {}
    for e in entry if isinstance(entry, list) else [entry]:
        e = str(e).strip().replace("\\", "/")  # a data.yaml written on Windows: ..\\valid\\images
        p = _resolve(files, root, e)
        if p is not None and e.startswith("../"):
            # ultralytics' fallback, which Roboflow exports rely on (data.yaml beside train/, val: ../valid/images)
            here = _resolve(files, root, e[3:])
            if not (files.isdir(p) or files.isfile(p)):
                p = here or p
            elif here and (files.isdir(here) or files.isfile(here)):  # an export unzipped into an older one's folder
                findings.append(warn("yaml-path-elsewhere", yaml_path, split,
                                     f"{e} is {p}, read as ultralytics reads it; the data.yaml's own folder holds "
                                     f"{e[3:]} too (another export's?): write {e[3:]} to read that one"))
        if p is not None and p.endswith(".txt") and files.isfile(p):
            for line in read_text(p).splitlines():
                line = line.strip().replace("\\", "/")
                if not line:
                    continue
                # ./x is the list file's folder's (as ultralytics reads it); any other relative line the root's
                ip = (_resolve(files, files.parent(p), line[2:]) if line.startswith("./")
                      else _resolve(files, root, line))
                if ip is not None:
                    seen[ip] = ip
                else:
                    findings.append(warn("missing-image", p, split,
                                         f"{line} is a local path; not read for a URL source"))
        elif p is not None and files.isdir(p):
            for full in list_images(p).values():
                seen[full] = full
        else:
            findings.append(warn("missing-split", yaml_path, split, f"{p or e} does not exist"))
    return sorted(seen)


def _yaml_root(files, here: str, path, train, yaml_path: str) -> tuple[str, list[Finding]]:
    """The dataset root a data.yaml in folder ``here`` names with its ``path`` key (default: ``here``, as in
    ultralytics), and a finding when an absolute ``path`` is not ``here`` although ``here`` holds the dataset too
    (a copy of a dataset whose data.yaml names the original). Locally a relative ``path`` is taken under ``here``
    when that exists, else as given (from the working folder), as ultralytics does; on a URL source a ``path`` that
    cannot be followed falls back to ``here``."""
    if not path:
        return here, []
    if files.url:
        root = _resolve(files, here, str(path)) or here
        return (root if root == here or files.isdir(root) else here), []
    p = Path(str(path).replace("\\", "/"))
    if not p.is_absolute() and not is_absolute_name(str(path)):  # C:\\data\\pets: absolute, on another machine
        return (str(Path(here) / p) if (Path(here) / p).exists() else str(p)), []
    first = str((train[0] if isinstance(train, list) and train else train) or "").replace("\\", "/")
    mine = bool(first) and not os.path.isabs(first) and (Path(here) / first).exists()
    if not p.exists() and mine:
        return here, [warn("yaml-path-elsewhere", yaml_path, "path",
                           f"path: {path} does not exist; read from the data.yaml's own folder, which holds "
                           f"{first} (delete the path: line: without it the data.yaml's folder is the root)")]
    if mine and p.resolve() != Path(here).resolve():
        return str(p), [warn("yaml-path-elsewhere", yaml_path, "path",
                             f"path: {path} is not the data.yaml's folder, which holds {first} too: {path} is read "
                             "(as ultralytics does); delete the path: line to read this copy")]
    return str(p), []


def _image_id(image_path: str) -> str:
    """The image path below its split folder, without extension (``images/train/a/b.jpg`` -> ``a/b``)."""
    p = Path(image_path)
    parts = p.parts
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        rest = parts[i + 1:]
        if len(rest) > 1:
            rest = rest[1:]  # drop the split folder
        return Path(*rest).with_suffix("").as_posix()
    return p.stem


# What a YAML double-quoted scalar may not hold as it is (YAML 1.1's printable set, and the line breaks it folds)
_NOT_YAML_TEXT = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def _yaml_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that PyYAML (and so ultralytics) reads back as ``text``: JSON's quoting
    (its escapes are YAML's) without ``\\u`` surrogate pairs, which PyYAML reads as two lone surrogates (an emoji
    class name came back as text that cannot be encoded), and with YAML's own non-printables escaped."""
    return _NOT_YAML_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(text, ensure_ascii=False))


def data_yaml(splits: Sequence[str], names: Sequence[str]) -> str:
    """An ultralytics data.yaml for a dataset written with ``images/<split>`` folders beside it.

    It has no ``path`` key: ultralytics then takes the data.yaml's own folder as the root, so the dataset still reads
    its own files after it is copied or moved (an absolute ``path`` would silently read the original)."""
    q = _yaml_quoted
    lines = [f"{WRITTEN_BY}; the dataset root is this file's folder"]
    keys = yaml_splits(splits)

    def entry(key: str) -> str:  # one folder, or a list of them (ultralytics reads both)
        folders = [q("images/" + s) for s in keys[key]]
        return f"{key}: {folders[0] if len(folders) == 1 else '[' + ', '.join(folders) + ']'}"

    if evaluation_only(keys["train"]):
        lines.append("# no training split: train points at evaluation images, since ultralytics needs a train "
                     "entry; do not train on them")
    lines.append(entry("train"))
    if keys["val"] == keys["train"] and not evaluation_only(keys["train"]):
        lines.append("# no val split: val points at the training images, since ultralytics needs a val entry; "
                     "validation scores on them measure training data (datatools split --val makes a val split)")
    lines.append(entry("val"))
    if "test" in keys:
        lines.append(entry("test"))
    named = {s for ss in keys.values() for s in ss}
    for s in splits:
        if s not in named:
            lines.append(f"# also written: images/{s}")
    lines.append(f"nc: {len(names)}")
    lines.append("names:")
    lines += [f"  {i}: {q(n)}" for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"


def refuse_splits_without_images(ds: Dataset, splits: Sequence[str], placed: set[str], out: Path) -> None:
    """A split none of whose images can be placed would leave data.yaml naming a folder that does not exist (e.g. a
    COCO file whose image folder was not found): refuse before writing anything, and say why."""
    empty = [s for s in splits if s not in placed]
    if not empty:
        return
    n = sum(1 for r in ds.images if set(r.splits or (DEFAULT_SPLIT,)) & set(empty))
    missing = [f for f in ds.findings if f.code in ("missing-image", "missing-image-dir")]
    why = f" ({missing[0].path}: {missing[0].message})" if missing else ""
    raise DatatoolsError(f"{out}: none of the {n} image(s) of split(s) {', '.join(empty)} has an image file{why}; "
                         f"data.yaml would name images/{empty[0]}, which would not exist. Pass --images DIR where the "
                         "images are, or --images-mode none to write the labels only")


def no_training_split(splits: Sequence[str], out: Path) -> list[Finding]:
    """A dataset of validation or test splits only (COCO's val2017 converted for evaluation): ultralytics needs a
    ``train`` entry, so data.yaml's names one of them. Training on it would fit the evaluation images: say so."""
    train = yaml_splits(splits)["train"]
    if not evaluation_only(train):
        return []
    return [warn("no-train-split", str(out / "data.yaml"), "train", f"no training split: data.yaml's train entry "
                 f"names {', '.join('images/' + s for s in train)} (ultralytics needs one), the "
                 f"{split_role(train[0])} images; evaluate on them, do not train on them")]


def splits_not_in_yaml(ds: Dataset, splits: Sequence[str], out: Path) -> list[Finding]:
    """data.yaml names train, val and test (or, without any of them, the first split): images in none of those
    (the split-less ones of a merge, written to ``images/all``, or a split of another name) are in OUT but neither
    trained nor validated on, and reading OUT back skips them too. One warning says how many and what to do; they
    are not moved into train, where they might be another set's validation images."""
    named = {s for ss in yaml_splits(splits).values() for s in ss}
    left = [r for r in ds.images
            if not {safe_relpath(s) for s in r.splits or (DEFAULT_SPLIT,)} & named]
    if not left:
        return []
    where = [s for s in splits if s not in named]
    names = ", ".join(f"images/{s}" for s in splits if s in named)
    return [warn("split-not-in-yaml", str(out / "data.yaml"), ", ".join(where),
                 f"{len(left)} image(s) are written to {', '.join('images/' + s for s in where)}, which data.yaml "
                 f"does not name (it names {names}): training, validation and reading OUT back skip them. Give "
                 "every image a split (datatools split) or leave them out (merge --splits)")]
