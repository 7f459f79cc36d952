"""training.evaluate_pose: the thresholds, the scores and the command, on made-up yaws and the
committed MTFL-format and YouTube fixtures."""

import json

import numpy as np
import pytest
from paths import FIXTURES

from training import evaluate_pose, prepare_faces


def test_yaw_bins_are_the_subjects_sides_lowest_first():
    yaw = np.array([-50.0, -20.0, 0.0, 20.0, 50.0, np.nan])
    assert evaluate_pose.yaw_bins(yaw, 10, 40).tolist() == [0, 1, 2, 3, 4, -1]
    assert evaluate_pose.three_way(evaluate_pose.yaw_bins(yaw, 10, 40)).tolist() == [-1, -1, 0, 1, 1, 0]
    assert evaluate_pose.label_sides(np.array([1, 2, 3, 4, 5])).tolist() == [-1, -1, 0, 1, 1]


def test_the_thresholds_chosen_separate_the_training_labels():
    """Labels 1..5 at yaws spread around -45, -20, 0, 20, 45: the frontal threshold falls between
    0 and 20, the profile one between 20 and 45."""
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 2, 3, 4, 5], 200)
    yaw = np.array([-45, -20, 0, 20, 45])[labels - 1] + rng.uniform(-6, 6, len(labels))
    turned, profile = evaluate_pose.choose_thresholds(yaw, labels)
    assert 6 <= turned <= 14 and 26 <= profile <= 39


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = tmp_path_factory.mktemp("faces")
    prepare_faces.main(["--faces", str(FIXTURES / "faces"), "--out", str(out), "--validation-share", "0.4"])
    return out / "faces.npz"


def test_the_command_runs_the_pipeline_end_to_end(split, tmp_path, capsys):
    """MTFL's fixture: 4 training photos, 2 held out; the 68-point fixture frames for roll."""
    out = tmp_path / "pose.json"
    args = ["--mtfl", str(FIXTURES / "mtfl5"), "--split", str(split), "--faces", str(FIXTURES / "faces")]
    evaluate_pose.main([*args, "--out", str(out), "--no-progress"])
    printed, report = capsys.readouterr().out, json.loads(out.read_text())
    assert "3-way accuracy" in printed and "roll vs the labelled eye line, youtube" in printed
    yaw = report["yaw"]
    assert yaw["faces"] == 2 and yaw["training_faces"] == 4
    assert sum(n for row in yaw["confusion"].values() for n in row.values()) == 2
    assert list(yaw["confusion"]["1"]) == [*evaluate_pose.BINS, "no pose"]
    roll = report["roll"]["youtube"]
    assert roll["frames"] > 0 and 0 <= roll["roll_mae_deg"] < 10  # real faces, the shipped model
    assert report["microseconds_per_face"] > 0


def test_a_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="error: .*image folder not found"):
        evaluate_pose.main(["--mtfl", str(tmp_path), "--no-progress"])
