"""An ASGI middleware that refuses request bodies over the size limit before anything parses them.

A declared Content-Length over the limit is answered 413 at once, without reading the body (one
within it passes straight through); a body without one (chunked) is read up to the limit and
refused as soon as it passes it. The
multipart framing around an upload gets a little slack; the upload itself is held to the exact
limit again when it is decoded (`service.images.decode`).
"""

import json
import os

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # VISION_MAX_UPLOAD_BYTES
MAX_PIXELS = 40_000_000  # VISION_MAX_PIXELS: a declared width x height over this is refused undecoded
MULTIPART_SLACK = 64 * 1024


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer") from None
    if number <= 0:
        raise ValueError(f"{name}={value!r} must be positive")
    return number


def max_upload_bytes() -> int:
    return env_int("VISION_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES)


def max_pixels() -> int:
    return env_int("VISION_MAX_PIXELS", MAX_PIXELS)


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_body = max_bytes + MULTIPART_SLACK
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await self._refuse(send, 400, "invalid Content-Length header")
            if size > self.max_body:
                return await self._refuse(send, 413, self._message(size))
            # The server holds a body to its declared length, so it needs no counting here.
            return await self.app(scope, receive, send)

        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_body:
                return await self._refuse(send, 413, self._message(total, at_least=True))
            chunks.append(body)
            if not message.get("more_body", False):
                break

        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    def _message(self, size: int, at_least: bool = False) -> str:
        return (
            f"the request body is {'over ' if at_least else ''}{size} bytes; uploads are limited to "
            f"{self.max_bytes} bytes (VISION_MAX_UPLOAD_BYTES)"
        )

    @staticmethod
    async def _refuse(send, status: int, message: str) -> None:
        payload = json.dumps({"error": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def files_only() -> None:
    """Make a text value in a multipart file field count as the file's content.

    BentoML (1.4) treats a text value in a file field as a URL and downloads it from the server:
    an unbounded download the server makes on a client's behalf, and a 500 for any text that is
    not a URL. Here the text is the upload, so it is decoded, and refused, like any other bytes.
    """
    import io

    from starlette.datastructures import UploadFile

    from _bentoml_impl.serde import MultipartSerde

    async def ensure_file(obj):
        if isinstance(obj, UploadFile):
            return obj
        data = obj.encode("utf-8") if isinstance(obj, str) else bytes(obj)
        return UploadFile(io.BytesIO(data), size=len(data), filename="field")

    MultipartSerde.ensure_file = staticmethod(ensure_file)
