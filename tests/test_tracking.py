"""The face tracker (clients/tracking.py) on synthetic answers and frames: no server, no model."""

import face_vectors
import numpy as np
import pytest

from clients.answers import Face
from clients.tracking import CUT_CORRELATION, REMEMBER_FRAMES, Tracker, gray_patch, similarity
from vision.geometry import Box
from vision.keypoints import KEYPOINT_NAMES

# Where each keypoint sits in a face's box, as fractions of its width and height ("left" is the
# subject's left: the image's right).
LAYOUT = {
    "left_eye_center": (0.68, 0.40),
    "right_eye_center": (0.32, 0.40),
    "left_eye_inner_corner": (0.60, 0.40),
    "left_eye_outer_corner": (0.76, 0.40),
    "right_eye_inner_corner": (0.40, 0.40),
    "right_eye_outer_corner": (0.24, 0.40),
    "left_eyebrow_inner_end": (0.58, 0.30),
    "left_eyebrow_outer_end": (0.82, 0.30),
    "right_eyebrow_inner_end": (0.42, 0.30),
    "right_eyebrow_outer_end": (0.18, 0.30),
    "nose_tip": (0.50, 0.58),
    "mouth_left_corner": (0.64, 0.76),
    "mouth_right_corner": (0.36, 0.76),
    "mouth_center_top_lip": (0.50, 0.72),
    "mouth_center_bottom_lip": (0.50, 0.82),
}
FRAME = (480, 640)


def face_json(x: float, y: float, width: float = 100.0, score: float | None = 0.9, detector: str = "yunet") -> dict:
    height = 1.2 * width
    keypoints = [
        {"name": name, "x": x + LAYOUT[name][0] * width, "y": y + LAYOUT[name][1] * height} for name in KEYPOINT_NAMES
    ]
    box = {"x": x, "y": y, "width": width, "height": height}
    return {"box": box, "score": score, "detector": detector, "keypoints": keypoints}


def face(*args, **kwargs) -> Face:
    return Face.from_json(face_json(*args, **kwargs))


def texture(seed: int, size: int = 200) -> np.ndarray:
    """A picture of `size` px square that correlates with no other seed's."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (8, 8), dtype=np.uint8)
    return np.kron(small, np.ones((size // 8, size // 8), np.uint8))


def frame_with(*pictures: tuple[np.ndarray, int, int]) -> np.ndarray:
    image = np.full((*FRAME, 3), 120, np.uint8)
    for picture, x, y in pictures:
        image[y : y + picture.shape[0], x : x + picture.shape[1]] = picture[:, :, None]
    return image


def answer_for(plan, faces: list[dict]) -> list[dict]:
    """What the service answers: a detection's faces, or one face per given box (at that box)."""
    if plan.detect:
        return faces
    return [face(b["x"], b["y"], b["width"], b["score"], "given") for b in plan.boxes]


def test_it_detects_every_n_frames_and_follows_with_boxes_between():
    tracker = Tracker(detect_every=4)
    plans = []
    for i in range(10):
        plan = tracker.plan(i, frame_with((texture(1), 200, 100)))
        faces = tracker.update(plan, frame_with((texture(1), 200, 100)), answer_for(plan, [face(250, 140)]))
        plans.append(plan)
        assert [f.id for f in faces] == [1]
    assert [p.detect for p in plans] == [True, False, False, False, True, False, False, False, True, False]
    box = plans[1].boxes[0]
    assert (box["x"], box["y"], box["width"], box["height"]) == pytest.approx((250, 140, 100, 120))
    right, left = box["eyes"]  # the subject's right eye (the image's left) first
    assert right == pytest.approx([282, 188]) and left == pytest.approx([318, 188])
    assert box["score"] == 0.9
    assert tracker.stats.detections == 3


def centroid(face_record: Face) -> np.ndarray:
    return face_record.points.mean(axis=0)


def test_the_next_box_follows_the_points_move_and_size():
    tracker = Tracker()
    first, grown = face(100, 100, 100), face(130, 90, 150, detector="given")  # the points moved and grew
    tracker.update(tracker.plan(0), None, [first])
    tracker.update(tracker.plan(1), None, [grown])
    box = tracker.plan(2).boxes[0]
    # The grown face's box, carried on one more frame at the points' velocity.
    dx, dy = centroid(grown) - centroid(first)
    assert (box["x"], box["y"], box["width"], box["height"]) == pytest.approx((130 + dx, 90 + dy, 150, 180))


def test_the_next_box_carries_on_at_the_faces_velocity():
    tracker = Tracker(detect_every=100)
    tracker.update(tracker.plan(0), None, [face(100, 100)])
    assert tracker.plan(1).boxes[0]["x"] == pytest.approx(100)  # one answer: no velocity yet
    tracker.update(tracker.plan(2), None, [face(120, 100, detector="given")])  # 10 px a frame
    plan = tracker.plan(3)
    assert plan.boxes[0]["x"] == pytest.approx(130)
    ahead = tracker.plan(4)  # sent before frame 3's answer: two frames on from frame 2
    assert ahead.boxes[0]["x"] == pytest.approx(140) and ahead.boxes[0]["eyes"][0][0] == pytest.approx(172)


def test_a_fast_face_keeps_its_id_and_someone_else_there_does_not():
    """A face a box width from where it was (a fast move, or answers far apart) is the same face
    if it looks the same; another person there gets a new id."""
    tracker = Tracker(follow=False)
    ids = []
    for i, (picture, x) in enumerate([(1, 100), (1, 200), (1, 300), (2, 400)]):  # 100 px: the box's width
        image = frame_with((texture(picture), x - 50, 100))
        ids.append([f.id for f in tracker.update(tracker.plan(i, image), image, [face(x, 140)])])
    assert ids == [[1], [1], [1], [2]]


def test_no_track_detects_every_frame_and_still_gives_ids():
    tracker = Tracker(follow=False)
    for i in range(5):
        plan = tracker.plan(i)
        assert plan.detect
        faces = tracker.update(plan, None, [face(50 + 2 * i, 100), face(400 - 2 * i, 100)])
        assert sorted((f.box.x < 300, f.id) for f in faces) == [(False, 2), (True, 1)]


def test_ids_are_never_reused():
    tracker = Tracker(follow=False)
    seen = []
    for i, faces in enumerate([[face(50, 100)], [face(50, 100), face(400, 100)], [face(400, 100)]]):
        seen.append([f.id for f in tracker.update(tracker.plan(i), None, faces)])
    assert seen == [[1], [1, 2], [2]]
    # long after face 1 left, a face where it was is someone new
    later = tracker.update(tracker.plan(3 + REMEMBER_FRAMES + 1), None, [face(50, 100)])
    assert [f.id for f in later] == [3]


def test_a_face_the_detector_missed_for_a_moment_keeps_its_id():
    tracker = Tracker(follow=False)
    tracker.update(tracker.plan(0), None, [face(50, 100), face(400, 100)])
    tracker.update(tracker.plan(1), None, [face(400, 100)])  # face 1 missed once
    back = tracker.update(tracker.plan(2), None, [face(52, 100), face(400, 100)])
    assert sorted(f.id for f in back) == [1, 2]


def test_someone_else_where_a_missed_face_was_gets_a_new_id():
    """A face the detector missed is remembered; a detection in its place that looks like another
    person ends that memory and gets a new id (this once raised ValueError)."""
    tracker = Tracker(follow=False)
    first = frame_with((texture(1), 0, 100), (texture(3), 350, 100))
    tracker.update(tracker.plan(0, first), first, [face(50, 140), face(400, 140)])
    missed = frame_with((texture(3), 350, 100))
    tracker.update(tracker.plan(1, missed), missed, [face(400, 140)])  # face 1 missed: remembered
    other = frame_with((texture(2), 0, 100), (texture(3), 350, 100))
    back = tracker.update(tracker.plan(2, other), other, [face(50, 140), face(400, 140)])
    assert sorted(f.id for f in back) == [2, 3]


@pytest.mark.parametrize("follow", [True, False])
def test_a_cut_to_another_person_in_the_same_place_is_detected_and_gets_a_new_id(follow):
    tracker = Tracker(detect_every=100, follow=follow)
    before, after = frame_with((texture(1), 200, 100)), frame_with((texture(2), 200, 100))
    ids = []
    for i, image in enumerate([before, before, after, after]):
        plan = tracker.plan(i, image)
        ids.append(([f.id for f in tracker.update(plan, image, answer_for(plan, [face(250, 140)]))], plan.detect))
    assert ids == [([1], True), ([1], not follow), ([2], True), ([2], not follow)]
    assert tracker.stats.cuts == 1


def test_a_face_that_moves_is_no_cut():
    tracker = Tracker(detect_every=100)
    picture = texture(1)
    for i in range(8):
        x = 150 + 12 * i  # 12 px a frame: a tenth of the face's box
        image = frame_with((picture, x, 100))
        plan = tracker.plan(i, image)
        faces = tracker.update(plan, image, answer_for(plan, [face(x + 50, 140)]))
        assert [f.id for f in faces] == [1]
    assert tracker.stats.cuts == 0 and tracker.stats.detections == 1


def test_a_face_with_implausible_points_is_detected_again():
    tracker = Tracker(detect_every=100)
    tracker.update(tracker.plan(0), None, [face(100, 100)])
    plan = tracker.plan(1)
    squeezed = face_json(100, 100, detector="given")
    for k in squeezed["keypoints"]:  # the eyes as good as on top of each other: the crop slid off the face
        k["x"] = 150 + (k["x"] - 150) * 0.2
    tracker.update(plan, None, [Face.from_json(squeezed)])
    assert tracker.plan(2).detect and tracker.stats.implausible == 1


def test_a_face_whose_points_the_model_is_unsure_of_is_detected_again():
    from clients.tracking import FOLLOW_MIN_CONFIDENCE

    tracker = Tracker(detect_every=100)
    tracker.update(tracker.plan(0), None, [face(100, 100)])  # no confidences (an older service): geometry only
    sure = face_json(100, 100, detector="given")
    for k in sure["keypoints"]:
        k["confidence"] = FOLLOW_MIN_CONFIDENCE + 0.05
    tracker.update(plan := tracker.plan(1), None, [Face.from_json(sure)])
    assert not tracker.plan(2).detect and tracker.stats.implausible == 0
    unsure = face_json(100, 100, detector="given")
    for i, k in enumerate(unsure["keypoints"]):  # some points sure, most not: the mean decides
        k["confidence"] = 0.9 if i < 3 else FOLLOW_MIN_CONFIDENCE - 0.15
    tracker.update(tracker.plan(3), None, [Face.from_json(unsure)])
    assert plan.boxes and tracker.plan(4).detect and tracker.stats.implausible == 1


def test_a_face_leaving_the_frame_is_detected_again():
    tracker = Tracker(detect_every=100)
    tracker.update(tracker.plan(0), None, [face(580, 100)])
    tracker.update(tracker.plan(1, frame_with()), None, [face(600, 100, detector="given")])
    assert tracker.plan(2, frame_with()).detect  # its next box's centre is past the right edge


def test_the_cut_threshold_is_between_a_move_and_a_cut():
    picture = texture(1)
    here = frame_with((picture, 200, 100))
    patch_box = Box(200, 100, 200, 200)
    patch = gray_patch(here, patch_box)
    moved = frame_with((picture, 220, 110))
    other = frame_with((texture(2), 200, 100))
    assert similarity(moved, patch_box, patch) > CUT_CORRELATION > similarity(other, patch_box, patch)


def test_bad_detect_every_is_refused():
    with pytest.raises(ValueError, match="detect_every"):
        Tracker(detect_every=0)


def test_the_shared_vectors_are_planned_and_named_as_frozen():
    """tests/fixtures/face_vectors.json (a clip's real /faces answers; service/page/tracking.js
    replays the same file in tests/test_page.py): the same frames detected, the same boxes sent,
    the same ids."""
    vectors = face_vectors.load()
    face_vectors.assert_replayed(vectors, face_vectors.replay(vectors), keys=("plan", "ids"))
    plans = [frame["plan"] for frame in vectors["frames"]]
    assert [plan["boxes"] is None for plan in plans].count(True) == 3  # detected every DETECT_EVERY frames
    assert vectors["frames"][-1]["ids"] == [1, 2, 3]  # the face that walked in got the next id
