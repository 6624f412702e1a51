"""SPARTA's mechanics: masks, the private score, accounting and bad input."""

from __future__ import annotations

import re

import pytest
import torch
from opacus import GradSampleModule
from sparta.reparam import DeltaLinear, check_opacus_compatible, reparametrize, set_masks
from sparta.train import RowScores, SpartaConfig, dp_finetune, noise_for_budget, select_rows
from torch import nn

from labcore.errors import LabcoreError


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )


def _data(n: int = 200, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 8, generator=g)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0.5).long()
    return X, y


def test_reparametrization_keeps_the_function_and_folding_is_exact():
    m = _net()
    x = torch.randn(5, 8)
    before = m(x)
    assert reparametrize(m, skip=("4",)) == ["0", "2"]
    torch.testing.assert_close(m(x), before)
    with torch.no_grad():
        m[0].weight_delta.normal_()
    after = m(x)
    set_masks(m, {"0": torch.ones(16), "2": torch.zeros(16)})  # folds first
    torch.testing.assert_close(m(x), after)
    assert float(m[0].weight_delta.abs().sum()) == 0.0


def test_per_sample_gradients_match_autograd_and_masked_rows_are_zero():
    m = _net()
    reparametrize(m, skip=("4",))
    mask = torch.zeros(16)
    mask[[1, 5, 9]] = 1.0
    set_masks(m, {"0": mask, "2": torch.ones(16)})
    x = torch.randn(6, 8)
    gsm = GradSampleModule(m, loss_reduction="sum")
    gsm(x).sum().backward()
    gs = m[0].weight_delta.grad_sample.clone()
    gsm._close()
    assert gs[:, mask == 0].abs().sum() == 0
    for i in range(6):
        m.zero_grad()
        m(x[i : i + 1]).sum().backward()
        torch.testing.assert_close(m[0].weight_delta.grad, gs[i])


def test_row_scores_see_data_only_through_the_noisy_clipped_sum():
    """Equal clipped sums give equal scores (same noise seed), whatever produced them; the
    noise has the Gaussian mechanism's scale σC; the selection reads the scores only."""
    summed = {"a": torch.tensor([[3.0, -1.0], [0.5, 0.5], [-2.0, 2.0]])}
    a = RowScores({"a": (3, 2)}, noise_std=0.7, generator=torch.Generator().manual_seed(3))
    b = RowScores({"a": (3, 2)}, noise_std=0.7, generator=torch.Generator().manual_seed(3))
    a.update({"a": summed["a"].clone()}, 0.5)
    b.update({"a": -summed["a"]}, 0.5)  # |Σ| is what counts
    torch.testing.assert_close(a.row_scores()["a"], b.row_scores()["a"])
    big = RowScores({"a": (200, 50)}, noise_std=2.0, generator=torch.Generator().manual_seed(0))
    big.update({"a": torch.zeros(200, 50)}, 1.0)
    assert abs(float(big.total["a"].std()) - 2.0) < 0.05
    masks = select_rows({"a": torch.tensor([0.0, 5.0, 1.0, 7.0, 2.0])}, 0.4)
    assert masks["a"].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_sparta_masked_rows_never_change_and_the_budget_holds():
    X, y = _data()
    m = _net()
    original = {k: v.clone() for k, v in m.state_dict().items()}
    config = SpartaConfig(
        epochs=3, probe_epochs=1, batch_size=40, epsilon=2.0, trainable_fraction=0.25
    )
    res = dp_finetune(m, X, y, config, head="4")
    assert res.epsilon <= 2.0
    assert res.steps == 3 * 5  # probing, the mask epoch and the sparse epoch, all accounted
    for name in ("0", "2"):
        layer = m[int(name)]
        assert isinstance(layer, DeltaLinear)
        mask = res.masks[name].bool()
        assert int(mask.sum()) == 4  # ceil(0.25 · 16)
        W = layer.weight.detach()
        torch.testing.assert_close(W[~mask], original[f"{name}.weight"][~mask], rtol=0, atol=0)
        assert not torch.equal(W[mask], original[f"{name}.weight"][mask])
    assert 0 < res.trainable_fraction < 0.5


def test_the_mask_epoch_changes_no_weight(monkeypatch):
    """With probing off, everything the mask epoch sees is the pretrained model: stop right
    after it (epochs = 1) and the weights are unchanged."""
    X, y = _data()
    m = _net()
    original = {k: v.clone() for k, v in m.state_dict().items()}
    dp_finetune(m, X, y, SpartaConfig(epochs=1, probe_epochs=0, batch_size=40), head="4")
    for name in ("0", "2"):
        torch.testing.assert_close(m[int(name)].weight.detach(), original[f"{name}.weight"])
    torch.testing.assert_close(m[4].weight.detach(), original["4.weight"])


def test_accounting_matches_opacus_own_numbers():
    """σ from our search spends at most ε by Opacus' RDP and PRV accountants, and not much
    less (the search stops within 1% of σ)."""
    from opacus.accountants import PRVAccountant, RDPAccountant

    for name, Acc in (("rdp", RDPAccountant), ("prv", PRVAccountant)):
        sigma = noise_for_budget(4.0, 1e-5, 0.01, 1000, name)
        acc = Acc()
        for _ in range(1000):
            acc.step(noise_multiplier=sigma, sample_rate=0.01)
        eps = acc.get_epsilon(delta=1e-5)
        assert 3.8 < eps <= 4.0, (name, sigma, eps)
    # the ε a run reports is Opacus' own for the (σ, q, steps) it took
    X, y = _data()
    config = SpartaConfig(method="last-layer", epochs=2, batch_size=40)
    res = dp_finetune(_net(), X, y, config, head="4")
    acc = PRVAccountant()
    acc.history = [(res.noise_multiplier, res.sample_rate, res.steps)]
    assert res.epsilon == pytest.approx(acc.get_epsilon(delta=res.delta), rel=1e-6)
    assert res.delta == pytest.approx(200**-1.1)


@pytest.mark.parametrize(
    "kwargs,says",
    [
        ({"epsilon": 0}, "epsilon must be a positive number"),
        ({"epsilon": -1.0}, "epsilon must be a positive number"),
        ({"trainable_fraction": 0.0}, "trainable_fraction (sparsity) must be in (0, 1]"),
        ({"trainable_fraction": 1.5}, "trainable_fraction (sparsity) must be in (0, 1]"),
        ({"delta": 1.0}, "delta must be in (0, 1)"),
        ({"method": "lora"}, "method must be one of"),
        ({"epochs": 2, "probe_epochs": 2}, "probe_epochs + 1 mask epoch <= epochs"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs, says):
    with pytest.raises(LabcoreError, match=re.escape(says)):
        SpartaConfig(**kwargs)


def test_delta_at_or_above_one_over_n_is_refused():
    X, y = _data(n=100)
    with pytest.raises(LabcoreError, match="is not below 1/n"):
        dp_finetune(_net(), X, y, SpartaConfig(delta=0.01), head="4")
    assert SpartaConfig().delta_for(100) == pytest.approx(100**-1.1)


def test_batchnorm_is_refused_naming_the_layer():
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    with pytest.raises(LabcoreError, match=r"layer '1' is BatchNorm1d.*GroupNorm"):
        check_opacus_compatible(model)
    X, y = _data()
    with pytest.raises(LabcoreError, match="no module named 'head'"):
        dp_finetune(_net(), X, y, SpartaConfig(), head="head")


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.GroupNorm(2, 6),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


def test_conv_per_sample_gradients_match_autograd_with_masked_channels_zero():
    m = _cnn()
    x = torch.randn(5, 1, 8, 8)
    before = m(x)
    assert reparametrize(m, skip=("6",)) == ["0", "3"]
    torch.testing.assert_close(m(x), before)
    mask = torch.tensor([1.0, 0, 0, 1, 0, 1, 0, 0])
    set_masks(m, {"0": torch.ones(6), "3": mask})
    gsm = GradSampleModule(m, loss_reduction="sum")
    gsm(x).sum().backward()
    gs = {k: m[k].weight_delta.grad_sample.clone() for k in (0, 3)}
    gs_bias = m[0].bias.grad_sample.clone()
    gsm._close()
    assert gs[3][:, mask == 0].abs().sum() == 0
    for i in range(5):
        m.zero_grad()
        m(x[i : i + 1]).sum().backward()
        for k in (0, 3):
            torch.testing.assert_close(m[k].weight_delta.grad, gs[k][i], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m[0].bias.grad, gs_bias[i], rtol=1e-4, atol=1e-5)


def test_sparta_on_a_groupnorm_cnn_keeps_masked_channels_fixed():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(120, 1, 8, 8, generator=g)
    y = (X[:, 0, :4].mean(dim=(1, 2)) > 0).long() + (X[:, 0, 4:].mean(dim=(1, 2)) > 0.2).long()
    m = _cnn()
    original = {k: v.clone() for k, v in m.state_dict().items()}
    config = SpartaConfig(epochs=3, probe_epochs=1, batch_size=30, trainable_fraction=0.25)
    res = dp_finetune(m, X, y, config, head="6")
    assert res.epsilon <= 4.0
    for k in ("0", "3"):
        mask = res.masks[k].bool()
        W = m[int(k)].weight.detach()
        torch.testing.assert_close(W[~mask], original[f"{k}.weight"][~mask], rtol=0, atol=0)
        assert not torch.equal(W[mask], original[f"{k}.weight"][mask])
    with pytest.raises(LabcoreError, match="groups must be 1"):
        reparametrize(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Linear(2, 2)), skip=("1",))


def test_history_scores_held_out_data_after_every_epoch():
    X, y = _data()
    Xe, ye = _data(n=60, seed=1)
    config = SpartaConfig(epochs=3, probe_epochs=1, batch_size=40)
    res = dp_finetune(_net(), X, y, config, head="4", X_eval=Xe, y_eval=ye)
    assert [h["phase"] for h in res.history] == ["probe", "mask", "train"]
    assert all(0.0 <= h["accuracy"] <= 1.0 for h in res.history)
    times = [h["time_s"] for h in res.history]
    assert times == sorted(times) and res.time_s >= times[-1]
