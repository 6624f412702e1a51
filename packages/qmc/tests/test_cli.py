import json
import subprocess
import sys

import numpy as np
import pytest
from qmc.cli import main
from qmc.data import synthetic


@pytest.fixture()
def ratings_csv(tmp_path):
    d = synthetic(m=25, n=20, rank=2, n_levels=5, observed=0.5, seed=0)
    rows, cols = np.nonzero(d.mask)
    lines = ["user,item,stars"] + [
        f"u{r},movie {c},{d.Y[r, c] / 2:g}" for r, c in zip(rows, cols, strict=True)
    ]
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, d


def test_fit_json_and_outputs(ratings_csv, tmp_path, capsys):
    path, d = ratings_csv
    out = tmp_path / "out"
    code = main(
        [
            "fit",
            str(path),
            "--lam",
            "2",
            "--rank",
            "5",
            "--json",
            "--out",
            str(out),
            "--predict-missing",
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_users"] == 25 and payload["n_items"] == 20
    assert payload["levels"] == sorted({v / 2 for v in d.Y[d.mask].tolist()})
    assert payload["converged"] is True
    users = (out / "user_factors.csv").read_text().splitlines()
    assert len(users) == 26 and users[0].startswith("user,f0")
    predictions = (out / "predictions.csv").read_text().splitlines()
    assert len(predictions) == 1 + (~d.mask).sum()
    stars = {float(line.split(",")[2]) for line in predictions[1:]}
    assert stars <= set(payload["levels"])
    assert json.loads((out / "model.json").read_text())["rank"] == payload["rank"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("u,i,r\na,b,x\n", "not a finite number"),
        ("a,b,1\na,b,2\n", "more than once"),
        ("a,b\n", "need user,item,rating"),
        ("a,b,3\nc,d,3\n", "at least two levels"),
    ],
)
def test_fit_rejects_bad_files(tmp_path, capsys, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["fit", str(path), "--lam", "1"]) != 0
    assert message in capsys.readouterr().err


def test_missing_file_and_levels_option(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "nope.csv")]) != 0
    assert "not found" in capsys.readouterr().err
    path = tmp_path / "r.csv"
    path.write_text("a,x,1\nb,y,2\n")
    assert main(["fit", str(path), "--levels", "1,3"]) != 0
    assert "not among --levels" in capsys.readouterr().err


def test_module_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "qmc", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "bench" in result.stdout and "fit" in result.stdout


def test_ids_with_commas_round_trip_and_uneven_levels(tmp_path, capsys):
    import csv

    path = tmp_path / "quoted.csv"
    rows = ['"Smith, A",m1,1', '"Smith, A",m2,5', "b,m1,2", "b,m3,1", "c,m2,5", "c,m3,2"]
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    out = tmp_path / "o"
    args = ["fit", str(path), "--lam", "0.5", "--rank", "3", "--out", str(out)]
    assert main([*args, "--predict-missing", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["levels"] == [1.0, 2.0, 5.0] and "offset" in payload
    with (out / "user_factors.csv").open() as f:
        users = list(csv.reader(f))
    assert all(len(r) == len(users[0]) for r in users)
    assert "Smith, A" in {r[0] for r in users}
    with (out / "predictions.csv").open() as f:
        predictions = list(csv.reader(f))[1:]
    assert {r[0] for r in predictions} <= {"Smith, A", "b", "c"}
    # E[rating] lies within the rating range (uneven spacing 1, 2, 5).
    assert all(1.0 <= float(r[3]) <= 5.0 for r in predictions)
    assert main(["fit", str(path), "--predict-missing"]) != 0
    assert "--out" in capsys.readouterr().err
