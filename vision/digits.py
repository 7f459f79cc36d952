"""MNIST's own recipe for turning any digit image into a 28x28 MNIST-style one.

White ink on black; the ink's bounding box fitted into 20x20 keeping its aspect ratio, then
placed in 28x28 so that its center of mass sits at the center. Photos or scans of dark ink on
light paper are inverted first.
"""

import cv2
import numpy as np

from vision.faces import to_gray
from vision.signatures import MNIST_SIZE, model_pixels

INK_BOX = 20
# Where MNIST puts the center of mass, in pixel-index coordinates (measured on the training set: mean 14.00, 13.99).
MNIST_CENTER = 14.0
# A pixel is ink when it is brighter than this share of the brightest pixel above the background.
INK_THRESHOLD = 0.1


def _ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Invert light-background images and stretch so the background is 0 and the ink up to 255."""
    background = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    if background > 127:
        gray, background = 255 - gray, 255 - background
    ink = np.clip(gray.astype(np.float32) - background, 0, None)
    peak = float(ink.max())
    if peak <= 0:
        return np.zeros_like(gray, dtype=np.float32)
    return ink * (255.0 / peak)


def to_mnist(image: np.ndarray) -> np.ndarray:
    """Any decoded image (gray, BGR or BGRA, any size) -> (28, 28) uint8, white digit on black."""
    ink = _ink_on_black(to_gray(image))
    mask = ink > INK_THRESHOLD * 255
    if not mask.any():
        return np.zeros((MNIST_SIZE, MNIST_SIZE), np.uint8)
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
