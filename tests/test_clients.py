"""The HTTP clients against a real `bentoml serve` (stand-in models: the clients test transport
and drawing, not accuracy)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from clients import webcam
from clients.__main__ import main as cli
from clients.api import ServiceError, VisionClient, keypoint_array
from service_models import Server, free_port, write_models
from training.mnist import load_mnist


def grace_hopper_path() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = write_models(tmp_path_factory.mktemp("models"))
    server = Server({"VISION_MANIFEST": str(models), "VISION_PROVIDER": "cpu"}, tmp_path_factory.mktemp("log") / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_api_answers_each_endpoint(server, fixtures):
    digit = load_mnist(fixtures / "mnist")["train_images"][0]
    with VisionClient(server.url) as client:
        assert client.ready()
        answer = client.digit(digit, model="mlp")
        assert answer["model"] == "mlp" and 0 <= answer["digit"] <= 9
        photo = cv2.imread(str(grace_hopper_path()))
        faces = client.faces(photo)
        assert (faces["width"], faces["height"]) == (photo.shape[1], photo.shape[0]) and len(faces["faces"]) == 1
        assert keypoint_array(client.keypoints(photo[:200, :200])).shape == (15, 2)


def test_api_raises_the_service_error_message(server):
    with VisionClient(server.url) as client, pytest.raises(ServiceError, match="400.*not an image"):
        client.faces(b"hello")


def test_cli_draws_faces_on_a_photo(server, tmp_path, capsys):
    out = tmp_path / "annotated.jpg"
    cli(["faces", str(grace_hopper_path()), "--url", server.url, "--out", str(out)])
    assert '"faces"' in capsys.readouterr().out
    drawn, original = cv2.imread(str(out)), cv2.imread(str(grace_hopper_path()))
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).max() > 100  # something was drawn


def test_cli_exits_with_one_line_when_the_service_is_down(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: cannot reach http://127.0.0.1:\d+/faces"):
        cli(["faces", str(grace_hopper_path()), "--url", f"http://127.0.0.1:{free_port()}"])
    with pytest.raises(SystemExit, match="not an image"):
        cli(["digit", str(tmp_path / "missing.png")])


def test_webcam_client_annotates_a_video_headless(server, tmp_path):
    photo = cv2.resize(cv2.imread(str(grace_hopper_path())), (320, 400))
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 400))
    for shift in range(0, 24, 3):  # a face drifting to the right
        writer.write(np.roll(photo, shift, axis=1))
    writer.release()
    out = tmp_path / "overlay.avi"
    webcam.main(["--source", str(clip), "--url", server.url, "--out", str(out), "--no-window"])
    capture = cv2.VideoCapture(str(out))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert frames == 8


def test_webcam_refuses_no_window_without_out():
    with pytest.raises(SystemExit, match="--no-window needs --out"):
        webcam.main(["--no-window"])
