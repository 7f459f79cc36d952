"""vision.rings: a ring or box a writer draws around a number, its own stroke only."""

import cv2
import numpy as np
import pytest

from training.mnist import load_mnist
from vision.digits import paper_ink
from vision.rings import drawn_rings


def _ink(photo: np.ndarray) -> np.ndarray:
    _, mask, lines, _ = paper_ink(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), 768, pen_lines=True)
    return cv2.bitwise_or(mask, lines)


def _number(fixtures, count: int, gaps: list[int]) -> np.ndarray:
    from photos import written_number

    digits = list(load_mnist(fixtures / "mnist")["train_images"][:count])
    return cv2.copyMakeBorder(written_number(digits, gaps), 40, 40, 20, 20, cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("reach", [185, 165], ids=["grazing-the-ends", "through-the-ends"])
def test_a_ring_around_three_digits_is_found_without_the_digits_it_touches(fixtures, reach):
    """An ellipse around 5 0 4 that grazes the 5's and the 4's outer strokes, or runs through them
    (only the 0 is apart from it): the ring is found, and what it takes of the digits' own ink is
    no more than where it crosses them."""
    photo = _number(fixtures, 3, [30, 30])
    height, width = photo.shape[:2]
    digits = _ink(photo) > 0
    circled, drawn = photo.copy(), np.zeros((height, width), np.uint8)
    for canvas, colour in ((circled, (30, 30, 30)), (drawn, 255)):
        cv2.ellipse(canvas, (width // 2, height // 2), (reach, height // 2 - 10), 0, 0, 360, colour, 7)
    rings, boxes = drawn_rings(_ink(circled))
    assert len(boxes) == 1 and boxes[0][2] > 2 * reach - 20
    crossed = (cv2.dilate(drawn, np.ones((5, 5), np.uint8)) > 0) & digits  # the ring and its soft edge
    taken = (rings > 0) & digits
    assert taken.sum() <= crossed.sum() + 0.01 * digits.sum(), (taken.sum(), crossed.sum(), digits.sum())


@pytest.mark.parametrize("gaps", [[30, 30, 30], [-12, -12, -12]], ids=["apart", "touching"])
def test_a_number_without_a_ring_has_none(fixtures, gaps):
    """Digits apart, or touching (a 0 between digits it touches surrounds none of them)."""
    rings, boxes = drawn_rings(_ink(_number(fixtures, 4, gaps)))
    assert boxes == [] and not rings.any()
