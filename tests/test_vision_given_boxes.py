"""vision.given_boxes: a client's boxes instead of a detection, checked and run through the pipeline."""

import re
from dataclasses import replace

import numpy as np
import pytest
from photos import GROUP_PEOPLE, group_photo

from vision.crop import FaceCrop
from vision.detectors import Detection
from vision.errors import InputError
from vision.faces import find_faces
from vision.geometry import Box
from vision.given_boxes import MAX_GIVEN_BOXES, GivenBoxes, check_given_boxes, given_detections, region_read


def test_given_boxes_become_given_detections():
    records = [
        {"x": 10, "y": 20.5, "width": 30, "height": 40},
        {"x": -5, "y": 0, "width": 50, "height": 60, "eyes": [[10, 20], [30, 10]], "score": 0.5},
    ]
    level, turned = given_detections(records)
    assert level == Detection(Box(10.0, 20.5, 30.0, 40.0), None, "given")
    assert turned.eyes == ((10.0, 20.0), (30.0, 10.0)) and turned.score == 0.5 and turned.detector == "given"
    assert turned.roll == pytest.approx(np.degrees(np.arctan2(-10, 20)))
    assert given_detections([]) == []


def bad_box(**fields) -> list:
    """A good box, then a box with `fields` changed (None: left out): the bad one is boxes[1]."""
    good = {"x": 10, "y": 20, "width": 30, "height": 40}
    bad = {k: v for k, v in {**good, **fields}.items() if v is not None}
    return [good, bad]


BAD_BOXES = {
    "not a list": ({"x": 1, "y": 2, "width": 3, "height": 4}, "boxes: expected a JSON list of boxes"),
    "not an object": ([[1, 2, 3, 4]], "boxes[0]: expected an object"),
    "missing": (bad_box(height=None), "boxes[1]: missing 'height'"),
    "unknown field": (bad_box(w=3), "boxes[1]: unknown field 'w'"),
    "text": (bad_box(x="10"), "boxes[1]: x must be a finite number"),
    "true": (bad_box(y=True), "boxes[1]: y must be a finite number"),
    "nan": (bad_box(x=float("nan")), "boxes[1]: x must be a finite number"),
    "infinite": (bad_box(height=float("inf")), "boxes[1]: height must be a finite number"),
    "huge integer": (bad_box(x=10**400), "boxes[1]: x must be a finite number, got 1000000"),
    "zero width": (bad_box(width=0), "boxes[1]: width must be > 0"),
    "negative height": (bad_box(height=-4), "boxes[1]: height must be > 0"),
    "one eye": (bad_box(eyes=[[1, 2]]), r"boxes\[1\]: eyes must be \[\[right x, right y\], \[left x, left y\]\]"),
    "flat eyes": (bad_box(eyes=[1, 2, 3, 4]), r"boxes\[1\]: eyes must be"),
    "eye not a number": (bad_box(eyes=[[1, 2], [3, "4"]]), "boxes[1]: eyes must be a finite number"),
    "score over 1": (bad_box(score=1.5), r"boxes\[1\]: score must be in \[0, 1\]"),
    "score text": (bad_box(score="high"), "boxes[1]: score must be a finite number"),
}


@pytest.mark.parametrize("case", sorted(BAD_BOXES))
def test_a_bad_given_box_is_named_with_its_index(case):
    records, message = BAD_BOXES[case]
    with pytest.raises(InputError, match=message if "\\" in message else re.escape(message)) as refused:
        given_detections(records)
    assert "\n" not in str(refused.value)


def test_too_many_given_boxes():
    box = {"x": 1, "y": 2, "width": 3, "height": 4}
    assert len(given_detections([box] * MAX_GIVEN_BOXES)) == MAX_GIVEN_BOXES
    with pytest.raises(InputError, match=f"boxes: {MAX_GIVEN_BOXES + 1} boxes, over the limit"):
        given_detections([box] * (MAX_GIVEN_BOXES + 1))


@pytest.mark.parametrize(
    "box, message",
    [
        ((-50, 10, 50, 40), "wholly outside the 640x480 image"),  # ends at the left edge
        ((640, 10, 50, 40), "wholly outside"),
        ((10, 480, 50, 40), "wholly outside"),
        ((10, -40, 50, 40), "wholly outside"),
        ((-300, -20, 961, 100), "larger than 1.5 x the 640x480 image's longer side"),
        ((0, 0, 10, 961), "larger than"),
        ((-49, -39, 50, 40), None),  # one pixel inside
        ((639, 479, 960, 960), None),
    ],
)
def test_given_boxes_must_reach_into_the_image(box, message):
    x, y, width, height = box
    detections = given_detections(
        [{"x": 1, "y": 1, "width": 5, "height": 5}, {"x": x, "y": y, "width": width, "height": height}]
    )
    if message is None:
        check_given_boxes(detections, 640, 480)
    else:
        with pytest.raises(InputError, match=rf"^boxes\[1\]: .*{re.escape(message)}"):
            check_given_boxes(detections, 640, 480)


def test_given_boxes_run_the_pipeline_as_the_detections_they_copy(yunet):
    """YuNet's own boxes and eyes, given back: the same crops and keypoints, to the last bit;
    without the eyes, the same box cut level."""
    photo = group_photo()
    weights = np.random.default_rng(3).normal(0, 0.01, (96 * 96, 30))

    def model(x):  # a fixed random projection: every pixel of the crop moves the points
        return [np.tanh(x.reshape(len(x), -1) @ weights).astype(np.float32)]

    detected = find_faces(photo, yunet, model)
    given = [replace(face.detection, detector="given", score=None) for face in detected]
    again = find_faces(photo, GivenBoxes(given), model)
    assert len(again) == len(detected) == len(GROUP_PEOPLE)
    for face, want in zip(again, detected, strict=True):
        assert face.crop == want.crop and face.crop.angle != 0
        np.testing.assert_array_equal(face.keypoints, want.keypoints)
        assert face.as_dict()["detector"] == "given" and face.as_dict()["score"] is None
        assert face.as_dict()["box"] == want.as_dict()["box"]
    level = find_faces(photo, GivenBoxes([replace(d, eyes=None) for d in given]), model)
    for face, want in zip(level, detected, strict=True):
        assert face.crop.angle == 0 and face.crop.side == want.crop.side
        assert np.abs(face.keypoints - want.keypoints).max() > 0.1


@pytest.mark.parametrize("side", [60.0, 400.0])  # a crop cut by warping, and one shrunk first
def test_the_region_a_crop_reads_gives_the_same_crop(side):
    """A client following faces sends only `region_read` of its frame: the crops must not change."""
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (900, 1200), dtype=np.uint8)
    eyes = ((500.0, 330.0), (500.0 + side * 0.4, 350.0))  # a turned face: the crop is turned too
    detections = [
        Detection(Box(480.0, 300.0, side, side * 1.2), 0.9, "given", eyes),
        Detection(Box(1150.0, 5.0, 60.0, 70.0), 0.9, "given"),  # its crop leaves the frame
    ]
    x0, y0, x1, y1 = region_read(detections, 1200, 900)
    assert x1 == 1200 and y0 == 0 and (x1 - x0) * (y1 - y0) < 1200 * 900  # clipped to the frame, smaller than it
    region = gray[y0:y1, x0:x1]
    for detection in detections:
        moved = replace(detection, box=replace(detection.box, x=detection.box.x - x0, y=detection.box.y - y0))
        if detection.eyes:
            moved = replace(moved, eyes=tuple((ex - x0, ey - y0) for ex, ey in detection.eyes))
        whole, part = FaceCrop.around(detection), FaceCrop.around(moved)
        assert np.array_equal(whole.cut(gray), part.cut(region))
