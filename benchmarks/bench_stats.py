"""Benchmark ``datatools stats``: exact mean/std against the decode floor and the usual DataLoader script, and
``--labels-only`` against the XML parse floor. Everything is measured side by side in one run.

usage: .venv/bin/python benchmarks/bench_stats.py [--data DIR] [--repeat N] [--micro ROUNDS]

Data (made once, reused): DIR/jpeg2000 = ``gen_voc.py OUT 2000 2000`` (2,000 JPEGs, mostly 500x375) and
DIR/xml17125 = ``gen_voc.py OUT 17125`` (VOC2012-sized annotation set).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT.parent / "shared" / "bench" / "gen_voc.py"
CLI = [sys.executable, "-m", "datatools"]


def ensure(path: Path, n_xml: int, n_jpeg: int) -> Path:
    if not (path / "Annotations").is_dir() or len(os.listdir(path / "Annotations")) != n_xml:
        print(f"generating {path} ({n_xml} XML, {n_jpeg} JPEG) ...", flush=True)
        subprocess.run([sys.executable, str(GEN), str(path), str(n_xml), str(n_jpeg)], check=True)
    return path


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


# ------------------------------------------------------------------ floors (what no tool can beat)

def _decode(paths: list[str]) -> int:
    from PIL import Image

    n = 0
    for p in paths:
        with Image.open(p) as im:
            im.load()
            n += 1
    return n


def _parse(paths: list[str]) -> int:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            etree.fromstring(f.read(), parser)
        n += 1
    return n


def pool_floor(fn, paths: list[str], workers: int) -> int:
    """``fn`` over all paths on all cores, in chunks: the cheapest way to spread the work."""
    step = max(1, len(paths) // (workers * 8))
    chunks = [paths[i:i + step] for i in range(0, len(paths), step)]
    with ProcessPoolExecutor(workers) as pool:
        return sum(pool.map(fn, chunks))


# ------------------------------------------------------------------ the usual user's script

def naive_script(paths: list[str], workers: int) -> tuple[np.ndarray, np.ndarray]:
    """DataLoader + ToTensor, then per-image mean/std averaged over images (what most tutorials do)."""
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    class Images(Dataset):
        def __init__(self, files):
            self.files = files
            self.tf = transforms.ToTensor()

        def __len__(self):
            return len(self.files)

        def __getitem__(self, i):
            return self.tf(Image.open(self.files[i]).convert("RGB"))

    means, stds = [], []
    for x in DataLoader(Images(paths), batch_size=1, num_workers=workers):
        means.append(x.mean(dim=(0, 2, 3)))
        stds.append(x.std(dim=(0, 2, 3)))
    return torch.stack(means).mean(0).numpy(), torch.stack(stds).mean(0).numpy()


def run_cli(args: list[str]) -> dict:
    res = subprocess.run(CLI + args + ["--json"], capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"datatools {' '.join(args)} failed:\n{res.stderr}")
    return json.loads(res.stdout)


PARSE_CLI = r"""
import os, sys
from concurrent.futures import ProcessPoolExecutor
from lxml import etree

def parse(paths):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for p in paths:
        with open(p, "rb") as f:
            etree.fromstring(f.read(), parser)
    return len(paths)

if __name__ == "__main__":
    folder, workers = sys.argv[1], int(sys.argv[2])
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder))
    step = max(1, len(paths) // (workers * 8))
    with ProcessPoolExecutor(workers) as pool:
        print(sum(pool.map(parse, [paths[i:i + step] for i in range(0, len(paths), step)])))
"""


def parse_floor_cli(folder: Path, workers: int) -> None:
    """The parse floor as a command of its own (interpreter start, lxml import, a process pool, read + parse every
    file): what any CLI pays before doing anything with the labels, to set beside datatools' CLI end to end."""
    script = Path(tempfile.gettempdir()) / "datatools_parse_floor.py"
    script.write_text(PARSE_CLI)
    subprocess.run([sys.executable, str(script), str(folder), str(workers)], check=True, capture_output=True)


def micro(paths: list[str], xmls: list[str], rounds: int) -> None:
    """In one process, away from the pool: per-image cost of counting pixels (PIL's histogram(), as
    ``ops.stats.add_image_histogram`` runs it) beside a plain decode, and per-file cost of the VOC reader
    (``formats.voc_xml.parse_xml``) beside lxml's parse alone."""
    import statistics

    from lxml import etree
    from PIL import Image

    from datatools.formats.voc_xml import parse_xml
    from datatools.ops.stats import add_image_histogram

    images = paths[:60]
    total = np.zeros((3, 256), dtype=np.int64)

    def decode():
        for p in images:
            with Image.open(p) as im:
                im.load()

    def ours():
        for p in images:
            add_image_histogram(p, None, total)

    order = [("decode", decode), ("ours", ours)]
    t: dict[str, list[float]] = {name: [] for name, _ in order}
    for k in range(rounds):
        for name, fn in (order if k % 2 == 0 else order[::-1]):
            s = time.perf_counter()
            fn()
            t[name].append(time.perf_counter() - s)
    ratios = [a / b for a, b in zip(t["decode"], t["ours"])]
    print(f"- decode + PIL histogram(): **{statistics.median(ratios):.1%}** of decode speed (median of {rounds} "
          f"paired rounds, {len(images)} JPEGs)")

    datas = [Path(p).read_bytes() for p in xmls[:4000]]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    readers = [("lxml parse alone", lambda d: etree.fromstring(d, parser)),
               ("formats.voc_xml.parse_xml (safe parse + records + findings)",
                lambda d: parse_xml(d, path="a.xml", image_id="a"))]
    for name, fn in readers:
        best_t = min(timeit_once(fn, datas) for _ in range(7))
        print(f"- {name}: {best_t / len(datas) * 1e6:.1f} us per file (best of 7 over {len(datas):,} files)")


def timeit_once(fn, datas) -> float:
    s = time.perf_counter()
    for d in datas:
        fn(d)
    return time.perf_counter() - s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/tmp/datatools_bench_stats"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--micro", type=int, metavar="ROUNDS", default=0,
                    help="only the in-process measurements (pixel counting, XML reading), over ROUNDS paired rounds")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from datatools.ops.stats import pixel_stats

    # An installed package has its bytecode compiled (pip does it); an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (as on these machines) would recompile datatools on every CLI start, about 80 ms
    # that no user pays. The parse-floor script is compiled on each run too, but it is a few lines.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "datatools")], check=True,
                   capture_output=True)
    jpeg = ensure(args.data / "jpeg2000", 2000, 2000)
    xml = ensure(args.data / "xml17125", 17125, 0)
    workers = os.cpu_count() or 1
    paths = sorted(str(p) for p in (jpeg / "JPEGImages").glob("*.jpg"))
    xmls = sorted(str(p) for p in (xml / "Annotations").glob("*.xml"))
    n_img, n_xml = len(paths), len(xmls)
    if args.micro:
        micro(paths, xmls, args.micro)
        return
    r = args.repeat
    print(f"{n_img} JPEGs, {n_xml} XMLs, {workers} cores, best of {r}", flush=True)

    # Interleaved repeats (floor, then ours, each round): the machine may be shared, so a slow moment hits both.
    times: dict[str, list[float]] = {}

    def timed(key, fn):
        t = time.perf_counter()
        res = fn()
        times.setdefault(key, []).append(time.perf_counter() - t)
        return res

    from datatools import formats
    from datatools.ops.stats import label_stats

    res: dict[str, object] = {}

    def decode_floor():
        timed("decode", lambda: pool_floor(_decode, paths, workers))

    def pixel_pass():
        res["px"] = timed("lib", lambda: pixel_stats(paths, workers=workers))

    def parse_floor():
        timed("parse_cli", lambda: parse_floor_cli(xml / "Annotations", workers))

    def labels_only():
        res["lab"] = timed("labels", lambda: run_cli(["stats", str(xml), "--labels-only", "-j", str(workers)]))

    for k in range(r):
        # Each contender runs right beside its floor, in alternating order (ABBA), so that drift in the VM's speed
        # hits both; the paired ratios below come from these pairs.
        for first, second in ((decode_floor, pixel_pass), (parse_floor, labels_only)):
            if k % 2:
                first, second = second, first
            first()
            second()
        out = timed("cli", lambda: run_cli(["stats", str(jpeg), "-j", str(workers)]))
        timed("parse", lambda: pool_floor(_parse, xmls, workers))
        ds = timed("read", lambda: formats.get("voc").read(xml, workers=workers))
        timed("label_stats", lambda: label_stats(ds))
    px, lab = res["px"], res["lab"]
    t_decode, t_lib, t_cli, t_parse, t_labels = (min(times[k]) for k in ("decode", "lib", "cli", "parse", "labels"))
    t_read, t_ls, t_parse_cli = min(times["read"]), min(times["label_stats"]), min(times["parse_cli"])
    t_naive, (n_mean, n_std) = best(lambda: naive_script(paths, workers), 1)
    assert out["pixels"]["mean"] == list(px.mean) and out["pixels"]["std"] == list(px.std)
    assert lab["labels"]["images"] == n_xml

    exact_std = np.array(px.std)
    pixel_pairs = sorted(a / b for a, b in zip(times["decode"], times["lib"]))
    label_pairs = sorted(b / a for a, b in zip(times["parse_cli"], times["labels"]))
    rows = [
        ("PIL decode only, all cores (floor)", t_decode, n_img),
        ("datatools pixel pass (library, exact)", t_lib, n_img),
        ("datatools stats (CLI end to end: start, read XML, pixels)", t_cli, n_img),
        ("DataLoader + ToTensor, per-image mean/std (naive)", t_naive, n_img),
        ("lxml parse only, all cores (floor)", t_parse, n_xml),
        ("lxml parse only, all cores, as a command (floor incl. start-up)", t_parse_cli, n_xml),
        ("datatools stats --labels-only (CLI end to end)", t_labels, n_xml),
        ("  of which formats.voc.read (in process)", t_read, n_xml),
        ("  of which ops.stats.label_stats (in process)", t_ls, n_xml),
    ]
    lines = ["| what | files | seconds | files/s |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {n:,} | {t:.2f} | {n / t:,.0f} |" for name, t, n in rows]
    lines += [
        "",
        f"- pixel pass / decode floor: **{t_decode / t_lib:.0%}** of floor speed (library), "
        f"{t_decode / t_cli:.0%} end to end (CLI, includes interpreter start and reading {n_img:,} XMLs); target >= 80%",
        f"  - paired, round by round ({r} rounds): median **{np.median(pixel_pairs):.0%}**, "
        f"range {pixel_pairs[0]:.0%}-{pixel_pairs[-1]:.0%}",
        f"- datatools stats vs naive script: **{t_naive / t_cli:.1f}x** faster (CLI end to end)",
        f"- `--labels-only` / XML parse floor as a command (both start an interpreter): **{t_labels / t_parse_cli:.2f}x**; "
        f"target <= 1.5x",
        f"  - paired, round by round ({r} rounds): median **{np.median(label_pairs):.2f}x**, "
        f"range {label_pairs[0]:.2f}x-{label_pairs[-1]:.2f}x",
        f"- in process: `voc.read` + `label_stats` / in-process parse floor: "
        f"**{(t_read + t_ls) / t_parse:.2f}x** (the reader alone {t_read / t_parse:.2f}x; label statistics add {t_ls:.2f} s); "
        f"the CLI against the in-process floor: {t_labels / t_parse:.2f}x",
        f"- exact mean {['%.6f' % v for v in px.mean]} std {['%.6f' % v for v in px.std]}; the naive script's "
        f"averaged per-image std is off by up to {np.abs(n_std - exact_std).max():.4f} "
        f"(mean off by {np.abs(n_mean - np.array(px.mean)).max():.1e})",
        f"- {workers} cores, {time.strftime('%Y-%m-%d')}; datatools' result is identical in the library and the CLI",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
