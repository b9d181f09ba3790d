"""The Python API as a library user meets it: names that are what the docs say, arguments checked as the CLI
checks them, no process-wide state changed behind the caller's back, results that serialise."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import datatools
from datatools.core.errors import UsageError
from tests.conftest import ROOT, SAMPLE, make_voc_root, voc_xml


def test_training_predict_is_the_function():
    """The lazy import bound datatools.training.predict to its submodule: predict(...) raised 'module object is not
    callable' on the first import."""
    from datatools.training import predict

    assert callable(predict) and predict.__name__ == "predict"


def test_a_train_config_of_paths_holds_strings():
    """Path values went into the checkpoint's args: after an hours-long run, torch.load(weights_only=True) refused
    every checkpoint (Unsupported global: pathlib.PosixPath)."""
    from datatools.training import TrainConfig

    import numpy as np

    cfg = TrainConfig(data=Path("data"), out=Path("runs/x"), weights=Path("w.pth"), lr=np.float64(0.01),
                      image_size=np.int64(320))
    assert (cfg.data, cfg.out, cfg.weights) == ("data", "runs/x", "w.pth")
    assert all(type(v).__module__ == "builtins" for v in cfg.to_dict().values())  # numpy numbers too


@pytest.mark.parametrize("classes, message", [("circle", "not the string 'circle'"),
                                              (["circle", "square", "circle"], "'circle' twice")])
def test_a_class_list_is_checked_by_the_library_as_by_the_cli(tmp_path, classes, message):
    """classes="circle" was the classes c, i, r, l, e (591 objects dropped, no error); a name twice wrote two COCO
    categories of one id and a YOLO class 0 no box used; evaluate counted every prediction twice."""
    from datatools.metrics.inputs import load_ground_truth

    with pytest.raises(UsageError, match=message):
        datatools.convert("voc", SAMPLE, "coco", tmp_path / "o", classes=classes, images_mode="none")
    with pytest.raises(UsageError, match=message):
        datatools.load("voc", SAMPLE, classes=classes)
    with pytest.raises(UsageError, match=message):
        load_ground_truth(SAMPLE, classes=classes)
    yolo = tmp_path / "y"
    datatools.convert("voc", SAMPLE, "yolo", yolo, images_mode="none")
    with pytest.raises(UsageError, match=message):  # a YOLO source takes the list as its names
        datatools.convert("yolo", yolo, "coco", tmp_path / "o", classes=classes, images_mode="none")
    from datatools.datasets import VOCDetection

    with pytest.raises(ValueError, match=message):
        VOCDetection(SAMPLE, classes=classes)
    assert not (tmp_path / "o").exists()


def test_load_detects_the_format_as_every_command():
    assert len(datatools.load("auto", SAMPLE).images) == len(datatools.load(None, SAMPLE).images) == 200


def test_a_library_call_leaves_the_start_method_unset():
    """A process pool made with the default context fixed the start method: a script that called
    set_start_method("spawn") after building its dataset failed ("context has already been set")."""
    code = ("import multiprocessing as mp, datatools\n"
            f"datatools.load('voc', {str(SAMPLE)!r}, workers=2)\n"
            "assert mp.get_start_method(allow_none=True) is None\n"
            "mp.set_start_method('spawn')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr


def test_train_gives_back_torchs_switches():
    """train(deterministic=True) left torch's deterministic algorithms and cudnn switches on in the caller's
    process, run or no run."""
    import torch

    from datatools.training import TrainConfig, train

    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    with pytest.raises(UsageError, match="no split 'nope'"):
        train(TrainConfig(data=str(SAMPLE), out="/tmp/never", deterministic=True, train_split="nope", device="cpu"))
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == before


def test_stats_to_dict_is_json(tmp_path):
    """Images of unknown size left NaN in StatsReport.to_dict(): json.dumps wrote NaN tokens a strict reader
    refuses (the CLI's --json cleaned them; the library's own dict did not)."""
    from datatools.ops.stats import dataset_stats

    voc = make_voc_root(tmp_path / "voc", {"a": voc_xml("a.jpg", None, [{"name": "cat", "box": (1, 1, 9, 9)}])})
    report = dataset_stats(datatools.load("voc", voc), labels_only=True)
    json.dumps(report.to_dict(), allow_nan=False)


def test_draw_boxes_takes_what_the_datasets_return():
    """A (3, H, W) uint8 tensor from VOCDetection: 'Cannot handle this data type: (1, 1, 320), |u1'."""
    from datatools.datasets import VOCDetection
    from datatools.viz import draw_boxes

    ds = VOCDetection(SAMPLE, image_set="train", label_offset=0)
    image, target = ds[0]
    drawn = draw_boxes(image, target["boxes"], [ds.classes[i] for i in target["labels"]])
    assert drawn.size == (image.shape[-1], image.shape[-2])
    import torch

    four = torch.cat([image, image[:1]])  # RGBA, channels first
    assert draw_boxes(four, target["boxes"]).size == drawn.size


def test_torchvisions_transform_keywords_and_a_slice():
    """VOCDetection(..., transform=...) raised "unexpected keyword argument 'transform'" (torchvision code ports use
    it); ds[0:2] raised a TypeError about comparing int and slice."""
    from torchvision.transforms import v2

    from datatools.datasets import VOCDetection

    ds = VOCDetection(SAMPLE, image_set="train", transform=v2.Grayscale(3),
                      target_transform=lambda t: {**t, "seen": True})
    image, target = ds[0]
    assert target["seen"] and bool((image[0] == image[1]).all())
    with pytest.raises(ValueError, match="not both"):
        VOCDetection(SAMPLE, image_set="train", transforms=v2.Identity(), transform=v2.Identity())
    with pytest.raises(TypeError, match="Subset"):
        ds[0:2]
    import torch

    assert ds[torch.tensor(3)][1]["image_id"] == ds[3][1]["image_id"]  # a 0-d tensor is an index, as before


def test_predictions_whose_numbers_are_strings_are_dropped_and_counted(tmp_path):
    """A bbox of strings and a score of "0.7" were read as numbers (ground truth refuses them, pycocotools' loadRes
    fails on them): dropped now, each counted."""
    from datatools.metrics.evaluate import evaluate

    pred = tmp_path / "p.json"
    pred.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
                                {"image_id": 1, "category_id": 1, "bbox": ["10", "10", "20", "20"], "score": 0.8},
                                {"image_id": 2, "category_id": 1, "bbox": [10, 10, 20, 20], "score": "0.7"}]))
    report = evaluate(SAMPLE, pred, split="val", metric="voc")
    found = {f.code: f.objects for f in report.findings if f.code.startswith("pred-")}
    assert found == {"pred-bad-box": 1, "pred-missing-score": 1}
