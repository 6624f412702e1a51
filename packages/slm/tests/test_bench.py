"""The bench's whole code path on tiny models: every row, every variant, a valid report."""

from __future__ import annotations

import dataclasses

import slm.bench as bench

from labcore.bench import BenchConfig


def test_the_bench_report_is_complete_and_valid(tmp_path, monkeypatch, make_config):
    def tiny(quick, out, seed):
        return make_config(out, seed=seed, serve=dataclasses.replace(
            make_config(out).serve, latency_target_s=60.0))  # fmt: skip

    monkeypatch.setattr(bench, "bench_config", tiny)
    config = BenchConfig(quick=False, out=tmp_path / "results")
    report = bench.run_bench(config)
    report.stamp(config, argv=["slm", "bench"])
    report.write(config.out)  # validates against the shared schema first (numbers in metrics)
    methods = [r.method for r in report.rows]
    assert methods[:6] == list(bench.IDS.values())
    assert {"prune-20", "int4-quantease", "int8-rtn", "lead-10x", "tfidf-2x", "served-fp32",
            "served-no-prefix-sharing", "http-service"} <= set(methods)  # fmt: skip
    student = next(r for r in report.rows if r.method == "student").metrics
    assert student["items_per_s_vs_student"] == 1.0
    http = report.rows[-1].metrics
    assert http["errors"] == 0 and http["items_per_s_vs_student"] > 0
    assert "Throughput, first to last stage" in report.summary
    assert all(r.params["dtype"] in ("float32", "bfloat16") for r in report.rows[:-1])
