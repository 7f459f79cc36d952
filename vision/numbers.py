"""A photo of a handwritten number -> its digits, left to right, each in the MNIST form.

The ink is found as for one digit (`vision.digits`, at a larger working size) and its connected
components are grouped into digits; lines, the page's edge, specks and marks are left out and
listed. A group wide enough to be digits that touch is cut where the model reads the pieces most
surely, and a piece the model sees no digit in is left out too.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from vision.colors import to_gray
from vision.digits import (
    INK_THRESHOLD,
    MIN_CONTRAST,
    SOFT_EDGE,
    DigitModel,
    NoDigit,
    dark_ink,
    ink_on_black,
    mnist_recipe,
    paper_ink,
    shrunk,
    soft_ink,
    to_model_input,
)
from vision.errors import InputError
from vision.geometry import Box
from vision.signatures import softmax

# What a number's photo holds that is not a digit: a group of its ink shorter than MARK_HEIGHT or
# taller than TALL digit heights (a stop, a dash; what is left of a line), a component that is under
# a tenth of the largest but at least MARK_AREA of it (smaller ones are specks), and a component
# that touches the photo's border along EDGE_SHARE of its side (the page's edge, a dark table).
MARK_HEIGHT, TALL = 0.4, 1.6
MARK_AREA = 0.02
SCRIBBLE_WIDTH, BLOT, SOLID, SCRIBBLE, SCRIBBLE_DENSITY = 0.85, 0.68, 0.85, 5, 3.0
EDGE_SHARE = 0.5
STEP_WIDTH = 0.3  # a group this many digit heights wide or less may be the rim of the page's edge

# A piece of a number is not a digit when its logits' log-sum-exp is under this, per model. The
# CNN is trained to see no digit in strokes that are not digits (training.not_digits); its
# threshold is the 95% quantile of held-out such strokes, checked on tuning numbers. The MLP's is
# under its clean digits' 0.5% quantile (docs/digits.md).
NOT_A_DIGIT = {"cnn": 2.0, "mlp": 3.0}

# A number is read at a larger working size: a row of digits is wide.
NUMBER_WORK_SIDE = 768
MAX_DIGITS = 32


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
class _Page:
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


def _number_page(image: np.ndarray) -> _Page:
    """A photo of a written number -> its ink and its components grouped into digits: lines, the
    page's edge, specks and marks that are no digit left out, components that overlap horizontally
    (the bar of a 5 written apart from its body) one digit."""
    gray = to_gray(image)
    dark = dark_ink(gray)
    if dark:
        ink, mask, lines, scale = paper_ink(gray, NUMBER_WORK_SIDE)
    else:
        ink, scale = ink_on_black(gray), 1.0
        mask = np.where(ink > INK_THRESHOLD * 255, 255, 0).astype(np.uint8)
        lines = np.zeros_like(mask)
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
    page = _Page(ink, labels, groups, stats, scale, [])
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
    left_out = [LeftOut(b, k) for b, k in zip(left_out, kinds, strict=True)] + _line_boxes(lines, page)
    groups = [g for g in groups if g not in marks]
    if not groups:
        raise NoDigit("no digit found: only marks that are not digits")
    return _Page(ink, labels, groups, stats, scale, left_out)


def _scribbled(page: _Page, group: list[int], digit: float) -> bool:
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


def _line_boxes(lines: np.ndarray, page: _Page) -> list[LeftOut]:
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


def _too_many(count: int, max_digits: int) -> None:
    if count > max_digits:
        raise InputError(f"found {count} digits; a number may have at most {max_digits}")


def split_number(image: np.ndarray, max_digits: int = MAX_DIGITS) -> list[WrittenDigit]:
    """A photo of a written number -> its ink's groups of components, left to right, each in the
    MNIST form: the digits when none touch (`read_number` also divides touching ones)."""
    page = _number_page(image)
    _too_many(len(page.groups), max_digits)
    return [page.digit(group) for group in page.groups]


@dataclass(frozen=True)
class ReadNumber:
    """A written number read: its digits, left to right, and each one's probabilities (N, 10)."""

    digits: list[WrittenDigit]
    probabilities: np.ndarray
    left_out: list[LeftOut]

    @property
    def number(self) -> str:
        return "".join(str(int(p.argmax())) for p in self.probabilities)


# Touching digits: a group wider than this many digit heights (the row's median) may hold more
# than one digit; each digit is at least MIN_WIDTH and at most MAX_WIDTH heights wide.
MAY_TOUCH = 0.9
MIN_WIDTH, MAX_WIDTH = 0.1, 1.2
MAX_CUTS = 8  # cut candidates per group: the lowest valleys of its ink's column profile
THIN_CUTS = 3.0  # pieces per digit height: more are a scribble's strokes (_scribble_cut_thin)


@dataclass(frozen=True)
class NumberPieces:
    """What `read_number` puts to the model: every piece that could be a digit (each group of ink
    whole, and a wide group's spans between cut candidates), where each group's pieces begin and
    end (`starts`, one more than the groups), their spans, and what was left out before reading."""

    pieces: list[WrittenDigit]
    starts: list[int]
    spans: list[list[tuple[int, int]]]
    left_out: list[LeftOut]
    height: float  # a digit's, in the spans' (working) pixels


def number_pieces(image: np.ndarray, max_digits: int = MAX_DIGITS) -> NumberPieces:
    """A photo of a written number -> the pieces of its ink the model reads (`read_number`)."""
    page = _number_page(image)
    _too_many(len(page.groups), max_digits)  # before any cutting: the groups bound its cost
    # A digit's height: the groups' median (touching digits make a wider group, not a taller one).
    height = float(np.median([y1 - y0 for _, y0, _, y1 in map(page.bounds, page.groups)]))
    spans = [_spans(page, group, height) for group in page.groups]
    pieces = [page.digit(group, *span) for group, own in zip(page.groups, spans) for span in own]
    starts = [int(s) for s in np.cumsum([0, *map(len, spans)])]
    return NumberPieces(pieces, starts, spans, list(page.left_out), height)


def read_number(
    image: np.ndarray, model: DigitModel, max_digits: int = MAX_DIGITS, not_a_digit: float = NOT_A_DIGIT["cnn"]
) -> ReadNumber:
    """A photo of a written number -> its digits, left to right, and the model's reading of each.

    Digits that touch are one component. A group wide enough to hold several is cut at valleys of
    its ink's column profile into the pieces the model reads most surely (the largest sum of the
    log of each piece's top probability), each piece a digit's width; every piece of every group
    goes to the model in one call. A group with a piece whose logits' log-sum-exp (how much the
    model sees a digit at all) is under `not_a_digit` is left out, all its pieces: a tick, a
    stroke, a crossing-out (whose pieces may look like 1s on their own); so is a group cut into
    pieces thinner than digits when the model sees no digit in it whole."""
    found = number_pieces(image, max_digits)
    logits = model(to_model_input(np.stack([p.image for p in found.pieces])))
    probabilities = softmax(logits)
    surety = np.log(probabilities.max(axis=1))
    seen = logits.max(axis=1) + np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1))
    chosen, left_out = [], list(found.left_out)
    for own, start in zip(found.spans, found.starts):
        best = [start + i for i in _surest(own, surety[start : start + len(own)])]
        if min(seen[best]) < not_a_digit or _scribble_cut_thin(found, own, start, best, seen, not_a_digit):
            left_out += [LeftOut(found.pieces[i].box, "not a digit") for i in best]
        else:
            chosen += best
    if not chosen:
        raise NoDigit("no digit found: the model reads none of the ink as a digit")
    _too_many(len(chosen), max_digits)
    return ReadNumber([found.pieces[i] for i in chosen], probabilities[chosen], left_out)


def _scribble_cut_thin(
    found: NumberPieces, own: list[tuple[int, int]], start: int, best: list[int], seen: np.ndarray, not_a_digit: float
) -> bool:
    """Whether a group's best cut is into pieces thinner than digits are written (more than
    THIN_CUTS per digit height: the strokes of a `w` or a sparse crossing-out, each a 1 on its
    own) while the model sees no digit in the group whole. Touching digits are cut into pieces
    a digit wide, and a pair of them read whole may well be no digit."""
    a, b = min(a for a, _ in own), max(b for _, b in own)
    thin = len(best) > THIN_CUTS * (b - a) / found.height
    return bool(thin and seen[start + own.index((a, b))] < not_a_digit)


def _spans(page: _Page, group: list[int], height: float) -> list[tuple[int, int]]:
    """The column spans (x0, x1) of a group that could each be one digit: the whole group, and,
    when it is wide, the spans between its cut candidates."""
    x0, _, x1, _ = page.bounds(group)
    if x1 - x0 <= MAY_TOUCH * height:
        return [(x0, x1)]
    profile = np.isin(page.labels[:, x0:x1], group).sum(axis=0).astype(np.float32)
    profile = np.convolve(profile, np.ones(3) / 3, mode="same")
    inside = np.arange(1, len(profile) - 1)
    valleys = inside[(profile[inside] <= profile[inside - 1]) & (profile[inside] <= profile[inside + 1])]
    valleys = valleys[(valleys >= MIN_WIDTH * height) & (valleys <= len(profile) - MIN_WIDTH * height)]
    cuts: list[int] = []
    for v in valleys[np.argsort(profile[valleys], kind="stable")]:
        if len(cuts) < MAX_CUTS and all(abs(v - c) >= MIN_WIDTH * height for c in cuts):
            cuts.append(int(v))
    edges = [0, *sorted(cuts), x1 - x0]
    return [
        (x0 + a, x0 + b)
        for i, a in enumerate(edges)
        for b in edges[i + 1 :]
        if MIN_WIDTH * height <= b - a <= MAX_WIDTH * height or (a, b) == (0, x1 - x0)
    ]


def _surest(spans: list[tuple[int, int]], surety: np.ndarray) -> list[int]:
    """Of a group's spans (x0, x1) and each one's surety, the positions of those that tile the
    group from its left edge to its right with the largest total surety (the best path over the
    cut points)."""
    start, end = min(a for a, _ in spans), max(b for _, b in spans)
    best: dict[int, tuple[float, list[int]]] = {start: (0.0, [])}
    for i in sorted(range(len(spans)), key=spans.__getitem__):
        (a, b), sure = spans[i], float(surety[i])
        if a in best and (b not in best or best[a][0] + sure > best[b][0]):
            best[b] = (best[a][0] + sure, [*best[a][1], i])
    return best[end][1]
