"""Cut the face crops that the keypoint model trains on, by the service's own pipeline, and split
them so that no person (or photo) is on both sides.

    python -m training.prepare_faces --faces ../shared/data/faces --faces300w ../shared/data/faces300w --out data/faces

Each frame's face is the YuNet detection that best overlaps its 68 labelled points (IoU >= 0.3),
cut as `/faces` cuts it: `vision.crop.FaceCrop.around(detection)` and `FaceCrop.cut`. Where YuNet
finds no such face, a detection is made up from the labels (its box and eyes placed where YuNet's
would be, as measured on the detected frames) and counted. Besides the 96x96 crop, a 144x144
context crop (same center, angle and scale) lets training move the crop as a detector's jitter
would, without inventing border pixels.

Sources: the YouTube frames (`--faces`; a person is the file name without `_NN.jpg`) and the
Helen/AFW photos (`--faces300w`; faces from one photo stay together). Of each source a share of
the people/photos is held out whole for validation. Writes faces.npz and contact_sheet.png.

With `--mtfl`, MTFL's training part joins them as source "mtfl", for training only: its held-out
identities (`training.faces_data.mtfl_held_out`) are `training.evaluate_faces`'s fourth source and
never come here. Its faces carry five labelled points (eye centres, nose tip, mouth corners); the
other ten keypoints are NaN, which the trainer's loss leaves out (or teacher labels fill:
`training.teacher_labels`). Each is cut from the YuNet detection whose box holds its five points; a
face YuNet does not find is left out.

With `--celeba`, the unlabelled CelebA photos join as source "celeba", for training only: every
keypoint NaN until `training.teacher_labels` labels them. Each is cut from YuNet's most confident
detection on the photo padded by half its size (CelebA's aligned crops leave the face no margin).
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from training.faces_data import identity, load_landmarks68, load_mtfl5, mtfl_identity, read_image
from vision import draw, keypoints
from vision.colors import to_gray
from vision.crop import FaceCrop, denormalize, normalize
from vision.detectors import YUNET_MODEL, Detection, YuNetDetector
from vision.errors import InputError
from vision.geometry import Box, iou
from vision.signatures import CROP_SIZE

MIN_IOU = 0.3
# A profile's nose tip or mouth corner can sit on the edge of the face's box (dlib's boxes are tight):
# a detection holds a few labelled points if its box, grown by this share on each side, does.
HOLD_MARGIN = 0.1
# The context crop adds a quarter of the crop's side on each side (144 x 144 around the 96 x 96):
# room for the shifts, zoom-outs and turns of training's jitter.
CONTEXT_BORDER = CROP_SIZE // 4
CONTEXT_SIZE = CROP_SIZE + 2 * CONTEXT_BORDER
YUNET = YUNET_MODEL
RIGHT_EYE, LEFT_EYE = range(36, 42), range(42, 48)  # iBUG 68 points: the subject's right and left eye


@dataclass(frozen=True)
class BoxFromLabels:
    """Where YuNet puts its box relative to the box of the 68 labels (median over detected frames):
    center offset and size, in units of the labels' box width and height."""

    dx: float
    dy: float
    width: float
    height: float

    def detection(self, points68: np.ndarray) -> Detection:
        labels = landmark_box(points68)
        cx = labels.x + labels.width * (0.5 + self.dx)
        cy = labels.y + labels.height * (0.5 + self.dy)
        w, h = labels.width * self.width, labels.height * self.height
        return Detection(Box(cx - w / 2, cy - h / 2, w, h), None, "yunet", labelled_eyes(points68))


def landmark_box(points68: np.ndarray) -> Box:
    (x0, y0), (x1, y1) = points68.min(axis=0), points68.max(axis=0)
    return Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def labelled_eyes(points68: np.ndarray) -> tuple:
    right, left = points68[list(RIGHT_EYE)].mean(axis=0), points68[list(LEFT_EYE)].mean(axis=0)
    return (float(right[0]), float(right[1])), (float(left[0]), float(left[1]))


def best_detection(detector, image: np.ndarray, points68: np.ndarray) -> Detection | None:
    target = landmark_box(points68)
    found = [d for d in detector.detect(image) if iou(d.box, target) >= MIN_IOU]
    return max(found, key=lambda d: iou(d.box, target), default=None)


def detection_holding(detector, image: np.ndarray, points: np.ndarray, margin: float = HOLD_MARGIN) -> Detection | None:
    """For a face labelled with a few points (MTFL's five, whose box is no face box to overlap): the
    detection whose box, grown by `margin` of its size on each side, holds them all; the one centred
    nearest to them where several do."""
    points = np.asarray(points, dtype=np.float64)
    (x0, y0), (x1, y1), center = points.min(axis=0), points.max(axis=0), points.mean(axis=0)

    def holds(box: Box) -> bool:
        dx, dy = box.width * margin, box.height * margin
        return box.x - dx <= x0 and x1 <= box.x + box.width + dx and box.y - dy <= y0 and y1 <= box.y + box.height + dy

    found = [d for d in detector.detect(image) if holds(d.box)]
    return min(found, key=lambda d: float(np.hypot(*np.subtract(d.box.center, center))), default=None)


def box_from_labels(detections: list, points: list) -> BoxFromLabels:
    """The median placement of YuNet's boxes relative to the labels' boxes."""
    rows = []
    for detection, points68 in zip(detections, points):
        labels, box = landmark_box(points68), detection.box
        (lx, ly), (bx, by) = labels.center, box.center
        rows.append(
            ((bx - lx) / labels.width, (by - ly) / labels.height, box.width / labels.width, box.height / labels.height)
        )
    if not rows:
        raise InputError("YuNet found no labelled face at all: is the data right?")
    return BoxFromLabels(*map(float, np.median(np.array(rows), axis=0)))


def read_sources(folders: dict[str, Path]) -> list[tuple[str, str, "object", int]]:
    """(source, name, landmarks, index) for every labelled frame of every folder."""
    frames = []
    for source, folder in folders.items():
        landmarks = load_landmarks68(folder / "keypoints68.csv", folder / "images")
        frames += [(source, name, landmarks, i) for i, name in enumerate(landmarks.names)]
    return frames


def prepare(folders: dict[str, Path], validation_share: float = 0.15, seed: int = 0, progress: bool = True) -> dict:
    frames = read_sources(folders)
    detector = YuNetDetector(YUNET, score_threshold=0.5)
    detections = []
    for _, _, landmarks, i in tqdm(frames, desc="detecting faces", unit="frame", disable=not progress):
        detections.append(best_detection(detector, landmarks.read_image(i), landmarks.points[i]))
    found = [(d, f[2].points[f[3]]) for d, f in zip(detections, frames) if d is not None]
    fallback = box_from_labels(*zip(*found)) if found else None
    n = len(frames)
    arrays = {
        "images": np.zeros((n, CROP_SIZE, CROP_SIZE), np.uint8),
        "context": np.zeros((n, CONTEXT_SIZE, CONTEXT_SIZE), np.uint8),
        "keypoints": np.zeros((n, keypoints.NUM_KEYPOINTS, 2), np.float32),  # normalized, in the crop
        "points": np.zeros((n, keypoints.NUM_KEYPOINTS, 2), np.float32),  # image pixels
        "crops": np.zeros((n, 4), np.float32),  # cx, cy, side, angle
        "detected": np.array([d is not None for d in detections]),
    }
    for k, ((_, _, landmarks, i), detection) in enumerate(
        tqdm(list(zip(frames, detections)), desc="cropping faces", unit="frame", disable=not progress)
    ):
        points68 = landmarks.points[i]
        crop = FaceCrop.around(detection or fallback.detection(points68))
        gray = to_gray(landmarks.read_image(i))
        points = keypoints.from_ibug68(points68)
        arrays["images"][k] = crop.cut(gray)
        arrays["context"][k] = crop.cut(gray, border=CONTEXT_BORDER)
        arrays["keypoints"][k] = normalize(crop.to_crop(points))
        arrays["points"][k] = points
        arrays["crops"][k] = (crop.cx, crop.cy, crop.side, crop.angle)
    arrays["names"] = np.array([f[1] for f in frames])
    arrays["sources"] = np.array([source_of(f[0], f[1]) for f in frames])
    arrays["identities"] = np.array(
        [f"{source}/{identity(name)}" for source, name in zip(arrays["sources"], arrays["names"])]
    )
    arrays["validation"] = split_identities(arrays["identities"], arrays["sources"], validation_share, seed)
    return arrays


def prepare_mtfl(folder: Path, progress: bool = True) -> dict:
    """MTFL's training part as faces.npz's arrays: crops cut by the pipeline, the five labelled
    keypoints set and the other ten NaN, none of it for validation."""
    data = load_mtfl5(folder, "train")
    detector = YuNetDetector(YUNET, score_threshold=0.5)
    columns = {key: [] for key in ("images", "context", "keypoints", "points", "crops", "names")}
    for i in tqdm(range(len(data.names)), desc="cropping MTFL faces", unit="photo", disable=not progress):
        image = data.read_image(i)
        detection = detection_holding(detector, image, data.points[i])
        if detection is None:
            continue
        crop, gray = FaceCrop.around(detection), to_gray(image)
        points = np.full((keypoints.NUM_KEYPOINTS, 2), np.nan)
        points[list(keypoints.FIVE_POINTS)] = data.points[i]
        columns["images"].append(crop.cut(gray))
        columns["context"].append(crop.cut(gray, border=CONTEXT_BORDER))
        columns["keypoints"].append(normalize(crop.to_crop(points)))
        columns["points"].append(points)
        columns["crops"].append((crop.cx, crop.cy, crop.side, crop.angle))
        columns["names"].append(data.names[i])
    shapes = {"images": (CROP_SIZE, CROP_SIZE), "context": (CONTEXT_SIZE, CONTEXT_SIZE), "crops": (4,)}
    shapes["keypoints"] = shapes["points"] = (keypoints.NUM_KEYPOINTS, 2)
    dtypes = {"images": np.uint8, "context": np.uint8}
    arrays = {
        key: np.array(values, dtypes.get(key, np.float32)).reshape(-1, *shapes[key])
        for key, values in columns.items()
        if key in shapes
    }
    count, names = len(columns["names"]), np.array(columns["names"], dtype=str)
    return {
        **arrays,
        "detected": np.ones(count, bool),
        "names": names,
        "sources": np.array(["mtfl"] * count, dtype=str),
        "identities": np.array([f"mtfl/{mtfl_identity(name)}" for name in names], dtype=str),
        "validation": np.zeros(count, bool),
    }


def shifted(detection: Detection, dx: float, dy: float) -> Detection:
    """The same detection in an image whose origin is at (dx, dy) of this one."""
    box = detection.box
    eyes = None if detection.eyes is None else tuple((x - dx, y - dy) for x, y in detection.eyes)
    return Detection(Box(box.x - dx, box.y - dy, box.width, box.height), detection.score, "yunet", eyes)


# CelebA's aligned crops end at the face: YuNet sees the face only with room around it.
CELEBA_PAD = 0.5


def prepare_celeba(folder: Path, progress: bool = True) -> dict:
    """Unlabelled CelebA photos as faces.npz's arrays, every keypoint NaN, none for validation."""
    paths = sorted(Path(folder).glob("*.jpg"))
    if not paths:
        raise InputError(f"{folder}: no .jpg photos")
    detector = YuNetDetector(YUNET, score_threshold=0.5)
    columns = {key: [] for key in ("images", "context", "crops", "names")}
    for path in tqdm(paths, desc="cropping CelebA faces", unit="photo", disable=not progress):
        image = read_image(path)
        pad = round(CELEBA_PAD * max(image.shape[:2]))
        found = detector.detect(cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT))
        if not found:
            continue
        crop = FaceCrop.around(shifted(max(found, key=lambda d: d.score), pad, pad))
        gray = to_gray(image)
        columns["images"].append(crop.cut(gray))
        columns["context"].append(crop.cut(gray, border=CONTEXT_BORDER))
        columns["crops"].append((crop.cx, crop.cy, crop.side, crop.angle))
        columns["names"].append(path.name)
    count = len(columns["names"])
    unlabelled = np.full((count, keypoints.NUM_KEYPOINTS, 2), np.nan, np.float32)
    return {
        "images": np.array(columns["images"], np.uint8).reshape(-1, CROP_SIZE, CROP_SIZE),
        "context": np.array(columns["context"], np.uint8).reshape(-1, CONTEXT_SIZE, CONTEXT_SIZE),
        "keypoints": unlabelled,
        "points": unlabelled.copy(),
        "crops": np.array(columns["crops"], np.float32).reshape(-1, 4),
        "detected": np.ones(count, bool),
        "names": np.array(columns["names"], dtype=str),
        "sources": np.array(["celeba"] * count, dtype=str),
        "identities": np.array([f"celeba/{name}" for name in columns["names"]], dtype=str),
        "validation": np.zeros(count, bool),
    }


def joined(arrays: dict, more: dict) -> dict:
    """Two sets of faces.npz arrays as one (same keys)."""
    return {key: np.concatenate([arrays[key], more[key]]) for key in arrays}


def source_of(folder: str, name: str) -> str:
    """youtube for the YouTube frames; helen or afw (the file name's prefix) for the 300-W photos."""
    return "youtube" if folder == "youtube" else name.split("_", 1)[0]


def split_identities(identities: np.ndarray, sources: np.ndarray, validation_share: float, seed: int) -> np.ndarray:
    """Boolean mask of validation frames: per source, that share of its identities, held out whole.
    Each source draws with its own generator, so adding a source leaves the others' split as it was."""
    chosen = set()
    for source in sorted(set(sources)):
        rng = np.random.default_rng(seed)
        people = sorted(set(identities[sources == source]))
        chosen |= set(rng.choice(people, size=max(1, round(len(people) * validation_share)), replace=False))
    return np.array([person in chosen for person in identities])


def save(arrays: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    target = out / "faces.npz"
    partial = out / "faces.partial.npz"
    np.savez_compressed(partial, **arrays)
    partial.replace(target)  # nothing half-written under the real name
    return target


def save_contact_sheet(arrays: dict, path: Path, count: int = 48, seed: int = 0) -> None:
    """A grid of random crops with their labelled keypoints; a red frame marks a made-up detection."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(arrays["images"]), size=min(count, len(arrays["images"])), replace=False)
    tiles = []
    for i in picks:
        tile = cv2.resize(cv2.cvtColor(arrays["images"][i], cv2.COLOR_GRAY2BGR), None, fx=2, fy=2)
        draw.draw_keypoints(tile, (denormalize(arrays["keypoints"][i]) + 0.5) * 2 - 0.5)
        if not arrays["detected"][i]:
            cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), (0, 0, 255), 2)
        tiles.append(tile)
    cv2.imwrite(str(path), draw.contact_sheet(tiles))


def layout(arrays: dict) -> str:
    """How the keypoints sit in the crops: their mean center and outer-eye-corner distance."""
    kp = arrays["keypoints"][~np.isin(arrays["sources"], ["mtfl", "celeba"])]  # the faces with all 15 points
    left, right = keypoints.OUTER_EYE_CORNERS
    ocular = np.linalg.norm(kp[:, left] - kp[:, right], axis=-1).mean()
    cx, cy = kp.reshape(-1, 2).mean(axis=0)
    return f"keypoints centred at ({cx:+.3f}, {cy:+.3f}), outer eye corners {ocular:.3f} apart (crop half-side = 1)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.prepare_faces",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--faces", type=Path, help="the YouTube frames: keypoints68.csv and images/")
    parser.add_argument("--faces300w", type=Path, help="the Helen/AFW photos: keypoints68.csv and images/")
    parser.add_argument("--mtfl", type=Path, help="MTFL (points5.csv and images/): its training part, for training")
    parser.add_argument("--celeba", type=Path, help="unlabelled CelebA photos (*.jpg), for teacher labels")
    parser.add_argument("--out", type=Path, default=Path("data/faces"), help="where faces.npz goes")
    parser.add_argument("--validation-share", type=float, default=0.15, help="share of identities held out, per source")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folders = {name: path for name, path in (("youtube", args.faces), ("300w", args.faces300w)) if path}
    if not folders:
        parser.error("give --faces and/or --faces300w")
    if not 0 < args.validation_share < 1:
        parser.error("--validation-share must be between 0 and 1")
    try:
        arrays = prepare(folders, args.validation_share, args.seed)
        if args.mtfl:
            arrays = joined(arrays, prepare_mtfl(args.mtfl))
        if args.celeba:
            arrays = joined(arrays, prepare_celeba(args.celeba))
    except InputError as e:
        sys.exit(f"error: {e}")
    target = save(arrays, args.out)
    save_contact_sheet(arrays, args.out / "contact_sheet.png")
    val, sources = arrays["validation"], arrays["sources"]
    for source in sorted(set(sources)):
        mine = sources == source
        found = int(arrays["detected"][mine].sum())
        print(
            f"{source}: {int(mine.sum())} faces, {found} cropped from a YuNet detection ({found / mine.sum():.1%}); "
            f"train {int((mine & ~val).sum())} / validation {int((mine & val).sum())} faces, "
            f"{len(set(arrays['identities'][mine & val]))} held-out identities"
        )
    print(layout(arrays))
    print(f"wrote {target} and {args.out / 'contact_sheet.png'}")


if __name__ == "__main__":
    main()
