"""Public → private fine-tuning tasks that install offline.

``digits``: scikit-learn's handwritten digits (8×8). An MLP (64-128-128) is pretrained
non-privately on the digits 0-4 (the public part); the private task is the digits 5-9, with a
fresh head, 60% of them for private training and the rest for testing (split by seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from labcore.errors import LabcoreError

TASKS = ("digits",)


@dataclass
class Task:
    name: str
    model: nn.Module  # pretrained on the public part, with a fresh head for the private one
    head: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    public_accuracy: float


def _mlp(n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, n_out)
    )


_PRETRAINED: dict = {}


def _pretrained_digits() -> tuple[dict, float]:
    """The public model: fixed (seed 0), trained once per process by full-batch Adam."""
    if "digits" not in _PRETRAINED:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = torch.tensor(X / 16.0, dtype=torch.float32)
        y = torch.tensor(y)
        public = y < 5
        torch.manual_seed(0)
        model = _mlp(5)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(200):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[public]), y[public]).backward()
            opt.step()
        with torch.no_grad():
            acc = float((model(X[public]).argmax(1) == y[public]).float().mean())
        _PRETRAINED["digits"] = ({k: v.clone() for k, v in model.state_dict().items()}, acc)
    return _PRETRAINED["digits"]


def load_task(name: str, *, seed: int = 0) -> Task:
    if name != "digits":
        raise LabcoreError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    from sklearn.datasets import load_digits

    state, public_acc = _pretrained_digits()
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    private = y >= 5
    Xp, yp = X[private], y[private] - 5
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(Xp), generator=g)
    cut = int(0.6 * len(Xp))
    model = _mlp(5)
    model.load_state_dict(state)
    torch.manual_seed(seed)
    model[4] = nn.Linear(128, 5)  # a fresh head for the private classes
    tr, te = perm[:cut], perm[cut:]
    return Task("digits", model, "4", Xp[tr], yp[tr], Xp[te], yp[te], public_acc)
