"""From any photo, scan or drawing of one handwritten digit to the 28x28 MNIST form.

Two steps. First the ink: a white-on-black image (MNIST itself, a drawing pad) is taken as it is;
a photo or scan of dark ink on light paper is inverted, its uneven lighting flattened (the paper
estimated by a morphological opening and subtracted), the ink separated from the paper by Otsu's
threshold, ruled or squared lines and specks removed, and the digit's connected components kept.
An image with no ink in it is refused (`NoDigit`). Then MNIST's own recipe: the ink's bounding
box fitted into 20x20 keeping its aspect ratio, placed in 28x28 with its center of mass at the
center. A written number, many digits in a row, is `vision.numbers`.
"""

from collections.abc import Callable

import cv2
import numpy as np

from vision.colors import to_gray
from vision.errors import InputError
from vision.rings import drawn_rings
from vision.signatures import MNIST_SIZE, model_pixels

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
# A pen's line (an underline) is found by its straight core; where it curves, its edges are left
# beside the core as slivers that join the digits' feet. So a line no thicker than THIN_LINE digit
# heights is grown by LINE_GROWTH of its core's thickness above and below (a scribble's solid rows
# are thicker).
LINE_GROWTH, THIN_LINE = 0.5, 0.2
# Lines are looked for along the photo's skew, within this many degrees, at this step.
MAX_SKEW, SKEW_STEP = 6.0, 0.5


# (N, 1, 28, 28) float32 in [0, 1] -> (N, 10) logits: an onnxruntime digit model.
DigitModel = Callable[[np.ndarray], np.ndarray]


class NoDigit(InputError):
    """The image holds no ink that could be a digit."""

    status = 422


def ink_on_black(gray: np.ndarray) -> np.ndarray:
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
    ink = _ink_from_paper(gray) if dark_ink(gray) else ink_on_black(gray)
    return mnist_recipe(ink)


def dark_ink(gray: np.ndarray) -> bool:
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
    ink, mask, lines, _ = paper_ink(gray, WORK_SIDE)
    rings, _ = drawn_rings(cv2.bitwise_or(mask, lines), digits=1)  # a digit circled by its writer
    return soft_ink(ink, _digit_components(cv2.bitwise_and(mask, cv2.bitwise_not(rings))))


def shrunk(image: np.ndarray, longest: int) -> tuple[np.ndarray, float]:
    """(the image with its longer side at most `longest`, the scale it was shrunk by)."""
    scale = min(1.0, longest / max(image.shape))
    if scale == 1:
        return image, scale
    if min(round(side * scale) for side in image.shape) >= 1:
        return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale
    # A strip (1x20000): OpenCV cannot resize to a side of 0 pixels.
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def paper_ink(
    gray: np.ndarray, work_side: int, pen_lines: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(ink, its mask without lines, the lines, the scale of all three): the paper's lighting
    flattened away, at a working size whose longer side is at most `work_side`. With `pen_lines`
    (a number's photo), thick lines are a pen's and are grown to all of their ink (`_grown`); in a
    digit's photo a thick "line" is the digit's own stroke (a tightly cropped 7's bar)."""
    gray, scale = shrunk(gray, work_side)
    inverted = 255 - cv2.GaussianBlur(gray, (3, 3), 0)
    ink = cv2.subtract(inverted, _paper(inverted))
    if int(ink.max()) < MIN_CONTRAST:
        raise NoDigit("no digit found: the image holds no ink that stands out from the paper")
    _, mask = cv2.threshold(ink, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    lines = cv2.bitwise_and(mask, _long_lines(mask, pen_lines))
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
    small, scale = shrunk(inverted, PAPER_SIDE)
    side = max(15, (max(small.shape) // 4) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    paper = cv2.morphologyEx(small, cv2.MORPH_OPEN, kernel, borderType=cv2.BORDER_REPLICATE)
    paper = cv2.GaussianBlur(paper, (0, 0), side / 4)  # the opening is blocky; lighting is smooth
    if scale == 1:
        return paper
    return cv2.resize(paper, (inverted.shape[1], inverted.shape[0]), interpolation=cv2.INTER_LINEAR)


def soft_ink(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ink under the mask and its soft edges, stretched so its strokes reach 255."""
    kept = ink.astype(np.float32) * (cv2.dilate(mask, np.ones((SOFT_EDGE, SOFT_EDGE), np.uint8)) > 0)
    peak = float(np.percentile(kept[mask > 0], 99))
    return np.clip(kept * (255.0 / max(peak, 1.0)), 0, 255)


def _long_lines(mask: np.ndarray, pen_lines: bool) -> np.ndarray:
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
    return _crossed_lines(mask, level, standing, digit if pen_lines else 0.0)


def _crossed_lines(mask: np.ndarray, level: np.ndarray, standing: np.ndarray, digit: float = 0.0) -> np.ndarray:
    """Level and standing lines, a pixel wider (their soft edges; a pen's line wider still when the
    digits' height is given: `_grown`), less where a stroke crosses them: line pixels with the
    stroke's ink on both sides, above and below a level line (left and right of a standing one)
    within the line's thickness."""
    level, standing = _grown(level, digit), _grown(np.ascontiguousarray(standing.T), digit).T
    lines = cv2.bitwise_or(level, standing)
    rest = cv2.bitwise_and(mask, cv2.bitwise_not(lines))
    for found, across in ((level, (_thickness(level) + 3, 1)), (standing, (1, _thickness(standing.T) + 3))):
        if found.any():  # most photos have no lines: no closing to pay for
            crossings = cv2.bitwise_and(cv2.morphologyEx(rest, cv2.MORPH_CLOSE, np.ones(across, np.uint8)), found)
            lines = cv2.bitwise_and(lines, cv2.bitwise_not(crossings))
    return lines


def _grown(level: np.ndarray, digit: float) -> np.ndarray:
    """Level lines a pixel wider, and each one no thicker than THIN_LINE digit heights by
    LINE_GROWTH of its thickness above and below: all of a pen's line, not just its straight core."""
    grown = cv2.dilate(level, np.ones((3, 3), np.uint8))
    if not digit or not level.any():
        return grown
    count, labels, stats, _ = cv2.connectedComponentsWithStats(level, connectivity=8)
    for i in range(1, count):
        x, y, w, h, area = stats[i]
        thickness = area / w
        reach = round(LINE_GROWTH * thickness)
        if reach <= 1 or thickness > THIN_LINE * digit:
            continue  # a printed line's soft edge is a pixel wide; a scribble's solid rows are no pen's line
        y0, y1 = max(0, y - reach - 1), min(level.shape[0], y + h + reach + 1)
        core = np.where(labels[y0:y1, x : x + w] == i, 255, 0).astype(np.uint8)
        grown[y0:y1, x : x + w] |= cv2.dilate(core, np.ones((2 * reach + 1, 3), np.uint8))
    return grown


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
    small, _ = shrunk(mask, 256)
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


def mnist_recipe(ink: np.ndarray) -> np.ndarray:
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


def to_model_input(digits: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1], the models' input."""
    return model_pixels(digits)
