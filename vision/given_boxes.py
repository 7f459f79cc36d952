"""Given boxes: a client's boxes instead of a detection.

A tracker that knows where the faces are sends their boxes (`/faces` with `boxes`): detection is
skipped and each box is cut and predicted exactly as a detection would be (`find_faces` with
`GivenBoxes` as the detector). A given box is cut in YuNet's crop style, so it should be a
YuNet-like box: the one /faces answered for that face (optionally moved by the tracker), with the
eyes to turn the crop by (else the crop is level).
"""

import contextlib
import json
import math
from collections.abc import Sequence

import numpy as np

from vision.crop import FaceCrop
from vision.detectors import YUNET_CROP, Detection
from vision.errors import InputError
from vision.geometry import Box
from vision.signatures import GIVEN_DETECTOR

MAX_GIVEN_BOXES = 64  # boxes one request may give: more faces than a frame holds, a bound on the work
MAX_GIVEN_BOX_SIDE = 1.5  # x the image's longer side: a box larger than that is no face, and costs memory to cut
GIVEN_FIELDS = ("x", "y", "width", "height", "eyes", "score")
# A client sends the box /faces answered for the face: YuNet's, so it is cut as YuNet's.
GIVEN_CROP = YUNET_CROP


def _finite(value, where: str, name: str) -> float:
    number = float("nan")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # a JSON integer of hundreds of digits
            number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{where}: {name} must be a finite number, got {_as_sent(value)}")
    return number


def _as_sent(value) -> str:
    """A value as JSON (as it was sent), cut short: what an error message quotes of a bad field."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= 40 else text[:39] + "…"


def _given_eyes(eyes, where: str) -> tuple[tuple[float, float], tuple[float, float]] | None:
    if eyes is None:
        return None
    pairs = isinstance(eyes, list) and len(eyes) == 2 and all(isinstance(e, list) and len(e) == 2 for e in eyes)
    if not pairs:
        raise InputError(f"{where}: eyes must be [[right x, right y], [left x, left y]], got {_as_sent(eyes)}")
    return tuple((_finite(ex, where, "eyes"), _finite(ey, where, "eyes")) for ex, ey in eyes)


def _given_score(score, where: str) -> float | None:
    if score is None:
        return None
    score = _finite(score, where, "score")
    if not 0 <= score <= 1:
        raise InputError(f"{where}: score must be in [0, 1], got {score:g}")
    return score


def _given_detection(record, where: str) -> Detection:
    if not isinstance(record, dict):
        raise InputError(f'{where}: expected an object {{"x", "y", "width", "height"}}, got {_as_sent(record)}')
    unknown = [name for name in record if name not in GIVEN_FIELDS]
    if unknown:
        raise InputError(f"{where}: unknown field {unknown[0]!r} (a box has {', '.join(GIVEN_FIELDS)})")
    missing = [name for name in GIVEN_FIELDS[:4] if name not in record]
    if missing:
        raise InputError(f"{where}: missing {missing[0]!r}")
    x, y, width, height = (_finite(record[name], where, name) for name in GIVEN_FIELDS[:4])
    for name, side in (("width", width), ("height", height)):
        if side <= 0:
            raise InputError(f"{where}: {name} must be > 0, got {side:g}")
    eyes, score = _given_eyes(record.get("eyes"), where), _given_score(record.get("score"), where)
    return Detection(Box(x, y, width, height), score, GIVEN_DETECTOR, eyes, GIVEN_CROP)


def given_detections(records: list) -> list[Detection]:
    """A client's boxes (the JSON of `/faces`'s `boxes` field: a list of {"x", "y", "width",
    "height"} in image pixels, each optionally with "eyes": [[right x, right y], [left x, left y]]
    (the subject's right eye first, as `Detection.eyes`) and a "score" in [0, 1]) -> detections
    named "given"; InputError naming the first bad box and what is wrong with it."""
    if not isinstance(records, list):
        raise InputError(f"boxes: expected a JSON list of boxes, got {_as_sent(records)}")
    if len(records) > MAX_GIVEN_BOXES:
        raise InputError(f"boxes: {len(records)} boxes, over the limit of {MAX_GIVEN_BOXES}")
    return [_given_detection(record, f"boxes[{i}]") for i, record in enumerate(records)]


def check_given_boxes(detections: Sequence[Detection], width: int, height: int) -> None:
    """Given boxes against the image they are for (width x height pixels): each must reach into it
    and be no larger than MAX_GIVEN_BOX_SIDE x its longer side; InputError naming the first that is not."""
    longest = MAX_GIVEN_BOX_SIDE * max(width, height)
    for i, detection in enumerate(detections):
        box = detection.box
        if box.x >= width or box.y >= height or box.x + box.width <= 0 or box.y + box.height <= 0:
            raise InputError(
                f"boxes[{i}]: the box at ({box.x:g}, {box.y:g}), {box.width:g}x{box.height:g}, "
                f"lies wholly outside the {width}x{height} image"
            )
        if max(box.width, box.height) > longest:
            raise InputError(
                f"boxes[{i}]: a box {box.width:g}x{box.height:g} is larger than {MAX_GIVEN_BOX_SIDE:g} x the "
                f"{width}x{height} image's longer side"
            )


def region_read(detections: Sequence[Detection], width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of a width x height image that cutting these detections' crops
    reads, clipped to it. That part alone, with the detections moved by (-x0, -y0), gives the same
    crops: a client that follows faces can send it instead of the whole frame."""
    bounds = np.array([FaceCrop.around(d).bounds() for d in detections]).reshape(-1, 4)
    x0, y0 = max(int(bounds[:, 0].min()), 0), max(int(bounds[:, 1].min()), 0)
    x1, y1 = min(int(bounds[:, 2].max()), width), min(int(bounds[:, 3].max()), height)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


class GivenBoxes:
    """A "detector" that finds the boxes it was given: `find_faces(image, GivenBoxes(detections),
    model)` cuts, predicts and maps back each given box as the one pipeline does a detection."""

    name = GIVEN_DETECTOR
    crop_style = GIVEN_CROP

    def __init__(self, detections: Sequence[Detection]):
        self.detections = list(detections)

    def detect(self, image: np.ndarray) -> list[Detection]:
        return list(self.detections)
