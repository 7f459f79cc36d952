"""How far MTFL's five points sit from ours: the convention offset, measured on MTFL's training part.

    python -m training.mtfl_convention --mtfl ../shared/data/mtfl5 --peer dlib \\
        --split data/faces/faces.npz --faces ../shared/data/faces --faces300w ../shared/data/faces300w \\
        --out runs/mtfl_convention.json

The shipped pipeline (YuNet, the crop, the keypoint model, mapped back: `vision.faces`) runs over
MTFL's training part, never the held-out one, against MTFL's points as the file gives them (no pixel
or convention correction). With `--peer dlib`, dlib's 68-point predictor on its own HOG boxes does
too (`pip install dlib-bin face-recognition-models`). Per face and point: label minus prediction, in
the face's frame (along the labelled eye line, image-left eye to image-right eye, and across it,
towards the mouth), in units of the labelled eye-centre distance; and in image pixels (x, y).

A model's own errors scatter from face to face; a difference of convention is the same on every
face. So the offsets are averaged over faces where the prediction is good: where it agrees with the
labels (NME under --agree), and, with the peer, where the two models agree with each other (their
five points within --agree of the eye-centre distance, on average), which selects on no label. The
same by head pose (1 left profile ... 5 right profile), origin (LFW or web) and quarter of the
eye-centre distance. Each mean comes with its standard error.

What a model gets wrong on average is in those means too. With the held-out 68-point frames
(`--split` and `--faces`/`--faces300w`, as `training.evaluate_faces` takes them), the same offsets
are measured where the labels are ours: a model's own mean offset there, by source. MTFL's offset
minus that reference, per model and reference source, is the difference of convention between
MTFL's labels and ours, as far as a model errs alike on both. The pipeline's own left-right offset
(half the mean difference between its points and the mirrored points of the mirrored photo, on
--mirror-photos of the photos) shows whether a common left-right offset can be the model's: a
pipeline that is mirror-symmetric has none, so such an offset is in the labels.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training import evaluate_faces
from training.faces_data import LABEL_PIXEL_CENTER, MTFL_PIXEL_CENTER
from vision.detectors import YUNET_MODEL
from vision.errors import InputError
from vision.keypoints import FIVE_POINT_NAMES, FIVE_POINTS, FLIP_PERMUTATION, to_five


def face_frame_offsets(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(N, 5, 2) label - prediction as (along the eye line, across it) in eye-centre distances."""
    labels, predicted = np.asarray(labels, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    along = labels[:, 1] - labels[:, 0]
    distance = np.linalg.norm(along, axis=-1, keepdims=True)
    along = along / distance
    across = np.stack([-along[:, 1], along[:, 0]], axis=-1)
    delta = (labels - predicted) / distance[:, None]
    return np.stack([np.einsum("npk,nk->np", delta, along), np.einsum("npk,nk->np", delta, across)], axis=-1)


def mean_and_error(values: np.ndarray) -> dict:
    """Per point and axis: mean and standard error over the faces (axis 0)."""
    n = len(values)
    mean = values.mean(axis=0)
    error = values.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full_like(mean, np.nan)
    return {"faces": n, "mean": np.round(mean, 5).tolist(), "standard_error": np.round(error, 5).tolist()}


def offsets(labels: np.ndarray, predicted: np.ndarray, groups: dict[str, np.ndarray], mask: np.ndarray) -> dict:
    """The offsets of the faces in `mask`: all together, then by each group's values."""
    frame = face_frame_offsets(labels, predicted)
    pixels = labels - predicted

    def summary(selected: np.ndarray) -> dict:
        return {
            "face_frame": mean_and_error(frame[selected]),
            "pixels": mean_and_error(pixels[selected]),
            "common_pixels": mean_and_error(pixels[selected].mean(axis=1)[:, None])["mean"][0],
        }

    result = summary(mask)
    for key, values in groups.items():
        result[f"by_{key}"] = {
            str(v): summary(mask & (values == v)) for v in sorted(set(values)) if (mask & (values == v)).any()
        }
    return result


def measure(frames: list, detector, predict, progress: bool = True, label: str = "model") -> np.ndarray:
    """(N, 5, 2) predictions on the frames (NaN where no detection is the labelled face)."""
    predicted = np.full((len(frames), len(FIVE_POINT_NAMES), 2), np.nan)
    for i, frame in enumerate(tqdm(frames, desc=label, unit="frame", disable=not progress)):
        frame = frame.loaded()
        detection = evaluate_faces.matching_detection(detector, frame)
        if detection is not None:
            predicted[i] = to_five(predict(frame, detection)[0])  # (points, confidence)
    return predicted


def nme5(a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per face, the mean distance between two sets of five points over the labelled eye-centre
    distance (NaN where either is missing)."""
    eyes = np.linalg.norm(labels[:, 0] - labels[:, 1], axis=-1)
    return np.linalg.norm(a - b, axis=-1).mean(axis=1) / eyes


def groups_of(frames: list) -> dict[str, np.ndarray]:
    """MTFL photos by pose, origin and quarter of the eye-centre distance; 68-point frames by source."""
    if not isinstance(frames[0], evaluate_faces.Photo5):
        return {"source": np.array([f.source for f in frames])}
    eyes = np.array([np.linalg.norm(f.points5[0] - f.points5[1]) for f in frames])
    quarter = np.searchsorted(np.quantile(eyes, [0.25, 0.5, 0.75]), eyes)
    return {
        "pose": np.array([f.pose for f in frames]),
        "origin": np.array([f.groups()["origin"] for f in frames]),
        "eye_distance": np.array([f"q{q + 1}" for q in quarter]),
    }


def report(frames: list, predictions: dict[str, np.ndarray], agree: float) -> dict:
    """Each model's offsets where it agrees with the labels, and where the two agree with each other."""
    labels = np.stack([f.points5 for f in frames])
    groups = groups_of(frames)
    result = {"frames": len(frames), "agree_below": agree, "points": list(FIVE_POINT_NAMES), "models": {}}
    for name, predicted in predictions.items():
        error = nme5(predicted, labels, labels)
        found = np.isfinite(error)
        result["models"][name] = {
            "found": int(found.sum()),
            "nme_median": round(float(np.nanmedian(error)), 4),
            "agreeing_with_labels": offsets(labels, predicted, groups, found & (error < agree)),
        }
    if len(predictions) == 2:
        (a, ours), (b, theirs) = predictions.items()
        between = nme5(ours, theirs, labels)
        both = np.isfinite(between) & (between < agree)
        result["models_agreeing"] = {
            "faces": int(both.sum()),
            a: offsets(labels, ours, groups, both),
            b: offsets(labels, theirs, groups, both),
        }
    return result


def selected(result: dict) -> dict[str, dict]:
    """Per model, the offsets a convention is measured from: where the two models agree with each
    other if there are two, else where the model agrees with the labels."""
    if "models_agreeing" in result:
        return {name: result["models_agreeing"][name] for name in result["models"]}
    return {name: model["agreeing_with_labels"] for name, model in result["models"].items()}


def differences(mtfl: dict, reference: dict) -> dict:
    """Per model and reference source (and all of them): MTFL's mean offsets minus the model's own
    on the reference frames, in the face's frame (% of the eye-centre distance, as fractions) and as
    a common image-pixel offset (x, y)."""
    result = {}
    for name, summary in selected(mtfl).items():
        own = selected(reference)[name]
        references = {"all": own, **own.get("by_source", {})}
        result[name] = {
            source: {
                "face_frame": np.round(
                    np.subtract(summary["face_frame"]["mean"], ref["face_frame"]["mean"]), 5
                ).tolist(),
                "common_pixels": np.round(np.subtract(summary["common_pixels"], ref["common_pixels"]), 3).tolist(),
            }
            for source, ref in references.items()
        }
    return result


def mirror_offset(photos: list, detector, predict, progress: bool = True) -> dict:
    """The pipeline's own common left-right (and up-down) offset in image pixels: half the mean
    difference between its 15 points on a photo and its points on the mirrored photo, mirrored back."""
    differences = []
    for photo in tqdm(photos, desc="mirror check", unit="photo", disable=not progress):
        photo = photo.loaded()
        width = photo.image.shape[1]
        mirrored = mirror(photo, width)
        found, found_mirrored = (evaluate_faces.matching_detection(detector, p) for p in (photo, mirrored))
        if found is None or found_mirrored is None:
            continue
        back = predict(mirrored, found_mirrored)[0][list(FLIP_PERMUTATION)]
        back[:, 0] = width - 1 - back[:, 0]
        differences.append((predict(photo, found)[0] - back).mean(axis=0))
    differences = np.array(differences).reshape(-1, 2)
    return {"frames": len(differences), "offset_pixels": np.round(differences.mean(axis=0) / 2, 4).tolist()}


def mirror(photo: "evaluate_faces.Photo5", width: int) -> "evaluate_faces.Photo5":
    """The photo and its five points mirrored (x -> width - 1 - x: pixel centers at integers), the
    points again in MTFL's order (the image-left eye first)."""
    order = [FIVE_POINTS.index(FLIP_PERMUTATION[i]) for i in FIVE_POINTS]
    points = photo.points5[order] * [-1, 1] + [width - 1, 0]
    return dataclasses.replace(photo, image=np.ascontiguousarray(photo.image[:, ::-1]), points5=points)


def table(title: str, result: dict) -> str:
    """The offsets in the face's frame, in % of the eye-centre distance, with standard errors."""
    lines = [f"{title}: {result['frames']} faces; label - prediction, % of the eye-centre distance"]

    def block(heading: str, summary: dict) -> None:
        frame = summary["face_frame"]
        x, y = summary["common_pixels"]
        lines.append(f"{heading}: {frame['faces']} faces; common image-pixel offset x {x:+.3f}, y {y:+.3f}")
        for name, (ma, mc), (ea, ec) in zip(FIVE_POINT_NAMES, frame["mean"], frame["standard_error"]):
            lines.append(
                f"  {name:<20} along {ma * 100:+6.2f} ± {ea * 100:.2f}   across {mc * 100:+6.2f} ± {ec * 100:.2f}"
            )
        for key, groups in summary.items():
            for value, group in groups.items() if key.startswith("by_") else ():
                means = " ".join(f"({a * 100:+5.1f},{c * 100:+5.1f})" for a, c in group["face_frame"]["mean"])
                lines.append(f"    {key[3:]} {value:<7} {group['face_frame']['faces']:>5} faces {means}")

    for name, model in result["models"].items():
        lines.append(f"{name}: found {model['found']}, median NME {model['nme_median']:.2%}")
        block(
            f"{name}, faces it agrees on with the labels (NME < {result['agree_below']:.0%})",
            model["agreeing_with_labels"],
        )
    for name, summary in result.get("models_agreeing", {}).items():
        if isinstance(summary, dict):
            block(f"{name}, faces where the two models agree with each other", summary)
    return "\n".join(lines)


def summary_table(results: dict) -> str:
    lines = [table("MTFL's training part, its points as given", results["mtfl"])]
    if "reference" in results:
        lines.append(table("reference: the held-out 68-point frames, our labels", results["reference"]))
        lines.append("MTFL minus reference (along, across; % of the eye-centre distance), common pixel offset (x, y):")
        for name, sources in results["mtfl_minus_reference"].items():
            for source, difference in sources.items():
                points = " ".join(f"({a * 100:+5.1f},{c * 100:+5.1f})" for a, c in difference["face_frame"])
                x, y = difference["common_pixels"]
                lines.append(f"  {name:<5} vs {source:<8} {points}   x {x:+.2f} y {y:+.2f}")
    if "pipeline_mirror" in results:
        mirrored = results["pipeline_mirror"]
        x, y = mirrored["offset_pixels"]
        lines.append(
            f"the pipeline's own common offset (mirror check, {mirrored['frames']} photos): x {x:+.4f}, y {y:+.4f} px"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.mtfl_convention",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mtfl", type=Path, required=True, help="MTFL's photos (images/ + points5.csv)")
    parser.add_argument("--split", type=Path, default=Path("data/faces/faces.npz"), help="for the reference frames")
    parser.add_argument("--faces", type=Path, help="reference: the YouTube frames folder (held-out frames)")
    parser.add_argument("--faces300w", type=Path, help="reference: the Helen/AFW photos folder (held-out photos)")
    parser.add_argument("--model", type=Path, default=Path("models/keypoints.onnx"), help="keypoint model (ONNX)")
    parser.add_argument("--yunet", type=Path, default=YUNET_MODEL)
    parser.add_argument("--peer", choices=["dlib"], help="also dlib's predictor on its own HOG boxes")
    parser.add_argument("--agree", type=float, default=0.05, help="what counts as agreeing (NME)")
    parser.add_argument("--limit", type=int, help="only this many photos of the training part (a seeded draw)")
    parser.add_argument("--mirror-photos", type=int, default=1000, help="photos for the mirror check (0: none)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (0: one per core)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not 0 < args.agree < 1:
        parser.error("--agree must be between 0 and 1")
    folders = {name: path for name, path in (("youtube", args.faces), ("300w", args.faces300w)) if path}
    progress = not args.no_progress
    try:
        photos = evaluate_faces.mtfl_photos(args.mtfl, "train", pixel_center=0.0)
        if args.limit:
            photos = [photos[i] for i in sorted(np.random.default_rng(0).permutation(len(photos))[: args.limit])]
        frames = evaluate_faces.held_out_frames(args.split, folders, LABEL_PIXEL_CENTER) if folders else []
        model = evaluate_faces.pipeline_predictor(evaluate_faces.onnx_model(args.model, args.threads))
        detectors = {"ours": (evaluate_faces.detector_named("yunet", args.yunet, args.threads), model)}
        if args.peer:
            dlib = evaluate_faces.dlib_predictor()  # first: it says how to install dlib when it is missing
            detectors["dlib"] = (evaluate_faces.detector_named("dlib", args.yunet), dlib)
        results = {}
        for part, items in (("mtfl", photos), ("reference", frames)):
            if items:
                predictions = {
                    name: measure(items, d, p, progress, f"{part}, {name}") for name, (d, p) in detectors.items()
                }
                results[part] = report(items, predictions, args.agree)
        if args.mirror_photos:
            some = sorted(np.random.default_rng(1).permutation(len(photos))[: args.mirror_photos])
            results["pipeline_mirror"] = mirror_offset([photos[i] for i in some], *detectors["ours"], progress)
    except (InputError, OSError) as e:
        sys.exit(f"error: {e}")
    if "reference" in results:
        results["mtfl_minus_reference"] = differences(results["mtfl"], results["reference"])
    results["mtfl_pixel_center_on_load"] = MTFL_PIXEL_CENTER
    print(summary_table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
