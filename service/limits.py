"""An ASGI middleware that holds request bodies to a size limit and a deadline before anything
parses them.

A declared Content-Length over the limit is answered 413 at once, without reading the body (one
within it streams through); a body without one (chunked) is read up to the limit and refused as
soon as it passes it. The multipart framing around an upload gets a little slack; the upload
itself is held to the exact limit again when it is decoded (`service.images.decode`).

A body must arrive within BODY_TIMEOUT seconds of its request head: a client that trickles it in
(slowloris) gets a 408 and its connection closed, instead of holding a connection until
BentoML's request timeout (`traffic.timeout`, 60 s) answers 504. The request head itself is held
to HEAD_TIMEOUT by `service.bentoml_compat` (uvicorn has no such timeout).
"""

import asyncio
import json

MULTIPART_SLACK = 64 * 1024
HEAD_TIMEOUT = 10.0  # seconds from the connection (or the previous answer) to a complete request head
BODY_TIMEOUT = 30.0  # seconds from the request head to the end of its body: 10 MB at 2.8 Mbit/s


class BodyLimit:
    def __init__(self, app, max_bytes: int, on_refusal=None, body_timeout: float = BODY_TIMEOUT):
        self.app, self.on_refusal = app, on_refusal
        self.max_body = max_bytes + MULTIPART_SLACK
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await self._refuse(scope, send, 400, "invalid Content-Length header")
            if size > self.max_body:
                return await self._refuse(scope, send, 413, self._message(size))
            # The server holds a body to its declared length, so it needs no counting here: only
            # the deadline, while the application reads it.
            return await self._streamed(scope, receive, send, size, deadline)

        chunks, total = [], 0
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                return await self._refuse(scope, send, 408, self._late(total, None))
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

    async def _streamed(self, scope, receive, send, size: int, deadline: float):
        """The application reads the body itself; if it has not all come by the deadline, the
        client gets a 408, the application a disconnect, and whatever it answers goes nowhere."""
        received, complete, refused = 0, size == 0, False

        async def timed_receive():
            nonlocal received, complete, refused
            if complete or refused:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                refused = True
                await self._refuse(scope, send, 408, self._late(received, size))
                return {"type": "http.disconnect"}
            received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        return await self.app(scope, timed_receive, guarded_send)

    def _message(self, size: int, at_least: bool = False) -> str:
        return (
            f"the request body is {'over ' if at_least else ''}{size} bytes; uploads are limited to "
            f"{self.max_bytes} bytes (VISION_MAX_UPLOAD_BYTES)"
        )

    def _late(self, received: int, size: int | None) -> str:
        of = f" of {size}" if size is not None else ""
        return f"the request body did not arrive within {self.body_timeout:g} s ({received}{of} bytes came)"

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
