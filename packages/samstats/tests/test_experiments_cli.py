import json
import math
import subprocess
import sys

import numpy as np
import pytest
from samstats import MercerProblem, TeacherProblem
from samstats.bench import comparison_table
from samstats.cli import main
from samstats.experiments import KernelExperiment, NetworkExperiment, plot
from samstats.real import RealExperiment

from labcore import LabcoreError


def _kernel_experiment():
    problem = MercerProblem(n=40, frequencies=20, smoothness=3.0, noise=0.5)
    return KernelExperiment(problem, seeds=3, n_steps=400, rho_units=(1.0, 3.0))


def test_kernel_experiment_compares_each_method_at_its_own_best():
    res = _kernel_experiment().run()
    methods = {(r.method, r.rho) for r in res.runs}
    assert methods == {
        ("gd", 0.0),
        ("sam", 1.0),
        ("sam", 3.0),
        ("sam-normalized", 0.03),
        ("sam-normalized", 0.1),
        ("sam-normalized", 0.3),
        ("sam-normalized", 1.0),
        ("ridge", 0.0),
    }
    c = res.comparison()
    for method in ("sam", "sam-normalized", "ridge"):
        runs = res.select(method, c[method]["rho"])
        best = np.mean([r.best_risk for r in runs])
        assert c[method]["best_risk"] == pytest.approx(best)
        # The chosen ρ has the smallest mean best risk of its method.
        others = [s["best_risk"] for s in res.summary() if s["method"] == method]
        assert best == pytest.approx(min(others))
        assert c[method]["ratio_best"] == pytest.approx(best / c["gd"]["best_risk"])
        assert 0 <= c[method]["wins"] <= 3
    for run in res.runs:
        # The best-over-iterations risk is the minimum of the recorded path.
        assert run.best_risk == pytest.approx(run.risk.min())
        if run.method != "ridge":
            assert run.final_risk == pytest.approx(run.risk[-1])


def test_plot_writes_a_png(tmp_path):
    res = _kernel_experiment().run()
    plot(res, tmp_path / "k.png")
    assert (tmp_path / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_network_experiment_shares_initializations():
    exp = NetworkExperiment(
        TeacherProblem(n=60, d=4, teacher_width=2),
        seeds=2,
        n_steps=40,
        width=6,
        rho_unnormalized=(0.0,),
        rho_normalized=(0.1,),
        eval_every=10,
    )
    res = exp.run()
    gd, sam0 = res.select("gd", 0.0), res.select("sam", 0.0)
    # SAM with ρ = 0 from the same initialization is GD: identical paths.
    for a, b in zip(gd, sam0, strict=True):
        assert np.array_equal(a.risk, b.risk)
    assert all(math.isfinite(r.sharpness_best) for r in res.runs)
    assert "N0" in comparison_table([("N0", res)])


def test_real_experiment_chooses_on_validation():
    res = RealExperiment(
        "diabetes", seeds=2, n_steps=300, rho_units=(1.0,), rho_normalized=(0.1,)
    ).run()
    for run in res.runs:
        assert run.select_risk is not None
        # The reported test error is at the validation-chosen step, not the test minimum.
        assert run.best_risk == run.risk[int(np.argmin(run.validation))]
        assert run.select_risk == run.validation.min()
    assert 0 < res.comparison()["gd"]["best_risk"] < 1.5


def test_cli_run_kernel_json_and_plot(tmp_path, capsys):
    rc = main(
        [
            "run",
            "kernel",
            "--n",
            "30",
            "--frequencies",
            "15",
            "--seeds",
            "2",
            "--steps",
            "200",
            "--rho",
            "1",
            "--rho-normalized",
            "0.05",
            "--json",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["method"] for s in out["summary"]} == {"gd", "sam", "sam-normalized", "ridge"}
    assert (tmp_path / "kernel.png").exists()


def test_cli_run_network_text(capsys):
    rc = main(
        [
            "run",
            "network",
            "--n",
            "40",
            "--d",
            "3",
            "--teacher-width",
            "1",
            "--width",
            "4",
            "--seeds",
            "1",
            "--steps",
            "20",
            "--rho",
            "0.1",
            "--rho-normalized",
            "0.1",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "network relu" in text and "best risk" in text and "λ_max" in text


def test_cli_reports_bad_input_in_one_line(capsys):
    rc = main(["run", "kernel", "--spectrum", "cubic", "--seeds", "1"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("samstats: error: spectrum must be one of") and "Traceback" not in err


def test_module_entry_point_help():
    out = subprocess.run(
        [sys.executable, "-m", "samstats", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "run" in out and "bench" in out


def test_bad_experiment_settings():
    with pytest.raises(LabcoreError, match="seeds"):
        KernelExperiment(seeds=0)
    with pytest.raises(LabcoreError, match="dataset"):
        RealExperiment("iris")


def test_diverged_runs_are_counted_and_the_report_stays_valid():
    from samstats.bench import result_rows

    from labcore.bench import BenchConfig, BenchReport

    exp = NetworkExperiment(
        TeacherProblem(n=40, d=3, teacher_width=1),
        seeds=2,
        n_steps=60,
        width=4,
        eta=0.5,
        rho_unnormalized=(200.0,),
        rho_normalized=(0.1,),
    )
    res = exp.run()
    c = res.comparison()
    assert c["sam"]["diverged"] == 2 and c["gd"]["diverged"] == 0
    assert math.isnan(c["sam"]["ratio_final"])  # no ratio of an infinite last risk
    report = BenchReport(package="samstats", version="0", command="t", config={})
    report.extend(result_rows("N0", res, seed=0))
    report.stamp(BenchConfig(), argv=["samstats", "bench"])  # the provenance the CLI adds
    report.validate()  # no infinite metric reaches the results file
    sam = next(r for r in report.rows if r.method == "sam")
    assert sam.metrics["final_risk"] is None and sam.metrics["diverged_runs"] == 2


def test_first_seed_shifts_the_samples_and_nothing_else():
    problem = MercerProblem(n=30, frequencies=10, noise=0.5)
    grid = {"n_steps": 100, "rho_units": (1.0,), "rho_normalized": (0.1,)}
    both = KernelExperiment(problem, seeds=3, **grid).run()
    last = KernelExperiment(problem, seeds=1, first_seed=2, **grid).run()
    assert {r.seed for r in last.runs} == {2}
    for a in last.runs:
        b = next(r for r in both.runs if (r.method, r.rho, r.seed) == (a.method, a.rho, 2))
        assert np.array_equal(a.risk, b.risk)
    with pytest.raises(LabcoreError, match="first_seed"):
        KernelExperiment(first_seed=-1)


def test_bench_settings_use_disjoint_blocks_of_sample_seeds():
    from samstats import bench

    assert bench.BENCH.uses == {"seeds"} and bench.BENCH.seeds_for(False) == (0,)
    for quick, counts in ((False, (20, 5, 10)), (True, (5, 2, 5))):
        for seed in (0, 3):
            built = {s.key: s.build() for s in bench.settings(quick, seed)}
            for key, n in zip(("K1", "N1", "R-diabetes"), counts, strict=True):
                assert (built[key].seeds, built[key].first_seed) == (n, seed * n)


def test_bench_cli_runs_each_bench_seed(tmp_path, monkeypatch, capsys):
    from samstats import bench

    from labcore.bench import BenchConfig, validate_results

    def tiny(quick, seed=0):
        problem = MercerProblem(n=30, frequencies=10, noise=0.5)
        build = lambda: KernelExperiment(  # noqa: E731
            problem, seeds=2, first_seed=2 * seed, n_steps=100, rho_units=(1.0,)
        )
        return [bench.Setting("K0", "kernel", build)]

    monkeypatch.setattr(bench, "settings", tiny)
    assert main(["bench", "--seeds", "0,1", "--out", str(tmp_path), "--json", "-q"]) == 0
    payload = json.loads(capsys.readouterr().out)  # one JSON document, nothing else
    results = json.loads((tmp_path / "results.json").read_text())
    validate_results(results)
    assert payload["rows"] == results["rows"] and results["provenance"]["seeds"] == [0, 1]
    assert [r["seed"] for r in results["rows"] if r["method"] == "gd"] == [0, 1]
    assert (tmp_path / "plots" / "K0-seed0.png").exists()
    assert (tmp_path / "plots" / "K0-seed1.png").exists()
    assert "## Bench seed 1" in (tmp_path / "summary.md").read_text()
    assert "| n |" in (tmp_path / "results.md").read_text()

    out = tmp_path / "one"
    report = bench.run_bench(BenchConfig(out=out, options={"no_plot": True}))
    assert not out.exists()  # run_bench writes nothing itself without plots
    assert report.summary.startswith("| setting |")  # one bench seed: the plain table
    assert {r.seed for r in report.rows} == {0}
