"""The sequential layer-wise engine.

1. **Capture.** The first decoder block is replaced by a catcher that records its inputs and
   every keyword argument (attention mask, position ids, rotary ``position_embeddings``, cache
   position) and stops the forward pass. Only the non-block modules run, on the compute device.
2. **Per block.** For each group of linear layers (true-sequential groups, or the whole block),
   hooks accumulate statistics of the layers' inputs over all calibration batches, the method
   compresses the group's weights, and the next group sees inputs produced by the compressed
   earlier groups. A group's pass stops as soon as its last layer has fired.
3. **Propagate.** The compressed block's outputs (default) or the dense block's outputs become
   the next block's inputs.

Block inputs can stay on the CPU (``offload=True``) while each block computes on the GPU.
Padding tokens (attention mask 0) and zero-weight tokens never enter the statistics.

Before the first block the method receives the model's :class:`~layerwise.structure.ModelContext`;
each group call carries its :class:`~layerwise.structure.Site` (block index, full names). A
result may remove whole K/V head groups or MLP neurons (``keep_inputs``): the engine then
shrinks every coupled projection of the block (``structured="shrink"``, the default) or zeroes
the removed rows and columns (``structured="mask"``, same function, same shapes). A result with
``lowrank_u``/``lowrank_v`` extras turns the layer into a
:class:`~layerwise.structure.FactoredLinear` computing ``(S + U V) x``.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from labcore import LabcoreError
from labcore.device import Timer, resolve_device
from layerwise.architectures import architecture_of, get_blocks, get_weight, in_features, set_weight
from layerwise.calibration import Calibration
from layerwise.linalg import relative_error
from layerwise.methods.base import LayerStats, Method, method_for_config
from layerwise.quant import QuantizedWeight
from layerwise.structure import (
    LOWRANK_U,
    LOWRANK_V,
    Site,
    check_keep_inputs,
    install_factored,
    model_context,
    remove_structures,
)

log = logging.getLogger(__name__)


class _Stop(Exception):
    def __init__(self, args: tuple = (), kwargs: dict | None = None) -> None:
        super().__init__()
        self.args_ = args
        self.kwargs_ = kwargs or {}


class _Catcher(torch.nn.Module):
    """Stands in for block 0: records its call and aborts the forward pass."""

    def __init__(self, block: torch.nn.Module) -> None:
        super().__init__()
        self.__dict__["_block"] = block  # not a submodule: it must not move with the model

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_block"], name)  # e.g. attention_type

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise _Stop(args, kwargs)


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, tuple):
        return tuple(_to(o, device) for o in obj)
    if isinstance(obj, list):
        return [_to(o, device) for o in obj]
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return obj


@dataclass
class _Batch:
    hidden: torch.Tensor
    args: tuple
    kwargs: dict
    weights: torch.Tensor  # [b, L] token weights (mask × optional weights)


@dataclass
class LayerReport:
    name: str
    block: int
    shape: tuple[int, int]
    rel_error: float | None
    sparsity: float
    tokens: int
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompressionReport:
    """What a compression run did, layer by layer."""

    method: str
    config: dict[str, Any]
    layers: list[LayerReport]
    time_s: float
    propagate: str
    calibration: dict[str, int]
    #: per block index, what structured pruning removed (kept heads, K/V heads, neurons)
    structure: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: per full layer name, the extra tensors of its result (on the CPU; not in to_dict)
    extras: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    @property
    def damping_increases(self) -> int:
        return sum(int(layer.info.get("damping_increases", 0)) for layer in self.layers)

    @property
    def mean_rel_error(self) -> float | None:
        errs = [layer.rel_error for layer in self.layers if layer.rel_error is not None]
        return float(sum(errs) / len(errs)) if errs else None

    @property
    def sparsity(self) -> float:
        total = sum(layer.shape[0] * layer.shape[1] for layer in self.layers)
        zeros = sum(layer.sparsity * layer.shape[0] * layer.shape[1] for layer in self.layers)
        return zeros / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "config": self.config,
            "time_s": self.time_s,
            "propagate": self.propagate,
            "calibration": self.calibration,
            "damping_increases": self.damping_increases,
            "mean_rel_error": self.mean_rel_error,
            "sparsity": self.sparsity,
            "layers": [asdict(layer) for layer in self.layers],
            **(
                {"structure": {str(k): v for k, v in self.structure.items()}}
                if self.structure
                else {}
            ),
            **({"extras": {k: sorted(v) for k, v in self.extras.items()}} if self.extras else {}),
        }


class _Accumulator:
    """Running statistics of one linear layer's inputs."""

    def __init__(self, d_in: int, device: torch.device, full: bool, cross: bool) -> None:
        self.H = torch.zeros(d_in, d_in, device=device) if full else None
        self.diag = torch.zeros(d_in, device=device)
        self.cross = torch.zeros(d_in, d_in, device=device) if cross else None
        self.tokens = 0
        self.weight_sum = 0.0

    def add(self, x: torch.Tensor, w: torch.Tensor, xbar: torch.Tensor | None = None) -> None:
        x = x.reshape(-1, x.shape[-1]).float()
        w = w.reshape(-1).to(x.device).float()
        keep = w > 0
        if not bool(keep.all()):
            x, w = x[keep], w[keep]
            if xbar is not None:
                xbar = xbar.reshape(-1, xbar.shape[-1])[keep.to(xbar.device)]
        if x.shape[0] == 0:
            return
        xw = x * w.unsqueeze(1)
        if self.H is not None:
            self.H.addmm_(xw.t(), x)
        else:
            self.diag.add_((xw * x).sum(0))
        if self.cross is not None and xbar is not None:
            self.cross.addmm_(xw.t(), xbar.reshape(-1, xbar.shape[-1]).float())
        self.tokens += x.shape[0]
        self.weight_sum += float(w.sum())

    def stats(self) -> LayerStats:
        diag = torch.diagonal(self.H).clone() if self.H is not None else self.diag
        return LayerStats(self.H, diag, self.tokens, self.weight_sum, self.cross)


class LayerwiseEngine:
    """Runs one method over a causal LM, block by block.

    Parameters
    ----------
    model
        A transformers causal LM of a supported architecture (see
        :data:`layerwise.architectures.ARCHITECTURES`). Compressed in place.
    calibration
        :class:`~layerwise.calibration.Calibration` data.
    device
        Where blocks compute (``auto``: CUDA when available).
    batch_size
        Calibration sequences per forward pass.
    offload
        Keep block inputs on the CPU between blocks (saves GPU memory for large models).
    propagate
        ``"compressed"``: the next block sees the compressed block's outputs (default);
        ``"dense"``: it sees the dense model's outputs.
    layer_errors
        Accumulate the full input Gram matrix for every layer so the report gives each layer's
        relative error ``||WX - ŴX||² / ||WX||²``, even for methods that need less.
    structured
        What removed heads and neurons become: ``"shrink"`` (smaller projections, a smaller
        and faster model) or ``"mask"`` (zeroed rows and columns, the same function).
    """

    def __init__(
        self,
        model: Any,
        calibration: Calibration,
        *,
        device: Any = "auto",
        batch_size: int = 8,
        offload: bool = True,
        propagate: str = "compressed",
        layer_errors: bool = True,
        progress: bool = True,
        structured: str = "shrink",
    ) -> None:
        if structured not in ("shrink", "mask"):
            raise LabcoreError(f"structured must be 'shrink' or 'mask', got {structured!r}")
        if propagate not in ("compressed", "dense"):
            raise LabcoreError(f"propagate must be 'compressed' or 'dense', got {propagate!r}")
        if batch_size < 1:
            raise LabcoreError(f"batch_size must be positive, got {batch_size}")
        self.arch = architecture_of(model)
        vocab = getattr(model.config, "vocab_size", None)
        if vocab is not None and int(calibration.input_ids.max()) >= vocab:
            raise LabcoreError(
                f"calibration token id {int(calibration.input_ids.max())} is outside the vocabulary ({vocab})"
            )
        self.model = model
        self.calibration = calibration
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.store = torch.device("cpu") if offload else self.device
        self.propagate = propagate
        self.layer_errors = layer_errors
        self.progress = progress
        self.structured = structured
        self.context = model_context(model, self.arch)
        self.quantized_: dict[str, QuantizedWeight] = {}
        self.extras_: dict[str, dict[str, torch.Tensor]] = {}
        self.structure_: dict[int, dict[str, Any]] = {}
        self.outputs_: list[torch.Tensor] | None = None

    # -- capture --------------------------------------------------------------------------
    def capture(self) -> list[_Batch]:
        """Inputs (and keyword arguments) of the first block for every calibration batch."""
        model = self.model
        blocks = get_blocks(model, self.arch)
        parent_path, _, attr = self.arch.blocks.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        original_device = next(model.parameters()).device
        catcher = _Catcher(blocks[0])
        setattr(parent, attr, torch.nn.ModuleList([catcher]))
        batches: list[_Batch] = []
        try:
            model.to(self.device)  # only the non-block modules are attached now
            cal = self.calibration
            weights = cal.weights
            for start in range(0, len(cal), self.batch_size):
                sl = slice(start, start + self.batch_size)
                ids = cal.input_ids[sl].to(self.device)
                mask = cal.attention_mask[sl].to(self.device)
                try:
                    with torch.no_grad():
                        model(input_ids=ids, attention_mask=mask, use_cache=False)
                except _Stop as stop:
                    args, kwargs = list(stop.args_), dict(stop.kwargs_)
                    hidden = args.pop(0) if args else kwargs.pop("hidden_states")
                    kwargs.pop("past_key_values", None)
                    kwargs.pop("past_key_value", None)
                    kwargs["use_cache"] = False
                    batches.append(
                        _Batch(
                            hidden.to(self.store),
                            _to(tuple(args), self.store),
                            _to(kwargs, self.store),
                            weights[sl],
                        )
                    )
                else:
                    raise LabcoreError(
                        "the first decoder block was never called; is the architecture table right?"
                    )
        finally:
            setattr(parent, attr, blocks)
            model.to(original_device)
        return batches

    # -- helpers ----------------------------------------------------------------------------
    def _forward(self, block: torch.nn.Module, batch: _Batch, hidden: torch.Tensor) -> torch.Tensor:
        out = block(
            hidden.to(self.device), *_to(batch.args, self.device), **_to(batch.kwargs, self.device)
        )
        return out[0] if isinstance(out, tuple | list) else out

    def _block_outputs(
        self, block: torch.nn.Module, batches: list[_Batch], hiddens: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        with torch.no_grad():
            return [
                self._forward(block, b, h).to(self.store)
                for b, h in zip(batches, hiddens, strict=True)
            ]

    def _collect(
        self,
        block: torch.nn.Module,
        dense_block: torch.nn.Module | None,
        names: Iterable[str],
        batches: list[_Batch],
        hiddens: list[torch.Tensor],
        dense_hiddens: list[torch.Tensor] | None,
        method: Method,
    ) -> dict[str, LayerStats]:
        names = list(names)
        full = method.statistics == "full" or self.layer_errors
        cross = method.cross_statistic

        def accumulators(owners: Iterable[str]) -> dict[str, _Accumulator]:
            return {
                n: _Accumulator(in_features(block.get_submodule(n)), self.device, full, cross)
                for n in owners
            }

        def run_capturing(
            module: torch.nn.Module, batch: _Batch, hidden: torch.Tensor
        ) -> dict[str, torch.Tensor]:
            seen: dict[str, torch.Tensor] = {}
            handles = []

            def make_hook(name: str):
                def hook(_mod, inputs, _out):
                    seen[name] = inputs[0].detach()
                    if len(seen) == len(names):
                        raise _Stop()  # the group's last layer fired: skip the rest of the block

                return hook

            for n in names:
                handles.append(module.get_submodule(n).register_forward_hook(make_hook(n)))
            try:
                with torch.no_grad():
                    self._forward(module, batch, hidden)
            except _Stop:
                pass
            finally:
                for h in handles:
                    h.remove()
            missing = set(names) - set(seen)
            if missing:
                raise LabcoreError(
                    f"layers {sorted(missing)} were never called in the block forward"
                )
            return seen

        # Layers fed by the very same tensor (q/k/v, gate/up) share one accumulator: their
        # statistics are identical, so they are summed once and the LayerStats object is shared
        # (methods must treat it as read-only). Not with the cross statistic, whose dense
        # inputs are captured separately.
        owner: dict[str, str] | None = None
        acc: dict[str, _Accumulator] = {}
        for i, batch in enumerate(batches):
            xs = run_capturing(block, batch, hiddens[i])
            xbars = run_capturing(dense_block, batch, dense_hiddens[i]) if cross else {}
            if owner is None:
                first: dict[tuple, str] = {}
                owner = {
                    n: n
                    if cross
                    else first.setdefault(
                        (xs[n].data_ptr(), xs[n].shape, xs[n].stride(), xs[n].dtype), n
                    )
                    for n in names
                }
                acc = accumulators(set(owner.values()))
            w = batch.weights.to(self.device)
            for n, a in acc.items():
                a.add(xs[n], w, xbars.get(n))
        if owner is None:
            owner = {n: n for n in names}
            acc = accumulators(names)
        shared = {n: a.stats() for n, a in acc.items()}
        return {n: shared[owner[n]] for n in names}

    def _profile(self, method: Method) -> None:
        """The profiling pass of a method with ``profile_pass``: on a copy of the model
        (structures masked, not shrunk), with ``method.profiling`` set; then
        ``method.end_profile()``."""
        shadow = LayerwiseEngine(
            copy.deepcopy(self.model),
            self.calibration,
            device=self.device,
            batch_size=self.batch_size,
            offload=self.store != self.device,
            propagate=self.propagate,
            layer_errors=False,
            progress=self.progress,
            structured="mask",
        )
        method.profiling = True
        try:
            shadow.run(method)
        finally:
            method.profiling = False
            del shadow
        method.end_profile()
        method.prepare(self.context)

    # -- run --------------------------------------------------------------------------------
    def run(self, method: Method) -> CompressionReport:
        from labcore.progress import progress_bar

        groups = self.arch.groups_for(method.grouping)
        method.prepare(self.context)
        with Timer(self.device) as timer:
            if method.profile_pass and not method.profiling:
                self._profile(method)
            batches = self.capture()
            hiddens = [b.hidden for b in batches]
            need_dense_stream = method.cross_statistic or self.propagate == "dense"
            dense_hiddens = list(hiddens) if need_dense_stream else None
            blocks = get_blocks(self.model, self.arch)
            reports: list[LayerReport] = []
            for b_idx in progress_bar(
                range(len(blocks)), desc=f"{method.name} blocks", enabled=self.progress
            ):
                block = blocks[b_idx]
                home = next(block.parameters()).device
                block.to(self.device)
                dense_block = copy.deepcopy(block) if need_dense_stream else None
                for group in groups:
                    stats = self._collect(
                        block, dense_block, group, batches, hiddens, dense_hiddens, method
                    )
                    layers = {
                        n: (get_weight(block.get_submodule(n)).to(self.device), stats[n])
                        for n in group
                    }
                    site = Site(b_idx, self.context.prefix(b_idx), tuple(group))
                    results = method.compress_site(site, layers)
                    missing = [n for n in group if n not in results]
                    if missing:
                        raise LabcoreError(
                            f"{method.name} returned no result for {site.prefix}{missing[0]}"
                        )
                    for n in group:
                        reports.append(self._apply(block, b_idx, n, layers[n], results[n]))
                    for n in group:
                        if results[n].keep_inputs is not None:
                            summary = remove_structures(
                                block,
                                self.arch,
                                n,
                                results[n].keep_inputs,
                                head_dim=self.context.head_dim,
                                mask=self.structured == "mask",
                                where=site.full_name(n),
                            )
                            self.structure_.setdefault(b_idx, {}).update(summary)
                if dense_block is not None:
                    dense_hiddens = self._block_outputs(dense_block, batches, dense_hiddens)
                    del dense_block
                hiddens = (
                    dense_hiddens
                    if self.propagate == "dense"
                    else self._block_outputs(block, batches, hiddens)
                )
                block.to(home)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            self.outputs_ = hiddens
        cal = self.calibration
        return CompressionReport(
            method=method.name,
            config=method.describe(),
            layers=reports,
            time_s=timer.elapsed,
            propagate=self.propagate,
            calibration={
                "sequences": len(cal),
                "seqlen": int(cal.input_ids.shape[1]),
                "tokens": int((cal.weights > 0).sum()),
            },
            structure=dict(self.structure_),
            extras=dict(self.extras_),
        )

    def _apply(self, block, b_idx, name, layer, result) -> LayerReport:
        W, stats = layer
        full_name = self.context.prefix(b_idx) + name
        new = result.weight
        if new.shape != W.shape:
            raise LabcoreError(
                f"{full_name}: method returned shape {tuple(new.shape)}, expected {tuple(W.shape)}"
            )
        if not torch.isfinite(new).all():
            raise LabcoreError(f"{full_name}: method returned non-finite weights")
        if result.keep_inputs is not None:
            # The removed columns compute nothing once their producers are gone.
            new = new.clone()
            dropped = torch.ones(new.shape[1], dtype=torch.bool, device=new.device)
            keep = check_keep_inputs(result.keep_inputs, new.shape[1], full_name)
            dropped[keep.to(new.device)] = False
            new[:, dropped] = 0
        extras = {k: v.detach() for k, v in result.extras.items()}
        effective = new
        if LOWRANK_U in extras or LOWRANK_V in extras:
            if LOWRANK_U not in extras or LOWRANK_V not in extras:
                raise LabcoreError(f"{full_name}: lowrank_u and lowrank_v come together")
            if result.keep_inputs is not None or result.quantized is not None:
                raise LabcoreError(
                    f"{full_name}: low-rank extras do not combine with keep_inputs or codes"
                )
            U = extras[LOWRANK_U].to(new.device, torch.float32)
            V = extras[LOWRANK_V].to(new.device, torch.float32)
            factored = install_factored(block, name, new, U, V)
            effective = factored.dense_weight().float()
            if not torch.isfinite(effective).all():
                raise LabcoreError(f"{full_name}: method returned non-finite low-rank factors")
        else:
            set_weight(block.get_submodule(name), new)
        if extras:
            self.extras_[full_name] = {k: v.cpu() for k, v in extras.items()}
        if result.quantized is not None:
            self.quantized_[full_name] = _to_cpu(result.quantized)
        err = relative_error(W, effective, stats.H) if stats.H is not None else None
        sparsity = float((new == 0).sum()) / new.numel()
        info = {k: v for k, v in result.info.items() if v is not None}
        if result.keep_inputs is not None:
            info["kept_inputs"] = int(torch.as_tensor(result.keep_inputs).numel())
        if LOWRANK_U in extras:
            info["rank"] = int(extras[LOWRANK_U].shape[1])
        if err is not None and not math.isfinite(err):
            raise LabcoreError(f"{full_name}: non-finite reconstruction error")
        return LayerReport(full_name, b_idx, tuple(W.shape), err, sparsity, stats.tokens, info)


def _to_cpu(q: QuantizedWeight) -> QuantizedWeight:
    return QuantizedWeight(
        q.codes.cpu(),
        q.scales.cpu(),
        q.zeros.cpu(),
        q.g_idx.cpu(),
        q.bits,
        q.sym,
        q.group_size,
        None if q.outliers is None else q.outliers.cpu(),
    )


def compress(
    model: Any,
    config: Any,
    calibration: Calibration,
    **engine_options: Any,
) -> tuple[CompressionReport, dict[str, QuantizedWeight]]:
    """Compress ``model`` in place with the method whose config is ``config``.

    Returns the report and, for quantization methods, the integer codes per layer. Structured
    decisions are in ``report.structure``, extra tensors (low-rank factors) in
    ``report.extras``; :func:`layerwise.save` writes both.

    Examples
    --------
    >>> from labcore.models import tiny_causal_lm
    >>> from layerwise import Calibration, GPTQConfig, compress
    >>> import torch
    >>> model, tok = tiny_causal_lm("llama")
    >>> cal = Calibration(torch.randint(3, len(tok), (4, 32)), None)
    >>> report, codes = compress(model, GPTQConfig(bits=3), cal, device="cpu", progress=False)
    >>> len(report.layers), report.method
    (14, 'gptq')
    """
    method = config if isinstance(config, Method) else method_for_config(config)
    engine = LayerwiseEngine(model, calibration, **engine_options)
    report = engine.run(method)
    return report, engine.quantized_
