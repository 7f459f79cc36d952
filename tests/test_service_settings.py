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
            "VISION_MAX_IN_FLIGHT": "8",
            "VISION_RETRY_AFTER": "3",
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
        max_in_flight=8,
        retry_after=3,
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
        ({"VISION_MAX_IN_FLIGHT": "0"}, "VISION_MAX_IN_FLIGHT='0' must be positive"),
        ({"VISION_RETRY_AFTER": "1.5"}, "VISION_RETRY_AFTER='1.5' is not an integer"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(environ, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_environment(environ)
    assert str(caught.value) == message


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().int8 = True


# --- API keys: VISION_API_KEYS, VISION_API_KEYS_FILE -----------------------------------------------

KEY_A, KEY_B, KEY_C = "a" * 16, "key-B_0123456789.~+/=", "c" * 43


def test_no_api_keys_by_default_and_empty_means_unset():
    assert Settings().api_keys == ()
    assert Settings.from_environment({"VISION_API_KEYS": "", "VISION_API_KEYS_FILE": " "}).api_keys == ()


def test_api_keys_are_read_from_the_list_and_the_file_together_each_once(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# rotated 2026-11\n{KEY_C}\n\n  {KEY_A}  \n")  # as a Secret mounts it: a final newline
    settings = Settings.from_environment(
        {"VISION_API_KEYS": f" {KEY_A} ,{KEY_B},", "VISION_API_KEYS_FILE": str(keys_file)}
    )
    assert settings.api_keys == (KEY_A, KEY_B, KEY_C)
    assert Settings.from_environment({"VISION_API_KEYS_FILE": str(keys_file)}).api_keys == (KEY_C, KEY_A)


def test_api_keys_never_show_in_the_settings_repr():
    settings = Settings.from_environment({"VISION_API_KEYS": f"{KEY_A},{KEY_B}"})
    assert KEY_A not in repr(settings) and KEY_B not in repr(settings) and "api_keys" not in repr(settings)


@pytest.mark.parametrize(
    "keys, message",
    [
        (" , ", "VISION_API_KEYS holds no key"),
        (f"{KEY_A},short-key", "VISION_API_KEYS: key 2 of 2 is 9 characters, under 16"),
        ("with space inside key", "VISION_API_KEYS: key 1 of 1 has a character a header cannot carry"),
        ("ключ-ключ-ключ-ключ", "VISION_API_KEYS: key 1 of 1 has a character a header cannot carry"),
    ],
)
def test_a_bad_api_key_is_refused_in_one_line_that_never_quotes_it(keys, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_environment({"VISION_API_KEYS": keys})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert not any(len(key.strip()) > 4 and key.strip() in str(caught.value) for key in keys.split(","))


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "holds no key"),
        ("# no key yet\n\n", "holds no key"),
        (f"{KEY_A}\nreplace-me\n", "the key on line 2 is 10 characters, under 16"),
        (b"\xff\xfe not text", "cannot read it (not UTF-8 text)"),
        (None, "cannot read it (No such file or directory)"),
    ],
)
def test_a_bad_keys_file_is_refused_in_one_line_naming_the_file(tmp_path, content, message):
    keys_file = tmp_path / "keys"
    if isinstance(content, bytes):
        keys_file.write_bytes(content)
    elif content is not None:
        keys_file.write_text(content)
    with pytest.raises(SettingsError) as caught:
        Settings.from_environment({"VISION_API_KEYS_FILE": str(keys_file)})
    assert str(caught.value).startswith(f"VISION_API_KEYS_FILE={str(keys_file)!r}")
    assert message in str(caught.value) and "replace-me" not in str(caught.value)


def test_cors_origins_are_exact_origins_in_lower_case_each_once():
    assert Settings.from_environment({}).cors_origins == ()
    listed = " https://App.Example.com, http://127.0.0.1:8080,,https://app.example.com "
    assert Settings.from_environment({"VISION_CORS_ORIGINS": listed}).cors_origins == (
        "https://app.example.com",
        "http://127.0.0.1:8080",
    )


@pytest.mark.parametrize(
    "value", ["*", "https://app.example.com/", "app.example.com", "ftp://app.example.com", "https://u@app", "null"]
)
def test_a_cors_value_that_is_not_an_origin_is_refused_in_one_line(value):
    """A browser's Origin never has a path, a slash or a user, and `*` would grant every site."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_environment({"VISION_CORS_ORIGINS": f"https://ok.example.com,{value}"})
    assert str(caught.value).startswith(f"VISION_CORS_ORIGINS: {value.lower()!r} is not an origin")
