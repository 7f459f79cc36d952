"""What gets exported: one spec per shipped checkpoint, and how to validate it."""

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training import keypoints as keypoints_data
from training.common import load_checkpoint
from training.mnist import VALIDATION_SIZE, load_mnist, train_validation_split
from training.models import model_from_checkpoint
from vision.metrics import course_score, nme


@dataclass(frozen=True)
class Spec:
    name: str  # manifest key and file stem
    task: str  # "digits" | "keypoints"
    size: int  # input is (N, 1, size, size)
    output: str  # the ONNX output name
    width: int  # output is (N, width)

    @property
    def checkpoint(self) -> str:
        return f"{self.name}.pt"

    @property
    def onnx(self) -> str:
        return f"{self.name}.onnx"


SPECS = {
    "digits_cnn": Spec("digits_cnn", "digits", 28, "logits", 10),
    "digits_mlp": Spec("digits_mlp", "digits", 28, "logits", 10),
    "keypoints": Spec("keypoints", "keypoints", 96, "keypoints", 30),
}


def load_torch_model(spec: Spec, models_dir: Path) -> tuple[torch.nn.Module, dict]:
    """The spec's checkpoint -> (eval-mode model, checkpoint dict); a checkpoint of another model is refused."""
    checkpoint = load_checkpoint(Path(models_dir) / spec.checkpoint)
    return model_from_checkpoint(checkpoint, expected=spec.name), checkpoint


@dataclass
class Validation:
    """Validation inputs (N, 1, H, W) float32 in [0, 1] and their targets."""

    images: np.ndarray
    targets: np.ndarray
    source: str


def validation_data(
    spec: Spec, mnist_dir: Path, faces_npz: Path, mnist_validation: int = VALIDATION_SIZE
) -> Validation:
    return _validation(spec.task, Path(mnist_dir), Path(faces_npz), mnist_validation)


@functools.cache  # both digit models validate on the same images: read them once
def _validation(task: str, mnist_dir: Path, faces_npz: Path, mnist_validation: int) -> Validation:
    if task == "digits":
        arrays = load_mnist(mnist_dir)
        _, (images, labels) = train_validation_split(arrays["train_images"], arrays["train_labels"], mnist_validation)
        return Validation((images.astype(np.float32) / 255)[:, None], labels.astype(np.int64), str(mnist_dir))
    *_, images, points = keypoints_data.load_split(faces_npz)
    return Validation((images.astype(np.float32) / 255)[:, None], points.reshape(len(points), -1), str(faces_npz))


def measure(spec: Spec, outputs: np.ndarray, targets: np.ndarray) -> dict:
    """The validation metric(s) of a model's outputs: accuracy for digits; score and NME for keypoints."""
    if spec.task == "digits":
        return {"val_accuracy": float(np.mean(outputs.argmax(axis=1) == targets))}
    return {"val_score": course_score(outputs, targets), "val_nme": nme(outputs, targets)}
