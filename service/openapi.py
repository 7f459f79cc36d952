"""The GET routes that BentoML's `@bentoml.api` (POST only) cannot declare.

As one ASGI middleware (`ExtraRoutes`):

- `GET /info` is answered by the `info` API itself (the request is passed on as a POST of `{}`).
- `GET /docs.json` (and so the Swagger UI at `/docs`) is BentoML's OpenAPI document with the
  project's title, version and description instead of BentoML's boilerplate (no badges or contacts
  from outside hosts), and the error answers as this service really gives them: 400 and 413 with
  `{"error": ...}`.

As an ASGI app mounted on the service (`pages`, see `Vision`):

- `GET /`: the demo page (service/page/index.html; its scripts and styles under `/page/`).
- `GET /docs`: the Swagger UI on BentoML's own copy of its assets (`/static_content/`), without
  the analytics tag of BentoML's page, so it works offline too.
"""

import json
from pathlib import Path

import vision
from service.answers import Error

TITLE = "visionserve"
DESCRIPTION = """\
MNIST digits and 15 facial keypoints, from PyTorch models exported to ONNX and served on
onnxruntime.

- `POST /digit`: one handwritten digit (multipart field `image`) -> the digit and its probabilities.
- `POST /number`: a photo of a handwritten number -> its digits, left to right.
- `POST /faces`: a photo -> every face with its box, 15 keypoints in photo pixels and its head pose
  (yaw, pitch, roll in degrees).
- `POST /keypoints`: a face crop -> 15 keypoints in its pixels.
- `POST /digits_array`, `/digits_array/mlp`, `/keypoints_array`: float32 arrays in [0, 1], batched
  across concurrent requests.
- `GET /info`: the models in use, their hashes, metrics and execution providers.
- `GET /`: a demo page in the browser (faces in a photo or from the webcam, a digit drawing pad).

Every refused input is a 4xx with `{"error": "<one line>"}`. The full reference is docs/service.md
in the project.
"""
ERROR_SCHEMA = "Error"
REFUSALS = {
    "400": "Bad input: not an image, a missing or malformed field, an array of the wrong shape",
    "422": "A valid image that holds nothing to read: /digit found no ink",
    "413": "The request body, or the pixel count the image declares, is over the limit",
    "401": "No API key, or a wrong one (`Authorization: Bearer KEY`), where the service was started with API keys",
    "500": "An unexpected server error (a bug: please report it with the server log)",
}


def project_document(spec: dict) -> dict:
    """BentoML's OpenAPI document -> the project's."""
    spec["info"] = {"title": TITLE, "version": vision.__version__, "description": DESCRIPTION}
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(name, None)
    schemas[ERROR_SCHEMA] = Error.model_json_schema()
    error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    for item in spec["paths"].values():
        for operation in item.values():
            if "x-bentoml-name" not in operation:
                continue  # BentoML's own probes and metrics
            operation["responses"] = {
                "200": operation["responses"]["200"],
                **{status: {"description": text, "content": error} for status, text in REFUSALS.items()},
            }
    if "/info" in spec["paths"]:
        spec["paths"]["/info"]["get"] = {**spec["paths"]["/info"]["post"], "operationId": "vision__info_get"}
        spec["paths"]["/info"]["get"].pop("requestBody", None)
    return spec


PAGE = Path(__file__).resolve().parent / "page"


def pages():
    """`/` (the demo page), `/docs` (the Swagger UI) and `/page/*` (the page's files), as one
    Starlette app. BentoML mounts it after its own routes and before its index page, and passes a
    request to it only when one of these routes matches, so every other path stays BentoML's."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    def page(name: str):
        async def endpoint(request):
            return FileResponse(PAGE / name, headers={"cache-control": "no-cache"})

        return endpoint

    return Starlette(
        routes=[
            Route("/", page("index.html"), name="page_index"),
            Route("/docs", page("docs.html"), name="page_docs"),
            Mount("/page", StaticFiles(directory=PAGE), name="page_files"),
        ]
    )


class ExtraRoutes:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        if scope["path"] == "/info":
            return await self.app(as_post_of_empty_json(scope), body_once(b"{}", receive), send)
        if scope["path"] == "/docs.json":
            return await self._document(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _document(self, scope, receive, send):
        start, chunks = {}, []

        async def keep(message):
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = json.dumps(project_document(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def as_post_of_empty_json(scope: dict) -> dict:
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in (b"content-type", b"content-length")]
    return {
        **scope,
        "method": "POST",
        "headers": [*headers, (b"content-type", b"application/json"), (b"content-length", b"2")],
    }


def body_once(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()  # the client's own messages: a disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
