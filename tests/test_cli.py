"""Every foundation command through Click's CliRunner: exit codes, output files, --json, no torch on --help."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from datatools.cli import cli
from tests.conftest import ROOT, SAMPLE, make_jpeg, make_voc_root, voc_xml


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def available_commands():
    from datatools.cli import LazyGroup

    return LazyGroup().list_commands(None)


def test_help_does_not_import_torch():
    """`datatools --help` and every command's --help stay light (train/evaluate import torch only when they run)."""
    code = "import sys; from datatools.cli import cli, LazyGroup; from click.testing import CliRunner; " \
           "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; " \
           "rs = [CliRunner().invoke(cli, [c, '--help']) for c in LazyGroup().list_commands(None)]; " \
           "assert all(x.exit_code == 0 for x in rs), [x.output for x in rs if x.exit_code]; " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_core_commands_are_registered():
    assert {"convert", "voc2yolo", "voc2coco", "check", "split", "stats", "anchors"} <= set(available_commands())


@pytest.mark.parametrize("command", available_commands())
def test_every_option_has_help(command):
    cmd = cli.get_command(None, command)
    for p in cmd.params:
        if p.param_type_name == "option":
            assert p.help, f"{command} {p.opts} has no help text"


def test_voc2yolo_cli_json(tmp_path):
    r = invoke("voc2yolo", SAMPLE, tmp_path / "y", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["objects"]["balanced"] and data["objects"]["read"] == data["objects"]["written"] == 591
    assert (tmp_path / "y/data.yaml").is_file()


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bar_on_a_terminal_only(tmp_path, terminal):
    """Long work shows a rich progress bar on stderr, one line per stage, where stderr is a terminal (FORCE_COLOR
    makes rich treat it as one); in a log or a pipe stderr stays clean and rich.progress is not even imported."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    if terminal:
        env["FORCE_COLOR"] = "1"
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "datatools", "voc2yolo", str(SAMPLE),
                        str(tmp_path / "y")], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    bar = [line for line in r.stderr.splitlines() if not line.startswith("import time:")]
    assert ("read" in "".join(bar) and "write" in "".join(bar)) == terminal
    assert bool(bar) == terminal
    assert (" rich.progress\n" in r.stderr) == terminal
    assert "wrote" in r.stdout


def test_voc2coco_cli_table(tmp_path):
    r = invoke("voc2coco", SAMPLE, tmp_path / "c.json")
    assert r.exit_code == 0, r.output
    assert "objects" in r.output and "wrote" in r.output and (tmp_path / "c.json").is_file()


def test_convert_cli_requires_target_format(tmp_path):
    r = CliRunner().invoke(cli, ["convert", str(SAMPLE), str(tmp_path / "x")])
    assert r.exit_code == 2 and "--to" in r.output
    r = CliRunner().invoke(cli, ["convert", "--to", "coco", str(SAMPLE), str(tmp_path / "x.json"), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["src_format"] == "voc"


def test_convert_cli_yolo_to_coco(tmp_path):
    assert invoke("voc2yolo", SAMPLE, tmp_path / "y").exit_code == 0
    r = invoke("convert", "--from", "yolo", "--to", "coco", tmp_path / "y", tmp_path / "c", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["objects"]["written"] == 591
    assert sorted(p.name for p in (tmp_path / "c/annotations").iterdir()) == ["instances_train.json", "instances_val.json"]


def test_strict_exit_code_and_message(tmp_path):
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (20, 20), [{"name": "x", "box": (9, 5, 3, 9)}])})
    r = CliRunner().invoke(cli, ["voc2yolo", str(root), str(tmp_path / "o"), "--strict"])
    assert r.exit_code == 1 and "box-inverted" in r.output and "a.xml" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()


def test_usage_error_is_exit_2_without_traceback(tmp_path):
    r = CliRunner().invoke(cli, ["voc2yolo", str(SAMPLE), str(tmp_path / "o"), "--sets", "nope"])
    assert r.exit_code == 2 and "nope" in r.output and "Traceback" not in r.output


def test_unsafe_output_is_refused(tmp_path):
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (20, 20), [])})
    r = CliRunner().invoke(cli, ["convert", "--from", "voc", "--to", "voc", str(root), str(root)])
    assert r.exit_code == 2 and "input" in r.output


# ------------------------------------------------------------------------------------------------------ check

def broken_root(tmp_path):
    items = {
        "ok": voc_xml("ok.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 10, 10)}]),
        "oob": voc_xml("oob.jpg", (40, 30), [{"name": "cat", "box": (30, 1, 60, 10)}]),
        "zero": voc_xml("zero.jpg", (40, 30), [{"name": "cat", "box": (5, 5, 5, 9)}]),
        "inv": voc_xml("inv.jpg", (40, 30), [{"name": "cat", "box": (20, 5, 10, 9)}]),
        "dup": voc_xml("dup.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 10, 10)}] * 2),
        "nosize": voc_xml("gone.jpg", None, [{"name": "cat", "box": (1, 1, 10, 10)}]),
        "mismatch": voc_xml("mismatch.jpg", (99, 99), [{"name": "cat", "box": (1, 1, 10, 10)}]),
        "unknown": voc_xml("unknown.jpg", (40, 30), [{"name": "cow", "box": (1, 1, 10, 10)}]),
        "empty": voc_xml("empty.jpg", (40, 30), []),
        "broken": "<annotation><object>",
        "twin": voc_xml("ok.jpg", (40, 30), [{"name": "cat", "box": (2, 2, 10, 10)}]),
        "rot": voc_xml("rot.jpg", (30, 40), [{"name": "cat", "box": (1, 1, 10, 10)}]),
    }
    root = make_voc_root(tmp_path / "v", items, images={f"{k}.jpg": (40, 30) for k in
                                                        ("ok", "oob", "zero", "inv", "dup", "mismatch", "unknown", "empty")})
    make_jpeg(root / "JPEGImages/rot.jpg", 40, 30, exif_orientation=6)
    return root


EXPECTED = [  # (code, severity, image_id)
    ("box-out-of-bounds", "warning", "oob"),
    ("zero-area", "error", "zero"),
    ("box-inverted", "error", "inv"),
    ("duplicate-box", "warning", "dup"),
    ("missing-size", "error", "nosize"),
    ("missing-image", "error", "nosize"),
    ("size-mismatch", "warning", "mismatch"),
    ("unknown-class", "error", "unknown"),
    ("empty-annotation", "info", "empty"),
    ("xml-parse", "error", "broken"),
    ("duplicate-file-name", "warning", "twin"),
    ("exif-rotation", "warning", "rot"),
]


def test_check_finds_each_problem(tmp_path):
    r = CliRunner().invoke(cli, ["check", str(broken_root(tmp_path)), "--classes", "cat", "--json"])
    assert r.exit_code == 1, r.output
    data = json.loads(r.output)
    got = {(f["code"], f["severity"], f["image_id"]) for f in data["findings"]}
    for row in EXPECTED:
        assert row in got, row
    assert not any(f["image_id"] == "ok" for f in data["findings"])
    for f in data["findings"]:
        assert f["path"] and f["field"] is not None and f["message"]


def test_check_table_output_and_clean_exit():
    r = invoke("check", SAMPLE)
    assert r.exit_code == 0 and "200 images, 591 objects: 0 errors, 0 warnings" in r.output


def test_check_is_deterministic(tmp_path):
    root = broken_root(tmp_path)
    a = CliRunner().invoke(cli, ["check", str(root), "--json", "-j", "1"])
    b = CliRunner().invoke(cli, ["check", str(root), "--json", "-j", "2"])
    assert a.exit_code == b.exit_code == 1, (a.output, b.output)  # the errors are found by both runs
    assert a.output == b.output and json.loads(a.output)["errors"] > 0


def test_check_fix_writes_repaired_copy(tmp_path):
    root = broken_root(tmp_path)
    r = CliRunner().invoke(cli, ["check", str(root), "--fix", str(tmp_path / "fixed"), "--images-mode", "copy"])
    assert r.exit_code == 1  # the source still has errors
    assert "repaired copy" in r.output
    r2 = CliRunner().invoke(cli, ["check", str(tmp_path / "fixed"), "--json"])
    assert r2.exit_code in (0, 1), r2.output  # findings, not a crash (a missing image stays an error)
    after = json.loads(r2.output)
    codes = {f["code"] for f in after["findings"]}
    assert not codes & {"zero-area", "box-inverted", "box-out-of-bounds", "xml-parse"}
    oob = (tmp_path / "fixed/Annotations/oob.xml").read_text()
    assert "<xmax>40</xmax>" in oob  # clipped to the image width


@pytest.mark.parametrize("fmt,path", [("yolo", "y"), ("yolo", "y/data.yaml"), ("coco", "c"),
                                      ("coco", "c/annotations/instances_val.json"), ("voc", "v")])
def test_check_detects_the_format(tmp_path, fmt, path):
    from datatools import formats

    assert invoke("voc2yolo", SAMPLE, tmp_path / "y").exit_code == 0
    assert invoke("voc2coco", SAMPLE, tmp_path / "c").exit_code == 0
    assert invoke("convert", "--from", "voc", "--to", "voc", SAMPLE, tmp_path / "v", "--images-mode", "none").exit_code == 0
    assert formats.detect(tmp_path / path) == fmt
    r = invoke("check", tmp_path / path, "--json", "--no-headers")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["format"] == fmt and data["objects"] > 0


def test_detect_refuses_unknown(tmp_path):
    from datatools import formats

    with pytest.raises(Exception, match="--format"):
        formats.detect(tmp_path)


def test_data_in_tables_and_messages_is_printed_as_it_is_not_as_markup(tmp_path):
    """Class names, paths and regexes come from the data; rich read "[red]car" as a colour and dropped it, and
    "([a-z]+)_" lost its "[a-z]". Every table cell and message shows them as written."""
    items = {"a[1]": voc_xml("a[1].jpg", (40, 30), [{"name": "[red]car", "box": (2, 2, 20, 20)},
                                                    {"name": "[bold]", "box": (3, 3, 9, 9)}]),
             "b[red]": voc_xml("b[red].jpg", (40, 30), [{"name": "[red]car", "box": (2, 2, 20, 20)}])}
    root = make_voc_root(tmp_path / "v[1]", items, images={"a[1].jpg": (40, 30)})  # b[red].jpg is missing
    for args in (["stats", root, "--labels-only"], ["voc2coco", root, tmp_path / "o[2]"]):
        r = CliRunner().invoke(cli, [str(a) for a in args])
        assert r.exit_code == 0, (args, r.output)
        assert "[red]car" in r.output and "[bold]" in r.output, (args, r.output)
    r = CliRunner().invoke(cli, ["check", str(root)])
    assert r.exit_code == 1 and "b[red]" in r.output and "missing-image" in r.output, r.output
    r = CliRunner().invoke(cli, ["split", str(root), str(tmp_path / "s"), "--group-by", "([a-z]+)", "--dry-run"])
    assert r.exit_code == 0 and "regex:([a-z]+)" in r.output, r.output
    r = CliRunner().invoke(cli, ["voc2yolo", str(root), str(tmp_path / "o[2]")])
    assert r.exit_code == 0 and str(tmp_path / "o[2]") in r.output, r.output


@pytest.mark.parametrize("no_headers", [False, True])
def test_check_opens_each_image_once(tmp_path, header_opens, no_headers):
    """The reader's header read (the size) also serves check's EXIF and unreadable-image checks, so each image is
    opened once; --no-headers drops those checks and still opens each image once, for its size. Counted by
    the header_opens fixture."""
    root = broken_root(tmp_path)
    (root / "Annotations/bad.xml").write_text(voc_xml("bad.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}]))
    (root / "JPEGImages/bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    header_opens.clear()
    r = CliRunner().invoke(cli, ["check", str(root), "--json", "-j", "1"] + (["--no-headers"] if no_headers else []))
    assert r.exit_code == 1, r.output
    found = json.loads(r.output)["findings"]
    codes = {(f["code"], f["image_id"]) for f in found}
    # every image that an annotation names, once (ok.jpg is named by "ok" and "twin")
    assert header_opens == {f"{k}.jpg": 1 for k in ("ok", "oob", "zero", "inv", "dup", "mismatch", "unknown", "empty",
                                              "rot", "bad")}, header_opens
    assert ("size-mismatch", "mismatch") in codes  # the size comes from the header either way
    assert (("exif-rotation", "rot") in codes) is not no_headers
    # the reader's header read says so either way (a conversion would place it): an error only under the checks
    bad = [f["severity"] for f in found if (f["code"], f["image_id"]) == ("image-unreadable", "bad")]
    assert bad == ["warning" if no_headers else "error"]


def test_kept_headers_live_for_one_block_only(tmp_path):
    """Outside keep_headers() nothing is remembered: a command run later sees an image changed since."""
    from datatools.core.parallel import Mapper
    from datatools.formats.common import keep_headers, read_headers

    p = str(make_jpeg(tmp_path / "a.jpg", 40, 30))
    one = Mapper(workers=1)
    with keep_headers():
        assert [(h.width, h.height) for h in read_headers([p, p], mapper=one)] == [(40, 30)] * 2
        make_jpeg(tmp_path / "a.jpg", 20, 10)
        assert read_headers([p], mapper=one)[0].width == 40  # kept: not opened again inside the block
    assert read_headers([p], mapper=one)[0].width == 20


@pytest.mark.parametrize("fmt", ["yolo", "coco", "cvat", "labelme", "labelstudio", "openimages"])
def test_check_opens_each_image_once_in_every_format(tmp_path, header_opens, fmt):
    """Every reader gets its sizes through formats.common.read_headers, so check's header checks reuse them: each
    image is opened once, whichever format wrote the dataset (made here by that format's own writer). A reader that
    read headers on its own (YOLO's label chunks did) opened each image twice. Counted by the header_opens fixture."""
    items = {k: voc_xml(f"{k}.jpg", (30, 40) if k == "rot" else (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}])
             for k in ("a", "b", "bad", "rot")}
    src = make_voc_root(tmp_path / "v", items, images={f"{k}.jpg": (40, 30) for k in ("a", "b", "bad")})
    make_jpeg(src / "JPEGImages/rot.jpg", 40, 30, exif_orientation=6)
    out = tmp_path / fmt
    assert invoke("convert", "--to", fmt, src, out, "--images-mode", "copy").exit_code == 0
    placed = {p.name: p for p in out.rglob("*.jpg")}
    assert sorted(placed) == ["a.jpg", "b.jpg", "bad.jpg", "rot.jpg"], sorted(placed)
    placed["bad.jpg"].write_bytes(b"\xff\xd8 not a jpeg")
    header_opens.clear()
    r = CliRunner().invoke(cli, ["check", str(out), "--json", "-j", "1"])
    assert r.exit_code == 1, r.output
    codes = {f["code"] for f in json.loads(r.output)["findings"]}
    assert header_opens == {f"{k}.jpg": 1 for k in ("a", "b", "bad", "rot")}, header_opens
    assert {"image-unreadable", "exif-rotation"} <= codes, codes


def test_findings_name_the_image_when_the_file_holds_every_image(tmp_path):
    """A CVAT annotations.xml (like a COCO JSON, a Label Studio export, an Open Images CSV) holds every image: the
    findings table names the image beside the file. A VOC XML named after its image needs nothing more."""
    from datatools.cli.common import _where
    from datatools.core.model import Finding, Severity

    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (40, 30), [{"name": "cat", "box": (3, 1, 9, 9)}]),
                                          "b": voc_xml("b.jpg", (40, 30), [{"name": "cat", "box": (1, 1, 9, 9)}])},
                         images={"a.jpg": (40, 30), "b.jpg": (40, 30)})
    assert invoke("convert", "--to", "cvat", root, tmp_path / "c").exit_code == 0
    xml = tmp_path / "c" / "annotations.xml"
    text = xml.read_text()
    assert text.count('xtl="3"') == 1
    xml.write_text(text.replace('xtl="3"', 'xtl="-5"'))  # image a's box now reaches outside its image
    r = CliRunner().invoke(cli, ["check", str(tmp_path / "c"), "--json"])
    f = next(x for x in json.loads(r.output)["findings"] if x["code"] == "box-out-of-bounds")
    where = _where(Finding(f["code"], Severity(f["severity"]), f["path"], f["field"], f["message"], f["image_id"]))
    assert where.endswith("annotations.xml [a]"), where
    voc = Finding("box-out-of-bounds", Severity.WARNING, str(root / "Annotations" / "a.xml"), "object[0]", "m", "a")
    assert _where(voc).endswith("Annotations/a.xml")


def test_long_work_reports_every_stage_with_its_total(tmp_path):
    """check (read, image headers, whether they decode, duplicate hashes, --fix's write) and the surgery commands
    (read, write) report each stage to the progress bar, every advance adding up to the total announced (check showed only its header
    stage; merge, remap, filter and sample showed nothing)."""
    from datatools.ops.check import check, write_fixed
    from datatools.ops.surgery import merge, remap

    def stages(run) -> dict:
        seen: dict = {}

        def update(stage, advance, total):
            done, known = seen.get(stage, (0, None))
            seen[stage] = (done + advance, total if total is not None else known)
        run(update)
        assert all(known is None or done == known for done, known in seen.values()), seen
        return seen

    report = None

    def run_check(update):
        nonlocal report
        report = check(SAMPLE, dupes=True, progress=update)
        write_fixed(report, tmp_path / "fixed", progress=update)
    seen = stages(run_check)
    assert set(seen) == {"read", "headers", "decode", "hash", "write"} and seen["headers"][0] == report.images
    seen = stages(lambda update: remap(SAMPLE, tmp_path / "o", "circle:round", progress=update))
    assert set(seen) == {"read", "write"} and seen["write"][0] == report.images
    # merge reads each source as its own stage: one shared bar counted past its total (each source set it anew)
    seen = stages(lambda update: merge([SAMPLE, tmp_path / "o"], tmp_path / "m", progress=update))
    assert set(seen) == {"read 1", "read 2", "write"} and seen["read 1"] == seen["read 2"]


@pytest.mark.parametrize("args", [
    ["filter", str(SAMPLE), "{tmp}/o", "--min-size", "nan"],
    ["evaluate", "--gt", str(SAMPLE), "--pred", "{tmp}/p.json", "--conf", "nan"],
    ["check", str(SAMPLE), "--max-xml-mb", "inf"],
    ["check", str(SAMPLE), "--max-xml-mb", "nan"],
    ["report", str(SAMPLE), "{tmp}/r.html", "--max-mb", "nan"],
    ["train", str(SAMPLE), "--out", "{tmp}/run", "--lr", "nan"],
    ["train", str(SAMPLE), "--out", "{tmp}/run", "--warmup-epochs", "inf"],
    ["stats", str(SAMPLE), "--resize", "100000"],
])
def test_numbers_that_are_not_finite_or_too_large_are_usage_errors(tmp_path, args):
    # nan passed every range check (--lr nan trained on, --min-size nan filtered nothing); inf overflowed later (a
    # traceback); --resize 100000 made every image a 40 GB array
    (tmp_path / "p.json").write_text("[]")
    r = CliRunner().invoke(cli, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "run").exists()


def test_a_tiny_max_xml_mb_refuses_every_file_in_one_line():
    r = CliRunner().invoke(cli, ["check", str(SAMPLE), "--max-xml-mb", "1e-9"])
    assert r.exit_code == 1 and "file-too-large" in r.output and "Traceback" not in r.output, r.output


def test_strict_refusal_under_json_is_json(tmp_path):
    # --strict --json printed its refusal as text on stderr and nothing on stdout
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (20, 20), [{"name": "x", "box": (9, 5, 3, 9)}])})
    r = CliRunner().invoke(cli, ["voc2yolo", str(root), str(tmp_path / "o"), "--strict", "--json"])
    assert r.exit_code == 1 and not (tmp_path / "o").exists()
    d = json.loads(r.stdout)
    assert d["written"] is False and [f["code"] for f in d["findings"]] == ["box-inverted"], d


def test_check_finds_images_cut_short_whose_header_reads(tmp_path):
    """An interrupted download keeps its header: check said "0 errors" for a JPEG cut at 3000 bytes, and train
    stopped at it. A JPEG with data after its end marker (a motion photo's video) decodes: no finding."""
    from PIL import Image

    root = tmp_path / "voc"
    for name in ("cut", "trailer", "png_cut", "ok"):
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        ext = "png" if name == "png_cut" else "jpg"
        (root / "Annotations" / f"{name}.xml").write_text(voc_xml(f"{name}.{ext}", (320, 240),
                                                                  [{"name": "cat", "box": (1, 1, 9, 9)}]))
        rng = np.random.default_rng(0)
        (root / "JPEGImages").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.{ext}")
    for name in ("cut.jpg", "png_cut.png"):
        f = root / "JPEGImages" / name
        f.write_bytes(f.read_bytes()[:3000])
    with open(root / "JPEGImages" / "trailer.jpg", "ab") as f:
        f.write(b"\0\0\0\x18ftypmp42" + bytes(5000))
    r = CliRunner().invoke(cli, ["check", str(root), "--json", "-j", "2"])
    assert r.exit_code == 1, r.output
    found = {(f["code"], f["image_id"]) for f in json.loads(r.output)["findings"]}
    assert found == {("image-unreadable", "cut"), ("image-unreadable", "png_cut")}, found
    r = CliRunner().invoke(cli, ["check", str(root), "--json", "--no-headers"])
    assert r.exit_code == 0 and not json.loads(r.output)["findings"], r.output


@pytest.mark.parametrize("args", [["convert", "SRC", "", "--to", "yolo"], ["split", "SRC", ""], ["filter", "SRC", ""],
                                  ["visualize", "SRC", ""], ["check", "SRC", "--fix", ""],
                                  ["stats", "SRC", "--labels-only", "--plots", ""], ["report", "SRC", ""],
                                  ["merge", "SRC", "SRC", ""]])
def test_an_empty_output_path_is_a_usage_error(tmp_path, monkeypatch, args):
    """An unset shell variable as OUT wrote the dataset into the working folder and exited 0 (--fix '' and
    --plots '' were ignored)."""
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, [str(SAMPLE) if a == "SRC" else a for a in args])
    assert r.exit_code == 2 and "empty path" in r.output, r.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, code", [(["stats", "EMPTY", "--json"], 1), (["convert", "SAMPLE", "", "--json"], 2),
                                        (["check", "EMPTY", "--json", "--format", "voc"], 1)])
def test_a_failing_command_under_json_prints_json_on_stdout(tmp_path, args, code):
    """Under --json an error left stdout empty: a script's json.loads(stdout) failed instead of reading the error."""
    (tmp_path / "empty").mkdir()
    paths = {"EMPTY": str(tmp_path / "empty"), "SAMPLE": str(SAMPLE)}
    r = subprocess.run([sys.executable, "-m", "datatools", *[paths.get(a, a) for a in args]], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == code, r.stderr
    got = json.loads(r.stdout)
    assert got["exit_code"] == code and got["error"] and "Error" in r.stderr


def test_a_selection_that_matches_nothing_is_no_empty_success(tmp_path):
    r = CliRunner().invoke(cli, ["visualize", str(SAMPLE), str(tmp_path / "v"), "--ids", "nomatch*", "--json"])
    assert r.exit_code == 1 and "no image matched --ids" in r.output
    assert json.loads(r.stdout)["images_selected"] == 0  # one JSON document: the counts, not a second one


def test_control_characters_in_names_are_printed_escaped(tmp_path):
    """A class 'new<LF>line' printed as two table rows, 'new' and 'line'."""
    root = make_voc_root(tmp_path / "v", {"a": voc_xml("a.jpg", (40, 30), [{"name": "new\nline", "box": (1, 1, 9, 9)},
                                                                           {"name": "tab\tname", "box": (2, 2, 9, 9)}])})
    r = CliRunner().invoke(cli, ["stats", str(root), "--labels-only"])
    assert r.exit_code == 0, r.output
    assert "new\\nline" in r.output and "tab\\tname" in r.output


def test_exit_codes_say_what_kind_of_problem_it_is(tmp_path):
    """Predictions that match nothing scored 0 with exit 0; a results file that is an object was a usage error (2);
    contradictory or empty filter options were found only after reading everything (or ignored)."""
    preds = tmp_path / "p.json"
    preds.write_text('[{"image_id": 99999, "category_id": 1, "bbox": [1, 1, 2, 3], "score": 0.5}]')
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--split", "val", "--pred", str(preds), "--json"])
    assert r.exit_code == 1 and "none of the 1 prediction names an image" in r.output
    assert json.loads(r.stdout)["predictions_used"] == 0
    preds.write_text("{}")
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--split", "val", "--pred", str(preds)])
    assert r.exit_code == 1 and "expected a COCO results list" in r.output
    for opts in (["--min-size", "50", "--max-size", "10"], ["--classes", ""]):
        r = CliRunner().invoke(cli, ["filter", str(SAMPLE), str(tmp_path / "f"), *opts])
        assert r.exit_code == 2 and not (tmp_path / "f").exists(), r.output


def test_check_mode_and_a_class_subset_are_no_empty_selection(tmp_path):
    """visualize --check --classes on a clean dataset (the class is there, no box has a problem) and evaluate
    --classes where the model predicted only another class are results, exit 0."""
    r = CliRunner().invoke(cli, ["visualize", str(SAMPLE), str(tmp_path / "v"), "--check", "--classes", "circle"])
    assert r.exit_code == 0, r.output
    preds = tmp_path / "p.json"
    preds.write_text('[{"file_name": "shapes_0000.jpg", "category_name": "square", "bbox": [1, 1, 9, 9], '
                     '"score": 0.5}]')
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--pred", str(preds), "--classes", "circle"])
    assert r.exit_code == 0, r.output


def test_a_name_that_no_file_can_hold_is_one_line_not_a_traceback(tmp_path):
    # "a\ud800b" is valid JSON and no character: every writer stopped with a UnicodeEncodeError traceback
    (tmp_path / "s.json").write_text('{"images":[{"id":1,"file_name":"a.jpg","width":40,"height":30}],"annotations":'
                                     '[{"id":1,"image_id":1,"category_id":1,"bbox":[1,1,5,5]}],"categories":'
                                     '[{"id":1,"name":"a\\ud800b"}]}')
    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "s.json"), str(tmp_path / "o"), "--to", "yolo",
                                 "--images-mode", "none"])
    assert r.exit_code == 1 and "which is no character" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "o").exists()
