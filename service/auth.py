"""API keys: an ASGI middleware that lets a request through only with `Authorization: Bearer KEY`,
KEY one of the configured keys (VISION_API_KEYS, VISION_API_KEYS_FILE: `service.settings`).

It runs before every other middleware of the service but the security headers and CORS
(`service.headers`, so a 401 carries them and a CORS preflight needs no key), so a request without
a key is answered 401 from its head alone: before any body is read, parsed or held to its limits
(`service.limits`).
Open without a key: the probes (`/livez`, `/readyz`: Kubernetes has no key) and the demo page's
static files (`/`, `/page/*`, the Swagger UI's shell `/docs` and its assets `/static_content/*`),
which hold no data; the page asks for the key when the API answers it 401. Everything else needs
one: the APIs, `/info`, `/docs.json`, `/metrics`, and any unknown path (a 401, not a 404, so routes
cannot be probed without a key).

The key is compared with every configured key by `hmac.compare_digest`, all of them each time, and
as SHA-256 digests (of one length whatever the key's), so the time taken says nothing about how
much of a key was right, how long the keys are, or which one matched. A refusal
goes to `on_refusal` (the service's counter and its one WARNING line) with the path and the reason;
the key the client sent is never logged, nor echoed.
"""

import hashlib
import hmac
import json

OPEN_PATHS = frozenset({"/livez", "/readyz", "/", "/docs"})
OPEN_PREFIXES = ("/page/", "/static_content/")
CHALLENGE = b'Bearer realm="visionserve"'
NO_KEY = "this service needs an API key: send the header Authorization: Bearer KEY"
WRONG_KEY = "the API key was refused"


def is_open(path: str) -> bool:
    """Whether `path` is served without a key: the probes and the page's static files."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def bearer_token(headers) -> bytes | None:
    """The token of the request's first `Authorization: Bearer TOKEN` header, or None."""
    for name, value in headers or ():
        if name.lower() == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


class ApiKeys:
    def __init__(self, app, keys, on_refusal=None, known_paths=()):
        """`keys`: the accepted keys (strings); `on_refusal(path, status, reason)` is told of every
        401, with the path as it is when it is one of `known_paths` (the service's routes), else
        "/(another path)": the refusals counter gets one label per route, not one per path tried."""
        if not keys:
            raise ValueError("ApiKeys needs at least one key")
        self.app, self.on_refusal = app, on_refusal
        self.digests = tuple(hashlib.sha256(key.encode("ascii")).digest() for key in keys)
        self.known_paths = frozenset(known_paths)

    def accepts(self, token: bytes | None) -> bool:
        if token is None:
            return False
        digest, matched = hashlib.sha256(token).digest(), False
        for key in self.digests:  # every key, every time: no early exit
            matched |= hmac.compare_digest(digest, key)
        return matched

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or is_open(scope["path"]):
            return await self.app(scope, receive, send)
        token = bearer_token(scope.get("headers"))
        if self.accepts(token):
            return await self.app(scope, receive, send)
        reason = NO_KEY if token is None else WRONG_KEY
        if self.on_refusal is not None:
            path = scope["path"] if scope["path"] in self.known_paths else "/(another path)"
            self.on_refusal(path, 401, "no API key" if token is None else "wrong API key")
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})  # policy violation
        payload = json.dumps({"error": reason}).encode()
        challenge = CHALLENGE if token is None else CHALLENGE + b', error="invalid_token"'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"www-authenticate", challenge),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
