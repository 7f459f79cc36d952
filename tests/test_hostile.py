"""Hostile input against a real server: fuzzing with hypothesis, huge batches, slow clients.

One `python -m service` on the stand-in models for the module. Whatever arrives, the server must
answer within the client's timeout, never with a 5xx, every refusal a 4xx whose body is one JSON
object with a one-line `error`, and it must still be ready afterwards, with no traceback in its
log. The examples are few and small so that the module stays quick in `make test`
and derandomized, so that a run is repeatable; `VISION_FUZZ_EXAMPLES=500` runs 500 random ones
of each.
The long versions (a minute of mixed load, a killed worker) are `python -m bench.soak`.
"""

import asyncio
import io
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from paths import ROOT
from PIL import ExifTags, Image
from service_models import serving, write_models

from service.images import NOT_AN_IMAGE
from service.limits import HEAD_TIMEOUT, BodyLimit

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc to manage the server")

TIMEOUT = 30.0  # seconds: "never a hang" means an answer within this, for every request here
IMAGE_ENDPOINTS = ("/digit", "/number", "/keypoints", "/faces")
ARRAY_ENDPOINTS = {"/digits_array": (1, 28, 28), "/digits_array/mlp": (1, 28, 28), "/keypoints_array": (1, 96, 96)}
FUZZ = settings(
    max_examples=int(os.environ.get("VISION_FUZZ_EXAMPLES", "25")),
    deadline=None,
    derandomize="VISION_FUZZ_EXAMPLES" not in os.environ,  # a longer run explores new examples each time
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    manifest = write_models(tmp_path_factory.mktemp("models"))
    yield from serving({"VISION_MANIFEST": str(manifest)}, tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def unfinished_heads(server):
    """Two connections opened as the module starts: one sends half a request head, one nothing;
    the last test reads what the server did with them (HEAD_TIMEOUT is 10 s)."""
    heads = []
    for head in (b"POST /digit HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data", b""):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=HEAD_TIMEOUT + 20)
        s.sendall(head)
        heads.append((s, time.monotonic()))
    yield heads
    for s, _ in heads:
        s.close()


def answered(r: httpx.Response) -> httpx.Response:
    """A response that is no 5xx; a refusal is a 4xx with one JSON object and a one-line error."""
    where = f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]!r}"
    assert r.status_code < 500, where
    if r.status_code >= 400:
        assert r.headers.get("content-type", "").startswith("application/json"), where
        body = r.json()
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"].strip(), where
        assert "\n" not in body["error"], where
    else:
        r.json()  # an answer is JSON too
    return r


def upload(http, endpoint: str, data: bytes, filename: str = "upload", **fields) -> httpx.Response:
    return answered(http.post(endpoint, files={"image": (filename, data)}, data=fields))


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


# --- random and damaged bytes ---------------------------------------------------------------------

MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a", b"%PDF-"]


@FUZZ
@given(
    endpoint=st.sampled_from(IMAGE_ENDPOINTS),
    magic=st.sampled_from(MAGIC),
    data=st.binary(max_size=2048),
)
def test_random_bytes_are_refused_cleanly(http, unfinished_heads, endpoint, magic, data):
    upload(http, endpoint, magic + data)


@pytest.fixture(scope="module")
def upload_routes(http) -> dict[str, list[str]]:
    """Every POST route that takes a multipart upload, with its file fields, from /docs.json: the
    routes added later are fuzzed too."""
    routes = {}
    for path, methods in http.get("/docs.json").json()["paths"].items():
        body = methods.get("post", {}).get("requestBody", {}).get("content", {}).get("multipart/form-data")
        if body:
            schema = body["schema"]
            if "$ref" in schema:
                schema = http.get("/docs.json").json()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            files = [name for name, field in schema.get("properties", {}).items() if field.get("format") == "binary"]
            routes[path] = files or ["image"]
    assert set(IMAGE_ENDPOINTS) <= set(routes), routes
    return routes


@FUZZ
@given(data=st.data(), magic=st.sampled_from([*MAGIC, b"\x93NUMPY"]), payload=st.binary(max_size=1024))
def test_random_bytes_in_every_upload_route(http, upload_routes, data, magic, payload):
    route = data.draw(st.sampled_from(sorted(upload_routes)), label="route")
    fields = data.draw(
        st.dictionaries(st.sampled_from(["shape", "model", "debug", "detector"]), st.text(max_size=12), max_size=2)
    )
    files = dict.fromkeys(upload_routes[route], ("upload", magic + payload))
    answered(http.post(route, files=files, data=fields))


def sample_images() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (0, 0), 3)
    picture = Image.fromarray(smooth)
    return {
        "PNG": encode(picture, "PNG"),
        "JPEG": encode(picture, "JPEG", quality=90),
        "progressive JPEG": encode(picture, "JPEG", progressive=True),
        "BMP": encode(picture, "BMP"),
        "WEBP": encode(picture, "WEBP", quality=80),
        "lossless WEBP": encode(picture, "WEBP", lossless=True),
    }


SAMPLES = sample_images()


@FUZZ
@given(
    endpoint=st.sampled_from(IMAGE_ENDPOINTS),
    kind=st.sampled_from(sorted(SAMPLES)),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    junk=st.binary(max_size=64),
)
@example(endpoint="/faces", kind="JPEG", cut=0.5, flips=[], junk=b"")  # truncated halfway
@example(endpoint="/digit", kind="PNG", cut=0.999, flips=[], junk=b"")  # no IEND
@example(endpoint="/digit", kind="PNG", cut=1.0, flips=[(0.1, 0)], junk=b"")  # a broken IDAT
def test_truncated_and_corrupted_images_are_refused_cleanly(http, endpoint, kind, cut, flips, junk):
    data = bytearray(SAMPLES[kind])
    for where, value in flips:
        data[int(where * len(data))] = value
    data = bytes(data[: max(1, round(cut * len(data)))]) + junk
    upload(http, endpoint, data)


# --- valid images of every size, mode and format ------------------------------------------------

# The modes each format can hold, as Pillow writes them.
MODES = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "BMP": ["1", "L", "P", "RGB", "RGBA"],
    "WEBP": ["RGB", "RGBA"],
}


@st.composite
def valid_images(draw) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(sorted(MODES)))
    mode = draw(st.sampled_from(MODES[fmt]))
    width, height = draw(st.integers(1, 120)), draw(st.integers(1, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    pattern = draw(st.sampled_from(["noise", "flat", "blob"]))
    if pattern == "noise":
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    elif pattern == "flat":
        pixels = np.full((height, width, 3), rng.integers(0, 256, 3), np.uint8)
    else:  # a dark disc on light paper: something /digit can read
        pixels = np.full((height, width, 3), 230, np.uint8)
        cv2.circle(pixels, (width // 2, height // 2), max(1, min(width, height) // 3), (20, 20, 20), -1)
    image = Image.fromarray(pixels).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":  # 16 bits per pixel, the full range used
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    options = {}
    if fmt in ("JPEG", "WEBP", "PNG") and draw(st.booleans()):
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = draw(st.integers(1, 8))  # rotated, mirrored
        options["exif"] = exif.tobytes()
    if fmt in ("PNG", "WEBP") and mode in ("RGB", "RGBA") and draw(st.booleans()):
        options.update(save_all=True, append_images=[image.transpose(Image.Transpose.ROTATE_180)])  # animated
    if fmt == "JPEG" and draw(st.booleans()):
        options.update(progressive=True, quality=draw(st.integers(1, 100)))
    if fmt == "WEBP":
        options["lossless"] = draw(st.booleans())
    return f"{fmt} {mode} {width}x{height} {pattern} {sorted(options)}", encode(image, fmt, **options)


def accepted(endpoint: str, r: httpx.Response) -> bool:
    """What a decodable image may get: an answer, or the model's own refusals (no digit found; too
    many digits for a number); never "not an image" or a decoding error."""
    error = r.json().get("error", "") if r.status_code >= 400 else ""
    return (
        r.status_code == 200
        or (r.status_code == 422 and endpoint in ("/digit", "/number"))
        or (r.status_code == 400 and endpoint == "/number" and "a number may have at most" in error)
    )


@FUZZ
@given(endpoint=st.sampled_from(IMAGE_ENDPOINTS), image=valid_images())
def test_valid_images_of_any_size_mode_and_format_are_read(http, endpoint, image):
    description, data = image
    r = upload(http, endpoint, data, "x." + description.split()[0].lower())
    assert accepted(endpoint, r), f"{description}: {r.status_code} {r.text[:200]}"


def odd_image(kind: str) -> bytes:
    rng = np.random.default_rng(2)
    if kind == "16-bit colour PNG":
        return cv2.imencode(".png", rng.integers(0, 65536, (40, 60, 3), dtype=np.uint16))[1].tobytes()
    if kind == "16-bit PNG with alpha":
        return cv2.imencode(".png", rng.integers(0, 65536, (40, 60, 4), dtype=np.uint16))[1].tobytes()
    if kind == "grayscale+alpha PNG":
        return encode(Image.new("LA", (50, 40), (30, 128)), "PNG")
    if kind == "CMYK JPEG":
        return encode(Image.fromarray(rng.integers(0, 256, (48, 64, 4), dtype=np.uint8), "CMYK"), "JPEG")
    if kind == "EXIF-rotated JPEG":
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = 6
        return encode(Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)), "JPEG", exif=exif.tobytes())
    if kind == "palette PNG with transparency":
        return encode(Image.new("RGB", (64, 48), (10, 200, 30)).convert("P"), "PNG", transparency=0)
    width, height = (int(side) for side in kind.split()[0].split("x"))
    fmt = kind.split()[1]
    return encode(Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)), fmt)


ODD_IMAGES = [
    "1x1 PNG",
    "1x20000 PNG",
    "20000x1 PNG",
    "2x20000 JPEG",
    "6000x3 PNG",
    "16-bit colour PNG",
    "16-bit PNG with alpha",
    "grayscale+alpha PNG",
    "CMYK JPEG",
    "EXIF-rotated JPEG",
    "palette PNG with transparency",
]


@pytest.mark.parametrize("kind", ODD_IMAGES)
def test_odd_but_valid_images_are_read_or_refused_for_a_reason(http, kind):
    """Extreme sizes once, on every endpoint: YuNet found a face at +-inf in a strip 32 pixels or
    less high (a 500 in the crop), the digit pipeline resized a 20000x1 strip to 0 pixels (a 500),
    and /keypoints padded a 1x20000 strip to a 30000x30000 buffer (1.6 s and 900 MB); now the
    strip is read, or /keypoints refuses it (413) because its padded square is over the limit."""
    data = odd_image(kind)
    for endpoint in IMAGE_ENDPOINTS:
        r = upload(http, endpoint, data)
        assert accepted(endpoint, r) or (r.status_code == 413 and endpoint == "/keypoints"), (endpoint, r.text)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "ICO", "PPM", "TGA", "animated GIF"])
def test_formats_we_do_not_take_are_400_naming_the_ones_we_do(http, fmt):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    if fmt == "animated GIF":
        data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    else:
        data = encode(frames[0], fmt)
    for endpoint in IMAGE_ENDPOINTS:
        r = upload(http, endpoint, data)
        assert r.status_code == 400 and r.json()["error"] == NOT_AN_IMAGE, r.text


# --- malformed multipart and wrong content types --------------------------------------------------


@st.composite
def multipart_bodies(draw) -> tuple[str, bytes]:
    boundary = draw(st.text("abcXYZ019-_'+", min_size=0, max_size=12))
    declared = draw(st.sampled_from([boundary, boundary + "x", "", '"' + boundary + '"']))
    newline = draw(st.sampled_from([b"\r\n", b"\n"]))
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["image", "model", "debug", "detector", "file", "", "image\x00", "images"]))
        headers = [b'Content-Disposition: form-data; name="' + name.encode() + b'"']
        if draw(st.booleans()):
            headers[0] += (
                b'; filename="' + draw(st.sampled_from([b"x.png", b"", b"..\\..\\etc\\passwd", b"\xff"])) + b'"'
            )
        if draw(st.booleans()):
            headers.append(b"Content-Type: " + draw(st.sampled_from([b"image/png", b"", b"text/plain; charset=zz"])))
        if draw(st.booleans()):
            headers = draw(st.lists(st.binary(max_size=40), max_size=2))  # garbage headers
        value = draw(st.sampled_from([SAMPLES["PNG"][:200], SAMPLES["JPEG"], b"cnn", b"", b"\xff\xfe", b"null"]))
        parts.append(b"--" + boundary.encode() + newline + newline.join(headers) + newline + newline + value)
    body = newline.join(parts)
    if draw(st.booleans()):
        body += newline + b"--" + boundary.encode() + b"--" + newline
    body = draw(st.binary(max_size=8)) + body + draw(st.binary(max_size=8))
    content_type = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={declared}",
                "multipart/form-data",
                "multipart/mixed; boundary=" + declared,
                "multipart/form-data; boundary=" + "b" * 200,
                "application/x-www-form-urlencoded",
            ]
        )
    )
    return content_type, body


@FUZZ
@given(endpoint=st.sampled_from(IMAGE_ENDPOINTS + tuple(ARRAY_ENDPOINTS)), request=multipart_bodies())
@example(endpoint="/digit", request=("multipart/form-data", b"--x\r\n"))  # no boundary: was a 500
@example(endpoint="/digits_array", request=("multipart/form-data; boundary=x", b'{"images": []}'))  # was a 500
def test_malformed_multipart_bodies_are_refused_cleanly(http, endpoint, request):
    content_type, body = request
    answered(http.post(endpoint, content=body, headers={"content-type": content_type}))


CONTENT_TYPES = ["application/json", "text/plain", "image/png", "application/octet-stream", "", "*/*", "x/y; a=b"]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_an_image_endpoint_sent_anything_but_a_form_is_415(http, content_type):
    """The raw file, or JSON naming a path or a URL: a 415 that says to send multipart (BentoML
    said "Invalid JSON" or "Invalid file type")."""
    headers = {"content-type": content_type} if content_type else {}
    for endpoint in IMAGE_ENDPOINTS:
        for body in (SAMPLES["PNG"], json.dumps({"image": "/etc/passwd"}).encode()):
            r = answered(http.post(endpoint, content=body, headers=headers))
            assert r.status_code == 415 and "multipart/form-data" in r.json()["error"], r.text


def test_bentoml_own_refusals_are_one_json_object(http):
    r = answered(http.post("/digits_array", content=b"x", headers={"content-type": "application/vnd.bentoml+pickle"}))
    assert r.status_code == 415  # BentoML's answer was a list: [{"error": ...}]


def test_too_many_parts_and_an_oversized_field_are_400(http):
    many = b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(1200))
    big = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\n' + b"m" * (1024 * 1024 + 10) + b"\r\n"
    for body in (many, big):
        r = answered(
            http.post(
                "/digit", content=body + b"--b--\r\n", headers={"content-type": "multipart/form-data; boundary=b"}
            )
        )
        assert r.status_code == 400 and r.json()["error"].startswith("malformed multipart body"), r.text


# --- the array endpoints --------------------------------------------------------------------------

ELEMENTS = {
    "float": st.floats(0, 1, width=32),
    "any float": st.floats(allow_nan=True, allow_infinity=True),
    "int": st.integers(-(2**70), 2**70),
    "bool": st.booleans(),
    "none": st.none(),
    "string": st.text(max_size=3),
}


@st.composite
def array_bodies(draw, item: tuple[int, ...]) -> tuple[bytes, bool]:
    """(a JSON body, whether it is a valid batch): mostly near the right shape, often wrong."""
    n = draw(st.integers(0, 3))
    shape = [n, *item]
    if draw(st.booleans()):  # a wrong shape: one dimension off, one missing, or one too many
        how = draw(st.sampled_from(["off", "drop", "add"]))
        axis = draw(st.integers(0, len(shape) - 1))
        if how == "off":
            shape[axis] = max(0, shape[axis] + draw(st.sampled_from([-1, 1, 5])))
        elif how == "drop":
            shape.pop(axis)
        else:
            shape.insert(axis, draw(st.integers(0, 2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.random(shape, dtype=np.float32).astype(object) if np.prod(shape) else np.zeros(shape, object)
    kind = draw(st.sampled_from(["float"] * 3 + sorted(ELEMENTS)))
    flat = values.reshape(-1)
    for index in draw(st.lists(st.integers(0, max(0, flat.size - 1)), max_size=3)) if flat.size else []:
        flat[index] = draw(ELEMENTS[kind])
    nested = values.tolist()
    if shape and shape[0] and draw(st.integers(0, 9)) == 0:  # ragged: one item cut short
        nested[0] = nested[0][:-1] if isinstance(nested[0], list) and nested[0] else 0.5
        shape = None
    wrapper = draw(st.sampled_from(["images", "images", "images+extra", "image", "bare"]))
    body = (
        {"images": nested, "extra": 1}
        if wrapper == "images+extra"
        else nested
        if wrapper == "bare"
        else {wrapper: nested}
    )
    # A JSON true or false among numbers is read as 1 or 0 (numpy's conversion; finding it would
    # cost a pass over every value in Python); an array of nothing but bools is refused.
    valid = (
        wrapper.startswith("images")
        and shape is not None
        and shape[1:] == list(item)
        and shape[0] > 0
        and all(isinstance(v, int | float) and 0 <= v <= 1 for v in flat)
    )
    return json.dumps(body, allow_nan=True).encode(), valid


@FUZZ
@given(endpoint=st.sampled_from(sorted(ARRAY_ENDPOINTS)), data=st.data())
def test_arrays_of_any_shape_and_dtype_get_an_answer_or_a_400(http, endpoint, data):
    body, valid = data.draw(array_bodies(ARRAY_ENDPOINTS[endpoint]))
    r = answered(http.post(endpoint, content=body, headers={"content-type": "application/json"}))
    if valid:
        n = len(json.loads(body)["images"])
        assert r.status_code == 200 and np.array(r.json()).shape == (n, 10 if "digits" in endpoint else 30), r.text
    else:
        assert r.status_code == 400, r.text[:300]


def zeros_json(n: int, item: tuple[int, ...]) -> bytes:
    """{"images": zeros (n, *item)} written as compactly as JSON allows: 2 bytes per value."""
    row = b"[" + b",".join([b"0"] * item[-1]) + b"]"
    one = row
    for side in reversed(item[:-1]):
        one = b"[" + b",".join([one] * side) + b"]"
    return b'{"images":[' + b",".join([one] * n) + b"]}"


@pytest.mark.parametrize(
    "endpoint, n, status",
    [
        ("/digits_array", 300, 200),  # over max_batch_size (256): one request, one answer
        ("/digits_array", 6000, 200),  # 9.8 MB, just under the limit
        ("/keypoints_array", 500, 200),  # 9.3 MB of crops, over max_batch_size (128)
        ("/keypoints_array", 600, 413),  # 11 MB
        ("/digits_array/mlp", 7000, 413),
    ],
)
def test_huge_batches_are_answered_or_refused_by_size(http, endpoint, n, status):
    body = zeros_json(n, ARRAY_ENDPOINTS[endpoint])
    started = time.monotonic()
    r = answered(http.post(endpoint, content=body, headers={"content-type": "application/json"}))
    assert r.status_code == status, r.text[:300]
    if status == 200:
        assert len(r.json()) == n
    print(f"{endpoint}: {n} items, {len(body) / 1e6:.1f} MB -> {r.status_code} in {time.monotonic() - started:.2f} s")


def read_until_closed(s: socket.socket) -> bytes:
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
    return reply


def test_a_declared_body_of_10_gb_is_413_before_it_is_sent(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        s.sendall(b"POST /digits_array HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        s.sendall(b"Content-Length: 10000000000\r\n\r\n{")
        reply = read_until_closed(s)
    assert reply.startswith(b"HTTP/1.1 413") and b"VISION_MAX_UPLOAD_BYTES" in reply, reply


# --- slow clients ---------------------------------------------------------------------------------


class SlowClient(threading.Thread):
    """A connection that sends a /digit upload's headers, then its body one byte at a time."""

    def __init__(self, port: int, body: bytes, pause: float, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.body, self.pause, self.stop = port, body, pause, stop
        self.sent, self.reply, self.error = 0, b"", None

    def run(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as s:
                s.sendall(
                    b"POST /digit HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(self.body)
                )
                while self.sent < len(self.body) and not self.stop.is_set():
                    s.sendall(self.body[self.sent : self.sent + 1])
                    self.sent += 1
                    time.sleep(self.pause)
                if self.sent == len(self.body):
                    self.reply = s.recv(4096)
        except OSError as e:
            self.error = e


def form(data: bytes) -> bytes:
    return b'--b\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n\r\n' + data + b"\r\n--b--\r\n"


def test_64_slow_clients_do_not_stop_the_others(http, server):
    """64 connections trickle their bodies in a byte every 50 ms; meanwhile other clients are
    served, and a slow client that finishes gets its answer. (How fast the others are served
    beside them: `python -m bench.soak --phases slow`.)"""
    digit = (ROOT / "docs" / "examples" / "digit.png").read_bytes()
    stop = threading.Event()
    slow = [SlowClient(server.port, form(digit), 0.05, stop) for _ in range(63)]
    short = SlowClient(server.port, form(digit), 0.002, stop)  # one that finishes in a few seconds
    for client in [*slow, short]:
        client.start()
    time.sleep(1.0)
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: http.post("/digit", files={"image": ("d.png", digit)}), range(80)))
        assert [r.status_code for r in answers] == [200] * 80
        short.join(TIMEOUT)
        assert all(c.is_alive() for c in slow), "a slow client was cut off within seconds"
        assert short.reply.startswith(b"HTTP/1.1 200"), (short.reply, short.error)
    finally:
        stop.set()
        for client in slow:
            client.join(5)


def limited(
    chunks: list[bytes], declared: int | None, body_timeout: float = 0.3, complete: bool = False
) -> tuple[list, list]:
    """(what BodyLimit sent, what the application received) for a body of which `chunks` come and
    then, unless `complete`, nothing more, ever."""
    sent, seen = [], []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 400, "headers": []})  # what BentoML would
        await send({"type": "http.response.body", "body": b"x"})

    async def main():
        queue = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
        queue[-1]["more_body"] = not complete
        forever = asyncio.Event()

        async def receive():
            if queue:
                return queue.pop(0)
            await forever.wait()

        async def send(message):
            sent.append(message)

        headers = [(b"content-length", str(declared).encode())] if declared is not None else []
        scope = {"type": "http", "method": "POST", "path": "/digit", "headers": headers}
        await asyncio.wait_for(BodyLimit(app, 1000, body_timeout=body_timeout)(scope, receive, send), 5)

    asyncio.run(main())
    return sent, seen


@pytest.mark.parametrize("declared", [100, None], ids=["content-length", "chunked"])
def test_a_body_that_stops_coming_is_408_at_the_deadline(declared):
    started = time.monotonic()
    sent, seen = limited([b"a", b"b"], declared)
    assert 0.3 <= time.monotonic() - started < 2
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [408]  # the app's 400 is dropped
    error = json.loads(sent[1]["body"])["error"]
    assert error.startswith("the request body did not arrive within 0.3 s (2") and "\n" not in error
    if declared is not None:  # streamed to the application, which then sees the client go
        assert seen[-1] == {"type": "http.disconnect"}
    else:  # read before the application is called
        assert seen == []


@pytest.mark.parametrize("declared", [3, None], ids=["content-length", "chunked"])
def test_a_body_that_comes_in_time_passes(declared):
    sent, seen = limited([b"ab", b"c"], declared, body_timeout=5, complete=True)
    assert b"".join(m["body"] for m in seen) == b"abc" and not seen[-1]["more_body"]
    assert sent[0]["status"] == 400  # the application's own answer


# --- and afterwards -------------------------------------------------------------------------------


def test_an_unfinished_request_head_is_408_after_the_head_timeout(unfinished_heads):
    """uvicorn alone left both connections open for ever (measured: still open after 140 s)."""
    for s, opened in unfinished_heads:
        reply = read_until_closed(s)
        assert reply.startswith(b"HTTP/1.1 408 ") and b'"error": "no complete request head within' in reply, reply
        assert HEAD_TIMEOUT - 0.5 < time.monotonic() - opened < HEAD_TIMEOUT + 12


def test_still_ready_with_no_traceback_in_the_log(http, server):
    """Runs last: after everything above the server is ready, answers, and logged no error."""
    assert http.get("/readyz").status_code == 200
    r = http.post("/keypoints_array", json={"images": np.zeros((1, 1, 96, 96)).tolist()})
    assert r.status_code == 200, r.text
    log = server.log()
    assert "Traceback" not in log and "[ERROR]" not in log, log[log.find("Traceback") - 2000 :][:6000]
