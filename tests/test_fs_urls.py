"""fsspec URL inputs (``memory://``, ``simplecache::file:///...``) for VOC, YOLO and COCO sources: the same results
as the local path.

``memory://`` exists only inside this process (and processes forked from it), so a command that succeeds on it has
read every file through fsspec; the operating system cannot open those paths. Ray workers are separate processes,
so the Ray tests use ``simplecache::file:///abs/path``, a chained URL that also goes through fsspec.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

import datatools.formats
from datatools.cli import cli
from tests.conftest import ROOT, SAMPLE, make_jpeg, make_voc_root, voc_xml

fsspec = pytest.importorskip("fsspec")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def to_memory(local: Path) -> str:
    """Copy a local tree into the in-memory filesystem; return its URL."""
    fs = fsspec.filesystem("memory")
    base = f"/t{uuid.uuid4().hex[:8]}/{local.name}"
    for dirpath, _, files in os.walk(local):
        for name in files:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, local).replace(os.sep, "/")
            with open(full, "rb") as f:
                fs.pipe_file(f"{base}/{rel}", f.read())
    url = "memory://" + base
    assert not os.path.exists(url) and not os.path.exists(base)  # only fsspec can open it
    return url


def norm(text: str, *roots: str) -> object:
    """A command's JSON with every source root replaced by <SRC>, so local and URL runs compare equal."""
    for r in sorted(roots, key=len, reverse=True):
        text = text.replace(r, "<SRC>")
    return json.loads(text)


def same_tree(a: Path, b: Path) -> list[str]:
    files_a = {p.relative_to(a).as_posix(): p for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b).as_posix(): p for p in b.rglob("*") if p.is_file()}
    diffs = sorted(set(files_a) ^ set(files_b))
    diffs += [k for k in sorted(set(files_a) & set(files_b)) if files_a[k].read_bytes() != files_b[k].read_bytes()]
    return diffs


def run_pair(tmp_path: Path, cmd: str, local_src, url_src, *args, engine=()):
    """Run a writing command on the local path and on the URL into the same OUT (data.yaml holds OUT's path)."""
    out = tmp_path / "out"
    r1 = invoke(cmd, local_src, out, "--json", *args)
    assert r1.exit_code == 0, r1.output
    out.rename(tmp_path / "local")
    r2 = invoke(cmd, url_src, out, "--json", *args, *engine)
    assert r2.exit_code == 0, r2.output
    return norm(r1.stdout, str(local_src)), norm(r2.stdout, url_src), tmp_path / "local", out


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """Missing size (header read), a bad XML, a corrupt JPEG, a missing image, split lists, a nested id."""
    items = {f"img{i:02d}": voc_xml(f"img{i:02d}.jpg", (40, 30), [{"name": "Dog" if i % 3 == 0 else "dog",
                                                                   "box": (1, 1, 20 + i % 7, 25)}])
             for i in range(12)}
    items["nosize"] = voc_xml("nosize.jpg", None, [{"name": "cat", "box": (2, 2, 9, 9)}])
    items["bad"] = "<annotation><object>"
    items["noimg"] = voc_xml("noimg.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}])
    images = {f"img{i:02d}.jpg": (40, 30) for i in range(12)} | {"nosize.jpg": (33, 21)}
    root = make_voc_root(tmp_path / "messy", items, images=images,
                         sets={"train": [f"img{i:02d}" for i in range(8)] + ["nosize", "bad"],
                               "val": ["img08", "img09", "img10", "img11", "noimg", "ghost"]})
    (root / "JPEGImages" / "img05.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    make_jpeg(root / "JPEGImages" / "rot.jpg", 40, 30, exif_orientation=6)
    return root


# ------------------------------------------------------------------------------------------- memory:// (local)

@pytest.mark.parametrize("extra", [(), ("--labels-only",), ("--resize", "16")])
@pytest.mark.parametrize("which", ["sample", "messy"])
def test_stats_on_memory_url_equals_local(messy, which, extra):
    src = SAMPLE if which == "sample" else messy
    url = to_memory(src)
    r1, r2 = invoke("stats", src, "--json", *extra), invoke("stats", url, "--json", *extra)
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    assert norm(r2.stdout, url) == norm(r1.stdout, str(src))


@pytest.mark.parametrize("which", ["sample", "messy"])
def test_check_on_memory_url_equals_local(messy, which):
    src = SAMPLE if which == "sample" else messy
    url = to_memory(src)
    r1, r2 = invoke("check", src, "--json"), invoke("check", url, "--json")
    assert r1.exit_code == r2.exit_code, r2.output
    a, b = norm(r1.stdout, str(src)), norm(r2.stdout, url)
    assert b == a
    if which == "messy":  # the header-based findings came through fs.open
        codes = {f["code"] for f in b["findings"]}
        assert {"image-unreadable", "missing-image", "size-from-image", "xml-parse"} <= codes


def test_unidentifiable_image_behind_a_url_is_named_by_its_url(tmp_path):
    """PIL names a file object by its repr (an address that changes every run); the message names the URL."""
    from datatools.core.images import read_image_header
    from datatools.ops.dupes_hash import signature
    from datatools.ops.stats import image_histogram
    from datatools.viz.render import error_text, load_image

    def drawn(p):
        try:
            load_image(p)
        except OSError as e:
            return error_text(e)
        return ""

    folder = tmp_path / "im"
    folder.mkdir()
    (folder / "junk.jpg").write_bytes(b"no image here")
    url = to_memory(folder) + "/junk.jpg"
    local = str(folder / "junk.jpg")
    for read in (lambda p: read_image_header(p).error, lambda p: image_histogram(p)[2], lambda p: signature(p).error,
                 drawn):
        got, want = read(url), read(local)
        assert got == want.replace(local, url) and "object at 0x" not in got, got
        assert got.startswith("unreadable image: cannot identify image file"), got


def test_an_image_behind_a_url_is_never_copied_over_an_existing_file(tmp_path):
    # a local image refused it, a URL one overwrote it: two images whose names differ in case only (macOS, Windows)
    # lost one picture
    from datatools.core.atomic import ImagesMode, link_or_copy
    from datatools.core.errors import OutputError

    (tmp_path / "src.jpg").write_bytes(b"LOCAL")
    url = to_memory(tmp_path) + "/src.jpg"
    (tmp_path / "dst.jpg").write_bytes(b"ALREADY")
    for src in (str(tmp_path / "src.jpg"), url):
        with pytest.raises(OutputError, match="already"):
            link_or_copy(src, str(tmp_path / "dst.jpg"), ImagesMode.COPY)
    assert (tmp_path / "dst.jpg").read_bytes() == b"ALREADY"


def test_a_pipe_is_read_to_its_end(tmp_path):
    # a short read was taken as the end of the file: true of a regular file, not of a pipe written in two pieces
    import threading
    import time

    from datatools.core import fs as dfs

    r, w = os.pipe()

    def writer():
        os.write(w, b'{"a": ')
        time.sleep(0.2)
        os.write(w, b"1}")
        os.close(w)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert dfs.read_json(f"/dev/fd/{r}") == {"a": 1}
    finally:
        t.join()
        os.close(r)


@pytest.mark.parametrize("grid", [(), ("--grid", "2x3")])
def test_visualize_on_memory_url_draws_as_local(tmp_path, messy, grid):
    """visualize (and the report's thumbnails, through the same load_image) read the pixels of a URL source through
    fsspec: every image was once skipped as a missing file."""
    url = to_memory(messy)
    s1, s2, local, out = run_pair(tmp_path, "visualize", messy, url, *grid)
    assert s2 == s1, s2
    assert s1["images_selected"] == 14 and s1["images_drawn"] == 12, s1  # img05 is corrupt, noimg.jpg missing
    assert same_tree(local, out) == []


@pytest.mark.parametrize("mode", ["copy", "link", "none"])
def test_voc2yolo_on_memory_url_same_bytes(tmp_path, messy, mode):
    url = to_memory(messy)
    s1, s2, local, out = run_pair(tmp_path, "voc2yolo", messy, url, "--images-mode", mode)
    assert s2 == s1
    assert same_tree(local, out) == []
    assert (mode == "none") == (not (out / "images").exists())
    if mode != "none":
        assert (out / "images" / "train" / "img00.jpg").read_bytes() == (messy / "JPEGImages" / "img00.jpg").read_bytes()


def test_voc2coco_on_memory_url_same_bytes(tmp_path):
    url = to_memory(SAMPLE)
    s1, s2, local, out = run_pair(tmp_path, "voc2coco", SAMPLE, url, "--images-mode", "copy")
    assert s2 == s1 and same_tree(local, out) == []


def test_split_hash_on_memory_url_same_assignment(tmp_path):
    url = to_memory(SAMPLE)
    s1, s2, local, out = run_pair(tmp_path, "split", SAMPLE, url, "--method", "hash", "--val", "0.2",
                                  "--images-mode", "copy")
    assert s2 == s1 and same_tree(local, out) == []


def test_library_reader_keeps_urls_in_records():
    from datatools.formats import voc

    url = to_memory(SAMPLE)
    a, b = voc.read(SAMPLE), voc.read(url)
    assert len(a.images) == len(b.images) > 0
    assert all(r.source.startswith(url + "/Annotations/") and r.image_path.startswith(url + "/JPEGImages/")
               for r in b.images)
    assert [(r.image_id, r.annotations, r.width, r.splits) for r in a.images] == \
        [(r.image_id, r.annotations, r.width, r.splits) for r in b.images]


# ------------------------------------------------------------------------------------------- YOLO and COCO sources

@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """sample_data converted locally to YOLO and to COCO (images copied), the sources of the URL tests below."""
    base = tmp_path_factory.mktemp("made")
    out = {}
    for fmt in ("yolo", "coco"):
        r = invoke(f"voc2{fmt}", SAMPLE, base / fmt, "--images-mode", "copy")
        assert r.exit_code == 0, r.output
        out[fmt] = base / fmt
    return out


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
@pytest.mark.parametrize("cmd", ["stats", "check"])
def test_yolo_coco_stats_check_on_memory_url_equal_local(made, fmt, cmd):
    src = made[fmt]
    url = to_memory(src)
    r1, r2 = invoke(cmd, src, "--json"), invoke(cmd, url, "--json")
    assert r1.exit_code == r2.exit_code, r2.output
    a, b = norm(r1.stdout, str(src)), norm(r2.stdout, url)
    assert b == a
    assert url not in r1.stdout and str(src) not in r2.stdout  # every path of the URL run is a URL


def test_yolo_orphan_labels_reported_on_a_url_like_locally(tmp_path):
    """A label file without an image is a finding on a URL source too (the label folders are listed via fsspec)."""
    src = tmp_path / "yolo"
    assert invoke("voc2yolo", SAMPLE, src, "--images-mode", "copy").exit_code == 0
    (src / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    url = to_memory(src)
    r1, r2 = invoke("check", src, "--json"), invoke("check", url, "--json")
    a, b = norm(r1.stdout, str(src)), norm(r2.stdout, url)
    assert b == a and "label-without-image" in r1.stdout


@pytest.mark.parametrize("src_fmt, dst_fmt", [("yolo", "coco"), ("coco", "yolo"), ("yolo", "voc"), ("coco", "voc")])
def test_yolo_coco_convert_on_memory_url_same_bytes(tmp_path, made, src_fmt, dst_fmt):
    src = made[src_fmt]
    url = to_memory(src)
    s1, s2, local, out = run_pair(tmp_path, "convert", src, url, "--to", dst_fmt, "--images-mode", "copy")
    assert s2 == s1 and same_tree(local, out) == []
    assert any(p.suffix == ".jpg" for p in out.rglob("*"))  # the images came through fsspec


def test_yolo_split_on_memory_url_same_assignment(tmp_path, made):
    url = to_memory(made["yolo"])
    s1, s2, local, out = run_pair(tmp_path, "split", made["yolo"], url, "--method", "hash", "--val", "0.2",
                                  "--images-mode", "copy")
    assert s2 == s1 and same_tree(local, out) == []


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_yolo_coco_readers_keep_urls_in_records(made, fmt):
    from datatools import formats

    mod = formats.get(fmt)
    url = to_memory(made[fmt])
    assert formats.detect(url) == fmt
    a, b = mod.read(made[fmt]), mod.read(url)
    assert len(a.images) == len(b.images) > 0
    assert all(r.source.startswith(url + "/") and r.image_path.startswith(url + "/images/") for r in b.images)
    assert [(r.image_id, r.annotations, r.width, r.height, r.splits) for r in a.images] == \
        [(r.image_id, r.annotations, r.width, r.height, r.splits) for r in b.images]


def test_yolo_folder_without_yaml_and_coco_json_file_urls(made):
    """The other entry points: a YOLO folder with only images/ + labels/, and a COCO JSON file given directly."""
    from datatools.formats import coco, yolo

    fs = fsspec.filesystem("memory")
    url = to_memory(made["yolo"])
    fs.rm(url[len("memory://"):] + "/data.yaml")
    a, b = yolo.read(made["yolo"], classes=yolo.read(made["yolo"]).classes), yolo.read(url)
    assert [(r.image_id, r.annotations, r.splits) for r in a.images] == \
        [(r.image_id, r.annotations, r.splits) for r in b.images]
    url = to_memory(made["coco"])
    jf = next(p for p in sorted((made["coco"] / "annotations").glob("*.json")))
    b = coco.read(url + "/annotations/" + jf.name)
    a = coco.read(jf)
    assert len(a.images) > 0 and [(r.image_id, r.annotations, r.image_path) for r in a.images] == \
        [(r.image_id, r.annotations, r.image_path and r.image_path.replace(url, str(made["coco"]))) for r in b.images]


# ------------------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("args, expect", [
    (("stats", "memory://no/such/root"), "no such file"),
    (("check", "nosuchproto://x/y"), "fsspec"),
    (("voc2yolo", "memory://no/such", "{tmp}/o"), "no such file"),
])
def test_bad_url_is_a_usage_error(tmp_path, args, expect):
    r = CliRunner().invoke(cli, [a.format(tmp=tmp_path) for a in args])
    assert r.exit_code == 2, r.output
    assert expect in r.output and "Traceback" not in r.output


def test_url_output_and_symlink_are_usage_errors(tmp_path):
    url = to_memory(SAMPLE)
    r = CliRunner().invoke(cli, ["voc2yolo", SAMPLE.as_posix(), "memory://out"])
    assert r.exit_code == 2 and "OUT must be a local path" in r.output
    r = CliRunner().invoke(cli, ["voc2yolo", url, str(tmp_path / "o"), "--images-mode", "symlink"])
    assert r.exit_code == 2 and "--images-mode copy" in r.output
    assert not (tmp_path / "o" / "images").exists()


def test_url_source_of_another_format_is_a_usage_error(tmp_path):
    url = to_memory(SAMPLE / "ImageSets")  # neither VOC nor YOLO nor COCO
    r = CliRunner().invoke(cli, ["stats", url])  # a folder with no dataset: exit 1, saying what was looked for
    assert r.exit_code == 1 and "no dataset found" in r.output and "looked for" in r.output


def test_find_lists_a_local_folder_and_a_url_alike(tmp_path):
    from datatools.core.fs import files_for

    for rel in ("b.XML", "a.xml", "sub/c.xml", "sub/deeper/d.xml", "notes.txt", "a-b.xml"):
        (tmp_path / "t" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "t" / rel).write_text("x")
    url = to_memory(tmp_path / "t")
    for folder in (str(tmp_path / "t"), url):
        files = files_for(folder)
        assert files.url == (folder == url)
        assert files.find(folder, suffixes=(".xml",)) == ["a-b.xml", "a.xml", "b.XML", "sub/c.xml",
                                                          "sub/deeper/d.xml"]
        assert files.find(folder, suffixes=(".xml",), recursive=False) == ["a-b.xml", "a.xml", "b.XML"]
        assert files.find(folder) == ["a-b.xml", "a.xml", "b.XML", "notes.txt", "sub/c.xml", "sub/deeper/d.xml"]
        assert files.find(files.join(folder, "missing"), suffixes=(".xml",)) == []


def test_find_stays_inside_the_folder(tmp_path):
    """Links to folders inside the one listed are not followed: one to a parent would list the whole machine, one to
    a sibling would list its images under a second name. The folder itself may be a link."""
    from datatools.core.fs import LocalFiles

    (tmp_path / "t" / "train").mkdir(parents=True)
    (tmp_path / "t" / "train" / "a.jpg").write_text("x")
    (tmp_path / "t" / "b.jpg").write_text("x")
    (tmp_path / "t" / "up").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "t" / "zzz").symlink_to(tmp_path / "t" / "train", target_is_directory=True)
    (tmp_path / "link").symlink_to(tmp_path / "t", target_is_directory=True)
    for folder in (tmp_path / "t", tmp_path / "link"):
        assert LocalFiles.find(str(folder), suffixes=(".jpg",)) == ["b.jpg", "train/a.jpg"]


def test_local_paths_never_import_fsspec(tmp_path):
    code = ("import sys; from click.testing import CliRunner; from datatools.cli import cli; "
            f"r = CliRunner().invoke(cli, ['voc2yolo', {str(SAMPLE)!r}, {str(tmp_path / 'o')!r}]); "
            "assert r.exit_code == 0, r.output; "
            f"r = CliRunner().invoke(cli, ['stats', {SAMPLE.as_uri()!r}]); assert r.exit_code == 0, r.output; "
            "assert 'fsspec' not in sys.modules, 'fsspec imported'")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


# ------------------------------------------------------------------------------------------- Ray

@pytest.mark.ray
def test_ray_reads_a_chained_url_like_local(ray_cluster, tmp_path, messy):
    url = "simplecache::" + messy.as_uri()
    r1 = invoke("stats", messy, "--json")
    r2 = invoke("stats", url, "--json", "--engine", "ray")
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    assert norm(r2.stdout, url) == norm(r1.stdout, str(messy))
    c1, c2 = invoke("check", messy, "--json"), invoke("check", url, "--json", "--engine", "ray")
    assert c1.exit_code == c2.exit_code and norm(c2.stdout, url) == norm(c1.stdout, str(messy))
    s1, s2, local, out = run_pair(tmp_path, "voc2yolo", messy, url, "--images-mode", "copy",
                                  engine=("--engine", "ray"))
    assert s2 == s1 and same_tree(local, out) == []


@pytest.mark.ray
def test_ray_reads_a_chained_yolo_url_like_local(ray_cluster, tmp_path, made):
    src = made["yolo"]
    url = "simplecache::" + src.as_uri()
    r1, r2 = invoke("stats", src, "--json"), invoke("stats", url, "--json", "--engine", "ray")
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    assert norm(r2.stdout, url) == norm(r1.stdout, str(src))
    c1, c2 = invoke("check", src, "--json"), invoke("check", url, "--json", "--engine", "ray")
    assert c1.exit_code == c2.exit_code and norm(c2.stdout, url) == norm(c1.stdout, str(src))
    s1, s2, local, out = run_pair(tmp_path, "convert", src, url, "--to", "coco", "--images-mode", "copy",
                                  engine=("--engine", "ray"))
    assert s2 == s1 and same_tree(local, out) == []


def _noting_read_chunk(*args, **kwargs):
    """voc_xml.read_chunk that notes which process parsed the chunk (a top-level function: workers unpickle it)."""
    from datatools.formats import voc_xml

    (Path(os.environ["PIDS_SEEN"]) / str(os.getpid())).touch()
    return voc_xml.read_chunk(*args, **kwargs)


def test_forked_workers_read_memory_urls(messy, tmp_path, monkeypatch):
    """Local worker processes (forked: they inherit the in-memory store) read URL files in chunks like the local
    reader, and the conversion pipeline writes the same bytes from them."""
    from datatools.core import parallel
    from datatools.formats import voc
    from datatools.ops.convert import convert

    # Chunks of 3 files, so that even this small tree is read and written by two worker processes.
    monkeypatch.setattr(parallel.Mapper, "chunks", lambda self, items, size=None: parallel.chunked(items, 3))
    url = to_memory(messy)
    seen = tmp_path / "pids"
    seen.mkdir()
    monkeypatch.setenv("PIDS_SEEN", str(seen))
    monkeypatch.setattr(voc, "read_chunk", _noting_read_chunk)
    a = voc.read(messy, mapper=parallel.Mapper(workers=2))
    b = voc.read(url, mapper=parallel.Mapper(workers=2))
    assert len({p.name for p in seen.iterdir()} - {str(os.getpid())}) >= 2  # worker processes, not this one
    assert [(r.image_id, r.annotations, r.width, r.height, r.splits) for r in a.images] == \
        [(r.image_id, r.annotations, r.width, r.height, r.splits) for r in b.images]
    assert [(f.code, f.message.replace(url, str(messy))) for f in b.findings] == \
        [(f.code, f.message) for f in a.findings]
    out = tmp_path / "y"
    s1 = convert("voc", messy, "yolo", out, images_mode="copy", workers=1).to_dict()
    out.rename(tmp_path / "local")
    s2 = convert("voc", url, "yolo", out, images_mode="copy", workers=2).to_dict()
    assert json.loads(json.dumps(s2).replace(url, str(messy))) == s1
    assert same_tree(tmp_path / "local", out) == []


def _devkit(tmp_path: Path) -> Path:
    """A VOCdevkit root: VOC2007/ with Annotations/, and no XML of its own."""
    items = {"a": voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}])}
    make_voc_root(tmp_path / "VOCdevkit" / "VOC2007", items, images={"a.jpg": (40, 30)})
    return tmp_path / "VOCdevkit"


@pytest.mark.parametrize("cmd", [("check",), ("stats",), ("voc2yolo", "OUT")])
def test_a_vocdevkit_root_is_refused_alike_local_and_url(tmp_path, cmd):
    """A folder holding VOC2007/ (and no XML of its own) is refused with the same message on a local path and
    behind a URL: it was read as a plain XML folder with ids like VOC2007/Annotations/a behind memory://."""
    local = _devkit(tmp_path)
    url = to_memory(local)
    results = []
    for src in (local, url):
        args = [a if a != "OUT" else tmp_path / f"out{len(results)}" for a in cmd]
        r = invoke(args[0], src, *args[1:])  # auto-detected as VOC, then refused by name
        results.append(r)
        assert r.exit_code == 2, r.output
        assert "holds VOC2007: point SRC at one of them" in r.output, r.output
    assert not (tmp_path / "out0").exists() and not (tmp_path / "out1").exists()
    assert results[1].output.replace(url, str(local)) == results[0].output


def test_a_vocdevkit_year_behind_a_url_reads_like_local(tmp_path):
    """Pointed at VOC2007/ itself, both read the same dataset, with plain ids."""
    from datatools.formats import voc

    local = _devkit(tmp_path) / "VOC2007"
    url = to_memory(local)
    a, b = voc.read(local), voc.read(url)
    assert [r.image_id for r in a.images] == [r.image_id for r in b.images] == ["a"]


@pytest.mark.parametrize("ann_folder, images_folder", [("annotations", "images"), ("annotations", "JPEGImages"),
                                                        ("Annotations", "images")])
def test_annotations_beside_images_layout_is_read_locally_and_behind_a_url_alike(tmp_path, ann_folder, images_folder):
    """The layout of many Kaggle and exported VOC sets (raccoon, face-mask, road-sign): XML files in annotations/
    beside images/; and Label Studio's VOC export, Annotations/ beside images/. Each is detected as VOC and each
    annotation finds its image, on a path and behind a URL alike."""
    root = tmp_path / "kaggle"
    for k in range(3):
        make_jpeg(root / images_folder / f"img{k}.png", 60, 40)
        (root / ann_folder).mkdir(parents=True, exist_ok=True)
        (root / ann_folder / f"img{k}.xml").write_text(
            voc_xml(f"img{k}.png", (60, 40), [{"name": "mask", "box": (5, 5, 30, 30)}]))
    url = to_memory(root)
    for src in (root, url):
        assert datatools.formats.detect(str(src)) == "voc"
    r1, r2 = invoke("check", root, "--json"), invoke("check", url, "--json")
    assert r1.exit_code == r2.exit_code == 0, r1.output
    a = norm(r1.stdout, str(root))
    assert a == norm(r2.stdout, url)
    assert a["images"] == 3 and not [f for f in a["findings"] if f["code"].startswith("missing")], a["findings"]


@pytest.mark.parametrize("maker, fmt, images", [("make_roboflow_coco", "coco", 6), ("make_labelimg_yolo", "yolo", 3),
                                                ("make_darknet_yolo", "yolo", 3)])
def test_export_layouts_behind_a_url_read_as_locally(tmp_path, maker, fmt, images):
    """Roboflow's COCO export (<split>/_annotations.coco.json), LabelImg's YOLO save (labels beside images) and CVAT's
    YOLO 1.1 (obj.names, obj_<split>_data/)."""
    from tests import test_yolo_coco_realworld

    root = getattr(test_yolo_coco_realworld, maker)(tmp_path / "src")
    url = to_memory(root)
    assert datatools.formats.detect(url) == fmt
    r1, r2 = invoke("check", root, "--json"), invoke("check", url, "--json")
    assert r1.exit_code == r2.exit_code == 0, r2.output
    assert norm(r1.stdout, str(root)) == norm(r2.stdout, url)
    assert norm(r1.stdout, str(root))["images"] == images


def test_read_json_names_the_file_and_the_problem(tmp_path):
    from datatools.core.errors import FormatError, InputError
    from datatools.core.fs import read_json

    (tmp_path / "ok.json").write_bytes(b'\xef\xbb\xbf{"a": [1]}')  # a BOM, as Windows tools write it
    (tmp_path / "bad.json").write_text('{"a": ')
    url = to_memory(tmp_path)
    for base in (str(tmp_path), url):
        assert read_json(f"{base}/ok.json") == {"a": [1]}
        with pytest.raises(FormatError, match=r"bad\.json: not valid JSON: "):
            read_json(f"{base}/bad.json")
        with pytest.raises(InputError, match=r"cannot read .*missing\.json: "):
            read_json(f"{base}/missing.json")


def test_read_head_reads_the_first_bytes_locally_and_behind_a_url_alike(tmp_path):
    """core.fs.read_head: what format detection sniffs (a CVAT root, an Open Images header, a JSON document's start)
    from a local path or a URL by one function; None for a file that cannot be read."""
    from datatools.core.fs import read_head
    from datatools.formats.cvat import is_cvat_xml

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "annotations.xml").write_bytes(b'<?xml version="1.0"?>\n<annotations><version>1.1</version>'
                                                     + b" " * 10_000 + b"</annotations>")
    url = to_memory(tmp_path / "d")
    for where in (str(tmp_path / "d" / "annotations.xml"), f"{url}/annotations.xml"):
        assert read_head(where, 13) == b'<?xml version' and len(read_head(where, 1 << 20)) == 10_071
        assert is_cvat_xml(where)
    assert read_head(str(tmp_path / "d" / "missing.xml"), 10) is None and read_head(f"{url}/missing.xml", 10) is None
    assert read_head(str(tmp_path / "d"), 10) is None  # a folder is no file to sniff


def test_a_limited_read_checks_what_it_read_not_only_the_size_the_file_reports(tmp_path):
    """read_small_file(limit=) refuses a file whose bytes pass the limit even when its reported size does not (a
    /proc file says 0; a file can grow after fstat); a FIFO is refused unread; a URL is held to the limit too."""
    import os

    from datatools.core import fs

    if os.path.exists("/proc/self/maps"):
        with pytest.raises(fs.FileTooLarge):
            fs.read_small_file("/proc/self/maps", limit=10)
    (tmp_path / "ok.txt").write_bytes(b"0123456789")
    assert fs.read_small_file(tmp_path / "ok.txt", limit=10) == b"0123456789"
    with pytest.raises(fs.FileTooLarge) as e:
        fs.read_small_file(tmp_path / "ok.txt", limit=9)
    assert e.value.size == 10
    with pytest.raises(fs.FileTooLarge):
        fs.read_small_file(to_memory(tmp_path) + "/ok.txt", limit=9)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        with pytest.raises(fs.NotRegularFile):
            fs.read_small_file(tmp_path / "pipe", limit=10)


def test_a_local_voc_root_with_its_images_behind_a_url_finds_them(tmp_path):
    """--images may be a URL while SRC is local (or the other way round): the image folder is looked at as what it
    is. It was looked at through SRC's file layer, which said a URL folder did not exist (missing-image-dir) while
    the images in it were found and used."""
    import shutil

    from datatools.formats import voc

    root = tmp_path / "voc"
    shutil.copytree(SAMPLE / "Annotations", root / "Annotations")
    shutil.copytree(SAMPLE / "ImageSets", root / "ImageSets")
    images = to_memory(SAMPLE / "JPEGImages")
    ds = voc.read(root, images=images)
    assert "missing-image-dir" not in {f.code for f in ds.findings}
    assert len(ds.images) == 200 and all(r.image_path.startswith(images + "/") for r in ds.images)


def test_a_file_url_keeps_a_hash_or_question_mark_in_its_path(tmp_path):
    # file:///data/ds#2 was read as /data/ds (urlparse's path stops at the fragment): another dataset, exit 0
    from datatools.core.fs import local_path

    assert local_path(f"file://{tmp_path}/ds#2") == f"{tmp_path}/ds#2"
    assert local_path(f"file://{tmp_path}/ds?v=1") == f"{tmp_path}/ds?v=1"
    assert local_path((tmp_path / "a b#2").as_uri()) == str(tmp_path / "a b#2")  # as Path.as_uri() encodes it


def test_the_torch_dataset_of_a_url_source_loads_its_images():
    # from_path(memory://...) had 200 images, and ds[0] raised "No such file or directory: 'memory:///.../x.jpg'"
    import torch

    from datatools.datasets import DetectionDataset

    local = DetectionDataset.from_path(SAMPLE)
    for src in (to_memory(SAMPLE), SAMPLE.resolve().as_uri()):
        ds = DetectionDataset.from_path(src)
        image, target = ds[3]
        assert len(ds) == len(local) and torch.equal(image, local[3][0])
        assert torch.equal(target["boxes"], local[3][1]["boxes"])


def test_labelme_behind_a_url_finds_images_its_image_path_reaches_up_to(tmp_path):
    # annotations/a.json naming ../images/a.jpg: found locally, and on memory:// every image was missing (exit 0,
    # one missing-image-dir warning, stats over 0 images)
    (tmp_path / "lm" / "annotations").mkdir(parents=True)
    (tmp_path / "lm" / "images").mkdir()
    for i in range(2):
        make_jpeg(tmp_path / "lm" / "images" / f"a{i}.jpg", 40, 30)
        (tmp_path / "lm" / "annotations" / f"a{i}.json").write_text(json.dumps({
            "imagePath": f"../images/a{i}.jpg", "imageWidth": 40, "imageHeight": 30,
            "shapes": [{"label": "cat", "shape_type": "rectangle", "points": [[1, 1], [9, 9]]}]}))
    local = datatools.formats.get("labelme").read(str(tmp_path / "lm" / "annotations"))
    remote = datatools.formats.get("labelme").read(to_memory(tmp_path / "lm") + "/annotations")
    assert [r.image_path is not None for r in remote.images] == [True, True]
    assert [f.code for f in remote.findings] == [f.code for f in local.findings] == []
