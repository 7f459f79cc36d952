"""Model loading without a server: int8 variants are served only when asked for and kept."""

import json
import shutil

import pytest
from service_models import write_models

from service import runtime
from service.settings import Settings
from vision.manifest import ManifestError
from vision.signatures import SIGNATURES


@pytest.fixture
def manifest_with_int8(tmp_path):
    manifest_path = write_models(tmp_path)
    shutil.copyfile(tmp_path / "digits_mlp.onnx", tmp_path / "digits_mlp_int8.onnx")
    manifest = json.loads(manifest_path.read_text())
    manifest["models"]["digits_mlp_int8"] = {
        **manifest["models"]["digits_mlp"],
        "file": "digits_mlp_int8.onnx",
        "variant_of": "digits_mlp",
    }
    manifest_path.write_text(json.dumps(manifest))
    return manifest_path


def test_float32_models_by_default(manifest_with_int8):
    models = runtime.load_models(Settings(manifest=manifest_with_int8, provider="cpu"))
    assert {name: m.entry.name for name, m in models.items()} == {n: n for n in SIGNATURES}


def test_int8_variant_where_kept(manifest_with_int8):
    models = runtime.load_models(Settings(manifest=manifest_with_int8, provider="cpu", int8=True))
    assert models["digits_mlp"].entry.name == "digits_mlp_int8"
    assert models["digits_cnn"].entry.name == "digits_cnn"  # none kept: float32 stays
    assert models["digits_mlp"].provider == "CPUExecutionProvider"


def test_the_server_logs_which_models_run_int8(manifest_with_int8, tmp_path):
    from bench.processes import Server

    server = Server(
        {"VISION_MANIFEST": str(manifest_with_int8), "VISION_INT8": "1", "VISION_PROVIDER": "cpu"},
        tmp_path / "serve.log",
    )
    try:
        server.wait_ready()
        log = server.wait_for_log("vision: ready at")
    finally:
        server.stop()
    assert "VISION_INT8=1: int8 for digits_mlp; float32 for the rest" in log, log[-2000:]
    assert "int8: digits_mlp" in next(line for line in log.splitlines() if "vision: ready at" in line)


def test_int8_variant_is_hash_checked_too(manifest_with_int8):
    (manifest_with_int8.parent / "digits_mlp_int8.onnx").write_bytes(b"tampered")
    with pytest.raises(ManifestError, match="digits_mlp_int8.onnx: sha256"):
        runtime.load_models(Settings(manifest=manifest_with_int8, provider="cpu", int8=True))
