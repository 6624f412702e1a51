"""srf: transduction with matrix completion by minimizing a smoothed rank function.

Esmaeili, Behdin, Fakharian et al. (arXiv 1805.07561) predict the missing labels of a data
set and impute its missing features at once: labels are stacked beside the features, the
stacked matrix is assumed low rank, and its rank is minimized through the smoothed rank
function Σ(1 − exp(−σ²/2δ²)) with δ decreased gradually, subject to the observed entries.

>>> import numpy as np
>>> from srf import SRFCompletion
>>> rng = np.random.default_rng(0)
>>> M = rng.standard_normal((30, 2)) @ rng.standard_normal((2, 20))
>>> X = np.where(rng.random(M.shape) < 0.7, M, np.nan)
>>> SRFCompletion().fit_transform(X).shape
(30, 20)
"""

from __future__ import annotations

from srf.estimators import SRFCompletion, SRFTransductiveClassifier, SRFTransductiveRegressor
from srf.solver import smoothed_rank, srf_complete, srf_solve

__version__ = "0.1.0"

__all__ = [
    "SRFCompletion",
    "SRFTransductiveClassifier",
    "SRFTransductiveRegressor",
    "__version__",
    "smoothed_rank",
    "srf_complete",
    "srf_solve",
]
