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
from datatools.training import trainer as trainer_mod
from datatools.training.models import MODELS, build_model, load_weights
from datatools.training.trainer import TrainConfig, TrainingDiverged, load_checkpoint, lr_factor, param_groups, train

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


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    cfg = TrainConfig(data=str(SAMPLE), out=str(tmp_path / "a"), epochs=2, val_split=None, seed=3, **TINY)
    train(cfg)
    straight = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
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
    resumed = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real_build = trainer_mod.build_model
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

    monkeypatch.setattr(trainer_mod, "build_model", poisoned)
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
    from datatools.training.trainer import evaluate_checkpoint

    m50, m, _ = evaluate_checkpoint(out / "last.pt", device="cpu")
    assert m50 > 0 and (log[0]["map50"], log[0]["map"]) == (f"{m50:.5f}", f"{m:.5f}")


@pytest.mark.parametrize("step,expected", [
    (0, 1e-3), (5, 1e-3 + (1 - 1e-3) * 0.5), (10, 1.0), (110, 0.01),
])
def test_lr_schedule_cosine(step, expected):
    assert lr_factor(step, total=110, warmup=10, schedule="cosine", min_ratio=0.01) == pytest.approx(expected)


@pytest.mark.parametrize("step,expected", [(0, 1.0), (66, 1.0), (67, 0.1), (89, 0.01)])
def test_lr_schedule_multistep(step, expected):
    assert lr_factor(step, total=100, warmup=0, schedule="multistep", min_ratio=0.0) == pytest.approx(expected)


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
    assert r.exit_code == 2 and "weights_only" in r.output


def test_cli_usage_errors(tmp_path):
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--out", str(tmp_path / "o"), "--resume"])
    assert r.exit_code == 2 and "last.pt" in r.output
    r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--train-split", "nope", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "nope" in r.output
    if not torch.cuda.is_available():
        r = CliRunner().invoke(cli, ["train", str(SAMPLE), "--device", "cuda", "--out", str(tmp_path / "o")])
        assert r.exit_code == 2 and "CUDA" in r.output


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
