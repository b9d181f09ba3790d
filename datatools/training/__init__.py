"""Training torchvision detectors on any supported dataset (imports torch).

* :func:`train` with a :class:`TrainConfig`: the loop (:mod:`~datatools.training.loop`); its options and checks in
  :mod:`~datatools.training.config`, optimizer, LR schedule and EMA in :mod:`~datatools.training.optim`, datasets and
  loaders in :mod:`~datatools.training.data`, processes and devices in :mod:`~datatools.training.distributed`.
* :func:`evaluate_checkpoint`: a checkpoint scored on its validation split as training scores it
  (:mod:`~datatools.training.evaluation`); :func:`load_checkpoint` / :func:`save_checkpoint`
  (:mod:`~datatools.training.checkpoint`).
* :func:`build_model`: torchvision builders, never downloading weights (:mod:`~datatools.training.models`).
* :func:`predict`: a checkpoint + images -> COCO results (:mod:`~datatools.training.prediction`).

The names are imported on first use, so ``import datatools.training.models`` does not load the loop.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "TrainConfig": "config", "check_config": "config",
    "train": "loop", "TrainResult": "loop", "EpochLog": "loop", "TrainingDiverged": "loop",
    "evaluate_checkpoint": "evaluation", "predict_batches": "evaluation",
    "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "build_model": "models", "load_weights": "models", "MODELS": "models",
    "predict": "prediction", "PredictResult": "prediction",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
