"""Export to compressed-tensors, read back by plain transformers (compressed-tensors installed)."""

import json

import pytest
import torch
from layerwise import (
    Calibration,
    GPTQConfig,
    MagnitudeConfig,
    RTNConfig,
    SparseGPTConfig,
    compress,
    save,
)
from layerwise.compressed import disk_bytes

from labcore import LabcoreError
from labcore.models import tiny_causal_lm

pytest.importorskip("compressed_tensors")


def _cal(tok):
    g = torch.Generator().manual_seed(0)
    return Calibration(torch.randint(3, len(tok), (4, 24), generator=g), None)


def _ids(tok):
    g = torch.Generator().manual_seed(1)
    return torch.randint(3, len(tok), (2, 10), generator=g)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _transformers(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path)


CASES = {
    "4bit-channel-asym": (GPTQConfig(bits=4), "int-quantized"),
    "4bit-group32-sym": (GPTQConfig(bits=4, group_size=32, sym=True), "pack-quantized"),
    "3bit-channel-sym": (GPTQConfig(bits=3, sym=True), "pack-quantized"),
    "8bit-channel-asym": (RTNConfig(bits=8), "int-quantized"),
    "2:4": (SparseGPTConfig(nm="2:4"), None),
    "50%-unstructured": (MagnitudeConfig(0.5), None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_export_loads_in_transformers_with_the_same_logits(tmp_path, case):
    cfg, pack = CASES[case]
    model, tok = tiny_causal_lm("llama")
    report, codes = compress(model, cfg, _cal(tok), device="cpu", progress=False)
    out = save(
        model, tok, tmp_path / "ct", report=report, quantized=codes, format="compressed-tensors"
    )
    loaded = _transformers(out)
    ids = _ids(tok)
    # float32 scales: the codes and the values come back exactly (up to summation order)
    assert torch.allclose(_logits(loaded, ids), _logits(model, ids), atol=1e-5)
    config = json.loads((out / "config.json").read_text())
    if pack is None:  # pruning only: no quantization_config, zeros kept
        assert "quantization_config" not in config
        w = loaded.model.layers[0].mlp.down_proj.weight
        assert float((w == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    else:
        qc = config["quantization_config"]
        assert qc["quant_method"] == "compressed-tensors" and qc["format"] == pack
        (group,) = qc["config_groups"].values()
        assert group["weights"]["num_bits"] == cfg.bits
        assert len(group["targets"]) == 14  # every linear layer of both blocks
    sidecar = json.loads((out / "layerwise.json").read_text())
    assert sidecar["format"] == "compressed-tensors" and sidecar["method"] == report.method


def test_packed_bytes_shrink_and_float16_halves_the_rest(tmp_path):
    model, tok = tiny_causal_lm("llama", hidden_size=128)
    report, codes = compress(
        model, GPTQConfig(bits=4, sym=True), _cal(tok), device="cpu", progress=False
    )
    dense = save(model, tok, tmp_path / "ours", report=report, quantized=codes)
    packed = save(model, tok, tmp_path / "ct", quantized=codes, format="compressed-tensors")
    half = save(
        model, tok, tmp_path / "ct16", quantized=codes, format="compressed-tensors", dtype="float16"
    )
    linear = sum(
        m.weight.numel()
        for n, m in model.named_modules()
        if n.startswith("model.layers") and isinstance(m, torch.nn.Linear)
    )
    other = sum(p.numel() for p in model.parameters()) - linear
    # ours: fp32 dense weights plus packed codes; compressed-tensors: 4-bit codes + fp32 rest
    assert disk_bytes(packed) < disk_bytes(dense) - 3.4 * linear
    assert disk_bytes(half) < disk_bytes(packed) - 1.9 * other
    ids = _ids(tok)
    assert torch.allclose(_logits(_transformers(half), ids).float(), _logits(model, ids), atol=0.05)


def _with_outliers(model, tok):
    report, codes = compress(model, RTNConfig(bits=4), _cal(tok), device="cpu", progress=False)
    name = "model.layers.0.mlp.down_proj"
    q = codes[name]
    q.outliers = torch.zeros(q.codes.shape)
    q.outliers[0, :3] = 0.5
    with torch.no_grad():
        model.get_submodule(name).weight.copy_(q.dequantize())
    return report, codes, name


def test_unsupported_layers_are_refused_or_written_dense(tmp_path):
    model, tok = tiny_causal_lm("llama")
    _, codes, name = _with_outliers(model, tok)
    with pytest.raises(LabcoreError, match=rf"{name}: 3 full-precision outliers cannot be written"):
        save(model, tok, tmp_path / "x", quantized=codes, format="compressed-tensors")
    assert not (tmp_path / "x").exists()
    out = save(
        model,
        tok,
        tmp_path / "ct",
        quantized=codes,
        format="compressed-tensors",
        unsupported="dense",
    )
    ids = _ids(tok)
    assert torch.allclose(_logits(_transformers(out), ids), _logits(model, ids), atol=1e-5)
    export = json.loads((out / "layerwise.json").read_text())["export"]
    assert export["dense_layers"] == [name] and export["quantized_layers"] == 13


def test_act_order_groups_and_other_bad_requests_name_the_problem(tmp_path):
    model, tok = tiny_causal_lm("llama")
    _, codes = compress(
        model,
        GPTQConfig(bits=4, group_size=32, act_order=True),
        _cal(tok),
        device="cpu",
        progress=False,
    )
    with pytest.raises(LabcoreError, match=r"activation order with groups .* cannot be written"):
        save(model, tok, tmp_path / "x", quantized=codes, format="compressed-tensors")
    with pytest.raises(LabcoreError, match="pack must be one of"):
        save(model, tok, tmp_path / "x", quantized=codes, format="compressed-tensors", pack="gguf")
    with pytest.raises(LabcoreError, match="format must be 'layerwise' or 'compressed-tensors'"):
        save(model, tok, tmp_path / "x", format="gguf")
    with pytest.raises(LabcoreError, match="apply to format='compressed-tensors' only"):
        save(model, tok, tmp_path / "x", pack="int-quantized")

    gpt2, tok2 = tiny_causal_lm("gpt2")
    _, codes2 = compress(gpt2, RTNConfig(bits=4), _cal(tok2), device="cpu", progress=False)
    with pytest.raises(LabcoreError, match=r"quantizes torch\.nn\.Linear layers, not Conv1D"):
        save(gpt2, tok2, tmp_path / "x", quantized=codes2, format="compressed-tensors")


def test_non_uniform_structure_is_refused(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "layerwise_structure_plugins", Path(__file__).with_name("test_structure.py")
    )
    plugins = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugins)
    Halving, HalvingConfig = plugins.Halving, plugins.HalvingConfig

    model, tok = tiny_causal_lm("llama")
    compress(
        model, Halving(HalvingConfig(vary_by_block=True)), _cal(tok), device="cpu", progress=False
    )
    with pytest.raises(LabcoreError, match="different shapes after structured pruning"):
        save(model, tok, tmp_path / "x", format="compressed-tensors")
    model, tok = tiny_causal_lm("llama")
    compress(
        model, Halving(HalvingConfig(vary_by_block=False)), _cal(tok), device="cpu", progress=False
    )
    save(model, tok, tmp_path / "ours")  # writes the smaller config first
    out = save(model, tok, tmp_path / "ct", format="compressed-tensors")
    ids = _ids(tok)
    assert torch.allclose(_logits(_transformers(out), ids), _logits(model, ids), atol=1e-5)


def test_export_command(tmp_path, capsys):
    from layerwise.cli import main

    model, tok = tiny_causal_lm("llama")
    report, codes = compress(
        model, GPTQConfig(bits=4, sym=True), _cal(tok), device="cpu", progress=False
    )
    save(model, tok, tmp_path / "run", report=report, quantized=codes)
    assert (
        main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "ct"), "--json", "-q"]) == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["pack"] == "pack-quantized" and payload["quantized_layers"] == 14
    assert payload["bytes"] < payload["source_bytes"]
    ids = _ids(tok)
    assert torch.allclose(
        _logits(_transformers(tmp_path / "ct"), ids), _logits(model, ids), atol=1e-5
    )
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "ct")]) == 2
    assert "already exists" in capsys.readouterr().err
