import os

import torch

# Under pytest-xdist every worker is its own process: one intra-op thread each keeps the
# workers from oversubscribing the cores (OpenMP threads spinning against each other make
# small convolutions many times slower).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
