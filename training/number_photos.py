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
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from training.digit_photos import on_paper, onnx_model, paper, validation_digits
from vision.digits import read_number
from vision.errors import InputError

SPACINGS = {"spaced": (0.15, 0.5), "close": (-0.08, 0.08)}  # gap between neighbours' ink, in digit heights
DIGITS_PER_NUMBER = (2, 6)


def ink_of(digit: np.ndarray, height: int) -> np.ndarray:
    """An MNIST digit's ink, cropped to it and scaled to `height` pixels tall, float in [0, 1]."""
    ys, xs = np.nonzero(digit > 30)
    crop = digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255


def render_number(digits: list[np.ndarray], spacing: str, seed: int) -> np.ndarray:
    """MNIST digits (28x28, white on black) -> a BGR uint8 photo of them written as one number."""
    rng = np.random.default_rng(seed)
    height = int(rng.integers(50, 140))
    inks = [ink_of(d, max(8, round(height * rng.uniform(0.9, 1.1)))) for d in digits]
    low, high = SPACINGS[spacing]
    gaps = [round(height * rng.uniform(low, high)) for _ in inks[1:]] + [0]
    margin = round(height * rng.uniform(0.4, 1.0))
    page_height = round(height * rng.uniform(1.8, 2.6))
    page_width = 2 * margin + sum(ink.shape[1] for ink in inks) + sum(gaps)
    ink = np.zeros((page_height, page_width), np.float32)
    x = margin
    for piece, gap in zip(inks, gaps, strict=True):
        y = (page_height - height) // 2 + round(height * rng.uniform(-0.06, 0.06))
        y = min(max(y, 0), page_height - piece.shape[0])
        region = ink[y : y + piece.shape[0], x : x + piece.shape[1]]
        np.maximum(region, piece, out=region)
        x += piece.shape[1] + gap
    turn = cv2.getRotationMatrix2D((page_width / 2, page_height / 2), rng.uniform(-4, 4), 1.0)
    ink = cv2.warpAffine(ink, turn, (page_width, page_height))
    return on_paper(paper(rng, page_height, page_width), np.clip(ink, 0, 1), "mixed", rng)


def numbers(labels: np.ndarray, count: int, seed: int = 0) -> list[list[int]]:
    """`count` numbers as lists of indices into the validation digits, each digit used in turn."""
    rng = np.random.default_rng(seed)
    out, at = [], 0
    for _ in range(count):
        n = int(rng.integers(DIGITS_PER_NUMBER[0], DIGITS_PER_NUMBER[1] + 1))
        out.append([(at + i) % len(labels) for i in range(n)])
        at += n
    return out


def scores(model, photos: list[np.ndarray], truths: list[str]) -> dict[str, float]:
    """Numbers read exactly, numbers with the right digit count, digits right among those."""
    exact = counted = digits_right = digits_counted = 0
    for photo, truth in zip(photos, truths, strict=True):
        try:
            read = read_number(photo, model).number
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
    parser.add_argument("--count", type=int, default=500, help="numbers per spacing")
    parser.add_argument("--model", type=Path, default=Path("models/digits_cnn.onnx"))
    parser.add_argument("--save", type=Path, help="also write the photos here as JPEG (and evaluate nothing)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    try:
        images, labels = validation_digits(args.mnist, 10_000)
        model = None if args.save else onnx_model(args.model)
    except (InputError, OSError) as e:
        sys.exit(f"error: {e}")
    rows = numbers(labels, args.count)
    truths = ["".join(str(int(labels[i])) for i in row) for row in rows]
    print(f"{'spacing':<9}{'read exactly':>14}{'digit count':>13}{'digits right':>14}")
    for spacing in SPACINGS:
        photos = [
            render_number([images[i] for i in row], spacing, n)
            for n, row in enumerate(tqdm(rows, desc=spacing, leave=False))
        ]
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for n, (photo, truth) in enumerate(zip(photos, truths, strict=True)):
                cv2.imwrite(str(args.save / f"{spacing}_{n:05d}_{truth}.jpg"), photo)
            print(f"{spacing:<9}wrote {len(photos)} photos to {args.save}")
            continue
        got = scores(model, photos, truths)
        print(f"{spacing:<9}{got['exact']:>14.2%}{got['count']:>13.2%}{got['digits']:>14.2%}")


if __name__ == "__main__":
    main()
