"""The command line, the method registry, calibration sources and run_rows' extension points."""

import json

import pytest
import torch
from layerwise import Calibration, GPTQConfig, IdentityConfig, compress
from layerwise.calibration import (
    calibration_from_source,
    calibration_sources,
    register_calibration_source,
)
from layerwise.cli import main
from layerwise.engine import LayerwiseEngine
from layerwise.methods import available_methods, get_method_class, method_for_config
from layerwise.methods.base import LayerResult, Method

from labcore import LabcoreError
from labcore.models import tiny_causal_lm


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _traces(vocab, seed=0):
    """Three sequences of different lengths with per-token weights (some zero)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for length in (9, 14, 5):
        ids = torch.randint(3, vocab, (length,), generator=g).tolist()
        weights = torch.rand(length, generator=g).tolist()
        weights[0] = 0.0  # a prompt token that must not count
        rows.append({"input_ids": ids, "weights": weights})
    return rows


def _hand_statistic(model, rows, layer="model.layers.0.self_attn.q_proj"):
    """Σ_t w_t x_t x_tᵀ over the real tokens of ``rows``, from hooks on the dense model."""
    inputs = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda m, i, o: inputs.append(i[0].detach())
    )
    H = 0
    with torch.no_grad():
        for r in rows:  # one sequence at a time: no padding at all
            model(input_ids=torch.tensor([r["input_ids"]]), use_cache=False)
            x = inputs.pop()[0]
            w = torch.tensor(r["weights"])
            H = H + (x * w[:, None]).T @ x
    handle.remove()
    return H


def test_run_with_calib_file_uses_exactly_its_tokens_and_weights(
    tmp_path, tiny_checkpoint, monkeypatch
):
    from layerwise.methods.sparsegpt import SparseGPT

    model, tok = tiny_causal_lm("llama")
    rows = _traces(len(tok))
    calib = _write_jsonl(tmp_path / "traces.jsonl", rows)
    seen = {}
    original = SparseGPT.compress_layer

    def spy(self, name, weight, stats):
        seen.setdefault(name, (stats.H.clone(), stats.tokens, stats.weight_sum))
        return original(self, name, weight, stats)

    monkeypatch.setattr(SparseGPT, "compress_layer", spy)
    out = tmp_path / "out"
    argv = ["run", "--method", "sparsegpt", "--sparsity", "0.5", "--model", str(tiny_checkpoint)]
    argv += ["--calib-file", str(calib), "--out", str(out), "--eval-windows", "0"]
    assert main([*argv, "--device", "cpu", "--json", "-q"]) == 0
    H, tokens, weight_sum = seen["self_attn.q_proj"]  # block 0 is compressed first
    expected = _hand_statistic(model, rows)
    assert torch.allclose(H, expected, rtol=1e-4, atol=1e-4)
    assert tokens == sum(len(r["input_ids"]) - 1 for r in rows)  # zero-weight tokens left out
    assert weight_sum == pytest.approx(sum(sum(r["weights"]) for r in rows), rel=1e-6)
    sidecar = json.loads((out / "layerwise.json").read_text())
    assert sidecar["calibration_source"] == f"file:{calib}"
    assert sidecar["calibration"]["tokens"] == tokens


def test_calibration_file_formats_round_trip(tmp_path):
    cal = Calibration(
        torch.tensor([[5, 6, 7], [8, 9, 0]]),
        torch.tensor([[1, 1, 1], [1, 1, 0]]),
        torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.5, 0.0]]),
    )
    back = Calibration.from_file(cal.save(tmp_path / "cal.safetensors"))
    assert torch.equal(back.input_ids, cal.input_ids)
    assert torch.equal(back.weights, cal.weights)
    path = _write_jsonl(tmp_path / "cal.jsonl", [{"input_ids": [5, 6, 7]}, {"input_ids": [8, 9]}])
    from_jsonl = Calibration.from_file(path)
    assert from_jsonl.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert from_jsonl.token_weights is None
    assert torch.equal(
        calibration_from_source(f"file:{path}", tokenizer=None).input_ids, from_jsonl.input_ids
    )


@pytest.mark.parametrize(
    "content,match",
    [
        ('{"input_ids": [1, 2]}\n{"input_ids": "abc"}\n', r"line 2: 'input_ids' must be"),
        ('{"input_ids": [1, 2], "weights": [1]}\n', r"'weights' must be a list of 2 numbers"),
        ('{"input_ids": [1, 2], "weights": [1, -1]}\n', "finite and non-negative"),
        ("", "no sequences"),
        ("not json\n", "line 1"),
    ],
)
def test_bad_calibration_files_are_named(tmp_path, content, match):
    path = tmp_path / "cal.jsonl"
    path.write_text(content)
    with pytest.raises(LabcoreError, match=match):
        Calibration.from_file(path)


def test_calibration_file_errors(tmp_path):
    with pytest.raises(LabcoreError, match="calibration file not found"):
        Calibration.from_file(tmp_path / "missing.jsonl")
    (tmp_path / "cal.txt").write_text("x")
    with pytest.raises(LabcoreError, match=r"\.safetensors or \.jsonl"):
        Calibration.from_file(tmp_path / "cal.txt")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(LabcoreError, match="not a readable safetensors file"):
        Calibration.from_file(tmp_path / "bad.safetensors")


def test_registered_calibration_source_from_the_command_line(
    tmp_path, tiny_checkpoint, monkeypatch
):
    import layerwise.calibration as calibration

    calls = []

    def traces(argument, *, tokenizer, n, seqlen, seed):
        calls.append((argument, n, seed))
        return Calibration(torch.randint(3, len(tokenizer), (2, 8)), None)

    monkeypatch.setitem(calibration._SOURCES, "traces", traces)
    assert {"corpus", "file", "traces"} <= set(calibration_sources())
    argv = ["run", "--method", "rtn", "--bits", "4", "--model", str(tiny_checkpoint), "--calib"]
    argv += ["traces:gsm8k", "--calib-windows", "7", "--out", str(tmp_path / "o")]
    assert main([*argv, "--eval-windows", "0", "--device", "cpu", "--seed", "3", "-q"]) == 0
    assert calls == [("gsm8k", 7, 3)]
    with pytest.raises(LabcoreError, match="expected NAME:ARGUMENT with NAME one of corpus, file"):
        calibration_from_source("nosuch:x", tokenizer=None)
    with pytest.raises(LabcoreError, match="needs a name without ':'"):
        register_calibration_source("a:b", traces)


def test_calibration_sources_come_from_entry_points(monkeypatch):
    import layerwise.calibration as calibration

    class FakeEntryPoint:
        name = "plugin"

        def load(self):
            return lambda argument, **_: Calibration(torch.ones(1, 4, dtype=torch.long), None)

    monkeypatch.setattr(calibration, "_SOURCE_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(calibration, "_SOURCES", dict(calibration._SOURCES))
    monkeypatch.setattr(
        calibration,
        "entry_points",
        lambda group: [FakeEntryPoint()] if group == "layerwise.calibration_sources" else [],
    )
    assert calibration_from_source("plugin:x", tokenizer=None).input_ids.shape == (1, 4)


def test_calib_options_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--calib-file", "a.jsonl", "--calib-corpus", "bbc", "--out", "x"])
    assert "not allowed with argument" in capsys.readouterr().err


# -- registry --------------------------------------------------------------------------------


def test_registry_and_entry_points():
    names = available_methods()
    assert {"gptq", "sparsegpt", "wanda", "magnitude", "rtn", "identity"} <= set(names)
    # quantease and alps register through the layerwise.methods entry point group
    assert {"quantease", "alps"} <= set(names)
    assert get_method_class("gptq").kind == "quantization"
    assert type(method_for_config(GPTQConfig(bits=4))).__name__ == "GPTQ"
    with pytest.raises(LabcoreError, match="unknown method 'nosuch'; available: "):
        get_method_class("nosuch")

    class NotAConfig:
        pass

    with pytest.raises(LabcoreError, match="no registered method takes a NotAConfig"):
        method_for_config(NotAConfig())


def test_methods_command_json(capsys):
    assert main(["methods", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows["sparsegpt"]["options"][:2] == ["sparsity", "nm"]
    assert rows["rtn"]["statistics"] == "none" and rows["wanda"]["grouping"] == "block"


def test_run_then_eval_on_a_tiny_model(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import labcore.data

    bbc = labcore.data.load_corpus("bbc")
    small = labcore.data.Corpus("bbc", bbc.train[:10], bbc.test[:10], disjoint=True)
    monkeypatch.setattr(labcore.data, "load_corpus", lambda name="bbc", **_: small)
    monkeypatch.setattr("layerwise.evaluate.load_corpus", lambda name="bbc", **_: small)
    out = tmp_path / "out"
    argv = ["run", "--method", "gptq", "--bits", "4", "--model", str(tiny_checkpoint)]
    argv += ["--calib-windows", "2", "--seqlen", "32", "--eval-windows", "2", "--out", str(out)]
    assert main([*argv, "--device", "cpu", "--json", "-q"]) == 0
    run_payload = json.loads(capsys.readouterr().out)
    assert run_payload["calibration"] == "corpus:bbc" and run_payload["perplexity"] > 1
    argv = ["eval", str(out), "--seqlen", "32", "--windows", "2", "--device", "cpu", "--json", "-q"]
    assert main(argv) == 0
    eval_payload = json.loads(capsys.readouterr().out)
    assert eval_payload["method"] == "gptq"
    assert eval_payload["perplexity"] == pytest.approx(run_payload["perplexity"], rel=1e-5)
    assert main(["run", "--method", "rtn", "--sparsity", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert "method 'rtn' has no option --sparsity" in capsys.readouterr().err


# -- propagation -----------------------------------------------------------------------------


class Noisy(Method):
    """Adds seeded noise to every weight: a compression that changes each block's output."""

    name = "test-noisy"
    config_class = IdentityConfig
    statistics = "none"

    def compress_layer(self, name, weight, stats):
        g = torch.Generator().manual_seed(len(name))
        return LayerResult(weight + 0.05 * torch.randn(weight.shape, generator=g))


def _last_block_output(model, cal):
    out = []
    handle = model.model.layers[-1].register_forward_hook(
        lambda m, i, o: out.append(o[0] if isinstance(o, tuple) else o)
    )
    with torch.no_grad():
        model(input_ids=cal.input_ids, attention_mask=cal.attention_mask, use_cache=False)
    handle.remove()
    return out[0]


@pytest.mark.parametrize("propagate", ["compressed", "dense"])
def test_propagate_feeds_the_stream_it_names(propagate):
    model, tok = tiny_causal_lm("llama")
    cal = Calibration(torch.randint(3, len(tok), (3, 16)), None)
    dense_out = _last_block_output(model, cal)
    engine = LayerwiseEngine(
        model, cal, device="cpu", batch_size=2, propagate=propagate, progress=False
    )
    engine.run(Noisy(IdentityConfig()))
    stream = torch.cat(engine.outputs_)
    compressed_out = _last_block_output(model, cal)
    assert not torch.allclose(compressed_out, dense_out, atol=1e-3)
    expected = compressed_out if propagate == "compressed" else dense_out
    assert torch.allclose(stream, expected, atol=1e-5)


# -- run_rows: a calibration per row and evaluators ------------------------------------------


def test_run_rows_takes_calibrations_and_evaluators(tmp_path, tiny_checkpoint, monkeypatch):
    from layerwise.bench import PERPLEXITY, run_rows

    import labcore.data
    from labcore.bench import BenchConfig

    bbc = labcore.data.load_corpus("bbc")
    small = labcore.data.Corpus("bbc", bbc.train[:10], bbc.test[:10], disjoint=True)
    monkeypatch.setattr(labcore.data, "load_corpus", lambda name="bbc", **_: small)
    _, tok = tiny_causal_lm("llama")
    own = Calibration(torch.randint(3, len(tok), (2, 12)), None)
    made = []

    def shared(tokenizer, seed):
        made.append(seed)
        return Calibration(torch.randint(3, len(tokenizer), (3, 10)), None)

    def answer_length(model, tokenizer, *, seed):
        return {"answer_tokens": 3.0 + seed}

    rows = [
        ("dense", {}, None),
        ("gptq", {"calibration": "shared"}, GPTQConfig(bits=4)),
        ("gptq", {"calibration": "own"}, GPTQConfig(bits=4), own),
    ]
    options = {"model": str(tiny_checkpoint), "eval_windows": 2, "seqlen": 32}
    config = BenchConfig(quick=True, seeds=(0, 1), device="cpu", out=tmp_path, options=options)
    report, layer_reports = run_rows(
        config,
        rows,
        package="layerwise",
        version="0",
        calibration=shared,
        evaluators=[PERPLEXITY, answer_length],
    )
    assert made == [0, 1]
    assert [list(r.metrics)[:2] for r in report.rows] == [["perplexity", "answer_tokens"]] * 6
    assert [r.metrics["answer_tokens"] for r in report.rows] == [3.0] * 3 + [4.0] * 3
    tokens = [rep.calibration["tokens"] for rep in layer_reports.values()]
    assert tokens == [30, 24, 30, 24]  # shared: 3 × 10, own: 2 × 12
    with pytest.raises(LabcoreError, match="an evaluator is 'perplexity' or a callable"):
        run_rows(config, rows, package="layerwise", version="0", evaluators=["accuracy"])


def test_compress_with_a_method_instance_reports_its_context():
    model, tok = tiny_causal_lm("qwen2")
    report, _ = compress(
        model,
        GPTQConfig(bits=4),
        Calibration(torch.randint(3, len(tok), (2, 8)), None),
        device="cpu",
        progress=False,
    )
    assert report.layers[0].name == "model.layers.0.self_attn.q_proj" and report.structure == {}
