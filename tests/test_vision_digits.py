import cv2
import numpy as np
import pytest

from training.mnist import load_mnist
from vision.digits import NoDigit, to_mnist, to_model_input
from vision.errors import InputError
from vision.onnx_model import OnnxModel


def _mnist(fixtures):
    return load_mnist(fixtures / "mnist")["train_images"]


def test_mnist_digits_come_out_nearly_unchanged(fixtures):
    digits = _mnist(fixtures)
    diffs = np.array([np.abs(to_mnist(d).astype(int) - d).mean() for d in digits])
    assert np.median(diffs) < 1.0 and diffs.mean() < 3.0


def test_dark_ink_on_light_paper_of_any_size(fixtures):
    digit = _mnist(fixtures)[0]
    # A "scan": inverted, enlarged to a non-square page, grey paper, colour channels, margins.
    page = np.full((420, 330), 255, np.uint8)
    page[60:360, 40:265] = cv2.resize(255 - digit, (225, 300), interpolation=cv2.INTER_CUBIC)
    scan = cv2.cvtColor(np.clip(page * 0.75 + 50, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    result = to_mnist(scan)
    assert result.shape == (28, 28) and result.dtype == np.uint8
    assert np.corrcoef(result.ravel(), digit.ravel())[0, 1] > 0.75
    assert result[0].max() == 0 and result[:, 0].max() == 0  # background is black


def test_ink_fits_20x20_with_center_of_mass_at_14():
    bar = np.zeros((200, 50), np.uint8)
    bar[20:180, 10:40] = 255
    result = to_mnist(bar)
    ys, xs = np.nonzero(result > 0)
    assert ys.max() - ys.min() + 1 == 20 and xs.max() - xs.min() + 1 <= 5
    moments = cv2.moments(result.astype(np.float32))
    assert abs(moments["m10"] / moments["m00"] - 14) <= 0.5 and abs(moments["m01"] / moments["m00"] - 14) <= 0.5


@pytest.mark.parametrize(
    "image",
    [np.full((50, 50), 255, np.uint8), np.zeros((28, 28), np.uint8), np.full((300, 400, 3), (40, 160, 220), np.uint8)],
    ids=["white-paper", "black", "a-colour"],
)
def test_an_image_without_ink_is_refused(image):
    with pytest.raises(NoDigit, match="no digit found"):
        to_mnist(image)


def test_paper_noise_alone_is_refused():
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(225, 4, (240, 320)), 0, 255).astype(np.uint8)
    with pytest.raises(NoDigit):
        to_mnist(paper)


@pytest.mark.parametrize("kind", ["lighting", "ruled", "squared", "noise", "mixed"])
def test_photos_of_a_digit_come_out_like_the_digit(fixtures, kind):
    """Rendered like a phone photo (training.digit_photos), each fixture digit still comes out
    close to what MNIST's recipe makes of the clean digit."""
    from training.digit_photos import render

    digits = _mnist(fixtures)[:12]
    scores = [
        np.corrcoef(to_mnist(render(d, kind, i)).ravel(), to_mnist(d).ravel())[0, 1] for i, d in enumerate(digits)
    ]
    assert np.median(scores) > 0.7, scores


def test_a_dimly_lit_page_is_still_dark_ink_on_paper(fixtures):
    digit = _mnist(fixtures)[0]
    page = np.full((200, 200), 110, np.uint8)  # paper darker than mid-grey
    page[40:160, 40:160] = np.minimum(page[40:160, 40:160], 110 - cv2.resize(digit, (120, 120)) // 3)
    assert np.corrcoef(to_mnist(page).ravel(), to_mnist(digit).ravel())[0, 1] > 0.7


def test_model_input_is_float_in_unit_range():
    batch = to_model_input(np.full((3, 28, 28), 255, np.uint8))
    assert batch.shape == (3, 1, 28, 28) and batch.dtype == np.float32 and batch.max() == 1.0


@pytest.mark.parametrize("gaps", [[10, 10, 10], [40, 5, 25], [0, 60, 2]])
def test_a_written_number_splits_into_its_digits_left_to_right(fixtures, gaps):
    from photos import written_number

    from vision.digits import split_number

    images = _mnist(fixtures)[:4]
    found = split_number(written_number(list(images), gaps))
    assert len(found) == 4
    assert [d.box.x for d in found] == sorted(d.box.x for d in found)
    for piece, image in zip(found, images, strict=True):
        assert piece.image.shape == (28, 28)
        assert np.corrcoef(piece.image.ravel(), to_mnist(image).ravel())[0, 1] > 0.7


def _shipped_cnn():
    from conftest import ROOT

    return OnnxModel(ROOT / "models" / "digits_cnn.onnx")


@pytest.mark.parametrize("first", [12, 16])
def test_touching_digits_are_cut_apart_where_the_model_reads_them_best(fixtures, first):
    from photos import written_number

    from vision.digits import read_number, split_number

    arrays = load_mnist(fixtures / "mnist")
    images, labels = arrays["train_images"][first : first + 4], arrays["train_labels"][first : first + 4]
    photo = written_number(list(images), [-50, -50, -50])  # neighbours' ink runs together
    assert len(split_number(photo)) < 4  # as components, some digits are one
    read = read_number(photo, _shipped_cnn())
    assert read.number == "".join(map(str, labels))
    assert [d.box.x for d in read.digits] == sorted(d.box.x for d in read.digits)
    assert read.probabilities.shape == (4, 10) and np.allclose(read.probabilities.sum(axis=1), 1)


def test_digits_apart_are_read_as_their_components(fixtures):
    from photos import written_number

    from vision.digits import read_number, split_number

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

    from vision.digits import read_number

    photo = written_number(list(_mnist(fixtures)[4:8]), [-50, -50, -50])
    with pytest.raises(InputError, match="found 4 digits; a number may have at most 3"):
        read_number(photo, _shipped_cnn(), max_digits=3)


def test_a_digit_written_in_two_strokes_is_one_digit():
    from vision.digits import split_number

    five = np.full((200, 160), 230, np.uint8)
    cv2.line(five, (50, 40), (120, 40), 20, 9)  # the bar, apart from the body
    cv2.line(five, (52, 55), (48, 95), 20, 9)
    cv2.ellipse(five, (80, 125), (35, 32), 0, -120, 160, 20, 9)
    assert len(split_number(five)) == 1


def test_a_number_refuses_blank_paper_and_too_many_digits(fixtures):
    from photos import written_number

    from vision.digits import split_number

    with pytest.raises(NoDigit):
        split_number(np.full((100, 300), 230, np.uint8))
    with pytest.raises(InputError, match="at most 3"):
        split_number(written_number(list(_mnist(fixtures)[:4]), [15, 15, 15]), max_digits=3)


def test_a_tightly_cropped_one_is_not_taken_for_a_ruled_line():
    one = np.full((150, 60), 235, np.uint8)
    cv2.line(one, (30, 2), (30, 147), 25, 8)  # a stroke from edge to edge
    result = to_mnist(one)
    ys, xs = np.nonzero(result > 64)
    assert ys.max() - ys.min() + 1 >= 18 and xs.max() - xs.min() + 1 <= 6


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
}


@pytest.mark.parametrize("clutter", LEFT_OUT_AS)
def test_what_is_not_a_digit_beside_a_number_is_left_out_and_listed(fixtures, clutter):
    """Four numbers of fixture digits, each with a kind of clutter: read exactly (three of four at
    least), and the clutter listed as left out with its box inside the photo."""
    from training.number_photos import render_number
    from vision.digits import read_number

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
