"""Steadier keypoints and head poses on video: a One Euro filter per face, faces followed from
frame to frame.

A face with an `id` (the webcam client's tracker gives each one: clients/tracking.py) keeps the
filter of that id, and a new id, such as a new person after a cut, starts afresh; faces without
ids are matched to the previous frame's by box overlap.

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
from dataclasses import dataclass, field

import numpy as np

from vision.faces import Box, iou

# Defaults measured on this project's videos (docs/benchmarks.md, "Webcam client"): still-face jitter down about 6x,
# under 2 frames of lag at a walking-pace head movement.
MIN_CUTOFF_HZ = 1.0  # the cutoff while still: lower is steadier and slower to follow
BETA = 4.0  # how fast the cutoff rises with speed (per face width per second): higher lags less
DERIVATIVE_CUTOFF_HZ = 1.0  # smoothing of the speed estimate itself
# A head turning this many degrees moves its keypoints about one face width (the nose from the
# middle of the face to its edge at 45 degrees, half a width): the pose's unit of speed.
DEGREES_PER_FACE_WIDTH = 90.0

# A face is the same face in the next frame when their boxes overlap at least this much, and is
# forgotten after this long unseen (so that a face that comes back starts afresh, not from afar).
MATCH_IOU = 0.3
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


def _box_corners(box: dict) -> np.ndarray:
    return np.array([[box["x"], box["y"]], [box["x"] + box["width"], box["y"] + box["height"]]])


def _as_box(corners: np.ndarray) -> Box:
    (x0, y0), (x1, y1) = corners
    return Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0))


@dataclass
class Track:
    """One face followed across frames: its filter and where it was last seen."""

    box: Box
    last_seen: float
    filter: OneEuroFilter = field(default_factory=OneEuroFilter)
    id: int | None = None  # the tracker's id of the face, when it has one
    pose_filter: OneEuroFilter = field(default_factory=OneEuroFilter)


class FaceSmoother:
    """Smooths /faces answers frame after frame: each face is matched to the face it was in the
    previous frames (by box overlap) and its box and keypoints pass through that face's filter."""

    def __init__(self, min_cutoff: float = MIN_CUTOFF_HZ, beta: float = BETA):
        OneEuroFilter(min_cutoff, beta)  # refuse bad parameters now, not at the first face
        self.min_cutoff, self.beta = min_cutoff, beta
        self.tracks: list[Track] = []

    def __call__(self, faces: list[dict], t: float) -> list[dict]:
        """The faces of the frame at time `t` (seconds), as /faces gives them, smoothed."""
        self.tracks = [track for track in self.tracks if t - track.last_seen <= FORGET_AFTER_S]
        free = list(self.tracks)
        smoothed = []
        for face in sorted(faces, key=lambda f: -f["box"]["width"] * f["box"]["height"]):  # big faces choose first
            box = _as_box(_box_corners(face["box"]))
            if face.get("id") is not None:
                track = next((tr for tr in free if tr.id == face["id"]), None)
            else:
                track = max(free, key=lambda tr: iou(tr.box, box), default=None)
                track = track if track is not None and iou(track.box, box) >= MATCH_IOU else None
            if track is None:
                track = Track(
                    box,
                    t,
                    OneEuroFilter(self.min_cutoff, self.beta),
                    face.get("id"),
                    OneEuroFilter(self.min_cutoff, self.beta),
                )
                self.tracks.append(track)
            else:
                free.remove(track)
            smoothed.append(self._smooth(track, face, t))
        return smoothed

    def _smooth(self, track: Track, face: dict, t: float) -> dict:
        points = np.array([[k["x"], k["y"]] for k in face["keypoints"]])
        values = track.filter(np.vstack([_box_corners(face["box"]), points]), t, scale=max(face["box"]["width"], 1.0))
        track.box, track.last_seen = _as_box(values[:2]), t
        keypoints = [
            {**k, "x": round(float(x), 2), "y": round(float(y), 2)}
            for k, (x, y) in zip(face["keypoints"], values[2:], strict=True)
        ]
        box = {key: round(value, 2) for key, value in track.box.as_dict().items()}
        smoothed = {**face, "box": box, "keypoints": keypoints}
        if "pose" in face:
            smoothed["pose"] = self._smooth_pose(track, face["pose"], t)
        return smoothed

    def _smooth_pose(self, track: Track, pose: dict | None, t: float) -> dict | None:
        if pose is None:  # no pose now: the next one starts afresh
            track.pose_filter = OneEuroFilter(self.min_cutoff, self.beta)
            return None
        angles = track.pose_filter(np.array([pose["yaw"], pose["pitch"], pose["roll"]]), t, DEGREES_PER_FACE_WIDTH)
        return {name: round(float(value), 1) for name, value in zip(("yaw", "pitch", "roll"), angles, strict=True)}
