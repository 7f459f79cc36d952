"""The 15 facial keypoints of the Kaggle/course data set, and how to get them from 68 iBUG points.

"left" is the subject's left, which is the image's right.
"""

import numpy as np

KEYPOINT_NAMES = (
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

# For each of the 15 keypoints, the iBUG 300-W points (0-based) whose mean it is.
IBUG68_SOURCES = (
    tuple(range(42, 48)),  # left_eye_center
    tuple(range(36, 42)),  # right_eye_center
    (42,),
    (45,),
    (39,),
    (36,),  # eye corners
    (22,),
    (26,),
    (21,),
    (17,),  # eyebrow ends
    (30,),  # nose_tip
    (54,),
    (48,),
    (51,),
    (57,),  # mouth
)

# A horizontal flip turns each "left_*" point into the matching "right_*" one.
FLIP_PERMUTATION = tuple(
    KEYPOINT_NAMES.index(name.replace("left", "@").replace("right", "left").replace("@", "right"))
    for name in KEYPOINT_NAMES
)

# The five points that MTFL labels and YuNet finds, in their order: the subject's right eye (on the
# image's left), left eye, nose tip, right mouth corner (image left), left mouth corner.
FIVE_POINT_NAMES = ("right_eye_center", "left_eye_center", "nose_tip", "mouth_right_corner", "mouth_left_corner")
FIVE_POINTS = tuple(KEYPOINT_NAMES.index(name) for name in FIVE_POINT_NAMES)

OUTER_EYE_CORNERS = (
    KEYPOINT_NAMES.index("left_eye_outer_corner"),
    KEYPOINT_NAMES.index("right_eye_outer_corner"),
)


def from_ibug68(points68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) iBUG landmarks -> (..., 15, 2) course keypoints."""
    points68 = np.asarray(points68, dtype=np.float64)
    if points68.shape[-2:] != (68, 2):
        raise ValueError(f"expected (..., 68, 2) landmarks, got shape {points68.shape}")
    return np.stack([points68[..., list(src), :].mean(axis=-2) for src in IBUG68_SOURCES], axis=-2)


def to_five(points: np.ndarray) -> np.ndarray:
    """(..., 15, 2) course keypoints -> (..., 5, 2) in `FIVE_POINT_NAMES` order."""
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-2:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"expected (..., {NUM_KEYPOINTS}, 2) keypoints, got shape {points.shape}")
    return points[..., list(FIVE_POINTS), :]


# A keypoint's confidence is the model's probability that the point lies within this many pixels
# of the 96x96 crop (about 5% of the outer-eye-corner distance, 43 px there) of where it is: 1 - exp(-r²/2σ²)
# for the spread σ the model predicts for it (training.models.KeypointNet, training.keypoint_confidence).
CONFIDENCE_RADIUS_PX = 2.0
# Points below this confidence are drawn hollow by the clients and the page.
LOW_CONFIDENCE = 0.5


def as_records(points: np.ndarray, confidence: np.ndarray | None = None) -> list[dict]:
    """(15, 2) pixel coordinates and (15,) confidences (or None: a model without them) ->
    [{"name", "x", "y", "confidence"}, ...] in course order (the API's form)."""
    confidence = [None] * NUM_KEYPOINTS if confidence is None else [round(float(c), 3) for c in confidence]
    return [
        {"name": name, "x": round(float(x), 2), "y": round(float(y), 2), "confidence": c}
        for name, (x, y), c in zip(KEYPOINT_NAMES, points, confidence, strict=True)
    ]
