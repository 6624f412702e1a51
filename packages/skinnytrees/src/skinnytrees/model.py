"""The soft tree ensemble and the group-l0 proximal step (Ibrahim, Behdin and Mazumder 2023).

All split nodes of all trees read the input through one weight matrix, the *kernel* W of shape
(n_features, n_trees · (2^depth − 1)): column c is the oblique hyperplane of one split node,
and row j is every weight that reads feature j. A feature is selected when its row is not
zero, so the group-l0 penalty λ Σ_j 1[‖W_j‖ > 0] prices features, not weights.
"""

from __future__ import annotations

import math

import torch


class SoftTreeEnsemble(torch.nn.Module):
    """T soft decision trees of depth d whose outputs add up (logits or a regression value).

    Node i of a tree routes a sample to its left child with probability
    s_i(x) = sigmoid(w_iᵀx + b_i) and to its right child with 1 − s_i(x); a leaf's probability
    is the product along its path, so the leaf probabilities of a tree sum to 1. The tree's
    output is Σ_leaves P(leaf | x) · leaf value, and the ensemble's is the sum over trees.

    Parameters
    ----------
    n_features, n_outputs : int
        Input width and output width (classes for a classifier, 1 for a regressor).
    n_trees, depth : int
        T and d; each tree has 2^d − 1 split nodes and 2^d leaves.
    generator : torch.Generator, optional
        Source of the initial weights (Glorot uniform, as Keras' Dense default; biases zero).
    dtype : torch.dtype

    Examples
    --------
    >>> import torch
    >>> m = SoftTreeEnsemble(5, 3, n_trees=2, depth=2, generator=torch.Generator().manual_seed(0))
    >>> m(torch.zeros(4, 5)).shape, tuple(m.kernel.shape)
    (torch.Size([4, 3]), (5, 6))
    """

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        *,
        n_trees: int = 20,
        depth: int = 4,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.n_features, self.n_outputs = int(n_features), int(n_outputs)
        self.n_trees, self.depth = int(n_trees), int(depth)
        n_nodes = self.n_trees * (2**self.depth - 1)
        n_leaves = 2**self.depth
        self.kernel = torch.nn.Parameter(_glorot((self.n_features, n_nodes), generator, dtype))
        self.bias = torch.nn.Parameter(torch.zeros(n_nodes, dtype=dtype))
        leaves = _glorot((self.n_trees * n_leaves, self.n_outputs), generator, dtype)
        self.leaves = torch.nn.Parameter(leaves.reshape(self.n_trees, n_leaves, self.n_outputs))

    @property
    def n_nodes(self) -> int:
        """Split nodes per tree (2^d − 1)."""
        return 2**self.depth - 1

    def leaf_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """P(leaf | x) of shape (n_samples, n_trees, 2^depth); each tree's row sums to 1.

        Nodes are numbered breadth first (node k's children are 2k + 1 and 2k + 2), leaves left
        to right.
        """
        routing = torch.sigmoid(x @ self.kernel + self.bias)
        routing = routing.reshape(x.shape[0], self.n_trees, self.n_nodes)
        prob = x.new_ones(x.shape[0], self.n_trees, 1)
        for level in range(self.depth):
            s = routing[:, :, 2**level - 1 : 2 ** (level + 1) - 1]
            # Child 2k goes left (s), 2k + 1 right (1 − s): interleave along the last axis.
            prob = torch.stack((prob * s, prob * (1.0 - s)), dim=-1).reshape(
                x.shape[0], self.n_trees, 2 ** (level + 1)
            )
        return prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ntl,tlk->nk", self.leaf_probabilities(x), self.leaves)

    def feature_norms(self) -> torch.Tensor:
        """‖W_j‖₂ for every feature j (its row of the kernel)."""
        return torch.linalg.vector_norm(self.kernel.detach(), dim=1)

    def restricted(self, features: torch.Tensor) -> SoftTreeEnsemble:
        """The same function on the input columns ``features`` only (the rows of the kernel
        that are zero elsewhere are dropped): the compact model used for fast inference."""
        compact = SoftTreeEnsemble.__new__(SoftTreeEnsemble)
        torch.nn.Module.__init__(compact)
        compact.n_features, compact.n_outputs = len(features), self.n_outputs
        compact.n_trees, compact.depth = self.n_trees, self.depth
        compact.kernel = torch.nn.Parameter(self.kernel.detach()[features].clone())
        compact.bias = torch.nn.Parameter(self.bias.detach().clone())
        compact.leaves = torch.nn.Parameter(self.leaves.detach().clone())
        return compact


def _glorot(shape: tuple[int, int], generator, dtype) -> torch.Tensor:
    limit = math.sqrt(6.0 / (shape[0] + shape[1]))
    u = torch.rand(shape, generator=generator, dtype=dtype)
    return (2.0 * u - 1.0) * limit


def annealing(step: int, tau: float | None) -> float:
    """The dense-to-sparse schedule s(t) = 1 − exp(−τ t) (1 without annealing, τ = None).

    >>> round(annealing(100, 0.01), 4), annealing(5, None)
    (0.6321, 1.0)
    """
    if tau is None:
        return 1.0
    return 1.0 - math.exp(-tau * step)


def prox_threshold(*, learning_rate: float, l0: float, schedule: float) -> float:
    """The row-norm threshold sqrt(2 · lr · λ · s(t)) of the group-l0 proximal step.

    The proximal map of lr · λ · s · 1[‖w‖ > 0] keeps w when ½‖w‖² > lr · λ · s and zeroes it
    otherwise. The threshold holds for a plain gradient step of size lr (the paper's SGD);
    with another optimiser the step is only a heuristic.
    """
    return math.sqrt(2.0 * learning_rate * l0 * schedule)


@torch.no_grad()
def prox_group_l0_(kernel: torch.Tensor, threshold: float) -> torch.Tensor:
    """Hard-threshold the rows of ``kernel`` in place: rows with ‖W_j‖₂ ≤ threshold become
    exactly zero. Returns the boolean mask of the rows kept.

    >>> import torch
    >>> W = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 1.0]])
    >>> prox_group_l0_(W, 1.0).tolist(), W[1].tolist()
    ([True, False, False], [0.0, 0.0])
    """
    keep = torch.linalg.vector_norm(kernel, dim=1) > threshold
    kernel[~keep] = 0.0
    return keep
