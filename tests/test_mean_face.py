"""training.mean_face: the factorization that makes vision.pose's mean face, on faces made in code."""

import ast

import cv2
import numpy as np
import pytest

from training import mean_face
from vision import pose
from vision.keypoints import FLIP_PERMUTATION, IBUG68_SOURCES, KEYPOINT_NAMES


def views(shape: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """(count, P, 2): a 3D shape under random rotations (within ±50° of facing the camera) and
    scales, projected orthographically, with a little noise."""
    rng = np.random.default_rng(seed)
    seen = []
    for _ in range(count):
        rotation = cv2.Rodrigues(rng.uniform(-0.9, 0.9, 3))[0]
        seen.append(rng.uniform(0.5, 2) * (shape @ rotation.T)[:, :2] + rng.normal(0, 0.05, (len(shape), 2)))
    return np.array(seen)


def test_the_factorization_finds_the_shape_seen_from_many_sides():
    """A random 68-point 3D shape, seen from 300 sides, comes back up to a rotation (or its mirror)
    and a scale: its pairwise distances are the original's."""
    shape = np.random.default_rng(1).normal(0, 30, (68, 3))
    found = mean_face.factorize(views(shape, 300))

    def distances(s: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(s[:, None] - s[None], axis=-1)
        return d / d.mean()

    assert np.abs(distances(found) - distances(shape)).max() < 0.03


def test_the_mean_face_is_placed_the_same_however_the_shape_was_turned_mirrored_or_scaled():
    """The factorization's shape comes up to a rotation, a mirror and a scale: the mean face made
    from it is the same for each, symmetric, eye centres on the x axis EYE_DISTANCE_MM apart, the
    nose toward the camera."""
    rng = np.random.default_rng(4)
    shape = np.zeros((68, 3))
    for point, sources in zip(pose.MEAN_FACE_MM, IBUG68_SOURCES, strict=True):
        shape[list(sources)] = point + rng.normal(0, 2, 3)  # a face near the mean face, not symmetric
    face = mean_face.mean_face(shape)
    turned = shape @ cv2.Rodrigues(np.array([0.3, -0.5, 0.2]))[0].T * [1, 1, -1] * 0.01
    np.testing.assert_allclose(mean_face.mean_face(turned), face, atol=1e-9)
    np.testing.assert_allclose(face[list(FLIP_PERMUTATION)] * [-1, 1, 1], face, atol=1e-9)
    np.testing.assert_allclose(face[:2], [[31.5, 0, 0], [-31.5, 0, 0]], atol=1e-9)
    assert face[KEYPOINT_NAMES.index("nose_tip"), 2] < 0


def test_the_printed_literal_is_the_face():
    text = mean_face.literal(pose.MEAN_FACE_MM)
    assert text.startswith("MEAN_FACE_MM = np.array(")
    values = ast.literal_eval(text.split("np.array(", 1)[1].rsplit(")", 1)[0].strip())
    np.testing.assert_allclose(values, pose.MEAN_FACE_MM, atol=0.051)


def test_the_depth_factor_is_the_one_that_fits_best():
    """Faces seen through the mean face made 0.7 as deep are fitted best by the factor 0.7."""
    shallow = pose.MEAN_FACE_MM * [1, 1, 0.7]
    camera = pose.camera_matrix(400, 400)
    found = []
    for yaw in (-40, -25, 25, 40):
        rvec = cv2.Rodrigues(cv2.Rodrigues(np.array([0.0, np.radians(yaw), 0.0]))[0])[0]
        points = cv2.projectPoints(shallow, rvec, np.array([0.0, 0.0, 500.0]), camera, None)[0].reshape(-1, 2)
        found.append(type("Found", (), {"points": points, "width": 400, "height": 400})())
    factor, errors = mean_face.depth_factor(pose.MEAN_FACE_MM, found)
    assert factor == pytest.approx(0.7) and errors[factor] < 1e-6
