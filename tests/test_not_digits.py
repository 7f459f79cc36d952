"""training.not_digits: the pieces the number reader cuts from clutter, kept when no digit is in them."""

import cv2
import numpy as np
import pytest

from training import not_digits
from training.mnist import load_mnist
from training.number_photos import render_with_digits


@pytest.fixture
def digits(fixtures):
    arrays = load_mnist(fixtures / "mnist")
    return arrays["train_images"], arrays["train_labels"]


def test_a_tick_beside_a_number_is_a_piece_without_digit_ink(digits):
    images, _ = digits
    photo, digits_ink = render_with_digits(list(images[:3]), "spaced", 7, "tick")
    pieces = not_digits.not_digit_pieces(photo, digits_ink, np.random.default_rng(0))
    assert len(pieces) == 1  # the tick; the three digits hold digit ink
    assert all(p.shape == (28, 28) and p.dtype == np.uint8 and p.max() > 0 for p in pieces)


def test_where_every_piece_is_digit_ink_none_is_kept(digits):
    images, _ = digits
    photo, digits_ink = render_with_digits(list(images[:3]), "spaced", 7, "crossed")
    assert not_digits.not_digit_pieces(photo, np.ones_like(digits_ink), np.random.default_rng(0)) == []


def test_the_digits_ink_is_where_the_photo_is_dark(digits):
    images, _ = digits
    photo, digits_ink = render_with_digits(list(images[:3]), "spaced", 7)
    gray = photo.mean(axis=2)
    assert digits_ink.shape == gray.shape
    assert gray[digits_ink > 0.8].mean() < gray[digits_ink == 0].mean() - 60


def test_harvest_writes_pieces_and_their_kinds(digits, tmp_path, fixtures):
    out = tmp_path / "not_digits.npz"
    not_digits.main(
        [
            "--mnist",
            str(fixtures / "mnist"),
            "--count",
            "2",
            "--val-size",
            "10",
            "--only",
            "tick",
            "crossed",
            "--out",
            str(out),
            "--sheet",
            str(tmp_path / "sheet.png"),
        ]
    )
    with np.load(out) as saved:
        assert saved["images"].shape[1:] == (28, 28) and len(saved["images"]) == len(saved["kinds"]) > 0
        assert set(saved["kinds"]) <= {"tick", "crossed"}
        rows = len(set(saved["kinds"]))
    sheet = cv2.imread(str(tmp_path / "sheet.png"))  # a row of 12 pieces after each kind's name
    assert sheet.shape == (rows * not_digits.SHEET_TILE, 13 * not_digits.SHEET_TILE, 3)


def test_a_missing_mnist_folder_is_one_line(tmp_path):
    with pytest.raises(SystemExit) as exc:
        not_digits.main(["--mnist", str(tmp_path / "none"), "--out", str(tmp_path / "x.npz")])
    assert str(exc.value).startswith("error: ") and "\n" not in str(exc.value)


def test_a_straight_upright_stroke_is_a_one_and_never_a_not_digit():
    piece = np.zeros((28, 28), np.uint8)
    piece[4:24, 13:16] = 255  # a 1
    assert not_digits.upright_stroke(piece)
    assert not not_digits.upright_stroke(piece.T)  # a dash
    ring = np.zeros((28, 28), np.uint8)
    cv2.circle(ring, (14, 14), 9, 255, 3)  # a 0
    assert not not_digits.upright_stroke(ring)
    assert not not_digits.upright_stroke(np.zeros((28, 28), np.uint8))  # nothing
