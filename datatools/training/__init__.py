"""Training torchvision detectors on any supported dataset (imports torch).

* :func:`datatools.training.trainer.train` with a :class:`~datatools.training.trainer.TrainConfig`: the loop.
* :func:`datatools.training.models.build_model`: torchvision builders, never downloading weights.
* :func:`datatools.training.predict.predict`: a checkpoint + images -> COCO results.
"""
