"""Ghost clipping for the re-parametrized layers, a transformer end to end, and the tasks."""

from __future__ import annotations

import pytest
import torch
from opacus import GradSampleModule
from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import (
    GradSampleModuleFastGradientClipping,
)
from opacus.optimizers import DPOptimizerFastGradientClipping
from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
from sparta.reparam import DeltaLinear, reparametrize, set_masks
from sparta.tasks import TokenClassifier, load_task
from sparta.train import SpartaConfig, dp_finetune
from torch import nn

from labcore.errors import LabcoreError


class _SeqNet(nn.Module):
    """Linear layers on a sequence (n, T, d), mean over T, then a head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(6, 7)
        self.b = nn.Linear(7, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.b(torch.tanh(self.a(x)))).mean(dim=1))


def _masked_seqnet() -> _SeqNet:
    net = _SeqNet()
    reparametrize(net, skip=("head",))
    for p in (net.a.weight_init, net.a.row_mask, net.b.weight_init, net.b.row_mask):
        p.requires_grad_(False)
    set_masks(net, {"a": torch.tensor([1.0, 0, 1, 0, 0, 1, 1]), "b": torch.ones(5)})
    return net


def test_ghost_norms_equal_the_norms_of_the_per_sample_gradients():
    net = _masked_seqnet()
    x, y = torch.randn(6, 4, 6), torch.randint(0, 3, (6,))
    gsm = GradSampleModule(net, loss_reduction="sum")
    nn.functional.cross_entropy(gsm(x), y, reduction="sum").backward()
    expected = {
        p: torch.linalg.vector_norm(p.grad_sample.flatten(1), dim=1)
        for p in net.parameters()
        if p.requires_grad
    }
    gsm._close()
    net.zero_grad(set_to_none=True)
    for p in net.parameters():
        p.grad_sample = None
    ghost = GradSampleModuleFastGradientClipping(
        net, max_grad_norm=1.0, use_ghost_clipping=True, loss_reduction="sum"
    )
    nn.functional.cross_entropy(ghost(x), y, reduction="sum").backward()
    for p, norms in expected.items():
        torch.testing.assert_close(p._norm_sample, norms, rtol=1e-4, atol=1e-6)
    ghost._close()


def test_ghost_clipping_gives_the_sum_of_clipped_per_example_gradients():
    """p.grad after the double backward equals Σ_i clip_C(g_i) computed example by example
    (the clip is on the norm over all trainable parameters together); masked rows get 0."""
    net = _masked_seqnet()
    x, y = torch.randn(5, 4, 6) * 3, torch.randint(0, 3, (5,))
    params = [p for p in net.parameters() if p.requires_grad]
    C = 0.5
    brute = [torch.zeros_like(p) for p in params]
    for i in range(5):
        net.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x[i : i + 1]), y[i : i + 1]).backward()
        g = [p.grad.clone() for p in params]
        norm = torch.sqrt(sum((t**2).sum() for t in g))
        for acc, t in zip(brute, g, strict=True):
            acc += t * min(1.0, C / (float(norm) + 1e-6))
    net.zero_grad(set_to_none=True)
    gsm = GradSampleModuleFastGradientClipping(
        net, max_grad_norm=C, use_ghost_clipping=True, loss_reduction="mean"
    )
    sgd = torch.optim.SGD(params, lr=0.0)
    opt = DPOptimizerFastGradientClipping(
        sgd, noise_multiplier=0.0, max_grad_norm=C, expected_batch_size=5, loss_reduction="mean"
    )
    crit = DPLossFastGradientClipping(gsm, opt, nn.CrossEntropyLoss(), loss_reduction="mean")
    crit(gsm(x), y).backward()
    for p, b in zip(params, brute, strict=True):
        torch.testing.assert_close(p.grad, b, rtol=1e-4, atol=1e-6)
    assert net.a.weight_delta.grad[net.a.row_mask == 0].abs().sum() == 0
    gsm._close()


def _tiny_bert() -> TokenClassifier:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    return TokenClassifier(BertModel(config), 16, 3, pad_id=0)


def test_sparta_on_a_transformer_keeps_frozen_layers_and_masked_rows_fixed():
    model = _tiny_bert()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 40, (90, 10), generator=g)
    ids[::3, 7:] = 0  # padding
    y = (ids[:, 0] % 3).long()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frozen = ("encoder.embeddings", "encoder.encoder.layer.0")
    config = SpartaConfig(epochs=2, probe_epochs=0, batch_size=30, trainable_fraction=0.25)
    res = dp_finetune(model, ids, y, config, head="head", frozen=frozen)
    assert res.epsilon <= 4.0
    assert sorted(res.masks) == sorted(  # only the unfrozen layer was re-parametrized
        f"encoder.encoder.layer.1.{n}"
        for n in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "intermediate.dense",
            "output.dense",
        )
    )
    after = model.state_dict()
    for k, v in before.items():
        if k.startswith(frozen):
            torch.testing.assert_close(after[k], v, rtol=0, atol=0)
    for name, mask in res.masks.items():
        layer = model.get_submodule(name)
        assert isinstance(layer, DeltaLinear)
        W, W0 = layer.weight.detach(), before[f"{name}.weight"]
        keep = mask.bool()
        assert int(keep.sum()) == -(-len(mask) // 4)
        torch.testing.assert_close(W[~keep], W0[~keep], rtol=0, atol=0)
        assert not torch.equal(W[keep], W0[keep])


def test_digits_cnn_task_is_a_groupnorm_cnn_with_a_fresh_head():
    task = load_task("digits", model="cnn-small", seed=1)
    assert task.name == "digits-cnn-small" and task.public_accuracy > 0.9
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in task.model.modules())
    assert task.X_train.shape[1:] == (1, 8, 8) and set(task.y_train.tolist()) == set(range(5))
    assert len(task.X_train) + len(task.X_test) == 1797 - int((task.y_train < 0).sum()) - 901
    config = SpartaConfig(epochs=2, probe_epochs=0, trainable_fraction=0.25)
    res = dp_finetune(task.model, task.X_train, task.y_train, config, head=task.head)
    assert res.epsilon <= 4.0 and set(res.masks) == {"features.0", "features.4", "features.8"}


@pytest.mark.parametrize(
    "kwargs,says",
    [
        ({"data": "bbc", "model": "mlp"}, "model 'mlp' does not go with data 'bbc'"),
        ({"data": "imagenet"}, "unknown data 'imagenet'"),
        ({"data": "digits", "model": "resnet"}, "unknown model 'resnet'"),
    ],
)
def test_bad_task_is_a_clear_error(kwargs, says):
    with pytest.raises(LabcoreError, match=says):
        load_task(**kwargs)


def test_missing_fashion_mnist_folder_is_named(tmp_path):
    with pytest.raises(LabcoreError, match="Fashion-MNIST folder not found"):
        load_task("fashion-mnist", data_root=tmp_path / "nowhere")


@pytest.mark.slow
def test_bbc_minilm_task_trains_privately_on_the_real_model():
    task = load_task("bbc", seed=0, n_train=128, trainable_layers=1)
    assert task.X_train.shape == (128, 64) and len(task.X_val) == 500
    config = SpartaConfig(epochs=2, probe_epochs=0, trainable_fraction=0.2)
    res = dp_finetune(
        task.model, task.X_train, task.y_train, config, head=task.head, frozen=task.frozen
    )
    assert res.epsilon <= 4.0 and len(res.masks) == 6
