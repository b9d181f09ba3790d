"""core/boxes.py is the only box-conversion code: scalar and vectorised forms must agree and invert exactly."""
from __future__ import annotations

import numpy as np
import pytest

from datatools.core import boxes as B

BOXES = [(0.0, 0.0, 64.0, 48.0), (1.5, 2.25, 10.0, 40.0), (-3.0, 5.0, 120.0, 50.0)]


@pytest.mark.parametrize("conv", list(B.PixelConvention))
@pytest.mark.parametrize("voc", [(1, 1, 64, 48), (10, 12, 30, 40), (45.7, 3, 46.2, 9)])
def test_voc_conventions_invert(conv, voc):
    assert B.xyxy_to_voc(B.voc_to_xyxy(*voc, conv), conv) == pytest.approx(voc)


@pytest.mark.parametrize("box", BOXES)
def test_scalar_round_trips(box):
    assert B.xywh_to_xyxy(*B.xyxy_to_xywh(box)) == pytest.approx(box)
    assert B.yolo_to_xyxy(*B.xyxy_to_yolo(box, 64, 48), 64, 48) == pytest.approx(box)
    for fmt in B.BoxFormat:
        assert B.convert(B.convert(box, B.BoxFormat.XYXY, fmt, width=64, height=48), fmt, B.BoxFormat.XYXY,
                         width=64, height=48) == pytest.approx(box)


def test_formats_may_be_named_by_their_text():
    # BoxFormat is a str enum and convert compared with `is`: "xywh" -> "xyxy" returned the YOLO numbers
    for src, dst in [("xywh", "xyxy"), ("xyxy", "cxcywh-norm"), ("cxcywh-norm", "xywh")]:
        assert B.convert((10, 20, 30, 40), src, dst, width=100, height=100) == B.convert(
            (10, 20, 30, 40), B.BoxFormat(src), B.BoxFormat(dst), width=100, height=100)
    assert B.convert((10, 20, 30, 40), "xywh", "xyxy") == (10, 20, 40, 60)


def test_array_forms_match_scalar_forms_and_do_not_mutate():
    a = np.array(BOXES)
    before = a.copy()
    xywh = B.xyxy_to_xywh_array(a)
    assert np.allclose(xywh, [B.xyxy_to_xywh(b) for b in BOXES])
    assert np.allclose(B.xywh_to_xyxy_array(xywh), a) and np.array_equal(a, before)
    assert B.xyxy_to_xywh_array(np.zeros((0, 4))).shape == (0, 4)


@pytest.mark.parametrize("value,precision,text", [(1.0, 6, "1"), (0.5, 6, "0.5"), (-1e-9, 6, "0"),
                                                  (45.70000076293945, 6, "45.700001"), (100, 2, "100")])
def test_fmt_number_is_deterministic_text(value, precision, text):
    assert B.fmt_number(value, precision) == text
