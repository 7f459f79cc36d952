"""The 96x96 face crop: where it is cut around a detection, how it is cut, and how points map
between image pixels, crop pixels and the keypoint model's [-1, 1].

A crop is a square around the face, rotated so that the eyes are level (when the detector gives
eyes, as YuNet does), scaled to 96x96. Each detector says how its boxes are cut (its `CropStyle`,
`vision.detectors`). `FaceCrop` maps points into the crop, to the course's [-1, 1], and back to
image pixels exactly. Every crop a model sees, in training and in serving, is cut by this code.
"""

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from vision.errors import InputError
from vision.keypoints import NUM_KEYPOINTS
from vision.signatures import CROP_SIZE, model_pixels

if TYPE_CHECKING:  # vision.detectors imports this module for CropStyle
    from vision.detectors import Detection


@dataclass(frozen=True)
class CropStyle:
    """How a crop is placed around a detection: its side is `margin` x the box's longer side, its
    center the box's center moved down by `drop` x that side (in the face's upright frame), and it
    is rotated by the eyes' roll when `align` is set."""

    margin: float
    drop: float = 0.0
    align: bool = True


@dataclass(frozen=True)
class FaceCrop:
    """A square of `side` image pixels centred at (cx, cy), turned by `angle` degrees (the face's
    roll), that becomes the CROP_SIZE x CROP_SIZE crop. Pixel centers are integer coordinates."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    @classmethod
    def around(cls, detection: "Detection") -> "FaceCrop":
        """The crop of a detection, placed in its detector's crop style."""
        style = detection.crop_style
        angle = detection.roll if style.align else 0.0
        side = max(detection.box.width, detection.box.height) * style.margin
        cx, cy = detection.box.center
        theta = math.radians(angle)  # "down" in the face's frame
        return cls(cx - math.sin(theta) * style.drop * side, cy + math.cos(theta) * style.drop * side, side, angle)

    @classmethod
    def whole(cls, width: int, height: int) -> "FaceCrop":
        """The whole image as the crop (a non-square one padded to the square around its center)."""
        return cls((width - 1) / 2, (height - 1) / 2, float(max(width, height)))

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return CROP_SIZE / self.side

    def matrix(self) -> np.ndarray:
        """The 2x3 affine map from image pixels to crop pixels."""
        theta = math.radians(self.angle)
        cos, sin = math.cos(theta) * self.scale, math.sin(theta) * self.scale
        half = CROP_SIZE / 2 - 0.5
        # crop = scale * R(-angle) (p - center) + half
        return np.array(
            [[cos, sin, half - cos * self.cx - sin * self.cy], [-sin, cos, half + sin * self.cx - cos * self.cy]]
        )

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Image pixel coordinates (..., 2) -> crop pixel coordinates."""
        m = self.matrix()
        return np.asarray(points, dtype=np.float64) @ m[:, :2].T + m[:, 2]

    def to_image(self, crop_points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates (..., 2) -> image pixel coordinates; the inverse of `to_crop`."""
        inverse = cv2.invertAffineTransform(self.matrix())
        return np.asarray(crop_points, dtype=np.float64) @ inverse[:, :2].T + inverse[:, 2]

    def bounds(self, border: int = 0) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): a square of image pixels that holds all `cut` reads (a turned square
        reaches up to 0.71 x its side from the center; bilinear reads one pixel more)."""
        reach = math.ceil(self.side * (CROP_SIZE + 2 * border) / CROP_SIZE * 0.75) + 2
        x0, y0 = math.floor(self.cx) - reach, math.floor(self.cy) - reach
        return x0, y0, x0 + 2 * reach, y0 + 2 * reach

    def cut(self, gray: np.ndarray, border: int = 0) -> np.ndarray:
        """The CROP_SIZE x CROP_SIZE uint8 crop, edges replicated where it leaves the image; with
        `border`, that many more pixels of context on each side at the same scale. A face much
        larger than the crop is first shrunk with area averaging, so that no detail aliases."""
        if gray.ndim != 2 or gray.size == 0:
            raise InputError(f"expected a non-empty gray image, got shape {gray.shape}")
        shrink = self.side / CROP_SIZE
        if shrink <= 2:
            return warp(gray, self.matrix(), border)
        # Cut the region around the square, edges replicated, area-average it down to about the
        # crop's scale, and warp that.
        x0, y0, x1, y1 = self.bounds(border)
        height, width = gray.shape
        ix0, iy0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
        ix1, iy1 = max(min(x1, width), ix0 + 1), max(min(y1, height), iy0 + 1)
        region = cv2.copyMakeBorder(
            gray[iy0:iy1, ix0:ix1],
            max(iy0 - y0, 0),
            max(y1 - iy1, 0),
            max(ix0 - x0, 0),
            max(x1 - ix1, 0),
            cv2.BORDER_REPLICATE,
        )
        factor = int(shrink)
        small_size = (region.shape[1] // factor, region.shape[0] // factor)
        small = cv2.resize(
            region[: small_size[1] * factor, : small_size[0] * factor], small_size, interpolation=cv2.INTER_AREA
        )
        inner = replace(
            self,
            cx=(self.cx - x0 + 0.5) / factor - 0.5,
            cy=(self.cy - y0 + 0.5) / factor - 0.5,
            side=self.side / factor,
        )
        return warp(small, inner.matrix(), border)


def warp(gray: np.ndarray, matrix: np.ndarray, border: int = 0) -> np.ndarray:
    """Apply an image -> crop map, with `border` more pixels on each side of the crop."""
    size = CROP_SIZE + 2 * border
    shifted = matrix + np.array([[0, 0, border], [0, 0, border]])
    return cv2.warpAffine(gray, shifted, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def normalize(crop_points: np.ndarray) -> np.ndarray:
    """Crop pixels -> the course's [-1, 1]: (x - 48) / 48."""
    half = CROP_SIZE / 2
    return (np.asarray(crop_points, dtype=np.float64) - half) / half


def denormalize(normalized: np.ndarray) -> np.ndarray:
    half = CROP_SIZE / 2
    return np.asarray(normalized, dtype=np.float64) * half + half


def model_input(crops: np.ndarray) -> np.ndarray:
    """(N, 96, 96) uint8 crops -> (N, 1, 96, 96) float32 in [0, 1], the keypoint model's input."""
    return model_pixels(crops)


def crop_points(model_output: np.ndarray) -> np.ndarray:
    """The keypoint model's (N, 30) output in [-1, 1] -> (N, 15, 2) crop pixels."""
    return denormalize(np.asarray(model_output).reshape(-1, NUM_KEYPOINTS, 2))
