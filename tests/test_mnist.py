import gzip

import numpy as np
import pytest

from training import mnist
from vision.errors import InputError


def test_fixture_digits_load_with_known_values(fixtures):
    arrays = mnist.load_mnist(fixtures / "mnist")
    images, labels = arrays["train_images"], arrays["train_labels"]
    assert images.shape == (40, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (40,) and labels.dtype == np.uint8
    # The first MNIST training image is the well-known "5".
    assert labels[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert images[0, 14, 10:18].tolist() == [0, 0, 0, 81, 240, 253, 253, 119]
    assert int(images[0].sum()) == 27525
    assert np.bincount(labels, minlength=10).tolist() == [4] * 10
    assert "test_images" not in arrays  # a missing test split is fine


def test_raw_idx_files_load_like_gzipped(fixtures, tmp_path):
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / stem).write_bytes(gzip.decompress((fixtures / "mnist" / f"{stem}.gz").read_bytes()))
    raw, zipped = mnist.load_mnist(tmp_path), mnist.load_mnist(fixtures / "mnist")
    np.testing.assert_array_equal(raw["train_images"], zipped["train_images"])


def test_validation_split_is_the_last_images():
    images = np.arange(30).reshape(30, 1, 1).astype(np.uint8)
    (train_x, train_y), (val_x, val_y) = mnist.train_validation_split(images, np.arange(30), validation=10)
    assert train_x[:, 0, 0].tolist() == list(range(20))
    assert val_y.tolist() == list(range(20, 30))
    with pytest.raises(InputError):
        mnist.train_validation_split(images, np.arange(30), validation=30)


def test_full_data_has_sixty_thousand_training_images(shared_data):
    arrays = mnist.load_mnist(shared_data / "mnist")
    (train_x, _), (val_x, _) = mnist.train_validation_split(arrays["train_images"], arrays["train_labels"])
    assert arrays["train_images"].shape == (60000, 28, 28)
    assert len(train_x) == 50000 and len(val_x) == 10000


def _write(path, payload: bytes):
    with gzip.open(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda p: p.write_bytes(b"not gzip at all"), "cannot read"),
        (lambda p: _write(p, b"\x00\x00\x09\x03" + b"\x00" * 12), "bad magic"),
        (
            lambda p: _write(
                p, b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 100
            ),
            "header says",
        ),
    ],
)
def test_corrupt_idx_names_the_file(fixtures, tmp_path, corrupt, message):
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes((fixtures / "mnist/train-labels-idx1-ubyte.gz").read_bytes())
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    corrupt(bad)
    with pytest.raises(InputError, match=message) as error:
        mnist.load_mnist(tmp_path)
    assert str(bad) in str(error.value)


def test_missing_files_say_how_to_fetch_them(tmp_path):
    with pytest.raises(InputError, match="--download"):
        mnist.load_mnist(tmp_path)


def test_cli_exits_with_one_line_on_missing_data(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        mnist.main(["--data", str(tmp_path / "nowhere")])
    assert str(exit_.value).startswith("error: ") and "\n" not in str(exit_.value)
