"""Sequential Monte Carlo decoding of ``pi(y) ∝ p(y)^alpha * exp(lam * r(y))``.

Particles grow in blocks of ``block_size`` tokens drawn from the proposal ``q`` (the model at
temperature ``1 / alpha`` by default, the variance-minimising prefix-only proposal for
``p^alpha``). After each block a particle's log-weight grows by::

    alpha * sum(log p) - sum(log q) + log psi_t(y_1:t) - log psi_{t-B}(y_1:t-B)

where ``psi_t`` is the *twist*:

- prefix-only SMC: ``psi_t = exp(lam * r(prefix))``, the prefix potential;
- lookahead SMC: ``psi_t(prefix) = sum over continuations of p(rest)^alpha exp(lam r(y))``,
  so that the intermediate target ``p(prefix)^alpha psi_t(prefix)`` is exactly the marginal
  of ``pi`` on prefixes. It is estimated by ``lookahead_samples`` importance-weighted
  rollouts of ``lookahead`` tokens (a rollout that has not finished is scored by its prefix
  reward), or computed exactly by ``twist_fn`` when one is given (tests, small models).

At the end every particle carries the final potential, so the weighted particles target
``pi`` whichever twist was used. When the effective sample size falls below
``ess_threshold * N`` the particles are resampled; then (``rejuvenation_steps`` > 0) each is
moved by Metropolis-Hastings steps that leave the current intermediate target invariant:
a cut point ``c`` is drawn uniformly in the generated part, tokens ``c..t`` are re-proposed
from ``q`` and accepted with probability::

    min(1, [gamma_t(new) q(old suffix)] / [gamma_t(old) q(new suffix)])

(with an estimated twist, the estimate is part of the state: pseudo-marginal MH, still exact).

The KV cache is shared: the prompt is encoded once, rows are reordered on resampling, and
rejuvenation crops it and merges accepted rows back.

Reconstruction: the paper's code is not public. The potentials, proposal, rejuvenation
schedule and twist estimator here are our reading of the abstract and of the SMC literature.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from labcore.errors import LabcoreError
from smcdecode.lm import (
    Budget,
    ModelRunner,
    cache_crop,
    cache_length,
    cache_merge,
    cache_pad,
    cache_select,
    clone_cache,
)
from smcdecode.potentials import Potential
from smcdecode.resampling import SCHEMES, ess, normalize_log_weights, resample

SELECTIONS = ("sample", "best", "vote")


def weighted_vote(answers: Sequence[str | None], weights: Sequence[float]) -> int:
    """Index of the heaviest completion among those giving the answer with the most weight
    (``None`` answers do not vote; with no votes at all, the heaviest completion)."""
    w = np.asarray(weights, dtype=float)
    votes: dict[str, float] = {}
    for a, wi in zip(answers, w, strict=True):
        if a is not None:
            votes[a] = votes.get(a, 0.0) + wi
    if not votes:
        return int(np.argmax(w))
    win = max(votes, key=votes.get)
    return max((i for i, a in enumerate(answers) if a == win), key=lambda i: w[i])


@dataclass(frozen=True)
class SMCConfig:
    """Settings of :func:`smc_decode`.

    Parameters
    ----------
    n_particles
        Number of particles (decoded together as one batch).
    block_size
        Tokens per SMC step (weights, resampling and moves happen between blocks).
    max_new_tokens
        Completion length limit; a completion that reaches it ends there.
    alpha
        Power on the model's sequence probability (1: the model; > 1: sharper).
    lam
        Reward weight: the target has ``exp(lam * r(y))``.
    proposal_temperature
        Temperature of the proposal; ``None`` means ``1 / alpha``.
    ess_threshold
        Resample when ESS < ``ess_threshold * n_particles`` (1: every block; 0: never).
    resampling
        ``systematic`` (default), ``multinomial`` or ``residual``.
    rejuvenation_steps
        MH moves per particle after each resampling (``rejuvenate="every_block"``: after
        every block, which with one particle is power sampling by MH).
    lookahead, lookahead_samples
        Rollout length (tokens) and count of the twist estimate; 0 = prefix-only SMC.
    max_logw_step
        Clip each block's log-weight increment to ``[-max_logw_step, max_logw_step]``
        (``None``: no clipping). Clipping biases the target; it only guards against
        degenerate weights with very sharp rewards.
    select
        The returned completion: ``sample`` (one draw by weight: a sample of pi), ``best``
        (highest target density among particles) or ``vote`` (weighted majority over
        ``answer_fn`` answers).
    """

    n_particles: int = 8
    block_size: int = 16
    max_new_tokens: int = 256
    alpha: float = 1.0
    lam: float = 1.0
    proposal_temperature: float | None = None
    ess_threshold: float = 0.5
    resampling: str = "systematic"
    rejuvenation_steps: int = 0
    rejuvenate: str = "after_resample"
    lookahead: int = 0
    lookahead_samples: int = 1
    max_logw_step: float | None = None
    select: str = "sample"
    seed: int = 0

    def __post_init__(self):
        def bad(msg):
            raise LabcoreError(f"SMCConfig: {msg}")

        if self.n_particles < 1:
            bad("n_particles must be >= 1")
        if self.block_size < 1 or self.max_new_tokens < 1:
            bad("block_size and max_new_tokens must be >= 1")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            bad(f"alpha must be a positive number, got {self.alpha}")
        if not math.isfinite(self.lam):
            bad("lam must be finite")
        if self.proposal_temperature is not None and not self.proposal_temperature > 0:
            bad("proposal_temperature must be > 0")
        if not self.temperature >= 0.01:
            bad(f"the proposal temperature {self.temperature:g} is below 0.01 (alpha too large?)")
        if not 0 <= self.ess_threshold <= 1:
            bad("ess_threshold must be in [0, 1]")
        if self.resampling not in SCHEMES:
            bad(f"resampling must be one of {SCHEMES}")
        if self.rejuvenation_steps < 0 or self.rejuvenate not in ("after_resample", "every_block"):
            bad("rejuvenation_steps >= 0 and rejuvenate in {'after_resample', 'every_block'}")
        if self.lookahead < 0 or self.lookahead_samples < 1:
            bad("lookahead >= 0 and lookahead_samples >= 1 are required")
        if self.max_logw_step is not None and not self.max_logw_step > 0:
            bad("max_logw_step must be > 0 or None")
        if self.select not in SELECTIONS:
            bad(f"select must be one of {SELECTIONS}")

    @property
    def temperature(self) -> float:
        return 1.0 / self.alpha if self.proposal_temperature is None else self.proposal_temperature


@dataclass
class SMCResult:
    """Output of :func:`smc_decode`.

    ``texts``/``token_ids``/``log_weights`` describe the final weighted particle system (an
    approximation of pi); ``text`` is the selected completion.
    """

    text: str
    token_ids: list[int]
    texts: list[str]
    all_token_ids: list[list[int]]
    log_weights: list[float]
    rewards: list[float]
    log_target: list[float]
    log_z: float
    n_resamples: int
    acceptance_rate: float | None
    ess_history: list[float]
    budget: Budget
    time_s: float
    config: dict = field(default_factory=dict)

    @property
    def weights(self) -> np.ndarray:
        return normalize_log_weights(np.asarray(self.log_weights))


def _pad_state(st, width: int, eos: int) -> None:
    """Pad the token arrays to ``width`` columns (EOS tokens, zero log-probabilities)."""
    extra = width - st.tokens.shape[1]
    if extra <= 0:
        return
    n = st.tokens.shape[0]
    dev = st.tokens.device
    st.tokens = torch.cat([st.tokens, torch.full((n, extra), eos, dtype=torch.long, device=dev)], 1)
    st.logp = torch.cat([st.logp, torch.zeros(n, extra, device=dev)], 1)
    st.logq = torch.cat([st.logq, torch.zeros(n, extra, device=dev)], 1)


@dataclass
class _State:
    tokens: torch.Tensor  # [N, t] long
    logp: torch.Tensor  # [N, t] per-token log p (temperature 1); 0 after the end
    logq: torch.Tensor  # [N, t] per-token log q; 0 after the end
    finished: torch.Tensor  # [N] bool
    length: torch.Tensor  # [N] tokens generated, EOS included
    logits: torch.Tensor  # [N, V] next-token logits
    cache: object
    reward: np.ndarray  # [N] prefix reward (final reward once finished)
    log_psi: np.ndarray  # [N] log twist at the current length

    def select(self, idx: torch.Tensor) -> None:
        for name in ("tokens", "logp", "logq", "finished", "length", "logits"):
            setattr(self, name, getattr(self, name).index_select(0, idx.to(self.tokens.device)))
        cache_select(self.cache, idx.to(self.logits.device))
        i = idx.cpu().numpy()
        self.reward = self.reward[i]
        self.log_psi = self.log_psi[i]


class SMCDecoder:
    """Reusable decoder: a model, its tokenizer (optional) and a prompt-independent setup."""

    def __init__(
        self,
        model,
        tokenizer=None,
        *,
        eos_token_ids: Sequence[int] | int | None = None,
        decode: Callable[[list[int]], str] | None = None,
    ):
        if eos_token_ids is None:
            if tokenizer is None or tokenizer.eos_token_id is None:
                raise LabcoreError("give eos_token_ids (the tokenizer has no EOS token)")
            eos_token_ids = [tokenizer.eos_token_id]
            extra = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
            if extra is not None:
                eos_token_ids += [extra] if isinstance(extra, int) else list(extra)
        self.runner = ModelRunner(model, eos_token_ids=eos_token_ids)
        self.tokenizer = tokenizer
        if decode is None:
            if tokenizer is not None:

                def decode(ids):
                    return tokenizer.decode(ids, skip_special_tokens=True)

            else:

                def decode(ids):
                    return " ".join(map(str, ids))

        self.decode = decode
        self._eos = torch.tensor(self.runner.eos, device=self.runner.device)
        self._stop_fn: Callable[[str], bool] | None = None

    # ----------------------------------------------------------------- helpers
    def _texts_ids(self, st: _State) -> tuple[list[str], list[list[int]]]:
        toks = st.tokens.cpu().numpy()
        lens = st.length.cpu().numpy()
        eos = set(self.runner.eos)
        ids = []
        for row, n in zip(toks, lens, strict=True):
            seq = row[:n].tolist()
            if seq and seq[-1] in eos:
                seq = seq[:-1]
            ids.append(seq)
        return [self.decode(s) for s in ids], ids

    def _rewards(self, st: _State, potential: Potential | None, *, final: bool) -> np.ndarray:
        n = st.tokens.shape[0]
        if potential is None:
            return np.zeros(n)
        texts, ids = self._texts_ids(st)
        fin = st.finished.cpu().numpy() | final
        out = np.zeros(n)
        for mask, method in ((fin, potential.final), (~fin, potential.prefix)):
            if not mask.any() or (method == potential.prefix and potential.terminal_only):
                continue
            sel = np.flatnonzero(mask)
            got = np.asarray(method([texts[i] for i in sel], [ids[i] for i in sel]), float)
            if got.shape != (len(sel),):
                raise LabcoreError(
                    f"{type(potential).__name__}.{method.__name__} returned shape {got.shape} "
                    f"for {len(sel)} completions (one float each expected)"
                )
            out[sel] = got
        if not np.isfinite(out).all():
            raise LabcoreError("the potential returned a non-finite reward")
        return out

    def _extend(
        self, st: _State, n_tokens: int, cfg: SMCConfig, gen, *, last: bool, keep_going=False
    ) -> None:
        """Sample ``n_tokens`` more tokens for every unfinished particle (batched).

        The cache is advanced after every token except the very last one (``last``), and,
        unless ``keep_going``, once every particle has finished."""
        runner = self.runner
        for j in range(n_tokens):
            logits = st.logits
            lp = torch.log_softmax(logits, dim=-1)
            lq = torch.log_softmax(logits / cfg.temperature, dim=-1)
            tok = torch.multinomial(lq.exp(), 1, generator=gen).squeeze(1)
            live = ~st.finished
            tok = torch.where(live, tok, self._eos[0])
            idx = torch.arange(len(tok), device=tok.device)
            step_lp = torch.where(live, lp[idx, tok], 0.0)
            step_lq = torch.where(live, lq[idx, tok], 0.0)
            runner.budget.tokens_generated += int(live.sum())
            st.tokens = torch.cat([st.tokens, tok[:, None]], dim=1)
            st.logp = torch.cat([st.logp, step_lp[:, None]], dim=1)
            st.logq = torch.cat([st.logq, step_lq[:, None]], dim=1)
            st.length = st.length + live.long()
            st.finished = st.finished | (live & torch.isin(tok, self._eos))
            if not (last and j == n_tokens - 1) and (keep_going or not bool(st.finished.all())):
                st.logits = runner.step(tok, st.cache)

    def _apply_stop(self, st: _State) -> None:
        if self._stop_fn is None:
            return
        live = np.flatnonzero(~st.finished.cpu().numpy())
        if len(live) == 0:
            return
        texts, _ = self._texts_ids(st)
        hit = [i for i in live if self._stop_fn(texts[i])]
        if hit:
            st.finished[torch.as_tensor(hit, device=st.finished.device)] = True

    def _log_psi(
        self, st: _State, cfg: SMCConfig, potential, gen, twist_fn, *, final: bool
    ) -> np.ndarray:
        """Log twist of every particle at its current length (see the module docstring)."""
        st.reward = self._rewards(st, potential, final=final)
        base = cfg.lam * st.reward
        if final or (twist_fn is None and cfg.lookahead == 0):
            return base
        fin = st.finished.cpu().numpy()
        if twist_fn is not None:
            _, ids = self._texts_ids(st)
            out = np.asarray(twist_fn(ids, fin), dtype=float)
            if out.shape != (len(ids),):
                raise LabcoreError(f"twist_fn returned shape {out.shape} for {len(ids)} prefixes")
            return np.where(fin, base, out)
        return np.where(fin, base, self._rollout_twist(st, cfg, potential, gen))

    def _rollout_twist(self, st: _State, cfg: SMCConfig, potential, gen) -> np.ndarray:
        """Importance-weighted rollouts: log mean_m p(rest)^alpha / q(rest) * exp(lam r)."""
        n, m = st.tokens.shape[0], cfg.lookahead_samples
        rep = torch.arange(n, device=st.tokens.device).repeat_interleave(m)
        sub = _State(
            tokens=st.tokens.index_select(0, rep),
            logp=st.logp.index_select(0, rep),
            logq=st.logq.index_select(0, rep),
            finished=st.finished.index_select(0, rep),
            length=st.length.index_select(0, rep),
            logits=st.logits.index_select(0, rep),
            cache=clone_cache(st.cache),
            reward=st.reward[rep.cpu().numpy()],
            log_psi=np.zeros(n * m),
        )
        cache_select(sub.cache, rep)
        t0 = sub.tokens.shape[1]
        h = min(cfg.lookahead, cfg.max_new_tokens - t0)
        self._extend(sub, h, cfg, gen, last=True)
        self._apply_stop(sub)
        r = self._rewards(sub, potential, final=t0 + h >= cfg.max_new_tokens)
        logw = (
            cfg.alpha * sub.logp[:, t0:].sum(1) - sub.logq[:, t0:].sum(1)
        ).cpu().double().numpy() + cfg.lam * r
        logw = logw.reshape(n, m)
        mx = logw.max(axis=1, keepdims=True)
        return (mx + np.log(np.exp(logw - mx).mean(axis=1, keepdims=True))).ravel()

    def _mh_move(
        self, st: _State, cfg, potential, gen, rng, twist_fn, *, final: bool = False
    ) -> tuple[int, int]:
        """One MH rejuvenation step for all particles; returns (accepted, proposed).

        The cut ``c`` is drawn uniformly from ``[0, end)``, the same for every particle and
        independent of their states: ``end`` is the current length ``t`` (target
        ``gamma_t``), or with ``final`` the length limit (target pi: proposals then run to
        EOS or the limit). Tokens from ``c`` are re-proposed as the forward process would,
        block by block with the stop test at block ends; particles complete before ``c``
        are left alone."""
        t = st.tokens.shape[1]
        end = cfg.max_new_tokens if final else t
        if t == 0:
            return 0, 0
        c = int(rng.integers(0, end))
        frozen = st.length <= c  # complete before the cut: the proposal leaves them alone
        if bool(frozen.all()):
            return 0, 0
        old = st
        new = _State(
            tokens=old.tokens[:, :c],
            logp=old.logp[:, :c],
            logq=old.logq[:, :c],
            finished=frozen.clone(),
            length=torch.minimum(old.length, torch.tensor(c, device=old.length.device)),
            logits=old.logits,
            cache=clone_cache(old.cache),
            reward=old.reward.copy(),
            log_psi=old.log_psi.copy(),
        )
        # Logits at position c: crop to the prompt + c - 1 tokens and feed token c - 1 again
        # (for c = 0, the prompt's last token). Every particle that can move has fed its
        # first c tokens, so the cropped rows are valid for it.
        p_len = self._prompt_len
        cache_crop(new.cache, p_len + c - 1)
        last_tok = old.tokens[:, c - 1] if c > 0 else self._prompt_last.expand(len(old.length))
        new.logits = self.runner.step(last_tok, new.cache)
        pos, b = c, cfg.block_size
        while pos < end:
            nxt = min(end, (pos // b + 1) * b)
            # Not final: keep the cache in step with t for later blocks.
            self._extend(new, nxt - pos, cfg, gen, last=False, keep_going=not final)
            self._apply_stop(new)
            pos = nxt
            if final and bool(new.finished.all()):
                break
        new.log_psi = self._log_psi(new, cfg, potential, gen, twist_fn, final=final)
        width = max(new.tokens.shape[1], old.tokens.shape[1])
        for s_ in (new, old):
            _pad_state(s_, width, self.runner.eos[0])
        a = cfg.alpha
        log_gamma_new = a * new.logp.sum(1).cpu().double().numpy() + new.log_psi
        log_gamma_old = a * old.logp.sum(1).cpu().double().numpy() + old.log_psi
        q_old = old.logq[:, c:].sum(1).cpu().double().numpy()
        q_new = new.logq[:, c:].sum(1).cpu().double().numpy()
        log_r = log_gamma_new - log_gamma_old + q_old - q_new
        accept = np.log(rng.random(len(log_r))) < log_r
        accept &= ~frozen.cpu().numpy()
        acc = torch.as_tensor(accept, device=st.tokens.device)
        for name in ("tokens", "logp", "logq", "finished", "length", "logits"):
            a_, b_ = getattr(new, name), getattr(old, name)
            shape = (-1,) + (1,) * (a_.ndim - 1)
            setattr(st, name, torch.where(acc.view(shape), a_, b_))
        # Rows of either cache are valid up to their own particle's fed tokens; padding the
        # shorter cache with zeros adds positions no later move reads for a movable row.
        n_pos = max(cache_length(new.cache), cache_length(old.cache))
        cache_pad(old.cache, n_pos)
        cache_pad(new.cache, n_pos)
        cache_merge(st.cache, new.cache, acc)
        st.reward = np.where(accept, new.reward, old.reward)
        st.log_psi = np.where(accept, new.log_psi, old.log_psi)
        return int(accept.sum()), int((~frozen).sum())

    # ---------------------------------------------------------------- decode
    @torch.no_grad()
    def decode_ids(
        self,
        prompt_ids: torch.Tensor,
        cfg: SMCConfig,
        potential: Potential | None = None,
        *,
        twist_fn: Callable | None = None,
        answer_fn: Callable[[str], str | None] | None = None,
        callback: Callable[[int, list[list[int]], np.ndarray, np.ndarray], None] | None = None,
        stop_fn: Callable[[str], bool] | None = None,
    ) -> SMCResult:
        """Run SMC from a prompt given as token ids (1-D).

        ``twist_fn(ids, finished) -> log psi`` replaces the rollout estimate of the lookahead
        twist by exact values. ``callback(t, ids, finished, log_weights)`` is called after
        each block is weighted (before resampling), e.g. to watch the intermediate targets.
        ``stop_fn(text) -> bool`` ends a particle at the end of the block in which its text
        first satisfies it (e.g. a stop string): completions then end at block boundaries.
        """
        t_start = time.perf_counter()
        runner = self.runner
        budget_before = Budget(**asdict(runner.budget))
        dev = runner.device
        gen = torch.Generator(device=dev).manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        prompt_ids = torch.as_tensor(prompt_ids)
        if prompt_ids.ndim == 2 and prompt_ids.shape[0] == 1:
            prompt_ids = prompt_ids[0]
        if prompt_ids.ndim != 1 or len(prompt_ids) == 0:
            raise LabcoreError(
                f"the prompt must be a non-empty 1-D sequence of token ids, got shape "
                f"{tuple(prompt_ids.shape)}"
            )
        prompt_ids = prompt_ids.long()
        vocab = runner.vocab_size
        if int(prompt_ids.min()) < 0 or int(prompt_ids.max()) >= vocab:
            raise LabcoreError(f"prompt token ids must lie in [0, {vocab})")
        if max(runner.eos) >= vocab:
            raise LabcoreError(f"EOS ids {runner.eos} lie outside the vocabulary ({vocab})")
        limit = getattr(runner.model.config, "max_position_embeddings", None)
        if limit is not None and len(prompt_ids) + cfg.max_new_tokens > limit:
            raise LabcoreError(
                f"prompt ({len(prompt_ids)} tokens) + max_new_tokens ({cfg.max_new_tokens}) "
                f"exceeds the model's context ({limit})"
            )
        if cfg.select == "vote" and answer_fn is None:
            raise LabcoreError("select='vote' needs an answer_fn")
        self._prompt_len = len(prompt_ids)
        self._stop_fn = stop_fn
        self._prompt_last = prompt_ids[-1:].to(dev)
        n = cfg.n_particles
        logits, cache = runner.prefill(prompt_ids, n)
        st = _State(
            tokens=torch.zeros(n, 0, dtype=torch.long, device=dev),
            logp=torch.zeros(n, 0, device=dev),
            logq=torch.zeros(n, 0, device=dev),
            finished=torch.zeros(n, dtype=torch.bool, device=dev),
            length=torch.zeros(n, dtype=torch.long, device=dev),
            logits=logits,
            cache=cache,
            reward=np.zeros(n),
            log_psi=np.zeros(n),
        )
        # psi_0 = 1 for all particles (they share the prompt), so that exp(log_z) estimates
        # the normaliser sum_y p(y)^alpha exp(lam r(y)) without bias.
        logw = np.zeros(n)
        log_z = 0.0
        n_resamples, accepted, proposed = 0, 0, 0
        ess_hist: list[float] = []
        while True:
            t = st.tokens.shape[1]
            k = min(cfg.block_size, cfg.max_new_tokens - t)
            last = t + k >= cfg.max_new_tokens
            prev_psi = st.log_psi
            lp_before = st.logp.sum(1)
            lq_before = st.logq.sum(1)
            self._extend(st, k, cfg, gen, last=last)
            self._apply_stop(st)
            done = last or bool(st.finished.all())
            st.log_psi = self._log_psi(st, cfg, potential, gen, twist_fn, final=done)
            inc = (cfg.alpha * (st.logp.sum(1) - lp_before) - (st.logq.sum(1) - lq_before)).cpu()
            inc = inc.double().numpy() + st.log_psi - prev_psi
            if cfg.max_logw_step is not None:
                inc = np.clip(inc, -cfg.max_logw_step, cfg.max_logw_step)
            logw = logw + inc
            if callback is not None:
                _, ids_now = self._texts_ids(st)
                callback(st.tokens.shape[1], ids_now, st.finished.cpu().numpy(), logw.copy())
            if done:
                if cfg.rejuvenate == "every_block":  # power sampling: moves on pi itself too
                    for _ in range(cfg.rejuvenation_steps):
                        a_, p_ = self._mh_move(st, cfg, potential, gen, rng, twist_fn, final=True)
                        accepted += a_
                        proposed += p_
                break
            e = ess(logw)
            ess_hist.append(e)
            resampled = False
            if e < cfg.ess_threshold * n:
                mx = logw.max()
                log_z += mx + math.log(np.exp(logw - mx).mean())
                idx = resample(logw, cfg.resampling, rng)
                st.select(torch.as_tensor(idx, device=dev))
                logw = np.zeros(n)
                n_resamples += 1
                resampled = True
            if cfg.rejuvenation_steps and (resampled or cfg.rejuvenate == "every_block"):
                for _ in range(cfg.rejuvenation_steps):
                    a_, p_ = self._mh_move(st, cfg, potential, gen, rng, twist_fn)
                    accepted += a_
                    proposed += p_
        mx = logw.max()
        log_z += mx + math.log(np.exp(logw - mx).mean())
        texts, ids = self._texts_ids(st)
        log_target = cfg.alpha * st.logp.sum(1).cpu().double().numpy() + cfg.lam * st.reward
        choice = self._select(cfg, logw, log_target, texts, answer_fn, rng)
        spent = Budget(**asdict(runner.budget))
        spent.tokens_generated -= budget_before.tokens_generated
        spent.forward_calls -= budget_before.forward_calls
        spent.token_forwards -= budget_before.token_forwards
        return SMCResult(
            text=texts[choice],
            token_ids=ids[choice],
            texts=texts,
            all_token_ids=ids,
            log_weights=logw.tolist(),
            rewards=st.reward.tolist(),
            log_target=log_target.tolist(),
            log_z=float(log_z),
            n_resamples=n_resamples,
            acceptance_rate=accepted / proposed if proposed else None,
            ess_history=ess_hist,
            budget=spent,
            time_s=time.perf_counter() - t_start,
            config=asdict(cfg),
        )

    @staticmethod
    def _select(cfg, logw, log_target, texts, answer_fn, rng) -> int:
        w = normalize_log_weights(logw)
        if cfg.select == "sample":
            return int(rng.choice(len(w), p=w))
        if cfg.select == "best":
            return int(np.argmax(log_target))
        if answer_fn is None:
            raise LabcoreError("select='vote' needs an answer_fn")
        return weighted_vote([answer_fn(t) for t in texts], w)

    def __call__(
        self, prompt: str, cfg: SMCConfig, potential: Potential | None = None, **kw
    ) -> SMCResult:
        """Run SMC from a text prompt (encoded with the tokenizer, no special handling: apply
        a chat template first with :func:`smcdecode.chat_prompt` if the model needs one)."""
        if self.tokenizer is None:
            raise LabcoreError("a text prompt needs a tokenizer; use decode_ids for token ids")
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids[0]
        return self.decode_ids(ids, cfg, potential, **kw)
