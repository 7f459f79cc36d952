"""vision.number_page: a number's ink grouped into digits, what is no digit left out with its box."""

import cv2
import numpy as np
import pytest

from training.mnist import load_mnist
from vision.digits import NoDigit
from vision.number_page import NumberPage, number_page


def _page(fixtures, gaps) -> tuple[NumberPage, np.ndarray]:
    from photos import written_number

    photo = written_number(list(load_mnist(fixtures / "mnist")["train_images"][:4]), gaps)
    return number_page(photo), photo


def test_the_groups_run_left_to_right_one_per_digit(fixtures):
    page, _ = _page(fixtures, [30, 30, 30])
    lefts = [page.bounds(group)[0] for group in page.groups]
    assert len(page.groups) == 4 and lefts == sorted(lefts)


def test_a_ruled_line_under_the_number_is_left_out_as_a_line_with_its_box(fixtures):
    page, photo = _page(fixtures, [30, 30, 30])
    width = photo.shape[1]
    y = max(page.bounds(group)[3] for group in page.groups) + 4  # just under the digits' feet
    ruled = photo.copy()
    cv2.line(ruled, (0, y), (width - 1, y), (40, 40, 40), 3)
    lined = number_page(ruled)
    assert len(lined.groups) == len(page.groups)
    lines = [o for o in lined.left_out if o.kind == "line"]
    assert lines and max(o.box.width for o in lines) > 0.8 * width and all(abs(o.box.y - y) <= 6 for o in lines)


def test_a_curved_pen_underline_touching_the_digits_leaves_no_sliver_on_them(fixtures):
    """A pen's underline, thick and a little curved, drawn against the digits' feet: all of it is
    line, none of its edge is left on the digits (where the straight core's edges were, a 3's foot
    grew a tail and read as a 2)."""
    page, photo = _page(fixtures, [30, 30, 30])
    feet = int(max(page.bounds(group)[3] for group in page.groups) / page.scale)
    xs = np.linspace(10, photo.shape[1] - 10, 24)
    ys = feet + 2 + 8 * np.linspace(-1, 1, 24) ** 2  # through the digits' feet, its ends 8 pixels lower
    underlined = photo.copy()
    cv2.polylines(underlined, [np.round(np.stack([xs, ys], 1)).astype(np.int32)], False, (30, 30, 30), 12, cv2.LINE_AA)
    lined = number_page(underlined)
    assert len(lined.groups) == len(page.groups)
    assert "line" in {o.kind for o in lined.left_out}
    digits = np.isin(lined.labels, [i for group in lined.groups for i in group])
    inside = round((feet - 1) * lined.scale)  # 3 pixels inside the line's top edge at its middle
    assert digits[inside:].sum() <= 0.01 * digits.sum(), "the line's edge is left on the digits"


def test_a_ring_drawn_around_the_number_is_a_mark_and_the_digits_stay(fixtures):
    """An ellipse drawn around the number (its flat top and bottom are long straight runs, its ends
    would be a 1 and a 0): left out whole as one mark around the digits, the digits as they were."""
    page, photo = _page(fixtures, [30, 30, 30])
    roomy = cv2.copyMakeBorder(photo, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
    height, width = roomy.shape[:2]
    circled = roomy.copy()
    cv2.ellipse(circled, (width // 2, height // 2), (width // 2 - 12, height // 2 - 12), 0, 0, 360, (30, 30, 30), 7)
    ringed = number_page(circled)
    assert len(ringed.groups) == len(page.groups)
    marks = [o.box for o in ringed.left_out if o.kind == "mark"]
    rings = [box for box in marks if box.width > 0.9 * (width - 24) and box.height > 0.9 * (height - 24)]
    assert len(rings) == 1, marks  # (slivers of its inner edge may be listed as marks of their own)


def test_a_dot_beside_the_number_is_a_mark_not_a_digit(fixtures):
    page, photo = _page(fixtures, [30, 30, 30])
    dotted = cv2.copyMakeBorder(photo, 0, 0, 0, 80, cv2.BORDER_REPLICATE)
    x0, _, x1, y1 = page.bounds(page.groups[-1])
    cv2.circle(dotted, (photo.shape[1] + 30, int(y1 / page.scale) - 6), 5, (20, 20, 20), -1)
    marked = number_page(dotted)
    assert len(marked.groups) == 4 and "mark" in {o.kind for o in marked.left_out}


def test_blank_paper_has_no_digit():
    with pytest.raises(NoDigit):
        number_page(np.full((100, 300), 230, np.uint8))
