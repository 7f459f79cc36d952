"""No image at rest: the service parses uploads in memory and writes nothing of them to disk, on
success, on refusal and when a worker dies mid-request; no refusal and no log line echoes them.

A real `python -m service` on stand-in models runs with a TMPDIR of its own, watched with inotify
(through libc, so nothing needs installing) from the moment it is ready: BentoML used to write every
upload to `$TMPDIR/bentoml-request-*/tmp*.jpg`, and Starlette spools a file part over 1 MB to a
temporary file. Its Prometheus folder (`vision-metrics-*`, metrics only) is the one place there
the service may write.
"""

import asyncio
import ctypes
import io
import os
import re
import signal
import struct
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from photos import group_photo
from service_models import serving, write_models

from service import bentoml_compat

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc and inotify")

IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x2, 0x8, 0x80, 0x100
IN_ISDIR, IN_NONBLOCK = 0x40000000, 0o4000
MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
METRICS = "vision-metrics-"  # the server's Prometheus folder: metrics, the one thing it may write
WORKERS = 2
MARKER = b"VISION-SECRET-CONTENT-25"  # in every refused upload: no answer and no log line may hold it


class Watch:
    """inotify on a folder and every folder in it or made in it later (but the metrics folder):
    what was created, written or moved in there."""

    def __init__(self, root: Path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.folders: dict[int, Path] = {}
        self.seen: list[str] = []  # "path: what"
        self._add(root, initial=True)

    def _add(self, folder: Path, initial: bool = False) -> None:
        if folder.name.startswith(METRICS):
            return
        wd = self.libc.inotify_add_watch(self.fd, bytes(folder), MASK)
        assert wd >= 0, f"{folder}: {os.strerror(ctypes.get_errno())}"
        self.folders[wd] = folder
        for child in folder.iterdir():  # what came before the watch did (a folder made just now)
            if child.is_dir():
                self._add(child, initial)
            elif not initial:
                self.seen.append(f"{child}: there when its folder was first seen")

    def events(self) -> list[str]:
        """Everything seen so far (the folders made meanwhile are watched from now on)."""
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return self.seen
            offset = 0
            while offset < len(data):
                wd, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode(errors="replace")
                offset += 16 + length
                path = self.folders.get(wd, Path("?")) / name
                if mask & IN_ISDIR and mask & IN_CREATE:
                    if path.name.startswith("bentoml-client-"):  # a new worker's (empty) client folder
                        self._forget_tempdir_probe(path.parent)  # which that worker made just before
                        self._add(path)
                        continue
                    self.seen.append(f"{path}: folder created")
                    self._add(path)
                else:
                    self.seen.append(f"{path}: {'created' if mask & IN_CREATE else 'written'}")

    def _forget_tempdir_probe(self, folder: Path) -> None:
        """Python's `tempfile` probes a temporary folder the first time a process uses it: a file
        named by 8 random characters, created, written, closed and deleted. A worker restarted
        after a kill probes, then makes its client folder: that probe is start-up, not an upload."""
        probe = [e for e in self.seen if e.startswith(f"{folder}/")][-3:]
        names = {e.rsplit(": ", 1)[0] for e in probe}
        if len(probe) == 3 and len(names) == 1:
            path = Path(names.pop())
            if re.fullmatch(r"[a-z0-9_]{8}", path.name) and not path.exists():
                self.seen = [e for e in self.seen if e not in probe]

    def close(self) -> None:
        os.close(self.fd)


def files_under(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file() and not p.relative_to(root).parts[0].startswith(METRICS)}


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array.astype(np.float32))
    return out.getvalue()


def npy_declaring(descr: str) -> bytes:
    """A .npy file whose header declares the dtype `descr` (numpy's refusal quotes it)."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': (1, 1, 96, 96), }}".encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(96 * 96 * 4)


def big_png() -> bytes:
    """A valid PNG of about 5 MB (noise does not compress): well over Starlette's 1 MB spooling
    threshold, under the 10 MiB upload limit."""
    noise = np.random.default_rng(0).integers(0, 256, (1200, 1500, 3), dtype=np.uint8)
    noise[100:700, 200:1000] = cv2.resize(group_photo(), (800, 600))
    return png(noise)


@pytest.fixture(scope="module")
def tmpdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="module")
def server(tmpdir, tmp_path_factory):
    manifest = write_models(tmp_path_factory.mktemp("models"))
    env = {"VISION_MANIFEST": str(manifest), "TMPDIR": str(tmpdir), "VISION_WORKERS": str(WORKERS)}
    yield from serving(env, tmp_path_factory.mktemp("serve"))


@pytest.fixture
def watch(server, tmpdir):
    """The watch, from when every worker has started: /readyz answers once one has, and a worker's
    start-up writes there: Python's tempfile probes the folder (a file it writes and deletes), then
    BentoML makes the worker's `bentoml-client-*` folder. That folder comes last, so the watch waits
    for one per worker (of the WORKERS, not only those spawned so far: on a loaded machine the second
    is spawned after the first answers /readyz). "Service initialized" is logged before the probe."""
    deadline = time.monotonic() + 60
    while len(list(tmpdir.glob("bentoml-client-*"))) < max(WORKERS, len(server.worker_pids())):
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.1)
    watch = Watch(tmpdir)
    yield watch
    watch.close()


def test_uploads_are_parsed_in_memory_even_over_the_spooling_threshold(monkeypatch):
    """Starlette's own parser spools a file part over 1 MB to a temporary file; the service's keeps
    a 10 MB part in memory. (Any temporary file here fails the test.)"""
    from starlette.requests import Request

    def no_file(*args, **kwargs):
        raise AssertionError("an upload went to a temporary file")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_file)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", no_file)
    monkeypatch.setattr(tempfile, "mkstemp", no_file)
    data = os.urandom(10 * 1024 * 1024)
    body = (
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + data + b'\r\n--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
        b"mlp\r\n--b--\r\n"
    )
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    async def receive():
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/digit",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b")],
    }
    form = asyncio.run(bentoml_compat.form_in_memory(Request(scope, receive)))
    upload = form["image"]
    assert form["model"] == "mlp" and asyncio.run(upload.read()) == data


def test_nothing_of_an_upload_reaches_the_disk_on_success_or_refusal(server, tmpdir, watch):
    before = files_under(tmpdir)
    photo, big = jpeg(group_photo()), big_png()
    digit = np.full((28, 28), 0, np.uint8)
    cv2.line(digit, (14, 4), (14, 24), 255, 3)
    crops = np.random.default_rng(1).random((40, 1, 96, 96))  # 1.5 MB as .npy
    sent = {
        # (endpoint, field, data, fields) -> status
        ("/digit", "image", png(digit), ()): 200,
        ("/number", "image", png(np.hstack([digit, digit])), ()): 200,
        ("/keypoints", "image", png(cv2.resize(group_photo()[:200, :200], (96, 96))), ()): 200,
        ("/faces", "image", photo, ()): 200,
        ("/faces", "image", big, ()): 200,  # over the 1 MB spooling threshold
        ("/faces", "image", big, (("detector", "haar"),)): 200,
        ("/digits_batch", "images", npy(np.zeros((4, 1, 28, 28))), ()): 200,
        ("/keypoints_batch", "images", npy(crops), ()): 200,
        ("/faces", "image", b"not an image " + MARKER * 100, ()): 400,
        ("/digit", "image", photo[: len(photo) // 2] + MARKER, ()): 400,  # truncated
        ("/keypoints_batch", "images", npy_declaring(MARKER.decode()), ()): 400,  # numpy quotes it
        ("/digits_batch", "images", MARKER * 10, (("shape", "1,1,28,28"),)): 400,
        ("/faces", "image", os.urandom(11 * 1024 * 1024), ()): 413,  # over VISION_MAX_UPLOAD_BYTES
    }
    errors = []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for (endpoint, field, data, fields), status in sent.items():
            r = http.post(endpoint, files={field: ("upload.bin", data)}, data=dict(fields))
            assert r.status_code == status, (endpoint, status, r.text[:300])
            if status != 200:
                errors.append(r.text)
        # a broken multipart body, and the raw file without a form
        broken = (
            b'--b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\n' + MARKER + jpeg(group_photo())
        )
        r = http.post("/faces", content=broken, headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 400, r.text
        errors.append(r.text)
        r = http.post("/faces", content=MARKER + photo, headers={"content-type": "image/jpeg"})
        assert r.status_code == 415, r.text
        errors.append(r.text)
    assert watch.events() == [], "the service wrote to its TMPDIR while serving uploads"
    assert files_under(tmpdir) == before
    log = server.log()
    for text in [*errors, log]:
        assert MARKER.decode() not in text
        for data in (photo, big):
            assert not echoes(data, text)


def echoes(data: bytes, text: str, width: int = 12) -> bool:
    """Whether `text` holds a run of `width` bytes of `data`'s first 4 KB, raw or as Python writes bytes."""
    for i in range(0, min(len(data), 4096) - width, width // 2):
        piece = data[i : i + width]
        if piece.decode("latin-1") in text or repr(piece)[2:-1] in text:
            return True
    return False


def test_a_worker_killed_mid_request_leaves_nothing_on_disk(server, tmpdir, watch):
    """SIGKILL to every worker while uploads are being served: their requests die with them, and
    nothing of those uploads is left behind (BentoML's request files were never cleaned up then).
    Runs last: the server is left to replace its workers."""
    before = files_under(tmpdir)
    big = big_png()

    def post(_):
        try:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                return http.post("/faces", files={"image": ("big.png", big)}).status_code
        except httpx.HTTPError as e:
            return type(e).__name__

    workers = server.worker_pids()
    assert workers
    with ThreadPoolExecutor(8) as pool:
        outcomes = pool.map(post, range(16))
        for pid in workers:
            wait_until_busy(pid)
            os.kill(pid, signal.SIGKILL)
        outcomes = list(outcomes)
    print(f"requests around the kill: {outcomes}")
    assert watch.events() == [], "the service wrote to its TMPDIR while serving uploads"
    assert files_under(tmpdir) == before


def wait_until_busy(pid: int, timeout: float = 10.0) -> None:
    """Until the worker has used some CPU since this was called (it is serving), at most `timeout` s."""

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    start, deadline = ticks(), time.monotonic() + timeout
    while ticks() - start < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
