"""Drawing keypoints and boxes: the contact sheets, the training grids and the webcam overlay."""

from dataclasses import dataclass

import cv2
import numpy as np

from vision.geometry import Box
from vision.keypoints import LOW_CONFIDENCE
from vision.pose import HeadPose, nose_direction

# BGR colors by facial part, in course order: eyes, brows, nose, mouth.
_PART_COLORS = [(0, 255, 0)] * 6 + [(255, 160, 0)] * 4 + [(0, 200, 255)] + [(0, 0, 255)] * 4


# Marks grow with the face they belong to, and never shrink below a share of the image's longer
# side, so that a 12-megapixel group photo's small faces stay visible when the picture is viewed
# whole (at about 1000 px across, a 2 px line of a 4000 px photo is half a pixel and vanishes).
LINE_PER_FACE, LINE_PER_IMAGE = 1 / 100, 1 / 500  # line width per face width, per image side
RADIUS_PER_FACE, RADIUS_PER_IMAGE = 1 / 60, 1 / 400
RING_RADIUS = 3  # the smallest ring drawn for a point the model is unsure of
FONT_PER_FACE, FONT_PER_IMAGE = 1 / 250, 1 / 1600  # OpenCV font scale (1.0: about 22 px tall)
# The head's pose is an arrow from the nose tip where the face points: this many face widths long
# for a face seen side-on, shorter the more it faces the camera (a dot when it looks straight at it).
NOSE_ARROW_PER_FACE = 0.6
POSE_COLOR = (255, 0, 255)  # BGR magenta: no part of the face is drawn in it


@dataclass(frozen=True)
class MarkSizes:
    line: int  # box line width, px
    radius: int  # keypoint radius, px
    font_scale: float  # label size (cv2.FONT_HERSHEY_SIMPLEX)
    font_thickness: int


def mark_sizes(face_width: float, image_shape: tuple[int, ...]) -> MarkSizes:
    """How big to draw one face's marks on an image of `image_shape` (height, width, ...)."""
    side = max(image_shape[:2])
    line = max(2, round(max(face_width * LINE_PER_FACE, side * LINE_PER_IMAGE)))
    radius = max(2, round(max(face_width * RADIUS_PER_FACE, side * RADIUS_PER_IMAGE)))
    font = max(0.4, face_width * FONT_PER_FACE, side * FONT_PER_IMAGE)
    return MarkSizes(line, radius, font, max(1, round(font * 1.5)))


def draw_keypoints(
    image: np.ndarray, points: np.ndarray, radius: int = 2, color=None, confidence: np.ndarray | None = None
) -> np.ndarray:
    """Draw (15, 2) pixel keypoints on a BGR image in place; returns the image. With (15,)
    confidences, a point below LOW_CONFIDENCE is drawn as a ring instead of a dot (at least
    RING_RADIUS px: a smaller ring is a dot to the eye)."""
    for i, (x, y) in enumerate(np.asarray(points)):
        if np.isfinite(x) and np.isfinite(y):
            center, colour = (int(round(x)), int(round(y))), color or _PART_COLORS[i]
            if confidence is not None and confidence[i] is not None and confidence[i] < LOW_CONFIDENCE:
                cv2.circle(image, center, max(radius, RING_RADIUS), colour, max(1, radius // 3), cv2.LINE_AA)
            else:
                cv2.circle(image, center, radius, colour, -1, cv2.LINE_AA)
    return image


def nose_arrow(nose: tuple[float, float], pose: HeadPose, face_width: float) -> tuple[float, float]:
    """Where the pose arrow from the nose tip ends, image pixels."""
    dx, dy = nose_direction(pose)
    length = face_width * NOSE_ARROW_PER_FACE
    return nose[0] + dx * length, nose[1] + dy * length


def draw_pose(image: np.ndarray, nose, pose: HeadPose, face_width: float, thickness: int = 2) -> np.ndarray:
    """Draw the head's pose as an arrow from the nose tip (`nose_arrow`) on a BGR image, in place."""
    end = nose_arrow(nose, pose, face_width)
    start, end = (int(round(nose[0])), int(round(nose[1]))), (int(round(end[0])), int(round(end[1])))
    cv2.arrowedLine(image, start, end, POSE_COLOR, thickness, cv2.LINE_AA, tipLength=0.3)
    return image


def draw_box(image: np.ndarray, box: Box, color=(255, 255, 0), thickness: int = 2) -> np.ndarray:
    top_left = (int(box.x), int(box.y))
    cv2.rectangle(image, top_left, (int(box.x + box.width), int(box.y + box.height)), color, thickness)
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
