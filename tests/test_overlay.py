"""The clients' drawing of /faces answers (clients/overlay.py, sized by vision.draw.mark_sizes)."""

import numpy as np
import pytest

from clients.answers import Face, KeypointsAnswer
from clients.overlay import draw_faces, draw_keypoints_answer
from vision.keypoints import KEYPOINT_NAMES


def answer(x: int, y: int, width: int, face_id: int | None = None) -> dict:
    keypoints = [
        {"name": n, "x": x + width * (0.2 + 0.04 * i), "y": y + width * 0.3} for i, n in enumerate(KEYPOINT_NAMES)
    ]
    face = {"box": {"x": x, "y": y, "width": width, "height": width}, "score": 0.97, "keypoints": keypoints}
    return {"faces": [face | ({"id": face_id} if face_id is not None else {})]}


def draw_answer(image: np.ndarray, answer: dict) -> np.ndarray:
    """draw_faces on an answer's faces, given as JSON and read as the clients read it."""
    return draw_faces(image, [Face.from_json(face) for face in answer["faces"]])


def line_width(image: np.ndarray, x: int, y0: int, y1: int) -> int:
    """How many pixels wide the drawn box's left side is, measured across the row at mid-height."""
    row = image[(y0 + y1) // 2, x - 40 : x + 40].any(axis=1)
    return int(row.sum())


def test_marks_grow_with_the_face_and_stay_visible_on_a_12_megapixel_photo():
    small_photo = np.zeros((480, 640, 3), np.uint8)
    draw_answer(small_photo, answer(200, 100, 120))
    large_photo = np.zeros((3000, 4000, 3), np.uint8)
    draw_answer(large_photo, answer(1000, 1000, 120))  # the same small face, in a group photo
    draw_answer(large_photo, answer(2400, 600, 1200))  # and a close-up's
    small, far, near = (
        line_width(small_photo, 200, 100, 220),
        line_width(large_photo, 1000, 1000, 1120),
        line_width(large_photo, 2400, 600, 1800),
    )
    assert small <= 3  # a webcam frame keeps fine lines
    assert far >= 4000 / 500 - 1  # viewed whole at ~1000 px across, still two pixels
    assert near >= 10 * 1200 / 1000  # a large face's lines follow its size
    point = large_photo[1036 - 12 : 1036 + 12, 1024 - 12 : 1024 + 12].any(axis=2)
    assert point.sum() >= np.pi * (4000 / 400 - 1) ** 2  # its keypoints, likewise


def test_a_face_id_is_drawn_beside_its_box():
    plain, labelled = (np.zeros((480, 640, 3), np.uint8) for _ in range(2))
    draw_answer(plain, answer(200, 200, 120))
    draw_answer(labelled, answer(200, 200, 120, face_id=7))
    above = slice(150, 200), slice(200, 400)  # the label's band, above the box
    assert (labelled[above].any(axis=2).sum()) > (plain[above].any(axis=2).sum())  # "#7  0.97" > "0.97"


def test_a_point_the_model_is_unsure_of_is_a_ring_and_the_others_dots():
    """Below vision.keypoints.LOW_CONFIDENCE a keypoint is drawn hollow: its centre stays unpainted."""
    from vision.keypoints import LOW_CONFIDENCE

    found = answer(100, 100, 600)
    points = found["faces"][0]["keypoints"]
    for i, point in enumerate(points):
        point["confidence"] = LOW_CONFIDENCE - 0.1 if i % 2 else LOW_CONFIDENCE + 0.1
    image = np.zeros((900, 900, 3), np.uint8)
    draw_answer(image, found)
    painted = [bool(image[round(p["y"]), round(p["x"])].any()) for p in points]
    assert painted == [i % 2 == 0 for i in range(len(points))]
    ring = image[
        round(points[1]["y"]) - 12 : round(points[1]["y"]) + 13, round(points[1]["x"]) - 12 : round(points[1]["x"]) + 13
    ]
    assert ring.any()  # the ring itself is drawn
    without = answer(100, 100, 600)  # an answer without confidences (an older service): all dots
    image = np.zeros((900, 900, 3), np.uint8)
    draw_answer(image, without)
    assert all(image[round(p["y"]), round(p["x"])].any() for p in without["faces"][0]["keypoints"])


def test_an_unsure_point_on_a_small_face_is_still_a_ring():
    """On a webcam-sized face the marks are 2 px: a ring that small would be a dot, so it is drawn
    at vision.draw.RING_RADIUS at least, its centre unpainted."""
    from vision.draw import RING_RADIUS, mark_sizes

    found = answer(100, 100, 100)
    assert mark_sizes(100, (480, 640)).radius < RING_RADIUS
    point = found["faces"][0]["keypoints"][10]
    point["confidence"] = 0.1
    image = np.zeros((480, 640, 3), np.uint8)
    draw_answer(image, found)
    x, y = round(point["x"]), round(point["y"])
    assert not image[y, x].any() and image[y - RING_RADIUS : y + RING_RADIUS + 1, x].any()


def test_the_head_pose_is_an_arrow_from_the_nose_where_the_face_points():
    """yaw > 0 (turned to the subject's left) points to the image's right, < 0 to its left; a face
    with no pose (null) gets no arrow. The arrow is the only magenta (vision.draw.POSE_COLOR)."""
    from vision.draw import NOSE_ARROW_PER_FACE, POSE_COLOR

    def magenta_columns(pose: dict | None) -> np.ndarray:
        image = np.zeros((480, 640, 3), np.uint8)
        drawn = answer(200, 100, 200)
        drawn["faces"][0]["pose"] = pose
        draw_answer(image, drawn)
        return np.nonzero((image == POSE_COLOR).all(axis=2))[1]

    nose_x = 200 + 200 * (0.2 + 0.04 * KEYPOINT_NAMES.index("nose_tip"))
    right, left = (
        magenta_columns({"yaw": 60, "pitch": 0, "roll": 0}),
        magenta_columns({"yaw": -60, "pitch": 0, "roll": 0}),
    )
    reach = 200 * NOSE_ARROW_PER_FACE * np.sin(np.radians(60))
    assert right.max() == pytest.approx(nose_x + reach, abs=3) and right.min() >= nose_x - 3
    assert left.min() == pytest.approx(nose_x - reach, abs=3) and left.max() <= nose_x + 3
    assert len(magenta_columns(None)) == 0


def test_a_keypoints_answer_is_drawn_with_its_pose_arrow():
    from vision.draw import POSE_COLOR

    crop = np.zeros((108, 108, 3), np.uint8)
    points = answer(10, 10, 88)["faces"][0]["keypoints"]
    draw_keypoints_answer(
        crop, KeypointsAnswer.from_json({"keypoints": points, "pose": {"yaw": -50, "pitch": 0, "roll": 0}})
    )
    columns = np.nonzero((crop == POSE_COLOR).all(axis=2))[1]
    nose_x = 10 + 88 * (0.2 + 0.04 * KEYPOINT_NAMES.index("nose_tip"))
    assert len(columns) and columns.min() < nose_x - 20  # turned to the subject's right: the image's left
