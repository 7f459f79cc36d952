"""The service's settings: read from the environment once, every bad value refused in one line."""

from pathlib import Path

import pytest

from service.settings import Settings, SettingsError
from vision.manifest import DEFAULT_PATH


def test_defaults_when_nothing_is_set():
    assert Settings.from_environment({}) == Settings()
    assert Settings().manifest == DEFAULT_PATH and Settings().provider == "auto" and not Settings().int8


def test_every_variable_is_read():
    settings = Settings.from_environment(
        {
            "VISION_MANIFEST": "/srv/models/manifest.json",
            "VISION_PROVIDER": " CPU ",
            "VISION_INT8": "yes",
            "VISION_MAX_UPLOAD_BYTES": "1024",
            "VISION_MAX_PIXELS": "640000",
            "VISION_WORKERS": "4",
            "VISION_ORT_THREADS": "2",
            "VISION_ACCESS_LOG": "1",
            "VISION_TRACING": "on",
        }
    )
    assert settings == Settings(
        Path("/srv/models/manifest.json"),
        "cpu",
        True,
        1024,
        640_000,
        workers=4,
        ort_threads=2,
        access_log=True,
        tracing=True,
    )


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"VISION_PROVIDER": "tpu"}, "VISION_PROVIDER='tpu': expected one of auto, cpu, cuda"),
        ({"VISION_INT8": "maybe"}, "VISION_INT8='maybe': expected 1 or 0"),
        ({"VISION_MAX_UPLOAD_BYTES": "10MB"}, "VISION_MAX_UPLOAD_BYTES='10MB' is not an integer"),
        ({"VISION_MAX_PIXELS": "0"}, "VISION_MAX_PIXELS='0' must be positive"),
        ({"VISION_WORKERS": "two"}, "VISION_WORKERS='two' is not an integer"),
        ({"VISION_ORT_THREADS": "-1"}, "VISION_ORT_THREADS='-1' must be positive"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(environ, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_environment(environ)
    assert str(caught.value) == message


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().int8 = True
