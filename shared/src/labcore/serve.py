"""Running an aiohttp service: the blocking loop with graceful SIGTERM/SIGINT, the port
check, JSON-object request bodies and the JSON error middleware, with clear errors.

aiohttp is imported where it is used: labcore does not depend on it, the services that
call these helpers do.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from labcore.errors import LabcoreError

log = logging.getLogger(__name__)

#: Seconds a stopping server gives its running handlers.
SHUTDOWN_TIMEOUT_S = 2.0


def check_port(port: Any) -> int:
    """``port`` as a TCP port number (0: any free port), or a clear error."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise LabcoreError(f"port must be an integer in [0, 65535], got {port!r}")
    return port


def run_app(
    app: Any,
    *,
    host: str,
    port: int,
    on_ready: Callable[[str], None] | None = None,
    on_stop: Callable[[], None] | None = None,
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
) -> None:
    """Serve the aiohttp application ``app`` until SIGTERM or SIGINT (blocking).

    ``on_ready`` gets the URL once the socket is bound (the real port when ``port`` is 0);
    nothing is printed (aiohttp's banner is off), so a caller's ``--json`` output stays
    one document. ``on_stop`` runs when a signal arrives, before the shutdown. Handlers
    are cancelled when their client disconnects; at shutdown running handlers get
    ``shutdown_timeout_s`` seconds.
    """
    check_port(port)
    asyncio.run(_serve_forever(app, host, port, on_ready, on_stop, shutdown_timeout_s))


async def _serve_forever(app, host, port, on_ready, on_stop, shutdown_timeout_s) -> None:
    from aiohttp import web

    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not Unix, or not main thread
            pass
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1] if runner.addresses else port
        log.info("serving on http://%s:%s", host, bound_port)
        if on_ready is not None:
            on_ready(f"http://{host}:{bound_port}")
        await stop.wait()  # until SIGTERM or SIGINT
        if on_stop is not None:
            on_stop()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.cleanup()


async def json_object(request: Any) -> dict:
    """The request's JSON body, which must be an object; a :class:`LabcoreError` (a 400 in
    the services' error middleware) otherwise. A body over the app's size limit keeps
    aiohttp's 413."""
    from aiohttp import web

    try:
        body = await request.json()
    except web.HTTPRequestEntityTooLarge:
        raise
    except ValueError as exc:
        raise LabcoreError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise LabcoreError(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def json_errors(
    *,
    statuses: Sequence[tuple[type[BaseException], int]] = (),
    on_client_error: Callable[[Any], None] | None = None,
) -> Any:
    """An aiohttp middleware that answers every error as ``{"error": message}``.

    aiohttp's HTTP errors (404, 405, 413...) keep their status; an exception of a type in
    ``statuses`` gets its status (checked in order, before the rest; an exception with a
    ``retry_after_s`` attribute adds a ``Retry-After`` header); a :class:`LabcoreError` is
    the client's mistake, 400 (``on_client_error(request)`` is called first, e.g. to count
    it); anything else is logged with its traceback and answers a bare 500.
    """
    from aiohttp import web

    @web.middleware
    async def middleware(request, handler):
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return web.json_response({"error": exc.reason}, status=exc.status)
        except Exception as exc:
            for kind, status in statuses:
                if isinstance(exc, kind):
                    retry = getattr(exc, "retry_after_s", None)
                    headers = {"Retry-After": str(retry)} if retry is not None else None
                    return web.json_response({"error": str(exc)}, status=status, headers=headers)
            if isinstance(exc, LabcoreError):
                if on_client_error is not None:
                    on_client_error(request)
                return web.json_response({"error": str(exc)}, status=400)
            log.exception("unhandled error in %s %s", request.method, request.path)
            return web.json_response({"error": "internal server error"}, status=500)

    return middleware
