"""The headers every answer carries, and CORS: one ASGI middleware, the outermost (service.py).

- `Content-Security-Policy` by what the answer is: HTML (the demo page at `/`, the Swagger UI at
  `/docs`) may load scripts, styles and images from this origin only, with no inline script, style
  or event handler, no `eval` and no plugins, and talk to this origin only; any other answer (JSON,
  the page's files, /metrics) gets `default-src 'none'`. Both have `frame-ancestors 'none'`: no
  other site may frame the page (clickjacking). The Swagger UI needs nothing more (its bundle runs
  no inline script; tests/test_page.py watches Chromium for violations on both pages).
- On every answer: `X-Content-Type-Options: nosniff` (a browser takes each answer as the type it
  says), `Referrer-Policy: no-referrer` (a link followed from the page tells no one where it came
  from) and `X-Frame-Options: DENY` (frame-ancestors for browsers that predate it).
- CORS: no `Access-Control-Allow-Origin` at all unless VISION_CORS_ORIGINS lists origins; then
  Starlette's CORSMiddleware for exactly those, answering preflights and allowing the
  `Authorization` header (API keys). Outermost, so that a preflight (which carries no key) is
  answered before the key check, and the refusals (401, 413, 503) carry the CORS headers a page
  needs to read them.
"""

from starlette.datastructures import MutableHeaders

# This origin's files only. `data:` images: /digit's 28x28 input comes back as a base64 PNG, and
# Swagger's CSS draws its icons so.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "media-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'"
EVERY_ANSWER = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY"}
CORS_METHODS = ("GET", "POST")
CORS_HEADERS = ("Authorization", "Content-Type")
CORS_MAX_AGE = 600  # seconds a browser may keep a preflight's answer


def policy(content_type: str) -> str:
    return PAGE_POLICY if content_type.startswith("text/html") else OTHER_POLICY


class SecurityHeaders:
    def __init__(self, app, cors_origins: tuple[str, ...] = ()):
        if cors_origins:
            from starlette.middleware.cors import CORSMiddleware

            app = CORSMiddleware(
                app,
                allow_origins=list(cors_origins),
                allow_methods=list(CORS_METHODS),
                allow_headers=list(CORS_HEADERS),
                max_age=CORS_MAX_AGE,
            )
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in EVERY_ANSWER.items():
                    headers[name] = value
                headers["content-security-policy"] = policy(headers.get("content-type", ""))
            await send(message)

        await self.app(scope, receive, with_headers)
