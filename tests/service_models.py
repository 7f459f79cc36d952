"""Small stand-in ONNX models and a manifest for the service tests, built with onnx.helper.

They have the real models' names, signatures and manifest entries, so the service cannot tell
them apart, but they are tiny and deterministic:

- digits_cnn / digits_mlp: Flatten -> MatMul(784x10) -> Add -> "logits"; the two use different
  weights, so a test can see which model answered.
- keypoints: AveragePool(8x8) -> Flatten -> MatMul(144x30) -> Add -> Tanh -> "keypoints" in
  [-1, 1]; the bias is a plausible face layout and the weights are small. And from the same
  pooled pixels, MatMul(144x15) -> Add -> Sigmoid -> "confidence" in [0, 1].
"""

import json
import shutil
from pathlib import Path

import numpy as np
from paths import ROOT

from bench.processes import Server
from export.manifest import YUNET
from vision.manifest import sha256_of
from vision.signatures import INPUT_NAME

OPSET = 18


def _save(path: Path, nodes, inputs, outputs, initializers) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        path.stem,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        [numpy_helper.from_array(a.astype(np.float32), name) for name, a in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def digits_model(path: Path, seed: int) -> None:
    from onnx import helper

    rng = np.random.default_rng(seed)
    _save(
        path,
        [
            helper.make_node("Flatten", [INPUT_NAME], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["product"]),
            helper.make_node("Add", ["product", "b"], ["logits"]),
        ],
        [(INPUT_NAME, ["batch", 1, 28, 28])],
        [("logits", ["batch", 10])],
        # Logits shifted by 10: the same probabilities, but a log-sum-exp as high as a trained
        # model's on a digit, or /number would leave every digit out as "not a digit".
        {"w": rng.normal(0, 0.1, (784, 10)), "b": rng.normal(0, 0.1, (10,)) + 10},
    )


# A plausible 15-point face in normalized crop coordinates (course order).
FACE_LAYOUT = np.array(
    [
        [0.3, -0.2],
        [-0.3, -0.2],
        [0.15, -0.2],
        [0.45, -0.2],
        [-0.15, -0.2],
        [-0.45, -0.2],
        [0.12, -0.4],
        [0.55, -0.42],
        [-0.12, -0.4],
        [-0.55, -0.42],
        [0.0, 0.15],
        [0.3, 0.45],
        [-0.3, 0.45],
        [0.0, 0.38],
        [0.0, 0.55],
    ]
)


def keypoints_model(path: Path, seed: int = 2) -> None:
    from onnx import helper

    rng = np.random.default_rng(seed)
    _save(
        path,
        [
            helper.make_node("AveragePool", [INPUT_NAME], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["product"]),
            helper.make_node("Add", ["product", "b"], ["raw"]),
            helper.make_node("Tanh", ["raw"], ["keypoints"]),
            helper.make_node("MatMul", ["flat", "w_confidence"], ["confidence_product"]),
            helper.make_node("Add", ["confidence_product", "b_confidence"], ["confidence_logit"]),
            helper.make_node("Sigmoid", ["confidence_logit"], ["confidence"]),
        ],
        [(INPUT_NAME, ["batch", 1, 96, 96])],
        [("keypoints", ["batch", 30]), ("confidence", ["batch", 15])],
        {
            "w": rng.normal(0, 0.01, (144, 30)),
            "b": np.arctanh(FACE_LAYOUT.reshape(30)),
            "w_confidence": rng.normal(0, 0.1, (144, 15)),
            "b_confidence": np.linspace(-2, 2, 15),  # some points below vision.keypoints.LOW_CONFIDENCE
        },
    )


def write_models(folder: Path) -> Path:
    """Write the three stand-in models and their manifest into `folder`; return the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    digits_model(folder / "digits_cnn.onnx", seed=0)
    digits_model(folder / "digits_mlp.onnx", seed=1)
    keypoints_model(folder / "keypoints.onnx")
    digits_io = {
        "inputs": [{"name": INPUT_NAME, "shape": ["batch", 1, 28, 28], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": ["batch", 10]}],
    }
    entries = {
        "digits_cnn": {**digits_io, "metrics": {"val_accuracy": 0.1, "stand_in": True}},
        "digits_mlp": {**digits_io, "metrics": {"val_accuracy": 0.1, "stand_in": True}},
        "keypoints": {
            "inputs": [{"name": INPUT_NAME, "shape": ["batch", 1, 96, 96], "dtype": "float32"}],
            "outputs": [{"name": "keypoints", "shape": ["batch", 30]}, {"name": "confidence", "shape": ["batch", 15]}],
            "metrics": {"val_nme": 1.0, "stand_in": True},
        },
    }
    models = {
        name: {"file": f"{name}.onnx", "sha256": sha256_of(folder / f"{name}.onnx"), "opset": OPSET, **entry}
        for name, entry in entries.items()
    }
    # The real face detector: it is small, shipped in the repo, and the service needs one.
    shutil.copytree(ROOT / "models" / "yunet", folder / "yunet", dirs_exist_ok=True)  # licence included
    models["yunet"] = {**YUNET, "sha256": sha256_of(folder / YUNET["file"])}
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"models": models, "git_commit": "stand-in", "created": "test"}, indent=2))
    return manifest


# --- a real `bentoml serve` in a subprocess (bench/processes.py) ---------------------------------


def serving(env: dict, log_dir: Path):
    """A `Server` for a test module's fixture: ready when yielded, stopped afterwards, whatever
    happens (`yield from serving(...)` in a fixture)."""
    server = Server(env, Path(log_dir) / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
