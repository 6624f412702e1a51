import numpy as np
import pytest
import torch
from samstats import TeacherProblem, train_network
from samstats.network import _student, gaussian_gram, half_mse

from labcore import LabcoreError


@pytest.mark.parametrize("activation", ["relu", "quadratic"])
def test_closed_form_gram_matches_monte_carlo(activation):
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(3, 4)), rng.normal(size=(2, 4))
    v[0] = -0.5 * u[0]  # an obtuse pair, where the arc-cosine kernel is small
    x = rng.normal(size=(400_000, 4))
    sigma = (lambda z: np.maximum(z, 0)) if activation == "relu" else (lambda z: z * z)
    a, b = sigma(x @ u.T), sigma(x @ v.T)
    mc = a.T @ b / x.shape[0]
    prod = a[:, :, None] * b[:, None, :]
    se = prod.std(0) / np.sqrt(x.shape[0])
    assert np.all(np.abs(gaussian_gram(u, v, activation) - mc) <= 5 * se + 1e-12)


@pytest.mark.parametrize("activation", ["relu", "quadratic", "tanh"])
def test_population_risk_matches_monte_carlo_on_fresh_inputs(activation):
    problem = TeacherProblem(n=50, d=6, teacher_width=3, activation=activation, mc_samples=200_000)
    data = problem.sample(seed=2)
    rng = np.random.default_rng(1)
    w, a = rng.normal(size=(7, 6)) / np.sqrt(6), rng.normal(size=7) / np.sqrt(7)
    exact = problem.risk(w, a, data)
    mc = problem.monte_carlo_risk(w, a, data, samples=400_000)
    assert mc == pytest.approx(exact, rel=0.02)
    # The teacher is scaled to unit signal power: the zero student's risk is 1.
    assert problem.risk(np.zeros((1, 6)), np.zeros(1), data) == pytest.approx(1.0, rel=0.02)
    # The teacher itself has zero risk.
    assert problem.risk(data.teacher_w, data.teacher_a, data) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", ["sam", "sam-normalized"])
def test_sam_with_zero_rho_is_gradient_descent_exactly(method):
    data = TeacherProblem(n=60, d=5, teacher_width=2).sample(seed=0)
    kw = {"eta": 0.05, "n_steps": 60, "width": 8, "eval_every": 5, "sharpness": False}
    gd = train_network(data, method="gd", **kw)
    sam = train_network(data, method=method, rho=0.0, **kw)
    assert np.array_equal(gd.risk, sam.risk)
    assert np.array_equal(gd.final_w, sam.final_w) and np.array_equal(gd.final_a, sam.final_a)


@pytest.mark.parametrize("method", ["sam", "sam-normalized"])
def test_one_sam_step_matches_a_hand_computation(method):
    data = TeacherProblem(n=30, d=4, teacher_width=2, activation="tanh", mc_samples=1000).sample(0)
    eta, rho = 0.1, 0.3
    path = train_network(
        data, method=method, rho=rho, eta=eta, n_steps=1, width=5, init_seed=4, sharpness=False
    )
    model = _student(4, 5, "tanh", 1.0, 4)
    x, y = torch.as_tensor(data.x), torch.as_tensor(data.y)
    params = list(model.parameters())
    g = torch.autograd.grad(half_mse(model(x), y), params)
    norm = torch.sqrt(sum((t**2).sum() for t in g))
    scale = rho / norm if method == "sam-normalized" else rho
    with torch.no_grad():
        for p, t in zip(params, g, strict=True):
            p.add_(scale * t)
    h = torch.autograd.grad(half_mse(model(x), y), params)
    with torch.no_grad():
        for p, t, gt in zip(params, h, g, strict=True):
            p.sub_(scale * gt).sub_(eta * t)
    assert np.allclose(path.final_w, model.w.detach().numpy(), atol=1e-12)
    assert np.allclose(path.final_a, model.a.detach().numpy(), atol=1e-12)


def test_sharpness_is_the_exact_top_hessian_eigenvalue_at_best_and_last_iterates():
    data = TeacherProblem(n=40, d=3, teacher_width=2, noise=1.0).sample(seed=1)
    path = train_network(data, method="gd", eta=0.05, n_steps=300, width=3, eval_every=1)
    x, y = torch.as_tensor(data.x), torch.as_tensor(data.y)

    def exact_lambda_max(w, a):
        def loss(flat):
            return half_mse(torch.relu(x @ flat[:9].reshape(3, 3).T) @ flat[9:], y)

        flat = torch.cat([torch.as_tensor(w).reshape(-1), torch.as_tensor(a)])
        return torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat)).max().item()

    assert path.sharpness_final == pytest.approx(
        exact_lambda_max(path.final_w, path.final_a), rel=1e-4
    )
    # The best iterate is re-trained to get its weights: the same run, cut at best_step.
    assert 0 < path.best_step < 300
    cut = train_network(
        data, method="gd", eta=0.05, n_steps=path.best_step, width=3, eval_every=1, sharpness=False
    )
    assert path.sharpness_best == pytest.approx(
        exact_lambda_max(cut.final_w, cut.final_a), rel=1e-4
    )


def test_lambda_max_is_signed_when_a_negative_eigenvalue_dominates():
    from samstats.network import top_hessian_eigenvalue

    class Saddle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

        def forward(self, x):
            return (3 * self.p[0] ** 2 - self.p[1] ** 2) * torch.ones_like(x[:, 0])

    # At p = 0 with y = 1 the Hessian of ½(out − y)² is diag(−6, 2): |−6| dominates.
    x, y = torch.zeros(4, 1, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    assert top_hessian_eigenvalue(Saddle(), x, y) == pytest.approx(2.0, rel=1e-6)


def test_training_reduces_risk_and_divergence_is_reported():
    data = TeacherProblem(n=300, d=5, teacher_width=2, noise=0.1).sample(seed=0)
    path = train_network(data, method="sam", rho=0.1, eta=0.1, n_steps=300, width=20)
    assert path.best_risk < 0.5 * path.risk[0]
    assert not path.diverged
    blown = train_network(data, method="gd", eta=500.0, n_steps=200, width=20, sharpness=False)
    assert blown.diverged and blown.steps[-1] < 200


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"activation": "gelu"}, "activation"),
        ({"d": 0}, "d must"),
        ({"noise": float("inf")}, "noise"),
    ],
)
def test_bad_problems(kwargs, match):
    with pytest.raises(LabcoreError, match=match):
        TeacherProblem(**kwargs)


def test_bad_training_arguments():
    problem = TeacherProblem(n=20, d=3, teacher_width=1)
    data = problem.sample()
    with pytest.raises(LabcoreError, match="method"):
        train_network(data, method="adam")
    with pytest.raises(LabcoreError, match="eta"):
        train_network(data, eta=0.0)
    with pytest.raises(LabcoreError, match="w must be"):
        problem.risk(np.zeros((2, 4)), np.zeros(2), data)
    with pytest.raises(LabcoreError, match="NaN"):
        problem.risk(np.full((1, 3), np.nan), np.zeros(1), data)
