"""The HTTP application: routes, request reading, limits and errors as JSON.

A request whose ``Host`` the server does not answer to is a 400 before anything else (a guard
against DNS rebinding). A request takes its place in the queue first (a full queue is a 503
before anything is read), then its content type, body size and arrival (``--body-timeout``) are
checked; in a thread of the server's pool its options are checked (those its task allows a
request, against the weights' config), then its image headers (``--max-pixels``), then it holds
its estimated memory (``--max-memory-gb``), then it is decoded and checked (the task's rules for
its named inputs), queued on its model's worker (see
:mod:`imgzoo.serve.batching`), and its result encoded in the pool again, so that the event loop
only reads and writes and the model's thread only runs models.

A task's warnings about a picture come back in ``X-Imgzoo-Warning`` headers of the answer, one
per warning. Errors are ``{"error": message}``: a 4xx with the message for what the request got wrong, a
generic 500 for the server's own failures, whose details go to the log (they may name local files).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from importlib import resources
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from imgzoo import catalogue, plugins
from imgzoo.errors import (
    ArgumentError,
    ConfigError,
    InputError,
    InvalidImageError,
    MemoryBudgetError,
    RequestError,
    TilingError,
    UnknownTaskError,
    WeightsError,
    ZooError,
)
from imgzoo.hardware import memory_available
from imgzoo.images import InputForm, OutputSpec, declared_size, encode_pixels, finished_output
from imgzoo.model_cache import cached_pipeline, ensure_capacity
from imgzoo.options import PIPELINE_OPTIONS, split_options
from imgzoo.serve.batching import Batcher, Job, ModelWorker, Reservation
from imgzoo.serve.settings import LOCAL_HOSTS, MIN_BODY_RATE, ServeSettings
from imgzoo.task import TaskConfig

__all__ = ["OUTPUT_FORMATS", "WARNING_HEADER", "choose_format", "create_app", "encode_result", "status_for"]

OUTPUT_FORMATS = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "npy": "application/x-npy",
}
"""Result formats by ``?format=`` name, with the media type they are sent as (and asked for in ``Accept``)."""

WARNING_HEADER = "X-Imgzoo-Warning"
"""The response header that carries each of the task's warnings about the picture."""

_FORMAT_ALIASES = {"jpg": "jpeg"}
_AS_BYTES = OutputSpec((InputForm("encoded"),), as_list=False)
_LOG = logging.getLogger("imgzoo.serve")
_RAW_IMAGE_TYPES = ("image/", "application/octet-stream")
_STATIC_FILES = {
    "app.js": "text/javascript",
    "style.css": "text/css",
}


def create_app(
    tasks: Sequence[str] = (), settings: ServeSettings | None = None, *, preload: bool = True
) -> FastAPI:
    """The server's ASGI application, serving ``tasks`` (every installed task when empty).

    ``preload``: load each named task's model now, so that a task that cannot load fails here
    rather than at its first request.
    """
    settings = settings or ServeSettings()
    settings.check()
    if settings.max_memory_bytes is None:
        settings = replace(settings, max_memory_bytes=memory_available() // 2)
    served = _served_tasks(tasks)
    batcher = Batcher(
        max_batch=settings.max_batch,
        max_wait=settings.max_wait_ms / 1000,
        queue=settings.queue,
        max_models=settings.max_models,
        memory_budget=settings.max_memory_bytes,
    )
    ensure_capacity(settings.max_models)  # the shared cache holds every model the server may serve
    if preload:
        for name in tasks:
            _worker(batcher, settings, name, {}).wait_loaded()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()

    # FastAPI's own /docs and /redoc pages load their scripts from a CDN: a local page instead.
    app = FastAPI(
        title="imgzoo",
        summary="Image-to-image models over HTTP",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.settings = settings
    app.add_middleware(_HostCheck, allowed=(*LOCAL_HOSTS, *settings.allowed_hosts))
    _add_error_handlers(app)

    @app.get("/healthz", summary="Liveness: the server answers and which tasks it serves")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "tasks": served}

    @app.get(
        "/v1/tasks",
        summary="The served tasks, as `imgzoo list --json` describes them (local weights files by name only)",
    )
    def list_served() -> list[dict[str, Any]]:
        return [_without_local_paths(entry) for entry in catalogue.describe_tasks(served)]

    @app.post(
        "/v1/tasks/{task}",
        summary="Run a task on one image",
        description=(
            "The image is the raw request body (Content-Type image/*), or the part `image` of a "
            "multipart/form-data body whose other file parts are the task's named inputs. Task options "
            "(the config fields the task lets a request set) are query parameters or form fields. The "
            "result is PNG by default; "
            "`?format=` or `Accept` choose jpeg, webp or npy (a float map is npy only). The task's "
            "warnings about the picture come in `X-Imgzoo-Warning` headers, one per warning."
        ),
        response_class=Response,
        responses={
            200: {"content": {media: {} for media in OUTPUT_FORMATS.values()}},
            400: {"description": 'a bad image, input or option: `{"error": ...}`'},
            404: {"description": "no such task"},
            406: {"description": "the result cannot be sent in the asked format"},
            408: {"description": "the body arrived too slowly (see `--body-timeout`)"},
            413: {
                "description": "the request, an image in it, or the memory it would need is more than "
                "the server takes"
            },
            415: {"description": "the body is neither an image nor multipart/form-data"},
            500: {"description": 'the server failed: `{"error": "internal error"}`, details in its log'},
            503: {"description": "the queue is full: retry after `Retry-After` seconds"},
            504: {"description": "the result was not ready within the server's timeout"},
        },
    )
    async def run_task(task: str, request: Request) -> Response:
        started = time.monotonic()
        if task not in served:
            raise UnknownTaskError(task, served)
        # The first use of a task imports its plugin's module (torch, its model code): not in the loop.
        task_class = await run_in_threadpool(plugins.get_task_class, task)
        query = dict(request.query_params)
        fmt = choose_format(query.pop("format", None), request.headers.get("accept"), task_class.output_kind)
        reservation = batcher.reserve()
        memory: Reservation | None = None
        try:
            job, worker, memory = await _read_job(request, task, query, settings, batcher, started)
            job.future.add_done_callback(memory.release)
            batcher.submit(worker, job, reservation)
        except BaseException:
            reservation.release()
            if memory is not None:
                memory.release()
            raise
        left = settings.timeout - (time.monotonic() - started)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(job.future), timeout=max(left, 0.001))
        except asyncio.TimeoutError:
            raise RequestError(
                f"task {task!r}: no result within the server's timeout of {settings.timeout:g} s (the server "
                "is overloaded, or the image is too large for it): retry later, or send a smaller image",
                status=504,
                task=task,
            ) from None
        # What run() returns for the same image sent as bytes: 8-bit pixels, or a float map.
        sent = finished_output([result.output], _AS_BYTES, task_class.output_kind)
        content = await run_in_threadpool(encode_result, sent, fmt)
        response = Response(content, media_type=OUTPUT_FORMATS[fmt])
        for message in result.warnings:
            response.headers.append(WARNING_HEADER, _header_text(message))
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_asset("index.html"))

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs_page() -> HTMLResponse:
        return HTMLResponse(_asset("docs.html"))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(_asset("favicon.svg"), media_type="image/svg+xml")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC_FILES:
            raise HTTPException(404, f"no static file {name!r}")
        return Response(_asset(name), media_type=_STATIC_FILES[name])

    return app


def _served_tasks(tasks: Sequence[str]) -> list[str]:
    for name in tasks:
        plugins.get_task_class(name)  # an unknown name fails now, with close names suggested
    return sorted(set(tasks)) if tasks else catalogue.list_tasks()


def _without_local_paths(entry: dict[str, Any]) -> dict[str, Any]:
    """A catalogue entry with each weights file that lies outside its registry's folder (an
    absolute path, one from the home folder or through "..") named by its file name alone: where
    the server keeps its files is no client's business. Package resources and URLs stay."""
    weights = {}
    for name, record in entry["weights"].items():
        file = record.get("file")
        if file and _outside_registry_folder(file):
            record = {**record, "file": PureWindowsPath(file).name}  # either separator
        weights[name] = record
    return {**entry, "weights": weights}


def _outside_registry_folder(file: str) -> bool:
    posix = PurePosixPath(file.replace("\\", "/"))
    return (
        posix.is_absolute()
        or file.startswith("~")
        or ".." in posix.parts
        or PureWindowsPath(file).is_absolute()
    )


def _worker(batcher: Batcher, settings: ServeSettings, task: str, options: Mapping[str, Any]) -> ModelWorker:
    """The worker running ``task`` with ``options``, loading its pipeline when new (from the
    cache that ``imgzoo.run`` in the same process shares)."""

    def load() -> Any:
        try:
            return cached_pipeline(
                task,
                weights=settings.weights.get(task),
                device=settings.device,
                precision=settings.precision,
                backend=settings.backend,
                options=dict(options),
            )
        except WeightsError as error:
            if not set(options) - PIPELINE_OPTIONS:
                raise  # the server's own weights: a 500, its details in the log
            # The options build a model the weights do not fit (another width, say). The message
            # leaves out the weights' path, which is the server's business.
            raise RequestError(
                f"task {task!r}: the server's weights do not fit a model with the options "
                f"{_described(options)} (they change the model's shape): leave those options out, or "
                "use the values the weights were trained with (`imgzoo info TASK` lists them)",
                status=400,
                task=task,
            ) from error

    key = json.dumps([task, dict(options)], sort_keys=True)
    return batcher.worker(key, load)


def _header_text(message: str) -> str:
    """A warning as one header value: one line of printable ASCII (HTTP headers carry latin-1 at
    best, and no line breaks)."""
    flat = " ".join(message.split())
    return flat.encode("ascii", "replace").decode("ascii")


# ── requests ──────────────────────────────────────────────────────────────────────────────
async def _read_job(
    request: Request,
    task: str,
    query: Mapping[str, str],
    settings: ServeSettings,
    batcher: Batcher,
    started: float,
) -> tuple[Job, ModelWorker, Reservation]:
    """The request's job, read and checked, the worker that runs it (started when new) and the
    memory it holds."""
    image, inputs, fields = await _read_request(
        request, settings.max_request_bytes, task, settings.body_timeout
    )
    options = {**_parse_options(query), **_parse_options(fields)}
    return await run_in_threadpool(_prepare_job, task, image, inputs, options, settings, batcher, started)


async def _read_request(
    request: Request, limit: int, task: str, body_timeout: float = ServeSettings.body_timeout
) -> tuple[bytes, dict[str, bytes], dict[str, str]]:
    """The image, the named inputs' files and the form's other fields of a request."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not media.startswith(_RAW_IMAGE_TYPES) and media != "multipart/form-data":
        raise RequestError(
            f"task {task!r}: cannot read a body of type {media or '(none)'!r}: send the image as the body "
            "with Content-Type image/png (or image/jpeg, ...), or as the part 'image' of a "
            "multipart/form-data body",
            status=415,
            task=task,
        )
    body = await _read_body(request, limit, task, body_timeout)
    if media != "multipart/form-data":
        return body, {}, {}
    replayed = Request(request.scope, receive=_replay(body))
    async with replayed.form() as form:
        files: dict[str, bytes] = {}
        fields: dict[str, str] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[name] = await value.read()
            else:
                fields[name] = value
    if "image" not in files:
        hint = " (it is a text field: send a file)" if "image" in fields else ""
        raise InputError(
            f"task {task!r}: the form has no file part 'image'{hint}: send the picture as the part 'image'",
            task=task,
            input="image",
        )
    image = files.pop("image")
    return image, files, fields


async def _read_body(request: Request, limit: int, task: str, body_timeout: float) -> bytes:
    """The body, refused with a 413 as soon as it is known to exceed ``limit`` bytes, and with
    a 408 when it has not all arrived within ``body_timeout`` seconds plus one for each
    :data:`MIN_BODY_RATE` bytes it declares (so that a slow client frees its queue place)."""
    too_large = RequestError(
        f"task {task!r}: the request is larger than the server's limit of {limit} bytes: send a smaller "
        "image (or start the server with a larger --max-request-mb)",
        status=413,
        task=task,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    allowed = body_timeout + (int(declared) if declared.isdigit() else 0) / MIN_BODY_RATE

    async def collect() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), timeout=allowed)
    except asyncio.TimeoutError:
        raise RequestError(
            f"task {task!r}: the request body did not arrive within {allowed:g} s (the server's "
            f"--body-timeout, plus 1 s per MiB): send it at once, over a faster connection",
            status=408,
            task=task,
        ) from None


def _replay(body: bytes) -> Any:
    """An ASGI ``receive`` that hands over ``body`` again, for parsing a body already read."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _parse_options(raw: Mapping[str, str]) -> dict[str, Any]:
    """Option values as the command line's ``--set`` reads them: JSON when it parses, else text."""
    from imgzoo.config import parse_assignments

    return parse_assignments([f"{name}={value}" for name, value in raw.items()], task="")


def _prepare_job(
    task: str,
    image: bytes,
    inputs: Mapping[str, bytes],
    options: Mapping[str, Any],
    settings: ServeSettings,
    batcher: Batcher,
    started: float,
) -> tuple[Job, ModelWorker, Reservation]:
    """Check the options (those the task allows a request, as ``imgzoo.run`` does, against the
    config the served weights were trained with; ``tile`` as ``imgzoo.load`` takes it), then the
    images' sizes from their headers; hold the memory the request is estimated to need (with
    its model loaded, which knows its bytes per pixel), then decode the image and its named
    inputs. Returns the job, its model's worker and the memory held."""
    from imgzoo.config import build_config
    from imgzoo.images import decode_image
    from imgzoo.inputs import read_inputs
    from imgzoo.pipeline import Request as PipelineRequest
    from imgzoo.tiling import resolve_tiling

    task_class = plugins.get_task_class(task)
    named, settings_given = split_options(task_class, options, from_request=True)
    for name in sorted(named):
        raise InputError(
            f"task {task!r}: input {name!r} came as a text field: send it as a file part {name!r}",
            task=task,
            input=name,
        )
    fields = {name: value for name, value in settings_given.items() if name not in PIPELINE_OPTIONS}
    # Only options need the weights' config (read from their file's header) to be checked against.
    trained = _trained_config(task, settings.weights.get(task)) if options else None
    config = build_config(task_class.Config, task=task, weights_config=trained, overrides=fields)
    # Keyed by the values the config holds, so that "true" and "1" share one model.
    settled = {name: getattr(config, name) for name in fields}
    if "tile" in options:
        assert isinstance(config, TaskConfig)
        tiling = resolve_tiling(task_class(config), options["tile"])
        settled["tile"] = tiling.tile if tiling is not None else 0
    size = _check_pixels(image, settings.max_pixels, task, "image")
    for name, data in inputs.items():
        _check_pixels(data, settings.max_pixels, task, name)
    worker = _worker(batcher, settings, task, settled)
    pipeline = worker.wait_loaded(timeout=max(settings.timeout - (time.monotonic() - started), 0))
    needed = pipeline.memory_needed([size], batch_size=1)
    try:
        memory = batcher.hold_memory(needed, wait=settings.timeout - (time.monotonic() - started))
    except MemoryBudgetError as error:
        raise RequestError(f"task {task!r}: {error}", status=413, task=task) from None
    try:
        decoded = decode_image(image, source=f"the image sent to {task!r}")
        extras = read_inputs(task_class, [decoded], inputs)
    except BaseException:
        memory.release()
        raise
    request = PipelineRequest(decoded, {name: values[0] for name, values in extras.items()})
    return Job(request, memory=needed), worker, memory


def _trained_config(task: str, weights: str | None) -> dict[str, Any] | None:
    """The config the served weights were trained with: a registered name's (the default's when
    None), or a file's on this machine (a local path, a downloaded URL or Hub file), read from its header."""
    from imgzoo.weights import local_weights_file, read_metadata

    if weights is not None and weights not in catalogue.task_info(task).weights:
        path = local_weights_file(weights, sha256=None)
        if path is None:
            return None  # not downloaded yet: loading it says what it holds
        config = read_metadata(path).get("config")
        return config if isinstance(config, dict) else None
    return catalogue.weights_config(task, weights)


def _check_pixels(data: bytes, limit: int, task: str, name: str) -> tuple[int, int]:
    """The (height, width) an image's header declares, refused when it is more than ``limit``
    pixels, before decoding it (a square of ``limit`` pixels when the header does not say)."""
    size = declared_size(data, source=f"the {name} sent to {task!r}")
    if size is None:
        side = math.isqrt(limit)
        return side, side
    if size[0] * size[1] > limit:
        height, width = size
        raise RequestError(
            f"task {task!r}: the {name} is {width}x{height} = {width * height} pixels, over the server's "
            f"limit of {limit}: send a smaller image (or start the server with a larger --max-pixels)",
            status=413,
            task=task,
        )
    return size


def _described(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in sorted(options.items()))


def choose_format(asked: str | None, accept: str | None, output_kind: str) -> str:
    """The result's format: ``?format=`` if given, else the first of ``Accept`` that can hold the
    task's output (PNG for an image, npy for a float map when any will do)."""
    fitting = ["npy"] if output_kind == "map" else list(OUTPUT_FORMATS)
    default = fitting[0] if output_kind == "map" else "png"
    if asked is not None:
        name = _FORMAT_ALIASES.get(asked.lower(), asked.lower())
        if name not in OUTPUT_FORMATS:
            raise RequestError(
                f"unknown format {asked!r}: use one of {', '.join(OUTPUT_FORMATS)}", status=400
            )
        if name not in fitting:
            raise RequestError(
                f"the result is a float map, which {name} cannot hold without rounding or clipping it: "
                "ask for format=npy",
                status=406,
            )
        return name
    if not accept:
        return default
    by_media = {media: name for name, media in OUTPUT_FORMATS.items() if name in fitting}
    for media in _accepted_media(accept):
        if media == "*/*" or (media == "image/*" and output_kind == "image"):
            return default
        if media in by_media:
            return by_media[media]
    raise RequestError(
        f"cannot send the result as {accept!r}: accepted types are {', '.join(by_media.values())}",
        status=406,
    )


def _accepted_media(accept: str) -> list[str]:
    """The media types of an ``Accept`` header, most wanted first (q=0 left out)."""
    ranked = []
    for position, item in enumerate(accept.split(",")):
        media, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media and quality > 0:
            ranked.append((-quality, position, media.lower()))
    return [media for _, _, media in sorted(ranked)]


def encode_result(result: np.ndarray, fmt: str) -> bytes:
    """A finished result (uint8 HxWxC picture, or float32 map) in format ``fmt``."""
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(result), allow_pickle=False)
        return buffer.getvalue()
    pixels = result if result.ndim == 3 else result[..., None]
    if fmt == "jpeg" and pixels.shape[2] == 4:
        pixels = pixels[..., :3]  # JPEG has no alpha
    return encode_pixels(pixels, f".{fmt}")


def _asset(name: str) -> bytes:
    return (resources.files("imgzoo.serve") / "static" / name).read_bytes()


# ── hosts ─────────────────────────────────────────────────────────────────────────────────
class _HostCheck:
    """ASGI middleware answering 400 to a request whose ``Host`` is none of ``allowed`` (a
    name, ``*.domain`` for its subdomains, or ``*``): a page on another site that has its name
    resolve to this server's address (DNS rebinding) is refused."""

    def __init__(self, app: Any, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = [name.lower().strip("[]") for name in allowed]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            name = _host_name(header)
            if not any(_host_matches(name, pattern) for pattern in self.allowed):
                response = _error_response(
                    400,
                    f"this server does not answer to the host {header!r}: use localhost, or start it with "
                    "--allowed-hosts naming the host",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8000`` is ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def _host_matches(name: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return name.endswith(pattern[1:])
    return name == pattern


# ── errors ────────────────────────────────────────────────────────────────────────────────
def status_for(error: ZooError) -> int:
    """The HTTP status of an error: 4xx for what the request got wrong, 500 for the rest."""
    if isinstance(error, RequestError):
        return error.status
    if isinstance(error, UnknownTaskError):
        return 404
    if isinstance(error, MemoryBudgetError):
        return 413
    if isinstance(error, (InvalidImageError, InputError, ConfigError, TilingError, ArgumentError)):
        return 400
    return 500


def _error_response(status: int, message: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ZooError)
    async def zoo_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ZooError)
        status = status_for(error)
        if status >= 500 and not isinstance(error, RequestError):
            return _internal_error(request, error)
        return _error_response(status, str(error), getattr(error, "retry_after", None))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        return _error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: Exception) -> JSONResponse:
        return _error_response(422, str(error))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        return _internal_error(request, error)


def _internal_error(request: Request, error: Exception) -> JSONResponse:
    """A generic 500: the details (which may name the server's files) go to the log only."""
    _LOG.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return _error_response(500, "internal error")
