"""An ASGI middleware that refuses request bodies over the size limit before anything parses them.

A declared Content-Length over the limit is answered 413 at once, without reading the body (one
within it passes straight through); a body without one (chunked) is read up to the limit and
refused as soon as it passes it. The
multipart framing around an upload gets a little slack; the upload itself is held to the exact
limit again when it is decoded (`service.images.decode`).
"""

import json

MULTIPART_SLACK = 64 * 1024


class BodyLimit:
    def __init__(self, app, max_bytes: int, on_refusal=None):
        self.app, self.on_refusal = app, on_refusal
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
                return await self._refuse(scope, send, 400, "invalid Content-Length header")
            if size > self.max_body:
                return await self._refuse(scope, send, 413, self._message(size))
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
                return await self._refuse(scope, send, 413, self._message(total, at_least=True))
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

    async def _refuse(self, scope, send, status: int, message: str) -> None:
        if self.on_refusal is not None:
            self.on_refusal(scope["path"], status, message)
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
