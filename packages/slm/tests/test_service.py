"""Serving a finished run through mixlm's service: the same scores over HTTP, clear errors."""

from __future__ import annotations

import asyncio

import pytest
import torch
from aiohttp.test_utils import TestClient, TestServer
from mixlm.server import ScoringService, load_test_service, make_app
from slm.pipeline import build_data
from slm.service import TextItems, served_model

from labcore.errors import LabcoreError


def test_served_model_is_the_serve_stage(full_run):
    config, metrics = full_run
    served = served_model(config.out)
    assert served["model_stage"] == "04-quantize"
    assert served["dtype"] == "bfloat16" and served["batch_size"] == metrics["serve"]["batch_size"]
    assert served["compressor"] is not None and served["compressor"].ratio == 2.0


def test_http_scores_equal_direct_scores(full_run):
    config, _ = full_run
    served = served_model(config.out)
    ranker, compressor = served["ranker"], served["compressor"]
    data = build_data(config)
    source = TextItems(ranker, data.items, compressor)
    service = ScoringService(ranker, source, batch_size=served["batch_size"])
    query, cands = data.task.queries[0], list(data.task.candidates[0])
    direct, _ = ranker.score(
        query, [ranker.item_text_vectors(compressor(data.items[c])) for c in cands]
    )

    async def go():
        async with TestClient(TestServer(make_app(service))) as client:
            ok = await client.post("/score", json={"query": query, "items": cands})
            bad = await client.post("/score", json={"query": query, "items": ["nope"]})
            return ok.status, await ok.json(), bad.status, await bad.json()

    status, body, bad_status, bad_body = asyncio.run(go())
    assert status == 200
    assert torch.allclose(torch.tensor(body["scores"]), direct.float(), atol=1e-3)
    assert bad_status == 400 and "not in the served catalogue" in bad_body["error"]
    stats = asyncio.run(
        load_test_service(service, [{"query": query, "items": cands}] * 3, concurrency=2)
    )
    assert stats["requests"] == 3 and stats["errors"] == 0


def test_a_broken_serve_stage_is_a_clear_error(tmp_path, full_run):
    import shutil

    from slm.pipeline import stage_dir

    config, _ = full_run
    out = tmp_path / "run"
    shutil.copytree(stage_dir(config.out, "serve"), stage_dir(out, "serve"))
    with pytest.raises(LabcoreError, match="serves 04-quantize, which is not a finished stage"):
        served_model(out)
    (stage_dir(out, "serve") / "serve.json").write_text("{}")
    with pytest.raises(LabcoreError, match="unreadable or incomplete"):
        served_model(out)


def test_errors(tmp_path, full_run):
    with pytest.raises(LabcoreError, match="no run folder"):
        served_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabcoreError, match="no finished model stage"):
        served_model(tmp_path / "empty")
    config, _ = full_run
    ranker = served_model(config.out)["ranker"]
    with pytest.raises(LabcoreError, match="no items"):
        TextItems(ranker, {})
