"""The bench's command line and its seed loop, without the long runs (methods are faked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from smcdecode import bench
from smcdecode.cli import build_parser, main

from labcore.bench import BenchConfig, Row

TINY_LM = str(Path(__file__).parent / "data" / "tiny-lm")


def _flags(parser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")}


def test_bench_offers_exactly_the_flags_it_reads():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert bench.BENCH.uses == {"seeds", "data_root", "device"}
    assert _flags(sub.choices["bench"]) == {
        "--help",
        "--quick",
        "--out",
        "--json",
        "--verbose",
        "--quiet",
        "--seeds",
        "--data-root",
        "--device",
        "--model",
        "--keywords-n",
        "--humaneval-n",
        "--gsm8k-n",
    }
    generate = _flags(sub.choices["generate"])
    assert {"--device", "--seed"} <= generate and "--out" not in generate


def test_bench_runs_every_task_once_per_seed(monkeypatch, tmp_path, capsys):
    """The seed reaches every task and the throughput row; per_problem.json keeps the seeds."""
    calls = []

    def fake_task(dec, tok, task, problems, score_fn, *, seed, **kw):
        calls.append((task, seed, len(problems)))
        recs = {"greedy": [{"problem": p.id, "score": 1.0} for p in problems]}
        return [Row("greedy", {}, task, seed, {"score": 1.0}, 0.1)], recs

    def fake_throughput(dec, tok, prompt, *, n, max_new_tokens, seed):
        calls.append(("throughput", seed, max_new_tokens))
        return {"batched_tok_s": 2.0, "sequential_tok_s": 1.0, "ratio": 2.0}

    monkeypatch.setattr(bench, "run_task", fake_task)
    monkeypatch.setattr(bench, "throughput", fake_throughput)
    argv = ["bench", "--quick", "--seeds", "0,3", "--model", TINY_LM, "--out", str(tmp_path)]
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)  # one JSON document, nothing else
    assert doc["provenance"]["seeds"] == [0, 3] and doc["config"]["model"] == TINY_LM
    assert calls == [
        ("keywords", 0, 8),
        ("throughput", 0, 48),
        ("keywords", 3, 8),
        ("throughput", 3, 48),
    ]
    assert [(r["method"], r["seed"]) for r in doc["rows"]] == [
        ("greedy", 0),
        ("batched-vs-sequential", 0),
        ("greedy", 3),
        ("batched-vs-sequential", 3),
    ]
    assert (tmp_path / "results.json").is_file() and (tmp_path / "results.md").is_file()
    per = json.loads((tmp_path / "per_problem.json").read_text())
    assert [r["seed"] for r in per["keywords"]["greedy"]] == [0] * 8 + [3] * 8


def test_full_run_skips_gsm8k_without_data(monkeypatch, tmp_path):
    monkeypatch.setattr(
        bench, "run_task", lambda *a, seed, **k: ([Row("greedy", {}, a[2], seed, {}, 0.1)], {})
    )
    monkeypatch.setattr(
        bench,
        "throughput",
        lambda *a, **k: {"batched_tok_s": 2.0, "sequential_tok_s": 1.0, "ratio": 2.0},
    )
    report = bench.run_bench(
        BenchConfig(seeds=(1,), out=tmp_path, options={"model": TINY_LM, "humaneval_n": 1})
    )
    gsm = [r for r in report.rows if r.dataset == "gsm8k"]
    assert len(gsm) == 1 and gsm[0].status.startswith("skipped: no --data-root")
    assert gsm[0].seed == 1


def test_generate_json_is_one_document(capsys):
    """Offline in seconds: a tiny random Llama with a character tokenizer (tests/data)."""
    argv = ["generate", "--model", TINY_LM, "--prompt", "write a word", "--reward", "keywords:a"]
    assert main([*argv, "--particles", "4", "--max-new-tokens", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["particles"]) == 4 and out["tokens_generated"] > 0


def test_bench_refuses_flags_it_would_ignore(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--render-dir", "x"])  # parse only: never runs
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--humaneval-n", "3"], ["--gsm8k-n", "3"], ["--data-root", "."]])
def test_quick_rejects_options_of_the_full_run(flag, tmp_path, capsys):
    from smcdecode.cli import main

    assert main(["bench", "--quick", *flag, "--out", str(tmp_path)]) == 2
    assert "the quick run has no HumanEval or GSM8K rows" in capsys.readouterr().err
