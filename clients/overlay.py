"""Drawing the service's answers onto images."""

import numpy as np

from clients.api import keypoint_array
from vision import draw
from vision.faces import Box


def draw_faces(image: np.ndarray, answer: dict) -> np.ndarray:
    """Draw every face box and its keypoints from a /faces answer onto a BGR image, in place."""
    for face in answer["faces"]:
        box = face["box"]
        draw.draw_box(image, Box(box["x"], box["y"], box["width"], box["height"]))
        radius = max(2, round(box["width"] / 60))
        draw.draw_keypoints(image, keypoint_array(face["keypoints"]), radius=radius)
    return image
