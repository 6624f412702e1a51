import json
import subprocess
import sys

import numpy as np
from srf.cli import main
from srf.data import planted


def _write(path, M, header):
    lines = [",".join(header)]
    for row in M:
        lines.append(",".join("" if np.isnan(v) else f"{v:.12g}" for v in row))
    path.write_text("\n".join(lines) + "\n")


def test_complete_writes_the_completed_matrix(tmp_path, capsys):
    M = planted(40, 12, 2, seed=0)
    mask = np.random.default_rng(0).random(M.shape) < 0.7
    path = tmp_path / "data.csv"
    _write(path, np.where(mask, M, np.nan), [f"c{j}" for j in range(12)])
    out = tmp_path / "done.csv"
    assert main(["complete", str(path), "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["missing_entries"] == int((~mask).sum())
    Z = np.loadtxt(out, delimiter=",", skiprows=1)
    assert out.read_text().startswith("c0,c1")
    np.testing.assert_allclose(Z[mask], M[mask], rtol=1e-9)
    # Standardizing (centring) adds one rank to this small 40 × 12 problem.
    assert np.linalg.norm(Z[~mask] - M[~mask]) / np.linalg.norm(M[~mask]) < 0.1


def test_complete_with_a_label_column(tmp_path, capsys):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((60, 2))
    X = A @ rng.standard_normal((2, 6))
    y = (A[:, 0] > 0).astype(float)
    y_partial = np.where(rng.random(60) < 0.5, y, np.nan)
    path = tmp_path / "labelled.csv"
    _write(path, np.column_stack([X, y_partial]), [*(f"f{j}" for j in range(6)), "class"])
    out = tmp_path / "out"
    assert main(["complete", str(path), "--label", "class", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["classes"] == [0.0, 1.0]
    Z = np.loadtxt(out / "completed.csv", delimiter=",", skiprows=1)
    hidden = np.isnan(y_partial)
    assert np.mean(Z[hidden, -1] == y[hidden]) > 0.8
    assert main(["complete", str(path), "--label", "nope"]) != 0
    assert "not a column" in capsys.readouterr().err


def test_bad_files(tmp_path, capsys):
    assert main(["complete", str(tmp_path / "missing.csv")]) != 0
    assert "not found" in capsys.readouterr().err
    path = tmp_path / "text.csv"
    path.write_text("a,b\n1,x\n")
    assert main(["complete", str(path)]) != 0
    assert "not a number" in capsys.readouterr().err


def test_module_help():
    result = subprocess.run(
        [sys.executable, "-m", "srf", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "complete" in result.stdout and "bench" in result.stdout


def test_complete_json_on_the_bundled_csv_is_one_document(capsys):
    from pathlib import Path

    data = Path(__file__).parent / "data" / "lowrank.csv"
    assert main(["complete", str(data), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n_rows"] == 30 and payload["missing_entries"] == 71
