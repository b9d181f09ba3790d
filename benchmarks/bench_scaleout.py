"""Benchmark ``--engine ray`` against ``--engine local`` for ``stats`` (exact pixel histograms), side by side in one run.

usage: .venv/bin/python benchmarks/bench_scaleout.py [--data DIR] [--n 20000] [--per-worker-n 4000] [--rounds 2]
       [--no-cli]

Data (made once, reused): DIR = ``gen_voc.py DIR 20000 20000`` (20,000 XMLs and JPEGs of about 500x375), default
/tmp/dtbench/jpeg20000.

What is measured, all in this process unless said otherwise:

* the pixel pass of ``stats`` (``pixel_stats``) on all N images: local processes (``core.parallel``, all cores) and
  Ray tasks over the same chunks on a local Ray with the same CPUs, after a warm-up task so that Ray's start-up (``ray.init``,
  worker processes, imports) is paid once and reported on its own row;
* the annotation read (``voc.read`` with a local and a Ray ``core.parallel.Mapper``);
* per-worker throughput: 1 and 2 CPUs for each engine on ``--per-worker-n`` images;
* the CLI end to end (``datatools stats SRC --json``), each engine in a fresh process: start-up included, not amortized.

Wall time on a shared 2-core machine moves with what else runs, so each run also reports its CPU seconds (this
process, its process pools and Ray's processes): CPU per image is the engine's cost whatever the load, and Ray's
overhead (scheduling, serialization, its daemons) shows there directly.

Every Ray result is checked to be identical to the local one (the same histogram, so the same mean/std bits).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GEN = ROOT.parent / "shared" / "bench" / "gen_voc.py"


def ensure(path: Path, n: int) -> Path:
    jpg = path / "JPEGImages"
    if not jpg.is_dir() or len(os.listdir(jpg)) < n:
        print(f"generating {path} ({n} XML + JPEG) ...", flush=True)
        subprocess.run([sys.executable, str(GEN), str(path), str(n), str(n)], check=True)
    return path


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process, its reaped children (the local process pools) and its live
    descendants (Ray's GCS, raylet and workers): what a run costs, whatever else the machine is doing."""
    import resource

    import psutil  # a Ray dependency

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def timed_cpu(fn):
    c = tree_cpu()
    t, out = timed(fn)
    return t, tree_cpu() - c, out


_CLUSTER = {"cpus": 0, "startup": []}


def use_ray(cpus: int | None, warm: list[str]) -> None:
    """A local Ray with ``cpus`` CPUs, started (and warmed up with one small task) when not already up with that
    many; ``None`` shuts Ray down, so that local runs do not share the CPUs with an idle cluster."""
    import ray

    from datatools.ops.stats import pixel_stats

    if cpus == _CLUSTER["cpus"] and (cpus is None or ray.is_initialized()):
        return
    if ray.is_initialized():
        ray.shutdown()
    _CLUSTER["cpus"] = cpus
    if cpus is None:
        return
    t = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="warning", log_to_driver=False)
    pixel_stats(warm, engine="ray")
    _CLUSTER["startup"].append(time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("/tmp/dtbench/jpeg20000"))
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--per-worker-n", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best time of each is kept")
    ap.add_argument("--no-cli", action="store_true", help="skip the end-to-end CLI rows")
    args = ap.parse_args()
    src = ensure(args.data, args.n)

    import numpy as np
    from datatools.core.images import list_images
    from datatools.core.parallel import Mapper
    from datatools.formats import voc
    from datatools.ops.stats import pixel_stats

    cores = os.cpu_count() or 1
    paths = sorted(list_images(src / "JPEGImages").values())[:args.n]
    sub = paths[:args.per_worker_n]
    warm = paths[-32:]
    print(f"{len(paths):,} JPEGs, {cores} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    best: dict[tuple, float] = {}
    cpu: dict[tuple, float] = {}
    results: dict[tuple, object] = {}

    def run(key: tuple, fn) -> None:
        t, c, out = timed_cpu(fn)
        best[key] = min(best.get(key, float("inf")), t)
        cpu[key] = min(cpu.get(key, float("inf")), c)
        results[key] = out
        print(f"  {key}: {t:.2f} s wall, {c:.2f} s CPU, load {os.getloadavg()[0]:.1f}", flush=True)

    # Interleaved: local and Ray alternate inside every round, so drifting load (a shared machine) hits both.
    for _ in range(args.rounds):
        use_ray(None, warm)
        run(("local", cores, "pixels"), lambda: pixel_stats(paths, workers=cores))
        run(("local", cores, "read"), lambda: voc.read(src, workers=cores))
        use_ray(cores, warm)
        run(("ray", cores, "pixels"), lambda: pixel_stats(paths, engine="ray"))
        run(("ray", cores, "read"), lambda: voc.read(src, mapper=Mapper("ray")))
    for _ in range(args.rounds):
        for cpus in (1, 2):
            use_ray(None, warm)
            run(("local", cpus, "sub"), lambda: pixel_stats(sub, workers=cpus))
            use_ray(cpus, warm)
            run(("ray", cpus, "sub"), lambda: pixel_stats(sub, engine="ray"))
    use_ray(None, warm)
    checks = [np.array_equal(results[("ray", cores, "pixels")].histogram, results[("local", cores, "pixels")].histogram),
              results[("ray", cores, "pixels")].mean == results[("local", cores, "pixels")].mean
              and results[("ray", cores, "pixels")].std == results[("local", cores, "pixels")].std,
              results[("ray", cores, "read")] == results[("local", cores, "read")]]
    checks += [np.array_equal(results[(e, c, "sub")].histogram, results[("local", 1, "sub")].histogram)
               for e in ("local", "ray") for c in (1, 2)]

    cli = []
    if not args.no_cli:
        for engine in ("local", "ray"):
            cmd = [sys.executable, "-m", "datatools", "stats", str(src), "--json", "--engine", engine]
            t, res = timed(lambda: subprocess.run(cmd, capture_output=True, text=True, check=True))
            cli.append((engine, t, json.loads(res.stdout)["pixels"]))
        checks.append(cli[0][2] == cli[1][2])

    n, m = len(paths), len(sub)
    print()
    print(f"best of {args.rounds} interleaved rounds, {cores} CPUs for each engine")
    print()
    print("| what | images | seconds | images/s | Ray / local time | CPU ms/image | Ray / local CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    n_xml = len(results[("local", cores, "read")].images)
    for what, label in (("pixels", "pixel pass (exact histograms)"), ("read", "read VOC XML")):
        tl, tr = best[("local", cores, what)], best[("ray", cores, what)]
        n = len(paths) if what == "pixels" else n_xml
        cl, cr = cpu[("local", cores, what)], cpu[("ray", cores, what)]
        print(f"| local processes, {label} | {n:,} | {tl:.2f} | {n / tl:,.0f} | | {1000 * cl / n:.2f} | |")
        print(f"| Ray tasks, {label}, start-up amortized | {n:,} | {tr:.2f} | {n / tr:,.0f} | {tr / tl:.2f}x | "
              f"{1000 * cr / n:.2f} | {cr / cl:.2f}x |")
    st = _CLUSTER["startup"]
    print(f"| Ray start-up: ray.init + first task (median of {len(st)}) | | {sorted(st)[len(st) // 2]:.2f} | | | | |")
    for engine, t, _ in cli:
        ratio = f"{t / cli[0][1]:.2f}x" if engine == "ray" else ""
        print(f"| CLI `stats --engine {engine}` end to end, fresh process (1 run) | {len(paths):,} | {t:.2f} | "
              f"{len(paths) / t:,.0f} | {ratio} | | |")
    print()
    print(f"| per-worker throughput ({m:,} images) | 1 worker | 2 workers | per worker, 2 vs 1 | "
          "CPU ms/image, 1 / 2 workers |")
    print("|---|---:|---:|---:|---:|")
    for engine, name in (("local", "local processes"), ("ray", "Ray tasks")):
        a, b = best[(engine, 1, "sub")], best[(engine, 2, "sub")]
        ca, cb = cpu[(engine, 1, "sub")], cpu[(engine, 2, "sub")]
        print(f"| {name} | {m / a:,.0f}/s | {m / b:,.0f}/s | {(m / b / 2) / (m / a):.2f} | "
              f"{1000 * ca / m:.2f} / {1000 * cb / m:.2f} |")
    print()
    print(f"identical results (histogram, mean/std bits, dataset): {all(checks)} {checks}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
