"""The CLI conventions: common options only where declared, the shared bench subcommand, one
JSON document with --json, and the progress context."""

from __future__ import annotations

import json

import pytest

from labcore import LabcoreError
from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from labcore.cli import add_bench_command, add_command, make_parser, run
from labcore.progress import is_progress_enabled, progress_bar, progress_enabled, status


def _toy_run(config: BenchConfig) -> BenchReport:
    report = BenchReport(package="labcore", version="0.1.0", config={"toy": True})
    for seed in config.seeds:
        value = 1.0 + seed + (10 if config.quick else 0) + config.option("shift", 0)
        report.add(Row("toy", {"k": 1}, "d", seed, {"m": value}, 0.5))
    status("progress goes to stderr")
    report.summary = "SUMMARY TABLE\n"
    return report


def _parser(uses=frozenset({"seeds"}), add_arguments=None, **kw):
    spec = BenchSpec(
        package="labcore",
        version="0.1.0",
        run=_toy_run,
        help="toy bench",
        uses=uses,
        add_arguments=add_arguments,
        **kw,
    )
    parser = make_parser("toy", "toy", version="0")
    sub = parser.add_subparsers(dest="command")
    add_bench_command(sub, spec)
    return parser


def _help(parser, command: str) -> str:
    sub = next(a for a in parser._actions if a.dest == "command")
    return " ".join(sub.choices[command].format_help().split())


@pytest.mark.parametrize(
    "uses", [frozenset(), frozenset({"seeds"}), frozenset({"seeds", "data_root", "device"})]
)
def test_bench_offers_only_the_declared_flags(uses):
    text = _help(_parser(uses=uses), "bench")
    for flag in ("--quick", "--out", "--json", "--verbose", "--quiet"):
        assert flag in text
    assert "--seed " not in text and "--seed\n" not in text
    for name, flag in (("seeds", "--seeds"), ("data_root", "--data-root"), ("device", "--device")):
        assert (flag in text) == (name in uses), flag


def test_bench_rejects_an_undeclared_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        run(_parser(uses=frozenset()), ["bench", "--seeds", "0,1"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --seeds" in capsys.readouterr().err


def test_bench_does_not_take_seed_as_an_abbreviation_of_seeds(capsys):
    with pytest.raises(SystemExit) as exc:
        run(_parser(), ["bench", "--seed", "0"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --seed" in capsys.readouterr().err


def test_bench_json_is_one_document_and_writes_the_results(tmp_path, capsys):
    out = tmp_path / "r"
    rc = run(_parser(), ["bench", "--quick", "--seeds", "0,1", "--out", str(out), "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert "progress goes to stderr" in captured.err
    assert [r["seed"] for r in payload["rows"]] == [0, 1]
    assert payload["provenance"]["seeds"] == [0, 1] and payload["provenance"]["quick"] is True
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == payload["rows"]
    assert (out / "summary.md").read_text() == "SUMMARY TABLE\n"
    assert "| toy | k=1 | d | 2 | 11.5 ± 0.7071 |" in (out / "results.md").read_text()


def test_bench_default_seeds_and_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    parser = _parser(default_seeds=(0, 1, 2), quick_seeds=(5,))
    assert run(parser, ["bench", "--quick", "-q"]) == 0
    quick = json.loads((tmp_path / "bench" / "results-quick" / "results.json").read_text())
    assert [r["seed"] for r in quick["rows"]] == [5]
    assert run(parser, ["bench", "-q"]) == 0
    full = json.loads((tmp_path / "bench" / "results" / "results.json").read_text())
    assert [r["seed"] for r in full["rows"]] == [0, 1, 2]
    assert "default 0,1,2, or 5 with --quick" in _help(parser, "bench")


def test_bench_bad_seeds_are_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        run(_parser(), ["bench", "--seeds", "0,zero"])
    assert "seeds must be integers" in capsys.readouterr().err


def test_package_options_reach_the_config(tmp_path, capsys):
    def add(parser):
        parser.add_argument("--shift", type=float, default=0.0)

    rc = run(
        _parser(add_arguments=add),
        ["bench", "--seeds", "0", "--shift", "100", "--out", str(tmp_path), "--json"],
    )
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["rows"][0]["metrics"]["m"] == 101.0
    assert payload["provenance"]["config"]["options"] == {"shift": 100.0}


def test_missing_data_root_is_a_clear_error(tmp_path, capsys):
    rc = run(
        _parser(uses=frozenset({"data_root"})),
        ["bench", "--data-root", str(tmp_path / "nope"), "--out", str(tmp_path)],
    )
    assert rc == 2
    assert "is not a folder" in capsys.readouterr().err


def test_add_command_offers_only_declared_common_options():
    parser = make_parser("toy", "toy", version="0")
    sub = parser.add_subparsers(dest="command")
    add_command(sub, "a", lambda args: 0, help="a", uses=("seed",))
    add_command(sub, "b", lambda args: 0, help="b", uses=("device", "seed", "out"))
    a, b = _help(parser, "a"), _help(parser, "b")
    assert "--seed" in a and "--device" not in a and "--out" not in a and "--json" in a
    assert all(flag in b for flag in ("--device", "--seed", "--out", "--json", "--quiet"))
    with pytest.raises(ValueError, match="unknown common options"):
        add_command(sub, "c", lambda args: 0, help="c", uses=("gpu",))


def test_bench_spec_validates():
    with pytest.raises(LabcoreError, match="unknown flags"):
        BenchSpec(package="x", version="0", run=_toy_run, help="x", uses=frozenset({"sed"}))
    with pytest.raises(LabcoreError, match="need 'seeds'"):
        BenchSpec(package="x", version="0", run=_toy_run, help="x", default_seeds=(0, 1))


def test_progress_is_scoped_by_the_context(capsys):
    assert is_progress_enabled()
    with progress_enabled(False):
        assert not is_progress_enabled()
        assert list(progress_bar(range(3))) == [0, 1, 2]
        status("hidden")
    assert is_progress_enabled()
    status("shown")
    captured = capsys.readouterr()
    assert captured.err == "shown\n" and captured.out == ""


def test_quiet_turns_progress_off_inside_the_handler(capsys):
    seen = []
    parser = make_parser("toy", "toy", version="0")
    sub = parser.add_subparsers(dest="command")
    add_command(sub, "a", lambda args: seen.append(is_progress_enabled()), help="a", uses=())
    run(parser, ["a", "-q"])
    run(parser, ["a"])
    assert seen == [False, True]
    assert is_progress_enabled()  # the CLI's setting does not leak out of the command
