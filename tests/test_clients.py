"""The HTTP clients against a real `bentoml serve` (stand-in models: the clients test transport
and drawing, not accuracy)."""

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from paths import ROOT
from phone_photos import SOURCE, UPRIGHT_SIZE, phone_photo
from service_models import serving, write_models

from bench.processes import free_port
from clients.__main__ import main as cli
from clients.answers import Face, FacesAnswer
from clients.api import (
    AsyncVisionClient,
    ServiceBusy,
    ServiceError,
    ServiceRefused,
    ServiceUnreachable,
    VisionClient,
)
from training.mnist import load_mnist

FACE = ROOT / "docs" / "examples" / "face.jpg"  # Grace Hopper, public domain, 512x600
DIGIT = ROOT / "docs" / "examples" / "digit.png"  # an MNIST 7, 28x28


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def run_module(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m ...` in a fresh process, without a display and without $VISION_URL unless given."""
    base = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "VISION_URL")}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text}"
    return lines[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = write_models(tmp_path_factory.mktemp("models"))
    yield from serving({"VISION_MANIFEST": str(models), "VISION_PROVIDER": "cpu"}, tmp_path_factory.mktemp("log"))


@pytest.fixture(autouse=True)
def no_vision_url(monkeypatch):
    monkeypatch.delenv("VISION_URL", raising=False)


def test_api_answers_each_endpoint(server, fixtures):
    digit = load_mnist(fixtures / "mnist")["train_images"][0]
    with VisionClient(server.url) as client:
        assert client.ready()
        answer = client.digit(digit, model="mlp")
        assert answer["model"] == "mlp" and 0 <= answer["digit"] <= 9
        photo = cv2.imread(str(FACE))
        faces = client.faces(photo)
        assert (faces.width, faces.height) == (photo.shape[1], photo.shape[0]) and len(faces.faces) == 1
        assert client.keypoints(photo[:200, :200]).points.shape == (15, 2)


def test_the_answer_records_write_back_the_services_json(server):
    """clients.answers reads /faces and /keypoints into records; as_json gives the service's JSON
    back, key for key (what `python -m clients` prints and the webcam client writes)."""
    import httpx

    photo = FACE.read_bytes()
    with VisionClient(server.url) as client, httpx.Client(base_url=server.url, timeout=30) as http:
        for endpoint, read in (("faces", client.faces), ("keypoints", client.keypoints)):
            raw = http.post(f"/{endpoint}", files={"image": ("face.jpg", photo)}).json()
            assert json.dumps(read(photo).as_json()) == json.dumps(raw), endpoint


def test_an_answer_of_another_shape_is_a_one_line_error(busy_service):
    busy_service["answers"] = [(200, {}, {"faces": [{"box": {}}]})]  # JSON, but not /faces' answer
    with VisionClient(busy_service["url"]) as client, pytest.raises(ServiceError) as refused:
        client.faces(FACE.read_bytes())
    assert "/faces answered with JSON of another shape" in str(refused.value) and "\n" not in str(refused.value)


def test_api_raises_the_service_error_message(server):
    with VisionClient(server.url) as client, pytest.raises(ServiceError, match="400.*not an image"):
        client.faces(b"hello")


def test_api_refusal_carries_the_status_and_the_service_words(server):
    with VisionClient(server.url) as client, pytest.raises(ServiceRefused) as refused:
        client.digit(b"hello")
    assert refused.value.status == 400 and "not an image" in str(refused.value)


def test_api_retries_connection_errors_then_says_unreachable():
    url = dead_url()
    with VisionClient(url, retries=2) as client:
        attempts = []
        send = client._http.post

        def counted(*args, **kwargs):
            attempts.append(1)
            return send(*args, **kwargs)

        client._http.post = counted
        with pytest.raises(ServiceUnreachable, match=f"nothing answers at {url}"):
            client.faces(FACE.read_bytes())
    assert len(attempts) == 3  # the first try and two retries


def test_async_api_answers_like_the_sync_one(server):
    async def ask():
        async with AsyncVisionClient(server.url) as client:
            assert await client.ready()
            answers = await asyncio.gather(*(client.faces(FACE.read_bytes()) for _ in range(4)))
            with pytest.raises(ServiceRefused, match="400"):
                await client.faces(b"hello")
            return answers

    answers = asyncio.run(ask())
    with VisionClient(server.url) as client:
        expected = client.faces(FACE.read_bytes())
    assert all(answer == expected for answer in answers)


def test_a_faces_given_box_takes_the_box_the_score_and_the_eyes():
    eyes = {"right_eye_center": (40.5, 60.0), "left_eye_center": (80.0, 58.25), "nose_tip": (60.0, 80.0)}
    face = {
        "box": {"x": 10, "y": 20, "width": 100, "height": 120},
        "score": 0.91,
        "detector": "yunet",
        "keypoints": [{"name": name, "x": x, "y": y} for name, (x, y) in eyes.items()],
    }
    assert Face.from_json(face).given_box() == {
        "x": 10,
        "y": 20,
        "width": 100,
        "height": 120,
        "score": 0.91,
        "eyes": [[40.5, 60.0], [80.0, 58.25]],  # the subject's right eye (the image's left) first
    }
    haar = {**face, "score": None, "keypoints": []}
    assert Face.from_json(haar).given_box() == {"x": 10, "y": 20, "width": 100, "height": 120}


def test_api_sends_boxes_instead_of_detecting(server):
    photo = FACE.read_bytes()
    with VisionClient(server.url) as client:
        (detected,) = client.faces(photo).faces
        (given,) = client.faces(photo, boxes=[detected]).faces  # a Face, sent as its given_box()
        assert given.detector == "given" and given.box == detected.box
        assert given.score == detected.score
        moved = given.points - detected.points
        assert np.abs(moved).max() < 0.04 * detected.box.width  # the eyes turned the crop as YuNet's did
        plain = {"x": detected.box.x, "y": detected.box.y, "width": detected.box.width, "height": detected.box.height}
        (level,) = client.faces(photo, boxes=[plain]).faces  # a plain box: no eyes, no score
        assert level.detector == "given" and level.score is None
        assert level.points.tolist() != given.points.tolist()
        box = {k: np.float32(v) for k, v in plain.items()}  # numpy numbers go as numbers
        assert client.faces(photo, boxes=[box]).faces[0].keypoints == level.keypoints
        assert client.faces(photo, boxes=[]).faces == ()
        with pytest.raises(ServiceRefused, match="400.*boxes\\[0\\]: width must be > 0"):
            client.faces(photo, boxes=[{**plain, "width": 0}])

    async def ask():
        async with AsyncVisionClient(server.url) as client:
            return await client.faces(photo, boxes=[detected.given_box()])

    assert asyncio.run(ask()).faces == (given,)


def test_async_api_says_unreachable():
    async def ask():
        async with AsyncVisionClient(dead_url(), retries=1) as client:
            await client.digit(DIGIT.read_bytes())

    with pytest.raises(ServiceUnreachable):
        asyncio.run(ask())


def test_api_reads_vision_url(server, monkeypatch):
    monkeypatch.setenv("VISION_URL", server.url + "/")
    with VisionClient() as client:
        assert client.url == server.url and client.ready()


def test_cli_faces_out_prints_one_summary_line(server, tmp_path, capsys):
    out = tmp_path / "annotated.jpg"
    cli(["faces", str(FACE), "--url", server.url, "--out", str(out)])
    assert one_line(capsys.readouterr().out) == f"1 face -> {out}"
    drawn, original = cv2.imread(str(out)), cv2.imread(str(FACE))
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).max() > 100  # something was drawn


def test_cli_json_prints_the_answer(server, tmp_path, capsys):
    cli(["faces", str(FACE), "--url", server.url])  # without --out: the JSON, as always
    (face,) = json.loads(capsys.readouterr().out)["faces"]
    assert "pose" in face  # the head pose, as /faces answers it (null or {"yaw", "pitch", "roll"})
    out = tmp_path / "annotated.png"
    cli(["faces", str(FACE), "--url", server.url, "--out", str(out), "--json"])
    printed = capsys.readouterr()
    assert len(json.loads(printed.out)["faces"]) == 1  # stdout stays pure JSON
    assert one_line(printed.err) == f"1 face -> {out}" and out.is_file()


def test_cli_keypoints_out_prints_one_line(server, tmp_path, capsys):
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), cv2.imread(str(FACE))[100:400, 100:400])
    out = tmp_path / "annotated.png"
    cli(["keypoints", str(crop), "--url", server.url, "--out", str(out)])
    assert one_line(capsys.readouterr().out) == f"15 keypoints -> {out}"
    assert cv2.imread(str(out)).shape == (300, 300, 3)


def test_cli_digit_out_draws_the_answer(server, tmp_path, capsys):
    out = tmp_path / "labelled.png"
    cli(["digit", str(DIGIT), "--url", server.url, "--model", "mlp", "--out", str(out)])
    line = one_line(capsys.readouterr().out)
    assert line.startswith("digit ") and line.endswith(f"mlp) -> {out}")
    drawn = cv2.imread(str(out))
    # enlarged from 28x28 (to 280x280) under a banner that carries the label
    assert drawn is not None and drawn.shape[1] == 280 and drawn.shape[0] > 280
    banner = drawn[: drawn.shape[0] - 280]
    assert (banner[..., 2] > 200).any()  # yellow text on the dark banner


def test_cli_number_reads_and_boxes_each_digit(server, fixtures, tmp_path, capsys):
    from photos import written_number

    images = load_mnist(fixtures / "mnist")["train_images"][:3]
    photo = tmp_path / "number.png"
    cv2.imwrite(str(photo), written_number(list(images), [20, 30]))
    out = tmp_path / "boxed.png"
    cli(["number", str(photo), "--url", server.url, "--out", str(out), "--json"])
    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    assert len(answer["number"]) == 3 and len(answer["digits"]) == 3
    assert one_line(captured.err) == f"number {answer['number']} (cnn) -> {out}"
    drawn, original = cv2.imread(str(out)), cv2.imread(str(photo))
    height, width = original.shape[:2]
    assert drawn.shape[1] == width and drawn.shape[0] == height + 112 + 16  # the 3 model inputs, 4x, beneath
    assert (np.abs(drawn[:height].astype(int) - original).sum(axis=2) > 60).any()  # boxes and labels drawn
    strip = drawn[height + 8 : height + 120, 8 : 8 + 3 * 120 - 8]
    assert strip.max() > 200  # white ink of the 28x28 inputs


def test_cli_sends_several_images_and_a_folder_as_json_lines(server, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        cv2.imwrite(str(folder / name), cv2.imread(str(FACE)))
    (folder / "notes.txt").write_text("not an image, and not sent")
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a picture")
    with pytest.raises(SystemExit, match=r"^error: 1 of 4 images failed$"):
        cli(["faces", str(folder), str(broken), str(FACE), "--url", server.url, "--concurrency", "3"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == [str(folder / "a.jpg"), str(folder / "b.png"), str(broken), str(FACE)]
    assert [len(line.get("faces", [])) for line in lines] == [1, 1, 0, 1]
    assert lines[2]["error"].startswith(f"{broken}: not an image")


def test_cli_writes_each_drawing_into_the_out_folder(server, tmp_path, capsys):
    out = tmp_path / "drawn"
    cli(["digit", str(DIGIT), str(FACE), "--url", server.url, "--out", str(out)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and all("digit" in line for line in lines)
    assert sorted(p.name for p in out.iterdir()) == ["digit.png", "face.jpg"]
    assert cv2.imread(str(out / "digit.png")).shape[1] == 280  # the enlarged, labelled digit


def test_cli_reads_a_folder_of_heic_and_avif_photos_and_draws_them_upright(server, tmp_path, capsys):
    """Phone photos stored sideways (tests/phone_photos.py): found in the folder, answered and drawn
    in the upright photo; OpenCV cannot write HEIC, so that drawing is a JPEG beside the name."""
    folder = tmp_path / "phone"
    folder.mkdir()
    for name in ("face_sideways.heic", "face_sideways.avif"):
        (folder / name).write_bytes(phone_photo(name))
    out = tmp_path / "drawn"
    cli(["faces", str(folder), "--url", server.url, "--out", str(out)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(line["image"]).name for line in lines] == ["face_sideways.avif", "face_sideways.heic"]
    assert all((line["width"], line["height"]) == UPRIGHT_SIZE and len(line["faces"]) == 1 for line in lines)
    assert sorted(p.name for p in out.iterdir()) == ["face_sideways.avif", "face_sideways.heic.jpg"]
    upright = cv2.imread(str(SOURCE))
    for drawing in out.iterdir():
        drawn = cv2.imread(str(drawing))
        assert drawn.shape == upright.shape and np.abs(drawn.astype(int) - upright).max() > 100, drawing.name


def test_cli_jsonl_gives_one_line_for_one_image(server, capsys):
    cli(["digit", str(DIGIT), "--url", server.url, "--jsonl"])
    line = json.loads(one_line(capsys.readouterr().out))
    assert line["image"] == str(DIGIT) and 0 <= line["digit"] <= 9


def test_cli_refuses_an_empty_folder_and_a_clash_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match=r"^error: .*empty: no image files in this folder"):
        cli(["faces", str(empty), "--url", dead_url()])
    other = tmp_path / "other"
    other.mkdir()
    (other / "face.jpg").write_bytes(FACE.read_bytes())
    with pytest.raises(SystemExit, match=r"^error: two images are named face\.jpg"):
        cli(["faces", str(FACE), str(other / "face.jpg"), "--url", dead_url(), "--out", str(tmp_path / "o")])


def test_cli_help_names_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: python -m clients ") and "VISION_URL" in help_text


def test_cli_uses_vision_url(server):
    done = run_module("clients", "digit", str(DIGIT), env={"VISION_URL": server.url})
    assert done.returncode == 0, done.stderr
    assert 0 <= json.loads(done.stdout)["digit"] <= 9


def test_cli_exits_with_one_line_when_the_service_is_down(tmp_path):
    url = dead_url()
    with pytest.raises(SystemExit) as exit_info:
        cli(["faces", str(FACE), "--url", url])
    message = str(exit_info.value.code)
    assert message.startswith(f"error: nothing answers at {url}") and "\n" not in message
    assert "make serve" in message and "--url" in message
    done = run_module("clients", "faces", str(FACE), env={"VISION_URL": url})  # the variable, in a real process
    assert done.returncode != 0 and one_line(done.stderr).startswith(f"error: nothing answers at {url}")


def test_cli_refuses_bad_inputs_in_one_line(tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(FACE.read_bytes()[:20_000])
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    for path, reason in [
        (tmp_path / "missing.png", "no such file"),
        (text, "not an image"),
        (truncated, "truncated or corrupt"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli(["digit", str(path), "--url", dead_url()])  # refused before the service is asked
        message = str(exit_info.value.code)
        assert message.startswith(f"error: {path}: {reason}") and "\n" not in message
    with pytest.raises(SystemExit, match=r"^error: .*out\.xyz: cannot write that image type"):
        cli(["faces", str(FACE), "--url", dead_url(), "--out", str(tmp_path / "out.xyz")])


def test_cli_keeps_libjpeg_warnings_off_the_terminal(server, tmp_path, capfd):
    data = FACE.read_bytes()
    scan = data.index(b"\xff\xda")  # stray bytes before the scan: libjpeg warns "Corrupt JPEG data"
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(data[:scan] + b"\x00\x00\x00" + data[scan:])
    out = tmp_path / "annotated.jpg"
    cli(["faces", str(damaged), "--url", server.url, "--out", str(out)])
    printed = capfd.readouterr()  # file descriptors 1 and 2, where libjpeg writes
    assert "JPEG" not in printed.err and printed.err.strip() == ""
    assert one_line(printed.out) == f"1 face -> {out}"


def test_bench_runs_against_the_service(server):
    """A smoke run (bench is a tool, not a test): it finds its example images and talks to the service."""
    done = run_module("bench", "--seconds", "0.2", env={"VISION_URL": server.url})
    assert done.returncode == 0, done.stderr
    assert "POST /digit (28x28 PNG)" in done.stdout
    assert "POST /number (731x205 JPEG, 5 digits)" in done.stdout and "POST /number (4032 px wide JPEG" in done.stdout
    assert "POST /faces (640x480 JPEG, 1 face, yunet)" in done.stdout and "3000x2000 JPEG, 1 face, haar" in done.stdout
    given = r"^/faces 640x480, box given vs detected: p50 [0-9.]+ vs [0-9.]+ ms = [0-9.]+x .*the region\): [0-9.]+x$"
    assert re.search(given, done.stdout, re.M)
    assert re.search(r"^POST /faces \(\d+x\d+ region, given, alt\.\) +n=", done.stdout, re.M)


# --- a busy service: 503 with Retry-After ------------------------------------------------------


@pytest.fixture
def busy_service():
    """A stand-in HTTP server that answers each POST with the next of `answers` (status, headers,
    body), the last one for ever after; `posts` counts the requests."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    shed = (503, {"Retry-After": "0"}, {"error": "the service is busy: retry after 0 s"})
    state = {"answers": [shed], "posts": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            state["posts"] += 1
            answers = state["answers"]
            status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
            payload = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json"}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state["url"], state["shed"] = f"http://127.0.0.1:{httpd.server_address[1]}", shed
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_api_retries_a_busy_service_after_its_retry_after_then_says_busy(busy_service):
    with VisionClient(busy_service["url"], retries=2) as client, pytest.raises(ServiceBusy) as busy:
        client.faces(FACE.read_bytes())
    assert busy_service["posts"] == 3  # the first try and two retries
    message = str(busy.value)
    assert "503" in message and "busy" in message and "asked 3 times" in message and "\n" not in message


def test_api_answers_once_a_busy_service_takes_the_request(busy_service):
    answer = {"width": 512, "height": 600, "faces": []}
    busy_service["answers"] = [busy_service["shed"], busy_service["shed"], (200, {}, answer)]

    async def ask():
        async with AsyncVisionClient(busy_service["url"], retries=3) as client:
            return await client.faces(FACE.read_bytes())

    assert asyncio.run(ask()) == FacesAnswer(512, 600, ()) and busy_service["posts"] == 3


def test_api_takes_a_503_without_retry_after_for_a_service_not_ready(busy_service):
    busy_service["answers"] = [(503, {}, {"error": "Service is not ready"})]
    with VisionClient(busy_service["url"], retries=1) as client, pytest.raises(ServiceUnreachable):
        client.faces(FACE.read_bytes())


def test_cli_says_a_busy_service_in_one_line(busy_service, capsys):
    with pytest.raises(SystemExit) as exited:
        cli(["faces", str(FACE), "--url", busy_service["url"]])
    assert one_line(str(exited.value.code)).startswith("error: /faces answered 503: the service is busy")
