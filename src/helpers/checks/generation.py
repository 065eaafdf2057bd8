"""Checkers for notebooks 08-09 (generation): temperature, top-k, top-p, the sampler, a KV-cache step, its memory,
log-probs.

Each ``check_NAME(fn)`` calls the learner's ``fn`` on several cases, compares with the reference in
``helpers.generate`` / plain PyTorch, prints ✓/✗ per case and returns a ``CheckResult``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..generate import top_k_filter, top_p_filter
from ..model import GPTConfig
from ._core import Case, CheckResult, close, run_cases

__all__ = [
    "check_temperature_softmax",
    "check_top_k_filter",
    "check_top_p_filter",
    "check_sample",
    "check_kv_cache_step",
    "reference_kv_cache_step",
]


def _logits(shape: tuple[int, ...], seed: int, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


def check_temperature_softmax(fn: Callable) -> CheckResult:
    """``fn(logits [..., V], temperature > 0) -> probabilities [..., V]`` = softmax(logits / temperature)."""
    cases = []
    for name, logits, t in [
        ("T = 1 is the plain softmax", _logits((6,), 0), 1.0),
        ("T = 0.5 sharpens", _logits((6,), 1), 0.5),
        ("T = 2 flattens", _logits((2, 6), 2), 2.0),
        ("large logits stay finite (subtract the max)", torch.tensor([1000.0, 999.0, 990.0]), 0.7),
    ]:
        cases.append(Case(name, (logits.clone(), t), torch.softmax(logits.double() / t, dim=-1).float(), atol=1e-6))
    return run_cases("temperature_softmax", fn, cases)


def _same_filter(expected: torch.Tensor):
    def predicate(got) -> tuple[bool, str]:
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return False, f"expected a tensor of shape {tuple(expected.shape)}, got {getattr(got, 'shape', got)!r}"
        kept, want = torch.isfinite(got), torch.isfinite(expected)
        if not torch.equal(kept, want):
            return False, f"kept {int(kept.sum())} tokens where the answer keeps {int(want.sum())} (or other ones)"
        if bool((got[~kept] > 0).any()):
            return False, "dropped tokens must be -inf, not +inf"
        return close(got[kept], expected[want])

    return predicate


def check_top_k_filter(fn: Callable) -> CheckResult:
    """``fn(logits [..., V], k) -> logits`` with all but the k largest of each row set to ``-inf``."""
    cases = []
    for name, logits, k in [
        ("k = 3 of 8", _logits((8,), 3), 3),
        ("k = 1 keeps only the argmax", _logits((8,), 4), 1),
        ("k = V keeps everything", _logits((8,), 5), 8),
        ("a batch of rows, each filtered on its own", _logits((3, 10), 6), 4),
    ]:
        cases.append(Case(name, (logits.clone(), k), predicate=_same_filter(top_k_filter(logits, k))))
    return run_cases("top_k_filter", fn, cases)


def check_top_p_filter(fn: Callable) -> CheckResult:
    """``fn(logits [..., V], p) -> logits`` keeping the fewest most likely tokens whose probability reaches p."""
    peaked = torch.tensor([5.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    cases = []
    for name, logits, p in [
        ("p = 0.9", _logits((10,), 7), 0.9),
        ("p = 0.5", _logits((10,), 8), 0.5),
        ("a peaked distribution: one token already covers p", peaked, 0.9),
        ("p = 1.0 keeps everything", _logits((10,), 9), 1.0),
        ("a batch of rows", _logits((3, 12), 10), 0.7),
    ]:
        cases.append(Case(name, (logits.clone(), p), predicate=_same_filter(top_p_filter(logits, p))))
    return run_cases("top_p_filter", fn, cases)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v


# ---------------------------------------------------------------------- the sampler (notebook 08, piece "sample")
_TINY = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
_NOT_CROPPED = "<the model was given more than block_size tokens>"


def _tiny_model():
    """A small random GPT (helpers.pieces.GPT, forward -> (logits, loss)) with peaked next-token distributions."""
    from ..pieces.gpt import GPT

    with torch.random.fork_rng():
        torch.manual_seed(1234)
        model = GPT(_TINY)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0.0, 0.5)  # larger than GPT-2's init: the logits spread, so mistakes show
    return model.eval()


def _sampler(crop="last", position=-1, temperature_after=False, k_shift=0, greedy=False,
             global_rng=False):
    """The reference sampler, or one of its common mistakes (the mistake models of ``check_sample``)."""

    def run(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        block = model.config.block_size
        for _ in range(max_new_tokens):
            ctx = idx[:, -block:] if crop == "last" else idx[:, :block] if crop == "first" else idx
            logits = model(ctx)[0][:, position, :]
            if not temperature_after:
                logits = logits / temperature
            if top_k is not None and top_k + k_shift >= 1:
                logits = top_k_filter(logits, top_k + k_shift)
            probs = torch.softmax(logits, dim=-1)
            if temperature_after:
                probs = probs / temperature
            if greedy:
                nxt = probs.argmax(dim=-1, keepdim=True)
            else:
                nxt = torch.multinomial(probs, 1, generator=None if global_rng else generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx

    return run


def _run_sampler(fn, model):
    """Call a sampler on the tiny model with a fresh generator and the global RNG seeded apart from it."""

    def run(idx, max_new_tokens, temperature, top_k, seed):
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(10_000 + seed)  # a sampler that ignores `generator` draws from here
            try:
                return fn(model, idx, max_new_tokens, temperature=temperature, top_k=top_k,
                          generator=torch.Generator().manual_seed(seed))
            except (ValueError, IndexError, RuntimeError) as e:
                if idx.shape[1] + max_new_tokens > model.config.block_size and "block_size" in str(e):
                    return _NOT_CROPPED
                raise

    return run


def _same_tokens(expected: torch.Tensor, prompt: torch.Tensor):
    def predicate(got) -> tuple[bool, str]:
        if isinstance(got, str) and got == _NOT_CROPPED:
            return False, ("the model was given more than block_size tokens: crop the context to the last "
                           "block_size tokens (idx[:, -block_size:]) before each forward pass")
        if not isinstance(got, torch.Tensor):
            return False, f"expected a tensor of token ids, got {type(got).__name__}"
        if got.shape != expected.shape:
            return False, f"shape {tuple(got.shape)}, expected {tuple(expected.shape)} (the prompt, then the new tokens)"
        if not torch.equal(got[:, : prompt.shape[1]].long(), prompt):
            return False, "the output must start with the prompt, unchanged"
        diff = (got.long() != expected).nonzero()
        if len(diff):
            return False, f"token {int(diff[0, 1]) - prompt.shape[1] + 1} of the new ones differs from the reference's"
        return True, "the same tokens as the reference, token for token"

    return predicate


def check_sample(fn: Callable) -> CheckResult:
    """``fn(model, idx [B, T], max_new_tokens, temperature=1.0, top_k=None, generator=None) -> [B, T + n]``.

    Each step: crop the context to the last ``model.config.block_size`` tokens; ``logits, _ = model(ctx)``;
    the last position's logits ``/ temperature``; keep the ``top_k`` largest; softmax; one
    ``torch.multinomial(probs, 1, generator=generator)``; append. Compared token for token with
    ``helpers.pieces.sample`` on a small random GPT under fixed generators; the common mistakes are named.
    """
    from ..pieces.sampling import sample

    model = _tiny_model()
    g = torch.Generator().manual_seed(7)
    prompts = {name: torch.randint(0, _TINY.vocab_size, shape, generator=g)
               for name, shape in [("a", (1, 3)), ("b", (1, 4)), ("c", (2, 2)), ("d", (1, 5))]}
    cases = []
    for name, key, n, t, k, seed in [
        ("τ = 1, no top-k, 12 new tokens", "a", 12, 1.0, None, 0),
        ("τ = 0.5 (sharper), 12 new tokens", "b", 12, 0.5, None, 0),
        ("τ = 2 with top_k = 3", "a", 12, 2.0, 3, 4),
        ("a batch of 2 prompts, 10 new tokens: past block_size = 8", "c", 10, 1.0, None, 3),
        ("top_k = 1 is greedy, past block_size", "d", 6, 1.0, 1, 4),
        ("max_new_tokens = 0 returns the prompt", "b", 0, 1.0, None, 5),
    ]:
        idx = prompts[key]
        want = _run_sampler(sample, model)(idx.clone(), n, t, k, seed)
        cases.append(Case(name, (idx.clone(), n, t, k, seed), predicate=_same_tokens(want, idx)))
    mistakes = [
        ("the temperature applied after the softmax (multinomial renormalises, so dividing probabilities by τ "
         "changes nothing): divide the logits by τ", _sampler(temperature_after=True)),
        ("top-k keeping k + 1 tokens", _sampler(k_shift=1)),
        ("top-k keeping k - 1 tokens", _sampler(k_shift=-1)),
        ("argmax (greedy) instead of a draw with torch.multinomial", _sampler(greedy=True)),
        ("the logits of the first position instead of the last (logits[:, -1, :])", _sampler(position=0)),
        ("`generator` ignored: pass generator=generator to torch.multinomial, or the same seed gives other text",
         _sampler(global_rng=True)),
        ("the context cropped to the first block_size tokens instead of the last (idx[:, -block_size:])",
         _sampler(crop="first")),
    ]
    mistakes = [(name, _run_sampler(wrong, model)) for name, wrong in mistakes]
    return run_cases("sample", _run_sampler(fn, model), cases, mistakes=mistakes)


def reference_kv_cache_step(q_new, k_new, v_new, k_cache, v_cache):
    """One decoding step with a cache: append the new key and value (``[B, H, 1, D]``) to the caches
    (``[B, H, T, D]``), let the new query attend to every cached position; returns ``(out, k_cache, v_cache)``."""
    k_all, v_all = torch.cat([k_cache, k_new], dim=-2), torch.cat([v_cache, v_new], dim=-2)
    return _attend(q_new, k_all, v_all), k_all, v_all


def check_kv_cache_step(fn: Callable) -> CheckResult:
    """``fn(q_new, k_new, v_new, k_cache, v_cache) -> (out, k_cache, v_cache)``: one decoding step with a cache.

    ``q_new, k_new, v_new`` are ``[B, H, 1, D]`` (the new token), the caches ``[B, H, T, D]`` (the past, or
    ``T = 0``). Append the new key and value to the caches, then let the new query attend to every cached
    position (no mask needed: the past is all visible). Returns ``out [B, H, 1, D]`` and the caches
    ``[B, H, T + 1, D]``.
    """
    cases = []
    for name, (B, H, T, D), seed in [
        ("first token (empty cache)", (1, 2, 0, 4), 11),
        ("one head, 5 cached positions", (1, 1, 5, 8), 12),
        ("batch 2, 3 heads, 7 cached positions", (2, 3, 7, 4), 13),
    ]:
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(B, H, 1, D, generator=g) for _ in range(3))
        kc, vc = torch.randn(B, H, T, D, generator=g), torch.randn(B, H, T, D, generator=g)
        k_all, v_all = torch.cat([kc, k], dim=-2), torch.cat([vc, v], dim=-2)
        want = (_attend(q, k_all, v_all), k_all, v_all)

        def predicate(got, want=want) -> tuple[bool, str]:
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                return False, "return a tuple (out, k_cache, v_cache)"
            for label, g_, w_ in zip(("out", "k_cache", "v_cache"), got, want, strict=True):
                ok, why = close(g_, w_)
                if not ok:
                    return False, f"{label}: {why}"
            return True, "matches (the cache grew by one and the new query saw every position)"

        cases.append(Case(name, (q, k, v, kc, vc), predicate=predicate))
    return run_cases("kv_cache_step", fn, cases, mistakes=_KV_MISTAKES)


def _kv_wrong(appended=True, returned=True, sqrt_d=True, mask=None):
    def wrong(q, k, v, kc, vc):
        k_all, v_all = torch.cat([kc, k], dim=-2), torch.cat([vc, v], dim=-2)
        keys, values = (k_all, v_all) if appended else (kc, vc)
        scores = q @ keys.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if sqrt_d else 1.0)
        n = keys.shape[-2]
        if mask == "square":  # a [T+1, T+1] causal mask broadcasts the one query row to T+1 rows
            scores = scores.masked_fill(torch.tril(torch.ones(n, n, dtype=torch.bool)) == 0, float("-inf"))
        elif mask == "row":  # tril of a [1, T+1] matrix: the new token sees only position 0
            scores = scores.masked_fill(torch.tril(torch.ones(1, n, dtype=torch.bool)) == 0, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ values
        return (out, k_all, v_all) if returned else (out, kc, vc)

    return wrong


_KV_MISTAKES = [
    ("the new key and value not appended to the caches it returns (return the grown caches)",
     _kv_wrong(returned=False)),
    ("the new key and value not appended before attending (the new token must see itself too)",
     _kv_wrong(appended=False)),
    ("a causal mask applied to the single new query: a [T+1, T+1] mask broadcasts out to T+1 rows "
     "(the newest token sees every cached position: no mask is needed)", _kv_wrong(mask="square")),
    ("a causal mask applied to the single new query: tril of a [1, T+1] row lets it see position 0 only "
     "(the newest token sees every cached position: no mask is needed)", _kv_wrong(mask="row")),
    ("√d missing: divide the scores by √D", _kv_wrong(sqrt_d=False)),
]


