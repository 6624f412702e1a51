"""torchao integer weights built from our codes: exact grids, real savings, clear refusals."""

from __future__ import annotations

import pytest
import torch
from layerwise.quant import QuantSpec, rtn_quantize
from slm.kernels import int_weight, model_bytes, parameter_count, use_int_kernels

from labcore.errors import LabcoreError


@pytest.mark.parametrize(
    "spec",
    [QuantSpec(8), QuantSpec(8, sym=True), QuantSpec(4), QuantSpec(3), QuantSpec(4, group_size=16)],
    ids=str,
)
def test_the_kernel_computes_with_exactly_our_grid(spec):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(24, 64, generator=g)
    q = rtn_quantize(w, spec)
    t = int_weight(q, torch.float32)
    x = torch.randn(5, 64, generator=g)
    want = x @ q.dequantize().T
    got = torch.nn.functional.linear(x, t)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-5)
    assert t.qdata.dtype == torch.int8 and t.qdata.shape == w.shape  # integer storage


def test_model_bytes_shrink_and_parameters_stay():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128, bias=False), torch.nn.Linear(128, 8))
    dense_bytes, n = model_bytes(model), parameter_count(model)
    codes = {"0": rtn_quantize(model[0].weight.detach(), QuantSpec(8))}
    x = torch.randn(3, 64)
    want = model[1](x @ codes["0"].dequantize().T)
    use_int_kernels(model, codes)
    assert torch.allclose(model(x), want, atol=1e-4)
    # int8 codes + a float32 scale and an int8 zero per row, instead of 4 bytes per weight
    expected = dense_bytes - 64 * 128 * 4 + 64 * 128 + 128 * 4 + 128
    assert model_bytes(model) == expected
    assert parameter_count(model) == n


def test_bfloat16_serving():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False))
    codes = {"0": rtn_quantize(model[0].weight.detach(), QuantSpec(8))}
    use_int_kernels(model, codes, dtype="bfloat16")
    y = model(torch.randn(2, 64, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16


def test_refusals():
    w = torch.randn(8, 32)
    q = rtn_quantize(w, QuantSpec(4, group_size=8))
    q.g_idx = torch.randperm(32).to(torch.int32) // 8  # activation order
    with pytest.raises(LabcoreError, match="contiguous whole groups"):
        int_weight(q, torch.float32)
    q = rtn_quantize(w, QuantSpec(4))
    q.outliers = torch.zeros_like(w)
    q.outliers[0, 0] = 1.0
    with pytest.raises(LabcoreError, match="outliers"):
        int_weight(q, torch.float32)
    model = torch.nn.Sequential(torch.nn.Linear(32, 8))
    with pytest.raises(LabcoreError, match="no layer"):
        use_int_kernels(model, {"5": rtn_quantize(w, QuantSpec(8))})
    with pytest.raises(LabcoreError, match="do not fit"):
        use_int_kernels(model, {"0": rtn_quantize(torch.randn(4, 32), QuantSpec(8))})
    with pytest.raises(LabcoreError, match="no quantized layers"):
        use_int_kernels(model, {})
