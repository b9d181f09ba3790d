"""Outputs: whole or absent, never inside the input, one line when they cannot be written, no debris after a kill.

Issue 16, items 10 (image-name collisions in split), 11 (unwritable outputs), 12 (empty or wrong folders), 13 (an
output inside its input) and 14 (killed or failed runs, a full disk).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from datatools.cli import cli
from datatools.core import atomic, staging
from datatools.core.errors import InputError, OutputError, UsageError
from tests.conftest import ROOT, make_jpeg, make_voc_root, tree_digest, voc_xml

DEAD_PID = 4_194_304 + 7  # above Linux's largest pid: never a live process


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(r) -> str:
    """The command failed with exit 1 and one line of error, no traceback; returns that line."""
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


def dot_entries(folder: Path) -> list[str]:
    """Hidden entries anywhere under ``folder`` (stages, .old folders, temp files, journals), not the markers
    beside the folders a run wrote."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*") if not p.name.endswith(staging.MARKER))


def plain_voc(root: Path, n: int = 6, *, classes=("car", "plate")) -> Path:
    """A folder of XMLs with images beside it (root/ann, root/img), ``n`` images."""
    for i in range(n):
        xml = voc_xml(f"Cars{i}.png", (48, 40), [{"name": classes[i % len(classes)], "box": (2, 3, 30, 20)}])
        (root / "ann").mkdir(parents=True, exist_ok=True)
        (root / "ann" / f"Cars{i}.xml").write_text(xml)
        make_jpeg(root / "img" / f"Cars{i}.png", 48, 40)
    return root


# ---------------------------------------------------------------------------------------------- item 10

def test_split_with_augmented_copies_that_name_another_image(tmp_path):
    """The license-plate set: Cars315_aug2.xml says <filename>Cars315.png</filename> while Cars315_aug2.jpg exists,
    and Cars315_aug3.xml has no image of its own, so it pairs with Cars315.png too. The old split linked the same
    image twice under one name (SameFileError / FileExistsError) and left Annotations without ImageSets."""
    src = plain_voc(tmp_path / "plates")
    for aug in ("Cars315", "Cars315_aug2", "Cars315_aug3"):
        xml = voc_xml("Cars315.png", (48, 40), [{"name": "plate", "box": (2, 3, 30, 20)}])
        (src / "ann" / f"{aug}.xml").write_text(xml)
    make_jpeg(src / "img" / "Cars315.png", 48, 40)
    make_jpeg(src / "img" / "Cars315_aug2.jpg", 48, 40)
    out = tmp_path / "out"
    for mode in ("link", "copy"):
        r = run("split", src / "ann", out, "--images", src / "img", "--val", "0.2", "--images-mode", mode)
        assert r.exit_code == 0 and "Traceback" not in r.output, r.output
        names = sorted(p.name for p in (out / "ImageSets" / "Main").iterdir())
        assert names == ["train.txt", "trainval.txt", "val.txt"]
        listed = (out / "ImageSets" / "Main" / "trainval.txt").read_text().split()
        assert len(listed) == 9 and len(list((out / "Annotations").iterdir())) == 9
        assert (out / "JPEGImages" / "Cars315.png").is_file() and dot_entries(out) == []
    check = run("check", out, "--json")
    assert json.loads(check.output)["images"] == 9


def _split_plan(src: Path, *, collide: bool):
    from dataclasses import replace

    from datatools import formats
    from datatools.ops.split import plan_split

    ds = formats.get("voc").read(src / "ann", images=src / "img")
    if collide:  # two different images under one output name
        recs = list(ds.images)
        recs[1] = replace(recs[1], file_name=recs[0].file_name)
        ds = ds.evolve(images=tuple(recs))
    return plan_split(ds, val=0.34, seed=0)


def test_two_different_images_under_one_name_are_refused_and_out_is_left_as_it_was(tmp_path):
    from datatools.ops.split import write_split

    src = plain_voc(tmp_path / "src")
    out = tmp_path / "out"
    write_split(_split_plan(src, collide=False), out)
    before = tree_digest(out)
    with pytest.raises(OutputError, match="two different images would be placed under this name"):
        write_split(_split_plan(src, collide=True), out)
    assert tree_digest(out) == before and dot_entries(out) == []  # Annotations/ was staged, never swapped in


def test_place_images_refuses_a_name_that_leaves_its_folder(tmp_path):
    img = make_jpeg(tmp_path / "a.jpg", 8, 8)
    with pytest.raises(UsageError, match="outside the output directory"):
        atomic.place_images(tmp_path / "out" / "images", [(str(img), "../../escaped.jpg")], "copy")
    assert not (tmp_path / "escaped.jpg").exists() and not (tmp_path / "out").exists()


def test_place_images_places_one_image_asked_twice_once(tmp_path):
    img = make_jpeg(tmp_path / "a.jpg", 8, 8)
    atomic.place_images(tmp_path / "images", [(str(img), "a.jpg"), (str(img), "a.jpg")], "link")
    assert os.listdir(tmp_path / "images") == ["a.jpg"]


# ---------------------------------------------------------------------------------------------- item 11

@pytest.fixture
def voc(tmp_path):
    items = {f"im{i}": voc_xml(f"im{i}.jpg", (40, 30), [{"name": "cat", "box": (2, 2, 20, 20)}]) for i in range(5)}
    return make_voc_root(tmp_path / "voc", items, images={f"im{i}.jpg": (40, 30) for i in range(5)})


def _unwritable_commands(voc: Path, bad: Path, tmp_path: Path):
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [2, 2, 18, 18], "score": 0.9}]))
    return {
        "voc2yolo": ["voc2yolo", voc, bad],
        "voc2coco": ["voc2coco", voc, bad / "c.json"],
        "voc2coco-folder": ["voc2coco", voc, bad],
        "convert": ["convert", voc, bad, "--to", "voc"],
        "check --fix": ["check", voc, "--fix", bad],
        "split": ["split", voc, bad],
        "visualize": ["visualize", voc, bad],
        "visualize --grid": ["visualize", voc, bad, "--grid", "2x2"],
        "stats --plots": ["stats", voc, "--labels-only", "--plots", bad],
        "evaluate --plots": ["evaluate", "--gt", voc, "--pred", pred, "--plots", bad, "--metric", "voc"],
    }


@pytest.mark.parametrize("command", ["voc2yolo", "voc2coco", "voc2coco-folder", "convert", "check --fix", "split",
                                     "visualize", "visualize --grid", "stats --plots", "evaluate --plots"])
def test_an_output_under_a_file_is_one_line_naming_it(tmp_path, voc, command):
    """`/etc/passwd/x`: a file used as a folder fails for root too (NotADirectoryError)."""
    blocker = tmp_path / "passwd"
    blocker.write_text("root:x:0:0\n")
    r = run(*_unwritable_commands(voc, blocker / "x", tmp_path)[command])
    line = one_line_error(r)
    assert f"cannot write {blocker / 'x'}" in line and "Not a directory" in line and f"{blocker} is a file" in line
    assert blocker.read_text() == "root:x:0:0\n"


def test_an_output_under_proc_is_one_line(voc):
    if not os.path.isdir("/proc/1"):
        pytest.skip("no /proc")
    line = one_line_error(run("voc2coco", voc, "/proc/1/out.json"))
    assert "cannot write /proc/1/out.json" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_line(tmp_path, voc):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = one_line_error(run("voc2yolo", voc, ro / "out"))
        assert "cannot write" in line and "Permission denied" in line
    finally:
        ro.chmod(0o755)


def test_an_image_that_cannot_be_read_says_cannot_read(tmp_path):
    (tmp_path / "stage").mkdir()
    with pytest.raises(InputError, match=r"cannot read .*gone\.jpg: No such file"):
        atomic.link_or_copy(str(tmp_path / "gone.jpg"), str(tmp_path / "stage" / "a.jpg"), atomic.ImagesMode.COPY)
    with pytest.raises(OutputError, match="cannot write"):
        atomic.link_or_copy(str(make_jpeg(tmp_path / "a.jpg", 4, 4)), str(tmp_path / "nowhere" / "a.jpg"),
                            atomic.ImagesMode.COPY)


def test_errors_to_click_labels_unmarked_os_errors_without_guessing():
    from datatools.cli.common import os_error_message

    assert os_error_message(OSError(errno.ENOSPC, "No space left on device", "/o/x")) == \
        "cannot write /o/x: No space left on device"
    assert os_error_message(FileNotFoundError(errno.ENOENT, "No such file or directory", "/i/x")) == \
        "/i/x: No such file or directory"


# ---------------------------------------------------------------------------------------------- item 12

@pytest.mark.parametrize("args", [
    ["voc2coco", "{src}", "{out}/e.json"], ["voc2yolo", "{src}", "{out}"], ["convert", "{src}", "{out}", "--to", "coco"],
    ["convert", "{src}", "{out}", "--to", "yolo", "--from", "voc"], ["check", "{src}"], ["split", "{src}", "{out}"],
    ["stats", "{src}"], ["anchors", "{src}"], ["check", "{src}", "-f", "voc"]])
@pytest.mark.parametrize("content", ["empty", "wrong"])
def test_an_empty_or_wrong_folder_is_an_error_that_says_what_was_looked_for(tmp_path, args, content):
    src = tmp_path / "EMPTY"
    src.mkdir()
    if content == "wrong":  # pictures, no annotations
        make_jpeg(src / "a.jpg", 8, 8)
    out = tmp_path / "out"
    line = one_line_error(run(*[a.format(src=src, out=out) for a in args]))
    assert str(src) in line and "looked for" in line and "*.xml" in line
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- item 13

@pytest.mark.parametrize("args", [
    ["convert", "--to", "voc", "{src}", "{src}/Annotations/sub"],
    ["voc2yolo", "{src}", "{src}/yolo"],
    ["voc2yolo", "{src}/Annotations", "{src}/JPEGImages/yolo", "--images", "{src}/JPEGImages"],
    ["voc2coco", "{src}", "{src}/coco"],
    ["check", "{src}", "--fix", "{src}/fixed"],
    ["split", "{src}", "{src}/Annotations/split"],
    ["visualize", "{src}", "{src}/viz"],
    ["stats", "{src}", "--labels-only", "--plots", "{src}/plots"],
])
def test_an_output_inside_its_input_is_refused(voc, args):
    before = tree_digest(voc)
    r = run(*[a.format(src=voc) for a in args])
    assert r.exit_code == 2 and "inside the input" in r.output and "Traceback" not in r.output, r.output
    assert tree_digest(voc) == before


# ---------------------------------------------------------------------------------------------- item 14

def test_images_behind_symlinks_are_never_lost_nor_linked_dangling(tmp_path):
    """A dataset whose images are symlinks into another dataset A: converting it into A (any mode) swapped
    A/JPEGImages, the only copy of the pixels, for links to themselves, exit 0; and a hard link made to a relative
    symlink pointed nowhere from its new folder (check then found no image)."""
    a0 = make_voc_root(tmp_path / "A0", {f"i{k}": voc_xml(f"i{k}.jpg", (40, 30), [{"name": "c", "box": (1, 1, 9, 9)}])
                                         for k in range(3)}, images={f"i{k}.jpg": (40, 30) for k in range(3)})
    a = tmp_path / "A"  # written by datatools: only the input rule stands between it and a run into it
    assert run("convert", str(a0), str(a), "--to", "voc", "--images-mode", "copy").exit_code == 0
    before = tree_digest(a)
    assert run("voc2yolo", str(a), str(tmp_path / "B"), "--images-mode", "symlink").exit_code == 0
    for args in (["convert", "--to", "voc"], ["convert", "--to", "voc", "--images-mode", "copy"],
                 ["filter", "--to", "voc", "--min-size", "1"]):
        r = run(args[0], str(tmp_path / "B"), str(a), *args[1:])
        assert r.exit_code == 2 and "holds the input" in r.output, r.output
    assert tree_digest(a) == before
    # a relative symlink, placed by hard link (the default) and by symlink: both reach the picture
    rel = make_voc_root(tmp_path / "R", {"i0": voc_xml("i0.jpg", (40, 30), [{"name": "c", "box": (1, 1, 9, 9)}])})
    (rel / "JPEGImages").mkdir()
    (rel / "JPEGImages" / "i0.jpg").symlink_to(Path("..", "..", "A", "JPEGImages", "i0.jpg"))
    for mode in ("link", "symlink"):
        assert run("voc2yolo", str(rel), str(tmp_path / mode), "--images-mode", mode).exit_code == 0
        placed = tmp_path / mode / "images" / "all" / "i0.jpg"
        assert placed.read_bytes() == (a / "JPEGImages" / "i0.jpg").read_bytes()


def _first_run(voc: Path, out: Path, *args) -> dict:
    r = run("voc2yolo", voc, out, *args)
    assert r.exit_code == 0, r.output
    return tree_digest(out)


def test_leftovers_of_dead_runs_are_removed_by_the_next_run(tmp_path, voc):
    out = tmp_path / "out"
    first = _first_run(voc, out)
    debris = [f".labels.datatools-staging-{DEAD_PID}", f".labels.datatools-old-{DEAD_PID}",
              f".images.datatools-staging-{DEAD_PID}.scratch",
              f".images.datatools-staging-{os.getpid()}"]  # this process's pid, not a stage it is using: a dead run's
    for name in debris:
        (out / name / "train").mkdir(parents=True)
        (out / name / "train" / "x.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (out / f".data.yaml.{DEAD_PID}.140000.datatools.tmp").write_text("partial")
    (out / f".datatools-commit-{DEAD_PID}.json.tmp").write_text("{")
    # a live run's stage (the parent of this test, started before the folder was made) is left alone
    live = out / f".labels.datatools-staging-{os.getppid()}"
    live.mkdir()
    assert _first_run(voc, out) == first
    assert dot_entries(out) == [live.name]


def test_a_users_own_hidden_files_are_never_taken_for_leftovers(tmp_path, voc):
    # `voc2coco VOC ~/project/ann.json` deleted ~/project/.notes.txt.old-77777 and renamed .config.old-4000000 to
    # config: any hidden name of the shape of a stage was a dead run's
    out = tmp_path / "out"
    out.mkdir()
    mine = {f".notes.txt.old-{DEAD_PID}": "my backup", f".thesis.tex.staging-{DEAD_PID}": "draft",
            f".cache.{DEAD_PID}.12345.tmp": "t"}
    for name, text in mine.items():
        (out / name).write_text(text)
    (out / f".config.old-{DEAD_PID}").mkdir()
    r = CliRunner().invoke(cli, ["voc2coco", str(voc), str(out / "ann.json")])
    assert r.exit_code == 0, r.output
    assert {n: (out / n).read_text() for n in mine} == mine and (out / f".config.old-{DEAD_PID}").is_dir()
    assert not (out / "config").exists()


def test_a_reused_pid_does_not_keep_leftovers(tmp_path):
    """The pid in the name is alive, but that process started after the leftover was made: not its owner."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stage = tmp_path / f".labels.datatools-staging-{proc.pid}"
        stage.mkdir()
        past = time.time() - 3600
        os.utime(stage, (past, past))
        assert staging.clean_leftovers(tmp_path) == [stage.name]
        assert not stage.exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_run_killed_between_the_renames_of_a_swap_gets_its_old_folder_back(tmp_path):
    old = tmp_path / f".labels.datatools-old-{DEAD_PID}"
    (old / "train").mkdir(parents=True)
    (old / "train" / "a.txt").write_text("old")
    (tmp_path / f".labels.datatools-staging-{DEAD_PID}").mkdir()  # no journal: the swap had not been decided
    staging.clean_leftovers(tmp_path)
    assert (tmp_path / "labels" / "train" / "a.txt").read_text() == "old"
    assert dot_entries(tmp_path) == []


def test_a_journalled_swap_is_finished_by_the_next_run(tmp_path):
    for name, text in (("labels", "old"), ("images", "old")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a").write_text(text)
    moves = []
    for name in ("labels", "images", "data.yaml"):
        staged = tmp_path / f".{name}.datatools-staging-{DEAD_PID}"
        if name == "data.yaml":
            staged.write_text("new")
        else:
            staged.mkdir()
            (staged / "a").write_text("new")
        moves.append([str(staged), str(tmp_path / name)])
    # killed after the first folder was swapped: labels is new, its old copy waits, images is still old
    os.rename(tmp_path / "labels", tmp_path / f".labels.datatools-old-{DEAD_PID}")
    os.rename(moves[0][0], tmp_path / "labels")
    (tmp_path / f".datatools-commit-{DEAD_PID}.json").write_text(json.dumps({"pid": DEAD_PID, "moves": moves}))
    staging.clean_leftovers(tmp_path)
    assert [(tmp_path / n / "a").read_text() for n in ("labels", "images")] == ["new", "new"]
    assert (tmp_path / "data.yaml").read_text() == "new" and dot_entries(tmp_path) == []


def test_a_journal_that_cannot_be_finished_does_not_stop_every_later_run(tmp_path):
    """A journalled swap whose roll-forward fails (here a folder, made since, stands where its file goes) raised
    'cannot write' in every later run into the folder, and the journal was never dropped."""
    staged = tmp_path / f".x.datatools-staging-{DEAD_PID}"
    staged.write_text("new")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("mine")
    moves = [[str(staged), str(tmp_path / "x")],
             [str(tmp_path / f".y.datatools-staging-{DEAD_PID}"), str(tmp_path / "y")]]
    (tmp_path / f".datatools-commit-{DEAD_PID}.json").write_text(json.dumps({"pid": DEAD_PID, "moves": moves}))
    staging.clean_leftovers(tmp_path)
    assert dot_entries(tmp_path) == [] and (tmp_path / "x" / "mine.txt").read_text() == "mine"


_KILL_MID_SWAP = """
import os, sys
from click.testing import CliRunner
from datatools.cli import cli
real, n = os.rename, [0]
def rename(a, b):
    n[0] += 1
    if n[0] == 3:  # the labels folder is swapped in, the images folder is not: kill -9 now
        os._exit(9)
    real(a, b)
os.rename = rename
CliRunner().invoke(cli, ["voc2yolo", sys.argv[1], sys.argv[2]])
"""


def test_a_run_killed_during_the_swap_leaves_old_or_complete_new_state(tmp_path, voc):
    """kill -9 in the middle of swapping labels/ and images/ in: the next run finishes the swap (the journal says
    the new state was complete), then writes its own; nothing is left behind."""
    out = tmp_path / "out"
    _first_run(voc, out, "--classes", "cat,dog")  # the old state: another data.yaml
    proc = subprocess.run([sys.executable, "-c", _KILL_MID_SWAP, str(voc), str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert any(n.startswith(".datatools-commit-") for n in os.listdir(out))
    staging.clean_leftovers(out)  # what the next run does first
    assert dot_entries(out) == []
    fresh = tmp_path / "fresh"
    assert tree_digest(out) == _first_run(voc, fresh)  # the killed run's complete new state


def test_a_full_disk_is_one_line_and_leaves_out_as_it_was(tmp_path, voc, monkeypatch):
    out = tmp_path / "out"
    before = _first_run(voc, out, "--classes", "cat,dog")

    def full(src, dst, *a, **k):
        err = OSError(errno.ENOSPC, "No space left on device")
        err.filename, err.filename2 = src, dst  # as shutil's sendfile copy reports it
        raise err

    monkeypatch.setattr(shutil, "copyfile", full)
    line = one_line_error(run("voc2yolo", voc, out, "--images-mode", "copy"))
    assert line.startswith(f"Error: cannot write {out / 'images'}") and line.endswith("No space left on device")
    assert tree_digest(out) == before and dot_entries(out) == []
    fresh = tmp_path / "fresh"  # a first run into a new OUT leaves no OUT at all
    one_line_error(run("voc2yolo", voc, fresh, "--images-mode", "copy"))
    assert not fresh.exists()


def test_a_failed_split_leaves_the_earlier_split(tmp_path, voc, monkeypatch):
    """Annotations/ is staged before the images: a failure placing them must not swap Annotations in alone."""
    out = tmp_path / "out"
    r = run("split", voc, out, "--val", "0.4")
    assert r.exit_code == 0, r.output
    before = tree_digest(out)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", full)
    monkeypatch.setattr(shutil, "copyfile", full)
    one_line_error(run("split", voc, out, "--val", "0.2"))
    assert tree_digest(out) == before and dot_entries(out) == []


@pytest.mark.parametrize("args", [["convert", "--to", "coco", "{voc}", "{out}.json"], ["report", "{voc}", "{out}.html",
                                                                                       "--no-pixels", "--no-dupes"]])
def test_a_file_under_a_file_names_the_file_in_the_way(tmp_path, voc, args):
    # making the folder of a single output file says EEXIST, not ENOTDIR: the line said only "File exists"
    blocker = tmp_path / "passwd"
    blocker.write_text("root:x:0:0\n")
    r = run(*[a.replace("{voc}", str(voc)).replace("{out}", str(blocker / "x")) for a in args])
    line = one_line_error(r)
    assert f"cannot write {blocker / 'x'}" in line and f"({blocker} is a file, not a folder)" in line, line
    assert blocker.read_text() == "root:x:0:0\n"


def test_a_cleanup_that_fails_does_not_hide_the_error(tmp_path, monkeypatch):
    """On a read-only file system even unlinking a stage that is not there fails (EROFS, not ENOENT): that error
    replaced the real one and named the staging file ("cannot write .../.tasks.json.staging-21549")."""
    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", path)

    with pytest.raises(RuntimeError, match="the real error"):
        with staging.output_transaction(tmp_path / "o"):
            atomic.atomic_write(tmp_path / "o" / "x.txt", "x")
            monkeypatch.setattr(staging, "remove", refuse)
            raise RuntimeError("the real error")


def test_ctrl_c_during_the_swap_takes_effect_once_it_is_done(tmp_path, voc, monkeypatch):
    """Ctrl-C between two renames of the swap left OUT without labels/ (check then said 0 objects, 0 errors) until
    the next run; now the swap finishes, its old folders go, and the interrupt is raised after."""
    import signal

    out = tmp_path / "y"
    assert run("voc2yolo", str(voc), str(out)).exit_code == 0
    renames = []
    real_rename = os.rename

    def rename_then_interrupt(a, b):
        real_rename(a, b)
        renames.append(b)
        if len(renames) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(staging.os, "rename", rename_then_interrupt)
    from datatools.ops.convert import convert

    with pytest.raises(KeyboardInterrupt):
        convert("voc", voc, "yolo", out, classes=["cat"])
    monkeypatch.undo()
    assert len(renames) > 2 and dot_entries(out) == []
    assert {p.name for p in out.iterdir() if not p.name.startswith(".")} == {"images", "labels", "data.yaml",
                                                                              "classes.txt"}
    assert "0: cat" in (out / "data.yaml").read_text().replace('"', "")


def test_a_first_run_that_fails_leaves_no_out(tmp_path, voc, monkeypatch):
    """A disk full while writing OUT/deep/er/tasks.json left the folders o/deep/er, empty: the folders atomic_write
    made inside a transaction were not the transaction's to remove."""
    from datatools.ops.convert import convert

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(atomic, "write_new_file", full)
    with pytest.raises(OutputError, match="No space left"):
        convert("voc", voc, "labelstudio", tmp_path / "o" / "deep" / "er", images_mode="none")
    assert not (tmp_path / "o").exists()


def test_an_out_holding_someone_elses_folders_is_refused_and_left_alone(tmp_path, voc):
    """voc2yolo into a folder whose images/ held the user's own photo deleted it (the folder was replaced whole);
    a k-fold split removed a fold_9 the user had made. Folders datatools wrote carry a marker beside them."""
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    (out / "images" / "my_photo.jpg").write_text("precious")
    r = run("voc2yolo", str(voc), str(out))
    assert r.exit_code == 2 and "holds files datatools did not write" in r.output, r.output
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["images", "images/my_photo.jpg"]
    (out / "images" / "my_photo.jpg").unlink()
    assert run("voc2yolo", str(voc), str(out)).exit_code == 0
    assert run("voc2yolo", str(voc), str(out)).exit_code == 0  # its own output: replaced
    assert (out / ".labels.written-by-datatools").is_file() and (out / ".images.written-by-datatools").is_file()
    k = tmp_path / "k"
    assert run("split", str(voc), str(k), "--kfold", "3").exit_code == 0
    (k / "fold_9").mkdir()
    (k / "fold_9" / "notes.txt").write_text("mine")
    r = run("split", str(voc), str(k), "--kfold", "2")
    assert r.exit_code == 2 and "fold_9 holds files datatools did not write" in r.output, r.output
    assert (k / "fold_9" / "notes.txt").read_text() == "mine" and (k / "fold_2").is_dir()


def test_reruns_of_a_split_replace_and_remove_their_own_folders(tmp_path, voc):
    """A part or fold holding files only (Label Studio's tasks.json, under --images-mode none) had no marker under
    it, and a rerun with fewer parts was refused; a removed folder's marker stayed and vouched for a folder the user
    made there later; a run killed while swapping a part in left a journal that its rerun refused to finish."""
    ls = tmp_path / "ls"
    assert run("convert", str(voc), str(ls), "--to", "labelstudio", "--images-mode", "copy").exit_code == 0
    out = tmp_path / "s"
    assert run("split", str(ls), str(out), "--test", "0.2", "--images-mode", "none").exit_code == 0
    assert (out / ".test.written-by-datatools").is_file()
    r = run("split", str(ls), str(out), "--images-mode", "none", "--json")
    assert r.exit_code == 0 and not (out / "test").exists() and not (out / ".test.written-by-datatools").exists()
    (out / "test").mkdir()
    (out / "test" / "mine.txt").write_text("mine")
    r = run("split", str(ls), str(out), "--test", "0.2", "--images-mode", "none")
    assert r.exit_code == 2 and (out / "test" / "mine.txt").is_file(), r.output
    # killed while it swapped its folders in: the rerun finishes or clears that, then writes
    code = ("import os, sys\nreal = os.replace\n"
            "def rep(a, b):\n    if b.endswith('.train.written-by-datatools'):\n        os._exit(9)\n"
            "    return real(a, b)\nos.replace = rep\nfrom datatools.cli import main\n"
            f"sys.argv = ['datatools', 'split', {str(ls)!r}, {str(tmp_path / 'k')!r}, '--val', '0', "
            "'--images-mode', 'none']\nmain()")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 9
    assert dot_entries(tmp_path / "k")  # the journal and stages of the killed run
    r = run("split", str(ls), str(tmp_path / "k"), "--val", "0", "--images-mode", "none")
    assert r.exit_code == 0 and dot_entries(tmp_path / "k") == [], r.output


def test_an_image_that_is_a_device_or_no_image_is_never_copied_silently(tmp_path, voc):
    # x.jpg -> /dev/zero filled the disk with one "image"; a file that is no image was copied with no finding
    src = tmp_path / "src"
    shutil.copytree(voc, src)
    first, second = sorted((src / "JPEGImages").glob("*.jpg"))[:2]
    first.unlink()
    first.symlink_to("/dev/zero")
    r = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "o1"), "--to", "yolo", "--images-mode", "copy"])
    assert r.exit_code == 1 and "not a regular file" in r.output and not (tmp_path / "o1").exists(), r.output
    first.unlink()
    first.write_bytes(second.read_bytes())
    second.write_text("ssh-rsa not an image\n")
    r = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "o2"), "--to", "yolo", "--images-mode", "copy",
                                 "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["warnings"] == {"image-unreadable": 1}, r.output
    r = CliRunner().invoke(cli, ["check", str(src), "--json"])
    codes = [(f["code"], f["severity"]) for f in json.loads(r.stdout)["findings"] if f["code"] == "image-unreadable"]
    assert codes == [("image-unreadable", "error")]  # check's verdict, said once


def test_sigterm_leaves_out_as_ctrl_c_does(tmp_path):
    """timeout, docker stop, Slurm and CI cancels send SIGTERM: the process died with its stages in OUT (a first run
    left an OUT of hidden stage folders, a full copy of the images)."""
    script = f"""
import os, signal, time
from datatools import cli as c
from datatools.core import atomic, staging

def work(standalone_mode=True):
    with staging.output_transaction({str(tmp_path / 'o')!r}):
        atomic.atomic_write({str(tmp_path / 'o' / 'x.txt')!r}, "x")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)

c.cli = work
try:
    c.main()
except KeyboardInterrupt:
    raise SystemExit(7)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 7, proc.stderr
    assert not (tmp_path / "o").exists()


def test_leftovers_of_an_older_release_beside_its_folders_are_cleaned(tmp_path, voc):
    # .images.staging-<pid> (a full copy of the images) of a run of the release before the datatools- names
    out = tmp_path / "out"
    first = _first_run(voc, out)
    (out / f".images.staging-{DEAD_PID}" / "all").mkdir(parents=True)
    (out / f".notes.staging-{DEAD_PID}").mkdir()  # beside no folder datatools wrote: a user's, left alone
    assert _first_run(voc, out) == first
    assert dot_entries(out) == [f".notes.staging-{DEAD_PID}"]
