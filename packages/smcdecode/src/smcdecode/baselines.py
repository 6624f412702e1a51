"""Baselines decoded with the same model, prompt and budget accounting as SMC.

- ``greedy``: argmax decoding.
- ``sampling``: one completion by token-level temperature sampling (not the sequence-level
  power target: ``p^(1/T)`` per token is not ``p(y)^alpha`` over sequences).
- ``best_of_n``: ``n`` independent samples, the one with the highest reward returned (ties:
  the most likely), at a token budget matched to the method it is compared with.
- ``beam``: transformers' beam search.
- ``power_mh``: power sampling by Metropolis-Hastings (Karan & Du 2025): one chain grown
  block by block, with MH moves on ``p^alpha`` (times the reward, when ``lam`` > 0) after
  every block.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from smcdecode.lm import Budget
from smcdecode.potentials import Potential
from smcdecode.smc import SMCConfig, SMCDecoder


@dataclass
class Generation:
    """One method's output on one prompt."""

    text: str
    candidates: list[str]
    budget: Budget
    time_s: float
    extra: dict = field(default_factory=dict)


def independent_samples(
    dec: SMCDecoder,
    prompt_ids,
    n: int,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    seed: int = 0,
    stop_fn=None,
    block_size: int = 16,
):
    """``n`` independent samples in one batch (SMC with lam = 0, no resampling).

    ``stop_fn`` is tested every ``block_size`` tokens, as in SMC, so both stop alike."""
    cfg = SMCConfig(
        n_particles=n,
        block_size=block_size,
        max_new_tokens=max_new_tokens,
        alpha=1.0,
        lam=0.0,
        proposal_temperature=temperature,
        ess_threshold=0.0,
        seed=seed,
    )
    return dec.decode_ids(prompt_ids, cfg, None, stop_fn=stop_fn)


def best_by_reward(texts, ids, log_p, potential: Potential) -> tuple[int, np.ndarray]:
    """Index of the highest-reward completion (ties: the most likely) and all rewards."""
    r = np.asarray(potential.final(texts, ids), dtype=float)
    return int(np.lexsort((np.asarray(log_p), r))[-1]), r


def sampling(dec, prompt_ids, *, max_new_tokens, temperature=0.7, seed=0, stop_fn=None):
    res = independent_samples(
        dec,
        prompt_ids,
        1,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        stop_fn=stop_fn,
    )
    return Generation(res.texts[0], res.texts, res.budget, res.time_s)


def best_of_n(
    dec,
    prompt_ids,
    potential: Potential,
    n: int,
    *,
    max_new_tokens,
    temperature=1.0,
    seed=0,
    stop_fn=None,
):
    res = independent_samples(
        dec,
        prompt_ids,
        n,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        stop_fn=stop_fn,
    )
    t = time.perf_counter()
    best, r = best_by_reward(res.texts, res.all_token_ids, res.log_target, potential)
    return Generation(
        res.texts[best],
        res.texts,
        res.budget,
        res.time_s + time.perf_counter() - t,
        {"rewards": r.tolist()},
    )


@torch.no_grad()
def _hf_generate(dec: SMCDecoder, prompt_ids, *, max_new_tokens, **gen_kw) -> Generation:
    model = dec.runner.model
    ids = torch.as_tensor(prompt_ids, dtype=torch.long).reshape(1, -1).to(dec.runner.device)
    t = time.perf_counter()
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        eos_token_id=dec.runner.eos,
        pad_token_id=dec.runner.eos[0],
        **gen_kw,
    )
    dt = time.perf_counter() - t
    seqs = out[:, ids.shape[1] :].tolist()
    beams = int(gen_kw.get("num_beams", 1))
    texts = []
    for s in seqs:
        cut = next((i for i, x in enumerate(s) if x in dec.runner.eos), len(s))
        texts.append(dec.decode(s[:cut]))
    steps = len(seqs[0])
    budget = Budget(
        tokens_generated=beams * steps,
        forward_calls=steps + 1,
        token_forwards=ids.shape[1] + beams * steps,
    )
    return Generation(texts[0], texts, budget, dt)


def greedy(dec, prompt_ids, *, max_new_tokens, **_):
    return _hf_generate(dec, prompt_ids, max_new_tokens=max_new_tokens, do_sample=False)


def beam(dec, prompt_ids, *, max_new_tokens, num_beams=4, **_):
    return _hf_generate(
        dec,
        prompt_ids,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=num_beams,
        early_stopping=True,
    )


def power_mh(
    dec,
    prompt_ids,
    potential: Potential | None = None,
    *,
    max_new_tokens,
    alpha=4.0,
    lam=0.0,
    block_size=16,
    mh_steps=2,
    seed=0,
    stop_fn=None,
):
    cfg = SMCConfig(
        n_particles=1,
        block_size=block_size,
        max_new_tokens=max_new_tokens,
        alpha=alpha,
        lam=lam,
        ess_threshold=0.0,
        rejuvenation_steps=mh_steps,
        rejuvenate="every_block",
        seed=seed,
    )
    res = dec.decode_ids(prompt_ids, cfg, potential, stop_fn=stop_fn)
    return Generation(
        res.text, res.texts, res.budget, res.time_s, {"acceptance_rate": res.acceptance_rate}
    )
