import cv2
import numpy as np
import pytest

from vision import faces
from vision.errors import InputError


@pytest.mark.parametrize("box", [faces.Box(40, 30, 80, 90), faces.Box(-20, -10, 70, 70), faces.Box(150, 90, 60, 60)])
def test_crop_normalize_inverse_round_trip_within_half_a_pixel(box):
    square = faces.Square.around(box)
    points = np.random.default_rng(0).uniform(0, 200, size=(15, 2))
    back = square.to_image(faces.denormalize(faces.normalize(square.to_crop(points))))
    assert np.abs(back - points).max() < 0.5


def test_a_marked_pixel_lands_where_the_geometry_says():
    image = np.zeros((200, 240), np.uint8)
    cv2.circle(image, (130, 95), 3, 255, -1)
    square = faces.Square.around(faces.Box(90, 60, 70, 80))
    crop = faces.crop(image, square)
    assert crop.shape == (96, 96) and crop.dtype == np.uint8
    ys, xs = np.nonzero(crop > 64)
    found = np.array([np.average(xs, weights=crop[ys, xs]), np.average(ys, weights=crop[ys, xs])])
    np.testing.assert_allclose(found, square.to_crop([130, 95]), atol=0.5)


def test_crop_pads_where_the_square_leaves_the_image():
    image = np.full((100, 100), 200, np.uint8)
    crop = faces.crop(image, faces.Square(-50, -50, 120))
    assert crop.shape == (96, 96) and (crop == 200).all()  # edge replication, no black border
    with pytest.raises(InputError):
        faces.crop(image, faces.Square(500, 500, 50))


def test_square_is_centered_and_expanded():
    square = faces.Square.around(faces.Box(10, 20, 100, 100), margin=1.2)
    assert square.side == 120 and (square.x, square.y) == (0, 10)


def test_haar_detects_the_fixture_faces(fixtures):
    detector = faces.FaceDetector()
    found = 0
    for path in sorted((fixtures / "faces" / "images").glob("*.jpg")):
        found += bool(detector.detect(faces.to_gray(cv2.imread(str(path)))))
    assert found >= 8


def test_no_face_in_a_blank_image():
    assert faces.FaceDetector().detect(np.full((200, 200), 128, np.uint8)) == []


def test_iou():
    a = faces.Box(0, 0, 10, 10)
    assert faces.iou(a, a) == 1.0
    assert faces.iou(a, faces.Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert faces.iou(a, faces.Box(20, 20, 5, 5)) == 0.0


def test_to_gray_accepts_gray_bgr_and_bgra():
    for image in (np.zeros((5, 6), np.uint8), np.zeros((5, 6, 3), np.uint8), np.zeros((5, 6, 4), np.uint8)):
        assert faces.to_gray(image).shape == (5, 6)
    with pytest.raises(InputError):
        faces.to_gray(np.zeros((5, 6, 2), np.uint8))
