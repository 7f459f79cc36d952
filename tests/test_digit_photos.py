"""training.digit_photos: the seeded photo-like digits, and the accuracy it reports."""

import numpy as np
import pytest

from training import digit_photos
from training.mnist import load_mnist
from vision.digits import to_mnist


@pytest.fixture
def digits(fixtures):
    arrays = load_mnist(fixtures / "mnist")
    return arrays["train_images"][:10], arrays["train_labels"][:10]


@pytest.mark.parametrize("kind", digit_photos.KINDS)
def test_each_kind_renders_a_seeded_colour_photo(digits, kind):
    image = digits[0][0]
    photo = digit_photos.render(image, kind, 7)
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3 and min(photo.shape[:2]) >= 100
    np.testing.assert_array_equal(photo, digit_photos.render(image, kind, 7))  # the same seed, the same photo
    if kind != "tight":  # the one kind with nothing random in it
        assert not np.array_equal(photo, digit_photos.render(image, kind, 8))


def test_accuracy_counts_right_answers_and_refusals(digits):
    images, labels = digits
    photos = [digit_photos.render(d, "paper", i) for i, d in enumerate(images)]
    # A stand-in "model" that answers each label through the 28x28 image: right on all but one.
    by_input = {to_mnist(p).tobytes(): int(label) for p, label in zip(photos, labels)}
    answers = list(by_input.values())
    answers[0] = (answers[0] + 1) % 10
    lookup = dict(zip(by_input, answers))

    def model(x):
        keys = [(row[0] * 255).round().astype(np.uint8).tobytes() for row in x]
        return np.eye(10)[[lookup[k] for k in keys]]

    blank = np.full((200, 200, 3), 230, np.uint8)
    share, refused = digit_photos.accuracy(model, [*photos, blank], np.append(labels, 0))
    assert refused == 1 and share == pytest.approx((len(photos) - 1) / (len(photos) + 1))


def test_the_command_on_the_full_data(shared_data, capsys):
    digit_photos.main(["--mnist", str(shared_data / "mnist"), "--count", "30", "--only", "mixed"])
    out = capsys.readouterr().out
    assert "mixed" in out and "%" in out
