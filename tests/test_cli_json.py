"""``--json`` prints exactly one JSON document on stdout, for every package.

One row per package: its cheapest subcommand (seconds, offline), run as ``python -m <name>``
with ``--json``; stdout must parse as one JSON document (progress and logs go to stderr).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ratings_csv(tmp: Path) -> list[str]:
    rows = ["user,item,rating"] + [
        f"u{u},i{i},{1 + (u * 7 + i * 3) % 5}" for u in range(12) for i in range(10) if (u + i) % 3
    ]
    (tmp / "ratings.csv").write_text("\n".join(rows) + "\n")
    return [str(tmp / "ratings.csv"), "--rank", "3", "--lam", "1.0"]


def _nothing(tmp: Path) -> list[str]:
    return []


def _shipped(path: str, *rest: str) -> Callable[[Path], list[str]]:
    """An input file the package's tests ship (under packages/<name>/tests/data)."""

    def setup(tmp: Path) -> list[str]:
        return [str(ROOT / path), *rest]

    return setup


def _tiny_llama(package: str, *method_args: str) -> Callable[[Path], list[str]]:
    """A compression run of the tiny checkpoint the package's tests ship, on CPU."""

    def setup(tmp: Path) -> list[str]:
        data = ROOT / "packages" / package / "tests" / "data"
        return [
            "--model", str(data / "tiny-llama"), "--calib-corpus", str(data / "calib.txt"),
            "--calib-windows", "2", "--seqlen", "16", "--eval-windows", "0", *method_args,
            "--device", "cpu", "--out", str(tmp / "out"),
        ]  # fmt: skip

    return setup


def _rac_traces(tmp: Path) -> list[str]:
    """Traces of two problems from the tiny checkpoint rac's tests ship, on CPU."""
    model = ROOT / "packages" / "rac" / "tests" / "data" / "tiny-llama"
    return ["--model", str(model), "--n", "2", "--max-new-tokens", "4", "--device", "cpu",
            "--out", str(tmp / "t.jsonl")]  # fmt: skip


def _mixlm_pairs(tmp: Path) -> list[str]:
    """Six labelled pairs and the tiny ranker and encoder mixlm's tests build (seeded)."""
    pairs = [
        {"query": q, "item": t, "label": float(q in t)}
        for q in ("goal", "vote")
        for t in ("a late goal won it", "a vote next week", "phones on sale")
    ]
    (tmp / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return ["--data", str(tmp / "pairs.jsonl"), "--ranker", "tiny-llama", "--encoder",
            "tiny-bert", "--k", "2", "--answer-words", "the,a", "--out", str(tmp / "run")]  # fmt: skip


def _slm_config(tmp: Path) -> list[str]:
    """A default pipeline configuration: ``slm plan`` checks it without loading a model."""
    (tmp / "p.toml").write_text('out = "run"\n')
    return [str(tmp / "p.toml")]


# module, argv before the input arguments, a function writing inputs into tmp and returning
# the rest of argv.
CASES: list[tuple[str, list[str], Callable[[Path], list[str]]]] = [
    ("labcore", ["models"], _nothing),
    ("labcore", ["info"], _nothing),
    ("qmc", ["fit"], _ratings_csv),
    ("layerwise", ["methods"], _nothing),
    ("quantease", ["run"], _tiny_llama("quantease", "--bits", "3", "--sweeps", "2")),
    ("alps", ["run"], _tiny_llama("alps", "--sparsity", "0.5")),
    ("osscar", ["run"], _tiny_llama("osscar", "--mlp-sparsity", "0.25")),
    ("hasslefree", ["run"], _tiny_llama("hasslefree", "--rank", "2", "--rounds", "2")),
    ("rac", ["traces"], _rac_traces),
    ("graphl0bnb", ["fit"], _shipped("packages/graphl0bnb/tests/data/banded6.csv")),
    (
        "dpbss",
        ["fit"],
        _shipped("packages/dpbss/tests/data/synthetic300x8.csv", "--target", "y", "--k", "2"),
    ),
    ("mixlm", ["train"], _mixlm_pairs),
    ("slm", ["plan"], _slm_config),
    (
        "sparta",
        ["train"],
        lambda tmp: ["--epochs", "2", "--probe-epochs", "0", "--method", "last-layer"],
    ),
    (
        "skinnytrees",
        ["fit"],
        _shipped(
            "packages/skinnytrees/tests/data/two_signals.csv",
            "--target",
            "label",
            "--budget",
            "2",
            "--trees",
            "4",
            "--depth",
            "2",
            "--epochs",
            "20",
        ),
    ),
    (
        "archetypal_nmf",
        ["fit"],
        _shipped("packages/archetypal_nmf/tests/data/planted30x6.csv", "-k", "3"),
    ),
    ("srf", ["complete"], _shipped("packages/srf/tests/data/lowrank.csv")),
    (
        "batchroute",
        ["route"],
        _shipped(
            "packages/batchroute/tests/data/batch.jsonl",
            "--models",
            str(ROOT / "packages/batchroute/tests/data/models.yaml"),
        ),
    ),
    (
        "msam",
        ["train"],
        lambda tmp: [
            "--data",
            "digits",
            "--epochs",
            "1",
            "--train-subset",
            "128",
            "--batch-size",
            "64",
            "--device",
            "cpu",
            "-q",
        ],
    ),
    (
        "samstats",
        ["run"],
        lambda tmp: [
            "kernel",
            "--n",
            "30",
            "--frequencies",
            "15",
            "--seeds",
            "1",
            "--steps",
            "100",
            "--rho",
            "1",
            "--rho-normalized",
            "0.05",
        ],
    ),
    ("obtain", ["track"], _shipped("packages/obtain/tests/data/click120.flac")),
    (
        "smcdecode",
        ["generate"],
        lambda tmp: [
            "--model",
            str(ROOT / "packages/smcdecode/tests/data/tiny-lm"),
            "--prompt",
            "write a word",
            "--reward",
            "keywords:a",
            "--particles",
            "4",
            "--max-new-tokens",
            "8",
        ],
    ),
    (
        "bpseg",
        ["segment"],
        _shipped("packages/bpseg/tests/data/two_topics.txt", "--k", "2", "--encoder", "tfidf"),
    ),
]


def test_every_package_has_a_json_case():
    packages = {p.name for p in (ROOT / "packages").iterdir() if p.is_dir()}
    assert packages <= {case[0] for case in CASES}, "add the package's cheapest --json command"


@pytest.mark.parametrize(
    ("module", "argv", "setup"), CASES, ids=[f"{c[0]}-{c[1][0]}" for c in CASES]
)
def test_json_output_is_one_document(module, argv, setup, tmp_path):
    args = [sys.executable, "-m", module, *argv, *setup(tmp_path), "--json"]
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    # raises on anything but exactly one strict JSON document (no bare NaN or Infinity)
    payload = json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert isinstance(payload, dict | list)
