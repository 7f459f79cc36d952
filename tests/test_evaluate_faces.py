"""training.evaluate_faces: the end-to-end evaluation, on the committed fixture frames."""

import json

import numpy as np
import pytest
from conftest import FIXTURES
from service_models import keypoints_model

from training import evaluate_faces, prepare_faces
from vision.keypoints import OUTER_EYE_CORNERS, from_ibug68


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    fixtures = FIXTURES / "faces"
    out = tmp_path_factory.mktemp("faces")
    prepare_faces.main(["--faces", str(fixtures), "--out", str(out), "--validation-share", "0.4"])
    return out / "faces.npz", fixtures


def test_the_held_out_frames_are_the_splits(split):
    npz, fixtures = split
    frames = evaluate_faces.held_out_frames(npz, {"youtube": fixtures})
    with np.load(npz) as arrays:
        assert len(frames) == int(arrays["validation"].sum()) > 0
    assert {f.source for f in frames} == {"youtube"}


def test_nme_is_zero_for_the_truth_and_exact_for_a_known_offset(split):
    npz, fixtures = split
    frames = evaluate_faces.held_out_frames(npz, {"youtube": fixtures})
    detector = evaluate_faces.detector_named("yunet", prepare_faces.YUNET)
    truth = evaluate_faces.evaluate(frames, detector, lambda f, d: from_ibug68(f.points68), progress=False)
    assert truth["youtube"]["detected"] == 1.0 and truth["youtube"]["nme"] == 0.0
    shift = 3.0  # pixels, every point to the right

    def shifted(frame, detection):
        return from_ibug68(frame.points68) + [shift, 0]

    report = evaluate_faces.evaluate(frames, detector, shifted, progress=False)
    left, right = OUTER_EYE_CORNERS
    ocular = [np.linalg.norm(np.subtract(*from_ibug68(f.points68)[[left, right]])) for f in frames]
    assert report["youtube"]["nme"] == pytest.approx(np.mean([shift / d for d in ocular]), abs=1e-4)
    assert set(report["youtube"]["per_keypoint"]) == set(truth["youtube"]["per_keypoint"])


def test_the_labels_are_moved_to_opencvs_pixel_centers_unless_told_otherwise(split):
    npz, fixtures = split
    moved = evaluate_faces.held_out_frames(npz, {"youtube": fixtures})
    as_given = evaluate_faces.held_out_frames(npz, {"youtube": fixtures}, pixel_center=0)
    for a, b in zip(moved, as_given, strict=True):
        np.testing.assert_allclose(b.points68 - a.points68, 0.5)


def test_the_command_runs_an_onnx_model_end_to_end(split, tmp_path, capsys):
    npz, fixtures = split
    keypoints_model(tmp_path / "keypoints.onnx")  # a stand-in: a plausible mean face
    out = tmp_path / "report.json"
    evaluate_faces.main(
        [
            "--split",
            str(npz),
            "--faces",
            str(fixtures),
            "--model",
            str(tmp_path / "keypoints.onnx"),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert "youtube" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["youtube"]["detected"] == 1.0 and 0 < report["youtube"]["nme"] < 1


def test_no_data_folder_is_a_usage_error(split):
    with pytest.raises(SystemExit):
        evaluate_faces.main(["--split", str(split[0])])
