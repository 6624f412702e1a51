"""The pipeline end to end on tiny models: every stage loads and scores, resuming equals a
full run, pruning shrinks, quantized weights stay integer, bad plans fail before work."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from slm.config import STAGES, DistillConfig, PruneConfig, TeacherConfig
from slm.pipeline import (
    MODEL,
    build_data,
    load_stage_model,
    plan,
    ranker_for,
    run_pipeline,
    stage_dir,
)

from labcore.errors import LabcoreError


def _scores(folder, config, **kw):
    model, tok, _ = load_stage_model(folder, **kw)
    ranker = ranker_for(model, tok, config.answer_words)
    data = build_data(config)
    q, cands = data.task.queries[0], data.task.candidates[0]
    scores, _ = ranker.score(q, [ranker.item_text_vectors(data.items[c]) for c in cands])
    return scores


def test_every_stage_writes_metrics_and_loads(full_run):
    config, metrics = full_run
    assert list(metrics) == list(STAGES)
    for stage in STAGES:
        folder = stage_dir(config.out, stage)
        m = json.loads((folder / "metrics.json").read_text())
        assert m == pytest.approx(metrics[stage], nan_ok=True)
        for key in ("ndcg@10", "auc", "parameters", "bytes", "tokens_per_item", "items_per_s"):
            assert m[key] == m[key], (stage, key)  # present and not NaN
        if stage in ("teacher", "distill", "prune", "quantize"):
            scores = _scores(folder, config)
            assert scores.shape == (4,) and torch.isfinite(scores).all()


def test_the_pruned_model_is_physically_smaller(full_run):
    config, metrics = full_run
    dense, _, _ = load_stage_model(stage_dir(config.out, "distill"))
    pruned, _, _ = load_stage_model(stage_dir(config.out, "prune"))
    assert pruned.config.intermediate_size == dense.config.intermediate_size // 2
    for name in ("gate_proj", "up_proj", "down_proj"):
        d = getattr(dense.model.layers[0].mlp, name).weight
        p = getattr(pruned.model.layers[0].mlp, name).weight
        assert p.numel() == d.numel() // 2
    assert metrics["prune"]["parameters"] < metrics["distill"]["parameters"]
    files = lambda s: sum(  # noqa: E731
        f.stat().st_size for f in (stage_dir(config.out, s) / MODEL).glob("*.safetensors")
    )
    assert files("prune") < files("distill")


def test_quantized_weights_are_served_as_integers(full_run):
    config, metrics = full_run
    model, _, _ = load_stage_model(stage_dir(config.out, "quantize"))
    w = model.model.layers[0].mlp.down_proj.weight
    assert type(w).__name__ == "IntxUnpackedToInt8Tensor" and w.qdata.dtype == torch.int8
    assert metrics["quantize"]["bytes"] < 0.6 * metrics["prune"]["bytes"]
    # The integer kernel computes with the de-quantized weights' values.
    exact = _scores(stage_dir(config.out, "quantize"), config, kernels=False)
    assert torch.allclose(_scores(stage_dir(config.out, "quantize"), config), exact, atol=1e-4)


def test_compression_and_serving_settings(full_run):
    config, metrics = full_run
    c, s = metrics["compress"], metrics["serve"]
    assert c["tokens_per_item"] <= c["full_tokens_per_item"] / 2 + 1
    assert c["parameters"] == metrics["quantize"]["parameters"]
    serve = json.loads((stage_dir(config.out, "serve") / "serve.json").read_text())
    assert serve["batch_size"] in (2, 4) and serve["dtype"] == "bfloat16"
    assert s["dtype"] == "bfloat16" and s["batch_size"] == serve["batch_size"]
    assert len(serve["tuning"]["measured"]) == 2


def test_resuming_from_a_stage_equals_the_full_run(full_run, tmp_path, make_config):
    config, metrics = full_run
    resumed = make_config(tmp_path / "run")
    for stage in ("teacher", "distill"):  # the stages before prune, copied from the full run
        shutil.copytree(stage_dir(config.out, stage), stage_dir(resumed.out, stage))
    again = run_pipeline(resumed, start="prune")
    for stage in ("prune", "quantize"):
        a, _, _ = load_stage_model(stage_dir(config.out, stage), kernels=False)
        b, _, _ = load_stage_model(stage_dir(resumed.out, stage), kernels=False)
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), stage
    for stage in ("prune", "quantize", "compress"):
        for key in ("ndcg@10", "auc", "parameters", "bytes", "tokens_per_item"):
            assert again[stage][key] == pytest.approx(metrics[stage][key], nan_ok=True)


def test_plans_that_cannot_work_fail_before_any_training(tmp_path, monkeypatch, make_config):
    import slm.pipeline as pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("a stage ran")

    monkeypatch.setattr(pipeline, "RUNNERS", dict.fromkeys(STAGES, no_work))
    cases = [
        (dict(stages=("prune", "quantize")), None, "needs a model from an earlier stage"),
        (dict(stages=("distill",)), None, "needs the teacher checkpoint"),
        (dict(stages=("teacher", "distill", "prune")), "prune", "needs the distill checkpoint"),
        (dict(stages=("teacher", "serve")), "compress", "the configuration's stages are"),
    ]
    for changes, start, says in cases:
        config = make_config(tmp_path / "run", **changes)
        with pytest.raises(LabcoreError, match=says):
            run_pipeline(config, start=start)
    assert not (tmp_path / "run").exists()  # nothing was written


def test_models_and_answer_words_are_checked_before_training(tmp_path, monkeypatch, make_config):
    import slm.pipeline as pipeline

    monkeypatch.setattr(pipeline, "RUNNERS", dict.fromkeys(STAGES, None))  # would crash
    with pytest.raises(LabcoreError, match=r"distill.student: unknown model 'no-such-model'"):
        run_pipeline(make_config(tmp_path / "a", distill=DistillConfig(student="no-such-model")))
    with pytest.raises(LabcoreError, match="answer word 'absolutely' is"):
        run_pipeline(make_config(tmp_path / "b", answer_words=("absolutely", "a")))
    with pytest.raises(LabcoreError, match="fewer than one calibration window"):
        run_pipeline(make_config(tmp_path / "c", prune=PruneConfig(mlp_sparsity=0.5, seqlen=10**6)))


def test_the_teacher_is_needed_only_for_distillation(tmp_path, make_config):
    config = make_config(
        tmp_path / "run", stages=("distill", "prune"),
        distill=DistillConfig(student="tiny-llama", alpha=0.0),
        prune=PruneConfig(mlp_sparsity=0.5, recovery_epochs=0),
    )  # fmt: skip
    steps = plan(config)
    assert [s.teacher for s in steps] == [None, None]
    with pytest.raises(LabcoreError, match="needs the teacher checkpoint"):
        plan(dataclasses.replace(config, prune=PruneConfig(mlp_sparsity=0.5)))


def test_a_stale_checkpoint_is_refused(full_run, tmp_path, make_config):
    config, _ = full_run
    run = make_config(tmp_path / "run")
    for stage in ("teacher", "distill"):
        shutil.copytree(stage_dir(config.out, stage), stage_dir(run.out, stage))
    # The teacher redone with other settings: the distilled student on disk is now stale.
    redo = dataclasses.replace(run, stages=("teacher",), teacher=TeacherConfig(
        model="tiny-llama", epochs=2, batch_size=4))  # fmt: skip
    run_pipeline(redo, overwrite=True)
    with pytest.raises(LabcoreError, match="made from an earlier 01-teacher"):
        run_pipeline(run, start="prune")
    with pytest.raises(LabcoreError, match="answer words"):
        run_pipeline(dataclasses.replace(run, answer_words=("a", "the")), start="distill",
                     overwrite=True)  # fmt: skip


def test_resuming_from_distill_equals_the_full_run(full_run, tmp_path, make_config):
    config, _ = full_run
    run = make_config(tmp_path / "run", stages=("teacher", "distill"))
    shutil.copytree(stage_dir(config.out, "teacher"), stage_dir(run.out, "teacher"))
    run_pipeline(run, start="distill")
    a, _, _ = load_stage_model(stage_dir(config.out, "distill"))
    b, _, _ = load_stage_model(stage_dir(run.out, "distill"))
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_existing_stage_needs_overwrite_and_other_data_is_refused(full_run, tmp_path, make_config):
    config, _ = full_run
    with pytest.raises(LabcoreError, match="pass --overwrite"):
        plan(config)
    other = make_config(
        tmp_path / "run", data=config.data.__class__(n_train_pairs=6, n_queries=3,
                                                     n_candidates=4, n_validation_queries=2,
                                                     item_words=40)
    )  # fmt: skip
    shutil.copytree(stage_dir(config.out, "teacher"), stage_dir(other.out, "teacher"))
    with pytest.raises(LabcoreError, match="made for other data"):
        run_pipeline(other, start="distill")
    assert not stage_dir(other.out, "distill").exists()


def test_vllm_export_of_the_quantize_stage(full_run, tmp_path, make_config):
    pytest.importorskip("compressed_tensors")
    config, _ = full_run
    run = make_config(
        tmp_path / "run", quantize=config.quantize.__class__(
            bits=4, sweeps=2, calibration_windows=2, seqlen=32, export_vllm=True
        ),
    )  # fmt: skip
    for stage in ("teacher", "distill", "prune"):
        shutil.copytree(stage_dir(config.out, stage), stage_dir(run.out, stage))
    run_pipeline(dataclasses.replace(run, stages=("prune", "quantize")), start="quantize")
    exported = json.loads((stage_dir(run.out, "quantize") / "vllm" / "config.json").read_text())
    assert exported["quantization_config"]["quant_method"] == "compressed-tensors"
