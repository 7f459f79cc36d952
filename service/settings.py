"""The service's settings: read from the environment once, into one frozen object.

Each field is one environment variable; docs/service.md ("Runtime settings") is their table.
A bad value is a `SettingsError` whose message is one line naming the variable.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vision.manifest import DEFAULT_PATH
from vision.signatures import DETECTORS

PROVIDERS = ("auto", "cpu", "cuda")
TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")
# An API key travels as `Authorization: Bearer KEY`: RFC 6750's token characters, and long enough
# not to be guessed (`python -c 'import secrets; print(secrets.token_urlsafe(32))'` makes one).
API_KEY = re.compile(r"[A-Za-z0-9._~+/=-]+")
API_KEY_MIN_LENGTH = 16


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
    max_in_flight: int = 24  # VISION_MAX_IN_FLIGHT: requests a worker works on at once; more get a 503
    retry_after: int = 1  # VISION_RETRY_AFTER: seconds a 503 for load asks the client to wait (Retry-After)
    # VISION_API_KEYS (comma-separated) and VISION_API_KEYS_FILE (one per line): when any is set,
    # every request but the probes and the page's files needs `Authorization: Bearer KEY`.
    # Never printed: not in repr, not in any message.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    cors_origins: tuple[str, ...] = ()  # VISION_CORS_ORIGINS: origins (comma-separated) whose pages may call the API

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
            max_in_flight=_positive(environ, "VISION_MAX_IN_FLIGHT", defaults.max_in_flight),
            retry_after=_positive(environ, "VISION_RETRY_AFTER", defaults.retry_after),
            api_keys=_api_keys(environ),
            cors_origins=_origins(environ, "VISION_CORS_ORIGINS"),
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


def _api_keys(environ) -> tuple[str, ...]:
    """The keys of VISION_API_KEYS and of the file VISION_API_KEYS_FILE names, together, each once.
    A setting that is there but holds no key, a file that cannot be read, and a key that is short
    or has a character a header cannot carry are refused; no message quotes a key."""
    keys = []
    listed = environ.get("VISION_API_KEYS", "")
    if listed.strip():
        items = [item.strip() for item in listed.split(",") if item.strip()]
        keys += _checked_keys("VISION_API_KEYS", [(f"key {n} of {len(items)}", key) for n, key in enumerate(items, 1)])
    path = environ.get("VISION_API_KEYS_FILE", "").strip()
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else "not UTF-8 text"
            raise SettingsError(f"VISION_API_KEYS_FILE={path!r}: cannot read it ({why})") from None
        lines = [(f"the key on line {n}", line.strip()) for n, line in enumerate(text.splitlines(), 1)]
        keys += _checked_keys(
            f"VISION_API_KEYS_FILE={path!r}", [(where, key) for where, key in lines if key and not key.startswith("#")]
        )
    return tuple(dict.fromkeys(keys))


def _checked_keys(source: str, keys: list[tuple[str, str]]) -> list[str]:
    """(where, key) pairs -> the keys, or SettingsError naming the source and the place, never the key."""
    if not keys:
        raise SettingsError(f"{source} holds no key (one per line in a file, comma-separated in VISION_API_KEYS)")
    for where, key in keys:
        if not API_KEY.fullmatch(key):
            raise SettingsError(f"{source}: {where} has a character a header cannot carry (use A-Z a-z 0-9 -._~+/=)")
        if len(key) < API_KEY_MIN_LENGTH:
            raise SettingsError(
                f"{source}: {where} is {len(key)} characters, under {API_KEY_MIN_LENGTH}; make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
    return [key for _, key in keys]


def _origins(environ, name: str) -> tuple[str, ...]:
    """Exact origins (`https://app.example.com`, `http://127.0.0.1:8080`), comma-separated: what a
    browser sends in `Origin`, so a path, a trailing slash or a wildcard would never match, and is refused."""
    from urllib.parse import urlsplit

    origins = []
    for item in (part.strip().lower() for part in environ.get(name, "").split(",")):  # browsers send lower case
        if not item:
            continue
        try:
            parts = urlsplit(item)
            parts.port  # noqa: B018  (a port that is not a number raises)
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or f"{parts.scheme}://{parts.netloc}" != item
        ):
            raise SettingsError(
                f"{name}: {item!r} is not an origin: expected scheme://host[:port], e.g. https://app.example.com"
            )
        origins.append(item)
    return tuple(dict.fromkeys(origins))
