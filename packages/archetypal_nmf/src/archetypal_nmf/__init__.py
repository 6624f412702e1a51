"""archetypal_nmf: sparse NMF with archetypal regularization (sparse archetypal analysis).

Behdin and Mazumder (arXiv 2104.03527; JMLR 2024) factor X (points × features) as X ≈ W H
with H ≥ 0 holding k archetypes with at most ℓ nonzeros in total, the rows of W on the
simplex, and an archetypal term λ‖H − W̃X‖² that keeps each archetype near the convex hull
of the data.

>>> from archetypal_nmf import SparseArchetypalNMF
>>> from archetypal_nmf.data import planted
>>> data = planted(m=30, k=3, n=10, density=0.5, noise=0.0, seed=0)
>>> model = SparseArchetypalNMF(n_components=3, n_nonzero=15, random_state=0)
>>> W = model.fit_transform(data.X)
>>> W.shape, model.components_.shape
((30, 3), (3, 10))
"""

from __future__ import annotations

from archetypal_nmf.estimator import SparseArchetypalNMF

__version__ = "0.1.0"

__all__ = ["SparseArchetypalNMF", "__version__"]
