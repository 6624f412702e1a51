"""samstats: the statistical study of SAM against gradient descent.

Behdin and Mazumder (2023, arXiv:2302.11836) study sharpness-aware minimization as an
estimator: in kernel regression and in a network with one hidden layer, SAM's early-stopped
solution can have smaller prediction error than gradient descent's, and is less sharp. This
package makes those experiments runnable, variable and checkable.

>>> from samstats import MercerProblem
>>> fit = MercerProblem(n=100, noise=0.5).sample(seed=0).regression()
>>> gd = fit.risk_path(fit.path("gd", n_steps=300).coefs).min()
>>> sam = fit.risk_path(fit.path("sam", rho=0.5, n_steps=300).coefs).min()
>>> bool(gd > 0 and sam > 0)
True
"""

from __future__ import annotations

from samstats.kernel import KernelPath, MercerData, MercerProblem, SpectralKernelRegression
from samstats.network import NetworkPath, TeacherData, TeacherProblem, train_network

__version__ = "0.1.0"

__all__ = [
    "KernelPath",
    "MercerData",
    "MercerProblem",
    "NetworkPath",
    "SpectralKernelRegression",
    "TeacherData",
    "TeacherProblem",
    "__version__",
    "train_network",
]
