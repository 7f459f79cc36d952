"""training.compare_checkpoints: checkpoints end to end side by side, on the fixture frames."""

import json

import pytest
from paths import FIXTURES

from training import compare_checkpoints, prepare_faces
from training import keypoints as kp_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A fixture split and a tiny model trained on it for one epoch."""
    out = tmp_path_factory.mktemp("compare")
    npz = prepare_faces.save(prepare_faces.prepare({"youtube": FIXTURES / "faces"}, 0.4, 0, False), out / "data")
    tiny = ["--batch-size", "4", "--widths", "8", "8", "8", "8", "8", "--hidden", "16", "--no-progress"]
    kp_training.main(["--data", str(npz), "--out", str(out / "run"), "--epochs", "1", *tiny])
    return npz, out / "run" / "keypoints.pt"


def test_each_checkpoint_gets_a_row_and_a_report(trained, tmp_path, capsys):
    npz, checkpoint = trained
    out = tmp_path / "compare.json"
    compare_checkpoints.main(
        [str(checkpoint), str(checkpoint), "--split", str(npz), "--faces", str(FIXTURES / "faces"), "--out", str(out)]
    )
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("checkpoint") and "youtube" in printed[0]
    assert sum(line.startswith(str(checkpoint)) for line in printed) == 1  # one report per path
    report = json.loads(out.read_text())[str(checkpoint)]
    assert report["youtube"]["frames"] > 0 and 0 < report["youtube"]["nme"] < 1


def test_a_missing_checkpoint_is_one_line(trained, tmp_path):
    npz, _ = trained
    with pytest.raises(SystemExit) as exit_:
        compare_checkpoints.main([str(tmp_path / "none.pt"), "--split", str(npz), "--faces", str(FIXTURES / "faces")])
    assert "none.pt" in str(exit_.value) and "\n" not in str(exit_.value)
