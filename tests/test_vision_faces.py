"""vision.faces: the crop geometry, the detectors and the one pipeline, on real OpenCV."""

import re
from dataclasses import replace

import cv2
import numpy as np
import pytest
from photos import GROUP_PEOPLE, group_photo, no_face_images

from vision import faces
from vision.errors import InputError

YUNET = faces.YUNET_MODEL


@pytest.fixture(scope="module")
def yunet() -> faces.YuNetDetector:
    return faces.YuNetDetector(YUNET)


CROPS = [
    faces.FaceCrop(60.0, 70.0, 90.0),
    faces.FaceCrop(100.5, 80.25, 150.0, 17.0),
    faces.FaceCrop(-10.0, 20.0, 300.0, -33.0),  # mostly outside, large (the area-averaging path)
]


@pytest.mark.parametrize("crop", CROPS)
def test_to_crop_and_to_image_are_exact_inverses(crop):
    points = np.random.default_rng(0).uniform(-50, 250, size=(15, 2))
    np.testing.assert_allclose(
        crop.to_image(faces.denormalize(faces.normalize(crop.to_crop(points)))), points, atol=1e-9
    )


@pytest.mark.parametrize("crop", CROPS[:2] + [faces.FaceCrop(150.0, 120.0, 260.0, 25.0)])
def test_a_marked_pixel_lands_where_the_geometry_says(crop):
    image = np.zeros((260, 300), np.uint8)
    spot = crop.to_image(np.array([60.0, 40.0]))  # a point in the crop's upper right
    cv2.circle(image, (round(spot[0]), round(spot[1])), max(2, round(crop.side / 40)), 255, -1)
    cut = crop.cut(image)
    assert cut.shape == (96, 96) and cut.dtype == np.uint8
    ys, xs = np.nonzero(cut > 32)
    found = np.array([np.average(xs, weights=cut[ys, xs]), np.average(ys, weights=cut[ys, xs])])
    np.testing.assert_allclose(found, crop.to_crop(np.round(spot)), atol=0.75)


def test_the_context_border_surrounds_the_same_crop():
    image = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (200, 200), np.uint8), (0, 0), 2)
    crop = faces.FaceCrop(100.0, 90.0, 110.0, 12.0)
    context = crop.cut(image, border=24)
    assert context.shape == (144, 144)
    difference = np.abs(context[24:120, 24:120].astype(int) - crop.cut(image))
    assert difference.max() <= 1  # the same sampling grid; OpenCV's fixed-point rounding aside


def test_the_crop_replicates_edges_where_it_leaves_the_image():
    image = np.full((100, 100), 200, np.uint8)
    assert (faces.FaceCrop(0.0, 0.0, 120.0, 30.0).cut(image) == 200).all()
    with pytest.raises(InputError):
        faces.FaceCrop(0.0, 0.0, 10.0).cut(np.zeros((0, 0), np.uint8))


def test_an_aligned_crop_levels_the_eyes():
    eyes = ((80.0, 110.0), (140.0, 80.0))  # the subject's right eye lower: the head is turned
    detection = faces.Detection(faces.Box(60, 60, 100, 120), 0.9, "yunet", eyes)
    crop = faces.FaceCrop.around(detection)
    (rx, ry), (lx, ly) = crop.to_crop(np.array(eyes))
    assert ry == pytest.approx(ly, abs=1e-9) and lx > rx
    assert detection.roll == pytest.approx(np.degrees(np.arctan2(-30, 60)))
    upright = faces.FaceCrop.around(faces.Detection(faces.Box(60, 60, 100, 120), None, "haar"))
    assert upright.angle == 0 and upright.side == pytest.approx(120 * faces.HAAR_CROP.margin)


def test_the_whole_upload_as_a_crop():
    crop = faces.FaceCrop.whole(160, 120)  # padded by 20 rows above and below
    corners = np.array([[-0.5, -20.5], [159.5, 139.5]])  # the padded square's outer pixel edges
    np.testing.assert_allclose(crop.to_crop(corners), [[-0.5, -0.5], [95.5, 95.5]], atol=1e-9)


@pytest.mark.parametrize("name", ["haar", "yunet"])
def test_both_detectors_find_the_fixture_faces(fixtures, yunet, name):
    detector = yunet if name == "yunet" else faces.HaarDetector()
    found = [bool(detector.detect(cv2.imread(str(p)))) for p in sorted((fixtures / "faces" / "images").glob("*.jpg"))]
    assert sum(found) >= (10 if name == "yunet" else 8)


def test_yunet_gives_a_score_and_eyes_in_image_pixels(fixtures, yunet):
    image = cv2.imread(str(fixtures / "faces" / "images" / "Barry_Alvarez_12.jpg"))
    (detection,) = yunet.detect(image)
    assert 0.5 < detection.score <= 1 and detection.detector == "yunet"
    (rx, ry), (lx, ly) = detection.eyes
    box = detection.box
    assert box.x < rx < lx < box.x + box.width and box.y < ry < box.y + box.height / 2


def test_a_large_photo_is_detected_at_the_working_size_and_mapped_back(fixtures, yunet):
    image = cv2.imread(str(fixtures / "faces" / "images" / "Barry_Alvarez_12.jpg"))
    big = cv2.resize(image, None, fx=8, fy=8, interpolation=cv2.INTER_CUBIC)  # 1648 x 1744
    (small,), (large,) = yunet.detect(image), yunet.detect(big)
    for a, b in zip(
        (small.box.x, small.box.y, small.box.width, small.box.height),
        (large.box.x, large.box.y, large.box.width, large.box.height),
        strict=True,
    ):
        assert b / 8 == pytest.approx(a, abs=4)


def test_the_group_photo_has_one_box_per_face(yunet):
    photo = group_photo()
    detections = yunet.detect(photo)
    assert len(detections) == len(GROUP_PEOPLE)
    centers = sorted(d.box.center[0] for d in detections)
    assert all(b - a > 100 for a, b in zip(centers, centers[1:]))  # one per person, left to right


@pytest.mark.parametrize("kind", sorted(no_face_images()))
def test_no_face_where_there_is_none(yunet, kind):
    assert yunet.detect(no_face_images()[kind]) == []


def test_one_session_serves_concurrent_threads(yunet, fixtures):
    from concurrent.futures import ThreadPoolExecutor

    images = [cv2.imread(str(p)) for p in sorted((fixtures / "faces" / "images").glob("*.jpg"))[:4]]
    alone = [yunet.detect(image) for image in images]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: yunet.detect(images[i % 4]), range(16)))
    assert together == [alone[i % 4] for i in range(16)]


def opencv_faces(image: np.ndarray, score: float = 0.7) -> np.ndarray:
    """What `cv2.FaceDetectorYN` finds with the published YuNet file: the reference."""
    detector = cv2.FaceDetectorYN.create(
        str(faces.YUNET_PUBLISHED), "", (image.shape[1], image.shape[0]), score, 0.3, 100
    )
    _, found = detector.detect(image)
    return np.zeros((0, 15)) if found is None else found


def reference_images(fixtures) -> dict[str, np.ndarray]:
    frames = sorted((fixtures / "faces" / "images").glob("*.jpg"))
    return {
        **{p.name: cv2.imread(str(p)) for p in frames},
        "group photo": group_photo(),
        "odd size 301x187": cv2.resize(cv2.imread(str(frames[0])), (301, 187)),
        **no_face_images(),
    }


def test_yunet_on_onnxruntime_finds_what_opencvs_face_detector_finds(fixtures):
    """Our decoding and NMS against OpenCV's own, on faces, a group, an odd size and no face (at
    full size: no working-size reduction, so both see the same pixels)."""
    yunet = faces.YuNetDetector(YUNET, max_side=100_000)
    for name, image in reference_images(fixtures).items():
        image = faces.to_bgr(image)
        want = opencv_faces(image)
        got = yunet.detect(image)
        assert len(got) == len(want), name
        for detection, row in zip(got, want[np.argsort(-want[:, 14])], strict=True):
            box = detection.box
            np.testing.assert_allclose([box.x, box.y, box.width, box.height], row[:4], atol=0.01, err_msg=name)
            np.testing.assert_allclose(np.ravel(detection.eyes), row[4:8], atol=0.01, err_msg=name)
            assert detection.score == pytest.approx(row[14], abs=1e-4), name


def test_find_faces_maps_the_models_points_back_through_each_crop(yunet):
    """A stand-in model that answers 0 for every coordinate (crop pixel 48, the course's origin):
    each face's points must come back as that pixel of its own crop, in photo pixels."""
    photo = group_photo()
    found = faces.find_faces(photo, yunet, lambda x: [np.zeros((len(x), 30), np.float32)])
    assert len(found) == len(GROUP_PEOPLE)
    for face in found:
        origin = face.crop.to_image(np.array([48.0, 48.0]))
        np.testing.assert_allclose(face.keypoints, np.tile(origin, (15, 1)), atol=1e-9)
        answer = face.as_dict()
        assert answer["detector"] == "yunet" and len(answer["keypoints"]) == 15
    assert faces.find_faces(no_face_images()["grey"], yunet, lambda x: 1 / 0) == []  # no face: no model call


def test_iou():
    a = faces.Box(0, 0, 10, 10)
    assert faces.iou(a, a) == 1.0
    assert faces.iou(a, faces.Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert faces.iou(a, faces.Box(20, 20, 5, 5)) == 0.0


def test_to_gray_and_to_bgr_accept_gray_bgr_and_bgra():
    for image in (np.zeros((5, 6), np.uint8), np.zeros((5, 6, 3), np.uint8), np.zeros((5, 6, 4), np.uint8)):
        assert faces.to_gray(image).shape == (5, 6) and faces.to_bgr(image).shape == (5, 6, 3)
    with pytest.raises(InputError):
        faces.to_gray(np.zeros((5, 6, 2), np.uint8))


def test_a_missing_yunet_file_is_one_line(tmp_path):
    with pytest.raises(InputError, match="YuNet model not found"):
        faces.YuNetDetector(tmp_path / "nope.onnx")


# --- given boxes ---------------------------------------------------------------------------------


def test_given_boxes_become_given_detections():
    records = [
        {"x": 10, "y": 20.5, "width": 30, "height": 40},
        {"x": -5, "y": 0, "width": 50, "height": 60, "eyes": [[10, 20], [30, 10]], "score": 0.5},
    ]
    level, turned = faces.given_detections(records)
    assert level == faces.Detection(faces.Box(10.0, 20.5, 30.0, 40.0), None, "given")
    assert turned.eyes == ((10.0, 20.0), (30.0, 10.0)) and turned.score == 0.5 and turned.detector == "given"
    assert turned.roll == pytest.approx(np.degrees(np.arctan2(-10, 20)))
    assert faces.given_detections([]) == []


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
        faces.given_detections(records)
    assert "\n" not in str(refused.value)


def test_too_many_given_boxes():
    box = {"x": 1, "y": 2, "width": 3, "height": 4}
    assert len(faces.given_detections([box] * faces.MAX_GIVEN_BOXES)) == faces.MAX_GIVEN_BOXES
    with pytest.raises(InputError, match=f"boxes: {faces.MAX_GIVEN_BOXES + 1} boxes, over the limit"):
        faces.given_detections([box] * (faces.MAX_GIVEN_BOXES + 1))


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
    detections = faces.given_detections(
        [{"x": 1, "y": 1, "width": 5, "height": 5}, {"x": x, "y": y, "width": width, "height": height}]
    )
    if message is None:
        faces.check_given_boxes(detections, 640, 480)
    else:
        with pytest.raises(InputError, match=rf"^boxes\[1\]: .*{re.escape(message)}"):
            faces.check_given_boxes(detections, 640, 480)


def test_a_detection_scaled_down_and_up_is_itself():
    detection = faces.Detection(faces.Box(10.25, 20.5, 30.0, 40.0), 0.5, "given", ((12.0, 30.0), (28.0, 31.5)))
    for factor in (2, 4, 8):
        small = detection.scaled(1 / factor)
        assert small.box.width == 30.0 / factor and small.eyes[0][0] == (12.0 + 0.5) / factor - 0.5
        assert small.scaled(factor) == detection


def test_given_boxes_run_the_pipeline_as_the_detections_they_copy(yunet):
    """YuNet's own boxes and eyes, given back: the same crops and keypoints, to the last bit;
    without the eyes, the same box cut level."""
    photo = group_photo()
    weights = np.random.default_rng(3).normal(0, 0.01, (96 * 96, 30))

    def model(x):  # a fixed random projection: every pixel of the crop moves the points
        return [np.tanh(x.reshape(len(x), -1) @ weights).astype(np.float32)]

    detected = faces.find_faces(photo, yunet, model)
    given = [replace(face.detection, detector="given", score=None) for face in detected]
    again = faces.find_faces(photo, faces.GivenBoxes(given), model)
    assert len(again) == len(detected) == len(GROUP_PEOPLE)
    for face, want in zip(again, detected, strict=True):
        assert face.crop == want.crop and face.crop.angle != 0
        np.testing.assert_array_equal(face.keypoints, want.keypoints)
        assert face.as_dict()["detector"] == "given" and face.as_dict()["score"] is None
        assert face.as_dict()["box"] == want.as_dict()["box"]
    level = faces.find_faces(photo, faces.GivenBoxes([replace(d, eyes=None) for d in given]), model)
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
        faces.Detection(faces.Box(480.0, 300.0, side, side * 1.2), 0.9, "given", eyes),
        faces.Detection(faces.Box(1150.0, 5.0, 60.0, 70.0), 0.9, "given"),  # its crop leaves the frame
    ]
    x0, y0, x1, y1 = faces.region_read(detections, 1200, 900)
    assert x1 == 1200 and y0 == 0 and (x1 - x0) * (y1 - y0) < 1200 * 900  # clipped to the frame, smaller than it
    region = gray[y0:y1, x0:x1]
    for detection in detections:
        moved = replace(detection, box=replace(detection.box, x=detection.box.x - x0, y=detection.box.y - y0))
        if detection.eyes:
            moved = replace(moved, eyes=tuple((ex - x0, ey - y0) for ex, ey in detection.eyes))
        whole, part = faces.FaceCrop.around(detection), faces.FaceCrop.around(moved)
        assert np.array_equal(whole.cut(gray), part.cut(region))
