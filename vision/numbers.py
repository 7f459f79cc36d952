"""A photo of a handwritten number -> its digits, left to right, each in the MNIST form.

The ink and its groups come from `vision.number_page` (lines, the page's edge, specks and marks
left out there). A group wide enough to be digits that touch is cut where the model reads the
pieces most surely, and a group the model sees no digit in is left out too.
"""

from dataclasses import dataclass

import numpy as np

from vision.digits import DigitModel, NoDigit, to_model_input
from vision.errors import InputError
from vision.number_page import LeftOut, NumberPage, WrittenDigit, number_page
from vision.signatures import log_sum_exp, softmax

# A piece of a number is not a digit when its logits' log-sum-exp is under this, per model. The
# CNN is trained to see no digit in strokes that are not digits (training.not_digits); its
# threshold is the 95% quantile of held-out such strokes, checked on tuning numbers. The MLP's is
# under its clean digits' 0.5% quantile (docs/digits.md).
NOT_A_DIGIT = {"cnn": 2.0, "mlp": 3.0}

MAX_DIGITS = 32


def _too_many(count: int, max_digits: int) -> None:
    if count > max_digits:
        raise InputError(f"found {count} digits; a number may have at most {max_digits}")


def split_number(image: np.ndarray, max_digits: int = MAX_DIGITS) -> list[WrittenDigit]:
    """A photo of a written number -> its ink's groups of components, left to right, each in the
    MNIST form: the digits when none touch (`read_number` also divides touching ones)."""
    page = number_page(image)
    _too_many(len(page.groups), max_digits)
    return [page.digit(group) for group in page.groups]


@dataclass(frozen=True)
class ReadNumber:
    """A written number read: its digits, left to right, and each one's probabilities (N, 10)."""

    digits: list[WrittenDigit]
    probabilities: np.ndarray
    left_out: list[LeftOut]

    @property
    def number(self) -> str:
        return "".join(str(int(p.argmax())) for p in self.probabilities)


# Touching digits: a group wider than this many digit heights (the row's median) may hold more
# than one digit; each digit is at least MIN_WIDTH and at most MAX_WIDTH heights wide.
MAY_TOUCH = 0.9
MIN_WIDTH, MAX_WIDTH = 0.1, 1.2
MAX_CUTS = 8  # cut candidates per group: the lowest valleys of its ink's column profile
THIN_CUTS = 3.0  # pieces per digit height: more are a scribble's strokes (_scribble_cut_thin)


@dataclass(frozen=True)
class NumberPieces:
    """What `read_number` puts to the model: every piece that could be a digit (each group of ink
    whole, and a wide group's spans between cut candidates), where each group's pieces begin and
    end (`starts`, one more than the groups), their spans, and what was left out before reading."""

    pieces: list[WrittenDigit]
    starts: list[int]
    spans: list[list[tuple[int, int]]]
    left_out: list[LeftOut]
    height: float  # a digit's, in the spans' (working) pixels


def number_pieces(image: np.ndarray, max_digits: int = MAX_DIGITS) -> NumberPieces:
    """A photo of a written number -> the pieces of its ink the model reads (`read_number`)."""
    page = number_page(image)
    _too_many(len(page.groups), max_digits)  # before any cutting: the groups bound its cost
    # A digit's height: the groups' median (touching digits make a wider group, not a taller one).
    height = float(np.median([y1 - y0 for _, y0, _, y1 in map(page.bounds, page.groups)]))
    spans = [_spans(page, group, height) for group in page.groups]
    pieces = [page.digit(group, *span) for group, own in zip(page.groups, spans) for span in own]
    starts = [int(s) for s in np.cumsum([0, *map(len, spans)])]
    return NumberPieces(pieces, starts, spans, list(page.left_out), height)


def read_number(
    image: np.ndarray, model: DigitModel, max_digits: int = MAX_DIGITS, not_a_digit: float = NOT_A_DIGIT["cnn"]
) -> ReadNumber:
    """A photo of a written number -> its digits, left to right, and the model's reading of each.

    Digits that touch are one component. A group wide enough to hold several is cut at valleys of
    its ink's column profile into the pieces the model reads most surely (the largest sum of the
    log of each piece's top probability), each piece a digit's width; every piece of every group
    goes to the model in one call. A group with a piece whose logits' log-sum-exp (how much the
    model sees a digit at all) is under `not_a_digit` is left out, all its pieces: a tick, a
    stroke, a crossing-out (whose pieces may look like 1s on their own); so is a group cut into
    pieces thinner than digits when the model sees no digit in it whole."""
    found = number_pieces(image, max_digits)
    logits = model(to_model_input(np.stack([p.image for p in found.pieces])))
    probabilities = softmax(logits)
    surety = np.log(probabilities.max(axis=1))
    seen = log_sum_exp(logits)
    chosen, left_out = [], list(found.left_out)
    for own, start in zip(found.spans, found.starts):
        best = [start + i for i in _surest(own, surety[start : start + len(own)])]
        if min(seen[best]) < not_a_digit or _scribble_cut_thin(found, own, start, best, seen, not_a_digit):
            left_out += [LeftOut(found.pieces[i].box, "not a digit") for i in best]
        else:
            chosen += best
    if not chosen:
        raise NoDigit("no digit found: the model reads none of the ink as a digit")
    _too_many(len(chosen), max_digits)
    return ReadNumber([found.pieces[i] for i in chosen], probabilities[chosen], left_out)


def _scribble_cut_thin(
    found: NumberPieces, own: list[tuple[int, int]], start: int, best: list[int], seen: np.ndarray, not_a_digit: float
) -> bool:
    """Whether a group's best cut is into pieces thinner than digits are written (more than
    THIN_CUTS per digit height: the strokes of a `w` or a sparse crossing-out, each a 1 on its
    own) while the model sees no digit in the group whole. Touching digits are cut into pieces
    a digit wide, and a pair of them read whole may well be no digit."""
    a, b = min(a for a, _ in own), max(b for _, b in own)
    thin = len(best) > THIN_CUTS * (b - a) / found.height
    return bool(thin and seen[start + own.index((a, b))] < not_a_digit)


def _spans(page: NumberPage, group: list[int], height: float) -> list[tuple[int, int]]:
    """The column spans (x0, x1) of a group that could each be one digit: the whole group, and,
    when it is wide, the spans between its cut candidates."""
    x0, _, x1, _ = page.bounds(group)
    if x1 - x0 <= MAY_TOUCH * height:
        return [(x0, x1)]
    profile = np.isin(page.labels[:, x0:x1], group).sum(axis=0).astype(np.float32)
    profile = np.convolve(profile, np.ones(3) / 3, mode="same")
    inside = np.arange(1, len(profile) - 1)
    valleys = inside[(profile[inside] <= profile[inside - 1]) & (profile[inside] <= profile[inside + 1])]
    valleys = valleys[(valleys >= MIN_WIDTH * height) & (valleys <= len(profile) - MIN_WIDTH * height)]
    cuts: list[int] = []
    for v in valleys[np.argsort(profile[valleys], kind="stable")]:
        if len(cuts) < MAX_CUTS and all(abs(v - c) >= MIN_WIDTH * height for c in cuts):
            cuts.append(int(v))
    edges = [0, *sorted(cuts), x1 - x0]
    return [
        (x0 + a, x0 + b)
        for i, a in enumerate(edges)
        for b in edges[i + 1 :]
        if MIN_WIDTH * height <= b - a <= MAX_WIDTH * height or (a, b) == (0, x1 - x0)
    ]


def _surest(spans: list[tuple[int, int]], surety: np.ndarray) -> list[int]:
    """Of a group's spans (x0, x1) and each one's surety, the positions of those that tile the
    group from its left edge to its right with the largest total surety (the best path over the
    cut points)."""
    start, end = min(a for a, _ in spans), max(b for _, b in spans)
    best: dict[int, tuple[float, list[int]]] = {start: (0.0, [])}
    for i in sorted(range(len(spans)), key=spans.__getitem__):
        (a, b), sure = spans[i], float(surety[i])
        if a in best and (b not in best or best[a][0] + sure > best[b][0]):
            best[b] = (best[a][0] + sure, [*best[a][1], i])
    return best[end][1]
