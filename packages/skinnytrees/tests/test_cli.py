"""The command line: fit, predict, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from skinnytrees.cli import main

DATA = Path(__file__).parent / "data" / "two_signals.csv"  # label depends on f2 and f5
FAST = ["--trees", "6", "--depth", "3", "--epochs", "60"]


def test_fit_json_selects_the_two_signals(capsys):
    assert main(["fit", str(DATA), "--target", "label", "--budget", "2", "--json", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["task"] == "classification" and out["budget"] == 2
    assert sorted(out["selected"]) == ["f2", "f5"]
    assert set(out["importance"]) == {"f2", "f5"}
    assert out["path"] and all("l0" in e and "n_selected" in e for e in out["path"])


def test_fit_out_then_predict_round_trip(tmp_path, capsys):
    model = tmp_path / "model"
    code = main(
        ["fit", str(DATA), "--target", "label", "--budget", "0.5", "--out", str(model), *FAST]
    )
    assert code == 0
    assert (model / "model.pkl").is_file() and (model / "selection.json").is_file()
    capsys.readouterr()
    preds = tmp_path / "preds.csv"
    assert (
        main(["predict", str(model), str(DATA), "--drop", "label", "--out", str(preds), "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == ["no", "yes"] and out["n_rows"] == 120
    truth = [line.rsplit(",", 1)[1] for line in DATA.read_text().splitlines()[1:]]
    accuracy = sum(p == t for p, t in zip(out["predictions"], truth, strict=True)) / 120
    assert accuracy > 0.85
    assert preds.read_text().splitlines()[0] == "prediction,p_no,p_yes"
    # the folder exists now: a second fit needs --overwrite
    assert main(["fit", str(DATA), "--target", "label", "--out", str(model), *FAST]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("budget", ["0", "-0.25", "1.5", "nan", "half"])
def test_budget_outside_0_1_is_an_argument_error(budget, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(DATA), "--target", "label", "--budget", budget])
    assert exc.value.code == 2
    assert "--budget" in capsys.readouterr().err


def test_budget_above_the_feature_count(capsys):
    assert main(["fit", str(DATA), "--target", "label", "--budget", "7"]) == 2
    assert "between 1 and the 6 features" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content,says",
    [
        ("a,b,y\n1,2,0\n2,x,1\n3,1,0\n", "line 3, column 2 ('b'): 'x' is not a number"),
        ("a,b,y\n1,2,0\n2,,1\n3,1,0\n", "line 3, column 2 ('b'): missing"),
        ("a,b,y\n1,2,5\n2,3,5\n3,1,5\n4,4,5\n", "is constant"),
        ("a,b,y\n1,2,u\n2,3,u\n3,1,u\n", "is constant (every row is 'u')"),
        ("a,b,z\n1,2,0\n2,3,1\n", "has no column 'y'"),
        ("1,2,0\n2,3,1\n", "needs a header row"),
    ],
)
def test_bad_csv_is_a_one_line_error(tmp_path, capsys, content, says):
    path = tmp_path / "d.csv"
    path.write_text(content)
    assert main(["fit", str(path), "--target", "y"]) == 2
    assert says in capsys.readouterr().err


def test_predict_needs_the_model_columns(tmp_path, capsys):
    model = tmp_path / "m"
    assert (
        main(["fit", str(DATA), "--target", "label", "--out", str(model), "--l0", "0.5", *FAST])
        == 0
    )
    other = tmp_path / "other.csv"
    other.write_text("f1,f2\n1,2\n")
    capsys.readouterr()
    assert main(["predict", str(model), str(other)]) == 2
    assert "lacks the model's feature column" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nowhere"), str(other)]) == 2
    assert "no model at" in capsys.readouterr().err
