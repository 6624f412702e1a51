"""Extension points of the engine: model context, structured results, extra tensors."""

from dataclasses import dataclass

import pytest
import torch
from layerwise import Calibration, compress, load, save
from layerwise.methods.base import LayerResult, Method
from layerwise.structure import FactoredLinear, head_group_columns

from labcore import LabcoreError
from labcore.models import tiny_causal_lm


def _cal(tok, n=4, L=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Calibration(torch.randint(3, len(tok), (n, L), generator=g), None)


def _ids(tok, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, len(tok), (2, 12), generator=g)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


# -- a structured test plugin: half the MLP neurons and one K/V head group per block ---------


@dataclass
class HalvingConfig:
    vary_by_block: bool = True  # block 0 keeps all its heads (a non-uniform model)
    unit: str = "kv-group"  # or "query": one query head of each K/V group goes, K/V stay


class Halving(Method):
    """Keeps every other MLP neuron and all but one K/V head group of each block."""

    name = "test-halving"
    config_class = HalvingConfig
    statistics = "none"
    kind = "structured"

    def __init__(self, config):
        super().__init__(config)
        self.sites = []

    def compress_layer(self, name, weight, stats):  # pragma: no cover - compress_site decides
        raise AssertionError("compress_site is overridden")

    def compress_site(self, site, layers):
        self.sites.append(site)
        ctx = self.context
        out = {}
        for name, (w, _stats) in layers.items():
            result = LayerResult(w.clone())
            if name == "mlp.down_proj":
                result.keep_inputs = torch.arange(0, w.shape[1], 2)
            elif name == "self_attn.o_proj":
                drop = None if self.config.vary_by_block and site.block == 0 else site.block
                if self.config.unit == "query":  # query heads 1 and 3 (one per K/V group)
                    heads = [h for h in range(ctx.num_heads) if drop is None or h % 2 == 0]
                    result.keep_inputs = head_group_columns(
                        heads, head_dim=ctx.head_dim, heads_per_group=1
                    )
                else:
                    groups = [g for g in range(ctx.num_kv_heads) if g != drop]
                    result.keep_inputs = head_group_columns(
                        groups, head_dim=ctx.head_dim, heads_per_group=ctx.heads_per_group
                    )
            out[name] = result
        return out


def _params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("unit", ["kv-group", "query"])
@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
@pytest.mark.parametrize("vary", [True, False], ids=["per-block", "uniform"])
def test_structured_shrink_equals_mask_and_survives_save_load(tmp_path, model_type, vary, unit):
    model, tok = tiny_causal_lm(model_type)
    masked, _ = tiny_causal_lm(model_type, tokenizer=tok)
    cal = _cal(tok)
    method = Halving(HalvingConfig(vary_by_block=vary, unit=unit))
    report, _ = compress(model, method, cal, device="cpu", progress=False)
    compress(
        masked,
        Halving(HalvingConfig(vary, unit)),
        cal,
        device="cpu",
        progress=False,
        structured="mask",
    )

    # The method saw the model's geometry and every block's index and full names.
    ctx = method.context
    assert (ctx.num_heads, ctx.num_kv_heads, ctx.head_dim, ctx.heads_per_group) == (4, 2, 16, 2)
    assert ctx.n_blocks == 2 and ctx.intermediate_size == 128
    assert [s.block for s in method.sites] == [0] * 4 + [1] * 4
    assert method.sites[1].full_name("self_attn.o_proj") == "model.layers.0.self_attn.o_proj"

    block = model.model.layers[1]
    kv_kept = 1 if unit == "kv-group" else 2
    assert block.self_attn.q_proj.weight.shape == (32, 64)  # 2 of 4 query heads
    assert block.self_attn.k_proj.weight.shape == (16 * kv_kept, 64)
    assert block.self_attn.o_proj.weight.shape == (64, 32)
    assert block.self_attn.num_key_value_groups == 2 // kv_kept
    assert block.mlp.gate_proj.weight.shape == (64, 64) and block.mlp.down_proj.weight.shape == (
        64,
        64,
    )
    assert report.structure[1] == {
        "kv_heads": kv_kept,
        "heads": 2,
        "kv_heads_removed": 2 - kv_kept,
        "heads_removed": 2,
        "neurons": 64,
        "neurons_removed": 64,
    }
    assert _params(model) < _params(masked)

    ids = _ids(tok)
    expected = _logits(masked, ids)
    assert torch.allclose(_logits(model, ids), expected, atol=1e-5)

    save(model, tok, tmp_path / "out", report=report)
    loaded, _, sidecar = load(tmp_path / "out")
    assert torch.allclose(_logits(loaded, ids), _logits(model, ids), atol=1e-6)
    assert sidecar["block_structure"]["uniform"] is (not vary)
    generated = loaded.generate(
        ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id
    )
    assert generated.shape == (2, 16)

    from transformers import AutoModelForCausalLM

    if vary:  # per-block shapes: plain transformers refuses rather than loading garbage
        with pytest.raises((RuntimeError, ValueError)):
            AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    else:  # one shape for all blocks: the config says it and plain transformers loads it
        plain = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
        assert plain.config.num_key_value_heads == kv_kept
        assert plain.config.num_attention_heads == 2 and plain.config.intermediate_size == 64
        assert torch.allclose(_logits(plain, ids), _logits(model, ids), atol=1e-6)


def test_structured_errors_name_the_layer():
    model, tok = tiny_causal_lm("llama")

    class BadHeads(Halving):
        def compress_site(self, site, layers):
            out = {n: LayerResult(w.clone()) for n, (w, _) in layers.items()}
            if "self_attn.o_proj" in out:
                out["self_attn.o_proj"].keep_inputs = torch.arange(16)  # one query head of a pair
            return out

    with pytest.raises(
        LabcoreError, match=r"model.layers.0.self_attn.o_proj: .*whole K/V head groups"
    ):
        compress(model, BadHeads(HalvingConfig()), _cal(tok), device="cpu", progress=False)

    class OnQuery(Halving):
        def compress_site(self, site, layers):
            out = {n: LayerResult(w.clone()) for n, (w, _) in layers.items()}
            if "self_attn.q_proj" in out:
                out["self_attn.q_proj"].keep_inputs = torch.arange(8)
            return out

    class OutOfRange(Halving):
        def compress_site(self, site, layers):
            out = {n: LayerResult(w.clone()) for n, (w, _) in layers.items()}
            if "mlp.down_proj" in out:
                out["mlp.down_proj"].keep_inputs = torch.tensor([0, 500])
            return out

    model, tok = tiny_causal_lm("llama")
    with pytest.raises(LabcoreError, match=r"down_proj: keep_inputs must be distinct column"):
        compress(model, OutOfRange(HalvingConfig()), _cal(tok), device="cpu", progress=False)

    model, tok = tiny_causal_lm("llama")
    with pytest.raises(LabcoreError, match=r"keep_inputs is supported on self_attn\.o_proj"):
        compress(model, OnQuery(HalvingConfig()), _cal(tok), device="cpu", progress=False)

    gpt2, tok2 = tiny_causal_lm("gpt2")

    class OnGPT2(Halving):
        def compress_site(self, site, layers):
            out = {n: LayerResult(w.clone()) for n, (w, _) in layers.items()}
            if "mlp.c_proj" in out:
                out["mlp.c_proj"].keep_inputs = torch.arange(8)
            return out

    with pytest.raises(LabcoreError, match="structured pruning is not supported"):
        compress(gpt2, OnGPT2(HalvingConfig()), _cal(tok2), device="cpu", progress=False)


def test_module_grouping_sees_a_whole_module_at_once():
    model, tok = tiny_causal_lm("llama")

    class Joint(Halving):
        grouping = "module"

        def compress_site(self, site, layers):
            self.sites.append(site)
            return {n: LayerResult(w.clone()) for n, (w, _) in layers.items()}

    method = Joint(HalvingConfig())
    compress(model, method, _cal(tok), device="cpu", progress=False)
    assert [s.names for s in method.sites[:2]] == [
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
        ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    ]


# -- a sparse-plus-low-rank test plugin ------------------------------------------------------


@dataclass
class SplitConfig:
    rank: int = 3


class SparsePlusLowRank(Method):
    """W ≈ S + U V: U V the best rank-r part, S the residual with its smaller half zeroed."""

    name = "test-s-plus-uv"
    config_class = SplitConfig
    statistics = "none"
    kind = "sparse+lowrank"

    def compress_layer(self, name, weight, stats):
        U, s, Vh = torch.linalg.svd(weight, full_matrices=False)
        r = self.config.rank
        Ur, Vr = U[:, :r] * s[:r], Vh[:r]
        R = weight - Ur @ Vr
        S = torch.where(R.abs() >= R.abs().median(), R, torch.zeros_like(R))
        return LayerResult(S, extras={"lowrank_u": Ur, "lowrank_v": Vr, "note": torch.ones(1)})


def test_sparse_plus_low_rank_extras_survive_save_and_load(tmp_path):
    from layerwise.export import read_extras

    model, tok = tiny_causal_lm("llama")
    report, _ = compress(
        model, SparsePlusLowRank(SplitConfig()), _cal(tok), device="cpu", progress=False
    )
    layer = model.model.layers[0].mlp.down_proj
    assert isinstance(layer, FactoredLinear) and layer.rank == 3
    assert report.layers[0].info["rank"] == 3 and 0.45 < report.layers[0].sparsity < 0.55
    name = "model.layers.1.self_attn.q_proj"
    assert sorted(report.extras[name]) == ["lowrank_u", "lowrank_v", "note"]

    ids = _ids(tok)
    expected = _logits(model, ids)
    save(model, tok, tmp_path / "out", report=report)
    loaded, _, sidecar = load(tmp_path / "out")
    assert isinstance(loaded.get_submodule(name), FactoredLinear)
    for key, value in model.state_dict().items():  # S, U and V come back exactly
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.allclose(_logits(loaded, ids), expected, atol=1e-6)
    assert name in sidecar["factored_layers"]
    assert torch.equal(read_extras(tmp_path / "out")[name]["note"], torch.ones(1))

    dense, _, _ = load(tmp_path / "out", factored=False)  # model.safetensors holds S + U V
    assert isinstance(dense.get_submodule(name), torch.nn.Linear)
    assert torch.allclose(_logits(dense, ids), expected, atol=1e-5)
    assert torch.allclose(
        dense.get_submodule(name).weight, model.get_submodule(name).dense_weight(), atol=1e-6
    )


def test_low_rank_extras_are_checked():
    model, tok = tiny_causal_lm("llama")

    class Lonely(SparsePlusLowRank):
        def compress_layer(self, name, weight, stats):
            return LayerResult(
                weight.clone(), extras={"lowrank_u": torch.zeros(weight.shape[0], 2)}
            )

    with pytest.raises(LabcoreError, match="lowrank_u and lowrank_v come together"):
        compress(model, Lonely(SplitConfig()), _cal(tok), device="cpu", progress=False)

    class Misfit(SparsePlusLowRank):
        def compress_layer(self, name, weight, stats):
            extras = {"lowrank_u": torch.zeros(weight.shape[0], 2), "lowrank_v": torch.zeros(3, 5)}
            return LayerResult(weight.clone(), extras=extras)

    model, tok = tiny_causal_lm("llama")
    with pytest.raises(LabcoreError, match=r"lowrank_v must be \[2, 64\]"):
        compress(model, Misfit(SplitConfig()), _cal(tok), device="cpu", progress=False)


@pytest.mark.parametrize("removed", ["shrink", "mask"])
def test_structured_plugin_from_the_command_line(tmp_path, monkeypatch, capsys, removed):
    import json

    import layerwise.methods.base as base
    from layerwise.cli import main

    monkeypatch.setitem(base._REGISTRY, Halving.name, Halving)
    model, tok = tiny_causal_lm("llama")
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    calib = tmp_path / "cal.safetensors"
    _cal(tok).save(calib)
    out = tmp_path / "out"
    argv = ["run", "--method", Halving.name, "--model", str(tmp_path / "tiny"), "--calib-file"]
    argv += [str(calib), "--removed-structures", removed, "--eval-windows", "0", "--out", str(out)]
    assert main([*argv, "--device", "cpu", "--json", "-q"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["structure"]["1"]["neurons_removed"] == 64
    loaded, _, _ = load(out)
    width = loaded.model.layers[1].mlp.down_proj.weight.shape[1]
    assert width == (64 if removed == "shrink" else 128)


def test_measure_speed_counts_parameters_and_times_both_phases():
    from layerwise.evaluate import measure_speed

    model, _tok = tiny_causal_lm("llama")
    speed = measure_speed(model, prompt_tokens=16, new_tokens=4, repeats=2)
    assert speed["params"] == _params(model)
    assert speed["latency_ms"] > 0 and speed["tokens_per_s"] > 0
    model.train()  # the mode is restored after measuring
    measure_speed(model, prompt_tokens=8, new_tokens=2, repeats=1)
    assert model.training
    with pytest.raises(LabcoreError, match="must be positive"):
        measure_speed(model, repeats=0)


def test_profile_pass_runs_first_on_a_copy():
    @dataclass
    class ProfConfig:
        pass

    class Profiled(Method):
        name = "test-profiled"
        config_class = ProfConfig
        statistics = "full"
        profile_pass = True

        def __init__(self, config):
            super().__init__(config)
            self.calls, self.ended = [], 0

        def compress_layer(self, name, weight, stats):
            self.calls.append((self.profiling, name))
            # during profiling a zeroed weight would corrupt the real model if it were shared
            return LayerResult(torch.zeros_like(weight) if self.profiling else weight * 0.5)

        def end_profile(self):
            self.ended += 1
            assert all(p for p, _ in self.calls)

    model, tok = tiny_causal_lm("llama")
    before = model.model.layers[0].mlp.down_proj.weight.clone()
    method = Profiled(ProfConfig())
    compress(model, method, _cal(tok), device="cpu", progress=False)
    n = len(method.calls) // 2
    assert method.ended == 1 and n == 14  # 7 linear layers x 2 blocks, twice
    assert [p for p, _ in method.calls] == [True] * n + [False] * n
    assert torch.allclose(model.model.layers[0].mlp.down_proj.weight, 0.5 * before)
