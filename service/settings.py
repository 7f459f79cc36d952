"""The service's settings: read from the environment once, into one frozen object.

Each field is one environment variable; docs/service.md ("Runtime settings") is their table.
A bad value is a `SettingsError` whose message is one line naming the variable.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from vision.manifest import DEFAULT_PATH
from vision.signatures import DETECTORS

PROVIDERS = ("auto", "cpu", "cuda")
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


class SettingsError(ValueError):
    """An environment variable with a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    manifest: Path = DEFAULT_PATH  # VISION_MANIFEST: which manifest (and ONNX files beside it) to serve
    provider: str = "auto"  # VISION_PROVIDER: auto (CUDA if it really loads, else CPU) | cpu | cuda (or refuse)
    int8: bool = False  # VISION_INT8: serve the int8 variant of each model that has one
    max_upload_bytes: int = 10 * 1024 * 1024  # VISION_MAX_UPLOAD_BYTES: the largest upload
    max_pixels: int = 40_000_000  # VISION_MAX_PIXELS: the largest declared width x height
    detector: str = "yunet"  # VISION_DETECTOR: yunet | haar, for /faces when a request names none
    face_score: float = 0.7  # VISION_FACE_SCORE: YuNet's confidence threshold, in (0, 1)
    face_nms: float = 0.3  # VISION_FACE_NMS: YuNet's non-maximum-suppression IoU threshold, in (0, 1)
    detect_max_side: int = 640  # VISION_DETECT_MAX_SIDE: photos are detected at most this large
    workers: int = 2  # VISION_WORKERS: server processes, each with its own models (one per core)
    ort_threads: int = 1  # VISION_ORT_THREADS: onnxruntime threads per model call (requests run side by side)
    access_log: bool = False  # VISION_ACCESS_LOG: one log line per request (BentoML's access log)
    tracing: bool = False  # VISION_TRACING: BentoML's OpenTelemetry middleware on the API routes

    @classmethod
    def from_environment(cls, environ=os.environ) -> "Settings":
        defaults = cls()
        return cls(
            manifest=Path(environ.get("VISION_MANIFEST", "").strip() or defaults.manifest),
            provider=_choice(environ, "VISION_PROVIDER", PROVIDERS, defaults.provider),
            int8=_flag(environ, "VISION_INT8"),
            max_upload_bytes=_positive(environ, "VISION_MAX_UPLOAD_BYTES", defaults.max_upload_bytes),
            max_pixels=_positive(environ, "VISION_MAX_PIXELS", defaults.max_pixels),
            detector=_choice(environ, "VISION_DETECTOR", DETECTORS, defaults.detector),
            face_score=_share(environ, "VISION_FACE_SCORE", defaults.face_score),
            face_nms=_share(environ, "VISION_FACE_NMS", defaults.face_nms),
            detect_max_side=_positive(environ, "VISION_DETECT_MAX_SIDE", defaults.detect_max_side),
            workers=_positive(environ, "VISION_WORKERS", defaults.workers),
            ort_threads=_positive(environ, "VISION_ORT_THREADS", defaults.ort_threads),
            access_log=_flag(environ, "VISION_ACCESS_LOG"),
            tracing=_flag(environ, "VISION_TRACING"),
        )


def _choice(environ, name: str, choices: tuple[str, ...], default: str) -> str:
    value = environ.get(name, "").strip().lower() or default
    if value not in choices:
        raise SettingsError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def _share(environ, name: str, default: float) -> float:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a number") from None
    if not 0 < number < 1:
        raise SettingsError(f"{name}={value!r} must lie between 0 and 1")
    return number


def _flag(environ, name: str) -> bool:
    value = environ.get(name, "").strip().lower()
    if value not in TRUE + FALSE:
        raise SettingsError(f"{name}={value!r}: expected 1 or 0")
    return value in TRUE


def _positive(environ, name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not an integer") from None
    if number <= 0:
        raise SettingsError(f"{name}={value!r} must be positive")
    return number
