"""The One Euro filter and the face smoother, on synthetic signals and the shared vectors."""

from dataclasses import replace

import face_vectors
import numpy as np
import pytest

from clients.answers import Face
from clients.smoothing import FORGET_AFTER_S, FaceSmoother, OneEuroFilter
from vision.pose import HeadPose

FPS = 30.0


def filtered(signal: np.ndarray, scale: float = 100.0, **params) -> np.ndarray:
    one_euro = OneEuroFilter(**params)
    return np.array([one_euro(np.array([v]), i / FPS, scale=scale)[0] for i, v in enumerate(signal)])


def test_a_still_value_with_noise_gets_at_least_three_times_quieter():
    noisy = 50 + np.random.default_rng(0).normal(0, 1.0, 300)
    smooth = filtered(noisy)
    raw_jitter, smooth_jitter = np.diff(noisy).std(), np.diff(smooth[30:]).std()
    assert smooth_jitter < raw_jitter / 3
    assert abs(smooth[30:].mean() - 50) < 0.3  # quieter, and still centred on the value


def test_a_step_is_followed():
    step = np.r_[np.zeros(30), np.full(30, 100.0)]
    smooth = filtered(step)
    assert smooth[29] == 0
    assert 0 < smooth[30] < 100  # not a jump, but on its way
    assert abs(smooth[40] - 100) < 5  # within a third of a second


def test_a_steady_ramp_lags_under_two_frames():
    speed = 4.0  # pixels per frame: 120 px/s, 1.2 face widths per second at scale 100
    ramp = speed * np.arange(120)
    lag = (ramp[60:] - filtered(ramp)[60:]).mean() / speed
    assert 0 < lag < 2


def test_speed_lowers_the_lag():
    ramp = 4.0 * np.arange(120)
    slow = (ramp - filtered(ramp, beta=0.0))[60:].mean()
    fast = (ramp - filtered(ramp))[60:].mean()
    assert fast < slow / 2


def test_a_time_that_does_not_advance_changes_nothing():
    one_euro = OneEuroFilter()
    first = one_euro(np.array([1.0, 2.0]), 0.0)
    assert one_euro(np.array([9.0, 9.0]), 0.0).tolist() == first.tolist()


@pytest.mark.parametrize("params", [{"min_cutoff": 0}, {"beta": -1}, {"d_cutoff": 0}])
def test_bad_parameters_are_refused(params):
    with pytest.raises(ValueError, match="One Euro"):
        OneEuroFilter(**params)


def face(x: float, face_id: int | None = 1, y: float = 100.0, width: float = 100.0, noise: float = 0.0, rng=None):
    """A tracked face (the smoother takes faces with their tracker's ids) whose points sit at `x`."""
    jitter = (lambda: rng.normal(0, noise)) if rng is not None else (lambda: 0.0)
    box = {"x": x, "y": y, "width": width, "height": width * 1.2}
    keypoints = [{"name": f"p{i}", "x": x + 10 + 5 * i + jitter(), "y": y + 40 + jitter()} for i in range(15)]
    return Face.from_json({"box": box, "score": 0.9, "detector": "yunet", "keypoints": keypoints, "id": face_id})


def test_two_faces_are_smoothed_each_on_its_own():
    rng = np.random.default_rng(1)
    smoother = FaceSmoother()
    for i in range(60):
        out = smoother([face(50, 1, noise=1, rng=rng), face(400, 2, noise=1, rng=rng)], i / FPS)
    left, right = sorted(out, key=lambda f: f.box.x)
    assert abs(left.keypoints[0].x - 60) < 1.5 and abs(right.keypoints[0].x - 410) < 1.5
    assert len(smoother.tracks) == 2
    assert (left.score, left.detector) == (0.9, "yunet")  # the rest unchanged


def test_a_face_that_comes_back_elsewhere_starts_afresh():
    smoother = FaceSmoother()
    for i in range(10):
        smoother([face(50)], i / FPS)
    gone = 10 / FPS + FORGET_AFTER_S + 0.1
    back = smoother([face(300)], gone)[0]
    assert back.keypoints[0].x == pytest.approx(310)  # not dragged from where it was
    assert len(smoother.tracks) == 1


def test_faces_with_ids_keep_their_own_filter_and_a_new_id_starts_afresh():
    smoother = FaceSmoother()
    for i in range(10):
        smoother([face(50, 1)], i / FPS)
    # the same place, another person (a cut): a new id must not inherit the old points
    new = smoother([face(80, 2)], 10 / FPS)[0]
    assert new.keypoints[0].x == pytest.approx(90)
    assert new.id == 2 and len(smoother.tracks) == 2
    # the old id, still followed, is still smoothed from where it was
    old = smoother([face(80, 1)], 11 / FPS)[0]
    assert 60 < old.keypoints[0].x < 90


def test_a_face_without_an_id_is_refused():
    with pytest.raises(ValueError, match="ids"):
        FaceSmoother()([face(50, None)], 0.0)


def test_a_faces_pose_is_smoothed_with_it_and_a_null_pose_passes_and_restarts_the_filter():
    rng = np.random.default_rng(2)
    smoother = FaceSmoother()
    raw, smooth = [], []
    for i in range(90):
        pose = HeadPose(20 + rng.normal(0, 2), -5 + rng.normal(0, 2), rng.normal(0, 2))
        raw.append(pose.yaw)
        smooth.append(smoother([replace(face(50), pose=pose)], i / FPS)[0].pose.yaw)
    assert np.diff(smooth[30:]).std() < np.diff(raw[30:]).std() / 3  # a still head's pose, steadier
    assert smoother([face(50)], 90 / FPS)[0].pose is None
    turned = HeadPose(-40.0, 0.0, 0.0)
    after = smoother([replace(face(50), pose=turned)], 91 / FPS)[0].pose
    assert after == turned  # afresh after the null: not dragged from +20


def test_the_shared_vectors_are_smoothed_as_frozen():
    """tests/fixtures/face_vectors.json (a clip's real /faces answers, tracked; service/page/smoothing.js
    smooths the same file in tests/test_page.py): the same boxes, points and poses."""
    vectors = face_vectors.load()
    face_vectors.assert_replayed(vectors, face_vectors.replay(vectors), keys=("smoothed",))
