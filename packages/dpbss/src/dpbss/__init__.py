"""Differentially private best subset selection by mixed-integer optimization.

>>> from dpbss import DPBestSubset
>>> from dpbss.data import make_synthetic
>>> d = make_synthetic(4000, 30, 3, seed=0)
>>> model = DPBestSubset(3, epsilon=4.0, random_state=0).fit(d.X, d.y)
>>> sorted(model.support_.tolist()) == sorted(d.support.tolist())
True
"""

from dpbss.estimator import DPBestSubset

__version__ = "0.1.0"
__all__ = ["DPBestSubset", "__version__"]
