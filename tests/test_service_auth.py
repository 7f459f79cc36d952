"""API keys (service/auth.py, VISION_API_KEYS and VISION_API_KEYS_FILE) against one real keyed
`python -m service` for the module, and the clients and the demo page against it.

The server has one key from VISION_API_KEYS and one from a VISION_API_KEYS_FILE, so both are
checked on one start (a start costs seconds on two cores). A server without keys is what
tests/test_service.py runs: open, as before.
"""

import json
import re
import socket
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from page_browser import EXAMPLES, new_page, playwright_missing
from service_models import serving, write_models

from bench.processes import Server
from clients import webcam
from clients.__main__ import main as cli
from clients.api import AsyncVisionClient, ServiceUnauthorized, VisionClient
from service import auth, runtime

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc to manage the server")

LISTED_KEY = "listed-key-0123456789abcdef"  # in VISION_API_KEYS, beside another
FILE_KEY = "file-key-0123456789abcdef"  # in the VISION_API_KEYS_FILE
OTHER_LISTED = "other-listed-key-0123456789"
FACE = EXAMPLES / "face.jpg"
DIGIT = EXAMPLES / "digit.png"
ONE_LINE_ERROR = re.compile(r"[^\n]+")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return write_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyed")
    keys_file = folder / "keys"
    keys_file.write_text(f"# the service's keys, one per line\n\n{FILE_KEY}\n")
    env = {
        "VISION_MANIFEST": str(models),
        "VISION_PROVIDER": "cpu",
        "VISION_API_KEYS": f"{LISTED_KEY}, {OTHER_LISTED}",
        "VISION_API_KEYS_FILE": str(keys_file),
    }
    yield from serving(env, folder)


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def face_upload() -> dict:
    return {"image": ("face.jpg", FACE.read_bytes())}


def call(http, method: str, path: str, headers: dict | None = None) -> httpx.Response:
    """One request to a protected route, as a client would send it."""
    if path in ("/faces", "/digit"):
        files = {"image": (Path(path).name + ".png", (FACE if path == "/faces" else DIGIT).read_bytes())}
        return http.post(path, files=files, headers=headers)
    if path == "/digits_array":
        return http.post(path, json={"images": np.zeros((1, 1, 28, 28)).tolist()}, headers=headers)
    return http.request(method, path, headers=headers)


PROTECTED = [
    ("POST", "/faces"),
    ("POST", "/digit"),
    ("POST", "/digits_array"),
    ("GET", "/info"),
    ("GET", "/metrics"),
    ("GET", "/docs.json"),
]


def assert_refused(response: httpx.Response, error: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
    assert response.headers["content-type"] == "application/json"
    assert ONE_LINE_ERROR.fullmatch(response.text), response.text
    assert response.json() == {"error": error}


# --- the middleware's parts, without a server -------------------------------------------------------


def test_the_bearer_token_is_read_from_the_first_authorization_header():
    assert auth.bearer_token([(b"authorization", b"Bearer abc")]) == b"abc"
    assert auth.bearer_token([(b"Authorization", b"bearer  abc ")]) == b"abc"  # the scheme in any case
    assert auth.bearer_token([(b"authorization", b"Basic dXNlcjpwYXNz")]) is None
    assert auth.bearer_token([(b"authorization", b"Bearer")]) is None
    assert auth.bearer_token([(b"host", b"x")]) is None


def test_only_the_probes_and_the_pages_files_are_open():
    for path in ("/livez", "/readyz", "/", "/docs", "/page/app.js", "/static_content/swagger-ui.css"):
        assert auth.is_open(path), path
    for path in ("/info", "/docs.json", "/metrics", "/faces", "/digits_array/mlp", "/page", "/livez/x", "/nothing"):
        assert not auth.is_open(path), path


def test_every_configured_key_is_accepted_and_nothing_else():
    keys = auth.ApiKeys(None, [LISTED_KEY, FILE_KEY])
    assert keys.accepts(LISTED_KEY.encode()) and keys.accepts(FILE_KEY.encode())
    for wrong in (None, b"", LISTED_KEY[:-1].encode(), (LISTED_KEY + "x").encode(), LISTED_KEY.upper().encode()):
        assert not keys.accepts(wrong), wrong
    with pytest.raises(ValueError):
        auth.ApiKeys(None, [])


# --- the keyed service over HTTP ---------------------------------------------------------------------


@pytest.mark.parametrize("method, path", PROTECTED)
def test_no_key_is_a_401_that_asks_for_a_bearer_token(http, method, path):
    assert_refused(call(http, method, path), auth.NO_KEY)


@pytest.mark.parametrize("method, path", PROTECTED)
def test_a_wrong_key_is_a_401(http, method, path):
    response = call(http, method, path, bearer(LISTED_KEY[:-1] + "x"))
    assert_refused(response, auth.WRONG_KEY)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_another_scheme_or_an_unknown_path_is_a_401_too(http):
    assert_refused(http.get("/info", headers={"Authorization": f"Basic {LISTED_KEY}"}), auth.NO_KEY)
    assert_refused(http.get("/info", headers={"X-Api-Key": LISTED_KEY}), auth.NO_KEY)
    assert_refused(http.get("/no-such-route"), auth.NO_KEY)  # no key, no map of the routes
    assert http.get("/no-such-route", headers=bearer(LISTED_KEY)).status_code == 404


@pytest.mark.parametrize("key", [LISTED_KEY, OTHER_LISTED, FILE_KEY])
@pytest.mark.parametrize("method, path", PROTECTED)
def test_every_configured_key_opens_every_route(http, method, path, key):
    response = call(http, method, path, bearer(key))
    assert response.status_code == 200, response.text


def test_the_answers_with_a_key_are_the_services(http):
    faces = http.post("/faces", files=face_upload(), headers=bearer(FILE_KEY)).json()
    assert len(faces["faces"]) == 1
    assert "models" in http.get("/info", headers=bearer(LISTED_KEY)).json()
    assert http.get("/docs.json", headers=bearer(LISTED_KEY)).json()["info"]["title"] == "visionserve"
    assert "401" in http.get("/docs.json", headers=bearer(LISTED_KEY)).json()["paths"]["/faces"]["post"]["responses"]
    assert "vision_refused_inputs_total" in http.get("/metrics", headers=bearer(LISTED_KEY)).text


def test_the_probes_and_the_pages_files_need_no_key(http):
    for path in ("/livez", "/readyz", "/", "/page/app.js", "/page/api.js", "/page/favicon.svg", "/docs"):
        assert http.get(path).status_code == 200, path
    assert "<title>visionserve</title>" in http.get("/").text
    assert http.get("/static_content/swagger-ui.css").status_code == 200


def raw_request(port: int, head: str, timeout: float = 15.0) -> bytes:
    """Send a request head (and nothing more); the answer's head and its Content-Length of body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(head.encode())
        received = b""
        while True:
            chunk = connection.recv(65536)
            received += chunk
            answer_head, _, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", answer_head)
            if not chunk or (length and len(body) >= int(length.group(1))):
                return received


def test_the_401_comes_from_the_head_before_any_body_is_read(server):
    # A chunked body that never comes: BodyLimit would wait its 30 s for it and answer 408, the
    # socket's 15 s timeout would fail the test first. The key check answers at once.
    head = (
        "POST /faces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    )
    answer = raw_request(server.port, head)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"\r\nwww-authenticate: bearer" in answer.lower()


def test_a_path_through_the_pages_folder_gets_no_data_without_a_key(server):
    answer = raw_request(server.port, "GET /page/../info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b"sha256" not in answer


def test_what_held_before_still_holds_with_a_key(http):
    pickled = http.post(
        "/digits_array", content=b"x", headers={"content-type": "application/vnd.bentoml+pickle", **bearer(LISTED_KEY)}
    )
    assert pickled.status_code == 415 and "error" in pickled.json()
    not_an_image = http.post("/faces", files={"image": ("x.png", b"hello")}, headers=bearer(LISTED_KEY))
    assert not_an_image.status_code == 400 and "not an image" in not_an_image.json()["error"]


def test_refusals_are_counted_per_route_never_per_path_tried(http):
    http.get("/some/path/nobody/serves")
    text = http.get("/metrics", headers=bearer(LISTED_KEY)).text
    assert re.search(r'^vision_refused_inputs_total\{endpoint="faces",status="401"\} [1-9]', text, re.M), text
    assert re.search(r'^vision_refused_inputs_total\{endpoint="\(another path\)",status="401"\} [1-9]', text, re.M)
    assert not re.search(r"^vision_refused_inputs_total\{[^}]*nobody", text, re.M)


def test_the_ready_line_says_keys_are_required(server):
    lines = [line for line in server.wait_for_log("vision: ready at").splitlines() if "vision: ready at" in line]
    assert len(lines) == 1 and "API keys required" in lines[0], server.log()[-2000:]
    assert "CPUExecutionProvider" in lines[0]  # /info was read, with a key


# --- a bad keys setting stops the start, in one line -------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "holds no key"),
        ("# only a comment\n\n", "holds no key"),
        ("short\n", "the key on line 1 is 5 characters, under 16"),
        (None, "cannot read it (Is a directory)"),
        ("missing", "cannot read it (No such file or directory)"),
    ],
)
def test_a_bad_keys_file_is_refused_before_start_in_one_line(monkeypatch, capsys, tmp_path, content, message):
    path = tmp_path / "keys"
    if content is None:
        path.mkdir()
    elif content != "missing":
        path.write_text(content)
    monkeypatch.setenv("VISION_API_KEYS_FILE", str(path))
    monkeypatch.delenv("VISION_API_KEYS", raising=False)
    with pytest.raises(SystemExit) as stopped:
        runtime.check_before_start()
    assert stopped.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("vision: cannot start: VISION_API_KEYS_FILE=") and message in line, line


def test_a_server_with_an_empty_keys_file_does_not_start(models, tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("\n")
    server = Server({"VISION_MANIFEST": str(models), "VISION_API_KEYS_FILE": str(keys_file)}, tmp_path / "serve.log")
    try:
        server.process.wait(timeout=120)
    finally:
        server.stop()
    lines = [line for line in server.log().splitlines() if "vision: cannot start" in line]
    assert server.process.returncode != 0
    assert len(lines) == 1 and f"VISION_API_KEYS_FILE={str(keys_file)!r} holds no key" in lines[0], server.log()[-2000:]


# --- the clients --------------------------------------------------------------------------------------


@pytest.fixture
def no_key_in_the_environment(monkeypatch):
    monkeypatch.delenv("VISION_API_KEY", raising=False)
    monkeypatch.delenv("VISION_URL", raising=False)


@pytest.mark.usefixtures("no_key_in_the_environment")
def test_the_client_sends_its_key(server):
    with VisionClient(server.url, api_key=FILE_KEY) as client:
        assert client.ready() and len(client.faces(FACE.read_bytes()).faces) == 1


@pytest.mark.usefixtures("no_key_in_the_environment")
def test_the_client_takes_its_key_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("VISION_API_KEY", LISTED_KEY)
    with VisionClient(server.url) as client:
        assert client.digit(DIGIT.read_bytes())["model"] == "cnn"
    with VisionClient(server.url, api_key="") as client, pytest.raises(ServiceUnauthorized):  # "": no key
        client.digit(DIGIT.read_bytes())


@pytest.mark.usefixtures("no_key_in_the_environment")
def test_a_401_is_one_clear_line_that_never_quotes_the_key(server):
    with VisionClient(server.url) as client, pytest.raises(ServiceUnauthorized) as missing:
        client.faces(FACE.read_bytes())
    assert str(missing.value) == "the service wants an API key: pass --api-key or set VISION_API_KEY"
    assert missing.value.status == 401
    wrong = "wrong-key-0123456789abcdef"
    with VisionClient(server.url, api_key=wrong) as client, pytest.raises(ServiceUnauthorized) as refused:
        client.faces(FACE.read_bytes())
    assert str(refused.value) == "the service refused the API key: check --api-key or VISION_API_KEY"
    assert wrong not in str(refused.value)


@pytest.mark.usefixtures("no_key_in_the_environment")
def test_the_async_client_sends_its_key_and_says_401_alike(server):
    import asyncio

    async def both():
        async with AsyncVisionClient(server.url, api_key=LISTED_KEY) as client:
            answer = await client.faces(FACE.read_bytes())
        async with AsyncVisionClient(server.url) as client:
            with pytest.raises(ServiceUnauthorized, match="wants an API key"):
                await client.faces(FACE.read_bytes())
        return answer

    assert len(asyncio.run(both()).faces) == 1


@pytest.mark.usefixtures("no_key_in_the_environment")
def test_the_cli_without_a_key_stops_with_one_line(server, capsys):
    for images in ([str(FACE)], [str(FACE), str(DIGIT)]):  # one image, and several: one line, not one each
        with pytest.raises(SystemExit) as stopped:
            cli(["faces", *images, "--url", server.url])
        assert stopped.value.code == "error: the service wants an API key: pass --api-key or set VISION_API_KEY"
        assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit) as stopped:
        cli(["faces", str(FACE), "--url", server.url, "--api-key", "wrong-key-0123456789abcdef"])
    assert stopped.value.code == "error: the service refused the API key: check --api-key or VISION_API_KEY"


@pytest.mark.usefixtures("no_key_in_the_environment")
def test_the_cli_with_a_key_answers(server, capsys, monkeypatch):
    cli(["faces", str(FACE), "--url", server.url, "--api-key", LISTED_KEY])
    assert len(json.loads(capsys.readouterr().out)["faces"]) == 1
    monkeypatch.setenv("VISION_API_KEY", FILE_KEY)
    cli(["digit", str(DIGIT), "--url", server.url])
    assert json.loads(capsys.readouterr().out)["model"] == "cnn"


def face_clip(path: Path, frames: int = 3) -> Path:
    face = cv2.resize(cv2.imread(str(FACE)), (320, 376))
    frame = np.full((480, 640, 3), 120, np.uint8)
    frame[50:426, 160:480] = face
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    return path


@pytest.mark.usefixtures("no_key_in_the_environment")
def test_the_webcam_client_takes_api_key(server, tmp_path, capsys):
    clip, lines = face_clip(tmp_path / "clip.avi"), tmp_path / "faces.jsonl"
    options = ["--source", str(clip), "--url", server.url, "--jsonl", str(lines), "--no-window"]
    with pytest.raises(SystemExit) as stopped:
        webcam.main(options)
    assert stopped.value.code == "error: the service wants an API key: pass --api-key or set VISION_API_KEY"
    webcam.main([*options, "--api-key", LISTED_KEY])
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [len(r["faces"]) for r in records] == [1, 1, 1]


# --- the demo page in Chromium -------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(playwright_missing() is not None, reason=str(playwright_missing()))
def test_the_page_asks_for_the_key_on_a_401_and_keeps_it_for_the_tab(server, tmp_path):
    from page_browser import browser, write_y4m

    with browser(write_y4m(tmp_path / "camera.y4m", frames=10)) as chrome:
        page = new_page(chrome, server.url)
        try:
            page.wait_for_selector('#status[data-state="ready"]')
            assert not page.is_visible("#key-dialog")  # loading the page asks for nothing
            # The webcam's first frame asks; Cancel stops the camera rather than asking every second.
            page.click("#tab-webcam")
            page.click("#webcam-start")
            page.wait_for_selector("#key-dialog[open]")
            page.click("#key-cancel")
            page.wait_for_selector("#webcam-start:text-is('Start the camera')")
            assert "401" in page.inner_text("#webcam-error")
            assert not page.is_visible("#key-dialog")
            page.click("#tab-faces")
            page.set_input_files("#faces-file", str(FACE))
            page.wait_for_selector("#key-dialog[open]")
            page.fill("#key-input", "wrong-key-0123456789abcdef")
            page.click("#key-use")
            page.wait_for_selector("#key-why:has-text('refused')")
            assert page.is_visible("#key-dialog")  # refused: asked again, and told so
            page.fill("#key-input", LISTED_KEY)
            page.click("#key-use")
            page.wait_for_selector('#faces-summary[data-faces="1"]')
            assert page.evaluate("sessionStorage.getItem('visionserve.apiKey')") == LISTED_KEY
            assert page.evaluate("localStorage.length") == 0  # for the tab only
            page.wait_for_selector("#models-line:has-text('keypoints')")
            # The kept key goes with the next call: no form this time.
            page.select_option("#faces-detector", "haar")  # the same photo again, now read by Haar
            page.wait_for_selector("#faces-summary[data-faces]")
            assert not page.is_visible("#key-dialog")
            errors = [e for e in page.errors if "Failed to load resource" not in e]  # the 401s asked for
            assert not errors, errors
        finally:
            page.context.close()


# --- last: what the server logged --------------------------------------------------------------------------


def test_the_log_has_each_refusal_in_one_line_and_never_a_key(server, http):
    http.post("/faces", files=face_upload())
    http.get("/info", headers=bearer(f"{LISTED_KEY}-not"))  # a wrong key that holds a right one
    time.sleep(0.5)
    log = server.log()
    for key in (LISTED_KEY, OTHER_LISTED, FILE_KEY, "wrong-key-0123456789abcdef"):
        assert key not in log, key
    assert re.search(r"refused /faces: 401 no API key$", log, re.M), log[-3000:]
    assert re.search(r"refused /info: 401 wrong API key$", log, re.M), log[-3000:]
    assert "Traceback" not in log
