"""``bpseg bench``: BP-Seg and the baselines on the same documents, in one process.

Data sets:

* Choi (2000), given by ``--data-root`` (the ``choi`` folder or a folder holding it):
  documents of 10 contiguous segments, one row per published column (segment-length range
  3-11, 3-5, 6-8, 9-11; subsets 1 and 2). Pk and WindowDiff compare boundaries.
* BBC documents built from ``labcore``'s BBC News test split: 4 articles of distinct topics
  per document, either one after another (``bbc-contiguous``) or cut into chunks of 3-6
  sentences that return (``bbc-interleaved``). ARI and NMI compare label assignments.

Every method is given the true k, except the rows whose params say ``k: "chosen"``.
Embedding methods share one set of embeddings per document (MiniLM; the encoding time is
its own row). Times are per document, method only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bpseg import __version__
from bpseg.baselines import kmeans_labels, similarity_boundaries, spectral_labels, texttiling
from bpseg.data import CHOI_RANGES, Document, bbc_documents, choi_by_range, read_choi
from bpseg.embed import embed
from bpseg.metrics import segment_scores
from bpseg.segmenter import BPSegConfig, segment_embeddings
from labcore.bench import BenchConfig, BenchReport, BenchSpec, Row
from labcore.progress import progress_bar

# A method: (document, embeddings, k, seed) -> labels.
Method = Callable[[Document, np.ndarray, int | None, int], np.ndarray]


def _bpseg(contiguous: bool, *, chosen_k: bool = False, **config: Any) -> Method:
    def run(doc: Document, x: np.ndarray, k: int | None, seed: int) -> np.ndarray:
        cfg = BPSegConfig(k=None if chosen_k else k, contiguous=contiguous, seed=seed, **config)
        return segment_embeddings(x, config=cfg).labels

    return run


def _texttiling(given_k: bool) -> Method:
    return lambda doc, x, k, seed: texttiling(list(doc.sentences), k=k if given_k else None)


METHODS: dict[str, tuple[Method, dict[str, Any], bool]] = {
    # name: (method, params for the table, needs the sentence embeddings)
    "bpseg": (_bpseg(False), {"output": "non-contiguous", "k": "given"}, True),
    "bpseg-contiguous": (_bpseg(True), {"output": "contiguous", "k": "given"}, True),
    "bpseg-auto": (_bpseg(False, chosen_k=True), {"output": "non-contiguous", "k": "chosen"}, True),
    "bpseg-contiguous-auto": (
        _bpseg(True, chosen_k=True),
        {"output": "contiguous", "k": "chosen"},
        True,
    ),
    "kmeans": (
        lambda doc, x, k, seed: kmeans_labels(x, k=k, seed=seed),
        {"output": "non-contiguous", "k": "given"},
        True,
    ),
    "spectral": (
        lambda doc, x, k, seed: spectral_labels(x, k=k, seed=seed),
        {"output": "non-contiguous", "k": "given"},
        True,
    ),
    "similarity-boundaries": (
        lambda doc, x, k, seed: similarity_boundaries(x, k=k),
        {"output": "contiguous", "k": "given", "window": 3},
        True,
    ),
    "texttiling": (
        _texttiling(True),
        {"output": "contiguous", "k": "given", "paragraphs": "one sentence each"},
        False,
    ),
    "texttiling-auto": (
        _texttiling(False),
        {"output": "contiguous", "k": "chosen", "paragraphs": "one sentence each"},
        False,
    ),
}
# The methods run with every seed (label symmetry makes them seed-dependent); the others, and
# the k-choosing rows (which fit up to k_max models per document), run with the first seed.
SEEDED = {"bpseg", "bpseg-contiguous", "kmeans", "spectral"}


def _datasets(data_root: Path | None, quick: bool, notes: list[str]) -> dict[str, list[Document]]:
    sets: dict[str, list[Document]] = {}
    if data_root is not None:
        try:
            by_range = choi_by_range(data_root)
        except Exception as exc:  # a bad --data-root is reported, the BBC rows still run
            notes.append(f"Choi skipped: {exc}")
        else:
            for name in CHOI_RANGES:
                files = by_range.get(name, [])
                if quick:  # 10 from subset 2: the defaults were tuned on subset 1's first 12
                    files = [f for f in files if f.parent.parent.name == "2"][:10]
                if files:
                    sets[f"choi/{name}"] = [read_choi(f) for f in files]
    else:
        notes.append("Choi skipped: no --data-root")
    n_docs = 12 if quick else 60
    sets["bbc-contiguous"] = bbc_documents(n_docs=n_docs, interleaved=False, seed=1)
    sets["bbc-interleaved"] = bbc_documents(n_docs=n_docs, interleaved=True, seed=1)
    return sets


def _n_runs(doc_or_labels: Document | np.ndarray) -> int:
    labels = np.asarray(getattr(doc_or_labels, "labels", doc_or_labels))
    return int(np.count_nonzero(np.diff(labels))) + 1


_DATASET_ORDER = (*(f"choi/{r}" for r in CHOI_RANGES), "bbc-interleaved", "bbc-contiguous")


def summary_tables(rows: list[Row]) -> str:
    """Compact tables: Pk per Choi range, ARI/NMI/Pk per BBC set (means over seeds)."""
    ok = [r for r in rows if r.status == "ok" and r.dataset in _DATASET_ORDER]
    methods = [m for m in METHODS if any(r.method == m for r in ok)]

    def values(method: str, dataset: str | tuple[str, ...], key: str) -> list[float]:
        sets = (dataset,) if isinstance(dataset, str) else dataset
        return [
            r.time_s if key == "time" else r.metrics[key]
            for r in ok
            if r.method == method and r.dataset in sets
        ]

    def cell(method: str, dataset, key: str, *, spread: bool = False) -> str:
        v = values(method, dataset, key)
        if not v:
            return "–"
        text = f"{np.mean(v):.3f}"
        return text + (f" ± {np.std(v):.3f}" if spread and len(v) > 1 else "")

    lines = []
    choi = [d for d in _DATASET_ORDER if d.startswith("choi/") and any(r.dataset == d for r in ok)]
    if choi:
        lines += [
            "Choi: Pk (lower is better), 10 segments per document:",
            "",
            "| method | k | " + " | ".join(choi) + " | s/doc |",
            "|---|---|" + "---|" * len(choi) + "---|",
        ]
        lines += [
            f"| {m} | {METHODS[m][1]['k']} | "
            + " | ".join(cell(m, d, "pk") for d in choi)
            + f" | {cell(m, tuple(choi), 'time')} |"
            for m in methods
        ]
    for d in ("bbc-interleaved", "bbc-contiguous"):
        if not any(r.dataset == d for r in ok):
            continue
        lines += [
            "",
            f"{d}: ARI and NMI (higher is better), Pk and WindowDiff on runs (lower is better); "
            "± is the SD over seeds:",
            "",
            "| method | output | k | ARI | NMI | Pk | WindowDiff | s/doc |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {m} | {METHODS[m][1]['output']} | {METHODS[m][1]['k']} | "
            f"{cell(m, d, 'ari', spread=True)} | {cell(m, d, 'nmi')} | {cell(m, d, 'pk')} | "
            f"{cell(m, d, 'windowdiff')} | {cell(m, d, 'time')} |"
            for m in methods
            if values(m, d, "time")
        ]
    return "\n".join(lines) + "\n"


def _speed_document(docs: list[Document], n: int = 500) -> list[str]:
    sentences = [s for d in docs for s in d.sentences]
    while len(sentences) < n:
        sentences = sentences * 2
    return sentences[:n]


def _add_arguments(parser) -> None:
    """The bench's own option: the sentence encoder."""
    parser.add_argument("--encoder", default="minilm-l6", help="minilm-l6 (default) or tfidf")


def run_bench(config: BenchConfig) -> BenchReport:
    """BP-Seg and the baselines on Choi (with ``config.data_root``) and the BBC documents.

    The seed-dependent methods (:data:`SEEDED`) run once per seed in ``config.seeds``; the
    deterministic and the k-choosing ones once, with the first seed. Writes ``per_doc.json``
    (every document's scores) into ``config.out``. Package option: ``encoder``.
    """
    from labcore.io import atomic_write_json

    quick = config.quick
    seeds = list(config.seeds)
    encoder = config.option("encoder", "minilm-l6")
    notes: list[str] = []
    sets = _datasets(config.data_root, quick, notes)
    report = BenchReport(
        package="bpseg",
        version=__version__,
        config={"quick": quick, "seeds": seeds, "encoder": encoder, "bpseg": vars(BPSegConfig())},
    )
    if not any(name.startswith("choi/") for name in sets):
        reason = notes[-1].removeprefix("Choi skipped: ") if notes else "no Choi documents"
        for seed in seeds:
            for name, (_, params, _) in METHODS.items():
                report.add(Row.skipped(name, dict(params), "choi", reason, seed=seed))

    encode_time = 0.0
    n_encoded = 0
    per_doc: list[dict[str, Any]] = []
    for dataset, docs in sets.items():
        t0 = time.perf_counter()
        embeddings = [
            embed(list(d.sentences), encoder=encoder)
            for d in progress_bar(docs, desc=f"encode {dataset}")
        ]
        encode_time += time.perf_counter() - t0
        n_encoded += sum(d.n for d in docs)
        contiguous_truth = dataset != "bbc-interleaved"
        for name, (method, params, _) in METHODS.items():
            # One untimed call, so that lazy imports (sklearn.cluster, nltk) are not timed.
            method(docs[0], embeddings[0], docs[0].k, seeds[0])
            for seed in seeds if name in SEEDED else seeds[:1]:
                scores: dict[str, list[float]] = {}
                elapsed = 0.0
                chosen = []
                for doc, x in zip(docs, embeddings, strict=True):
                    # Contiguous methods get the true number of runs, labelling methods the
                    # true number of labels (the same on Choi and bbc-contiguous).
                    k = doc.k if params["output"] == "non-contiguous" else _n_runs(doc)
                    t = time.perf_counter()
                    labels = method(doc, x, k, seed)
                    elapsed += time.perf_counter() - t
                    s = segment_scores(doc.labels, labels)
                    chosen.append(
                        len(np.unique(labels))
                        if params["output"] == "non-contiguous"
                        else _n_runs(labels)
                    )
                    for key, v in s.items():
                        scores.setdefault(key, []).append(v)
                    per_doc.append(
                        {"dataset": dataset, "doc": doc.name, "method": name, "seed": seed, **s}
                    )
                metrics = {key: float(np.mean(v)) for key, v in scores.items()}
                if params["k"] == "chosen":
                    metrics["k_found"] = float(np.mean(chosen))
                    truth = [
                        d.k if params["output"] == "non-contiguous" else _n_runs(d) for d in docs
                    ]
                    metrics["k_exact"] = float(np.mean(np.array(chosen) == truth))
                report.add(
                    Row(
                        method=name,
                        params={
                            **params,
                            "truth": "contiguous" if contiguous_truth else "interleaved",
                            "docs": len(docs),
                        },
                        dataset=dataset,
                        seed=seed,
                        metrics=metrics,
                        time_s=elapsed / len(docs),
                    )
                )

    # Encoding cost, and the 500-sentence speed target (encode + segment, encoder loaded).
    report.add(
        Row(
            "encoder",
            {"encoder": encoder, "sentences": n_encoded},
            "all",
            None,
            {"ms_per_sentence": 1000 * encode_time / max(n_encoded, 1)},
            encode_time,
        )
    )
    sentences = _speed_document(sets["bbc-interleaved"])
    t = time.perf_counter()
    x = embed(sentences, encoder=encoder)
    t_encode = time.perf_counter() - t
    t = time.perf_counter()
    seg = segment_embeddings(x, k=8, sentences=sentences)
    t_segment = time.perf_counter() - t
    t = time.perf_counter()
    segment_embeddings(x, sentences=sentences)
    t_auto = time.perf_counter() - t
    report.add(
        Row(
            "bpseg",
            {"n_sentences": len(sentences), "k": 8},
            "speed-500",
            config.seed,
            {
                "encode_s": t_encode,
                "segment_s": t_segment,
                "total_s": t_encode + t_segment,
                "auto_k_segment_s": t_auto,
                "converged": float(seg.converged),
            },
            t_encode + t_segment,
        )
    )

    atomic_write_json(config.out / "per_doc.json", {"notes": notes, "rows": per_doc})
    report.summary = summary_tables(report.rows) + ("\n" + "\n".join(notes) + "\n" if notes else "")
    return report


BENCH = BenchSpec(
    package="bpseg",
    version=__version__,
    run=run_bench,
    help="BP-Seg and the baselines on Choi and BBC",
    uses=frozenset({"seeds", "data_root"}),
    default_seeds=(0, 1, 2),
    quick_seeds=(0,),
    add_arguments=_add_arguments,
)
