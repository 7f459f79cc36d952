"""Many images in one binary upload: /digits_batch and /keypoints_batch, and the parsing behind them."""

import io

import httpx
import numpy as np
import pytest
from service_models import serving, write_models

from service.arrays import uploaded_batch

DIGITS = (1, 28, 28)


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def test_an_npy_file_and_raw_bytes_give_the_same_batch():
    batch = np.random.default_rng(0).random((5, *DIGITS), dtype=np.float32)
    assert np.array_equal(uploaded_batch(npy(batch), None, DIGITS), batch)
    assert np.array_equal(uploaded_batch(batch.tobytes(), "5,1,28,28", DIGITS), batch)
    assert uploaded_batch(npy(batch.astype(np.float64)), None, DIGITS).dtype == np.float32


@pytest.mark.parametrize(
    "data, shape, message",
    [
        (np.zeros((2, *DIGITS), np.float32).tobytes(), None, "raw bytes need the field shape=N,1,28,28"),
        (np.zeros((2, *DIGITS), np.float32).tobytes(), "2,1,28", "are not float32 values of shape (2, 1, 28)"),
        (np.zeros((2, *DIGITS), np.float32).tobytes(), "two", "expected whole numbers"),
        (b"\x93NUMPY\x01\x00garbage", None, "not a readable .npy file"),
        (npy(np.zeros((2, 1, 96, 96), np.float32)), None, "expected shape (N, 1, 28, 28), got (2, 1, 96, 96)"),
        (npy(np.full((1, *DIGITS), np.nan, np.float32)), None, "NaN or infinite"),
        (npy(np.full((1, *DIGITS), 255, np.uint8)), None, "expected a float32 array, got uint8"),
        (npy(np.array([{"a": 1}], dtype=object)), None, "not a readable .npy file"),  # pickles are refused
    ],
)
def test_bad_uploads_are_refused_with_the_reason(data, shape, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        uploaded_batch(data, shape, DIGITS)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = write_models(tmp_path_factory.mktemp("models"))
    yield from serving({"VISION_MANIFEST": str(models), "VISION_PROVIDER": "cpu"}, tmp_path_factory.mktemp("log"))


def test_digits_batch_answers_like_the_json_endpoint(server):
    batch = np.random.default_rng(1).random((64, *DIGITS), dtype=np.float32)
    for model, route in (("cnn", "/digits_array"), ("mlp", "/digits_array/mlp")):
        uploaded = httpx.post(
            f"{server.url}/digits_batch", files={"images": ("b.npy", npy(batch))}, data={"model": model}
        )
        assert uploaded.status_code == 200, uploaded.text
        as_json = httpx.post(f"{server.url}{route}", json={"images": batch.tolist()}, timeout=30)
        assert np.allclose(uploaded.json(), as_json.json(), atol=1e-6) and np.array(uploaded.json()).shape == (64, 10)


def test_keypoints_batch_takes_raw_bytes_with_a_shape_and_answers_like_the_json_endpoint(server):
    crops = np.random.default_rng(2).random((3, 1, 96, 96), dtype=np.float32)
    answer = httpx.post(
        f"{server.url}/keypoints_batch", files={"images": ("c.bin", crops.tobytes())}, data={"shape": "3,1,96,96"}
    )
    assert answer.status_code == 200 and np.array(answer.json()).shape == (3, 30)
    as_json = httpx.post(f"{server.url}/keypoints_array", json={"images": crops.tolist()}, timeout=30)
    assert as_json.status_code == 200, as_json.text
    np.testing.assert_allclose(answer.json(), as_json.json(), atol=1e-6)
    as_npy = httpx.post(f"{server.url}/keypoints_batch", files={"images": ("c.npy", npy(crops))})
    np.testing.assert_allclose(as_npy.json(), as_json.json(), atol=1e-6)


def test_a_bad_batch_is_a_400_in_one_line(server):
    answer = httpx.post(f"{server.url}/digits_batch", files={"images": ("b.bin", b"\x00" * 10)})
    assert answer.status_code == 400
    assert answer.json() == {"error": "raw bytes need the field shape=N,1,28,28 (or send a .npy file)"}
