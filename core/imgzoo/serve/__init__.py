"""``imgzoo serve``: the zoo's tasks over HTTP, with dynamic batching and a web page.

    >>> from imgzoo.serve import ServeSettings, create_app
    >>> app = create_app(["colorize"], ServeSettings(max_batch=8, max_wait_ms=5))
    >>> # any ASGI server runs it: uvicorn.run(app, host="127.0.0.1", port=8000)

Endpoints: ``GET /v1/tasks`` (the catalogue, as ``imgzoo list --json``, local weights files by
name only), ``POST /v1/tasks/{task}`` (an image in, the result out), ``GET /healthz``,
``GET /openapi.json`` and ``GET /docs`` (a local page listing the endpoints), and the web page
at ``/``. Needs the ``serve`` extra
(``pip install 'imgzoo[serve]'``: fastapi, uvicorn, python-multipart); importing this module
does not.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from dataclasses import replace
from importlib import import_module
from typing import TYPE_CHECKING

from imgzoo.errors import ArgumentError, MissingExtraError
from imgzoo.serve.settings import ServeSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServeSettings", "check_address", "create_app", "serve"]

# The distribution behind each module the server imports, as pip names it.
_REQUIRED = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}


def require_serve_extra() -> None:
    """Raise :class:`~imgzoo.errors.MissingExtraError` naming the first missing package."""
    for module, distribution in _REQUIRED.items():
        try:
            import_module(module)
        except ImportError:
            raise MissingExtraError(distribution, extra="serve", purpose="for imgzoo serve") from None


def create_app(
    tasks: Sequence[str] = (), settings: ServeSettings | None = None, *, preload: bool = True
) -> FastAPI:
    """The server's ASGI application serving ``tasks`` (every installed task when empty); see
    :class:`ServeSettings` for the knobs. ``preload`` loads the named tasks' models now."""
    require_serve_extra()
    from imgzoo.serve import app

    return app.create_app(tasks, settings, preload=preload)


def serve(
    tasks: Sequence[str] = (),
    settings: ServeSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Run the server until interrupted (uvicorn, one process). It answers requests whose
    ``Host`` is a local name, ``host`` itself, or one of ``settings.allowed_hosts``."""
    settings = settings or ServeSettings()
    check_address(host, port)
    settings = replace(settings, allowed_hosts=(*settings.allowed_hosts, host))
    application = create_app(tasks, settings)
    import uvicorn

    uvicorn.run(application, host=host, port=port, log_level="info")


def check_address(host: str, port: int) -> None:
    """Refuse an address the server could not listen on, before any model is loaded: an
    ArgumentError naming ``--host`` or ``--port`` (not a traceback, or an abort in the loop)."""
    if not 0 <= port <= 65535:
        raise ArgumentError(f"--port must be from 0 to 65535, got {port}", argument="--port")
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError, ValueError) as error:
        raise ArgumentError(
            f"--host {host!r}: cannot listen there ({error}): use an address of this machine, such as "
            "127.0.0.1",
            argument="--host",
        ) from None
    with socket.socket(family, kind, protocol) as probe:
        # As uvicorn binds: a port that a closed connection still waits on is free to it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ArgumentError(
                    f"--port {port}: cannot listen on {host}:{port}: it is in use (another server?): choose "
                    "another --port",
                    argument="--port",
                ) from None
            raise ArgumentError(
                f"--host {host!r}: cannot listen on {host}:{port} ({error.strerror}): use an address of "
                "this machine, such as 127.0.0.1",
                argument="--host",
            ) from None
