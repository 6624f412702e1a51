"""Potentials, tasks, baselines, budget accounting and the CLI, on a tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from smcdecode import baselines as bl
from smcdecode import tasks
from smcdecode.bench import _best_of_n_at_budget
from smcdecode.cli import main
from smcdecode.potentials import (
    CallablePotential,
    ExactAnswerPotential,
    KeywordPotential,
    LengthPotential,
    RegexPotential,
    TokenPotential,
    boxed_answer,
    last_number,
    parse_reward,
)
from smcdecode.smc import SMCConfig, SMCDecoder

from labcore import tasks as labcore_tasks
from labcore.errors import LabcoreError

V, EOS = 12, 11
PROMPT = torch.tensor([1, 2, 3])


@pytest.fixture(scope="module")
def model(make_tiny_llama):
    return make_tiny_llama(vocab=V, eos=EOS, layers=1, context=128)


@pytest.fixture(scope="module")
def dec(model):
    return SMCDecoder(model, eos_token_ids=EOS)


def test_keyword_potential_counts_whole_words_case_insensitively():
    pot = KeywordPotential(["dog", "Park"])
    texts = ["The DOG ran.", "dogs in the park", "hotdog", ""]
    np.testing.assert_allclose(pot.final(texts, [[]] * 4), [0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(pot.prefix(texts, [[]] * 4), pot.final(texts, [[]] * 4))
    assert not pot.terminal_only
    with pytest.raises(LabcoreError, match="non-empty"):
        KeywordPotential([" ", ""])


def test_other_potentials_and_answer_extraction():
    assert RegexPotential(r"\d+").final(["a1", "b"], [[], []]).tolist() == [1.0, 0.0]
    assert RegexPotential(r"yes", fullmatch=True).final([" yes ", "yes no"], [[], []]).tolist() == [
        1,
        0,
    ]
    lp = LengthPotential(3)
    np.testing.assert_allclose(lp.prefix(["a b", "a b c d e f"], [[], []]), [0.0, -1.0])
    assert last_number("so 1,234.50 apples, then 7.") == "7"
    assert last_number("total 1,234.50") == "1234.5"
    assert boxed_answer(r"x \boxed{\frac{1}{2}} y") == r"\frac{1}{2}"
    ans = ExactAnswerPotential("1234.5")
    assert ans.final(["it is 1,234.50", "it is 12"], [[], []]).tolist() == [1.0, 0.0]
    both = KeywordPotential(["a"]) + LengthPotential(1)
    np.testing.assert_allclose(both.final(["a b"], [[]]), [1.0 - 1.0])
    with pytest.raises(LabcoreError, match="returned 1 values for 2"):
        CallablePotential(lambda t: [1.0]).final(["x", "y"], [[], []])
    with pytest.raises(LabcoreError, match="unknown reward"):
        parse_reward("nope:1")
    assert isinstance(parse_reward("keywords:a,b"), KeywordPotential)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"n_particles": 0}, "n_particles"),
        ({"alpha": 0.0}, "alpha"),
        ({"ess_threshold": 1.5}, "ess_threshold"),
        ({"resampling": "stratified-ish"}, "resampling"),
        ({"select": "max"}, "select"),
        ({"lookahead": -1}, "lookahead"),
        ({"max_logw_step": 0.0}, "max_logw_step"),
    ],
)
def test_config_errors(kw, match):
    with pytest.raises(LabcoreError, match=match):
        SMCConfig(**kw)


def test_budget_counts_every_sampled_token(dec):
    res = bl.independent_samples(dec, PROMPT, 6, max_new_tokens=10, seed=1)
    lengths = [len(i) + (1 if len(i) < 10 else 0) for i in res.all_token_ids]  # EOS counted
    assert res.budget.tokens_generated == sum(lengths)
    assert res.budget.forward_calls <= 10 + 1  # one batched call per position (+ prefill)
    assert res.n_resamples == 0


def test_stop_fn_ends_particles_at_block_ends(dec):
    cfg = SMCConfig(n_particles=5, block_size=3, max_new_tokens=12, lam=0.0, seed=2)
    res = dec.decode_ids(PROMPT, cfg, None, stop_fn=lambda text: len(text.split()) >= 2)
    for ids in res.all_token_ids:
        assert len(ids) in (3, 2, 1, 0) or len(ids) <= 3  # stopped after the first block
    assert max(len(i) for i in res.all_token_ids) <= 3


def test_reward_guidance_raises_the_reward(dec):
    pot = TokenPotential(final=lambda ids: ids.count(5) / 8, prefix=lambda ids: ids.count(5) / 8)
    plain = dec.decode_ids(
        PROMPT, SMCConfig(n_particles=64, block_size=2, max_new_tokens=8, lam=0.0, seed=3), pot
    )
    guided = dec.decode_ids(
        PROMPT,
        SMCConfig(
            n_particles=64,
            block_size=2,
            max_new_tokens=8,
            lam=8.0,
            seed=3,
            rejuvenation_steps=1,
            ess_threshold=1.0,
        ),
        pot,
    )

    def mean_reward(r):
        return float(np.dot(r.weights, [i.count(5) / 8 for i in r.all_token_ids]))

    assert mean_reward(guided) > mean_reward(plain) + 0.1
    assert guided.n_resamples == 3  # every block but the last


def test_vote_selection(dec):
    cfg = SMCConfig(n_particles=8, block_size=4, max_new_tokens=4, lam=0.0, select="vote", seed=4)
    res = dec.decode_ids(PROMPT, cfg, None, answer_fn=lambda t: t.split()[0] if t else None)
    firsts = [t.split()[0] for t in res.texts if t]
    assert res.text.split()[0] == max(set(firsts), key=firsts.count)
    with pytest.raises(LabcoreError, match="answer_fn"):
        dec.decode_ids(PROMPT, cfg, None)


def test_baselines_run_and_count(dec):
    g = bl.greedy(dec, PROMPT, max_new_tokens=6)
    g2 = bl.greedy(dec, PROMPT, max_new_tokens=6)
    assert g.text == g2.text and g.budget.tokens_generated <= 6
    b = bl.beam(dec, PROMPT, max_new_tokens=6, num_beams=3)
    assert b.budget.tokens_generated <= 18
    pot = TokenPotential(final=lambda ids: float(ids.count(7)))
    best = bl.best_of_n(dec, PROMPT, pot, 12, max_new_tokens=6, seed=5)
    assert (
        best.extra["rewards"]
        and max(best.extra["rewards"])
        == pot.final([best.text], [[int(x) for x in best.text.split()]])[0]
    )
    runs = [
        bl.power_mh(dec, PROMPT, max_new_tokens=12, alpha=4.0, block_size=4, mh_steps=8, seed=s)
        for s in range(4)
    ]
    moved = [r for r in runs if r.extra["acceptance_rate"] is not None]
    assert moved
    # the moves' proposals are counted: more tokens than the completion itself
    assert all(r.budget.tokens_generated > len(r.text.split()) + 1 for r in moved)


def test_best_of_n_matches_the_token_budget(dec):
    g = _best_of_n_at_budget(
        dec, PROMPT, None, 100, max_new_tokens=10, seed=0, stop_fn=None, batch=4
    )
    assert 100 <= g.budget.tokens_generated < 100 + 10 * 4


def test_humaneval_helpers():
    prompt = 'def f(x):\n    """Double.\n    >>> f(2)\n    4\n    >>> f(0)\n    0\n    """\n'
    assert tasks.docstring_examples(prompt) == [("f(2)", "4"), ("f(0)", "0")]
    assert tasks.humaneval_truncate("    return 1\n\ndef g():\n    pass") == "    return 1\n"
    assert tasks.humaneval_stop("x\nprint(1)") and not tasks.humaneval_stop("    return 2")


def test_math_helpers(tmp_path):
    f = tmp_path / "gsm.jsonl"
    f.write_text(json.dumps({"question": "1+1?", "answer": "so\n#### 2"}) + "\n")
    (p,) = tasks.gsm8k_problems(f, 5)
    assert (p.id, p.answer, p.source, p.potential) == ("gsm0", "2", "gsm8k", None)
    assert isinstance(p, labcore_tasks.Problem) and p.data is p.metadata
    assert tasks.math_score(p, "The answer is 2.")["score"] == 1.0
    assert tasks.math_score(p, "The answer is 3.")["score"] == 0.0
    with pytest.raises(LabcoreError, match="no such GSM8K"):
        tasks.gsm8k_problems(tmp_path / "none.jsonl")


def test_cli_errors_before_loading_a_model(capsys):
    assert main(["generate", "--prompt", "hi", "--reward", "bogus:1"]) == 2
    assert "unknown reward" in capsys.readouterr().err
    assert main(["generate"]) == 2
    assert "--prompt" in capsys.readouterr().err


@pytest.mark.slow
def test_generate_with_smollm2(capsys):
    """The real model, keyword reward: the JSON output carries the particles and budget."""
    args = [
        "generate",
        "--prompt",
        "Write a sentence about a dog.",
        "--reward",
        "keywords:dog,park",
    ]
    assert main([*args, "--particles", "4", "--max-new-tokens", "24", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["particles"]) == 4 and out["tokens_generated"] > 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda d: d.decode_ids(torch.zeros(2, 3, dtype=torch.long), SMCConfig()), "1-D"),
        (lambda d: d.decode_ids(torch.tensor([1, 99]), SMCConfig()), "token ids"),
        (lambda d: d.decode_ids(PROMPT, SMCConfig(max_new_tokens=500)), "context"),
        (lambda d: d.decode_ids(PROMPT, SMCConfig(max_new_tokens=4, select="vote")), "answer_fn"),
        (
            lambda d: d.decode_ids(
                PROMPT, SMCConfig(max_new_tokens=4), CallablePotential(lambda t: [0.0])
            ),
            "returned 1 values for",
        ),
        (lambda d: SMCConfig(alpha=1000.0), "temperature"),
    ],
)
def test_bad_input_gets_a_clear_error(dec, call, match):
    with pytest.raises(LabcoreError, match=match):
        call(dec)
