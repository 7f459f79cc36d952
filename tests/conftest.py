import os
import shutil
import tempfile
from pathlib import Path

import pytest
from paths import FIXTURES, SHARED_DATA


def pytest_configure(config):
    """A BentoML home of the test run's own: the servers the tests start must never touch the
    user's ~/bentoml (its store, or the metrics folder of a server they are running)."""
    config._vision_bentoml_home = tempfile.mkdtemp(prefix="vision-tests-bentoml-")
    os.environ["BENTOML_HOME"] = config._vision_bentoml_home
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"


def pytest_collection_modifyitems(items):
    """Every test that uses the full data carries the `data` marker: `pytest -m data` runs them."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_vision_bentoml_home", ""), ignore_errors=True)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def shared_data() -> Path:
    """The full data beside the checkout; tests that need it skip without it."""
    if not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "faces").is_dir():
        pytest.skip(f"needs the full data in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def yunet():
    """The shipped YuNet detector on the CPU, loaded once: it is stateless, one session serves all."""
    from vision.detectors import YUNET_MODEL, YuNetDetector

    return YuNetDetector(YUNET_MODEL)
