"""Export on freshly initialized models of the real architectures, gated on the fixtures."""

import dataclasses
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from export import convert, optimize
from export.__main__ import main as export_main
from export.__main__ import optimize_command
from export.convert import describe
from export.specs import SPECS
from training import digits, keypoints, prepare_faces
from training.common import save_checkpoint
from training.models import build
from vision.manifest import DEFAULT_PATH, ManifestError, read_manifest, sha256_of, verified_model

# The trainers: export reads checkpoints (training.models) and data (training.mnist,
# training.faces_data), never a training script.
TRAINERS = ("training.keypoints", "training.digits")


def test_export_imports_no_trainer(request):
    """In a fresh interpreter (this test module imports the trainers itself), every export module
    loads without pulling in a trainer."""
    modules = sorted(f"export.{p.stem}" for p in (request.config.rootpath / "export").glob("*.py"))
    code = f"import sys, {', '.join(modules)}; print(sorted(m for m in sys.modules if m in {TRAINERS!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=request.config.rootpath, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, request):
    """models/ with fresh checkpoints of all three models, exported and gated once."""
    fixtures = request.config.rootpath / "tests" / "fixtures"
    root = tmp_path_factory.mktemp("export")
    models = root / "models"
    torch.manual_seed(0)  # fresh weights, the same whichever tests ran before: the perturbation test needs live units
    for config in (
        digits.Config(model="cnn").resolved(),
        digits.Config(model="mlp").resolved(),
        keypoints.Config().resolved(),
    ):
        name, args = config.model_name, config.model_args()
        if name == "keypoints":  # as shipped: with the spread layer that gives each point's confidence
            args = {**args, "confidence": True}
        save_checkpoint(models / f"{name}.pt", name, args, dataclasses.asdict(config), build(name, args), {})
    prepare_faces.save(prepare_faces.prepare({"youtube": fixtures / "faces"}, 0.4, 0, progress=False), root / "faces")
    args = [
        "--models",
        str(models),
        "--mnist",
        str(fixtures / "mnist"),
        "--faces",
        str(root / "faces" / "faces.npz"),
        "--val-size",
        "20",
    ]
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
    assert describe(models / "keypoints.onnx")["outputs"] == [
        {"name": "keypoints", "shape": ["batch", 30], "dtype": "float32"},
        {"name": "confidence", "shape": ["batch", 15], "dtype": "float32"},
    ]
    assert describe(models / "digits_cnn.onnx")["inputs"][0]["shape"] == ["batch", 1, 28, 28]


def test_check_passes_on_untouched_files(exported, capsys):
    models, args = exported
    export_main(args + ["--check"])
    assert "parity gate passed" in capsys.readouterr().out


def _perturb(path, initializer: str | None = None, by: float = 0.5):
    """Move the first value of one of the ONNX file's weights (default: its largest) by `by`."""
    model = onnx.load(str(path))
    weights = model.graph.initializer
    largest = max(weights, key=lambda t: int(np.prod(t.dims)))
    weight = next(t for t in weights if t.name == initializer) if initializer else largest
    array = numpy_helper.to_array(weight).copy()
    array.flat[0] += by
    weight.CopyFrom(numpy_helper.from_array(array, weight.name))
    onnx.save(model, str(path))


# The keypoint model's spread layer feeds its confidence output only (training.models.Keypoints).
CONFIDENCE_ONLY_WEIGHT = "spread.bias"


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


def test_an_onnx_file_whose_confidence_drifts_fails_the_gate(exported, tmp_path, capsys):
    """The keypoints and the score stay as they were; the confidence output alone moves."""
    models, args = exported
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    _perturb(copy / "keypoints.onnx", CONFIDENCE_ONLY_WEIGHT, by=2.0)  # each sigma x 7.4
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["models"]["keypoints"]["sha256"] = sha256_of(copy / "keypoints.onnx")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match="parity gate failed"):
        export_main(["--models", str(copy), *args[2:], "--only", "keypoints", "--check"])
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("keypoints ")]
    assert "FAIL: batch 1: max |diff|" in row and "score moved" not in row, row


def test_a_failed_export_writes_nothing(exported, tmp_path, monkeypatch, capsys):
    """The digit models pass and the keypoint model fails the gate: no ONNX file is written, for
    any of them, and the manifest is left as it was."""
    models, args = exported
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    for onnx_file in copy.glob("*.onnx"):
        onnx_file.unlink()
    before = {path.name: path.read_bytes() for path in copy.iterdir()}
    to_onnx = convert.to_onnx

    def drifting_keypoints(model, spec, path):
        to_onnx(model, spec, path)
        if spec.name == "keypoints":
            _perturb(path, CONFIDENCE_ONLY_WEIGHT, by=2.0)

    monkeypatch.setattr(convert, "to_onnx", drifting_keypoints)
    with pytest.raises(SystemExit, match="parity gate failed; models/ left unchanged"):
        export_main(["--models", str(copy), *args[2:]])
    assert "keypoints " in capsys.readouterr().out
    assert {path.name: path.read_bytes() for path in copy.iterdir()} == before


def test_a_manifest_whose_sha256_does_not_match_is_detected(exported, tmp_path):
    models, args = exported
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    _perturb(copy / "keypoints.onnx")
    with pytest.raises(ManifestError, match="does not match"):
        verified_model("keypoints", copy / "manifest.json")
    with pytest.raises(SystemExit, match="error: .*keypoints.onnx: sha256"):
        export_main(["--models", str(copy), *args[2:], "--check"])


def _with_int8_variants(models, tmp_path, *names):
    """A copy of `models` whose manifest also lists NAME_int8 for each name (a copy of NAME.onnx stands in)."""
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    for name in names:
        shutil.copyfile(copy / f"{name}.onnx", copy / f"{name}_int8.onnx")
        fp32 = manifest["models"][name]
        manifest["models"][f"{name}_int8"] = {**fp32, "file": f"{name}_int8.onnx", "variant_of": name}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def _dropped(out):
    return [line for line in out.splitlines() if line.startswith("dropped ")]


def test_reexport_says_which_int8_variants_it_drops_and_how_to_rebuild_them(exported, tmp_path, capsys):
    models, args = exported
    copy = _with_int8_variants(models, tmp_path, "digits_cnn", "keypoints")
    capsys.readouterr()
    export_main(["--models", str(copy), *args[2:], "--only", "digits_cnn"])
    manifest = read_manifest(copy / "manifest.json")["models"]
    assert "digits_cnn_int8" not in manifest and not (copy / "digits_cnn_int8.onnx").exists()
    assert verified_model("keypoints_int8", copy / "manifest.json").info["variant_of"] == "keypoints"  # not re-exported
    rebuild = shlex.join(["python", "-m", "export.optimize", "--models", str(copy), *args[2:]])
    assert _dropped(capsys.readouterr().out) == [
        f"dropped digits_cnn_int8 ({copy / 'digits_cnn_int8.onnx'}): made from the previous digits_cnn, "
        f"stale now; rebuild it with: {rebuild}"
    ]


def test_the_rebuild_command_names_only_what_differs_from_the_defaults():
    command = optimize_command(Path("models"), Path("../shared/data/mnist"), Path("data/faces/faces.npz"))
    assert command == "python -m export.optimize --mnist ../shared/data/mnist --faces data/faces/faces.npz"


def test_optimize_drops_a_shipped_int8_variant_that_no_longer_earns_it(exported, tmp_path, monkeypatch, capsys):
    models, args = exported
    copy = _with_int8_variants(models, tmp_path, "digits_cnn")
    before = read_manifest(copy / "manifest.json")["models"]

    def measured(spec, onnx_path, scratch, *_):  # digits: int8 1 point worse (dropped); keypoints: 2x faster (kept)
        if spec.task.name == "digits":
            fp32, int8 = {"batch64_ms": 1.0, "val_accuracy": 0.90}, {"batch64_ms": 0.5, "val_accuracy": 0.89}
        else:
            fp32, int8 = {"batch64_ms": 1.0, "val_score": 100.0}, {"batch64_ms": 0.5, "val_score": 99.0}
        return {"variants": {optimize.FP32: fp32, optimize.INT8: int8}, "int8_path": onnx_path}

    monkeypatch.setattr(optimize, "evaluate_variants", measured)
    capsys.readouterr()
    optimize.main(["--models", str(copy), *args[2:]])
    manifest = read_manifest(copy / "manifest.json")["models"]
    assert set(manifest) == {"digits_cnn", "digits_mlp", "keypoints", "keypoints_int8"}
    assert not (copy / "digits_cnn_int8.onnx").exists()
    assert _dropped(capsys.readouterr().out) == [
        f"dropped digits_cnn_int8 ({copy / 'digits_cnn_int8.onnx'}) and its manifest entry: "
        "re-quantized int8 not kept: accuracy -1.00 points, batch-64 speed-up x2.00"
    ]
    assert all(manifest[name] == before[name] for name in ("digits_cnn", "digits_mlp", "keypoints"))
    kept = verified_model("keypoints_int8", copy / "manifest.json").info
    assert kept["quantization"] == optimize.quantization_summary(("Conv",)) and kept["speedup_batch64"] == 2.0
    assert "(Conv only; the rest float32)" in kept["quantization"]


def test_int8_weights_fit_in_7_bits_so_avx2_cpus_without_vnni_cannot_saturate(exported, tmp_path):
    models, _ = exported
    calibration = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    optimize.quantize(models / "digits_cnn.onnx", tmp_path / "int8.onnx", calibration)
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 5  # every conv and linear layer
    assert all(np.abs(w.astype(np.int16)).max() <= 64 for w in weights)  # 2 * 255 * 64 < 32767
    assert "7-bit" in optimize.quantization_summary()


def test_int8_of_the_convolutions_only_leaves_the_rest_float(exported, tmp_path):
    """The keypoint model's int8 (`Keypoints.quantized_ops`): its heatmap softmax must stay float."""
    models, _ = exported
    calibration = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    optimize.quantize(models / "digits_cnn.onnx", tmp_path / "all.onnx", calibration)
    optimize.quantize(models / "digits_cnn.onnx", tmp_path / "conv.onnx", calibration, ("Conv",))

    def int8_weights_of(path):  # the op types whose weights are stored in int8
        graph = onnx.load(str(path)).graph
        int8 = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
        weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8}
        return {n.op_type for n in graph.node if weights & set(n.input)}

    assert int8_weights_of(tmp_path / "conv.onnx") == {"Conv"}
    assert int8_weights_of(tmp_path / "all.onnx") > {"Conv"}  # the linear layer too


def test_missing_checkpoints_exit_with_one_line(tmp_path):
    with pytest.raises(SystemExit, match="error: no checkpoints"):
        export_main(["--models", str(tmp_path)])


def test_shipped_onnx_files_match_their_manifest_and_their_checkpoints(exported, capsys):
    """The shipped ONNX files gated again here, against the shipped checkpoints on the fixture
    data (`python -m export --check`), not on the manifest's word that they passed once."""
    if not DEFAULT_PATH.exists():
        pytest.skip("no shipped models/manifest.json yet")
    _, args = exported
    export_main(["--models", str(DEFAULT_PATH.parent), *args[2:], "--check"])
    out = capsys.readouterr().out
    assert out.rstrip().endswith("parity gate passed"), out
    for name in SPECS:
        (row,) = [line for line in out.splitlines() if line.startswith(f"{name} ")]
        assert row.endswith(" ok"), row
    manifest = read_manifest(DEFAULT_PATH)
    for name, info in manifest["models"].items():  # int8 variants too, where kept
        assert verified_model(name, DEFAULT_PATH, manifest).path.suffix == ".onnx"
        if "variant_of" in info:
            assert info["speedup_batch64"] > 1.1 and info["variant_of"] in manifest["models"]


def test_the_shipped_open_size_yunet_is_the_published_network_remade(tmp_path, capsys):
    """`python -m export.yunet` remakes the shipped file byte for byte from the published one, and
    only the declared sizes differ: the same nodes and weights."""
    from export import yunet

    remade = tmp_path / "yunet.onnx"
    yunet.main(["--out", str(remade)])
    assert "wrote" in capsys.readouterr().out
    assert remade.read_bytes() == yunet.YUNET_MODEL.read_bytes()
    published, shipped = onnx.load(str(yunet.YUNET_PUBLISHED)), onnx.load(str(yunet.YUNET_MODEL))
    assert yunet.same_network(published, shipped)
    assert published.graph.input != shipped.graph.input
    (image,) = shipped.graph.input
    assert [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim] == [1, 3, "height", "width"]
    assert read_manifest(DEFAULT_PATH)["models"]["yunet"]["derived_from"]["sha256"] == sha256_of(yunet.YUNET_PUBLISHED)


def test_export_yunet_refuses_a_missing_file_with_one_line(tmp_path):
    from export import yunet

    with pytest.raises(SystemExit, match="error: .*nope.onnx"):
        yunet.main(["--published", str(tmp_path / "nope.onnx"), "--out", str(tmp_path / "out.onnx")])


def test_a_keypoint_checkpoint_without_its_confidence_layer_is_refused_with_the_fix(exported, tmp_path, capsys):
    """The trainer's checkpoints have no spread layer; export names the command that fits one."""
    models, args = exported
    config = keypoints.Config().resolved()
    plain = tmp_path / "models"
    shutil.copytree(models, plain)
    save_checkpoint(
        plain / "keypoints.pt",
        "keypoints",
        config.model_args(),
        dataclasses.asdict(config),
        build("keypoints", config.model_args()),
        {},
    )
    with pytest.raises(SystemExit, match=r"keypoint_confidence"):
        export_main([*args[2:], "--models", str(plain), "--only", "keypoints"])
