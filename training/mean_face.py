"""The 3D mean face that `vision.pose` turns to fit a face's 15 keypoints, from our own labels.

    python -m training.mean_face --split data/faces/faces.npz --faces ../shared/data/faces \\
        --faces300w ../shared/data/faces300w --mtfl ../shared/data/mtfl5

1. Shape: a rigid factorization (Tomasi and Kanade 1992, affine cameras, with the metric upgrade)
   of the training faces' 68 labelled points (the split's training frames of YouTube, Helen and
   AFW; no held-out face): the 2D shapes of many faces seen from many sides are the projections
   of one 3D shape. The 68 points are mapped to our 15 as `vision.keypoints.IBUG68_SOURCES` does,
   made left-right symmetric, placed with the eye centres on the x axis and scaled to eye centres
   EYE_DISTANCE_MM apart.
2. Depth: frontal faces say little about depth and the factorization's is too deep for turned
   ones, so its depth is scaled by the factor (of DEPTH_FACTORS) with which the face fits best (the
   least mean error of `vision.pose.fit`, head_pose's fit) the keypoints that the service's
   pipeline finds on MTFL's training photos labelled turned (poses 1, 2, 4 and 5).

Prints the face as the Python literal that `vision.pose.MEAN_FACE_MM` holds.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from training import prepare_faces
from training.faces_data import load_landmarks68
from vision.errors import InputError
from vision.keypoints import FLIP_PERMUTATION, IBUG68_SOURCES, KEYPOINT_NAMES
from vision.pose import EYE_DISTANCE_MM, fit

DEPTH_FACTORS = np.round(np.arange(0.3, 1.21, 0.05), 2)
TURNED_POSES = (1, 2, 4, 5)


def training_landmarks(split: Path, folders: dict[str, Path]) -> np.ndarray:
    """(N, 68, 2) the labelled points of the split's training frames."""
    with np.load(split) as arrays:
        wanted = {
            (str(s), str(n)) for s, n, v in zip(arrays["sources"], arrays["names"], arrays["validation"]) if not v
        }
    shapes = []
    for folder_source, folder in folders.items():
        landmarks = load_landmarks68(folder / "keypoints68.csv", folder / "images")
        for name, points in zip(landmarks.names, landmarks.points, strict=True):
            if (prepare_faces.source_of(folder_source, name), name) in wanted:
                shapes.append(points)
    if not shapes:
        raise InputError(f"{split}: no training frame found in the data folders")
    return np.array(shapes, dtype=np.float64)


def _bilinear(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows of a^T L b as linear functions of the symmetric L's six entries."""
    return np.stack(
        [
            a[:, 0] * b[:, 0],
            a[:, 0] * b[:, 1] + a[:, 1] * b[:, 0],
            a[:, 0] * b[:, 2] + a[:, 2] * b[:, 0],
            a[:, 1] * b[:, 1],
            a[:, 1] * b[:, 2] + a[:, 2] * b[:, 1],
            a[:, 2] * b[:, 2],
        ],
        axis=1,
    )


def factorize(shapes: np.ndarray) -> np.ndarray:
    """(N, P, 2) 2D shapes of one rigid object under affine cameras -> (P, 3) its 3D shape, up to a
    rotation and a reflection."""
    centred = shapes - shapes.mean(axis=1, keepdims=True)
    centred /= np.sqrt((centred**2).sum(axis=(1, 2), keepdims=True) / shapes.shape[1])  # each face weighs alike
    count = len(shapes)
    u, s, vt = np.linalg.svd(np.concatenate([centred[..., 0], centred[..., 1]]), full_matrices=False)
    cameras, shape = u[:, :3] * np.sqrt(s[:3]), np.sqrt(s[:3])[:, None] * vt[:3]
    rows_x, rows_y = cameras[:count], cameras[count:]
    # The metric upgrade: each camera's two rows orthogonal and of equal length (mean length 1).
    equations = np.vstack(
        [_bilinear(rows_x, rows_x) - _bilinear(rows_y, rows_y), _bilinear(rows_x, rows_y), _bilinear(rows_x, rows_x)]
    )
    wanted = np.concatenate([np.zeros(2 * count), np.ones(count)])
    l = np.linalg.lstsq(equations, wanted, rcond=None)[0]  # noqa: E741
    gram = np.array([[l[0], l[1], l[2]], [l[1], l[3], l[4]], [l[2], l[4], l[5]]])
    return np.linalg.solve(np.linalg.cholesky(gram), shape).T


def mean_face(points68: np.ndarray) -> np.ndarray:
    """(68, 3) a factorized shape -> (15, 3) in vision.pose's frame and units, symmetric."""
    points = np.stack([points68[list(source)].mean(axis=0) for source in IBUG68_SOURCES])
    index = KEYPOINT_NAMES.index
    left, right = points[index("left_eye_center")], points[index("right_eye_center")]
    mouth = (points[index("mouth_left_corner")] + points[index("mouth_right_corner")]) / 2
    x = (left - right) / np.linalg.norm(left - right)
    y = mouth - (left + right) / 2
    y = (y - x * (x @ y)) / np.linalg.norm(y - x * (x @ y))
    face = (points - (left + right) / 2) @ np.stack([x, y, np.cross(x, y)]).T
    if face[index("nose_tip"), 2] > 0:  # the factorization's mirror image: the nose points away
        face[:, 2] *= -1
    face = (face + face[list(FLIP_PERMUTATION)] * [-1, 1, 1]) / 2
    return face * EYE_DISTANCE_MM / np.linalg.norm(face[index("left_eye_center")] - face[index("right_eye_center")])


def depth_factor(face: np.ndarray, found: list) -> tuple[float, dict]:
    """The DEPTH_FACTORS entry whose face fits the found faces' points best, and each one's error."""
    errors = {}
    for factor in DEPTH_FACTORS:
        deeper = face * [1, 1, factor]
        errors[float(factor)] = float(np.mean([fit(f.points, f.width, f.height, deeper)[1] for f in found]))
    return min(errors, key=errors.get), errors


def literal(face: np.ndarray) -> str:
    rows = [f"        [{x:.1f}, {y:.1f}, {z:.1f}],  # {name}" for name, (x, y, z) in zip(KEYPOINT_NAMES, face)]
    return "MEAN_FACE_MM = np.array(\n    [\n" + "\n".join(rows).replace("-0.0", "0.0") + "\n    ]\n)"


def main(argv: list[str] | None = None) -> None:
    from training.evaluate_pose import pipeline_faces  # the service's pipeline on MTFL's photos

    parser = argparse.ArgumentParser(
        prog="python -m training.mean_face", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", type=Path, default=Path("data/faces/faces.npz"), help="from training.prepare_faces")
    parser.add_argument("--faces", type=Path, required=True, help="the YouTube frames folder")
    parser.add_argument("--faces300w", type=Path, required=True, help="the Helen/AFW photos folder")
    parser.add_argument("--mtfl", type=Path, required=True, help="MTFL's photos: its training part sets the depth")
    parser.add_argument("--model", type=Path, default=Path("models/keypoints.onnx"), help="keypoint model (ONNX)")
    args = parser.parse_args(argv)
    try:
        shapes = training_landmarks(args.split, {"youtube": args.faces, "300w": args.faces300w})
        face = mean_face(factorize(shapes))
        turned = [f for f in pipeline_faces(args.mtfl, "train", args.model) if f.found and f.label in TURNED_POSES]
    except (InputError, OSError, KeyError) as e:
        sys.exit(f"error: {e}")
    factor, errors = depth_factor(face, turned)
    print(
        f"{len(shapes)} training faces factorized; depth x{factor:g} fits {len(turned)} turned MTFL training faces best"
    )
    print("  mean fit error by depth factor: " + ", ".join(f"x{k:g} {v:.4f}" for k, v in errors.items()))
    print(literal(face * [1, 1, factor]))


if __name__ == "__main__":
    main()
