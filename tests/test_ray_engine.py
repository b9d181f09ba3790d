"""``--engine ray``: the same results as ``--engine local`` (stats bits, conversion bytes, findings order, split
assignment), retries after a killed worker, corrupt files reported, Ctrl-C leaves no half-written output.

One local Ray cluster (``ray.init(num_cpus=2)``) serves the whole module. Tests that need no Ray (the same pipeline
on local processes over small chunks, URL handling, the missing-ray message) run without it.
"""
from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from datatools.cli import cli
from datatools.core import parallel
from datatools.core.errors import UsageError
from datatools.core.fs import local_path
from datatools.core.parallel import FAULT_ENV, chunked, ordered_map
from tests.conftest import SAMPLE, make_jpeg, make_voc_root, voc_xml

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args) -> object:
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return r


def same_tree(a: Path, b: Path) -> list[str]:
    """Relative paths that differ (content, or present on one side only) between two trees; [] when identical."""
    diffs = []
    cmp = filecmp.dircmp(a, b)
    stack = [("", cmp)]
    while stack:
        rel, c = stack.pop()
        diffs += [rel + x for x in c.left_only + c.right_only]
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        diffs += [rel + x for x in mismatch + errors]
        stack += [(rel + name + "/", sub) for name, sub in c.subdirs.items()]
    return sorted(diffs)


def run_both(tmp_path: Path, *args, out_name: str = "out", engine_args=("--engine", "ray"), before_ray=None):
    """Run a writing command locally, move its output aside, run it on Ray into the same path (so absolute paths in
    data.yaml match) and return (local json, ray json, local tree, ray tree). ``before_ray()`` runs in between."""
    out = tmp_path / out_name
    r1 = invoke(*args, out, "--json")
    assert r1.exit_code == 0, r1.output
    local = tmp_path / ("local_" + out_name)
    out.rename(local)
    if before_ray:
        before_ray()
    r2 = invoke(*args, out, "--json", *engine_args)
    assert r2.exit_code == 0, r2.output
    return json.loads(r1.stdout), json.loads(r2.stdout), local, out


def driver_must_not_write(monkeypatch) -> None:
    """From here on, the driver (this process) fails if it writes a per-image output file (a label file, an XML, an
    image). Ray workers are processes of their own, started without these patches, so they write as usual."""
    def refuse(*a, **k):
        raise AssertionError(f"the driver wrote a per-image file: {a[:2]}")

    from datatools.core import atomic

    for name in ("place_stage_file", "link_or_copy", "write_stage_file"):
        monkeypatch.setattr(atomic, name, refuse)


def no_leftovers(out: Path) -> None:
    """Nothing hidden is left in OUT or beside it: no ``.<name>.staging-<pid>`` stage, no ``<stage>.scratch`` folder
    of retry-safe writes, no ``.<file>.<id>.tmp`` file, no ``.<name>.old-<pid>`` trash (all of them start with a dot
    and live in OUT, beside the folder they build)."""
    assert out.is_dir()
    hidden = [p.relative_to(out).as_posix() for p in out.rglob(".*") if not p.name.endswith(".written-by-datatools")]
    assert hidden == [], f"left behind in OUT: {hidden}"
    beside = [p.name for p in out.parent.iterdir() if p.name.startswith(("." + out.name, out.name + "."))]
    assert beside == [], f"left behind next to OUT: {beside}"


def test_no_leftovers_sees_stages_and_scratch_folders(tmp_path):
    """The leftover check used below can fail: a stage's scratch folder in OUT, or a stage beside it, is seen."""
    out = tmp_path / "out"
    (out / ".labels.datatools-staging-1.scratch").mkdir(parents=True)
    with pytest.raises(AssertionError, match="datatools-staging-1.scratch"):
        no_leftovers(out)
    (out / ".labels.datatools-staging-1.scratch").rmdir()
    no_leftovers(out)
    (tmp_path / ".out.datatools-staging-7").mkdir()
    with pytest.raises(AssertionError, match="next to OUT"):
        no_leftovers(out)


def small_chunks(monkeypatch, size: int = 4) -> None:
    """Cut every reader's and writer's work into chunks of ``size`` items, so that even the small test trees run as
    several chunks on several worker processes (forked: they inherit this patch)."""
    monkeypatch.setattr(parallel.Mapper, "chunks", lambda self, items, _size=None: chunked(items, size))


@pytest.fixture
def messy_voc(tmp_path: Path) -> Path:
    """Bad XML, a corrupt JPEG, a missing image, a zero-area box, an out-of-bounds box, case variants."""
    items = {f"img{i:02d}": voc_xml(f"img{i:02d}.jpg", (40, 30), [{"name": "Dog" if i % 3 == 0 else "dog",
                                                                   "box": (1, 1, 20 + i % 7, 25)}])
             for i in range(24)}
    items["bad"] = "<annotation><object>"
    items["zero"] = voc_xml("zero.jpg", (40, 30), [{"name": "cat", "box": (5, 5, 5, 9)}])
    items["oob"] = voc_xml("oob.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 80, 25)}])
    items["noimg"] = voc_xml("noimg.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}])
    images = {f"img{i:02d}.jpg": (40, 30) for i in range(24)} | {"zero.jpg": (40, 30), "oob.jpg": (40, 30)}
    root = make_voc_root(tmp_path / "messy", items, images=images)
    (root / "JPEGImages" / "img05.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    make_jpeg(root / "JPEGImages" / "bad.jpg", 40, 30)
    return root


# ------------------------------------------------------------------------------------------- without Ray

def test_local_path_accepts_file_urls_and_refuses_remote(tmp_path):
    assert local_path(str(tmp_path)) == str(tmp_path)
    assert local_path(tmp_path.as_uri()) == str(tmp_path)
    assert local_path("file://localhost" + str(tmp_path)) == str(tmp_path)
    with pytest.raises(UsageError, match="s3://"):
        local_path("s3://bucket/voc")


@pytest.mark.parametrize("n, size, workers, expect", [(0, None, 2, 0), (200, None, 2, 13), (20000, None, 2, 40),
                                                      (20000, None, 64, 500), (10, 3, 2, 4)])
def test_chunks_are_contiguous(n, size, workers, expect):
    items = list(range(n))
    chunks = chunked(items, size, workers=workers)
    assert len(chunks) == expect
    assert [x for c in chunks for x in c] == items


@pytest.mark.parametrize("fmt", ["voc", "yolo", "coco"])
def test_reader_on_local_processes_equals_one_process(tmp_path, monkeypatch, messy_voc, fmt):
    """Each reader maps its per-chunk function over small chunks on two processes: the same Dataset as in one."""
    from datatools import formats
    from datatools.core.parallel import Mapper

    src = messy_voc
    if fmt != "voc":
        src = tmp_path / "src"
        assert invoke("convert", "--to", fmt, messy_voc, src, "--images-mode", "copy").exit_code == 0
    mod = formats.get(fmt)
    one = mod.read(src, workers=1)
    small_chunks(monkeypatch)
    assert mod.read(src, mapper=Mapper(workers=2)) == one
    assert len(one.images) >= 20 and one.findings


@pytest.mark.parametrize("src_fmt,dst,normalize", [("voc", "yolo", False), ("voc", "voc", False),
                                                   ("yolo", "yolo", False), ("yolo", "voc", False),
                                                   ("yolo", "voc", True), ("voc", "coco", False)])
def test_conversion_over_chunks_on_local_processes(tmp_path, monkeypatch, messy_voc, src_fmt, dst, normalize):
    """The pipeline's chunked reads and worker-side writes on two processes give the one-process summary, findings
    and bytes, with class names that differ only in case kept apart or merged."""
    from datatools.ops.convert import convert

    src = messy_voc
    if src_fmt == "yolo":
        src = tmp_path / "src"
        convert("voc", messy_voc, "yolo", src, images_mode="copy")
    out = tmp_path / "o"
    s1 = convert(src_fmt, src, dst, out, normalize_names=normalize, images_mode="copy", workers=1).to_dict()
    out.rename(tmp_path / "local")
    small_chunks(monkeypatch)
    s2 = convert(src_fmt, src, dst, out, normalize_names=normalize, images_mode="copy", workers=2).to_dict()
    assert s1 == s2 and s2["src_format"] == src_fmt and s2["findings_total"] > 0
    assert s2["objects"]["balanced"]
    assert (s2["warnings"].get("name-case") == 1) is (not normalize)
    assert same_tree(tmp_path / "local", out) == []
    no_leftovers(out)


def test_strict_conversion_writes_nothing(tmp_path, monkeypatch, messy_voc):
    from datatools.core.errors import StrictModeError
    from datatools.ops.convert import convert

    small_chunks(monkeypatch)
    out = tmp_path / "y"
    with pytest.raises(StrictModeError, match="nothing was written"):
        convert("voc", messy_voc, "yolo", out, workers=2, strict=True)
    assert [p for p in tmp_path.rglob("*") if p != out and messy_voc not in p.parents and p != messy_voc] == []


def test_engine_ray_without_ray_is_a_clear_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    r = CliRunner().invoke(cli, ["stats", str(SAMPLE), "--engine", "ray"])
    assert r.exit_code == 2 and "pip install 'datatools[ray]'" in r.output


def test_local_engine_never_imports_ray():
    code = ("import sys; from click.testing import CliRunner; from datatools.cli import cli; "
            f"r = CliRunner().invoke(cli, ['stats', {str(SAMPLE)!r}, '--json', '-j', '1']); assert r.exit_code == 0; "
            "r = CliRunner().invoke(cli, ['--help']); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------------------- on Ray



@pytest.mark.ray
def test_stats_identical_bits(ray_cluster):
    local = json.loads(invoke("stats", SAMPLE, "--json").stdout)
    ray_ = json.loads(invoke("stats", SAMPLE.as_uri(), "--json", "--engine", "ray").stdout)  # a file:// URL too
    assert ray_["pixels"]["mean"] == local["pixels"]["mean"]  # ==, not approx: the same float bits
    assert ray_["pixels"]["std"] == local["pixels"]["std"]
    assert ray_["pixels"]["histogram"] == local["pixels"]["histogram"]
    ray_["src"] = local["src"]
    assert ray_ == local


@pytest.mark.ray
def test_voc2yolo_identical_bytes(ray_cluster, tmp_path):
    s_local, s_ray, local, out = run_both(tmp_path, "voc2yolo", SAMPLE)
    assert s_ray == s_local
    assert same_tree(local, out) == []
    assert len(list((out / "labels").rglob("*.txt"))) == 200
    no_leftovers(out)


@pytest.mark.ray
def test_voc2coco_identical_bytes(ray_cluster, tmp_path):
    s_local, s_ray, local, out = run_both(tmp_path, "voc2coco", SAMPLE, "--images-mode", "copy")
    assert s_ray == s_local
    assert same_tree(local, out) == []


@pytest.mark.ray
@pytest.mark.parametrize("mode", ["copy", "none"])
def test_voc_to_voc_written_by_workers_identical_bytes(ray_cluster, tmp_path, mode):
    """VOC output from VOC input on Ray: the workers write the XML files and images, the driver ImageSets/Main."""
    s_local, s_ray, local, out = run_both(tmp_path, "convert", "--from", "voc", "--to", "voc", SAMPLE,
                                          "--images-mode", mode)
    assert s_ray == s_local and s_local["files_written"] == 200
    assert same_tree(local, out) == []
    assert (out / "ImageSets" / "Main" / "val.txt").is_file()
    no_leftovers(out)
    assert (out / "JPEGImages").is_dir() == (mode == "copy")


@pytest.mark.ray
@pytest.mark.parametrize("src_fmt,dst", [("yolo", "coco"), ("yolo", "voc"), ("yolo", "yolo"), ("coco", "yolo"),
                                         ("coco", "voc")])
def test_yolo_and_coco_sources_on_ray_identical_bytes(ray_cluster, tmp_path, monkeypatch, src_fmt, dst):
    """YOLO and COCO input on Ray: the per-image reads run as Ray tasks, and so do the writes of every label/XML file
    and image; the driver writes only the aggregate files (COCO JSON, data.yaml, ImageSets). The same tree as local.
    The COCO source has no sizes in its JSON, so its image headers are read on Ray too."""
    src = tmp_path / "src"
    r = invoke("convert", "--to", src_fmt, SAMPLE, src, "--images-mode", "copy")
    assert r.exit_code == 0, r.output
    if src_fmt == "coco":
        doc_path = next((src / "annotations").glob("*.json"))
        doc = json.loads(doc_path.read_text())
        for im in doc["images"][:7]:
            im.pop("width"), im.pop("height")
        doc_path.write_text(json.dumps(doc))
        src = doc_path if len(list((src / "annotations").glob("*.json"))) == 1 else src
    s_local, s_ray, local, out = run_both(tmp_path, "convert", "--from", src_fmt, "--to", dst, src,
                                          "--images-mode", "copy", before_ray=lambda: driver_must_not_write(monkeypatch))
    assert s_ray == s_local and s_local["objects"]["balanced"] and s_local["objects"]["written"] > 500
    if src_fmt == "coco":
        assert s_local["notes"].get("size-from-image") == 7
    assert same_tree(local, out) == []


@pytest.mark.ray
@pytest.mark.parametrize("dst", ["yolo", "voc"])
def test_messy_yolo_source_read_and_written_by_workers(ray_cluster, tmp_path, monkeypatch, dst):
    """YOLO input to YOLO or VOC output: the workers read the label files and image headers and write the outputs
    (the driver applies the policies to the records), with the local run's summary, findings in the same order,
    and tree."""
    src = tmp_path / "src"
    assert invoke("convert", "--to", "yolo", SAMPLE, src, "--images-mode", "copy").exit_code == 0
    labels = sorted((src / "labels").rglob("*.txt"))
    images = sorted((src / "images").rglob("*.jpg"))
    labels[0].write_text("0 0.5 0.5 0.2 0.2\nnot a row\n")  # a bad row
    labels[1].write_text("99 0.5 0.5 0.2 0.2\n")  # a class id out of range
    labels[2].write_text("0 0.9 0.9 0.5 0.5\n")  # sticks out of the image: clipped
    labels[3].unlink()  # an image without a label file
    images[4].write_bytes(b"not a jpeg")  # a corrupt image
    (labels[5].parent / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # a label file without an image

    def driver_must_not_read_or_write():
        from datatools.formats import yolo

        driver_must_not_write(monkeypatch)
        monkeypatch.setattr(yolo, "_read_one", lambda *a: pytest.fail("the driver read a label file"))

    s_local, s_ray, local, out = run_both(tmp_path, "convert", "--from", "yolo", "--to", dst, src / "data.yaml",
                                          "--images-mode", "copy", before_ray=driver_must_not_read_or_write)
    assert s_ray == s_local and same_tree(local, out) == []
    codes = {f["code"] for f in s_local["findings"]}
    assert {"label-without-image", "no-label-file", "image-unreadable", "box-out-of-bounds"} <= codes, codes
    assert len(codes) >= 6, codes


@pytest.mark.ray
def test_usage_error_on_a_worker_is_the_local_usage_error(ray_cluster, tmp_path):
    """An image id that would write outside OUT (a list-file line with ..) is refused on Ray exactly as locally:
    exit code 2, the same message, and no output folder left behind."""
    src = tmp_path / "src"
    assert invoke("convert", "--to", "yolo", SAMPLE, src, "--images-mode", "copy").exit_code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    first = sorted((src / "images" / "train").glob("*.jpg"))[0]
    (outside / "b.jpg").write_bytes(first.read_bytes())
    (src / "train.txt").write_text("images/train/../../../outside/b.jpg\n")
    yaml = (src / "data.yaml").read_text()
    assert 'train: "images/train"' in yaml
    (src / "data.yaml").write_text(yaml.replace('train: "images/train"', 'train: "train.txt"'))
    results = []
    for engine in ("local", "ray"):
        out = tmp_path / f"out_{engine}"
        r = CliRunner().invoke(cli, ["convert", "--from", "yolo", "--to", "yolo", str(src / "data.yaml"), str(out),
                                     "--engine", engine])
        results.append((r.exit_code, r.output.replace(str(out), "OUT")))
        assert not out.exists()
    assert results[0] == results[1] and results[0][0] == 2, results
    assert "outside the output directory" in results[0][1]
    assert sorted(p.name for p in outside.iterdir()) == ["b.jpg"]


@pytest.mark.ray
def test_check_same_findings_same_order(ray_cluster, messy_voc):
    r1 = CliRunner().invoke(cli, ["check", str(messy_voc), "--json"])
    r2 = CliRunner().invoke(cli, ["check", str(messy_voc), "--json", "--engine", "ray"])
    assert r1.exit_code == r2.exit_code == 1  # errors found, reported, not fatal
    local, ray_ = json.loads(r1.stdout), json.loads(r2.stdout)
    assert ray_["findings"] == local["findings"] and ray_ == local
    codes = set(local["counts"])
    assert {"xml-parse", "image-unreadable", "missing-image", "zero-area", "box-out-of-bounds"} <= codes


@pytest.mark.ray
def test_corrupt_files_are_reported_not_fatal(ray_cluster, tmp_path, messy_voc):
    local = json.loads(invoke("stats", messy_voc, "--json").stdout)
    ray_ = json.loads(invoke("stats", messy_voc, "--json", "--engine", "ray").stdout)
    assert ray_ == local
    assert [f["code"] for f in ray_["findings"]] == ["missing-image", "image-unreadable"]
    assert ray_["pixels"]["images"] == 25 and ray_["pixels"]["failed"][0]["path"].endswith("img05.jpg")
    s_local, s_ray, local_t, out = run_both(tmp_path, "voc2yolo", messy_voc)
    assert s_ray == s_local and same_tree(local_t, out) == []


@pytest.mark.ray
@pytest.mark.parametrize("fmt", ["voc", "yolo", "coco"])
def test_split_hash_same_assignment(ray_cluster, tmp_path, monkeypatch, fmt):
    """The same assignment and the same tree; the images (and YOLO label files) are written by the Ray workers."""
    src = SAMPLE
    if fmt != "voc":
        src = tmp_path / "src"
        assert invoke("convert", "--to", fmt, SAMPLE, src, "--images-mode", "copy").exit_code == 0
    s_local, s_ray, local, out = run_both(tmp_path, "split", src, "--method", "hash", "--val", "0.2",
                                          "--test", "0.1", "--images-mode", "copy",
                                          before_ray=lambda: driver_must_not_write(monkeypatch))
    assert s_ray["assignment"] == s_local["assignment"]
    s_ray["out"] = s_local["out"]
    assert s_ray == s_local and same_tree(local, out) == []
    assert len([p for p in out.rglob("*.jpg")]) >= len(s_local["assignment"])
    no_leftovers(out)
    r = CliRunner().invoke(cli, ["split", str(src), str(tmp_path / "x"), "--engine", "ray"])
    assert r.exit_code == 2 and "--method hash" in r.output


@pytest.mark.ray
def test_killed_worker_is_retried_and_result_identical(ray_cluster, tmp_path, monkeypatch):
    local_stats = json.loads(invoke("stats", SAMPLE, "--json").stdout)
    marker = tmp_path / "shard3.killed"
    monkeypatch.setenv(FAULT_ENV, f"3:{marker}")
    ray_stats = json.loads(invoke("stats", SAMPLE, "--json", "--engine", "ray").stdout)
    assert marker.exists(), "the fault hook did not fire: the test proves nothing"
    assert ray_stats["pixels"] == local_stats["pixels"]
    marker.unlink()
    s_local, s_ray, local, out = run_both(tmp_path, "voc2yolo", SAMPLE)
    assert marker.exists()
    assert s_ray == s_local and same_tree(local, out) == []


@pytest.mark.ray
@pytest.mark.parametrize("src_fmt,task,dst", [("coco", "write_chunk", "voc"), ("coco", "place_chunk", "yolo"),
                                              ("yolo", "write_chunk", "voc"), ("yolo", "write_chunk", "yolo"),
                                              ("voc", "place_chunk", "voc")])
def test_write_task_killed_after_writing_is_retried(ray_cluster, tmp_path, monkeypatch, src_fmt, task, dst):
    """A write task whose worker dies after it wrote its files (before returning) is retried; the retry replaces the
    first attempt's files one by one, and the tree is still the local one, with no scratch file left behind."""
    src = tmp_path / "src"
    assert invoke("convert", "--to", src_fmt, SAMPLE, src, "--images-mode", "copy").exit_code == 0
    arg = src / "data.yaml" if src_fmt == "yolo" else src
    marker = tmp_path / "killed"
    s_local, s_ray, local, out = run_both(
        tmp_path, "convert", "--from", src_fmt, "--to", dst, arg, "--images-mode", "copy",
        before_ray=lambda: monkeypatch.setenv(FAULT_ENV, f"{task}@1:{marker}"))
    assert marker.exists(), "the fault hook did not fire: the test proves nothing"
    assert s_ray == s_local and same_tree(local, out) == []
    no_leftovers(out)


@pytest.mark.ray
def test_ctrl_c_cancels_and_leaves_no_partial_output(ray_cluster, tmp_path):
    from datatools.ops.convert import convert

    def interrupt(stage, n, total):
        if stage == "write" and n:  # after the first chunk of label files was written by a worker
            raise KeyboardInterrupt

    out = tmp_path / "y"
    with pytest.raises(KeyboardInterrupt):
        convert("voc", SAMPLE, "yolo", out, engine="ray", progress=interrupt)
    leftovers = [p for p in tmp_path.rglob("*") if p != out]
    assert leftovers == [], leftovers  # only the (empty) output folder: no labels/, no staging folder, no temp file

    seen = []
    with pytest.raises(KeyboardInterrupt):
        ordered_map(_slow_square, list(range(8)), engine="ray",
                    progress=lambda n: seen.append(n) or (_ for _ in ()).throw(KeyboardInterrupt()))
    assert seen == [1]


def _slow_square(x: int) -> int:
    import time

    time.sleep(0.2)
    return x * x


@pytest.mark.ray
def test_ordered_map_keeps_chunk_order(ray_cluster):
    assert ordered_map(_slow_square, [3, 1, 2, 0], engine="ray") == [9, 1, 4, 0]
    assert ordered_map(_slow_square, [3, 1, 2, 0], engine="local", workers=2) == [9, 1, 4, 0]


@pytest.mark.ray
def test_a_relative_source_is_the_drivers_whatever_folder_the_workers_run_in(ray_cluster, tmp_path, monkeypatch):
    # `ray start` from / and `datatools check dvoc --ray-address ...`: every file was unreadable on the workers
    import shutil

    shutil.copytree(SAMPLE, tmp_path / "voc")
    monkeypatch.chdir(tmp_path)  # after the cluster started: its workers work in another folder
    local = json.loads(invoke("check", "voc", "--json").stdout)
    ray_ = json.loads(invoke("check", "voc", "--json", "--engine", "ray").stdout)
    assert ray_ == local and local["images"] == 200 and not local["errors"]


def test_memory_urls_are_refused_on_ray_as_its_workers_cannot_see_them():
    # every file was an unreadable-file error, or every image image-unreadable, exit 0 for stats
    import fsspec

    fsspec.filesystem("memory").pipe("/dt_ray_refused/a.xml", b"<annotation><filename>a.jpg</filename></annotation>")
    r = CliRunner().invoke(cli, ["check", "memory:///dt_ray_refused", "--engine", "ray"])
    assert r.exit_code == 2 and "lives in this process only" in r.output, r.output
