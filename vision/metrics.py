"""Keypoint metrics, in NumPy only: training, export and evaluation all measure with these.

Keypoints come as (N, 30) = x0, y0, x1, y1, ... or (N, 15, 2), in the course order
(`vision.keypoints.KEYPOINT_NAMES`); any one coordinate system (normalized or pixels) for both
arguments. Torch-free on purpose, like the rest of `vision`.
"""

import numpy as np

from vision.keypoints import FIVE_POINT_NAMES, NUM_KEYPOINTS, OUTER_EYE_CORNERS


def as_points(a) -> np.ndarray:
    """(N, 30) or (N, 15, 2) keypoints -> float64 (N, 15, 2)."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(len(a), NUM_KEYPOINTS, 2)


def course_score(pred, target) -> float:
    """The course's 1 / (2 MSE), MSE over every normalized coordinate of every sample."""
    return float(1.0 / (2.0 * np.mean((as_points(pred) - as_points(target)) ** 2)))


def nme_per_face(pred, target, per_keypoint: bool = False) -> np.ndarray:
    """Point-to-point error over each face's outer-eye-corner distance: the mean over the 15
    points, (N,), or each point's own, (N, 15) with `per_keypoint`."""
    pred, target = as_points(pred), as_points(target)
    left, right = OUTER_EYE_CORNERS
    ocular = np.linalg.norm(target[:, left] - target[:, right], axis=-1)
    errors = np.linalg.norm(pred - target, axis=-1)
    return errors / ocular[:, None] if per_keypoint else errors.mean(axis=1) / ocular


def nme_five_per_face(pred, target, per_keypoint: bool = False) -> np.ndarray:
    """The same for five points (N, 5, 2) in `FIVE_POINT_NAMES` order (MTFL's), over each face's
    eye-centre distance (the target's first two points), as MTFL's papers measure: (N,) or (N, 5)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, len(FIVE_POINT_NAMES), 2)
    target = np.asarray(target, dtype=np.float64).reshape(-1, len(FIVE_POINT_NAMES), 2)
    eyes = np.linalg.norm(target[:, 0] - target[:, 1], axis=-1)
    errors = np.linalg.norm(pred - target, axis=-1) / eyes[:, None]
    return errors if per_keypoint else errors.mean(axis=1)


def nme(pred, target) -> float:
    """Mean normalized error (NME): `nme_per_face` averaged over the faces."""
    return float(np.mean(nme_per_face(pred, target)))
