"""The HTTP scoring service: same scores as the library, clear 4xx, a bounded load test."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from aiohttp.test_utils import TestClient, TestServer
from mixlm.cache import ItemCache
from mixlm.ranker import MixRanker, PromptTemplate
from mixlm.server import ScoringService, ServiceLimits, load_test, make_app

from labcore.errors import LabcoreError
from labcore.models import tiny_causal_lm


@pytest.fixture
def service(tmp_path):
    model, tok = tiny_causal_lm("llama", seed=5)
    ranker = MixRanker(model, tok, PromptTemplate(yes=" the", no=" a"))
    cache = ItemCache(tmp_path / "c.db", encoder_version="v", k=2, dim=64)
    rng = np.random.default_rng(0)
    cache.put_many((f"i{j}", "h", rng.normal(size=(2, 64))) for j in range(20))
    yield ScoringService(ranker, cache)
    cache.close()


def _run(coro):
    return asyncio.run(coro)


def test_the_service_scores_like_the_library(service):
    async def go():
        async with TestClient(TestServer(make_app(service))) as client:
            resp = await client.post("/score", json={"query": "late goal", "items": ["i3", "i7"]})
            assert resp.status == 200
            return await resp.json()

    body = _run(go())
    vectors = service.cache.get_many(["i3", "i7"])
    direct, _ = service.ranker.score("late goal", list(torch.from_numpy(vectors)))
    np.testing.assert_allclose(body["scores"], direct.numpy(), rtol=0, atol=1e-6)
    assert body["tokens_per_item_after_prefix"] == 2 + len(
        service.ranker.ids(service.ranker.template.answer)
    )


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        ({"query": "q", "items": ["nope"]}, 400, "not in the cache"),
        ({"query": "", "items": ["i1"]}, 400, "non-empty string"),
        ({"query": "q", "items": []}, 400, "non-empty list"),
        ({"query": "q", "items": [1, 2]}, 400, "non-empty list"),
        ({"query": "q", "items": ["i1"] * 6}, 400, "the limit is 5"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_bad_requests_get_a_clear_400(service, payload, status, says):
    async def go():
        app = make_app(service, ServiceLimits(max_items=5))
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/score", json=payload)
            return resp.status, await resp.json()

    got, body = _run(go())
    assert got == status and says in body["error"]


def test_an_oversized_body_is_refused(service):
    async def go():
        app = make_app(service, ServiceLimits(max_body_bytes=1000))
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/score", json={"query": "x" * 5000, "items": ["i1"]})
            return resp.status

    assert _run(go()) == 413


def test_a_bounded_load_test_reports_throughput_and_latency(service):
    async def go():
        server = TestServer(make_app(service))
        async with TestClient(server) as client:
            url = str(client.make_url("")).rstrip("/")
            reqs = [{"query": f"q{j}", "items": [f"i{k}" for k in range(8)]} for j in range(12)]
            return await load_test(url, reqs, concurrency=3, timeout_s=30)

    stats = _run(go())
    assert stats["requests"] == 12 and stats["errors"] == 0
    assert stats["items_per_s"] > 0 and 0 < stats["p50_s"] <= stats["p99_s"]
    with pytest.raises(LabcoreError):
        _run(load_test("http://127.0.0.1:9", [], concurrency=1))


def test_a_timed_out_request_never_runs_beside_the_next(service, monkeypatch):
    """A request that times out while scoring keeps its thread (threads cannot be stopped);
    the next request must wait for it, and one that times out while waiting is skipped."""
    import threading
    import time

    running, overlaps, calls = [0], [], []
    lock = threading.Lock()
    real = service.score_now

    def slow_score_now(query, item_ids):
        with lock:
            running[0] += 1
            overlaps.append(running[0])
        calls.append(query)
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return real(query, item_ids)

    monkeypatch.setattr(service, "score_now", slow_score_now)

    async def go():
        first = asyncio.ensure_future(asyncio.wait_for(service.score("first", ["i1"]), 0.1))
        while not calls:  # the first request is in the model
            await asyncio.sleep(0.01)
        second = asyncio.wait_for(service.score("second", ["i2"]), 0.1)  # waits, times out
        third = service.score("third", ["i3"])
        return await asyncio.gather(first, second, third, return_exceptions=True)

    first, second, third = _run(go())
    assert isinstance(first, TimeoutError) and isinstance(second, TimeoutError)
    assert len(third["scores"]) == 1
    assert max(overlaps) == 1  # never two model runs at once
    assert calls == ["first", "third"]  # the abandoned second never ran
