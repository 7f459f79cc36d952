"""vision.pose: the head's yaw, pitch and roll from the 15 keypoints, its sign convention, the
faces it refuses, and the pipeline that answers it; on real OpenCV and the shipped models."""

import math

import cv2
import numpy as np
import pytest
from photos import FIXTURE_FACES, no_face_images

from vision import pose
from vision.detectors import YUNET_MODEL, YuNetDetector
from vision.faces import find_faces
from vision.geometry import scaled_pixel
from vision.given_boxes import GivenBoxes
from vision.keypoints import FLIP_PERMUTATION, KEYPOINT_NAMES, LOW_CONFIDENCE
from vision.manifest import DEFAULT_PATH
from vision.onnx_model import OnnxModel

NOSE = KEYPOINT_NAMES.index("nose_tip")
EYES = KEYPOINT_NAMES.index("left_eye_center"), KEYPOINT_NAMES.index("right_eye_center")


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """vision.pose's convention: R = Rz(roll) Ry(-yaw) Rx(-pitch)."""
    a, b, g = math.radians(-pitch), math.radians(-yaw), math.radians(roll)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(g), -math.sin(g), 0], [math.sin(g), math.cos(g), 0], [0, 0, 1]])
    return rz @ ry @ rx


def photographed(yaw: float, pitch: float, roll: float, width: int = 640, height: int = 480, at=(0, 0, 600)):
    """The mean face's 15 points as a camera from the image's size sees it turned so."""
    rvec = cv2.Rodrigues(rotation(yaw, pitch, roll))[0]
    camera = pose.camera_matrix(width, height)
    return cv2.projectPoints(pose.MEAN_FACE_MM, rvec, np.array(at, float), camera, None)[0].reshape(-1, 2)


@pytest.mark.parametrize(
    "yaw, pitch, roll", [(0, 0, 0), (30, 0, 0), (-55, 10, 0), (0, -25, 0), (0, 0, 20), (20, 15, -30), (-70, -5, 8)]
)
def test_the_pose_a_face_is_seen_in_is_the_pose_answered(yaw, pitch, roll):
    found = pose.head_pose(photographed(yaw, pitch, roll), 640, 480)
    assert found is not None
    np.testing.assert_allclose([found.yaw, found.pitch, found.roll], [yaw, pitch, roll], atol=0.05)


def test_the_sign_convention_is_the_subjects():
    """Yaw > 0: turned to the subject's own left, the nose to the image's right; pitch > 0: looking
    up, the nose up the image; roll > 0: the eye line turns clockwise (the subject's left eye, on the
    image's right, goes down), as vision.detectors.Detection.roll measures it."""
    frontal = photographed(0, 0, 0)
    assert photographed(30, 0, 0)[NOSE, 0] > frontal[NOSE, 0]
    assert photographed(0, 20, 0)[NOSE, 1] < frontal[NOSE, 1]
    tilted = photographed(0, 0, 15)
    (lx, ly), (rx, ry) = tilted[EYES[0]], tilted[EYES[1]]
    assert math.degrees(math.atan2(ly - ry, lx - rx)) == pytest.approx(15, abs=0.5)


def test_the_pose_is_the_same_at_any_scale_of_the_image():
    points = photographed(25, -10, 5, at=(120, -40, 500))
    found = pose.head_pose(points, 640, 480)
    larger = pose.head_pose(scaled_pixel(points, 3.0), 1920, 1440)
    np.testing.assert_allclose([larger.yaw, larger.pitch, larger.roll], [found.yaw, found.pitch, found.roll], atol=1e-6)


def test_a_face_whose_points_are_guesses_or_no_face_has_no_pose():
    points = photographed(10, 0, 0)
    confidence = np.full(15, LOW_CONFIDENCE - 0.1)
    assert pose.head_pose(points, 640, 480, confidence) is None
    confidence[: pose.MIN_POSE_POINTS] = LOW_CONFIDENCE
    assert pose.head_pose(points, 640, 480, confidence) is not None
    assert pose.head_pose(np.full((15, 2), 50.0), 640, 480) is None  # degenerate: all in one place
    assert pose.head_pose(np.where(np.eye(15, 2, dtype=bool), np.nan, points), 640, 480) is None
    scattered = np.random.default_rng(2).uniform(0, 400, (15, 2))  # no face seen from anywhere
    assert pose.head_pose(scattered, 640, 480) is None


def test_the_mean_face_is_symmetric_with_its_nose_toward_the_camera():
    face = pose.MEAN_FACE_MM
    np.testing.assert_allclose(face[list(FLIP_PERMUTATION)] * [-1, 1, 1], face, atol=1e-9)
    assert np.linalg.norm(face[EYES[0]] - face[EYES[1]]) == pytest.approx(pose.EYE_DISTANCE_MM)
    assert face[NOSE, 2] < face[EYES[0], 2] and face[NOSE, 1] > 0  # in front of the eyes, below them


@pytest.mark.parametrize(
    "angles, direction", [((0, 0, 0), (0, 0)), ((90, 0, 0), (1, 0)), ((-90, 0, 0), (-1, 0)), ((0, 90, 0), (0, -1))]
)
def test_the_nose_direction_points_where_the_face_turns(angles, direction):
    np.testing.assert_allclose(pose.nose_direction(pose.HeadPose(*angles)), direction, atol=1e-9)


def test_the_nose_direction_turns_with_the_roll():
    x, y = pose.nose_direction(pose.HeadPose(40, 0, 90))  # turned to the subject's left, tilted 90 clockwise
    assert y == pytest.approx(math.sin(math.radians(40))) and x == pytest.approx(0, abs=1e-9)


@pytest.fixture(scope="module")
def keypoint_model():
    return OnnxModel(DEFAULT_PATH.parent / "keypoints.onnx").outputs


@pytest.fixture(scope="module")
def turned_faces(keypoint_model):
    """The fixture frames whose labelled nose tip sits off the eyes' midpoint by over 0.11 of the
    eye distance (to the image's right: > 0), each with its pipeline Face and its mirror image's."""
    from training.faces_data import load_landmarks68
    from vision.keypoints import from_ibug68

    labels = load_landmarks68(FIXTURE_FACES.parent / "keypoints68.csv")
    detector = YuNetDetector(YUNET_MODEL)
    found = []
    for i, points68 in enumerate(labels.points):
        points = from_ibug68(points68)
        offset = (points[NOSE, 0] - points[list(EYES), 0].mean()) / np.linalg.norm(points[EYES[0]] - points[EYES[1]])
        if abs(offset) > 0.11:
            image = labels.read_image(i)
            face, mirrored = (find_faces(im, detector, keypoint_model)[0] for im in (image, cv2.flip(image, 1)))
            found.append((offset, face, mirrored))
    assert len(found) >= 5 and {np.sign(offset) for offset, *_ in found} == {-1, 1}
    return found


def test_the_yaw_turns_the_way_the_labelled_nose_does(turned_faces):
    """End to end on real faces: a nose right of the eyes (the subject turned to their own left)
    is a positive yaw, and the face's mirror image turns the other way by as much."""
    for offset, face, mirrored in turned_faces:
        assert face.pose is not None and mirrored.pose is not None
        assert np.sign(face.pose.yaw) == np.sign(offset), (offset, face.pose)
        assert mirrored.pose.yaw == pytest.approx(-face.pose.yaw, abs=3)
        assert mirrored.pose.roll == pytest.approx(-face.pose.roll, abs=2)
        assert face.as_dict()["pose"] == face.pose.as_dict()


def test_a_given_box_on_no_face_answers_no_pose(keypoint_model):
    from vision.detectors import Detection
    from vision.geometry import Box

    for image in no_face_images().values():
        box = Detection(Box(10, 10, image.shape[1] - 20, image.shape[0] - 20), None, "given")
        assert find_faces(image, GivenBoxes([box]), keypoint_model)[0].pose is None
