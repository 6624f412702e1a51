"""Load test of the batching router: many concurrent clients against ``/route``.

:func:`run_load_test` drives a running server; :func:`local_load_test` starts one on
loopback (an ephemeral port) with a toy scorer, drives it and shuts it down.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import Counter

import aiohttp
import numpy as np
from aiohttp import web

from batchroute.server import Batcher, make_app
from labcore.errors import LabcoreError

__all__ = ["local_load_test", "local_load_test_async", "run_load_test", "toy_score_fn"]

TOY_MODELS = ("small", "medium", "large")
_WORDS = (
    "route", "cost", "model", "query", "budget", "latency", "token", "answer", "prove", "sum",
    "list", "sort", "graph", "cache", "prime", "string", "parse", "tree", "matrix", "vector",
)  # fmt: skip


def toy_score_fn(queries: list[dict], *, n_models: int = len(TOY_MODELS)):
    """Deterministic random quality and cost for each query, seeded by a hash of its text.

    Larger (later) models are better on average and cost more: quality ≈ skill_m minus the
    query's difficulty, cost = tokens × price_m with prices 1, 4, 16, … per 1000 tokens.

    Returns
    -------
    (quality, cost) : arrays of shape (len(queries), n_models)
    """
    skill = np.linspace(0.35, 0.9, n_models)
    price = 4.0 ** np.arange(n_models) / 1000.0
    quality = np.empty((len(queries), n_models))
    cost = np.empty((len(queries), n_models))
    for i, q in enumerate(queries):
        digest = hashlib.blake2b(str(q.get("query", "")).encode(), digest_size=8).digest()
        rng = np.random.default_rng(int.from_bytes(digest, "little"))
        difficulty = rng.random()
        quality[i] = np.clip(skill - 0.5 * difficulty + rng.normal(0, 0.05, n_models), 0, 1)
        cost[i] = rng.integers(50, 500) * price
    return quality, cost


def _percentile_ms(latencies: list[float], q: float) -> float:
    return float(np.percentile(latencies, q) * 1000.0) if latencies else math.nan


async def run_load_test(
    url: str,
    *,
    n_requests: int = 2000,
    concurrency: int = 64,
    service_time_s: float = 0.0,
    seed: int = 0,
    request_timeout_s: float = 60.0,
) -> dict:
    """Send ``n_requests`` queries to ``url`` + ``/route`` with bounded concurrency.

    Each client slot posts ``/route``, waits ``service_time_s`` (the simulated generation on
    the chosen model), then posts ``/complete`` with its ticket; at most ``concurrency``
    queries are in this cycle at once.

    Parameters
    ----------
    url : str
        Base URL of the server, e.g. ``"http://127.0.0.1:8080"``.
    n_requests, concurrency : int
        Total queries and maximum in flight.
    service_time_s : float
        Simulated generation time between routing and completion.
    seed : int
        Seed of the random query texts.
    request_timeout_s : float
        Limit on each HTTP request.

    Returns
    -------
    dict
        ``n_requests``, ``succeeded``, ``errors`` (failed route or complete calls),
        ``error_samples`` (up to 5 messages), ``elapsed_s``, ``requests_per_s`` (routed
        queries per second of the whole run), ``latency_p50_ms`` / ``p95`` / ``p99`` /
        ``mean`` / ``max`` of ``/route``, ``per_model`` (routed count per model),
        ``fallbacks`` and ``server_stats`` (``GET /stats`` at the end, None if it failed).
    """
    for name, value in (("n_requests", n_requests), ("concurrency", concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LabcoreError(f"{name} must be a positive integer, got {value!r}")
    if not (math.isfinite(service_time_s) and service_time_s >= 0):
        raise LabcoreError(f"service_time_s must be a non-negative number, got {service_time_s}")
    if not (request_timeout_s > 0):
        raise LabcoreError(f"request_timeout_s must be positive, got {request_timeout_s}")
    base = url.rstrip("/")
    rng = np.random.default_rng(seed)
    queries = [
        {"id": str(i), "query": " ".join(rng.choice(_WORDS, size=int(rng.integers(3, 12))))}
        for i in range(n_requests)
    ]
    latencies: list[float] = []
    per_model: Counter[str] = Counter()
    errors: list[str] = []
    fallbacks = 0
    sem = asyncio.Semaphore(concurrency)

    async def one(session: aiohttp.ClientSession, query: dict) -> None:
        nonlocal fallbacks
        async with sem:
            try:
                t0 = time.perf_counter()
                async with session.post(f"{base}/route", json=query) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status != 200:
                        errors.append(f"/route {resp.status}: {body.get('error', body)}")
                        return
                latencies.append(time.perf_counter() - t0)
                per_model[body["model"]] += 1
                fallbacks += bool(body.get("fallback"))
                if service_time_s > 0:
                    await asyncio.sleep(service_time_s)
                async with session.post(
                    f"{base}/complete", json={"ticket": body["ticket"]}
                ) as resp:
                    if resp.status != 200:
                        errors.append(f"/complete {resp.status}: {await resp.text()}")
            except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=request_timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        await asyncio.gather(*(one(session, q) for q in queries))
        elapsed = time.perf_counter() - started
        server_stats = None
        try:
            async with session.get(f"{base}/stats") as resp:
                if resp.status == 200:
                    server_stats = await resp.json()
        except (TimeoutError, aiohttp.ClientError, ValueError):
            pass
    succeeded = len(latencies)
    return {
        "n_requests": n_requests,
        "concurrency": concurrency,
        "succeeded": succeeded,
        "errors": len(errors),
        "error_samples": errors[:5],
        "elapsed_s": elapsed,
        "requests_per_s": succeeded / elapsed if elapsed > 0 else math.inf,
        "latency_p50_ms": _percentile_ms(latencies, 50),
        "latency_p95_ms": _percentile_ms(latencies, 95),
        "latency_p99_ms": _percentile_ms(latencies, 99),
        "latency_mean_ms": float(np.mean(latencies) * 1000) if latencies else math.nan,
        "latency_max_ms": float(np.max(latencies) * 1000) if latencies else math.nan,
        "per_model": dict(per_model),
        "fallbacks": fallbacks,
        "server_stats": server_stats,
    }


async def local_load_test_async(
    *,
    n_requests: int = 200,
    concurrency: int = 16,
    service_time_s: float = 0.0,
    seed: int = 0,
    capacity: dict[str, int] | None = None,
    budget_per_query: float | None = 1.0,
    window_s: float = 0.005,
    max_batch: int = 64,
    method: str = "fast",
    timeout_s: float = 120.0,
) -> dict:
    """:func:`local_load_test` inside a running event loop (same parameters)."""
    if not (timeout_s > 0):
        raise LabcoreError(f"timeout_s must be positive, got {timeout_s}")
    batcher = Batcher(
        models=list(TOY_MODELS),
        score_fn=toy_score_fn,
        capacity=capacity if capacity is not None else {"small": 32, "medium": 16, "large": 8},
        budget_per_query=budget_per_query,
        window_s=window_s,
        max_batch=max_batch,
        method=method,
    )
    runner = web.AppRunner(make_app(batcher), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            result = await asyncio.wait_for(
                run_load_test(
                    f"http://{host}:{port}",
                    n_requests=n_requests,
                    concurrency=concurrency,
                    service_time_s=service_time_s,
                    seed=seed,
                    request_timeout_s=timeout_s,
                ),
                timeout_s,
            )
        except TimeoutError:
            raise LabcoreError(
                f"the local load test did not finish within timeout_s={timeout_s:g} s"
            ) from None
        result["url"] = f"http://{host}:{port}"
        return result
    finally:
        await runner.cleanup()


def local_load_test(**kw) -> dict:
    """Start a router on 127.0.0.1 (ephemeral port) with :func:`toy_score_fn`, load it, stop.

    Parameters
    ----------
    n_requests, concurrency, service_time_s, seed
        As in :func:`run_load_test` (defaults 200, 16, 0, 0).
    capacity : dict, optional
        Per-model slots of the toy models ``small``, ``medium``, ``large`` (default 32, 16,
        8).
    budget_per_query : float or None
        Default 1.0 (binding: the toy ``medium`` model costs about 1.1 per query).
    window_s, max_batch, method
        Batcher options (defaults 0.005 s, 64, ``"fast"``).
    timeout_s : float
        Bound on the whole run (default 120 s); past it the run is cancelled, the server is
        shut down and LabcoreError is raised.

    Returns
    -------
    dict
        :func:`run_load_test`'s result plus the ``url`` that was served.

    Notes
    -----
    Runs its own event loop (``asyncio.run``); inside a running loop, await
    :func:`local_load_test_async` instead.
    """
    return asyncio.run(local_load_test_async(**kw))
