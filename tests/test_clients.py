"""The HTTP clients against a real `bentoml serve` (stand-in models: the clients test transport
and drawing, not accuracy)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from service_models import Server, free_port, write_models

from clients import webcam
from clients.__main__ import main as cli
from clients.api import ServiceError, VisionClient, keypoint_array
from training.mnist import load_mnist

ROOT = Path(__file__).resolve().parent.parent
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


def write_clip(path: Path, fps: float, frames: int = 8) -> None:
    photo = cv2.resize(cv2.imread(str(FACE)), (320, 400))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 400))
    for shift in range(0, 3 * frames, 3):  # a face drifting to the right
        writer.write(np.roll(photo, shift, axis=1))
    writer.release()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = write_models(tmp_path_factory.mktemp("models"))
    server = Server(
        {"VISION_MANIFEST": str(models), "VISION_PROVIDER": "cpu"}, tmp_path_factory.mktemp("log") / "serve.log"
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


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
        assert (faces["width"], faces["height"]) == (photo.shape[1], photo.shape[0]) and len(faces["faces"]) == 1
        assert keypoint_array(client.keypoints(photo[:200, :200])).shape == (15, 2)


def test_api_raises_the_service_error_message(server):
    with VisionClient(server.url) as client, pytest.raises(ServiceError, match="400.*not an image"):
        client.faces(b"hello")


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
    assert len(json.loads(capsys.readouterr().out)["faces"]) == 1
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
        (tmp_path, "is a directory"),
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


def test_webcam_writes_at_the_source_frame_rate(server, tmp_path, monkeypatch):
    clip = tmp_path / "clip.avi"
    write_clip(clip, fps=10)
    out = tmp_path / "overlay.avi"
    monkeypatch.setenv("VISION_URL", server.url)  # no --url
    webcam.main(["--source", str(clip), "--out", str(out), "--no-window"])
    capture = cv2.VideoCapture(str(out))
    frames, fps = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert frames == 8 and fps == pytest.approx(10)


def test_webcam_falls_back_when_the_source_reports_no_frame_rate():
    class Camera:
        def __init__(self, fps):
            self.fps = fps

        def get(self, prop):
            assert prop == cv2.CAP_PROP_FPS
            return self.fps

    assert [webcam.source_fps(Camera(f)) for f in (0.0, float("nan"), -1.0, 25.0)] == [30.0, 30.0, 30.0, 25.0]


def test_webcam_without_a_display_says_so_in_one_line(tmp_path):
    clip = tmp_path / "clip.avi"
    write_clip(clip, fps=10, frames=2)
    done = run_module("clients.webcam", "--source", str(clip), "--url", dead_url())
    assert done.returncode != 0
    assert one_line(done.stderr) == "error: no display: use --no-window --out FILE"


def test_webcam_refuses_no_window_without_out():
    with pytest.raises(SystemExit, match="--no-window needs --out"):
        webcam.main(["--no-window"])


def test_bench_runs_against_the_service(server):
    """A smoke run (bench is a tool, not a test): it finds its example images and talks to the service."""
    done = run_module("bench", "--seconds", "0.2", env={"VISION_URL": server.url})
    assert done.returncode == 0, done.stderr
    assert "POST /digit (28x28 PNG)" in done.stdout
    assert "POST /faces (640x480 JPEG, 1 face, yunet)" in done.stdout and "3000x2000 JPEG, 1 face, haar" in done.stdout
