"""Load shedding: a bound on the requests each worker works on at once; past it, a 503 at once.

Without a bound every request is taken and queued: at 256 clients on /faces none failed, but
every one waited 2 s or more for its answer. With it, a worker that already has `limit` requests
in flight answers the next one at once with 503, `Retry-After` and a one-line JSON error, and the
requests it took are answered in the time a few of them take.

A request counts from the moment its whole body has arrived until its answer is sent: a client
still sending (a slow upload, or a slowloris that `limits.BodyLimit` ends after its deadline) holds
no place, so slow clients cannot shut others out. A request that finds the worker full is refused
from its head, without reading its body (uvicorn reads and drops it), so a refusal costs little;
one whose body completes when the worker has filled up meanwhile is refused then.

Only POST requests count (every API; `GET /info`, the page, `/docs.json`, the probes and `/metrics`
are never shed), and the count is per worker process: with VISION_WORKERS=2 the service holds at
most twice the limit.
"""

import json
import logging
import time

logger = logging.getLogger("bentoml.vision")
NEVER_SHED = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
LOG_EVERY_S = 10.0  # at most one log line per this many seconds while shedding, per worker


class InFlightLimit:
    """ASGI middleware: at most `limit` POST requests in flight in this process; the next is a 503
    with `Retry-After: retry_after`. `on_shed(path)` is called for each request shed."""

    def __init__(self, app, limit: int, retry_after: int, on_shed=None):
        self.app, self.limit, self.retry_after, self.on_shed = app, limit, retry_after, on_shed
        self.in_flight = 0
        self._shed_since_log, self._logged_at = 0, float("-inf")
        self._payload = json.dumps(
            {
                "error": f"the service is busy: this worker has all the requests in flight it takes "
                f"(VISION_MAX_IN_FLIGHT={limit}); retry after {retry_after} s"
            }
        ).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] in NEVER_SHED:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.limit:  # full: refused from its head (uvicorn discards the body)
            return await self._shed(scope, send)
        messages = []  # the body, read here so that only a request whose body has come counts
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        replay = replayed(messages, receive)
        if message["type"] != "http.request":  # gone, or cut off by BodyLimit: the application says so
            return await self.app(scope, replay, send)
        if self.in_flight >= self.limit:  # filled up while this body came
            return await self._shed(scope, send)
        self.in_flight += 1
        try:
            await self.app(scope, replay, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, scope, send) -> None:
        if self.on_shed is not None:
            self.on_shed(scope["path"])
        self._shed_since_log += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            logger.warning(
                "shedding load: %d request(s) answered 503 since the last such line; %d in flight "
                "(VISION_MAX_IN_FLIGHT=%d)",
                self._shed_since_log,
                self.in_flight,
                self.limit,
            )
            self._shed_since_log, self._logged_at = 0, now
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._payload)).encode()),
            (b"retry-after", str(self.retry_after).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self._payload})


def replayed(messages: list[dict], receive):
    """A `receive` that gives `messages` again, then whatever comes next (a disconnect)."""
    pending = list(messages)

    async def replay():
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
