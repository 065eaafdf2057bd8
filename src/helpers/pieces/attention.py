"""References for notebook 02's build exercises: one causal attention ``Head`` and GPT-2's ``MultiHeadAttention``.

These are what runs when the learner's own piece has not passed its checker (``helpers.yours.adopt``/``use``),
and what the checkers compare against. Same interfaces as the exercises:

- ``Head(n_embd, head_size, block_size, dropout=0.0)``: three ``nn.Linear(n_embd, head_size, bias=False)`` named
  ``query``, ``key``, ``value``; ``forward(x [B, T, n_embd])`` → ``(out [B, T, head_size], weights [B, T, T])``,
  causal, scores divided by √head_size, dropout on the weights (training mode only).
- ``MultiHeadAttention(config)``: GPT-2's names, ``c_attn`` (``nn.Linear(C, 3C)``: q, k, v side by side),
  ``c_proj`` (``nn.Linear(C, C)``), ``attn_dropout`` (on the weights), ``resid_dropout`` (on the output);
  ``forward(x [B, T, C])`` → ``[B, T, C]``, causal, ``config.n_head`` heads of ``C // n_head`` features.
  Its parameters have the names and shapes of ``helpers.model.CausalSelfAttention``, so a state dict moves
  between the two (and between Hugging Face's GPT-2 and the course's ``Block``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..attention import causal_mask
from ..model import GPTConfig

__all__ = ["Head", "MultiHeadAttention", "split_heads", "merge_heads"]


def _positive_int(name: str, val: object) -> int:
    if isinstance(val, bool) or not isinstance(val, int) or val < 1:
        raise ValueError(f"{name} must be a positive int, got {val!r}")
    return val


def _dropout_p(val: object) -> float:
    if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0.0 <= val < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1), got {val!r}")
    return float(val)


def _check_x(x: object, C: int, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} expects a torch.Tensor x, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != C:
        raise ValueError(f"{what} expects x of shape [B, T, {C}], got {tuple(x.shape)}")
    return x


def split_heads(t: torch.Tensor, n_head: int) -> torch.Tensor:
    """``[B, T, C]`` → ``[B, n_head, T, C // n_head]``: head ``h`` gets features ``h*Dh … (h+1)*Dh - 1``."""
    B, T, C = t.shape
    return t.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(t: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, Dh]`` → ``[B, T, H * Dh]``, the inverse of ``split_heads``."""
    B, H, T, Dh = t.shape
    return t.transpose(1, 2).contiguous().view(B, T, H * Dh)


class Head(nn.Module):
    """One head of causal self-attention.

    ``forward(x [B, T, n_embd])`` → ``(out [B, T, head_size], weights [B, T, T])``; ``T <= block_size``.
    """

    def __init__(self, n_embd: int, head_size: int, block_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_embd = _positive_int("n_embd", n_embd)
        self.head_size = _positive_int("head_size", head_size)
        self.block_size = _positive_int("block_size", block_size)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.dropout = nn.Dropout(_dropout_p(dropout))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = _check_x(x, self.n_embd, "Head").shape[1]
        if T > self.block_size:
            raise ValueError(f"Head got T={T} tokens, more than its block_size={self.block_size}")
        q, k, v = self.query(x), self.key(x), self.value(x)  # [B, T, head_size] each
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_size)  # [B, T, T]
        scores = scores.masked_fill(~causal_mask(T, device=x.device), float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        return weights @ v, weights


class MultiHeadAttention(nn.Module):
    """GPT-2's causal multi-head self-attention: ``forward(x [B, T, C])`` → ``[B, T, C]``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        for name in ("n_embd", "n_head", "dropout", "bias"):
            if not hasattr(config, name):
                raise TypeError(f"MultiHeadAttention needs a GPTConfig (with n_embd, n_head, dropout, bias), "
                                f"got {type(config).__name__} without {name!r}")
        C, H = _positive_int("n_embd", config.n_embd), _positive_int("n_head", config.n_head)
        if C % H:
            raise ValueError(f"n_embd must be divisible by n_head: got n_embd={C}, n_head={H}")
        self.n_embd, self.n_head = C, H
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias)  # q, k, v of every head, in one matrix
        self.c_proj = nn.Linear(C, C, bias=config.bias)  # mixes what the heads found
        self.attn_dropout = nn.Dropout(_dropout_p(config.dropout))
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = _check_x(x, self.n_embd, "MultiHeadAttention").shape
        q, k, v = (split_heads(t, self.n_head) for t in self.c_attn(x).split(C, dim=-1))  # [B, H, T, Dh]
        p = self.attn_dropout.p if self.training else 0.0
        if p > 0.0:  # the explicit path, dropout on the weights as the exercise writes it
            scores = q @ k.transpose(-2, -1) / math.sqrt(C // self.n_head)
            weights = self.attn_dropout(torch.softmax(
                scores.masked_fill(~causal_mask(T, device=x.device), float("-inf")), dim=-1))
            y = weights @ v
        else:  # PyTorch's fused kernel: the same numbers, faster (notebook 07 trains with this)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.resid_dropout(self.c_proj(merge_heads(y)))
