"""training/teachers.py and training/teacher_labels.py: the views, the mappings, the offsets, the
fill rule. The teachers themselves (MediaPipe, dlib) live in .venv-teachers, not here: what needs
them is checked to fail in one line without them."""

import json

import numpy as np
import pytest

from training import evaluate_faces, teacher_labels, teachers
from vision.crop import FaceCrop
from vision.errors import InputError
from vision.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS


def mean_face(rng=None, count=1) -> np.ndarray:
    """(count, 15, 2) plausible faces in crop pixels: the 68-point mean of a few labels, jittered."""
    base = np.array(
        [[62, 40], [34, 40], [54, 40], [70, 40], [42, 40], [26, 40], [55, 30], [74, 31], [41, 30], [22, 31],
         [48, 58], [60, 72], [36, 72], [48, 68], [48, 78]],
        np.float64,
    )  # fmt: skip
    rng = rng or np.random.default_rng(0)
    return base + rng.normal(0, 1, (count, NUM_KEYPOINTS, 2))


def turned(points: np.ndarray, degrees: float, scale: float, shift=(0.0, 0.0)) -> np.ndarray:
    theta = np.radians(degrees)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return (points - 48) @ rotation.T * scale + 48 + np.asarray(shift)


def test_a_view_maps_its_pixels_back_to_the_crops():
    """A point drawn in the image lands, through the view, where the crop puts it."""
    image = np.zeros((300, 400, 3), np.uint8)
    crop = FaceCrop(210.0, 140.0, 120.0, 17.0)
    spot = np.array([230.0, 150.0])
    image[150, 230] = 255
    view = teachers.View.of(image, crop)
    assert view.image.shape == (teachers.VIEW_SIZE, teachers.VIEW_SIZE, 3)
    ys, xs = np.nonzero(view.image[:, :, 0])
    weights = view.image[ys, xs, 0].astype(float)
    seen = np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])
    np.testing.assert_allclose(view.to_crop(seen), crop.to_crop(spot), atol=0.1)


def test_mediapipe_mapping_takes_the_named_mesh_points():
    mesh = np.stack([np.arange(468), np.arange(468) * 2.0], axis=-1)
    points = teachers.from_mediapipe(mesh)
    assert points.shape == (NUM_KEYPOINTS, 2)
    assert points[KEYPOINT_NAMES.index("nose_tip")].tolist() == [1, 2]
    assert points[KEYPOINT_NAMES.index("right_eye_outer_corner")].tolist() == [33, 66]
    assert points[KEYPOINT_NAMES.index("left_eyebrow_inner_end")].tolist() == [(336 + 285) / 2, 336 + 285]


def test_offsets_are_found_in_the_faces_frame_and_undone():
    """A teacher that puts every point a fixed amount along and across each face's own eye line:
    on faces turned and sized differently, the offset comes out in eye distances and corrects them."""
    rng = np.random.default_rng(1)
    human = np.stack(
        [turned(f, a, s) for f, a, s in zip(mean_face(rng, 40), rng.uniform(-40, 40, 40), rng.uniform(0.5, 2, 40))]
    )
    offset = np.zeros((NUM_KEYPOINTS, 2))
    offset[KEYPOINT_NAMES.index("nose_tip")] = (0.1, -0.05)  # the teacher's nose: right of and below the human's
    offset[KEYPOINT_NAMES.index("mouth_left_corner")] = (0.0, 0.08)
    teacher = teachers.corrected(human, -offset)
    found = teachers.face_frame_offsets(teacher, human)
    np.testing.assert_allclose(found, offset, atol=0.01)
    np.testing.assert_allclose(teachers.corrected(teacher, found), human, atol=0.05)


def labels_for(mesh: np.ndarray, dlib: np.ndarray, names=("a", "b", "c")) -> dict:
    zero = np.zeros((NUM_KEYPOINTS, 2))
    offsets = {t: {teachers.FILL_FAMILY: zero} for t in teachers.TEACHERS}
    return {"mediapipe": mesh, "dlib": dlib, "names": np.array(names), "offsets": offsets}


def test_human_labels_win_and_teachers_fill_only_where_they_agree():
    rng = np.random.default_rng(2)
    truth = mean_face(rng, 3)
    human = truth.copy()
    human[0] = np.nan  # a CelebA face: no human point
    human[1, 5:] = np.nan  # an MTFL-like face: five points labelled
    mesh, dlib = truth + 0.3, truth - 0.3
    dlib[0, KEYPOINT_NAMES.index("nose_tip")] += (8, 0)  # the teachers disagree on one nose
    taught, counts = teachers.targets(human, labels_for(mesh, dlib))
    assert np.isnan(taught[2]).all() and np.isnan(taught[1, :5]).all()  # humans' points are never replaced
    np.testing.assert_allclose(taught[1, 5:], truth[1, 5:], atol=1e-5)  # the mean of the two
    assert np.isnan(taught[0, KEYPOINT_NAMES.index("nose_tip")]).all()
    assert np.isfinite(np.delete(taught[0], KEYPOINT_NAMES.index("nose_tip"), axis=0)).all()
    assert counts["points_humans_left"] == 15 + 10 and counts["points_filled"] == 14 + 10
    assert counts["points_teachers_disagree"] == 1

    alone, _ = teachers.targets(human, labels_for(mesh, dlib), teacher="dlib")
    np.testing.assert_allclose(alone[0], dlib[0], atol=1e-5)  # one teacher: its points, disagreement or not


def test_a_teacher_far_from_a_faces_human_points_is_dropped_for_that_face():
    truth = mean_face(np.random.default_rng(3), 3)
    human = truth.copy()
    human[:, 5:] = np.nan
    mesh = truth.copy()
    mesh[1] += 20  # failed on face 1: far from its five human points
    taught, counts = teachers.targets(human, labels_for(mesh, truth.copy()), teacher="mediapipe")
    assert counts["faces_failed"]["mediapipe"] == 1 and np.isnan(taught[1]).all()
    assert np.isfinite(taught[[0, 2], 5:]).all()
    with pytest.raises(InputError, match="unknown teacher"):
        teachers.targets(human, labels_for(mesh, truth), teacher="oracle")


def test_teacher_labels_from_another_split_are_refused(tmp_path):
    path = tmp_path / "teachers.npz"
    blank = np.zeros((2, NUM_KEYPOINTS, 2))
    np.savez(path, mediapipe=blank, dlib=blank, names=np.array(["a", "b"]), offsets=json.dumps({}))
    with pytest.raises(InputError, match="not the split's"):
        teachers.read_labels(path, np.array(["a", "c"]))
    with pytest.raises(InputError, match="teacher_labels"):
        teachers.read_labels(tmp_path / "none.npz", np.array(["a"]))


def test_without_mediapipe_the_command_says_how_to_get_it_in_one_line(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    try:
        import mediapipe  # noqa: F401

        pytest.skip("mediapipe is installed here: this checks the environment without it")
    except ImportError:
        pass
    split = tmp_path / "faces.npz"
    np.savez(
        split,
        names=np.array(["a.jpg"]),
        sources=np.array(["celeba"]),
        validation=np.array([False]),
        crops=np.array([[10, 10, 20, 0]], np.float32),
        keypoints=np.full((1, NUM_KEYPOINTS, 2), np.nan),
    )
    with pytest.raises(SystemExit) as exit_:
        teacher_labels.main(["--split", str(split), "--celeba", str(tmp_path), "--no-progress"])
    assert "make teachers" in str(exit_.value) and "\n" not in str(exit_.value)


def test_a_peer_is_offset_corrected_by_its_sources_family():
    """evaluate_faces --peer-offsets: a 300-W face moves by the 300-W offset, an MTFL one by MTFL's."""
    human = mean_face(np.random.default_rng(4))[0]
    shift = np.zeros((NUM_KEYPOINTS, 2))
    shift[KEYPOINT_NAMES.index("nose_tip")] = (0.0, 0.1)
    offsets = {"300w": shift, "mtfl": np.zeros_like(shift), "youtube": np.zeros_like(shift)}
    predict = evaluate_faces.offset_corrected(lambda frame, detection: (human, None), offsets)
    frame = evaluate_faces.Frame("helen", np.zeros((96, 96, 3), np.uint8), np.zeros((68, 2)))
    moved, _ = predict(frame, None)
    eye_distance = np.linalg.norm(human[0] - human[1])
    nose = KEYPOINT_NAMES.index("nose_tip")
    np.testing.assert_allclose(
        moved[nose] - human[nose], teachers.face_frame(human[None])[0][0][1] * 0.1 * eye_distance
    )
    frame.source = "youtube"
    np.testing.assert_allclose(predict(frame, None)[0], human)


def test_pooled_conventions_are_measured_on_the_faces_humans_labelled_whole():
    """--teacher-family pooled: the offsets come from the faces with all 15 human points, and a
    face without any human point is filled in those conventions."""
    rng = np.random.default_rng(5)
    truth = mean_face(rng, 30)
    human = truth.copy()
    human[-1] = np.nan  # a CelebA face
    shift = np.zeros((NUM_KEYPOINTS, 2))
    shift[KEYPOINT_NAMES.index("left_eyebrow_outer_end")] = (0.0, 0.1)  # the teachers' brow sits lower
    taught_by = teachers.corrected(truth, shift)
    labels = labels_for(taught_by, taught_by.copy(), names=[str(i) for i in range(30)])
    pooled, _ = teachers.targets(human, labels, family=teachers.POOLED)
    np.testing.assert_allclose(pooled[-1], truth[-1], atol=0.05)
    as_300w, _ = teachers.targets(human, labels)  # zero offsets to 300-W in labels_for: the brow stays low
    brow = KEYPOINT_NAMES.index("left_eyebrow_outer_end")
    assert np.linalg.norm(as_300w[-1, brow] - truth[-1, brow]) > 1


def test_shown_conventions_count_each_face_as_often_as_an_epoch_shows_it():
    """--teacher-family shown: a photo shown 3x per epoch weighs 3 frames in the median offset."""
    truth = mean_face(np.random.default_rng(6), 22)
    human = truth.copy()
    human[-1] = np.nan  # the face to fill
    brow = KEYPOINT_NAMES.index("left_eyebrow_outer_end")
    shift = np.zeros((NUM_KEYPOINTS, 2))
    shift[brow] = (0.0, 0.1)
    teacher = truth.copy()
    teacher[:10] = teachers.corrected(truth[:10], shift)  # on 10 "photos" the teacher's brow sits lower
    labels = labels_for(teacher, teacher.copy(), names=[str(i) for i in range(22)])
    shown = np.array([3] * 10 + [1] * 12)
    pooled, _ = teachers.targets(human, labels, family=teachers.POOLED, shown=shown)
    weighted, _ = teachers.targets(human, labels, family=teachers.SHOWN, shown=shown)
    eye_distance = np.linalg.norm(truth[-1, 0] - truth[-1, 1])
    assert abs(pooled[-1, brow, 1] - truth[-1, brow, 1]) < 0.02 * eye_distance  # 11 frames to 10: unmoved
    assert weighted[-1, brow, 1] < truth[-1, brow, 1] - 0.08 * eye_distance  # 30 to 11: moved up by the offset
