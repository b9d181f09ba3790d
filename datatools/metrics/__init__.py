"""The evaluator: COCO metrics through faster-coco-eval or pycocotools, and Pascal VOC AP written with numpy.

* :func:`datatools.metrics.evaluate.evaluate` - files in, :class:`~datatools.metrics.evaluate.EvalReport` out.
* :func:`datatools.metrics.voc.evaluate_voc` / :func:`datatools.metrics.voc.average_precision` - VOC AP on arrays.
* :func:`datatools.metrics.coco.coco_evaluate` - COCOeval's 12 numbers, guarded against its known traps.
* :func:`datatools.metrics.inputs.load_ground_truth` / :func:`datatools.metrics.predictions.load_predictions` -
  ground truth in any format, and a predictions file matched to it (also what ``visualize --pred`` reads).

Nothing here imports torch.
"""
