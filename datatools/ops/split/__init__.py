"""``split``: leak-free train/val/test splits and k folds, written in the input's own convention.

Use :func:`plan_split` to decide which image goes where (pure: the dataset in, a :class:`SplitPlan` out, nothing
written), then :func:`write_split` to write the parts next to each other in OUT. The modules:

* :mod:`.plan`: :func:`plan_split`, :class:`SplitPlan`, the part reports, the random and hash assignments;
* :mod:`.stratify`: iterative stratification and the passes that fit part sizes and balance classes;
* :mod:`.groups`: group keys from a regex or an image-level field; :mod:`.group_file`: from a CSV/TSV or a mapping;
* :mod:`.write`: :func:`write_split`, each format's layout (docs/split.md).

Methods:

* ``stratified`` (default): multi-label iterative stratification (Sechidis, Tsoumakas and Vlahavas, 2011). The rarest
  class is placed first, each of its images going to the part that still needs the most objects of that class, so
  every class, rare ones included, lands in every part close to the asked share. Demands are counted in objects (an
  image with 5 cars moves 5 cars); within a class, images with more of its objects go first; ties go to the part that
  still needs the most images, then to a seeded coin. Images without objects count as one more class, so they are
  spread in the asked proportions too. Then :func:`fit_part_sizes` moves images until every part holds exactly its
  asked number of images (a count asked is the count you get), and :func:`balance_by_swaps` swaps images between
  parts where that brings each class closer to its share, in objects and in images containing it.
* ``random``: a seeded permutation cut at the asked sizes.
* ``group``: the same stratification on groups of images, so frames of one video never straddle parts (part sizes
  close to the ask, as far as moving and swapping whole groups gets). The group key
  comes from ``group_by``: a regex on the image id (``regex:P`` or a bare ``P``: the first capture group, or the whole
  match), an image-level field (``attr:video_id``: a COCO image dict key; ``attr:folder``, ``attr:source.database``:
  VOC tags), or a mapping file (:func:`read_group_file`). Images without a key are each their own group, counted in a
  finding, never dropped.
* ``hash``: a part chosen by ``sha1(image id)`` (or of the group key) mapped to [0, 1): adding images later never moves
  an existing one. Ratios only; the seed is not used.

Randomness comes from a ``numpy.random.Generator`` made from the seed; the caller's data and the global generators are
never touched. The same seed and input give the same plan and the same output bytes.
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
