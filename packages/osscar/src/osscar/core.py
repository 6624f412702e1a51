"""OSSCAR for one layer: choose which input groups to keep by combinatorial optimisation.

Notation (Meng et al., 2024): the layer computes ``y = W x`` with W [out, in]; B = Wᵀ [in, out].
The input columns are partitioned into groups (one attention head's ``head_dim`` columns of
the output projection, or one neuron's column of the MLP down projection). With
H = XᵀX + λ·mean(diag XᵀX)·I [in, in] and C = XᵀY [in, out] the layer-wise objective is

    f(B) = −⟨B, C⟩ + ½ ⟨B, H B⟩,

to be minimised over B whose nonzero rows lie in k groups. Y is the dense layer's output on
the same inputs (C = H Wᵀ: the ridge pulls towards the dense weights) or on the dense model's
inputs (C = (X_compressedᵀ X_dense) Wᵀ + λ·mean(diag)·Wᵀ, the "full sequence" target).
For a fixed support S the optimum is B_S = H_SS⁻¹ C_S with f = −½ ⟨B_S, C_S⟩.

* :func:`backward_elimination` (the paper's fast pruning): from all groups, remove in rounds
  the groups of least OBS cost ½⟨B_g, (H⁻¹)_gg⁻¹ B_g⟩, updating B and H⁻¹ exactly by Schur
  complements (B and H⁻¹ stay the optimum and inverse of the current support).
* :func:`local_search`: swap moves; drop the s groups of least OBS cost, add back the s groups
  of largest insertion gain ½⟨g, (H_II − bᵀH_S⁻¹b)⁻¹ g⟩ (bordered-inverse updates), keep the
  swap only when f falls, halve s otherwise.
* :func:`refit`: the exact least-squares solution on a support.

Everything runs in float64 on the device of the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from labcore import LabcoreError


@dataclass
class Support:
    """The state of a search: kept groups, the optimum B on them and the padded inverse.

    ``Hinv`` is (H_SS)⁻¹ scattered into an [in, in] matrix with zeros elsewhere; ``B`` is
    [in, out] with zero rows outside the support; ``f`` the objective at ``B``.
    """

    kept: torch.Tensor  # bool [n_groups]
    B: torch.Tensor
    Hinv: torch.Tensor
    f: float
    history: list[float] = field(default_factory=list)


def _columns(groups: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Column indices of the groups ``which`` (``groups`` is [n_groups, size])."""
    return groups[which].reshape(-1)


def objective(B: torch.Tensor, H: torch.Tensor, C: torch.Tensor) -> float:
    """f(B) = −⟨B, C⟩ + ½⟨B, H B⟩ in float64."""
    B = B.double()
    return float(-(B * C).sum() + 0.5 * (B * (H @ B)).sum())


def refit(H: torch.Tensor, C: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """The least-squares optimum on the support ``columns``: B_S = H_SS⁻¹ C_S, zero elsewhere."""
    B = torch.zeros_like(C)
    if columns.numel():
        L = torch.linalg.cholesky(H[columns][:, columns])
        B[columns] = torch.cholesky_solve(C[columns], L)
    return B


def _inverse(H: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """(H_SS)⁻¹ padded with zeros to [in, in]."""
    Hinv = torch.zeros_like(H)
    if columns.numel():
        Hinv[columns[:, None], columns[None, :]] = torch.cholesky_inverse(
            torch.linalg.cholesky(H[columns][:, columns])
        )
    return Hinv


def start(H: torch.Tensor, C: torch.Tensor, groups: torch.Tensor) -> Support:
    """The full support: every group kept, B = H⁻¹ C."""
    kept = torch.ones(groups.shape[0], dtype=torch.bool, device=H.device)
    cols = _columns(groups, kept)
    L = torch.linalg.cholesky(H[cols][:, cols])  # one factorisation for B and H⁻¹
    B = torch.zeros_like(C)
    B[cols] = torch.cholesky_solve(C[cols], L)
    Hinv = torch.zeros_like(H)
    Hinv[cols[:, None], cols[None, :]] = torch.cholesky_inverse(L)
    f = -0.5 * float((B * C).sum())
    return Support(kept, B, Hinv, f, [f])


def obs_costs(state: Support, groups: torch.Tensor) -> torch.Tensor:
    """½⟨B_g, (H⁻¹)_gg⁻¹ B_g⟩ per group: the rise of f when group g alone is removed (and the
    others refitted); +inf for groups already removed."""
    cost = torch.full((groups.shape[0],), float("inf"), dtype=state.B.dtype, device=state.B.device)
    idx = torch.nonzero(state.kept).squeeze(1)
    if idx.numel() == 0:
        return cost
    g = groups[idx]  # [m, size]
    Bg = state.B[g]  # [m, size, out]
    if groups.shape[1] == 1:
        d = state.Hinv[g[:, 0], g[:, 0]]
        cost[idx] = (Bg[:, 0, :] ** 2).sum(1) / (2 * d)
    else:
        Hgg = state.Hinv[g[:, :, None], g[:, None, :]]  # [m, size, size]
        sol = torch.linalg.solve(Hgg, Bg)
        cost[idx] = 0.5 * (Bg * sol).sum((1, 2))
    return cost


def remove_groups(state: Support, groups: torch.Tensor, which: torch.Tensor) -> None:
    """Remove the groups ``which`` from the support (exact OBS update of B, Schur downdate of
    the inverse: both stay the optimum and inverse on the smaller support)."""
    J = _columns(groups, which)
    HJJ = state.Hinv[J][:, J]
    HiJ = state.Hinv[:, J]
    L = torch.linalg.cholesky(HJJ)
    state.B.addmm_(HiJ, torch.cholesky_solve(state.B[J], L), alpha=-1)
    state.Hinv.addmm_(HiJ, torch.cholesky_solve(HiJ.T.contiguous(), L), alpha=-1)
    state.Hinv[J, :] = 0
    state.Hinv[:, J] = 0
    state.B[J] = 0
    state.kept[which] = False


def insertion_gains(
    state: Support, H: torch.Tensor, C: torch.Tensor, groups: torch.Tensor
) -> torch.Tensor:
    """½⟨g, S_c⁻¹ g⟩ per removed group I, with S_c = H_II − bᵀH_S⁻¹b and g = C_I − bᵀB_S (b =
    H[S, I]): the fall of f when group I alone is added back; −inf for kept groups."""
    gain = torch.full((groups.shape[0],), -float("inf"), dtype=H.dtype, device=H.device)
    idx = torch.nonzero(~state.kept).squeeze(1)
    if idx.numel() == 0:
        return gain
    cols = groups[idx].reshape(-1)
    S = _columns(groups, state.kept)
    b = H[S][:, cols]  # [|S|, m·size]
    HU = b.T @ (state.Hinv[S][:, S] @ b)  # bᵀ H_S⁻¹ b, only its diagonal blocks are used
    G = C[cols] - b.T @ state.B[S]  # [m·size, out]
    size = groups.shape[1]
    if size == 1:
        schur = H[cols, cols] - torch.diagonal(HU)
        gain[idx] = (G**2).sum(1) / (2 * schur.clamp_min(torch.finfo(H.dtype).tiny))
        return gain
    m = idx.numel()
    blocks = torch.arange(m, device=H.device)[:, None] * size + torch.arange(size, device=H.device)
    schur = (
        H[cols][:, cols][blocks[:, :, None], blocks[:, None, :]]
        - HU[blocks[:, :, None], blocks[:, None, :]]
    )
    Gb = G[blocks]  # [m, size, out]
    gain[idx] = 0.5 * (Gb * torch.linalg.solve(schur, Gb)).sum((1, 2))
    return gain


def add_groups(
    state: Support, H: torch.Tensor, C: torch.Tensor, groups: torch.Tensor, which: torch.Tensor
) -> None:
    """Add the groups ``which`` to the support (bordered-inverse update: B and the inverse
    become the optimum and inverse on the larger support)."""
    cols = _columns(groups, which)
    U = state.Hinv @ H[:, cols]  # [in, s]; zero on the added rows
    schur = H[cols][:, cols] - H[cols] @ U
    g = C[cols] - H[cols] @ state.B
    U[cols] -= torch.eye(cols.numel(), dtype=H.dtype, device=H.device)  # U − E_I
    L = torch.linalg.cholesky(schur)
    state.B -= U @ torch.cholesky_solve(g, L)
    state.Hinv += U @ torch.cholesky_solve(U.T, L)
    state.kept[which] = True


def _value(state: Support, C: torch.Tensor) -> float:
    return -0.5 * float((state.B * C).sum())


def _pick(
    scores: torch.Tensor,
    count: int,
    partition: torch.Tensor,
    quota: torch.Tensor | None,
    largest: bool,
) -> torch.Tensor:
    """The ``count`` best groups by ``scores``; with ``quota`` [n_partitions], at most
    quota[p] from partition p."""
    order = torch.argsort(scores, descending=largest)
    finite = torch.isfinite(scores[order])
    order = order[finite]
    if quota is None:
        return order[:count]
    left = quota.clone()
    chosen = []
    for i in order.tolist():
        p = int(partition[i])
        if left[p] > 0:
            chosen.append(i)
            left[p] -= 1
            if len(chosen) == count:
                break
    return torch.tensor(chosen, dtype=torch.long, device=scores.device)


def backward_elimination(
    H: torch.Tensor,
    C: torch.Tensor,
    groups: torch.Tensor,
    keep: int,
    *,
    per_round: int = 10,
    partition: torch.Tensor | None = None,
    keep_per_partition: int | None = None,
) -> Support:
    """Remove groups in rounds of ``per_round`` (least OBS cost first) until ``keep`` remain.

    With ``partition`` (a label per group) and ``keep_per_partition``, every partition keeps
    exactly that many groups (query heads within their K/V group)."""
    n = groups.shape[0]
    if not 0 < keep <= n:
        raise LabcoreError(f"keep must be in [1, {n}], got {keep}")
    state = start(H, C, groups)
    quota = None
    if partition is not None:
        counts = torch.bincount(partition)
        quota = counts - keep_per_partition
        if bool((quota < 0).any()):
            raise LabcoreError("keep_per_partition exceeds a partition's size")
    while int(state.kept.sum()) > keep:
        r = min(per_round, int(state.kept.sum()) - keep)
        which = _pick(obs_costs(state, groups), r, partition, quota, largest=False)
        if which.numel() == 0:
            raise LabcoreError("no removable group left (partition quotas inconsistent)")
        if quota is not None:
            quota -= torch.bincount(partition[which], minlength=quota.numel())
        remove_groups(state, groups, which)
        state.f = _value(state, C)
        state.history.append(state.f)
    return state


def local_search(
    state: Support,
    H: torch.Tensor,
    C: torch.Tensor,
    groups: torch.Tensor,
    *,
    iterations: int = 30,
    swaps: int = 10,
    partition: torch.Tensor | None = None,
) -> Support:
    """Swap moves from ``state`` (modified and returned): each try drops the ``swaps`` kept
    groups of least OBS cost and adds back as many removed groups of largest insertion gain
    (from the same partitions); it is kept only when f falls, otherwise ``swaps`` is halved
    and the search stops when it reaches zero. f never increases."""
    kept_n = int(state.kept.sum())
    swaps = min(swaps, kept_n, groups.shape[0] - kept_n)
    for _ in range(iterations):
        if swaps < 1:
            break
        trial = Support(state.kept.clone(), state.B.clone(), state.Hinv.clone(), state.f)
        drop = _pick(obs_costs(trial, groups), swaps, partition, None, largest=False)
        remove_groups(trial, groups, drop)
        quota = (
            None
            if partition is None
            else torch.bincount(partition[drop], minlength=int(partition.max()) + 1)
        )
        add = _pick(
            insertion_gains(trial, H, C, groups), drop.numel(), partition, quota, largest=True
        )
        add_groups(trial, H, C, groups, add)
        trial.f = _value(trial, C)
        if trial.f < state.f - 1e-12 * abs(state.f) and not torch.equal(trial.kept, state.kept):
            trial.history = [*state.history, trial.f]
            state = trial
        else:
            swaps //= 2
    return state


def magnitude_support(
    W: torch.Tensor,
    groups: torch.Tensor,
    keep: int,
    *,
    partition: torch.Tensor | None = None,
    keep_per_partition: int | None = None,
) -> torch.Tensor:
    """The baseline's support: the ``keep`` groups of largest column-group norm ||W[:, g]||
    (bool [n_groups])."""
    norms = W.double()[:, groups].pow(2).sum((0, 2))
    kept = torch.zeros(groups.shape[0], dtype=torch.bool, device=W.device)
    if partition is None:
        kept[torch.topk(norms, keep).indices] = True
        return kept
    for p in torch.unique(partition).tolist():
        members = torch.nonzero(partition == p).squeeze(1)
        kept[members[torch.topk(norms[members], keep_per_partition).indices]] = True
    return kept


def layer_problem(
    W: torch.Tensor, stats: Any, *, ridge: float, target: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, C) in float64 from a layer's weight [out, in] and its calibration statistics."""
    if stats is None or stats.H is None:
        raise LabcoreError("OSSCAR needs the full input statistic (statistics='full')")
    H = stats.H.double()
    lam = ridge * float(torch.diagonal(H).mean())
    if not lam > 0:
        raise LabcoreError("the layer's inputs are all zero on the calibration data")
    Wt = W.double().T
    if target == "dense":
        if stats.cross is None:
            raise LabcoreError("target='dense' needs the engine's cross statistic")
        C = stats.cross.double() @ Wt + lam * Wt
    else:
        C = H @ Wt + lam * Wt
    H = H + lam * torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    return H, C


def prune_layer(
    weight: torch.Tensor,
    stats: Any,
    config: Any,
    *,
    groups: torch.Tensor,
    keep: int,
    partition: torch.Tensor | None,
    keep_per_partition: int | None,
    swaps: int,
    per_round: int,
    unit: str,
    name: str = "",
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """One layer: (new weight [out, in] float32, kept input columns, info)."""
    device = weight.device
    groups = groups.to(device)
    partition = None if partition is None else partition.to(device)
    if groups.max() >= weight.shape[1]:
        raise LabcoreError(
            f"{name}: the groups reach column {int(groups.max())} but the layer has "
            f"{weight.shape[1]} inputs"
        )
    info: dict[str, Any] = {f"{unit}_kept": keep, f"{unit}_removed": groups.shape[0] - keep}
    if config.support == "magnitude":
        kept = magnitude_support(
            weight, groups, keep, partition=partition, keep_per_partition=keep_per_partition
        )
        return weight, torch.sort(_columns(groups, kept)).values, info
    H, C = layer_problem(weight, stats, ridge=config.ridge, target=config.target)
    full = -0.5 * float((refit(H, C, groups.reshape(-1)) * C).sum())  # f with every group
    if config.support == "magnitude-refit":
        kept = magnitude_support(
            weight, groups, keep, partition=partition, keep_per_partition=keep_per_partition
        )
    else:
        state = backward_elimination(
            H,
            C,
            groups,
            keep,
            per_round=per_round,
            partition=partition,
            keep_per_partition=keep_per_partition,
        )
        info["objective_elimination"] = state.f
        accepted = 0
        if config.local_search and config.local_iterations > 0:
            before = len(state.history)
            state = local_search(
                state,
                H,
                C,
                groups,
                iterations=config.local_iterations,
                swaps=swaps,
                partition=partition,
            )
            accepted = len(state.history) - before
        info["swaps_accepted"] = accepted
        kept = state.kept
    columns = torch.sort(_columns(groups, kept)).values
    B = refit(H, C, columns)
    f = -0.5 * float((B * C).sum())
    info.update(objective=f, objective_full=full, loss_increase=(f - full) / abs(full))
    return B.T.to(weight.dtype).contiguous(), columns, info


def min_keep(uniform_keep: int) -> int:
    """The fewest groups a block may keep under a non-uniform budget: half the uniform count."""
    return max(1, -(-uniform_keep // 2))


def cost_curve(
    weight: torch.Tensor,
    stats: Any,
    config: Any,
    groups: torch.Tensor,
    keep: int,
    *,
    per_round: int,
) -> tuple[list[int], list[float]]:
    """Backward elimination down to ``keep`` groups on the unpruned layer: (groups removed,
    relative loss increase (f − f_full) / |f_full|) after each round, from (0, 0)."""
    H, C = layer_problem(weight, stats, ridge=config.ridge, target="layer")
    groups = groups.to(weight.device)
    state = backward_elimination(H, C, groups, keep, per_round=per_round)
    full = state.history[0]
    n = groups.shape[0]
    removed = [min(i * per_round, n - keep) for i in range(len(state.history))]
    return removed, [(f - full) / abs(full) for f in state.history]


def allocate(curves: dict[int, tuple[list[int], list[float]]], total: int) -> dict[int, int]:
    """Split ``total`` removals across blocks: repeatedly take the step with the smallest loss
    increase per removed group over all blocks' curves (the last step may be taken in part).
    Returns the removals per block."""
    import heapq

    done = dict.fromkeys(curves, 0)
    step = dict.fromkeys(curves, 0)
    heap: list[tuple[float, int]] = []

    def push(b: int) -> None:
        removed, loss = curves[b]
        i = step[b]
        if i + 1 < len(removed):
            width = removed[i + 1] - removed[i]
            heapq.heappush(heap, ((loss[i + 1] - loss[i]) / max(width, 1), b))

    for b in curves:
        push(b)
    left = total
    while left > 0:
        if not heap:
            raise LabcoreError(f"the cost curves allow fewer than {total} removals")
        _, b = heapq.heappop(heap)
        removed, _ = curves[b]
        width = removed[step[b] + 1] - removed[step[b]]
        take = min(width, left)
        done[b] += take
        left -= take
        step[b] += 1
        if take == width:
            push(b)
    return done
