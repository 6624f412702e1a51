"""Public → private fine-tuning tasks that install offline.

``bbc`` with ``minilm-l6`` (the main task)
    MiniLM-L6 (``labcore.load_sentence_encoder``, pretrained on public sentence pairs) with
    mean pooling and a fresh linear head, privately fine-tuned on the BBC News topics (5
    classes; ``labcore.data.load_topics``: a hashed train/test split). Articles are cut to
    ``max_length`` tokens (64), and ``n_train`` training articles (1,000) are drawn by seed
    from the train split, up to 500 of the rest held out for tuning; the test split is whole. The token embeddings stay frozen for every method (their
    per-example gradients would hold 30,522 × 384 numbers per article); the 6 transformer
    layers (36 linear layers), their LayerNorms and the head train.
``digits`` with ``mlp`` (the fast task)
    scikit-learn's handwritten digits (8×8): an MLP (64-128-128) pretrained non-privately on
    the digits 0-4 (public); the private task is the digits 5-9 with a fresh head, 60% of
    them for training and the rest for testing (split by seed).
``digits`` / ``fashion-mnist`` with ``cnn-small``
    msam's small CNN (GroupNorm: Opacus cannot train BatchNorm privately), pretrained on the
    classes 0-4 and privately fine-tuned on 5-9 with a fresh head. Digits come as 1×8×8
    images; Fashion-MNIST is read from ``data_root`` (the four original IDX files; public
    part: 12,000 training images of classes 0-4, private part: ``n_train`` images of 5-9
    drawn by seed, tested on all test images of 5-9).

Pretrained models are built once per process (fixed seed 0) and copied for every run.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
from torch import nn

from labcore.errors import LabcoreError

DATASETS = ("bbc", "digits", "fashion-mnist")
MODELS = ("minilm-l6", "mlp", "cnn-small")
DEFAULT_MODEL = {"bbc": "minilm-l6", "digits": "mlp", "fashion-mnist": "cnn-small"}
VALID = {
    ("bbc", "minilm-l6"),
    ("digits", "mlp"),
    ("digits", "cnn-small"),
    ("fashion-mnist", "cnn-small"),
}


@dataclass
class Task:
    name: str
    model: nn.Module  # pretrained on the public part, with a fresh head for the private one
    head: str  # the classification head's module name (always trainable)
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    public_accuracy: float | None  # the pretrained model on its own (public) task
    frozen: tuple[str, ...] = ()  # modules no method trains (e.g. token embeddings)
    X_val: torch.Tensor | None = None  # held-out training-pool examples, for tuning
    y_val: torch.Tensor | None = None


class TokenClassifier(nn.Module):
    """A transformer encoder over padded token ids, mean pooling over the real tokens and a
    linear head. The input is one tensor of ids (the attention mask is ``ids != pad_id``),
    so Opacus' per-example machinery and a ``TensorDataset`` handle it as they do images."""

    def __init__(self, encoder: nn.Module, hidden: int, num_classes: int, pad_id: int):
        super().__init__()
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # unused (mean pooling): no parameter without a gradient
        self.encoder = encoder
        self.pad_id = int(pad_id)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != self.pad_id).long()
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * m).sum(1) / m.sum(1).clamp_min(1.0))


def _mlp(n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, n_out)
    )


def _cnn(in_channels: int, n_out: int) -> nn.Module:
    from msam.models import SmallCNN

    model = SmallCNN(in_channels, n_out, norm="group")
    for module in model.modules():  # Opacus' backward hooks refuse in-place ops on outputs
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return model


_CACHE: dict = {}


def _pretrain(key: str, model: nn.Module, X: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Non-private Adam on the public part (seed 0), once per process; returns its accuracy."""
    if key not in _CACHE:
        torch.manual_seed(0)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(0)
        batch = min(len(X), 256)
        model.train()
        for _ in range(steps):
            idx = torch.randint(len(X), (batch,), generator=g)
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(X[i : i + 1024]).argmax(1) for i in range(0, len(X), 1024)])
        acc = float((pred == y).float().mean())
        _CACHE[key] = ({k: v.clone() for k, v in model.state_dict().items()}, acc)
    state, acc = _CACHE[key]
    model.load_state_dict(state)
    return acc


def _split(n: int, seed: int, train_share: float) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = int(train_share * n)
    return perm[:cut], perm[cut:]


def _digits(model_name: str, seed: int) -> Task:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    if model_name == "cnn-small":
        X = ((X - X.mean()) / X.std()).reshape(-1, 1, 8, 8)
    public = y < 5
    if model_name == "mlp":
        model, head = _mlp(5), "4"
        acc = _pretrain("digits-mlp", model, X[public], y[public], 200)
        torch.manual_seed(seed)
        model[4] = nn.Linear(128, 5)  # a fresh head for the private classes
    else:
        model, head = _cnn(1, 5), "head"
        acc = _pretrain("digits-cnn", model, X[public], y[public], 120)
        torch.manual_seed(seed)
        model.head = nn.Linear(model.head.in_features, 5)
    Xp, yp = X[~public], y[~public] - 5
    tr, te = _split(len(Xp), seed, 0.6)
    return Task(f"digits-{model_name}", model, head, Xp[tr], yp[tr], Xp[te], yp[te], acc)


def _fashion(seed: int, data_root: str | os.PathLike | None, n_train: int) -> Task:
    from msam.data import load_fashion_mnist

    ds = load_fashion_mnist(data_root)
    public = ds.train_y < 5
    Xpub, ypub = ds.train_x[public], ds.train_y[public]
    keep = torch.randperm(len(Xpub), generator=torch.Generator().manual_seed(0))[:12_000]
    model = _cnn(1, 5)
    acc = _pretrain("fashion-cnn", model, Xpub[keep], ypub[keep], 600)
    torch.manual_seed(seed)
    model.head = nn.Linear(model.head.in_features, 5)
    private = ds.train_y >= 5
    Xp, yp = ds.train_x[private], ds.train_y[private] - 5
    if not 0 < n_train <= len(Xp):
        raise LabcoreError(f"n_train must lie in 1..{len(Xp)} for fashion-mnist, got {n_train}")
    pick = torch.randperm(len(Xp), generator=torch.Generator().manual_seed(seed))[:n_train]
    test = ds.test_y >= 5
    return Task(
        "fashion-mnist-cnn-small",
        model,
        "head",
        Xp[pick],
        yp[pick],
        ds.test_x[test],
        ds.test_y[test] - 5,
        acc,
    )


def _bbc_tokens(max_length: int):
    key = ("bbc", max_length)
    if key not in _CACHE:
        from msam.data import load_bbc_dataset

        from labcore import load_sentence_encoder

        st = load_sentence_encoder("minilm-l6", device="cpu")
        tokenizer = st[0].tokenizer
        ds = load_bbc_dataset(tokenizer, max_length=max_length)  # msam's tokenization
        _CACHE[key] = (
            st[0].auto_model,
            tokenizer.pad_token_id,
            ds.train_x["input_ids"],
            ds.train_y,
            ds.test_x["input_ids"],
            ds.test_y,
        )
    return _CACHE[key]


def _bbc(seed: int, n_train: int, max_length: int, trainable_layers: int) -> Task:
    encoder, pad_id, Xtr, ytr, Xte, yte = _bbc_tokens(max_length)
    if not 0 < n_train <= len(Xtr):
        raise LabcoreError(f"n_train must lie in 1..{len(Xtr)} for bbc, got {n_train}")
    n_layers = encoder.config.num_hidden_layers
    if not 1 <= trainable_layers <= n_layers:
        raise LabcoreError(f"trainable_layers must lie in 1..{n_layers}, got {trainable_layers}")
    perm = torch.randperm(len(Xtr), generator=torch.Generator().manual_seed(seed))
    pick, val = perm[:n_train], perm[n_train:][:500]
    torch.manual_seed(seed)
    model = TokenClassifier(copy.deepcopy(encoder), encoder.config.hidden_size, 5, pad_id=pad_id)
    return Task(
        "bbc-minilm-l6",
        model,
        "head",
        Xtr[pick],
        ytr[pick],
        Xte,
        yte,
        None,
        frozen=(
            "encoder.embeddings",
            *(f"encoder.encoder.layer.{i}" for i in range(n_layers - trainable_layers)),
        ),
        X_val=Xtr[val] if len(val) else None,
        y_val=ytr[val] if len(val) else None,
    )


def load_task(
    data: str,
    *,
    model: str | None = None,
    seed: int = 0,
    data_root: str | os.PathLike | None = None,
    n_train: int | None = None,
    max_length: int = 64,
    trainable_layers: int | None = None,
) -> Task:
    """A pretrained model with a fresh head and its private data (see the module notes).

    Parameters
    ----------
    data, model
        ``bbc`` (``minilm-l6``), ``digits`` (``mlp`` or ``cnn-small``) or ``fashion-mnist``
        (``cnn-small``); ``model`` None picks the data set's default.
    seed
        Draws the private training examples and the head's initialisation.
    data_root
        The Fashion-MNIST folder (otherwise ``$FASHION_MNIST_DIR`` or the Debian path).
    n_train
        Private training examples (bbc: 1,000 by default; fashion-mnist: 5,000); the digits
        tasks use their fixed 60% split.
    max_length
        Tokens per article (bbc).
    trainable_layers
        bbc: how many of MiniLM's 6 transformer layers train, counted from the top (2 by
        default, the benchmark's setting: DP-SGD through all 6 takes 2-3 times longer on a
        CPU); the layers below stay frozen for every method.
    """
    if data not in DATASETS:
        raise LabcoreError(f"unknown data {data!r}; known: {', '.join(DATASETS)}")
    model = model or DEFAULT_MODEL[data]
    if model not in MODELS:
        raise LabcoreError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    if (data, model) not in VALID:
        fits = ", ".join(m for d, m in sorted(VALID) if d == data)
        raise LabcoreError(f"model {model!r} does not go with data {data!r} (use: {fits})")
    if data == "bbc":
        layers = 2 if trainable_layers is None else trainable_layers
        return _bbc(seed, 1000 if n_train is None else n_train, max_length, layers)
    if data == "fashion-mnist":
        return _fashion(seed, data_root, 5000 if n_train is None else n_train)
    return _digits(model, seed)
