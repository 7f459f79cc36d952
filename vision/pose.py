"""Head pose from the 15 keypoints: yaw, pitch and roll in degrees, by `cv2.solvePnP` against a
3D mean face of the same 15 points. Torch-free; the service, `--local` and the evaluation
(`python -m training.evaluate_pose`) call the same `head_pose`.

The convention is the subject's, in the camera's axes (x to the image's right, y down, z away
from the camera), with R = Rz(roll) · Ry(-yaw) · Rx(-pitch) turning the mean face into the
camera's view:

- yaw > 0: the subject turns to their own left (the nose moves to the image's right); MTFL's
  "right" poses (4, 5) and its web photos' positive yaw folders;
- pitch > 0: the subject looks up (the nose moves up the image);
- roll > 0: the head tilts toward the subject's left shoulder, the eye line turning clockwise in
  the image (`vision.detectors.Detection.roll`'s sign): under a distant camera, exactly the eye line's
  angle.

Without a known camera, the camera is one from the image's size: a focal length of the image's
longer side (a 53° view across it, a phone's or a webcam's) and the principal point at its centre.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

from vision.keypoints import LOW_CONFIDENCE, NUM_KEYPOINTS

EYE_DISTANCE_MM = 63.0  # the adult mean distance between the pupils
# The 15 points of a mean face in millimetres (eye centres EYE_DISTANCE_MM apart), x to the
# subject's left, y down, z away from the camera, origin between the eye centres. Made from our own
# training labels by `python -m training.mean_face`: a rigid factorization (Tomasi-Kanade, with
# the metric upgrade) of the 3,674 training faces' 68 points (YouTube, Helen, AFW; no held-out
# face), mapped to the 15 points as `vision.keypoints.IBUG68_SOURCES` does, made left-right
# symmetric, its depth then scaled (x0.65) to fit best the points that the pipeline finds on MTFL's
# training photos of turned heads (the factorization's own depth, from mostly frontal faces, is too deep).
MEAN_FACE_MM = np.array(
    [
        [31.5, 0.0, 0.0],  # left_eye_center
        [-31.5, 0.0, 0.0],  # right_eye_center
        [19.0, 0.9, -0.4],  # left_eye_inner_corner
        [43.5, -0.3, 4.6],  # left_eye_outer_corner
        [-19.0, 0.9, -0.4],  # right_eye_inner_corner
        [-43.5, -0.3, 4.6],  # right_eye_outer_corner
        [16.4, -19.6, -13.1],  # left_eyebrow_inner_end
        [57.5, -14.9, 9.7],  # left_eyebrow_outer_end
        [-16.4, -19.6, -13.1],  # right_eyebrow_inner_end
        [-57.5, -14.9, 9.7],  # right_eyebrow_outer_end
        [0.0, 35.5, -30.4],  # nose_tip
        [26.2, 67.8, 0.0],  # mouth_left_corner
        [-26.2, 67.8, 0.0],  # mouth_right_corner
        [0.0, 60.7, -16.7],  # mouth_center_top_lip
        [0.0, 80.9, -11.9],  # mouth_center_bottom_lip
    ]
)

# A face gets no pose (null) when its points do not support one:
# - fewer than MIN_POSE_POINTS of its 15 points are at least LOW_CONFIDENCE sure: the points are
#   guesses (a crop with no face in it, noise, a wall, a page, has 0 or 1; of MTFL's 8,301 training
#   faces 3 have fewer than 3, and even half-hidden profiles with 4 to 7 still get their yaw's side right);
# - the points are degenerate (all in one place) or the mean face fits them only behind the camera;
# - the mean face, turned and placed as well as it can be, misses the points by more than
#   MAX_FIT_ERROR of its eye-centre distance (root mean square): points that are no face seen from
#   anywhere (on MTFL's training faces the miss is 0.035 at the median, 0.087 at the 99.9th
#   percentile, 0.12 at most).
MIN_POSE_POINTS = 3
MAX_FIT_ERROR = 0.25


@dataclass(frozen=True)
class HeadPose:
    yaw: float  # degrees; > 0: turned to the subject's own left
    pitch: float  # degrees; > 0: looking up
    roll: float  # degrees; > 0: tilted toward the subject's left shoulder

    def as_dict(self) -> dict:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)}


def camera_matrix(width: int, height: int) -> np.ndarray:
    """The camera of an image whose camera is unknown: focal length its longer side, centred."""
    focal = float(max(width, height))
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]])


def angles(rotation: np.ndarray) -> HeadPose:
    """The mean face's rotation into the camera's axes (3x3) -> yaw, pitch, roll in degrees."""
    beta = math.asin(max(-1.0, min(1.0, -rotation[2, 0])))
    alpha = math.atan2(rotation[2, 1], rotation[2, 2])
    gamma = math.atan2(rotation[1, 0], rotation[0, 0])
    return HeadPose(-math.degrees(beta), -math.degrees(alpha), math.degrees(gamma))


def fit(
    points: np.ndarray, width: int, height: int, face: np.ndarray = MEAN_FACE_MM
) -> tuple[np.ndarray, float] | None:
    """The face (15, 3 mm) turned and placed to fit (15, 2) points in a width x height image's
    camera: its rotation vector, and how far it misses them (root mean square per coordinate) over
    the eye-centre distance it would have facing the camera (a profile's own is near 0). None where
    no pose fits: degenerate points (all in one place), or a face behind the camera."""
    camera = camera_matrix(width, height)
    try:
        found, rvecs, tvecs, error = cv2.solvePnPGeneric(face, points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    except cv2.error:  # SQPnP refuses points with no spread
        return None
    if not found or not tvecs[0][2, 0] > 0:
        return None
    return rvecs[0], float(error[0, 0] * tvecs[0][2, 0] / (camera[0, 0] * EYE_DISTANCE_MM))


def head_pose(
    points: np.ndarray,
    width: int,
    height: int,
    confidence: np.ndarray | None = None,
    face: np.ndarray = MEAN_FACE_MM,
) -> HeadPose | None:
    """(15, 2) keypoints in the pixels of a width x height image (and their (15,) confidences, if
    the model gives them) -> the head's pose, or None where the points do not support one. `face`:
    another 3D face to fit (the evaluation's variants)."""
    points = np.asarray(points, dtype=np.float64).reshape(NUM_KEYPOINTS, 2)
    if not np.isfinite(points).all():
        return None
    if confidence is not None and np.sum(np.asarray(confidence, dtype=np.float64) >= LOW_CONFIDENCE) < MIN_POSE_POINTS:
        return None
    fitted = fit(points, width, height, face)
    if fitted is None or not fitted[1] <= MAX_FIT_ERROR:
        return None
    return angles(cv2.Rodrigues(fitted[0])[0])


def nose_direction(pose: HeadPose) -> tuple[float, float]:
    """Where the face points, in the image: the unit forward vector's (x, y) under a distant camera
    (length 1 facing away sideways, 0 facing the camera), for drawing an arrow from the nose."""
    yaw, pitch, roll = (math.radians(a) for a in (pose.yaw, pose.pitch, pose.roll))
    x, y = math.sin(yaw) * math.cos(pitch), -math.sin(pitch)
    return math.cos(roll) * x - math.sin(roll) * y, math.sin(roll) * x + math.cos(roll) * y
