"""``split``: leak-free train/val/test splits and k folds, written in the input's own convention.

Use :func:`plan_split` to decide which image goes where (pure: the dataset in, a :class:`SplitPlan` out, nothing
written), then :func:`write_split` to write the parts next to each other in OUT. The modules:

* :mod:`.plan`: :func:`plan_split`, :class:`SplitPlan`, the part reports, the random and hash assignments;
* :mod:`.stratify`: iterative stratification and the passes that fit part sizes and balance classes;
* :mod:`.groups`: group keys from a regex or an image-level field, and ``--dedup``'s clusters of copies;
  :mod:`.group_file`: group keys from a CSV/TSV or a mapping;
* :mod:`.write`: :func:`write_split`, each format's layout.

The methods (``stratified``, ``random``, ``group``, ``hash``), what each promises and how groups are keyed:
docs/split.md. Randomness comes from a ``numpy.random.Generator`` made from the seed; the caller's data and the global
generators are never touched, so the same seed and input give the same plan and the same output bytes.
"""
from __future__ import annotations

from datatools.ops.split.group_file import GroupFile, read_group_file
from datatools.ops.split.groups import group_keys, image_attributes, parse_group_by, resolve_groups
from datatools.ops.split.plan import METHODS, TEST, TRAIN, VAL, PartReport, SplitPlan, plan_split, stable_unit
from datatools.ops.split.stratify import (balance_by_swaps, fit_part_sizes, integer_targets, iterative_stratification,
                                          stratify)
from datatools.ops.split.write import SplitWriteResult, write_split

__all__ = ["METHODS", "TEST", "TRAIN", "VAL", "GroupFile", "PartReport", "SplitPlan", "SplitWriteResult",
           "balance_by_swaps", "fit_part_sizes", "group_keys", "image_attributes", "integer_targets",
           "iterative_stratification", "parse_group_by", "plan_split", "read_group_file", "resolve_groups",
           "stable_unit", "stratify", "write_split"]
