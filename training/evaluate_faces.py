"""End-to-end evaluation of the face pipeline on whole frames of people that no training crop shows.

    python -m training.evaluate_faces --split data/faces/faces.npz \\
        --faces ../shared/data/faces --faces300w ../shared/data/faces300w \\
        --mtfl ../shared/data/mtfl5                                             # the shipped model
    python -m training.evaluate_faces ... --model old.onnx --detector haar      # a model as once served
    python -m training.evaluate_faces ... --peer dlib                           # dlib's 68-point predictor
    .venv-teachers/bin/python -m training.evaluate_faces ... --peer mediapipe \\
        --peer-offsets data/faces/teachers.npz                                  # MediaPipe, offset-corrected

Each held-out frame (the split's validation frames, per source) goes through the steps of
`vision.faces.find_faces`: detect, crop, predict, map back. The detection that best overlaps the
labelled face (IoU >= 0.3 with the box of its 68 points) is the frame's face; a frame without one
is a miss. Errors are in image pixels, with the labels moved to OpenCV's pixel centers as the
training data is (`training.faces_data.LABEL_PIXEL_CENTER`; `--label-pixel-center 0` takes the
files' coordinates as they are): NME is a face's mean point-to-point error over its
outer-eye-corner distance. Prints one table per run and writes it as JSON (--out).

MTFL (`--mtfl`, the fourth source) is labelled with five points only: its held-out part
(`training.faces_data.load_mtfl5`, whole identities), each photo's face the detection whose box
(grown by 10%) holds its five points, NME over the eye-centre distance on those five points, and the
same figures by head pose (1 left profile ... 3 frontal ... 5 right profile), glasses and origin
(LFW or web photos). MTFL needs no split file.
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
from tqdm import tqdm

from training import prepare_faces, teacher_labels, teachers
from training.faces_data import LABEL_PIXEL_CENTER, MTFL_PIXEL_CENTER, load_landmarks68, load_mtfl5, read_image
from vision.colors import to_gray
from vision.crop import FaceCrop, model_input
from vision.detectors import HAAR_CROP, YUNET_INPUT, YUNET_MODEL, Detection, HaarDetector, YuNetDetector
from vision.errors import InputError
from vision.faces import KeypointModel, predict_keypoints
from vision.geometry import Box
from vision.keypoints import FIVE_POINT_NAMES, FIVE_POINTS, KEYPOINT_NAMES, from_ibug68, to_five
from vision.metrics import nme_five_per_face, nme_per_face
from vision.onnx_model import OnnxModel
from vision.signatures import DETECTORS

FAR_OFF = 0.10  # a face whose NME is over this is counted as a failure


@dataclass
class Frame:
    source: str  # youtube | helen | afw
    image: np.ndarray  # BGR
    points68: np.ndarray  # (68, 2) image pixels

    point_names: ClassVar[tuple[str, ...]] = KEYPOINT_NAMES

    def loaded(self) -> "Frame":
        return self

    def groups(self) -> dict[str, str]:
        return {}

    def match(self, detector) -> Detection | None:
        """The frame's face: the detection that best overlaps its labels (as the training crops chose)."""
        return prepare_faces.best_detection(detector, self.image, self.points68)

    @property
    def points5(self) -> np.ndarray:
        """The five points MTFL labels (FIVE_POINT_NAMES), from its 68."""
        return to_five(from_ibug68(self.points68))

    def errors(self, keypoints: np.ndarray) -> np.ndarray:
        """(15,) each predicted keypoint's error over the outer-eye-corner distance."""
        return nme_per_face(keypoints[None], from_ibug68(self.points68)[None], per_keypoint=True)[0]

    def scored(self, confidence: np.ndarray) -> np.ndarray:
        """The confidences of the points `errors` scores, in its order."""
        return confidence


@dataclass
class Photo5:
    """An MTFL photo: its labelled face's five points and what MTFL says of it. The image is read
    when the evaluation comes to it (`loaded`), so thousands of photos do not sit in memory."""

    source: str  # mtfl
    path: Path
    points5: np.ndarray  # (5, 2) image pixels, FIVE_POINT_NAMES order
    pose: int  # 1 left profile ... 3 frontal ... 5 right profile
    glasses: bool
    image: np.ndarray | None = None

    point_names: ClassVar[tuple[str, ...]] = FIVE_POINT_NAMES

    def loaded(self) -> "Photo5":
        return self if self.image is not None else replace(self, image=read_image(self.path))

    def groups(self) -> dict[str, str]:
        origin = "lfw" if self.path.name.startswith("lfw_") else "web"
        head = {3: "frontal", 2: "turned", 4: "turned"}.get(self.pose, "profile")
        return {"pose": str(self.pose), "head": head, "glasses": "yes" if self.glasses else "no", "origin": origin}

    def match(self, detector) -> Detection | None:
        return prepare_faces.detection_holding(detector, self.image, self.points5)

    def errors(self, keypoints: np.ndarray) -> np.ndarray:
        """(5,) the five shared points' errors over the labelled eye-centre distance."""
        return nme_five_per_face(to_five(keypoints)[None], self.points5[None], per_keypoint=True)[0]

    def scored(self, confidence: np.ndarray) -> np.ndarray:
        return confidence[list(FIVE_POINTS)]


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


def mtfl_photos(folder: Path, part: str = "held_out", **load) -> list[Photo5]:
    """MTFL's photos of one part (`training.faces_data.load_mtfl5`), to be read one by one."""
    data = load_mtfl5(folder, part, **load)
    pose, glasses = data.attributes["pose"], data.attributes["glasses"]
    return [
        Photo5("mtfl", data.image_dir / name, data.points[i], int(pose[i]), bool(glasses[i] == 1))
        for i, name in enumerate(data.names)
    ]


def onnx_model(path: Path, threads: int = 0) -> KeypointModel:
    """The keypoint model in onnxruntime (`threads` 0: onnxruntime's default, one per core): its
    keypoints, and their confidences if it gives them (`vision.faces.KeypointModel`)."""
    return OnnxModel(path, threads=threads).outputs


class DlibDetector:
    """dlib's own HOG frontal-face detector: the boxes its 68-point predictor was trained on."""

    name = "dlib"
    crop_style = HAAR_CROP  # like Haar's, a box from the brows to the chin and no eyes: cut as Haar's

    def __init__(self):
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def detect(self, image: np.ndarray) -> list[Detection]:
        found = self._detector(np.ascontiguousarray(image[:, :, ::-1]), 1)
        return [
            Detection(Box(r.left(), r.top(), r.width(), r.height()), None, self.name, crop_style=self.crop_style)
            for r in found
        ]


def detector_named(name: str, yunet: Path, threads: int = 0):
    if name == "dlib":
        return DlibDetector()
    if name == "haar":
        return HaarDetector()
    if not Path(yunet).is_file():
        raise InputError(f"YuNet model not found: {yunet}")
    return YuNetDetector(yunet, network=OnnxModel(yunet, threads=threads, input_name=YUNET_INPUT))


def matching_detection(detector, frame: Frame | Photo5) -> Detection | None:
    """The frame's labelled face among the detections, or None (a miss)."""
    return frame.match(detector)


def pipeline_predictor(model: KeypointModel):
    def predict(frame: Frame, detection: Detection) -> tuple[np.ndarray, np.ndarray | None]:
        crop = FaceCrop.around(detection)
        points, confidence = predict_keypoints(model, to_gray(frame.image), [crop])
        return points[0], None if confidence is None else confidence[0]

    return predict


def dlib_predictor():
    """dlib's 68-point shape predictor (face_recognition_models' file) on the same detection box."""
    dlib, shape = teachers.dlib_shape_predictor()

    def predict(frame: Frame, detection: Detection) -> tuple[np.ndarray, None]:
        b = detection.box
        rect = dlib.rectangle(round(b.x), round(b.y), round(b.x + b.width), round(b.y + b.height))
        found = shape(frame.image[:, :, ::-1].copy(), rect)
        return from_ibug68(np.array([[p.x, p.y] for p in found.parts()], dtype=np.float64)), None  # dlib has none

    return predict


def mediapipe_predictor():
    """MediaPipe's face mesh on the view around the pipeline's crop of the detection (the view its
    teacher labels come from, `training.teachers.View`); a face it does not find is a miss."""
    mesh = teachers.MediaPipeTeacher()

    def predict(frame: Frame, detection: Detection) -> tuple[np.ndarray | None, None]:
        crop = FaceCrop.around(detection)
        found = mesh.points(teachers.View.of(frame.image, crop))
        return (None if found is None else crop.to_image(found)), None

    return predict


PEERS = {"dlib": dlib_predictor, "mediapipe": mediapipe_predictor}


def offset_corrected(predict, offsets: dict[str, np.ndarray]):
    """A peer's points moved by its per-point offset to each source's annotation family
    (`training.teachers.face_frame_offsets`, measured on training faces by `training.teacher_labels`)."""

    def corrected(frame: Frame | Photo5, detection: Detection):
        points, confidence = predict(frame, detection)
        if points is None:
            return None, confidence
        return teachers.corrected(points[None], offsets[teacher_labels.FAMILIES[frame.source]])[0], confidence

    return corrected


def model_offsets(model, split: Path, batch: int = 256) -> dict[str, np.ndarray]:
    """Our model's own per-point offsets to each annotation family, by the peers' rule: its points
    on the split's human-labelled training crops against their labels (`face_frame_offsets`)."""
    with np.load(split) as data:
        train = ~data["validation"] & np.isin(data["sources"], list(teacher_labels.FAMILIES))
        images, human, sources = data["images"][train], data["keypoints"][train], data["sources"][train]
    out = [model(model_input(images[i : i + batch]))[0] for i in range(0, len(images), batch)]
    points = np.concatenate(out).reshape(human.shape)  # the keypoints, normalized in the crop
    families = np.array([teacher_labels.FAMILIES[s] for s in sources])
    return {
        family: np.nan_to_num(teachers.face_frame_offsets(points[families == family], human[families == family]))
        for family in sorted(set(families))
    }


def peer_offsets(path: Path, peer: str) -> dict[str, np.ndarray]:
    """A peer's offsets per annotation family from a teacher-labels file; a family's points that
    its humans do not label (MTFL's ten) are left where the peer put them."""
    with np.load(path) as data:
        offsets = json.loads(str(data["offsets"]))[peer]
    return {family: np.nan_to_num(np.array(o)) for family, o in offsets.items()}


def evaluate(frames: list[Frame | Photo5], detector, predict, progress: bool = True) -> dict:
    """Per source: detection rate, NME mean/median, share of faces over 10%, per-keypoint NME; for
    sources whose frames have groups (MTFL's pose, glasses, origin), the same by group; for a model
    that gives confidences, the points' errors by confidence decile."""
    rows: dict[str, dict] = {}
    started = time.perf_counter()
    for frame in tqdm(frames, desc="evaluating", unit="frame", disable=not progress):
        frame = frame.loaded()
        row = rows.setdefault(frame.source, {"names": frame.point_names, "groups": [], "errors": [], "confidence": []})
        detection = matching_detection(detector, frame)
        row["groups"].append(frame.groups())
        points, confidence = (None, None) if detection is None else predict(frame, detection)
        row["errors"].append(None if points is None else frame.errors(points))
        if confidence is not None:
            row["confidence"].append((row["errors"][-1], frame.scored(confidence)))
    report = {source: summary(row) for source, row in sorted(rows.items())}
    report["seconds_per_frame"] = round((time.perf_counter() - started) / max(1, len(frames)), 4)
    return report


def summary(row: dict) -> dict:
    report = figures(row["errors"], row["names"])
    for key in sorted({key for groups in row["groups"] for key in groups}):
        values = sorted({groups[key] for groups in row["groups"]})
        report[f"by_{key}"] = {
            value: figures([e for g, e in zip(row["groups"], row["errors"]) if g[key] == value], row["names"], False)
            for value in values
        }
    if row["confidence"]:
        errors, confidence = (np.concatenate(column) for column in zip(*row["confidence"], strict=True))
        report["confidence_deciles"] = confidence_deciles(errors, confidence)
    return report


def confidence_deciles(errors: np.ndarray, confidence: np.ndarray) -> dict:
    """Points' errors by decile of their confidence, least confident first; and the mean error of the
    least confident half over that of the most confident half (> 1: the confidence means something)."""
    order = np.argsort(confidence, kind="stable")
    deciles = np.array_split(order, 10)
    half = len(order) // 2
    return {
        "points": len(order),
        "low_to_high_half_error_ratio": round(float(errors[order[:half]].mean() / errors[order[half:]].mean()), 3),
        "deciles": [
            {
                "confidence": [round(float(confidence[d].min()), 3), round(float(confidence[d].max()), 3)],
                "nme": round(float(errors[d].mean()), 4),
                "over_10_percent": round(float(np.mean(errors[d] > FAR_OFF)), 4),
            }
            for d in deciles
        ],
    }


def figures(errors: list, names: tuple[str, ...], per_keypoint: bool = True) -> dict:
    """`errors`: per frame, None (missed) or each keypoint's error over the face's normalizing distance."""
    found = np.array([e for e in errors if e is not None]).reshape(-1, len(names))
    per_face = found.mean(axis=1) if len(found) else np.array([np.nan])
    result = {
        "frames": len(errors),
        "detected": round(len(found) / len(errors), 4),
        "nme": round(float(per_face.mean()), 4),
        "nme_median": round(float(np.median(per_face)), 4),
        "over_10_percent": round(float(np.mean(per_face > FAR_OFF)), 4),
    }
    if per_keypoint:
        result["per_keypoint"] = {name: round(float(v), 4) for name, v in zip(names, found.mean(axis=0))}
    return result


def table(label: str, report: dict) -> str:
    lines = [
        f"{label}  ({report['seconds_per_frame'] * 1000:.0f} ms per frame)",
        f"  {'source':<16} {'frames':>6} {'detected':>9} {'NME':>7} {'median':>7} {'>10%':>6}",
    ]

    def line(name: str, row: dict) -> str:
        return (
            f"  {name:<16} {row['frames']:>6} {row['detected']:>9.1%} {row['nme']:>7.2%} "
            f"{row['nme_median']:>7.2%} {row['over_10_percent']:>6.1%}"
        )

    for source, row in report.items():
        if isinstance(row, dict):
            lines.append(line(source, row))
            for key, groups in row.items():
                if key.startswith("by_"):
                    lines += [line(f"  {key[3:]} {value}", group) for value, group in groups.items()]
    if "mtfl" in report:
        lines.append("  (mtfl: 5 points, NME over the eye-centre distance; the others: 15, outer eye corners)")
    by_confidence = {
        s: r["confidence_deciles"] for s, r in report.items() if isinstance(r, dict) and "confidence_deciles" in r
    }
    if by_confidence:
        lines.append("  points' error by confidence decile, least confident first (low/high: half over half)")
        for source, row in by_confidence.items():
            deciles = " ".join(f"{d['nme']:.1%}" for d in row["deciles"])
            lines.append(f"  {source:<8} {deciles}  low/high {row['low_to_high_half_error_ratio']:.2f}")
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
    parser.add_argument("--mtfl", type=Path, help="MTFL's photos (images/ + points5.csv): its held-out part")
    parser.add_argument("--model", type=Path, default=Path("models/keypoints.onnx"), help="keypoint model (ONNX)")
    parser.add_argument(
        "--detector",
        choices=[*DETECTORS, "dlib"],
        default="yunet",
        help="dlib: dlib's HOG detector, for the dlib peer",
    )
    parser.add_argument("--yunet", type=Path, default=YUNET_MODEL)
    parser.add_argument(
        "--peer", choices=sorted(PEERS), help="evaluate a peer instead of --model (mediapipe: in .venv-teachers)"
    )
    parser.add_argument(
        "--fit-offsets",
        action="store_true",
        help="correct our model as the peers are: by its offsets to each source's annotators on the training crops",
    )
    parser.add_argument(
        "--peer-offsets",
        type=Path,
        help="correct the peer by its per-point offsets to each source's annotators (from training.teacher_labels)",
    )
    parser.add_argument(
        "--label-pixel-center",
        type=float,
        default=LABEL_PIXEL_CENTER,
        help="where the labels put a pixel's center (0: take the files' coordinates as OpenCV's)",
    )
    parser.add_argument(
        "--mtfl-pixel-center",
        type=float,
        default=MTFL_PIXEL_CENTER,
        help="where MTFL's points put a pixel's center, as --label-pixel-center for the 68 points",
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model (0: one per core)")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    folders = {name: path for name, path in (("youtube", args.faces), ("300w", args.faces300w)) if path}
    if not folders and not args.mtfl:
        parser.error("give --faces, --faces300w and/or --mtfl: the folders the held-out frames come from")
    if args.threads < 0:
        parser.error("--threads must be 0 or more")
    try:
        frames = held_out_frames(args.split, folders, args.label_pixel_center) if folders else []
        frames += mtfl_photos(args.mtfl, pixel_center=args.mtfl_pixel_center) if args.mtfl else []
        model = None if args.peer else onnx_model(args.model, args.threads)
        predict = PEERS[args.peer]() if args.peer else pipeline_predictor(model)
        if args.peer and args.peer_offsets:
            predict = offset_corrected(predict, peer_offsets(args.peer_offsets, args.peer))
        elif model and args.fit_offsets:
            predict = offset_corrected(predict, model_offsets(model, args.split))
        detector = detector_named(args.detector, args.yunet, args.threads)
        report = evaluate(frames, detector, predict, progress=not args.no_progress)
    except (InputError, OSError, KeyError) as e:
        sys.exit(f"error: {e}")
    label = f"{args.peer or args.model} with {args.detector}" + (
        " (offset-corrected)" if args.peer_offsets or args.fit_offsets else ""
    )
    print(table(label, report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": label, **report}, indent=2) + "\n")


if __name__ == "__main__":
    main()
