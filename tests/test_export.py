"""Export on freshly initialized models of the real architectures, gated on the fixtures."""

import dataclasses
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.__main__ import main as export_main
from export.convert import describe
from training import digits, keypoints, prepare_faces
from training.common import save_checkpoint
from vision.manifest import DEFAULT_PATH, ManifestError, read_manifest, sha256_of, verified_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory, request):
    """models/ with fresh checkpoints of all three models, exported and gated once."""
    fixtures = request.config.rootpath / "tests" / "fixtures"
    root = tmp_path_factory.mktemp("export")
    models = root / "models"
    for name, config in (("digits_cnn", digits.Config(model="cnn")), ("digits_mlp", digits.Config(model="mlp"))):
        config = config.resolved()
        save_checkpoint(models / f"{name}.pt", name, dataclasses.asdict(config), digits.build_model(config), {})
    config = keypoints.Config()
    save_checkpoint(models / "keypoints.pt", "keypoints", dataclasses.asdict(config), keypoints.build_model(config), {})
    prepare_faces.save(prepare_faces.prepare(fixtures / "faces", 0.4, 0, progress=False), root / "faces")
    args = ["--models", str(models), "--mnist", str(fixtures / "mnist"), "--faces", str(root / "faces" / "faces.npz"), "--val-size", "20"]
    export_main(args)
    return models, args


def test_fresh_models_export_and_pass_the_gate(exported, capsys):
    models, _ = exported
    manifest = read_manifest(models / "manifest.json")
    assert set(manifest["models"]) == {"digits_cnn", "digits_mlp", "keypoints"}
    for name, entry in manifest["models"].items():
        assert verified_model(name, models / "manifest.json").path == models / f"{name}.onnx"
        assert entry["opset"] >= 17 and entry["parity"]["passed"]
        assert entry["inputs"][0]["name"] == "image" and entry["inputs"][0]["shape"][0] == "batch"
        assert all(d <= 1e-4 for d in entry["parity"]["max_abs_diff"].values())
    assert describe(models / "keypoints.onnx")["outputs"] == [{"name": "keypoints", "shape": ["batch", 30], "dtype": "float32"}]
    assert describe(models / "digits_cnn.onnx")["inputs"][0]["shape"] == ["batch", 1, 28, 28]


def test_check_passes_on_untouched_files(exported, capsys):
    models, args = exported
    export_main(args + ["--check"])
    assert "parity gate passed" in capsys.readouterr().out


def _perturb(path):
    model = onnx.load(str(path))
    weight = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    array = numpy_helper.to_array(weight).copy()
    array.flat[0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    onnx.save(model, str(path))


def test_a_perturbed_onnx_file_fails_the_gate(exported, tmp_path, capsys):
    models, args = exported
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    _perturb(copy / "digits_cnn.onnx")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["models"]["digits_cnn"]["sha256"] = sha256_of(copy / "digits_cnn.onnx")  # hash fine, numbers wrong
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match="parity gate failed"):
        export_main([*args[:0], "--models", str(copy), *args[2:], "--check"])
    assert "FAIL" in capsys.readouterr().out


def test_a_manifest_whose_sha256_does_not_match_is_detected(exported, tmp_path):
    models, args = exported
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    _perturb(copy / "keypoints.onnx")
    with pytest.raises(ManifestError, match="does not match"):
        verified_model("keypoints", copy / "manifest.json")
    with pytest.raises(SystemExit, match="error: .*keypoints.onnx: sha256"):
        export_main(["--models", str(copy), *args[2:], "--check"])


def test_missing_checkpoints_exit_with_one_line(tmp_path):
    with pytest.raises(SystemExit, match="error: no checkpoints"):
        export_main(["--models", str(tmp_path)])


def test_shipped_onnx_files_match_their_manifest():
    if not DEFAULT_PATH.exists():
        pytest.skip("no shipped models/manifest.json yet")
    manifest = read_manifest(DEFAULT_PATH)
    for name in ("digits_cnn", "digits_mlp", "keypoints"):
        entry = verified_model(name, DEFAULT_PATH, manifest)
        assert entry.info["parity"]["passed"]
    for name, info in manifest["models"].items():  # int8 variants too, where kept
        assert verified_model(name, DEFAULT_PATH, manifest).path.suffix == ".onnx"
        if "variant_of" in info:
            assert info["speedup_batch64"] > 1.1 and info["variant_of"] in manifest["models"]
