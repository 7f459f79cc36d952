from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def shared_data() -> Path:
    """The full data beside the checkout; tests that need it skip without it."""
    if not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "faces").is_dir():
        pytest.skip(f"needs the full data in {SHARED_DATA}")
    return SHARED_DATA
