"""The method plugin interface and the registry.

A method is a dataclass config plus a :class:`Method` subclass. The method declares

* ``statistics``: ``"full"`` (H = Σ w_t x_t x_tᵀ), ``"diag"`` (only its diagonal, as Wanda
  needs) or ``"none"`` (RTN, magnitude);
* ``cross_statistic``: also accumulate ``Σ w_t x_t x̄_tᵀ`` against the *dense* model's inputs
  x̄ (for methods that reconstruct the dense outputs from compressed inputs);
* ``grouping``: ``"sequential"`` (GPTQ's true-sequential order inside a block: q/k/v, o,
  gate/up, down; each group sees the inputs produced by the already-compressed earlier groups),
  ``"block"`` (all linear layers of a block from one pass) or ``"module"`` (the attention
  layers q/k/v/o together, then the MLP layers gate/up/down, each from one pass: for methods
  that decide a module's layers jointly);

and returns for each layer a :class:`LayerResult`: the new weight and, optionally, the integer
codes (quantization), ``keep_inputs`` (structured pruning: the input columns of the attention
output or MLP down projection that stay; the engine removes the coupled heads or neurons from
every projection of the block) and named ``extras`` (e.g. ``lowrank_u``/``lowrank_v``: the
layer then computes ``(weight + U V) x``).

Before the first block the engine calls :meth:`Method.prepare` with the
:class:`~layerwise.structure.ModelContext` (config, head geometry, number of blocks); each
group is compressed through :meth:`Method.compress_site`, which knows the block index and the
layers' full names (:class:`~layerwise.structure.Site`) and by default calls
:meth:`Method.compress_group`. Methods register with :func:`register`; methods in other
installed packages are found through the ``layerwise.methods`` entry-point group.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

import torch

from labcore import LabcoreError
from layerwise.quant import QuantizedWeight
from layerwise.structure import ModelContext, Site


@dataclass
class LayerStats:
    """Calibration statistics of one linear layer's inputs (float32, on the compute device).

    ``H`` is the raw weighted sum Σ w_t x_t x_tᵀ (not normalised: each method scales as it
    needs; layers that read the same input, such as q/k/v, share one object, so methods must
    not modify it in place), ``diag`` its diagonal, ``tokens`` the number of tokens with nonzero weight and
    ``weight_sum`` Σ w_t. ``cross`` is Σ w_t x_t x̄_tᵀ against the dense model's inputs when
    the method asked for it.
    """

    H: torch.Tensor | None
    diag: torch.Tensor
    tokens: int
    weight_sum: float
    cross: torch.Tensor | None = None


@dataclass
class LayerResult:
    """A method's answer for one layer.

    weight       the new weight [out, in] (for ``keep_inputs``: still full width; the removed
                 columns are dropped by the engine)
    quantized    integer codes, for quantization methods
    info         numbers for the report (damping used, iterations, ...)
    keep_inputs  structured pruning, only on the attention output projection (whole K/V head
                 groups, :func:`layerwise.structure.head_group_columns`) or the MLP down
                 projection (neurons): the input columns that stay
    extras       named tensors the engine keeps, saves and reloads; ``lowrank_u`` [out, r] and
                 ``lowrank_v`` [r, in] make the layer compute ``(weight + U V) x``
    """

    weight: torch.Tensor
    quantized: QuantizedWeight | None = None
    info: dict[str, Any] = field(default_factory=dict)
    keep_inputs: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class Method(ABC):
    """Base class of a layer-wise compression method."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    statistics: ClassVar[str] = "full"
    cross_statistic: ClassVar[bool] = False
    grouping: ClassVar[str] = "sequential"
    # "quantization", "sparsity", "structured", "sparse+lowrank" or "identity"
    kind: ClassVar[str] = "sparsity"

    def __init__(self, config: Any) -> None:
        if not isinstance(config, self.config_class):
            raise LabcoreError(
                f"{self.name} needs a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config

    #: The model being compressed, set by :meth:`prepare` (None before a run).
    context: ModelContext | None = None

    #: Run a profiling pass first: the engine compresses a copy of the model with
    #: ``profiling`` set (the method records what it needs and may return the weights
    #: unchanged; that copy is then dropped), calls :meth:`end_profile`, then runs the real
    #: pass. For methods that plan a global budget from every layer's statistics.
    profile_pass: bool = False
    profiling: bool = False

    def end_profile(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Called after the profiling pass (see ``profile_pass``)."""

    def prepare(self, context: ModelContext) -> None:
        """Called once before the first block; override to plan budgets across layers."""
        self.context = context

    def compress_site(
        self, site: Site, layers: dict[str, tuple[torch.Tensor, LayerStats]]
    ) -> dict[str, LayerResult]:
        """Compress one group of one block; ``site`` says which block and the full names.

        The default calls :meth:`compress_group`; override for per-block decisions."""
        return self.compress_group(layers)

    @abstractmethod
    def compress_layer(self, name: str, weight: torch.Tensor, stats: LayerStats) -> LayerResult:
        """Return the compressed weight for one layer. ``weight`` is a float32 copy [out, in]."""

    def compress_group(
        self, layers: dict[str, tuple[torch.Tensor, LayerStats]]
    ) -> dict[str, LayerResult]:
        """Compress the layers of one group; override for methods that couple layers.

        Each result's ``info["solve_s"]`` is the seconds its :meth:`compress_layer` took (the
        benches compare solvers per layer shape with it)."""
        results = {}
        for name, (w, s) in layers.items():
            start = time.perf_counter()
            result = self.compress_layer(name, w, s)
            result.info.setdefault("solve_s", round(time.perf_counter() - start, 5))
            results[name] = result
        return results

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, **dataclasses.asdict(self.config)}


_REGISTRY: dict[str, type[Method]] = {}
_ENTRY_POINTS_LOADED = False


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available by name (``layerwise run --method NAME``)."""
    if not getattr(cls, "name", None) or not dataclasses.is_dataclass(
        getattr(cls, "config_class", None)
    ):
        raise LabcoreError(f"{cls.__name__} needs a name and a dataclass config_class to register")
    _REGISTRY[cls.name] = cls
    return cls


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in entry_points(group="layerwise.methods"):
        ep.load()  # importing the module runs its @register decorators


def available_methods() -> list[str]:
    _load_entry_points()
    return sorted(_REGISTRY)


def get_method_class(name: str) -> type[Method]:
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LabcoreError(
            f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY))}"
        ) from None


def method_for_config(config: Any) -> Method:
    """Instantiate the registered method whose config class matches ``config``."""
    _load_entry_points()
    for cls in _REGISTRY.values():
        if type(config) is cls.config_class:
            return cls(config)
    raise LabcoreError(f"no registered method takes a {type(config).__name__}")
