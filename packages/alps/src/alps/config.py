"""ALPS configuration, shared by the Python API, the layerwise plugin and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from layerwise.sparsity import NM, normalize_sparsity_fields

from labcore import LabcoreError


@dataclass(frozen=True)
class ALPSConfig:
    """Options of ALPS (Meng, Behdin et al., NeurIPS 2024). Defaults are the authors' code's.

    Parameters
    ----------
    sparsity
        Share of the layer's weights set to zero, one threshold over the whole layer
        (layer-global top-k, as in the paper). Ignored when ``nm`` is given.
    nm
        ``"2:4"`` etc.: N weights kept in every M consecutive inputs of each row.
    per_row
        Keep the same count in every output row instead of a layer-global top-k.
    rho
        Initial ADMM penalty (scale-free: the problem is scaled to unit diagonal first).
    max_iter, update_iter, switch_iter
        Iteration cap; ρ is updated every ``update_iter`` iterations; after ``switch_iter``
        iterations the loop also stops once fewer than ``stop_fraction`` of the kept weights
        change support between checks.
    ridge
        Added to XᵀX as a fraction of its mean diagonal before scaling.
    cg_iters, cg_tol
        Conjugate-gradient refit on the final support (warm-started).
    rho_max
        Cap of ρ.
    """

    sparsity: float = 0.5
    nm: NM | str | None = None
    per_row: bool = False
    rho: float = 0.1
    max_iter: int = 300
    update_iter: int = 3
    switch_iter: int = 30
    stop_fraction: float = 3e-4
    ridge: float = 0.01
    cg_iters: int = 10
    cg_tol: float = 1e-4
    rho_max: float = 1e6

    def __post_init__(self) -> None:
        normalize_sparsity_fields(self)
        if self.rho <= 0 or self.rho_max < self.rho:
            raise LabcoreError(
                f"need 0 < rho <= rho_max, got rho={self.rho}, rho_max={self.rho_max}"
            )
        for name in ("max_iter", "update_iter"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise LabcoreError(f"{name} must be a positive integer, got {value!r}")
        if self.switch_iter < 0 or self.cg_iters < 0:
            raise LabcoreError("switch_iter and cg_iters must be non-negative")
        if self.ridge < 0 or self.cg_tol <= 0 or self.stop_fraction < 0:
            raise LabcoreError("ridge and stop_fraction must be >= 0 and cg_tol > 0")
        if self.per_row and self.nm is not None:
            raise LabcoreError("per_row and nm exclude each other (N:M is already per row)")
