"""labcore.serve: the port check, JSON-object bodies, and a served app that answers and
stops on SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import urllib.request

import pytest

from labcore.errors import LabcoreError
from labcore.serve import check_port, json_object, run_app

web = pytest.importorskip("aiohttp.web")


@pytest.mark.parametrize("port", [-1, 65536, 1.5, "80", True])
def test_bad_ports_are_clear_errors(port):
    with pytest.raises(LabcoreError, match="port must be an integer"):
        check_port(port)


def _app():
    async def echo(request):
        try:
            return web.json_response(await json_object(request))
        except LabcoreError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    app = web.Application(client_max_size=64)
    app.router.add_post("/echo", echo)
    return app


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b'{"a": 1}', 200, '"a"'),
        (b"[1, 2]", 400, "must be a JSON object, got list"),
        (b"{nope", 400, "not valid JSON"),
        (b'{"a": "' + b"x" * 100 + b'"}', 413, ""),
    ],
)
def test_json_object_bodies(body, status, text):
    from aiohttp.test_utils import TestClient, TestServer

    async def go():
        async with TestClient(TestServer(_app())) as client:
            resp = await client.post("/echo", data=body)
            return resp.status, await resp.text()

    got_status, got_text = asyncio.run(go())
    assert got_status == status
    assert text in got_text


def test_run_app_serves_until_sigint():
    urls, stopped = [], threading.Event()

    def ask_and_stop(url):
        urls.append(url)

        def client():
            req = urllib.request.Request(f"{url}/echo", data=b'{"x": 2}', method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                urls.append(resp.read().decode())
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=client, daemon=True).start()

    run_app(_app(), host="127.0.0.1", port=0, on_ready=ask_and_stop, on_stop=stopped.set)
    assert urls[0].startswith("http://127.0.0.1:") and not urls[0].endswith(":0")
    assert '"x": 2' in urls[1]
    assert stopped.is_set()


class _Busy(LabcoreError):
    retry_after_s = 3


@pytest.mark.parametrize(
    ("raise_", "status", "text", "retry"),
    [
        (LabcoreError("bad field 'x'"), 400, "bad field 'x'", None),
        (_Busy("try later"), 503, "try later", "3"),
        (KeyError("secret"), 500, "internal server error", None),
    ],
)
def test_json_errors_maps_exceptions_to_statuses(raise_, status, text, retry):
    from aiohttp.test_utils import TestClient, TestServer

    from labcore.serve import json_errors

    seen = []

    async def fail(request):
        raise raise_

    app = web.Application(
        middlewares=[json_errors(statuses=((_Busy, 503),), on_client_error=seen.append)]
    )
    app.router.add_get("/fail", fail)

    async def go():
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/fail")
            missing = await client.get("/nowhere")
            return resp.status, await resp.json(), resp.headers.get("Retry-After"), missing

    got, body, got_retry, missing = asyncio.run(go())
    assert (got, got_retry) == (status, retry)
    assert text in body["error"] and "secret" not in body["error"]
    assert missing.status == 404
    assert len(seen) == (1 if status == 400 else 0)
