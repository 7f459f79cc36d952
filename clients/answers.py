"""The service's /faces and /keypoints answers as typed records.

clients.api parses each answer once, where it arrives (`--local`'s in-process answers too), and
every client module (the CLI, the overlay, the tracker, the smoother, the webcam client) takes
the records, so a box or a keypoint is read from JSON in one place. They mirror the service's
schema (service/answers.py, published in /docs.json), plus the `id` the webcam client's tracker
gives a face on video; `as_json` writes a record as the service wrote it (tests/test_clients.py
checks that on real answers). Numbers stay as sent: a box's pixels are whole numbers, and written
back as such.
"""

from dataclasses import dataclass, replace

import numpy as np

from vision.geometry import Box
from vision.pose import HeadPose

# The points a /faces `boxes` entry takes its eyes from (the crop is turned to level them).
EYE_CENTRES = ("right_eye_center", "left_eye_center")  # the subject's right eye (the image's left) first


def box_of(record: dict) -> Box:
    """An answer's box, {"x", "y", "width", "height"} (a face's, a digit's) -> Box."""
    return Box(record["x"], record["y"], record["width"], record["height"])


def box_json(box: Box) -> dict:
    """A Box as the answers write it (the values as they are: Box.as_dict would truncate them)."""
    return {"x": box.x, "y": box.y, "width": box.width, "height": box.height}


def given_box(box: Box, eyes=None, score: float | None = None) -> dict:
    """An entry of /faces' `boxes` field, which cuts and predicts this box instead of detecting:
    the box, the eyes that level its crop ([[right x, right y], [left x, left y]]) where known, and
    the detector's score where there is one; pixels to 2 decimals."""
    entry = {side: round(float(value), 2) for side, value in box_json(box).items()}
    if eyes is not None:
        entry["eyes"] = [[round(float(v), 2) for v in eye] for eye in eyes]
    if score is not None:
        entry["score"] = score
    return entry


def _pose(record: dict | None) -> HeadPose | None:
    return None if record is None else HeadPose(record["yaw"], record["pitch"], record["roll"])


def _pose_json(pose: HeadPose | None) -> dict | None:
    return None if pose is None else {"yaw": pose.yaw, "pitch": pose.pitch, "roll": pose.roll}


@dataclass(frozen=True)
class Keypoint:
    """One named keypoint in image pixels, with the model's confidence in it (None: a model without one)."""

    name: str
    x: float
    y: float
    confidence: float | None = None

    @classmethod
    def from_json(cls, record: dict) -> "Keypoint":
        return cls(record["name"], record["x"], record["y"], record.get("confidence"))

    def as_json(self) -> dict:
        return {"name": self.name, "x": self.x, "y": self.y, "confidence": self.confidence}


def _keypoints(records: list[dict]) -> tuple[Keypoint, ...]:
    return tuple(Keypoint.from_json(record) for record in records)


class _Points:
    """What a record with keypoints offers: them as an array, their confidences, one by name."""

    keypoints: tuple[Keypoint, ...]

    @property
    def points(self) -> np.ndarray:
        """(15, 2) float array of the keypoints' pixels, in the answer's (course) order."""
        return np.array([[k.x, k.y] for k in self.keypoints], dtype=np.float64).reshape(-1, 2)

    @property
    def confidence(self) -> list[float | None]:
        return [k.confidence for k in self.keypoints]

    def point(self, name: str) -> tuple[float, float] | None:
        return next(((k.x, k.y) for k in self.keypoints if k.name == name), None)


@dataclass(frozen=True)
class KeypointsAnswer(_Points):
    """/keypoints: one face crop's keypoints and the head's pose from them (None: they support none)."""

    keypoints: tuple[Keypoint, ...]
    pose: HeadPose | None = None

    @classmethod
    def from_json(cls, record: dict) -> "KeypointsAnswer":
        return cls(_keypoints(record["keypoints"]), _pose(record.get("pose")))

    def as_json(self) -> dict:
        return {"keypoints": [k.as_json() for k in self.keypoints], "pose": _pose_json(self.pose)}


@dataclass(frozen=True)
class Face(_Points):
    """One face of a /faces answer."""

    box: Box
    keypoints: tuple[Keypoint, ...]
    score: float | None = None  # the detector's (YuNet's, or a given box's); Haar gives none
    detector: str | None = None  # "yunet", "haar", or "given" for a box sent in `boxes`
    pose: HeadPose | None = None
    id: int | None = None  # on video, the tracker's (clients.tracking); a photo's faces have none

    @classmethod
    def from_json(cls, record: dict) -> "Face":
        return cls(
            box_of(record["box"]),
            _keypoints(record["keypoints"]),
            record.get("score"),
            record.get("detector"),
            _pose(record.get("pose")),
            record.get("id"),
        )

    def as_json(self) -> dict:
        """The face as /faces answers it, its `id` first where it has one (as the webcam client writes it)."""
        face = {
            "box": box_json(self.box),
            "score": self.score,
            "detector": self.detector,
            "keypoints": [k.as_json() for k in self.keypoints],
            "pose": _pose_json(self.pose),
        }
        return face if self.id is None else {"id": self.id, **face}

    def moved(self, dx: float, dy: float) -> "Face":
        """This face (its box and keypoints) moved by (dx, dy) pixels."""
        box = Box(self.box.x + dx, self.box.y + dy, self.box.width, self.box.height)
        return replace(self, box=box, keypoints=tuple(replace(k, x=k.x + dx, y=k.y + dy) for k in self.keypoints))

    def given_box(self) -> dict:
        """The entry of /faces' `boxes` that asks for this face again without detecting it: its
        box and score, and its eyes from its eye-centre keypoints."""
        eyes = [self.point(name) for name in EYE_CENTRES]
        return given_box(self.box, None if None in eyes else eyes, self.score)


@dataclass(frozen=True)
class FacesAnswer:
    """/faces: the photo's size and every face found in it (or at the boxes given)."""

    width: int
    height: int
    faces: tuple[Face, ...]

    @classmethod
    def from_json(cls, record: dict) -> "FacesAnswer":
        return cls(record["width"], record["height"], tuple(Face.from_json(face) for face in record["faces"]))

    def as_json(self) -> dict:
        return {"width": self.width, "height": self.height, "faces": [face.as_json() for face in self.faces]}
