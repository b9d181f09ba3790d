"""The trainer and predict: CPU smoke runs on a few sample_data images, resume, NaN stop, DDP with gloo."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from datatools.cli import cli
from datatools.training import TrainConfig, TrainingDiverged, load_checkpoint, train
from datatools.training import loop as loop_mod
from datatools.training.models import MODELS, build_model, load_weights
from datatools.training.optim import build_scheduler, param_groups

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
TINY = dict(image_size=64, batch_size=2, limit=4, workers=0, lr=0.01, warmup_epochs=0.5)


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def predict_and_evaluate(model: Path, preds: Path) -> list[dict]:
    """``datatools predict`` on sample_data's val split, then ``evaluate`` of those predictions, which must use every
    one of them with no prediction finding; returns the predictions (at least one)."""
    r = CliRunner().invoke(cli, ["predict", str(model), str(SAMPLE), "-f", "voc", "--split", "val", "-o", str(preds),
                                 "-j", "0", "--max-det", "20"])
    assert r.exit_code == 0, r.output
    res = json.loads(preds.read_text())
    assert res
    r = CliRunner().invoke(cli, ["evaluate", "--gt", str(SAMPLE), "--split", "val", "--pred", str(preds), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["predictions_used"] == len(res) and not [f for f in rep["findings"] if f["code"].startswith("pred-")]
    return res


@pytest.mark.slow
def test_cli_train_predict_evaluate_resume(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(out), "--image-size", "128", "--epochs", "2",
                                 "-b", "4", "--limit", "8", "-j", "0", "--lr", "0.01", "--seed", "1"])
    assert r.exit_code == 0, r.output
    said = "note: trains on split 'train' (8 images), validates on split 'val' (8 images)"
    assert r.output.count(said) == 1 and r.output.index(said) < r.output.index("epoch   1")  # before, not after
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    log = rows(out / "results.csv")
    assert [row["epoch"] for row in log] == ["1", "2"]
    assert float(log[1]["loss"]) < float(log[0]["loss"])  # the loss falls
    assert log[0]["map50"] != "" and int(log[0]["val_images"]) == 8
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["classes"] == ["circle", "square", "star", "triangle"]
    assert {"optimizer", "scheduler", "scaler", "ema", "args", "world_size", "global_batch"} <= set(ckpt)

    res = predict_and_evaluate(out / "best.pt", tmp_path / "preds.json")
    assert {"image_id", "file_name", "category_id", "bbox", "score"} <= set(res[0])
    assert {d["image_id"] for d in res} <= set(range(1, 41)) and {d["category_id"] for d in res} <= {1, 2, 3, 4}

    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(out), "--epochs", "3", "--resume", "-j", "0"])
    assert r.exit_code == 0, r.output
    assert [row["epoch"] for row in rows(out / "results.csv")] == ["1", "2", "3"]
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    # a new run into it without --resume replaced its checkpoints and appended to its log
    before = (out / "last.pt").read_bytes()
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(out), "--epochs", "1", "-j", "0"])
    assert r.exit_code == 2 and "holds a run already (last.pt, best.pt, results.csv)" in r.output, r.output
    assert (out / "last.pt").read_bytes() == before and len(rows(out / "results.csv")) == 3

    # an output that is an input is refused before anything is written: predict -o onto the checkpoint or into the
    # image folder replaced the model or an image with results JSON
    before = (out / "best.pt").read_bytes()
    for o in (out / "best.pt", SAMPLE / "JPEGImages" / "x.json"):
        r = CliRunner().invoke(cli, ["predict", str(out / "best.pt"), str(SAMPLE), "-o", str(o), "-j", "0"])
        assert r.exit_code == 2 and ("is the input" in r.output or "inside the input" in r.output), r.output
    assert (out / "best.pt").read_bytes() == before and not (SAMPLE / "JPEGImages" / "x.json").exists()

    # an image that cannot be decoded is skipped and named, the others predicted (a broken file among thousands
    # stopped the run and wrote nothing); none decodable is an error
    folder = tmp_path / "imgs"
    folder.mkdir()
    jpegs = sorted((SAMPLE / "JPEGImages").glob("*.jpg"))[:3]
    for j in jpegs:
        (folder / j.name).write_bytes(j.read_bytes())
    (folder / jpegs[1].name).write_bytes(jpegs[1].read_bytes()[:300])
    r = CliRunner().invoke(cli, ["predict", str(out / "best.pt"), str(folder), "-o", str(tmp_path / "p.json"),
                                 "-j", "0", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["images"] == 2 and len(rep["skipped"]) == 1 and jpegs[1].name in rep["skipped"][0]
    names = {d["file_name"] for d in json.loads((tmp_path / "p.json").read_text())}
    assert names == {jpegs[0].name, jpegs[2].name}
    for j in jpegs:
        (folder / j.name).write_bytes(b"not an image")
    r = CliRunner().invoke(cli, ["predict", str(out / "best.pt"), str(folder), "-o", str(tmp_path / "q.json"),
                                 "-j", "2"])
    assert r.exit_code == 1 and "none of its 3 image(s) could be decoded" in r.output, r.output
    assert r.output.count("\n") == 1 and not (tmp_path / "q.json").exists()


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    # With an EMA: its average and update count are in the checkpoint and continue too.
    cfg = TrainConfig(data=str(SAMPLE), out=str(tmp_path / "a"), epochs=2, val_split=None, seed=3, ema_decay=0.9,
                      **TINY)
    train(cfg)
    straight_ckpt = load_checkpoint(tmp_path / "a" / "last.pt")
    straight = straight_ckpt["model"]
    cfg_b = TrainConfig.from_dict({**cfg.to_dict(), "out": str(tmp_path / "b")})

    class Interrupted(Exception):
        pass

    def stop(log):  # called after the epoch's checkpoint is written: like a kill between epochs
        raise Interrupted

    with pytest.raises(Interrupted):
        train(cfg_b, on_epoch=stop)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 0
    before = torch.get_rng_state()
    train(cfg_b, resume=True)
    assert torch.equal(before, torch.get_rng_state())  # the caller's global RNG is left alone
    resumed_ckpt = load_checkpoint(tmp_path / "b" / "last.pt")
    resumed = resumed_ckpt["model"]
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    ema_a, ema_b = straight_ckpt["ema"], resumed_ckpt["ema"]
    assert ema_a.keys() == ema_b.keys() and int(ema_b["n_averaged"]) == 4  # 2 epochs x 2 steps
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert straight_ckpt["scheduler"]["state"] == resumed_ckpt["scheduler"]["state"]


@pytest.mark.slow
def test_ema_checkpoints_give_the_scored_weights(tmp_path):
    """Under --ema, validation scores the EMA: predict, evaluate_checkpoint and --weights take the EMA's weights from
    last.pt too (they took the raw weights, which no logged number was computed from), while --resume continues the
    raw ones. A dataset of other classes is refused by name."""
    from datatools.core.errors import UsageError
    from datatools.training.evaluation import checkpoint_model
    from datatools.training.models import read_state

    cfg = TrainConfig(data=str(SAMPLE), out=str(tmp_path / "run"), epochs=1, seed=3, ema_decay=0.9, **TINY)
    train(cfg)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    ema = {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k != "n_averaged"}
    cfg = TrainConfig.from_dict(ckpt["args"])  # the model and sizes the run resolved
    state = checkpoint_model(ckpt, cfg).state_dict()
    assert state.keys() == ema.keys() and all(torch.equal(state[k], ema[k]) for k in ema)
    assert any(not torch.equal(ckpt["model"][k], ema[k]) for k in ema if ema[k].is_floating_point())
    weights, classes, _ = read_state(str(tmp_path / "run" / "last.pt"))
    assert all(torch.equal(weights[k], ema[k]) for k in ema) and classes == tuple(ckpt["classes"])
    with pytest.raises(UsageError, match=r"the dataset's classes \['b', 'a'\] differ from the model's \['a', 'b'\]"):
        checkpoint_model(dict(ckpt, classes=["a", "b"]), cfg, classes=("b", "a"))


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real_build = loop_mod.run_model
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        model = real_build(*args, **kwargs)
        forward = model.forward

        def fwd(images, targets=None):
            out = forward(images, targets)
            if model.training:
                calls["n"] += 1
                if calls["n"] > 2:  # epoch 2 (2 iterations per epoch)
                    out = {k: v * float("nan") for k, v in out.items()}
            return out

        model.forward = fwd
        return model

    monkeypatch.setattr(loop_mod, "run_model", poisoned)
    cfg = TrainConfig(data=str(SAMPLE), out=str(tmp_path / "run"), epochs=3, val_split=None, **TINY)
    with pytest.raises(TrainingDiverged, match="epoch 2, iteration 1"):
        train(cfg)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 0  # epoch 1's checkpoint, untouched
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.dtype.is_floating_point)


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "datatools",
           "train", str(SAMPLE), "--out", str(out), "--device", "cpu", "--image-size", "64", "--epochs", "1",
           "-b", "2", "--limit", "5", "-j", "0", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    log = rows(out / "results.csv")
    assert len(log) == 1 and log[0]["map50"] != ""
    # 5 val images over 2 ranks: the sampler pads one duplicate; the gathered evaluation has each image once
    assert int(log[0]["val_images"]) == 5
    assert load_checkpoint(out / "last.pt")["args"]["limit"] == 5
    # Real BatchNorm: each rank's running statistics followed its own last batch; the evaluation must have used rank
    # 0's (the checkpoint's) on every rank, so one process evaluating last.pt gets the same numbers.
    from datatools.training import evaluate_checkpoint

    m50, m, _ = evaluate_checkpoint(out / "last.pt", device="cpu")
    assert m50 > 0 and (log[0]["map50"], log[0]["map"]) == (f"{m50:.5f}", f"{m:.5f}")


def lr_factors(steps: int, **kwargs) -> list[float]:
    """The scheduler's learning rate (as a factor of the peak 2.0) at steps 0..steps, stepped once per optimizer
    step as the loop steps it; both parameter groups must follow it."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))]}, {"params": [torch.nn.Parameter(torch.zeros(1))]}]
    opt = torch.optim.SGD(groups, lr=2.0)
    sched = build_scheduler(opt, lr=2.0, **kwargs)
    out = []
    for _ in range(steps + 1):
        assert opt.param_groups[0]["lr"] == opt.param_groups[1]["lr"]
        out.append(opt.param_groups[0]["lr"] / 2.0)
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("step,expected", [
    (0, 1e-3), (5, 1e-3 + (1 - 1e-3) * 0.5), (10, 1.0), (60, 0.01 + 0.99 * 0.5), (110, 0.01),
])
def test_lr_schedule_cosine(step, expected):
    assert lr_factors(110, total=110, warmup=10, schedule="cosine", min_ratio=0.01)[step] == pytest.approx(expected)


@pytest.mark.parametrize("warmup,step,expected", [
    (0, 0, 1.0), (0, 66, 1.0), (0, 67, 0.1), (0, 88, 0.1), (0, 89, 0.01),
    (10, 0, 1e-3), (10, 10, 1.0), (10, 66, 1.0), (10, 67, 0.1), (10, 89, 0.01),
    (70, 69, 1e-3 + (1 - 1e-3) * 69 / 70), (70, 70, 0.1), (70, 89, 0.01),  # a warm-up past the first milestone
])
def test_lr_schedule_multistep(warmup, step, expected):
    got = lr_factors(100, total=100, warmup=warmup, schedule="multistep", min_ratio=0.0)[step]
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("schedule", ["cosine", "multistep"])
def test_scheduler_placed_at_a_step_continues_like_the_stepped_one(schedule):
    """What --resume relies on: a scheduler saved and loaded (same run length), or rebuilt and placed at the step
    (another world size or more epochs), goes on exactly as the uninterrupted one."""
    from datatools.training.optim import SchedulePlan

    def sgd():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.5)

    plan = SchedulePlan(iters_per_epoch=7, total=70, warmup=7, lr=0.5, schedule=schedule, min_ratio=0.05)
    opt = sgd()
    sched = plan.scheduler(opt)
    lrs = []
    for step in range(70):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if step == 30:  # a checkpoint after 31 steps
            saved, saved_opt = sched.state_dict(), opt.state_dict()
    placed_opt = sgd()
    placed = plan.scheduler(placed_opt, 31)
    loaded_opt = sgd()
    loaded_opt.load_state_dict(saved_opt)
    loaded = plan.scheduler(loaded_opt)
    loaded.load_state_dict(saved)
    for g, lr in zip(loaded_opt.param_groups, loaded.get_last_lr()):
        g["lr"] = lr
    for step in range(31, 70):
        assert placed_opt.param_groups[0]["lr"] == pytest.approx(lrs[step], rel=1e-12)
        assert loaded_opt.param_groups[0]["lr"] == pytest.approx(lrs[step], rel=1e-12)
        for o, s in ((placed_opt, placed), (loaded_opt, loaded)):
            o.step()
            s.step()
    assert lrs[7] == 0.5 and lrs[-1] < lrs[40] <= lrs[8]  # warm-up reached the peak, then the rate fell


def test_ema_ramps_its_decay_and_copies_counters():
    """The EMA (AveragedModel): its k-th update moves the average by 1 - decay x (1 - exp(-k / 2000)), BatchNorm's
    running statistics are averaged like weights, num_batches_tracked is copied."""
    from datatools.training.optim import EMA_RAMP, build_ema

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = build_ema(model, 0.9)
    with torch.no_grad():
        for k in (1, 2, 3):
            before = {n: t.clone() for n, t in ema.module.state_dict().items()}
            for t in model.state_dict().values():
                t.add_(1.0 if t.is_floating_point() else 1)
            ema.update_parameters(model)
            d = 0.0 if k == 1 else 0.9 * (1 - np.exp(-k / EMA_RAMP))  # the first update copies
            for n, t in ema.module.state_dict().items():
                if t.is_floating_point():
                    want = before[n] * d + model.state_dict()[n] * (1 - d)
                    assert torch.allclose(t, want, atol=1e-6), n
                else:
                    assert torch.equal(t, model.state_dict()[n])
    assert int(ema.n_averaged) == 3 and not any(p.requires_grad for p in ema.module.parameters())


@pytest.mark.parametrize("dense", [True, False], ids=["batch-tensor", "image-list"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_model_inputs_prepare_a_batch_for_the_detector(dense, channels_last):
    """One preparation for training, BN re-estimation and prediction: images as a list of float 0-1 tensors (channels
    last when asked, for a dense batch), targets cut to boxes and labels, none at all for inference."""
    from datatools.training.data import model_inputs

    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).reshape(2, 3, 4, 5)
    targets = [{"boxes": torch.ones(1, 4), "labels": torch.tensor([k]), "area": torch.ones(1),
                "image_id": torch.tensor(k)} for k in (1, 2)]
    out, kept = model_inputs(images if dense else list(images), targets, torch.device("cpu"),
                             channels_last=channels_last)
    assert isinstance(out, list) and len(out) == 2 and all(x.dtype == torch.float32 for x in out)
    torch.testing.assert_close(out[1], images[1].float() / 255)
    assert [sorted(t) for t in kept] == [["boxes", "labels"]] * 2 and int(kept[1]["labels"]) == 2
    assert (out[0].stride(0) == 1) == (dense and channels_last)  # channel stride 1: NHWC pixels
    assert targets[0].keys() == {"boxes", "labels", "area", "image_id"}  # the loader's targets are left as they were
    out, kept = model_inputs(images, None, torch.device("cpu"), channels_last=channels_last)
    assert len(out) == 2 and kept is None


def test_predictions_never_hold_the_background_label_or_an_empty_box():
    """RetinaNet and FCOS (sigmoid heads, no background) score label 0, which the models are built to leave free:
    validation stopped on a label -1 at the first evaluation, and predict wrote those boxes as the last class. A box
    wholly in the letterbox padding maps back to nothing and used up max_det."""
    from datatools.training.evaluation import predict_batches

    class Fixed(torch.nn.Module):
        def forward(self, images):
            return [{"boxes": torch.tensor([[1.0, 1, 9, 9], [2, 2, 8, 8], [3, 3, 6, 6], [0, 40, 9, 50]]),
                     "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]), "labels": torch.tensor([1, 0, 2, 1])}
                    for _ in images]

    target = {"image_id": torch.tensor(0), "orig_size": torch.tensor([20, 20]), "canvas_size": (40, 20),
              "letterbox": torch.tensor([1.0, 1.0, 0.0, 0.0])}  # scale 1, no offset: rows 20..40 are padding
    loader = torch.utils.data.DataLoader([(torch.zeros(3, 40, 20, dtype=torch.uint8), target)],
                                         collate_fn=lambda batch: tuple(zip(*batch)))
    (got,) = predict_batches(Fixed(), loader, torch.device("cpu")).values()
    assert got["labels"].tolist() == [0, 1] and got["scores"].tolist() == pytest.approx([0.9, 0.7])
    assert got["boxes"].tolist() == [[1, 1, 9, 9], [3, 3, 6, 6]]


def test_no_weight_decay_on_norm_and_bias():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    decay, no_decay = param_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert {p.ndim for p in decay["params"]} == {2, 4} and {p.ndim for p in no_decay["params"]} == {1}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_build_without_downloads(name, monkeypatch):
    import torch.hub

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url",
                        lambda *a, **k: pytest.fail("a download was attempted"))
    model = build_model(name, 3, image_size=128)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    frozen = [m for m in model.modules() if type(m).__name__ == "FrozenBatchNorm2d"]
    assert bns and not frozen  # trained from scratch: real BatchNorm, as torchvision does without weights
    assert all(p.requires_grad for p in model.backbone.parameters())


def test_load_weights_skips_mismatched_head(tmp_path):
    a = build_model("ssdlite320_mobilenet_v3_large", 3)
    b = build_model("ssdlite320_mobilenet_v3_large", 5)
    torch.save(a.state_dict(), tmp_path / "w.pt")
    counts = load_weights(b, tmp_path / "w.pt")
    assert counts["skipped"] > 0 and counts["loaded"] > 100 and counts["unexpected"] == 0
    k = next(k for k in a.state_dict() if k.startswith("backbone") and a.state_dict()[k].dtype.is_floating_point)
    assert torch.equal(a.state_dict()[k], b.state_dict()[k])


def test_weights_only_load_refuses_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    p = tmp_path / "evil.pt"
    p.write_bytes(pickle.dumps({"model": Evil()}))
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--weights", str(p), "--out", str(tmp_path / "o"),
                                 "--epochs", "1", "--limit", "2", "-j", "0", "--image-size", "64"])
    assert r.exit_code == 1 and "evil.pt: cannot load with torch.load(weights_only=True): not a file of tensors" in r.output
    assert "pwned" not in r.output and "weights_only=False" not in r.output and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1].startswith("Error: ")  # one line, after the note on the data


def test_cli_usage_errors(tmp_path):
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(tmp_path / "o"), "--resume"])
    assert r.exit_code == 2 and "last.pt" in r.output
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(SAMPLE / "runs"), "--epochs", "1"])
    assert r.exit_code == 2 and "inside the input" in r.output and not (SAMPLE / "runs").exists()
    # a split named on a dataset without splits trained on every image without a word
    assert CliRunner().invoke(cli, ["convert", str(SAMPLE), str(tmp_path / "lm"), "--to", "labelme",
                                    "--images-mode", "none"]).exit_code == 0
    r = CliRunner().invoke(cli, ["train", str(tmp_path / "lm"), "--train-split",
                                 "bogus", "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2 and "no split 'bogus': the dataset has no splits" in r.output, r.output
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--train-split", "nope", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "nope" in r.output
    if not torch.cuda.is_available():
        r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--device", "cuda", "--out", str(tmp_path / "o")])
        assert r.exit_code == 2 and "CUDA" in r.output


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_truncated_image_is_left_out_of_training_and_named(tmp_path, workers):
    # a RuntimeError traceback (with DataLoader workers, the worker's traceback inside torch's message); then one
    # line that stopped the run; now the image is left out before the first epoch, and the run says which
    import shutil

    src = shutil.copytree(SAMPLE, tmp_path / "sd")
    first = (src / "ImageSets/Main/train.txt").read_text().split()[0]
    jpeg = src / "JPEGImages" / f"{first}.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    r = CliRunner().invoke(cli, ["train", str(src), "--out", str(tmp_path / "o"), "--image-size", "64", "--epochs",
                                 "1", "-b", "2", "--limit", "4", "-j", workers, "--val-split", ""])
    assert r.exit_code == 0, r.output
    assert f"1 image(s) left out, which cannot be decoded (e.g. {jpeg}: unreadable image:" in r.output
    assert "Traceback" not in r.output and ".cpp" not in r.output


def test_help_does_not_import_torch():
    code = ("import sys; from click.testing import CliRunner; from datatools.cli import cli; "
            "[CliRunner().invoke(cli, [c, '--help']) for c in ('train', 'predict', 'evaluate')]; "
            "CliRunner().invoke(cli, ['--help']); print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.stdout.strip() == "False", p.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_smoke(tmp_path):
    cfg = TrainConfig(data=str(SAMPLE), out=str(tmp_path / "gpu"), epochs=1, device="cuda", **TINY)
    r = train(cfg)
    assert r.device.startswith("cuda") and (tmp_path / "gpu" / "last.pt").is_file()


@pytest.mark.slow
def test_cli_keep_aspect_train_predict_evaluate_resume(tmp_path):
    from datatools import formats

    out = tmp_path / "ka"
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(out), "--image-size", "64", "--epochs", "1",
                                 "-b", "2", "--limit", "4", "-j", "0", "--lr", "0.01", "--resize-mode", "keep-aspect"])
    assert r.exit_code == 0, r.output
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    assert load_checkpoint(out / "last.pt")["args"]["resize_mode"] == "keep-aspect"
    assert rows(out / "results.csv")[0]["map50"] != ""

    # predict on the keep-aspect model: boxes in the original images' pixels (inside each image, and beyond the
    # 64 x 85 px frame the model saw, so they were scaled back), which evaluate accepts.
    res = predict_and_evaluate(out / "best.pt", tmp_path / "ka.json")
    data = formats.get("voc").read(str(SAMPLE), sets=["val"])
    size = {name: (im.width, im.height) for im in data.images for name in (im.file_name, im.image_id)}
    far = 0.0
    for d in res:
        w, h = size[d["file_name"]]
        x, y, bw, bh = d["bbox"]
        assert -0.01 <= x and -0.01 <= y and x + bw <= w + 0.01 and y + bh <= h + 0.01, (d, w, h)
        far = max(far, x + bw, y + bh)
    assert far > 107  # keep-aspect frames are at most 64 x 107 px: these boxes are in original coordinates

    # --resume without --resize-mode continues in the checkpoint's mode
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(out), "--epochs", "2", "--resume", "-j", "0"])
    assert r.exit_code == 0, r.output
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] == 1 and last["args"]["resize_mode"] == "keep-aspect"


@pytest.mark.parametrize("hw", [(240, 320), (320, 240), (320, 320), (30, 400)])
def test_keep_aspect_model_does_not_resize_again(hw):
    """The model's GeneralizedRCNNTransform gets min_size/max_size matching KeepAspectResize: scale 1, no second
    resize, and predictions in the input's pixels (so boxes_to_original's scale is the only mapping)."""
    from torchvision import tv_tensors

    from datatools.datasets import make_target
    from datatools.datasets.transforms import boxes_to_original, eval_preset

    image = tv_tensors.Image(torch.zeros(3, *hw, dtype=torch.uint8))
    target = make_target(np.zeros((0, 4)), [], canvas_size=hw, image_id=0)
    out, t = eval_preset(64, mode="keep-aspect", dtype=None)(image, target)
    h, w = out.shape[-2:]
    assert (min(h, w) == 64 or max(h, w) == 107) and max(h, w) <= 107 and (w > h) == (hw[1] > hw[0])
    model = build_model("fasterrcnn_mobilenet_v3_large_fpn", 3, image_size=64, resize_mode="keep-aspect").eval()
    batch, _ = model.transform([out.float() / 255])
    assert batch.image_sizes == [(h, w)]
    mapped = boxes_to_original(torch.tensor([[0.0, 0.0, float(w), float(h)]]), t)
    assert torch.allclose(mapped, torch.tensor([[0.0, 0.0, hw[1], hw[0]]], dtype=torch.float32), atol=1e-3)


def test_keep_aspect_rejects_fixed_size_model(tmp_path):
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(tmp_path / "o"), "--resize-mode", "keep-aspect",
                                 "--model", "ssdlite320_mobilenet_v3_large", "-j", "0"])
    assert r.exit_code == 2 and "letterbox" in r.output


def test_train_on_a_folder_without_a_dataset_says_what_it_looked_for(tmp_path):
    from click.testing import CliRunner

    from datatools.cli import cli

    (tmp_path / "empty").mkdir()
    (tmp_path / "xml").mkdir()
    (tmp_path / "xml" / "Annotations").mkdir()
    for src, want in ((tmp_path / "empty", "no dataset found"), (tmp_path / "xml", "looked for")):
        r = CliRunner().invoke(cli, ["train", str(src), "--out", str(tmp_path / "run"), "--epochs", "1", "-j", "0"])
        assert r.exit_code == 1, r.output
        assert want in r.output and str(src) in r.output and "Traceback" not in r.output
        assert not (tmp_path / "run").exists()


def _yolo_with_splits(root: Path, splits: dict[str, list[str]]) -> Path:
    """images/<split>/ beside labels/<split>/ and a classes.txt, without a data.yaml: the splits keep their names."""
    from tests.conftest import make_jpeg

    for split, names in splits.items():
        (root / "labels" / split).mkdir(parents=True)
        for name in names:
            make_jpeg(root / "images" / split / f"{name}.jpg", 64, 48)
            (root / "labels" / split / f"{name}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (root / "classes.txt").write_text("dog\n")
    return root


def test_an_image_that_cannot_be_decoded_is_left_out_before_training(tmp_path):
    """A JPEG cut short (an interrupted download) passes the header read: an epoch stopped at it with no checkpoint
    ("Bad data never crashes a run"). It is left out, and the run says so."""
    from PIL import Image

    from datatools.training.data import build_datasets

    data = _yolo_with_splits(tmp_path / "y", {"train": ["a", "b", "c"], "val": ["d"], "test": ["e"]})
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for cut in (data / "images" / "test" / "e.jpg", data / "images" / "train" / "b.jpg"):  # a test image: not read
        Image.fromarray(noise).save(cut, quality=95)
        cut.write_bytes(cut.read_bytes()[:-2000])  # the header whole, the pixels not
    _, train_ds, val_ds, _, note = build_datasets(TrainConfig(data=str(data), **TINY))
    assert (len(train_ds), len(val_ds)) == (2, 1)
    assert f"1 image(s) left out, which cannot be decoded (e.g. {cut}: unreadable image:" in note
    # a float TIFF (thermal, elevation) and an image past PIL's pixel limit: their headers say so
    Image.fromarray(noise[..., 0].astype(np.float32), mode="F").save(data / "images" / "train" / "c.tif")
    (data / "images" / "train" / "c.jpg").unlink()
    _, train_ds, _, _, note = build_datasets(TrainConfig(data=str(data), **TINY))
    assert len(train_ds) == 1 and "2 image(s) left out" in note


def test_default_splits_find_the_split_of_their_role(tmp_path):
    """The default --train-split train / --val-split val train on train2017 and evaluate on val2017 (COCO's names;
    Roboflow's valid likewise), as data.yaml's train/val keys name them; a split asked for by its own name is used
    as it is, and VOC's trainval is never picked for training where it holds the validation images."""
    from datatools.core.errors import UsageError
    from datatools.training.data import build_datasets

    data = _yolo_with_splits(tmp_path / "coco_names", {"train2017": ["a", "b", "c"], "val2017": ["d"]})
    _, train_ds, val_ds, val_split, note = build_datasets(TrainConfig(data=str(data), **TINY))
    assert (len(train_ds), len(val_ds), val_split) == (3, 1, "val2017")
    assert note == "trains on split 'train2017' (3 images), validates on split 'val2017' (1 image)"  # said in the run
    _, train_ds, val_ds, _, note = build_datasets(TrainConfig(data=str(data), train_split="val2017", val_split="",
                                                              **TINY))
    assert (len(train_ds), val_ds) == (1, None)
    assert note == "trains on split 'val2017' (1 image), no validation"
    from datatools.datasets import DetectionDataset

    assert len(DetectionDataset.from_path(data, splits="val")) == 1  # the library finds it by its role too
    data = _yolo_with_splits(tmp_path / "roboflow", {"train": ["a", "b"], "valid": ["c"], "test": ["d"]})
    _, train_ds, val_ds, val_split, _ = build_datasets(TrainConfig(data=str(data), **TINY))
    assert (len(train_ds), len(val_ds), val_split) == (2, 1, "valid")
    data = _yolo_with_splits(tmp_path / "voc_names", {"trainval": ["a", "b"], "val": ["b"]})
    with pytest.raises(UsageError, match="trainval holds"):
        build_datasets(TrainConfig(data=str(data), **TINY))
    data = _yolo_with_splits(tmp_path / "other", {"fold1": ["a"], "fold2": ["b"]})
    with pytest.raises(UsageError, match="no split 'train'"):
        build_datasets(TrainConfig(data=str(data), **TINY))


def test_a_rate_that_is_not_a_finite_number_is_refused_by_the_library_too():
    from datatools.core.errors import UsageError
    from datatools.training.config import check_config

    for bad in ({"lr": float("nan")}, {"lr": 0.0}, {"warmup_epochs": float("inf")}, {"ema_decay": float("nan")}):
        with pytest.raises(UsageError, match="must be a finite number"):
            check_config(TrainConfig(data=str(SAMPLE), out="/tmp/never", **bad))


def test_crowd_regions_are_no_training_targets(tmp_path):
    """A COCO iscrowd box was fed to the detector as a positive; torchvision's references and detectron2 train
    without them, and the validation set keeps them (its evaluation ignores detections there)."""
    from PIL import Image

    from datatools.training.data import build_datasets

    for split, i in (("train", 1), ("val", 2)):
        (tmp_path / "images" / split).mkdir(parents=True)
        Image.new("RGB", (80, 64)).save(tmp_path / "images" / split / f"im{i}.jpg")
        doc = {"images": [{"id": i, "file_name": f"im{i}.jpg", "width": 80, "height": 64}],
               "annotations": [{"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [5, 5, 20, 20], "iscrowd": 0},
                               {"id": 20 + i, "image_id": i, "category_id": 1, "bbox": [30, 10, 45, 50], "iscrowd": 1}],
               "categories": [{"id": 1, "name": "person"}]}
        (tmp_path / "annotations").mkdir(exist_ok=True)
        (tmp_path / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    _, train_ds, val_ds, _, _ = build_datasets(TrainConfig(data=str(tmp_path), **TINY))
    assert train_ds.annotations(0)["boxes"].tolist() == [[5, 5, 25, 25]] and train_ds.dropped == {"crowd-skipped": 1}
    assert len(val_ds.annotations(0)["boxes"]) == 2


def test_predict_on_a_folder_writes_the_training_datas_category_ids(tmp_path):
    # COCO's ids have gaps (1..90 for 80 classes): a plain folder's predictions were written 1..K, so "mango" (id 4)
    # was scored as "apple" (id 3) with no finding
    import shutil

    import datatools

    src = tmp_path / "coco"
    shutil.copytree(SAMPLE / "JPEGImages", src)  # the JSON beside its images
    datatools.convert("voc", SAMPLE, "coco", tmp_path / "c.json", images_mode="none")
    doc = json.loads((tmp_path / "c.json").read_text())
    gap = {c["id"]: 10 * c["id"] + 1 for c in doc["categories"]}  # 1..4 -> 11, 21, 31, 41
    for c in doc["categories"]:
        c["id"] = gap[c["id"]]
    for a in doc["annotations"]:
        a["category_id"] = gap[a["category_id"]]
    (src / "instances.json").write_text(json.dumps(doc))
    train(TrainConfig(data=str(src / "instances.json"), out=str(tmp_path / "run"), epochs=1, val_split="", **TINY))
    assert load_checkpoint(tmp_path / "run" / "last.pt")["category_ids"] == [11, 21, 31, 41]
    folder = tmp_path / "imgs"
    folder.mkdir()
    for j in sorted((SAMPLE / "JPEGImages").glob("*.jpg"))[:2]:
        (folder / j.name).write_bytes(j.read_bytes())
    r = CliRunner().invoke(cli, ["predict", str(tmp_path / "run" / "last.pt"), str(folder), "-o",
                                 str(tmp_path / "p.json"), "-j", "0", "--conf", "0"])
    assert r.exit_code == 0, r.output
    written = {p["category_id"] for p in json.loads((tmp_path / "p.json").read_text())}
    assert written and written <= {11, 21, 31, 41}


def test_a_last_batch_of_one_image_does_not_stop_ssdlite(tmp_path):
    # 9 images at -b 4: the last batch held one, and SSDlite's BatchNorm stopped the run with a torch traceback
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(tmp_path / "run"),
                                 "--model", "ssdlite320_mobilenet_v3_large", "--image-size", "64", "--epochs", "1",
                                 "-b", "4", "--limit", "9", "-j", "0",
                                 "--val-split", "", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(tmp_path / "run1"),
                                 "--model", "ssdlite320_mobilenet_v3_large", "--image-size", "64", "--epochs", "1",
                                 "-b", "1", "--limit", "2", "-j", "0",
                                 "--val-split", "", "--device", "cpu"])
    assert r.exit_code == 2 and "pass -b 2 or more" in r.output and "Traceback" not in r.output, r.output


def test_a_val_split_asked_by_name_is_found_by_role_or_refused(tmp_path):
    from datatools.training.data import build_datasets

    # Roboflow's data.yaml calls its valid/ folder val: --val-split valid found nothing and trained without one
    _, _, val_ds, val_split, _ = build_datasets(TrainConfig(data=str(SAMPLE), val_split="valid", **TINY))
    assert val_split == "val" and val_ds is not None
    with pytest.raises(Exception, match="no split 'holdout'"):
        build_datasets(TrainConfig(data=str(SAMPLE), val_split="holdout", **TINY))


def test_split_names_with_a_number_or_a_union_are_never_another_split():
    from datatools.formats.common import split_named

    assert split_named("valid", ["train", "val"]) == "val" and split_named("val", ["train", "valid"]) == "valid"
    assert split_named("val3", ["train1", "val1"]) is None  # k-fold parts: not the first val part
    assert split_named("trainval", ["train", "valid"]) is None  # a union: not train alone
    assert split_named("val2014", ["train2017", "val2017"]) is None


def test_ssdlite_with_accumulate_leaves_no_micro_batch_of_one(tmp_path):
    # -b 4 --accumulate 2 on 10 images: the last loader batch of 2 split into micro-batches of one each
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(tmp_path / "run"), "--model",
                                 "ssdlite320_mobilenet_v3_large", "--image-size", "64", "--epochs", "1", "-b", "4",
                                 "--accumulate", "2", "--limit", "10", "-j", "0", "--val-split", "", "--device", "cpu"])
    assert r.exit_code == 0, r.output
