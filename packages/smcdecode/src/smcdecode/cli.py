"""``smcdecode`` command line: generate, bench."""

from __future__ import annotations

import argparse

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from smcdecode.bench import BENCH, DEFAULT_MODEL


def add_model_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help="offline name, local checkpoint or hub id"
    )


def _generate(args: argparse.Namespace) -> int:
    from labcore import load_causal_lm
    from smcdecode.potentials import parse_reward
    from smcdecode.smc import SMCConfig, SMCDecoder
    from smcdecode.tasks import chat_prompt

    if not args.prompt:
        raise LabcoreError("give --prompt TEXT")
    potential = parse_reward(args.reward) if args.reward else None
    cfg = SMCConfig(
        n_particles=args.particles,
        block_size=args.block_size,
        max_new_tokens=args.max_new_tokens,
        alpha=args.alpha,
        lam=args.lam if potential is not None else 0.0,
        rejuvenation_steps=args.rejuvenation_steps,
        lookahead=args.lookahead,
        resampling=args.resampling,
        select=args.select,
        seed=args.seed,
    )
    model, tok = load_causal_lm(args.model, device=args.device)
    dec = SMCDecoder(model, tok)
    prompt = args.prompt if args.raw else chat_prompt(tok, args.prompt)
    res = dec(prompt, cfg, potential)
    payload = {
        "text": res.text,
        "particles": [
            {"text": t, "weight": float(w), "reward": r}
            for t, w, r in zip(res.texts, res.weights, res.rewards, strict=True)
        ],
        "log_z": res.log_z,
        "n_resamples": res.n_resamples,
        "acceptance_rate": res.acceptance_rate,
        "tokens_generated": res.budget.tokens_generated,
        "forward_calls": res.budget.forward_calls,
        "time_s": res.time_s,
        "config": res.config,
    }
    text = res.text + (
        f"\n# {cfg.n_particles} particles, {res.n_resamples} resamplings, "
        f"{res.budget.tokens_generated} tokens, {res.time_s:.1f} s"
    )
    emit(args, payload, text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from smcdecode import __version__

    parser = make_parser(
        "smcdecode", "Reward-guided LLM decoding by Sequential Monte Carlo.", version=__version__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    g = add_command(
        sub, "generate", _generate, help="decode one prompt with SMC", uses=("device", "seed")
    )
    add_model_argument(g)
    g.add_argument("--prompt", default=None, help="the user message (chat template applied)")
    g.add_argument("--raw", action="store_true", help="use the prompt as is (no chat template)")
    g.add_argument(
        "--reward",
        default=None,
        help="keywords:a,b,c | regex:PATTERN | maxwords:N | answer:X | boxed:X",
    )
    g.add_argument("--particles", type=int, default=8)
    g.add_argument("--block-size", type=int, default=16)
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--alpha", type=float, default=1.0, help="power on p(y) (default 1)")
    g.add_argument("--lam", type=float, default=5.0, help="reward weight (default 5)")
    g.add_argument("--rejuvenation-steps", type=int, default=1)
    g.add_argument("--lookahead", type=int, default=0, help="rollout tokens for the twist")
    g.add_argument("--resampling", default="systematic")
    g.add_argument("--select", default="sample", help="sample | best | vote")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
