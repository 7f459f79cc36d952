"""What gets exported: one spec per shipped checkpoint, and what its task means for validation.

A `Task` knows its data and its metric: how to load the validation split and calibration images,
how to measure outputs, when an ONNX file has drifted from PyTorch, and when an int8 variant has
lost too much. A `Spec` is one model: its name (manifest key, file stem), its task, and its
signature from `vision.signatures`. Export, the parity gate and `export.optimize` ask the spec;
none of them branches on the task.
"""

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.common import load_checkpoint
from training.faces_data import load_split
from training.mnist import VALIDATION_SIZE, load_mnist, train_validation_split
from training.models import ServedNet, model_from_checkpoint
from vision.errors import InputError
from vision.metrics import course_score, nme
from vision.signatures import SIGNATURES, Signature, model_pixels


@dataclass
class Validation:
    """Validation inputs (N, 1, H, W) float32 in [0, 1] and their targets."""

    images: np.ndarray
    targets: np.ndarray
    source: str


@dataclass(frozen=True)
class Data:
    """Where a task's data lives: the MNIST IDX folder, the face crops, the digits' validation size."""

    mnist: Path
    faces: Path
    mnist_validation: int = VALIDATION_SIZE


class Digits:
    name = "digits"
    outputs_hint = ""
    max_accuracy_drift = 0.0001  # parity: ONNX vs PyTorch, 0.01 points
    max_int8_loss = 0.001  # int8: at most 0.1 accuracy points lost
    quantized_ops = None  # int8: every op onnxruntime can quantize

    def validation(self, data: Data) -> Validation:
        return _digits_validation(Path(data.mnist), data.mnist_validation)

    def calibration(self, data: Data, count: int) -> np.ndarray:
        return model_pixels(load_mnist(Path(data.mnist))["train_images"][:count])

    def measure(self, outputs: np.ndarray, targets: np.ndarray) -> dict:
        return {"val_accuracy": float(np.mean(outputs.argmax(axis=1) == targets))}

    def changed_predictions(self, torch_out: np.ndarray, onnx_out: np.ndarray) -> int:
        return int(np.sum(onnx_out.argmax(1) != torch_out.argmax(1)))

    def drift(self, torch_out: np.ndarray, onnx_out: np.ndarray, torch_metrics: dict, onnx_metrics: dict) -> list[str]:
        """The parity gate's complaints beyond raw output differences."""
        failures = []
        mismatches = self.changed_predictions(torch_out, onnx_out)
        if mismatches:
            failures.append(f"{mismatches} digit predictions differ")
        delta = abs(onnx_metrics["val_accuracy"] - torch_metrics["val_accuracy"])
        if delta > self.max_accuracy_drift:
            failures.append(f"accuracy moved by {delta * 100:.3f} points")
        return failures

    def int8_change(self, fp32: dict, int8: dict) -> tuple[bool, str]:
        """(accurate enough, what changed) for an int8 variant's metrics against the fp32 ones."""
        loss = fp32["val_accuracy"] - int8["val_accuracy"]
        return loss <= self.max_int8_loss, f"accuracy {-loss * 100:+.2f} points"


class Keypoints:
    name = "keypoints"
    outputs_hint = " (a keypoint model gets its confidence from `python -m training.keypoint_confidence`)"
    max_score_drift = 0.001  # parity: ONNX vs PyTorch, 0.1% of the score
    max_int8_loss = 0.05  # int8: at most 5% of the score lost
    # int8: the convolutions only. The heatmap head's softmax over 576 cells and the soft-argmax
    # after it do not survive uint8 activations (the score fell 64% with every op quantized).
    quantized_ops = ("Conv",)

    def validation(self, data: Data) -> Validation:
        *_, images, points = load_split(data.faces)
        return Validation(model_pixels(images), points.reshape(len(points), -1), str(data.faces))

    def calibration(self, data: Data, count: int) -> np.ndarray:
        return model_pixels(load_split(data.faces)[0][:count])

    def measure(self, outputs: np.ndarray, targets: np.ndarray) -> dict:
        return {"val_score": course_score(outputs, targets), "val_nme": nme(outputs, targets)}

    def changed_predictions(self, torch_out: np.ndarray, onnx_out: np.ndarray) -> int:
        return 0  # a regression has no discrete prediction to flip; the score drift is the check

    def drift(self, torch_out: np.ndarray, onnx_out: np.ndarray, torch_metrics: dict, onnx_metrics: dict) -> list[str]:
        delta = abs(onnx_metrics["val_score"] - torch_metrics["val_score"]) / torch_metrics["val_score"]
        return [f"score moved by {delta:.2%}"] if delta > self.max_score_drift else []

    def int8_change(self, fp32: dict, int8: dict) -> tuple[bool, str]:
        loss = (fp32["val_score"] - int8["val_score"]) / fp32["val_score"]
        return loss <= self.max_int8_loss, f"score {-loss:+.1%}"


@functools.cache  # both digit models validate on the same images: read them once
def _digits_validation(mnist: Path, mnist_validation: int) -> Validation:
    arrays = load_mnist(mnist)
    _, (images, labels) = train_validation_split(arrays["train_images"], arrays["train_labels"], mnist_validation)
    return Validation(model_pixels(images), labels.astype(np.int64), str(mnist))


@dataclass(frozen=True)
class Spec:
    name: str  # manifest key, file stem and checkpoint model name
    task: Digits | Keypoints

    @property
    def signature(self) -> Signature:
        return SIGNATURES[self.name]

    @property
    def checkpoint(self) -> str:
        return f"{self.name}.pt"

    @property
    def onnx(self) -> str:
        return f"{self.name}.onnx"

    def rebuild(self, models_dir: Path) -> tuple[ServedNet, dict]:
        """The checkpoint -> (eval-mode model, checkpoint dict); a checkpoint of another model, or
        one whose model gives other outputs than the signature's, is refused."""
        checkpoint = load_checkpoint(Path(models_dir) / self.checkpoint)
        model = model_from_checkpoint(checkpoint, expected=self.name)
        with torch.no_grad():
            out = model.outputs(torch.zeros(1, *self.signature.input))
        shapes = [tuple(t.shape[1:]) for t in out]
        if shapes != self.signature.output_shapes:
            raise InputError(
                f"{self.checkpoint}: its model gives outputs of {shapes} per item, the signature wants "
                f"{', '.join(self.signature.output_names)} {self.signature.output_shapes}{self.task.outputs_hint}"
            )
        return model, checkpoint

    def validation(self, data: Data) -> Validation:
        return self.task.validation(data)

    def measure(self, outputs: np.ndarray, targets: np.ndarray) -> dict:
        return self.task.measure(outputs, targets)


SPECS = {
    "digits_cnn": Spec("digits_cnn", Digits()),
    "digits_mlp": Spec("digits_mlp", Digits()),
    "keypoints": Spec("keypoints", Keypoints()),
}
