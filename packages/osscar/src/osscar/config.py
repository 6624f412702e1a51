"""OSSCAR configuration, shared by the Python API, the layerwise plugin and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from labcore import LabcoreError

HEAD_UNITS = ("kv-group", "query")
TARGETS = ("dense", "layer")
SUPPORTS = ("osscar", "magnitude", "magnitude-refit")
ALLOCATIONS = ("uniform", "obs")


@dataclass(frozen=True)
class OSSCARConfig:
    """Options of OSSCAR (Meng, Ibrahim, Behdin et al., ICML 2024).

    Parameters
    ----------
    mlp_sparsity
        Share of MLP neurons removed in every block (input columns of the down projection,
        with the matching gate/up rows), in [0, 1).
    head_sparsity
        Share of attention heads removed in every block, in [0, 1). Rounded to whole units
        (see ``head_unit``).
    head_unit
        ``"kv-group"`` (default): whole K/V head groups go (their query heads and the K/V
        rows), which also shrinks the KV cache. ``"query"``: the same number of query heads
        goes from every K/V group and all K/V heads stay (finer steps, no KV-cache saving).
    local_search
        Swap moves after backward elimination (the paper's method; the official code has them
        off by default).
    local_iterations
        Swap tries per layer (each try that does not lower the objective halves the swap size).
    neuron_swaps, head_swaps
        Groups exchanged per swap move (10 neurons, 5 heads in the paper's code), capped by
        the kept and removed counts.
    neurons_per_round, heads_per_round
        Groups removed per backward-elimination round (10 and 2 in the paper's code); 1 is
        the one-at-a-time OBS elimination of ZipLM.
    ridge
        λ in H = XᵀX + λ·mean(diag XᵀX)·I (1e-2 as in the paper's code).
    target
        ``"dense"``: reconstruct the dense model's layer outputs from the pruned model's
        inputs (the paper's "full sequence" variant, through the engine's cross statistic);
        ``"layer"``: reconstruct the layer's own dense output on the pruned inputs.
    support
        ``"osscar"`` (backward elimination, then local search), or the baselines
        ``"magnitude"`` (largest group norms, weights unchanged) and ``"magnitude-refit"``
        (the same support, weights refitted by least squares).
    allocation
        ``"uniform"`` (default): every block loses the same share, so the shrunk model has
        one shape per layer and loads with plain transformers. ``"obs"``: the same total, split
        across blocks by the OBS costs measured in a profiling pass (backward elimination on
        every layer of the unpruned model; the cheapest removals overall go first, no block
        keeps less than half of the uniform count); the model then has per-block shapes and
        loads with ``layerwise.load``. Applies to neurons and to whole K/V head groups
        (``head_unit="query"`` stays uniform). Only with ``support="osscar"``.
    """

    mlp_sparsity: float = 0.0
    head_sparsity: float = 0.0
    head_unit: str = "kv-group"
    local_search: bool = True
    local_iterations: int = 30
    neuron_swaps: int = 10
    head_swaps: int = 5
    neurons_per_round: int = 10
    heads_per_round: int = 2
    ridge: float = 1e-2
    target: str = "dense"
    support: str = "osscar"
    allocation: str = "uniform"

    def __post_init__(self) -> None:
        for name in ("mlp_sparsity", "head_sparsity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                raise LabcoreError(f"{name} must be in [0, 1), got {value!r}")
        if self.mlp_sparsity == 0 and self.head_sparsity == 0:
            raise LabcoreError("nothing to prune: set mlp_sparsity and/or head_sparsity above 0")
        if self.head_unit not in HEAD_UNITS:
            raise LabcoreError(f"head_unit must be one of {HEAD_UNITS}, got {self.head_unit!r}")
        if self.target not in TARGETS:
            raise LabcoreError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.support not in SUPPORTS:
            raise LabcoreError(f"support must be one of {SUPPORTS}, got {self.support!r}")
        if self.allocation not in ALLOCATIONS:
            raise LabcoreError(f"allocation must be one of {ALLOCATIONS}, got {self.allocation!r}")
        if self.allocation == "obs" and self.support != "osscar":
            raise LabcoreError("allocation='obs' plans with OSSCAR's costs: use support='osscar'")
        for name in (
            "local_iterations",
            "neuron_swaps",
            "head_swaps",
            "neurons_per_round",
            "heads_per_round",
        ):
            value = getattr(self, name)
            low = 0 if name == "local_iterations" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise LabcoreError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.ridge, int | float) or not 0 < self.ridge < float("inf"):
            raise LabcoreError(f"ridge must be a finite number > 0, got {self.ridge!r}")
