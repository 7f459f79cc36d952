"""From any photo, scan or drawing of one handwritten digit to the 28x28 MNIST form.

Two steps. First the ink: a white-on-black image (MNIST itself, a drawing pad) is taken as it is;
a photo or scan of dark ink on light paper is inverted, its uneven lighting flattened (the paper
estimated by a morphological opening and subtracted), the ink separated from the paper by Otsu's
threshold, ruled or squared lines and specks removed, and the digit's connected components kept.
An image with no ink in it is refused (`NoDigit`). Then MNIST's own recipe: the ink's bounding
box fitted into 20x20 keeping its aspect ratio, placed in 28x28 with its center of mass at the
center.

A written number (`read_number`) is its ink's connected components, left to right, each digit in
that form; a component wide enough to be digits that touch is cut where the model reads the
pieces most surely.
"""

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from vision.colors import to_gray
from vision.errors import InputError
from vision.geometry import Box
from vision.signatures import MNIST_SIZE, model_pixels, softmax

INK_BOX = 20
# Where MNIST puts the center of mass, in pixel-index coordinates (measured on the training set: mean 14.00, 13.99).
MNIST_CENTER = 14.0
# A pixel is ink when it is brighter than this share of the brightest pixel above the background.
INK_THRESHOLD = 0.1
# Photos are read at this working size (longer side), large enough for thin pen strokes.
WORK_SIDE = 256
# The paper under the ink is estimated at this size at most (the digit's working size).
PAPER_SIDE = WORK_SIDE
# Ink must stand out from the paper by this many grey levels, or the image holds no digit.
MIN_CONTRAST = 40
# A straight run across this share of the image's width (height) is a ruled (grid) line, not ink,
# and so is one this many digit heights long (an underline, a table's rule; a 7's bar is under one).
LINE_SHARE = 0.85
LINE_HEIGHTS = 1.3
# Lines are looked for along the photo's skew, within this many degrees, at this step.
MAX_SKEW, SKEW_STEP = 6.0, 0.5


# What a number's photo holds that is not a digit: a group of its ink shorter than MARK_HEIGHT or
# taller than TALL digit heights (a stop, a dash; what is left of a line), a component that is under
# a tenth of the largest but at least MARK_AREA of it (smaller ones are specks), and a component
# that touches the photo's border along EDGE_SHARE of its side (the page's edge, a dark table).
MARK_HEIGHT, TALL = 0.4, 1.6
MARK_AREA = 0.02
SCRIBBLE_WIDTH, BLOT, SCRIBBLE, SCRIBBLE_DENSITY = 0.85, 0.68, 5, 3.0
EDGE_SHARE = 0.5
STEP_WIDTH = 0.3  # a group this many digit heights wide or less may be the rim of the page's edge

# A group read whole is not a digit when its logits' log-sum-exp is under this, per model:
# calibrated on generated ticks and strokes against the digits of clean rows (docs/digits.md).
NOT_A_DIGIT = {"cnn": 4.5, "mlp": 3.0}

# A number is read at a larger working size: a row of digits is wide.
NUMBER_WORK_SIDE = 768
MAX_DIGITS = 32

# (N, 1, 28, 28) float32 in [0, 1] -> (N, 10) logits: an onnxruntime digit model.
DigitModel = Callable[[np.ndarray], np.ndarray]


class NoDigit(InputError):
    """The image holds no ink that could be a digit."""

    status = 422


def _ink_on_black(gray: np.ndarray) -> np.ndarray:
    """A white-on-black image, stretched so the background is 0 and the ink up to 255."""
    background = _border_median(gray)
    ink = np.clip(gray.astype(np.float32) - background, 0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:  # paper's grain, not ink
        return np.zeros_like(gray, dtype=np.float32)
    return ink * (255.0 / peak)


def to_mnist(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR or BGRA, any size) -> (28, 28) uint8, white digit on black.
    Raises NoDigit when there is no ink to read."""
    gray = to_gray(image)
    ink = _ink_from_paper(gray) if _dark_ink(gray) else _ink_on_black(gray)
    return _mnist_recipe(ink)


def _dark_ink(gray: np.ndarray) -> bool:
    """Whether the ink is darker than the background: the darkest pixels stray further from the
    background than the brightest do, the background being the border's median (a dimly lit page
    is dark, but its ink is darker) or the whole image's (a dark table past the page may fill the
    border; a white-on-black image has black on both)."""
    darkest, middle, brightest = np.percentile(gray, [1, 50, 99])
    return any(background - darkest > brightest - background for background in (_border_median(gray), middle))


def _border_median(gray: np.ndarray) -> float:
    return float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))


def _ink_from_paper(gray: np.ndarray) -> np.ndarray:
    """Dark ink on light paper (a photo or a scan) -> the digit's ink, bright on black, float32."""
    ink, mask, _, _ = _paper_ink(gray, WORK_SIDE)
    return _soft_ink(ink, _digit_components(mask))


def _shrunk(image: np.ndarray, longest: int) -> tuple[np.ndarray, float]:
    """(the image with its longer side at most `longest`, the scale it was shrunk by)."""
    scale = min(1.0, longest / max(image.shape))
    if scale == 1:
        return image, scale
    if min(round(side * scale) for side in image.shape) >= 1:
        return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale
    # A strip (1x20000): OpenCV cannot resize to a side of 0 pixels.
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _paper_ink(gray: np.ndarray, work_side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(ink, its mask without lines, the lines, the scale of all three): the paper's lighting
    flattened away, at a working size whose longer side is at most `work_side`."""
    gray, scale = _shrunk(gray, work_side)
    inverted = 255 - cv2.GaussianBlur(gray, (3, 3), 0)
    ink = cv2.subtract(inverted, _paper(inverted))
    if int(ink.max()) < MIN_CONTRAST:
        raise NoDigit("no digit found: the image holds no ink that stands out from the paper")
    _, mask = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    lines = cv2.bitwise_and(mask, _long_lines(mask))
    without_lines = cv2.bitwise_and(mask, cv2.bitwise_not(lines))
    # A tightly cropped 1 is a long straight stroke too: if nothing but "lines" was there, keep it.
    if not without_lines.any():
        return ink, mask, np.zeros_like(mask), scale
    return ink, without_lines, lines, scale


SOFT_EDGE = 9  # the strokes and this wide a neighbourhood of them: their soft, anti-aliased edges


def _paper(inverted: np.ndarray) -> np.ndarray:
    """The paper of an inverted photo, lighting and shadows included: what an opening wider than
    any stroke leaves. Lighting is smooth, so a larger photo's paper is found at PAPER_SIDE and
    enlarged (at 768 pixels the opening alone took 83 ms)."""
    small, scale = _shrunk(inverted, PAPER_SIDE)
    side = max(15, (max(small.shape) // 4) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    paper = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
    paper = cv2.GaussianBlur(paper, (0, 0), side / 4)  # the opening is blocky; lighting is smooth
    if scale == 1:
        return paper
    return cv2.resize(paper, (inverted.shape[1], inverted.shape[0]), interpolation=cv2.INTER_LINEAR)


def _soft_ink(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ink under the mask and its soft edges, stretched so its strokes reach 255."""
    kept = ink.astype(np.float32) * (cv2.dilate(mask, np.ones((SOFT_EDGE, SOFT_EDGE), np.uint8)) > 0)
    peak = float(np.percentile(kept[mask > 0], 99))
    return np.clip(kept * (255.0 / max(peak, 1.0)), 0, 255)


def _long_lines(mask: np.ndarray) -> np.ndarray:
    """The pixels of straight lines: runs longer than LINE_SHARE of the image, or than LINE_HEIGHTS
    digit heights, along the photo's skew (ruled paper, an underline, a table's rules), with the
    strokes that cross them given back."""
    upright = np.ascontiguousarray(mask.T)  # upright lines are found as level ones, in the transpose
    skews = _skew(mask), _skew(upright)
    height, width = mask.shape
    level = _runs(mask, LINE_SHARE * width, skews[0])
    standing = _runs(upright, LINE_SHARE * height, skews[1]).T
    lines = _crossed_lines(mask, level, standing)
    # The digits' height once the lines across the photo are gone: shorter lines are then known.
    digit = _digit_height(cv2.bitwise_and(mask, cv2.bitwise_not(lines)))
    if not digit:
        return lines
    level |= _runs(mask, LINE_HEIGHTS * digit, skews[0])
    standing |= _runs(upright, LINE_HEIGHTS * digit, skews[1]).T
    return _crossed_lines(mask, level, standing)


def _crossed_lines(mask: np.ndarray, level: np.ndarray, standing: np.ndarray) -> np.ndarray:
    """Level and standing lines, a pixel wider (their soft edges), less where a stroke crosses
    them: line pixels with the stroke's ink on both sides, above and below a level line (left and
    right of a standing one) within the line's thickness."""
    grow = np.ones((3, 3), np.uint8)
    level, standing = cv2.dilate(level, grow), cv2.dilate(standing, grow)
    lines = cv2.bitwise_or(level, standing)
    rest = cv2.bitwise_and(mask, cv2.bitwise_not(lines))
    for found, across in ((level, (_thickness(level) + 3, 1)), (standing, (1, _thickness(standing.T) + 3))):
        if found.any():  # most photos have no lines: no closing to pay for
            crossings = cv2.bitwise_and(cv2.morphologyEx(rest, cv2.MORPH_CLOSE, np.ones(across, np.uint8)), found)
            lines = cv2.bitwise_and(lines, cv2.bitwise_not(crossings))
    return lines


def _thickness(level: np.ndarray) -> int:
    """Level lines' thickness in pixels: their pixels over the runs they make down the columns."""
    on = level > 0
    starts = int(on[0].sum()) + int((on[1:] & ~on[:-1]).sum())
    return int(round(on.sum() / max(starts, 1)))


def _runs(mask: np.ndarray, length: float, skew: float) -> np.ndarray:
    """The pixels of straight runs at least `length` long at `skew` degrees from horizontal: the
    mask sheared level, opened with a row, sheared back."""
    height, width = mask.shape
    if length >= width:
        return np.zeros_like(mask)
    slope = np.tan(np.radians(skew))
    shear = np.float32([[1, 0, 0], [-slope, 1, max(0.0, width * slope)]])
    size = (width, height + int(np.ceil(abs(slope) * width)))
    level = cv2.warpAffine(mask, shear, size, flags=cv2.INTER_NEAREST)
    runs = cv2.morphologyEx(level, cv2.MORPH_OPEN, np.ones((1, max(3, int(length))), np.uint8))
    return cv2.warpAffine(runs, shear, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)


def _skew(mask: np.ndarray) -> float:
    """The angle (degrees, within MAX_SKEW) at which the ink's rows are sharpest: where a ruled
    line, an underline or the writing's baseline lies level. Found at 256 pixels."""
    small, _ = _shrunk(mask, 256)
    ys, xs = np.nonzero(small)
    if len(ys) == 0:
        return 0.0
    angles = np.arange(-MAX_SKEW, MAX_SKEW + SKEW_STEP / 2, SKEW_STEP)
    sharpness = []
    for angle in angles:
        rows = np.round(ys - xs * np.tan(np.radians(angle))).astype(np.int64)
        sharpness.append(float(np.square(np.bincount(rows - rows.min()).astype(np.float64)).sum()))
    return float(angles[int(np.argmax(sharpness))])


def _digit_height(mask: np.ndarray) -> float:
    """A digit's height in the mask: the median of its taller components (specks, stops and dashes
    are shorter, a line's remnants lower), away from the photo's border, and not much wider than
    tall unless all are (digits joined by an underline); 0 when there are none."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    x, y, w, h, area = stats[1:].T
    inside = (x > 0) & (y > 0) & (x + w < mask.shape[1]) & (y + h < mask.shape[0])
    large = inside & (area >= 0.1 * area.max(initial=0))
    heights = h[large & (w < 3 * h)] if (large & (w < 3 * h)).any() else h[large]
    if len(heights) == 0:
        return 0.0
    return float(np.median(heights[heights >= 0.5 * heights.max()]))


def _digit_components(mask: np.ndarray) -> np.ndarray:
    """The largest ink blob and the blobs that belong with it (near it and not tiny); specks go."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        raise NoDigit("no digit found: no ink left once the paper's lines and specks are removed")
    areas = stats[1:, cv2.CC_STAT_AREA]
    main = 1 + int(np.argmax(areas))
    x, y, w, h = stats[main, :4]
    if areas.max() < 0.0005 * mask.size:
        raise NoDigit("no digit found: only specks of ink")
    keep = np.zeros(count, bool)
    keep[main] = True
    for i in range(1, count):
        bx, by, bw, bh, area = stats[i]
        near = bx < x + 1.5 * w and bx + bw > x - 0.5 * w and by < y + 1.5 * h and by + bh > y - 0.5 * h
        keep[i] |= near and area >= 0.02 * areas.max()
    return np.where(keep[labels], 255, 0).astype(np.uint8)


def _mnist_recipe(ink: np.ndarray) -> np.ndarray:
    """Bright ink on black, any size -> 28x28 uint8: the ink's box fitted into 20x20, center of mass
    at the center."""
    mask = ink > INK_THRESHOLD * 255
    if not mask.any():
        raise NoDigit("no digit found: the image is blank")
    ys, xs = np.nonzero(mask)
    ink = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = ink.shape
    scale = INK_BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    fitted = cv2.resize(ink, (new_w, new_h), interpolation=interpolation)

    # Shift by whole pixels so the center of mass lands on (14, 14), where MNIST puts it;
    # whole pixels keep strokes sharp, and an MNIST digit comes back as it went in.
    moments = cv2.moments(fitted)
    cx = moments["m10"] / moments["m00"] if moments["m00"] > 0 else new_w / 2
    cy = moments["m01"] / moments["m00"] if moments["m00"] > 0 else new_h / 2
    shift = np.float32([[1, 0, round(MNIST_CENTER - cx)], [0, 1, round(MNIST_CENTER - cy)]])
    placed = cv2.warpAffine(fitted, shift, (MNIST_SIZE, MNIST_SIZE), flags=cv2.INTER_NEAREST)
    return np.clip(placed, 0, 255).round().astype(np.uint8)


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
        reach = SOFT_EDGE // 2  # how far _soft_ink looks past the strokes
        left = gx0 - reach if x0 is None or x0 <= gx0 else x0  # the group's own edges are not cuts
        right = gx1 + reach if x1 is None or x1 >= gx1 else x1
        top, left = max(gy0 - reach, 0), max(left, 0)
        labels, ink = self.labels[top : gy1 + reach, left:right], self.ink[top : gy1 + reach, left:right]
        only = np.where(np.isin(labels, group), 255, 0).astype(np.uint8)
        ys, xs = np.nonzero(only)
        box = self.box(left + xs.min(), top + ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)
        return WrittenDigit(box, _mnist_recipe(_soft_ink(ink, only)))


def _number_page(image: np.ndarray) -> _Page:
    """A photo of a written number -> its ink and its components grouped into digits: lines, the
    page's edge, specks and marks that are no digit left out, components that overlap horizontally
    (the bar of a 5 written apart from its body) one digit."""
    gray = to_gray(image)
    dark = _dark_ink(gray)
    if dark:
        ink, mask, lines, scale = _paper_ink(gray, NUMBER_WORK_SIDE)
    else:
        ink, scale = _ink_on_black(gray), 1.0
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
    paper = _shrunk(gray, max(ink.shape))[0] if dark else None
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
    """Whether a group is a crossing-out: about a digit wide or wider, with its middle rows mostly
    ink (BLOT; a digit's strokes leave room between them) across several strokes, or crossing more
    strokes than digits side by side do (at least SCRIBBLE strokes, SCRIBBLE_DENSITY a digit's height: a 0 crosses 2 in
    about 0.7 heights)."""
    x0, y0, x1, y1 = page.bounds(group)
    middle = np.isin(page.labels[y0 + (y1 - y0) // 4 : y1 - (y1 - y0) // 4, x0:x1], group)
    wide = (x1 - x0) / digit
    if middle.size == 0 or wide < SCRIBBLE_WIDTH:
        return False
    strokes = float(np.median((np.diff(middle.astype(np.int8), axis=1) == 1).sum(axis=1) + middle[:, 0]))
    # Mostly ink and crossing 3 strokes or more: two thick digits that touch cross 2.
    return bool(
        (middle.mean() >= BLOT and strokes >= 3) or (strokes >= SCRIBBLE and strokes >= SCRIBBLE_DENSITY * wide)
    )


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


def read_number(
    image: np.ndarray, model: DigitModel, max_digits: int = MAX_DIGITS, not_a_digit: float = NOT_A_DIGIT["cnn"]
) -> ReadNumber:
    """A photo of a written number -> its digits, left to right, and the model's reading of each.

    Digits that touch are one component. A group wide enough to hold several is cut at valleys of
    its ink's column profile into the pieces the model reads most surely (the largest sum of the
    log of each piece's top probability), each piece a digit's width; every piece of every group
    goes to the model in one call. A group read whole whose logits' log-sum-exp (how much the
    model sees a digit at all) is under `not_a_digit` is left out: a tick, a stroke."""
    page = _number_page(image)
    _too_many(len(page.groups), max_digits)  # before any cutting: the groups bound its cost
    # A digit's height: the groups' median (touching digits make a wider group, not a taller one).
    height = float(np.median([y1 - y0 for _, y0, _, y1 in map(page.bounds, page.groups)]))
    spans = [_spans(page, group, height) for group in page.groups]
    pieces = [page.digit(group, *span) for group, own in zip(page.groups, spans) for span in own]
    logits = model(to_model_input(np.stack([p.image for p in pieces])))
    probabilities = softmax(logits)
    surety = np.log(probabilities.max(axis=1))
    seen = logits.max(axis=1) + np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1))
    starts = np.cumsum([0, *map(len, spans)])  # where each group's pieces begin
    chosen, left_out = [], list(page.left_out)
    for own, start in zip(spans, starts):
        best = [start + i for i in _surest(own, surety[start : start + len(own)])]
        if len(best) == 1 and seen[best[0]] < not_a_digit:
            left_out.append(LeftOut(pieces[best[0]].box, "not a digit"))
        else:
            chosen += best
    if not chosen:
        raise NoDigit("no digit found: the model reads none of the ink as a digit")
    _too_many(len(chosen), max_digits)
    return ReadNumber([pieces[i] for i in chosen], probabilities[chosen], left_out)


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


def to_model_input(digits: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1], the models' input."""
    return model_pixels(digits)
