"""vision.crop: the crop geometry and cutting, on real OpenCV."""

import cv2
import numpy as np
import pytest

from vision.crop import FaceCrop, denormalize, normalize
from vision.detectors import HAAR_CROP, Detection
from vision.errors import InputError
from vision.geometry import Box

CROPS = [
    FaceCrop(60.0, 70.0, 90.0),
    FaceCrop(100.5, 80.25, 150.0, 17.0),
    FaceCrop(-10.0, 20.0, 300.0, -33.0),  # mostly outside, large (the area-averaging path)
]


@pytest.mark.parametrize("crop", CROPS)
def test_to_crop_and_to_image_are_exact_inverses(crop):
    points = np.random.default_rng(0).uniform(-50, 250, size=(15, 2))
    np.testing.assert_allclose(crop.to_image(denormalize(normalize(crop.to_crop(points)))), points, atol=1e-9)


@pytest.mark.parametrize("crop", CROPS[:2] + [FaceCrop(150.0, 120.0, 260.0, 25.0)])
def test_a_marked_pixel_lands_where_the_geometry_says(crop):
    image = np.zeros((260, 300), np.uint8)
    spot = crop.to_image(np.array([60.0, 40.0]))  # a point in the crop's upper right
    cv2.circle(image, (round(spot[0]), round(spot[1])), max(2, round(crop.side / 40)), 255, -1)
    cut = crop.cut(image)
    assert cut.shape == (96, 96) and cut.dtype == np.uint8
    ys, xs = np.nonzero(cut > 32)
    found = np.array([np.average(xs, weights=cut[ys, xs]), np.average(ys, weights=cut[ys, xs])])
    np.testing.assert_allclose(found, crop.to_crop(np.round(spot)), atol=0.75)


def test_the_context_border_surrounds_the_same_crop():
    image = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (200, 200), np.uint8), (0, 0), 2)
    crop = FaceCrop(100.0, 90.0, 110.0, 12.0)
    context = crop.cut(image, border=24)
    assert context.shape == (144, 144)
    difference = np.abs(context[24:120, 24:120].astype(int) - crop.cut(image))
    assert difference.max() <= 1  # the same sampling grid; OpenCV's fixed-point rounding aside


def test_the_crop_replicates_edges_where_it_leaves_the_image():
    image = np.full((100, 100), 200, np.uint8)
    assert (FaceCrop(0.0, 0.0, 120.0, 30.0).cut(image) == 200).all()
    with pytest.raises(InputError):
        FaceCrop(0.0, 0.0, 10.0).cut(np.zeros((0, 0), np.uint8))


def test_an_aligned_crop_levels_the_eyes():
    eyes = ((80.0, 110.0), (140.0, 80.0))  # the subject's right eye lower: the head is turned
    detection = Detection(Box(60, 60, 100, 120), 0.9, "yunet", eyes)
    crop = FaceCrop.around(detection)
    (rx, ry), (lx, ly) = crop.to_crop(np.array(eyes))
    assert ry == pytest.approx(ly, abs=1e-9) and lx > rx
    assert detection.roll == pytest.approx(np.degrees(np.arctan2(-30, 60)))
    upright = FaceCrop.around(Detection(Box(60, 60, 100, 120), None, "haar", crop_style=HAAR_CROP))
    assert upright.angle == 0 and upright.side == pytest.approx(120 * HAAR_CROP.margin)


def test_the_whole_upload_as_a_crop():
    crop = FaceCrop.whole(160, 120)  # padded by 20 rows above and below
    corners = np.array([[-0.5, -20.5], [159.5, 139.5]])  # the padded square's outer pixel edges
    np.testing.assert_allclose(crop.to_crop(corners), [[-0.5, -0.5], [95.5, 95.5]], atol=1e-9)
