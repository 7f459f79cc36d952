"""training.mtfl_convention: the offset between MTFL's five points and ours, on the fixture photos."""

import json

import numpy as np
import pytest
from service_models import keypoints_model

from training import evaluate_faces, mtfl_convention, prepare_faces
from vision.keypoints import FIVE_POINTS


def test_offsets_are_in_the_faces_frame_and_its_eye_distance():
    labels = np.array([[[0, 0], [20, 0], [10, 10], [4, 16], [16, 16]]], dtype=float)
    offsets = mtfl_convention.face_frame_offsets(labels, labels - [1.0, 2.0])  # labels right of and below
    np.testing.assert_allclose(offsets, [[[0.05, 0.1]] * 5])
    turned = labels[:, :, ::-1] * [-1, 1]  # 90 degrees clockwise: the eye line points down
    offsets = mtfl_convention.face_frame_offsets(turned, turned - [-2.0, 1.0])
    np.testing.assert_allclose(offsets, [[[0.05, 0.1]] * 5])


def _as_keypoints(points5: np.ndarray) -> np.ndarray:
    """15 keypoints: the five, and the other ten at their center (so that mirroring keeps them)."""
    keypoints = np.tile(points5.mean(axis=0), (15, 1))
    keypoints[list(FIVE_POINTS)] = points5
    return keypoints


def test_a_known_offset_is_found_and_the_reference_takes_out_a_models_own(fixtures):
    photos = evaluate_faces.mtfl_photos(fixtures / "mtfl5", "all")
    labels = np.stack([p.points5 for p in photos])
    eyes = np.linalg.norm(labels[:, 1] - labels[:, 0], axis=-1)
    ours = labels - [0.5, -0.3]  # the labels half a pixel right of the predictions and 0.3 px higher
    dlib = ours.copy()
    dlib[:, 2, 1] -= 0.05 * eyes  # and dlib's nose tips 5% of the eye distance higher still
    result = mtfl_convention.report(photos, {"ours": ours, "dlib": dlib}, agree=0.05)
    assert result["models_agreeing"]["faces"] == 6 and result["models"]["dlib"]["found"] == 6
    assert result["models_agreeing"]["ours"]["common_pixels"] == pytest.approx([0.5, -0.3])
    np.testing.assert_allclose(result["models_agreeing"]["ours"]["pixels"]["mean"], [[0.5, -0.3]] * 5)
    nose = [result["models_agreeing"][name]["face_frame"]["mean"][2][1] for name in ("dlib", "ours")]
    assert nose[0] - nose[1] == pytest.approx(0.05, abs=0.002)  # across the eye line, towards the mouth
    assert set(result["models_agreeing"]["ours"]["by_pose"]) == {"1", "2", "3", "4", "5"}
    assert set(result["models_agreeing"]["ours"]["by_origin"]) == {"lfw", "web"}
    # A reference where each model errs as it does here: nothing is left of the difference.
    difference = mtfl_convention.differences(result, result)
    np.testing.assert_allclose(difference["dlib"]["all"]["face_frame"], np.zeros((5, 2)), atol=1e-12)
    assert difference["ours"]["all"]["common_pixels"] == [0.0, 0.0]


def test_the_mirror_check_finds_a_pipelines_own_offset(fixtures):
    photos = evaluate_faces.mtfl_photos(fixtures / "mtfl5", "all")
    detector = evaluate_faces.detector_named("yunet", prepare_faces.YUNET)
    mirrored = mtfl_convention.mirror(photos[0].loaded(), 192)
    assert mirrored.points5[0, 0] < mirrored.points5[1, 0] and mirrored.points5[3, 0] < mirrored.points5[4, 0]
    truth = mtfl_convention.mirror_offset(
        photos, detector, lambda p, d: (_as_keypoints(p.points5), None), progress=False
    )
    assert truth == {"frames": 6, "offset_pixels": [0.0, 0.0]}
    right = mtfl_convention.mirror_offset(
        photos, detector, lambda p, d: (_as_keypoints(p.points5 + [0.4, 0]), None), False
    )
    assert right["offset_pixels"] == pytest.approx([0.4, 0.0])


def test_the_command_measures_mtfls_training_part(fixtures, tmp_path, capsys):
    keypoints_model(tmp_path / "keypoints.onnx")  # a stand-in: a plausible mean face
    out = tmp_path / "convention.json"
    mtfl_convention.main(
        ["--mtfl", str(fixtures / "mtfl5"), "--model", str(tmp_path / "keypoints.onnx"), "--agree", "0.9"]
        + ["--out", str(out), "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert "MTFL's training part, its points as given: 4 faces" in printed and "mirror check, 4 photos" in printed
    result = json.loads(out.read_text())
    assert result["mtfl"]["frames"] == 4 and result["mtfl"]["models"]["ours"]["found"] == 4  # the held-out two are not
    assert "reference" not in result and result["pipeline_mirror"]["frames"] == 4


def test_agree_must_be_a_share(fixtures):
    with pytest.raises(SystemExit):
        mtfl_convention.main(["--mtfl", str(fixtures / "mtfl5"), "--agree", "5"])
