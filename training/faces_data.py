"""Loaders for the face-keypoint formats, and for the crops made from them.

(a) iBUG 68-point CSV (`Names` + 136 interleaved x, y columns) with a folder of images.
(b) The Kaggle/course `training.csv`: 30 keypoint columns + `Image` (9,216 space-separated pixels).
(c) faces.npz from `training.prepare_faces`: the crops and their identity-disjoint validation mask,
    as training (`load_training`) and export (`load_split`) read them.
(d) MTFL's five points (`points5.csv`: image, x1..x5, y1..y5, gender, smile, glasses, pose) with a
    folder of images, and its identity-disjoint split into a training and a held-out part.
"""

import csv
import hashlib
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


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path}: missing or unreadable image")
    return image


@dataclass
class Landmarks68:
    names: list[str]
    points: np.ndarray  # (N, 68, 2) float32, image pixels, OpenCV's convention (pixel centers at integers)
    image_dir: Path

    def read_image(self, index: int) -> np.ndarray:
        return read_image(self.image_dir / self.names[index])


def named_rows(csv_path: Path, header_ok, header_wanted: str, columns: int) -> tuple[list[str], np.ndarray]:
    """A CSV whose rows are a name then numbers -> (names, float64 values (N, columns - 1)), after
    `header_ok(header)`; InputError in one line naming the file and row of anything else."""
    names, rows = [], []
    try:
        with open(csv_path, newline="") as f:
            reader = csv.reader(f)
            if not header_ok(next(reader, None)):
                raise InputError(f"{csv_path}: expected {header_wanted}")
            for line, row in enumerate(reader, start=2):
                if len(row) != columns:
                    raise InputError(f"{csv_path}, row {line}: {len(row)} columns, expected {columns}")
                try:
                    rows.append([float(v) for v in row[1:]])
                except ValueError:
                    raise InputError(f"{csv_path}, row {line}: a value is not a number") from None
                names.append(row[0])
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{csv_path}: cannot read ({e})") from None
    if not rows:
        raise InputError(f"{csv_path}: no rows")
    return names, np.asarray(rows, dtype=np.float64)


def load_landmarks68(
    csv_path: Path, image_dir: Path | None = None, pixel_center: float = LABEL_PIXEL_CENTER
) -> Landmarks68:
    """The CSV's points, moved from the labels' pixel centers (`pixel_center`) to OpenCV's."""
    csv_path = Path(csv_path)
    image_dir = Path(image_dir) if image_dir else csv_path.parent / "images"
    if not image_dir.is_dir():
        raise InputError(f"{image_dir}: image folder not found")
    names, values = named_rows(
        csv_path,
        lambda header: bool(header) and header[0] == "Names" and len(header) == 137,
        "a header of Names + 136 columns",
        137,
    )
    points = values.astype(np.float32).reshape(-1, 68, 2) - pixel_center
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


# --- MTFL: five points on faces in the wild ----------------------------------------------------

MTFL_COLUMNS = ["image", *(f"{axis}{i}" for axis in "xy" for i in range(1, 6)), "gender", "smile", "glasses", "pose"]
MTFL_ATTRIBUTES = ("gender", "smile", "glasses", "pose")  # 1 male / 2 female, 1 yes / 2 no, 1 yes / 2 no, 1-5
MTFL_VALIDATION_SHARE = 0.15
# Where MTFL's x1..x5, y1..y5 put the center of a pixel, as LABEL_PIXEL_CENTER says for the 68-point
# files: where our moved labels do, so nothing is moved. Measured by `python -m
# training.mtfl_convention` (docs/keypoints.md, "MTFL: a fourth validation source"): on MTFL's
# training part, where the shipped model and dlib's agree, MTFL's points sit +0.78 px right of both
# models' (0.74-0.81 in every quarter of face sizes), and our moved labels sit +0.46 (Helen), +0.70
# (YouTube), +1.16 (AFW) px right of the same models on the held-out 68-point frames; MTFL minus
# that reference is +0.09 px in x, +0.02 in y. (The pipeline is mirror-symmetric to 0.001 px, so
# both label sets are right of OpenCV's pixel grid: a question for LABEL_PIXEL_CENTER, not MTFL's.)
# The per-point differences (eye centres, nose tip, mouth corners) change with the reference source
# by about as much as their size, so none is corrected.
MTFL_PIXEL_CENTER = 0.0

_LFW_NAME = re.compile(r"lfw_5590_(?P<person>.+)_\d{4}\.\w+")
_WEB_NAME = re.compile(r"net_7876_(?P<photo>\d+)_\d+_\d+\.\w+")  # photo, face in it, 0
_WEB_POSE_NAME = re.compile(r"net_7876__(?P<yaw>-?\d+)_(?P<photo>\d+)_\d+\.\w+")  # yaw folder, photo, face
# Photos that MTFL holds two or three times under different names (two LFW photos under two names
# each, one LFW photo among the web ones, six web photos): each group is one identity, so that no
# photo is on both sides of the split. Found by comparing every face with every other, as 24x24 gray
# of the photo's middle and as 32x32 aligned by the eyes and the mouth (correlation 0.977 or more in
# either; below that, the next pairs are different photos), and each looked at. None of MTFL's faces
# is a photo of faces/ or faces300w/ (the closest pair, aligned: 0.94, different people).
MTFL_SAME_PHOTOS = (
    ("lfw_5590_Carlos_Beltran_0001.jpg", "lfw_5590_Raul_Ibanez_0001.jpg"),
    ("lfw_5590_Andrew_Caldecott_0001.jpg", "lfw_5590_Andrew_Gilligan_0001.jpg"),
    ("lfw_5590_Jon_Stewart_0001.jpg", "net_7876_7904_0_0.jpg"),
    ("net_7876__40_1050_0.jpg", "net_7876__40_1716_0.jpg", "net_7876_5310_0_0.jpg"),
    ("net_7876_1162_0_0.jpg", "net_7876_1803_0_0.jpg", "net_7876_6982_0_0.jpg"),
    ("net_7876__-60_1798_1.jpg", "net_7876__-60_4726_1.jpg"),
    ("net_7876_527_0_0.jpg", "net_7876__20_1212_0.jpg"),
    ("net_7876_5041_0_0.jpg", "net_7876__-20_1275_0.jpg"),
    ("net_7876_6483_0_0.jpg", "net_7876__-20_1698_0.jpg"),
)
_SAME_PHOTO = {name: group[0] for group in MTFL_SAME_PHOTOS for name in group}


def mtfl_identity(file_name: str) -> str:
    """Who an MTFL face is, as far as the file name tells. LFW photos (`lfw_5590_First_Last_NNNN`)
    are the person: `lfw/First_Last`. Web photos are the photo, its faces together: `web/PHOTO` for
    `net_7876_PHOTO_FACE_0`, `web/YAW/PHOTO` for `net_7876__YAW_PHOTO_FACE` (each yaw folder numbers
    its photos anew). Any other name is its own identity."""
    name = _SAME_PHOTO.get(Path(file_name).name, Path(file_name).name)
    if m := _LFW_NAME.fullmatch(name):
        return f"lfw/{m['person']}"
    if m := _WEB_NAME.fullmatch(name):
        return f"web/{m['photo']}"
    if m := _WEB_POSE_NAME.fullmatch(name):
        return f"web/{m['yaw']}/{m['photo']}"
    return f"other/{Path(name).stem}"


def mtfl_held_out(identity: str, share: float = MTFL_VALIDATION_SHARE, seed: int = 0) -> bool:
    """Whether an identity is in MTFL's held-out part: a hash of the seed and the identity under
    `share`. The same on every machine and run, for any subset of the files, and adding photos
    moves no one; about `share` of the identities (not exactly)."""
    digest = hashlib.sha256(f"mtfl/{seed}/{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


@dataclass
class Points5:
    names: list[str]
    points: np.ndarray  # (N, 5, 2) float64 in FIVE_POINT_NAMES order, image pixels, our labels' pixel centers
    attributes: dict[str, np.ndarray]  # MTFL_ATTRIBUTES -> (N,) int, as the file codes them
    image_dir: Path

    def read_image(self, index: int) -> np.ndarray:
        return read_image(self.image_dir / self.names[index])

    @property
    def identities(self) -> list[str]:
        return [mtfl_identity(name) for name in self.names]

    def subset(self, mask: np.ndarray) -> "Points5":
        keep = np.flatnonzero(mask)
        attributes = {key: values[keep] for key, values in self.attributes.items()}
        return Points5([self.names[i] for i in keep], self.points[keep], attributes, self.image_dir)


def load_mtfl5(
    folder: Path,
    part: str = "all",
    pixel_center: float = MTFL_PIXEL_CENTER,
    share: float = MTFL_VALIDATION_SHARE,
    seed: int = 0,
) -> Points5:
    """MTFL's `points5.csv` and `images/`: all faces, or its `train` or `held_out` part (whole
    identities, `mtfl_held_out`), the points moved from MTFL's pixel centers (`pixel_center`) to ours."""
    if part not in ("all", "train", "held_out"):
        raise ValueError(f"part must be all, train or held_out, not {part!r}")
    folder = Path(folder)
    csv_path, image_dir = folder / "points5.csv", folder / "images"
    if not image_dir.is_dir():
        raise InputError(f"{image_dir}: image folder not found")
    names, values = named_rows(
        csv_path, lambda header: header == MTFL_COLUMNS, f"the header {','.join(MTFL_COLUMNS)}", len(MTFL_COLUMNS)
    )
    points = np.stack([values[:, 0:5], values[:, 5:10]], axis=-1) - pixel_center  # x1..x5, y1..y5
    attributes = {key: values[:, 10 + i].astype(int) for i, key in enumerate(MTFL_ATTRIBUTES)}
    data = Points5(names, points, attributes, image_dir)
    if part == "all":
        return data
    held_out = np.array([mtfl_held_out(identity, share, seed) for identity in data.identities], dtype=bool)
    return data.subset(held_out if part == "held_out" else ~held_out)
