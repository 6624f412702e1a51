import pytest
import torch
from layerwise import (
    Calibration,
    GPTQConfig,
    IdentityConfig,
    MagnitudeConfig,
    RTNConfig,
    SparseGPTConfig,
    WandaConfig,
    compress,
    load,
    save,
)
from layerwise.engine import LayerwiseEngine
from layerwise.linalg import damped_cholesky_inverse
from layerwise.methods import get_method_class
from layerwise.quant import pack_codes, unpack_codes
from layerwise.sparsity import NM, nm_holds, nm_mask

from labcore import LabcoreError
from labcore.models import tiny_causal_lm


def _cal(tok, n=6, L=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Calibration(torch.randint(3, len(tok), (n, L), generator=g), None)


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "gpt2", "opt"])
def test_identity_engine_matches_full_forward(model_type):
    model, tok = tiny_causal_lm(model_type)
    cal = _cal(tok)
    captured = []
    blocks = LayerwiseEngine(model, cal, device="cpu", progress=False)
    last = __import__("layerwise.architectures", fromlist=["x"]).get_blocks(model, blocks.arch)[-1]
    h = last.register_forward_hook(
        lambda m, i, o: captured.append(o[0] if isinstance(o, tuple) else o)
    )
    with torch.no_grad():
        model(input_ids=cal.input_ids, attention_mask=cal.attention_mask, use_cache=False)
    h.remove()
    engine = LayerwiseEngine(model, cal, device="cpu", batch_size=4, progress=False)
    engine.run(get_method_class("identity")(IdentityConfig()))
    out = torch.cat(engine.outputs_)
    assert torch.allclose(out, captured[0], atol=1e-5)


def test_gptq_beats_rtn_and_sparsegpt_beats_magnitude_per_layer():
    _model, tok = tiny_causal_lm("llama")
    cal = _cal(tok, n=8)
    reports = {}
    for key, cfg in {
        "rtn": RTNConfig(bits=3),
        "gptq": GPTQConfig(bits=3),
        "mag": MagnitudeConfig(0.5),
        "sgpt": SparseGPTConfig(0.5),
    }.items():
        m, _ = tiny_causal_lm("llama", tokenizer=tok)
        reports[key], _ = compress(m, cfg, cal, device="cpu", propagate="dense", progress=False)
    for a, b in zip(reports["gptq"].layers, reports["rtn"].layers, strict=True):
        assert a.rel_error < b.rel_error, a.name
    for a, b in zip(reports["sgpt"].layers, reports["mag"].layers, strict=True):
        assert a.rel_error < b.rel_error, a.name


@pytest.mark.parametrize(
    "cfg",
    [
        MagnitudeConfig(0.5),
        WandaConfig(0.5),
        SparseGPTConfig(0.5),
        MagnitudeConfig(0.3, granularity="row"),
    ],
)
def test_unstructured_sparsity_is_exact(cfg):
    model, tok = tiny_causal_lm("llama")
    rep, _ = compress(model, cfg, _cal(tok), device="cpu", progress=False)
    for layer in rep.layers:
        rows, cols = layer.shape
        zeros = round(layer.sparsity * rows * cols)
        expected = (
            int(rows * cols * cfg.sparsity)
            if not isinstance(cfg, WandaConfig | MagnitudeConfig)
            or getattr(cfg, "granularity", "row") == "layer"
            else rows * int(cols * cfg.sparsity)
        )
        assert zeros == expected, layer.name


@pytest.mark.parametrize(
    "cfg", [MagnitudeConfig(nm="2:4"), WandaConfig(nm="2:4"), SparseGPTConfig(nm="2:4")]
)
def test_two_four_pattern_holds(cfg):
    model, tok = tiny_causal_lm("llama")
    compress(model, cfg, _cal(tok), device="cpu", progress=False)
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and "layers" in name:
            w = mod.weight.detach()
            assert nm_holds(w, NM(2, 4))
            assert int((w.reshape(w.shape[0], -1, 4) != 0).sum(-1).min()) == 2


def test_singular_hessian_triggers_damping_fallback():
    x = torch.randn(4, 16)
    x = torch.cat([x, x, torch.zeros(4, 16)], dim=1)  # duplicated and dead columns
    H = x.t() @ x
    W = torch.randn(8, 48)
    from layerwise.methods import gptq_quantize
    from layerwise.quant import QuantSpec

    with pytest.raises(LabcoreError):
        damped_cholesky_inverse(H, percdamp=0.0, max_increases=0)
    qw, info = gptq_quantize(W, H, QuantSpec(3), percdamp=0.0)
    assert info["damping_increases"] >= 1
    assert torch.isfinite(qw.dequantize()).all()


def test_padding_does_not_change_statistics():
    model, tok = tiny_causal_lm("llama")
    ids = torch.randint(3, len(tok), (2, 12))
    padded = torch.cat([ids, torch.full((2, 6), tok.pad_token_id)], dim=1)
    mask = torch.cat(
        [torch.ones(2, 12, dtype=torch.long), torch.zeros(2, 6, dtype=torch.long)], dim=1
    )
    from layerwise.methods.base import LayerResult, Method

    seen = []

    class Spy(Method):
        name = "spy"
        config_class = IdentityConfig

        def compress_layer(self, name, weight, stats):
            seen.append((stats.H.clone(), stats.tokens))
            return LayerResult(weight.clone())

    LayerwiseEngine(model, Calibration(ids, None), device="cpu", progress=False).run(
        Spy(IdentityConfig())
    )
    first = list(seen)
    seen.clear()
    LayerwiseEngine(model, Calibration(padded, mask), device="cpu", progress=False).run(
        Spy(IdentityConfig())
    )
    for (a, na), (b, nb) in zip(first, seen, strict=True):
        assert na == nb == 24
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_save_load_roundtrip_logits(tmp_path):
    model, tok = tiny_causal_lm("llama")
    rep, q = compress(
        model,
        GPTQConfig(bits=3, group_size=32, act_order=True),
        _cal(tok),
        device="cpu",
        progress=False,
    )
    save(model, tok, tmp_path / "out", report=rep, quantized=q)
    loaded, _, sidecar = load(tmp_path / "out")
    ids = torch.randint(3, len(tok), (2, 10))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert sidecar["method"] == "gptq" and sidecar["quantized"]


def test_pack_unpack_codes():
    codes = torch.randint(0, 8, (5, 37), dtype=torch.uint8)
    assert torch.equal(unpack_codes(pack_codes(codes, 3), 3, 37), codes)


def test_clear_errors():
    from transformers import BertConfig, BertLMHeadModel

    bert = BertLMHeadModel(
        BertConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            is_decoder=True,
        )
    )
    with pytest.raises(LabcoreError, match="unsupported model type 'bert'; supported: gpt2, llama"):
        LayerwiseEngine(bert, Calibration(torch.ones(1, 4, dtype=torch.long), None))
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(LabcoreError, match=r"sparsity must lie in \[0, 1\)"):
            SparseGPTConfig(sparsity=bad)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gptq_on_cuda_matches_cpu():
    from layerwise.methods.gptq import gptq_quantize
    from layerwise.quant import QuantSpec

    g = torch.Generator().manual_seed(0)
    X = torch.randn(512, 64, generator=g)
    W = torch.randn(32, 64, generator=g)
    H = X.T @ X
    spec = QuantSpec(bits=4)
    q_cpu, _ = gptq_quantize(W, H, spec)
    q_gpu, _ = gptq_quantize(W.cuda(), H.cuda(), spec)
    agree = (q_cpu.codes == q_gpu.codes.cpu()).float().mean().item()
    assert agree > 0.99  # float reductions differ between devices; codes must not drift


# -- bench ---------------------------------------------------------------------------------


@pytest.fixture
def small_bbc(monkeypatch):
    """The bench reads BBC through ``labcore.data.load_corpus``: a slice of it keeps the
    tokenization (most of a tiny bench's time) short."""
    import labcore.data

    bbc = labcore.data.load_corpus("bbc")
    small = labcore.data.Corpus("bbc", bbc.train[:20], bbc.test[:20], disjoint=True)
    monkeypatch.setattr(labcore.data, "load_corpus", lambda name="bbc", **_: small)
    return small


def _tiny_options(path, only):
    return {"model": str(path), "calib_windows": 2, "eval_windows": 2, "seqlen": 32, "only": only}


def test_bench_json_on_a_tiny_model(tmp_path, capsys, small_bbc, tiny_checkpoint):
    """`layerwise bench --json`: one JSON document on stdout, every row once per seed, the
    files in --out; seed 0 as the second seed gives the numbers of a seed-0-only run."""
    import json

    from layerwise.bench import run_bench
    from layerwise.cli import main

    from labcore.bench import BenchConfig, load_results

    path = tiny_checkpoint
    out = tmp_path / "out"
    argv = ["bench", "--quick", "--out", str(out), "--model", str(path), "--seqlen", "32"]
    argv += ["--calib-windows", "2", "--eval-windows", "2", "--only", "dense,rtn"]
    assert main([*argv, "--seeds", "1,0", "--device", "cpu", "--json", "-q"]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = payload["rows"]
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("dense", 1),
        ("rtn", 1),
        ("dense", 0),
        ("rtn", 0),
    ]
    assert payload["provenance"]["seeds"] == [1, 0] and payload["config"]["quick"] is True
    assert load_results(out)["rows"] == rows
    assert (out / "results.md").is_file()

    config = BenchConfig(
        quick=True, device="cpu", out=tmp_path / "one", options=_tiny_options(path, "dense")
    )
    (one,) = run_bench(config).rows
    assert one.seed == 0 and one.metrics["perplexity"] == rows[2]["metrics"]["perplexity"]
    assert not (tmp_path / "one" / "results.json").exists()  # the CLI writes, not run_bench


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8), (1, 4), (3, 16)])
def test_nm_mask_large_and_small_paths_agree_and_prune_exactly(n, m):
    """Whole layers take the comparison path, small slices topk: same masks without ties,
    exactly M - N pruned per group with ties (zeros)."""
    g = torch.Generator().manual_seed(m)
    score = torch.rand(1024, 128, generator=g)
    whole = nm_mask(score, NM(n, m))
    sliced = torch.cat([nm_mask(score[i : i + 8], NM(n, m)) for i in range(0, 1024, 8)])
    assert torch.equal(whole, sliced)
    # every kept score is at least every pruned score of its group
    kept_min = score.masked_fill(whole, float("inf")).reshape(1024, -1, m).min(-1).values
    pruned_max = score.masked_fill(~whole, -1.0).reshape(1024, -1, m).max(-1).values
    assert bool((kept_min >= pruned_max).all())
    score[:, ::3] = 0.0
    assert bool((nm_mask(score, NM(n, m)).reshape(1024, -1, m).sum(-1) == m - n).all())
