"""vision.geometry: boxes in image pixels."""

import pytest

from vision.geometry import Box, iou


def test_iou():
    a = Box(0, 0, 10, 10)
    assert iou(a, a) == 1.0
    assert iou(a, Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(a, Box(20, 20, 5, 5)) == 0.0


def test_a_box_is_within_another_that_holds_it_edges_included():
    outer = Box(10, 10, 100, 50)
    assert Box(10, 10, 100, 50).within(outer) and Box(20, 20, 10, 10).within(outer)
    assert not Box(5, 20, 10, 10).within(outer) and not Box(100, 20, 11, 10).within(outer)
    assert not outer.within(Box(20, 20, 10, 10))
