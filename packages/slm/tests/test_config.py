"""The configuration: defaults, files, and every mistake named before any work."""

from __future__ import annotations

import pytest
from slm.config import (
    STAGES,
    CompressConfig,
    PipelineConfig,
    PruneConfig,
    QuantizeConfig,
    ServeConfig,
    load_config,
)

from labcore.errors import LabcoreError


def test_defaults_run_every_stage_in_order(tmp_path):
    c = PipelineConfig(out=tmp_path / "run")
    assert c.stages == STAGES
    assert c.prune.mlp_sparsity == 0.4 and c.quantize.bits == 8
    assert PipelineConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize(
    ("stages", "says"),
    [
        (["teacher", "finetune"], "unknown stage 'finetune'"),
        (["quantize", "prune"], "stage 'prune' cannot run after 'quantize'"),
        (["serve", "teacher"], "stage 'teacher' cannot run after 'serve'"),
        (["teacher", "teacher"], "listed twice"),
        ([], "stages is empty"),
        ("teacher", "must be a list"),
    ],
)
def test_bad_stage_lists(tmp_path, stages, says):
    with pytest.raises(LabcoreError, match=says.replace("(", r"\(")):
        PipelineConfig(out=tmp_path, stages=stages)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: PruneConfig(mlp_sparsity=1.0), "mlp_sparsity must be in"),
        (lambda: PruneConfig(mlp_sparsity=0.0, head_sparsity=0.0), "nothing to prune"),
        (lambda: QuantizeConfig(bits=9), "bits must be an integer from 2 to 8"),
        (lambda: QuantizeConfig(method="awq"), "quantize.method"),
        (lambda: CompressConfig(ratio=0.5), "ratio"),
        (lambda: CompressConfig(method="summary"), "compress.method"),
        (lambda: ServeConfig(batch_sizes=()), "batch_sizes must be a non-empty list"),
        (lambda: ServeConfig(dtype="float16"), "serve.dtype"),
        (lambda: PipelineConfig(out="x", answer_words=("yes",)), "answer_words must be two"),
    ],
)
def test_bad_values(make, says):
    with pytest.raises(LabcoreError, match=says):
        make()


def test_toml_and_yaml_files(tmp_path):
    (tmp_path / "p.toml").write_text(
        'out = "runs/a"\nstages = ["teacher", "distill"]\n[teacher]\nepochs = 3\n'
    )
    c = load_config(tmp_path / "p.toml")
    assert c.out == tmp_path / "runs/a"  # relative to the file, not the working folder
    assert c.stages == ("teacher", "distill") and c.teacher.epochs == 3
    (tmp_path / "p.yaml").write_text(
        "out: /abs/run\nstages: [prune, quantize]\nquantize:\n  bits: 4\n"
    )
    y = load_config(tmp_path / "p.yaml")
    assert str(y.out) == "/abs/run" and y.quantize.bits == 4


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("p.toml", 'out = "r"\n[prune]\nsparsity = 0.5\n', r"\[prune\] has unknown setting"),
        ("p.toml", 'out = "r"\nepochs = 2\n', "unknown setting"),
        ("p.toml", "stages = []\n", "has no 'out'"),
        ("p.toml", "out = \n", "not valid TOML"),
        ("p.yaml", "out: [\n", "not valid YAML"),
        ("p.yaml", "- a\n- b\n", "must be a table"),
        ("p.json", "{}", "must be a .toml, .yaml or .yml"),
        ("p.toml", 'out = "r"\nprune = 3\n', r"\[prune\] must be a table"),
    ],
)
def test_bad_files(tmp_path, name, text, says):
    (tmp_path / name).write_text(text)
    with pytest.raises(LabcoreError, match=says):
        load_config(tmp_path / name)


def test_missing_file(tmp_path):
    with pytest.raises(LabcoreError, match="no configuration file"):
        load_config(tmp_path / "nope.toml")
