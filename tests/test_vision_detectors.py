"""vision.detectors: YuNet and Haar on real OpenCV and onnxruntime, and the detections they make."""

import cv2
import numpy as np
import pytest
from photos import GROUP_PEOPLE, group_photo, no_face_images

from vision.colors import to_bgr
from vision.detectors import HAAR_CROP, YUNET_CROP, YUNET_MODEL, YUNET_PUBLISHED, Detection, HaarDetector, YuNetDetector
from vision.errors import InputError
from vision.geometry import Box


@pytest.mark.parametrize("name", ["haar", "yunet"])
def test_both_detectors_find_the_fixture_faces(fixtures, yunet, name):
    detector = yunet if name == "yunet" else HaarDetector()
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
    detector = cv2.FaceDetectorYN.create(str(YUNET_PUBLISHED), "", (image.shape[1], image.shape[0]), score, 0.3, 100)
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
    yunet = YuNetDetector(YUNET_MODEL, max_side=100_000)
    for name, image in reference_images(fixtures).items():
        image = to_bgr(image)
        want = opencv_faces(image)
        got = yunet.detect(image)
        assert len(got) == len(want), name
        for detection, row in zip(got, want[np.argsort(-want[:, 14])], strict=True):
            box = detection.box
            np.testing.assert_allclose([box.x, box.y, box.width, box.height], row[:4], atol=0.01, err_msg=name)
            np.testing.assert_allclose(np.ravel(detection.eyes), row[4:8], atol=0.01, err_msg=name)
            assert detection.score == pytest.approx(row[14], abs=1e-4), name


def test_each_detection_carries_its_detectors_crop_style(fixtures, yunet):
    image = cv2.imread(str(fixtures / "faces" / "images" / "Barry_Alvarez_12.jpg"))
    assert (YuNetDetector.crop_style, HaarDetector.crop_style) == (YUNET_CROP, HAAR_CROP)
    for detector in (yunet, HaarDetector()):
        found = detector.detect(image)
        assert found and all(d.crop_style == detector.crop_style and d.detector == detector.name for d in found)


def test_a_missing_yunet_file_is_one_line(tmp_path):
    with pytest.raises(InputError, match="YuNet model not found"):
        YuNetDetector(tmp_path / "nope.onnx")


def test_a_detection_scaled_down_and_up_is_itself():
    detection = Detection(Box(10.25, 20.5, 30.0, 40.0), 0.5, "given", ((12.0, 30.0), (28.0, 31.5)))
    for factor in (2, 4, 8):
        small = detection.scaled(1 / factor)
        assert small.box.width == 30.0 / factor and small.eyes[0][0] == (12.0 + 0.5) / factor - 0.5
        assert small.scaled(factor) == detection
