"""DDP on CPU: ``torchrun --nproc_per_node 2 -m datatools train`` with gloo against one process.

The claim under test (README, "Several processes"): the sample order depends only on (seed, epoch); rank r of W reads
every W-th index of the epoch's permutation and, with ``--accumulate A``, micro-batch j of one process takes every
A-th image of its batch. So 2 processes x batch b and 1 process x batch b x accumulate 2 run the same micro-batches
with the same weights; DDP averages the two gradients, accumulation averages them too (x0.5 is exact in floating
point), and the model's own random draws are seeded per micro-batch slot. With ``--freeze-bn`` (no BatchNorm running
statistics to diverge) and ``--no-augment`` (the loader's random stream is per rank) the two runs must give
bit-identical checkpoints. 1 process x batch 2b (one kernel over the whole batch) differs only by float rounding.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"

pytestmark = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")

from datatools.training import TrainConfig, evaluate_checkpoint, load_checkpoint, train  # noqa: E402
from datatools.training.config import keep_global_batch  # noqa: E402
from datatools.training.data import micro_batches  # noqa: E402

# 8 training images (divisible by 2: no DistributedSampler padding in training), 5 val images (not divisible: the
# val sampler pads one duplicate on rank 1).
N_TRAIN, N_VAL = 8, 5
ARGS = dict(device="cpu", image_size=64, epochs=2, batch_size=2, workers=0, freeze_bn=True, augment=False, lr=0.01,
            warmup_epochs=0.5, seed=5, save_period=1)


def cli_args(cfg: dict) -> list[str]:
    return ["--device", "cpu", "--image-size", str(cfg["image_size"]), "--epochs", str(cfg["epochs"]),
            "-b", str(cfg["batch_size"]), "-j", "0", "--freeze-bn", "--no-augment", "--lr", str(cfg["lr"]),
            "--warmup-epochs", str(cfg["warmup_epochs"]), "--seed", str(cfg["seed"]),
            "--save-period", str(cfg["save_period"])]


def torchrun(args: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"  # what torchrun sets by default; the in-process runs below use 1 thread too
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "datatools",
           "train", *args, "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout[p.stdout.index("{"):])


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_state(a: dict, b: dict) -> None:
    """Bit-for-bit: model tensors (weights and BN buffers) and the optimizer's momentum buffers."""
    assert a["model"].keys() == b["model"].keys()
    diff = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and sa
    assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa)
    assert a["epoch"] == b["epoch"]


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory) -> Path:
    """A VOC root over sample_data's files with its own split lists (8 train, 5 val)."""
    root = tmp_path_factory.mktemp("voc")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for d in ("Annotations", "JPEGImages"):
        (root / d).symlink_to(SAMPLE / d, target_is_directory=True)
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        ids = (SAMPLE / "ImageSets" / "Main" / f"{split}.txt").read_text().split()[:n]
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture
def one_thread():
    """The in-process runs use one intra-op thread, as each torchrun process does: the thread count changes the
    float reduction order of CPU kernels (by more than the world size does)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def runs(tiny_voc, tmp_path_factory):
    """Faster R-CNN (the default model, which also samples anchors at random), 2 epochs x 2 steps:
    ``t2`` = torchrun 2 processes x batch 2; ``s1`` = 1 process x batch 2 x accumulate 2 (in this process)."""
    base = tmp_path_factory.mktemp("runs")
    t2 = torchrun([str(tiny_voc), "--out", str(base / "t2"), *cli_args(ARGS)])
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        s1 = train(TrainConfig(data=str(tiny_voc), out=str(base / "s1"), accumulate=2, **ARGS))
    finally:
        torch.set_num_threads(n)
    return {"base": base, "t2": t2, "s1": s1}


# --------------------------------------------------------------------------------------------------- slow: torchrun

@pytest.mark.slow
def test_two_processes_equal_one_process_with_accumulation(runs):
    base = runs["base"]
    assert runs["t2"]["world_size"] == 2 and runs["s1"].world_size == 1
    for name in ("epoch1.pt", "last.pt"):
        a, b = load_checkpoint(base / "t2" / name), load_checkpoint(base / "s1" / name)
        assert_same_state(a, b)
        assert a["world_size"] == 2 and b["world_size"] == 1 and a["global_batch"] == b["global_batch"] == 4
    # Not vacuous: the weights moved between the epochs, and the logged losses (means over ranks) agree too.
    e1, e2 = load_checkpoint(base / "t2" / "epoch1.pt")["model"], load_checkpoint(base / "t2" / "last.pt")["model"]
    assert sum(not torch.equal(e1[k], e2[k]) for k in e1) >= 50
    assert [r["loss"] for r in rows(base / "t2" / "results.csv")] == [f"{h.loss:.5f}" for h in runs["s1"].history]


@pytest.mark.slow
def test_eval_gathered_on_rank0_equals_one_process_on_the_same_checkpoint(runs, one_thread):
    # The 2-process run evaluated its final weights (= last.pt) over both ranks: 5 images, rank 1 got a padding
    # duplicate. One process evaluating last.pt must give the same numbers.
    log = rows(runs["base"] / "t2" / "results.csv")[-1]
    assert int(log["val_images"]) == N_VAL
    m50, m, preds = evaluate_checkpoint(runs["base"] / "t2" / "last.pt", device="cpu")
    assert sorted(preds) == list(range(N_VAL))
    assert m50 > 0 and m > 0  # an untrained detector still scores a few boxes: the comparison means something
    assert (log["map50"], log["map"]) == (f"{m50:.5f}", f"{m:.5f}")


@pytest.mark.slow
def test_resume_two_processes_to_one(runs, tmp_path, one_thread):
    # Epoch 1 on 2 processes, epoch 2 on 1: accumulate 2 is chosen to keep the global batch; bit-identical to the
    # uninterrupted runs.
    out = tmp_path / "r21"
    out.mkdir()
    shutil.copy(runs["base"] / "t2" / "epoch1.pt", out / "last.pt")
    r = train(TrainConfig(data="unused", out=str(out), epochs=2, workers=0, device="cpu"), resume=True)
    assert r.epochs_run == 1 and any("accumulate 2 keeps the global batch at 4" in n for n in r.notes)
    assert_same_state(load_checkpoint(out / "last.pt"), load_checkpoint(runs["base"] / "s1" / "last.pt"))


@pytest.mark.slow
def test_resume_one_process_to_two(runs, tiny_voc, tmp_path):
    out = tmp_path / "r12"
    out.mkdir()
    shutil.copy(runs["base"] / "s1" / "epoch1.pt", out / "last.pt")
    res = torchrun([str(tiny_voc), "--out", str(out), "--resume", "--epochs", "2", "--device", "cpu", "-j", "0"])
    assert res["world_size"] == 2 and res["epochs_run"] == 1
    assert any("accumulate 1 keeps the global batch at 4" in n for n in res["notes"])
    assert_same_state(load_checkpoint(out / "last.pt"), load_checkpoint(runs["base"] / "t2" / "last.pt"))
    assert [r["epoch"] for r in rows(out / "results.csv")] == ["2"]


@pytest.mark.slow
def test_one_big_batch_equals_accumulation_up_to_float_rounding(tiny_voc, tmp_path, one_thread):
    """1 process x batch 4 against 1 process x batch 2 x accumulate 2 (= 2 processes x batch 2, bit for bit, above).

    Only for a loss that is a mean of per-image losses (RetinaNet: each image's loss over its own foreground count,
    then the mean over images) and no BatchNorm coupling (--freeze-bn; RetinaNet v2's heads use GroupNorm); Faster
    R-CNN's samplers would draw differently. The gradients are then equal in exact arithmetic and differ by float
    rounding only (one kernel over 4 images sums in another order than 2 + 2). Tolerance: 2e-2 of the largest weight
    change. Measured after 4 steps: 1.0e-7 against a largest change of 7.7e-3 (1.3e-5 of it) on one machine, and
    8.1e-6 against 5.0e-3 (1.6e-3 of it, in one classification-head weight) on an AVX-512 EPYC with torch 2.14.1,
    whose kernels round differently. A wrong shard, a doubled gradient or a missing rank would differ by the order
    of the change itself, 50 times the tolerance.
    """
    from datatools.training.models import build_model

    cfg = dict(ARGS, model="retinanet_resnet50_fpn_v2", val_split=None, epochs=1, save_period=0)
    train(TrainConfig(data=str(tiny_voc), out=str(tmp_path / "big"), **{**cfg, "batch_size": 4}))
    train(TrainConfig(data=str(tiny_voc), out=str(tmp_path / "acc"), accumulate=2, **cfg))
    big = load_checkpoint(tmp_path / "big" / "last.pt")["model"]
    acc = load_checkpoint(tmp_path / "acc" / "last.pt")["model"]
    with torch.random.fork_rng():
        torch.manual_seed(ARGS["seed"])
        init = build_model("retinanet_resnet50_fpn_v2", 4, image_size=64).state_dict()
    keys = [k for k in big if big[k].dtype.is_floating_point]
    change = max(float((acc[k] - init[k]).abs().max()) for k in keys)
    diff = max(float((acc[k] - big[k]).abs().max()) for k in keys)
    assert change > 1e-3  # the run trained
    assert diff <= 2e-2 * change, (diff, change)


# --------------------------------------------------------------------------------------------------- fast: units

@pytest.mark.parametrize("old_world,new_world,acc,expected_acc,changes", [
    (2, 1, 1, 2, False), (1, 2, 2, 1, False), (4, 2, 1, 2, False), (2, 4, 2, 1, False),
    (1, 2, 1, 1, True), (2, 3, 1, 1, True), (2, 2, 3, 3, False),
])
def test_resume_keeps_the_global_batch(old_world, new_world, acc, expected_acc, changes):
    cfg = TrainConfig(data="d", batch_size=4, accumulate=acc)
    new, note = keep_global_batch(cfg, old_world, new_world)
    assert new.accumulate == expected_acc
    assert (note is None) == (old_world == new_world)
    if note:
        assert ("changes" in note) == changes
        assert (4 * new_world * new.accumulate == 4 * old_world * acc) == (not changes)


def test_micro_batches_split_like_distributed_sampler():
    from torch.utils.data import DistributedSampler

    perm = list(range(10))
    batch = perm[:4]  # one process, batch 2 x accumulate 2
    images = torch.tensor(batch)
    micro = micro_batches(images, [{"i": i} for i in batch], 2)
    for j, (imgs, tg) in enumerate(micro):
        shard = list(DistributedSampler(perm, num_replicas=2, rank=j, shuffle=False))[:2]  # rank j's first batch
        assert imgs.tolist() == shard == [t["i"] for t in tg]
    assert len(micro_batches(images[:1], [{"i": 0}], 2)) == 1  # no empty micro-batch


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("n", [20, 23])
def test_distributed_grouped_batches(world, n):
    """Aspect-ratio grouping under DDP: each rank's batches come from its DistributedSampler shard, each batch holds
    one group, every rank gets the same number of batches (else DDP would hang), and set_epoch reshuffles."""
    from torch.utils.data import DistributedSampler

    from datatools.datasets.samplers import DistributedGroupedBatchSampler, aspect_ratio_groups

    ratios = [0.75 if i % 3 == 0 else 1.33 for i in range(n)]
    groups = aspect_ratio_groups(ratios)
    data = list(range(n))
    per_rank, orders = [], []
    for r in range(world):
        bs = DistributedGroupedBatchSampler(data, groups, 2, num_replicas=world, rank=r, seed=7)
        bs.set_epoch(1)
        batches = list(bs)
        assert len(batches) == len(bs)
        shard = DistributedSampler(data, num_replicas=world, rank=r, seed=7)
        shard.set_epoch(1)
        shard_idx = list(shard)
        flat = [i for b in batches for i in b]
        assert set(flat) <= set(shard_idx)
        assert len(flat) >= len(shard_idx) - 2 * len(set(groups))  # at most one short batch per group left out
        assert all(len({groups[i] for i in b}) == 1 and 1 <= len(b) <= 2 for b in batches)
        per_rank.append(len(batches))
        bs.set_epoch(2)
        orders.append((flat, [i for b in bs for i in b]))
    assert len(set(per_rank)) == 1
    assert any(a != b for a, b in orders)


# --------------------------------------------------------------------------------------------------- keep-aspect

@pytest.mark.parametrize("epoch", [0, 1])
def test_keep_aspect_train_loader_groups_each_ranks_shard(tiny_voc, epoch):
    """--resize-mode keep-aspect: the trainer's train loader batches each rank's DistributedSampler shard by aspect
    group; every batch holds one group, both ranks get the same number of batches, and together they cover the
    train set. (8 images, 2 portrait: any split of them over 2 shards of 4 gives both ranks the same count, so the
    equal-count rule skips nothing here.) Letterbox mode stays ungrouped."""
    from torch.utils.data import DistributedSampler

    from datatools.datasets.samplers import DistributedGroupedBatchSampler, aspect_ratio_groups
    from datatools.training.data import build_datasets, epoch_loader
    from datatools.training.distributed import DistContext

    cfg = TrainConfig(data=str(tiny_voc), resize_mode="keep-aspect", **{**ARGS, "augment": True})
    _, train_ds, _, _, _ = build_datasets(cfg)
    groups = aspect_ratio_groups(train_ds)
    assert sorted(set(groups)) == [0, 1] and len(train_ds) == N_TRAIN  # portrait and landscape both present
    per_rank, seen = [], []
    for rank in range(2):
        loader = epoch_loader(train_ds, cfg, DistContext(rank=rank, world=2), train=True, epoch=epoch)
        assert isinstance(loader.batch_sampler, DistributedGroupedBatchSampler)
        shard = DistributedSampler(train_ds, num_replicas=2, rank=rank, shuffle=True, seed=cfg.seed * 100_003 + epoch)
        shard.set_epoch(epoch)
        shard_idx = list(shard)
        batches = list(loader.batch_sampler)
        assert len(batches) == len(loader)
        assert all(len({groups[i] for i in b}) == 1 and 1 <= len(b) <= ARGS["batch_size"] for b in batches)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == sorted(shard_idx)  # exactly this rank's shard
        per_rank.append(len(batches))
        seen += flat
        # What the loader yields: one list of differently sized images per batch, aspect kept, shorter side 64.
        for (images, targets), b in zip(loader, batches):
            assert [train_ds.index_of(int(t["image_id"])) for t in targets] == b
            for im, t in zip(images, targets):
                oh, ow = (int(v) for v in t["orig_size"])
                assert min(im.shape[-2:]) == ARGS["image_size"]
                assert (im.shape[-1] > im.shape[-2]) == (ow > oh)
    assert per_rank[0] == per_rank[1]
    assert sorted(seen) == list(range(N_TRAIN))
    plain = epoch_loader(train_ds, TrainConfig(data=str(tiny_voc), **ARGS), DistContext(rank=0, world=2), train=True,
                         epoch=0)
    assert not isinstance(plain.batch_sampler, DistributedGroupedBatchSampler)


@pytest.mark.slow
def test_keep_aspect_two_processes(tiny_voc, tmp_path):
    out = tmp_path / "ka2"
    res = torchrun([str(tiny_voc), "--out", str(out), "--device", "cpu", "--image-size", "64", "--epochs", "1",
                    "-b", "2", "-j", "0", "--resize-mode", "keep-aspect", "--seed", "3"])
    assert res["world_size"] == 2 and res["epochs_run"] == 1
    log = rows(out / "results.csv")
    assert len(log) == 1 and log[0]["map50"] != "" and int(log[0]["val_images"]) == N_VAL
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["args"]["resize_mode"] == "keep-aspect" and ckpt["world_size"] == 2


# --------------------------------------------------------------------------------------------------- NaN and fsync

# One rank of a 2-process gloo group, started by hand (torchrun's env:// variables) so that the test sees what each
# rank itself did: torchrun would kill a hung rank and hide the difference between "stopped" and "was stopped".
_RANK_MAIN = r"""
import json, os, sys
import torch
from datatools.training.distributed import DistContext, nonfinite_losses, setup_distributed, teardown

dist, _ = setup_distributed("cpu")
rank = dist.rank
mode = sys.argv[1]
if mode == "reduce":
    answers = []
    for step in range(3):  # rank 1 sees a NaN at step 1 only; rank 0 never does
        v = {"loss_a": 0.5 + rank, "loss": 1.0 + rank}
        if rank == 1 and step == 1:
            v = {"loss_a": float("nan"), "loss": float("nan")}
        bad = nonfinite_losses(v, dist, torch.device("cpu"))
        answers.append(None if bad is None else {k: str(float(t)) for k, t in bad.items()})
    teardown(dist)
    print(json.dumps({"rank": rank, "answers": answers}))
    sys.exit(0)

# mode "train": the model of rank 1 returns a NaN loss at its third training forward (epoch 2, iteration 1).
import datatools.training.loop as loop
from datatools.training import TrainConfig, train
from datatools.training.loop import TrainingDiverged

build = loop.run_model
calls = [0]

def run_model(*a, **k):
    model = build(*a, **k)
    forward = model.forward

    def nan_forward(images, targets=None):
        out = forward(images, targets)
        if model.training:
            calls[0] += 1
            if rank == 1 and calls[0] == 3:
                out = {k: v * float("nan") for k, v in out.items()}
        return out

    model.forward = nan_forward
    return model

loop.run_model = run_model
cfg = TrainConfig(**json.loads(sys.argv[2]))
try:
    train(cfg)
    print(json.dumps({"rank": rank, "error": None}))
except TrainingDiverged as e:
    print(json.dumps({"rank": rank, "error": str(e)}))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_ranks(*args: str, timeout: float = 150) -> list[dict]:
    """Start ranks 0 and 1 of a gloo group running ``_RANK_MAIN``; each must exit by itself within ``timeout``."""
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", _RANK_MAIN, *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT))
    outs = []
    try:
        for rank, p in enumerate(procs):
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(f"rank {rank} did not stop within {timeout} s (left waiting in a collective?)")
            assert p.returncode == 0, f"rank {rank} failed:\n{err[-3000:]}"
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs


def test_nonfinite_losses_one_process():
    from datatools.training.distributed import DistContext, nonfinite_losses

    one = DistContext()
    assert nonfinite_losses({"a": 0.25, "loss": 0.5}, one, torch.device("cpu")) is None
    bad = nonfinite_losses({"a": float("inf"), "loss": float("inf")}, one, torch.device("cpu"))
    assert list(bad) == ["a", "loss"] and torch.isinf(bad["loss"])
    assert nonfinite_losses({"a": 1.0, "loss": float("nan")}, one, torch.device("cpu"))["a"] == 1.0


def test_nonfinite_losses_agree_over_ranks():
    """Rank 1 alone sees a NaN at step 1: both ranks get rank 1's values at that step and None at the others."""
    r0, r1 = run_two_ranks("reduce", timeout=90)
    assert r0["answers"] == r1["answers"] == [None, {"loss_a": "nan", "loss": "nan"}, None]


@pytest.mark.slow
def test_nan_on_one_rank_stops_every_rank(tiny_voc, tmp_path):
    """A NaN loss on rank 1 only: both ranks raise TrainingDiverged at the same step, by themselves (none is left in
    an all-reduce), and last.pt is epoch 1's, written before the NaN."""
    out = tmp_path / "nan"
    cfg = {**ARGS, "data": str(tiny_voc), "out": str(out), "val_split": None, "save_period": 0}
    r0, r1 = run_two_ranks("train", json.dumps(cfg))
    for r in (r0, r1):
        assert r["error"] is not None, f"rank {r['rank']} did not stop"
        assert "loss is nan at epoch 2, iteration 1" in r["error"] and "last good checkpoint" in r["error"]
    assert r0["error"] == r1["error"]  # rank 0 reports rank 1's losses: the numbers say what happened
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 0 and ckpt["world_size"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.dtype.is_floating_point)


def test_checkpoint_is_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    """save_checkpoint: the temp file's bytes reach the disk before os.replace gives them the name, and the folder
    (the rename itself) after it."""
    import stat

    from datatools.training.checkpoint import save_checkpoint

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else f"file:{os.fstat(fd).st_size}"
        events.append(f"fsync {kind}")
        real_fsync(fd)

    def replace(a, b):
        events.append(f"replace {Path(b).name}")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_checkpoint(tmp_path / "last.pt", {"model": {"w": torch.ones(3)}, "args": {}})
    size = (tmp_path / "last.pt").stat().st_size
    assert events == [f"fsync file:{size}", "replace last.pt", "fsync dir"]
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left
