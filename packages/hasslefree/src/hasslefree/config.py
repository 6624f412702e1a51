"""HASSLE-free and OATS configurations, shared by the Python API, the layerwise plugins and
the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from layerwise.sparsity import NM, normalize_sparsity_fields

from labcore import LabcoreError

SPARSE_SOLVERS = ("sparsegpt", "alps")
LOWRANK_STEPS = ("closed-form", "adam")
SVD_KINDS = ("randomized", "exact")


DEFAULT_RANK = 32


def _check_budget(config: object) -> None:
    """Shared checks of ``rank`` / ``compression`` (at most one is given; neither: rank 32)."""
    rank, compression = config.rank, config.compression
    if rank is not None and compression is not None:
        raise LabcoreError("give one of rank (per layer) and compression (share removed), not both")
    if rank is None and compression is None:
        object.__setattr__(config, "rank", DEFAULT_RANK)
        rank = DEFAULT_RANK
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 1):
        raise LabcoreError(f"rank must be a positive integer, got {rank!r}")
    if compression is not None:
        kept_by_sparse = 1.0 - config.sparsity
        if not 0.0 <= compression < 1.0 - kept_by_sparse:
            raise LabcoreError(
                f"compression {compression!r} leaves no room for the low-rank part: with "
                f"{config.nm or config.sparsity} the sparse part alone keeps "
                f"{kept_by_sparse:.3g} of the weights, so compression must lie in "
                f"[0, {1.0 - kept_by_sparse:.3g})"
            )


@dataclass(frozen=True)
class HassleFreeConfig:
    """Options of HASSLE-free (Makni, Behdin et al., CPAL 2025): W ≈ S + L per layer.

    Parameters
    ----------
    nm
        ``"2:4"`` etc.: N weights of S kept in every M consecutive inputs of each row (default
        2:4, the paper's headline). ``None``: unstructured, ``sparsity`` of the layer.
    sparsity
        Share of S's weights set to zero (one threshold over the layer for ALPS, SparseGPT's
        per-block share); ignored when ``nm`` is given.
    rank
        Rank of L in every layer (32 when neither it nor ``compression`` is given).
    compression
        Share of each layer's weights removed by S + L together; the rank per layer is then
        ``floor((keep - N/M) · out · in / (out + in))`` with ``keep = 1 - compression`` (the
        authors' ``run_llama.py``).
    sparse_solver
        The S-step: ``"sparsegpt"`` or ``"alps"`` (ADMM; the better layer objective, slower).
    lowrank_step
        The L-step: ``"closed-form"`` (reduced-rank regression through the eigenbasis of
        XᵀX: the exact minimiser for a fixed S) or ``"adam"`` (the original code's gradient
        steps in Jacobi-scaled coordinates, for comparison).
    rounds
        Alternations of S-step and L-step (the paper uses 80 on GPUs; 5 keep a SmolLM2-135M
        run to a few minutes on 2 CPU cores and take most of the gain of 20).
    tol
        Early stop once a round lowers the objective by less than this share.
    refit
        After each S-step, refit S's kept weights to the target by (Jacobi-preconditioned)
        conjugate gradient, ``refit_iters`` steps warm-started from the solver's answer; when
        the solver's support is worse than the current one, the current support refitted to
        the new target is taken instead (an exact S-step would be at least as good as both).
    solver_patience
        Once the solver's support has lost this many rounds in a row, later rounds keep the
        support and only refit it (the solver wins the first rounds, then stops winning; this
        saves its cost in the rest).
    damp, diag_damp
        H ← H + diag_damp·Diag(H) + damp·mean(diag H)·I, the objective every step uses (the
        authors' scripts: 0.005 and 0.005).
    svd
        ``"randomized"`` (subspace iteration, ``svd_iters`` power steps) or ``"exact"``.
    alps_rho, alps_max_iter
        ALPS S-step: initial ρ of round t is ``alps_rho · (5t + 1)`` and the iteration cap,
        as in the authors' code.
    adam_steps, adam_lr
        Adam L-step: steps per round and the initial learning rate (``adam_lr / (t + 10)`` in
        round t, the authors' schedule).
    seed
        Seeds the randomized SVD and the Adam initialisation.
    """

    nm: NM | str | None = "2:4"
    sparsity: float = 0.5
    rank: int | None = None
    compression: float | None = None
    sparse_solver: str = "sparsegpt"
    lowrank_step: str = "closed-form"
    rounds: int = 5
    tol: float = 1e-3
    refit: bool = True
    refit_iters: int = 3
    solver_patience: int = 1
    damp: float = 0.005
    diag_damp: float = 0.005
    svd: str = "randomized"
    svd_iters: int = 4
    alps_rho: float = 0.1
    alps_max_iter: int = 200
    adam_steps: int = 50
    adam_lr: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        normalize_sparsity_fields(self)
        _check_budget(self)
        if self.sparse_solver not in SPARSE_SOLVERS:
            raise LabcoreError(
                f"sparse_solver must be one of {SPARSE_SOLVERS}, got {self.sparse_solver!r}"
            )
        if self.lowrank_step not in LOWRANK_STEPS:
            raise LabcoreError(
                f"lowrank_step must be one of {LOWRANK_STEPS}, got {self.lowrank_step!r}"
            )
        if self.svd not in SVD_KINDS:
            raise LabcoreError(f"svd must be one of {SVD_KINDS}, got {self.svd!r}")
        for name in (
            "rounds",
            "refit_iters",
            "solver_patience",
            "svd_iters",
            "alps_max_iter",
            "adam_steps",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise LabcoreError(f"{name} must be a positive integer, got {value!r}")
        if self.tol < 0 or self.damp < 0 or self.diag_damp < 0:
            raise LabcoreError("tol, damp and diag_damp must be non-negative")
        if self.alps_rho <= 0 or self.adam_lr <= 0:
            raise LabcoreError("alps_rho and adam_lr must be positive")


@dataclass(frozen=True)
class OATSConfig:
    """Options of OATS (Zhang and Papyan, ICLR 2025), the diagonal-scaling baseline.

    W is scaled column-wise by D = sqrt(diag XᵀX) (Wanda's statistic) and split as DW ≈ S + L
    by alternating a truncated SVD of DW - S with a hard threshold of DW - L (N:M, or the same
    count per output row), ``iterations`` times; both parts are then scaled back by D⁻¹. This
    solves the diagonal relaxation of the layer objective that HASSLE-free solves exactly.
    ``nm``, ``sparsity``, ``rank`` and ``compression`` as in :class:`HassleFreeConfig`.
    """

    nm: NM | str | None = "2:4"
    sparsity: float = 0.5
    rank: int | None = None
    compression: float | None = None
    iterations: int = 80
    svd: str = "randomized"
    svd_iters: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        normalize_sparsity_fields(self)
        _check_budget(self)
        if self.svd not in SVD_KINDS:
            raise LabcoreError(f"svd must be one of {SVD_KINDS}, got {self.svd!r}")
        for name in ("iterations", "svd_iters"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise LabcoreError(f"{name} must be a positive integer, got {value!r}")
