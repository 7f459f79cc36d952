"""One ONNX file in one onnxruntime session: the one place where a session is made.

The service's runtime (on top: the manifest's hashes and the execution provider rules), YuNet, the
export's parity gate and int8 figures, the evaluations, the benchmarks and the tests all load their
models here, feed them by the one input name (`vision.signatures.INPUT_NAME`; YuNet's published
file has its own) and get every output back in the order the file lists them. Torch-free, and
onnxruntime is imported at the first load, so that importing this module costs nothing.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vision.signatures import INPUT_NAME

CPU = "CPUExecutionProvider"
# onnxruntime's graph optimization levels (GraphOptimizationLevel members), by the names used here.
OPTIMIZATION_LEVELS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


class OnnxModel:
    """An ONNX file in an onnxruntime session on `providers` (the first that loads runs it).

    `threads`: onnxruntime threads per call (0: its default, one per core); `spinning=False` keeps
    idle threads from spinning; `quiet` logs errors only; `optimization` is the graph optimization
    level (onnxruntime's default, "all", is what the service runs) and `optimized_copy` a file to
    write the optimized graph to. `model.outputs(x)` -> every output; `model(x)` -> the first.
    """

    def __init__(
        self,
        path: Path | str,
        providers: Sequence[str] = (CPU,),
        *,
        threads: int = 0,
        spinning: bool = True,
        quiet: bool = False,
        optimization: str = "all",
        optimized_copy: Path | None = None,
        input_name: str = INPUT_NAME,
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if quiet:
            options.log_severity_level = 3  # errors only
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION_LEVELS[optimization])
        if optimized_copy is not None:
            options.optimized_model_filepath = str(optimized_copy)
        self.path, self.input_name = Path(path), input_name
        self.session = ort.InferenceSession(str(path), options, providers=list(providers))

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really runs on, first first (not what was asked for)."""
        return self.session.get_providers()

    @property
    def provider(self) -> str:
        return self.providers[0]

    def outputs(self, batch: np.ndarray, names: Sequence[str] | None = None) -> list[np.ndarray]:
        """Every output (or those `names`) for a batch, in the file's order (or that of `names`)."""
        feed = {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        return self.session.run(None if names is None else list(names), feed)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The first output: the digit models' logits, the keypoint model's keypoints."""
        return self.outputs(batch)[0]

    def in_batches(self, inputs: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
        """Every output for many inputs, run `batch_size` at a time (bounded memory) and joined."""
        runs = [self.outputs(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
        return [np.concatenate(output) for output in zip(*runs, strict=True)]
