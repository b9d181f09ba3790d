"""Benchmark ``datatools dupes``: the pair search against a naive all-pairs comparison, the hashing pass against a
full decode, and the planted copies it finds, measured side by side in one run.

usage: .venv/bin/python benchmarks/bench_dupes.py [--data DIR] [--n 20000] [--planted 100] [--search-n 100000]

Data (made once, reused): DIR/jpeg<N> = ``gen_voc.py OUT N N`` (N JPEGs, mostly 500x375), and DIR/dupes<N>: the same
files hard-linked, plus ``--planted`` originals with one copy of each kind (the same file, a PNG of the same pixels,
re-encoded at quality 60, resized to half, mirrored, 5% of the width and height cropped away at a random place).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT.parent / "shared" / "bench" / "gen_voc.py"
KINDS = ("file", "pixels", "reencoded", "resized", "mirrored", "cropped")


def ensure(path: Path, n: int) -> Path:
    if not (path / "JPEGImages").is_dir() or len(os.listdir(path / "JPEGImages")) != n:
        print(f"generating {path} ({n} XML and JPEG) ...", flush=True)
        subprocess.run([sys.executable, str(GEN), str(path), str(n), str(n)], check=True)
    return path


def plant(src: Path, out: Path, planted: int) -> dict[str, str]:
    """OUT = SRC hard-linked, plus one copy of each kind of the first ``planted`` images; {copy id: original id}."""
    from PIL import Image, ImageOps

    names = sorted(p.stem for p in (src / "JPEGImages").glob("*.jpg"))
    originals = names[:: max(1, len(names) // planted)][:planted]
    marker = out / "planted.json"
    if marker.exists():
        return json.loads(marker.read_text())
    if out.exists():
        shutil.rmtree(out)
    for sub in ("Annotations", "JPEGImages"):
        (out / sub).mkdir(parents=True)
        for f in (src / sub).iterdir():
            os.link(f, out / sub / f.name)
    copies: dict[str, str] = {}
    rng = random.Random(7)
    for orig in originals:
        im = Image.open(src / "JPEGImages" / f"{orig}.jpg").convert("RGB")
        w, h = im.size
        dx, dy = round(w * 0.05), round(h * 0.05)
        ox, oy = rng.randint(0, dx), rng.randint(0, dy)  # 5% of each side cut away, at a random place
        xml = (src / "Annotations" / f"{orig}.xml").read_text()
        for kind in KINDS:
            cid = f"{orig}_{kind}"
            dst = out / "JPEGImages" / f"{cid}.{'png' if kind == 'pixels' else 'jpg'}"
            if kind == "file":
                shutil.copyfile(src / "JPEGImages" / f"{orig}.jpg", dst)
            elif kind == "pixels":
                im.save(dst)
            elif kind == "reencoded":
                im.save(dst, quality=60)
            elif kind == "resized":
                im.resize((w // 2, h // 2), Image.Resampling.BILINEAR).save(dst, quality=90)
            elif kind == "mirrored":
                ImageOps.mirror(im).save(dst, quality=90)
            else:
                im.crop((ox, oy, w - dx + ox, h - dy + oy)).save(dst, quality=90)
            (out / "Annotations" / f"{cid}.xml").write_text(xml.replace(f"{orig}.jpg", dst.name))
            copies[cid] = orig
    marker.write_text(json.dumps(copies))
    return copies


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _decode_chunk(paths):
    from PIL import Image

    for p in paths:
        with Image.open(p) as im:
            im.load()
    return len(paths)


def all_pairs(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The naive search: every pair compared, row by row in numpy (what the bands are measured against)."""
    from datatools.ops.dupes_hash import hamming

    out_i, out_j = [], []
    for i in range(len(hashes) - 1):
        js = np.flatnonzero(hamming(hashes[i], hashes[i + 1:]) <= threshold) + i + 1
        out_i.append(np.full(len(js), i, dtype=np.int64))
        out_j.append(js)
    i, j = np.concatenate(out_i), np.concatenate(out_j)
    return i, j, hamming(hashes[i], hashes[j])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/tmp/dtbench")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--planted", type=int, default=100)
    ap.add_argument("--search-n", type=int, default=100000, help="hashes for the search-only rows (0: skip)")
    ap.add_argument("--decode-n", type=int, default=4000, help="images for the full-decode floor row")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from datatools import load
    from datatools.core.parallel import Mapper, default_workers
    from datatools.ops.dupes_hash import CROPS, close_pairs, signature_chunk

    data = Path(args.data)
    src = ensure(data / f"jpeg{args.n}", args.n)
    root = data / f"dupes{args.n}"
    copies = plant(src, root, args.planted)
    n_images = args.n + len(copies)
    rows: list[tuple[str, int, float, str]] = []
    print(f"{n_images:,} images ({len(copies)} planted copies), {default_workers()} cores", flush=True)

    # 1. The command, end to end (a fresh process: reading the XML, hashing, the search, clusters).
    cmd = [sys.executable, "-m", "datatools", "dupes", str(root), "--json"]
    t_cli, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, check=True))
    report = json.loads(proc.stdout)
    where = {m["image_id"]: k for k, c in enumerate(report["clusters"]) for m in c["members"]}
    found = sum(1 for cid, orig in copies.items() if cid in where and where.get(orig) == where[cid])
    planted_groups = {where[o] for o in copies.values() if o in where}
    false_images = sum(len(c["members"]) for k, c in enumerate(report["clusters"]) if k not in planted_groups)
    rows.append(("CLI `dupes --json`, end to end", n_images, t_cli,
                 f"found {found}/{len(copies)} planted copies; {false_images} other images in clusters"))

    # 2. The hashing pass alone (the parallel map), and against a full decode of the same images (best of 2,
    # interleaved, so both meet the same page cache and load).
    ds = load("voc", str(root))
    paths = sorted(r.image_path for r in ds.images if r.image_path)
    mapper = Mapper()
    t_sig, sigs = timed(lambda: [s for part in mapper(signature_chunk, mapper.chunks(paths)) for s in part])
    n_hashes = 2 * (2 + len(CROPS))  # pHash and dHash of the image, of it mirrored and of each crop view
    rows.append((f"hashing pass, every image (draft decode, {n_hashes} hashes, file digest)", len(paths), t_sig, ""))
    sub = paths[: args.decode_n]
    t_h, t_dec = [], []
    for _ in range(2):
        t_h.append(timed(lambda: sum(len(x) for x in mapper(signature_chunk, mapper.chunks(sub))))[0])
        t_dec.append(timed(lambda: sum(mapper(_decode_chunk, mapper.chunks(sub))))[0])
    rows.append(("hashing pass, the first JPEGs", len(sub), min(t_h), ""))
    rows.append(("floor: full decode (Image.load), same images and pool", len(sub), min(t_dec),
                 f"hashing takes {min(t_h) / min(t_dec):.2f}x the full decode's time"))

    # 3. The pair search on these hashes (threshold 10): multi-index bands against every pair.
    h = np.array([s.phash for s in sigs if not s.error], dtype=np.uint64)
    h = np.unique(h)
    t_band, (bi, bj, _) = timed(lambda: close_pairs(h, 10))
    t_naive, (ni, nj, _) = timed(lambda: all_pairs(h, 10))
    same = set(zip(bi.tolist(), bj.tolist())) == set(zip(ni.tolist(), nj.tolist()))
    rows.append(("search: bands (close_pairs), T=10", len(h), t_band, f"{len(bi)} pairs; identical to all pairs: "
                                                                       f"{same}"))
    rows.append(("search: naive all pairs (numpy, row by row), T=10", len(h), t_naive,
                 f"bands take {t_band / t_naive:.2f}x its time"))

    # 4. The search alone at a larger n: these hashes plus random ones (32 of 64 bits set, as real ones).
    if args.search_n > len(h):
        rng = np.random.default_rng(0)
        bits = np.argsort(rng.random((args.search_n - len(h), 64)), axis=1)[:, :32]
        extra = np.bitwise_or.reduce(np.uint64(1) << bits.astype(np.uint64), axis=1)
        big = np.unique(np.concatenate([h, extra]))
        t_band, (bi, _, _) = timed(lambda: close_pairs(big, 10))
        t_naive, (ni, _, _) = timed(lambda: all_pairs(big, 10))
        rows.append(("search: bands, T=10", len(big), t_band, f"{len(bi)} pairs (all pairs: {len(ni)})"))
        rows.append(("search: naive all pairs, T=10", len(big), t_naive,
                     f"bands take {t_band / t_naive:.2f}x its time"))

    print("\n| what | images | seconds | images/s | notes |\n|---|---:|---:|---:|---|")
    for what, n, sec, note in rows:
        print(f"| {what} | {n:,} | {sec:.2f} | {n / sec:,.0f} | {note} |")


if __name__ == "__main__":
    main()
