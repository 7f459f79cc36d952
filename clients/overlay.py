"""Drawing the service's answers onto images."""

import math
from collections.abc import Sequence

import cv2
import numpy as np

from clients.answers import Face, KeypointsAnswer, box_of
from vision import draw
from vision.keypoints import KEYPOINT_NAMES

NOSE_TIP = KEYPOINT_NAMES.index("nose_tip")

# A digit image is often tiny (MNIST's are 28x28): it is enlarged to at least this many pixels on
# its longer side, in whole-pixel steps, so that the label above it is readable.
DIGIT_MIN_SIDE = 280


def draw_faces(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """Draw every face's box, its keypoints and its head pose (an arrow from the nose, where the
    face has one) onto a BGR image, in place, with its label: the face's id (`#3`, on video, where
    the tracker gives one) and the detector's score. Marks are sized by the face and the image
    (vision.draw.mark_sizes)."""
    for face in faces:
        box = face.box
        sizes = draw.mark_sizes(box.width, image.shape)
        draw.draw_box(image, box, thickness=sizes.line)
        points = face.points
        draw.draw_keypoints(image, points, radius=sizes.radius, confidence=face.confidence)
        if face.pose is not None:
            draw.draw_pose(image, points[NOSE_TIP], face.pose, box.width, sizes.line)
        parts = ([f"#{face.id}"] if face.id is not None else []) + (
            [f"{face.score:.2f}"] if face.score is not None else []  # Haar gives no score
        )
        if parts:
            label, font = "  ".join(parts), cv2.FONT_HERSHEY_SIMPLEX
            (_, text_height), _ = cv2.getTextSize(label, font, sizes.font_scale, sizes.font_thickness)
            origin = (int(box.x), max(int(box.y) - sizes.line - 4, text_height + 2))
            outline = sizes.font_thickness + 2
            cv2.putText(image, label, origin, font, sizes.font_scale, (0, 0, 0), outline, cv2.LINE_AA)
            cv2.putText(image, label, origin, font, sizes.font_scale, (255, 255, 0), sizes.font_thickness, cv2.LINE_AA)
    return image


def draw_keypoints_answer(image: np.ndarray, answer: KeypointsAnswer) -> np.ndarray:
    """Draw a /keypoints answer (one face crop's points and its pose) onto the crop, in place."""
    sizes = draw.mark_sizes(image.shape[1], image.shape)
    points = answer.points
    draw.draw_keypoints(image, points, radius=sizes.radius, confidence=answer.confidence)
    if answer.pose is not None:
        draw.draw_pose(image, points[NOSE_TIP], answer.pose, image.shape[1], sizes.line)
    return image


def draw_number(image: np.ndarray, answer: dict) -> np.ndarray:
    """Draw each digit's box and its reading from a /number answer onto a BGR image, in place, and
    what was left out as not a digit (lines, the page's edge, marks) in thin grey boxes."""
    for item in answer.get("left_out", []):
        draw.draw_box(image, box_of(item["box"]), color=(160, 160, 160), thickness=1)
    for digit in answer["digits"]:
        box = box_of(digit["box"])
        draw.draw_box(image, box)
        scale = max(0.5, box.height / 60)
        origin = (int(box.x), max(int(box.y) - 6, 14))
        cv2.putText(image, str(digit["digit"]), origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 255), 2, cv2.LINE_AA)
    return image


def with_model_inputs(image: np.ndarray, pngs: list[str], scale: int = 4) -> np.ndarray:
    """A new BGR image: `image` above a strip of the 28x28 inputs the model saw (base64 PNGs from
    a debug answer), enlarged `scale` times, left to right."""
    import base64

    gap = 8
    tiles = []
    for png in pngs:
        small = cv2.imdecode(np.frombuffer(base64.b64decode(png), np.uint8), cv2.IMREAD_GRAYSCALE)
        tiles.append(
            cv2.cvtColor(
                cv2.resize(small, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR
            )
        )
    if not tiles:
        return image
    side = tiles[0].shape[0]
    width = max(image.shape[1], len(tiles) * (side + gap) + gap)
    strip = np.full((side + 2 * gap, width, 3), 48, np.uint8)
    for i, tile in enumerate(tiles):
        x = gap + i * (side + gap)
        strip[gap : gap + side, x : x + side] = tile
    canvas = np.zeros((image.shape[0], width, 3), np.uint8)
    canvas[:, : image.shape[1]] = image
    return np.vstack([canvas, strip])


def draw_digit(image: np.ndarray, answer: dict) -> np.ndarray:
    """A new BGR image: the digit image (enlarged if small) under a banner with the /digit answer,
    e.g. "7  98.1% (cnn)"."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    height, width = image.shape[:2]
    factor = math.ceil(DIGIT_MIN_SIDE / max(height, width))
    if factor > 1:
        image = cv2.resize(image, (width * factor, height * factor), interpolation=cv2.INTER_NEAREST)
    width = image.shape[1]
    label = f"{answer['digit']}  {answer['confidence']:.1%}"
    if answer.get("model"):
        label += f" ({answer['model']})"
    font, pad = cv2.FONT_HERSHEY_SIMPLEX, max(6, width // 40)
    scale = max(0.5, width / 320)
    text_width = cv2.getTextSize(label, font, scale, 1)[0][0]
    scale = min(scale, scale * (width - 2 * pad) / max(text_width, 1))  # fit the width
    thickness = max(1, round(scale * 2))
    (_, text_height), baseline = cv2.getTextSize(label, font, scale, thickness)
    banner = np.full((text_height + baseline + 2 * pad, width, 3), 32, np.uint8)
    cv2.putText(banner, label, (pad, pad + text_height), font, scale, (0, 255, 255), thickness, cv2.LINE_AA)
    return np.vstack([banner, image])
