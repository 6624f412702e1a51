"""A planted network with one hidden layer: GD against SAM in a non-convex problem.

Data: x ~ N(0, I_d), y = f*(x) + σ·noise with the teacher f*(x) = Σ_j a*_j σ(w*_jᵀx)
(unit-norm rows w*_j, random signs a*_j scaled so that E f*² = 1). The student
f(x) = Σ_j a_j σ(w_jᵀx) of a larger width is trained on both layers by full-batch GD or
full-batch SAM from the same initialization (SAM's step is :class:`msam.SAM`, normalized or
not).

Population risk E(f − f*)² is exact for ReLU (the arc-cosine kernel: E σ(uᵀx)σ(vᵀx) =
‖u‖‖v‖(sin θ + (π − θ) cos θ)/(2π)) and for the quadratic activation (E (uᵀx)²(vᵀx)² =
‖u‖²‖v‖² + 2(uᵀv)²); for tanh it is a Monte Carlo mean over a fixed fresh sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from labcore.checks import choice, finite_array, finite_float, positive_int
from labcore.errors import LabcoreError
from samstats.kernel import checkpoint_steps

ACTIVATIONS = ("relu", "tanh", "quadratic")
CLOSED_FORM = ("relu", "quadratic")
METHODS = ("gd", "sam", "sam-normalized")


def activation_fn(name: str):
    """σ as a function of a torch tensor or numpy array."""
    choice("activation", name, ACTIVATIONS)
    if name == "relu":
        return lambda z: z.clip(min=0) if hasattr(z, "clip") else np.maximum(z, 0)
    if name == "tanh":
        return lambda z: z.tanh() if hasattr(z, "tanh") else np.tanh(z)
    return lambda z: z * z


def gaussian_gram(u: np.ndarray, v: np.ndarray, activation: str) -> np.ndarray:
    """E[σ(u_iᵀx) σ(v_jᵀx)] for x ~ N(0, I), for the activations with a closed form."""
    choice("activation", activation, CLOSED_FORM)
    nu = np.linalg.norm(u, axis=1)
    nv = np.linalg.norm(v, axis=1)
    dot = u @ v.T
    if activation == "quadratic":
        return np.outer(nu**2, nv**2) + 2 * dot**2
    denom = np.outer(nu, nv)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(denom > 0, dot / np.where(denom > 0, denom, 1.0), 1.0)
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    return denom * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)


@dataclass(frozen=True)
class TeacherProblem:
    """Planted one-hidden-layer regression (see the module docstring).

    Examples
    --------
    >>> problem = TeacherProblem(n=100, d=10, teacher_width=3)
    >>> data = problem.sample(seed=0)
    >>> data.x.shape, round(problem.risk(np.zeros((1, 10)), np.zeros(1), data), 6)
    ((100, 10), 1.0)
    """

    n: int = 400
    d: int = 20
    teacher_width: int = 5
    activation: str = "relu"
    noise: float = 0.5
    mc_samples: int = 20000

    def __post_init__(self) -> None:
        positive_int("n", self.n, minimum=2)
        positive_int("d", self.d)
        positive_int("teacher_width", self.teacher_width)
        choice("activation", self.activation, ACTIVATIONS)
        finite_float("noise", self.noise, minimum=0.0)
        positive_int("mc_samples", self.mc_samples, minimum=100)

    def teacher(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(W*, a*): unit-norm rows, random signs, scaled so that E f*² = 1."""
        rng = np.random.default_rng([seed, 11])
        w = rng.standard_normal((self.teacher_width, self.d))
        w /= np.linalg.norm(w, axis=1, keepdims=True)
        a = rng.choice([-1.0, 1.0], size=self.teacher_width)
        if self.activation in CLOSED_FORM:
            power = float(a @ gaussian_gram(w, w, self.activation) @ a)
        else:
            z = activation_fn(self.activation)(self._mc_inputs(seed) @ w.T)
            power = float(np.mean((z @ a) ** 2))
        return w, a / math.sqrt(power)

    def _mc_inputs(self, seed: int) -> np.ndarray:
        return np.random.default_rng([seed, 13]).standard_normal((self.mc_samples, self.d))

    def sample(self, seed: int = 0, *, n: int | None = None) -> TeacherData:
        n = self.n if n is None else positive_int("n", n)
        w, a = self.teacher(seed)
        rng = np.random.default_rng([seed, 12])
        x = rng.standard_normal((n, self.d))
        f = activation_fn(self.activation)(x @ w.T) @ a
        y = f + self.noise * rng.standard_normal(n)
        mc = None if self.activation in CLOSED_FORM else self._mc_inputs(seed)
        mc_f = None if mc is None else activation_fn(self.activation)(mc @ w.T) @ a
        return TeacherData(self, x, y, f, w, a, mc, mc_f)

    def risk(self, w: np.ndarray, a: np.ndarray, data: TeacherData) -> float:
        """E(f − f*)² of the student (w, a): exact for ReLU/quadratic, else Monte Carlo."""
        w = finite_array("w", w, ndim=2)
        a = finite_array("a", a, ndim=1)
        if w.shape != (a.size, self.d):
            raise LabcoreError(f"w must be ({a.size}, {self.d}), got {w.shape}")
        if self.activation in CLOSED_FORM:
            u = np.concatenate([w, data.teacher_w])
            c = np.concatenate([a, -data.teacher_a])
            return max(float(c @ gaussian_gram(u, u, self.activation) @ c), 0.0)
        pred = activation_fn(self.activation)(data.mc_x @ w.T) @ a
        return float(np.mean((pred - data.mc_f) ** 2))

    def monte_carlo_risk(self, w, a, data: TeacherData, *, samples: int, seed: int = 99) -> float:
        """E(f − f*)² estimated on ``samples`` fresh inputs (to check :meth:`risk`)."""
        x = np.random.default_rng([seed, 14]).standard_normal((samples, self.d))
        sigma = activation_fn(self.activation)
        diff = sigma(x @ np.asarray(w).T) @ np.asarray(a) - sigma(x @ data.teacher_w.T) @ (
            data.teacher_a
        )
        return float(np.mean(diff**2))


@dataclass(frozen=True)
class TeacherData:
    problem: TeacherProblem
    x: np.ndarray
    y: np.ndarray
    f: np.ndarray
    teacher_w: np.ndarray
    teacher_a: np.ndarray
    mc_x: np.ndarray | None = None
    mc_f: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# Training


def _student(d: int, width: int, activation: str, init_scale: float, seed: int):
    import torch
    from torch import nn

    sigma = activation_fn(activation)

    class OneHiddenLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(seed)
            self.w = nn.Parameter(
                torch.randn(width, d, generator=gen, dtype=torch.float64) * init_scale / d**0.5
            )
            self.a = nn.Parameter(
                torch.randn(width, generator=gen, dtype=torch.float64) * init_scale / width**0.5
            )

        def forward(self, x):
            return sigma(x @ self.w.T) @ self.a

    return OneHiddenLayer()


def half_mse(out, y):
    return 0.5 * ((out - y) ** 2).mean()


def top_hessian_eigenvalue(model, x, y, *, iters: int = 200, tol: float = 1e-6) -> float:
    """λ_max, the largest (signed) eigenvalue of the training loss's Hessian.

    Power iteration (``msam.hessian_eigenvalue``) finds the eigenvalue of largest
    magnitude μ; when μ > 0 that is λ_max. At a non-convex point μ can be negative, and
    then λ_max comes from a second power iteration on H − μI (all eigenvalues ≥ 0 there).
    """
    import torch
    from msam import hessian_eigenvalue
    from msam.flatness import hessian_vector_product

    data = [(x, y)]
    mu = hessian_eigenvalue(model, half_mse, data, iters=iters, tol=tol)
    if mu >= 0:
        return mu
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    norm = torch.sqrt(sum((t * t).sum() for t in v))
    v = [t / norm for t in v]
    value = math.nan
    for _ in range(iters):
        hv = hessian_vector_product(model, half_mse, [(x, y, 1.0)], v)
        shifted = [h - mu * t for h, t in zip(hv, v, strict=True)]
        new = float(sum((t * h).sum() for t, h in zip(v, shifted, strict=True)))
        norm = torch.sqrt(sum((t * t).sum() for t in shifted))
        if float(norm) == 0.0:
            break
        v = [t / norm for t in shifted]
        if not math.isnan(value) and abs(new - value) <= tol * max(abs(new), 1e-12):
            value = new
            break
        value = new
    return float(value + mu)


@dataclass
class NetworkPath:
    """Population risk and training loss at the recorded steps, and the sharpness
    (top Hessian eigenvalue of the training loss) at the best and the last iterate."""

    method: str
    rho: float
    eta: float
    steps: np.ndarray
    risk: np.ndarray
    train_loss: np.ndarray
    best_step: int
    best_risk: float
    sharpness_best: float
    sharpness_final: float
    diverged: bool = False
    final_w: np.ndarray | None = None
    final_a: np.ndarray | None = None


def train_network(
    data: TeacherData,
    *,
    method: str = "gd",
    rho: float = 0.0,
    eta: float = 0.05,
    n_steps: int = 2000,
    width: int = 50,
    init_scale: float = 1.0,
    init_seed: int = 0,
    eval_every: int | None = None,
    sharpness: bool = True,
) -> NetworkPath:
    """Full-batch GD or SAM on the student, recording the population risk along the path.

    ``method`` is ``"gd"``, ``"sam"`` (un-normalized ascent ε = ρ∇L) or ``"sam-normalized"``
    (ε = ρ∇L/‖∇L‖). The same ``init_seed`` gives every method the same starting point. The
    risk is recorded every ``eval_every`` steps, or by default at every step up to 100 and
    then on a log grid of 50 steps per decade. A
    diverging run stops early with ``diverged=True``; its arrays end at the last finite
    evaluation.
    """
    import torch
    from msam import SAM

    choice("method", method, METHODS)
    rho = finite_float("rho", rho, minimum=0.0)
    eta = finite_float("eta", eta, minimum=0.0, strict=True)
    n_steps = positive_int("n_steps", n_steps, minimum=0)
    width = positive_int("width", width)
    init_scale = finite_float("init_scale", init_scale, minimum=0.0, strict=True)
    recorded = set(checkpoint_steps(n_steps, every=eval_every, per_decade=50).tolist())
    problem = data.problem
    model = _student(problem.d, width, problem.activation, init_scale, init_seed)
    x = torch.as_tensor(data.x, dtype=torch.float64)
    y = torch.as_tensor(data.y, dtype=torch.float64)
    if method == "gd":
        opt = torch.optim.SGD(model.parameters(), lr=eta)
    else:
        opt = SAM(
            model.parameters(),
            torch.optim.SGD,
            rho=rho,
            normalize=method == "sam-normalized",
            lr=eta,
        )

    def snapshot():
        return model.w.detach().numpy().copy(), model.a.detach().numpy().copy()

    steps, risks, losses = [], [], []
    best = (math.inf, 0, snapshot())
    diverged = False
    for t in range(n_steps + 1):
        if t in recorded:
            w, a = snapshot()
            if not (np.isfinite(w).all() and np.isfinite(a).all()):
                diverged = True
                break
            with torch.no_grad():
                loss = float(half_mse(model(x), y))
            risk = problem.risk(w, a, data)
            steps.append(t)
            risks.append(risk)
            losses.append(loss)
            if risk < best[0]:
                best = (risk, t, (w, a))
            if not math.isfinite(loss) or loss > 1e6:
                diverged = True
                break
        if t == n_steps:
            break
        opt.zero_grad()
        try:
            if method == "gd":
                half_mse(model(x), y).backward()
            else:
                opt.sam_backward(lambda batch: half_mse(model(batch[0]), batch[1]), (x, y))
        except FloatingPointError:
            diverged = True
            break
        opt.step()
    final_w, final_a = snapshot()
    sharp_best = sharp_final = math.nan
    if sharpness and not diverged:
        sharp_final = top_hessian_eigenvalue(model, x, y)
        with torch.no_grad():
            model.w.copy_(torch.as_tensor(best[2][0]))
            model.a.copy_(torch.as_tensor(best[2][1]))
        sharp_best = top_hessian_eigenvalue(model, x, y)
    return NetworkPath(
        method=method,
        rho=rho if method != "gd" else 0.0,
        eta=eta,
        steps=np.asarray(steps),
        risk=np.asarray(risks),
        train_loss=np.asarray(losses),
        best_step=best[1],
        best_risk=best[0],
        sharpness_best=sharp_best,
        sharpness_final=sharp_final,
        diverged=diverged,
        final_w=final_w,
        final_a=final_a,
    )
