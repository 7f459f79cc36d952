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


@pytest.mark.parametrize("clutter", number_photos.CLUTTER)
def test_clutter_renders_seeded_around_a_number(digits, clutter):
    images, _ = digits
    photo = number_photos.render_number(list(images[:3]), "spaced", 5, clutter)
    np.testing.assert_array_equal(photo, number_photos.render_number(list(images[:3]), "spaced", 5, clutter))
    assert photo.shape[0] == number_photos.render_number(list(images[:3]), "spaced", 5).shape[0]


@pytest.mark.parametrize("clutter", [c for c in number_photos.CLUTTER if c != "edge"])
def test_each_clutter_marks_the_page_outside_the_digits(clutter):
    """A ruled line, a stop, a tick...: ink or print where the digits are not (the number's row
    is x 100-300, y 50-130 on a 400x180 page)."""
    row = number_photos.Row(x0=100, x1=300, top=50, height=80)
    ink, printed = np.zeros((180, 400), np.float32), np.zeros((180, 400), np.float32)
    number_photos.CLUTTER_DRAWN[clutter](np.random.default_rng(0), row, ink, printed)
    outside = np.ones_like(ink, bool)
    outside[row.top : row.base, row.x0 : row.x1] = False
    assert (np.maximum(ink, printed)[outside] > 0.3).sum() > 20


def test_a_page_edge_is_a_dark_table_at_the_photo_side_with_room():
    ink = np.zeros((100, 300), np.float32)
    ink[30:70, 20:150] = 1  # the number: more room on the right
    page = number_photos.page_edge(np.random.default_rng(0), np.full((100, 300, 3), 220.0), ink)
    assert page[:, -1].max() < 130 and page[:, 0].min() > 130


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
    assert out.splitlines()[0].split() == ["kind", "reject", "read", "exactly", "digit", "count", "digits", "right"]
    assert [line.split()[0] for line in out.splitlines()[1:]] == list(number_photos.KINDS)


def test_scores_read_with_the_reject_threshold_given(digits):
    images, _ = digits
    photos = [number_photos.render_number(list(images[i : i + 2]), "spaced", i) for i in range(2)]

    def ones(x):  # reads every digit as a 1, with a log-sum-exp of about 5
        return np.tile(np.eye(10)[1] * 5, (len(x), 1))

    assert number_photos.scores(ones, photos, ["11", "11"], not_a_digit=4.0)["exact"] == 1
    assert number_photos.scores(ones, photos, ["11", "11"], not_a_digit=6.0)["exact"] == 0
