"""The scoring service: POST a query and cached item ids, get one score per item.

Routes
------
``POST /score``
    Body ``{"query": str, "items": [item id, ...]}``. The item vectors come from the
    :class:`~mixlm.cache.ItemCache`; the query prefix is computed once and shared by all
    items (:meth:`MixRanker.score`). Answers ``{"scores": [...], "items": n,
    "prefix_tokens": p, "tokens_per_item_after_prefix": t, "elapsed_s": s}``: the
    query prefix is prefilled once (p tokens), then each item costs t (k + the answer).
``GET /health``
    ``{"ok": true}``.
``GET /stats``
    Requests served, items scored, model seconds.

Limits: a body over ``max_body_bytes``, bad JSON, a missing or mistyped field, more than
``max_items`` items, a query over ``max_query_chars`` characters or an item id not in the
cache answer 400 (413 for the body) with ``{"error": "..."}``; a request whose scoring does
not finish within ``timeout_s`` answers 503. One request is scored at a time (one model);
others wait their turn within their timeout. Listens on loopback by default: no
authentication or TLS.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from aiohttp import web

from labcore.checks import finite_float, positive_int
from labcore.errors import LabcoreError
from labcore.serve import json_errors, json_object, run_app
from mixlm.ranker import MixRanker

log = logging.getLogger(__name__)


@dataclass
class ServiceLimits:
    max_items: int = 512
    max_query_chars: int = 4000
    max_body_bytes: int = 1 << 20
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        positive_int("max_items", self.max_items)
        positive_int("max_query_chars", self.max_query_chars)
        positive_int("max_body_bytes", self.max_body_bytes)
        finite_float("timeout_s", self.timeout_s, minimum=0.0, strict=True)


@dataclass
class _Stats:
    requests: int = 0
    items: int = 0
    model_s: float = 0.0
    rejected: int = 0
    timeouts: int = 0


class ItemSource(Protocol):
    """Where the service gets each item's vectors: an :class:`~mixlm.cache.ItemCache` (k
    item vectors), or any store of ``dim``-sized vectors per item (``slm`` serves the
    ranker's token embeddings of compressed item text). A missing id raises LabcoreError."""

    dim: int

    def item_vectors(self, item_ids: list[str]) -> list[torch.Tensor]: ...


class ScoringService:
    """The model side of the service (no HTTP): scores the items of a query, with the query
    prefix computed once (:meth:`MixRanker.score`)."""

    def __init__(self, ranker: MixRanker, cache: ItemSource, *, batch_size: int = 32) -> None:
        if cache.dim != ranker.hidden_size:
            raise LabcoreError(
                f"the cache holds vectors of size {cache.dim}, the ranker's hidden size is "
                f"{ranker.hidden_size}"
            )
        self.ranker, self.cache, self.batch_size = ranker, cache, int(batch_size)
        # A thread lock, taken in the worker thread: a request that timed out cannot stop
        # its thread, so an asyncio lock released on cancellation would let the next
        # request run the model (and the shared SQLite connection) beside it.
        self._lock = threading.Lock()
        self.stats = _Stats()

    def score_now(self, query: str, item_ids: list[str]) -> dict[str, Any]:
        t0 = time.perf_counter()
        vectors = self.cache.item_vectors(item_ids)
        scores, prefill = self.ranker.score(query, vectors, batch_size=self.batch_size)
        return {
            "scores": [float(s) for s in scores],
            "items": len(item_ids),
            "prefix_tokens": prefill.prefix_tokens,
            "tokens_per_item_after_prefix": prefill.tokens_per_item,
            "elapsed_s": time.perf_counter() - t0,
        }

    def _score_in_turn(self, query, item_ids, abandoned: threading.Event):
        with self._lock:  # one model: requests take turns
            if abandoned.is_set():  # timed out or disconnected while waiting: skip the work
                return None
            return self.score_now(query, item_ids)

    async def score(self, query: str, item_ids: list[str]) -> dict[str, Any]:
        abandoned = threading.Event()
        try:
            result = await asyncio.to_thread(self._score_in_turn, query, item_ids, abandoned)
        except asyncio.CancelledError:
            abandoned.set()
            raise
        self.stats.requests += 1
        self.stats.items += len(item_ids)
        self.stats.model_s += result["elapsed_s"]
        return result


SERVICE = web.AppKey("service", ScoringService)
LIMITS = web.AppKey("limits", ServiceLimits)


async def _score(request: web.Request) -> web.Response:
    limits = request.app[LIMITS]
    body = await json_object(request)
    query, items = body.get("query"), body.get("items")
    if not isinstance(query, str) or not query.strip():
        raise LabcoreError("field 'query' must be a non-empty string")
    if len(query) > limits.max_query_chars:
        raise LabcoreError(f"field 'query' is over {limits.max_query_chars} characters")
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise LabcoreError("field 'items' must be a non-empty list of item ids (strings)")
    if len(items) > limits.max_items:
        raise LabcoreError(f"{len(items)} items in one request; the limit is {limits.max_items}")
    service = request.app[SERVICE]
    try:
        result = await asyncio.wait_for(service.score(query, items), limits.timeout_s)
    except TimeoutError:
        service.stats.timeouts += 1
        return web.json_response(
            {"error": f"scoring took longer than {limits.timeout_s} s"},
            status=503,
            headers={"Retry-After": "1"},
        )
    return web.json_response(result)


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _stats(request: web.Request) -> web.Response:
    s = request.app[SERVICE].stats
    return web.json_response(
        {
            "requests": s.requests,
            "items": s.items,
            "model_s": s.model_s,
            "rejected": s.rejected,
            "timeouts": s.timeouts,
        }
    )


def make_app(service: ScoringService, limits: ServiceLimits | None = None) -> web.Application:
    limits = limits or ServiceLimits()

    def count_rejected(request: web.Request) -> None:
        request.app[SERVICE].stats.rejected += 1

    app = web.Application(
        middlewares=[json_errors(on_client_error=count_rejected)],
        client_max_size=limits.max_body_bytes,
    )
    app[SERVICE] = service
    app[LIMITS] = limits
    app.router.add_post("/score", _score)
    app.router.add_get("/health", _health)
    app.router.add_get("/stats", _stats)
    return app


def serve(
    service: ScoringService,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    limits: ServiceLimits | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the service until SIGTERM or SIGINT (blocking)."""
    run_app(make_app(service, limits), host=host, port=port, on_ready=on_ready)


async def load_test(
    url: str,
    requests: list[dict],
    *,
    concurrency: int = 4,
    timeout_s: float = 60.0,
) -> dict[str, float]:
    """Send the requests (``{"query", "items"}``) with ``concurrency`` in flight; items/s,
    requests/s, p50 and p99 latency. Bounded: each request has ``timeout_s``."""
    import aiohttp
    import numpy as np

    if not requests:
        raise LabcoreError("no requests for the load test")
    latencies: list[float] = []
    done_items = 0
    errors = 0
    queue = list(reversed(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, done_items
        while queue:
            body = queue.pop()
            t0 = time.perf_counter()
            try:
                async with session.post(f"{url}/score", json=body) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                        continue
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)
            done_items += len(body["items"])

    timeout = aiohttp.ClientTimeout(total=timeout_s)
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(max(1, concurrency))))
    wall = time.perf_counter() - t0
    lat = np.asarray(latencies) if latencies else np.asarray([float("nan")])
    return {
        "requests": float(len(latencies)),
        "errors": float(errors),
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "items_per_s": done_items / wall,
        "p50_s": float(np.percentile(lat, 50)),
        "p99_s": float(np.percentile(lat, 99)),
    }


async def load_test_service(
    service: ScoringService,
    requests: list[dict],
    *,
    concurrency: int = 4,
    timeout_s: float = 600.0,
    limits: ServiceLimits | None = None,
) -> dict[str, float]:
    """:func:`load_test` against ``service`` served on a loopback port of its own (started
    and stopped here): the benchmarks' service rows."""
    from aiohttp.test_utils import TestServer

    server = TestServer(make_app(service, limits))
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        return await load_test(url, requests, concurrency=concurrency, timeout_s=timeout_s)
    finally:
        await server.close()
