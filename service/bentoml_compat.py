"""Every place where this service reaches into BentoML's internals, in one module.

Written for BentoML 1.4 (checked by `install`, which refuses any other series): each patch below
replaces one private function whose behaviour the service cannot accept, and says why.

- Multipart uploads: BentoML treats a text value in a file field as a URL and downloads it from
  the server (an unbounded fetch made on a client's behalf), and runs `json.loads` on any other
  part, so a file sent under the wrong field name is a `UnicodeDecodeError` and a 500. Here text
  in a file field is the file's bytes, a missing file field is a 400 naming it, and parts that the
  endpoint does not take are ignored. A body that is not valid multipart (no boundary, broken
  framing, a part over Starlette's 1 MB field limit, over 1000 parts) is a 400 saying so; Starlette
  raises an HTTPException there, which BentoML answered with a 500.
- Uploads stay in memory: a `Path` input makes BentoML write every upload to a file of its own
  (`$TMPDIR/bentoml-request-*/tmp*.jpg`), and Starlette spools a file part over 1 MB to a
  temporary file; a crash, a killed worker or a full disk left faces on disk. Here a file field
  typed `Upload` (bytes) is a multipart file field as `Path` is, with the same OpenAPI form, and
  the form is parsed with every part in memory: nothing of an upload is ever written to disk.
- Refused input: BentoML answers a validation error with a 400 whose `error` says only "1
  validation error for Input" and logs a full `[ERROR]` traceback for it, and answers any other
  exception of an endpoint with a 500. Here the `error` names the field and the reason in one
  line, an `InputError` an endpoint raises is answered here with its own `status` (400, 413,
  422...), and the log gets one WARNING line. An image endpoint
  sent anything but a form (JSON, raw image bytes) is a 415 that says to send multipart (BentoML
  read it as JSON: "Invalid JSON" or "Invalid file type"), and BentoML's own 4xx refusals (e.g.
  the pickle media type) keep their status with a one-line `{"error"}` (BentoML's is a list).
- Slow clients: uvicorn times out nothing before a request head is complete, so a connection
  that sends nothing, or half a head, stays open for ever (measured: still open after 140 s).
  Here a connection gets `limits.HEAD_TIMEOUT` seconds, from its opening or its previous answer,
  to send a complete request head, else a 408 and the connection closed (`service.limits`
  holds the body to its own deadline). A request that a body deadline cut off reaches BentoML as
  a client disconnect, which it logged as an [ERROR] with a traceback: here one INFO line.
- A worker that dies (killed, out of memory) is replaced by circus only outside a container:
  BentoML turns respawning off where BENTOML_CONTAINERIZED is set (its images set it), leaving
  the server running on fewer workers, silently, or exiting with a traceback when the last one
  is gone. Here it is always replaced (`stop_server` still stops a server whose worker cannot
  load its models, so that is no restart loop).
- Connections spread over the workers: BentoML gives every worker the same listening socket,
  and the first worker to wake takes every connection waiting in it (asyncio accepts up to the
  backlog at once), so clients that keep their connections open could all land on one worker:
  counted with `ss` in five runs of 32 fresh connections, 16/16, 30/2, 32/0, 32/0, 32/0, and
  `/digit` throughput at 32 clients swung between 205 and 503 requests/s. Here each worker binds
  its own socket on the port with SO_REUSEPORT (circus's own per-process sockets), and the
  kernel spreads new connections over them. Since such sockets can share a port with another
  server, the serving process first checks that the port is free and stops with one line if not.
- Stopping the server from a worker that cannot load its models.
"""

import functools
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import bentoml

from service.limits import HEAD_TIMEOUT
from vision.errors import InputError

BENTOML_SERIES = "1.4."
logger = logging.getLogger("bentoml.vision")

# (endpoint path, HTTP status, one-line reason) -> None: counts and logs a refusal.
RefusalHook = Callable[[str, int, str], None]


class MissingUpload(InputError):
    """A multipart request without the file field the endpoint takes."""


class NotMultipart(InputError):
    """A body other than a form sent to an endpoint that takes a file."""

    status = 415


class Upload(bytes):
    """An uploaded file's bytes, held in memory: the type of an API's file field (a multipart file
    field, shown as a file upload in /docs.json, as BentoML's `Path` is), never written to disk."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(cls._validate)

    @classmethod
    def __get_pydantic_json_schema__(cls, schema, handler) -> dict:
        # What BentoML's FileSchema says of a `Path`: the OpenAPI document and BentoML's own
        # clients read "file" as a multipart file upload.
        return {"type": "file" if handler.mode == "validation" else "string", "format": "binary"}

    @classmethod
    def _validate(cls, value) -> "Upload":
        if isinstance(value, cls):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls(value)
        from pydantic_core import PydanticCustomError

        raise PydanticCustomError("upload_type", "expected an uploaded file")


def install(on_refusal: RefusalHook, head_timeout: float = HEAD_TIMEOUT) -> None:
    """Apply every patch; refuse to run on a BentoML these patches were not written for."""
    if not bentoml.__version__.startswith(BENTOML_SERIES):
        raise RuntimeError(
            f"service/bentoml_compat.py was written for BentoML {BENTOML_SERIES}x, found {bentoml.__version__}"
        )
    _multipart_uploads()
    _one_line_refusals(on_refusal)
    _request_head_timeout(head_timeout)
    _respawn_workers()
    _socket_per_worker()
    # python-multipart logs its own WARNING for every malformed body; the refusal's line says it.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)


def _multipart_uploads() -> None:
    import _bentoml_sdk.io_models
    from _bentoml_impl.serde import MultipartSerde
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException

    is_file_type = _bentoml_sdk.io_models.is_file_type
    if not getattr(is_file_type, "knows_upload", False):  # an API's `Upload` field is a file field

        def file_or_upload(type_) -> bool:
            return is_file_type(type_) or (isinstance(type_, type) and issubclass(type_, Upload))

        file_or_upload.knows_upload = True
        _bentoml_sdk.io_models.is_file_type = file_or_upload

    async def parse_request(self, request, cls):
        try:
            form = await form_in_memory(request)
        except (HTTPException, MultiPartException) as e:
            raise InputError(f"malformed multipart body: {getattr(e, 'detail', None) or e}") from None
        data = {}
        for name in cls.multipart_fields:  # the file fields: `image` here
            values = form.getlist(name)
            if not values:
                sent = ", ".join(repr(k) for k in form) or "no fields"
                raise MissingUpload(
                    f"no file in the multipart field {name!r} (the request has {sent}); send -F {name}=@FILE"
                )
            data[name] = await as_upload(values[0])  # the first file of that name; others are ignored
        for name in cls.model_fields:
            if name in cls.multipart_fields or name not in form:
                continue
            value = form[name]
            if isinstance(value, UploadFile):
                value = await value.read()
            try:
                data[name] = json.loads(value)
            except (ValueError, UnicodeDecodeError):  # JSONDecodeError, or a number of over 4300 digits
                data[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return cls.model_validate(data)

    async def as_upload(value) -> Upload:
        if isinstance(value, UploadFile):
            return Upload(await value.read())
        return Upload(value.encode("utf-8") if isinstance(value, str) else value)

    MultipartSerde.parse_request = parse_request


async def form_in_memory(request):
    """The request's form (Starlette's FormData), every file part in memory: Starlette's own parser
    spools a file part over 1 MB to a temporary file on disk. The body is bounded already
    (`limits.BodyLimit`: VISION_MAX_UPLOAD_BYTES and a little framing), so memory is too."""
    from contextlib import aclosing

    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        return await request.form()  # url-encoded: text fields only, never a file
    async with aclosing(request.stream()) as stream:
        return await _in_memory_parser()(request.headers, stream).parse()


@functools.cache
def _in_memory_parser():
    from starlette.formparsers import MultiPartParser

    class InMemoryParts(MultiPartParser):
        spool_max_size = 0  # SpooledTemporaryFile(max_size=0) never rolls over to a file

    return InMemoryParts


def validation_message(error) -> str:
    """A pydantic ValidationError -> "field: reason; field: reason" in one line."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())


def _one_line_refusals(on_refusal: RefusalHook) -> None:
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse, Response

    api_endpoint = ServiceAppFactory.api_endpoint
    forms = ("multipart/form-data", "application/x-www-form-urlencoded")  # what BentoML parses as a form

    async def refusing_api_endpoint(self, name, request):
        detail, status = {}, 400
        try:
            files = self.service.apis[name].input_spec.multipart_fields
            media_type = request.headers.get("content-type", "").split(";")[0].strip()
            if files and media_type not in forms:
                raise NotMultipart(
                    f"{request.url.path} takes a multipart/form-data upload with the file in the field "
                    f"{files[0]!r}, not {media_type or 'a body without a Content-Type'}; send -F {files[0]}=@FILE"
                )
            return await api_endpoint(self, name, request)
        except ClientDisconnect:  # gone, or cut off by a deadline (service.limits, which said so)
            logger.info("%s: the client went away before its request was read", request.url.path)
            return Response(status_code=400)
        except ValidationError as e:
            message = validation_message(e)
            detail = {"detail": e.errors(include_context=False, include_input=False, include_url=False)}
        except InputError as e:  # the request's own checks here, or the endpoint's
            message, status = str(e), e.status
        except (HTTPException, BentoMLException) as e:  # a refusal of Starlette's or BentoML's own
            status = e.status_code if isinstance(e, HTTPException) else e.error_code.value
            if status >= 500:
                raise
            message = str(getattr(e, "detail", None) or e).strip().splitlines()[0]
        on_refusal(request.url.path, status, message)
        return JSONResponse({"error": message, **detail}, status_code=status)

    ServiceAppFactory.api_endpoint = refusing_api_endpoint


def _request_head_timeout(seconds: float) -> None:
    """Close a connection that has not sent a complete request head within `seconds` of its
    opening or of its previous answer, with a 408. uvicorn's own keep-alive timeout (5 s) closes
    idle connections only after an answer, and only until their next byte arrives. Both of
    uvicorn's HTTP protocols are patched: httptools (a dependency, so the one it uses) and h11
    (its pure-Python fallback)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    payload = json.dumps({"error": f"no complete request head within {seconds:g} s"}).encode()
    reply = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(payload), payload)
    )

    def h11_waits_for_head(protocol) -> bool:
        return protocol.conn.their_state is h11.IDLE  # IDLE until a whole request head is parsed

    def httptools_waits_for_head(protocol) -> bool:
        serving = protocol.cycle is not None and not protocol.cycle.response_complete
        return not serving and not protocol.pipeline and protocol._vision_heads == protocol._vision_heads_armed

    def arm(protocol) -> None:
        timer = getattr(protocol, "_vision_head_timer", None)
        if timer is not None:
            timer.cancel()
        protocol._vision_heads_armed = protocol._vision_heads
        protocol._vision_head_timer = protocol.loop.call_later(seconds, expire, protocol)

    def expire(protocol) -> None:
        if protocol.transport.is_closing() or not protocol._vision_waits_for_head():
            return
        peer = f"{protocol.client[0]}:{protocol.client[1]}" if protocol.client else "a client"
        logger.warning("closed the connection of %s: no complete request head within %g s (408)", peer, seconds)
        protocol.transport.write(reply)
        protocol.transport.close()

    def patch(protocol_class, waits_for_head) -> None:
        connection_made = protocol_class.connection_made
        on_response_complete = protocol_class.on_response_complete
        connection_lost = protocol_class.connection_lost

        def patched_connection_made(self, transport) -> None:
            connection_made(self, transport)
            arm(self)

        def patched_on_response_complete(self) -> None:
            on_response_complete(self)
            if not self.transport.is_closing():
                arm(self)

        def patched_connection_lost(self, exc) -> None:
            timer = getattr(self, "_vision_head_timer", None)
            if timer is not None:
                timer.cancel()
            connection_lost(self, exc)

        protocol_class.connection_made = patched_connection_made
        protocol_class.on_response_complete = patched_on_response_complete
        protocol_class.connection_lost = patched_connection_lost
        protocol_class._vision_waits_for_head = waits_for_head

    on_headers_complete = HttpToolsProtocol.on_headers_complete

    def counted_on_headers_complete(self) -> None:  # httptools says nothing else about a head
        self._vision_heads += 1
        on_headers_complete(self)

    HttpToolsProtocol.on_headers_complete = counted_on_headers_complete
    H11Protocol._vision_heads = HttpToolsProtocol._vision_heads = 0  # request heads seen on a connection
    patch(H11Protocol, h11_waits_for_head)
    patch(HttpToolsProtocol, httptools_waits_for_head)


def _respawn_workers() -> None:
    """Circus watchers that respawn their processes, in a container too."""
    import bentoml.serving

    create_watcher = bentoml.serving.create_watcher
    if getattr(create_watcher, "respawns", False):
        return

    def respawning_watcher(*args, **kwargs):
        watcher = create_watcher(*args, **kwargs)
        watcher.respawn = True
        return watcher

    respawning_watcher.respawns = True
    bentoml.serving.create_watcher = respawning_watcher


API_SERVER_SOCKET = "_bento_api_server"  # the name BentoML gives its HTTP socket


def _socket_per_worker() -> None:
    """Each worker binds its own SO_REUSEPORT socket on the API port (see the module docstring).
    Patched on the class's __init__: BentoML imported the class before the service was loaded."""
    import socket

    from circus.sockets import CircusSocket

    if getattr(CircusSocket, "per_worker", False) or not hasattr(socket, "SO_REUSEPORT"):
        return
    original_init = CircusSocket.__init__

    def init(self, name="", host="localhost", port=8080, family=socket.AF_INET, *args, **kwargs):
        api = name == API_SERVER_SOCKET and kwargs.get("path") is None
        if api and not kwargs.get("so_reuseport"):  # the serving process's socket, not a worker's own
            port_is_free(host, int(port), family)
            kwargs["so_reuseport"] = True
        original_init(self, name, host, port, family, *args, **kwargs)
        if api and self.so_reuseport and not hasattr(self, "_cfg"):
            # What circus reads to make each worker's own socket (`CircusSocket.load_from_config`).
            family_name = "AF_INET6" if family == socket.AF_INET6 else "AF_INET"
            self._cfg = {"name": name, "host": host, "port": port, "family": family_name}
            self._cfg.update(backlog=self.backlog, so_reuseport=True)

    CircusSocket.__init__ = init
    CircusSocket.per_worker = True
    _reuseport_sockets_named_in_args()


def _reuseport_sockets_named_in_args() -> None:
    """circus makes a process its own SO_REUSEPORT socket only where the watcher's `cmd` names the
    socket; BentoML names it in the `args` (`--fd $(circus.sockets._bento_api_server)`)."""
    from circus.process import Process
    from circus.sockets import CircusSocket

    def sockets_fds(self):
        fds = None
        watcher = self.watcher
        if watcher is not None and watcher.sockets is not None:
            fds = watcher._get_sockets_fds()
            args = watcher.args or []
            command = " ".join([watcher.cmd, args] if isinstance(args, str) else [watcher.cmd, *args])
            for name, sock in watcher.sockets.items():
                if sock.so_reuseport and f"circus.sockets.{name}" in command:
                    own = CircusSocket.load_from_config(sock._cfg)
                    own.bind_and_listen()
                    fds[name] = own.fileno()
                    self._sockets.append(own)  # circus closes these after the fork
        return fds

    Process._get_sockets_fds = sockets_fds


def port_is_free(host: str, port: int, family: int) -> None:
    """Bind the port once without SO_REUSEPORT: another server on it must stop this one, not share."""
    import socket

    if port == 0:
        return
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as e:
        raise SystemExit(f"vision: cannot start: {host}:{port} is in use ({e.strerror})") from None
    finally:
        probe.close()


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
