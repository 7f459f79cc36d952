"""A decoded image in the channels a step needs: gray for the crops and the digit reader, BGR for
YuNet. OpenCV decodes to gray, BGR or BGRA; anything else is an InputError."""

import cv2
import numpy as np

from vision.errors import InputError


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


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Any decoded OpenCV image -> 3-channel BGR (what YuNet takes)."""
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(to_gray(image), cv2.COLOR_GRAY2BGR)
