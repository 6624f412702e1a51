import pytest
import torch
from msam import hessian_eigenvalue, hessian_trace, m_sharpness
from torch import nn

from labcore import LabcoreError


def mse(out, y):
    return ((out.squeeze(-1) - y) ** 2).mean()


@pytest.fixture
def regression():
    """Linear least squares: the Hessian is exactly 2 XᵀX / n."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g, dtype=torch.float64) * torch.linspace(
        0.2, 3.0, 12, dtype=torch.float64
    )
    y = torch.randn(200, generator=g, dtype=torch.float64)
    model = nn.Linear(12, 1, bias=False).double()
    hessian = 2 * x.T @ x / len(x)
    batches = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 200, 50)]
    return model, batches, hessian


def test_power_iteration_recovers_the_top_eigenvalue(regression):
    model, batches, hessian = regression
    top = torch.linalg.eigvalsh(hessian)[-1].item()
    est = hessian_eigenvalue(model, mse, batches, iters=500, tol=1e-10)
    assert est == pytest.approx(top, rel=1e-4)


def test_hutchinson_trace_is_close_to_the_true_trace(regression):
    model, batches, hessian = regression
    est = hessian_trace(model, mse, batches, probes=400, seed=1)
    assert est == pytest.approx(torch.trace(hessian).item(), rel=0.05)


def test_eigenvalue_on_a_small_network_matches_the_full_hessian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)).double()  # 44 parameters
    x, y = torch.randn(64, 4, dtype=torch.float64), torch.randint(0, 2, (64,))
    ce = nn.functional.cross_entropy
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().flatten() for p in params])

    def loss_of(v):
        chunks, i = [], 0
        for s in shapes:
            n = int(torch.tensor(s).prod())
            chunks.append(v[i : i + n].view(s))
            i += n
        h = torch.tanh(x @ chunks[0].T + chunks[1])
        return ce(h @ chunks[2].T + chunks[3], y)

    eigs = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat))
    dominant = eigs[eigs.abs().argmax()].item()
    est = hessian_eigenvalue(model, ce, [(x, y)], iters=1000, tol=1e-12)
    assert est == pytest.approx(dominant, rel=1e-3)


def test_m_sharpness_is_nonnegative_grows_with_rho_and_restores_weights(regression):
    model, batches, _ = regression
    before = [p.detach().clone() for p in model.parameters()]
    small = m_sharpness(model, mse, batches, rho=0.01, micro_batch_size=16)
    large = m_sharpness(model, mse, batches, rho=0.1, micro_batch_size=16)
    assert 0 <= small < large
    assert m_sharpness(model, mse, batches, rho=0.0) == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_m_sharpness_matches_the_closed_form_for_a_quadratic():
    # One example, L(w) = (xᵀw - y)²: the worst ε on the ball is ρ x/‖x‖ (same sign as the
    # residual), so the maximum is (|r| + ρ‖x‖)² - r².
    x = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    y = torch.tensor([1.0], dtype=torch.float64)
    model = nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.2, 0.1]]))
    r = abs(float((x @ model.weight.T - y).detach()))
    expected = (r + 0.1 * 5.0) ** 2 - r**2
    got = m_sharpness(model, mse, [(x, y)], rho=0.1, micro_batch_size=1, ascent_steps=1)
    assert got == pytest.approx(expected, rel=1e-9)


def test_measures_restore_training_mode(regression):
    model, batches, _ = regression
    model.train()
    hessian_eigenvalue(model, mse, batches, iters=2)
    assert model.training


def test_bad_input():
    model = nn.Linear(2, 1)
    with pytest.raises(LabcoreError, match="no data"):
        hessian_trace(model, mse, [])
    with pytest.raises(LabcoreError, match="pairs"):
        hessian_eigenvalue(model, mse, [torch.zeros(3, 2)])
    with pytest.raises(LabcoreError, match="rho"):
        m_sharpness(model, mse, [(torch.zeros(3, 2), torch.zeros(3))], rho=-1)
    with pytest.raises(LabcoreError, match="iters"):
        hessian_eigenvalue(model, mse, [(torch.zeros(3, 2), torch.zeros(3))], iters=0)


def test_unused_parameters_and_submodule_modes():
    class WithUnused(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1, bias=False)
            self.drop = nn.Dropout(0.5)
            self.unused = nn.Linear(2, 2)  # no gradient reaches it

        def forward(self, x):
            return self.drop(self.linear(x))

    torch.manual_seed(0)
    model = WithUnused()
    model.drop.eval()  # the user's choice for a submodule, kept after measuring
    x, y = torch.randn(8, 3), torch.randn(8)
    assert hessian_eigenvalue(model, mse, [(x, y)], iters=50) > 0
    assert model.training and not model.drop.training
