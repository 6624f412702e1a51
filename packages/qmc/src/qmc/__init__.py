"""qmc: quantized matrix completion by bilinear factorization and the augmented Lagrangian
method (QMC-BIF; Esmaeili, Behdin, Al-E-Mohammad, Marvasti, arXiv 1810.03222).

A low-rank matrix X is seen only at a few entries, and there only as ordered levels (ratings
1–5, clicks): Y_ij is the bin of X_ij + noise. The estimator maximizes the ordinal
log-likelihood with a trace-norm penalty, written through X = UVᵀ and solved by the augmented
Lagrangian method.

>>> from qmc import QuantizedMatrixCompletion
>>> from qmc.data import synthetic
>>> data = synthetic(m=40, n=30, rank=2, n_levels=5, observed=0.5, seed=0)
>>> model = QuantizedMatrixCompletion(rank=6, lam=1.0).fit(data.Y, mask=data.mask)
>>> model.transform().shape
(40, 30)
"""

from __future__ import annotations

from qmc.estimator import QuantizedMatrixCompletion
from qmc.likelihood import OrdinalLikelihood

__version__ = "0.1.0"

__all__ = ["OrdinalLikelihood", "QuantizedMatrixCompletion", "__version__"]
