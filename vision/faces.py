"""Faces: detection (YuNet by default, Haar on request), the 96x96 crop, and the one pipeline
from a decoded photo to 15 keypoints in its pixels. Torch-free; training, export, the service and
the clients all use it, so every crop a model sees is cut by this code.

A crop is a square around the face, rotated so that the eyes are level (when the detector gives
eyes, as YuNet does), scaled to 96x96. `FaceCrop` maps points into the crop, to the course's
[-1, 1], and back to image pixels exactly.
"""

import contextlib
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from vision.errors import InputError
from vision.keypoints import NUM_KEYPOINTS
from vision.onnx_model import OnnxModel
from vision.pose import HeadPose, head_pose
from vision.signatures import CROP_SIZE, GIVEN_DETECTOR, model_pixels

HAAR_CASCADE = "haarcascade_frontalface_default.xml"


def scaled_pixel(v, factor: float):
    """Pixel coordinate v (a number or an array) in an image `factor` times larger: pixel centers
    map to pixel centers, so p there is (p + 0.5) * factor - 0.5."""
    return (v + 0.5) * factor - 0.5


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in image pixels."""

    x: float
    y: float
    width: float
    height: float

    def as_dict(self) -> dict:
        return {"x": int(self.x), "y": int(self.y), "width": int(self.width), "height": int(self.height)}

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def scaled(self, factor: float) -> "Box":
        """This box in an image `factor` times larger (`scaled_pixel`)."""
        if factor == 1:
            return self
        return Box(
            scaled_pixel(self.x, factor), scaled_pixel(self.y, factor), self.width * factor, self.height * factor
        )


@dataclass(frozen=True)
class Detection:
    """One face a detector found. `eyes` is ((x, y) of the subject's right eye, (x, y) of the
    left eye) in image pixels where the detector gives them (YuNet), else None (Haar)."""

    box: Box
    score: float | None  # the detector's confidence in [0, 1]; Haar has none
    detector: str
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None

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


# --- the crop --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropStyle:
    """How a crop is placed around a detection: its side is `margin` x the box's longer side, its
    center the box's center moved down by `drop` x that side (in the face's upright frame), and it
    is rotated by the eyes' roll when `align` is set."""

    margin: float
    drop: float = 0.0
    align: bool = True


# Set so that the 15 keypoints fill the crop as they filled the Haar crops that the course-style
# model was first trained on: centred, outer eye corners 0.82 half-sides apart (training.prepare_faces
# prints this layout for the crops it makes; on the YouTube + Helen/AFW faces: (+0.00, -0.00), 0.82).
YUNET_CROP = CropStyle(margin=1.125, drop=-0.019, align=True)
# The Haar box spans brows to chin; 1.2 leaves room around the 15 keypoints. Haar gives no eyes.
HAAR_CROP = CropStyle(margin=1.2, drop=0.0, align=False)
CROP_STYLES = {"yunet": YUNET_CROP, "haar": HAAR_CROP}


def crop_style(detector: str) -> CropStyle:
    """How a detector's boxes are cut. A given box (`GivenBoxes`) is cut as YuNet's: a client
    sends the box /faces answered for the face."""
    return YUNET_CROP if detector == GIVEN_DETECTOR else CROP_STYLES[detector]


@dataclass(frozen=True)
class FaceCrop:
    """A square of `side` image pixels centred at (cx, cy), turned by `angle` degrees (the face's
    roll), that becomes the CROP_SIZE x CROP_SIZE crop. Pixel centers are integer coordinates."""

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    @classmethod
    def around(cls, detection: Detection, style: CropStyle | None = None) -> "FaceCrop":
        style = style or crop_style(detection.detector)
        angle = detection.roll if style.align else 0.0
        side = max(detection.box.width, detection.box.height) * style.margin
        cx, cy = detection.box.center
        theta = math.radians(angle)  # "down" in the face's frame
        return cls(cx - math.sin(theta) * style.drop * side, cy + math.cos(theta) * style.drop * side, side, angle)

    @classmethod
    def whole(cls, width: int, height: int) -> "FaceCrop":
        """The whole image as the crop (a non-square one padded to the square around its center)."""
        return cls((width - 1) / 2, (height - 1) / 2, float(max(width, height)))

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return CROP_SIZE / self.side

    def matrix(self) -> np.ndarray:
        """The 2x3 affine map from image pixels to crop pixels."""
        theta = math.radians(self.angle)
        cos, sin = math.cos(theta) * self.scale, math.sin(theta) * self.scale
        half = CROP_SIZE / 2 - 0.5
        # crop = scale * R(-angle) (p - center) + half
        return np.array(
            [[cos, sin, half - cos * self.cx - sin * self.cy], [-sin, cos, half + sin * self.cx - cos * self.cy]]
        )

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Image pixel coordinates (..., 2) -> crop pixel coordinates."""
        m = self.matrix()
        return np.asarray(points, dtype=np.float64) @ m[:, :2].T + m[:, 2]

    def to_image(self, crop_points: np.ndarray) -> np.ndarray:
        """Crop pixel coordinates (..., 2) -> image pixel coordinates; the inverse of `to_crop`."""
        inverse = cv2.invertAffineTransform(self.matrix())
        return np.asarray(crop_points, dtype=np.float64) @ inverse[:, :2].T + inverse[:, 2]

    def bounds(self, border: int = 0) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): a square of image pixels that holds all `cut` reads (a turned square
        reaches up to 0.71 x its side from the center; bilinear reads one pixel more)."""
        reach = math.ceil(self.side * (CROP_SIZE + 2 * border) / CROP_SIZE * 0.75) + 2
        x0, y0 = math.floor(self.cx) - reach, math.floor(self.cy) - reach
        return x0, y0, x0 + 2 * reach, y0 + 2 * reach

    def cut(self, gray: np.ndarray, border: int = 0) -> np.ndarray:
        """The CROP_SIZE x CROP_SIZE uint8 crop, edges replicated where it leaves the image; with
        `border`, that many more pixels of context on each side at the same scale. A face much
        larger than the crop is first shrunk with area averaging, so that no detail aliases."""
        if gray.ndim != 2 or gray.size == 0:
            raise InputError(f"expected a non-empty gray image, got shape {gray.shape}")
        shrink = self.side / CROP_SIZE
        if shrink <= 2:
            return warp(gray, self.matrix(), border)
        # Cut the region around the square, edges replicated, area-average it down to about the
        # crop's scale, and warp that.
        x0, y0, x1, y1 = self.bounds(border)
        height, width = gray.shape
        ix0, iy0 = min(max(x0, 0), width - 1), min(max(y0, 0), height - 1)
        ix1, iy1 = max(min(x1, width), ix0 + 1), max(min(y1, height), iy0 + 1)
        region = cv2.copyMakeBorder(
            gray[iy0:iy1, ix0:ix1],
            max(iy0 - y0, 0),
            max(y1 - iy1, 0),
            max(ix0 - x0, 0),
            max(x1 - ix1, 0),
            cv2.BORDER_REPLICATE,
        )
        factor = int(shrink)
        small_size = (region.shape[1] // factor, region.shape[0] // factor)
        small = cv2.resize(
            region[: small_size[1] * factor, : small_size[0] * factor], small_size, interpolation=cv2.INTER_AREA
        )
        inner = replace(
            self,
            cx=(self.cx - x0 + 0.5) / factor - 0.5,
            cy=(self.cy - y0 + 0.5) / factor - 0.5,
            side=self.side / factor,
        )
        return warp(small, inner.matrix(), border)


def warp(gray: np.ndarray, matrix: np.ndarray, border: int = 0) -> np.ndarray:
    """Apply an image -> crop map, with `border` more pixels on each side of the crop."""
    size = CROP_SIZE + 2 * border
    shifted = matrix + np.array([[0, 0, border], [0, 0, border]])
    return cv2.warpAffine(gray, shifted, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def normalize(crop_points: np.ndarray) -> np.ndarray:
    """Crop pixels -> the course's [-1, 1]: (x - 48) / 48."""
    half = CROP_SIZE / 2
    return (np.asarray(crop_points, dtype=np.float64) - half) / half


def denormalize(normalized: np.ndarray) -> np.ndarray:
    half = CROP_SIZE / 2
    return np.asarray(normalized, dtype=np.float64) * half + half


def model_input(crops: np.ndarray) -> np.ndarray:
    """(N, 96, 96) uint8 crops -> (N, 1, 96, 96) float32 in [0, 1], the keypoint model's input."""
    return model_pixels(crops)


def crop_points(model_output: np.ndarray) -> np.ndarray:
    """The keypoint model's (N, 30) output in [-1, 1] -> (N, 15, 2) crop pixels."""
    return denormalize(np.asarray(model_output).reshape(-1, NUM_KEYPOINTS, 2))


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any decoded OpenCV image (gray, BGR or BGRA) -> uint8 gray."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise InputError(f"unsupported image shape {image.shape}")


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Any decoded OpenCV image -> 3-channel BGR (what YuNet takes)."""
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(to_gray(image), cv2.COLOR_GRAY2BGR)


# --- detectors -------------------------------------------------------------------------------
# An OpenCV detector shared by concurrent threads has crashed a server with a segmentation fault,
# so the Haar detector keeps one OpenCV instance per thread, made on first use in that thread.


class HaarDetector:
    """OpenCV's bundled frontal-face Haar cascade: the course's detector. No score, no eyes."""

    name = "haar"

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
        detections = [Detection(Box(*map(float, b)), None, self.name) for b in found]
        return sorted(detections, key=lambda d: d.box.width * d.box.height, reverse=True)


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
    `cv2.FaceDetectorYN`'s (tests/test_vision_faces.py). `model` is the open-size copy that
    `python -m export.yunet` makes; `network`, where given, is that file already loaded (the
    service's, on its provider), else it is loaded on the CPU. One session serves every thread.

    Photos are detected at a working size whose longer side is at most `max_side` pixels and the
    boxes mapped back, so a 12-megapixel photo costs about what a VGA frame does.
    """

    name = "yunet"

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
            detections.append(Detection(box, float(row[14]), self.name, eyes))
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


# --- given boxes: a client's boxes instead of a detection -----------------------------------------
# A tracker that knows where the faces are sends their boxes (`/faces` with `boxes`): detection is
# skipped and each box is cut and predicted exactly as a detection would be (`find_faces` with
# `GivenBoxes` as the detector). A given box is cut in YuNet's crop style, so it should be a
# YuNet-like box: the one /faces answered for that face (optionally moved by the tracker), with the
# eyes to turn the crop by (else the crop is level).

MAX_GIVEN_BOXES = 64  # boxes one request may give: more faces than a frame holds, a bound on the work
MAX_GIVEN_BOX_SIDE = 1.5  # x the image's longer side: a box larger than that is no face, and costs memory to cut
GIVEN_FIELDS = ("x", "y", "width", "height", "eyes", "score")


def _finite(value, where: str, name: str) -> float:
    number = float("nan")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # a JSON integer of hundreds of digits
            number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{where}: {name} must be a finite number, got {_as_sent(value)}")
    return number


def _as_sent(value) -> str:
    """A value as JSON (as it was sent), cut short: what an error message quotes of a bad field."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:39] + "…"


def _given_detection(record, where: str) -> Detection:
    if not isinstance(record, dict):
        raise InputError(f'{where}: expected an object {{"x", "y", "width", "height"}}, got {_as_sent(record)}')
    unknown = [name for name in record if name not in GIVEN_FIELDS]
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r} (a box has {', '.join(GIVEN_FIELDS)})")
    missing = [name for name in GIVEN_FIELDS[:4] if name not in record]
    if missing:
        raise InputError(f"{where}: missing {missing[0]!r}")
    x, y, width, height = (_finite(record[name], where, name) for name in GIVEN_FIELDS[:4])
    for name, side in (("width", width), ("height", height)):
        if side <= 0:
            raise InputError(f"{where}: {name} must be > 0, got {side:g}")
    eyes = record.get("eyes")
    if eyes is not None:
        pairs = isinstance(eyes, list) and len(eyes) == 2 and all(isinstance(e, list) and len(e) == 2 for e in eyes)
        if not pairs:
            raise InputError(f"{where}: eyes must be [[right x, right y], [left x, left y]], got {_as_sent(eyes)}")
        eyes = tuple((_finite(ex, where, "eyes"), _finite(ey, where, "eyes")) for ex, ey in eyes)
    score = record.get("score")
    if score is not None:
        score = _finite(score, where, "score")
        if not 0 <= score <= 1:
            raise InputError(f"{where}: score must be in [0, 1], got {score:g}")
    return Detection(Box(x, y, width, height), score, GIVEN_DETECTOR, eyes)


def given_detections(records: list) -> list[Detection]:
    """A client's boxes (the JSON of `/faces`'s `boxes` field: a list of {"x", "y", "width",
    "height"} in image pixels, each optionally with "eyes": [[right x, right y], [left x, left y]]
    (the subject's right eye first, as `Detection.eyes`) and a "score" in [0, 1]) -> detections
    named "given"; InputError naming the first bad box and what is wrong with it."""
    if not isinstance(records, list):
        raise InputError(f"boxes: expected a JSON list of boxes, got {_as_sent(records)}")
    if len(records) > MAX_GIVEN_BOXES:
        raise InputError(f"boxes: {len(records)} boxes, over the limit of {MAX_GIVEN_BOXES}")
    return [_given_detection(record, f"boxes[{i}]") for i, record in enumerate(records)]


def check_given_boxes(detections: Sequence[Detection], width: int, height: int) -> None:
    """Given boxes against the image they are for (width x height pixels): each must reach into it
    and be no larger than MAX_GIVEN_BOX_SIDE x its longer side; InputError naming the first that is not."""
    longest = MAX_GIVEN_BOX_SIDE * max(width, height)
    for i, detection in enumerate(detections):
        box = detection.box
        if box.x >= width or box.y >= height or box.x + box.width <= 0 or box.y + box.height <= 0:
            raise InputError(
                f"boxes[{i}]: the box at ({box.x:g}, {box.y:g}), {box.width:g}x{box.height:g}, "
                f"lies wholly outside the {width}x{height} image"
            )
        if max(box.width, box.height) > longest:
            raise InputError(
                f"boxes[{i}]: a box {box.width:g}x{box.height:g} is larger than {MAX_GIVEN_BOX_SIDE:g} x the "
                f"{width}x{height} image's longer side"
            )


def region_read(detections: Sequence[Detection], width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of a width x height image that cutting these detections' crops
    reads, clipped to it. That part alone, with the detections moved by (-x0, -y0), gives the same
    crops: a client that follows faces can send it instead of the whole frame."""
    bounds = np.array([FaceCrop.around(d).bounds() for d in detections]).reshape(-1, 4)
    x0, y0 = max(int(bounds[:, 0].min()), 0), max(int(bounds[:, 1].min()), 0)
    x1, y1 = min(int(bounds[:, 2].max()), width), min(int(bounds[:, 3].max()), height)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


class GivenBoxes:
    """A "detector" that finds the boxes it was given: `find_faces(image, GivenBoxes(detections),
    model)` cuts, predicts and maps back each given box as the one pipeline does a detection."""

    name = GIVEN_DETECTOR

    def __init__(self, detections: Sequence[Detection]):
        self.detections = list(detections)

    def detect(self, image: np.ndarray) -> list[Detection]:
        return list(self.detections)


# --- the pipeline ----------------------------------------------------------------------------

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
        from vision.keypoints import as_records

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


def find_faces(image: np.ndarray, detector, model: KeypointModel) -> list[Face]:
    """Detect -> crop -> predict -> map back: a decoded image to every face with its keypoints and
    the head's pose from them."""
    detections = detector.detect(image)
    crops = [FaceCrop.around(d) for d in detections]
    points, confidence = predict_keypoints(model, to_gray(image), crops)
    confidence = [None] * len(crops) if confidence is None else confidence
    height, width = image.shape[:2]
    poses = [head_pose(p, width, height, c) for p, c in zip(points, confidence, strict=True)]
    return [Face(*face) for face in zip(detections, crops, points, confidence, poses, strict=True)]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = ix * iy
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0
