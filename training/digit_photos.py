"""Photo-like handwritten digits: MNIST digits rendered as phone photos and scans of paper, and
the digit models' accuracy on them, per kind of degradation.

    python -m training.digit_photos --mnist ../shared/data/mnist --count 2000              # evaluate
    python -m training.digit_photos --mnist ../shared/data/mnist --count 20 --save runs/photos

Digits come from the MNIST validation split (the last 10,000 training images), so no model was
trained on them. Each photo is seeded by its index: the same command makes the same photos.
Each degradation is drawn on its own (`--only KIND`, to see one at a time) or all together
(`mixed`, what a user's phone does). The models see them through `vision.digits.to_mnist`,
exactly as `/digit` does.
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from training.mnist import VALIDATION_SIZE, load_mnist, train_validation_split
from vision.digits import to_mnist, to_model_input
from vision.errors import InputError
from vision.onnx_model import OnnxModel

KINDS = (
    "inverted",
    "tight",
    "paper",
    "lighting",
    "ruled",
    "squared",
    "pen",
    "place",
    "rotate",
    "blur",
    "noise",
    "jpeg",
    "mixed",
    "circled",
)


def paper(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Off-white paper with a faint fibre texture, BGR float in [0, 255]."""
    tint = rng.uniform(200, 250) + rng.uniform(-12, 12, 3)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 1.5) * rng.uniform(2, 6)
    return np.clip(tint[None, None, :] + grain[:, :, None], 0, 255)


def lighting(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """An illumination gradient and a soft shadow across the page."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height + 1) / 2
    light = 1 - rng.uniform(0.15, 0.45) * ramp
    cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.3, 0.8) * max(height, width)
    shadow = 1 - rng.uniform(0.1, 0.3) * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * r**2))
    return image * (light * shadow)[:, :, None]


def lines(rng: np.random.Generator, image: np.ndarray, squared: bool) -> np.ndarray:
    """Blue ruled lines (or a squared grid) printed on the page."""
    height, width = image.shape[:2]
    gap = int(rng.integers(max(12, height // 8), max(13, height // 4)))
    colour = np.array([rng.uniform(180, 230), rng.uniform(150, 200), rng.uniform(100, 160)])  # BGR: light blue
    thickness = int(rng.integers(1, 3))
    out = image.copy()
    for y in range(int(rng.integers(0, gap)), height, gap):
        cv2.line(out, (0, y), (width - 1, y), colour.tolist(), thickness)
    if squared:
        for x in range(int(rng.integers(0, gap)), width, gap):
            cv2.line(out, (x, 0), (x, height - 1), colour.tolist(), thickness)
    return out


def plain(digit: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The digit as dark ink on white: the whole 28x28 enlarged 3-6x ("inverted"), or cropped to
    its ink and enlarged 5x ("tight"). BGR uint8."""
    if kind == "tight":
        ys, xs = np.nonzero(digit > 30)
        digit = digit[max(ys.min() - 2, 0) : ys.max() + 3, max(xs.min() - 2, 0) : xs.max() + 3]
        factor = 5
    else:
        factor = int(rng.integers(3, 7))
    page = 255 - cv2.resize(digit, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)


def render(digit: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """One MNIST digit (28x28, white on black) -> a BGR uint8 photo of it written on paper."""
    rng = np.random.default_rng(seed)
    if kind in ("inverted", "tight"):
        return plain(digit, kind, rng)
    every = kind == "mixed"
    side = int(rng.integers(120, 400))
    height, width = side, int(side * rng.uniform(0.8, 1.4))
    page = paper(rng, height, width)
    # The stroke: the digit enlarged smoothly, thickened or thinned like a different pen.
    size = int(side * (rng.uniform(0.35, 0.8) if every or kind == "place" else 0.6))
    stroke = cv2.resize(digit, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    if every or kind == "pen":
        radius = int(rng.integers(-2, 4) * size / 100)
        if radius:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(radius) + 1, 2 * abs(radius) + 1))
            stroke = (cv2.dilate if radius > 0 else cv2.erode)(stroke, kernel)
    if every or kind == "rotate":
        turn = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-15, 15), 1.0)
        stroke = cv2.warpAffine(stroke, turn, (size, size))
    if every or kind == "place":
        x, y = int(rng.integers(0, width - size + 1)), int(rng.integers(0, height - size + 1))
    else:
        x, y = (width - size) // 2, (height - size) // 2
    ink = np.zeros((height, width), np.float32)
    ink[y : y + size, x : x + size] = np.clip(stroke, 0, 1)
    if kind == "circled":  # by its writer, a pen's ellipse round the digit, clear of it or grazing it
        axes = (round(size * rng.uniform(0.42, 0.55)), round(size * rng.uniform(0.45, 0.6)))
        pen = max(2, round(size * rng.uniform(0.05, 0.09)))
        cv2.ellipse(ink, (x + size // 2, y + size // 2), axes, rng.uniform(-20, 20), 0, 360, 1.0, pen, cv2.LINE_AA)
    return on_paper(page, ink, kind, rng)


def on_paper(
    page: np.ndarray,
    ink: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    past_page: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Ink (H, W) in [0, 1] written on a page (`paper`) and photographed: the lines, pen, light,
    blur, noise and JPEG of `kind` ("mixed": all of them); `past_page` puts what lies beyond the
    paper's edge into the printed page. BGR uint8."""
    every = kind == "mixed"
    if every or kind in ("ruled", "squared"):
        page = lines(rng, page, squared=kind == "squared" or (every and rng.random() < 0.4))
    if past_page is not None:
        page = past_page(page)
    pen = (
        np.array([rng.uniform(90, 160), rng.uniform(20, 70), rng.uniform(10, 50)])  # BGR: blue ballpoint
        if (every or kind == "pen") and rng.random() < 0.6
        else np.full(3, rng.uniform(10, 60))  # black or grey
    )
    photo = page * (1 - ink[:, :, None]) + pen[None, None, :] * ink[:, :, None]
    if every or kind == "lighting":
        photo = lighting(rng, photo)
    if every or kind == "blur":
        photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.8, 2.0))
    if every or kind == "noise":
        photo = photo + rng.normal(0, rng.uniform(3, 10), photo.shape)
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    if every or kind == "jpeg":
        quality = int(rng.integers(25, 80))
        photo = cv2.imdecode(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)
    return photo


def validation_digits(mnist: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    arrays = load_mnist(mnist)
    _, (images, labels) = train_validation_split(arrays["train_images"], arrays["train_labels"], VALIDATION_SIZE)
    return images[:count], labels[:count]


def onnx_model(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A digit model in onnxruntime: (N, 1, 28, 28) pixels -> (N, 10) logits."""
    if not path.is_file():
        raise InputError(f"{path}: no such model file (the shipped ones are in models/)")
    return OnnxModel(path)


def accuracy(model, photos: list[np.ndarray], labels: np.ndarray) -> tuple[float, int]:
    """(share right, photos refused as holding no digit) through `to_mnist`, as /digit sees them."""
    inputs, right, refused = [], np.zeros(len(photos), bool), 0
    for photo in photos:
        try:
            inputs.append(to_mnist(photo))
        except InputError:
            inputs.append(None)
            refused += 1
    seen = [i for i, x in enumerate(inputs) if x is not None]
    if seen:
        predicted = model(to_model_input(np.stack([inputs[i] for i in seen]))).argmax(axis=1)
        right[seen] = predicted == labels[seen]
    return float(right.mean()), refused


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.digit_photos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mnist", type=Path, default=Path("data/mnist"), help="MNIST IDX folder")
    parser.add_argument("--count", type=int, default=2000, help="validation digits per kind")
    parser.add_argument(
        "--models", type=Path, nargs="+", default=[Path("models/digits_cnn.onnx"), Path("models/digits_mlp.onnx")]
    )
    parser.add_argument("--only", choices=KINDS, help="just this kind")
    parser.add_argument("--save", type=Path, help="also write the photos here as JPEG (and evaluate nothing)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be >= 1")
    try:
        digits, labels = validation_digits(args.mnist, args.count)
        kinds = [args.only] if args.only else list(KINDS)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for kind in kinds:
                for i, digit in enumerate(digits):
                    cv2.imwrite(str(args.save / f"{kind}_{i:05d}_{labels[i]}.jpg"), render(digit, kind, i))
            print(f"wrote {len(kinds) * len(digits)} photos to {args.save}")
            return
        models = {path.stem: onnx_model(path) for path in args.models}
    except (InputError, OSError) as e:
        sys.exit(f"error: {e}")
    print(f"{'kind':<10}" + "".join(f"{name:>14}" for name in models) + f"{'no digit':>10}")
    for kind in kinds:
        photos = [render(d, kind, i) for i, d in enumerate(tqdm(digits, desc=kind, leave=False))]
        row = [accuracy(model, photos, labels) for model in models.values()]
        print(f"{kind:<10}" + "".join(f"{share:>14.2%}" for share, _ in row) + f"{row[0][1]:>10}")


if __name__ == "__main__":
    main()
