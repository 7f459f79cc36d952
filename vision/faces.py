"""The one face pipeline: from a decoded photo to each face's 15 keypoints in its pixels, their
confidences and the head's pose. Torch-free; the service, the clients' --local, the evaluations
and the training crops' checks all run it, so every face is found, cut and mapped back alike.

Detect (`vision.detectors`, or a client's `vision.given_boxes`) -> crop each face in its
detector's style (`vision.crop`) -> one model call for all of them -> map the points back.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from vision.colors import to_gray
from vision.crop import FaceCrop, crop_points, model_input
from vision.detectors import Detection, Detector
from vision.geometry import scaled_pixel
from vision.keypoints import NUM_KEYPOINTS, as_records
from vision.pose import HeadPose, head_pose

# (N, 1, 96, 96) float32 in [0, 1] -> every output of the keypoint model, in its ONNX file's order:
# the (N, 30) keypoints and, if it gives them, each point's confidence (N, 15)
# (`vision.onnx_model.OnnxModel.outputs`, `service.runtime.Model.outputs`).
KeypointModel = Callable[[np.ndarray], Sequence[np.ndarray]]


@dataclass(frozen=True)
class Face:
    detection: Detection
    crop: FaceCrop
    keypoints: np.ndarray  # (15, 2) image pixels, course order
    confidence: np.ndarray | None = None  # (15,) in [0, 1], vision.keypoints.CONFIDENCE_RADIUS_PX; None: not given
    pose: HeadPose | None = None  # from the keypoints (vision.pose); None: they do not support one

    def scaled(self, factor: float) -> "Face":
        """This face in an image `factor` times larger (`scaled_pixel`)."""
        if factor == 1:
            return self
        crop = FaceCrop(
            scaled_pixel(self.crop.cx, factor),
            scaled_pixel(self.crop.cy, factor),
            self.crop.side * factor,
            self.crop.angle,
        )
        points = scaled_pixel(self.keypoints, factor)  # the pose is the same at any scale
        return Face(self.detection.scaled(factor), crop, points, self.confidence, self.pose)

    def as_dict(self) -> dict:
        return {
            "box": self.detection.box.as_dict(),
            "score": None if self.detection.score is None else round(self.detection.score, 4),
            "detector": self.detection.detector,
            "keypoints": as_records(self.keypoints, self.confidence),
            "pose": None if self.pose is None else self.pose.as_dict(),
        }


def predict_keypoints(
    model: KeypointModel, gray: np.ndarray, crops: list[FaceCrop]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut every crop, run the model once on all of them, map its points back: (N, 15, 2) pixels,
    and (N, 15) confidences if the model gives them (else None)."""
    if not crops:
        return np.zeros((0, NUM_KEYPOINTS, 2)), None
    keypoints, *rest = model(model_input(np.stack([c.cut(gray) for c in crops])))
    confidence = rest[0] if rest else None
    points = np.stack([c.to_image(p) for c, p in zip(crops, crop_points(keypoints), strict=True)])
    return points, confidence


def find_faces(image: np.ndarray, detector: Detector, model: KeypointModel) -> list[Face]:
    """Detect -> crop -> predict -> map back: a decoded image to every face with its keypoints and
    the head's pose from them."""
    detections = detector.detect(image)
    crops = [FaceCrop.around(d) for d in detections]
    points, confidence = predict_keypoints(model, to_gray(image), crops)
    confidence = [None] * len(crops) if confidence is None else confidence
    height, width = image.shape[:2]
    poses = [head_pose(p, width, height, c) for p, c in zip(points, confidence, strict=True)]
    return [Face(*face) for face in zip(detections, crops, points, confidence, poses, strict=True)]
