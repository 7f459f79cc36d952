"""Photo-like handwritten numbers: MNIST validation digits written in a row on paper, photographed
as `training.digit_photos` photographs one digit, and read the way `/number` reads them.

    python -m training.number_photos --mnist ../shared/data/mnist --count 500
    python -m training.number_photos --mnist ../shared/data/mnist --count 20 --save runs/numbers

A number is 2 to 6 digits (a year, an amount, a meter reading), each digit's ink scaled to one
handwriting height (±10%), on a baseline that wanders a little, the row turned by up to ±4°.
Two spacings: `spaced`, gaps of 0.15-0.5 of the height between the digits' ink, and `close`,
gaps of -0.08-0.08 (neighbours often touch or overlap, as in quick handwriting). Then the
`mixed` photo of digit_photos: paper, lines, pen, lighting, blur, noise, JPEG. Seeded by the
number's index. Reported per spacing: numbers read exactly, numbers with the right count of
digits, and digits right among those.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from training.digit_photos import on_paper, onnx_model, paper, validation_digits
from vision.errors import InputError
from vision.numbers import NOT_A_DIGIT, read_number

SPACINGS = {"spaced": (0.15, 0.5), "close": (-0.08, 0.08)}  # gap between neighbours' ink, in digit heights
DIGITS_PER_NUMBER = (2, 6)
# What is not a digit, each kind drawn around `spaced` numbers on its own.
CLUTTER = ("ruled", "squared", "underline", "stop", "dash", "table", "edge", "tick", "crossed", "circled", "boxed")
KINDS = (*SPACINGS, *CLUTTER)
# --tuning: numbers of other digits and seeds than the reported ones, to choose thresholds on.
TUNING_DIGITS, TUNING_SEEDS = 5_000, 500_000


def ink_of(digit: np.ndarray, height: int) -> np.ndarray:
    """An MNIST digit's ink, cropped to it and scaled to `height` pixels tall, float in [0, 1]."""
    ys, xs = np.nonzero(digit > 30)
    crop = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255


def render_number(digits: list[np.ndarray], spacing: str, seed: int, clutter: str | None = None) -> np.ndarray:
    """MNIST digits (28x28, white on black) -> a BGR uint8 photo of them written as one number,
    with what is not a digit around it when `clutter` names one of CLUTTER."""
    return render_with_digits(digits, spacing, seed, clutter)[0]


def render_with_digits(
    digits: list[np.ndarray], spacing: str, seed: int, clutter: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`render_number`'s photo, and where its digits' ink is: (H, W) float in [0, 1], the
    digits alone as the photo has them (turned with the row), without the clutter."""
    rng = np.random.default_rng(seed)
    height = int(rng.integers(50, 140))
    inks = [ink_of(d, max(8, round(height * rng.uniform(0.9, 1.1)))) for d in digits]
    low, high = SPACINGS[spacing]
    gaps = [round(height * rng.uniform(low, high)) for _ in inks[1:]] + [0]
    margin = round(height * rng.uniform(0.4, 1.0))
    page_height = round(height * rng.uniform(1.8, 2.6))
    page_width = 2 * margin + sum(ink.shape[1] for ink in inks) + sum(gaps)
    # Clutter draws from its own generator, so the digits sit where they sit in the clean photo.
    marks = rng if clutter is None else np.random.default_rng([seed, 1 + CLUTTER.index(clutter)])
    left, right = _room(clutter, height, marks)
    ink = np.zeros((page_height, left + page_width + right), np.float32)
    x = left + margin
    for piece, gap in zip(inks, gaps, strict=True):
        y = (page_height - height) // 2 + round(height * rng.uniform(-0.06, 0.06))
        y = min(max(y, 0), page_height - piece.shape[0])
        region = ink[y : y + piece.shape[0], x : x + piece.shape[1]]
        np.maximum(region, piece, out=region)
        x += piece.shape[1] + gap
    row = Row(left + margin, x - gaps[-1], (page_height - height) // 2, height)
    digits_ink = ink.copy()
    printed = np.zeros_like(ink)
    if clutter is not None:
        CLUTTER_DRAWN[clutter](marks, row, ink, printed)
    size = (ink.shape[1], ink.shape[0])
    turn = cv2.getRotationMatrix2D((size[0] / 2, size[1] / 2), rng.uniform(-4, 4), 1.0)
    ink, printed, digits_ink = (cv2.warpAffine(a, turn, size) for a in (ink, printed, digits_ink))
    page = paper(rng, *ink.shape)
    if printed.any():  # ruled lines, a grid, a table's rules: printed on the paper, in grey or blue
        colour = marks.uniform(30, 110) + np.array([marks.uniform(20, 90), marks.uniform(0, 40), 0])
        page = page * (1 - printed[:, :, None]) + colour[None, None, :] * printed[:, :, None]
    past_page = (lambda page: page_edge(marks, page, ink)) if clutter == "edge" else None
    return on_paper(page, np.clip(ink, 0, 1), "mixed", rng, past_page), digits_ink


@dataclass(frozen=True)
class Row:
    """Where the digits were written, before the row is turned: their ink from x0 to x1, a digit's
    height from the top y."""

    x0: int
    x1: int
    top: int
    height: int

    @property
    def base(self) -> int:
        return self.top + self.height


def _room(clutter: str | None, height: int, rng: np.random.Generator) -> tuple[int, int]:
    """Extra paper (left, right) for a mark beside the number, or for the table past the page, or
    for an ellipse around the number."""
    if clutter == "circled":
        return round(0.4 * height), round(0.4 * height)
    if clutter in ("stop", "dash", "tick", "crossed"):
        room = round(height * (2.0 if clutter == "crossed" else 1.0))
        return (room, 0) if rng.random() < 0.3 else (0, room)
    if clutter in ("table", "edge"):
        return round(height * rng.uniform(0.2, 0.6)), round(height * rng.uniform(0.2, 0.6))
    return 0, 0


def _pen(height: int, rng: np.random.Generator) -> int:
    """A pen stroke's width in pixels, as thick as an MNIST digit's strokes at this height."""
    return max(2, round(height * rng.uniform(0.07, 0.13)))


def _stroke(ink: np.ndarray, points: np.ndarray, width: int) -> None:
    cv2.polylines(ink, [np.round(points).astype(np.int32)], False, 1.0, width, cv2.LINE_AA)


def _beside(rng: np.random.Generator, row: Row, ink: np.ndarray, width: float) -> float:
    """The x where a mark `width` wide starts: after the number, or before it (where the room is)."""
    gap = row.height * rng.uniform(0.15, 0.5)
    return row.x1 + gap if ink.shape[1] - row.x1 > row.x0 else row.x0 - gap - width


def ruled(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """Ruled paper: a line under the digits or through their feet, and the others a line apart."""
    gap = row.height * rng.uniform(0.9, 1.5)
    first = row.base + row.height * rng.uniform(-0.2, 0.1)
    strength, width = rng.uniform(0.35, 0.8), int(rng.integers(1, 4))
    for y in np.arange(first % gap, printed.shape[0], gap):
        cv2.line(printed, (0, round(y)), (printed.shape[1] - 1, round(y)), strength, width, cv2.LINE_AA)


def squared(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """Squared paper: a grid of squares a third to two thirds of a digit high."""
    gap = row.height * rng.uniform(0.33, 0.66)
    strength, width = rng.uniform(0.3, 0.6), int(rng.integers(1, 3))
    h, w = printed.shape
    for y in np.arange(rng.uniform(0, gap), h, gap):
        cv2.line(printed, (0, round(y)), (w - 1, round(y)), strength, width, cv2.LINE_AA)
    for x in np.arange(rng.uniform(0, gap), w, gap):
        cv2.line(printed, (round(x), 0), (round(x), h - 1), strength, width, cv2.LINE_AA)


def underline(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """The writer's underline: a pen stroke under the number, a little curved, touching it or not."""
    x = np.linspace(row.x0 - row.height * rng.uniform(0, 0.3), row.x1 + row.height * rng.uniform(0, 0.3), 24)
    y = row.base + row.height * (rng.uniform(0.0, 0.25) + rng.uniform(-0.06, 0.06) * np.linspace(-1, 1, 24) ** 2)
    y += np.linspace(0, row.height * rng.uniform(-0.08, 0.08), 24)
    _stroke(ink, np.stack([x, y], axis=1), _pen(row.height, rng))


def stop(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """A full stop after the number (or a dot before it), on the baseline."""
    radius = row.height * rng.uniform(0.04, 0.09)
    x = _beside(rng, row, ink, 2 * radius) + radius
    cv2.circle(ink, (round(x), round(row.base - radius)), max(2, round(radius)), 1.0, -1, cv2.LINE_AA)


def dash(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """A dash after (or before) the number, at mid-height."""
    length = row.height * rng.uniform(0.3, 0.7)
    x = _beside(rng, row, ink, length)
    y = row.top + row.height * rng.uniform(0.4, 0.65)
    _stroke(ink, np.array([[x, y], [x + length, y + row.height * rng.uniform(-0.08, 0.08)]]), _pen(row.height, rng))


def table(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """A table's printed rules: a vertical one beside the number (or one each side), top to bottom."""
    width, strength = int(rng.integers(1, 5)), rng.uniform(0.6, 0.95)
    sides = [0, 1] if rng.random() < 0.4 else [int(rng.integers(0, 2))]
    for side in sides:
        gap = row.height * rng.uniform(0.15, 0.5)
        x = round(row.x0 - gap if side == 0 else row.x1 + gap)
        cv2.line(printed, (x, 0), (x, printed.shape[0] - 1), strength, width, cv2.LINE_AA)


def tick(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """A tick beside the number: a short stroke down and a long one up, half to nine tenths as
    high as a digit."""
    high = row.height * rng.uniform(0.5, 0.9)
    wide = high * rng.uniform(0.6, 1.0)
    x = _beside(rng, row, ink, wide)
    bottom = row.base - row.height * rng.uniform(0.0, 0.2)
    points = [
        [x, bottom - high * rng.uniform(0.3, 0.5)],
        [x + wide * rng.uniform(0.25, 0.4), bottom],
        [x + wide, bottom - high],
    ]
    _stroke(ink, np.array(points), _pen(row.height, rng))


def crossed(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """A crossing-out beside the number: a scribble back and forth over a struck-out word, each
    stroke 0.07-0.16 of a digit's height on from the last."""
    wide = row.height * rng.uniform(0.8, 1.8)
    x = _beside(rng, row, ink, wide)
    top, high = row.top + row.height * rng.uniform(0.1, 0.3), row.height * rng.uniform(0.5, 0.8)
    turns = max(5, round(wide / (row.height * rng.uniform(0.07, 0.16))))
    xs = x + np.linspace(0, wide, turns) + rng.uniform(-0.05, 0.05, turns) * row.height
    ys = top + np.where(np.arange(turns) % 2, high, 0) + rng.uniform(-0.1, 0.1, turns) * row.height
    _stroke(ink, np.stack([xs, ys], axis=1), _pen(row.height, rng))


def circled(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """The number circled by its writer: an ellipse around it, once round and a little more,
    touching the digits' ends or not."""
    cx, cy = (row.x0 + row.x1) / 2, (row.top + row.base) / 2
    width = (row.x1 - row.x0) / 2 + row.height * rng.uniform(0.3, 0.6)
    high = min(row.height * rng.uniform(0.75, 1.0), ink.shape[0] / 2 - _pen(row.height, rng))
    turn = np.linspace(0, 2 * np.pi * rng.uniform(1.0, 1.1), 80) + rng.uniform(0, 2 * np.pi)
    _stroke(ink, np.stack([cx + width * np.cos(turn), cy + high * np.sin(turn)], 1), _pen(row.height, rng))


def boxed(rng: np.random.Generator, row: Row, ink: np.ndarray, printed: np.ndarray) -> None:
    """A box drawn by hand around the number, its corners a little off."""
    room = row.height * rng.uniform(0.15, 0.35)
    x0, x1 = row.x0 - room, row.x1 + room
    y0, y1 = max(row.top - room, 2), min(row.base + room, ink.shape[0] - 3)
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
    corners += rng.uniform(-0.04, 0.04, corners.shape) * row.height
    _stroke(ink, corners, _pen(row.height, rng))


def page_edge(rng: np.random.Generator, page: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The paper ends short of the photo's edge (left or right, sometimes top or bottom too): a dark
    table past it, and the page's shadow on the paper beside it."""
    h, w = ink.shape
    ys, xs = np.nonzero(ink > 0.05)
    room = {"left": xs.min(), "right": w - 1 - xs.max(), "top": ys.min(), "bottom": h - 1 - ys.max()}
    sides = [max(("left", "right"), key=room.get)] + (
        ["top" if room["top"] > room["bottom"] else "bottom"] if rng.random() < 0.3 else []
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    table = np.zeros((h, w), bool)
    shade = np.ones((h, w), np.float32)
    for side in sides:
        across, along, size = {
            "left": (xx, yy, w),
            "right": (w - 1 - xx, yy, w),
            "top": (yy, xx, h),
            "bottom": (h - 1 - yy, xx, h),
        }[side]
        edge = room[side] * rng.uniform(0.3, 0.8) + np.tan(np.radians(rng.uniform(-3, 3))) * (along - along.mean())
        table |= across < edge
        shade *= 1 - rng.uniform(0.1, 0.4) * np.exp(-np.clip(across - edge, 0, None) / (size * rng.uniform(0.01, 0.05)))
    wood = (
        rng.uniform(20, 90) * np.array([0.7, 0.85, 1.0])
        + cv2.GaussianBlur(rng.normal(0, 8, (h, w)), (0, 0), 3)[:, :, None]
    )
    return np.where(table[:, :, None], wood, page * shade[:, :, None])


CLUTTER_DRAWN = {
    "ruled": ruled,
    "squared": squared,
    "underline": underline,
    "stop": stop,
    "dash": dash,
    "table": table,
    "edge": lambda rng, row, ink, printed: None,  # the table past the page is drawn on the paper
    "tick": tick,
    "crossed": crossed,
    "circled": circled,
    "boxed": boxed,
}


def numbers(labels: np.ndarray, count: int, seed: int = 0) -> list[list[int]]:
    """`count` numbers as lists of indices into the validation digits, each digit used in turn."""
    rng = np.random.default_rng(seed)
    out, at = [], 0
    for _ in range(count):
        n = int(rng.integers(DIGITS_PER_NUMBER[0], DIGITS_PER_NUMBER[1] + 1))
        out.append([(at + i) % len(labels) for i in range(n)])
        at += n
    return out


def scores(
    model, photos: list[np.ndarray], truths: list[str], not_a_digit: float = NOT_A_DIGIT["cnn"]
) -> dict[str, float]:
    """Numbers read exactly, numbers with the right digit count, digits right among those."""
    exact = counted = digits_right = digits_counted = 0
    for photo, truth in zip(photos, truths, strict=True):
        try:
            read = read_number(photo, model, not_a_digit=not_a_digit).number
        except InputError:
            read = ""
        exact += read == truth
        if len(read) == len(truth):
            counted += 1
            digits_counted += len(truth)
            digits_right += sum(a == b for a, b in zip(read, truth, strict=True))
    return {
        "exact": exact / len(truths),
        "count": counted / len(truths),
        "digits": digits_right / max(digits_counted, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.number_photos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist"), help="MNIST IDX folder")
    parser.add_argument("--count", type=int, default=500, help="numbers per kind")
    parser.add_argument("--only", choices=KINDS, nargs="+", help="just these kinds (default: all)")
    parser.add_argument("--model", type=Path, default=Path("models/digits_cnn.onnx"))
    parser.add_argument("--save", type=Path, help="also write the photos here as JPEG (and evaluate nothing)")
    parser.add_argument(
        "--not-a-digit",
        type=float,
        nargs="+",
        help="the reader's not-a-digit thresholds to score, a table each (default: the model's, vision.digits)",
    )
    parser.add_argument(
        "--tuning",
        action="store_true",
        help="numbers for tuning instead: validation digits from index 5,000 and seeds of their own",
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    model_kind = "mlp" if "mlp" in args.model.stem else "cnn"
    thresholds = args.not_a_digit or [NOT_A_DIGIT[model_kind]]
    try:
        images, labels = validation_digits(args.mnist, 10_000)
        model = None if args.save else onnx_model(args.model)
    except (InputError, OSError) as e:
        sys.exit(f"error: {e}")
    first, seeds = (TUNING_DIGITS, TUNING_SEEDS) if args.tuning else (0, 0)
    images, labels = images[first:], labels[first:]
    rows = numbers(labels, args.count)
    truths = ["".join(str(int(labels[i])) for i in row) for row in rows]
    if not args.save:
        print(f"{'kind':<11}{'reject':>6}{'read exactly':>14}{'digit count':>13}{'digits right':>14}")
    for kind in args.only or KINDS:
        spacing, clutter = (kind, None) if kind in SPACINGS else ("spaced", kind)
        photos = [
            render_number([images[i] for i in row], spacing, seeds + n, clutter)
            for n, row in enumerate(tqdm(rows, desc=kind, leave=False))
        ]
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for n, (photo, truth) in enumerate(zip(photos, truths, strict=True)):
                cv2.imwrite(str(args.save / f"{kind}_{n:05d}_{truth}.jpg"), photo)
            print(f"{kind:<11}wrote {len(photos)} photos to {args.save}")
            continue
        for threshold in thresholds:
            got = scores(model, photos, truths, threshold)
            print(f"{kind:<11}{threshold:>6.2f}{got['exact']:>14.2%}{got['count']:>13.2%}{got['digits']:>14.2%}")


if __name__ == "__main__":
    main()
