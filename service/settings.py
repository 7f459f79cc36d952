"""The service's settings: read from the environment once, into one frozen object.

Each field is one environment variable; docs/service.md ("Runtime settings") is their table.
A bad value is a `SettingsError` whose message is one line naming the variable.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from vision.manifest import DEFAULT_PATH

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

    @classmethod
    def from_environment(cls, environ=os.environ) -> "Settings":
        defaults = cls()
        provider = environ.get("VISION_PROVIDER", "").strip().lower() or defaults.provider
        if provider not in PROVIDERS:
            raise SettingsError(f"VISION_PROVIDER={provider!r}: expected one of {', '.join(PROVIDERS)}")
        return cls(
            manifest=Path(environ.get("VISION_MANIFEST", "").strip() or defaults.manifest),
            provider=provider,
            int8=_flag(environ, "VISION_INT8"),
            max_upload_bytes=_positive(environ, "VISION_MAX_UPLOAD_BYTES", defaults.max_upload_bytes),
            max_pixels=_positive(environ, "VISION_MAX_PIXELS", defaults.max_pixels),
        )


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
