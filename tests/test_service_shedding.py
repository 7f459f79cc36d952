"""Overload is refused, not queued (service/shedding.py), and the clients back off.

One `python -m service` on stand-in models with one worker that takes one request at a time
(VISION_MAX_IN_FLIGHT=1), so that a few clients overload it: every answer is a 200 or a 503 with
Retry-After and a one-line JSON error, the probes and /metrics still answer, and a body that is
still arriving holds no place. Then the webcam client against it: a live source skips frames
while the service is busy, a file has every frame answered. No timing is asserted.
"""

import json
import re
import socket
import threading
from pathlib import Path

import cv2
import httpx
import pytest
from photos import group_photo
from service_models import serving, write_models

from bench import soak
from clients import webcam

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc to manage the server")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    manifest = write_models(tmp_path_factory.mktemp("models"))
    env = {
        "VISION_MANIFEST": str(manifest),
        "VISION_WORKERS": "1",
        "VISION_MAX_IN_FLIGHT": "1",
        "VISION_RETRY_AFTER": "1",
    }
    yield from serving(env, tmp_path_factory.mktemp("serve"))


def photo() -> bytes:
    return cv2.imencode(".jpg", group_photo())[1].tobytes()


def hammer(url: str, stop: threading.Event, answers: list, clients: int = 8) -> list[threading.Thread]:
    """`clients` threads posting /faces without a pause until `stop`; each answer goes on `answers`."""
    data = photo()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                answers.append(http.post("/faces", files={"image": ("group.jpg", data)}))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def test_overload_gets_503_with_retry_after_and_the_probes_still_answer(server):
    result = soak.overload(server.url, seconds=3, concurrency=16, quiet=True)
    print(
        f"overload: {result['answered']} answered, {result['shed']} shed; admitted p99 "
        f"{result['admitted_p99_ms']} ms, 503 p99 {result['shed_p99_ms']} ms; probes {result['probes']}"
    )
    assert result["connection_errors"] == {} and result["other_statuses"] == {}, result  # only 200 and 503
    assert result["answered"] > 0 and result["shed"] > 0, result
    assert result["shed_without_retry_after"] == 0 and result["retry_after"] == ["1"], result
    assert result["probes"] and set(result["probes"]) <= {"/livez 200", "/readyz 200"}, result
    assert result["readyz_after"] == 200


def test_a_shed_request_is_a_one_line_json_error_and_counted(server):
    stop, answers = threading.Event(), []
    threads = hammer(server.url, stop, answers)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(200):  # until one is shed (one place, 8 clients and this one)
                r = http.post("/faces", files={"image": ("group.jpg", photo())})
                if r.status_code == 503:
                    break
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1" and r.headers["content-type"] == "application/json"
            error = r.json()["error"]
            assert "busy" in error and "VISION_MAX_IN_FLIGHT=1" in error and "\n" not in error
            assert http.get("/metrics").status_code == 200  # under load: never shed
            assert http.get("/info").status_code == 200  # a GET: never shed
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert {a.status_code for a in answers} <= {200, 503}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        metrics = http.get("/metrics").text
    assert re.search(r'^vision_shed_requests_total\{endpoint="faces"\} [1-9]', metrics, re.M), metrics[-2000:]
    assert "shedding load:" in server.log()  # a line now and then, not one per request


def test_a_body_still_arriving_holds_no_place(server):
    """With one place, a client trickling its upload in must not shut the others out."""
    data = photo()
    body = b'--b\r\nContent-Disposition: form-data; name="image"; filename="g.jpg"\r\n\r\n' + data + b"\r\n--b--\r\n"
    head = (
        b"POST /faces HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as slow:
        slow.sendall(head + body[: len(body) // 2])
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(3):
                r = http.post("/faces", files={"image": ("group.jpg", data)})
                assert r.status_code == 200, r.text
        slow.sendall(body[len(body) // 2 :])
        reply = slow.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]


def clip(path: Path, frames: int, fps: float = 10.0) -> Path:
    picture = cv2.resize(group_photo(), (640, 480))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    for _ in range(frames):
        writer.write(picture)
    writer.release()
    return path


def test_a_live_source_skips_frames_while_the_service_is_busy(server, tmp_path, capsys):
    lines = tmp_path / "faces.jsonl"
    stop, answers = threading.Event(), []
    threads = hammer(server.url, stop, answers)
    try:
        source = clip(tmp_path / "clip.avi", frames=30)
        webcam.main(["--source", str(source), "--realtime", "--url", server.url, "--jsonl", str(lines), "--no-window"])
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    summary = capsys.readouterr().out.strip()
    shed = int(re.search(r"(\d+) shed", summary).group(1))
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    print(summary)
    assert shed > 0, summary  # skipped, not queued: the frames went on
    assert sum(r["faces"] is None for r in records) >= shed
    assert [r["frame"] for r in records] == sorted(r["frame"] for r in records)


def test_a_file_has_every_frame_answered_though_the_service_sheds(server, tmp_path, capsys):
    """A file waits out each 503's Retry-After and sends the frame again: no frame goes unanswered."""
    lines = tmp_path / "faces.jsonl"
    source = clip(tmp_path / "clip.avi", frames=6)
    webcam.main(
        ["--source", str(source), "--url", server.url, "--jsonl", str(lines), "--no-window", "--in-flight", "3"]
    )
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(6))
    assert all(r["faces"] is not None for r in records), records
    assert "0 shed" in capsys.readouterr().out
