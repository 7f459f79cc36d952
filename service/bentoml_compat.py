"""Every place where this service reaches into BentoML's internals, in one module.

Written for BentoML 1.4 (checked by `install`, which refuses any other series): each patch below
replaces one private function whose behaviour the service cannot accept, and says why.

- Multipart uploads: BentoML treats a text value in a file field as a URL and downloads it from
  the server (an unbounded fetch made on a client's behalf), and runs `json.loads` on any other
  part, so a file sent under the wrong field name is a `UnicodeDecodeError` and a 500. Here text
  in a file field is the file's bytes, a missing file field is a 400 naming it, and parts that the
  endpoint does not take are ignored.
- Refused input: BentoML answers a validation error with a 400 whose `error` says only "1
  validation error for Input" and logs a full `[ERROR]` traceback for it. Here the `error` names
  the field and the reason in one line, and the log gets one WARNING line.
- Stopping the server from a worker that cannot load its models.
"""

import io
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import bentoml

from vision.errors import InputError

BENTOML_SERIES = "1.4."
logger = logging.getLogger("bentoml.vision")

# (endpoint path, HTTP status, one-line reason) -> None: counts and logs a refusal.
RefusalHook = Callable[[str, int, str], None]


class MissingUpload(InputError):
    """A multipart request without the file field the endpoint takes."""


def install(on_refusal: RefusalHook) -> None:
    """Apply every patch; refuse to run on a BentoML these patches were not written for."""
    if not bentoml.__version__.startswith(BENTOML_SERIES):
        raise RuntimeError(
            f"service/bentoml_compat.py was written for BentoML {BENTOML_SERIES}x, found {bentoml.__version__}"
        )
    _multipart_uploads()
    _one_line_refusals(on_refusal)


def _multipart_uploads() -> None:
    import json

    from _bentoml_impl.serde import MultipartSerde
    from starlette.datastructures import UploadFile

    async def parse_request(self, request, cls):
        form = await request.form()
        data = {}
        for name in cls.multipart_fields:  # the file fields: `image` here
            values = form.getlist(name)
            if not values:
                sent = ", ".join(repr(k) for k in form) or "no fields"
                raise MissingUpload(
                    f"no file in the multipart field {name!r} (the request has {sent}); send -F {name}=@FILE"
                )
            data[name] = await as_upload(values[0])
        for name in cls.model_fields:
            if name in cls.multipart_fields or name not in form:
                continue
            value = form[name]
            if isinstance(value, UploadFile):
                value = await value.read()
            try:
                data[name] = json.loads(value)
            except (json.JSONDecodeError, UnicodeDecodeError):
                data[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return cls.model_validate(data)

    async def as_upload(value):
        if isinstance(value, UploadFile):
            return value
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return UploadFile(io.BytesIO(data), size=len(data), filename="field")

    MultipartSerde.parse_request = parse_request


def validation_message(error) -> str:
    """A pydantic ValidationError -> "field: reason; field: reason" in one line."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())


def _one_line_refusals(on_refusal: RefusalHook) -> None:
    from _bentoml_impl.server.app import ServiceAppFactory
    from pydantic import ValidationError
    from starlette.responses import JSONResponse

    api_endpoint = ServiceAppFactory.api_endpoint

    async def refusing_api_endpoint(self, name, request):
        detail = {}
        try:
            return await api_endpoint(self, name, request)
        except ValidationError as e:
            message = validation_message(e)
            detail = {"detail": e.errors(include_context=False, include_input=False, include_url=False)}
        except InputError as e:
            message = str(e)
        on_refusal(request.url.path, 400, message)
        return JSONResponse({"error": message, **detail}, status_code=400)

    ServiceAppFactory.api_endpoint = refusing_api_endpoint


def stop_server() -> None:
    """From a BentoML worker: ask the serving process (the circus arbiter, our parent) to shut down,
    so that `bentoml serve` exits instead of holding a port with no worker behind it."""
    from bentoml._internal.context import server_context

    if server_context.worker_index is None:
        return  # not a worker of `bentoml serve` (e.g. the class instantiated in a test)
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return
    if b"bentoml" in parent or b"circus" in parent or b"-m\0service\0" in parent:  # `python -m service`
        os.kill(os.getppid(), signal.SIGTERM)


def own_metrics_folder(folder: str) -> None:
    """Point this `bentoml serve` at its own Prometheus multiprocess folder. BentoML keeps one per
    BENTOML_HOME and empties it whenever a server starts, wiping every other running server's
    /metrics; `python -m service` gives each server a fresh folder instead."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    BentoMLContainer.prometheus_multiproc_dir.set(folder)
