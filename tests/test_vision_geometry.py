"""vision.geometry: boxes in image pixels."""

import pytest

from vision.geometry import Box, iou


def test_iou():
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(a, Box(20, 20, 5, 5)) == 0.0
