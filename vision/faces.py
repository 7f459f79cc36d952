"""Face detection and the 96x96 crop geometry, shared by training and serving.

A crop is an axis-aligned square around a face box, expanded by a fixed margin. Keypoints map
into it (pixels, then the course normalization [-1, 1]) and back to image pixels exactly.
"""

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from vision.errors import InputError
from vision.signatures import CROP_SIZE
# The square's side is this many times the Haar box side. The Haar box spans brows to chin;
# 1.2 leaves room around the 15 keypoints (measured on the faces data: see prepare_faces).
CROP_MARGIN = 1.2
HAAR_CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels."""

    x: float
    y: float
    width: float
    height: float

    def as_dict(self) -> dict:
        return {"x": int(self.x), "y": int(self.y), "width": int(self.width), "height": int(self.height)}


@dataclass(frozen=True)
class Square:
    """The integer square that a crop is cut from: top-left corner and side, in image pixels."""

    x: int
    y: int
    side: int

    @classmethod
    def around(cls, box: Box, margin: float = CROP_MARGIN) -> "Square":
        side = max(1, round(max(box.width, box.height) * margin))
        cx, cy = box.x + box.width / 2, box.y + box.height / 2
        return cls(round(cx - side / 2), round(cy - side / 2), side)

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return CROP_SIZE / self.side

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Image pixel coordinates -> crop pixel coordinates (pixel centers aligned)."""
        origin = np.array([self.x, self.y], dtype=np.float64)
        return (np.asarray(points, dtype=np.float64) - origin + 0.5) * self.scale - 0.5

    def to_image(self, crop_points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates -> image pixel coordinates; the inverse of `to_crop`."""
        origin = np.array([self.x, self.y], dtype=np.float64)
        return (np.asarray(crop_points, dtype=np.float64) + 0.5) / self.scale - 0.5 + origin


def normalize(crop_points: np.ndarray) -> np.ndarray:
    """Crop pixels -> the course's [-1, 1]: (x - 48) / 48."""
    half = CROP_SIZE / 2
    return (np.asarray(crop_points, dtype=np.float64) - half) / half


def denormalize(normalized: np.ndarray) -> np.ndarray:
    half = CROP_SIZE / 2
    return np.asarray(normalized, dtype=np.float64) * half + half


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any decoded OpenCV image (gray, BGR or BGRA) -> uint8 gray."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise InputError(f"unsupported image shape {image.shape}")


def crop(gray: np.ndarray, square: Square) -> np.ndarray:
    """Cut `square` out of a gray image, padding by edge replication where it leaves the image,
    and resize it to CROP_SIZE x CROP_SIZE uint8."""
    h, w = gray.shape[:2]
    x0, y0, x1, y1 = square.x, square.y, square.x + square.side, square.y + square.side
    inside = gray[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    if inside.size == 0:
        raise InputError(f"crop square {square} lies outside the {w}x{h} image")
    padded = cv2.copyMakeBorder(
        inside, max(-y0, 0), max(y1 - h, 0), max(-x0, 0), max(x1 - w, 0), cv2.BORDER_REPLICATE
    )
    shrinking = square.side > CROP_SIZE
    return cv2.resize(
        padded, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


class FaceDetector:
    """OpenCV's bundled frontal-face Haar cascade.

    A CascadeClassifier shared by concurrent threads has crashed a server with a segmentation
    fault, so each thread lazily gets its own.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 40):
        self.path = cv2.data.haarcascades + HAAR_CASCADE
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self._local = threading.local()
        self._classifier()  # fail at construction, not at the first request

    def _classifier(self) -> "cv2.CascadeClassifier":
        classifier = getattr(self._local, "classifier", None)
        if classifier is None:
            classifier = cv2.CascadeClassifier(self.path)
            if classifier.empty():
                raise RuntimeError(f"could not load the Haar cascade {self.path}")
            self._local.classifier = classifier
        return classifier

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Face boxes in a gray image, largest first."""
        found = self._classifier().detectMultiScale(
            cv2.equalizeHist(gray),
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        boxes = [Box(*map(float, b)) for b in found]
        return sorted(boxes, key=lambda b: b.width * b.height, reverse=True)


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = ix * iy
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0
