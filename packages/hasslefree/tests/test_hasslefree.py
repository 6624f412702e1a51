import itertools
import json
from pathlib import Path

import pytest
import torch
from hasslefree import (
    HassleFreeConfig,
    OATSConfig,
    Whitening,
    closed_form_lowrank,
    hassle_free,
    layer_rank,
    load_peft,
    oats,
    objective,
    save_peft,
)
from hasslefree.core import adam_lowrank, damped_statistic, warm_subspace_svd
from layerwise import Calibration, SparseGPTConfig, compress, load, save
from layerwise.sparsity import NM, nm_holds, nm_mask
from layerwise.structure import FactoredLinear

from labcore import LabcoreError
from labcore.models import tiny_causal_lm

DATA = Path(__file__).parent / "data"


def random_layer(seed: int, rows: int = 24, cols: int = 32, tokens: int = 256):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(cols, cols, generator=g) / cols**0.5 + torch.eye(cols)
    X = torch.randn(tokens, cols, generator=g) @ mix
    return torch.randn(rows, cols, generator=g), X.T @ X


def relative(W, approx, H):
    return objective(W, approx, H) / objective(W, torch.zeros_like(W), H)


# -- the closed-form L-step ------------------------------------------------------------------


def _als_minimum(M, H, rank, starts=20, steps=400):
    """Brute force: alternating least squares (each half-step an exact least squares) from
    many random starts; the lowest objective found."""
    M, H = M.double(), H.double()
    g = torch.Generator().manual_seed(0)
    best = float("inf")
    for _ in range(starts):
        A = torch.randn(rank, M.shape[1], generator=g, dtype=torch.float64)
        for _ in range(steps):
            B = torch.linalg.solve(A @ H @ A.T, A @ H @ M.T).T  # min over B given A
            A = torch.linalg.lstsq(B, M).solution  # min over A given B (H positive definite)
        best = min(best, objective(M, B @ A, H))
    return best


@pytest.mark.parametrize("rank", [1, 2, 4])
def test_closed_form_is_the_exact_minimizer(rank):
    W, H = random_layer(rank, rows=6, cols=10, tokens=60)
    U, V, Z = closed_form_lowrank(W, Whitening.from_statistic(H), rank, kind="exact")
    assert U.shape == (6, rank) and V.shape == (rank, 10)
    f_closed = objective(W, U @ V, H)
    f_brute = _als_minimum(W, H, rank)
    assert f_closed == pytest.approx(f_brute, rel=1e-4)
    # the whitened product is what the objective tracks: ||W C - Z||² = f
    white = Whitening.from_statistic(H)
    assert float((W @ white.c - Z).double().pow(2).sum()) == pytest.approx(f_closed, rel=1e-4)


def test_identity_statistic_gives_eckart_young():
    W = torch.randn(12, 20, generator=torch.Generator().manual_seed(3))
    U, V, _ = closed_form_lowrank(W, Whitening.from_statistic(torch.eye(20)), 3, kind="exact")
    Us, s, Vh = torch.linalg.svd(W, full_matrices=False)
    assert torch.allclose(U @ V, (Us[:, :3] * s[:3]) @ Vh[:3], atol=1e-4)


def test_randomized_svd_matches_exact_on_a_real_spectrum():
    W, H = random_layer(5, rows=48, cols=64)
    white = Whitening.from_statistic(H)
    U, V, _ = closed_form_lowrank(W, white, 8, kind="exact")
    Ur, Vr, _ = closed_form_lowrank(W, white, 8, kind="randomized", iters=6)
    assert objective(W, Ur @ Vr, H) <= objective(W, U @ V, H) * (1 + 1e-3)


def test_closed_form_never_worse_than_a_thousand_adam_steps():
    W, H = random_layer(6)
    Hd = damped_statistic(H, 0.005, 0.005)
    white = Whitening.from_statistic(Hd)
    U, V, _ = closed_form_lowrank(W, white, 4, kind="exact")
    g = torch.Generator().manual_seed(0)
    Ua, Va = adam_lowrank(
        W, white, torch.zeros(24, 4), torch.randn(4, 32, generator=g) * 0.1, steps=1000, lr=1e-2
    )
    assert objective(W, U @ V, Hd) <= objective(W, Ua @ Va, Hd) * (1 + 1e-6)


def test_warm_subspace_svd_converges_to_the_top_singular_values():
    A = torch.randn(40, 30, generator=torch.Generator().manual_seed(7))
    _, s, _, basis = warm_subspace_svd(A, 5, None, iters=2)
    for _ in range(30):
        _, s, _, basis = warm_subspace_svd(A, 5, basis, iters=1)
    assert torch.allclose(s, torch.linalg.svdvals(A)[:5], rtol=1e-4)


# -- the alternation --------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["sparsegpt", "alps"])
def test_objective_never_increases_and_beats_one_shot(solver):
    for seed in range(4):
        W, H = random_layer(seed)
        cfg = HassleFreeConfig(rank=4, sparse_solver=solver, rounds=12, tol=0.0)
        S, U, V, info = hassle_free(W, H, cfg)
        trace = info["objective_trace"]
        assert all(b <= a for a, b in itertools.pairwise(trace)), trace
        Hd = damped_statistic(H, cfg.damp, cfg.diag_damp)
        assert relative(W, S + U @ V, Hd) == pytest.approx(trace[-1], rel=1e-4)
        one_shot = HassleFreeConfig(rank=4, rounds=1, refit=False)
        S1, U1, V1, _ = hassle_free(W, H, one_shot)
        assert relative(W, S + U @ V, Hd) < 0.9 * relative(W, S1 + U1 @ V1, Hd)


def test_exact_recovery_of_a_sparse_plus_low_rank_weight():
    g = torch.Generator().manual_seed(11)
    S0 = torch.randn(16, 32, generator=g)
    keep = torch.zeros(16, 8, 4, dtype=torch.bool)
    keep.scatter_(2, torch.rand(16, 8, 4, generator=g).argsort(2)[..., :2], True)
    S0 = S0 * keep.reshape(16, 32) * 4  # large entries on a 2:4 support
    L0 = torch.randn(16, 1, generator=g) @ torch.randn(1, 32, generator=g) * 0.3
    W = S0 + L0
    X = torch.randn(512, 32, generator=g)
    S, _U, _V, info = hassle_free(
        W, X.T @ X, HassleFreeConfig(rank=1, rounds=30, tol=0.0, damp=0.0, diag_damp=0.0)
    )
    assert info["objective_trace"][-1] < 1e-4
    assert torch.equal(S != 0, keep.reshape(16, 32))


@pytest.mark.parametrize("nm", ["2:4", "4:8", "1:4"])
def test_nm_pattern_and_rank_are_exact(nm):
    W, H = random_layer(8)
    S, U, V, info = hassle_free(W, H, HassleFreeConfig(nm=nm, rank=3, rounds=3))
    pattern = NM(*map(int, nm.split(":")))
    assert nm_holds(S, pattern)
    assert int((S != 0).sum()) == W.numel() * pattern.n // pattern.m
    assert int(torch.linalg.matrix_rank(U.double() @ V.double())) == 3
    assert info["params"] == W.numel() * pattern.n // pattern.m + 3 * (24 + 32)
    assert info["s_sparsity"] == pytest.approx(pattern.sparsity)


def test_unstructured_share_is_exact():
    W, H = random_layer(9)
    # each solver's own count: SparseGPT floors the pruned share, ALPS rounds the kept one
    expected = {"sparsegpt": int(0.6 * 768), "alps": 768 - round(0.4 * 768)}
    for solver, zeros in expected.items():
        cfg = HassleFreeConfig(nm=None, sparsity=0.6, rank=2, rounds=3, sparse_solver=solver)
        S, *_ = hassle_free(W, H, cfg)
        assert int((S == 0).sum()) == zeros


def test_compression_budget_sets_the_rank():
    assert HassleFreeConfig().rank == 32 and HassleFreeConfig(compression=0.4).rank is None
    cfg = HassleFreeConfig(nm="2:4", compression=0.4)
    for shape in [(576, 576), (1536, 576), (192, 576)]:
        r = layer_rank(shape, cfg)
        kept = shape[0] * shape[1] // 2 + r * sum(shape)
        target = 0.6 * shape[0] * shape[1]
        assert target - sum(shape) < kept <= target  # within one rank unit of the budget
    assert layer_rank((576, 576), cfg) == 28
    # N:M counts kept weights: 2:8 keeps a quarter, so at compression 0.6 L gets 0.15
    assert layer_rank((576, 576), HassleFreeConfig(nm="2:8", compression=0.6)) == 43
    assert layer_rank((576, 576), HassleFreeConfig(nm="4:8", compression=0.4)) == 28


def test_adam_lowrank_step_runs_and_is_monotone():
    W, H = random_layer(10)
    cfg = HassleFreeConfig(rank=4, lowrank_step="adam", rounds=4, tol=0.0, adam_steps=20)
    _, _, _, info = hassle_free(W, H, cfg)
    closed = hassle_free(W, H, HassleFreeConfig(rank=4, rounds=4, tol=0.0))[3]
    trace = info["objective_trace"]
    assert all(b <= a for a, b in itertools.pairwise(trace))
    assert closed["objective_trace"][-1] <= trace[-1]


def test_oats_pattern_rank_and_identity_scaling():
    W, H = random_layer(12)
    S, U, V, info = oats(W, torch.diagonal(H), OATSConfig(rank=3, iterations=20))
    assert nm_holds(S, NM(2, 4)) and int((S != 0).sum()) == W.numel() // 2
    assert U.shape == (24, 3) and V.shape == (3, 32) and info["rank"] == 3
    # with D = I, OATS is plain robust-PCA-like splitting: its residual is below magnitude's
    S1, U1, V1, _ = oats(W, torch.ones(32), OATSConfig(rank=3, iterations=30, svd="exact"))
    magnitude = W.masked_fill(nm_mask(W.abs(), NM(2, 4)), 0.0)
    assert float((W - S1 - U1 @ V1).norm()) < float((W - magnitude).norm())
    Sr, Ur, Vr, _ = oats(W, torch.ones(32), OATSConfig(rank=3, iterations=30))
    assert float((W - Sr - Ur @ Vr).norm()) == pytest.approx(
        float((W - S1 - U1 @ V1).norm()), rel=0.05
    )


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rank": 4, "compression": 0.3}, "not both"),
        ({"rank": 0}, "positive integer"),
        ({"rank": None, "compression": 0.6}, "no room for the low-rank part"),
        ({"nm": "4:2"}, "N:M"),
        ({"sparse_solver": "wanda"}, "sparse_solver"),
        ({"lowrank_step": "sgd"}, "lowrank_step"),
        ({"rounds": 0}, "rounds"),
        ({"damp": -1.0}, "non-negative"),
    ],
)
def test_bad_configs_are_refused(kwargs, match):
    with pytest.raises(LabcoreError, match=match):
        HassleFreeConfig(**kwargs)


def test_bad_layers_are_refused():
    W, H = random_layer(13, rows=8, cols=12)
    with pytest.raises(LabcoreError, match=r"rank 9 exceeds min\(out, in\) = 8"):
        hassle_free(W, H, HassleFreeConfig(nm="2:4", rank=9))
    with pytest.raises(LabcoreError, match="multiple of 8"):
        hassle_free(W, H, HassleFreeConfig(nm="4:8", rank=2))
    with pytest.raises(LabcoreError, match="H must be"):
        hassle_free(W, torch.eye(5), HassleFreeConfig(rank=2))
    with pytest.raises(LabcoreError, match="NaN"):
        hassle_free(W.clone().fill_(float("nan")), H, HassleFreeConfig(rank=2))
    with pytest.raises(LabcoreError, match="exceeds"):
        oats(W, torch.ones(12), OATSConfig(rank=20))


# -- engine, save, PEFT -----------------------------------------------------------------------


def _cal(tok, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Calibration(torch.randint(3, len(tok), (4, 32), generator=g), None)


def test_engine_reloads_exactly_and_peft_adapter_reproduces_logits(tmp_path):
    from hasslefree import compress as decompose

    model, tok = tiny_causal_lm("llama")
    report = decompose(model, _cal(tok), HassleFreeConfig(rank=4, rounds=3), device="cpu",
                       progress=False)  # fmt: skip
    assert all(layer.info["rank"] == 4 for layer in report.layers)
    assert report.sparsity == pytest.approx(0.5)
    ids = torch.randint(3, len(tok), (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(ids).logits
    save(model, tok, tmp_path / "out", report=report)
    loaded, _, _sidecar = load(tmp_path / "out")
    assert isinstance(loaded.get_submodule("model.layers.0.self_attn.q_proj"), FactoredLinear)
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, before, atol=1e-5)

    out = save_peft(loaded, tok, tmp_path / "peft")
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 4 and len(config["target_modules"]) == 14
    peft_model = load_peft(out)
    with torch.no_grad():
        assert torch.allclose(peft_model(ids).logits, before, atol=1e-5)
    merged = load_peft(out, merge=True)
    factored = loaded.get_submodule("model.layers.1.mlp.down_proj")
    dense = merged.get_submodule("model.layers.1.mlp.down_proj").weight
    assert torch.allclose(dense, factored.dense_weight(), atol=1e-6)
    # the base checkpoint alone holds only S: exactly half of each group of 4 is zero
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(out / "base")
    assert nm_holds(base.get_submodule("model.layers.0.mlp.up_proj").weight, NM(2, 4))
    with pytest.raises(LabcoreError, match="no sparse-plus-low-rank layers"):
        save_peft(base, tok, tmp_path / "again")


def test_engine_layer_errors_rank_the_methods():
    _, tok = tiny_causal_lm("llama")
    cal = _cal(tok, seed=2)
    errs = {}
    configs = {
        "sparsegpt": SparseGPTConfig(nm="2:4"),
        "one-shot": HassleFreeConfig(rank=4, rounds=1, refit=False),
        "oats": OATSConfig(rank=4),
        "hasslefree": HassleFreeConfig(rank=4),
    }
    for label, cfg in configs.items():
        model, _ = tiny_causal_lm("llama")
        rep, _ = compress(model, cfg, cal, device="cpu", progress=False, propagate="dense")
        errs[label] = rep.mean_rel_error
    assert errs["hasslefree"] < errs["one-shot"] < errs["sparsegpt"]
    assert errs["hasslefree"] < errs["oats"]


def test_engine_refuses_a_rank_the_layers_cannot_take():
    model, tok = tiny_causal_lm("llama")
    with pytest.raises(LabcoreError, match=r"rank 100 exceeds min\(out, in\)"):
        compress(model, HassleFreeConfig(rank=100), _cal(tok), device="cpu", progress=False)


# -- CLI and bench ----------------------------------------------------------------------------


def test_run_json_and_export_peft_on_the_tiny_checkpoint(tmp_path, capsys):
    from hasslefree.cli import main

    argv = ["run", "--model", str(DATA / "tiny-llama"), "--calib-corpus", str(DATA / "calib.txt")]
    argv += ["--calib-windows", "2", "--seqlen", "16", "--eval-windows", "0", "--rank", "2"]
    argv += ["--rounds", "2", "--device", "cpu", "--out", str(tmp_path / "out"), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["method"] == "hasslefree" and payload["sparsity"] == pytest.approx(0.5)
    assert main(["export-peft", str(tmp_path / "out"), "--out", str(tmp_path / "p"), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert Path(exported["adapter"], "adapter_model.safetensors").is_file()
    assert main(["export-peft", str(tmp_path / "out")]) == 2
    assert "--out DIR is required" in capsys.readouterr().err
    assert main([*argv[:-3], "--rank", "64", "--out", str(tmp_path / "o2")]) == 2
    assert "exceeds min(out, in)" in capsys.readouterr().err


def test_bench_on_a_tiny_model(tmp_path, monkeypatch):
    from hasslefree.bench import run_bench

    import labcore.data
    from labcore.bench import BenchConfig

    bbc = labcore.data.load_corpus("bbc")
    small = labcore.data.Corpus("bbc", bbc.train[:20], bbc.test[:20], disjoint=True)
    monkeypatch.setattr(labcore.data, "load_corpus", lambda name="bbc", **_: small)
    monkeypatch.setattr("hasslefree.bench.QUICK_RANKS", (2,))
    options = {"model": str(DATA / "tiny-llama"), "calib_windows": 2, "eval_windows": 2}
    config = BenchConfig(quick=True, device="cpu", out=tmp_path / "out",
                         options={**options, "seqlen": 32})  # fmt: skip
    report = run_bench(config)
    methods = [r.method for r in report.rows]
    assert methods == ["dense", "sparsegpt", "hasslefree", "oats", "sparse+lowrank"]
    rows = {r.method: r.metrics for r in report.rows}
    assert rows["dense"]["params_ratio"] == 1.0
    assert rows["sparsegpt"]["params_ratio"] == pytest.approx(0.5, abs=0.01)
    assert rows["hasslefree"]["params_ratio"] == rows["oats"]["params_ratio"] > 0.5
    assert rows["hasslefree"]["time_vs_sparsegpt"] > 0 and rows["hasslefree"]["mean_rounds"] >= 1
    assert rows["hasslefree"]["mean_rel_error"] < rows["sparse+lowrank"]["mean_rel_error"]


@pytest.mark.parametrize("module", ["hasslefree", "hasslefree.core", "hasslefree.export"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_each_trace_entry_is_the_objective_after_that_round():
    """A run stopped after k rounds is the k-th state of a longer run (deterministic): its
    recomputed objective equals entry k of the longer run's trace."""
    W, H = random_layer(14)
    cfg = dict(rank=3, tol=0.0, solver_patience=3)
    _, _, _, info = hassle_free(W, H, HassleFreeConfig(rounds=6, **cfg))
    Hd = damped_statistic(H, 0.005, 0.005)
    for k in (1, 2, 4, 6):
        S, U, V, _ = hassle_free(W, H, HassleFreeConfig(rounds=k, **cfg))
        assert relative(W, S + U @ V, Hd) == pytest.approx(info["objective_trace"][k - 1], rel=1e-4)


@pytest.mark.parametrize("rounds", [2, 4])
def test_each_round_fits_s_to_w_minus_the_previous_l_exactly(rounds):
    """The S of round k is the least-squares fit of W - L_(k-1) on its support (the masked
    gradient vanishes; a target of W instead of W - L fails), and L_k the best rank-r fit of
    W - S_k. Runs are deterministic, so a run of k - 1 rounds gives L_(k-1)."""
    W, H = random_layer(15)
    cfg = dict(rank=3, tol=0.0, refit_iters=60, svd="exact")
    _, U0, V0, _ = hassle_free(W, H, HassleFreeConfig(rounds=rounds - 1, **cfg))
    S, U, V, _ = hassle_free(W, H, HassleFreeConfig(rounds=rounds, **cfg))
    Hd = damped_statistic(H, 0.005, 0.005).double()
    E = (W - U0 @ V0 - S).double()
    gradient = (E @ Hd) * (S != 0)
    assert float(gradient.norm()) < 1e-4 * float((W.double() @ Hd).norm())  # CG tol 1e-4
    U2, V2, _ = closed_form_lowrank(W - S, Whitening.from_statistic(Hd.float()), 3, kind="exact")
    assert objective(W - S, U @ V, Hd) <= objective(W - S, U2 @ V2, Hd) * (1 + 1e-5)


def test_dead_inputs_and_empty_statistics():
    W, H = random_layer(16)
    H[:, 5] = 0.0
    H[5, :] = 0.0  # input 5 never fires
    S, U, V, _ = hassle_free(W, H, HassleFreeConfig(rank=3, rounds=3))
    assert torch.all(S[:, 5] == 0) and float((U @ V)[:, 5].abs().max()) < 1e-4
    white = Whitening.from_statistic(H)  # a raw statistic with a dead input
    assert torch.isfinite(white.c).all() and torch.isfinite(white.c_inv).all()
    S0, U0, V0, _ = hassle_free(W, torch.zeros(32, 32), HassleFreeConfig(rank=3, rounds=2))
    assert nm_holds(S0, NM(2, 4)) and torch.isfinite(U0 @ V0).all()


def test_factors_are_balanced_in_weight_space():
    W, H = random_layer(17)
    _, U, V, _ = hassle_free(W, H * 1e4, HassleFreeConfig(rank=3, rounds=2))
    assert torch.allclose(U.norm(dim=0), V.norm(dim=1), rtol=1e-4)


def test_shared_whitening_equals_one_layer_at_a_time():
    from hasslefree import HassleFree
    from layerwise.methods.base import LayerStats

    W1, H = random_layer(18)
    W2 = torch.randn(8, 32, generator=torch.Generator().manual_seed(19))
    stats = LayerStats(H, torch.diagonal(H).clone(), 256, 256.0)
    method = HassleFree(HassleFreeConfig(rank=3, rounds=3))
    grouped = method.compress_group({"a": (W1, stats), "b": (W2, stats)})
    for name, weight in (("a", W1), ("b", W2)):
        alone = method.compress_layer(name, weight, stats)
        assert torch.allclose(grouped[name].weight, alone.weight, atol=1e-5)
        product = grouped[name].extras["lowrank_u"] @ grouped[name].extras["lowrank_v"]
        alone_product = alone.extras["lowrank_u"] @ alone.extras["lowrank_v"]
        assert torch.allclose(product, alone_product, atol=1e-4)


def test_peft_export_with_per_layer_ranks_and_its_base_path(tmp_path):
    from hasslefree import compress as decompose

    model, tok = tiny_causal_lm("llama")
    cfg = HassleFreeConfig(compression=0.3, rounds=2)
    report = decompose(model, _cal(tok), cfg, device="cpu", progress=False)
    assert len({layer.info["rank"] for layer in report.layers}) > 1
    out = save_peft(model, tok, tmp_path / "peft")
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((tmp_path / "peft" / "base").resolve())
    assert config["rank_pattern"] and config["rank_pattern"] == config["alpha_pattern"]
    ids = torch.randint(3, len(tok), (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(load_peft(out)(ids).logits, model(ids).logits, atol=1e-5)
    assert isinstance(model.get_submodule("model.layers.0.mlp.up_proj"), FactoredLinear)
