"""MNIST in its standard IDX files (gzipped or raw), and `--download` from a public mirror.

    python -m training.mnist --download --data data/mnist

The validation split is the last 10,000 of the 60,000 training images; nothing trains on it.
"""

import argparse
import gzip
import hashlib
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from vision.errors import InputError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# MD5 of the official .gz files (as published by Yann LeCun's page and torchvision).
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
VALIDATION_SIZE = 10_000
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (raw or .gz) -> its array, with the shape its header declares."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: cannot read IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise InputError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise InputError(f"{path}: header says {shape} ({expected} bytes) but the file has {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).exists():
            return directory / name
    return None


def load_mnist(directory: Path) -> dict[str, np.ndarray]:
    """The IDX files in `directory` -> {"train_images": (N,28,28) uint8, "train_labels": (N,) ...}.

    The training files are required; the test files are loaded when present.
    """
    directory = Path(directory)
    arrays = {}
    for key, stem in FILES.items():
        path = _find(directory, stem)
        if path is None:
            if key.startswith("train"):
                raise InputError(
                    f"{directory}: missing {stem}(.gz); "
                    f"fetch it with `python -m training.mnist --download --data {directory}`"
                )
            continue
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        if f"{split}_images" not in arrays:
            continue
        images, labels = arrays[f"{split}_images"], arrays.get(f"{split}_labels")
        if images.ndim != 3 or labels is None or labels.ndim != 1 or len(labels) != len(images):
            raise InputError(f"{directory}: {split} images {images.shape} and labels do not match")
        if labels.max() > 9:
            raise InputError(f"{directory}: {split} labels outside 0..9")
    return arrays


def train_validation_split(images: np.ndarray, labels: np.ndarray, validation: int = VALIDATION_SIZE):
    """The classic split: the last `validation` images validate, the rest train."""
    if len(images) <= validation:
        raise InputError(f"need more than {validation} images for the split, got {len(images)}")
    return (images[:-validation], labels[:-validation]), (images[-validation:], labels[-validation:])


def download(directory: Path) -> None:
    """Fetch the four official .gz files into `directory`, verifying each MD5."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, md5 in OFFICIAL_MD5.items():
        target = directory / name
        if target.exists() and hashlib.md5(target.read_bytes()).hexdigest() == md5:
            continue
        payload, errors = None, []
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(mirror + name, timeout=30) as response:
                    payload = response.read()
            except (urllib.error.URLError, OSError) as e:
                errors.append(f"{mirror}: {getattr(e, 'reason', e)}")
                continue
            if hashlib.md5(payload).hexdigest() == md5:
                break
            errors.append(f"{mirror}: checksum mismatch")
            payload = None
        if payload is None:
            raise InputError(
                f"could not download {name} ({'; '.join(errors)}); without internet, copy "
                f"train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz into {directory} by hand"
            )
        partial = target.with_suffix(".part")
        partial.write_bytes(payload)
        partial.replace(target)  # never leave a half-written file under the real name
        print(f"downloaded {target}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.mnist", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("data/mnist"), help="folder of the IDX files")
    parser.add_argument("--download", action="store_true", help="fetch the official files first")
    args = parser.parse_args(argv)
    try:
        if args.download:
            download(args.data)
        arrays = load_mnist(args.data)
    except InputError as e:
        sys.exit(f"error: {e}")
    for key, array in arrays.items():
        print(f"{key}: {array.shape} {array.dtype}")


if __name__ == "__main__":
    main()
