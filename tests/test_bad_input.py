"""Bad input, one row each: the installed CLI gives a clear one-line error (or a documented,
warned behaviour), never a traceback, a hang, silent garbage or a deleted user file.

Each row runs ``python -m <package> ...`` in a fresh folder with tiny inputs. ``setup`` writes
the inputs and returns the arguments; ``code`` is the expected exit status (2: the user's
input, as :func:`labcore.cli.run` reports a ``LabcoreError``); ``says`` is a fragment of
stderr (or stdout for exit 0); ``check`` looks at the outcome (files, JSON).

A new package adds its rows here.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    id: str
    package: str
    setup: Callable[[Path], list[str]]
    code: int
    says: str
    check: Callable[[Path, subprocess.CompletedProcess], None] | None = None


def _write(name: str, content: str | bytes, *rest: str) -> Callable[[Path], list[str]]:
    """Write one input file; the arguments are ``rest`` with ``{f}`` replaced by its path."""

    def setup(tmp: Path) -> list[str]:
        path = tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return [a.replace("{f}", str(path)).replace("{tmp}", str(tmp)) for a in rest]

    return setup


def _then(*steps: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
    """Run several setups; the arguments are the last one's."""

    def setup(tmp: Path) -> list[str]:
        args: list[str] = []
        for step in steps:
            args = step(tmp)
        return args

    return setup


def _folder(name: str, *, holding: str | None = None) -> Callable[[Path], list[str]]:
    """Make a folder (with a file of the user's in it, ``mine.txt``, when ``holding``)."""

    def setup(tmp: Path) -> list[str]:
        (tmp / name).mkdir()
        if holding is not None:
            (tmp / name / "mine.txt").write_text(holding)
        return []

    return setup


def _wav(n_samples: int) -> bytes:
    """A mono 16-bit PCM WAV of ``n_samples`` zero samples at 22,050 Hz."""
    data = b"\x00\x00" * n_samples
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


RATINGS = "user,item,rating\n" + "".join(
    f"u{u},i{i},{1 + (u * 7 + i * 3) % 5}\n" for u in range(8) for i in range(6) if (u + i) % 3
)
CONTINUOUS_RATINGS = "user,item,rating\n" + "".join(
    f"u{u},i{i},{1 + ((u * 7 + i * 3) % 97) / 24.25:.3f}\n" for u in range(8) for i in range(6)
)
MODELS_YAML = "models:\n  - name: small\n  - name: large\n    capacity: 1\nbudget_per_query: 3\n"


def _route_line(query: str, q_small: float, qid: str | None = None) -> str:
    line = {"query": query, "quality": {"small": q_small, "large": 0.9}}
    line["cost"] = {"small": 1, "large": 5}
    if qid is not None:
        line["id"] = qid
    return json.dumps(line) + "\n"


def _mode_like_touch(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    """Files like ``touch``'s, the folder like ``mkdir``'s (not the temporary files' 0600)."""
    (tmp / "touched").touch()
    (tmp / "made").mkdir()
    file_mode = (tmp / "touched").stat().st_mode & 0o777
    dir_mode = (tmp / "made").stat().st_mode & 0o777
    written = sorted((tmp / "out").iterdir())
    assert [p.name for p in written if not p.name.startswith(".")] == [
        "item_factors.csv",
        "model.json",
        "user_factors.csv",
    ]
    for p in written:
        assert p.stat().st_mode & 0o777 == file_mode, (p.name, oct(p.stat().st_mode))
    assert (tmp / "out").stat().st_mode & 0o777 == dir_mode


def _foreign_file_intact(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    assert (tmp / "out" / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in (tmp / "out").iterdir()) == ["mine.txt"]


def _no_output(name: str) -> Callable[[Path, subprocess.CompletedProcess], None]:
    def check(tmp: Path, proc: subprocess.CompletedProcess) -> None:
        assert not (tmp / name).exists(), f"{name} was written despite the error"

    return check


def _json_rank(rank: int) -> Callable[[Path, subprocess.CompletedProcess], None]:
    def check(tmp: Path, proc: subprocess.CompletedProcess) -> None:
        assert json.loads(proc.stdout)["rank"] == rank

    return check


def _strict_json(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    text = proc.stdout
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in --json output"))


#: A small bounded table for dpbss: three features in [-0.5, 0.5] and a response.
DPBSS_CSV = "a,b,c,y\n" + "".join(
    f"{0.1 * (i % 5)},{0.05 * ((7 * i) % 9) - 0.2},{0.1 * ((3 * i) % 4)},{0.02 * (i % 11)}\n"
    for i in range(1, 40)
)


#: A small table for skinnytrees: three numeric features and a 0/1 target.
SKINNY_CSV = "a,b,c,y\n" + "".join(
    f"{0.1 * i:.1f},{(7 * i) % 5},{(3 * i) % 4},{int(i % 3 == 0)}\n" for i in range(4, 30)
)


CASES = [
    # srf: an all-missing column is refused; a complete matrix reports its own rank
    Case("srf-empty-column", "srf",
         _write("x.csv", "a,b,c\n1,,3\n2,,5\n4,,1\n", "complete", "{f}"),
         2, "have no observed value"),
    Case("srf-complete-matrix-rank", "srf",
         _write("x.csv", "1,2,3\n2,4,6\n1,0,1\n", "complete", "{f}", "--json"),
         0, '"rank": 2', _json_rank(2)),
    # archetypal-nmf: an all-missing column is refused, not imputed
    Case("archetypal-nmf-empty-column", "archetypal_nmf",
         _write("x.csv", "a,b,c\n1,,3\n2,,5\n4,,1\n3,,2\n", "fit", "{f}", "-k", "2"),
         2, "have no observed entry"),
    # qmc: continuous scores are not ordinal levels
    Case("qmc-continuous-ratings", "qmc",
         _write("r.csv", CONTINUOUS_RATINGS, "fit", "{f}"),
         2, "distinct values"),
    # bpseg: binary and Latin-1 text are refused, not segmented as replacement characters
    Case("bpseg-binary-file", "bpseg",
         _write("doc.bin", b"\x7fELF\x00\x01\x02" * 50, "segment", "{f}"),
         2, "is a binary file"),
    Case("bpseg-latin1-file", "bpseg",
         _write("doc.txt", "Caf\xe9 cr\xe8me.\nSecond line.\n".encode("latin-1"), "segment", "{f}"),
         2, "is not UTF-8 text (byte 0xe9 at offset 3, line 1)"),
    # --out of the wrong kind: a sentence, and before any work
    Case("bpseg-out-is-a-folder", "bpseg",
         _then(_folder("some_dir"),
               _write("doc.txt", "One sentence. Another one.\n", "segment", "{f}", "--out",
                      "{tmp}/some_dir")),
         2, "is a folder; give a file path"),
    Case("graphl0bnb-out-under-a-file", "graphl0bnb",
         _then(_write("taken", "a file"),
               _write("x.csv", "a,b,c\n1,2,3\n2,1,4\n3,5,1\n4,2,2\n5,1,3\n", "fit", "{f}",
                      "--mode", "heuristic", "--out", "{tmp}/taken/sub")),
         2, "is a file, not a folder"),
    Case("bench-out-is-a-file", "bpseg",
         _write("results", "a file", "bench", "--quick", "--out", "{f}"),
         2, "is a file; give a folder"),
    # graphl0bnb: a non-numeric cell names its line and column
    Case("graphl0bnb-text-cell", "graphl0bnb",
         _write("x.csv", "a,b,c\n1,2,3\n2,x,4\n3,5,1\n", "fit", "{f}"),
         2, "line 3, column 2: 'x' is not a number"),
    # batchroute route files: quality is a probability; ids are unique
    Case("batchroute-quality-above-one", "batchroute",
         _then(_write("models.yaml", MODELS_YAML),
               _write("q.jsonl", _route_line("a", 7.5) + _route_line("b", 0.2), "route", "{f}",
                      "--models", "{tmp}/models.yaml")),
         2, "'quality' of 'small' is 7.5; it must be a probability in [0, 1]"),
    Case("batchroute-quality-negative", "batchroute",
         _then(_write("models.yaml", MODELS_YAML),
               _write("q.jsonl", _route_line("a", -3), "route", "{f}",
                      "--models", "{tmp}/models.yaml")),
         2, "is -3; it must be a probability"),
    Case("batchroute-quality-not-a-number", "batchroute",
         _then(_write("models.yaml", MODELS_YAML),
               _write("q.jsonl", json.dumps({"query": "a", "quality": {"small": "x", "large": 1},
                                             "cost": {"small": 1, "large": 5}}) + "\n",
                      "route", "{f}", "--models", "{tmp}/models.yaml")),
         2, "'quality' values must be numbers"),
    Case("batchroute-duplicate-ids", "batchroute",
         _then(_write("models.yaml", MODELS_YAML),
               _write("q.jsonl", _route_line("a", 0.5, "q1") + _route_line("b", 0.2, "q1"),
                      "route", "{f}", "--models", "{tmp}/models.yaml")),
         2, "line 2: duplicate query id 'q1' (first on line 1)"),
    # obtain: gains in range; unreadable or empty audio says why, at once
    Case("obtain-negative-click-gain", "obtain",
         _write("a.wav", _wav(22050), "click", "{f}", "--click-gain", "-5", "--out",
                "{tmp}/o.wav"),
         2, "must be between 0 and 10", _no_output("o.wav")),
    Case("obtain-fake-wav", "obtain",
         _write("fake.wav", "this is not audio\n", "track", "{f}"),
         2, "cannot read audio"),
    Case("obtain-zero-sample-wav", "obtain",
         _write("empty.wav", _wav(0), "track", "{f}"),
         2, "holds no samples"),
    # multi-file outputs: one folder moved into place whole, with the user's usual file mode
    Case("qmc-out-files-have-the-usual-mode", "qmc",
         _write("r.csv", RATINGS, "fit", "{f}", "--rank", "2", "--lam", "1.0", "--out",
                "{tmp}/out"),
         0, "wrote", _mode_like_touch),
    Case("qmc-out-exists", "qmc",
         _then(_folder("out", holding="keep me"),
               _write("r.csv", RATINGS, "fit", "{f}", "--rank", "2", "--lam", "1.0", "--out",
                      "{tmp}/out")),
         2, "already exists", _foreign_file_intact),
    Case("qmc-overwrite-refuses-a-foreign-folder", "qmc",
         _then(_folder("out", holding="keep me"),
               _write("r.csv", RATINGS, "fit", "{f}", "--rank", "2", "--lam", "1.0", "--out",
                      "{tmp}/out", "--overwrite")),
         2, "refusing to replace", _foreign_file_intact),
    Case("archetypal-nmf-overwrite-refuses-a-foreign-folder", "archetypal_nmf",
         _then(_folder("out", holding="keep me"),
               _write("x.csv", "1,2\n2,1\n3,3\n", "fit", "{f}", "-k", "2", "--out", "{tmp}/out",
                      "--overwrite")),
         2, "refusing to replace", _foreign_file_intact),
    Case("srf-out-under-a-file", "srf",
         _then(_write("taken", "a file"),
               _write("x.csv", "1,2,3\n2,4,6\n1,0,1\n", "complete", "{f}", "--out",
                      "{tmp}/taken/completed.csv")),
         2, "taken is a file, not a folder"),
    Case("obtain-out-is-a-folder", "obtain",
         _then(_folder("beats"),
               _write("a.wav", _wav(22050), "track", "{f}", "--out", "{tmp}/beats")),
         2, "is a folder; give a file path"),
    Case("qmc-out-is-a-file", "qmc",
         _then(_write("taken", "a file"),
               _write("r.csv", RATINGS, "fit", "{f}", "--out", "{tmp}/taken")),
         2, "is a file; give a folder"),
    Case("layerwise-export-out-is-a-file", "layerwise",
         _write("taken", "a file", "export", "{tmp}/run", "--out", "{f}"),
         2, "is a file; give a folder"),
    Case("layerwise-overwrite-refuses-a-foreign-folder", "layerwise",
         _then(_folder("out", holding="keep me"),
               lambda t: ["export", str(t / "run"), "--out", str(t / "out"), "--overwrite"]),
         2, "refusing to replace", _foreign_file_intact),
    # skinnytrees: the budget is a fraction in (0, 1] or a count; features are numbers; a
    # constant target is refused; --out is checked before any training
    Case("skinnytrees-budget-above-one", "skinnytrees",
         _write("d.csv", SKINNY_CSV, "fit", "{f}", "--target", "y", "--budget", "1.5"),
         2, "a fraction in (0, 1] or a whole feature count"),
    Case("skinnytrees-budget-zero", "skinnytrees",
         _write("d.csv", SKINNY_CSV, "fit", "{f}", "--target", "y", "--budget", "0"),
         2, "the budget must be a fraction in (0, 1]"),
    Case("skinnytrees-text-feature", "skinnytrees",
         _write("d.csv", SKINNY_CSV.replace("0.4,", "red,", 1), "fit", "{f}", "--target", "y"),
         2, "'red' is not a number"),
    Case("skinnytrees-constant-target", "skinnytrees",
         _write("d.csv", SKINNY_CSV.replace(",1\n", ",0\n"), "fit", "{f}", "--target", "y"),
         2, "is constant"),
    Case("skinnytrees-overwrite-refuses-a-foreign-folder", "skinnytrees",
         _then(_folder("out", holding="keep me"),
               _write("d.csv", SKINNY_CSV, "fit", "{f}", "--target", "y", "--out", "{tmp}/out",
                      "--overwrite")),
         2, "refusing to replace", _foreign_file_intact),
    Case("skinnytrees-predict-without-a-model", "skinnytrees",
         _write("d.csv", SKINNY_CSV, "predict", "{tmp}/nowhere", "{f}"),
         2, "no model at"),
    # sparta: the privacy budget and the sparsity are checked before any training
    Case("sparta-epsilon-zero", "sparta",
         lambda tmp: ["train", "--epsilon", "0"],
         2, "epsilon must be a positive number"),
    Case("sparta-sparsity-above-one", "sparta",
         lambda tmp: ["train", "--sparsity", "1.5"],
         2, "must be in (0, 1]"),
    Case("sparta-delta-not-below-one-over-n", "sparta",
         lambda tmp: ["train", "--delta", "0.01"],
         2, "is not below 1/n"),
    Case("sparta-model-does-not-fit-the-data", "sparta",
         lambda tmp: ["train", "--data", "bbc", "--model", "mlp"],
         2, "model 'mlp' does not go with data 'bbc'"),
    Case("sparta-missing-fashion-mnist", "sparta",
         lambda tmp: ["train", "--data", "fashion-mnist", "--data-root", f"{tmp}/nowhere"],
         2, "Fashion-MNIST folder not found"),
    # dpbss: the budget, k and the data's bounds are checked before any optimization
    Case("dpbss-epsilon-zero", "dpbss",
         _write("d.csv", DPBSS_CSV, "fit", "{f}", "--target", "y", "--epsilon", "0"),
         2, "epsilon must be > 0.0"),
    Case("dpbss-k-above-p", "dpbss",
         _write("d.csv", DPBSS_CSV, "fit", "{f}", "--target", "y", "--k", "4"),
         2, "k = 4 is larger than the number of features p = 3"),
    Case("dpbss-unbounded-data", "dpbss",
         _write("d.csv", DPBSS_CSV.replace("0.1,", "3.0,", 1), "fit", "{f}", "--target", "y"),
         2, "is outside [-x_bound, x_bound]"),
    Case("dpbss-missing-target", "dpbss",
         _write("d.csv", DPBSS_CSV, "fit", "{f}", "--target", "label"),
         2, "is not a column"),
    Case("dpbss-hinge-needs-two-classes", "dpbss",
         _write("d.csv", DPBSS_CSV, "fit", "{f}", "--target", "y", "--loss", "hinge"),
         2, "needs exactly two classes"),
    # mixlm: bad training data, answer words and run folders are named before any model work
    Case("mixlm-label-not-binary", "mixlm",
         _write("p.jsonl", '{"query": "q", "item": "an item", "label": 2}\n', "train",
                "--data", "{f}", "--ranker", "tiny-llama", "--encoder", "tiny-bert",
                "--answer-words", "the,a", "--out", "{tmp}/run"),
         2, "labels must be 0 or 1"),
    Case("mixlm-one-answer-word", "mixlm",
         _write("p.jsonl", '{"query": "q", "item": "an item", "label": 1}\n', "train",
                "--data", "{f}", "--answer-words", "yes", "--out", "{tmp}/run"),
         2, "--answer-words must be two words"),
    Case("mixlm-index-without-a-run", "mixlm",
         _write("items.jsonl", '{"id": "a", "text": "an item"}\n', "index", "{tmp}/nowhere",
                "{f}", "--cache", "{tmp}/items.db"),
         2, "is not a mixlm run"),
    Case("mixlm-serve-bad-port", "mixlm",
         lambda tmp: ["serve", str(tmp), "--cache", str(tmp / "items.db"), "--port", "70000"],
         2, "port must be an integer in [0, 65535]"),
    # slm: a configuration that cannot work fails before any model is loaded
    Case("slm-unknown-stage", "slm",
         _write("p.toml", 'out = "run"\nstages = ["teacher", "finetune"]\n', "run", "{f}"),
         2, "unknown stage 'finetune'"),
    Case("slm-stage-order", "slm",
         _write("p.toml", 'out = "run"\nstages = ["quantize", "prune"]\n', "run", "{f}"),
         2, "stage 'prune' cannot run after 'quantize'"),
    Case("slm-missing-checkpoint", "slm",
         _write("p.toml", 'out = "run"\nstages = ["teacher", "distill", "prune"]\n', "run",
                "{f}", "--from", "prune"),
         2, "needs the distill checkpoint"),
    Case("slm-unknown-setting", "slm",
         _write("p.toml", 'out = "run"\n[prune]\nsparsity = 0.5\n', "plan", "{f}"),
         2, "[prune] has unknown setting(s) ['sparsity']"),
    Case("slm-serve-without-run", "slm",
         _write("items.jsonl", '{"id": "a", "text": "An item."}\n', "serve", "{tmp}/nowhere",
                "--items", "{f}"),
         2, "no run folder"),
    # strict JSON: no bare NaN on stdout
    Case("srf-json-is-strict", "srf",
         _write("x.csv", "1,2,3\n2,4,6\n1,0,1\n", "complete", "{f}", "--json"),
         0, "{", _strict_json),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case: Case, tmp_path: Path) -> None:
    args = case.setup(tmp_path)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", case.package, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard, not a speed claim
        env=env,
    )
    out = proc.stderr if case.code else proc.stdout
    assert proc.returncode == case.code, (proc.returncode, proc.stderr[-2000:])
    assert case.says in out, out[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    if case.code:
        errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
        assert len(errors) == 1, proc.stderr[-2000:]  # one line, naming the problem
    if case.check is not None:
        case.check(tmp_path, proc)


def test_every_package_has_a_row() -> None:
    """A new package adds its rows (the LLM packages' bad inputs are in their own tests)."""
    covered = {c.package for c in CASES}
    light = {
        "srf",
        "archetypal_nmf",
        "qmc",
        "bpseg",
        "graphl0bnb",
        "batchroute",
        "obtain",
        "layerwise",
        "skinnytrees",
        "sparta",
        "dpbss",
        "mixlm",
        "slm",
    }
    assert light <= covered
