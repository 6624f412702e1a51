import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from layerwise import Calibration, compress, load, save
from osscar import OSSCARConfig, backward_elimination, local_search, refit
from osscar.core import (
    _inverse,
    add_groups,
    insertion_gains,
    magnitude_support,
    objective,
    obs_costs,
    remove_groups,
    start,
)

from labcore import LabcoreError
from labcore.models import tiny_causal_lm

DATA = Path(__file__).parent / "data"


def problem(seed, n_in=48, n_out=16, tokens=200, size=1):
    """A layer problem (H, C) with correlated inputs; ``size`` columns per group."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(n_in, n_in, generator=g, dtype=torch.float64) / n_in**0.5
    X = torch.randn(tokens, n_in, generator=g, dtype=torch.float64) @ (mix + torch.eye(n_in))
    W = torch.randn(n_out, n_in, generator=g, dtype=torch.float64)
    H = X.T @ X + 1e-2 * float((X * X).sum(0).mean()) * torch.eye(n_in, dtype=torch.float64)
    C = H @ W.T
    groups = torch.arange(n_in).reshape(-1, size)
    return W, H, C, groups


def support_value(H, C, groups, kept):
    cols = groups[kept].reshape(-1)
    B = refit(H, C, cols)
    return -0.5 * float((B * C).sum())


@pytest.mark.parametrize("size", [1, 4])
def test_low_rank_updates_equal_recomputing_the_inverse(size):
    _, H, C, groups = problem(0, size=size)
    state = backward_elimination(H, C, groups, keep=groups.shape[0] // 2, per_round=3)
    cols = groups[state.kept].reshape(-1)
    assert torch.allclose(state.Hinv, _inverse(H, cols), rtol=1e-8, atol=1e-10)
    assert torch.allclose(state.B, refit(H, C, cols), rtol=1e-7, atol=1e-9)
    assert state.f == pytest.approx(objective(state.B, H, C), rel=1e-10)
    # adding groups back (the bordered inverse of local search) is exact too
    add = torch.nonzero(~state.kept).squeeze(1)[:2]
    add_groups(state, H, C, groups, add)
    cols = groups[state.kept].reshape(-1)
    assert torch.allclose(state.Hinv, _inverse(H, cols), rtol=1e-8, atol=1e-10)
    assert torch.allclose(state.B, refit(H, C, cols), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("size", [1, 3])
def test_costs_and_gains_are_the_exact_objective_changes(size):
    _, H, C, groups = problem(1, n_in=24, size=size)
    n = groups.shape[0]
    state = backward_elimination(H, C, groups, keep=n - 3, per_round=1)
    costs, gains = obs_costs(state, groups), insertion_gains(state, H, C, groups)
    for i in range(n):
        kept = state.kept.clone()
        kept[i] = not kept[i]
        change = support_value(H, C, groups, kept) - state.f
        if state.kept[i]:
            assert change == pytest.approx(float(costs[i]), rel=1e-6)
        else:
            assert -change == pytest.approx(float(gains[i]), rel=1e-6)


def test_refit_equals_numpy_solve():
    _, H, C, _ = problem(2)
    cols = torch.tensor([0, 3, 5, 11, 30])
    B = refit(H, C, cols)
    expected = np.linalg.solve(H[cols][:, cols].numpy(), C[cols].numpy())
    assert np.allclose(B[cols].numpy(), expected)
    assert torch.count_nonzero(B.abs().sum(1)) == cols.numel()


def test_local_search_never_increases_and_lands_near_the_brute_force_optimum():
    optimal, worst, ratios_elim, ratios_ls = 0, 0.0, [], []
    for seed in range(12):
        _, H, C, groups = problem(seed, n_in=12, n_out=6, tokens=40)  # few tokens: hard
        best = min(
            support_value(H, C, groups, torch.tensor([i in s for i in range(12)]))
            for s in itertools.combinations(range(12), 6)
        )
        state = backward_elimination(H, C, groups, keep=6, per_round=2)
        eliminated, n0 = state.f, len(state.history)
        state = local_search(state, H, C, groups, iterations=30, swaps=3)
        assert all(b < a for a, b in itertools.pairwise(state.history[n0 - 1 :]))
        assert state.f <= eliminated
        full = start(H, C, groups).f
        ratio = (state.f - full) / (best - full)  # loss increase over the optimal one
        ratios_elim.append((eliminated - full) / (best - full))
        ratios_ls.append(ratio)
        optimal += ratio < 1 + 1e-9
        worst = max(worst, ratio)
        mag = magnitude_support(torch.linalg.solve(H, C).T, groups, 6)
        assert state.f <= support_value(H, C, groups, mag) + 1e-9
    # measured: local search finds the optimum on 8 of 12 supports, at worst 1.051 times the
    # optimal loss (elimination alone: 5 of 12, at worst 1.68 times)
    assert optimal >= 8 and worst < 1.06
    assert sum(ratios_ls) < sum(ratios_elim)


def test_local_search_history_is_strictly_decreasing():
    _, H, C, groups = problem(7, n_in=64, tokens=60)
    state = backward_elimination(H, C, groups, keep=20, per_round=10)
    n0 = len(state.history)
    state = local_search(state, H, C, groups, iterations=30, swaps=10)
    tail = state.history[n0 - 1 :]
    assert all(b < a for a, b in itertools.pairwise(tail))


def test_partition_quotas_are_kept():
    _, H, C, groups = problem(3, n_in=36, size=4)  # 9 "heads" in 3 partitions of 3
    partition = torch.arange(9) // 3
    state = backward_elimination(
        H, C, groups, keep=6, per_round=2, partition=partition, keep_per_partition=2
    )
    assert torch.bincount(partition[state.kept]).tolist() == [2, 2, 2]
    state = local_search(state, H, C, groups, swaps=2, partition=partition)
    assert torch.bincount(partition[state.kept]).tolist() == [2, 2, 2]


def test_remove_groups_zeroes_the_removed_rows():
    _, H, C, groups = problem(4)
    state = start(H, C, groups)
    remove_groups(state, groups, torch.tensor([1, 7]))
    assert torch.all(state.B[[1, 7]] == 0) and torch.all(state.Hinv[:, [1, 7]] == 0)


# -- on the engine ---------------------------------------------------------------------------


def _cal(tok, n=6, L=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Calibration(torch.randint(3, len(tok), (n, L), generator=g), None)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
@pytest.mark.parametrize("unit", ["kv-group", "query"])
def test_shrunk_equals_masked_and_saves_reloads_generates(tmp_path, model_type, unit):
    model, tok = tiny_causal_lm(model_type)
    masked, _ = tiny_causal_lm(model_type, tokenizer=tok)
    cfg = OSSCARConfig(mlp_sparsity=0.5, head_sparsity=0.5, head_unit=unit)
    cal = _cal(tok)
    report, _ = compress(model, cfg, cal, device="cpu", progress=False)
    compress(masked, cfg, cal, device="cpu", progress=False, structured="mask")
    block = model.model.layers[0]
    assert block.mlp.down_proj.weight.shape == (64, 64) and block.mlp.up_proj.weight.shape == (
        64,
        64,
    )
    assert block.self_attn.o_proj.weight.shape == (64, 32)
    assert block.self_attn.k_proj.weight.shape == (16 if unit == "kv-group" else 32, 64)
    assert report.structure[1]["heads"] == 2 and report.structure[1]["neurons"] == 64
    ids = torch.randint(3, len(tok), (2, 10), generator=torch.Generator().manual_seed(9))
    assert torch.allclose(_logits(model, ids), _logits(masked, ids), atol=1e-5)

    save(model, tok, tmp_path / "out", report=report)
    loaded, _, _ = load(tmp_path / "out")
    assert torch.allclose(_logits(loaded, ids), _logits(model, ids), atol=1e-6)
    out = loaded.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape == (2, 13)
    from transformers import AutoModelForCausalLM  # uniform shapes: plain transformers loads it

    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert torch.allclose(_logits(plain, ids), _logits(model, ids), atol=1e-6)


def test_osscar_beats_magnitude_on_the_engine():
    errors = {}
    for support in ("osscar", "magnitude-refit", "magnitude"):
        model, tok = tiny_causal_lm("llama", hidden_size=64)
        cfg = OSSCARConfig(mlp_sparsity=0.5, support=support, target="layer")
        report, _ = compress(model, cfg, _cal(tok, n=8), device="cpu", progress=False)
        downs = [x for x in report.layers if x.name.endswith("down_proj")]
        errors[support] = [x.rel_error for x in downs]
        if support != "magnitude":
            assert all(x.info["loss_increase"] >= 0 for x in downs)
    for a, b, c in zip(
        errors["osscar"], errors["magnitude-refit"], errors["magnitude"], strict=True
    ):
        assert a <= b + 1e-6 and b <= c + 1e-6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mlp_sparsity": 1.0}, r"mlp_sparsity must be in \[0, 1\)"),
        ({"mlp_sparsity": -0.1}, r"mlp_sparsity must be in \[0, 1\)"),
        ({"head_sparsity": 1.5}, r"head_sparsity must be in \[0, 1\)"),
        ({}, "nothing to prune"),
        ({"mlp_sparsity": 0.3, "head_unit": "kv"}, "head_unit must be one of"),
        ({"mlp_sparsity": 0.3, "ridge": 0}, "ridge must be"),
        ({"mlp_sparsity": 0.3, "local_iterations": -1}, "local_iterations must be"),
    ],
)
def test_bad_configs_are_refused(kwargs, match):
    with pytest.raises(LabcoreError, match=match):
        OSSCARConfig(**kwargs)


def test_bad_models_and_budgets_are_refused():
    model, tok = tiny_causal_lm("llama")  # 4 heads in 2 K/V groups
    with pytest.raises(LabcoreError, match=r"removes 2 of 2 K/V head groups"):
        compress(model, OSSCARConfig(head_sparsity=0.9), _cal(tok), device="cpu", progress=False)
    with pytest.raises(LabcoreError, match="removes no K/V head group"):
        compress(model, OSSCARConfig(head_sparsity=0.1), _cal(tok), device="cpu", progress=False)
    with pytest.raises(LabcoreError, match="removes all 2 query heads"):
        cfg = OSSCARConfig(head_sparsity=0.9, head_unit="query")
        compress(model, cfg, _cal(tok), device="cpu", progress=False)
    gpt2, tok2 = tiny_causal_lm("gpt2")
    with pytest.raises(LabcoreError, match="structured"):
        compress(gpt2, OSSCARConfig(mlp_sparsity=0.3), _cal(tok2), device="cpu", progress=False)


def test_run_json_on_the_tiny_checkpoint(tmp_path, capsys):
    from osscar.cli import main

    out = tmp_path / "out"
    argv = ["run", "--model", str(DATA / "tiny-llama"), "--calib-corpus", str(DATA / "calib.txt")]
    argv += ["--mlp-sparsity", "0.25", "--calib-windows", "2", "--seqlen", "16"]
    argv += ["--eval-windows", "0", "--device", "cpu", "--out", str(out), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["method"] == "osscar" and (out / "layerwise.json").is_file()
    loaded, _, _ = load(out)
    assert loaded.model.layers[0].mlp.down_proj.weight.shape[1] == 24  # of 32 neurons


def test_bench_on_a_tiny_model(tmp_path, monkeypatch):
    from osscar.bench import run_bench

    import labcore.data
    from labcore.bench import BenchConfig

    bbc = labcore.data.load_corpus("bbc")
    small = labcore.data.Corpus("bbc", bbc.train[:20], bbc.test[:20], disjoint=True)
    monkeypatch.setattr(labcore.data, "load_corpus", lambda name="bbc", **_: small)
    monkeypatch.setattr(
        "layerwise.evaluate.measure_speed",
        lambda model, **_: {
            "params": float(sum(p.numel() for p in model.parameters())),
            "latency_ms": 1.0,
            "tokens_per_s": 1.0,
        },
    )
    model, tok = tiny_causal_lm("llama")  # 4 heads in 2 K/V groups: one group goes
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    options = {"model": str(tmp_path / "tiny"), "calib_windows": 2, "eval_windows": 2}
    config = BenchConfig(
        quick=True, device="cpu", out=tmp_path / "out", options={**options, "seqlen": 32}
    )
    report = run_bench(config)
    methods = [r.method for r in report.rows]
    assert methods == ["dense", "osscar", "osscar-no-ls", "magnitude", "magnitude-refit"]
    for row in report.rows[1:]:
        assert 0 < row.metrics["params_ratio"] < 1 and row.metrics["latency_ratio"] == 1.0


def test_allocation_takes_the_cheapest_steps_first():
    from osscar.core import allocate

    curves = {0: ([0, 10, 20], [0.0, 0.1, 0.5]), 1: ([0, 10, 20], [0.0, 0.01, 0.03])}
    assert allocate(curves, 20) == {0: 0, 1: 20}
    assert allocate(curves, 25) == {0: 5, 1: 20}  # the last step taken in part
    with pytest.raises(LabcoreError, match="fewer than 50"):
        allocate(curves, 50)


def test_obs_allocation_keeps_the_total_and_reloads(tmp_path):
    model, tok = tiny_causal_lm("llama", num_layers=3)
    masked, _ = tiny_causal_lm("llama", num_layers=3, tokenizer=tok)
    cfg = OSSCARConfig(mlp_sparsity=0.5, head_sparsity=0.5, allocation="obs")
    cal = _cal(tok, n=8)
    report, _ = compress(model, cfg, cal, device="cpu", progress=False)
    compress(masked, cfg, cal, device="cpu", progress=False, structured="mask")
    neurons = [report.structure[b]["neurons"] for b in range(3)]
    kv = [report.structure[b]["kv_heads"] for b in range(3)]
    assert sum(neurons) == 3 * 64 and min(neurons) >= 32  # the uniform total, >= half each
    assert sum(kv) == 3 and min(kv) >= 1
    ids = torch.randint(3, len(tok), (2, 10), generator=torch.Generator().manual_seed(9))
    assert torch.allclose(_logits(model, ids), _logits(masked, ids), atol=1e-5)
    save(model, tok, tmp_path / "out", report=report)
    loaded, _, sidecar = load(tmp_path / "out")
    assert torch.allclose(_logits(loaded, ids), _logits(model, ids), atol=1e-6)
    if len(set(neurons)) > 1:
        assert sidecar["block_structure"]["uniform"] is False
