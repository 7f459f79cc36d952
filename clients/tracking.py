"""Following faces across video frames, so that the detector runs only now and then.

YuNet is about two thirds of each /faces request. Like MediaPipe's face landmarker, the webcam
clients detect once and then follow each face from its own keypoints: the box for the next frame
comes from the last frame's 15 points (moved with their centroid, scaled with their spread, eyes
from the eye-centre points, carried on at the face's velocity over the last two answers), and is
sent as /faces' `boxes`, so the service only cuts and predicts.
YuNet runs again

- every `detect_every` frames (a face that walked in is found within that many frames),
- when there is no face to follow,
- when a followed face's points look wrong (eyes too close or too far apart for the box, the
  points' centre leaving the box: the crop slid off the face) or the model is unsure of them (their
  mean confidence under FOLLOW_MIN_CONFIDENCE), and
- when a face's region changed abruptly since the answer it would be followed from (a cut to
  another person in the same place, something passing in front): the gray region, shrunk to
  PATCH x PATCH and normalized, correlates below CUT_CORRELATION with the one the last answer saw.
  That face's track ends, so the new person gets a new id, and no filter carries the old points.

Each face gets an `id`, 1, 2, 3, ... in order of first sight, never reused in a run: a detection
takes the id of the track whose box (where it was, or where its velocity took it) it overlaps most
(IoU), else of the nearest track within MATCH_CENTRE box widths, if its face region looks like that
track's (a fast face, or a slow machine with frames in flight, moves more than half a box between
answers), and a face that the detector missed for a moment gets its id back if it is found again
near where it was within REMEMBER_FRAMES frames. An answer that fails the checks above is not
followed from: the face's last believed box, keypoints and region stay. The webcam client,
`--local` and bench.webcam use this one module; the demo page's webcam view
(service/page/webcam.js) follows the same scheme. No torch, no network.
"""

import math
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from clients.answers import EYE_CENTRES, Face, given_box
from vision.geometry import Box, iou
from vision.keypoints import KEYPOINT_NAMES

DETECT_EVERY = 10  # frames between detections while following (docs/benchmarks.md, 2026-12-04)
PATCH = 16  # the face region's side, shrunk, for the cut check
SEARCH = 0.25  # ... which looks for the face up to this many box widths away (frames in flight, fast moves)
# The cut check, measured on bench.webcam's clips (the face's square, found within SEARCH, against
# its square in the answer it is followed from, up to 3 frames back): the same face correlates 0.90
# or more (on a pan at 5 px per frame with 3 frames in flight; 0.95 frame to frame), another person
# in the same place 0.69 or less. Below this the frame is sent for detection, and a detection keeps
# a track's id only if its own square still correlates this much (else: a new face, a new id).
CUT_CORRELATION = 0.8
MATCH_IOU = 0.3  # a detection is a track's face when their boxes overlap this much ...
# ... or their centres are closer than this many box widths and the detection looks like the track's
# face (a fast face, or a slow machine with frames in flight, moves more than half a box between answers)
MATCH_CENTRE = 1.5
REMEMBER_FRAMES = 30  # a face the detector missed gets its id back if found near its place this soon
EYE_RATIO_RANGE = (0.6, 1.6)  # a followed face's eye distance / box width, relative to its detection's
# A followed face whose points' mean confidence is under this is detected again. On held-out faces
# (every third YouTube/Helen/AFW frame, 218 faces) the detection's own crop scores under it on 0.9%
# (median 0.80); the crop slid 30% of the box sideways on 52%, the crop shrunk to 70% of the box on
# 67% (docs/benchmarks.md, "Following faces").
FOLLOW_MIN_CONFIDENCE = 0.55

RIGHT_EYE, LEFT_EYE = (KEYPOINT_NAMES.index(name) for name in EYE_CENTRES)


def gray_patch(image: np.ndarray, box: Box, margin: float = 0.0) -> np.ndarray | None:
    """The square around the box (its longer side, so that a narrow box of a half-seen face and the
    whole face's box compare alike) of a BGR (or gray) frame, with `margin` x its side more on each
    side (edges replicated beyond the frame), at PATCH pixels per side; None when the square itself
    is not wholly in the frame (a face at the edge is not judged) or the region is flat."""
    height, width = image.shape[:2]
    side = max(box.width, box.height)
    cx, cy = box.center
    left, top = cx - side / 2, cy - side / 2
    if left < 0 or top < 0 or left + side > width or top + side > height or side < 4:
        return None
    grow = margin * side
    x0, y0 = int(left - grow), int(top - grow)
    x1, y1 = int(math.ceil(left + side + grow)), int(math.ceil(top + side + grow))
    region = image[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
    if region.ndim == 3:
        region = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    edges = (max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width))
    region = cv2.copyMakeBorder(region, *edges, cv2.BORDER_REPLICATE)
    size = round(PATCH * (1 + 2 * margin))
    patch = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return None if float(patch.std()) < 1.0 else patch


def similarity(image: np.ndarray, box: Box, patch: np.ndarray | None) -> float:
    """How much the face `patch` (gray_patch of an earlier frame) looks like what is now at `box`,
    allowing for a move of up to SEARCH x the box's size: the best normalized correlation (1: the
    same picture); 1 when either cannot be judged (a face at the frame's edge)."""
    around = gray_patch(image, box, SEARCH)
    if around is None or patch is None:
        return 1.0
    return float(cv2.matchTemplate(around, patch, cv2.TM_CCOEFF_NORMED).max())


@dataclass
class Shape:
    """Where a face's box sits relative to its keypoints, in units of the points' spread and in
    the face's own (eye-levelled) frame: kept from the detection, so each followed box is
    YuNet-like (what /faces returned for that face)."""

    offset: tuple[float, float]  # box centre - points' centroid, / spread, unrotated
    width: float  # box width / spread
    height: float
    eye_ratio: float  # eye distance / box width

    @classmethod
    def of(cls, box: Box, points: np.ndarray) -> "Shape":
        centroid, spread, roll = _frame(points)
        dx, dy = (box.center[0] - centroid[0]) / spread, (box.center[1] - centroid[1]) / spread
        cos, sin = math.cos(-roll), math.sin(-roll)
        eyes = float(np.linalg.norm(points[LEFT_EYE] - points[RIGHT_EYE]))
        return cls(
            (cos * dx - sin * dy, sin * dx + cos * dy), box.width / spread, box.height / spread, eyes / box.width
        )

    def box(self, points: np.ndarray) -> Box:
        centroid, spread, roll = _frame(points)
        cos, sin = math.cos(roll), math.sin(roll)
        dx, dy = self.offset
        cx = centroid[0] + (cos * dx - sin * dy) * spread
        cy = centroid[1] + (sin * dx + cos * dy) * spread
        w, h = self.width * spread, self.height * spread
        return Box(cx - w / 2, cy - h / 2, w, h)


def _frame(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The points' centroid, spread (RMS distance from it) and roll (radians, from the eyes)."""
    centroid = points.mean(axis=0)
    spread = max(float(np.sqrt(((points - centroid) ** 2).sum(axis=1).mean())), 1e-3)
    (rx, ry), (lx, ly) = points[RIGHT_EYE], points[LEFT_EYE]
    return centroid, spread, math.atan2(ly - ry, lx - rx)


@dataclass
class Track:
    id: int
    box: Box  # the last answer's box
    points: np.ndarray  # the last answer's keypoints
    shape: Shape  # from the last detection
    score: float | None
    patch: np.ndarray | None  # the last answer's face region (gray_patch)
    frame: int  # the frame of the last answer
    cut: bool = False  # its region changed abruptly: detect, and keep its id only if it is still this face
    anchor: np.ndarray | None = None  # its face region at its last detection (a box the tracker did not move)
    velocity: tuple[float, float] = (0.0, 0.0)  # its points' centroid, pixels per frame, over the last two answers

    def ahead(self, index: int) -> np.ndarray:
        """Where the face has moved by frame `index` since its last answer, at its velocity: a fast
        face (or a slow machine, with frames in flight) is cut where it will be, not where it was."""
        return np.asarray(self.velocity) * (index - self.frame)

    def places(self, index: int) -> tuple[Box, Box]:
        """Where to look for it in frame `index`: its last box moved on at its velocity, and the last
        box itself (a face that turned back, or stopped, is still near it)."""
        dx, dy = self.ahead(index)
        return Box(self.box.x + dx, self.box.y + dy, self.box.width, self.box.height), self.box

    def next_box(self, index: int) -> dict:
        """The /faces `boxes` entry to follow this face with in frame `index`."""
        points = self.points + self.ahead(index)
        return given_box(self.shape.box(points), points[[RIGHT_EYE, LEFT_EYE]], self.score)

    def plausible(self, face: Face) -> bool:
        """Do a followed face's points still look like a face in its box, and is the model sure of them?"""
        confidence = [c for c in face.confidence if c is not None]
        if confidence and sum(confidence) / len(confidence) < FOLLOW_MIN_CONFIDENCE:
            return False
        points, box = face.points, face.box
        eyes = float(np.linalg.norm(points[LEFT_EYE] - points[RIGHT_EYE])) / max(box.width, 1.0)
        low, high = EYE_RATIO_RANGE
        cx, cy = points.mean(axis=0)
        inside = box.x <= cx <= box.x + box.width and box.y <= cy <= box.y + box.height
        return inside and low * self.shape.eye_ratio <= eyes <= high * self.shape.eye_ratio


@dataclass
class Plan:
    """What to ask about one frame: detect (boxes None), or follow these tracks with these boxes."""

    frame: int
    boxes: list[dict] | None
    ids: list[int] = field(default_factory=list)

    @property
    def detect(self) -> bool:
        return self.boxes is None


@dataclass
class TrackerStats:
    frames: int = 0
    detections: int = 0  # frames sent for detection
    cuts: int = 0  # tracks ended by the cut check
    implausible: int = 0  # followed faces whose points failed the geometry check


class Tracker:
    """Decides, frame by frame, "detect" or "these boxes", and gives each face its id.

    `plan(index, image)` before a frame is sent; `update(plan, image, faces)` with its answer, in
    frame order (answers of frames sent before the previous answer came back are fine: the plan
    says which tracks their boxes followed). `follow=False` detects on every frame (--no-track) and
    still gives ids."""

    def __init__(self, detect_every: int = DETECT_EVERY, follow: bool = True):
        if detect_every < 1:
            raise ValueError("detect_every must be >= 1")
        self.detect_every, self.follow = detect_every, follow
        self.tracks: list[Track] = []
        self.lost: list[Track] = []  # missed by the detector lately: their ids may come back
        self.next_id = 1
        self.last_detection = -(10**9)  # the frame of the last planned detection
        self.redetect = False
        self.stats = TrackerStats()

    # --- before sending ---

    def plan(self, index: int, image: np.ndarray | None = None) -> Plan:
        self.stats.frames += 1
        for track in self.tracks if image is not None else ():  # with --no-track too: a cut is a new face
            # all() stops at the first place the face is still seen: one check per frame, as a rule
            if not track.cut and all(similarity(image, b, track.patch) < CUT_CORRELATION for b in track.places(index)):
                track.cut = True
                self.stats.cuts += 1
        if self.follow and self.tracks and not self.redetect and index - self.last_detection < self.detect_every:
            boxes = [track.next_box(index) for track in self.tracks]
            if not any(track.cut for track in self.tracks) and all(_in_frame(box, image) for box in boxes):
                return Plan(index, boxes, [track.id for track in self.tracks])
        self.last_detection, self.redetect = index, False
        self.stats.detections += 1
        return Plan(index, None)

    def unanswered(self, plan: Plan) -> None:
        """A frame that got no answer (an outage, a busy service): a detection it was for is still owed."""
        if plan.detect:
            self.redetect = True

    # --- with the answer ---

    def update(self, plan: Plan, image: np.ndarray | None, faces: list[Face]) -> list[Face]:
        """The answer's faces, each with its `id`; the tracks move on to them."""
        if plan.detect:
            return self._detected(plan.frame, image, faces)
        return self._followed(plan, image, faces)

    def _detected(self, index: int, image: np.ndarray | None, faces: list[Face]) -> list[Face]:
        self.lost = [t for t in self.lost if index - t.frame <= REMEMBER_FRAMES]
        candidates, out, kept = list(self.tracks), [], []
        for face in sorted(faces, key=lambda f: -f.box.width * f.box.height):  # big faces choose first
            box, points = face.box, face.points
            track, overlapping = _closest(candidates, box, index)
            if track is None:
                track, overlapping = _closest(self.lost, box, index)
            # Is it the same face? Only if the detection's region looks like the track's last one or
            # the one at its last detection. Every detection asks, as the track that a cut was seen on
            # may have been replaced meanwhile. Another person in the track's place (a cut) ends it.
            if track is not None and self._another_face(track, image, box):
                if overlapping:
                    (candidates if track in candidates else self.lost).remove(track)
                track = None
            if track is None:
                track = Track(self.next_id, box, points, Shape.of(box, points), face.score, None, index)
                self.next_id += 1
            else:
                (candidates if track in candidates else self.lost).remove(track)
                track.shape, track.score, track.cut = Shape.of(box, points), face.score, False
            self._moved(track, index, image, box, points)
            track.anchor = track.patch
            kept.append(track)
            out.append(replace(face, id=track.id))
        self.lost += [t for t in candidates if not t.cut]  # missed this time: remembered a while, with their ids
        self.tracks = kept
        return sorted(out, key=lambda f: f.id)

    def _followed(self, plan: Plan, image: np.ndarray | None, faces: list[Face]) -> list[Face]:
        out = []
        alive = {t.id: t for t in self.tracks}
        if len(faces) != len(plan.ids):  # not one face per box: match by place instead
            matched = ((_closest(self.tracks, f.box, plan.frame)[0], f) for f in faces)
            return [replace(f, id=t.id) for t, f in matched if t is not None]
        for track_id, face in zip(plan.ids, faces, strict=True):
            track = alive.get(track_id)
            if track is None:  # gone (not found, or a cut) at a detection answered meanwhile
                continue
            if plan.frame > track.frame:
                if track.plausible(face):
                    self._moved(track, plan.frame, image, face.box, face.points)
                else:  # not followed from: the detection it calls for is matched against the last face believed
                    self.stats.implausible += 1
                    self.redetect = True
            out.append(replace(face, id=track.id))
        return out

    def _another_face(self, track: Track, image: np.ndarray | None, box: Box) -> bool:
        """Does the region at `box` look like neither of the track's faces? Its last one may be off
        the face (a followed box that lagged a fast move, on a slow machine with frames in flight);
        the one at its last detection is not."""
        if image is None:
            return False
        return all(similarity(image, box, patch) < CUT_CORRELATION for patch in (track.patch, track.anchor))

    @staticmethod
    def _moved(track: Track, index: int, image: np.ndarray | None, box: Box, points: np.ndarray) -> None:
        if index > track.frame:
            track.velocity = tuple((points.mean(axis=0) - track.points.mean(axis=0)) / (index - track.frame))
        track.box, track.points, track.frame = box, points, index
        track.patch = gray_patch(image, box) if image is not None else None


def _closest(tracks: list[Track], box: Box, index: int) -> tuple[Track | None, bool]:
    """The track that this detection in frame `index` may be, and whether it is in its place: the
    one whose places (`Track.places`) overlap it most (True), else the one with the nearest centre
    (False; the caller checks that it looks the same)."""
    scored = []  # (overlap, centre distance, track), each the best over the track's places
    for track in tracks:
        places = track.places(index)
        overlap = max(iou(place, box) for place in places)
        scored.append((overlap, min(math.dist(place.center, box.center) for place in places), track))
    overlap, _, best = max(scored, key=lambda s: s[0], default=(0.0, 0.0, None))
    if best is not None and overlap >= MATCH_IOU:
        return best, True
    _, distance, near = min(scored, key=lambda s: s[1], default=(0.0, 0.0, None))
    if near is not None and distance < MATCH_CENTRE * max(near.box.width, box.width):
        return near, False
    return None, False


def _in_frame(box: dict, image: np.ndarray | None) -> bool:
    """Is the box's centre inside the frame? (A face that is leaving is found again by detection.)"""
    if image is None:
        return True
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    return 0 <= cx < image.shape[1] and 0 <= cy < image.shape[0]
