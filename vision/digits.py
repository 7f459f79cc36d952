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

from vision.errors import InputError
from vision.faces import Box, to_gray
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
# A straight run across this share of the image's width (height) is a ruled (grid) line, not ink.
LINE_SHARE = 0.85


# A number is read at a larger working size: a row of digits is wide.
NUMBER_WORK_SIDE = 768
MAX_DIGITS = 32

# (N, 1, 28, 28) float32 in [0, 1] -> (N, 10) logits: an onnxruntime digit model.
DigitModel = Callable[[np.ndarray], np.ndarray]


class NoDigit(InputError):
    """The image holds no ink that could be a digit."""


def _ink_on_black(gray: np.ndarray) -> np.ndarray:
    """A white-on-black image, stretched so the background is 0 and the ink up to 255."""
    background = _border_median(gray)
    ink = np.clip(gray.astype(np.float32) - background, 0, None)
    peak = float(ink.max())
    if peak <= 0:
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
    border's median than the brightest do. (A dimly lit page is dark, but its ink is darker.)"""
    background = _border_median(gray)
    darkest, brightest = np.percentile(gray, [1, 99])
    return background - darkest > brightest - background


def _border_median(gray: np.ndarray) -> float:
    return float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))


def _ink_from_paper(gray: np.ndarray) -> np.ndarray:
    """Dark ink on light paper (a photo or a scan) -> the digit's ink, bright on black, float32."""
    ink, mask, _ = _paper_ink(gray, WORK_SIDE)
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


def _paper_ink(gray: np.ndarray, work_side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(ink, its mask without ruled lines, the scale of both): the paper's lighting flattened away,
    at a working size whose longer side is at most `work_side`."""
    gray, scale = _shrunk(gray, work_side)
    inverted = 255 - cv2.GaussianBlur(gray, (3, 3), 0)
    ink = cv2.subtract(inverted, _paper(inverted))
    if int(ink.max()) < MIN_CONTRAST:
        raise NoDigit("no digit found: the image holds no ink that stands out from the paper")
    _, mask = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    without_lines = cv2.bitwise_and(mask, cv2.bitwise_not(_long_lines(mask)))
    # A tightly cropped 1 is a long straight stroke too: if nothing but "lines" was there, keep it.
    return ink, without_lines if without_lines.any() else mask, scale


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
    """The pixels of straight horizontal and vertical runs longer than LINE_SHARE of the image."""
    height, width = mask.shape
    horizontal = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((1, max(3, int(width * LINE_SHARE))), np.uint8))
    vertical = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((max(3, int(height * LINE_SHARE)), 1), np.uint8))
    return cv2.dilate(cv2.bitwise_or(horizontal, vertical), np.ones((3, 3), np.uint8))


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
class _Page:
    """A photo of a number at its working size: the ink, each component's label, the components
    grouped into digits (left to right), and the working size's scale."""

    ink: np.ndarray
    labels: np.ndarray
    groups: list[list[int]]
    stats: np.ndarray
    scale: float

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
        box = Box(
            *(round(float(v) / self.scale) for v in (left + xs.min(), top + ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1))
        )
        return WrittenDigit(box, _mnist_recipe(_soft_ink(ink, only)))


def _number_page(image: np.ndarray) -> _Page:
    """A photo of a written number -> its ink and its components grouped into digits: specks
    dropped, components that overlap horizontally (the bar of a 5 written apart from its body) one
    digit."""
    gray = to_gray(image)
    if _dark_ink(gray):
        ink, mask, scale = _paper_ink(gray, NUMBER_WORK_SIDE)
    else:
        ink, scale = _ink_on_black(gray), 1.0
        mask = np.where(ink > INK_THRESHOLD * 255, 255, 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        raise NoDigit("no digit found: the image is blank")
    largest = stats[1:, cv2.CC_STAT_AREA].max()
    parts = sorted(
        (i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= 0.1 * largest),
        key=lambda i: stats[i, cv2.CC_STAT_LEFT],
    )
    groups: list[list[int]] = []
    for i in parts:
        if groups and _overlap_x(stats[groups[-1]], stats[i]) >= 0.5:
            groups[-1].append(i)
        else:
            groups.append([i])
    return _Page(ink, labels, groups, stats, scale)


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

    @property
    def number(self) -> str:
        return "".join(str(int(p.argmax())) for p in self.probabilities)


# Touching digits: a group wider than this many digit heights (the row's median) may hold more
# than one digit; each digit is at least MIN_WIDTH and at most MAX_WIDTH heights wide.
MAY_TOUCH = 0.9
MIN_WIDTH, MAX_WIDTH = 0.1, 1.2
MAX_CUTS = 8  # cut candidates per group: the lowest valleys of its ink's column profile


def read_number(image: np.ndarray, model: DigitModel, max_digits: int = MAX_DIGITS) -> ReadNumber:
    """A photo of a written number -> its digits, left to right, and the model's reading of each.

    Digits that touch are one component. A group wide enough to hold several is cut at valleys of
    its ink's column profile into the pieces the model reads most surely (the largest sum of the
    log of each piece's top probability), each piece a digit's width; every piece of every group
    goes to the model in one call."""
    page = _number_page(image)
    _too_many(len(page.groups), max_digits)  # before any cutting: the groups bound its cost
    # A digit's height: the groups' median (touching digits make a wider group, not a taller one).
    height = float(np.median([y1 - y0 for _, y0, _, y1 in map(page.bounds, page.groups)]))
    spans = [_spans(page, group, height) for group in page.groups]
    pieces = [page.digit(group, *span) for group, own in zip(page.groups, spans) for span in own]
    probabilities = softmax(model(to_model_input(np.stack([p.image for p in pieces]))))
    surety = np.log(probabilities.max(axis=1))
    starts = np.cumsum([0, *map(len, spans)])  # where each group's pieces begin
    chosen = [start + i for own, start in zip(spans, starts) for i in _surest(own, surety[start : start + len(own)])]
    _too_many(len(chosen), max_digits)
    return ReadNumber([pieces[i] for i in chosen], probabilities[chosen])


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
