"""Speculative decoding (Leviathan et al. 2023; Chen et al. 2023), greedy: a small model drafts, the big one checks.

A cheap *draft* model proposes ``k`` tokens one at a time (greedily, with its own KV cache). The *target* model
then scores all ``k`` proposals in ONE forward pass: fed ``[last token, d_1, ..., d_k]`` after its cache, its
logits at those ``k + 1`` positions are its own greedy choices ``t_1, ..., t_{k+1}`` for every prefix at once.
The longest run with ``d_i == t_i`` is accepted, then the target's own token ``t_{n+1}`` is appended: the
correction at the first disagreement, or a bonus token when all ``k`` agree. So every round costs one target
pass and yields between 1 and ``k + 1`` tokens, and the output is exactly the target's greedy output: every
token kept is one the target itself chose. A good draft only makes it faster; a bad one only makes it slower.

Both caches are cut back (``KVCache.truncate``) after every round to the positions that were kept, so the
rejected drafts leave no trace in either model.

Shapes: ``T`` prompt length, ``N`` new tokens, ``V`` vocabulary (shared by the two models).
"""

from __future__ import annotations

import torch

from .model import GPT, KVCache

__all__ = ["speculative_generate", "accept_draft"]


def _check(target: object, draft: object, idx: object, max_new_tokens: object, k: object) -> None:
    for name, m in (("target", target), ("draft", draft)):
        if not isinstance(m, GPT):
            raise TypeError(f"{name} must be a helpers.model.GPT, got {type(m).__name__}")
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError(
            f"target and draft must share one vocabulary: target has vocab_size={target.config.vocab_size}, "
            f"draft {draft.config.vocab_size} (train the draft with the target's tokenizer)"
        )
    if not isinstance(idx, torch.Tensor) or idx.dtype.is_floating_point or idx.dtype.is_complex \
            or idx.dtype == torch.bool:
        got = f"{idx.dtype} tensor" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise TypeError(f"idx must be an integer tensor of token ids [1, T], got {got}")
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx must have shape [1, T] with T >= 1, got {tuple(idx.shape)}; use idx[None]")
    if idx.shape[0] != 1:
        raise ValueError(
            f"speculative_generate decodes one sequence at a time (batch size 1), got batch size {idx.shape[0]}: "
            "rows would accept different numbers of tokens; call it once per row"
        )
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= target.config.vocab_size:
        raise ValueError(f"token ids must be in [0, {target.config.vocab_size - 1}], got {lo if lo < 0 else hi}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (draft tokens proposed per round) must be an int >= 1, got {k!r}")
    block = min(target.config.block_size, draft.config.block_size)
    total = idx.shape[1] + max_new_tokens
    if total > block:
        raise ValueError(
            f"prompt ({idx.shape[1]}) + max_new_tokens ({max_new_tokens}) = {total} tokens exceed the context: "
            f"min(block_size of target {target.config.block_size}, of draft {draft.config.block_size}) = {block}. "
            "speculative_generate does not slide the window (helpers.generate.generate does): shorten the prompt "
            "or ask for fewer tokens"
        )
    for name, m in (("target", target), ("draft", draft)):
        dev = next(m.parameters()).device
        if dev != idx.device:
            raise ValueError(f"idx is on {idx.device} but the {name} model is on {dev}: put all three on one device")


def accept_draft(draft: torch.Tensor, target: torch.Tensor) -> tuple[int, list[int]]:
    """The acceptance rule of greedy speculative decoding. ``draft`` holds the ``k`` proposed tokens, ``target`` the
    target's own greedy choice at each of the ``k + 1`` positions of its verifying pass. Returns ``(n, kept)``:
    the length of the longest agreeing prefix, and the tokens kept this round (those ``n`` proposals, then
    ``target[n]``: the target's correction at the first disagreement, or its bonus token when all ``k`` agree)."""
    if not isinstance(draft, torch.Tensor) or not isinstance(target, torch.Tensor) or draft.dim() != 1 \
            or target.dim() != 1 or len(target) != len(draft) + 1:
        got = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in (draft, target)]
        raise ValueError(f"need draft [k] and target [k + 1] token tensors, got {got[0]} and {got[1]}")
    n = int((draft == target[:-1]).long().cumprod(dim=0).sum()) if len(draft) else 0
    return n, [int(t) for t in draft[:n]] + [int(target[n])]


def speculative_generate(
    target: GPT, draft: GPT, idx: torch.Tensor, max_new_tokens: int, k: int = 4
) -> tuple[torch.Tensor, dict]:
    """Extend ``idx [1, T]`` by exactly ``max_new_tokens`` tokens, greedily, with ``draft`` proposing ``k`` a round.

    The tokens are those of ``generate(target, idx, max_new_tokens, temperature=0)``; only the cost differs.
    Needs ``T + max_new_tokens <= min(target.config.block_size, draft.config.block_size)`` (no sliding window).
    The last rounds propose fewer than ``k`` tokens (never more than are still needed, less one for the target's
    own token), so no round overshoots; the result is cut to ``T + max_new_tokens`` all the same.

    Returns ``(tokens [1, T + max_new_tokens], stats)`` with ``stats``:

    - ``target_passes``: forward passes of the target (= rounds; the first one also reads the prompt),
    - ``draft_passes``: forward passes of the draft (one per proposed token),
    - ``proposed``, ``accepted``: draft tokens proposed and accepted (``accepted <= proposed``),
    - ``acceptance_rate``: ``accepted / proposed`` (0.0 when nothing was proposed),
    - ``tokens_per_target_pass``: ``max_new_tokens / target_passes`` (plain greedy decoding: 1.0).
    """
    _check(target, draft, idx, max_new_tokens, k)
    T = idx.shape[1]
    end = T + max_new_tokens
    stats = {"target_passes": 0, "draft_passes": 0, "proposed": 0, "accepted": 0}
    with torch.inference_mode():
        seq = idx.new_empty((1, end), dtype=torch.long)  # drafts are written in place; rejected ones overwritten
        seq[:, :T] = idx
        t_cache = KVCache(target.config.n_layer, capacity=end)
        d_cache = KVCache(draft.config.n_layer, capacity=end)
        L = T  # tokens kept so far; each cache holds at most the first L - 1 of them between rounds
        while L < end:
            kk = min(k, end - L - 1)  # the target adds one token of its own: propose no more than still needed
            # 1. the draft proposes kk tokens, greedily (its first pass catches up on what it has not seen)
            for i in range(kk):
                logits = draft(seq[:, d_cache.length : L + i], kv_cache=d_cache).logits[:, -1]
                seq[:, L + i] = logits.float().argmax(dim=-1)
            # 2. the target scores them all in one pass: its greedy choice after seq[:L + i] for i = 0..kk
            logits = target(seq[:, t_cache.length : L + kk], kv_cache=t_cache).logits[0, -(kk + 1) :]
            choice = logits.float().argmax(dim=-1)  # [kk + 1]
            # 3. keep the longest agreeing prefix, then the target's own token (correction, or bonus if all agree)
            n, _ = accept_draft(seq[0, L : L + kk], choice)
            seq[0, L + n] = choice[n]
            stats["target_passes"] += 1
            stats["draft_passes"] += kk
            stats["proposed"] += kk
            stats["accepted"] += n
            L += n + 1
            # 4. forget the rejected positions: both caches keep only kept tokens (the newest one is fed next round)
            t_cache.truncate(L - 1)
            d_cache.truncate(min(d_cache.length, L - 1))
        out = seq[:, :end]
    stats["acceptance_rate"] = stats["accepted"] / stats["proposed"] if stats["proposed"] else 0.0
    stats["tokens_per_target_pass"] = max_new_tokens / stats["target_passes"] if stats["target_passes"] else 0.0
    return out.clone(), stats  # a normal tensor again (inference tensors cannot enter autograd later)
