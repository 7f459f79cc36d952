"""Head pose (`vision.pose`) end to end through the service's pipeline, on faces it never saw.

    python -m training.evaluate_pose --mtfl ../shared/data/mtfl5 --split data/faces/faces.npz \\
        --faces ../shared/data/faces --faces300w ../shared/data/faces300w --out models/pose_evaluation.json

- Yaw against MTFL's pose labels (1 left profile, 2 left, 3 frontal, 4 right, 5 right profile;
  MTFL's "left" is the image's left, the subject's right: a negative yaw). Each photo goes through
  `vision.faces.find_faces` as a /faces request does (YuNet, the crop, the model, the points mapped
  back, the pose from them) with the detection that holds its labelled points. The yaw thresholds
  of the bins are chosen on MTFL's training part, then the held-out part (other people) is scored:
  the confusion table of yaw bins against the labels, the 3-way accuracy (subject's right /
  frontal / subject's left), and how often a profile's yaw has the right sign.
- The yaw's degrees against the yaw folders of MTFL's web photos (`net_7876__-40_…`: -60 ... 60).
- Roll against the eye line of the labelled points on the 68-point held-out frames (YouTube,
  Helen, AFW; the split's validation frames): mean absolute error in degrees, for the pose from
  the predicted points and from the labelled points themselves.
- The cost of `vision.pose.head_pose` per face.

`--depth-scale K` scores a variant of the mean face, its depth K times the shipped one's (the
poses recomputed from the same keypoints): e.g. 1.54 for the factorization's own depth.
"""

import argparse
import dataclasses
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.evaluate_faces import detector_named, held_out_frames, mtfl_photos, onnx_model
from vision.detectors import YUNET_MODEL
from vision.errors import InputError
from vision.faces import Face, find_faces
from vision.given_boxes import GivenBoxes
from vision.keypoints import from_ibug68
from vision.pose import MEAN_FACE_MM, head_pose

LABELS = (1, 2, 3, 4, 5)  # MTFL's pose column
BINS = ("right profile", "right", "frontal", "left", "left profile")  # the subject's, by yaw, lowest first
THRESHOLDS = np.arange(0.5, 60.01, 0.5)  # candidate yaw thresholds, degrees
_YAW_FOLDER = re.compile(r"net_7876__(-?\d+)_")


@dataclass
class Found:
    """One labelled face after the pipeline: its face (None: no detection held it) and labels."""

    label: int  # MTFL's pose, or 0 for a 68-point frame
    width: int
    height: int
    face: Face | None
    yaw_folder: int | None = None  # the web photo's yaw folder, degrees
    source: str = "mtfl"
    labelled: np.ndarray | None = None  # (15, 2) the labelled points, for a 68-point frame

    @property
    def found(self) -> bool:
        return self.face is not None

    @property
    def points(self) -> np.ndarray:
        return self.face.keypoints


def _pipeline(frame, detector, model) -> tuple[Face | None, int, int]:
    frame = frame.loaded()
    detection = frame.match(detector)
    height, width = frame.image.shape[:2]
    found = None if detection is None else find_faces(frame.image, GivenBoxes([detection]), model)[0]
    return found, width, height


def pipeline_faces(mtfl: Path, part: str, model: Path, threads: int = 1, progress: bool = True) -> list[Found]:
    """MTFL's photos of one part (`train`, `held_out`) through the service's pipeline."""
    detector, predict = detector_named("yunet", YUNET_MODEL, threads), onnx_model(model, threads)
    found = []
    for photo in tqdm(mtfl_photos(mtfl, part), desc=f"mtfl {part}", unit="photo", disable=not progress):
        face, width, height = _pipeline(photo, detector, predict)
        folder = _YAW_FOLDER.match(photo.path.name)
        found.append(Found(photo.pose, width, height, face, int(folder.group(1)) if folder else None))
    return found


def frames_68(split: Path, folders: dict[str, Path], model: Path, threads: int = 1, progress: bool = True):
    """The split's held-out 68-point frames through the service's pipeline."""
    detector, predict = detector_named("yunet", YUNET_MODEL, threads), onnx_model(model, threads)
    found = []
    for frame in tqdm(held_out_frames(split, folders), desc="68-point frames", unit="frame", disable=not progress):
        face, width, height = _pipeline(frame, detector, predict)
        found.append(Found(0, width, height, face, source=frame.source, labelled=from_ibug68(frame.points68)))
    return found


def yaws(found: list[Found]) -> np.ndarray:
    """Each face's yaw; NaN where it was missed or has no pose."""
    return np.array([np.nan if f.face is None or f.face.pose is None else f.face.pose.yaw for f in found])


def yaw_bins(yaw: np.ndarray, turned: float, profile: float) -> np.ndarray:
    """Index into BINS (-1 for NaN): |yaw| under `turned` frontal, over `profile` a profile."""
    bins = np.digitize(yaw, [-profile, -turned, turned, profile])
    return np.where(np.isnan(yaw), -1, bins)


def three_way(bins: np.ndarray) -> np.ndarray:
    return np.sign(bins - 2) * (bins >= 0)  # -1 right, 0 frontal, 1 left; -1 too for NaN (never a label)


def label_sides(labels: np.ndarray) -> np.ndarray:
    return np.sign(labels - 3)  # MTFL's 1, 2 (image left): the subject's right, -1


def choose_thresholds(yaw: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """On training faces: the frontal threshold with the best 3-way accuracy, then the profile
    threshold with the best 5-way accuracy."""
    sides = label_sides(labels)
    missed = np.isnan(yaw)

    def accuracy3(t: float) -> float:
        return float(np.mean((three_way(yaw_bins(yaw, t, 90)) == sides) & ~missed))

    turned = max(THRESHOLDS, key=accuracy3)
    profiles = [t for t in THRESHOLDS if t > turned]
    profile = max(profiles, key=lambda t: float(np.mean(yaw_bins(yaw, turned, t) == labels - 1)))
    return float(turned), float(profile)


def yaw_report(train: list[Found], held_out: list[Found]) -> dict:
    labels_train, labels = (np.array([f.label for f in part]) for part in (train, held_out))
    turned, profile = choose_thresholds(yaws(train), labels_train)
    yaw = yaws(held_out)
    bins = yaw_bins(yaw, turned, profile)
    confusion = {
        str(label): {**{name: int(np.sum((labels == label) & (bins == i))) for i, name in enumerate(BINS)}}
        | {"no pose": int(np.sum((labels == label) & (bins < 0)))}
        for label in LABELS
    }
    profiles = np.isin(labels, (1, 5))
    with_pose = profiles & ~np.isnan(yaw)
    folders = np.array([np.nan if f.yaw_folder is None else f.yaw_folder for f in held_out])
    by_folder = {
        str(int(v)): round(float(np.nanmedian(yaw[folders == v])), 1) for v in np.unique(folders[~np.isnan(folders)])
    }
    in_folder = ~np.isnan(folders) & ~np.isnan(yaw)
    return {
        "faces": len(held_out),
        "training_faces": len(train),
        "thresholds_deg": {"frontal_under": turned, "profile_over": profile},
        "missed": round(float(np.mean([not f.found for f in held_out])), 4),
        "no_pose": round(float(np.mean(np.isnan(yaw))), 4),
        "accuracy_3way": round(float(np.mean(three_way(bins) == label_sides(labels))), 4),
        "accuracy_5way": round(float(np.mean(bins == labels - 1)), 4),
        "profiles": int(profiles.sum()),
        "profile_sign_right": _mean(np.sign(yaw[with_pose]) == label_sides(labels[with_pose])),
        "profiles_with_pose": round(float(with_pose.sum() / max(1, profiles.sum())), 4),
        "confusion": confusion,
        "median_yaw_by_web_folder": by_folder,
        "web_folder_yaw_mae": _mean(np.abs(yaw[in_folder] - folders[in_folder])),
    }


def _mean(values: np.ndarray) -> float | None:
    """The mean, or None (null in the JSON) of nothing."""
    return round(float(np.mean(values)), 4) if len(values) else None


def eye_line_roll(points: np.ndarray) -> float:
    (lx, ly), (rx, ry) = points[0], points[1]  # left_eye_center, right_eye_center
    return math.degrees(math.atan2(ly - ry, lx - rx))


def with_face(found: list[Found], face: np.ndarray) -> list[Found]:
    """The same faces, their poses fitted with another 3D face."""
    return [
        f
        if f.face is None
        else dataclasses.replace(
            f, face=dataclasses.replace(f.face, pose=head_pose(f.points, f.width, f.height, f.face.confidence, face))
        )
        for f in found
    ]


def roll_report(frames: list[Found], face: np.ndarray = MEAN_FACE_MM) -> dict:
    report = {}
    for source in sorted({f.source for f in frames}):
        mine = [f for f in frames if f.source == source]
        errors, from_labels, no_pose = [], [], 0
        for f in mine:
            truth = eye_line_roll(f.labelled)
            labelled_pose = head_pose(f.labelled, f.width, f.height, face=face)
            if labelled_pose is not None:
                from_labels.append(abs(labelled_pose.roll - truth))
            if f.face is None or f.face.pose is None:
                no_pose += 1
            else:
                errors.append(abs(f.face.pose.roll - truth))
        report[source] = {
            "frames": len(mine),
            "no_pose_or_missed": round(no_pose / len(mine), 4),
            "roll_mae_deg": _mean(np.array(errors)),
            "roll_mae_from_labelled_points_deg": _mean(np.array(from_labels)),
        }
    return report


def cost_per_face(found: list[Found], repeats: int = 3) -> float:
    """Microseconds per `head_pose` call on the found faces' points, the best of `repeats` passes."""
    faces_found = [f for f in found if f.found]
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for f in faces_found:
            head_pose(f.face.keypoints, f.width, f.height, f.face.confidence)
        best = min(best, (time.perf_counter() - started) / max(1, len(faces_found)))
    return round(best * 1e6, 1)


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def table(report: dict) -> str:
    yaw = report["yaw"]
    t = yaw["thresholds_deg"]
    lines = [
        f"MTFL held-out: {yaw['faces']} faces; thresholds from {yaw['training_faces']} training faces: "
        f"|yaw| < {t['frontal_under']:g} frontal, > {t['profile_over']:g} profile",
        f"  3-way accuracy {yaw['accuracy_3way']:.1%}, 5-way {yaw['accuracy_5way']:.1%}; profiles' yaw sign right "
        f"{_percent(yaw['profile_sign_right'])} of {yaw['profiles']} ({yaw['profiles_with_pose']:.1%} with a pose); "
        f"missed {yaw['missed']:.1%}, no pose {yaw['no_pose']:.1%}",
        "  label \\ yaw bin " + "".join(f"{name:>14}" for name in (*BINS, "no pose")),
    ]
    for label, row in yaw["confusion"].items():
        lines.append(f"  {label:<16}" + "".join(f"{n:>14}" for n in row.values()))
    folders = ", ".join(f"{k}: {v:+.1f}" for k, v in yaw["median_yaw_by_web_folder"].items())
    lines.append(f"  median yaw by web folder: {folders or '-'} (MAE {yaw['web_folder_yaw_mae'] or 0:.1f} deg)")
    for source, row in report["roll"].items():
        lines.append(
            f"  roll vs the labelled eye line, {source:<8} {row['frames']:>4} frames: "
            f"MAE {row['roll_mae_deg'] or 0:.2f} deg "
            f"(from the labelled points {row['roll_mae_from_labelled_points_deg'] or 0:.2f}); "
            f"no pose {row['no_pose_or_missed']:.1%}"
        )
    lines.append(f"  head_pose: {report['microseconds_per_face']:.0f} us per face")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate_pose",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mtfl", type=Path, required=True, help="MTFL's photos (images/ + points5.csv)")
    parser.add_argument("--split", type=Path, default=Path("data/faces/faces.npz"), help="from training.prepare_faces")
    parser.add_argument("--faces", type=Path, help="the YouTube frames folder, for roll")
    parser.add_argument("--faces300w", type=Path, help="the Helen/AFW photos folder, for roll")
    parser.add_argument("--model", type=Path, default=Path("models/keypoints.onnx"), help="keypoint model (ONNX)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model (0: one per core)")
    parser.add_argument("--depth-scale", type=float, default=1.0, help="score the mean face this many times as deep")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    folders = {name: path for name, path in (("youtube", args.faces), ("300w", args.faces300w)) if path}
    if args.threads < 0:
        parser.error("--threads must be 0 or more")
    if not args.depth_scale > 0:
        parser.error("--depth-scale must be > 0")
    face = MEAN_FACE_MM * [1, 1, args.depth_scale]
    progress = not args.no_progress
    try:
        train = pipeline_faces(args.mtfl, "train", args.model, args.threads, progress)
        held_out = pipeline_faces(args.mtfl, "held_out", args.model, args.threads, progress)
        frames = frames_68(args.split, folders, args.model, args.threads, progress) if folders else []
    except (InputError, OSError, KeyError) as e:
        sys.exit(f"error: {e}")
    if args.depth_scale != 1:
        train, held_out, frames = (with_face(part, face) for part in (train, held_out, frames))
    report = {
        "model": str(args.model),
        "mean_face_depth_scale": args.depth_scale,
        "yaw": yaw_report(train, held_out),
        "roll": roll_report(frames, face),
        "microseconds_per_face": cost_per_face(held_out),
    }
    print(table(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
