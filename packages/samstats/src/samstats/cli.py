"""``samstats`` command line: run one experiment, or the benchmark."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from samstats.bench import BENCH


def _summary_text(result) -> str:
    lines = [
        result.setting,
        f"{'method':<16}{'rho':>8}{'best risk':>14}{'± se':>10}{'best step':>11}"
        f"{'last risk':>12}{'sharp@best':>12}",
    ]
    for s in result.summary():
        se = "" if math.isnan(s["best_risk_se"]) else f"{s['best_risk_se']:.3g}"
        last = "–" if math.isnan(s["final_risk"]) else f"{s['final_risk']:.4g}"
        sharp = "–" if math.isnan(s["sharpness_best"]) else f"{s['sharpness_best']:.4g}"
        step = "λ-grid" if s["method"] == "ridge" else f"{s['best_step']:.0f}"
        lines.append(
            f"{s['method']:<16}{s['rho']:>8g}{s['best_risk']:>14.5g}{se:>10}{step:>11}"
            f"{last:>12}{sharp:>12}"
        )
    c = result.comparison()
    for method in ("sam", "sam-normalized", "ridge"):
        if method in c:
            m = c[method]
            lines.append(
                f"{method} at its best ρ={m['rho']:g}: best risk {m['ratio_best']:.3f} × GD's, "
                f"better on {m['wins']}/{m['seeds']} seeds"
            )
    lines.append(f"(sharpness: {result.sharpness_name})")
    return "\n".join(lines)


def _finish(args: argparse.Namespace, result) -> int:
    from samstats.experiments import plot

    payload = {"summary": result.summary(), "comparison": result.comparison()}
    text = _summary_text(result)
    if args.out is not None and not args.no_plot:
        target = Path(args.out)
        if target.suffix.lower() != ".png":
            target = target / f"{args.experiment}.png"
        plot(result, target)
        payload["plot"] = str(target)
        text += f"\nplot: {target}"
    emit(args, payload, text)
    return 0


def _run(args: argparse.Namespace) -> int:
    from samstats.experiments import KernelExperiment, NetworkExperiment
    from samstats.kernel import MercerProblem
    from samstats.network import TeacherProblem
    from samstats.real import RealExperiment

    def given(value, default):
        return default if value is None else value

    if args.experiment == "kernel":
        problem = MercerProblem(
            n=given(args.n, 200),
            spectrum=args.spectrum,
            decay=args.decay,
            smoothness=args.smoothness,
            noise=args.noise,
            frequencies=args.frequencies,
        )
        experiment = KernelExperiment(
            problem,
            seeds=given(args.seeds, 5),
            n_steps=given(args.steps, 20000),
            eta_units=given(args.eta, 0.1),
            rho_units=tuple(given(args.rho, (1.0, 3.0, 9.0))),
            rho_normalized=tuple(given(args.rho_normalized, (0.03, 0.1, 0.3, 1.0))),
        )
    elif args.experiment == "network":
        problem = TeacherProblem(
            n=given(args.n, 400),
            d=args.d,
            teacher_width=args.teacher_width,
            activation=args.activation,
            noise=args.noise,
        )
        experiment = NetworkExperiment(
            problem,
            seeds=given(args.seeds, 3),
            n_steps=given(args.steps, 2000),
            eta=given(args.eta, 0.05),
            width=args.width,
            init_scale=args.init_scale,
            rho_unnormalized=tuple(given(args.rho, (0.2, 0.5, 1.0))),
            rho_normalized=tuple(given(args.rho_normalized, (0.05, 0.1, 0.2, 0.5))),
        )
    else:
        experiment = RealExperiment(
            dataset=args.dataset,
            seeds=given(args.seeds, 5),
            n_steps=given(args.steps, 20000),
            eta_units=given(args.eta, 0.1),
            rho_units=tuple(given(args.rho, (1.0, 3.0, 9.0))),
            rho_normalized=tuple(given(args.rho_normalized, (0.03, 0.1, 0.3, 1.0))),
        )
    return _finish(args, experiment.run())


def build_parser() -> argparse.ArgumentParser:
    from samstats import __version__

    parser = make_parser(
        "samstats",
        "SAM against gradient descent as estimators: kernel regression, a planted "
        "one-hidden-layer network, and real regression data.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(
        sub,
        "run",
        _run,
        help="run one experiment (seeds × methods × ρ) and plot it",
        uses=("out",),
    )
    p.add_argument("experiment", choices=["kernel", "network", "real"])
    g = p.add_argument_group("all experiments")
    g.add_argument("--seeds", type=int, default=None, help="seeds (kernel/real 5, network 3)")
    g.add_argument(
        "--steps", type=int, default=None, help="iterations (kernel/real 20000, network 2000)"
    )
    g.add_argument(
        "--eta",
        type=float,
        default=None,
        help="step size: network absolute (0.05); kernel/real in units of 1/λ_max (0.1)",
    )
    g.add_argument(
        "--rho",
        type=float,
        nargs="+",
        default=None,
        help="un-normalized SAM radii (kernel/real in units of 1/λ_max: 1 3 9; network 0.2 0.5 1)",
    )
    g.add_argument(
        "--rho-normalized",
        type=float,
        nargs="+",
        default=None,
        help="normalized SAM radii (kernel/real 0.03 0.1 0.3 1; network 0.05 0.1 0.2 0.5)",
    )
    g.add_argument("--n", type=int, default=None, help="sample size (kernel 200, network 400)")
    g.add_argument("--noise", type=float, default=0.5, help="label noise σ (default 0.5)")
    g.add_argument("--no-plot", action="store_true", help="with --out, skip the PNG")
    g = p.add_argument_group("kernel")
    g.add_argument("--spectrum", default="polynomial", help="polynomial, exponential, gaussian")
    g.add_argument("--decay", type=float, default=2.0, help="eigen-decay parameter (default 2)")
    g.add_argument("--smoothness", type=float, default=2.0, help="target smoothness (default 2)")
    g.add_argument("--frequencies", type=int, default=200, help="kernel rank is 2·this + 1")
    g = p.add_argument_group("network")
    g.add_argument("--d", type=int, default=20, help="input dimension (default 20)")
    g.add_argument("--teacher-width", type=int, default=5, help="teacher width (default 5)")
    g.add_argument("--width", type=int, default=50, help="student width (default 50)")
    g.add_argument("--activation", default="relu", help="relu, quadratic, tanh")
    g.add_argument("--init-scale", type=float, default=1.0, help="student init scale (default 1)")
    g = p.add_argument_group("real")
    g.add_argument("--dataset", default="diabetes", help="diabetes or meats")

    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
