"""Shared fixtures: tiny authored VOC trees, the sample data and the real-world data folder."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from PIL import Image

# Pillow's own Image.open, saved before any test imports ultralytics: importing ultralytics replaces it process-wide
# with a wrapper that tries to pip-install a HEIF plugin on the first unreadable file. Tests that import ultralytics
# (to check our YOLO output with its own code) must not change how later tests open images.
_PILLOW_OPEN = Image.open

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
REALWORLD = ROOT.parent / "shared" / "realworld"


def voc_xml(filename: str | None, size: tuple[int, int] | None, objects: list[dict], *, extra: str = "") -> str:
    """Build a VOC XML string. Each object: name, box=(xmin, ymin, xmax, ymax) as text or numbers, optional flags."""
    parts = ["<annotation>", "<folder>VOC</folder>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for o in objects:
        body = [f"<name>{o['name']}</name>"] if "name" in o else []
        for flag in ("difficult", "truncated", "occluded", "pose"):
            if flag in o:
                body.append(f"<{flag}>{o[flag]}</{flag}>")
        if o.get("box") is not None:
            tags = ("xmin", "ymin", "xmax", "ymax")
            body.append("<bndbox>" + "".join(f"<{t}>{v}</{t}>" for t, v in zip(tags, o["box"]) if v is not None)
                        + "</bndbox>")
        body.append(o.get("inner", ""))
        parts.append("<object>" + "".join(body) + "</object>")
    parts.append(extra)
    parts.append("</annotation>")
    return "\n".join(parts)


def make_jpeg(path: Path, w: int, h: int, *, exif_orientation: int | None = None, mode: str = "RGB") -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new(mode, (w, h), 128 if mode == "L" else (120, 130, 140))
    kwargs = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    img.save(path, quality=90, **kwargs)
    return path


def make_voc_root(root: Path, items: dict[str, str | bytes], *, images: dict[str, tuple[int, int]] | None = None,
                  sets: dict[str, list[str]] | None = None) -> Path:
    """A VOCdevkit-style root: Annotations/<id>.xml from ``items``; JPEGImages from ``images`` {file name: (w, h)}."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for iid, xml in items.items():
        p = root / "Annotations" / f"{iid}.xml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(xml if isinstance(xml, bytes) else xml.encode("utf-8"))
    for name, (w, h) in (images or {}).items():
        make_jpeg(root / "JPEGImages" / name, w, h)
    if sets:
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        for s, ids in sets.items():
            (root / "ImageSets" / "Main" / f"{s}.txt").write_text("".join(i + "\n" for i in ids))
    return root


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha1} of every file under root (symlinks by target)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = hashlib.sha1(p.read_bytes()).hexdigest()
    return dict(sorted(out.items()))


@pytest.fixture
def small_voc(tmp_path: Path) -> Path:
    """Three images, two classes, one difficult object, train/val lists."""
    items = {
        "a": voc_xml("a.jpg", (64, 48), [{"name": "cat", "box": (1, 1, 64, 48)},
                                          {"name": "dog", "box": (10, 12, 30, 40), "difficult": 1}]),
        "b": voc_xml("b.jpg", (50, 60), [{"name": "dog", "box": (5, 6, 25, 26), "truncated": 1, "pose": "Left"}]),
        "c": voc_xml("c.jpg", (40, 40), []),
    }
    return make_voc_root(tmp_path / "voc", items, images={"a.jpg": (64, 48), "b.jpg": (50, 60), "c.jpg": (40, 40)},
                         sets={"train": ["a", "b"], "val": ["c"]})


@pytest.fixture(scope="session")
def realworld() -> Path:
    if not REALWORLD.is_dir():
        pytest.skip("../shared/realworld is not present")
    return REALWORLD


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster (2 CPUs) per test module that asks for it; skips when Ray is not installed."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _pillow_open_restored():
    """Put Pillow's ``Image.open`` back after a test that imported ultralytics (see ``_PILLOW_OPEN``)."""
    yield
    if Image.open is not _PILLOW_OPEN:
        Image.open = _PILLOW_OPEN


@pytest.fixture
def header_opens(monkeypatch):
    """How many times each image (by file name) has its header opened from now on, counted at
    ``formats.common.read_headers``' call of ``read_image_header``, the one place every reader reads headers (run
    the command with ``-j 1``: the count is kept in this process)."""
    import collections

    from datatools.core.images import read_image_header
    from datatools.formats import common

    opened: collections.Counter = collections.Counter()

    def counting(path):
        opened[os.path.basename(path)] += 1
        return read_image_header(path)

    monkeypatch.setattr(common, "read_image_header", counting)
    return opened
