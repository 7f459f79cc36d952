import csv

import numpy as np
import pytest

from vision import keypoints


def test_course_order_and_flip_pairs():
    names = keypoints.KEYPOINT_NAMES
    assert len(names) == 15 and names[0] == "left_eye_center" and names[-1] == "mouth_center_bottom_lip"
    perm = keypoints.FLIP_PERMUTATION
    assert names[perm[names.index("left_eye_outer_corner")]] == "right_eye_outer_corner"
    assert names[perm[names.index("mouth_right_corner")]] == "mouth_left_corner"
    assert perm[names.index("nose_tip")] == names.index("nose_tip")
    assert sorted(perm) == list(range(15)) and all(perm[perm[i]] == i for i in range(15))


def test_from_ibug68_on_a_known_row(fixtures):
    with open(fixtures / "faces" / "keypoints68.csv") as f:
        row = next(r for i, r in enumerate(csv.reader(f)) if i == 1)
    values = [float(v) for v in row[1:]]
    point = lambda i: (values[2 * i], values[2 * i + 1])  # noqa: E731 - columns interleave x, y
    got = keypoints.from_ibug68(np.array(values).reshape(68, 2))
    left_eye = np.mean([point(i) for i in range(42, 48)], axis=0)
    np.testing.assert_allclose(got[0], left_eye)
    assert tuple(got[3]) == point(45)  # left_eye_outer_corner
    assert tuple(got[10]) == point(30)  # nose_tip
    assert tuple(got[12]) == point(48)  # mouth_right_corner
    # The subject's left eye is on the image's right.
    assert got[0, 0] > got[1, 0]


def test_from_ibug68_rejects_wrong_shape():
    with pytest.raises(ValueError, match="68, 2"):
        keypoints.from_ibug68(np.zeros((15, 2)))


def test_records_are_named_in_order():
    records = keypoints.as_records(np.arange(30).reshape(15, 2))
    assert [r["name"] for r in records] == list(keypoints.KEYPOINT_NAMES)
    assert records[1] == {"name": "right_eye_center", "x": 2.0, "y": 3.0, "confidence": None}
    sure = keypoints.as_records(np.arange(30).reshape(15, 2), np.linspace(0, 1, 15))
    assert sure[1]["confidence"] == round(1 / 14, 3) and sure[-1]["confidence"] == 1.0


def test_five_points_are_mtfls_and_yunets_order(fixtures):
    """MTFL's x1..x5 and YuNet's five landmarks: the image-left eye (the subject's right), the
    image-right eye, the nose tip, the image-left and the image-right mouth corner."""
    assert keypoints.FIVE_POINT_NAMES == (
        "right_eye_center",
        "left_eye_center",
        "nose_tip",
        "mouth_right_corner",
        "mouth_left_corner",
    )
    with open(fixtures / "faces" / "keypoints68.csv") as f:
        row = next(r for i, r in enumerate(csv.reader(f)) if i == 1)
    points68 = np.array([float(v) for v in row[1:]]).reshape(68, 2)
    five = keypoints.to_five(keypoints.from_ibug68(points68))
    np.testing.assert_allclose(five[0], points68[36:42].mean(axis=0))  # the subject's right eye
    np.testing.assert_allclose(five[1], points68[42:48].mean(axis=0))
    np.testing.assert_array_equal(five[2:], points68[[30, 48, 54]])
    assert five[0, 0] < five[1, 0] and five[3, 0] < five[4, 0]  # image-left first, as MTFL and YuNet
    assert keypoints.to_five(np.zeros((3, 15, 2))).shape == (3, 5, 2)
    with pytest.raises(ValueError, match="15, 2"):
        keypoints.to_five(np.zeros((5, 2)))
