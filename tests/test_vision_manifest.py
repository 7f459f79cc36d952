import json

import pytest

from vision.manifest import ManifestError, read_manifest, sha256_of, verified_model


def _manifest(tmp_path, payload=b"onnx bytes", digest=None):
    (tmp_path / "m.onnx").write_bytes(payload)
    entry = {"file": "m.onnx", "sha256": digest or sha256_of(tmp_path / "m.onnx")}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"models": {"m": entry}}))
    return path


def test_matching_model_verifies(tmp_path):
    entry = verified_model("m", _manifest(tmp_path))
    assert entry.path.read_bytes() == b"onnx bytes"


def test_changed_bytes_are_refused(tmp_path):
    path = _manifest(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"onnx bytez")
    with pytest.raises(ManifestError, match="does not match"):
        verified_model("m", path)


def test_missing_or_corrupt_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable"):
        read_manifest(tmp_path / "bad.json")
    path = _manifest(tmp_path)
    (tmp_path / "m.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        verified_model("m", path)
    with pytest.raises(ManifestError, match="no model named"):
        verified_model("other", path)
