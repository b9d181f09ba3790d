"""``datatools report``: the page's sections and numbers, escaping, the size budget and seeded gallery, output
safety, and the page in headless Chromium (console errors, every section rendered, a screenshot)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from datatools.cli import cli
from datatools.report.html import SECTIONS
from tests.conftest import SAMPLE, make_voc_root, voc_xml

SECTION_IDS = [sid for sid, _ in SECTIONS]
HOSTILE = "<img src=x onerror=alert(1)>"  # a class name from an annotation file; must reach the page as text


def run(*args):
    return CliRunner().invoke(cli, ["report", *map(str, args)])


def noise_jpeg(path: Path, w: int, h: int, seed: int) -> None:
    """A textured image (uniform ones would all be near duplicates of each other)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR).save(path, quality=92)


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """Five images: a hostile class name, a zero-area box (a check error), and an exact copy (a duplicate)."""
    esc_name = HOSTILE.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    items = {
        "a": voc_xml("a.jpg", (96, 80), [{"name": "cat", "box": (5, 5, 60, 50)}, {"name": esc_name, "box": (10, 10, 40, 70)}]),
        "b": voc_xml("b.jpg", (96, 80), [{"name": "cat", "box": (20, 20, 20, 40)}]),  # zero width
        "c": voc_xml("c.jpg", (80, 96), [{"name": "dog", "box": (3, 4, 70, 90), "difficult": 1}]),
        "d": voc_xml("d.jpg", (96, 80), [{"name": "dog", "box": (30, 10, 90, 70)}]),
        "e": voc_xml("e.jpg", (96, 80), [{"name": "cat", "box": (5, 5, 60, 50)}, {"name": esc_name, "box": (10, 10, 40, 70)}]),
    }
    root = make_voc_root(tmp_path / "voc", items, sets={"train": ["a", "b", "c"], "val": ["d", "e"]})
    for k, (iid, size) in enumerate({"a": (96, 80), "b": (96, 80), "c": (80, 96), "d": (96, 80)}.items()):
        noise_jpeg(root / "JPEGImages" / f"{iid}.jpg", *size, seed=k)
    shutil.copy(root / "JPEGImages" / "a.jpg", root / "JPEGImages" / "e.jpg")
    return root


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_page_has_every_section_and_whole_dataset_numbers(planted, tmp_path):
    out = tmp_path / "r.html"
    r = run(planted, out, "--json", "-k", "2", "-j", "1")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    # the zero-area box is read, reported and left out of the model, as every command does
    assert (s["images"], s["objects"], s["objects_read"], s["classes"]) == (5, 6, 7, 3)
    assert s["class_objects"] == {HOSTILE: 2, "cat": 2, "dog": 2}
    assert s["splits"] == {"train": {"images": 3, "objects": 3}, "val": {"images": 2, "objects": 3}}
    assert s["findings_by_code"].get("zero-area") == 1 and s["errors"] >= 1
    assert s["duplicates"]["clusters"] >= 1 and s["duplicates"]["exact_clusters"] >= 1
    assert len(s["anchors"]["anchors"]) == 2 and s["pixels"]["images"] == 5
    page = out.read_text(encoding="utf-8")
    assert s["bytes"] == len(page.encode("utf-8"))
    for sid in SECTION_IDS:
        assert f'<section id="{sid}" data-section>' in page
    # the finding code links to its examples, which hold a drawn thumbnail
    assert 'href="#f-zero-area"' in page
    details = page.split('<details id="f-zero-area">', 1)[1].split("</details>", 1)[0]
    assert "data:image/jpeg;base64," in details and "b.jpg" in details
    # the duplicate cluster names both images
    dup = page.split('<section id="duplicates"', 1)[1].split("</section>", 1)[0]
    assert ">a <" in dup.replace("</td>", " <") or "a <span" in dup
    assert "e <span" in dup


def test_data_is_escaped_and_the_page_needs_no_network(planted, tmp_path):
    out = tmp_path / "r.html"
    assert run(planted, out, "--no-dupes", "--no-pixels", "-j", "1").exit_code == 0
    page = out.read_text(encoding="utf-8")
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    p = Tags()
    p.feed(page)
    scripts = [a for t, a in p.tags if t == "script"]
    assert len(scripts) == 1 and "src" not in scripts[0]  # ours, inline
    imgs = [a["src"] for t, a in p.tags if t == "img"]
    assert imgs and all(s.startswith("data:image/jpeg;base64,") for s in imgs)
    assert not [a for t, a in p.tags if t in ("link", "iframe", "object", "embed")]
    refs = re.findall(r"(?:src|href)=\"([^\"#][^\"]*)\"", page)
    assert all(x.startswith(("data:", "file://")) for x in refs), refs
    assert "url(" not in page and "@import" not in page
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * page.count("<svg ")


def test_budget_cuts_the_gallery_not_the_numbers_and_the_seed_decides(tmp_path):
    args = ["--no-pixels", "--no-dupes", "--per-class", "100", "--max-mb", "1", "--thumb-size", "160", "-j", "2",
            "--json"]
    a = json.loads(run(SAMPLE, tmp_path / "a.html", *args).output)
    assert (a["images"], a["objects"]) == (200, 591)  # every number: the whole dataset
    assert a["bytes"] <= 1_000_000 and 0 < a["gallery"]["shown"] < a["gallery"]["candidates"]
    b = json.loads(run(SAMPLE, tmp_path / "b.html", *args).output)
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()  # same seed, same bytes
    run(SAMPLE, tmp_path / "c.html", *args, "--seed", "1")
    ids = [re.findall(r'alt="(shapes_\d+)"', (tmp_path / f"{n}.html").read_text()) for n in "ac"]
    assert ids[0] != ids[1] and b["gallery"] == a["gallery"]
    # the gallery interleaves classes, so each class keeps examples under a tight budget
    gallery = (tmp_path / "a.html").read_text().split('<section id="gallery"', 1)[1]
    assert gallery.count("<h3>") == 4


def test_output_safety(planted, tmp_path):
    r = run(planted, planted / "r.html")
    assert r.exit_code == 2 and "inside the input" in r.output
    r = run(planted, tmp_path)
    assert r.exit_code == 2
    assert not (planted / "r.html").exists()


def test_anchor_and_duplicate_notes_instead_of_failures(planted, tmp_path):
    out = tmp_path / "r.html"
    r = run(planted, out, "--no-dupes", "--no-pixels", "-k", "20", "--json", "-j", "1")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["anchors"] is None and "cannot make 20 anchors" in s["notes"]["anchors"]
    page = out.read_text()
    assert "cannot make 20 anchors" in page and "not searched (--no-dupes)" in page


# ------------------------------------------------------------------------------------------------ the browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs "
                                                              "it with apt-get when it can): no browser check")


def browse(page: Path, *extra: str) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium: the DOM after the scripts ran, and the console messages it logged."""
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--enable-logging=stderr",
           "--v=0", *extra, page.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return res.stdout, [ln for ln in res.stderr.splitlines() if ":CONSOLE" in ln]


@needs_chromium
def test_page_in_headless_chromium(planted, tmp_path):
    bad = tmp_path / "bad.html"  # the console check itself must be able to fail
    bad.write_text("<html><body><script>console.error('x'); notDefined();</script></body></html>")
    assert len(browse(bad, "--dump-dom")[1]) == 2

    out = tmp_path / "r.html"
    assert run(planted, out, "-k", "2", "-j", "1").exit_code == 0
    dom, console = browse(out, "--dump-dom")
    assert console == []
    rendered = re.search(r'data-rendered="([^"]*)"', dom)
    assert rendered and rendered.group(1).split() == SECTION_IDS  # every section laid out, with its heading
    shot = tmp_path / "shot.png"
    _, console = browse(out, f"--screenshot={shot}", "--window-size=1200,4000")
    assert console == []
    im = np.asarray(Image.open(shot).convert("RGB"))
    assert im.shape == (4000, 1200, 3) and im.std() > 20  # a page, not a blank


# ------------------------------------------------------------------------------------------------ real-world data

@pytest.mark.realworld
@pytest.mark.parametrize("name, args, images, codes", [
    ("bccd", [], 364, {"zero-area": 2}),
    ("raccoon/annotations", ["--images", "{root}/raccoon/images"], 200, {}),
    ("datumaro_voc/voc_dataset1", ["-k", "2"], 1, {}),
    ("datumaro_voc/voc_dataset2", [], 5, {}),  # no <size>, no images: the page says so
])
def test_realworld_pages(realworld, tmp_path, name, args, images, codes):
    out = tmp_path / "r.html"
    r = run(realworld / name, out, "--json", *[a.format(root=realworld) for a in args])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["images"] == images
    for code, n in codes.items():
        assert s["findings_by_code"][code] == n
    page = out.read_text(encoding="utf-8")
    assert all(f'<section id="{sid}" data-section>' in page for sid in SECTION_IDS)
    if name.endswith("voc_dataset2"):
        assert s["pixels"] is None and "no image files were found" in page
    if CHROMIUM and name == "bccd":
        dom, console = browse(out, "--dump-dom")
        assert console == [] and re.search(r'data-rendered="([^"]*)"', dom).group(1).split() == SECTION_IDS


@pytest.mark.parametrize("fmt", ["voc", "yolo"])
def test_report_opens_each_image_header_once(planted, tmp_path, header_opens, fmt):
    """The report reads SRC (the reader takes each size from the image header) and then runs check's header checks
    (EXIF, unreadable images) on the same dataset: with the headers kept between the two, each image is opened once.
    Counted by the header_opens fixture."""
    src = planted
    if fmt != "voc":
        src = tmp_path / fmt
        assert CliRunner().invoke(cli, ["convert", "--to", fmt, str(planted), str(src), "--images-mode", "copy"]
                                  ).exit_code == 0
    header_opens.clear()
    r = run(src, tmp_path / "r.html", "--json", "--no-dupes", "--no-pixels", "-k", "2", "-j", "1")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["images"] == 5
    assert header_opens == {f"{k}.jpg": 1 for k in "abcde"}, header_opens


def test_every_progress_stage_ends_at_its_total(planted):
    """Each stage's bar is told a total and advanced to it: the thumbnails' total counted jobs while the drawing
    advanced once per picture (an image drawn for two sections is drawn once), so the bar stopped short."""
    from collections import defaultdict

    from datatools.report.build import build_report

    totals: dict[str, int] = {}
    done: dict[str, int] = defaultdict(int)

    def update(stage, advance, total):
        if total is not None:
            totals[stage] = total
        done[stage] += advance

    build_report(planted, workers=1, update=update, per_class=8)
    assert "thumbs" in totals and totals == {s: done[s] for s in totals}, (totals, dict(done))


def test_the_finding_thumbnails_count_against_the_budget(tmp_path):
    # only the gallery was cut to the budget: with large thumbnails of many findings a 1 MB page came out 3.45 MB
    from PIL import Image

    from tests.conftest import make_voc_root, voc_xml

    boxes = [{"name": "a", "box": (-5, 10, 100, 100)}, {"name": "b", "box": (50, 50, 50, 90)},  # outside, no area
             {"name": "c", "box": (90, 90, 20, 20)}, {"name": "d", "box": (5, 5, 60, 60)},  # inverted, twice:
             {"name": "d", "box": (5, 5, 60, 60)}]
    items = {f"n{k}": voc_xml(f"n{k}.jpg", (960, 720), boxes) for k in range(12)}
    src = make_voc_root(tmp_path / "v", items)
    (src / "JPEGImages").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(12):  # noise: JPEG cannot make it small
        Image.fromarray(rng.integers(0, 256, (720, 960, 3), dtype=np.uint8)).save(src / "JPEGImages" / f"n{k}.jpg",
                                                                                   quality=95)
    r = run(src, tmp_path / "r.html", "--json", "--no-dupes", "--no-pixels", "--thumb-size", "640", "--max-mb", "1")
    assert r.exit_code == 0, r.output
    size = (tmp_path / "r.html").stat().st_size
    assert json.loads(r.output)["bytes"] == size and size <= 1_000_000, size
    assert 'src="data:image/jpeg' in (tmp_path / "r.html").read_text()  # the examples that fit are there


def test_the_middle_tick_of_a_bar_chart_sits_on_its_bar():
    # objects per image 1..6: the tick "3" stood on the border between the bars of 3 and 4
    from datatools.report.svg import counts_bars

    def ticks(d):
        return re.findall(r'class="pl">([^<]*)</text>', counts_bars(d, title="t", xlabel="x"))[2:-1]

    assert ticks(dict.fromkeys(range(1, 7), 9)) == ["1", "6"]
    assert ticks(dict.fromkeys(range(1, 6), 9)) == ["1", "3", "5"]  # 5 bars: the third one's centre is the middle
