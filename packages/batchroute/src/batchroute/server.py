"""A batching HTTP router: collect queries for a short window, route each batch as one problem.

Requests arriving within ``window_s`` of each other (or until ``max_batch`` are waiting) are
routed together: their predicted quality and cost come from a plug-in ``score_fn``, and the
batch is solved as one :class:`~batchroute.problem.RoutingProblem` with

* budget = ``budget_per_query`` × batch size, and
* capacity = each model's free slots (its capacity minus its in-flight tickets).

A routed query holds one slot of its model (an *in-flight ticket*) until the client reports
it done with :meth:`Batcher.complete`. When fewer slots are free than queries are waiting,
the oldest queries that fit are routed now and the others wait for the next batch, which is
dispatched as soon as ``complete`` releases capacity. No model ever holds more in-flight
tickets than its capacity.

Faults: nothing waits forever and no slot leaks.

* A query waits at most ``max_wait_s`` to be routed; then it fails with :class:`Unavailable`
  (HTTP 503 with ``Retry-After``).
* A ticket is a lease: a slot not released by ``complete`` within ``lease_s`` is reclaimed
  (``stats()["expired"]``), so a client that crashes after routing cannot hold it for good.
* A caller that gives up (its task is cancelled, e.g. the HTTP client disconnects) leaves the
  queue, or releases the slot it was just given.
* Closing the batcher (the server shutting down) fails the waiting queries at once with
  :class:`Unavailable`.

Budget fallback: when the batch budget admits no routing within the free capacity (the
solver raises :class:`~batchroute.solve.InfeasibleBudget`), the batch is not refused;
it is routed to the cheapest models within capacity (the routing of least total cost) and
every query of it is marked ``fallback=True``. Such a batch spends more than its budget;
``stats()["fallback_batches"]`` counts them.

:class:`Batcher` is the pure asyncio core (no HTTP; its clock and sleep can be injected for
tests). :func:`make_app` wraps it in an aiohttp application and :func:`serve` runs that.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from aiohttp import web

from batchroute.problem import RoutingProblem, query_figures
from batchroute.solve import METHODS, InfeasibleBudget, solve
from labcore.errors import LabcoreError
from labcore.serve import json_errors, json_object, run_app

__all__ = ["BatchError", "Batcher", "Routed", "Unavailable", "make_app", "serve"]

log = logging.getLogger(__name__)

ScoreFn = Callable[[list[dict]], tuple[np.ndarray, np.ndarray]]


class BatchError(RuntimeError):
    """Scoring or solving a batch failed (a server-side problem, not the client's input)."""


class Unavailable(LabcoreError):
    """The query was not routed: no slot freed within ``max_wait_s``, or the router closed.

    Attributes
    ----------
    retry_after_s : int
        Seconds after which a retry may succeed (HTTP ``Retry-After``).
    """

    def __init__(self, message: str, *, retry_after_s: int = 1):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Routed:
    """Where one query was routed.

    Attributes
    ----------
    ticket : str
        The in-flight ticket; pass it to :meth:`Batcher.complete` when the model is done.
    model : str
        The chosen model.
    batch_id : int
        The batch (1, 2, …) the query was routed in.
    batch_size : int
        Number of queries routed in that batch.
    queued_s : float
        Time (by the batcher's clock) from :meth:`Batcher.submit` until the query's batch was
        routed: the batching window, any wait for free capacity, and scoring and solving.
    fallback : bool
        True when the batch budget was infeasible and the batch went to the cheapest models
        within capacity instead (see the module docstring).
    """

    ticket: str
    model: str
    batch_id: int
    batch_size: int
    queued_s: float
    fallback: bool = False


@dataclass(eq=False)
class _Pending:
    query: dict
    future: asyncio.Future
    enqueued: float


@dataclass
class _Counters:
    batches: int = 0
    routed: int = 0
    completed: int = 0
    fallback_batches: int = 0
    fallback_queries: int = 0
    failed_batches: int = 0
    timed_out: int = 0
    expired: int = 0
    solve_time_s: float = 0.0
    score_time_s: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)


def _capacity_vector(capacity, models: Sequence[str]) -> np.ndarray:
    if isinstance(capacity, dict):
        unknown = sorted(set(capacity) - set(models))
        if unknown:
            raise LabcoreError(f"capacity names unknown models {unknown}; models are {models}")
        missing = [m for m in models if m not in capacity]
        if missing:
            raise LabcoreError(f"capacity is missing models {missing}")
        values = [capacity[m] for m in models]
    else:
        values = list(capacity)
        if len(values) != len(models):
            raise LabcoreError(f"capacity has {len(values)} entries for {len(models)} models")
    out = np.empty(len(models))
    for j, (name, v) in enumerate(zip(models, values, strict=True)):
        ok = not isinstance(v, bool) and isinstance(v, int | float | np.integer | np.floating)
        if ok:
            v = float(v)
            ok = v >= 0 and (math.isinf(v) or v == int(v))
        if not ok:
            raise LabcoreError(
                f"capacity of model {name!r} must be a non-negative integer or inf, got {v!r}"
            )
        out[j] = v
    if out.sum() == 0:
        raise LabcoreError("every model has capacity 0: nothing could ever be routed")
    return out


class Batcher:
    """Collects queries into batches and routes each batch under budget and capacity.

    Parameters
    ----------
    models : list of str
        Model names, in the column order of ``score_fn``'s arrays.
    score_fn : callable
        ``score_fn(queries: list[dict]) -> (quality, cost)``, two arrays of shape
        ``(len(queries), len(models))``: predicted quality and cost of each query on each
        model (a plug-in: quality predictors plus a cost model). Called in a worker thread.
    capacity : dict of str to int, or list of int
        Concurrent slots of each model (``math.inf``: unlimited).
    budget_per_query : float or None
        Batch budget per routed query (None: unlimited).
    window_s : float
        How long the first waiting query waits for others before its batch is routed.
    max_batch : int
        A batch is routed at once when this many queries are waiting (and never exceeds it).
    method : {"fast", "milp"}
        Solver method, see :func:`batchroute.solve.solve`.
    time_limit : float
        Seconds for each HiGHS call.
    max_wait_s : float or None
        Longest a query waits to be routed (window, capacity and solving included) before it
        fails with :class:`Unavailable`; None: no limit.
    lease_s : float or None
        A ticket not completed within this many seconds is reclaimed and its slot freed;
        None: tickets never expire (a lost client then holds its slot until restart).
    clock : callable, optional
        ``clock() -> seconds`` (default :func:`time.monotonic`).
    sleep : callable, optional
        ``sleep(seconds)`` returning an awaitable (default :func:`asyncio.sleep`). Tests
        inject a fake clock and a sleep that waits until that clock has advanced.

    Notes
    -----
    Use it from one event loop: :meth:`submit` and :meth:`complete` are not thread-safe.
    The budget of each batch is ``budget_per_query × batch size``; budget left over by one
    batch is not carried to the next. On an infeasible budget the batch falls back to the
    cheapest routing within capacity (``Routed.fallback``; see the module docstring).

    Examples
    --------
    >>> import numpy as np, asyncio
    >>> def score(queries):
    ...     n = len(queries)
    ...     return np.tile([0.5, 0.9], (n, 1)), np.tile([1.0, 5.0], (n, 1))
    >>> async def main():
    ...     async with Batcher(models=["small", "large"], score_fn=score, capacity=[4, 1],
    ...                        budget_per_query=None, window_s=0.0) as b:
    ...         r = await b.submit({"query": "hi"})
    ...         b.complete(r.ticket)
    ...         return r.model
    >>> asyncio.run(main())
    'large'
    """

    def __init__(
        self,
        *,
        models: Sequence[str],
        score_fn: ScoreFn,
        capacity: dict[str, int] | Sequence[int],
        budget_per_query: float | None,
        window_s: float = 0.05,
        max_batch: int = 64,
        method: str = "fast",
        time_limit: float = 10.0,
        max_wait_s: float | None = 30.0,
        lease_s: float | None = 600.0,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ):
        models = tuple(models)
        if not models or not all(isinstance(m, str) and m for m in models):
            raise LabcoreError(f"models must be a non-empty list of names, got {models!r}")
        if len(set(models)) != len(models):
            raise LabcoreError(f"duplicate model names: {list(models)}")
        if not callable(score_fn):
            raise LabcoreError("score_fn must be callable: score_fn(queries) -> (quality, cost)")
        if budget_per_query is not None:
            budget_per_query = float(budget_per_query)
            if not (math.isfinite(budget_per_query) and budget_per_query >= 0):
                raise LabcoreError(
                    f"budget_per_query must be a non-negative number or None, got "
                    f"{budget_per_query}"
                )
        window_s = float(window_s)
        if not (math.isfinite(window_s) and window_s >= 0):
            raise LabcoreError(f"window_s must be a non-negative number, got {window_s}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise LabcoreError(f"max_batch must be a positive integer, got {max_batch!r}")
        if method not in METHODS:
            raise LabcoreError(f"unknown method {method!r}; choose one of {METHODS}")
        if not (time_limit > 0):
            raise LabcoreError(f"time_limit must be positive, got {time_limit}")
        for name, value in (("max_wait_s", max_wait_s), ("lease_s", lease_s)):
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value > 0)
            ):
                raise LabcoreError(f"{name} must be a positive number or None, got {value!r}")
        self.models = models
        self.capacity = _capacity_vector(capacity, models)
        self.score_fn = score_fn
        self.budget_per_query = budget_per_query
        self.window_s = window_s
        self.max_batch = max_batch
        self.method = method
        self.time_limit = float(time_limit)
        self.max_wait_s = None if max_wait_s is None else float(max_wait_s)
        self.lease_s = None if lease_s is None else float(lease_s)
        self._clock = clock if clock is not None else time.monotonic
        self._sleep = sleep if sleep is not None else asyncio.sleep
        self._pending: deque[_Pending] = deque()
        self._in_flight = np.zeros(len(models), dtype=np.int64)
        # ticket -> (model index, lease expiry); insertion order is expiry order.
        self._tickets: dict[str, tuple[int, float]] = {}
        self._expired_tickets: OrderedDict[str, None] = OrderedDict()  # recent, for messages
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closed = False
        self._c = _Counters()

    # ----------------------------------------------------------------------------- public

    async def submit(self, query: dict) -> Routed:
        """Queue one query and wait until its batch is routed.

        Parameters
        ----------
        query : dict
            Passed to ``score_fn`` as it is (e.g. ``{"query": "…", "id": "…"}``).

        Returns
        -------
        Routed
            The model and the in-flight ticket to :meth:`complete` later.

        Raises
        ------
        LabcoreError
            If ``query`` is not a dict.
        Unavailable
            If the batcher is closed, or the query was not routed within ``max_wait_s``.
        BatchError
            If scoring or solving the query's batch failed.
        """
        if not isinstance(query, dict):
            raise LabcoreError(f"a query must be a dict, got {type(query).__name__}")
        if self._closed:
            raise Unavailable("the batcher is closed")
        self._ensure_running()
        entry = _Pending(query, asyncio.get_running_loop().create_future(), self._clock())
        self._pending.append(entry)
        if len(self._pending) == 1 or len(self._pending) >= self.max_batch:
            self._wake.set()
        try:
            return await entry.future
        except asyncio.CancelledError:
            # The caller gave up: drop the query, or release the slot it was just given.
            fut = entry.future
            if entry in self._pending:
                self._pending.remove(entry)
            elif fut.done() and not fut.cancelled() and fut.exception() is None:
                self.complete(fut.result().ticket)
            raise

    def complete(self, ticket: str) -> None:
        """Release the model slot held by ``ticket`` (its query is done).

        Raises
        ------
        LabcoreError
            If the ticket is unknown, already completed, or expired (its lease ran out and
            its slot was reclaimed).
        """
        if not isinstance(ticket, str):
            raise LabcoreError(f"a ticket must be a string, got {type(ticket).__name__}")
        held = self._tickets.pop(ticket, None)
        if held is None:
            if ticket in self._expired_tickets:
                raise LabcoreError(
                    f"ticket {ticket!r} expired: not completed within lease_s = "
                    f"{self.lease_s:g} s, its slot was already reclaimed"
                )
            raise LabcoreError(f"unknown or already completed ticket {ticket!r}")
        self._in_flight[held[0]] -= 1
        self._c.completed += 1
        if self._wake is not None and self._pending:
            self._wake.set()

    def stats(self) -> dict:
        """Counters since start, as a JSON-ready dict.

        Keys: ``batches_solved``, ``queries_routed``, ``completed``, ``pending``,
        ``in_flight`` and ``capacity`` (per model; capacity None = unlimited),
        ``mean_batch_size``, ``mean_solve_time_s`` and ``mean_score_time_s`` (per batch),
        ``fallback_batches``, ``fallback_queries``, ``failed_batches``, ``timed_out``
        (queries not routed within ``max_wait_s``) and ``expired`` (leases reclaimed).
        """
        c = self._c
        batches = max(c.batches, 1)
        return {
            "batches_solved": c.batches,
            "queries_routed": c.routed,
            "completed": c.completed,
            "pending": len(self._pending),
            "in_flight": dict(zip(self.models, self._in_flight.tolist(), strict=True)),
            "capacity": {
                m: (None if math.isinf(k) else int(k))
                for m, k in zip(self.models, self.capacity, strict=True)
            },
            "mean_batch_size": float(np.mean(c.batch_sizes)) if c.batch_sizes else 0.0,
            "mean_solve_time_s": c.solve_time_s / batches,
            "mean_score_time_s": c.score_time_s / batches,
            "fallback_batches": c.fallback_batches,
            "fallback_queries": c.fallback_queries,
            "failed_batches": c.failed_batches,
            "timed_out": c.timed_out,
            "expired": c.expired,
        }

    async def close(self) -> None:
        """Stop the dispatcher; queries still waiting fail with :class:`Unavailable`."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail_all(Unavailable("the batcher was closed before the query was routed"))

    async def __aenter__(self) -> Batcher:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ---------------------------------------------------------------------------- internal

    def _ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run())
            self._task.add_done_callback(self._on_dispatcher_done)

    def _on_dispatcher_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug: do not leave callers waiting forever
            log.error("batch dispatcher crashed", exc_info=exc)
            self._fail_all(BatchError(f"the batch dispatcher crashed: {exc!r}"))

    def _fail_all(self, exc: Exception) -> None:
        self._fail(self._pending, exc)
        self._pending.clear()

    def _free(self) -> np.ndarray:
        return self.capacity - self._in_flight

    async def _run(self) -> None:
        wake = self._wake
        while True:
            wake.clear()
            now = self._clock()
            self._reclaim_expired_leases(now)
            self._time_out_waiting(now)
            deadlines = []
            if self.lease_s is not None and self._tickets:
                deadlines.append(next(iter(self._tickets.values()))[1])
            if self.max_wait_s is not None and self._pending:
                deadlines.append(self._pending[0].enqueued + self.max_wait_s)
            if self._pending and self._free().sum() >= 1:
                window_ends = self._pending[0].enqueued + self.window_s
                if len(self._pending) >= self.max_batch or window_ends <= now:
                    await self._dispatch()
                    continue
                deadlines.append(window_ends)
            if deadlines:
                await self._sleep_or_wake(min(deadlines) - now, wake)
            else:
                await wake.wait()

    def _reclaim_expired_leases(self, now: float) -> None:
        if self.lease_s is None:
            return
        while self._tickets:
            ticket, (j, expires) = next(iter(self._tickets.items()))
            if expires > now:
                break
            del self._tickets[ticket]
            self._in_flight[j] -= 1
            self._c.expired += 1
            self._expired_tickets[ticket] = None
            if len(self._expired_tickets) > 10_000:
                self._expired_tickets.popitem(last=False)
            log.warning(
                "ticket %s on %s not completed within %g s: slot reclaimed",
                ticket,
                self.models[j],
                self.lease_s,
            )

    def _time_out_waiting(self, now: float) -> None:
        if self.max_wait_s is None:
            return
        while self._pending and self._pending[0].enqueued + self.max_wait_s <= now:
            entry = self._pending.popleft()
            if not entry.future.done():
                self._c.timed_out += 1
                capacity = [None if math.isinf(k) else int(k) for k in self.capacity]
                entry.future.set_exception(
                    Unavailable(
                        f"no model slot freed within max_wait_s = {self.max_wait_s:g} s "
                        f"(in flight {self._in_flight.tolist()} of capacity {capacity})"
                    )
                )

    async def _sleep_or_wake(self, seconds: float, wake: asyncio.Event) -> None:
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waker):
                if not t.done():
                    t.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    async def _dispatch(self) -> None:
        free = self._free()
        k = int(min(len(self._pending), self.max_batch, free.sum()))
        batch = [self._pending.popleft() for _ in range(k)]
        try:
            queries = [entry.query for entry in batch]
            try:
                choice, fallback, score_s, solve_s = await asyncio.to_thread(
                    self._route, queries, free.copy()
                )
            except Exception as exc:
                self._c.failed_batches += 1
                log.error("routing a batch of %d queries failed", k, exc_info=exc)
                err = BatchError(f"routing the batch failed: {exc}")
                err.__cause__ = exc
                self._fail(batch, err)
                return
            self._apply(batch, choice, fallback, score_s, solve_s)
        except asyncio.CancelledError:
            self._fail(batch, Unavailable("the batcher was closed before the query was routed"))
            raise
        except BaseException as exc:  # a bug: do not leave this batch's callers waiting
            self._fail(batch, BatchError(f"the batch dispatcher crashed: {exc!r}"))
            raise

    @staticmethod
    def _fail(entries, exc: BaseException) -> None:
        for entry in entries:
            if not entry.future.done():
                entry.future.set_exception(exc)

    def _route(self, queries: list[dict], free: np.ndarray):
        """Score and solve one batch (runs in a worker thread)."""
        n, m = len(queries), len(self.models)
        t0 = time.perf_counter()
        quality, cost = self.score_fn(queries)
        score_s = time.perf_counter() - t0
        quality = np.asarray(quality, dtype=np.float64)
        cost = np.asarray(cost, dtype=np.float64)
        for name, a in (("quality", quality), ("cost", cost)):
            if a.shape != (n, m):
                raise LabcoreError(
                    f"score_fn returned {name} of shape {a.shape}, expected ({n}, {m}) "
                    "(queries × models)"
                )
        budget = None if self.budget_per_query is None else self.budget_per_query * n
        problem = RoutingProblem(quality, cost, budget, free, models=self.models)
        t0 = time.perf_counter()
        fallback = False
        try:
            choice = solve(problem, method=self.method, time_limit=self.time_limit).choice
        except InfeasibleBudget:
            # The cheapest routing within capacity: maximise −cost with no budget.
            fallback = True
            cheapest = RoutingProblem(-cost, cost, None, free, models=self.models)
            choice = solve(cheapest, method=self.method, time_limit=self.time_limit).choice
        solve_s = time.perf_counter() - t0
        loads = np.bincount(choice, minlength=m)
        if (loads > free).any():
            raise AssertionError(f"routing loads {loads.tolist()} exceed free slots {free}")
        return choice, fallback, score_s, solve_s

    def _apply(self, batch, choice, fallback: bool, score_s: float, solve_s: float) -> None:
        c = self._c
        c.batches += 1
        batch_id = c.batches
        now = self._clock()
        expires = now + self.lease_s if self.lease_s is not None else math.inf
        routed = 0
        for entry, j in zip(batch, choice.tolist(), strict=True):
            if entry.future.done():  # the caller went away while the batch was solved
                continue
            ticket = uuid.uuid4().hex
            self._tickets[ticket] = (j, expires)
            self._in_flight[j] += 1
            routed += 1
            entry.future.set_result(
                Routed(
                    ticket=ticket,
                    model=self.models[j],
                    batch_id=batch_id,
                    batch_size=len(batch),
                    queued_s=max(now - entry.enqueued, 0.0),
                    fallback=fallback,
                )
            )
        if (self._in_flight > self.capacity).any():  # kept under python -O too
            raise AssertionError(
                f"in-flight {self._in_flight.tolist()} exceeds capacity {self.capacity}"
            )
        c.routed += routed
        c.batch_sizes.append(len(batch))
        c.score_time_s += score_s
        c.solve_time_s += solve_s
        if fallback:
            c.fallback_batches += 1
            c.fallback_queries += routed


# --------------------------------------------------------------------------------- HTTP

BATCHER = web.AppKey("batcher", Batcher)


def _string_field(body: dict, name: str, *, required: bool) -> str | None:
    if name not in body:
        if required:
            raise LabcoreError(f"missing field {name!r}")
        return None
    value = body[name]
    if not isinstance(value, str):
        raise LabcoreError(f"field {name!r} must be a string, got {type(value).__name__}")
    return value


def _per_model_field(body: dict, name: str, models: Sequence[str]) -> None:
    """An optional per-model ``quality`` or ``cost`` given by the client, checked."""
    if name in body:
        try:
            query_figures(body[name], name, models)
        except LabcoreError as exc:
            raise LabcoreError(f"field {exc}") from None


async def _route(request: web.Request) -> web.Response:
    body = await json_object(request)
    _string_field(body, "query", required=True)
    for name in ("quality", "cost"):
        _per_model_field(body, name, request.app[BATCHER].models)
    query_id = _string_field(body, "id", required=False)
    if query_id is None:
        query_id = uuid.uuid4().hex
        body = {**body, "id": query_id}
    routed = await request.app[BATCHER].submit(body)
    return web.json_response({"id": query_id, **asdict(routed)})


async def _complete(request: web.Request) -> web.Response:
    body = await json_object(request)
    ticket = _string_field(body, "ticket", required=True)
    request.app[BATCHER].complete(ticket)
    return web.json_response({"ok": True})


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[BATCHER].stats())


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def make_app(batcher: Batcher) -> web.Application:
    """The aiohttp application around ``batcher``.

    Routes
    ------
    ``POST /route``
        Body ``{"query": str, "id": str (optional), "quality": {model: p} (optional),
        "cost": {model: c} (optional), ...}`` (the whole object goes to the batcher's
        ``score_fn``; ``quality`` and ``cost``, when given, must name every model, with
        quality in [0, 1] and cost >= 0). Answers ``{"id", "ticket", "model", "batch_id",
        "batch_size", "queued_s", "fallback"}`` once the query's batch is routed. Without an
        ``id`` one is generated.
    ``POST /complete``
        Body ``{"ticket": str}``: the routed query is done, its model slot is released.
        Answers ``{"ok": true}``.
    ``GET /stats``
        :meth:`Batcher.stats`.
    ``GET /health``
        ``{"ok": true}``.

    Bad JSON, a missing or mistyped field and an unknown or expired ticket answer 400 with
    ``{"error": "..."}``; a failed batch answers 500 the same way; a query not routed within
    the batcher's ``max_wait_s``, or still waiting when the server shuts down, answers 503
    with a ``Retry-After`` header. A client that disconnects while waiting leaves the queue
    (the server runs its handlers with cancellation on disconnect). The batcher is closed
    when the application shuts down, before in-flight handlers are awaited.
    """
    if not isinstance(batcher, Batcher):
        raise LabcoreError(f"make_app needs a Batcher, got {type(batcher).__name__}")
    app = web.Application(
        middlewares=[json_errors(statuses=((Unavailable, 503), (BatchError, 500)))]
    )
    app[BATCHER] = batcher
    app.router.add_post("/route", _route)
    app.router.add_post("/complete", _complete)
    app.router.add_get("/stats", _stats)
    app.router.add_get("/health", _health)

    async def _close(app: web.Application) -> None:
        await app[BATCHER].close()

    # on_shutdown runs before the runner waits for in-flight handlers: waiting queries get
    # their 503 at once instead of holding the shutdown for its whole timeout.
    app.on_shutdown.append(_close)
    app.on_cleanup.append(_close)
    return app


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    batcher: Batcher,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the router until interrupted (blocking).

    Parameters
    ----------
    host : str
        Interface to listen on. The default is loopback only. The service has no
        authentication, TLS or rate limiting: listening beyond loopback (``"0.0.0.0"``, a
        public address) is the user's decision, best made behind a proxy that adds them.
    port : int
        TCP port (0: any free port).
    batcher : Batcher
        The routing core.
    on_ready : callable, optional
        Called once with the URL the server listens on (the bound port when ``port`` is 0).
        Nothing is printed on stdout (aiohttp's banner is off), so a caller's ``--json``
        output stays one document.

    Notes
    -----
    SIGTERM and SIGINT (Ctrl+C) stop the server gracefully and ``serve`` returns: queries
    still waiting for a batch answer 503, and handlers still running get at most
    ``labcore.serve.SHUTDOWN_TIMEOUT_S`` seconds to finish.
    """
    app = make_app(batcher)

    def on_stop() -> None:
        log.info("stopping: %d queries waiting", app[BATCHER].stats()["pending"])

    run_app(app, host=host, port=port, on_ready=on_ready, on_stop=on_stop)
