"""Routing data: the synthetic item-response model, batches, tables and embeddings."""

from __future__ import annotations

import gzip
import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from batchroute import data as data_module
from batchroute.data import (
    DEFAULT_MODELS,
    RoutingData,
    batches,
    builtin_matrix_path,
    embed_queries,
    load_builtin,
    load_table,
    save_table,
    synthetic,
)

import labcore.embed
from labcore.errors import LabcoreError


@pytest.fixture(scope="module")
def synth() -> RoutingData:
    return synthetic(n=2000, seed=0)


def small_data(n: int = 6) -> RoutingData:
    rng = np.random.default_rng(1)
    return RoutingData(
        models=("org/alpha-7b", "beta"),
        correct=rng.integers(0, 2, size=(n, 2)).astype(float),
        cost=rng.random((n, 2)) * [1e-4, 3.0],
        queries=tuple(f"query {i}, with a comma" for i in range(n)),
        tokens=rng.integers(1, 500, size=(n, 2)).astype(float),
        latency_s=rng.random((n, 2)),
        groups=np.array(["mmlu", "gsm8k"] * (n // 2)),
        sample_ids=tuple(f"id-{i}" for i in range(n)),
    )


# --------------------------------------------------------------------------------------------
# RoutingData.


def test_routing_data_shapes_and_subset():
    d = small_data()
    assert (d.n, d.m) == (6, 2)
    assert d.correct.dtype == np.float64 and d.groups.dtype.kind == "U"
    s = d.subset([4, 1])
    assert s.n == 2 and s.models == d.models
    np.testing.assert_array_equal(s.cost, d.cost[[4, 1]])
    np.testing.assert_array_equal(s.tokens, d.tokens[[4, 1]])
    assert s.queries == (d.queries[4], d.queries[1])
    assert s.sample_ids == ("id-4", "id-1")
    assert s.groups.tolist() == [d.groups[4], d.groups[1]]
    mask = np.zeros(6, dtype=bool)
    mask[[0, 5]] = True
    assert d.subset(mask).queries == (d.queries[0], d.queries[5])


def test_subset_keeps_synthetic_fields(synth):
    s = synth.subset(np.arange(10))
    np.testing.assert_array_equal(s.embeddings, synth.embeddings[:10])
    np.testing.assert_array_equal(s.true_quality, synth.true_quality[:10])
    np.testing.assert_array_equal(s.difficulty, synth.difficulty[:10])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"correct": [[0, 1], [1, 2]]}, "correct must lie in"),
        ({"correct": [[0, np.nan], [1, 1]]}, "NaN"),
        ({"cost": [[1, 2]]}, "cost has shape"),
        ({"cost": [[1, -2], [1, 1]]}, "non-negative"),
        ({"models": ("a", "a")}, "duplicate"),
        ({"models": ("a",)}, "correct has shape"),
        ({"models": "ab"}, "not one string"),
        ({"queries": ("only one",)}, "1 queries for 2 rows"),
        ({"groups": ["x", "y", "z"]}, "groups has shape"),
        ({"embeddings": np.ones((3, 4))}, "embeddings has shape"),
        ({"tokens": [[1, 2], [3, np.inf]]}, "tokens contains"),
        ({"true_quality": [[0.5, 1.5], [0, 0]]}, "true_quality must lie"),
        ({"difficulty": [1.0]}, "difficulty has shape"),
    ],
)
def test_routing_data_rejects_bad_input(change, message):
    fields = {"models": ("a", "b"), "correct": [[0, 1], [1, 1]], "cost": [[1, 2], [1, 2]]}
    fields.update(change)
    with pytest.raises(LabcoreError, match=message):
        RoutingData(**fields)


def test_subset_rejects_bad_rows():
    d = small_data()
    with pytest.raises(LabcoreError, match="row indices"):
        d.subset([0, 6])
    with pytest.raises(LabcoreError, match="boolean row mask"):
        d.subset(np.ones(3, dtype=bool))


# --------------------------------------------------------------------------------------------
# Synthetic data.


def test_synthetic_shapes(synth):
    n, m = 2000, len(DEFAULT_MODELS)
    assert synth.models == tuple(name for name, _ in DEFAULT_MODELS)
    for field in ("correct", "cost", "tokens", "latency_s", "true_quality"):
        assert getattr(synth, field).shape == (n, m), field
    assert synth.embeddings.shape == (n, 32)
    assert synth.difficulty.shape == (n,) and synth.groups.shape == (n,)
    assert len(synth.queries) == n and synth.queries[42].startswith("q00042 topic ")
    assert set(np.unique(synth.correct)) <= {0.0, 1.0}
    np.testing.assert_allclose(np.linalg.norm(synth.embeddings, axis=1), 1.0)
    assert set(synth.groups) == {f"topic-{t}" for t in range(6)}
    # The query text names the same topic as its group.
    assert all(
        q.split()[-1] == g.split("-")[-1] for q, g in zip(synth.queries, synth.groups, strict=True)
    )


def test_synthetic_is_deterministic():
    a, b, c = synthetic(n=100, seed=3), synthetic(n=100, seed=3), synthetic(n=100, seed=4)
    for field in ("correct", "cost", "embeddings", "true_quality", "difficulty"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.embeddings, c.embeddings)


def test_synthetic_quality_and_cost_grow_with_size(synth):
    assert np.all(np.diff(synth.correct.mean(axis=0)) > 0)
    assert np.all(np.diff(synth.true_quality.mean(axis=0)) > 0)
    assert np.all(np.diff(synth.cost.mean(axis=0)) > 0)
    # The observed outcomes follow the true quality.
    assert abs(synth.correct.mean() - synth.true_quality.mean()) < 0.02


def test_synthetic_harder_queries_are_worse_and_longer(synth):
    d = synth.difficulty
    assert np.corrcoef(d, synth.true_quality.mean(axis=1))[0, 1] < -0.8
    assert np.corrcoef(d, np.log(synth.tokens).mean(axis=1))[0, 1] > 0.3


def test_synthetic_best_model_differs_by_topic(synth):
    best = {
        g: int(np.argmax(synth.true_quality[synth.groups == g].mean(axis=0)))
        for g in np.unique(synth.groups)
    }
    assert len(set(best.values())) > 1


def test_synthetic_embeddings_predict_correctness(synth):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    y = synth.correct[:, -1]
    model = LogisticRegression(max_iter=1000).fit(synth.embeddings[:1500], y[:1500])
    score = model.predict_proba(synth.embeddings[1500:])[:, 1]
    accuracy = np.mean((score > 0.5) == y[1500:])
    majority = max(y[1500:].mean(), 1 - y[1500:].mean())
    assert roc_auc_score(y[1500:], score) > 0.7
    assert accuracy > majority + 0.03


def test_synthetic_custom_models_and_errors():
    d = synthetic(n=50, models=[("a", 1.0), ("b", 100.0)], n_topics=2, dim=4, seed=1)
    assert d.models == ("a", "b") and d.embeddings.shape == (50, 4)
    with pytest.raises(LabcoreError, match="sizes must be positive"):
        synthetic(n=10, models=[("a", 0.0)])
    with pytest.raises(LabcoreError, match="pairs"):
        synthetic(n=10, models=["a", "b"])
    with pytest.raises(LabcoreError, match="n must be a positive integer"):
        synthetic(n=0)


# --------------------------------------------------------------------------------------------
# Batches.


def test_random_batches(synth):
    out = batches(synth, batch_size=50, n_batches=7, seed=1)
    assert len(out) == 7
    for b in out:
        assert b.dtype == np.int64 and b.shape == (50,)
        assert np.unique(b).size == 50 and b.min() >= 0 and b.max() < synth.n
    again = batches(synth.n, batch_size=50, n_batches=7, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(out, again, strict=True))
    other = batches(synth, batch_size=50, n_batches=7, seed=2)
    assert not all(np.array_equal(x, y) for x, y in zip(out, other, strict=True))


def test_hard_and_expensive_batches(synth):
    kw = {"batch_size": 100, "n_batches": 10, "seed": 0}
    random_rows = np.concatenate(batches(synth, kind="random", **kw))
    hard_rows = np.concatenate(batches(synth, kind="hard", **kw))
    dear_rows = np.concatenate(batches(synth, kind="expensive", **kw))
    assert synth.difficulty[hard_rows].mean() > synth.difficulty[random_rows].mean() + 0.5
    # The hard pool is the hardest 30%.
    assert synth.difficulty[hard_rows].min() >= np.quantile(synth.difficulty, 0.7) - 1e-9
    assert synth.cost[dear_rows].mean() > synth.cost[random_rows].mean()
    # Without a difficulty, hardness is the lowest mean correctness.
    blind = replace(synth, difficulty=None)
    blind_rows = np.concatenate(batches(blind, kind="hard", **kw))
    assert synth.correct[blind_rows].mean() < synth.correct[random_rows].mean() - 0.2
    assert synth.difficulty[blind_rows].mean() > synth.difficulty[random_rows].mean()


def test_batches_errors(synth):
    with pytest.raises(LabcoreError, match="unknown batch kind"):
        batches(synth, batch_size=5, n_batches=1, kind="spicy")
    with pytest.raises(LabcoreError, match="exceeds the 600 queries"):
        batches(synth, batch_size=601, n_batches=1, kind="hard")
    with pytest.raises(LabcoreError, match="exceeds"):
        batches(10, batch_size=11, n_batches=1)
    with pytest.raises(LabcoreError, match="need the RoutingData"):
        batches(100, batch_size=5, n_batches=1, kind="hard")
    with pytest.raises(LabcoreError, match="n_batches"):
        batches(100, batch_size=5, n_batches=0)


# --------------------------------------------------------------------------------------------
# Tables.


def assert_same_table(a: RoutingData, b: RoutingData) -> None:
    assert a.models == b.models
    for field in ("correct", "cost", "tokens", "latency_s"):
        x, y = getattr(a, field), getattr(b, field)
        assert (x is None) == (y is None), field
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=field)
    assert a.queries == b.queries
    assert a.sample_ids == b.sample_ids
    assert (a.groups is None) == (b.groups is None)
    if a.groups is not None:
        assert a.groups.tolist() == b.groups.tolist()


@pytest.mark.parametrize(
    "name", ["t.csv", "t.csv.gz", "t.jsonl", "t.jsonl.gz", "t.pkl", "t.pickle"]
)
def test_table_round_trip(tmp_path, name):
    d = small_data()
    # Texts that a careless reader would turn into NaN or split.
    d = replace(d, queries=("NA", "", "two\nlines", 'say "hi"', "null", "ünïcode, ok"))
    path = save_table(d, tmp_path / name)
    assert path == tmp_path / name and path.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        gzip.decompress(path.read_bytes())
    assert_same_table(load_table(path), d)


def test_synthetic_round_trip_keeps_floats_exactly(tmp_path):
    d = synthetic(n=200, seed=5)
    back = load_table(save_table(d, tmp_path / "s.csv"))
    assert_same_table(back, d)
    assert back.embeddings is None and back.true_quality is None


def test_minimal_table_without_optional_columns(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,a|total_cost,b,b|total_cost\n1,0.5,0,0.25\n0.5,1,1,2\n")
    d = load_table(path)
    assert d.models == ("a", "b")
    assert d.queries is None and d.groups is None and d.tokens is None
    np.testing.assert_array_equal(d.correct, [[1, 0], [0.5, 1]])


def routerbench_frame() -> pd.DataFrame:
    """A frame in RouterBench's layout: ids, prompt, eval name, oracle, responses, costs."""
    return pd.DataFrame(
        {
            "sample_id": ["mmlu.1", "gsm8k.7", "mbpp.3"],
            "prompt": ["['What is 2+2?']", "['Solve x']", "['Write f']"],
            "eval_name": ["mmlu", "gsm8k", "mbpp"],
            "oracle_model_to_route_to": ["gpt-3.5-turbo-1106", "meta/llama-2-70b-chat", "x"],
            "gpt-3.5-turbo-1106": [1.0, 0.0, 1.0],
            "gpt-3.5-turbo-1106|model_response": ["4", "x=2", "def f(): ..."],
            "gpt-3.5-turbo-1106|total_cost": [1.2e-4, 3.0e-4, 2.2e-4],
            "meta/llama-2-70b-chat": [0.0, 1.0, 0.4],
            "meta/llama-2-70b-chat|model_response": ["5", "x=1", None],
            "meta/llama-2-70b-chat|total_cost": [9e-5, 1e-4, 8e-5],
        }
    )


def test_routerbench_pickle_layout(tmp_path):
    path = tmp_path / "routerbench_0shot.pkl"
    with open(path, "wb") as fh:
        pickle.dump(routerbench_frame(), fh)
    d = load_table(path)
    assert d.models == ("gpt-3.5-turbo-1106", "meta/llama-2-70b-chat")
    np.testing.assert_array_equal(d.correct, [[1.0, 0.0], [0.0, 1.0], [1.0, 0.4]])
    np.testing.assert_array_equal(d.cost[:, 1], [9e-5, 1e-4, 8e-5])
    assert d.groups.tolist() == ["mmlu", "gsm8k", "mbpp"]
    assert d.queries[0] == "['What is 2+2?']" and d.sample_ids[2] == "mbpp.3"
    # The same frame as a CSV and as JSON lines reads the same.
    routerbench_frame().to_csv(tmp_path / "rb.csv", index=False)
    assert_same_table(load_table(tmp_path / "rb.csv"), d)
    routerbench_frame().to_json(tmp_path / "rb.jsonl", orient="records", lines=True)
    assert_same_table(load_table(tmp_path / "rb.jsonl"), d)


def write_csv(tmp_path, text: str):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


def test_load_table_errors(tmp_path):
    with pytest.raises(LabcoreError, match="not found"):
        load_table(tmp_path / "missing.csv")
    with pytest.raises(LabcoreError, match="unsupported table file"):
        load_table(tmp_path / "table.xlsx")
    with pytest.raises(LabcoreError, match=r"\['b'\] have no cost column \(b\|total_cost\)"):
        load_table(write_csv(tmp_path, "a,a|total_cost,b\n1,1,0\n"))
    with pytest.raises(LabcoreError, match="no model columns"):
        load_table(write_csv(tmp_path, "prompt,eval_name\nhi,x\n"))
    with pytest.raises(LabcoreError, match=r"column 'a\|total_cost' has 1 missing"):
        load_table(write_csv(tmp_path, "a,a|total_cost\n1,\n0,2\n"))
    with pytest.raises(LabcoreError, match="column 'a' has 1 missing, NaN"):
        load_table(write_csv(tmp_path, "a,a|total_cost\nnan,1\n0,2\n"))
    with pytest.raises(LabcoreError, match="non-numeric value 'yes' in row 1"):
        load_table(write_csv(tmp_path, "a,a|total_cost\n1,1\nyes,2\n"))
    with pytest.raises(LabcoreError, match="have no model column"):
        load_table(write_csv(tmp_path, "a,a|total_cost,c|total_cost\n1,1,1\n"))
    with pytest.raises(LabcoreError, match=r"'\|tokens' columns are given for some models"):
        load_table(write_csv(tmp_path, "a,a|total_cost,a|tokens,b,b|total_cost\n1,1,5,0,1\n"))
    with pytest.raises(LabcoreError, match="correct must lie in"):
        load_table(write_csv(tmp_path, "a,a|total_cost\n2,1\n"))
    with pytest.raises(LabcoreError, match="no rows"):
        load_table(write_csv(tmp_path, "a,a|total_cost\n"))
    frame = routerbench_frame()
    frame.loc[1, "gpt-3.5-turbo-1106"] = np.nan
    frame.to_pickle(tmp_path / "nan.pkl")
    with pytest.raises(LabcoreError, match=r"'gpt-3\.5-turbo-1106' has 1 missing, NaN"):
        load_table(tmp_path / "nan.pkl")
    with open(tmp_path / "list.pkl", "wb") as fh:
        pickle.dump([1, 2], fh)
    with pytest.raises(LabcoreError, match="not a pandas DataFrame"):
        load_table(tmp_path / "list.pkl")


def test_save_table_rejects_unsavable_model_names(tmp_path):
    d = RoutingData(models=("prompt",), correct=[[1.0]], cost=[[1.0]])
    with pytest.raises(LabcoreError, match="cannot be saved"):
        save_table(d, tmp_path / "x.csv")
    with pytest.raises(LabcoreError, match="unsupported table file"):
        save_table(small_data(), tmp_path / "x.parquet")


def test_builtin_matrix(tmp_path, monkeypatch):
    assert builtin_matrix_path() == (
        data_module.Path(data_module.__file__).parent / "data" / "correctness.csv"
    )
    monkeypatch.setattr(data_module, "builtin_matrix_path", lambda: tmp_path / "none.csv")
    with pytest.raises(LabcoreError, match="built-in correctness matrix is missing"):
        load_builtin()
    save_table(small_data(), tmp_path / "c.csv")
    monkeypatch.setattr(data_module, "builtin_matrix_path", lambda: tmp_path / "c.csv")
    assert_same_table(load_builtin(), small_data())


# --------------------------------------------------------------------------------------------
# Embeddings.


def test_tfidf_embeddings():
    queries = [
        "what is the capital of france",
        "capital city of france please",
        "integrate x squared from 0 to 1",
        "compute the integral of x squared",
        "",
    ]
    e = embed_queries(queries, encoder="tfidf")
    assert e.shape[0] == 5 and e.shape[1] <= 128
    np.testing.assert_allclose(np.linalg.norm(e[:4], axis=1), 1.0)
    assert np.all(e[4] == 0)  # no words: a zero row, not NaN
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[2, 1]


def test_tfidf_reduces_to_128_dimensions():
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(400)])
    queries = [" ".join(rng.choice(words, size=8)) for _ in range(300)]
    e = embed_queries(queries, encoder="tfidf")
    assert e.shape == (300, 128)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0)


def test_sentence_encoder_is_normalised(monkeypatch):
    class FakeEncoder:
        def encode(self, texts, **kwargs):
            return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)

    calls = []

    def fake_load(name, device):
        calls.append((name, device))
        return FakeEncoder()

    monkeypatch.setattr(labcore.embed, "load_encoder", fake_load)
    e = embed_queries(["ab", "abcd"], encoder="fake")
    assert calls == [("fake", "cpu")]
    assert e.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0)


def test_embed_queries_errors():
    with pytest.raises(LabcoreError, match="not one string"):
        embed_queries("one string", encoder="tfidf")
    with pytest.raises(LabcoreError, match="sequence of strings"):
        embed_queries(5, encoder="tfidf")
    with pytest.raises(LabcoreError, match="no texts to embed"):
        embed_queries([], encoder="tfidf")
    with pytest.raises(LabcoreError, match="must be a string"):
        embed_queries(["a", 3], encoder="tfidf")
    with pytest.raises(LabcoreError, match="no words"):
        embed_queries(["", "  "], encoder="tfidf")
