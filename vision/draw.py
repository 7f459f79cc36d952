"""Drawing keypoints and boxes: the contact sheets, the training grids and the webcam overlay."""

import cv2
import numpy as np

from vision.faces import Box

# BGR colors by facial part, in course order: eyes, brows, nose, mouth.
_PART_COLORS = [(0, 255, 0)] * 6 + [(255, 160, 0)] * 4 + [(0, 200, 255)] + [(0, 0, 255)] * 4


def draw_keypoints(image: np.ndarray, points: np.ndarray, radius: int = 2, color=None) -> np.ndarray:
    """Draw (15, 2) pixel keypoints on a BGR image in place; returns the image."""
    for i, (x, y) in enumerate(np.asarray(points)):
        if np.isfinite(x) and np.isfinite(y):
            center = (int(round(x)), int(round(y)))
            cv2.circle(image, center, radius, color or _PART_COLORS[i], -1, cv2.LINE_AA)
    return image


def draw_box(image: np.ndarray, box: Box, color=(255, 255, 0)) -> np.ndarray:
    top_left = (int(box.x), int(box.y))
    cv2.rectangle(image, top_left, (int(box.x + box.width), int(box.y + box.height)), color, 2)
    return image


def contact_sheet(tiles: list[np.ndarray], columns: int = 8) -> np.ndarray:
    """Equal-sized BGR tiles -> one grid image, row by row."""
    if not tiles:
        raise ValueError("no tiles to lay out")
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * h, columns * w, 3), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    return sheet
