"""Loaders for the two face-keypoint formats, and for the crops made from them.

(a) iBUG 68-point CSV (`Names` + 136 interleaved x, y columns) with a folder of images.
(b) The Kaggle/course `training.csv`: 30 keypoint columns + `Image` (9,216 space-separated pixels).
(c) faces.npz from `training.prepare_faces`: the crops and their identity-disjoint validation mask,
    as training (`load_training`) and export (`load_split`) read them.
"""

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.errors import InputError
from vision.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS
from vision.signatures import CROP_SIZE

_FRAME_SUFFIX = re.compile(r"_\d+\.[A-Za-z]+$")

# The 68-point labels put the center of pixel (i, j) at (i + 0.5, j + 0.5); OpenCV, our crops and
# the service's answers put it at (i, j). Evidence: a model trained on mirrored crops too cannot
# learn a left-right offset, and its mean x error on its own training crops was -0.49 px on Helen
# (the same for every face size), -0.6 px on the YouTube frames and -0.9 px on AFW, which half a
# pixel explains best (docs/keypoints.md). The loader converts, so every later step is in OpenCV's
# convention.
LABEL_PIXEL_CENTER = 0.5


def identity(file_name: str) -> str:
    """The person in a frame: the file name without its trailing `_NN.jpg`."""
    return _FRAME_SUFFIX.sub("", Path(file_name).name)


@dataclass
class Landmarks68:
    names: list[str]
    points: np.ndarray  # (N, 68, 2) float32, image pixels, OpenCV's convention (pixel centers at integers)
    image_dir: Path

    def read_image(self, index: int) -> np.ndarray:
        path = self.image_dir / self.names[index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"{path}: missing or unreadable image")
        return image


def load_landmarks68(
    csv_path: Path, image_dir: Path | None = None, pixel_center: float = LABEL_PIXEL_CENTER
) -> Landmarks68:
    """The CSV's points, moved from the labels' pixel centers (`pixel_center`) to OpenCV's."""
    csv_path = Path(csv_path)
    image_dir = Path(image_dir) if image_dir else csv_path.parent / "images"
    if not image_dir.is_dir():
        raise InputError(f"{image_dir}: image folder not found")
    names, rows = [], []
    try:
        with open(csv_path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or header[0] != "Names" or len(header) != 137:
                raise InputError(f"{csv_path}: expected a header of Names + 136 columns")
            for line, row in enumerate(reader, start=2):
                if len(row) != 137:
                    raise InputError(f"{csv_path}, row {line}: {len(row)} columns, expected 137")
                try:
                    rows.append([float(v) for v in row[1:]])
                except ValueError:
                    raise InputError(f"{csv_path}, row {line}: a coordinate is not a number") from None
                names.append(row[0])
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{csv_path}: cannot read ({e})") from None
    if not rows:
        raise InputError(f"{csv_path}: no rows")
    points = np.asarray(rows, dtype=np.float32).reshape(-1, 68, 2) - pixel_center
    return Landmarks68(names, points, image_dir)


def load_kaggle_csv(csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Kaggle/course CSV -> images (N, 96, 96) uint8 and keypoints (N, 15, 2) in pixels.

    Rows with any missing keypoint are dropped, as the course does.
    """
    csv_path = Path(csv_path)
    columns = [f"{name}_{axis}" for name in KEYPOINT_NAMES for axis in "xy"]
    images, keypoints = [], []
    try:
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            missing = set(columns + ["Image"]) - set(reader.fieldnames or [])
            if missing:
                raise InputError(f"{csv_path}: missing columns {sorted(missing)}")
            for line, row in enumerate(reader, start=2):
                if any(not row[c] for c in columns):
                    continue
                pixels = row["Image"].split()
                if len(pixels) != 96 * 96:
                    raise InputError(f"{csv_path}, row {line}: {len(pixels)} pixels, expected 9216")
                try:
                    images.append(np.asarray(pixels, dtype=np.float32))
                    keypoints.append([float(row[c]) for c in columns])
                except ValueError:
                    raise InputError(f"{csv_path}, row {line}: a value is not a number") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{csv_path}: cannot read ({e})") from None
    if not images:
        raise InputError(f"{csv_path}: no complete rows")
    images = np.clip(np.stack(images), 0, 255).astype(np.uint8).reshape(-1, 96, 96)
    return images, np.asarray(keypoints, dtype=np.float32).reshape(-1, 15, 2)


@dataclass
class Split:
    """faces.npz for training: train context crops (N, 144, 144) with keypoints normalized in the
    96x96 crop at their center, and validation crops (M, 96, 96), their keypoints and sources."""

    train_context: np.ndarray
    train_points: np.ndarray
    train_sources: np.ndarray
    val_images: np.ndarray
    val_points: np.ndarray
    val_sources: np.ndarray


def read_npz(npz_path, *keys: str) -> dict:
    """The named arrays of a faces.npz, checked to have train and validation frames."""
    path = Path(npz_path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (make it with python -m training.prepare_faces)")
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in keys}
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{path}: not a faces.npz from training.prepare_faces ({e})") from None
    val = arrays["validation"]
    if val.all() or not val.any():
        raise InputError(f"{path}: the validation mask leaves no train or no validation frames")
    return arrays


def load_split(npz_path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """faces.npz -> (train_images, train_kp, val_images, val_kp): uint8 (N,96,96), float32 (N,15,2)."""
    a = read_npz(npz_path, "images", "keypoints", "validation")
    images, points, val = a["images"], a["keypoints"].astype(np.float32), a["validation"]
    if images.shape[1:] != (CROP_SIZE, CROP_SIZE) or points.shape[1:] != (NUM_KEYPOINTS, 2):
        raise InputError(f"{npz_path}: unexpected shapes {images.shape} / {points.shape}")
    return images[~val], points[~val], images[val], points[val]


def load_training(npz_path) -> Split:
    a = read_npz(npz_path, "images", "context", "keypoints", "sources", "validation")
    val, points = a["validation"], a["keypoints"].astype(np.float32)
    return Split(a["context"][~val], points[~val], a["sources"][~val], a["images"][val], points[val], a["sources"][val])
