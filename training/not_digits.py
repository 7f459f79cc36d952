"""Strokes that are not digits, in the MNIST form the digit models read: the pieces `/number` cuts
from photos of numbers with clutter around them (ticks, crossings-out, dashes, stops, what is left
of underlines, ruled lines, table rules and page edges) that hold none of the digits' ink. The
digit trainer teaches the model to see no digit in them (`training.digits --not-digits`).

    python -m training.not_digits --mnist ../shared/data/mnist --count 400 --out data/not_digits.npz

The numbers are written with training digits (never the validation split that
`training.number_photos` reads) and seeds of their own, each clutter kind of
`training.number_photos` in turn; a piece is kept when under 1% of its box is digit ink and it
is not a straight upright stroke (a 1, wherever it was cut from).
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from training.mnist import VALIDATION_SIZE, load_mnist, train_validation_split
from training.number_photos import CLUTTER, numbers, render_with_digits
from vision import draw
from vision.errors import InputError
from vision.numbers import number_pieces

SEEDS = 1_000_000  # the photos' seeds start here: far from number_photos' (0 up) and its tuning ones
DIGIT_INK = 0.3  # a pixel of the digits' own ink, drawn before the photo
MAX_DIGIT_SHARE = 0.01  # a piece whose box is more digit ink than this is (part of) a digit
SHEET_TILE = 72  # pixels a piece (28 + 8 of margin, at 2x) takes on the --sheet picture
PER_PHOTO = 6  # at most this many pieces from one photo: a crossing-out is cut many ways
# A straight stroke within this many degrees of upright is how a 1 is written (89% of MNIST's 1s,
# under 0.5% of other digits): never taught as a not-digit, wherever it was cut from.
STRAIGHT, UPRIGHT = 0.25, 35.0  # minor/major axis of its ink at most; degrees from vertical at most


def upright_stroke(piece: np.ndarray) -> bool:
    """Whether a 28x28 piece's ink is one straight, nearly upright stroke: a 1."""
    ys, xs = np.nonzero(piece > 60)
    if len(xs) < 5:
        return False
    spread, axes = np.linalg.eigh(np.cov(np.stack([xs, ys]), aweights=piece[ys, xs].astype(np.float64)))
    from_vertical = np.degrees(np.arctan2(abs(axes[0, 1]), abs(axes[1, 1])))
    return bool(np.sqrt(max(spread[0], 0) / spread[1]) <= STRAIGHT and from_vertical <= UPRIGHT)


def not_digit_pieces(photo: np.ndarray, digits_ink: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The 28x28 pieces the number reader takes from a photo that hold none of its digits' ink."""
    try:
        pieces = number_pieces(photo).pieces
    except InputError:
        return []
    digit = digits_ink > DIGIT_INK
    kept = []
    for piece in pieces:
        x, y, w, h = (int(v) for v in (piece.box.x, piece.box.y, piece.box.width, piece.box.height))
        if digit[y : y + h, x : x + w].mean() < MAX_DIGIT_SHARE and not upright_stroke(piece.image):
            kept.append(piece.image)
    order = rng.permutation(len(kept))[:PER_PHOTO]
    return [kept[i] for i in order]


def harvest(images: np.ndarray, labels: np.ndarray, count: int, kinds=CLUTTER) -> tuple[np.ndarray, np.ndarray]:
    """`count` photos per clutter kind -> (N, 28, 28) uint8 not-digit pieces and each one's kind."""
    rng = np.random.default_rng(SEEDS)
    rows = numbers(labels, count * len(kinds), seed=SEEDS)
    pieces, kinds_of = [], []
    for n, row in enumerate(tqdm(rows, desc="photos of numbers with clutter")):
        kind = kinds[n % len(kinds)]
        photo, digits_ink = render_with_digits([images[i] for i in row], "spaced", SEEDS + n, kind)
        found = not_digit_pieces(photo, digits_ink, rng)
        pieces += found
        kinds_of += [kind] * len(found)
    if not pieces:
        raise InputError("no piece without a digit was found: nothing to write")
    return np.stack(pieces), np.array(kinds_of)


def contact_sheet(pieces: np.ndarray, kinds: np.ndarray, per_kind: int = 12) -> np.ndarray:
    """The first `per_kind` pieces of each kind, a row each after its name, dark ink on white at 2x
    (`vision.draw.contact_sheet` lays the tiles out)."""
    tiles = []
    for kind in dict.fromkeys(kinds):
        name = np.full((SHEET_TILE, SHEET_TILE), 255, np.uint8)
        cv2.putText(name, kind, (2, SHEET_TILE // 2 + 4), cv2.FONT_HERSHEY_PLAIN, 0.9, 0, 1, cv2.LINE_AA)
        row = list(pieces[kinds == kind][:per_kind])
        row += [np.zeros((28, 28), np.uint8)] * (per_kind - len(row))
        tiles += [name] + [255 - cv2.resize(np.pad(p, 4), (SHEET_TILE, SHEET_TILE)) for p in row]
    return draw.contact_sheet([cv2.cvtColor(t, cv2.COLOR_GRAY2BGR) for t in tiles], columns=per_kind + 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.not_digits", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist"), help="MNIST IDX folder")
    parser.add_argument("--count", type=int, default=400, help="photos per clutter kind")
    parser.add_argument("--only", choices=CLUTTER, nargs="+", help="just these clutter kinds (default: all)")
    parser.add_argument("--out", type=Path, default=Path("data/not_digits.npz"))
    parser.add_argument("--sheet", type=Path, help="also draw a dozen pieces of each kind into this PNG")
    parser.add_argument(
        "--val-size", type=int, default=VALIDATION_SIZE, help="the last N digits validate: never drawn here"
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    try:
        arrays = load_mnist(args.mnist)
        (train_images, train_labels), _ = train_validation_split(
            arrays["train_images"], arrays["train_labels"], args.val_size
        )
        pieces, kinds = harvest(train_images, train_labels, args.count, tuple(args.only or CLUTTER))
    except (InputError, OSError) as e:
        sys.exit(f"error: {e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=pieces, kinds=kinds)
    counts = ", ".join(f"{k} {int((kinds == k).sum())}" for k in dict.fromkeys(kinds))
    if args.sheet:
        cv2.imwrite(str(args.sheet), contact_sheet(pieces, kinds))
    print(f"{len(pieces)} pieces that are not digits ({counts}) -> {args.out}")


if __name__ == "__main__":
    main()
