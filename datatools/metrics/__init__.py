"""The evaluator: COCO metrics through pycocotools (or faster-coco-eval) and Pascal VOC AP written with numpy.

* :func:`datatools.metrics.evaluate.evaluate` - files in, :class:`~datatools.metrics.evaluate.EvalReport` out.
* :func:`datatools.metrics.voc.evaluate_voc` / :func:`datatools.metrics.voc.average_precision` - VOC AP on arrays.
* :func:`datatools.metrics.coco.coco_evaluate` - COCOeval's 12 numbers, guarded against its known traps.

Nothing here imports torch.
"""
