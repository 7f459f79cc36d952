"""`python -m clients.webcam` against a real `bentoml serve` with the shipped models, on videos made
from the fixture faces (whose landmarks are known), headless."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from paths import ROOT
from photos import KEYPOINT_NME_BOUND, mean_face, mean_face_model
from service_models import serving

from bench.processes import Server, free_port
from clients import webcam
from clients.api import VisionClient
from clients.local import LocalFaces
from training.faces_data import load_landmarks68
from vision.detectors import YUNET_MODEL, YuNetDetector
from vision.faces import find_faces
from vision.keypoints import from_ibug68
from vision.metrics import nme_per_face

PERSON = "Chris_Noth_10.jpg"
SIZE, SCALE, STEP = (640, 480), 1.5, 3  # the frame, the fixture face's enlargement, its drift per frame


def fixture_clip(path: Path, fixtures: Path, frames: int, fps: float = 10.0) -> np.ndarray:
    """A 640x480 video of a fixture face drifting right; returns its 15 true keypoints per frame."""
    landmarks = load_landmarks68(fixtures / "faces" / "keypoints68.csv")
    index = landmarks.names.index(PERSON)
    face = cv2.imread(str(landmarks.image_dir / PERSON))
    face = cv2.resize(face, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)
    truth = from_ibug68(landmarks.points[index]) * SCALE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    labels = []
    for i in range(frames):
        x, y = 20 + STEP * (i % 40), 40  # drifting right, and back to the start every 40 frames
        frame = np.full((SIZE[1], SIZE[0], 3), 110, np.uint8)
        frame[y : y + face.shape[0], x : x + face.shape[1]] = face[: SIZE[1] - y, : SIZE[0] - x]
        writer.write(frame)
        labels.append(truth + [x, y])
    writer.release()
    return np.stack(labels)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def keypoints(face: dict) -> np.ndarray:
    return np.array([[k["x"], k["y"]] for k in face["keypoints"]])


def nme(points: np.ndarray, truth: np.ndarray) -> float:
    return float(nme_per_face(points[None], truth[None])[0])


def mean_face_errors(clip: Path, truth: np.ndarray) -> list[float]:
    """Each frame's NME for a model that answers the mean face, through the same pipeline: what
    KEYPOINT_NME_BOUND must tell the served model from."""
    capture, detector, model = cv2.VideoCapture(str(clip)), YuNetDetector(YUNET_MODEL), mean_face_model(mean_face())
    errors = []
    for labels in truth:
        (face,) = find_faces(capture.read()[1], detector, model)
        errors.append(nme(face.keypoints, labels))
    capture.release()
    return errors


def webcam_process(*args: str, url: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.Popen(
        [sys.executable, "-m", "clients.webcam", "--url", url, "--no-window", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lines(path: Path, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {count} lines in {timeout:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serving({"VISION_PROVIDER": "cpu"}, tmp_path_factory.mktemp("log"))


def test_every_frame_is_answered_in_order_near_the_true_keypoints(server, fixtures, tmp_path, capsys):
    clip, out, lines = tmp_path / "clip.avi", tmp_path / "overlay.avi", tmp_path / "faces.jsonl"
    truth = fixture_clip(clip, fixtures, frames=12)
    webcam.main(["--source", str(clip), "--url", server.url, "--out", str(out), "--jsonl", str(lines), "--no-window"])
    records = read_jsonl(lines)
    assert [r["frame"] for r in records] == list(range(12))
    assert [r["t"] for r in records] == pytest.approx([i / 10 for i in range(12)])
    assert all(len(r["faces"]) == 1 for r in records)
    errors = [nme(keypoints(r["faces"][0]), truth[r["frame"]]) for r in records]
    assert max(errors) < KEYPOINT_NME_BOUND, errors  # the whole pipeline
    assert min(mean_face_errors(clip, truth)) > KEYPOINT_NME_BOUND  # which a mean face misses on every frame
    assert all(set(r["faces"][0]["pose"]) == {"yaw", "pitch", "roll"} for r in records)  # the head pose too
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    capture.release()
    summary = capsys.readouterr().out.strip()
    assert summary.startswith("12 frames in ") and "round trip p50" in summary and "0 dropped" in summary
    assert summary.endswith(f"-> {out} -> {lines}")


def test_tracking_follows_the_face_with_boxes_and_detects_every_n_frames(server, fixtures, tmp_path, capsys):
    clip, lines = tmp_path / "clip.avi", tmp_path / "faces.jsonl"
    truth = fixture_clip(clip, fixtures, frames=24)
    webcam.main(
        [
            "--source",
            str(clip),
            "--url",
            server.url,
            "--jsonl",
            str(lines),
            "--no-window",
            "--detect-every",
            "8",
            "--in-flight",
            "1",
        ]
    )
    records = read_jsonl(lines)
    assert all(len(r["faces"]) == 1 for r in records)
    detectors = [r["faces"][0]["detector"] for r in records]
    assert detectors.count("yunet") == 3 and detectors.count("given") == 21, detectors  # frames 0, 8, 16 detect
    assert {r["faces"][0]["id"] for r in records} == {1}  # one person, one id throughout
    errors = [nme(keypoints(r["faces"][0]), truth[r["frame"]]) for r in records]
    assert max(errors) < KEYPOINT_NME_BOUND, errors  # as if detected
    assert "detected on 3" in capsys.readouterr().out


def test_no_track_detects_on_every_frame(server, fixtures, tmp_path, capsys):
    clip, lines = tmp_path / "clip.avi", tmp_path / "faces.jsonl"
    fixture_clip(clip, fixtures, frames=6)
    webcam.main(["--source", str(clip), "--url", server.url, "--jsonl", str(lines), "--no-window", "--no-track"])
    records = read_jsonl(lines)
    assert [r["faces"][0]["detector"] for r in records] == ["yunet"] * 6
    assert {r["faces"][0]["id"] for r in records} == {1}  # ids all the same
    assert "detected on" not in capsys.readouterr().out


def test_a_cut_to_another_person_gets_a_new_id_and_ids_are_not_reused(server, fixtures, tmp_path):
    landmarks = load_landmarks68(fixtures / "faces" / "keypoints68.csv")
    people = ["Chris_Noth_10.jpg", "Barry_Alvarez_20.jpg", "Chris_Noth_10.jpg"]  # back to the first: a new id
    clip, lines = tmp_path / "cuts.avi", tmp_path / "faces.jsonl"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE)
    for person in people:
        photo = cv2.imread(str(landmarks.image_dir / person))
        photo = cv2.resize(photo, (300, 300), interpolation=cv2.INTER_CUBIC)  # the same place and size
        for _ in range(4):
            frame = np.full((SIZE[1], SIZE[0], 3), 110, np.uint8)
            frame[60:360, 150:450] = photo
            writer.write(frame)
    writer.release()
    webcam.main(["--source", str(clip), "--url", server.url, "--jsonl", str(lines), "--no-window", "--in-flight", "1"])
    records = read_jsonl(lines)
    assert [[f["id"] for f in r["faces"]] for r in records] == [[1]] * 4 + [[2]] * 4 + [[3]] * 4
    assert [r["faces"][0]["detector"] for r in records][4::4] == ["yunet", "yunet"]  # each cut is detected


def test_the_client_rides_out_a_service_restart(fixtures, tmp_path):
    clip, lines = tmp_path / "clip.avi", tmp_path / "faces.jsonl"
    fixture_clip(clip, fixtures, frames=240)  # long enough (about 8 s) that the stop lands mid-video
    port = free_port()
    first = Server({"VISION_PROVIDER": "cpu"}, tmp_path / "first.log", port=port)
    second = None
    client = None
    try:
        first.wait_ready()
        client = webcam_process("--source", str(clip), "--jsonl", str(lines), "--in-flight", "1", url=first.url)
        wait_for_lines(lines, 5)
        first.stop()  # mid-video
        time.sleep(1.0)
        second = Server({"VISION_PROVIDER": "cpu"}, tmp_path / "second.log", port=port)
        second.wait_ready()
        out, err = client.communicate(timeout=180)
    finally:
        if client is not None and client.poll() is None:
            client.kill()
        for server in (first, second):
            if server is not None:
                server.stop()
    assert client.returncode == 0, err
    assert "service unreachable" in err and "answers again" in err
    records = read_jsonl(lines)
    assert [r["frame"] for r in records] == list(range(240))  # a file waits: no frame is skipped
    assert all(r["faces"] is not None and len(r["faces"]) == 1 for r in records)
    assert out.startswith("240 frames in ")


def test_a_live_source_drops_stale_frames_instead_of_queueing(server, fixtures, tmp_path):
    clip, lines = tmp_path / "clip.avi", tmp_path / "faces.jsonl"
    fixture_clip(clip, fixtures, frames=45, fps=60.0)  # faster than one request at a time can follow
    stats = webcam.asyncio.run(
        webcam.run(
            webcam.Options(
                source=str(clip), url=server.url, jsonl=lines, window=False, in_flight=1, realtime=True, smooth=False
            )
        )
    )
    frames = [r["frame"] for r in read_jsonl(lines)]
    assert frames == sorted(set(frames))  # in order, none twice
    assert stats.dropped > 0 and len(frames) + stats.dropped == 45


def test_ctrl_c_ends_with_a_summary(server, fixtures, tmp_path):
    clip, lines = tmp_path / "clip.avi", tmp_path / "faces.jsonl"
    fixture_clip(clip, fixtures, frames=150)
    client = webcam_process("--source", str(clip), "--jsonl", str(lines), url=server.url)
    try:
        wait_for_lines(lines, 3)
        client.send_signal(signal.SIGINT)
        out, err = client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
            print(client.communicate())
    assert client.returncode == 0, err
    done = len(read_jsonl(lines))
    assert 3 <= done < 150 and out.startswith(f"{done} frames in ")


def test_local_mode_answers_as_the_service_does(server, fixtures, tmp_path):
    clip = tmp_path / "clip.avi"
    fixture_clip(clip, fixtures, frames=3)
    capture = cv2.VideoCapture(str(clip))
    local = LocalFaces()
    with VisionClient(server.url) as client:
        for _ in range(3):
            frame = capture.read()[1]
            ok, png = cv2.imencode(".png", frame)  # lossless: the service sees exactly these pixels
            served, here = client.faces(png.tobytes()), local(frame)
            assert len(here.faces) == 1 and here.faces[0].box == served.faces[0].box
            assert np.abs(here.faces[0].points - served.faces[0].points).max() < 0.02
    capture.release()


def test_a_followed_frame_sends_only_the_region_its_crops_read_and_gets_the_same_points(fixtures, tmp_path):
    clip = tmp_path / "clip.avi"
    fixture_clip(clip, fixtures, frames=1)
    frame = cv2.VideoCapture(str(clip)).read()[1]
    local = LocalFaces()
    found = local(frame).faces[0]
    box = found.box
    boxes = [{"x": box.x, "y": box.y, "width": box.width, "height": box.height, "score": found.score}]
    region, region_boxes, corner = webcam.followed_region(frame, boxes)
    assert region.size < frame.size and region.flags["C_CONTIGUOUS"]
    whole, part = local(frame, boxes).faces[0], local(region, region_boxes).faces[0].moved(*corner)
    assert part.box == whole.box
    assert np.abs(part.points - whole.points).max() < 1e-6
    assert webcam.moved_boxes(region_boxes, *corner) == boxes


def test_local_webcam_runs_without_a_service(fixtures, tmp_path, capsys):
    clip, lines = tmp_path / "clip.avi", tmp_path / "faces.jsonl"
    truth = fixture_clip(clip, fixtures, frames=6)
    webcam.main(["--source", str(clip), "--local", "--jsonl", str(lines), "--no-window", "--smooth"])
    records = read_jsonl(lines)
    assert [r["frame"] for r in records] == list(range(6)) and all(len(r["faces"]) == 1 for r in records)
    errors = [nme(keypoints(r["faces"][0]), truth[r["frame"]]) for r in records]
    assert max(errors) < KEYPOINT_NME_BOUND, errors
    assert [r["faces"][0]["detector"] for r in records] == ["yunet"] * 3 + [
        "given"
    ] * 3  # 3 in flight before the first answer; then followed
    assert {r["faces"][0]["id"] for r in records} == {1}
    assert capsys.readouterr().out.startswith("6 frames in ")


def test_webcam_without_a_display_says_so_in_one_line(fixtures, tmp_path):
    clip = tmp_path / "clip.avi"
    fixture_clip(clip, fixtures, frames=2)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(
        [sys.executable, "-m", "clients.webcam", "--source", str(clip), "--url", f"http://127.0.0.1:{free_port()}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert done.stderr.strip() == "error: no display: use --no-window with --out or --jsonl"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--no-window"], "--no-window needs --out or --jsonl"),
        (["--no-window", "--jsonl", "x.jsonl", "--in-flight", "0"], "--in-flight must be >= 1"),
    ],
)
def test_webcam_refuses_bad_options(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        webcam.main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_webcam_says_a_missing_source_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: cannot open video source"):
        webcam.main(["--source", str(tmp_path / "missing.mp4"), "--jsonl", str(tmp_path / "x.jsonl"), "--no-window"])


def test_webcam_falls_back_when_the_source_reports_no_frame_rate():
    class Camera:
        def __init__(self, fps):
            self.fps = fps

        def get(self, prop):
            assert prop == cv2.CAP_PROP_FPS
            return self.fps

    assert [webcam.source_fps(Camera(f)) for f in (0.0, float("nan"), -1.0, 25.0)] == [30.0, 30.0, 30.0, 25.0]
