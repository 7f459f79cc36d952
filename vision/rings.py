"""Strokes a writer draws around a number (a ring, a box), found in the ink of its photo so that
`vision.number_page` leaves them out: their own stroke only, not the digits that touch them."""

import cv2
import numpy as np

from vision.geometry import Box

# A stroke drawn around the number is looked for among the RING_CANDIDATES widest components; its
# own stroke is its ink within RING_RIM of its stroke's width from its convex hull's rim.
RING_CANDIDATES, RING_RIM = 3, 1.0
# A digit touching a ring from inside is what is left of the ring without its stroke, in a piece at
# least TOUCHING_HEIGHT as high as the digits apart from it inside.
TOUCHING_HEIGHT = 0.6


def drawn_rings(ink: np.ndarray, digits: int = 2) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The pixels of strokes drawn around the digits (a number circled or boxed by its writer), and
    each one's box (x, y, width, height): a component (lines included) with ink above, below, left
    and right of another that is not a speck, within its own rows and columns, and of more digits,
    apart from it too or touching it from inside, up to `digits` (a number's ring holds two at
    least; one digit's photo, one). Of such a ring only its own stroke is taken, not the digits
    that touch it."""
    count, labels, stats, centres = cv2.connectedComponentsWithStats(ink, connectivity=8)
    rings, boxes = np.zeros_like(ink), []
    if count <= 2:  # a ring and a digit apart inside it at least
        return rings, boxes
    large = stats[1:, cv2.CC_STAT_AREA].max() * 0.1
    for i in np.argsort(-stats[1:, cv2.CC_STAT_WIDTH])[:RING_CANDIDATES] + 1:
        box = Box(*stats[i, :4])
        # Digits apart from it, wholly in its box (the ring's own centre lies in the middle digit,
        # whose ink is above, below, left and right of it: that digit is no ring around the ring).
        inside = [
            j
            for j in range(1, count)
            if j != i
            and stats[j, cv2.CC_STAT_AREA] >= large
            and Box(*stats[j, :4]).within(box)
            and _surrounds(labels, i, centres[j], box)
        ]
        if not inside:  # digits touching it alone make no ring: a 0 between two it touches would be one
            continue
        ring = np.where(labels == i, 255, 0).astype(np.uint8)
        stroke = _stroke_of_ring(ring)
        digit = float(np.median(stats[inside, cv2.CC_STAT_HEIGHT]))
        if len(inside) + _touching(cv2.bitwise_and(ring, cv2.bitwise_not(stroke)), large, digit) >= digits:
            rings |= stroke
            boxes.append((int(box.x), int(box.y), int(box.width), int(box.height)))
    return rings, boxes


def _touching(rest: np.ndarray, large: float, digit: float) -> int:
    """How many digits touch a ring from inside: what is left of it without its stroke, in pieces
    as large as digits."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
    tall = stats[1:, cv2.CC_STAT_HEIGHT] >= TOUCHING_HEIGHT * digit
    return int(((stats[1:, cv2.CC_STAT_AREA] >= large) & tall).sum())


def _stroke_of_ring(ring: np.ndarray) -> np.ndarray:
    """A ring component's own stroke: its pixels near its convex hull's rim, not the digits that
    touch it from inside."""
    points = cv2.findNonZero(ring)
    hull = np.zeros_like(ring)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 255)
    depth = cv2.distanceTransform(ring, cv2.DIST_L2, 3)
    width = max(2.0, 2 * float(np.percentile(depth[ring > 0], 90)))
    inner = cv2.erode(hull, np.ones((3, 3), np.uint8), iterations=round(RING_RIM * width))
    return cv2.bitwise_and(ring, cv2.bitwise_not(inner))


def _surrounds(labels: np.ndarray, ring: int, centre: np.ndarray, box: Box) -> bool:
    """Whether component `ring` has ink above, below, left and right of `centre` in its box."""
    x, y, w, h = int(box.x), int(box.y), int(box.width), int(box.height)
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    if not (x < cx < x + w - 1 and y < cy < y + h - 1):
        return False
    column, row = labels[y : y + h, cx] == ring, labels[cy, x : x + w] == ring
    return bool(column[: cy - y].any() and column[cy - y :].any() and row[: cx - x].any() and row[cx - x :].any())
