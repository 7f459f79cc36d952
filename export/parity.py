"""The parity gate: PyTorch (eval mode) against onnxruntime on real validation data."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from export.specs import Spec, Validation
from training.models import ServedNet
from vision.onnx_model import OnnxModel

BATCH_SIZES = (1, 7, 64)
MAX_ABS_DIFF = 1e-4
# A validation metric may move by at most 0.01 percentage points (digits accuracy) or 0.1% of
# the score (keypoints).


@dataclass
class Parity:
    name: str
    max_abs_diff: dict[int, float] = field(default_factory=dict)  # per batch size
    prediction_mismatches: int = 0
    torch_metrics: dict = field(default_factory=dict)
    onnx_metrics: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        return {
            "max_abs_diff": {str(b): d for b, d in self.max_abs_diff.items()},
            "prediction_mismatches": self.prediction_mismatches,
            "torch_metrics": self.torch_metrics,
            "onnx_metrics": self.onnx_metrics,
            "passed": self.passed,
        }


@torch.no_grad()
def run_torch(model: ServedNet, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's (first) output; `torch_outputs` has them all."""
    return np.concatenate(
        [torch_outputs(model, images[i : i + batch_size])[0] for i in range(0, len(images), batch_size)]
    )


@torch.no_grad()
def torch_outputs(model: ServedNet, images: np.ndarray) -> list[np.ndarray]:
    """Every output of the model (the keypoint model's confidence too), as the ONNX file lists them."""
    return [t.numpy() for t in model.outputs(torch.from_numpy(images))]


def check_parity(spec: Spec, model: ServedNet, onnx_path: Path, data: Validation) -> Parity:
    onnx = OnnxModel(onnx_path)  # on the CPU, optimized as the service runs it
    result = Parity(spec.name)
    for batch in BATCH_SIZES:
        images = data.images[:batch]
        got, want = onnx.outputs(images), torch_outputs(model, images)
        shapes = [g.shape for g in got], [w.shape for w in want]
        if shapes[0] != shapes[1]:
            result.failures.append(f"batch {batch}: output shapes {shapes[0]} != {shapes[1]}")
            continue
        result.max_abs_diff[batch] = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
        if result.max_abs_diff[batch] > MAX_ABS_DIFF:
            result.failures.append(f"batch {batch}: max |diff| {result.max_abs_diff[batch]:.2e} > {MAX_ABS_DIFF:.0e}")

    onnx_out, torch_out = onnx.in_batches(data.images)[0], run_torch(model, data.images)
    result.torch_metrics = spec.measure(torch_out, data.targets)
    result.onnx_metrics = spec.measure(onnx_out, data.targets)
    result.prediction_mismatches = spec.task.changed_predictions(torch_out, onnx_out)
    result.failures += spec.task.drift(torch_out, onnx_out, result.torch_metrics, result.onnx_metrics)
    return result


def table(results: list[Parity]) -> str:
    """A readable table of the gate's figures, one row per model."""
    header = (
        f"{'model':<12} {'max|diff| b=1':>14} {'b=7':>10} {'b=64':>10} {'pred diff':>9}  "
        f"{'torch':>22}  {'onnx':>22}  result"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        diffs = [f"{r.max_abs_diff.get(b, float('nan')):.2e}" for b in BATCH_SIZES]
        fmt = lambda m: " ".join(f"{k.removeprefix('val_')}={v:.4f}" for k, v in m.items())  # noqa: E731
        verdict = "ok" if r.passed else "FAIL: " + "; ".join(r.failures)
        lines.append(
            f"{r.name:<12} {diffs[0]:>14} {diffs[1]:>10} {diffs[2]:>10} {r.prediction_mismatches:>9}"
            f"  {fmt(r.torch_metrics):>22}  {fmt(r.onnx_metrics):>22}  {verdict}"
        )
    return "\n".join(lines)
