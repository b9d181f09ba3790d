#!/usr/bin/env python3
"""Conversion speed: datatools voc2yolo/voc2coco against the floor and against globox and datumaro, in one run.

    .venv/bin/python benchmarks/bench_convert.py [--n 17125] [--peers /tmp/peers] [--rounds 3]

The data is ../shared/bench/gen_voc.py's VOC2012-sized set (17,125 XMLs, no images; --images-mode none). Every tool
runs as a subprocess, so interpreter start-up counts for all of them. Rounds interleave the tools and the best time
of each is kept, so a busy neighbour on the machine skews every tool alike. Peak memory is the largest resident size
of any single process of the command (ru_maxrss of its waited-for descendants).

Peers come from a separate venv (../shared/bench/peers_venv.sh DIR); pass it with --peers, or they are skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared"
BIN = Path(sys.executable).parent

FLOOR = r'''
import os, sys
from lxml import etree
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
parser = etree.XMLParser(resolve_entities=False, no_network=True)
for name in sorted(os.listdir(src)):
    with open(os.path.join(src, name), "rb") as f:
        etree.fromstring(f.read(), parser)
    with open(os.path.join(out, name[:-4] + ".txt"), "w") as f:
        f.write("0 0.5 0.5 0.25 0.25\n")
'''

TIMED = r'''
import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
dt = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{dt} {rss} {r.returncode}")
if r.returncode:
    sys.stderr.write(r.stderr.decode(errors="replace")[-2000:])
'''


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """(seconds, peak MB of the largest process, exit code)."""
    out = subprocess.run([sys.executable, "-c", TIMED, *cmd], capture_output=True, text=True)
    dt, rss, rc = out.stdout.split()
    if int(rc):
        print(f"  ! {' '.join(cmd[:4])}... exited {rc}: {out.stderr.strip()[-300:]}", file=sys.stderr)
    return float(dt), int(rss) / 1024, int(rc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=17125, help="number of XML files (17125 = VOC2012)")
    ap.add_argument("--data", default=None, help="existing VOC root to use instead of generating one")
    ap.add_argument("--peers", default="/tmp/peers", help="venv with globox and datumaro (peers_venv.sh)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best time of each tool is kept")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=EXE",
                    help="also time voc2yolo of another datatools executable (e.g. before=/tmp/bv/bin/datatools), "
                         "interleaved with the rest: before/after figures from one run")
    ap.add_argument("--work", default=None,
                    help="folder for generated data and outputs (e.g. /dev/shm: tmpfs removes disk-metadata noise, "
                         "which on a shared virtual disk swings file-creation cost several-fold for every tool)")
    args = ap.parse_args()

    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_convert_", dir=args.work))
    src = Path(args.data) if args.data else work / "voc"
    if not args.data:
        subprocess.run([sys.executable, str(SHARED / "bench" / "gen_voc.py"), str(src), str(args.n)], check=True)
    n = len(os.listdir(src / "Annotations"))
    dt = str(BIN / "datatools")
    peers = Path(args.peers)
    tools: dict[str, list[str]] = {
        "floor (parse + write, 1 process)": [sys.executable, "-c", FLOOR, str(src / "Annotations"), "{out}"],
        "datatools voc2yolo": [dt, "voc2yolo", str(src), "{out}", "--images-mode", "none"],
        "datatools voc2yolo -j 1": [dt, "voc2yolo", str(src), "{out}", "--images-mode", "none", "-j", "1"],
        "datatools voc2coco": [dt, "voc2coco", str(src), "{out}/coco.json"],
    }
    for spec in args.compare:
        label, _, exe = spec.partition("=")
        tools[f"{label}: voc2yolo"] = [exe, "voc2yolo", str(src), "{out}", "--images-mode", "none"]
    if (peers / "bin" / "globox").exists():
        tools["globox pascalvoc->yolov5"] = [str(peers / "bin" / "globox"), "convert", "-f", "pascalvoc", "-F", "yolov5",
                                            str(src / "Annotations"), "{out}"]
    if (peers / "bin" / "datum").exists():
        tools["datumaro voc_detection->yolo"] = [str(peers / "bin" / "datum"), "convert", "-if", "voc_detection", "-i",
                                                 str(src), "-f", "yolo", "-o", "{out}", "--overwrite"]
    best: dict[str, tuple[float, float]] = {}
    for r in range(args.rounds):
        order = list(tools) if r % 2 == 0 else list(reversed(tools))
        for name in order:
            out = work / f"out_{abs(hash(name))}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [c.replace("{out}", str(out)) for c in tools[name]]
            secs, mb, rc = timed(cmd)
            if rc == 0 and (name not in best or secs < best[name][0]):
                best[name] = (secs, max(mb, best.get(name, (0, 0))[1]))
            shutil.rmtree(out, ignore_errors=True)
    helps = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([dt, "--help"], stdout=subprocess.DEVNULL, check=True)
        helps.append(time.perf_counter() - t)
    torch_free = subprocess.run([sys.executable, "-c", "import sys, datatools.cli; print('torch' in sys.modules)"],
                                capture_output=True, text=True).stdout.strip() == "False"

    floor = best["floor (parse + write, 1 process)"][0]
    peer_times = [v[0] for k, v in best.items() if k.startswith(("globox", "datumaro"))]
    fastest_peer = min(peer_times) if peer_times else None
    ours = best["datatools voc2yolo"][0]
    lines = [f"### bench_convert: {n:,} VOC XMLs ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
             f"{os.cpu_count()} cores, Python {platform.python_version()}, data and outputs in {work.parent})", "",
             "| tool | best of %d (s) | x floor | peer / this | peak MB |" % args.rounds, "|---|---:|---:|---:|---:|"]
    for name, (secs, mb) in best.items():
        vs_peer = f"{fastest_peer / secs:.1f}x" if fastest_peer and not name.startswith(("globox", "datumaro")) else ""
        lines.append(f"| {name} | {secs:.2f} | {secs / floor:.2f} | {vs_peer} | {mb:.0f} |")
    lines += ["", f"- voc2yolo / floor = {ours / floor:.2f} (target <= 2.0, issue 15)"]
    if fastest_peer:
        lines.append(f"- fastest peer / voc2yolo = {fastest_peer / ours:.1f}x (target >= 2.5, issue 15)")
    lines.append(f"- voc2yolo peak memory = {best['datatools voc2yolo'][1]:.0f} MB (target < 200)")
    lines.append(f"- `datatools --help`: best {min(helps) * 1000:.0f} ms, median {sorted(helps)[2] * 1000:.0f} ms "
                 f"(target < 200 ms); imports torch: {not torch_free}")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps({"n": n, "best": best, "help_s": helps}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
