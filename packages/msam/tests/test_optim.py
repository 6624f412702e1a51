import copy
import math

import pytest
import torch
from msam import SAM, MicroBatchSAM, frozen_batchnorm_statistics, split_batch
from msam.models import build_model
from torch import nn

from labcore import LabcoreError

ce = nn.functional.cross_entropy


def _model(norm="group", seed=0):
    torch.manual_seed(seed)
    return build_model("cnn-small", in_channels=1, num_classes=10, norm=norm)


def _batch(n=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def _same(a, b, atol=0.0):
    return all(torch.allclose(x, y, rtol=0, atol=atol) for x, y in zip(a, b, strict=True))


def _reference_sam_gradient(model, x, y, rho, micro_batches):
    """A plain, independent mSAM: perturb a copy of the model per micro-batch, average."""
    grads = [torch.zeros_like(p) for p in model.parameters()]
    for xb, yb in zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True):
        m = copy.deepcopy(model)
        g = torch.autograd.grad(ce(m(xb), yb), list(m.parameters()))
        norm = torch.sqrt(sum((t**2).sum() for t in g))
        with torch.no_grad():
            for p, t in zip(m.parameters(), g, strict=True):
                p.add_(rho * t / (norm + 1e-12))
        h = torch.autograd.grad(ce(m(xb), yb), list(m.parameters()))
        for acc, t in zip(grads, h, strict=True):
            acc.add_(t / micro_batches)
    return grads


def test_gradient_matches_an_independent_reference_and_averages():
    model = _model()
    x, y = _batch()
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, rho=0.1, micro_batches=4, lr=0.1)
    opt.zero_grad()
    opt.sam_backward(lambda b: ce(model(b[0]), b[1]), (x, y), model=model)
    ours = [p.grad.clone() for p in model.parameters()]
    ref = _reference_sam_gradient(model, x, y, 0.1, 4)
    assert _same(ours, ref, atol=1e-5)
    # Summing (Keras) would give exactly k times this; the update is an average.
    assert not _same([4 * g for g in ref], ours, atol=1e-5)
    # The weights were restored after the perturbations.
    assert _same(_params(model), _params(_model()))


def test_one_micro_batch_is_sam():
    a, b = _model(), _model()
    x, y = _batch()
    opt_a = MicroBatchSAM(
        a.parameters(), torch.optim.SGD, rho=0.05, micro_batches=1, lr=0.1, momentum=0.9
    )
    opt_b = SAM(b.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    for _ in range(3):
        opt_a.train_step(a, ce, (x, y))
        opt_b.train_step(b, ce, (x, y))
    assert _same(_params(a), _params(b))
    ref = _reference_sam_gradient(_model(), x, y, 0.05, 1)
    opt_c = SAM((m := _model()).parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    opt_c.zero_grad()
    opt_c.sam_backward(lambda bt: ce(m(bt[0]), bt[1]), (x, y))
    assert _same([p.grad for p in m.parameters()], ref, atol=1e-6)


@pytest.mark.parametrize("micro_batches", [1, 4])
@pytest.mark.parametrize("base", [torch.optim.SGD, torch.optim.AdamW])
def test_zero_rho_is_the_base_optimizer(micro_batches, base):
    a, b = _model(norm="batch"), _model(norm="batch")
    kwargs = {"lr": 0.05, "weight_decay": 1e-3}
    opt_a = MicroBatchSAM(a.parameters(), base, rho=0.0, micro_batches=micro_batches, **kwargs)
    opt_b = base(b.parameters(), **kwargs)
    for step in range(3):
        x, y = _batch(seed=step)
        opt_a.train_step(a, ce, (x, y))
        for xb, yb in zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True):
            # The base optimizer on the same micro-batches, gradients averaged.
            (ce(b(xb), yb) / micro_batches).backward()
        opt_b.step()
        opt_b.zero_grad()
    atol = 0.0 if micro_batches == 1 else 1e-6
    assert _same(_params(a), _params(b), atol=atol)
    # BatchNorm statistics too: one update per micro-batch, at the unperturbed point.
    assert _same(list(a.buffers()), list(b.buffers()), atol=1e-6)


def test_vmap_and_sequential_give_the_same_update():
    a, b = _model(), _model()
    opts = [
        MicroBatchSAM(
            m.parameters(), torch.optim.SGD, rho=0.05, micro_batches=8, lr=0.1, momentum=0.9
        )
        for m in (a, b)
    ]
    for step in range(3):
        batch = _batch(n=64, seed=step)
        la = opts[0].train_step(a, ce, batch, mode="sequential")
        lb = opts[1].train_step(b, ce, batch, mode="vmap")
        assert math.isclose(float(la), float(lb), rel_tol=1e-5)
    assert _same(_params(a), _params(b), atol=1e-5)


def test_vmap_adaptive_matches_sequential():
    a, b = _model(), _model()
    kw = {"rho": 0.5, "adaptive": True, "micro_batches": 4, "lr": 0.1}
    oa = MicroBatchSAM(a.parameters(), torch.optim.SGD, **kw)
    ob = MicroBatchSAM(b.parameters(), torch.optim.SGD, **kw)
    batch = _batch()
    oa.train_step(a, ce, batch)
    ob.train_step(b, ce, batch, mode="vmap")
    assert _same(_params(a), _params(b), atol=1e-5)
    assert not _same(_params(a), _params(_model()), atol=1e-4)  # it moved


def test_vmap_refuses_batchnorm_and_uneven_splits():
    m = _model(norm="batch")
    opt = MicroBatchSAM(m.parameters(), torch.optim.SGD, micro_batches=4, lr=0.1)
    with pytest.raises(LabcoreError, match="BatchNorm"):
        opt.train_step(m, ce, _batch(), mode="vmap")
    g = _model()
    opt = MicroBatchSAM(g.parameters(), torch.optim.SGD, micro_batches=5, lr=0.1)
    with pytest.raises(LabcoreError, match="multiple of the number of micro-batches"):
        opt.train_step(g, ce, _batch(n=32), mode="vmap")


def test_uneven_split_weights_micro_batches_by_size():
    assert [len(t) for t in split_batch(torch.zeros(10), 3)] == [4, 3, 3]
    model = _model()
    x, y = _batch(n=10)
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, rho=0.0, micro_batches=3, lr=0.1)
    opt.zero_grad()
    opt.sam_backward(lambda b: ce(model(b[0]), b[1]), (x, y))
    # With rho = 0 the size-weighted average is the full-batch gradient, exactly.
    full = torch.autograd.grad(ce(model(x), y), list(model.parameters()))
    assert _same([p.grad for p in model.parameters()], list(full), atol=1e-6)


def test_micro_batch_size_option():
    model = _model()
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, micro_batch_size=6, lr=0.1)
    assert opt.num_micro_batches(32) == 6
    calls = []
    opt.zero_grad()
    opt.sam_backward(lambda b: calls.append(len(b[0])) or ce(model(b[0]), b[1]), _batch(n=32))
    assert sorted(calls) == sorted([6, 6, 5, 5, 5, 5] * 2)


def test_gradient_accumulation_equals_one_big_step():
    a, b = _model(), _model()
    x, y = _batch(n=32)
    kw = {"rho": 0.05, "lr": 0.1, "momentum": 0.9}
    big = MicroBatchSAM(a.parameters(), torch.optim.SGD, micro_batches=4, **kw)
    small = MicroBatchSAM(b.parameters(), torch.optim.SGD, micro_batches=2, **kw)
    big.train_step(a, ce, (x, y))
    small.zero_grad()
    for chunk in (slice(0, 16), slice(16, 32)):
        small.sam_backward(
            lambda bt: ce(b(bt[0]), bt[1]), (x[chunk], y[chunk]), weight=0.5, model=b
        )
    small.step()
    assert _same(_params(a), _params(b), atol=1e-6)


def test_batchnorm_statistics_follow_the_unperturbed_passes():
    model = _model(norm="batch")
    twin = copy.deepcopy(model)
    x, y = _batch(n=32)
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, rho=0.5, micro_batches=4, lr=0.1)
    opt.train_step(model, ce, (x, y))
    # The same statistics as forward passes of the unperturbed twin on the 4 micro-batches.
    with torch.no_grad():
        for xb in x.chunk(4):
            twin(xb)
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_twin = [m for m in twin.modules() if isinstance(m, nn.BatchNorm2d)]
    for m, t in zip(bn, bn_twin, strict=True):
        assert int(m.num_batches_tracked) == int(t.num_batches_tracked) == 4
        assert torch.allclose(m.running_mean, t.running_mean, atol=1e-6)
        assert torch.allclose(m.running_var, t.running_var, atol=1e-6)
        assert m.track_running_stats  # restored


def test_frozen_batchnorm_leaves_eval_layers_alone():
    model = _model(norm="batch").eval()
    with frozen_batchnorm_statistics(model):
        assert all(m.track_running_stats for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_lr_scheduler_on_either_object():
    model = _model()
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, micro_batches=2, lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    opt.train_step(model, ce, _batch())
    sched.step()
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    sched2 = torch.optim.lr_scheduler.StepLR(opt.base_optimizer, step_size=1, gamma=0.5)
    opt.train_step(model, ce, _batch())
    sched2.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)


def test_state_dict_round_trip():
    a = _model()
    kw = {"rho": 0.05, "micro_batches": 2, "lr": 0.1, "momentum": 0.9}
    opt = MicroBatchSAM(a.parameters(), torch.optim.SGD, **kw)
    opt.train_step(a, ce, _batch())
    b = copy.deepcopy(a)
    opt_b = MicroBatchSAM(b.parameters(), torch.optim.SGD, **kw)
    # Through a copy, as after torch.save/torch.load (a live state dict shares tensors).
    opt_b.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt_b.param_groups is opt_b.base_optimizer.param_groups
    assert opt_b.state_dict()["param_groups"][0]["rho"] == 0.05
    for m, o in ((a, opt), (b, opt_b)):
        o.train_step(m, ce, _batch(seed=5))
    assert _same(_params(a), _params(b))  # momentum buffers were restored


def test_grad_scaler_finite_updates_and_skips_inf_steps():
    model = _model()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, micro_batches=4, lr=0.1)
    before = _params(model)
    opt.train_step(model, ce, _batch(), scaler=scaler, autocast_dtype=torch.bfloat16)
    after = _params(model)
    assert all(torch.isfinite(p).all() for p in after) and not _same(before, after)

    def bad_loss(out, y):
        return ce(out, y) * torch.tensor(float("inf"))

    scale = scaler.get_scale()
    opt.train_step(model, bad_loss, _batch(), scaler=scaler)
    assert _same(_params(model), after)  # step skipped
    assert scaler.get_scale() < scale  # and the scale backed off


def test_grad_scaler_in_vmap_mode_matches_sequential():
    a, b = _model(), _model()
    outs = []
    for m, mode in ((a, "sequential"), (b, "vmap")):
        scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
        opt = MicroBatchSAM(m.parameters(), torch.optim.SGD, micro_batches=4, lr=0.1)
        opt.train_step(m, ce, _batch(), scaler=scaler, mode=mode)
        outs.append(_params(m))
    assert _same(*outs, atol=1e-5)


def test_non_finite_loss_without_scaler_is_an_error():
    model = _model()
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, micro_batches=2, lr=0.1)
    with pytest.raises(FloatingPointError, match="not finite"):
        opt.train_step(model, lambda o, y: ce(o, y) * float("nan"), _batch())


def test_ddp_on_one_process_matches_the_plain_model(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        plain, wrapped = _model(), DistributedDataParallel(_model())
        for m in (plain, wrapped):
            opt = MicroBatchSAM(m.parameters(), torch.optim.SGD, micro_batches=4, lr=0.1)
            opt.train_step(m, ce, _batch())
        assert _same(_params(plain), _params(wrapped.module), atol=1e-6)
        opt = MicroBatchSAM(wrapped.parameters(), torch.optim.SGD, micro_batches=4, lr=0.1)
        with pytest.raises(LabcoreError, match="DistributedDataParallel"):
            opt.train_step(wrapped, ce, _batch(), mode="vmap")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rho": -0.1}, "rho must be"),
        ({"rho": float("nan")}, "rho must be"),
        ({"micro_batches": 0}, "micro_batches must be"),
        ({"micro_batches": 2, "micro_batch_size": 8}, "not both"),
        ({"micro_batch_size": 0}, "micro_batch_size must be"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(LabcoreError, match=match):
        MicroBatchSAM(_model().parameters(), torch.optim.SGD, lr=0.1, **kwargs)


def test_base_optimizer_instance_is_refused():
    m = _model()
    with pytest.raises(LabcoreError, match="class"):
        MicroBatchSAM(m.parameters(), torch.optim.SGD(m.parameters(), lr=0.1))


def test_bad_batches():
    m = _model()
    opt = MicroBatchSAM(m.parameters(), torch.optim.SGD, micro_batches=8, lr=0.1)
    with pytest.raises(LabcoreError, match="empty"):
        opt.train_step(m, ce, (torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(LabcoreError, match="larger than the batch"):
        opt.train_step(m, ce, _batch(n=4))
    with pytest.raises(LabcoreError, match="disagree"):
        opt.train_step(m, ce, (torch.zeros(16, 1, 8, 8), torch.zeros(15, dtype=torch.long)))
    with pytest.raises(LabcoreError, match="pair"):
        opt.train_step(m, ce, torch.zeros(16, 1, 8, 8))
    with pytest.raises(LabcoreError, match="needs the batch"):
        opt.step(lambda b: ce(m(b[0]), b[1]))
    with pytest.raises(LabcoreError, match="mode must be"):
        opt.train_step(m, ce, _batch(), mode="parallel")
    with pytest.raises(LabcoreError, match="scalar"):
        opt.step(lambda b: m(b[0]), _batch())


def test_disabled_scaler_still_refuses_non_finite_gradients():
    model = _model()
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, micro_batches=2, lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    before = _params(model)
    with pytest.raises(FloatingPointError):
        opt.train_step(model, lambda o, y: ce(o, y) * float("inf"), _batch(), scaler=scaler)
    assert _same(_params(model), before)


def test_non_finite_gradient_at_the_perturbed_point_is_caught():
    model = _model()
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, micro_batches=2, rho=0.05, lr=0.1)
    calls = []

    def closure(b):
        calls.append(1)
        loss = ce(model(b[0]), b[1])
        return loss * float("nan") if len(calls) == 2 else loss  # the first perturbed pass

    before = _params(model)
    with pytest.raises(FloatingPointError):
        opt.step(closure, _batch())
    assert _same(_params(model), before)
    assert all(p.grad is None for p in model.parameters())  # earlier .grad restored


def test_optimizer_survives_deepcopy_and_plain_state_dicts():
    model = _model()
    opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, micro_batches=2, lr=0.1, momentum=0.9)
    twin = copy.deepcopy(opt)
    assert twin.micro_batches == 2 and twin.param_groups is twin.base_optimizer.param_groups
    plain = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    ce(model(_batch()[0]), _batch()[1]).backward()
    plain.step()
    opt.load_state_dict(copy.deepcopy(plain.state_dict()))
    assert opt.param_groups[0]["lr"] == 0.3 and opt.param_groups[0]["rho"] == 0.05
    opt.train_step(model, ce, _batch())  # no KeyError for rho/adaptive


def test_split_batch_needs_a_positive_count():
    with pytest.raises(LabcoreError, match="positive integer"):
        split_batch(torch.zeros(4), 0)


def test_unnormalized_ascent_on_a_quadratic_is_preconditioned_gradient_descent():
    # L(β) = ‖Xβ − y‖²/(2n): un-normalized SAM's gradient is H(I + ρH)(β − β̂).
    torch.manual_seed(0)
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randn(40, dtype=torch.float64)
    model = nn.Linear(5, 1, bias=False).double()

    def mse(out, t):
        return 0.5 * ((out.squeeze(1) - t) ** 2).mean()

    beta = model.weight.detach().clone().squeeze(0)
    h = x.T @ x / 40
    beta_hat = torch.linalg.solve(h, x.T @ y / 40)
    rho = 0.3
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, normalize=False, lr=0.1)
    opt.zero_grad()
    opt.sam_backward(lambda b: mse(model(b[0]), b[1]), (x, y))
    expected = h @ (torch.eye(5, dtype=torch.float64) + rho * h) @ (beta - beta_hat)
    assert torch.allclose(model.weight.grad.squeeze(0), expected, atol=1e-12)
    # The normalized ascent differs on the same point.
    opt_n = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=0.1)
    opt_n.zero_grad()
    opt_n.sam_backward(lambda b: mse(model(b[0]), b[1]), (x, y))
    assert not torch.allclose(model.weight.grad.squeeze(0), expected, atol=1e-3)


def test_unnormalized_vmap_and_scaled_updates_match_sequential():
    a, b, c = _model(), _model(), _model()
    kw = {"rho": 0.5, "normalize": False, "micro_batches": 4, "lr": 0.1}
    batch = _batch()
    MicroBatchSAM(a.parameters(), torch.optim.SGD, **kw).train_step(a, ce, batch)
    MicroBatchSAM(b.parameters(), torch.optim.SGD, **kw).train_step(b, ce, batch, mode="vmap")
    assert _same(_params(a), _params(b), atol=1e-5)
    # A GradScaler's factor is divided out of the un-normalized ε.
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    MicroBatchSAM(c.parameters(), torch.optim.SGD, **kw).train_step(c, ce, batch, scaler=scaler)
    assert _same(_params(a), _params(c), atol=1e-5)
    normalized = _model()
    kw_n = {**kw, "normalize": True}
    MicroBatchSAM(normalized.parameters(), torch.optim.SGD, **kw_n).train_step(
        normalized, ce, batch
    )
    assert not _same(_params(a), _params(normalized), atol=1e-4)
