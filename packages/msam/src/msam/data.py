"""Data sets for training and the benchmarks, all offline.

``fashion-mnist``
    Zalando's Fashion-MNIST (60,000 train / 10,000 test, 28×28 grey, 10 classes, MIT) read
    from the original gzipped IDX files. Point ``root`` at a folder holding
    ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``
    and ``t10k-labels-idx1-ubyte.gz``; by default ``$FASHION_MNIST_DIR`` or
    ``/usr/share/datasets/fashion-mnist`` (Debian/Ubuntu: ``apt install dataset-fashion-mnist``).
``digits``
    scikit-learn's 8×8 handwritten digits (1,797 images), split 80/20, stratified, with a
    fixed seed.
``bbc``
    BBC News topics (5 classes, ``labcore.data.load_topics``), tokenized for MiniLM.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labcore import LabcoreError

DATASETS = ("fashion-mnist", "digits", "bbc")
FASHION_MNIST_DEFAULT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    """Train and test tensors. Images are float32 (N, C, H, W), normalised with the train
    split's mean and standard deviation; text inputs are dicts of token tensors."""

    name: str
    train_x: Any
    train_y: torch.Tensor
    test_x: Any
    test_y: torch.Tensor
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1]) if isinstance(self.train_x, torch.Tensor) else 0


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not), the format of the MNIST family.

    Examples
    --------
    >>> import gzip, struct, tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x-idx2-ubyte.gz"
    >>> p.write_bytes(gzip.compress(struct.pack(">BBBBII", 0, 0, 8, 2, 2, 3) + bytes(range(6))))
    40
    >>> read_idx(p)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    path = Path(path)
    if not path.is_file():
        raise LabcoreError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise LabcoreError(f"cannot read IDX file {path}: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise LabcoreError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LabcoreError(f"{path} is truncated (header)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise LabcoreError(
            f"{path} holds {len(raw) - header} data bytes, expected {count * dtype.itemsize} "
            f"for shape {shape}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def fashion_mnist_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("FASHION_MNIST_DIR")
    return Path(env).expanduser() if env else FASHION_MNIST_DEFAULT


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise LabcoreError(
        f"Fashion-MNIST file {stem}.gz not found in {root} (apt install dataset-fashion-mnist, "
        "or pass the folder with the four original .gz files)"
    )


def _normalise(train: np.ndarray, test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    tr = torch.from_numpy(train.astype(np.float32))
    te = torch.from_numpy(test.astype(np.float32))
    mean, std = tr.mean(), tr.std()
    return (tr - mean) / std, (te - mean) / std


def load_fashion_mnist(
    root: str | os.PathLike | None = None, *, train_subset: int | None = None, seed: int = 0
) -> Dataset:
    """Fashion-MNIST as tensors; ``train_subset`` keeps a seeded, class-stratified subset of
    the training images (the test set is always whole)."""
    folder = fashion_mnist_root(root)
    if not folder.is_dir():
        raise LabcoreError(
            f"Fashion-MNIST folder not found: {folder} (apt install dataset-fashion-mnist, set "
            "FASHION_MNIST_DIR, or pass the folder)"
        )
    xs = {s: read_idx(_find(folder, f"{s}-images-idx3-ubyte")) for s in ("train", "t10k")}
    ys = {s: read_idx(_find(folder, f"{s}-labels-idx1-ubyte")) for s in ("train", "t10k")}
    for s in xs:
        if xs[s].ndim != 3 or len(xs[s]) != len(ys[s]):
            raise LabcoreError(f"Fashion-MNIST {s} images and labels do not match in {folder}")
    train_x, train_y = xs["train"], ys["train"]
    if train_subset is not None:
        keep = _stratified_subset(train_y, train_subset, seed)
        train_x, train_y = train_x[keep], train_y[keep]
    tr, te = _normalise(train_x[:, None], xs["t10k"][:, None])
    return Dataset(
        "fashion-mnist",
        tr,
        torch.from_numpy(train_y.astype(np.int64)),
        te,
        torch.from_numpy(ys["t10k"].astype(np.int64)),
        FASHION_MNIST_CLASSES,
    )


def _stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    if not 0 < size <= len(labels):
        raise LabcoreError(f"train_subset must lie in 1..{len(labels)}, got {size}")
    from sklearn.model_selection import train_test_split

    if size == len(labels):
        return np.arange(len(labels))
    keep, _ = train_test_split(
        np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed
    )
    return np.sort(keep)


def load_digits_dataset() -> Dataset:
    """scikit-learn's digits, 80/20 stratified split (fixed seed 0), as 1×8×8 images."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32)[:, None]
    xtr, xte, ytr, yte = train_test_split(
        x, d.target, test_size=0.2, stratify=d.target, random_state=0
    )
    tr, te = _normalise(xtr, xte)
    return Dataset(
        "digits",
        tr,
        torch.from_numpy(ytr.astype(np.int64)),
        te,
        torch.from_numpy(yte.astype(np.int64)),
        tuple(str(c) for c in range(10)),
    )


def load_bbc_dataset(tokenizer: Any, *, max_length: int = 128) -> Dataset:
    """BBC News topics tokenized (truncated/padded to ``max_length`` tokens)."""
    from labcore.data import load_topics

    topics = load_topics("bbc")

    def encode(texts: tuple[str, ...]) -> dict[str, torch.Tensor]:
        enc = tokenizer(
            list(texts),
            truncation=True,
            max_length=max_length,
            padding="max_length",
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    return Dataset(
        "bbc",
        encode(topics.train),
        torch.tensor(topics.train_labels, dtype=torch.int64),
        encode(topics.test),
        torch.tensor(topics.test_labels, dtype=torch.int64),
        topics.topics,
    )


def index_batch(x: Any, idx: torch.Tensor) -> Any:
    """Rows ``idx`` of a tensor or of a dict of tensors."""
    if isinstance(x, dict):
        return {k: v[idx] for k, v in x.items()}
    return x[idx]


def num_examples(x: Any) -> int:
    return int(next(iter(x.values())).shape[0]) if isinstance(x, dict) else int(x.shape[0])
