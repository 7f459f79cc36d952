"""vision.numbers: a photo of a written number read digit by digit, what is not a digit left out."""

import cv2
import numpy as np
import pytest

from training.mnist import load_mnist
from vision.digits import NoDigit, to_mnist
from vision.errors import InputError
from vision.onnx_model import OnnxModel


def _mnist(fixtures):
    return load_mnist(fixtures / "mnist")["train_images"]


@pytest.mark.parametrize("gaps", [[10, 10, 10], [40, 5, 25], [0, 60, 2]])
def test_a_written_number_splits_into_its_digits_left_to_right(fixtures, gaps):
    from photos import written_number

    from vision.numbers import split_number

    images = _mnist(fixtures)[:4]
    found = split_number(written_number(list(images), gaps))
    assert len(found) == 4
    assert [d.box.x for d in found] == sorted(d.box.x for d in found)
    for piece, image in zip(found, images, strict=True):
        assert piece.image.shape == (28, 28)
        assert np.corrcoef(piece.image.ravel(), to_mnist(image).ravel())[0, 1] > 0.7


def _shipped_cnn():
    from paths import ROOT

    return OnnxModel(ROOT / "models" / "digits_cnn.onnx")


@pytest.mark.parametrize("first", [12, 16])
def test_touching_digits_are_cut_apart_where_the_model_reads_them_best(fixtures, first):
    from photos import written_number

    from vision.numbers import read_number, split_number

    arrays = load_mnist(fixtures / "mnist")
    images, labels = arrays["train_images"][first : first + 4], arrays["train_labels"][first : first + 4]
    photo = written_number(list(images), [-50, -50, -50])  # neighbours' ink runs together
    assert len(split_number(photo)) < 4  # as components, some digits are one
    read = read_number(photo, _shipped_cnn())
    assert read.number == "".join(map(str, labels))
    assert [d.box.x for d in read.digits] == sorted(d.box.x for d in read.digits)
    assert read.probabilities.shape == (4, 10) and np.allclose(read.probabilities.sum(axis=1), 1)


def test_a_piece_of_a_cut_group_the_model_sees_no_digit_in_is_left_out(fixtures):
    """Pieces of touching ink are rejected one by one, like groups read whole: the shipped model
    with its logits lowered by 100 cuts the touching digits as before (the softmax is the same) but
    sees no digit in any piece, so no number is read."""
    from photos import written_number

    from vision.numbers import NoDigit, read_number

    images, model = load_mnist(fixtures / "mnist")["train_images"][12:16], _shipped_cnn()
    photo = written_number(list(images), [-50, -50, -50])
    assert len(read_number(photo, model).digits) == 4  # some of them cut apart
    with pytest.raises(NoDigit, match="reads none of the ink as a digit"):
        read_number(photo, lambda x: model(x) - 100.0)


def test_digits_apart_are_read_as_their_components(fixtures):
    from photos import written_number

    from vision.numbers import read_number, split_number

    photo = written_number(list(_mnist(fixtures)[:5]), [30, 12, 45, 20])
    calls = []

    def model(x):  # a stand-in as sure of every piece: "7" for all of them; it counts its calls
        calls.append(len(x))
        return np.tile(np.eye(10)[7] * 5, (len(x), 1))

    read, written = read_number(photo, model), split_number(photo)
    # Cutting a wide digit only adds pieces no surer than the whole: the components stand, one call.
    assert read.number == "77777" and len(calls) == 1
    assert [d.box for d in read.digits] == [d.box for d in written]
    for a, b in zip(read.digits, written, strict=True):
        np.testing.assert_array_equal(a.image, b.image)


def test_a_number_of_touching_digits_is_held_to_the_limit_once_cut(fixtures):
    from photos import written_number

    from vision.numbers import read_number

    photo = written_number(list(_mnist(fixtures)[4:8]), [-50, -50, -50])
    with pytest.raises(InputError, match="found 4 digits; a number may have at most 3"):
        read_number(photo, _shipped_cnn(), max_digits=3)


def test_a_digit_written_in_two_strokes_is_one_digit():
    from vision.numbers import split_number

    five = np.full((200, 160), 230, np.uint8)
    cv2.line(five, (50, 40), (120, 40), 20, 9)  # the bar, apart from the body
    cv2.line(five, (52, 55), (48, 95), 20, 9)
    cv2.ellipse(five, (80, 125), (35, 32), 0, -120, 160, 20, 9)
    assert len(split_number(five)) == 1


def test_a_number_refuses_blank_paper_and_too_many_digits(fixtures):
    from photos import written_number

    from vision.numbers import split_number

    with pytest.raises(NoDigit):
        split_number(np.full((100, 300), 230, np.uint8))
    with pytest.raises(InputError, match="at most 3"):
        split_number(written_number(list(_mnist(fixtures)[:4]), [15, 15, 15]), max_digits=3)


# What each kind of clutter beside a number is left out as (training.number_photos draws them);
# printed lines are often too faint to be ink at all.
LEFT_OUT_AS = {
    "ruled": None,
    "squared": None,
    "underline": "line",
    "stop": "mark",
    "dash": "mark",
    "table": "line",
    "edge": "edge",
    "tick": "not a digit",
    "crossed": "mark",
    "circled": "mark",
    "boxed": "mark",
}


@pytest.mark.parametrize("clutter", LEFT_OUT_AS)
def test_what_is_not_a_digit_beside_a_number_is_left_out_and_listed(fixtures, clutter):
    """Four numbers of fixture digits, each with a kind of clutter: read exactly (three of four at
    least), and the clutter listed as left out with its box inside the photo."""
    from training.number_photos import render_number
    from vision.numbers import read_number

    arrays = load_mnist(fixtures / "mnist")
    images, labels = arrays["train_images"], arrays["train_labels"]
    model, exact, kinds = _shipped_cnn(), 0, set()
    for n, (start, stop) in enumerate([(0, 3), (3, 7), (7, 10), (10, 14)]):
        photo = render_number(list(images[start:stop]), "spaced", n, clutter)
        read = read_number(photo, model)
        exact += read.number == "".join(map(str, labels[start:stop]))
        kinds |= {o.kind for o in read.left_out}
        for o in read.left_out:
            assert 0 <= o.box.x < photo.shape[1] and 0 <= o.box.y < photo.shape[0] and o.box.width > 0
    assert exact >= 3 and LEFT_OUT_AS[clutter] in kinds | {None}, (exact, kinds)
