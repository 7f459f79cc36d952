"""training.number_photos: seeded photos of written numbers, and the scores it reports."""

import numpy as np
import pytest

from training import number_photos
from training.mnist import load_mnist


@pytest.fixture
def digits(fixtures):
    arrays = load_mnist(fixtures / "mnist")
    return arrays["train_images"], arrays["train_labels"]


@pytest.mark.parametrize("spacing", number_photos.SPACINGS)
def test_a_number_renders_as_a_seeded_colour_photo_as_wide_as_its_digits(digits, spacing):
    images, _ = digits
    photo = number_photos.render_number(list(images[:4]), spacing, 3)
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
    np.testing.assert_array_equal(photo, number_photos.render_number(list(images[:4]), spacing, 3))
    assert not np.array_equal(photo, number_photos.render_number(list(images[:4]), spacing, 4))
    shorter = number_photos.render_number(list(images[:2]), spacing, 3)
    assert photo.shape[1] / photo.shape[0] > shorter.shape[1] / shorter.shape[0]


def test_numbers_take_the_digits_in_turn(digits):
    _, labels = digits
    rows = number_photos.numbers(labels, 20)
    low, high = number_photos.DIGITS_PER_NUMBER
    assert all(low <= len(row) <= high for row in rows)
    flat = [i for row in rows for i in row]
    assert flat == [i % len(labels) for i in range(len(flat))]


def test_scores_count_exact_numbers_digit_counts_and_digits(digits):
    images, _ = digits
    photos = [number_photos.render_number(list(images[i : i + 2]), "spaced", i) for i in range(4)]

    def ones(x):  # a stand-in model that reads every digit as a 1
        return np.tile(np.eye(10)[1] * 5, (len(x), 1))

    got = number_photos.scores(ones, photos, ["11", "11", "12", "111"])
    assert got == {"exact": 0.5, "count": 0.75, "digits": pytest.approx(5 / 6)}


def test_a_missing_model_file_is_one_line(tmp_path):
    from training.digit_photos import onnx_model
    from vision.errors import InputError

    with pytest.raises(InputError, match=r"missing\.onnx: no such model file"):
        onnx_model(tmp_path / "missing.onnx")


def test_a_bad_count_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        number_photos.main(["--count", "0"])
    assert exit_info.value.code == 2 and "--count must be >= 1" in capsys.readouterr().err


def test_the_command_on_the_full_data(shared_data, capsys):
    number_photos.main(["--mnist", str(shared_data / "mnist"), "--count", "10"])
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["spacing", "read", "exactly", "digit", "count", "digits", "right"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == list(number_photos.SPACINGS)
