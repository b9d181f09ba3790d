"""Fine-tuning: --weights NAME|PATH, --weights-backbone NAME|PATH, --freeze-backbone, --backbone-lr-mult.

These machines reach no model hub, so torchvision's weights names are tested by resolving the enum, by a fetch that
fails (a one-line error), and by torchvision's own cache holding the file (read without a network). The files are
state dicts saved here from randomly initialized models, with COCO's 91 classes where a COCO file would have them.
"""
from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torchvision  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from datatools.cli import cli  # noqa: E402
from datatools.core.errors import FormatError, UsageError  # noqa: E402
from datatools.training.config import TrainConfig  # noqa: E402
from datatools.training.models import (build_model, freeze_backbone, init_weights, load_backbone_weights,  # noqa: E402
                                       load_weights, resolve_weights)
from datatools.training.optim import build_optimizer, build_scheduler  # noqa: E402
from tests.conftest import SAMPLE  # noqa: E402

FRCNN = "fasterrcnn_mobilenet_v3_large_fpn"
HEAD = "roi_heads.box_predictor.cls_score.weight"
TRUNK = "backbone.body.0.0.weight"

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


@pytest.fixture(scope="module")
def coco_state() -> dict:
    """What torchvision's COCO_V1 file of the default model holds: its layout with 91 classes (random values)."""
    torch.manual_seed(1)
    return build_model(FRCNN, 90).state_dict()


@pytest.fixture()
def offline(monkeypatch, tmp_path) -> Path:
    """An empty torch cache and no network: a fetch fails as it does on these machines."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.mark.parametrize("value, backbone, expected", [
    ("COCO_V1", False, "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1"),
    ("DEFAULT", False, "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1"),
    ("FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1", False, "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1"),
    ("IMAGENET1K_V1", True, "MobileNet_V3_Large_Weights.IMAGENET1K_V1"),
    ("MobileNet_V3_Large_Weights.DEFAULT", True, "MobileNet_V3_Large_Weights.IMAGENET1K_V2"),
])
def test_weights_names_resolve_to_torchvisions_enum(value, backbone, expected):
    w = resolve_weights(value, FRCNN, backbone=backbone)
    assert isinstance(w, torchvision.models.WeightsEnum) and f"{type(w).__name__}.{w.name}" == expected


@pytest.mark.parametrize("value, backbone, match", [
    ("COCO_V2", False, "not a torchvision weights name of fasterrcnn.*COCO_V1, DEFAULT"),
    ("IMAGENET1K_V1", False, "not a torchvision weights name"),  # a backbone name given as --weights
    ("ResNet50_Weights.IMAGENET1K_V1", True, "mobilenet_v3_large.*IMAGENET1K_V1"),
    ("runs/missing.pth", False, "runs/missing.pth: no such weights file"),
])
def test_bad_names_and_missing_files_are_one_line_errors(value, backbone, match):
    with pytest.raises(UsageError, match=match) as e:
        resolve_weights(value, FRCNN, backbone=backbone)
    assert "\n" not in str(e.value)


def test_a_failed_fetch_is_one_line_naming_the_url_and_the_cache(offline):
    model = build_model(FRCNN, 3)
    with pytest.raises(UsageError) as e:
        load_weights(model, "COCO_V1", model_name=FRCNN)
    msg = str(e.value)
    assert "\n" not in msg and "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth" in msg and str(offline) in msg
    assert "Name or service not known" in msg and "local .pth" in msg


def test_a_name_loads_from_torchvisions_cache_with_the_head_rebuilt(offline, coco_state):
    offline.mkdir(parents=True)
    torch.save(coco_state, offline / "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth")
    torch.manual_seed(2)
    model = build_model(FRCNN, 3)
    head_before = model.state_dict()[HEAD].clone()
    counts = load_weights(model, "DEFAULT", model_name=FRCNN)
    own = model.state_dict()
    assert counts["skipped"] == 4 and counts["loaded"] == len(own) - 4  # the box predictor's 4 tensors
    assert torch.equal(own[TRUNK], coco_state[TRUNK]) and torch.equal(own["rpn.head.conv.0.0.weight"],
                                                                      coco_state["rpn.head.conv.0.0.weight"])
    assert own[HEAD].shape == (4, 1024) and torch.equal(own[HEAD], head_before)  # 3 classes + background


def test_a_local_coco_state_dict_loads_all_but_the_head(tmp_path, coco_state):
    path = tmp_path / "coco.pth"
    torch.save(coco_state, path)
    model = build_model(FRCNN, 5)
    counts = load_weights(model, path, model_name=FRCNN)
    assert counts["skipped"] == 4 and counts["unexpected"] == 0
    assert torch.equal(model.state_dict()["roi_heads.box_head.fc6.weight"], coco_state["roi_heads.box_head.fc6.weight"])
    # a file of the same classes (e.g. a run's own checkpoint) loads its head too
    same = build_model(FRCNN, 90)
    assert load_weights(same, path, model_name=FRCNN)["skipped"] == 0
    assert torch.equal(same.state_dict()[HEAD], coco_state[HEAD])


def test_a_file_of_another_model_is_a_one_line_error(tmp_path, coco_state):
    model = build_model(FRCNN, 3)
    other = tmp_path / "ssdlite.pth"
    torch.save(build_model("ssdlite320_mobilenet_v3_large", 3).state_dict(), other)
    with pytest.raises(UsageError, match=r"ssdlite.pth does not fit fasterrcnn_mobilenet_v3_large_fpn: .*missing"):
        load_weights(model, other, model_name=FRCNN)
    bent = dict(coco_state)
    bent[TRUNK] = torch.zeros(8, 3, 3, 3)
    torch.save(bent, tmp_path / "bent.pth")
    with pytest.raises(UsageError) as e:
        load_weights(model, tmp_path / "bent.pth", model_name=FRCNN)
    assert "\n" not in str(e.value)
    assert f"1 tensor(s) of another shape (first {TRUNK}: (8, 3, 3, 3) in the file, (16, 3, 3, 3)" in str(e.value)
    (tmp_path / "list.pth").write_bytes(b"not a torch file")
    with pytest.raises(FormatError, match=r"list.pth: cannot load with torch.load\(weights_only=True\): not a file of tensors, numbers and "
                                          r"containers only \(Unsupported operand 110\)$"):
        load_weights(model, tmp_path / "list.pth", model_name=FRCNN)
    with pytest.raises(UsageError, match="full MobileNetV3 tail"):  # SSDlite from torchvision's weights: refused
        resolve_weights("COCO_V1", "ssdlite320_mobilenet_v3_large")


def test_backbone_weights_from_an_imagenet_state_dict(tmp_path):
    torch.manual_seed(3)
    clf = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    torch.save(clf, tmp_path / "mnv3.pth")
    model = build_model(FRCNN, 3)
    assert load_backbone_weights(model, tmp_path / "mnv3.pth", model_name=FRCNN)["loaded"] > 200
    own = model.state_dict()
    for ours, theirs in ((TRUNK, "features.0.0.weight"),
                         ("backbone.body.16.1.running_var", "features.16.1.running_var"),
                         ("backbone.body.7.block.1.0.weight", "features.7.block.1.0.weight")):
        assert torch.equal(own[ours], clf[theirs]), ours
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(UsageError, match=r"r18.pth does not fit the mobilenet_v3_large trunk of fasterrcnn"):
        load_backbone_weights(model, tmp_path / "r18.pth", model_name=FRCNN)


def test_freeze_backbone_and_the_backbone_learning_rate(tmp_path):
    cfg = TrainConfig(data="x", model=FRCNN, image_size=64, lr=0.02, backbone_lr_mult=0.1, freeze_backbone=False)
    model = build_model(FRCNN, 3)
    opt = build_optimizer(model, cfg)
    trunk = {id(p) for n, p in model.named_parameters() if n.startswith("backbone.body.")}
    mults = {g["lr_mult"] for g in opt.param_groups if {id(p) for p in g["params"]} <= trunk}
    rest = {g["lr_mult"] for g in opt.param_groups if not {id(p) for p in g["params"]} & trunk}
    assert mults == {0.1} and rest == {1.0} and sum(len(g["params"]) for g in opt.param_groups) == len(
        [p for p in model.parameters() if p.requires_grad])
    sched = build_scheduler(opt, lr=0.02, total=20, warmup=4, min_ratio=0.01)
    for _ in range(20):  # every group on the same curve, the trunk's scaled by 0.1 (warm-up and cosine alike)
        lrs = {g["lr_mult"]: g["lr"] for g in opt.param_groups}
        assert lrs[0.1] == pytest.approx(0.1 * lrs[1.0], rel=1e-9)
        opt.step()
        sched.step()
    assert lrs[1.0] < 0.02 * 0.05
    # --freeze-backbone: the trunk leaves the optimizer; the FPN and heads still train
    frozen_cfg = TrainConfig(data="x", model=FRCNN, image_size=64, freeze_backbone=True)
    notes = init_weights(model, frozen_cfg)
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("backbone.body."))
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("backbone.fpn."))
    assert not {id(p) for g in build_optimizer(model, frozen_cfg).param_groups for p in g["params"]} & trunk
    assert "--freeze-backbone" in notes[0] and freeze_backbone(model, FRCNN) == len(trunk)


def test_fine_tuning_freezes_batchnorm_unless_told_otherwise():
    assert TrainConfig(data="x").freeze_bn is False
    assert TrainConfig(data="x", weights="w.pth").freeze_bn is True
    assert TrainConfig(data="x", weights_backbone="IMAGENET1K_V1").freeze_bn is True
    assert TrainConfig(data="x", weights="w.pth", freeze_bn=False).freeze_bn is False


@pytest.mark.slow  # about 15 s on 2 cores: a 1-epoch run on 4 images and two checkpoints of 19M parameters
def test_train_fine_tunes_from_a_local_state_dict(tmp_path, coco_state):
    """The command end to end: a COCO-layout file, the head rebuilt for sample_data's 4 classes, the backbone
    frozen; the checkpoint then loads into the model that predict builds."""
    torch.save(coco_state, tmp_path / "coco.pth")
    out = tmp_path / "run"
    args = ["train", str(SAMPLE), "--out", str(out), "--model", FRCNN, "--weights", str(tmp_path / "coco.pth"),
            "--freeze-backbone", "--backbone-lr-mult", "0.1", "--epochs", "1", "--limit", "4", "--image-size", "64",
            "-b", "2", "--workers", "0", "--device", "cpu", "--val-split", "", "--json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    notes = " ".join(json.loads(res.output[res.output.index("{"):])["notes"])
    assert "4 class-head tensors rebuilt" in notes and "--freeze-backbone" in notes and "BatchNorm" in notes
    ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["args"]["freeze_bn"] is True and ckpt["args"]["backbone_lr_mult"] == 0.1
    assert torch.equal(ckpt["model"][TRUNK], coco_state[TRUNK])  # frozen: still the file's
    assert ckpt["model"][HEAD].shape == (5, 1024)
    build_model(FRCNN, 4, image_size=64).load_state_dict(ckpt["model"])
    bad = CliRunner().invoke(cli, args[:2] + ["--out", str(tmp_path / "run2")] + args[4:6]
                             + ["--weights", str(tmp_path / "nope.pth")] + args[8:-1])
    assert bad.exit_code != 0 and "nope.pth: no such weights file" in bad.output and "Traceback" not in bad.output


@pytest.mark.slow  # about 10 s on 2 cores: a 1-epoch run on 4 images
def test_train_rebuilds_the_head_of_a_checkpoint_with_other_class_names(tmp_path):
    """A datatools checkpoint of 4 other classes fits sample_data's 4-class head by shape; its class head must not
    be loaded (the classes would be swapped silently): the run passes its class names to the weight loader."""
    other = build_model(FRCNN, 4, image_size=64).state_dict()
    torch.save({"model": other, "classes": ["w", "x", "y", "z"]}, tmp_path / "other.pt")
    out = tmp_path / "run"
    args = ["train", str(SAMPLE), "--out", str(out), "--model", FRCNN, "--weights", str(tmp_path / "other.pt"),
            "--epochs", "1", "--limit", "4", "--image-size", "64", "-b", "2", "--workers", "0", "--device", "cpu",
            "--val-split", "", "--lr", "1e-9", "--json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    notes = " ".join(json.loads(res.output[res.output.index("{"):])["notes"])
    assert "class-head tensors rebuilt" in notes, notes
