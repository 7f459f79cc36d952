"""A thin client for the service's HTTP API."""

import asyncio
import io
import json
import os
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import httpx
import numpy as np
from PIL import Image, UnidentifiedImageError

from clients.answers import Face, FacesAnswer, KeypointsAnswer
from vision.photos import upright_bgr

# Where the clients (`python -m clients`, `clients.webcam`) and `python -m bench` look for the
# service when no --url is given: $VISION_URL, else the address `make serve` listens on.
URL_ENV = "VISION_URL"
DEFAULT_URL = "http://127.0.0.1:3000"
URL_HELP = f"the service (default: ${URL_ENV}, else {DEFAULT_URL})"
# The key for a service started with VISION_API_KEYS, sent as `Authorization: Bearer KEY`.
API_KEY_ENV = "VISION_API_KEY"
API_KEY_HELP = (
    f"the service's API key, if it wants one (default: ${API_KEY_ENV}, the better place: a command line shows in `ps`)"
)


def service_url() -> str:
    """$VISION_URL if set and not empty, else http://127.0.0.1:3000."""
    return os.environ.get(URL_ENV, "").strip() or DEFAULT_URL


def api_key() -> str | None:
    """$VISION_API_KEY if set and not empty, else None."""
    return os.environ.get(API_KEY_ENV, "").strip() or None


def unreachable_message(url: str) -> str:
    """The one line every client says when nothing listens at `url`."""
    return f"nothing answers at {url}: start the service with `make serve`, or pass --url (or set {URL_ENV})"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ServiceError(RuntimeError):
    """The service answered with an error, or could not be reached (the message is one line)."""


class ServiceRefused(ServiceError):
    """The service refused the request (a 4xx): the message carries the service's own words."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class ServiceUnauthorized(ServiceRefused):
    """The service wants an API key (401): none was sent, or it refused the one sent."""


def unauthorized_message(key_sent: bool) -> str:
    """The one line every client says on a 401; it never quotes the key."""
    if key_sent:
        return f"the service refused the API key: check --api-key or {API_KEY_ENV}"
    return f"the service wants an API key: pass --api-key or set {API_KEY_ENV}"


class ServiceUnreachable(ServiceError):
    """Nothing answered: the service is down, restarting, or at another address."""


class ServiceBusy(ServiceError):
    """The service shed the request (503 with Retry-After: it had as much work as it takes);
    `retry_after` is how many seconds it asked the client to wait before sending it again."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def checked_url(url: str) -> str:
    """`url` without a trailing slash, or ServiceError when it is not an http(s)://HOST[:PORT] URL."""
    url = url.strip().rstrip("/")
    try:
        parsed = httpx.URL(url) if "://" in url else None
        valid = parsed is not None and parsed.scheme in ("http", "https") and bool(parsed.host)
    except (httpx.InvalidURL, ValueError, TypeError):
        valid = False
    if not valid:
        raise ServiceError(f"bad service URL {url!r}: expected e.g. {DEFAULT_URL}")
    return url


class ImageError(ValueError):
    """A local file that is missing or not a readable image."""


def read_image(path) -> tuple[bytes, np.ndarray]:
    """A local image file -> (its bytes, as sent to the service; its pixels as BGR uint8).

    Decoded with Pillow rather than cv2.imread: libjpeg, as OpenCV calls it, prints warnings such
    as "Corrupt JPEG data: ..." straight to the terminal, and silently returns a half-gray image for
    a truncated file, which Pillow refuses. Pillow is also what the service validates uploads with,
    and the decoding is the service's (`upright_bgr`): HEIC and AVIF phone photos, turned upright
    as the service turns them, so the drawing matches the answer. Raises ImageError in one line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. DecompressionBombWarning; the service has its own limits
            with Image.open(io.BytesIO(data)) as image:  # the bytes read above: the file once
                bgr = upright_bgr(image)  # a full decode: raises on truncated or corrupt data
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image") from None
    except Exception as e:  # truncated, corrupt, too large for Pillow, ...
        raise ImageError(f"{path}: truncated or corrupt image ({_one_line(e, 100)})") from None
    return data, bgr


def _as_bytes(image) -> bytes:
    """A path, raw encoded bytes, or a decoded BGR/gray array -> encoded image bytes."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, np.ndarray):
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise ValueError("could not encode the image array")
        return encoded.tobytes()
    return Path(image).read_bytes()


# Connection errors are retried this many times, after 0.25, 0.5, 1, ... s: every endpoint is a
# pure function of its input, so sending a request again is always safe.
RETRIES = 3
FIRST_BACKOFF_S = 0.25
# A 503 with Retry-After (the service is busy) is retried as often, after the wait it asks for
# (at most this long), and up to a quarter more, at random, so that clients shed together do not
# all come back at the same instant.
MAX_RETRY_AFTER_S = 10.0


class Request(NamedTuple):
    """One call of the API, as both clients send it, and the record its answer is read into
    (None: the JSON as it is)."""

    endpoint: str
    files: dict | None = None
    data: dict | None = None
    record: Callable[[dict], object] | None = None


def _image_request(endpoint: str, image, record=None, **fields) -> Request:
    fields = {k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items() if v is not None}
    return Request(endpoint, files={"image": ("image.png", _as_bytes(image))}, data=fields or None, record=record)


def _answer(url: str, request: Request, response: httpx.Response):
    """A 2xx answer, read into the request's record; ServiceRefused (4xx) or ServiceError otherwise,
    in one line."""
    endpoint = request.endpoint
    if response.status_code == 401:
        raise ServiceUnauthorized(unauthorized_message("authorization" in response.request.headers), 401)
    if response.status_code >= 400:
        try:
            message = response.json().get("error", response.text)
        except (ValueError, AttributeError):
            message = response.text
        error = f"{endpoint} answered {response.status_code}: {_one_line(message)}"
        if response.status_code == 503 and "retry-after" in response.headers:  # busy: shed, not failed
            raise ServiceBusy(error, _retry_after(response.headers["retry-after"]))
        if response.status_code == 503:  # up, but not ready (yet): a restart in progress
            raise ServiceUnreachable(error)
        if response.status_code < 500:
            raise ServiceRefused(error, response.status_code)
        raise ServiceError(error)
    try:
        answer = response.json()
    except ValueError:
        raise ServiceError(f"{endpoint} answered with non-JSON: is {url} the vision service?") from None
    try:
        return answer if request.record is None else request.record(answer)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ServiceError(f"{endpoint} answered with JSON of another shape: is {url} the vision service?") from None


def _transport_error(url: str, endpoint: str, timeout: float, error: Exception) -> ServiceError:
    """What a failed exchange means to the caller: unreachable (retry may help) or a one-line error."""
    if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
        return ServiceError(f"{url}{endpoint} did not answer within {timeout:g} s")
    if isinstance(error, httpx.TransportError):  # refused, reset, closed mid-answer (a restart)
        return ServiceUnreachable(unreachable_message(url))
    return ServiceError(f"{url}{endpoint}: {_one_line(error) or type(error).__name__}")


def _backoff(attempt: int) -> float:
    return FIRST_BACKOFF_S * 2**attempt


def _retry_after(value: str) -> float:
    """A Retry-After header's seconds (an HTTP date, which this service never sends, counts as 1)."""
    try:
        return min(max(0.0, float(value)), MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


def _wait_before_retry(error: ServiceError, attempt: int) -> float:
    """Seconds to wait before sending a request again after `error` (unreachable or busy)."""
    if isinstance(error, ServiceBusy):
        return error.retry_after * (1 + random.uniform(0, 0.25))
    return _backoff(attempt)


def _gave_up(error: ServiceError, attempts: int) -> ServiceError:
    """The error to raise once the retries are spent: a busy service says how often it was asked."""
    if isinstance(error, ServiceBusy) and attempts > 1:
        return ServiceBusy(f"{error} (asked {attempts} times)", error.retry_after)
    return error


class _Endpoints:
    """The API's endpoints; `_send` (sync or async) sends them. Results are those of `_send`."""

    def __init__(self, url: str | None, timeout: float, retries: int, http_class, key: str | None = None):
        """`url`: the service; None means $VISION_URL, else http://127.0.0.1:3000. `key`: its API
        key; None means $VISION_API_KEY, else none ("" sends none either)."""
        self.url = checked_url(url or service_url())
        self.timeout, self.retries = timeout, retries
        key = (api_key() if key is None else key.strip()) or None
        headers = {"Authorization": f"Bearer {key}"} if key else None
        self._http = http_class(base_url=self.url, timeout=timeout, headers=headers)

    def digit(self, image, model: str = "cnn", debug: bool = False):
        """{"digit", "confidence", "probabilities", "model", "input_png"} for one digit image
        (`input_png`, the model's 28x28 input as base64 PNG, with debug)."""
        return self._send(_image_request("/digit", image, model=model, debug=debug))

    def number(self, image, model: str = "cnn", debug: bool = False):
        """{"number", "digits": [{"digit", "confidence", "box", "input_png"}], "left_out": [{"kind",
        "box"}], "model"} for a written number."""
        return self._send(_image_request("/number", image, model=model, debug=debug))

    def keypoints(self, image):
        """A KeypointsAnswer (clients.answers): 15 named keypoints in a face crop's pixels, and the pose."""
        return self._send(_image_request("/keypoints", image, KeypointsAnswer.from_json))

    def faces(self, image, detector: str | None = None, boxes: list | None = None):
        """A FacesAnswer (clients.answers): the photo's width and height and its faces, each with
        its box, score, detector, keypoints and pose. With `boxes` nothing is detected: each box is
        cut and predicted as /faces would a detection (detector "given"). A box is {"x", "y",
        "width", "height"} in the photo's pixels, optionally with "eyes" ([[right x, right y],
        [left x, left y]]: the crop is turned by them) and a "score"; a Face of an earlier answer
        is sent as its `given_box()`."""
        record = FacesAnswer.from_json
        return self._send(_image_request("/faces", image, record, detector=detector, boxes=boxes_field(boxes)))


class VisionClient(_Endpoints):
    """The service over HTTP. Connection errors are retried `retries` times with backoff, then
    raise ServiceUnreachable; a busy service's 503 is retried as often after its Retry-After, then
    raises ServiceBusy; a 4xx raises ServiceRefused with the service's message (a 401:
    ServiceUnauthorized). `api_key` (else $VISION_API_KEY) goes with every request as a Bearer token."""

    def __init__(
        self, url: str | None = None, timeout: float = 30.0, retries: int = RETRIES, api_key: str | None = None
    ):
        super().__init__(url, timeout, retries, httpx.Client, api_key)

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, request: Request) -> dict:
        for attempt in range(self.retries + 1):
            try:
                return self._exchange(request)
            except (ServiceUnreachable, ServiceBusy) as e:
                if attempt == self.retries:
                    raise _gave_up(e, attempt + 1) from None
                wait = _wait_before_retry(e, attempt)
            time.sleep(wait)

    def _exchange(self, request: Request) -> dict:
        try:
            response = self._http.post(request.endpoint, files=request.files, data=request.data)
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise _transport_error(self.url, request.endpoint, self.timeout, e) from None
        return _answer(self.url, request, response)

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except (httpx.HTTPError, httpx.InvalidURL):
            return False


class AsyncVisionClient(_Endpoints):
    """VisionClient's twin for asyncio (`await client.faces(...)`), with the same retries and errors."""

    def __init__(
        self, url: str | None = None, timeout: float = 30.0, retries: int = RETRIES, api_key: str | None = None
    ):
        super().__init__(url, timeout, retries, httpx.AsyncClient, api_key)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    async def _send(self, request: Request) -> dict:
        for attempt in range(self.retries + 1):
            try:
                return await self._exchange(request)
            except (ServiceUnreachable, ServiceBusy) as e:
                if attempt == self.retries:
                    raise _gave_up(e, attempt + 1) from None
                wait = _wait_before_retry(e, attempt)
            await asyncio.sleep(wait)

    async def _exchange(self, request: Request) -> dict:
        try:
            response = await self._http.post(request.endpoint, files=request.files, data=request.data)
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise _transport_error(self.url, request.endpoint, self.timeout, e) from None
        return _answer(self.url, request, response)

    async def ready(self) -> bool:
        try:
            return (await self._http.get("/readyz")).status_code == 200
        except (httpx.HTTPError, httpx.InvalidURL):
            return False


def boxes_field(boxes: list | None) -> str | None:
    """`boxes` (box entries, or Faces of earlier answers) -> the JSON text of the form field; None: no field."""
    if boxes is None:
        return None
    entries = [box.given_box() if isinstance(box, Face) else box for box in boxes]
    return json.dumps(entries, default=lambda value: value.tolist())  # numpy numbers and arrays too
