"""The batching core with a fake clock, the HTTP app and a small local load test.

No test depends on wall-clock time: the batcher's clock and sleep are a fake clock that only
the test advances (HTTP tests use ``window_s=0``, which never sleeps).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from batchroute.loadtest import local_load_test, toy_score_fn
from batchroute.server import Batcher, BatchError, Routed, Unavailable, make_app, serve

from labcore.errors import LabcoreError


class FakeClock:
    """``clock()`` returns ``now``; ``sleep(s)`` returns once ``advance`` passes its deadline."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleepers: list[tuple[float, asyncio.Future]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.now + seconds, fut))
        await fut

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for deadline, fut in self.sleepers:
            if deadline <= self.now and not fut.done():
                fut.set_result(None)
        self.sleepers = [(d, f) for d, f in self.sleepers if not f.done()]


async def settle(rounds: int = 50) -> None:
    """Let every ready task run (no wall-clock waiting)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def flat_score(quality=(0.5, 0.9), cost=(1.0, 5.0)):
    def score(queries):
        n = len(queries)
        return np.tile(quality, (n, 1)), np.tile(cost, (n, 1))

    return score


def make_batcher(clock: FakeClock | None = None, **kw) -> Batcher:
    options = {
        "models": ["small", "large"],
        "score_fn": flat_score(),
        "capacity": {"small": 100, "large": 100},
        "budget_per_query": None,
        "window_s": 0.05,
        "max_batch": 64,
    }
    options.update(kw)
    if clock is not None:
        options.update(clock=clock, sleep=clock.sleep)
    return Batcher(**options)


def submit_all(batcher: Batcher, n: int) -> list[asyncio.Task]:
    return [asyncio.ensure_future(batcher.submit({"query": f"q{i}"})) for i in range(n)]


# ------------------------------------------------------------------------------ batching


def test_submits_within_the_window_form_one_batch():
    async def main():
        clock = FakeClock()
        async with make_batcher(clock) as b:
            tasks = submit_all(b, 3)
            await settle()
            assert not any(t.done() for t in tasks)
            clock.advance(0.04)  # still inside the window
            await settle()
            assert not any(t.done() for t in tasks)
            assert b.stats()["pending"] == 3
            clock.advance(0.02)  # past window_s
            routed = await asyncio.gather(*tasks)
            stats = b.stats()
        return routed, stats

    routed, stats = asyncio.run(main())
    assert all(isinstance(r, Routed) for r in routed)
    assert {r.batch_id for r in routed} == {1}
    assert [r.batch_size for r in routed] == [3, 3, 3]
    assert all(r.queued_s == pytest.approx(0.06) for r in routed)
    assert all(r.model == "large" and not r.fallback for r in routed)  # no budget: best model
    assert len({r.ticket for r in routed}) == 3
    assert stats["batches_solved"] == 1
    assert stats["queries_routed"] == 3
    assert stats["mean_batch_size"] == 3
    assert stats["in_flight"] == {"small": 0, "large": 3}
    assert stats["mean_solve_time_s"] >= 0


def test_max_batch_dispatches_without_the_clock():
    async def main():
        clock = FakeClock()
        async with make_batcher(clock, max_batch=4) as b:
            tasks = submit_all(b, 5)
            first = await asyncio.gather(*tasks[:4])  # the clock never moves
            await settle()
            assert not tasks[4].done()  # the fifth waits for its own window
            clock.advance(0.05)
            fifth = await tasks[4]
        return first, fifth

    first, fifth = asyncio.run(main())
    assert {r.batch_id for r in first} == {1}
    assert all(r.batch_size == 4 and r.queued_s == 0.0 for r in first)
    assert fifth.batch_id == 2 and fifth.batch_size == 1
    assert fifth.queued_s == pytest.approx(0.05)


def test_budget_is_per_query_times_batch_size():
    async def main():
        clock = FakeClock()
        async with make_batcher(clock, budget_per_query=3.0, max_batch=4) as b:
            return await asyncio.gather(*submit_all(b, 4))

    routed = asyncio.run(main())
    # Budget 12 for 4 queries costing 1 (small) or 5 (large): at most 2 go large.
    assert Counter(r.model for r in routed) == {"small": 2, "large": 2}
    assert not any(r.fallback for r in routed)


def test_capacity_is_never_exceeded_and_queued_queries_wait_for_complete():
    async def main():
        clock = FakeClock()
        async with make_batcher(clock, capacity={"small": 2, "large": 1}) as b:
            tasks = submit_all(b, 5)
            await settle()
            clock.advance(0.05)
            first = await asyncio.gather(*tasks[:3])  # the three oldest fit
            await settle()
            assert not tasks[3].done() and not tasks[4].done()
            s = b.stats()
            assert s["in_flight"] == {"small": 2, "large": 1}
            assert s["pending"] == 2 and s["queries_routed"] == 3
            assert Counter(r.model for r in first) == {"small": 2, "large": 1}

            large = next(r for r in first if r.model == "large")
            b.complete(large.ticket)  # one slot frees: one more query, no clock needed
            fourth = await tasks[3]
            await settle()
            assert not tasks[4].done()
            assert fourth.model == "large" and fourth.batch_id == 2 and fourth.batch_size == 1
            assert fourth.queued_s == pytest.approx(0.05)
            assert b.stats()["in_flight"] == {"small": 2, "large": 1}

            small = next(r for r in first if r.model == "small")
            b.complete(small.ticket)
            fifth = await tasks[4]
            assert fifth.model == "small"
            s = b.stats()
            assert s["in_flight"] == {"small": 2, "large": 1}
            assert s["pending"] == 0 and s["batches_solved"] == 3 and s["completed"] == 2

    asyncio.run(main())


def test_random_submits_and_completes_respect_capacity():
    capacity = {"a": 3, "b": 1, "c": 2}
    rng = np.random.default_rng(7)

    def score(queries):
        n = len(queries)
        return rng.random((n, 3)), rng.random((n, 3)) * [1, 2, 3]

    async def main():
        clock = FakeClock()
        b = Batcher(
            models=list(capacity),
            score_fn=score,
            capacity=capacity,
            budget_per_query=1.0,
            window_s=0.0,
            max_batch=4,
            clock=clock,
            sleep=clock.sleep,
        )
        async with b:
            tasks = submit_all(b, 40)
            done_tickets: set[str] = set()
            while len(done_tickets) < 40:
                s = b.stats()
                for m, k in capacity.items():
                    assert s["in_flight"][m] <= k
                finished = [t.result() for t in tasks if t.done()]
                open_ = [r for r in finished if r.ticket not in done_tickets]
                if not open_:  # capacity is free, so the dispatcher must route something
                    waiting = [t for t in tasks if not t.done()]
                    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    continue
                for r in open_[: int(rng.integers(1, len(open_) + 1))]:
                    b.complete(r.ticket)
                    done_tickets.add(r.ticket)
                await settle()
            return b.stats()

    stats = asyncio.run(main())
    assert stats["queries_routed"] == 40 and stats["completed"] == 40
    assert stats["in_flight"] == {"a": 0, "b": 0, "c": 0}


def test_complete_twice_or_unknown_ticket_is_an_error():
    async def main():
        clock = FakeClock()
        async with make_batcher(clock, window_s=0.0) as b:
            r = await b.submit({"query": "x"})
            b.complete(r.ticket)
            with pytest.raises(LabcoreError, match="already completed"):
                b.complete(r.ticket)
            with pytest.raises(LabcoreError, match="unknown"):
                b.complete("no-such-ticket")
            with pytest.raises(LabcoreError, match="string"):
                b.complete(3)
            assert b.stats()["in_flight"] == {"small": 0, "large": 0}

    asyncio.run(main())


def test_infeasible_budget_falls_back_to_the_cheapest_models_within_capacity():
    async def main():
        clock = FakeClock()
        b = make_batcher(
            clock, capacity={"small": 2, "large": 3}, budget_per_query=0.5, max_batch=4
        )
        async with b:
            routed = await asyncio.gather(*submit_all(b, 4))
            return routed, b.stats()

    routed, stats = asyncio.run(main())
    assert all(r.fallback for r in routed)
    # Budget 2 < 4 × cheapest cost: the cheapest routing within capacity is 2 small + 2 large.
    assert Counter(r.model for r in routed) == {"small": 2, "large": 2}
    assert stats["fallback_batches"] == 1 and stats["fallback_queries"] == 4
    assert stats["in_flight"]["small"] <= 2 and stats["in_flight"]["large"] <= 3


def test_a_failing_score_fn_fails_its_batch_only():
    calls = []

    def score(queries):
        calls.append(len(queries))
        if len(calls) == 1:
            return np.zeros((len(queries), 3)), np.zeros((len(queries), 3))  # wrong shape
        return flat_score()(queries)

    async def main():
        clock = FakeClock()
        async with make_batcher(clock, score_fn=score, window_s=0.0) as b:
            with pytest.raises(BatchError, match="shape"):
                await b.submit({"query": "a"})
            r = await b.submit({"query": "b"})
            return r, b.stats()

    r, stats = asyncio.run(main())
    assert r.model == "large"
    assert stats["failed_batches"] == 1 and stats["queries_routed"] == 1


def test_cancelled_submit_leaves_the_queue_and_close_fails_the_rest():
    async def main():
        clock = FakeClock()
        b = make_batcher(clock)
        tasks = submit_all(b, 2)
        await settle()
        tasks[0].cancel()
        await settle()
        assert b.stats()["pending"] == 1
        await b.close()
        with pytest.raises(LabcoreError, match="closed"):
            await tasks[1]
        with pytest.raises(LabcoreError, match="closed"):
            await b.submit({"query": "late"})

    asyncio.run(main())


# ---------------------------------------------------------------------------- faults


def test_a_query_waits_at_most_max_wait_s_then_fails_unavailable():
    async def main():
        clock = FakeClock()
        b = make_batcher(clock, capacity={"small": 1, "large": 1}, window_s=0.0, max_wait_s=5.0)
        async with b:
            tasks = submit_all(b, 3)
            await asyncio.gather(*tasks[:2])
            await settle()
            assert not tasks[2].done()  # two slots, three queries
            clock.advance(4.9)
            await settle()
            assert not tasks[2].done()
            clock.advance(0.1)
            await settle()
            with pytest.raises(Unavailable, match="max_wait_s = 5 s") as err:
                await tasks[2]
            assert err.value.retry_after_s >= 1
            s = b.stats()
            assert s["timed_out"] == 1 and s["pending"] == 0 and s["queries_routed"] == 2
            # the slots are still held by the first two; freeing one routes a new query
            b.complete(tasks[0].result().ticket)
            again = await b.submit({"query": "again"})
            assert again.model == tasks[0].result().model

    asyncio.run(main())


def test_an_unreleased_lease_expires_and_its_slot_routes_the_next_query():
    async def main():
        clock = FakeClock()
        b = make_batcher(
            clock, capacity={"small": 1, "large": 0}, window_s=0.0, lease_s=60.0, max_wait_s=None
        )
        async with b:
            lost = await b.submit({"query": "client crashes after this"})
            waiting = asyncio.ensure_future(b.submit({"query": "next"}))
            clock.advance(59.0)
            await settle()
            assert not waiting.done() and b.stats()["in_flight"] == {"small": 1, "large": 0}
            clock.advance(1.0)
            routed = await waiting  # the lease ran out: its slot went to the waiting query
            s = b.stats()
            assert s["expired"] == 1 and s["in_flight"] == {"small": 1, "large": 0}
            with pytest.raises(LabcoreError, match="expired"):
                b.complete(lost.ticket)
            b.complete(routed.ticket)
            assert b.stats()["in_flight"] == {"small": 0, "large": 0}

    asyncio.run(main())


def test_http_fault_more_requests_than_slots_abandoned_clients_and_shutdown():
    """Every slot comes back and no request waits past its timeout (real sockets, real clock:
    the timeouts are short, and the guards are generous so a loaded machine only slows it)."""
    import aiohttp

    async def stats(client):
        return await (await client.get("/stats")).json()

    async def until(client, predicate, what):
        for _ in range(400):
            s = await stats(client)
            if predicate(s):
                return s
            await asyncio.sleep(0.05)
        raise AssertionError(f"never reached: {what}; stats {s}")

    async def main():
        batcher = make_batcher(
            capacity={"small": 2, "large": 1}, window_s=0.0, max_wait_s=0.5, lease_s=600.0
        )
        server = TestServer(make_app(batcher))
        async with TestClient(server) as client:
            held = [
                await (await client.post("/route", json={"query": f"q{i}"})).json()
                for i in range(3)
            ]
            assert sorted(h["model"] for h in held) == ["large", "small", "small"]

            # two clients wait for a slot, then give up (their connections close)
            async def abandoned(i):
                async with aiohttp.ClientSession() as own:
                    await own.post(server.make_url("/route"), json={"query": f"gone{i}"})

            quitters = [asyncio.ensure_future(abandoned(i)) for i in range(2)]
            await until(client, lambda s: s["pending"] == 2, "two waiting")
            for t in quitters:
                t.cancel()
            await asyncio.gather(*quitters, return_exceptions=True)
            await until(client, lambda s: s["pending"] == 0, "the quitters leave the queue")

            # a patient client gets a 503 with Retry-After once max_wait_s has passed
            resp = await asyncio.wait_for(client.post("/route", json={"query": "late"}), 30)
            body = await resp.json()
            assert resp.status == 503 and "max_wait_s" in body["error"]
            assert int(resp.headers["Retry-After"]) >= 1

            for h in held:
                assert (await client.post("/complete", json={"ticket": h["ticket"]})).status == 200
            s = await stats(client)
            assert s["in_flight"] == {"small": 0, "large": 0}  # every slot came back
            assert s["timed_out"] == 1 and s["pending"] == 0

            # the quitters never took a slot: three new queries get all three
            again = [
                await (await client.post("/route", json={"query": f"r{i}"})).json()
                for i in range(3)
            ]
            assert sorted(h["model"] for h in again) == ["large", "small", "small"]

            # shutdown with a query waiting: it is answered (503) or cut, never left hanging
            waiting = asyncio.ensure_future(client.post("/route", json={"query": "at shutdown"}))
            await until(client, lambda s: s["pending"] == 1, "one waiting at shutdown")
            await batcher.close()  # what the app's on_shutdown does
            resp = await asyncio.wait_for(waiting, 30)
            assert resp.status == 503 and "closed" in (await resp.json())["error"]

    asyncio.run(main())


def test_sigterm_stops_the_server_gracefully(tmp_path):
    """SIGTERM: the waiting query answers 503, ``serve`` returns, the process exits 0."""
    import json
    import signal
    import subprocess
    import sys
    import threading
    import urllib.error
    import urllib.request

    script = tmp_path / "serve.py"
    script.write_text(
        "import numpy as np\n"
        "from batchroute.server import Batcher, serve\n"
        "def score(qs):\n"
        "    return np.ones((len(qs), 1)), np.ones((len(qs), 1))\n"
        "b = Batcher(models=['m'], score_fn=score, capacity=[1], budget_per_query=None,\n"
        "            window_s=0.0, max_wait_s=600.0)\n"
        "serve(port=0, batcher=b, on_ready=lambda url: print(url, flush=True))\n"
        "print('returned', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()

        def post(path, body):
            req = urllib.request.Request(
                url + path,
                data=json.dumps(body).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        assert post("/route", {"query": "holds the only slot"})[0] == 200
        answer = {}
        waiter = threading.Thread(target=lambda: answer.update(r=post("/route", {"query": "w"})))
        waiter.start()
        for _ in range(400):  # until the second query waits
            with urllib.request.urlopen(url + "/stats", timeout=60) as resp:
                if json.loads(resp.read())["pending"] == 1:
                    break
            threading.Event().wait(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        waiter.join(60)
        assert proc.returncode == 0, err
        assert "returned" in out
        status, body = answer["r"]
        assert status == 503 and "closed" in body["error"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"max_wait_s": 0}, "max_wait_s"),
        ({"lease_s": -1.0}, "lease_s"),
        ({"lease_s": float("inf")}, "lease_s"),
        ({"capacity": {"small": 1}}, "missing"),
        ({"capacity": {"small": 1, "large": 1, "huge": 1}}, "unknown models"),
        ({"capacity": [1]}, "1 entries for 2 models"),
        ({"capacity": [1, -1]}, "non-negative integer"),
        ({"capacity": [1.5, 1]}, "non-negative integer"),
        ({"capacity": [0, 0]}, "capacity 0"),
        ({"budget_per_query": -1.0}, "budget_per_query"),
        ({"window_s": -0.1}, "window_s"),
        ({"max_batch": 0}, "max_batch"),
        ({"method": "magic"}, "unknown method"),
        ({"models": ["a", "a"]}, "duplicate"),
        ({"score_fn": 3}, "callable"),
    ],
)
def test_bad_options_are_rejected(kw, match):
    with pytest.raises(LabcoreError, match=match):
        make_batcher(**kw)


def test_submit_needs_a_dict():
    async def main():
        async with make_batcher(FakeClock()) as b:
            with pytest.raises(LabcoreError, match="dict"):
                await b.submit("just text")

    asyncio.run(main())


# ---------------------------------------------------------------------------------- HTTP


def test_http_app():
    async def main():
        batcher = make_batcher(capacity={"small": 1, "large": 1}, window_s=0.0)
        async with TestClient(TestServer(make_app(batcher))) as client:
            out = {}
            resp = await client.get("/health")
            out["health"] = (resp.status, await resp.json())

            resp = await client.post("/route", json={"query": "hello", "id": "q1", "lang": "en"})
            out["route"] = (resp.status, await resp.json())
            resp = await client.post("/route", json={"query": "no id"})
            out["route_no_id"] = (resp.status, await resp.json())

            resp = await client.get("/stats")
            out["stats"] = (resp.status, await resp.json())

            ticket = out["route"][1]["ticket"]
            resp = await client.post("/complete", json={"ticket": ticket})
            out["complete"] = (resp.status, await resp.json())
            resp = await client.post("/complete", json={"ticket": ticket})
            out["complete_again"] = (resp.status, await resp.json())

            bad = {
                "bad_json": client.post(
                    "/route", data="{not json", headers={"Content-Type": "application/json"}
                ),
                "not_object": client.post("/route", json=["query"]),
                "missing_query": client.post("/route", json={"id": "x"}),
                "query_not_str": client.post("/route", json={"query": 42}),
                "id_not_str": client.post("/route", json={"query": "q", "id": 7}),
                "quality_wrong_models": client.post(
                    "/route", json={"query": "q", "quality": {"m": "x"}}
                ),
                "quality_above_one": client.post(
                    "/route", json={"query": "q", "quality": {"small": 7.5, "large": 0.5}}
                ),
                "cost_negative": client.post(
                    "/route", json={"query": "q", "cost": {"small": -1, "large": 1}}
                ),
                "missing_ticket": client.post("/complete", json={}),
                "unknown_ticket": client.post("/complete", json={"ticket": "nope"}),
                "wrong_method": client.get("/route"),
                "no_route": client.get("/nowhere"),
            }
            for name, request in bad.items():
                resp = await request
                out[name] = (resp.status, await resp.json())
            return out

    out = asyncio.run(main())
    assert out["health"] == (200, {"ok": True})
    status, body = out["route"]
    assert status == 200
    assert set(body) >= {"id", "ticket", "model", "batch_id", "batch_size", "queued_s"}
    assert body["id"] == "q1" and body["model"] == "large" and body["batch_size"] == 1
    assert body["fallback"] is False
    status, body = out["route_no_id"]
    assert status == 200 and isinstance(body["id"], str) and body["id"]
    assert body["model"] == "small"  # "large" is full
    status, stats = out["stats"]
    assert status == 200
    assert stats["queries_routed"] == 2 and stats["in_flight"] == {"small": 1, "large": 1}
    assert out["complete"] == (200, {"ok": True})
    assert (
        out["complete_again"][0] == 400 and "already completed" in out["complete_again"][1]["error"]
    )
    for name, match in [
        ("bad_json", "not valid JSON"),
        ("not_object", "JSON object"),
        ("missing_query", "missing field 'query'"),
        ("query_not_str", "'query' must be a string"),
        ("id_not_str", "'id' must be a string"),
        ("quality_wrong_models", "must map each of the models ['small', 'large']"),
        ("quality_above_one", "'small' is 7.5; it must be a probability in [0, 1]"),
        ("cost_negative", "'small' is -1; it must be a finite number >= 0"),
        ("missing_ticket", "missing field 'ticket'"),
        ("unknown_ticket", "unknown"),
    ]:
        status, body = out[name]
        assert status == 400, name
        assert match in body["error"], (name, body)
    assert out["wrong_method"][0] == 405 and "error" in out["wrong_method"][1]
    assert out["no_route"][0] == 404 and "error" in out["no_route"][1]


def test_http_failed_batch_is_a_500():
    def broken(queries):
        raise RuntimeError("predictor down")

    async def main():
        batcher = make_batcher(score_fn=broken, window_s=0.0)
        async with TestClient(TestServer(make_app(batcher))) as client:
            resp = await client.post("/route", json={"query": "q"})
            return resp.status, await resp.json()

    status, body = asyncio.run(main())
    assert status == 500 and "predictor down" in body["error"]


def test_serve_checks_the_port():
    with pytest.raises(LabcoreError, match="port"):
        serve(port=70000, batcher=make_batcher())


def test_serve_reports_the_bound_port_and_prints_nothing(capsys):
    import socket

    seen = {}

    class Stop(Exception):
        pass

    def ready(url):
        seen["url"] = url
        host, port = url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10):
            pass  # something listens there
        raise Stop  # end the blocking server from inside

    with pytest.raises(Stop):
        serve(port=0, batcher=make_batcher(window_s=0.0), on_ready=ready)
    host, port = seen["url"].removeprefix("http://").rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0  # the bound port, not 0
    assert capsys.readouterr().out == ""  # no aiohttp banner on stdout (--json stays one document)


def test_a_batcher_can_serve_successive_event_loops():
    b = make_batcher(window_s=0.0)

    async def once(q):
        return await b.submit({"query": q})

    first = asyncio.run(once("a"))
    second = asyncio.run(once("b"))  # the first loop's dispatcher is gone with its loop
    assert (first.batch_id, second.batch_id) == (1, 2)


# ----------------------------------------------------------------------------- load test


def test_toy_score_fn_is_deterministic_per_query():
    qs = [{"query": "a b"}, {"query": "c"}, {"query": "a b"}]
    q1, c1 = toy_score_fn(qs)
    q2, c2 = toy_score_fn(qs)
    np.testing.assert_array_equal(c1, c2)
    assert q1.shape == c1.shape == (3, 3)
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(q1[0], q1[2])
    assert (np.diff(c1, axis=1) > 0).all()  # larger models cost more


def test_local_load_test_small():
    result = local_load_test(n_requests=200, concurrency=16, timeout_s=120.0)
    assert result["succeeded"] == 200 and result["errors"] == 0
    assert sum(result["per_model"].values()) == 200
    assert set(result["per_model"]) <= {"small", "medium", "large"}
    assert result["latency_p99_ms"] >= result["latency_p95_ms"] >= result["latency_p50_ms"] > 0
    assert result["requests_per_s"] > 0
    stats = result["server_stats"]
    assert stats["queries_routed"] == 200 and stats["completed"] == 200
    assert all(v == 0 for v in stats["in_flight"].values())
    assert result["url"].startswith("http://127.0.0.1:")


def test_load_test_options_are_checked():
    with pytest.raises(LabcoreError, match="concurrency"):
        local_load_test(n_requests=10, concurrency=0)
    with pytest.raises(LabcoreError, match="timeout_s"):
        local_load_test(n_requests=10, timeout_s=0)
