"""What each served model takes and gives, per item after the batch axis: the one definition that
the ONNX export, the service's runtime checks and its array validators all derive from.

Every model takes `image`, (N, 1, H, W) float32 pixels in [0, 1]; normalization is inside the graph.
Imports nothing heavy (no OpenCV), so the service module can use it at import time.
"""

from dataclasses import dataclass

import numpy as np

from vision.keypoints import NUM_KEYPOINTS

MNIST_SIZE = 28  # a digit is 28x28, as in MNIST
CROP_SIZE = 96  # a face crop is 96x96, as in the course's keypoint data
INPUT_NAME = "image"
PIXEL_MAX = 255.0  # uint8 pixels; the models take them divided by this
DIGIT_CLASSES = 10


@dataclass(frozen=True)
class Signature:
    input: tuple[int, ...]  # (1, H, W)
    output: tuple[int, ...]  # (width,)
    output_name: str
    extra_outputs: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (name, per-item shape) after the first

    @property
    def output_names(self) -> list[str]:
        return [self.output_name, *(name for name, _ in self.extra_outputs)]

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [self.output, *(shape for _, shape in self.extra_outputs)]


DIGITS = Signature((1, MNIST_SIZE, MNIST_SIZE), (DIGIT_CLASSES,), "logits")
# The keypoints (x0, y0, x1, ...) in [-1, 1], and each point's confidence in [0, 1]
# (vision.keypoints.CONFIDENCE_RADIUS_PX says what it means).
KEYPOINTS = Signature((1, CROP_SIZE, CROP_SIZE), (2 * NUM_KEYPOINTS,), "keypoints", (("confidence", (NUM_KEYPOINTS,)),))

# The face detectors /faces can use (vision.detectors); "yunet" is also the detector's manifest name.
DETECTORS = ("yunet", "haar")
# The detector name of the boxes a client sends to /faces instead of a detection (vision.given_boxes.GivenBoxes).
GIVEN_DETECTOR = "given"

# Manifest name -> signature. An int8 variant (NAME_int8) has the signature of NAME.
SIGNATURES = {"digits_cnn": DIGITS, "digits_mlp": DIGITS, "keypoints": KEYPOINTS}


def model_pixels(images: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 images -> (N, 1, H, W) float32 in [0, 1]: what every model takes."""
    return (np.asarray(images, dtype=np.float32) / PIXEL_MAX)[:, None]


def log_sum_exp(logits: np.ndarray) -> np.ndarray:
    """(N, 10) logits -> (N,) their log-sum-exp: how much a digit model sees a digit at all (the
    number reader's "not a digit" is a low one; the CNN is trained for it, training.digits.seen)."""
    top = logits.max(axis=1)
    return top + np.log(np.exp(logits - top[:, None]).sum(axis=1))


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, 10) logits, the digit models' output -> (N, 10) probabilities."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
