"""End-to-end evaluation of the face pipeline on whole frames of people that no training crop shows.

    python -m training.evaluate_faces --split data/faces/faces.npz \\
        --faces ../shared/data/faces --faces300w ../shared/data/faces300w          # the shipped model
    python -m training.evaluate_faces ... --model old.onnx --detector haar      # a model as once served
    python -m training.evaluate_faces ... --peer dlib                           # dlib's 68-point predictor

Each held-out frame (the split's validation frames, per source) goes through the steps of
`vision.faces.find_faces`: detect, crop, predict, map back. The detection that best overlaps the
labelled face (IoU >= 0.3 with the box of its 68 points) is the frame's face; a frame without one
is a miss. Errors are in image pixels, with the labels moved to OpenCV's pixel centers as the
training data is (`training.faces_data.LABEL_PIXEL_CENTER`; `--label-pixel-center 0` takes the
files' coordinates as they are): NME is a face's mean point-to-point error over its
outer-eye-corner distance. Prints one table per run and writes it as JSON (--out).
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training import prepare_faces
from training.faces_data import LABEL_PIXEL_CENTER, load_landmarks68
from vision import faces
from vision.errors import InputError
from vision.keypoints import KEYPOINT_NAMES, from_ibug68
from vision.metrics import nme_per_face

FAR_OFF = 0.10  # a face whose NME is over this is counted as a failure


@dataclass
class Frame:
    source: str  # youtube | helen | afw
    image: np.ndarray  # BGR
    points68: np.ndarray  # (68, 2) image pixels


def held_out_frames(split: Path, folders: dict[str, Path], pixel_center: float = LABEL_PIXEL_CENTER) -> list[Frame]:
    """The validation frames of the split, read whole from their data folders."""
    with np.load(split) as arrays:
        names, sources, validation = arrays["names"], arrays["sources"], arrays["validation"]
    wanted = {(str(s), str(n)) for s, n, v in zip(sources, names, validation) if v}
    frames = []
    for folder_source, folder in folders.items():
        landmarks = load_landmarks68(folder / "keypoints68.csv", folder / "images", pixel_center)
        for i, name in enumerate(landmarks.names):
            source = prepare_faces.source_of(folder_source, name)
            if (source, name) in wanted:
                frames.append(Frame(source, landmarks.read_image(i), landmarks.points[i]))
    if len(frames) != len(wanted):
        raise InputError(f"{split}: {len(wanted) - len(frames)} validation frames not found in the data folders")
    return frames


def onnx_model(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})[0]


class DlibDetector:
    """dlib's own HOG frontal-face detector: the boxes its 68-point predictor was trained on."""

    name = "dlib"

    def __init__(self):
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[faces.Detection]:
        found = self._detector(np.ascontiguousarray(image[:, :, ::-1]), 1)
        return [faces.Detection(faces.Box(r.left(), r.top(), r.width(), r.height()), None, "haar") for r in found]


def detector_named(name: str, yunet: Path):
    if name == "dlib":
        return DlibDetector()
    return faces.HaarDetector() if name == "haar" else faces.YuNetDetector(yunet)


def matching_detection(detector, frame: Frame) -> faces.Detection | None:
    """The frame's face: the detection that best overlaps its labels (as the training crops chose)."""
    return prepare_faces.best_detection(detector, frame.image, frame.points68)


def pipeline_predictor(model, style: faces.CropStyle | None):
    def predict(frame: Frame, detection: faces.Detection) -> np.ndarray:
        crop = faces.FaceCrop.around(detection, style)
        return faces.predict_keypoints(model, faces.to_gray(frame.image), [crop])[0]

    return predict


def dlib_predictor():
    """dlib's 68-point shape predictor (face_recognition_models' file) on the same detection box."""
    import importlib.util

    package = importlib.util.find_spec("face_recognition_models")
    try:
        import dlib
    except ImportError:
        package = None
    if package is None:
        raise InputError("--peer dlib needs `pip install dlib-bin face-recognition-models`")
    # The package's own locator needs pkg_resources, which new setuptools no longer has: find the file.
    weights = Path(package.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    shape = dlib.shape_predictor(str(weights))

    def predict(frame: Frame, detection: faces.Detection) -> np.ndarray:
        b = detection.box
        rect = dlib.rectangle(round(b.x), round(b.y), round(b.x + b.width), round(b.y + b.height))
        found = shape(frame.image[:, :, ::-1].copy(), rect)
        return from_ibug68(np.array([[p.x, p.y] for p in found.parts()], dtype=np.float64))

    return predict


def evaluate(frames: list[Frame], detector, predict, progress: bool = True) -> dict:
    """Per source: detection rate, NME mean/median, share of faces over 10%, per-keypoint NME."""
    rows: dict[str, dict] = {}
    started = time.perf_counter()
    for frame in tqdm(frames, desc="evaluating", unit="frame", disable=not progress):
        row = rows.setdefault(frame.source, {"frames": 0, "errors": []})
        row["frames"] += 1
        detection = matching_detection(detector, frame)
        if detection is None:
            continue
        truth = from_ibug68(frame.points68)
        row["errors"].append(nme_per_face(predict(frame, detection)[None], truth[None], per_keypoint=True)[0])
    report = {source: summary(row) for source, row in sorted(rows.items())}
    report["seconds_per_frame"] = round((time.perf_counter() - started) / max(1, len(frames)), 4)
    return report


def summary(row: dict) -> dict:
    errors = np.array(row["errors"]).reshape(-1, len(KEYPOINT_NAMES))  # (faces, 15) over the ocular distance
    per_face = errors.mean(axis=1) if len(errors) else np.array([np.nan])
    return {
        "frames": row["frames"],
        "detected": round(len(errors) / row["frames"], 4),
        "nme": round(float(per_face.mean()), 4),
        "nme_median": round(float(np.median(per_face)), 4),
        "over_10_percent": round(float(np.mean(per_face > FAR_OFF)), 4),
        "per_keypoint": {name: round(float(v), 4) for name, v in zip(KEYPOINT_NAMES, errors.mean(axis=0))},
    }


def table(label: str, report: dict) -> str:
    lines = [
        f"{label}  ({report['seconds_per_frame'] * 1000:.0f} ms per frame)",
        f"  {'source':<8} {'frames':>6} {'detected':>9} {'NME':>7} {'median':>7} {'>10%':>6}",
    ]
    for source, row in report.items():
        if isinstance(row, dict):
            lines.append(
                f"  {source:<8} {row['frames']:>6} {row['detected']:>9.1%} {row['nme']:>7.2%} "
                f"{row['nme_median']:>7.2%} {row['over_10_percent']:>6.1%}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate_faces",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--split", type=Path, default=Path("data/faces/faces.npz"), help="from training.prepare_faces")
    parser.add_argument("--faces", type=Path, help="the YouTube frames folder (images/ + keypoints68.csv)")
    parser.add_argument("--faces300w", type=Path, help="the Helen/AFW photos folder")
    parser.add_argument("--model", type=Path, default=Path("models/keypoints.onnx"), help="keypoint model (ONNX)")
    parser.add_argument(
        "--detector",
        choices=[*faces.CROP_STYLES, "dlib"],
        default="yunet",
        help="dlib: dlib's HOG detector, for the dlib peer",
    )
    parser.add_argument("--yunet", type=Path, default=faces.YUNET_MODEL)
    parser.add_argument("--peer", choices=["dlib"], help="evaluate a peer instead of --model")
    parser.add_argument(
        "--label-pixel-center",
        type=float,
        default=LABEL_PIXEL_CENTER,
        help="where the labels put a pixel's center (0: take the files' coordinates as OpenCV's)",
    )
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    folders = {name: path for name, path in (("youtube", args.faces), ("300w", args.faces300w)) if path}
    if not folders:
        parser.error("give --faces and/or --faces300w: the folders the split's frames come from")
    try:
        frames = held_out_frames(args.split, folders, args.label_pixel_center)
        detector = detector_named(args.detector, args.yunet)
        predict = dlib_predictor() if args.peer else pipeline_predictor(onnx_model(args.model), None)
        report = evaluate(frames, detector, predict, progress=not args.no_progress)
    except (InputError, OSError, KeyError) as e:
        sys.exit(f"error: {e}")
    label = f"{args.peer or args.model} with {args.detector}"
    print(table(label, report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": label, **report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
