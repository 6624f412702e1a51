import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labcore import LabcoreError
from labcore.bench import (
    BenchConfig,
    BenchReport,
    Row,
    aggregate_rows,
    compare_results,
    comparison_table,
    default_out_dir,
    format_mean_std,
    load_results,
    markdown_table,
    parse_seeds,
    validate_results,
)

ROOT = Path(__file__).resolve().parents[2]


def _toy_report(seeds=(0,), scale=1.0) -> BenchReport:
    report = BenchReport(package="toy", version="0.1.0", config={"windows": 4})
    for seed in seeds:
        report.add(Row("dense", {}, "bbc", seed, {"perplexity": 30.1 * scale}, 0.0))
        report.add(Row("rtn", {"bits": 3}, "bbc", seed, {"perplexity": 95.25 + seed}, 1.5))
    report.add(Row.skipped("obtain", {}, "gtzan", "needs --data-root"))
    report.stamp(BenchConfig(quick=True, seeds=seeds), argv=["toy", "bench", "--quick"])
    return report


def test_toy_bench_results_validate_against_schema(tmp_path):
    json_path, md_path = _toy_report().write(tmp_path)
    obj = json.loads(json_path.read_text())
    validate_results(obj)
    assert obj["rows"][2]["status"] == "skipped: needs --data-root"
    assert obj["rows"][2]["time_s"] is None
    assert "cpu_count" in obj["machine"]
    assert obj["command"] == "toy bench --quick"
    md = md_path.read_text()
    assert "| rtn | bits=3 | bbc | 1 | 95.25 | 1.5 | ok |" in md
    assert not (tmp_path / "summary.md").exists()  # no summary given, none written
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_provenance_names_the_commit_of_this_checkout(tmp_path):
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    prov = _toy_report(seeds=(0, 1)).provenance
    # labcore is imported from this checkout (the workspace installs it editable).
    assert prov["git_commit"] == head.stdout.strip()
    assert isinstance(prov["git_dirty"], bool)
    assert prov["seeds"] == [0, 1] and prov["quick"] is True
    assert prov["argv"] == ["toy", "bench", "--quick"]
    assert prov["versions"]["numpy"] and prov["versions"]["labcore"] == "0.1.0"


def test_provenance_outside_a_checkout_is_null(tmp_path):
    code = (
        "from labcore.bench import provenance, BenchConfig\n"
        f"p = provenance('toy', BenchConfig(out={str(tmp_path)!r}), source={str(tmp_path)!r})\n"
        "print(p['git_commit'], p['git_dirty'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None None"


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda o: o["rows"][0].update(status="done"), "rows/0/status"),
        (lambda o: o["rows"][1].update(time_s=None), "rows/1/time_s"),
        (lambda o: o["rows"][0].update(method="GPTQ"), "rows/0/method"),
        (lambda o: o["rows"][0]["metrics"].update(ppl="high"), "rows/0/metrics/ppl"),
        (lambda o: o.pop("machine"), "top level"),
        (lambda o: o.pop("provenance"), "top level"),
        (lambda o: o["provenance"].pop("git_commit"), "provenance"),
        (lambda o: o["rows"][0].update(extra=1), "rows/0"),
    ],
)
def test_schema_rejects_bad_results(mutate, where):
    obj = _toy_report().to_dict()
    mutate(obj)
    with pytest.raises(LabcoreError, match=where):
        validate_results(obj)


def test_markdown_table_columns_union_metrics():
    rows = [Row("a", {}, "d", None, {"x": 1.0}, 1.0), Row("b", {"k": 2}, "d", 1, {"y": 0.5}, 2.0)]
    md = markdown_table(rows).splitlines()
    assert md[0] == "| method | params | dataset | n | x | y | time_s | status |"
    assert md[2] == "| a | – | d | 1 | 1 | – | 1 | ok |"


def test_markdown_table_gives_mean_and_std_over_seeds():
    rows = [Row("a", {"k": 1}, "d", s, {"x": v}, t) for s, v, t in ((0, 1.0, 1.0), (1, 3.0, 3.0))]
    rows.append(Row.skipped("b", {}, "d", "no data", seed=0))
    md = markdown_table(rows).splitlines()
    assert md[2] == "| a | k=1 | d | 2 | 2 ± 1.414 | 2 ± 1.414 | ok |"
    assert md[3] == "| b | – | d | 0 | – | – | skipped: no data |"
    groups = aggregate_rows(rows)
    assert [g["seeds"] for g in groups] == [[0, 1], [0]]


def test_format_mean_std_ignores_missing_values():
    assert format_mean_std([2.0, None, 4.0]) == "3 ± 1.414"
    assert format_mean_std([None]) == "–"


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("0", (0,)),
        ("0,1,2", (0, 1, 2)),
        (" 3 , 1", (3, 1)),
        ((4, 5), (4, 5)),
        (7, (7,)),
        (np.arange(2), (0, 1)),
    ],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "integers"),
        ("0,a", "integers"),
        ("1.5", "integers"),
        ("0,0", "distinct"),
        ("-1", "non-negative"),
        ((), "at least one"),
    ],
)
def test_parse_seeds_rejects(text, match):
    with pytest.raises(LabcoreError, match=match):
        parse_seeds(text)


def test_config_resolves_the_one_output_rule(tmp_path):
    assert BenchConfig().out == default_out_dir(False) == Path("bench/results")
    assert BenchConfig(quick=True).out == Path("bench/results-quick")
    assert BenchConfig(out=tmp_path).out == tmp_path
    with pytest.raises(LabcoreError, match="not a folder"):
        BenchConfig(data_root=tmp_path / "missing")
    with pytest.raises(Exception):  # frozen  # noqa: B017
        BenchConfig().quick = True  # type: ignore[misc]


def test_compare_gives_ratios_and_keeps_unmatched_rows(tmp_path):
    a = _toy_report(seeds=(0, 1)).to_dict()
    b = _toy_report(seeds=(0, 1), scale=2.0).to_dict()
    b["rows"].append(Row("gptq", {"bits": 3}, "bbc", 0, {"perplexity": 40.0}, 2.0).__dict__)
    rows = compare_results(a, b)
    dense = next(r for r in rows if r["method"] == "dense")
    assert dense["values"]["perplexity"]["ratio"] == pytest.approx(2.0)
    assert dense["n_a"] == dense["n_b"] == 2
    gptq = next(r for r in rows if r["method"] == "gptq")
    assert gptq["n_a"] == 0 and gptq["values"]["perplexity"]["ratio"] is None
    table = comparison_table(rows)
    assert "| dense | – | bbc | 2/2 | perplexity | 30.1 | 60.2 | 2.000 |" in table


def test_load_results_rejects_what_is_not_a_results_file(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(LabcoreError, match="not a benchmark results file"):
        load_results(tmp_path / "x.json")
    with pytest.raises(LabcoreError, match="no results file"):
        load_results(tmp_path / "nothing")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(LabcoreError, match="not a JSON results file"):
        load_results(tmp_path / "bad.json")


def test_labcore_bench_compare_command(tmp_path):
    _toy_report(seeds=(0, 1)).write(tmp_path / "a")
    _toy_report(seeds=(0, 1), scale=1.5).write(tmp_path / "b")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "labcore",
            "bench",
            "compare",
            str(tmp_path / "a"),
            str(tmp_path / "b" / "results.json"),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    dense = next(r for r in payload["rows"] if r["method"] == "dense")
    assert dense["values"]["perplexity"]["ratio"] == pytest.approx(1.5)
    text = subprocess.run(
        [
            sys.executable,
            "-m",
            "labcore",
            "bench",
            "compare",
            str(tmp_path / "a"),
            str(tmp_path / "b"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "B / A" in text and "1.500" in text and "seeds 0,1" in text


def test_partial_results_are_kept_until_the_final_write(tmp_path):
    report = _toy_report()
    partial = report.save_partial(tmp_path)
    saved = json.loads(partial.read_text())
    assert saved["partial"] is True and len(saved["rows"]) == len(report.rows)
    report.write(tmp_path)
    assert not partial.exists() and (tmp_path / "results.json").is_file()


def test_command_names_the_package_also_under_python_m():
    report = BenchReport(package="toy", version="0.1.0", config={})
    report.stamp(BenchConfig(), argv=["/x/toy/__main__.py", "bench", "--seeds", "0,1"])
    assert report.command == "toy bench --seeds 0,1"


def test_wide_table_means_skips_failed_rows_and_missing_values():
    from labcore.bench import wide_table

    rows = [
        Row("a", {}, "d2", 0, {"err": 1.0, "acc": None}, 1.0),
        Row("a", {}, "d2", 1, {"err": 3.0, "acc": None}, 3.0),
        Row("b", {}, "d1", 0, {"err": 0.5, "acc": 0.9}, None),
        Row("b", {}, "d1", 1, {"err": 99.0, "acc": 0.0}, 5.0, status="failed"),
    ]
    table = wide_table(
        rows, methods=["a", "b"], metrics={"err": ".1f", "acc": ".2f"}, header="{method}: {metrics}"
    )
    assert table.splitlines() == [
        "| data | a: err / acc | b: err / acc |",
        "|---|---|---|",
        "| d2 | 2.0 / – / 2.00 | – |",
        "| d1 | – | 0.5 / 0.90 / 0.00 |",
    ]


def test_markdown_foot_gives_the_wall_time_when_stamped():
    report = _toy_report()
    assert "s wall" not in report.to_markdown()
    report.stamp(BenchConfig(quick=True), argv=["toy", "bench", "--quick"], total_s=312.4)
    assert (
        report.to_markdown().rstrip().endswith("312 s wall)")
        or "312 s wall" in report.to_markdown()
    )
