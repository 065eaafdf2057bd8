"""Generating text from a GPT: greedy, temperature, top-k, top-p, repetition penalty, beam search; KV cache.

``generate`` returns the prompt followed by the new ids. Sampling draws only from the ``generator`` it is
given (PyTorch's global generator when it is None), so the same seed gives the same text; and the cached
path gives the same tokens as the uncached one. ``beam_search`` follows Hugging Face's
``generate(num_beams=..., do_sample=False)`` step for step (length penalty, early stopping, an end token).

Shapes: ``B`` batch, ``T`` prompt length, ``V`` vocabulary, ``N`` new tokens, ``K`` beams.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .model import GPT, KVCache

__all__ = [
    "generate",
    "generate_batch",
    "beam_search",
    "filter_logits",
    "top_k_filter",
    "top_p_filter",
    "apply_repetition_penalty",
    "sequence_log_prob",
]

_NEG = -1.0e9  # "impossible" score, as Hugging Face's beam search uses


# ---------------------------------------------------------------------- logits processors
def _check_logits(logits: object) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.dtype.is_floating_point:
        got = f"{logits.dtype} tensor" if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point tensor [..., V], got {got}")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have a vocabulary dimension [..., V] with V >= 1, got {tuple(logits.shape)}")


def _check_top_k(top_k: object) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")


def _check_top_p(top_p: object) -> None:
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")


def _check_penalty(penalty: object) -> None:
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not penalty > 0:
        raise ValueError(f"repetition_penalty must be a number > 0 (1.0 = no penalty), got {penalty!r}")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row, set the others to ``-inf``. ``logits [..., V]`` → same shape.

    Ties with the k-th value are all kept (as Hugging Face's ``TopKLogitsWarper``).
    """
    _check_logits(logits)
    _check_top_k(k)
    k = min(k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability reaches ``p``.

    ``logits [..., V]`` → same shape, dropped tokens at ``-inf``. The most likely token is always kept.
    """
    _check_logits(logits)
    _check_top_p(p)
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    probs = F.softmax(sorted_logits, dim=-1)
    # drop a token when the tokens ranked before it already cover p of the mass
    drop_sorted = probs.cumsum(dim=-1) - probs >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Apply top-k, then top-p (either may be None). ``logits [..., V]`` → same shape, dropped at ``-inf``."""
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def apply_repetition_penalty(logits: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make tokens already in ``ids`` less likely: divide their positive logits by ``penalty``, multiply the
    negative ones (CTRL's rule, as ``transformers.RepetitionPenaltyLogitsProcessor``).

    ``logits [B, V]``, ``ids [B, T]`` (the prompt and what was generated) → ``[B, V]``.
    """
    _check_logits(logits)
    _check_penalty(penalty)
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype.is_floating_point:
        raise ValueError(f"ids must be an integer tensor [B, T], got {getattr(ids, 'shape', type(ids).__name__)}")
    if logits.dim() != 2 or logits.shape[0] != ids.shape[0]:
        raise ValueError(f"logits must be [B, V] with B = {ids.shape[0]} (from ids), got {tuple(logits.shape)}")
    return _penalise(logits, ids, float(penalty))


def _penalise(logits: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    if penalty == 1.0:
        return logits
    score = torch.gather(logits, 1, ids)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return logits.scatter(1, ids, score)


# ---------------------------------------------------------------------- validation (once per call)
def _check_common(model: object, idx: object, max_new_tokens: object) -> None:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    if not isinstance(idx, torch.Tensor) or idx.dtype.is_floating_point or idx.dtype == torch.bool:
        got = f"{idx.dtype} tensor" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise TypeError(f"idx must be an integer tensor of token ids [B, T], got {got}")
    if idx.dim() != 2 or idx.shape[0] == 0 or idx.shape[1] == 0:
        raise ValueError(f"idx must have shape [B, T] with B, T >= 1, got {tuple(idx.shape)}; use idx[None]")
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= model.config.vocab_size:
        raise ValueError(f"token ids must be in [0, {model.config.vocab_size - 1}], got {lo if lo < 0 else hi}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")


# ---------------------------------------------------------------------- one decoding step
def _next_logits(model: GPT, seq: torch.Tensor, L: int, cache: KVCache | None) -> torch.Tensor:
    """Logits ``[B, V]`` for the token after ``seq[:, :L]``; with a cache, feed only what it has not seen."""
    block = model.config.block_size
    if cache is None:
        return model(seq[:, max(0, L - block) : L]).logits[:, -1, :]
    if cache.length == 0 or L > block:
        # First step, or the sequence outgrew the learned positions: the window slides, every position
        # shifts, so the cache must be rebuilt from the last block_size tokens (as the uncached path sees them).
        cache.reset()
        return model(seq[:, max(0, L - block) : L], kv_cache=cache).logits[:, -1, :]
    return model(seq[:, L - 1 : L], kv_cache=cache).logits[:, -1, :]


def generate(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    repetition_penalty: float = 1.0,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Extend ``idx [B, T]`` by ``max_new_tokens`` tokens; returns ``[B, T + max_new_tokens]``.

    Each step: logits of the last position → repetition penalty → ``/ temperature`` → top-k → top-p →
    softmax → one draw from ``generator``. ``temperature=0`` is greedy (argmax; top-k/top-p change nothing).
    When the sequence outgrows ``block_size`` the window slides: the model sees the last ``block_size``
    tokens (and the cache is rebuilt for that window), so any prompt length and any length of output work.

    ``attention_mask`` ``[B, T]`` (1: a real token, 0: padding on the left) generates for prompts of different
    lengths at once (``generate_batch`` pads them): padding is never attended to and each row's positions
    count only its own tokens, so every row gets what it would get alone. The window does not slide then:
    ``T + max_new_tokens`` must fit in ``block_size``.
    """
    _check_common(model, idx, max_new_tokens)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 means greedy), got {temperature!r}")
    _check_top_k(top_k)
    _check_top_p(top_p)
    _check_penalty(repetition_penalty)
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache must be True or False, got {use_cache!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    B, T = idx.shape
    mask = _check_padding(attention_mask, idx, max_new_tokens, model.config.block_size)
    with torch.inference_mode():  # validated once above; the loop below does no checks of its own
        seq = idx.new_empty((B, T + max_new_tokens), dtype=torch.long)  # preallocated: no torch.cat per step
        seq[:, :T] = idx
        cache = KVCache(model.config.n_layer, capacity=min(T + max_new_tokens, model.config.block_size))
        cache = cache if use_cache else None
        penalty = float(repetition_penalty)
        if mask is not None:
            full = torch.ones(B, T + max_new_tokens, dtype=torch.bool, device=idx.device)
            full[:, :T] = mask
            pos = (full.long().cumsum(1) - 1).clamp(min=0)  # each row counts its own tokens from 0
            first = seq[torch.arange(B), mask.long().argmax(1)]  # each row's first real token
            seq[:, :T] = torch.where(mask, seq[:, :T], first[:, None])  # so the penalty sees no padding id
        for L in range(T, T + max_new_tokens):
            if mask is None:
                logits = _next_logits(model, seq, L, cache)
            else:
                start = 0 if cache is None or L == T else L - 1
                logits = model(seq[:, start:L], kv_cache=cache, attention_mask=full[:, :L],
                               position_ids=pos[:, start:L]).logits[:, -1, :]
            logits = _penalise(logits.float(), seq[:, :L], penalty)
            if temperature == 0:
                nxt = logits.argmax(dim=-1)
            else:
                logits = filter_logits(logits / temperature, top_k, top_p)
                nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)[:, 0]
            seq[:, L] = nxt
        if mask is not None:
            seq[:, :T] = torch.where(mask, seq[:, :T], idx)  # the padding as it was given
    return seq.clone()  # a normal tensor again (inference tensors cannot enter autograd later)


def _check_padding(attention_mask: object, idx: torch.Tensor, max_new_tokens: int, block: int) -> torch.Tensor | None:
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != idx.shape:
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(f"attention_mask must be shaped like idx {tuple(idx.shape)}, got {got}")
    if attention_mask.dtype.is_floating_point or ((attention_mask != 0) & (attention_mask != 1)).any():
        raise ValueError("attention_mask must hold 0 (padding) and 1 (a real token) only, as integers or bools")
    mask = attention_mask.bool()
    if not mask[:, -1].all() or (mask[:, 1:].long() < mask[:, :-1].long()).any():
        raise ValueError("attention_mask must pad on the left: each row is 0 ... 0 1 ... 1, ending on a real token")
    if idx.shape[1] + max_new_tokens > block:
        raise ValueError(f"with attention_mask the window does not slide: prompt ({idx.shape[1]}) + max_new_tokens "
                         f"({max_new_tokens}) must be at most block_size={block}")
    return mask


def generate_batch(model: GPT, prompts, max_new_tokens: int, pad_id: int = 0, **kwargs) -> list[torch.Tensor]:
    """Generate for several prompts of different lengths at once: left-padded into one batch, one forward pass
    per step for all of them. ``prompts`` is a list of 1-D tensors (or lists) of ids; returns one 1-D tensor per
    prompt (the prompt followed by its new tokens). ``kwargs`` go to ``generate`` (temperature, top_k, ...)."""
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of 1-D id tensors or lists, got {type(prompts).__name__}")
    rows = [torch.as_tensor(p, dtype=torch.long) for p in prompts]
    for i, r in enumerate(rows):
        if r.dim() != 1 or r.numel() == 0:
            raise ValueError(f"prompt {i} must be a non-empty 1-D sequence of ids, got shape {tuple(r.shape)}")
    T = max(r.numel() for r in rows)
    idx = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        idx[i, T - r.numel():], mask[i, T - r.numel():] = r, 1
    out = generate(model, idx, max_new_tokens, attention_mask=mask, **kwargs)
    return [out[i, T - r.numel():] for i, r in enumerate(rows)]


# ---------------------------------------------------------------------- scoring
def sequence_log_prob(model: GPT, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Sum of ``log p(ids[:, t] | ids[:, :t])`` over ``t >= start``: how likely the model finds a continuation.

    ``ids [B, T]`` with ``1 <= start <= T <= block_size`` → ``[B]`` (nats; 0 when ``start == T``).
    """
    _check_common(model, ids, 0)
    T = ids.shape[1]
    if isinstance(start, bool) or not isinstance(start, int) or not 1 <= start <= T:
        raise ValueError(f"start must be an int in [1, {T}], got {start!r}")
    if T > model.config.block_size:
        raise ValueError(f"ids of length {T} exceed block_size={model.config.block_size}")
    with torch.inference_mode():
        logp = F.log_softmax(model(ids).logits.float(), dim=-1)  # [B, T, V]
        picked = logp[:, start - 1 : T - 1].gather(-1, ids[:, start:, None])[..., 0]  # [B, T - start]
        return picked.sum(dim=-1).clone()


# ---------------------------------------------------------------------- beam search
def beam_search(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float = 1.0,
    early_stopping: bool | str = False,
    eos_token_id: int | None = None,
    repetition_penalty: float = 1.0,
    use_cache: bool = True,
    return_scores: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``num_beams`` most likely partial continuations at each step; return the best finished one.

    ``idx [B, T]`` → ``[B, T + n]`` with ``n <= max_new_tokens`` (shorter when every good beam ended with
    ``eos_token_id``; rows shorter than the longest are padded with ``eos_token_id``). A finished beam's score is
    ``sum of log-probs / n_generated ** length_penalty``. ``early_stopping``: True stops once ``num_beams``
    beams have finished; False and ``"never"`` are Hugging Face's two heuristics for when no running beam can
    beat the finished ones. Decisions match ``transformers``' ``generate(num_beams=K, do_sample=False)``
    (including the repetition penalty, which Hugging Face applies to log-probabilities in beam search).
    With ``return_scores``, also returns the best beams' scores ``[B]``.
    """
    _check_common(model, idx, max_new_tokens)
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be an int >= 1, got {num_beams!r}")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
        raise TypeError(f"length_penalty must be a number, got {length_penalty!r}")
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    if eos_token_id is not None and (
        isinstance(eos_token_id, bool) or not isinstance(eos_token_id, int)
        or not 0 <= eos_token_id < model.config.vocab_size
    ):
        raise ValueError(f"eos_token_id must be None or a token id in [0, {model.config.vocab_size - 1}], "
                         f"got {eos_token_id!r}")
    _check_penalty(repetition_penalty)
    if not isinstance(use_cache, bool):
        raise TypeError(f"use_cache must be True or False, got {use_cache!r}")
    with torch.inference_mode():
        rows = [
            _beam_search_row(model, idx[b : b + 1], max_new_tokens, num_beams, float(length_penalty),
                             early_stopping, eos_token_id, float(repetition_penalty), use_cache)
            for b in range(idx.shape[0])
        ]
        width = max(r[0].shape[0] for r in rows)
        fill = eos_token_id if eos_token_id is not None else 0
        out = idx.new_full((idx.shape[0], width), fill, dtype=torch.long)
        for b, (seq, _) in enumerate(rows):
            out[b, : seq.shape[0]] = seq
        scores = torch.tensor([s for _, s in rows])
    out = out.clone()
    return (out, scores.clone()) if return_scores else out


def _beam_search_row(
    model: GPT, prompt: torch.Tensor, max_new: int, K: int, lp: float, early_stopping: bool | str,
    eos: int | None, penalty: float, use_cache: bool,
) -> tuple[torch.Tensor, float]:
    """Beam search for one prompt ``[1, T]``; returns (best sequence ``[T + n]``, its score)."""
    T = prompt.shape[1]
    max_len = T + max_new
    if max_new == 0:
        return prompt[0].clone(), 0.0
    C = 2 * K  # candidates kept per step: enough that K survive even if K of them just ended
    dev = prompt.device
    running = prompt.new_zeros((K, max_len))  # the K live beams
    running[:, :T] = prompt
    run_scores = torch.full((K,), _NEG, device=dev)
    run_scores[0] = 0.0  # only beam 0 is real at first, so the K beams do not start as K copies
    fin = running.clone()  # the K best finished beams so far, best first
    fin_scores = torch.full((K,), _NEG, device=dev)
    fin_len = torch.zeros(K, dtype=torch.long)
    fin_done = torch.zeros(K, dtype=torch.bool, device=dev)
    improvable = True  # can a running beam still beat the worst finished one?
    cache = KVCache(model.config.n_layer, capacity=min(max_len, model.config.block_size)) if use_cache else None
    cur = T
    # The prompt is the same for every beam: run it once, then copy its cache to the K beams.
    logits = _next_logits(model, prompt, T, cache).float().expand(K, -1)
    if cache is not None:
        cache.reorder(torch.zeros(K, dtype=torch.long, device=dev))
    while True:
        V = logits.shape[-1]
        if K == 1:  # one beam is greedy search, and Hugging Face then penalises logits, not log-probs
            logp = F.log_softmax(_penalise(logits, running[:, :cur], penalty), dim=-1)
        else:
            logp = _penalise(F.log_softmax(logits, dim=-1), running[:, :cur], penalty)
        total = (logp + run_scores[:, None]).reshape(-1)  # [K * V]
        cand_scores, cand = torch.topk(total, C)  # [C]
        src, tok = cand // V, cand % V
        cand_seqs = running[src].clone()
        cand_seqs[:, cur] = tok
        hits = torch.full((C,), cur + 1 >= max_len, dtype=torch.bool, device=dev)
        if eos is not None:
            hits |= tok == eos
        # the K best candidates that did not just end keep running
        keep = torch.topk(cand_scores + hits.float() * _NEG, K).indices
        new_running, new_scores, new_src = cand_seqs[keep], (cand_scores + hits.float() * _NEG)[keep], src[keep]
        # candidates among the top K that just ended compete for the K finished slots
        top_k_mask = torch.arange(C, device=dev) < K
        fin_cand = cand_scores / float(cur + 1 - T) ** lp
        if bool(fin_done.all()) and early_stopping is True:
            fin_cand = fin_cand + _NEG
        if not improvable:
            fin_cand = fin_cand + _NEG
        fin_cand = fin_cand + (~(hits & top_k_mask)).float() * _NEG
        merged_scores = torch.cat([fin_scores, fin_cand])
        order = torch.topk(merged_scores, K).indices
        fin = torch.cat([fin, cand_seqs])[order]
        fin_scores = merged_scores[order]
        fin_len = torch.cat([fin_len, torch.full((C,), cur + 1 - T, dtype=torch.long)])[order]
        fin_done = torch.cat([fin_done, hits & top_k_mask])[order]
        running, run_scores = new_running, new_scores
        cur += 1
        # Hugging Face's heuristic: the best running score at the hypothetical best length vs the worst finished
        best_len = (max_len - T) if (early_stopping == "never" and lp > 0.0) else (cur - T)
        best_possible = float(run_scores[0]) / float(best_len) ** lp
        worst_fin = float(fin_scores.min()) if bool(fin_done.all()) else _NEG
        improvable = improvable and best_possible > worst_fin
        greedy_done = K == 1 and bool(hits[0])  # greedy stops at its first end token
        if not improvable or (bool(fin_done.all()) and early_stopping is True) or bool(hits.all()) or greedy_done:
            break
        if cache is not None:
            cache.reorder(new_src)  # each surviving beam continues from its parent's keys and values
        logits = _next_logits(model, running, cur, cache).float()
    n = int(fin_len[0])
    return fin[0, : T + n].clone(), float(fin_scores[0])
