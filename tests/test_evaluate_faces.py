"""training.evaluate_faces: the end-to-end evaluation, on the committed fixture frames."""

import dataclasses
import json

import numpy as np
import pytest
from paths import FIXTURES
from service_models import keypoints_model

from training import evaluate_faces, prepare_faces
from vision.detectors import HAAR_CROP
from vision.keypoints import FIVE_POINT_NAMES, FIVE_POINTS, KEYPOINT_NAMES, OUTER_EYE_CORNERS, from_ibug68


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


def test_dlibs_detections_say_they_are_dlibs_and_are_cut_as_haars():
    """dlib's HOG box, like Haar's, spans brows to chin and gives no eyes: cut in Haar's crop style,
    but its detections name their own detector (the Detector protocol carries the style)."""
    assert (evaluate_faces.DlibDetector.name, evaluate_faces.DlibDetector.crop_style) == ("dlib", HAAR_CROP)


def test_nme_is_zero_for_the_truth_and_exact_for_a_known_offset(split):
    npz, fixtures = split
    frames = evaluate_faces.held_out_frames(npz, {"youtube": fixtures})
    detector = evaluate_faces.detector_named("yunet", prepare_faces.YUNET)
    truth = evaluate_faces.evaluate(frames, detector, lambda f, d: (from_ibug68(f.points68), None), progress=False)
    assert truth["youtube"]["detected"] == 1.0 and truth["youtube"]["nme"] == 0.0
    shift = 3.0  # pixels, every point to the right

    def shifted(frame, detection):
        return from_ibug68(frame.points68) + [shift, 0], None

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


def run_command(tmp_path, capsys, *data_args: str) -> tuple[str, dict]:
    """`python -m training.evaluate_faces` on the stand-in keypoint model (a plausible mean face):
    (what it printed, its JSON report)."""
    keypoints_model(tmp_path / "keypoints.onnx")
    out = tmp_path / "report.json"
    evaluate_faces.main([*data_args, "--model", str(tmp_path / "keypoints.onnx"), "--out", str(out), "--no-progress"])
    return capsys.readouterr().out, json.loads(out.read_text())


def test_the_command_runs_an_onnx_model_end_to_end(split, tmp_path, capsys):
    npz, fixtures = split
    printed, report = run_command(tmp_path, capsys, "--split", str(npz), "--faces", str(fixtures))
    assert "youtube" in printed and "by confidence decile" in printed
    assert report["youtube"]["detected"] == 1.0 and 0 < report["youtube"]["nme"] < 1
    assert report["youtube"]["confidence_deciles"]["points"] == 15 * len(
        evaluate_faces.held_out_frames(npz, {"youtube": fixtures})
    )


def test_confidence_deciles_rank_errors_least_confident_first():
    rng = np.random.default_rng(0)
    confidence = rng.random(1000)
    errors = 0.2 * (1 - confidence)  # the less confident, the larger the error
    table = evaluate_faces.confidence_deciles(errors, confidence)
    nme = [d["nme"] for d in table["deciles"]]
    assert len(nme) == 10 and nme == sorted(nme, reverse=True)
    assert table["deciles"][0]["confidence"][1] <= table["deciles"][1]["confidence"][0]
    assert table["low_to_high_half_error_ratio"] > 2
    assert table["deciles"][0]["over_10_percent"] == 1.0 and table["deciles"][-1]["over_10_percent"] == 0.0
    flat = evaluate_faces.confidence_deciles(np.full(1000, 0.05), confidence)  # says nothing of the error
    assert flat["low_to_high_half_error_ratio"] == 1.0


def test_no_data_folder_is_a_usage_error(split):
    with pytest.raises(SystemExit):
        evaluate_faces.main(["--split", str(split[0])])


def _as_keypoints(points5: np.ndarray) -> np.ndarray:
    """15 keypoints whose five shared ones are `points5` (the others anywhere)."""
    keypoints = np.zeros((15, 2))
    keypoints[list(FIVE_POINTS)] = points5
    return keypoints


def test_mtfl_is_measured_on_its_five_points_over_the_eye_centres(fixtures):
    photos = evaluate_faces.mtfl_photos(fixtures / "mtfl5", "all")
    assert len(photos) == 6 and all(p.image is None for p in photos)  # read one by one
    detector = evaluate_faces.detector_named("yunet", prepare_faces.YUNET)
    truth = evaluate_faces.evaluate(photos, detector, lambda p, d: (_as_keypoints(p.points5), None), progress=False)
    assert truth["mtfl"]["detected"] == 1.0 and truth["mtfl"]["nme"] == 0.0
    assert list(truth["mtfl"]["per_keypoint"]) == list(FIVE_POINT_NAMES)
    shift = 3.0
    report = evaluate_faces.evaluate(
        photos, detector, lambda p, d: (_as_keypoints(p.points5 + [0, shift]), None), progress=False
    )
    eyes = [np.linalg.norm(p.points5[0] - p.points5[1]) for p in photos]
    assert report["mtfl"]["nme"] == pytest.approx(np.mean([shift / d for d in eyes]), abs=1e-4)
    # By pose, glasses and origin, as MTFL codes them (pose 1..5; glasses 1 = yes).
    assert {k: v["frames"] for k, v in report["mtfl"]["by_pose"].items()} == {str(p): 1 for p in range(1, 6)} | {"3": 2}
    assert {k: v["frames"] for k, v in report["mtfl"]["by_glasses"].items()} == {"no": 5, "yes": 1}
    assert {k: v["frames"] for k, v in report["mtfl"]["by_origin"].items()} == {"lfw": 2, "web": 4}
    assert "per_keypoint" not in report["mtfl"]["by_pose"]["3"]


def test_an_mtfl_face_is_the_detection_that_holds_its_points(fixtures):
    photo = evaluate_faces.mtfl_photos(fixtures / "mtfl5", "all")[0].loaded()
    detector = evaluate_faces.detector_named("yunet", prepare_faces.YUNET)
    face = evaluate_faces.matching_detection(detector, photo)
    (x0, y0), (x1, y1) = photo.points5.min(axis=0), photo.points5.max(axis=0)
    assert (
        face.box.x <= x0
        and x1 <= face.box.x + face.box.width
        and face.box.y <= y0 <= y1 <= face.box.y + face.box.height
    )
    elsewhere = dataclasses.replace(photo, points5=photo.points5 + [0, 150])  # labels where no face is
    assert evaluate_faces.matching_detection(detector, elsewhere) is None


def test_the_command_evaluates_mtfls_held_out_part_alone(fixtures, tmp_path, capsys):
    printed, report = run_command(tmp_path, capsys, "--mtfl", str(fixtures / "mtfl5"))
    assert "mtfl" in printed and "pose 2" in printed and "eye-centre distance" in printed
    assert set(report) == {"model", "mtfl", "seconds_per_frame"}
    assert report["mtfl"]["frames"] == 2 and report["mtfl"]["detected"] == 1.0  # the held-out photo's two faces
    assert 0 < report["mtfl"]["nme"] < 1 and set(report["mtfl"]["by_pose"]) == {"2", "4"}


def test_our_models_offsets_are_fitted_on_the_training_crops_by_the_peers_rule(split):
    """--fit-offsets: a model that puts every nose a tenth of the eye distance too high gets that
    tenth back, measured on the split's training crops only."""
    npz, _ = split
    nose = KEYPOINT_NAMES.index("nose_tip")
    with np.load(npz) as arrays:
        by_image = {a.tobytes(): k for a, k in zip(arrays["images"], arrays["keypoints"])}

    def high_noses(x: np.ndarray) -> list:
        crops = (x[:, 0] * 255).round().astype(np.uint8)
        points = np.stack([by_image[c.tobytes()] for c in crops]).astype(np.float64)
        eyes = np.linalg.norm(points[:, 0] - points[:, 1], axis=-1)
        points[:, nose, 1] -= 0.1 * eyes
        return [points.reshape(len(x), -1)]

    offsets = evaluate_faces.model_offsets(high_noses, npz)
    assert set(offsets) == {"youtube"}
    np.testing.assert_allclose(offsets["youtube"][nose], [0, 0.1], atol=0.01)
    assert np.abs(np.delete(offsets["youtube"], nose, axis=0)).max() < 1e-6
