"""vision.colors: a decoded image as gray or BGR."""

import numpy as np
import pytest

from vision.colors import to_bgr, to_gray
from vision.errors import InputError


def test_to_gray_and_to_bgr_accept_gray_bgr_and_bgra():
    for image in (np.zeros((5, 6), np.uint8), np.zeros((5, 6, 3), np.uint8), np.zeros((5, 6, 4), np.uint8)):
        assert to_gray(image).shape == (5, 6) and to_bgr(image).shape == (5, 6, 3)
    with pytest.raises(InputError):
        to_gray(np.zeros((5, 6, 2), np.uint8))
