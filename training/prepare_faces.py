"""Cut the 96x96 face crops that the keypoint model trains on, with an identity-disjoint split.

    python -m training.prepare_faces --data ../shared/data/faces --out data/faces

Each frame is cropped around the Haar detection that best matches its labelled face (by IoU
with the landmarks' box), exactly as the service will crop it; where no detection matches, a box
derived from the landmarks stands in, and is counted. Writes `faces.npz` and `contact_sheet.png`.
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from training.faces_data import identity, load_landmarks68
from vision import draw, faces, keypoints
from vision.errors import InputError

MIN_IOU = 0.3
# A Haar box relative to the box of the 68 landmarks, measured on detected frames of this data:
# side 1.145 x the landmarks' longer side, same center x, center 0.158 x side higher.
FALLBACK_SIDE = 1.145
FALLBACK_RISE = 0.158


def landmark_box(points68: np.ndarray) -> faces.Box:
    x0, y0 = points68.min(axis=0)
    x1, y1 = points68.max(axis=0)
    return faces.Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0))


def fallback_box(points68: np.ndarray) -> faces.Box:
    """The Haar box a detector would most likely have given for these landmarks."""
    lb = landmark_box(points68)
    side = FALLBACK_SIDE * max(lb.width, lb.height)
    cx, cy = lb.x + lb.width / 2, lb.y + lb.height / 2 - FALLBACK_RISE * side
    return faces.Box(cx - side / 2, cy - side / 2, side, side)


def face_box(detector: faces.FaceDetector, gray: np.ndarray, points68: np.ndarray) -> tuple[faces.Box, bool]:
    """(box, detected): the best-matching Haar detection, else the landmark-derived box."""
    target = landmark_box(points68)
    boxes = detector.detect(gray)
    if boxes:
        best = max(boxes, key=lambda b: faces.iou(b, target))
        if faces.iou(best, target) >= MIN_IOU:
            return best, True
    return fallback_box(points68), False


def split_identities(identities: list[str], validation_share: float, seed: int) -> np.ndarray:
    """Boolean mask of validation frames; every identity falls wholly on one side."""
    people = sorted(set(identities))
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(people, size=max(1, round(len(people) * validation_share)), replace=False))
    return np.array([person in chosen for person in identities])


def prepare(data: Path, validation_share: float = 0.15, seed: int = 0, progress: bool = True) -> dict:
    landmarks = load_landmarks68(data / "keypoints68.csv", data / "images")
    detector = faces.FaceDetector()
    n = len(landmarks.names)
    crops = np.zeros((n, faces.CROP_SIZE, faces.CROP_SIZE), np.uint8)
    targets = np.zeros((n, keypoints.NUM_KEYPOINTS, 2), np.float32)
    squares = np.zeros((n, 3), np.int32)
    detected = np.zeros(n, bool)
    for i in tqdm(range(n), desc="cropping faces", unit="frame", disable=not progress):
        gray = faces.to_gray(landmarks.read_image(i))
        box, detected[i] = face_box(detector, gray, landmarks.points[i])
        square = faces.Square.around(box)
        crops[i] = faces.crop(gray, square)
        targets[i] = faces.normalize(square.to_crop(keypoints.from_ibug68(landmarks.points[i])))
        squares[i] = (square.x, square.y, square.side)
    identities = [identity(name) for name in landmarks.names]
    validation = split_identities(identities, validation_share, seed)
    return {
        "images": crops,
        "keypoints": targets,
        "names": np.array(landmarks.names),
        "identities": np.array(identities),
        "squares": squares,
        "detected": detected,
        "validation": validation,
    }


def save(arrays: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    target = out / "faces.npz"
    partial = out / "faces.partial.npz"
    np.savez_compressed(partial, **arrays)
    partial.replace(target)  # nothing half-written under the real name
    return target


def save_contact_sheet(arrays: dict, path: Path, count: int = 48, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(arrays["images"]), size=min(count, len(arrays["images"])), replace=False)
    tiles = []
    for i in picks:
        tile = cv2.resize(cv2.cvtColor(arrays["images"][i], cv2.COLOR_GRAY2BGR), None, fx=2, fy=2)
        draw.draw_keypoints(tile, (faces.denormalize(arrays["keypoints"][i]) + 0.5) * 2 - 0.5)
        if not arrays["detected"][i]:
            cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), (0, 0, 255), 2)
        tiles.append(tile)
    cv2.imwrite(str(path), draw.contact_sheet(tiles))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.prepare_faces", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="folder with keypoints68.csv and images/")
    parser.add_argument("--out", type=Path, default=Path("data/faces"), help="where faces.npz goes")
    parser.add_argument("--validation-share", type=float, default=0.15, help="share of identities held out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.validation_share < 1:
        sys.exit("error: --validation-share must be between 0 and 1")
    try:
        arrays = prepare(args.data, args.validation_share, args.seed)
    except InputError as e:
        sys.exit(f"error: {e}")
    target = save(arrays, args.out)
    save_contact_sheet(arrays, args.out / "contact_sheet.png")
    n, found, val = len(arrays["images"]), int(arrays["detected"].sum()), arrays["validation"]
    print(f"{n} frames: {found} cropped from a Haar detection ({found / n:.1%}), {n - found} from the landmark fallback")
    print(
        f"split by identity: train {int((~val).sum())} frames / {len(set(arrays['identities'][~val]))} people, "
        f"validation {int(val.sum())} frames / {len(set(arrays['identities'][val]))} people"
    )
    print(f"wrote {target} and {args.out / 'contact_sheet.png'}")


if __name__ == "__main__":
    main()
