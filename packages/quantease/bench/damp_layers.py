"""Held-out layer error of QuantEase against the ridge ``damp``, at several calibration sizes.

For a few layers of SmolLM2-135M (dense model, BBC train split cut in two by document), Σ is
accumulated from ``n`` tokens of the first half (the fit) and from 32,768 tokens of the second
half (held out); every damp quantizes each layer against its fit Σ and is scored by the
held-out relative error ||(Ŵ − W)X_h||² / ||W X_h||². GPTQ (1% damping) is the reference. The
test split is never read. Shows how the best damp moves with the number of calibration tokens.

    uv run python bench/damp_layers.py
"""

from __future__ import annotations

import argparse
import statistics


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--damps", default="0,0.03,0.1,0.3,1")
    p.add_argument("--tokens", default="4096,32768", help="fit sizes (windows of 512 tokens)")
    p.add_argument("--blocks", default="3,15,27")
    p.add_argument("--bits", type=int, default=3)
    p.add_argument("--sweeps", type=int, default=30)
    args = p.parse_args()

    import torch
    from layerwise.methods.gptq import gptq_quantize
    from quantease import QuantEaseConfig, quantease_quantize
    from quantease.core import layer_objective

    from labcore.data import calibration_windows, load_corpus
    from labcore.models import load_causal_lm

    model, tok = load_causal_lm("smollm2-135m", device="cpu")
    model.eval()
    bbc = load_corpus("bbc")
    fit_docs, held_docs = bbc.train[0::2], bbc.train[1::2]
    blocks = [int(b) for b in args.blocks.split(",")]
    names = ["self_attn.q_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj"]
    sizes = [int(t) for t in args.tokens.split(",")]

    def statistics_of(docs, n_tokens: int, seed: int) -> dict[str, torch.Tensor]:
        ids = calibration_windows(tok, docs, n=n_tokens // 512, seqlen=512, seed=seed)
        acc: dict[str, torch.Tensor] = {}
        hooks = []
        for b in blocks:
            for n in names:
                key = f"{b}.{n}"
                module = model.model.layers[b].get_submodule(n)

                def hook(_m, inputs, _out, key=key):
                    x = inputs[0].reshape(-1, inputs[0].shape[-1]).double()
                    acc[key] = acc.get(key, 0) + x.T @ x

                hooks.append(module.register_forward_hook(hook))
        with torch.no_grad():
            for i in range(0, ids.shape[0], 8):
                model(ids[i : i + 8])
        for h in hooks:
            h.remove()
        return {k: v.float() for k, v in acc.items()}

    held = statistics_of(held_docs, 32768, seed=100)
    damps = [float(d) for d in args.damps.split(",")]
    spec = QuantEaseConfig(bits=args.bits).spec
    lines = [
        f"Held-out relative layer error, {args.bits}-bit per channel, blocks {args.blocks} "
        "(q, o, gate, down): median over the layers (QuantEase / GPTQ ratio in brackets)",
        "",
        "| fit tokens | GPTQ | " + " | ".join(f"QE damp {d:g}" for d in damps) + " |",
        "|---|---|" + "---|" * len(damps),
    ]
    for n_tokens in sizes:
        fit = statistics_of(fit_docs, n_tokens, seed=10)
        errs: dict[str, list[float]] = {"gptq": []} | {f"{d:g}": [] for d in damps}
        for key, S in fit.items():
            b, n = key.split(".", 1)
            W = model.model.layers[int(b)].get_submodule(n).weight.detach().float()
            base = layer_objective(W, torch.zeros_like(W), held[key])
            q, _ = gptq_quantize(W, S, spec)
            errs["gptq"].append(layer_objective(W, q.dequantize(), held[key]) / base)
            for d in damps:
                q, _ = quantease_quantize(
                    W, S, QuantEaseConfig(bits=args.bits, damp=d, sweeps=args.sweeps)
                )
                errs[f"{d:g}"].append(layer_objective(W, q.dequantize(), held[key]) / base)
        g = statistics.median(errs["gptq"])
        cells = [
            f"{statistics.median(errs[f'{d:g}']):.4f} ({statistics.median(errs[f'{d:g}']) / g:.2f})"
            for d in damps
        ]
        lines.append(f"| {n_tokens} | {g:.4f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
