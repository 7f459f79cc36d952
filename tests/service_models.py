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

from bench.processes import free_port, stop_group
from export.manifest import YUNET
from vision.manifest import sha256_of

OPSET = 18
ROOT = Path(__file__).resolve().parent.parent


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
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["product"]),
            helper.make_node("Add", ["product", "b"], ["logits"]),
        ],
        [("image", ["batch", 1, 28, 28])],
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
            helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["product"]),
            helper.make_node("Add", ["product", "b"], ["raw"]),
            helper.make_node("Tanh", ["raw"], ["keypoints"]),
            helper.make_node("MatMul", ["flat", "w_confidence"], ["confidence_product"]),
            helper.make_node("Add", ["confidence_product", "b_confidence"], ["confidence_logit"]),
            helper.make_node("Sigmoid", ["confidence_logit"], ["confidence"]),
        ],
        [("image", ["batch", 1, 96, 96])],
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
        "inputs": [{"name": "image", "shape": ["batch", 1, 28, 28], "dtype": "float32"}],
        "outputs": [{"name": "logits", "shape": ["batch", 10]}],
    }
    entries = {
        "digits_cnn": {**digits_io, "metrics": {"val_accuracy": 0.1, "stand_in": True}},
        "digits_mlp": {**digits_io, "metrics": {"val_accuracy": 0.1, "stand_in": True}},
        "keypoints": {
            "inputs": [{"name": "image", "shape": ["batch", 1, 96, 96], "dtype": "float32"}],
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


# --- a real `bentoml serve` in a subprocess ------------------------------------------------------

VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


class Server:
    """`python -m service` (= `bentoml serve service.service:Vision`) on a free port, in its own
    process group."""

    def __init__(self, env: dict, log_path: Path, timeout: float = 120.0, port: int | None = None):
        import os
        import subprocess
        import sys

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed by stop(), the server's whole life)
        python = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
        self.process = subprocess.Popen(
            [python, "-m", "service", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.timeout = timeout

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        import time

        import httpx

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"/readyz did not answer 200 within {self.timeout:.0f} s:\n{self.log()[-3000:]}")

    def wait_for_log(self, text: str, timeout: float = 15.0) -> str:
        """The log once `text` is in it (or as it is after `timeout` seconds)."""
        import time

        deadline = time.monotonic() + timeout
        while text not in self.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.log()

    def worker_pids(self) -> list[int]:
        """The BentoML worker processes under this server (where the models live)."""
        pids = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if b"_bentoml_impl.worker.service" in cmdline and self.process.pid in (int(stat[1]), int(stat[2])):
                pids.append(int(proc.name))
        return pids

    def stop(self) -> None:
        stop_group(self.process)  # SIGTERM to the group (BentoML drains), then SIGKILL to what is left
        self._log.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for {pid}")


def serving(env: dict, log_dir: Path):
    """A `Server` for a test module's fixture: ready when yielded, stopped afterwards, whatever
    happens (`yield from serving(...)` in a fixture)."""
    server = Server(env, Path(log_dir) / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
