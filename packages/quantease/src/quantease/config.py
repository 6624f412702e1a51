"""QuantEase configuration, shared by the Python API, the layerwise plugin and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from layerwise.quant import QuantSpec

from labcore import LabcoreError

INITS = ("none", "rtn", "gptq")
OUTLIER_STRUCTURES = ("unstructured", "column")
BACKENDS = ("auto", "numba", "torch")

#: Default shrinkage of Σ towards its diagonal (``QuantEaseConfig.damp``): Σ + 1 · Diag(Σ), i.e.
#: the estimated input correlations halved. Chosen on held-out *training* text, never the test
#: split (bench/damp_layers.py): the lowest held-out layer error of {0.03, 0.1, 0.3, 1, 3} with
#: 4,096 calibration tokens and tied lowest (with 0.3) with 32,768.
DEFAULT_DAMP = 1.0


@dataclass(frozen=True)
class QuantEaseConfig:
    """Options of QuantEase (Behdin et al., 2023).

    Parameters
    ----------
    bits, sym, group_size
        The grid: 2-8 bits, asymmetric min/max per output channel by default. The grid comes
        from the original weights and is never refitted (as in the paper's code).
    sweeps
        Coordinate-descent passes over all input columns (default 30). With the
        outlier-aware variant, one sweep plus one hard-thresholding step per pass.
    act_order
        Visit columns by decreasing Σ_jj instead of the natural order.
    relax_every
        ``None`` (default): every sweep rounds, so the objective never increases after the
        first sweep. ``3`` reproduces the official code's hidden heuristic: sweeps 1, 4, 7, ...
        (0-based, except the last five) are unrounded least-squares sweeps.
    init
        Starting point: ``"none"`` (the original weights; the first sweep rounds them column
        by column with error feedback), ``"rtn"``, or ``"gptq"`` (GPTQ's solution and grid,
        then CD against the *original* weights; the published code's GPTQ+CD targets the
        already-quantized weights and so changes nothing).
    outlier_fraction
        Share of weights kept in full precision (0 turns the variant off). ``0.01`` keeps 1%
        of the entries (unstructured) or 1% of the input columns (``outlier_structure="column"``).
    outlier_structure
        ``"unstructured"`` (any entries) or ``"column"`` (whole input columns).
    iht_step
        α in the hard-thresholding step size η = α / (2 λ_max(Σ)); α ≤ 2 keeps the step a
        descent step.
    block_size
        Columns per block: in-block updates are rank-1, the rest one matrix product per block.
    backend
        ``"numba"`` (compiled in-block loop, CPU), ``"torch"`` (any device) or ``"auto"``
        (numba on CPU when installed, else torch).
    percdamp
        Damping of the GPTQ initialisation only (QuantEase itself needs no inverse).
    damp
        Shrinkage of the input statistic towards its diagonal: the coordinate updates, the
        outlier step and the objective use Σ + damp · Diag(Σ) instead of Σ (the estimated
        correlations shrink by 1 / (1 + damp); every channel keeps its scale). A small
        calibration set (a few thousand tokens for a layer of 576 or 1536 inputs) estimates
        the correlations poorly and undamped coordinate descent fits that noise. Default
        ``DEFAULT_DAMP``, chosen on held-out training text (see the README); 0 is the paper's
        undamped objective.
    """

    bits: int = 4
    sym: bool = False
    group_size: int | None = None
    sweeps: int = 30
    act_order: bool = False
    relax_every: int | None = None
    init: str = "none"
    outlier_fraction: float = 0.0
    outlier_structure: str = "unstructured"
    iht_step: float = 1.0
    block_size: int = 128
    backend: str = "auto"
    percdamp: float = 0.01
    damp: float = DEFAULT_DAMP

    def __post_init__(self) -> None:
        QuantSpec(self.bits, self.sym, self.group_size)  # validates the grid options
        if not isinstance(self.sweeps, int) or self.sweeps < 1:
            raise LabcoreError(f"sweeps must be a positive integer, got {self.sweeps!r}")
        if self.relax_every is not None and (
            not isinstance(self.relax_every, int) or self.relax_every < 2
        ):
            raise LabcoreError(
                f"relax_every must be None or an integer >= 2, got {self.relax_every!r}"
            )
        if self.init not in INITS:
            raise LabcoreError(f"init must be one of {INITS}, got {self.init!r}")
        if not 0.0 <= self.outlier_fraction < 1.0:
            raise LabcoreError(f"outlier_fraction must be in [0, 1), got {self.outlier_fraction!r}")
        if self.outlier_structure not in OUTLIER_STRUCTURES:
            raise LabcoreError(
                f"outlier_structure must be one of {OUTLIER_STRUCTURES}, got {self.outlier_structure!r}"
            )
        if not 0.0 < self.iht_step <= 2.0:
            raise LabcoreError(f"iht_step must be in (0, 2], got {self.iht_step!r}")
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise LabcoreError(f"block_size must be a positive integer, got {self.block_size!r}")
        if self.backend not in BACKENDS:
            raise LabcoreError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.percdamp < 0:
            raise LabcoreError(f"percdamp must be non-negative, got {self.percdamp!r}")
        if not isinstance(self.damp, int | float) or not 0 <= self.damp < float("inf"):
            raise LabcoreError(f"damp must be a finite number >= 0, got {self.damp!r}")
        if self.outlier_fraction > 0 and self.init == "gptq":
            raise LabcoreError(
                "init='gptq' cannot be combined with outliers (GPTQ has no outlier part)"
            )

    @property
    def spec(self) -> QuantSpec:
        return QuantSpec(self.bits, self.sym, self.group_size)
