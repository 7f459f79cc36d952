"""Teacher labels for every training face: MediaPipe's face mesh and dlib's 68-point predictor.

    make teachers   # .venv-teachers: the teachers' own environment (they cannot live in .venv)
    .venv-teachers/bin/python -m training.teacher_labels --split data/faces/faces.npz \\
        --faces ../shared/data/faces --faces300w ../shared/data/faces300w --mtfl ../shared/data/mtfl5 \\
        --celeba ../shared/data/unlabelled/celeba --out data/faces/teachers.npz

For each training face of the split (never a validation face: those are only ever evaluated), both
teachers look at the face's view (`training.teachers.View`) and their 15 points are kept in the
crop's normalized coordinates, the same frame as faces.npz's `keypoints`. Then, on the faces that
humans labelled, each teacher's offset to each annotation family (300-W's Helen and AFW, the
YouTube frames' labels, MTFL's five points) is measured in the face's frame, and both teachers'
agreement with the humans and with each other is printed.

Writes one .npz, row for row with the split (validation rows NaN): `mediapipe`, `dlib` (N, 15, 2),
`dlib_own_box` (N,) whether dlib's HOG detector found the face, `offsets` (JSON: teacher -> family
-> (15, 2)), and the split's digest. The trainer (`python -m training.keypoints --teachers`) fills
with them the points that humans did not label.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training import teachers
from training.faces_data import read_image
from vision.crop import FaceCrop, normalize
from vision.errors import InputError
from vision.keypoints import NUM_KEYPOINTS

# The annotation family of each source: whose conventions a teacher's offset is measured against.
FAMILIES = {"helen": "300w", "afw": "300w", "youtube": "youtube", "mtfl": "mtfl"}
FOLDER_FLAGS = {"youtube": "--faces", "300w": "--faces300w", "mtfl": "--mtfl", "celeba": "--celeba"}
CALIBRATION = 300  # training faces whose dlib HOG boxes place the box for the faces HOG misses


def image_path(source: str, name: str, folders: dict[str, Path]) -> Path:
    """Where a training face's whole image is: the folder given for its source."""
    key = "300w" if source in ("helen", "afw") else source
    if key not in folders:
        raise InputError(f"the split has {source} faces: give {FOLDER_FLAGS[key]} for them")
    folder = folders[key]
    return folder / name if source == "celeba" else folder / "images" / name


def label(split: dict, folders: dict[str, Path], progress: bool = True, limit: int | None = None) -> dict:
    """Both teachers' points for the split's training rows (the first `limit` of them)."""
    n = len(split["names"])
    rows = np.flatnonzero(~split["validation"])[:limit]
    out = {
        "mediapipe": np.full((n, NUM_KEYPOINTS, 2), np.nan, np.float32),
        "dlib": np.full((n, NUM_KEYPOINTS, 2), np.nan, np.float32),
        "dlib_own_box": np.zeros(n, bool),
    }

    def view_of(i: int) -> teachers.View:
        image = read_image(image_path(str(split["sources"][i]), str(split["names"][i]), folders))
        return teachers.View.of(image, FaceCrop(*map(float, split["crops"][i])))

    mesh, dlib = teachers.MediaPipeTeacher(), teachers.DlibTeacher()
    calibration = np.random.default_rng(0).choice(rows, size=min(CALIBRATION, len(rows)), replace=False)
    boxes = [
        b for i in tqdm(calibration, desc="dlib's box", disable=not progress) if (b := dlib.own_box(view_of(i).rgb))
    ]
    if boxes:
        dlib.fallback_box = tuple(np.median(boxes, axis=0).tolist())
    print(f"dlib's HOG box in the view (x, y, w, h): {np.round(dlib.fallback_box, 1).tolist()}, median of {len(boxes)}")
    for i in tqdm(rows, desc="teacher labels", unit="face", disable=not progress):
        view = view_of(i)
        found = mesh.points(view)
        if found is not None:
            out["mediapipe"][i] = normalize(found)
        points, out["dlib_own_box"][i] = dlib.points(view)
        out["dlib"][i] = normalize(points)
    return out


def offsets(split: dict, labels: dict) -> dict:
    """teacher -> family -> (15, 2) offset (list), measured where the teacher did not fail."""
    result = {}
    for teacher in teachers.TEACHERS:
        result[teacher] = {}
        for family in sorted(set(FAMILIES.values())):
            rows = usable(split, labels[teacher], family)
            result[teacher][family] = teachers.face_frame_offsets(
                labels[teacher][rows].astype(np.float64), split["keypoints"][rows].astype(np.float64)
            ).tolist()
    return result


def family_rows(split: dict, family: str) -> np.ndarray:
    """(N,) mask: the split's training faces from the sources of an annotation family."""
    sources = [s for s, f in FAMILIES.items() if f == family]
    return np.isin(split["sources"], sources) & ~split["validation"]


def usable(split: dict, points: np.ndarray, family: str) -> np.ndarray:
    """Training rows of a family where the teacher found the face and did not fail grossly."""
    mine = family_rows(split, family) & ~np.isnan(points).any(axis=(1, 2))
    return np.flatnonzero(mine)[teachers.face_errors(points[mine], split["keypoints"][mine]) < teachers.GROSS]


def report(split: dict, labels: dict, shifts: dict) -> str:
    """Per teacher and family: faces found, failures, NME raw and offset-corrected (in sample)."""
    lines = [f"{'teacher':<10} {'family':<8} {'faces':>6} {'found':>7} {'failed':>7} {'NME raw':>8} {'corrected':>9}"]
    for teacher in teachers.TEACHERS:
        for family in sorted(set(FAMILIES.values())):
            mine = family_rows(split, family)
            points, human = labels[teacher][mine].astype(np.float64), split["keypoints"][mine].astype(np.float64)
            found = ~np.isnan(points).any(axis=(1, 2))
            if not found.any():
                continue
            raw = teachers.face_errors(points[found], human[found])
            fixed = teachers.face_errors(
                teachers.corrected(points[found], np.array(shifts[teacher][family])), human[found]
            )
            ok = raw < teachers.GROSS
            lines.append(
                f"{teacher:<10} {family:<8} {int(mine.sum()):>6} {found.mean():>7.1%} {1 - ok.mean():>7.1%} "
                f"{raw[ok].mean():>8.2%} {fixed[ok].mean():>9.2%}"
            )
    lines.append("(NME over the eye-centre distance, on the human-labelled points; failed: over 15%, left out)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.teacher_labels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--split", type=Path, default=Path("data/faces/faces.npz"), help="from training.prepare_faces")
    parser.add_argument("--faces", type=Path, help="the YouTube frames folder (images/)")
    parser.add_argument("--faces300w", type=Path, help="the Helen/AFW photos folder (images/)")
    parser.add_argument("--mtfl", type=Path, help="MTFL's folder (images/)")
    parser.add_argument("--celeba", type=Path, help="the CelebA photos folder")
    parser.add_argument("--out", type=Path, default=Path("data/faces/teachers.npz"))
    parser.add_argument("--limit", type=int, help="label only the first N training faces (a quick look)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    folders = {
        key: path
        for key, path in (
            ("youtube", args.faces),
            ("300w", args.faces300w),
            ("mtfl", args.mtfl),
            ("celeba", args.celeba),
        )
        if path
    }
    try:
        split = dict(np.load(args.split))
        labels = label(split, folders, progress=not args.no_progress, limit=args.limit)
    except (InputError, OSError, KeyError) as e:
        sys.exit(f"error: {e}")
    shifts = offsets(split, labels)
    print(report(split, labels, shifts))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(args.split.read_bytes()).hexdigest()
    np.savez_compressed(args.out, **labels, names=split["names"], offsets=json.dumps(shifts), split_sha256=digest)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
