"""Generating text from a GPT: greedy, temperature, top-k and top-p sampling, with or without a KV cache.

``generate`` returns the prompt followed by the new ids. Sampling draws only from the ``generator`` it is
given, so the same seed gives the same text; and the cached path gives the same tokens as the uncached one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .model import GPT, KVCache

__all__ = ["generate", "filter_logits"]


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set to ``-inf`` the logits that top-k and/or top-p (nucleus) filtering drop. ``logits [B, V]``."""
    if top_k is not None:
        k = min(top_k, logits.size(-1))
        kth = torch.topk(logits, k, dim=-1).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = F.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens ranked before it already cover top_p of the mass
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _check_args(model, idx, max_new_tokens, temperature, top_k, top_p, generator) -> None:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype.is_floating_point or idx.shape[1] == 0:
        got = f"{idx.dtype} {tuple(idx.shape)}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"idx must be an integer tensor of shape [B, T] with T >= 1, got {got}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be None or in (0, 1], got {top_p!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


@torch.no_grad()
def generate(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Extend ``idx [B, T]`` by ``max_new_tokens`` tokens; returns ``[B, T + max_new_tokens]``.

    ``temperature=0`` is greedy (argmax). Otherwise logits are divided by the temperature, filtered by
    ``top_k``/``top_p`` and sampled with ``generator``. When the sequence outgrows ``block_size`` the window
    slides: the model sees the last ``block_size`` tokens (and the cache is rebuilt for that window).
    """
    _check_args(model, idx, max_new_tokens, temperature, top_k, top_p, generator)
    block = model.config.block_size
    out = idx
    cache = None
    for _ in range(max_new_tokens):
        if use_cache:
            if cache is None or cache.length >= block:
                cache = KVCache(model.config.n_layer)  # (re)fill the cache from the current window
                logits = model(out[:, -block:], kv_cache=cache).logits[:, -1, :]
            else:
                logits = model(out[:, -1:], kv_cache=cache).logits[:, -1, :]
        else:
            logits = model(out[:, -block:]).logits[:, -1, :]
        if temperature == 0:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            logits = filter_logits(logits.float() / temperature, top_k, top_p)
            probs = F.softmax(logits, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        out = torch.cat([out, nxt], dim=1)
    return out
