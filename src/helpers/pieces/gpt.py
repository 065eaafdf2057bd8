"""The course's Transformer block and GPT, with the exercise interfaces of notebooks 04 and 05.

``Block(config)``: ``ln_1``, ``attn`` (``helpers.pieces.MultiHeadAttention``), ``ln_2``, ``mlp`` (``c_fc``,
GELU with the tanh approximation, ``c_proj``, dropout); pre-LN: ``x = x + attn(ln_1(x))``, then
``x = x + mlp(ln_2(x))``; ``forward(x [B, T, C]) -> [B, T, C]``.

``GPT(config)``: ``transformer.wte``, ``transformer.wpe``, ``transformer.drop``, ``transformer.h`` (blocks),
``transformer.ln_f``, ``lm_head`` tied to ``wte``; ``forward(idx [B, T], targets=None) -> (logits [B, T, V],
loss or None)``, GPT-2's initialisation. Parameter names are ``helpers.model.GPT``'s (GPT-2's), so
``load_weights`` copies weights between them, or from a Hugging Face ``GPT2LMHeadModel``.

These reuse ``helpers.model`` (``MLP``, the initialisation); the learner's versions replace them through
``helpers.yours``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..model import _CONV1D, MLP, GPTConfig, gpt_modules
from ..model import GPT as _ModelGPT
from .attention import MultiHeadAttention

__all__ = ["Block", "GPT", "load_weights", "init_gpt2_"]


def _check_config(config: object) -> GPTConfig:
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a helpers.model.GPTConfig, got {type(config).__name__}")
    return config


class Block(nn.Module):
    """A pre-LN Transformer block, as GPT-2: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``.

    ``forward(x [B, T, C]) -> [B, T, C]``. Dropout (``config.dropout``) sits inside the attention (on its
    weights and after ``c_proj``) and after ``mlp.c_proj``; ``.eval()`` turns it off.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        _check_config(config)
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias, eps=1e-5)
        self.attn = MultiHeadAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias, eps=1e-5)
        self.mlp = MLP(config)  # c_fc (C -> 4C), GELU (tanh), c_proj (4C -> C), dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor [B, T, C], got {got}")
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """GPT-2: token + position embeddings, dropout, ``n_layer`` blocks, ``ln_f``, a head tied to ``wte``.

    ``forward(idx [B, T] long, targets [B, T] long or None) -> (logits [B, T, V], loss or None)``;
    ``targets[:, t]`` is the token after ``idx[:, t]`` (already shifted); the loss is the mean cross-entropy in
    nats (``-100`` ignored). ``block`` is the block class (default: this module's ``Block``).
    """

    def __init__(self, config: GPTConfig, block: type[nn.Module] | None = None) -> None:
        super().__init__()
        self.config = _check_config(config)
        block = Block if block is None else block
        self.transformer, self.lm_head = gpt_modules(config, block)  # GPT-2's names, head tied to wte
        init_gpt2_(self, config.n_layer)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype.is_floating_point:
            got = f"{tuple(idx.shape)} {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"idx must be a tensor of token ids [B, T] (torch.long), got {got}")
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size={self.config.block_size}")
        pos = torch.arange(T, device=idx.device)  # positions 0 .. T-1
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # [B, T, C]
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))  # [B, T, V]
        loss = None
        if targets is not None:
            if not isinstance(targets, torch.Tensor) or targets.shape != idx.shape:
                got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
                raise ValueError(f"targets must be a tensor shaped like idx {tuple(idx.shape)}, got {got}")
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T).long(), ignore_index=-100)
        return logits, loss


def load_weights(model: nn.Module, source: nn.Module) -> nn.Module:
    """Copy ``source``'s weights into ``model`` (a GPT with GPT-2's parameter names); return ``model``.

    ``source``: a ``helpers.model.GPT``, this module's ``GPT`` (or any module with the same names), or a
    Hugging Face ``GPT2LMHeadModel`` (its ``Conv1D`` weights are transposed on the way). Every parameter of
    ``model`` must be found, with the same shape; a clear ``ValueError`` says which one is not.
    """
    if not isinstance(model, nn.Module) or not isinstance(source, nn.Module):
        raise TypeError("load_weights(model, source) takes two nn.Modules")
    hf = type(source).__name__ == "GPT2LMHeadModel"
    src = source.state_dict()
    dst = model.state_dict()
    missing = [k for k in dst if k not in src and not (hf and k == "lm_head.weight")]
    unexpected = [k for k in src if k not in dst and not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing or (unexpected and not hf):
        raise ValueError(
            "parameter names differ from GPT-2's: "
            + (f"missing in the source {missing[:4]}" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"not in your model {unexpected[:4]}" if unexpected else "")
        )
    with torch.no_grad():
        for k, v in dst.items():
            w = src[k]
            if hf and k.endswith(_CONV1D):
                w = w.t()
            if w.shape != v.shape:
                raise ValueError(f"shape of {k}: yours {tuple(v.shape)}, the source's {tuple(w.shape)}")
            v.copy_(w)
    return model


def init_gpt2_(model: nn.Module, n_layer: int) -> nn.Module:
    """GPT-2's initialisation, in place: every Linear and Embedding weight from N(0, 0.02²), biases 0, and the
    projections into the residual stream (names ending in ``c_proj.weight``) with std ``0.02 / √(2 n_layer)``.
    LayerNorms keep PyTorch's γ = 1, β = 0. Returns ``model``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(n_layer, bool) or not isinstance(n_layer, int) or n_layer < 1:
        raise ValueError(f"n_layer must be a positive int, got {n_layer!r}")
    model.apply(_ModelGPT._init_weights)  # normal(0, 0.02), zero biases
    for name, p in model.named_parameters():  # GPT-2's scaled init of the projections into the stream
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))
    return model
