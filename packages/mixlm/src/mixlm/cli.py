"""``mixlm`` command line: train a run, fill the item cache, serve scores, benchmark."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labcore.cli import add_bench_command, add_command, emit, make_parser, run
from labcore.errors import LabcoreError
from mixlm.bench import BENCH
from mixlm.data import read_items, read_records


def _pairs(args) -> list[tuple[str, str, float]]:
    if args.data == "bbc":
        from mixlm.data import bbc_ranking

        return list(bbc_ranking(n_train_pairs=args.pairs, seed=args.seed).train_pairs)
    rows = read_records(Path(args.data), ("query", "item", "label"))
    return [(r["query"], r["item"], float(r["label"])) for _, r in rows]


def _train(args: argparse.Namespace) -> int:
    import torch

    from mixlm.ranker import PromptTemplate
    from mixlm.run import RunConfig, build, save_run
    from mixlm.train import (
        TrainConfig,
        align_encoder,
        teacher_scores,
        train_full_text,
        train_mixlm,
    )

    if args.out is None:
        raise LabcoreError("give the run folder with --out")
    from labcore.io import check_output_dir

    check_output_dir(args.out, overwrite=args.overwrite)  # before any training
    torch.manual_seed(args.seed)
    pairs = _pairs(args)
    teacher_cfg = TrainConfig(
        epochs=args.teacher_epochs, batch_size=args.batch_size, lr=args.teacher_lr, seed=args.seed
    )
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, encoder_lr=args.encoder_lr,
        head_lr=args.head_lr, align_epochs=args.align_epochs, seed=args.seed,
    )  # fmt: skip
    words = [w.strip() for w in args.answer_words.split(",")]
    if len(words) != 2 or not all(words):
        raise LabcoreError(f"--answer-words must be two words, YES,NO; got {args.answer_words!r}")
    template = PromptTemplate(yes=f" {words[0]}", no=f" {words[1]}")
    config = RunConfig(ranker=args.ranker, encoder=args.encoder, k=args.k, template=template)
    ranker, encoder = build(config)
    teacher_targets = None
    if not args.no_teacher:
        # The teacher is the full-text ranker; the MixLM ranker then starts from its weights.
        train_full_text(ranker, pairs, teacher_cfg)
        teacher_targets = teacher_scores(ranker, pairs)
    if cfg.align_epochs:
        align_encoder(ranker, encoder, [p[1] for p in pairs], cfg)
    losses = train_mixlm(ranker, encoder, pairs, cfg, teacher=teacher_targets)
    config = save_run(args.out, config, ranker, encoder, overwrite=args.overwrite)
    payload = {
        "out": str(args.out),
        "pairs": len(pairs),
        "k": args.k,
        "final_loss": losses[-1],
        "encoder_version": config.encoder_version,
    }
    emit(args, payload, f"trained on {len(pairs)} pairs (k = {args.k}); wrote {args.out}")
    return 0


def _index(args: argparse.Namespace) -> int:
    import torch

    from mixlm.cache import ItemCache
    from mixlm.run import load_run

    items = read_items(args.items)
    config, ranker, encoder = load_run(args.run)

    @torch.no_grad()
    def encode(texts):
        return encoder(texts).numpy()

    open_cache = ItemCache.emptied if args.rebuild else ItemCache
    with open_cache(
        args.cache, encoder_version=config.encoder_version, k=config.k, dim=ranker.hidden_size
    ) as cache:
        stats = cache.refresh(items, encode, remove_missing=args.remove_missing)
        total = len(cache)
    payload = {"cache": str(args.cache), **stats, "items": total}
    emit(
        args,
        payload,
        f"{args.cache}: {stats['added']} added, {stats['updated']} updated, "
        f"{stats['unchanged']} unchanged, {stats['removed']} removed ({total} items)",
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from labcore.serve import check_port
    from mixlm.cache import ItemCache
    from mixlm.run import load_run
    from mixlm.server import ScoringService, ServiceLimits, serve

    check_port(args.port)
    limits = ServiceLimits(max_items=args.max_items, timeout_s=args.timeout)
    if not args.cache.is_file():
        raise LabcoreError(f"no item cache at {args.cache}: fill one with mixlm index")
    config, ranker, _ = load_run(args.run)
    cache = ItemCache(
        args.cache, encoder_version=config.encoder_version, k=config.k, dim=ranker.hidden_size
    )

    def ready(url: str) -> None:
        print(json.dumps({"url": url}) if args.json else f"serving on {url}", flush=True)

    try:
        serve(ScoringService(ranker, cache), host=args.host, port=args.port, limits=limits,
              on_ready=ready)  # fmt: skip
    finally:
        cache.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from mixlm import __version__

    parser = make_parser(
        "mixlm",
        "MixLM: LLM ranking from a few cached item vectors instead of the item text.",
        version=__version__,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = add_command(sub, "train", _train, help="train a MixLM run", uses=("seed", "out"))
    p.add_argument("--data", default="bbc", help="bbc, or a JSONL of query,item,label records")
    p.add_argument("--pairs", type=int, default=400, help="training pairs drawn from bbc")
    p.add_argument("--k", type=int, default=4, help="item vectors per item (default 4)")
    p.add_argument("--ranker", default="smollm2-135m", help="causal LM name or path")
    p.add_argument("--encoder", default="minilm-l6", help="item encoder (minilm-l6)")
    p.add_argument("--teacher-epochs", type=int, default=2, help="full-text ranker epochs")
    p.add_argument("--teacher-lr", type=float, default=1e-4, help="full-text ranker lr")
    p.add_argument("--align-epochs", type=int, default=1, help="encoder alignment epochs")
    p.add_argument("--epochs", type=int, default=1, help="MixLM epochs")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-5, help="MixLM ranker learning rate")
    p.add_argument("--head-lr", type=float, default=1e-3, help="item projection lr")
    p.add_argument("--encoder-lr", type=float, default=0.0, help="item encoder lr (0: frozen)")
    p.add_argument("--no-teacher", action="store_true", help="labels only, no distillation")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run folder")
    p.add_argument(
        "--answer-words", default="yes,no", help="the two single-token answers (default yes,no)"
    )
    p = add_command(sub, "index", _index, help="fill or refresh the item cache", uses=())
    p.add_argument("run", type=Path, help="a run folder from mixlm train")
    p.add_argument("items", type=Path, help="JSONL of id,text records")
    p.add_argument("--cache", type=Path, required=True, help="the cache file (SQLite)")
    p.add_argument("--rebuild", action="store_true", help="start the cache afresh")
    p.add_argument("--remove-missing", action="store_true", help="drop items not listed")
    p = add_command(sub, "serve", _serve, help="serve scores over HTTP on loopback", uses=())
    p.add_argument("run", type=Path, help="a run folder from mixlm train")
    p.add_argument("--cache", type=Path, required=True, help="the cache file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="TCP port (0: any free one)")
    p.add_argument("--max-items", type=int, default=512, help="items per request at most")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request at most")
    add_bench_command(sub, BENCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
