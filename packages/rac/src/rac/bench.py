"""``rac bench``: calibrating on BBC text against calibrating on the model's own reasoning.

One process, SmolLM2-135M-Instruct (the offline ``smollm2-135m``):

1. Traces: the dense model's sampled completions (2 per problem, 128 new tokens) of easy
   arithmetic word problems (:func:`labcore.tasks.arithmetic_problems`, seed 1000; 32
   problems quick, 128 full), written to ``<out>/traces.jsonl`` (resumed when present,
   made again when an earlier preset wrote it).
2. Rows: each method compresses a fresh copy of the dense model with one calibration —
   ``bbc`` (random windows of BBC train, the usual text), ``rac-prompt`` (prompts only, the
   paper's ablation), ``rac`` (prompt + trace) and, full run only, ``rac-trace`` (trace
   tokens only, prompt as context) — the same number of sequences of the same length for
   each.
3. Columns: accuracy and mean generated tokens on other arithmetic problems (seed 0, greedy,
   128 new tokens; never the trace problems), the share cut at the cap; ``trace_ppl``, the
   perplexity of the dense model's own traces of those evaluation problems (one sample each,
   ``<out>/heldout.jsonl``), and ``trace_kl``, the mean next-token KL(dense ‖ compressed)
   on those tokens: how much of the dense model's reasoning the compressed one keeps, low-noise
   signals where accuracy is low; BBC test perplexity. With ``--humaneval N``: pass@1 on the
   first N HumanEval problems (the ``humaneval`` extra, smcdecode's sandbox); full run with
   ``--data-root``: GSM8K (test problems 800-863) and MATH500 (problems 400-463), greedy.

Quick: SparseGPT 50%. Full: also ALPS 50% and 70% and QuantEase 3-bit (all four
calibrations each), and more evaluation problems.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from layerwise.bench import Preset, add_bench_options, run_rows

from labcore import LabcoreError
from labcore.bench import BenchConfig, BenchReport, BenchSpec
from rac import __version__

log = logging.getLogger(__name__)

QUICK = Preset(calib_windows=32, eval_windows=16, seqlen=256)
FULL = Preset(calib_windows=64, eval_windows=32, seqlen=256)
TRACE_PROBLEMS = {True: 32, False: 128}  # × 2 samples: at least the calibration windows
EVAL_PROBLEMS = {True: 48, False: 128}
TRACE_SEED = 1000  # trace problems come from another seed than the evaluation problems
GSM8K_EVAL = slice(800, 864)  # GSM8K test problems 800-863: traces may use the first 800
MATH500_EVAL = slice(400, 464)  # MATH500 problems 400-463: traces may use the first 400
#: HumanEval columns are opt-in (``--humaneval N``): a 135M model passes a handful of the
#: 164 problems, and each row then generates N × 256 more tokens.
DEFAULT_HUMANEVAL = 0
#: Calibrations per method: BBC text against RAC, with prompts only (the paper's ablation: what
#: the traces add); the full run adds trace only (prompt tokens as context, weight 0).
CALIBRATIONS = {
    True: ("bbc", "rac-prompt", "rac"),
    False: ("bbc", "rac-prompt", "rac", "rac-trace"),
}
MODES = {"rac": "prompt+trace", "rac-prompt": "prompt", "rac-trace": "trace"}


def method_configs(quick: bool) -> list[tuple[str, dict[str, Any], Any]]:
    from layerwise.methods import SparseGPTConfig

    rows = [("sparsegpt", {"sparsity": 0.5}, SparseGPTConfig(sparsity=0.5))]
    if not quick:
        from alps import ALPSConfig
        from quantease import QuantEaseConfig

        rows += [
            ("alps", {"sparsity": 0.5}, ALPSConfig(sparsity=0.5)),
            ("alps", {"sparsity": 0.7}, ALPSConfig(sparsity=0.7)),
            ("quantease", {"bits": 3}, QuantEaseConfig(bits=3)),
        ]
    return rows


def task_evaluators(data_root: Path | None, humaneval: int) -> list[Any]:
    """HumanEval on its first ``humaneval`` problems (needs the ``humaneval`` extra), and
    GSM8K and MATH500 from ``data_root`` (the full run's, with ``--data-root``)."""
    from labcore.tasks import load_gsm8k, load_math500
    from rac.evaluate import humaneval_evaluator, load_humaneval, reasoning_evaluator

    evaluators: list[Any] = []
    if humaneval:
        evaluators.append(humaneval_evaluator(load_humaneval(humaneval)))
    if data_root is None:
        return evaluators
    gsm = load_gsm8k(data_root)[GSM8K_EVAL]
    math = load_math500(data_root)[MATH500_EVAL]
    evaluators.append(reasoning_evaluator("gsm8k", gsm, max_new_tokens=256))
    evaluators.append(reasoning_evaluator("math500", math, max_new_tokens=384))
    return evaluators


def run_bench(config: BenchConfig) -> BenchReport:
    from labcore.models import load_causal_lm
    from labcore.tasks import arithmetic_problems
    from rac.calibration import TraceCalibration, calibration_from_traces
    from rac.evaluate import reasoning_evaluator, trace_evaluator
    from rac.traces import TraceConfig, generate_traces, read_traces

    quick = config.quick
    humaneval = int(config.option("humaneval", DEFAULT_HUMANEVAL) or 0)
    if humaneval < 0:
        raise LabcoreError(f"--humaneval takes a number of problems (0 = none), got {humaneval}")
    if not quick and config.data_root is None:
        log.warning("no GSM8K/MATH500 columns: pass --data-root (the folder with reasoning/)")
    # before the traces: a missing extra or data file fails at once
    tasks = task_evaluators(None if quick else config.data_root, humaneval)
    preset = QUICK if quick else FULL
    model_name = str(config.option("model", "smollm2-135m"))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    traces = out / "traces.jsonl"
    dense, tok = load_causal_lm(model_name, device=config.device)
    summary = generate_traces(
        dense,
        tok,
        arithmetic_problems(TRACE_PROBLEMS[quick], seed=TRACE_SEED),
        traces,
        TraceConfig(samples=2, max_new_tokens=128, batch_size=32),
        model_name=model_name,
        replace_other=True,  # the bench's own file, from an earlier preset
    )
    eval_problems = arithmetic_problems(EVAL_PROBLEMS[quick], seed=0)
    heldout = out / "heldout.jsonl"
    generate_traces(
        dense,
        tok,
        eval_problems,
        heldout,
        TraceConfig(samples=1, max_new_tokens=128, batch_size=64, seed=1),
        model_name=model_name,
        replace_other=True,  # the bench's own file, from an earlier preset
    )
    dense.eval()  # kept as the reference of the trace KL
    evaluators: list[Any] = [
        "perplexity",
        reasoning_evaluator("arith", eval_problems),
        trace_evaluator(read_traces(heldout)[1], reference=dense),
    ]
    evaluators += tasks

    def calibration(kind: str):
        def build(tokenizer: Any, seed: int):
            options = TraceCalibration(mode=MODES[kind])
            return calibration_from_traces(
                str(traces), tokenizer=tokenizer, n=preset.calib_windows,
                seqlen=preset.seqlen, seed=seed, options=options,
            )  # fmt: skip

        return build

    rows: list[tuple] = [("dense", {}, None)]
    for method, params, cfg in method_configs(quick):
        for kind in CALIBRATIONS[quick]:
            row_params = {**params, "calibration": kind}
            rows.append((method, row_params, cfg) if kind == "bbc" else
                        (method, row_params, cfg, calibration(kind)))  # fmt: skip
    report, _ = run_rows(
        config,
        rows,
        package="rac",
        version=__version__,
        quick_preset=QUICK,
        full_preset=FULL,
        evaluators=evaluators,
    )
    report.config["traces"] = {k: v for k, v in summary.items() if k != "path"}
    return report


def add_rac_bench_options(p: Any) -> None:
    add_bench_options(p)
    p.add_argument(
        "--humaneval",
        type=int,
        default=DEFAULT_HUMANEVAL,
        metavar="N",
        help="HumanEval pass@1 on the first N problems, run in smcdecode's sandbox (needs "
        "the humaneval extra; default 0: no HumanEval columns)",
    )


BENCH = BenchSpec(
    package="rac",
    version=__version__,
    run=run_bench,
    help="BBC-text calibration against the model's own reasoning traces (SparseGPT, ALPS, QuantEase)",
    uses=frozenset({"seeds", "data_root", "device"}),
    add_arguments=add_rac_bench_options,
)
