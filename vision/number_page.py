"""A photo of a handwritten number -> its ink, the ink's components grouped into digits, and
what is no digit left out with its box: lines (ruled and squared paper, underlines, table rules),
the page's edge and the table past it, specks, marks (stops, dashes) and crossings-out. The ink is
found as for one digit (`vision.digits`), at a larger working size. `vision.numbers` reads it.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from vision.colors import to_gray
from vision.digits import (
    INK_THRESHOLD,
    MIN_CONTRAST,
    SOFT_EDGE,
    NoDigit,
    dark_ink,
    ink_on_black,
    mnist_recipe,
    paper_ink,
    shrunk,
    soft_ink,
)
from vision.geometry import Box
from vision.rings import drawn_rings

# What a number's photo holds that is not a digit: a group of its ink shorter than MARK_HEIGHT or
# taller than TALL digit heights (a stop, a dash; what is left of a line), a component that is under
# a tenth of the largest but at least MARK_AREA of it (smaller ones are specks), and a component
# that touches the photo's border along EDGE_SHARE of its side (the page's edge, a dark table).
MARK_HEIGHT, TALL = 0.4, 1.6
MARK_AREA = 0.02
SCRIBBLE_WIDTH, BLOT, SOLID, SCRIBBLE, SCRIBBLE_DENSITY = 0.85, 0.68, 0.85, 5, 3.0
EDGE_SHARE = 0.5
STEP_WIDTH = 0.3  # a group this many digit heights wide or less may be the rim of the page's edge

# A number is read at a larger working size: a row of digits is wide.
NUMBER_WORK_SIDE = 768


@dataclass(frozen=True)
class WrittenDigit:
    """One digit of a written number: its box in the photo's pixels, and its 28x28 MNIST form."""

    box: Box  # photo pixels
    image: np.ndarray


@dataclass(frozen=True)
class LeftOut:
    """Ink in a photo of a number that is not read as a digit, and what it is: a `line` (ruled
    paper, an underline, a table's rule), the page's `edge`, a `mark` too small or too tall for
    a digit (a stop, a dash), or a stroke the model reads as `not a digit`. Box in photo pixels."""

    box: Box
    kind: str


@dataclass(frozen=True)
class NumberPage:
    """A photo of a number at its working size: the ink, each component's label, the components
    grouped into digits (left to right), the working size's scale, and what was left out."""

    ink: np.ndarray
    labels: np.ndarray
    groups: list[list[int]]
    stats: np.ndarray
    scale: float
    left_out: list[LeftOut]

    def box(self, x: float, y: float, width: float, height: float) -> Box:
        """A box in working pixels -> in the photo's."""
        return Box(*(round(float(v) / self.scale) for v in (x, y, width, height)))

    def bounds(self, group: list[int]) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of a group's ink, working pixels."""
        stats = self.stats[group]
        x1 = (stats[:, cv2.CC_STAT_LEFT] + stats[:, cv2.CC_STAT_WIDTH]).max()
        y1 = (stats[:, cv2.CC_STAT_TOP] + stats[:, cv2.CC_STAT_HEIGHT]).max()
        return int(stats[:, cv2.CC_STAT_LEFT].min()), int(stats[:, cv2.CC_STAT_TOP].min()), int(x1), int(y1)

    def digit(self, group: list[int], x0: int | None = None, x1: int | None = None) -> WrittenDigit:
        """The group's ink as a digit; with x0 and x1, only its columns from x0 to x1 (a piece of
        touching digits), and the soft edges of the ink stop at those cuts."""
        gx0, gy0, gx1, gy1 = self.bounds(group)
        reach = SOFT_EDGE // 2  # how far soft_ink looks past the strokes
        left = gx0 - reach if x0 is None or x0 <= gx0 else x0  # the group's own edges are not cuts
        right = gx1 + reach if x1 is None or x1 >= gx1 else x1
        top, left = max(gy0 - reach, 0), max(left, 0)
        labels, ink = self.labels[top : gy1 + reach, left:right], self.ink[top : gy1 + reach, left:right]
        only = np.where(np.isin(labels, group), 255, 0).astype(np.uint8)
        ys, xs = np.nonzero(only)
        box = self.box(left + xs.min(), top + ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)
        return WrittenDigit(box, mnist_recipe(soft_ink(ink, only)))


def number_page(image: np.ndarray) -> NumberPage:
    """A photo of a written number -> its ink and its components grouped into digits: lines, the
    page's edge, specks and marks that are no digit left out, components that overlap horizontally
    (the bar of a 5 written apart from its body) one digit."""
    gray = to_gray(image)
    dark = dark_ink(gray)
    if dark:
        ink, mask, lines, scale = paper_ink(gray, NUMBER_WORK_SIDE, pen_lines=True)
    else:
        ink, scale = ink_on_black(gray), 1.0
        mask = np.where(ink > INK_THRESHOLD * 255, 255, 0).astype(np.uint8)
        lines = np.zeros_like(mask)
    ring_ink, ring_boxes = drawn_rings(cv2.bitwise_or(mask, lines))
    mask = cv2.bitwise_and(mask, cv2.bitwise_not(ring_ink))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        raise NoDigit("no digit found: the image is blank")
    found = [(i, "edge") for i in range(1, count) if _page_edge(stats[i], mask.shape)]
    inside = [i for i in range(1, count) if (i, "edge") not in found]
    largest = stats[inside, cv2.CC_STAT_AREA].max(initial=0)
    parts = sorted(
        (i for i in inside if stats[i, cv2.CC_STAT_AREA] >= 0.1 * largest),
        key=lambda i: stats[i, cv2.CC_STAT_LEFT],
    )
    found += [(i, "mark") for i in inside if MARK_AREA * largest <= stats[i, cv2.CC_STAT_AREA] < 0.1 * largest]
    groups: list[list[int]] = []
    for i in parts:
        if groups and _overlap_x(stats[groups[-1]], stats[i]) >= 0.5:
            groups[-1].append(i)
        else:
            groups.append([i])
    page = NumberPage(ink, labels, groups, stats, scale, [])
    heights = np.array([y1 - y0 for _, y0, _, y1 in map(page.bounds, groups)])
    if len(heights) == 0:
        raise NoDigit("no digit found: no ink left once the paper's lines and edges are removed")
    digit = float(np.median(heights[heights >= 0.5 * heights.max()]))
    marks = [
        g
        for g, h in zip(groups, heights, strict=True)
        if not MARK_HEIGHT * digit <= h <= TALL * digit or _scribbled(page, g, digit)
    ]
    paper = shrunk(gray, max(ink.shape))[0] if dark else None
    edges = [g for g in groups if g not in marks and paper is not None and _step(paper, labels, page.bounds(g), digit)]
    found += [(i, "edge") for g in edges for i in g]
    left_out = [page.box(*stats[i, :4]) for i, _ in found] + [page.box(*_box(page.bounds(g))) for g in marks]
    kinds = [kind for _, kind in found] + ["mark"] * len(marks)
    marks += edges
    rings = [page.box(*box) for box in ring_boxes]
    lines_apart = [o for o in _line_boxes(lines, page) if not any(o.box.within(ring) for ring in rings)]
    left_out = [LeftOut(b, k) for b, k in zip(left_out, kinds, strict=True)] + lines_apart  # a ring once
    left_out += [LeftOut(ring, "mark") for ring in rings]
    groups = [g for g in groups if g not in marks]
    if not groups:
        raise NoDigit("no digit found: only marks that are not digits")
    return NumberPage(ink, labels, groups, stats, scale, left_out)


def _scribbled(page: NumberPage, group: list[int], digit: float) -> bool:
    """Whether a group is a crossing-out: about a digit wide or wider (SCRIBBLE_WIDTH) with its
    middle rows mostly ink (BLOT; a digit's strokes leave room between them) across several
    strokes, or, at any width, crossing more strokes than digits side by side do (at least
    SCRIBBLE strokes, SCRIBBLE_DENSITY a digit's height: a 0 crosses 2 in about 0.7 heights)."""
    x0, y0, x1, y1 = page.bounds(group)
    middle = np.isin(page.labels[y0 + (y1 - y0) // 4 : y1 - (y1 - y0) // 4, x0:x1], group)
    if middle.size == 0:
        return False
    wide = (x1 - x0) / digit
    strokes = float(np.median((np.diff(middle.astype(np.int8), axis=1) == 1).sum(axis=1) + middle[:, 0]))
    # Mostly ink and crossing 3 strokes or more (two thick digits that touch cross 2), or solid ink.
    blot = wide >= SCRIBBLE_WIDTH and middle.mean() >= BLOT and (strokes >= 3 or middle.mean() >= SOLID)
    return bool(blot or (strokes >= SCRIBBLE and strokes >= SCRIBBLE_DENSITY * wide))


def _step(gray: np.ndarray, labels: np.ndarray, bounds: tuple[int, int, int, int], digit: float) -> bool:
    """Whether a thin upright group is the rim of the page's edge, not a stroke: what is not ink
    beside it is paper on one side and much darker on the other (a table past the page), where a
    1 has paper on both sides."""
    x0, y0, x1, y1 = bounds
    if x1 - x0 > STEP_WIDTH * digit:
        return False
    reach = max(2, round(STEP_WIDTH * digit))
    sides = [(slice(y0, y1), slice(max(0, x0 - reach), x0)), (slice(y0, y1), slice(x1, x1 + reach))]
    left, right = (gray[side][labels[side] == 0] for side in sides)
    if left.size == 0 or right.size == 0:
        return True  # at the photo's border
    return abs(float(np.median(left)) - float(np.median(right))) >= MIN_CONTRAST


def _box(bounds: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = bounds
    return x0, y0, x1 - x0, y1 - y0


def _page_edge(stats: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether a component is what is left of the page's edge (or the table past it): it touches
    the photo's border and runs along most of that side."""
    x, y, w, h = stats[:4]
    height, width = shape
    upright = (x == 0 or x + w == width) and h >= EDGE_SHARE * height
    level = (y == 0 or y + h == height) and w >= EDGE_SHARE * width
    return bool(upright or level)


def _line_boxes(lines: np.ndarray, page: NumberPage) -> list[LeftOut]:
    """Each line that was removed, as a box in the photo (the page's edge when it runs along the
    photo's border)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    longest = max(page.ink.shape) * 0.05
    return [
        LeftOut(page.box(*stats[i, :4]), "edge" if _page_edge(stats[i], lines.shape) else "line")
        for i in range(1, count)
        if stats[i, 2:4].max() >= longest
    ]


def _overlap_x(group_stats: np.ndarray, part: np.ndarray) -> float:
    """How much of the narrower of a group and a component their x-ranges share."""
    g0 = group_stats[:, cv2.CC_STAT_LEFT].min()
    g1 = (group_stats[:, cv2.CC_STAT_LEFT] + group_stats[:, cv2.CC_STAT_WIDTH]).max()
    p0, p1 = part[cv2.CC_STAT_LEFT], part[cv2.CC_STAT_LEFT] + part[cv2.CC_STAT_WIDTH]
    shared = min(g1, p1) - max(g0, p0)
    return max(0, shared) / max(1, min(g1 - g0, p1 - p0))
