from __future__ import annotations

import pytest
from slm.config import (
    CompressConfig,
    DataConfig,
    DistillConfig,
    PipelineConfig,
    PruneConfig,
    QuantizeConfig,
    ServeConfig,
    TeacherConfig,
)


def tiny_config(out, **changes) -> PipelineConfig:
    """The whole pipeline on seeded two-layer random models and a few BBC articles."""
    base = dict(
        out=out,
        answer_words=("the", "a"),  # single tokens of the tiny tokenizer
        data=DataConfig(n_train_pairs=8, n_queries=3, n_candidates=4, n_validation_queries=2,
                        item_words=40),
        teacher=TeacherConfig(model="tiny-llama", epochs=1, batch_size=4),
        distill=DistillConfig(student="tiny-llama", batch_size=4),
        prune=PruneConfig(mlp_sparsity=0.5, calibration_windows=2, seqlen=32),
        quantize=QuantizeConfig(bits=4, sweeps=2, calibration_windows=2, seqlen=32),
        compress=CompressConfig(method="tfidf", ratio=2.0),
        serve=ServeConfig(batch_sizes=(2, 4)),
    )  # fmt: skip
    return PipelineConfig(**{**base, **changes})


@pytest.fixture(scope="session")
def make_config():
    """The factory :func:`tiny_config` (test modules cannot import conftest)."""
    return tiny_config


@pytest.fixture(scope="session")
def full_run(tmp_path_factory):
    from slm.pipeline import run_pipeline

    config = tiny_config(tmp_path_factory.mktemp("slm") / "run")
    return config, run_pipeline(config)
