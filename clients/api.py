"""A thin client for the service's HTTP API."""

from pathlib import Path

import cv2
import httpx
import numpy as np

DEFAULT_URL = "http://127.0.0.1:3000"


class ServiceError(RuntimeError):
    """The service answered with an error, or could not be reached."""


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
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 30.0):
        self.url = url.rstrip("/")
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
        except httpx.HTTPError as e:
            raise ServiceError(f"cannot reach {self.url}{endpoint}: {e}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise ServiceError(f"{endpoint} answered {response.status_code}: {message}")
        return response.json()

    def _post_image(self, endpoint: str, image, **fields) -> dict:
        return self._post(endpoint, files={"image": ("image.png", _as_bytes(image))}, data=fields or None)

    def digit(self, image, model: str = "cnn") -> dict:
        """{"digit", "confidence", "probabilities", "model"} for one digit image."""
        return self._post_image("/digit", image, model=model)

    def keypoints(self, image) -> list[dict]:
        """15 named keypoints in the pixel coordinates of a face crop."""
        return self._post_image("/keypoints", image)["keypoints"]

    def faces(self, image) -> dict:
        """{"width", "height", "faces": [{"box", "keypoints"}]} for a photo."""
        return self._post_image("/faces", image)

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False


def keypoint_array(keypoints: list[dict]) -> np.ndarray:
    """The API's [{"name", "x", "y"}, ...] -> (15, 2) float array."""
    return np.array([[k["x"], k["y"]] for k in keypoints], dtype=np.float64)
