"""Steadier keypoints and head poses on video: a One Euro filter per face, faces followed from
frame to frame by their ids.

Each face has the `id` the tracker gave it (clients/tracking.py; every caller tracks faces before
smoothing them) and keeps the filter of that id; a new id, such as a new person after a cut,
starts afresh, and so does an id unseen for FORGET_AFTER_S.

A still face's raw keypoints jitter by a pixel or two from frame to frame (sensor noise moves the
detection box, and the crop with it). The One Euro filter (Casiez, Roussel and Vogel, CHI 2012)
is a low-pass filter whose cutoff rises with speed: heavy smoothing while the face holds still,
little lag once it moves. Speeds are measured in face widths per second, so one setting suits a
small face far from the camera and a large one close to it. A face's head pose (yaw, pitch,
roll) has a filter of its own, its speeds in DEGREES_PER_FACE_WIDTH per second; a face whose
pose is null passes null on, and its pose filter starts afresh when it has one again.

The demo page's JavaScript (service/page/smoothing.js) is a line-by-line twin of this file, with
the same defaults.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from clients.answers import Face
from vision.geometry import Box
from vision.pose import HeadPose

# Defaults measured on this project's videos (docs/benchmarks.md, "Webcam client"): still-face jitter down about 6x,
# under 2 frames of lag at a walking-pace head movement.
MIN_CUTOFF_HZ = 1.0  # the cutoff while still: lower is steadier and slower to follow
BETA = 4.0  # how fast the cutoff rises with speed (per face width per second): higher lags less
DERIVATIVE_CUTOFF_HZ = 1.0  # smoothing of the speed estimate itself
# A head turning this many degrees moves its keypoints about one face width (the nose from the
# middle of the face to its edge at 45 degrees, half a width): the pose's unit of speed.
DEGREES_PER_FACE_WIDTH = 90.0

# A face's filter is forgotten after this long unseen (so that a face that comes back starts afresh,
# not from afar).
FORGET_AFTER_S = 0.5


def smoothing_factor(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray | float:
    """The exponential smoothing factor of a first-order low-pass at `cutoff_hz` for a step `dt`."""
    tau = 1.0 / (2 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters an array of values (e.g. a face's keypoints and box corners) sampled over time."""

    def __init__(self, min_cutoff: float = MIN_CUTOFF_HZ, beta: float = BETA, d_cutoff: float = DERIVATIVE_CUTOFF_HZ):
        if min_cutoff <= 0 or beta < 0 or d_cutoff <= 0:
            raise ValueError("the One Euro filter needs min_cutoff > 0, beta >= 0 and d_cutoff > 0")
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.t: float | None = None
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def __call__(self, value: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        """The filtered `value` at time `t` (seconds); `scale` is the unit speeds are measured in
        (a face's width, in pixels). A time that does not advance returns the last output."""
        value = np.asarray(value, dtype=np.float64)
        if self.value is None or self.value.shape != value.shape:
            self.t, self.value, self.speed = t, value.copy(), np.zeros_like(value)
            return self.value.copy()
        dt = t - self.t
        if dt <= 0:
            return self.value.copy()
        speed = (value - self.value) / dt / scale
        self.speed += smoothing_factor(self.d_cutoff, dt) * (speed - self.speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self.speed)
        self.value += smoothing_factor(cutoff, dt) * (value - self.value)
        self.t = t
        return self.value.copy()


def _box_corners(box: Box) -> np.ndarray:
    return np.array([[box.x, box.y], [box.x + box.width, box.y + box.height]], dtype=np.float64)


def _whole_box(corners: np.ndarray) -> Box:
    """The box between two corners, in whole pixels (truncated, as Box.as_dict and the answers' boxes)."""
    (x0, y0), (x1, y1) = corners
    return Box(**Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0)).as_dict())


@dataclass
class Track:
    """One face followed across frames: its filters and when it was last seen."""

    last_seen: float
    filter: OneEuroFilter
    pose_filter: OneEuroFilter


class FaceSmoother:
    """Smooths /faces answers frame after frame: each face's box and keypoints pass through the
    filter of its id, its pose through a filter of its own."""

    def __init__(self, min_cutoff: float = MIN_CUTOFF_HZ, beta: float = BETA):
        OneEuroFilter(min_cutoff, beta)  # refuse bad parameters now, not at the first face
        self.min_cutoff, self.beta = min_cutoff, beta
        self.tracks: dict[int, Track] = {}  # by the faces' ids

    def __call__(self, faces: Sequence[Face], t: float) -> list[Face]:
        """The faces of the frame at time `t` (seconds), each with its id, smoothed, in their order."""
        if any(face.id is None for face in faces):
            raise ValueError("the smoother follows faces by their ids: track them first (clients.tracking)")
        self.tracks = {i: track for i, track in self.tracks.items() if t - track.last_seen <= FORGET_AFTER_S}
        return [self._smooth(self._track(face.id, t), face, t) for face in faces]

    def _track(self, face_id: int, t: float) -> Track:
        if face_id not in self.tracks:
            self.tracks[face_id] = Track(t, self._filter(), self._filter())
        return self.tracks[face_id]

    def _filter(self) -> OneEuroFilter:
        return OneEuroFilter(self.min_cutoff, self.beta)

    def _smooth(self, track: Track, face: Face, t: float) -> Face:
        values = track.filter(np.vstack([_box_corners(face.box), face.points]), t, scale=max(face.box.width, 1.0))
        track.last_seen = t
        keypoints = tuple(
            replace(k, x=round(float(x), 2), y=round(float(y), 2))
            for k, (x, y) in zip(face.keypoints, values[2:], strict=True)
        )
        return replace(face, box=_whole_box(values[:2]), keypoints=keypoints, pose=self._smooth_pose(track, face, t))

    def _smooth_pose(self, track: Track, face: Face, t: float) -> HeadPose | None:
        if face.pose is None:  # no pose now: the next one starts afresh
            track.pose_filter = self._filter()
            return None
        pose = face.pose
        angles = track.pose_filter(np.array([pose.yaw, pose.pitch, pose.roll]), t, DEGREES_PER_FACE_WIDTH)
        return HeadPose(*(round(float(value), 1) for value in angles))
