"""The batch routing problem, its uncertainty sets and its solutions.

A batch of n queries is routed to M models. ``x_im = 1`` sends query i to model m:

    maximise   Σ_im a_im x_im                       (predicted quality)
    subject to Σ_m x_im = 1                 ∀ i     (every query answered once)
               Σ_im c_im x_im ≤ B                   (batch cost budget)
               Σ_i x_im ≤ K_m               ∀ m     (capacity: concurrent slots of model m)
               Σ_i u^r_im x_im ≤ L^r_m      ∀ m, r  (optional resources: tokens, GPU-seconds)
               x binary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labcore.errors import LabcoreError

# Constraint checks allow this relative slack for floating-point sums.
FEASIBILITY_TOL = 1e-9


def _matrix(name: str, value, shape: tuple[int, int] | None = None) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != 2:
        raise LabcoreError(f"{name} must be a 2-D (queries × models) array, got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise LabcoreError(f"{name} has shape {a.shape}, expected {shape}")
    if not np.all(np.isfinite(a)):
        raise LabcoreError(f"{name} contains NaN or infinite values")
    return a


def _per_model(name: str, value, m: int, *, allow_inf: bool = True) -> np.ndarray:
    v = np.broadcast_to(np.asarray(value, dtype=np.float64), (m,)).copy()
    if np.isnan(v).any() or (not allow_inf and np.isinf(v).any()):
        raise LabcoreError(f"{name} contains NaN{'' if allow_inf else ' or inf'}")
    if (v < 0).any():
        raise LabcoreError(f"{name} must be non-negative, got {v.tolist()}")
    return v


def query_figures(value, key: str, models) -> list[float]:
    """One query's own ``{"quality": {model: p}}`` or ``{"cost": {model: c}}``, checked.

    Every model named, numbers only; quality a probability in [0, 1], cost finite and
    >= 0. Shared by route files and the HTTP router.
    """
    models = list(models)
    missing = [] if not isinstance(value, dict) else [m for m in models if m not in value]
    if not isinstance(value, dict) or missing or set(value) - set(models):
        raise LabcoreError(
            f"'{key}' must map each of the models {models} to a number"
            + (f": it lacks models {missing}" if missing else "")
        )
    values = [value[m] for m in models]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise LabcoreError(f"'{key}' values must be numbers")
    for m, v in zip(models, values, strict=True):
        if not (np.isfinite(v) and (0 <= v <= 1 if key == "quality" else v >= 0)):
            allowed = "a probability in [0, 1]" if key == "quality" else "a finite number >= 0"
            shown = "NaN" if np.isnan(v) else v
            raise LabcoreError(f"'{key}' of {m!r} is {shown}; it must be {allowed}")
    return [float(v) for v in values]


@dataclass(frozen=True)
class Resource:
    """An extra per-model limit: ``Σ_i usage[i, m] · x_im ≤ limit[m]`` (e.g. tokens)."""

    name: str
    usage: np.ndarray
    limit: np.ndarray


@dataclass(frozen=True)
class RoutingProblem:
    """One batch: predicted quality, costs, budget, capacities and optional resources.

    Parameters
    ----------
    quality : array (n, M)
        Predicted quality a_im (e.g. probability that model m answers query i correctly).
    cost : array (n, M)
        Cost c_im ≥ 0 of sending query i to model m (price × expected tokens, say).
    budget : float or None
        Batch budget B (None: unlimited).
    capacity : array (M,) or None
        Maximum number of queries per model K_m (``inf`` or None: unlimited).
    resources : tuple of Resource
        Optional extra per-model limits.
    models : tuple of str, optional
        Model names (default ``m0, m1, …``).

    Examples
    --------
    >>> p = RoutingProblem(quality=[[0.5, 0.9], [0.4, 0.8]], cost=[[1, 5], [1, 5]], budget=6)
    >>> p.n, p.m, p.models
    (2, 2, ('m0', 'm1'))
    """

    quality: np.ndarray
    cost: np.ndarray
    budget: float | None = None
    capacity: np.ndarray | None = None
    resources: tuple[Resource, ...] = ()
    models: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        quality = _matrix("quality", self.quality)
        n, m = quality.shape
        if n == 0:
            raise LabcoreError("the batch is empty (no queries)")
        if m == 0:
            raise LabcoreError("no models to route to")
        cost = _matrix("cost", self.cost, (n, m))
        if (cost < 0).any():
            raise LabcoreError("cost must be non-negative")
        budget = self.budget
        if budget is not None:
            budget = float(budget)
            if np.isnan(budget) or budget < 0:
                raise LabcoreError(f"budget must be a non-negative number, got {self.budget}")
            if np.isinf(budget):
                budget = None
        capacity = None if self.capacity is None else _per_model("capacity", self.capacity, m)
        resources = []
        for r in self.resources:
            usage = _matrix(f"resource {r.name!r} usage", r.usage, (n, m))
            if (usage < 0).any():
                raise LabcoreError(f"resource {r.name!r} usage must be non-negative")
            resources.append(Resource(r.name, usage, _per_model(f"{r.name} limit", r.limit, m)))
        models = self.models if self.models is not None else tuple(f"m{j}" for j in range(m))
        if len(models) != m:
            raise LabcoreError(f"{len(models)} model names for {m} models")
        if len(set(models)) != m:
            raise LabcoreError(f"duplicate model names: {list(models)}")
        for name, value in (
            ("quality", quality),
            ("cost", cost),
            ("budget", budget),
            ("capacity", capacity),
            ("resources", tuple(resources)),
            ("models", tuple(models)),
        ):
            object.__setattr__(self, name, value)

    @property
    def n(self) -> int:
        return self.quality.shape[0]

    @property
    def m(self) -> int:
        return self.quality.shape[1]

    def subset(self, rows: np.ndarray, *, budget: float | None, capacity, limits=None):
        """The problem restricted to queries ``rows`` with the given residual limits."""
        resources = tuple(
            Resource(r.name, r.usage[rows], r.limit if limits is None else limits[k])
            for k, r in enumerate(self.resources)
        )
        return RoutingProblem(
            self.quality[rows], self.cost[rows], budget, capacity, resources, self.models
        )


@dataclass(frozen=True)
class Uncertainty:
    """Uncertainty set of the predicted quality: a_im ∈ [â_im − δ_im, â_im].

    ``gamma=None`` is the box set: every prediction may take its worst case at once, so the
    robust problem is the nominal one with â − δ. ``gamma=Γ`` is the budgeted set of Bertsimas
    and Sim (2004) over queries: at most ⌊Γ⌋ queries fall to their worst case, and one more by
    the fraction Γ − ⌊Γ⌋. Γ = 0 is the nominal problem, Γ ≥ n the box.
    """

    deviation: np.ndarray
    gamma: float | None = None

    def __post_init__(self) -> None:
        d = _matrix("deviation", self.deviation)
        if (d < 0).any():
            raise LabcoreError("deviation must be non-negative")
        if self.gamma is not None and not (np.isfinite(self.gamma) and self.gamma >= 0):
            raise LabcoreError(f"gamma must be a non-negative number or None, got {self.gamma}")
        object.__setattr__(self, "deviation", d)

    def worst_case(self, quality: np.ndarray, choice: np.ndarray) -> float:
        """The smallest total quality of ``choice`` over the uncertainty set."""
        rows = np.arange(len(choice))
        nominal = float(quality[rows, choice].sum())
        dev = np.sort(self.deviation[rows, choice])[::-1]
        if self.gamma is None or self.gamma >= len(dev):
            return nominal - float(dev.sum())
        whole = int(np.floor(self.gamma))
        frac = self.gamma - whole
        loss = dev[:whole].sum() + (frac * dev[whole] if whole < len(dev) else 0.0)
        return nominal - float(loss)


@dataclass(frozen=True)
class Assignment:
    """A feasible routing of a batch.

    ``choice[i]`` is query i's model. ``objective`` is what the solver maximised (the nominal
    predicted quality, or its worst case for a robust solve); ``bound`` is an upper bound on
    the optimal objective (LP relaxation or MILP dual bound) and ``gap`` = (bound −
    objective) / max(|bound|, 1e-9).
    """

    choice: np.ndarray
    objective: float
    predicted_quality: float
    cost: float
    bound: float
    gap: float
    method: str
    solve_time_s: float
    status: str
    loads: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def to_dict(self, models: tuple[str, ...] | None = None) -> dict:
        names = models or tuple(f"m{j}" for j in range(len(self.loads)))
        return {
            "choice": [names[j] for j in self.choice.tolist()],
            "objective": self.objective,
            "predicted_quality": self.predicted_quality,
            "cost": self.cost,
            "bound": self.bound,
            "gap": self.gap,
            "method": self.method,
            "solve_time_s": self.solve_time_s,
            "status": self.status,
            "loads": dict(zip(names, self.loads.tolist(), strict=True)),
        }


def violations(problem: RoutingProblem, choice: np.ndarray) -> dict[str, float]:
    """Every violated constraint of ``choice`` and by how much (empty when feasible).

    Examples
    --------
    >>> p = RoutingProblem([[0.5, 0.9]] * 3, [[1, 5]] * 3, budget=8, capacity=[3, 1])
    >>> violations(p, np.array([1, 1, 0]))
    {'budget': 3.0, 'capacity[m1]': 1.0}
    """
    choice = np.asarray(choice)
    if choice.shape != (problem.n,) or choice.min() < 0 or choice.max() >= problem.m:
        raise LabcoreError(f"choice must hold one model index in [0, {problem.m}) per query")
    out: dict[str, float] = {}
    rows = np.arange(problem.n)
    if problem.budget is not None:
        spent = float(problem.cost[rows, choice].sum())
        if spent > problem.budget * (1 + FEASIBILITY_TOL) + FEASIBILITY_TOL:
            out["budget"] = spent - problem.budget
    loads = np.bincount(choice, minlength=problem.m)
    if problem.capacity is not None:
        for j in np.flatnonzero(loads > problem.capacity):
            out[f"capacity[{problem.models[j]}]"] = float(loads[j] - problem.capacity[j])
    for r in problem.resources:
        used = np.bincount(choice, weights=r.usage[rows, choice], minlength=problem.m)
        for j in np.flatnonzero(used > r.limit * (1 + FEASIBILITY_TOL) + FEASIBILITY_TOL):
            out[f"{r.name}[{problem.models[j]}]"] = float(used[j] - r.limit[j])
    return out
