"""A thin client for the service's HTTP API."""

import os
import warnings
from pathlib import Path

import cv2
import httpx
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Where the clients (`python -m clients`, `clients.webcam`) and `python -m bench` look for the
# service when no --url is given: $VISION_URL, else the address `make serve` listens on.
URL_ENV = "VISION_URL"
DEFAULT_URL = "http://127.0.0.1:3000"
URL_HELP = f"the service (default: ${URL_ENV}, else {DEFAULT_URL})"


def service_url() -> str:
    """$VISION_URL if set and not empty, else http://127.0.0.1:3000."""
    return os.environ.get(URL_ENV, "").strip() or DEFAULT_URL


def unreachable_message(url: str) -> str:
    """The one line every client says when nothing listens at `url`."""
    return f"nothing answers at {url}: start the service with `make serve`, or pass --url (or set {URL_ENV})"


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ServiceError(RuntimeError):
    """The service answered with an error, or could not be reached."""


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
    a truncated file, which Pillow refuses. Pillow is also what the service validates uploads with.
    Raises ImageError with a one-line message.
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
            with Image.open(path) as image:
                image.load()  # a full decode: raises on truncated or corrupt data
                rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image") from None
    except Exception as e:  # truncated, corrupt, too large for Pillow, ...
        raise ImageError(f"{path}: truncated or corrupt image ({_one_line(e, 100)})") from None
    return data, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


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


class VisionClient:
    def __init__(self, url: str | None = None, timeout: float = 30.0):
        """`url`: the service; None means $VISION_URL, else http://127.0.0.1:3000."""
        self.url = checked_url(url or service_url())
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _post(self, endpoint: str, files=None, data=None, json=None) -> dict:
        try:
            response = self._http.post(endpoint, files=files, data=data, json=json)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise ServiceError(unreachable_message(self.url)) from None
        except httpx.TimeoutException:
            raise ServiceError(f"{self.url}{endpoint} did not answer within {self.timeout:g} s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise ServiceError(f"{self.url}{endpoint}: {_one_line(e) or type(e).__name__}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except (ValueError, AttributeError):
                message = response.text
            raise ServiceError(f"{endpoint} answered {response.status_code}: {_one_line(message)}")
        try:
            return response.json()
        except ValueError:
            raise ServiceError(f"{endpoint} answered with non-JSON: is {self.url} the vision service?") from None

    def _post_image(self, endpoint: str, image, **fields) -> dict:
        return self._post(endpoint, files={"image": ("image.png", _as_bytes(image))}, data=fields or None)

    def digit(self, image, model: str = "cnn", debug: bool = False) -> dict:
        """{"digit", "confidence", "probabilities", "model", "input_png"} for one digit image
        (`input_png`, the model's 28x28 input as base64 PNG, with debug)."""
        return self._post_image("/digit", image, model=model, debug=str(debug).lower())

    def number(self, image, model: str = "cnn", debug: bool = False) -> dict:
        """{"number", "digits": [{"digit", "confidence", "box", "input_png"}], "model"} for a
        written number."""
        return self._post_image("/number", image, model=model, debug=str(debug).lower())

    def keypoints(self, image) -> list[dict]:
        """15 named keypoints in the pixel coordinates of a face crop."""
        return self._post_image("/keypoints", image)["keypoints"]

    def faces(self, image) -> dict:
        """{"width", "height", "faces": [{"box", "keypoints"}]} for a photo."""
        return self._post_image("/faces", image)

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except (httpx.HTTPError, httpx.InvalidURL):
            return False


def keypoint_array(keypoints: list[dict]) -> np.ndarray:
    """The API's [{"name", "x", "y"}, ...] -> (15, 2) float array."""
    return np.array([[k["x"], k["y"]] for k in keypoints], dtype=np.float64)
