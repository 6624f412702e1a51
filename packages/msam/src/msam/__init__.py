"""msam: micro-batch sharpness-aware minimization (mSAM) and SAM for PyTorch.

>>> import torch
>>> from msam import MicroBatchSAM
>>> model = torch.nn.Linear(4, 3)
>>> opt = MicroBatchSAM(model.parameters(), torch.optim.SGD, rho=0.05, micro_batches=4, lr=0.1)
>>> batch = (torch.randn(16, 4), torch.randint(0, 3, (16,)))
>>> loss = opt.train_step(model, torch.nn.functional.cross_entropy, batch)

See :class:`MicroBatchSAM` for the algorithm and the BatchNorm rule, :mod:`msam.flatness` for
the Hessian eigenvalue, trace and m-sharpness, and :mod:`msam.train` for the configuration
the CLI uses.
"""

from __future__ import annotations

from msam.flatness import hessian_eigenvalue, hessian_trace, m_sharpness
from msam.optim import SAM, MicroBatchSAM, frozen_batchnorm_statistics, split_batch

__version__ = "0.1.0"

__all__ = [
    "SAM",
    "MicroBatchSAM",
    "__version__",
    "frozen_batchnorm_statistics",
    "hessian_eigenvalue",
    "hessian_trace",
    "m_sharpness",
    "split_batch",
]
