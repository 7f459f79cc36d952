"""The Vision service: MNIST digits, facial keypoints and faces over HTTP, on onnxruntime.

    bentoml serve service.service:Vision        # or: make serve

Image endpoints take a multipart field `image` and answer JSON; the array endpoints take
float32 arrays in [0, 1] and are batched by BentoML across concurrent requests. Bad input gets a
4xx with {"error": ...}: an endpoint raises InputError, which service/bentoml_compat.py answers
with the error's status. The API, the environment variables and deployment: docs/service.md.
Heavy imports (onnxruntime, OpenCV) happen in the worker, not at module import.
"""

import contextlib
import json
import logging
import time
from typing import Annotated, Any, Literal

import bentoml
import numpy as np
from bentoml.validators import DType, Shape
from pydantic import BeforeValidator, Field, WithJsonSchema

from service import auth, bentoml_compat, limits, runtime, shedding
from service.answers import DigitAnswer, FacesAnswer, KeypointsAnswer, NumberAnswer
from service.arrays import batch_of, uploaded_batch
from service.bentoml_compat import Upload
from service.headers import SecurityHeaders
from service.openapi import ExtraRoutes, pages
from vision import signatures
from vision.errors import InputError
from vision.signatures import Signature, softmax

logger = logging.getLogger("bentoml.vision")


def batch_type(signature: Signature):
    """(N, *item) float32 in [0, 1], checked strictly (service.arrays) before BentoML's validators."""
    item = signature.input
    return Annotated[np.ndarray, Shape((-1, *item)), DType("float32"), BeforeValidator(batch_of(*item))]


DigitBatch = batch_type(signatures.DIGITS)
CropBatch = batch_type(signatures.KEYPOINTS)
DigitModel = Literal["cnn", "mlp"]
Detector = Literal[signatures.DETECTORS]
# The form parser hands a field over already read as JSON where it is JSON (bentoml_compat), so
# `boxes` is taken as it comes and checked by `given_boxes` (a 400 naming the bad box), not pydantic.
GivenBoxesField = Annotated[
    Any,
    WithJsonSchema({"type": "string"}),
    Field(
        description='instead of detecting: a JSON list of boxes, [{"x", "y", "width", "height"}, ...], each '
        'optionally with "eyes": [[right x, right y], [left x, left y]] and a "score"; photo pixels'
    ),
]

preprocess_seconds = bentoml.metrics.Histogram(
    name="vision_preprocess_seconds",
    documentation="Time spent checking and decoding an uploaded image",
    labelnames=["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
faces_per_image = bentoml.metrics.Histogram(
    name="vision_faces_per_image",
    documentation="Faces found in each image posted to /faces",
    buckets=(0, 1, 2, 3, 4, 6, 10, 20),
)
faces_found = bentoml.metrics.Counter(name="vision_faces", documentation="Faces found by /faces, in total")
refused = bentoml.metrics.Counter(
    name="vision_refused_inputs", documentation="Inputs refused with a 4xx", labelnames=["endpoint", "status"]
)
shed = bentoml.metrics.Counter(
    name="vision_shed_requests",
    documentation="Requests answered 503 because the worker had VISION_MAX_IN_FLIGHT in flight",
    labelnames=["endpoint"],
)


def png_base64(image: np.ndarray) -> str:
    import base64

    import cv2

    return base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode("ascii")


@contextlib.contextmanager
def timed_preprocess(endpoint: str):
    """The time an upload took to check and decode goes to the metrics; a refused one's does not."""
    started = time.perf_counter()
    yield
    preprocess_seconds.labels(endpoint=endpoint).observe(time.perf_counter() - started)


def refused_input(path: str, status: int, reason: str) -> None:
    """Every refusal, whoever makes it: one counter, one log line, no traceback."""
    refused.labels(endpoint=path.strip("/"), status=str(status)).inc()
    logger.warning("refused %s: %d %s", path, status, reason)


def given_boxes(boxes, detector: str | None):
    """The `boxes` field of /faces (JSON text, or what the form parser read from it) -> detections,
    or InputError in one line."""
    from vision.given_boxes import given_detections

    if detector is not None:
        raise InputError("boxes: given boxes take the detector's place: send boxes or detector, not both")
    if isinstance(boxes, (str, bytes)):
        try:
            boxes = json.loads(boxes)
        except ValueError as e:
            raise InputError(f"boxes: not JSON ({e})") from None
    return given_detections(boxes)


bentoml_compat.install(on_refusal=refused_input)
try:
    settings = runtime.check_before_start()  # bad settings or models stop `bentoml serve` before any worker starts
except SystemExit:  # in a worker (one replacing a dead one after a model file changed): stop, no restart loop
    bentoml_compat.stop_server()
    raise


# Two processes on two cores: the Python half of each request (HTTP, multipart, JSON) holds one
# process's GIL, so a second worker nearly doubles /digit throughput (docs/service.md, "Performance").
# BentoML wraps every request in OpenTelemetry spans, which it drops unless a sample rate is set:
# 0.8 ms of CPU per /digit request for nothing, so every route is excluded unless VISION_TRACING=1.
@bentoml.service(
    name="vision",
    workers=settings.workers,
    threads=4,
    traffic={"timeout": 60},
    logging={"access": {"enabled": settings.access_log}},
    tracing={} if settings.tracing else {"excluded_urls": ".*"},
)
@bentoml.asgi_app(pages(), path="/")  # the demo page at /, the Swagger UI at /docs
class Vision:
    def __init__(self) -> None:
        from service import images  # noqa: F401  (Pillow and OpenCV: fail at start, not at the first request)

        self.ready, self.settings = False, settings
        try:
            self.models = runtime.load_models(self.settings)
            self.detectors = runtime.load_detectors(self.settings)
        except (runtime.StartupError, runtime.ManifestError) as e:
            logger.error("vision: cannot start: %s", e)
            bentoml_compat.stop_server()  # a worker that cannot load its models must not leave a server hanging
            raise SystemExit(1) from None
        providers = sorted({m.provider for m in self.models.values()})
        logger.info(
            "vision: models from %s on %s; faces found by %s",
            self.settings.manifest,
            ", ".join(providers),
            self.settings.detector,
        )
        if self.settings.int8:
            int8 = [name for name, m in self.models.items() if m.entry.name != name]
            logger.info("vision: VISION_INT8=1: int8 for %s; float32 for the rest", ", ".join(int8) or "no model")
        self.ready = True

    def __is_ready__(self) -> bool:
        return self.ready

    def _decode(self, image: Upload, endpoint: str) -> np.ndarray:
        """The upload -> a BGR image at full size, or InputError."""
        from service.images import decode

        with timed_preprocess(endpoint):
            return decode(image, self.settings.max_upload_bytes, self.settings.max_pixels)

    def _decode_reduced(
        self, image: Upload, endpoint: str, keep_side: int, gray: bool = False
    ) -> tuple[np.ndarray, int, tuple[int, int]]:
        """The upload -> (the image, maybe reduced to about `keep_side`, the side the endpoint works
        at; its reduction factor; the full (width, height)), or InputError. `gray`: a gray image."""
        from service.images import decode_reduced

        with timed_preprocess(endpoint):
            limits = (self.settings.max_upload_bytes, self.settings.max_pixels)
            return decode_reduced(image, keep_side, *limits, gray=gray)

    @bentoml.api
    def digit(self, image: Upload, model: DigitModel = "cnn", debug: bool = False) -> DigitAnswer:
        """One handwritten digit: a photo or scan of ink on paper, or white on black, any size ->
        the digit. An image with no ink is a 422. `debug=true` adds the 28x28 image the model saw."""
        from vision.digits import WORK_SIDE, to_mnist, to_model_input

        picture, _, _ = self._decode_reduced(image, "digit", WORK_SIDE)
        mnist = to_mnist(picture)
        probabilities = softmax(self.models[f"digits_{model}"](to_model_input(mnist[None])))[0]
        return DigitAnswer(
            digit=int(probabilities.argmax()),
            confidence=round(float(probabilities.max()), 6),
            probabilities=[round(float(p), 6) for p in probabilities],
            model=model,
            input_png=png_base64(mnist) if debug else None,
        )

    @bentoml.api
    def number(self, image: Upload, model: DigitModel = "cnn", debug: bool = False) -> NumberAnswer:
        """A photo of a handwritten number (a row of digits) -> the digits, left to right, each
        with its confidence and box; all of them in one model call. Touching digits are cut apart
        where the model reads the pieces best; lines, the page's edge and marks that are not digits
        are left out and listed. `debug=true` adds each digit's 28x28 model input."""
        from vision.number_page import NUMBER_WORK_SIDE
        from vision.numbers import NOT_A_DIGIT, read_number

        picture, factor, _ = self._decode_reduced(image, "number", NUMBER_WORK_SIDE)
        read = read_number(picture, self.models[f"digits_{model}"], not_a_digit=NOT_A_DIGIT[model])
        digits = [
            {
                "digit": int(p.argmax()),
                "confidence": round(float(p.max()), 6),
                "box": d.box.scaled(factor).as_dict(),
                "input_png": png_base64(d.image) if debug else None,
            }
            for d, p in zip(read.digits, read.probabilities, strict=True)
        ]
        left_out = [{"kind": o.kind, "box": o.box.scaled(factor).as_dict()} for o in read.left_out]
        return NumberAnswer(number=read.number, digits=digits, left_out=left_out, model=model)

    @bentoml.api
    def keypoints(self, image: Upload) -> KeypointsAnswer:
        """A face crop of any size -> 15 keypoints in its pixel coordinates (a non-square crop is
        padded to the square around its center, exactly as the face crops are), and the head's pose."""
        from service.images import check_square
        from vision.colors import to_gray
        from vision.crop import FaceCrop
        from vision.faces import predict_keypoints
        from vision.keypoints import as_records
        from vision.pose import head_pose

        gray = to_gray(self._decode(image, "keypoints"))
        check_square(gray.shape[1], gray.shape[0], self.settings.max_pixels)
        whole = FaceCrop.whole(gray.shape[1], gray.shape[0])
        points, confidence = predict_keypoints(self.models["keypoints"].outputs, gray, [whole])
        pose = head_pose(points[0], gray.shape[1], gray.shape[0], confidence[0])
        return KeypointsAnswer(
            keypoints=as_records(points[0], confidence[0]), pose=None if pose is None else pose.as_dict()
        )

    @bentoml.api
    def faces(self, image: Upload, detector: Detector | None = None, boxes: GivenBoxesField = None) -> FacesAnswer:
        """A photo -> every face found (YuNet by default; `detector=haar` for the course's Haar
        cascade), with its box, the detector's score, 15 keypoints in photo pixels and the head's
        pose (yaw, pitch, roll in degrees; null where the points do not support one). With `boxes`
        (a tracker's, e.g. the boxes /faces answered for the previous frame) nothing is detected:
        each box is cut and predicted as a YuNet box would be, and answered with detector "given"."""
        from service.images import FACE_DETAIL_SIDE
        from vision.faces import find_faces
        from vision.given_boxes import GivenBoxes, check_given_boxes

        given = None if boxes is None else given_boxes(boxes, detector)
        # Given boxes are only cut, never detected in: the gray image is all they need.
        picture, factor, (width, height) = self._decode_reduced(
            image, "faces", FACE_DETAIL_SIDE, gray=given is not None
        )
        if given is not None:
            check_given_boxes(given, width, height)
        if given is None:
            detector = self.detectors[detector or self.settings.detector]
        else:  # into the decoded (maybe reduced) image's pixels; the answer is scaled back
            detector = GivenBoxes([d.scaled(1 / factor) for d in given])
        found = find_faces(picture, detector, self.models["keypoints"].outputs)
        if given is None:  # faces found, not faces given
            faces_per_image.observe(len(found))
            faces_found.inc(len(found))
        return FacesAnswer(width=width, height=height, faces=[face.scaled(factor).as_dict() for face in found])

    # A batchable API takes exactly one argument, so the model is chosen by route, not by a field.
    @bentoml.api(batchable=True, max_batch_size=256, max_latency_ms=1000)
    def digits_array(self, images: DigitBatch) -> np.ndarray:
        """(N, 1, 28, 28) float32 in [0, 1] -> (N, 10) probabilities from the CNN, the default (batched)."""
        return softmax(self.models["digits_cnn"](images)).astype(np.float32)

    @bentoml.api(batchable=True, max_batch_size=256, max_latency_ms=1000, route="/digits_array/mlp")
    def digits_array_mlp(self, images: DigitBatch) -> np.ndarray:
        """(N, 1, 28, 28) float32 in [0, 1] -> (N, 10) probabilities from the MLP (batched)."""
        return softmax(self.models["digits_mlp"](images)).astype(np.float32)

    @bentoml.api(batchable=True, max_batch_size=128, max_latency_ms=1000)
    def keypoints_array(self, images: CropBatch) -> np.ndarray:
        """(N, 1, 96, 96) float32 crops in [0, 1] -> (N, 30) keypoints in [-1, 1] (x0, y0, x1, ...; batched).
        Each point's confidence is in /keypoints and /faces, and in the ONNX file's second output."""
        return self.models["keypoints"](images).astype(np.float32)

    # The same models for clients that send many images at once: one uploaded file, one model call.
    @bentoml.api(route="/digits_batch")
    def digits_batch(self, images: Upload, model: DigitModel = "cnn", shape: str | None = None) -> np.ndarray:
        """Many digits in one upload: a .npy file of (N, 1, 28, 28) float32 in [0, 1], or the raw
        little-endian float32 bytes with `shape`="N,1,28,28" -> (N, 10) probabilities."""
        batch = uploaded_batch(images, shape, signatures.DIGITS.input)
        return softmax(self.models[f"digits_{model}"](batch)).astype(np.float32)

    @bentoml.api(route="/keypoints_batch")
    def keypoints_batch(self, images: Upload, shape: str | None = None) -> np.ndarray:
        """Many face crops in one upload: a .npy file of (N, 1, 96, 96) float32 in [0, 1], or the
        raw float32 bytes with `shape`="N,1,96,96" -> (N, 30) keypoints in [-1, 1]."""
        batch = uploaded_batch(images, shape, signatures.KEYPOINTS.input)
        return self.models["keypoints"](batch).astype(np.float32)

    @bentoml.api(route="/info")
    def info(self) -> dict:
        """The models in use: file, sha256, manifest metrics, and the execution providers really used
        (also `GET /info`)."""
        return {
            "manifest": str(self.settings.manifest),
            "providers": sorted({m.provider for m in self.models.values()}),
            "models": {name: model.describe() for name, model in self.models.items()},
            "limits": {"max_upload_bytes": self.settings.max_upload_bytes, "max_pixels": self.settings.max_pixels},
        }


api_routes = {api.route for api in Vision.apis.values()}
# Middlewares run in the order added, the first outermost. The security headers and CORS first
# (service.headers): every answer carries them, refusals included, and a CORS preflight (no key)
# is answered before the key check.
Vision.add_asgi_middleware(SecurityHeaders, cors_origins=settings.cors_origins)
# A request without its API key is refused from its head, before BodyLimit reads a byte of its body.
if settings.api_keys:
    Vision.add_asgi_middleware(
        auth.ApiKeys,
        keys=settings.api_keys,
        on_refusal=refused_input,
        known_paths=api_routes | {"/docs.json", "/metrics"},
    )
Vision.add_asgi_middleware(limits.BodyLimit, max_bytes=settings.max_upload_bytes, on_refusal=refused_input)
# Overload is refused, not queued: past VISION_MAX_IN_FLIGHT requests whose bodies have come, a 503
# with Retry-After at once (service.shedding). Inside BodyLimit: a body still arriving holds no place.
Vision.add_asgi_middleware(
    shedding.InFlightLimit,
    limit=settings.max_in_flight,
    retry_after=settings.retry_after,
    on_shed=lambda path: shed.labels(endpoint=path.strip("/") if path in api_routes else "other").inc(),
)
Vision.add_asgi_middleware(ExtraRoutes)
