"""Measure a language model on a text: loss in nats per token and bits per character.

Bits per character divides the total information by the number of characters, so models with different
tokenizers (characters, BPE) can be compared on the same text.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .model import GPT

__all__ = ["evaluate_text"]


@torch.no_grad()
def evaluate_text(
    model: GPT,
    tokenizer,
    text: str,
    block_size: int | None = None,
    max_windows: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> dict:
    """Score ``text`` in consecutive windows of ``block_size`` tokens (the model's own by default).

    Every token after the first is predicted once, from the tokens before it in its window. With
    ``max_windows`` only that many windows, evenly spread over the text, are scored (a quick estimate).
    Returns ``{"loss": nats per token, "bpc": bits per character, "tokens": n, "chars": n}``.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    if not isinstance(text, str) or len(text) < 2:
        raise ValueError(f"text must be a str of at least 2 characters, got {type(text).__name__}")
    T = block_size or model.config.block_size
    if not 1 <= T <= model.config.block_size:
        raise ValueError(f"block_size must be in [1, {model.config.block_size}], got {T}")
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    if len(ids) < 2:
        raise ValueError("text encodes to fewer than 2 tokens; nothing to predict")
    starts = list(range(0, len(ids) - 1, T))
    if max_windows is not None:
        if max_windows < 1:
            raise ValueError(f"max_windows must be >= 1, got {max_windows}")
        if max_windows < len(starts):
            step = len(starts) / max_windows
            starts = [starts[int(i * step)] for i in range(max_windows)]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_nats, total_tokens, total_chars = 0.0, 0, 0
    it = range(0, len(starts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="evaluating")
    for b in it:
        windows = [ids[s : s + T + 1] for s in starts[b : b + batch_size]]
        full = [w for w in windows if len(w) == T + 1]
        groups = ([torch.stack(full)] if full else []) + [w[None] for w in windows if len(w) != T + 1]
        for g in groups:  # only the window at the very end of the text can be shorter
            x, y = g[:, :-1].to(device), g[:, 1:].to(device)
            logits = model(x).logits
            total_nats += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").item()
            total_tokens += y.numel()
            total_chars += sum(len(tokenizer.decode(row.tolist())) for row in y)
    model.train(was_training)
    loss = total_nats / total_tokens
    return {"loss": loss, "bpc": total_nats / math.log(2) / total_chars, "tokens": total_tokens, "chars": total_chars}
