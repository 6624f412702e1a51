"""The correctness-matrix collector: scoring, problem generation, CSV format, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batchroute import collect as c

from labcore.errors import LabcoreError

# --------------------------------------------------------------------------------------------
# Answer extraction and voting


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("85", 85),
        (" 47 + 38 = 85", 85),
        ("The answer is 18.", 18),
        ("first 3, then 12 and finally 40", 40),
        ("She pays $1,234 in total.", 1234),
        ("It is 12,345,678", 12345678),
        ("1,2,3", 3),
        ("The result is -7", -7),
        ("-42", -42),
        ("10-3", 3),  # a minus between digits is subtraction, not a sign
        ("18.00 dollars", 18),
        ("x = 3.5", None),  # not an integer
        ("no number at all", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert c.extract_answer(text) == expected


def test_no_number_is_incorrect():
    problems = [c.Problem("q", "arith-add1", "What is 2 + 3?", 5)]
    assert c.extract_answer("I do not know") is None
    # majority of no answers is no answer, which never equals the reference
    assert c.majority_vote([None, None, None]) is None
    assert c.majority_vote([None]) != problems[0].answer


def test_majority_vote_counts_and_breaks_ties_by_first_appearance():
    assert c.majority_vote([1, 2, 2]) == 2
    assert c.majority_vote([7, None, None, None, 7]) == 7
    assert c.majority_vote([3, 5, 5, 3]) == 3  # tie: 3 came first
    assert c.majority_vote([5, 3, 3, 5]) == 5
    assert c.majority_vote([None, 9, 4]) == 9
    assert c.majority_vote([4, 9, None]) == 4
    # the same votes in the same order always give the same winner
    assert {c.majority_vote([2, 1, 1, 2, 0]) for _ in range(5)} == {2}


# --------------------------------------------------------------------------------------------
# Problems


def test_arithmetic_is_deterministic_and_balanced():
    a = c.arithmetic_problems(70, seed=3)
    b = c.arithmetic_problems(70, seed=3)
    assert a == b
    assert a != c.arithmetic_problems(70, seed=4)
    counts = {}
    for p in a:
        counts[p.eval_name] = counts.get(p.eval_name, 0) + 1
    assert counts == {f"arith-{lv}": 10 for lv in c.ARITH_LEVELS}
    assert len({p.sample_id for p in a}) == len(a)
    # uneven counts go to the first levels
    sizes = [
        sum(p.eval_name == f"arith-{lv}" for p in c.arithmetic_problems(9, seed=0))
        for lv in c.ARITH_LEVELS
    ]
    assert sizes == [2, 2, 1, 1, 1, 1, 1]
    assert c.arithmetic_problems(0) == []


def test_arithmetic_levels_have_right_operands_and_answers():
    ops = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}
    for p in c.arithmetic_problems(140, seed=1):
        level = p.eval_name.removeprefix("arith-")
        op, (lo_a, hi_a), (lo_b, hi_b) = c.ARITH_LEVELS[level]
        words = p.prompt.removesuffix("?").split()
        assert words[:2] == ["What", "is"] and words[3] == op
        x, y = int(words[2]), int(words[4])
        if op == "-":
            assert x >= y and p.answer >= 0
            assert {lo_a <= x <= hi_a, lo_b <= y <= hi_b} == {True}
        else:
            assert lo_a <= x <= hi_a and lo_b <= y <= hi_b
        assert p.answer == ops[op](x, y)
        assert p.task == "arith"


def test_arithmetic_level_subset_is_independent_of_the_others():
    alone = c.arithmetic_problems(5, seed=2, levels=["mul2x2"])
    together = [p for p in c.arithmetic_problems(35, seed=2) if p.eval_name == "arith-mul2x2"]
    assert alone == together
    with pytest.raises(LabcoreError, match="unknown arithmetic level"):
        c.arithmetic_problems(3, levels=["div9"])
    with pytest.raises(LabcoreError):
        c.arithmetic_problems(-1)


def _write_gsm8k(root: Path, rows: list[dict]) -> Path:
    path = root / "reasoning" / "gsm8k" / "test.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_gsm8k_reader(tmp_path):
    root = _write_gsm8k(
        tmp_path,
        [
            {"question": "Q one?", "answer": "steps\n#### 18"},
            {"question": "Q two?", "answer": "more steps\n#### 1,200"},
            {"question": "Q three?", "answer": "#### 5"},
        ],
    )
    ps = c.gsm8k_problems(root, 2)
    assert [(p.sample_id, p.eval_name, p.prompt, p.answer) for p in ps] == [
        ("gsm8k.0", "gsm8k", "Q one?", 18),
        ("gsm8k.1", "gsm8k", "Q two?", 1200),
    ]
    assert ps[0].task == "gsm8k"
    with pytest.raises(LabcoreError, match="not found"):
        c.gsm8k_problems(tmp_path / "nowhere", 2)


def test_gsm8k_reader_rejects_missing_answer(tmp_path):
    root = _write_gsm8k(tmp_path, [{"question": "Q?", "answer": "no marker"}])
    with pytest.raises(LabcoreError, match="no integer answer"):
        c.gsm8k_problems(root, 1)


# --------------------------------------------------------------------------------------------
# Prompts


def test_prompts_plain_and_chat():
    from labcore.models import tiny_tokenizer

    tok = tiny_tokenizer()
    p = c.Problem("x", "arith-add2", "What is 47 + 38?", 85)
    plain = c.build_prompt(p, tok, fewshot=False)
    assert plain == "Question: What is 47 + 38? Reply with the number only.\nAnswer:"
    few = c.build_prompt(p, tok, fewshot=True)
    assert few.endswith(plain) and few.count("Question:") == 4
    g = c.build_prompt(c.Problem("g", "gsm8k", "How many?", 3), tok, fewshot=True)
    assert "The answer is 27." in g and g.count("Question:") == 4
    assert c.clean_completion(" 85\nQuestion: What", task="arith", chat=False) == "85"
    assert c.clean_completion("a 1\nb 2\n\nQuestion: x 9", task="gsm8k", chat=False) == (
        "a 1\nb 2\n\n"
    )

    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    chat = c.build_prompt(p, tok, fewshot=True)
    assert chat.count("<user>") == 4 and chat.count("<assistant>") == 4
    assert chat.endswith("<user>What is 47 + 38? Reply with the number only.</s><assistant>")


# --------------------------------------------------------------------------------------------
# The matrix


def _results(n, correct):
    return [
        c.RouteResult(
            correct=correct,
            prompt_tokens=10,
            generated_tokens=3,
            latency_s=0.5,
            cost=1.3,
            prediction=1,
        )
        for _ in range(n)
    ]


def test_matrix_csv_columns_read_back_by_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    gsm = c.Problem("gsm8k.0", "gsm8k", 'A "quoted", multi-line\nquestion?', 1200)
    problems = [*c.arithmetic_problems(4, seed=0), gsm]
    results = {"r-a": _results(5, 1), "r-b": _results(5, 0)}
    path = tmp_path / "m.csv"
    from labcore.io import atomic_write_text

    atomic_write_text(path, c.matrix_csv(problems, results))
    df = pd.read_csv(path)
    assert list(df.columns) == c.matrix_columns(["r-a", "r-b"])
    assert list(df.columns[:4]) == ["sample_id", "prompt", "eval_name", "answer"]
    assert len(df) == 5
    assert df["prompt"].iloc[-1] == 'A "quoted", multi-line\nquestion?'
    assert df["answer"].tolist()[-1] == 1200
    assert df["r-a"].tolist() == [1] * 5 and df["r-b"].tolist() == [0] * 5
    assert df["r-a|total_cost"].tolist() == pytest.approx([1.3] * 5)
    assert df["r-b|tokens"].tolist() == [3] * 5
    assert df["r-b|latency_s"].tolist() == pytest.approx([0.5] * 5)


def test_summarise():
    problems = c.arithmetic_problems(14, seed=0)
    rows = c.summarise(problems, {"r": _results(14, 1)})
    assert {r["eval_name"] for r in rows} == {f"arith-{lv}" for lv in c.ARITH_LEVELS} | {"all"}
    assert all(r["accuracy"] == 1.0 and r["mean_cost"] == pytest.approx(1.3) for r in rows)
    assert "all" in c.format_summary(rows)


def test_available_routes():
    routes = c.available_routes()
    assert routes[0] == "smollm2-135m"
    assert {"smollm2-135m-fewshot", "smollm2-135m-sc5", "gemma3-270m"} <= set(routes)
    for r in routes:
        assert c.ROUTES[r].model in c.MODELS
    assert c.ROUTES["smollm2-135m-sc5"].samples == 5
    assert c.ROUTES["smollm2-135m"].greedy


# --------------------------------------------------------------------------------------------
# End to end with a tiny random model (no real model is loaded)


@pytest.fixture(scope="module")
def tiny():
    from labcore.models import tiny_causal_lm

    return tiny_causal_lm("llama", seed=0)


def test_tiny_end_to_end(tmp_path, tiny):
    pd = pytest.importorskip("pandas")
    root = _write_gsm8k(
        tmp_path / "data",
        [{"question": f"Question {i}?", "answer": f"#### {i}"} for i in range(5)],
    )
    routes = ["smollm2-135m", "smollm2-135m-fewshot", "smollm2-135m-sc5"]
    out = c.collect(
        routes=routes,
        n_arith=9,
        n_gsm8k=2,
        data_root=root,
        out=tmp_path / "out" / "correctness.csv",
        gemma_gguf=None,
        seed=0,
        max_new_tokens_arith=4,
        max_new_tokens_gsm8k=6,
        batch_size=4,
        progress=False,
        responses_out=tmp_path / "responses.jsonl",
        models={"smollm2-135m": tiny},
    )
    assert out == tmp_path / "out" / "correctness.csv"
    df = pd.read_csv(out)
    assert list(df.columns) == c.matrix_columns(routes)
    assert len(df) == 11
    assert df["eval_name"].value_counts()["gsm8k"] == 2
    assert df["sample_id"].is_unique
    n_params_b = sum(p.numel() for p in tiny[0].parameters()) / 1e9
    for r in routes:
        assert set(df[r].unique()) <= {0, 1}
        assert (df[f"{r}|total_cost"] > 0).all()
        assert (df[f"{r}|tokens"] > 0).all()
        assert (df[f"{r}|latency_s"] > 0).all()
        # cost = params (billions) x (prompt + generated tokens) > params x generated tokens
        assert (df[f"{r}|total_cost"] > n_params_b * df[f"{r}|tokens"]).all()
    arith = df["eval_name"] != "gsm8k"
    assert (df.loc[arith, "smollm2-135m|tokens"] <= 4).all()
    assert (df.loc[~arith, "smollm2-135m|tokens"] <= 6).all()
    assert (df.loc[arith, "smollm2-135m-sc5|tokens"] <= 5 * 4).all()
    # few-shot prompts are longer, so they cost more at the same number of generated tokens
    few = df["smollm2-135m-fewshot|total_cost"] - n_params_b * df["smollm2-135m-fewshot|tokens"]
    zero = df["smollm2-135m|total_cost"] - n_params_b * df["smollm2-135m|tokens"]
    assert (few > zero).all()
    lines = (tmp_path / "responses.jsonl").read_text().splitlines()
    assert len(lines) == 11 * len(routes)
    sc = [json.loads(x) for x in lines if json.loads(x)["route"] == "smollm2-135m-sc5"]
    assert all(len(x["completions"]) == 5 for x in sc)


def test_tiny_run_is_reproducible(tmp_path, tiny):
    kwargs = dict(
        routes=["smollm2-135m", "smollm2-135m-sc5"],
        n_arith=7,
        n_gsm8k=3,
        data_root=None,  # GSM8K skipped
        gemma_gguf=None,
        seed=5,
        max_new_tokens_arith=3,
        batch_size=3,
        progress=False,
        models={"smollm2-135m": tiny},
    )
    a = c.collect(out=tmp_path / "a.csv", **kwargs).read_text().splitlines()
    b = c.collect(out=tmp_path / "b.csv", **kwargs).read_text().splitlines()
    assert len(a) == 8

    def drop_latency(lines):
        return [
            ",".join(x for k, x in enumerate(line.split(",")) if k not in (7, 11)) for line in lines
        ]

    assert drop_latency(a) == drop_latency(b)


def test_collect_rejects_bad_input(tmp_path):
    base = dict(
        n_arith=2, n_gsm8k=0, data_root=None, out=tmp_path / "x.csv", gemma_gguf=None, seed=0
    )
    with pytest.raises(LabcoreError, match="unknown route"):
        c.collect(routes=["gpt-9"], **base)
    with pytest.raises(LabcoreError, match="no routes"):
        c.collect(routes=[], **base)
    with pytest.raises(LabcoreError, match="batch_size"):
        c.collect(routes=["smollm2-135m"], batch_size=0, **base)
    with pytest.raises(LabcoreError, match="no problems"):
        c.collect(routes=["smollm2-135m"], **{**base, "n_arith": 0})
    assert not (tmp_path / "x.csv").exists()


def test_gemma_without_gguf_names_the_problem(monkeypatch):
    import labcore.models

    monkeypatch.setattr(labcore.models, "causal_lm_installed", lambda name: False)
    with pytest.raises(LabcoreError, match="--gemma-gguf"):
        c.load_model("gemma3-270m")
    with pytest.raises(LabcoreError, match="GGUF file not found"):
        c.load_model("gemma3-270m", gemma_gguf=Path("/nonexistent/gemma.gguf"))


def test_collect_cli_prints_one_json_document(tmp_path, monkeypatch, capsys):
    from batchroute.cli import main

    seen = {}

    def fake_collect(**kw):
        seen.update(kw)
        kw["out"].parent.mkdir(parents=True, exist_ok=True)
        kw["out"].write_text('sample_id,prompt\na,"two\nlines"\nb,x\n', encoding="utf-8")
        return kw["out"]

    monkeypatch.setattr(c, "collect", fake_collect)
    argv = ["collect", "--routes", "smollm2-135m,gemma3-270m", "--n-arith", "7"]
    assert main([*argv, "--out", str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)  # exactly one document, nothing else
    assert payload == {
        "matrix": str(tmp_path / "correctness.csv"),
        "queries": 2,
        "routes": ["smollm2-135m", "gemma3-270m"],
        "responses": None,
    }
    assert seen["routes"] == ["smollm2-135m", "gemma3-270m"]
    assert seen["n_arith"] == 7 and seen["n_gsm8k"] == 40 and seen["data_root"] is None
    assert seen["out"] == tmp_path / "correctness.csv"
    assert seen["seed"] == 0 and seen["device"] == "auto"
    from batchroute.cli import build_parser

    defaults = build_parser().parse_args(["collect"])
    assert defaults.routes.split(",") == c.available_routes()
