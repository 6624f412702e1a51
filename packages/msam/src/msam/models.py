"""Models for the benchmarks: a small CNN, small and ResNet-18-sized ResNets, and MiniLM with a
classification head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from labcore import LabcoreError

IMAGE_MODELS = ("cnn-small", "resnet-small", "resnet18")
TEXT_MODELS = ("minilm",)
MODELS = IMAGE_MODELS + TEXT_MODELS
NORMS = ("batch", "group", "none")
# BatchNorm is the standard choice for ResNets; the CNN defaults to GroupNorm so that both
# execution modes (vmap cannot update BatchNorm statistics) run on it.
DEFAULT_NORM = {"cnn-small": "group", "resnet-small": "batch", "resnet18": "batch"}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


class SmallCNN(nn.Module):
    """conv3×3(w)–norm–ReLU–maxpool–conv3×3(2w)–norm–ReLU–maxpool–conv3×3(2w)–norm–ReLU–
    global average pool–linear. About 56k parameters at width 32."""

    def __init__(self, in_channels: int, num_classes: int, *, width: int = 32, norm: str = "group"):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=norm == "none"),
            _norm(norm, w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=norm == "none"),
            _norm(norm, 2 * w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=norm == "none"),
            _norm(norm, 2 * w),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.n1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.n2 = _norm(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _norm(norm, cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.n1(self.conv1(x)))
        return torch.relu(self.n2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-style ResNet (3×3 stem, no stem pooling) of basic blocks."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        widths: tuple[int, ...],
        blocks: tuple[int, ...],
        norm: str = "batch",
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            _norm(norm, widths[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        cin = widths[0]
        for i, (w, b) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(b):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1, norm))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


class EncoderClassifier(nn.Module):
    """A transformer encoder, mean pooling over the attention mask, dropout and a linear head.

    ``forward`` takes a dict with ``input_ids`` and ``attention_mask``.
    """

    def __init__(self, encoder: nn.Module, hidden: int, num_classes: int, *, dropout: float = 0.1):
        super().__init__()
        if getattr(encoder, "pooler", None) is not None:
            # BERT's pooler is not used (mean pooling instead): drop it, so that no trained
            # parameter is left without a gradient.
            encoder.pooler = None
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = inputs["attention_mask"]
        hidden = self.encoder(input_ids=inputs["input_ids"], attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.head(self.dropout(pooled))


def load_minilm(num_classes: int) -> tuple[EncoderClassifier, Any]:
    """MiniLM-L6 (offline, from ``labcore.load_sentence_encoder``) with a fresh head, and its
    tokenizer."""
    from labcore import load_sentence_encoder

    st = load_sentence_encoder("minilm-l6", device="cpu")
    transformer = st[0]
    encoder = transformer.auto_model
    # Eager attention: the Hessian measures need double backward, which the fused
    # scaled-dot-product kernels do not all provide.
    if hasattr(encoder, "set_attn_implementation"):
        encoder.set_attn_implementation("eager")
    tokenizer = transformer.tokenizer
    return EncoderClassifier(encoder, encoder.config.hidden_size, num_classes), tokenizer


def build_model(
    name: str, *, in_channels: int = 1, num_classes: int = 10, norm: str | None = None
) -> nn.Module:
    """An image model by name: ``cnn-small``, ``resnet-small`` (3 stages of 16/32/64 channels,
    one block each, about 80k parameters) or ``resnet18`` (CIFAR-style ResNet-18, 11M)."""
    if name not in IMAGE_MODELS:
        raise LabcoreError(f"unknown image model {name!r}; choose from {', '.join(IMAGE_MODELS)}")
    norm = norm or DEFAULT_NORM[name]
    if norm not in NORMS:
        raise LabcoreError(f"unknown norm {norm!r}; choose from {', '.join(NORMS)}")
    if name == "cnn-small":
        return SmallCNN(in_channels, num_classes, norm=norm)
    if name == "resnet-small":
        return ResNet(in_channels, num_classes, widths=(16, 32, 64), blocks=(1, 1, 1), norm=norm)
    return ResNet(
        in_channels, num_classes, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), norm=norm
    )
