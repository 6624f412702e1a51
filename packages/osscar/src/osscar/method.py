"""OSSCAR as a layerwise method: ``compress(model, OSSCARConfig(...), calibration)``.

The engine visits q/k/v, o, gate/up and down in turn (GPTQ's sequential order): OSSCAR keeps
q/k/v and gate/up as they are and decides on the attention output projection (heads) and the
MLP down projection (neurons), returning ``keep_inputs``; the engine then removes the coupled
rows and columns of every projection of the block (or zeroes them with ``structured="mask"``).
"""

from __future__ import annotations

from typing import Any

import torch
from layerwise.methods.base import LayerResult, Method, register
from layerwise.structure import ModelContext, Site, head_group_columns

from labcore import LabcoreError
from osscar.config import OSSCARConfig
from osscar.core import allocate, cost_curve, min_keep, prune_layer


@register
class OSSCARMethod(Method):
    name = "osscar"
    config_class = OSSCARConfig
    kind = "structured"

    def __init__(self, config: OSSCARConfig) -> None:
        super().__init__(config)
        # The dense target needs Σ x x̄ᵀ against the dense model's inputs; the magnitude
        # baseline needs no statistics at all.
        self.cross_statistic = config.target == "dense" and config.support != "magnitude"
        self.statistics = "none" if config.support == "magnitude" else "full"
        self.plan: dict[str, dict[str, Any]] = {}
        # allocation="obs": a profiling pass records every layer's cost curve first
        self.profile_pass = config.allocation == "obs"
        self.curves: dict[tuple[int, str], tuple[list[int], list[float]]] = {}
        self.keep_by_block: dict[tuple[int, str], int] = {}
        self._block = 0

    def prepare(self, context: ModelContext) -> None:
        super().prepare(context)
        cfg = self.config
        st = context.architecture.structure
        if st is None:
            raise LabcoreError(
                f"OSSCAR needs a structured adapter for model type {context.model_type!r} "
                "(llama-like models: llama, qwen2, mistral, ...)"
            )
        self.plan = {}
        if cfg.head_sparsity > 0:
            if context.head_dim is None or not context.num_heads or not context.num_kv_heads:
                raise LabcoreError("the model config gives no head geometry; cannot prune heads")
            self.plan[st.attention_output] = self._head_plan(context)
        if cfg.mlp_sparsity > 0:
            n = context.intermediate_size
            if not n:
                raise LabcoreError(
                    "the model config gives no intermediate_size; cannot prune neurons"
                )
            removed = round(cfg.mlp_sparsity * n)
            if removed >= n:
                raise LabcoreError(f"mlp_sparsity {cfg.mlp_sparsity} removes all {n} neurons")
            self.plan[st.mlp_output] = {
                "groups": torch.arange(n)[:, None],
                "keep": n - removed,
                "partition": None,
                "keep_per_partition": None,
                "swaps": cfg.neuron_swaps,
                "per_round": cfg.neurons_per_round,
                "unit": "neurons",
            }

    def _head_plan(self, ctx: ModelContext) -> dict[str, Any]:
        cfg = self.config
        per_group = ctx.heads_per_group
        if cfg.head_unit == "kv-group":
            n = ctx.num_kv_heads
            removed = round(cfg.head_sparsity * n)
            if removed == 0:
                raise LabcoreError(
                    f"head_sparsity {cfg.head_sparsity} removes no K/V head group of {n} "
                    f"(one group is {1 / n:.3g} of the heads; use head_unit='query' for finer steps)"
                )
            if removed >= n:
                raise LabcoreError(
                    f"head_sparsity {cfg.head_sparsity} removes {removed} of {n} K/V head groups; "
                    "at least one must stay"
                )
            groups = torch.stack(
                [
                    head_group_columns([g], head_dim=ctx.head_dim, heads_per_group=per_group)
                    for g in range(n)
                ]
            )
            return {
                "groups": groups,
                "keep": n - removed,
                "partition": None,
                "keep_per_partition": None,
                "swaps": cfg.head_swaps,
                "per_round": cfg.heads_per_round,
                "unit": "kv_groups",
            }
        removed = round(cfg.head_sparsity * per_group)
        if removed == 0:
            raise LabcoreError(
                f"head_sparsity {cfg.head_sparsity} removes no query head from groups of "
                f"{per_group} (the smallest step is {1 / per_group:.3g})"
            )
        if removed >= per_group:
            raise LabcoreError(
                f"head_sparsity {cfg.head_sparsity} removes all {per_group} query heads of a "
                "K/V group; at least one must stay"
            )
        n = ctx.num_heads
        groups = torch.stack(
            [head_group_columns([h], head_dim=ctx.head_dim, heads_per_group=1) for h in range(n)]
        )
        return {
            "groups": groups,
            "keep": ctx.num_kv_heads * (per_group - removed),
            "partition": torch.arange(n) // per_group,
            "keep_per_partition": per_group - removed,
            "swaps": cfg.head_swaps,
            "per_round": cfg.heads_per_round,
            "unit": "heads",
        }

    def compress_site(self, site: Site, layers: dict[str, Any]) -> dict[str, LayerResult]:
        self._block = site.block
        return super().compress_site(site, layers)

    def compress_layer(self, name: str, weight: torch.Tensor, stats: Any) -> LayerResult:
        plan = self.plan.get(name)
        if plan is None:
            return LayerResult(weight)
        if self.profiling:
            if plan["unit"] != "heads":  # query heads stay uniform
                self.curves[(self._block, name)] = cost_curve(
                    weight,
                    stats,
                    self.config,
                    plan["groups"],
                    min_keep(plan["keep"]),
                    per_round=plan["per_round"] if plan["unit"] == "neurons" else 1,
                )
            return LayerResult(weight)
        key = (self._block, name)
        if key in self.keep_by_block:
            plan = {**plan, "keep": self.keep_by_block[key]}
        W, keep_columns, info = prune_layer(weight, stats, self.config, **plan, name=name)
        return LayerResult(W, info=info, keep_inputs=keep_columns)

    def end_profile(self) -> None:
        """Split each unit's total removals across blocks by the recorded cost curves."""
        self.keep_by_block = {}
        for name, plan in self.plan.items():
            curves = {b: c for (b, n), c in self.curves.items() if n == name}
            if not curves:
                continue
            n_groups = plan["groups"].shape[0]
            removed = allocate(curves, len(curves) * (n_groups - plan["keep"]))
            self.keep_by_block.update({(b, name): n_groups - r for b, r in removed.items()})
