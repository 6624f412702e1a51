"""Running the pipeline: stage by stage, each into its own folder, resumable from any stage.

Layout of a run folder (``config.out``)::

    pipeline.json              the configuration of the last ``slm run``
    01-teacher/  model/        a layerwise checkpoint (loads with layerwise.load; plain
                               models also with transformers)
                 teacher_scores.pt   the teacher's scores of the training pairs
                 metrics.json  relevance, parameters, bytes, tokens per item, items/s, p99
                 stage.json    the stage's settings, its inputs and the data fingerprint
    02-distill/  model/ ...
    03-prune/    model/ ...    OSSCAR-shrunk, after the recovery distillation
    04-quantize/ model/ ...    integer codes (quantized.safetensors) + [vllm/]
    05-compress/ compress.json the compressor (method, ratio, idf)
    06-serve/    serve.json    dtype, tuned batch size and the tuning measurements

Each stage folder is written atomically (a temporary folder, then renamed), so a killed run
leaves whole stages only. A stage after distill reads the model of the nearest model stage before it in
``config.stages`` (teacher, distill, prune, quantize), or, when the configuration lists none,
the nearest one already on disk; ``distill`` and ``prune`` (its recovery distillation) also
read the teacher's scores. :func:`plan` checks all of this, and that every checkpoint a stage
needs exists and was made for the same data, before any training starts.

Every stage seeds torch with ``seed + its position in STAGES``, so running stages one at a
time (``slm run --from``) gives the same models as one full run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from labcore.errors import LabcoreError
from labcore.io import atomic_directory, atomic_write_json
from slm.config import MODEL_STAGES, STAGES, PipelineConfig

MODEL = "model"
METRICS = "metrics.json"
STAGE = "stage.json"
TEACHER_SCORES = "teacher_scores.pt"
COMPRESS = "compress.json"
SERVE = "serve.json"
PIPELINE = "pipeline.json"
EVAL_BATCH_SIZE = 16


def stage_dir(out: Path, name: str) -> Path:
    return Path(out) / f"{STAGES.index(name) + 1:02d}-{name}"


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Data:
    """The evaluation task, the validation task (serve-stage tuning) and the training pairs,
    every item cut to ``data.item_words`` words (:func:`cut_words`): the same texts for any
    tokenizer, so teacher and student families may differ."""

    task: Any  # mixlm.data.RankingTask
    validation: Any
    items: dict[str, str]  # item id → text (evaluation and validation candidates)
    pairs: tuple[tuple[str, str, float], ...]

    @cached_property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([self.pairs, self.task.queries, self.task.candidates]).encode())
        h.update(json.dumps(sorted(self.items.items())).encode())
        return h.hexdigest()[:16]

    @property
    def train_items(self) -> list[str]:
        return sorted({p[1] for p in self.pairs})


def cut_words(text: str, words: int) -> str:
    """The first ``words`` whitespace-separated words of ``text``."""
    return " ".join(text.split()[:words])


def build_data(config: PipelineConfig) -> Data:
    from mixlm.data import bbc_ranking

    d = config.data
    kwargs = dict(n_train_pairs=d.n_train_pairs, n_candidates=d.n_candidates, seed=d.seed)
    task = bbc_ranking(n_queries=d.n_queries, n_unlabelled=0, **kwargs)
    validation = bbc_ranking(
        n_queries=d.n_validation_queries, validation=True, n_unlabelled=0, **kwargs
    )
    items = {k: cut_words(v, d.item_words) for k, v in {**task.items, **validation.items}.items()}
    pairs = tuple((q, cut_words(t, d.item_words), y) for q, t, y in task.train_pairs)
    return Data(task, validation, items, pairs)


# ---------------------------------------------------------------------------------------------
# Models on disk


def load_base(name: str) -> tuple[Any, Any]:
    """A base model by name (``smollm2-135m``, ``gemma3-270m``, a path, ``tiny-llama``)."""
    from mixlm.run import load_ranker_base

    return load_ranker_base(name)


def load_base_tokenizer(name: str) -> Any:
    """The tokenizer of a base model, without the model (``tiny-llama``: the tiny one)."""
    from labcore.models import load_tokenizer, tiny_tokenizer

    return tiny_tokenizer() if name == "tiny-llama" else load_tokenizer(name)


def _check_models(config: PipelineConfig, steps: list[Step], data: Data) -> None:
    """Before any training: the base models resolve, the answer words are one token each
    for their tokenizers, and the training prompts hold a calibration window."""
    run = {s.stage for s in steps}
    bases = [("teacher.model", config.teacher.model)] if "teacher" in run else []
    if "distill" in run:
        bases.append(("distill.student", config.distill.student))
    for what, name in bases:
        try:
            tok = load_base_tokenizer(name)
        except LabcoreError as exc:
            raise LabcoreError(f"{what}: {exc}") from None
        for word in config.answer_words:
            n = len(tok(f" {word}", add_special_tokens=False)["input_ids"])
            if n != 1:
                raise LabcoreError(
                    f"the answer word {word!r} is {n} tokens for {what} ({name}); the score "
                    "reads one logit per answer word: choose single-token answer_words"
                )
    windows = [getattr(config, s).seqlen for s in ("prune", "quantize") if s in run]
    if windows and bases:
        t = template_for(config.answer_words)
        tokens = sum(
            len(tok(f"{t.instruction}{q}{t.before_item}{i}{t.answer}{t.yes}")["input_ids"])
            for q, i, _ in data.pairs
        )
        if tokens < max(windows):
            raise LabcoreError(
                f"the training prompts hold {tokens} tokens, fewer than one calibration "
                f"window of {max(windows)}: lower prune/quantize seqlen or add pairs"
            )


def load_stage_model(folder: Path, *, kernels: bool = True, dtype: str = "float32"):
    """(model, tokenizer, sidecar) of a stage folder's checkpoint; quantized weights go
    through torchao's integer kernels unless ``kernels=False`` (de-quantized weights)."""
    import torch
    from layerwise.export import load, read_quantized

    path = Path(folder) / MODEL
    if not path.is_dir():
        raise LabcoreError(f"{folder} holds no model checkpoint ({MODEL}/)")
    model, tok, sidecar = load(path)
    packed = path / "quantized.safetensors"
    if kernels and packed.is_file():
        from slm.kernels import use_int_kernels

        use_int_kernels(model, read_quantized(packed), dtype=getattr(torch, dtype))
    else:
        model.to(getattr(torch, dtype))
    return model.eval(), tok, sidecar


def save_stage_model(folder: Path, model, tokenizer, *, report=None, quantized=None) -> None:
    from huggingface_hub.utils import disable_progress_bars
    from layerwise.export import save

    disable_progress_bars()  # "Writing model shards" on every save

    save(model, tokenizer, folder / MODEL, report=report, quantized=quantized)


def template_for(answer_words) -> Any:
    from mixlm.ranker import PromptTemplate

    yes, no = answer_words
    return PromptTemplate(yes=f" {yes}", no=f" {no}")


def ranker_for(model, tokenizer, answer_words=("yes", "no")):
    from mixlm.ranker import MixRanker

    return MixRanker(model, tokenizer, template_for(answer_words))


# ---------------------------------------------------------------------------------------------
# Planning: every check that can fail before training


@dataclass(frozen=True)
class Step:
    stage: str
    folder: Path
    parent: Path | None  # the model stage folder it reads
    teacher: Path | None  # the teacher folder (scores), for distill and prune
    compress: Path | None  # the compressor folder, for serve


def _on_disk(folder: Path) -> bool:
    return (folder / STAGE).is_file() and (folder / METRICS).is_file()


def plan(
    config: PipelineConfig, *, start: str | None = None, overwrite: bool = False
) -> list[Step]:
    """The steps to run, with the folders each reads; raises before any work when a stage is
    out of place, a checkpoint it needs is missing or was made for other data, or a stage
    folder would be overwritten without ``overwrite``."""
    stages = config.stages
    if start is not None:
        if start not in STAGES:
            raise LabcoreError(f"unknown stage {start!r}; the stages are {', '.join(STAGES)}")
        if start not in stages:
            raise LabcoreError(f"--from {start}: the configuration's stages are {list(stages)}")
    run = stages[stages.index(start) :] if start else stages
    out = config.out

    def available(name: str, before: str) -> bool:
        return (name in run and run.index(name) < run.index(before)) or _on_disk(
            stage_dir(out, name)
        )

    def need(name: str, for_stage: str, why: str) -> Path:
        folder = stage_dir(out, name)
        if not available(name, for_stage):
            hint = (
                f"it is not run before {for_stage!r}"
                if name in stages
                else f"{name!r} is not in the stages"
            )
            raise LabcoreError(
                f"stage {for_stage!r} needs the {name} checkpoint ({why}), but {folder} does "
                f"not hold one and {hint}: run {name!r} first"
            )
        return folder

    steps = []
    for s in run:
        folder = stage_dir(out, s)
        if folder.exists() and not overwrite:
            raise LabcoreError(
                f"{folder} exists: pass --overwrite to redo stage {s!r}, or --from a later stage"
            )
        parent = None
        if s not in ("teacher", "distill"):  # those two start from a base model
            earlier = [m for m in MODEL_STAGES if STAGES.index(m) < STAGES.index(s)]
            listed = [m for m in earlier if m in stages]
            candidates = listed or [m for m in earlier if _on_disk(stage_dir(out, m))]
            if not candidates:
                raise LabcoreError(
                    f"stage {s!r} needs a model from an earlier stage ({', '.join(earlier)}), "
                    f"and none is listed or on disk under {out}"
                )
            parent = need(candidates[-1], s, "the model it starts from")
        teacher = None
        if _needs_teacher(config, s):
            teacher = need("teacher", s, "the teacher's scores")
        compress = None
        if s == "serve":  # like the model: the listed compress stage, else one on disk
            if "compress" in stages:
                compress = need("compress", s, "the item compressor")
            elif _on_disk(stage_dir(out, "compress")):
                compress = stage_dir(out, "compress")
        if s == "quantize" and config.quantize.export_vllm:
            import importlib.util

            if importlib.util.find_spec("compressed_tensors") is None:
                raise LabcoreError(
                    "quantize.export_vllm needs the compressed-tensors library: "
                    "pip install 'slm[export]'"
                )
        steps.append(Step(s, folder, parent, teacher, compress))
    return steps


def _needs_teacher(config: PipelineConfig, stage: str) -> bool:
    """distill reads the teacher's scores unless it trains on labels only (alpha = 0); prune
    reads them for its recovery distillation (none when recovery_epochs = 0)."""
    if stage == "distill":
        return config.distill.alpha > 0
    return stage == "prune" and config.prune.recovery_epochs > 0


def _digest(folder: Path) -> str:
    return hashlib.sha256((folder / STAGE).read_bytes()).hexdigest()[:16]


def _check_inputs(step: Step, fingerprint: str, answer_words) -> None:
    """Checkpoints read from disk (resumed runs) must come from the same data and answer
    words, and from the checkpoints now beside them: a stage whose own inputs were redone
    since (their stage.json changed) is stale."""
    for folder in (step.parent, step.teacher, step.compress):
        if folder is None or not (folder / STAGE).is_file():
            continue
        info = json.loads((folder / STAGE).read_text())
        if info.get("data") != fingerprint:
            raise LabcoreError(
                f"{folder} was made for other data (fingerprint {info.get('data')}, now "
                f"{fingerprint}): rerun it with this configuration's [data]"
            )
        if info.get("answer_words") != list(answer_words):
            raise LabcoreError(
                f"{folder} scores with the answer words {info.get('answer_words')}, the "
                f"configuration says {list(answer_words)}: rerun it"
            )
        for name, digest in info.get("inputs", {}).items():
            source = folder.parent / name
            if not (source / STAGE).is_file() or _digest(source) != digest:
                raise LabcoreError(
                    f"{folder} was made from an earlier {name} that has been redone or "
                    f"removed since: rerun {folder.name.split('-', 1)[1]!r} too (--from)"
                )


# ---------------------------------------------------------------------------------------------
# Stages


def _calibration(tokenizer, pairs, template, *, windows: int, seqlen: int, seed: int):
    """Calibration windows of the training prompts as the ranker reads them."""
    import random

    import torch
    from layerwise import Calibration

    t = template
    stream: list[int] = []
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    for i in order:
        q, item, _ = pairs[i]
        text = f"{t.instruction}{q}{t.before_item}{item}{t.answer}{t.yes}"
        stream += tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(stream) >= windows * seqlen:
            break
    n = min(windows, len(stream) // seqlen)
    if n < 1:
        raise LabcoreError(
            f"the training pairs hold {len(stream)} tokens, fewer than one {seqlen}-token "
            "calibration window: lower seqlen or add pairs"
        )
    ids = torch.tensor(stream[: n * seqlen]).reshape(n, seqlen)
    return Calibration(ids, None)


def _dense_parent(config, step, data, settings):
    """The parent's dense model, tokenizer, calibration windows (``settings``' sizes) and the
    stage's seed: what prune and quantize start from."""
    if (step.parent / MODEL / "quantized.safetensors").is_file():  # pragma: no cover - plan order
        raise LabcoreError(f"{step.stage} needs dense weights; {step.parent} is quantized")
    model, tok, _ = load_stage_model(step.parent, kernels=False)
    seed = config.seed + STAGES.index(step.stage)
    cal = _calibration(
        tok, data.pairs, template_for(config.answer_words),
        windows=settings.calibration_windows, seqlen=settings.seqlen, seed=seed,
    )  # fmt: skip
    return model, tok, cal, seed


def _teacher_scores(folder: Path, data: Data):
    import torch

    obj = torch.load(folder / TEACHER_SCORES, weights_only=True)
    if obj["data"] != data.fingerprint:  # pragma: no cover - _check_inputs catches it first
        raise LabcoreError(f"{folder}: the teacher's scores are for other training pairs")
    return obj["scores"]


def _stage_teacher(config, step, data, out_tmp):
    import torch
    from mixlm.train import TrainConfig, teacher_scores, train_full_text

    c = config.teacher
    model, tok = load_base(c.model)
    ranker = ranker_for(model, tok, config.answer_words)
    seed = config.seed + STAGES.index("teacher")
    losses = train_full_text(
        ranker,
        list(data.pairs),
        TrainConfig(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, seed=seed),
    )
    scores = teacher_scores(ranker, list(data.pairs), batch_size=8)
    torch.save({"scores": scores, "data": data.fingerprint}, out_tmp / TEACHER_SCORES)
    save_stage_model(out_tmp, model, tok)
    return ranker, {"final_loss": losses[-1], "steps": len(losses)}


def _stage_distill(config, step, data, out_tmp):
    from slm.distill import distill

    c = config.distill
    model, tok = load_base(c.student)
    ranker = ranker_for(model, tok, config.answer_words)
    losses = distill(
        ranker, data.pairs, _teacher_scores(step.teacher, data), epochs=c.epochs, lr=c.lr,
        batch_size=c.batch_size, alpha=c.alpha, temperature=c.temperature,
        seed=config.seed + STAGES.index("distill"),
    )  # fmt: skip
    save_stage_model(out_tmp, model, tok)
    return ranker, {"final_loss": losses[-1], "steps": len(losses)}


def _stage_prune(config, step, data, out_tmp):
    from osscar import OSSCARConfig, prune

    from slm.distill import distill

    c = config.prune
    model, tok, cal, seed = _dense_parent(config, step, data, c)
    before = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    report = prune(
        model,
        OSSCARConfig(mlp_sparsity=c.mlp_sparsity, head_sparsity=c.head_sparsity),
        cal,
        device="cpu",
        progress=False,
        structured="shrink",
    )
    prune_s = time.perf_counter() - t0
    ranker = ranker_for(model, tok, config.answer_words)
    extra = {"prune_s": prune_s, "parameters_before": before}
    if c.recovery_epochs:
        losses = distill(
            ranker, data.pairs, _teacher_scores(step.teacher, data), epochs=c.recovery_epochs,
            lr=c.recovery_lr, batch_size=config.distill.batch_size, alpha=config.distill.alpha,
            temperature=config.distill.temperature, seed=seed,
        )  # fmt: skip
        extra.update(recovery_steps=len(losses), final_loss=losses[-1])
    save_stage_model(out_tmp, model, tok, report=report)
    return ranker, extra


def _quant_config(c):
    if c.method == "quantease":
        from quantease import QuantEaseConfig

        return QuantEaseConfig(bits=c.bits, sweeps=c.sweeps)
    from layerwise import GPTQConfig, RTNConfig

    return GPTQConfig(bits=c.bits) if c.method == "gptq" else RTNConfig(bits=c.bits)


def _stage_quantize(config, step, data, out_tmp):
    from layerwise import compress, save

    c = config.quantize
    model, tok, cal, _ = _dense_parent(config, step, data, c)
    t0 = time.perf_counter()
    report, codes = compress(model, _quant_config(c), cal, device="cpu", progress=False)
    quantize_s = time.perf_counter() - t0
    save_stage_model(out_tmp, model, tok, report=report, quantized=codes)
    if c.export_vllm:
        save(model, tok, out_tmp / "vllm", report=report, quantized=codes,
             format="compressed-tensors")  # fmt: skip
    # Evaluate what is served: the integer kernels, not the de-quantized weights.
    model, tok, _ = load_stage_model(out_tmp, kernels=True)
    return ranker_for(model, tok, config.answer_words), {
        "quantize_s": quantize_s,
        "layers": len(codes),
    }


def make_compressor(folder: Path | None, tokenizer):
    """The item compressor saved in a compress-stage folder (``None``: full context)."""
    from slm.compress import ContextCompressor

    if folder is None:
        return None
    obj = json.loads((Path(folder) / COMPRESS).read_text())
    return ContextCompressor.for_tokenizer(tokenizer, obj["method"], obj["ratio"], obj["idf"])


def _stage_compress(config, step, data, out_tmp):
    from slm.compress import fit_idf

    c = config.compress
    model, tok, _ = load_stage_model(step.parent)
    idf = fit_idf(data.train_items) if c.method == "tfidf" else {}
    atomic_write_json(out_tmp / COMPRESS, {"method": c.method, "ratio": c.ratio, "idf": idf})
    return ranker_for(model, tok, config.answer_words), {
        "compressor": make_compressor(out_tmp, tok)
    }


def _stage_serve(config, step, data, out_tmp):
    from slm.evaluate import tune_batch_size

    c = config.serve
    model, tok, _ = load_stage_model(step.parent, dtype=c.dtype)
    ranker = ranker_for(model, tok, config.answer_words)
    compressor = make_compressor(step.compress, tok)
    tuning = tune_batch_size(
        ranker, data.validation, data.items, compressor, c.batch_sizes, c.latency_target_s
    )
    atomic_write_json(
        out_tmp / SERVE,
        {"dtype": c.dtype, "batch_size": tuning["batch_size"], "model_stage": step.parent.name,
         "compress_stage": step.compress.name if step.compress else None, "tuning": tuning},
    )  # fmt: skip
    return ranker, {"compressor": compressor, "batch_size": tuning["batch_size"],
                    "latency_target_met": tuning["target_met"]}  # fmt: skip


RUNNERS = {
    "teacher": _stage_teacher,
    "distill": _stage_distill,
    "prune": _stage_prune,
    "quantize": _stage_quantize,
    "compress": _stage_compress,
    "serve": _stage_serve,
}


def run_step(config: PipelineConfig, step: Step, data: Data, *, progress=None) -> dict[str, Any]:
    """Run one stage into ``step.folder`` (atomically); returns its metrics."""
    import torch

    from slm.evaluate import evaluate

    _check_inputs(step, data.fingerprint, config.answer_words)
    torch.manual_seed(config.seed + STAGES.index(step.stage))
    with atomic_directory(step.folder, overwrite=True) as tmp:
        t0 = time.perf_counter()
        ranker, extra = RUNNERS[step.stage](config, step, data, tmp)
        stage_s = time.perf_counter() - t0
        compressor = extra.pop("compressor", None)
        # Every stage before serve is timed at the same batch size, in float32.
        batch_size = extra["batch_size"] if step.stage == "serve" else EVAL_BATCH_SIZE
        metrics = evaluate(ranker, data.task, data.items, compressor, batch_size=batch_size)
        metrics.update(extra, stage_s=stage_s)
        atomic_write_json(tmp / METRICS, metrics)
        atomic_write_json(
            tmp / STAGE,
            {
                "stage": step.stage,
                "settings": dataclasses.asdict(getattr(config, step.stage)),
                "seed": config.seed,
                "answer_words": list(config.answer_words),
                "data": data.fingerprint,
                "parent": step.parent.name if step.parent else None,
                "teacher": step.teacher.name if step.teacher else None,
                "compress": step.compress.name if step.compress else None,
                # What this stage was made from, to spot stale checkpoints on resume.
                "inputs": {
                    f.name: _digest(f)
                    for f in (step.parent, step.teacher, step.compress)
                    if f is not None
                },
            },
        )
    if progress is not None:
        progress(step.stage, metrics)
    return metrics


def run_pipeline(
    config: PipelineConfig,
    *,
    start: str | None = None,
    overwrite: bool = False,
    progress=None,
) -> dict[str, dict[str, Any]]:
    """Run the configured stages (from ``start`` on); returns each stage's metrics."""
    steps = plan(config, start=start, overwrite=overwrite)
    data = build_data(config)
    made = {s.folder for s in steps}
    for step in steps:  # checkpoints this run reads from disk must match the data
        _check_inputs(dataclasses.replace(
            step, **{k: None for k in ("parent", "teacher", "compress") if getattr(step, k) in made}
        ), data.fingerprint, config.answer_words)  # fmt: skip
    _check_models(config, steps, data)
    config.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(config.out / PIPELINE, config.to_dict())
    return {s.stage: run_step(config, s, data, progress=progress) for s in steps}


def load_stage(folder: str | Path) -> dict[str, Any]:
    """A finished stage folder's metrics and settings."""
    folder = Path(folder)
    if not _on_disk(folder):
        raise LabcoreError(f"{folder} is not a finished slm stage folder")
    return {
        "metrics": json.loads((folder / METRICS).read_text()),
        **json.loads((folder / STAGE).read_text()),
    }
