"""Face detectors behind one protocol: YuNet (the default) and OpenCV's Haar cascade. Each says
how its boxes are cut (`crop_style`), and each detection it makes carries that style, so a crop
is placed the same wherever the detection goes (the pipeline, training crops, a client's region).
"""

import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from vision.colors import to_bgr, to_gray
from vision.crop import CropStyle
from vision.errors import InputError
from vision.geometry import Box, scaled_pixel
from vision.onnx_model import OnnxModel

# Set so that the 15 keypoints fill the crop as they filled the Haar crops that the course-style
# model was first trained on: centred, outer eye corners 0.82 half-sides apart (training.prepare_faces
# prints this layout for the crops it makes; on the YouTube + Helen/AFW faces: (+0.00, -0.00), 0.82).
YUNET_CROP = CropStyle(margin=1.125, drop=-0.019, align=True)
# The Haar box spans brows to chin; 1.2 leaves room around the 15 keypoints. Haar gives no eyes.
HAAR_CROP = CropStyle(margin=1.2, drop=0.0, align=False)


@dataclass(frozen=True)
class Detection:
    """One face a detector found. `eyes` is ((x, y) of the subject's right eye, (x, y) of the
    left eye) in image pixels where the detector gives them (YuNet), else None (Haar).
    `crop_style` is its detector's: a box made by hand is taken for a YuNet-like one."""

    box: Box
    score: float | None  # the detector's confidence in [0, 1]; Haar has none
    detector: str
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None
    crop_style: CropStyle = YUNET_CROP

    @property
    def roll(self) -> float:
        """The face's in-plane rotation in degrees (0: eyes level), from the eyes; 0 without them."""
        if self.eyes is None:
            return 0.0
        (rx, ry), (lx, ly) = self.eyes  # the subject's right eye is on the image's left
        return math.degrees(math.atan2(ly - ry, lx - rx))

    def scaled(self, factor: float) -> "Detection":
        """This detection in an image `factor` times larger (`scaled_pixel`)."""
        if factor == 1:
            return self
        eyes = (
            None
            if self.eyes is None
            else tuple((scaled_pixel(x, factor), scaled_pixel(y, factor)) for x, y in self.eyes)
        )
        return replace(self, box=self.box.scaled(factor), eyes=eyes)


class Detector(Protocol):
    """What `vision.faces.find_faces` takes: a name (each answer's "detector"), the style its
    boxes are cut in, and the faces in a decoded image, each a `Detection` in that style."""

    name: str
    crop_style: CropStyle

    def detect(self, image: np.ndarray) -> list[Detection]: ...


# --- Haar ------------------------------------------------------------------------------------
# An OpenCV detector shared by concurrent threads has crashed a server with a segmentation fault,
# so the Haar detector keeps one OpenCV instance per thread, made on first use in that thread.

HAAR_CASCADE = "haarcascade_frontalface_default.xml"


class HaarDetector:
    """OpenCV's bundled frontal-face Haar cascade: the course's detector. No score, no eyes."""

    name = "haar"
    crop_style = HAAR_CROP

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 40):
        self.path = cv2.data.haarcascades + HAAR_CASCADE
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self._local = threading.local()
        self._cascade()  # fail at construction, not at the first request

    def _cascade(self) -> "cv2.CascadeClassifier":
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(self.path)
            if cascade.empty():
                raise RuntimeError(f"could not load the Haar cascade {self.path}")
            self._local.cascade = cascade
        return cascade

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a decoded image, largest first."""
        found = self._cascade().detectMultiScale(
            cv2.equalizeHist(to_gray(image)),
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
        )
        detections = [Detection(Box(*map(float, b)), None, self.name, crop_style=self.crop_style) for b in found]
        return sorted(detections, key=lambda d: d.box.width * d.box.height, reverse=True)


# --- YuNet -----------------------------------------------------------------------------------

# What the service loads is named by models/manifest.json; this is the same file, for training
# and evaluation code that runs without the service.
YUNET_MODEL = Path(__file__).resolve().parent.parent / "models" / "yunet" / "face_detection_yunet_2023mar_dynamic.onnx"
# The file as published, which YUNET_MODEL is made from (python -m export.yunet) and cv2.FaceDetectorYN reads.
YUNET_PUBLISHED = YUNET_MODEL.parent / "face_detection_yunet_2023mar.onnx"
YUNET_INPUT = "input"  # the published file's input name, kept (not vision.signatures.INPUT_NAME)
MIN_DETECT_SIDE = 64  # pad smaller images: YuNet's coarsest map (stride 32) needs a few cells
YUNET_STRIDES = (8, 16, 32)
YUNET_OUTPUTS = [f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in YUNET_STRIDES]


class YuNetDetector:
    """YuNet, the detector behind OpenCV's `cv2.FaceDetectorYN`: boxes, a confidence and five
    landmarks per face. onnxruntime runs the network (2.2x faster than OpenCV's DNN module on a
    640x480 frame on this CPU, and on CUDA where the service's session has it); the decoding and
    non-maximum suppression are OpenCV's (its face_detect.cpp), so the faces equal
    `cv2.FaceDetectorYN`'s (tests/test_vision_detectors.py). `model` is the open-size copy that
    `python -m export.yunet` makes; `network`, where given, is that file already loaded (the
    service's, on its provider), else it is loaded on the CPU. One session serves every thread.

    Photos are detected at a working size whose longer side is at most `max_side` pixels and the
    boxes mapped back, so a 12-megapixel photo costs about what a VGA frame does.
    """

    name = "yunet"
    crop_style = YUNET_CROP

    def __init__(
        self,
        model: Path,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
        max_side: int = 640,
        top_k: int = 100,
        network: OnnxModel | None = None,
    ):
        if not Path(model).is_file():
            raise InputError(f"YuNet model not found: {model}")
        self.score_threshold, self.nms_threshold, self.max_side, self.top_k = (
            score_threshold,
            nms_threshold,
            max_side,
            top_k,
        )
        self.network = network if network is not None else OnnxModel(model, input_name=YUNET_INPUT)
        self.detect(np.zeros((MIN_DETECT_SIDE, MIN_DETECT_SIDE, 3), np.uint8))  # fail now, not at a request

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a decoded image, most confident first."""
        bgr = to_bgr(image)
        height, width = bgr.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = size[0] / width, size[1] / height
        else:
            scale_x = scale_y = 1.0
        found = self._faces(bgr)
        detections = []
        for row in found:
            x, y, w, h = row[:4]
            xs, ys = row[4:14:2] / scale_x, row[5:14:2] / scale_y  # right eye, left eye, nose, mouth corners
            box = Box(float(x / scale_x), float(y / scale_y), float(w / scale_x), float(h / scale_y))
            eyes = ((float(xs[0]), float(ys[0])), (float(xs[1]), float(ys[1])))
            detections.append(Detection(box, float(row[14]), self.name, eyes, self.crop_style))
        return detections  # NMS keeps them most confident first

    def _faces(self, bgr: np.ndarray) -> np.ndarray:
        """(faces, 15) rows as cv2.FaceDetectorYN gives them: x, y, w, h, five (x, y), score."""
        height, width = bgr.shape[:2]
        # The image goes in as it is (BGR, 0-255), padded at the bottom and right to multiples of 32.
        padded = [max(MIN_DETECT_SIDE, -(-side // 32) * 32) for side in (height, width)]
        blob = np.zeros((1, 3, *padded), np.float32)
        for channel, plane in enumerate(cv2.split(bgr)):  # 1.5x faster than one strided transpose
            blob[0, channel, :height, :width] = plane
        outputs = dict(zip(YUNET_OUTPUTS, self.network.outputs(blob, YUNET_OUTPUTS), strict=True))
        rows = [self._decode(outputs, stride, padded[1] // stride) for stride in YUNET_STRIDES]
        rows = np.concatenate(rows)
        rows = rows[np.isfinite(rows).all(axis=1) & (rows[:, 2] > 0) & (rows[:, 3] > 0)]  # a box that is no box
        if len(rows) == 0:
            return rows
        keep = cv2.dnn.NMSBoxes(
            rows[:, :4].tolist(), rows[:, 14].tolist(), self.score_threshold, self.nms_threshold, top_k=self.top_k
        )
        return rows[np.asarray(keep, dtype=int).reshape(-1)]

    def _decode(self, outputs: dict, stride: int, columns: int) -> np.ndarray:
        """One stride's anchors over the score threshold -> rows (anchor-free: offsets from each cell)."""
        cls, obj = (np.clip(outputs[f"{kind}_{stride}"][0, :, 0], 0, 1) for kind in ("cls", "obj"))
        score = np.sqrt(cls * obj)
        cells = np.flatnonzero(score >= self.score_threshold)
        row, column = np.divmod(cells, columns)
        bbox, kps = outputs[f"bbox_{stride}"][0, cells], outputs[f"kps_{stride}"][0, cells]
        center_x, center_y = (column + bbox[:, 0]) * stride, (row + bbox[:, 1]) * stride
        box_w, box_h = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
        marks = np.empty_like(kps)
        marks[:, 0::2] = (kps[:, 0::2] + column[:, None]) * stride
        marks[:, 1::2] = (kps[:, 1::2] + row[:, None]) * stride
        return np.column_stack([center_x - box_w / 2, center_y - box_h / 2, box_w, box_h, marks, score[cells]])
