import json

import pytest

from labcore import LabcoreError
from labcore.bench import BenchReport, Row, markdown_table, validate_results


def _toy_report() -> BenchReport:
    report = BenchReport(
        package="toy",
        version="0.1.0",
        command="toy bench --quick",
        config={"quick": True, "windows": 4},
    )
    report.add(Row("dense", {}, "bbc", 0, {"perplexity": 30.1}, 0.0))
    report.add(Row("rtn", {"bits": 3}, "bbc", 0, {"perplexity": 95.25}, 1.5))
    report.add(Row.skipped("obtain", {}, "gtzan", "needs --data-root"))
    return report


def test_toy_bench_results_validate_against_schema(tmp_path):
    json_path, md_path = _toy_report().write(tmp_path)
    obj = json.loads(json_path.read_text())
    validate_results(obj)
    assert obj["rows"][2]["status"] == "skipped: needs --data-root"
    assert obj["rows"][2]["time_s"] is None
    assert "cpu_count" in obj["machine"]
    md = md_path.read_text()
    assert "| rtn | bits=3 | bbc | 0 | 95.25 | 1.5 | ok |" in md
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda o: o["rows"][0].update(status="done"), "rows/0/status"),
        (lambda o: o["rows"][1].update(time_s=None), "rows/1/time_s"),
        (lambda o: o["rows"][0].update(method="GPTQ"), "rows/0/method"),
        (lambda o: o["rows"][0]["metrics"].update(ppl="high"), "rows/0/metrics/ppl"),
        (lambda o: o.pop("machine"), "top level"),
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
    assert md[0] == "| method | params | dataset | seed | x | y | time_s | status |"
    assert md[2] == "| a | – | d | – | 1 | – | 1 | ok |"
