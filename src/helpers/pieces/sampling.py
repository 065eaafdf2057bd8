"""The course's sampler, with the exercise interface of notebook 08.

``sample(model, idx [B, T], max_new_tokens, temperature=1.0, top_k=None, generator=None) -> [B, T + n]``:
at each step, crop the context to the model's last ``block_size`` tokens, take the logits of the last
position, divide by the temperature, keep the ``top_k`` largest (``helpers.generate.top_k_filter``), softmax,
and draw one token with ``torch.multinomial`` from ``generator``. ``model(idx)`` returns ``(logits, loss)``
(``helpers.pieces.GPT``, the learner's GPT) or an object with ``.logits`` (``helpers.model.GPT``); the model
has ``model.config.block_size``. For the same model and generator seed it gives the same tokens as
``helpers.generate.generate(..., top_k=top_k)`` without a repetition penalty or top-p.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..generate import top_k_filter

__all__ = ["sample"]


def _logits_of(out: object) -> torch.Tensor:
    """The logits from what a model returns: ``(logits, loss)`` or an object with ``.logits``."""
    if isinstance(out, (tuple, list)):
        return out[0]
    return out.logits


def sample(
    model: torch.nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Extend ``idx [B, T]`` (token ids) by ``max_new_tokens`` sampled tokens; returns ``[B, T + max_new_tokens]``."""
    if not isinstance(model, torch.nn.Module) or not hasattr(getattr(model, "config", None), "block_size"):
        raise TypeError(f"model must be a GPT with model.config.block_size, got {type(model).__name__}")
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype.is_floating_point or idx.shape[1] == 0:
        got = f"{tuple(idx.shape)} {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"idx must be a tensor of token ids [B, T] with T >= 1, got {got}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    block = model.config.block_size
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = _logits_of(model(idx[:, -block:]))[:, -1, :].float()  # [B, V]: the next token's scores
            logits = logits / temperature
            if top_k is not None:
                logits = top_k_filter(logits, top_k)
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)  # [B, 1]
            idx = torch.cat([idx, nxt], dim=1)
    return idx
