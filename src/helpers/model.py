"""A decoder-only Transformer that *is* GPT-2: same architecture, same parameter names, same numbers.

Modules are named after GPT-2's own parameters (``wte``, ``wpe``, ``h``, ``ln_1``, ``attn.c_attn``,
``attn.c_proj``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``, ``ln_f``), so loading Hugging Face's weights is a
name-for-name copy with four transposes (HF stores its ``Conv1D`` weights as ``[in, out]``).

Shapes: ``B`` batch, ``T`` time, ``C`` = ``n_embd``, ``H`` heads, ``D`` = ``C // H``, ``V`` vocabulary.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .attention import apply_rope, repeat_kv, rope_angles, rotate_half, scaled_dot_product_attention

__all__ = ["GPTConfig", "GPT", "GPTOutput", "KVCache", "Block", "CausalSelfAttention", "MLP", "SwiGLU", "RMSNorm"]

# "none": attention-only blocks (no ln_2, no MLP), as in Olsson et al.'s toy models; "swiglu": Llama's gated MLP
MLP_KINDS = ("gelu", "swiglu", "none")
NORM_KINDS = ("layernorm", "rmsnorm")
POS_KINDS = ("learned", "rope")
CONFIG_TYPE = "transformers-by-hand-gpt"  # config.json's model_type for folders written by GPT.save_pretrained

# Transposed when copying to/from Hugging Face (its Conv1D keeps weights as [in, out]).
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


@dataclass
class GPTConfig:
    """Hyper-parameters; the defaults are GPT-2 small's (124M parameters).

    The four changes from GPT-2 to Llama (and Qwen, Mistral, OLMo ...) are options here, GPT-2's by default:
    ``norm="rmsnorm"``, ``pos="rope"``, ``mlp="swiglu"``, ``n_kv_head < n_head`` (grouped-query attention);
    Llama also has ``bias=False``, ``tie_embeddings=False`` and ``norm_eps=1e-6``.
    """

    vocab_size: int = 50257
    block_size: int = 1024  # longest sequence (number of learned positions)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear layers and LayerNorms, as GPT-2 has
    mlp: str = "gelu"  # the feed-forward sublayer: "gelu" (GPT-2's), "swiglu" (Llama's) or "none" (attention only)
    norm: str = "layernorm"  # "layernorm" (GPT-2's) or "rmsnorm" (Llama's: no centring, no bias)
    pos: str = "learned"  # positions: "learned" (GPT-2's wpe table) or "rope" (rotary, inside attention)
    n_kv_head: int | None = None  # key/value heads; None = n_head; fewer = grouped-query attention (1: multi-query)
    mlp_hidden: int | None = None  # the MLP's width; None = 4 n_embd (GELU) or 8 n_embd / 3 (SwiGLU: same count)
    rope_theta: float = 10000.0  # RoPE's base: pair i turns by position * rope_theta ** (-2i / head_dim)
    norm_eps: float = 1e-5
    tie_embeddings: bool = True  # the output head is wte (GPT-2) or a matrix of its own (Llama)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def hidden(self) -> int:
        """The MLP's hidden width: SwiGLU's 3 matrices of C x h hold as many weights as GELU's 2 of C x 4C
        when h = 8C/3."""
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        return 4 * self.n_embd if self.mlp != "swiglu" else (8 * self.n_embd) // 3

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {val!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd must be divisible by n_head: got n_embd={self.n_embd}, n_head={self.n_head}"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise TypeError(f"GPTConfig.dropout must be a float in [0, 1), got {type(self.dropout).__name__}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise TypeError(f"GPTConfig.bias must be a bool, got {type(self.bias).__name__}")
        if self.mlp not in MLP_KINDS:
            raise ValueError(f"GPTConfig.mlp must be one of {MLP_KINDS}, got {self.mlp!r}")
        if self.norm not in NORM_KINDS:
            raise ValueError(f"GPTConfig.norm must be one of {NORM_KINDS}, got {self.norm!r}")
        if self.pos not in POS_KINDS:
            raise ValueError(f"GPTConfig.pos must be one of {POS_KINDS}, got {self.pos!r}")
        if self.n_kv_head is not None:
            if isinstance(self.n_kv_head, bool) or not isinstance(self.n_kv_head, int) or self.n_kv_head < 1 \
                    or self.n_head % self.n_kv_head:
                raise ValueError(f"GPTConfig.n_kv_head must be None or a positive divisor of n_head={self.n_head} "
                                 f"(each key/value head serves n_head / n_kv_head query heads), got {self.n_kv_head!r}")
        if self.mlp_hidden is not None and (isinstance(self.mlp_hidden, bool) or not isinstance(self.mlp_hidden, int)
                                            or self.mlp_hidden < 1):
            raise ValueError(f"GPTConfig.mlp_hidden must be None or a positive int, got {self.mlp_hidden!r}")
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(f"RoPE turns channels in pairs: head_dim = n_embd / n_head must be even, got "
                             f"{self.head_dim}")
        for name in ("rope_theta", "norm_eps"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0:
                raise ValueError(f"GPTConfig.{name} must be a positive number, got {val!r}")
        if self.rope_theta <= 1:
            raise ValueError(f"GPTConfig.rope_theta must be > 1, got {self.rope_theta!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"GPTConfig.tie_embeddings must be a bool, got {type(self.tie_embeddings).__name__}")


@dataclass
class GPTOutput:
    """What ``GPT.forward`` returns."""

    logits: torch.Tensor  # [B, T, V]
    loss: torch.Tensor | None = None  # next-token cross-entropy (nats), None without targets
    attentions: tuple[torch.Tensor, ...] | None = None  # one [B, H, T, Tk] per layer, when asked for
    kv_cache: KVCache | None = None  # the cache passed in, now holding this call's keys and values too


class KVCache:
    """Per-layer keys and values of the tokens seen so far, so each new token costs one position, not T.

    ``keys[l]`` and ``values[l]`` are ``[B, H, T_past, D]`` (views into preallocated buffers); ``length`` is
    ``T_past``. Buffers are allocated on the first ``update`` with room for ``capacity`` positions (or just
    what is needed) and grow by doubling, so appending a token is a copy into place, not a ``torch.cat`` of
    everything so far.
    """

    def __init__(self, n_layer: int, capacity: int | None = None) -> None:
        if isinstance(n_layer, bool) or not isinstance(n_layer, int) or n_layer < 1:
            raise ValueError(f"n_layer must be a positive int, got {n_layer!r}")
        if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1):
            raise ValueError(f"capacity must be None or a positive int, got {capacity!r}")
        self.capacity = capacity
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer
        self._kbuf: list[torch.Tensor | None] = [None] * n_layer  # [B, H, capacity, D]
        self._vbuf: list[torch.Tensor | None] = [None] * n_layer
        self._len = [0] * n_layer

    @property
    def length(self) -> int:
        return self._len[0]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's ``k``, ``v`` ``[B, H, T_new, D]`` for ``layer``; return all keys and values."""
        past, new = self._len[layer], k.shape[-2]
        end = past + new
        kb = self._kbuf[layer]
        if past and kb.shape[0] != k.shape[0]:
            raise ValueError(f"the cache holds batch size {kb.shape[0]}, this step has {k.shape[0]}")
        if kb is None or end > kb.shape[-2] or kb.shape[0] != k.shape[0] or kb.dtype != k.dtype:
            size = max(end, self.capacity or 0, 2 * kb.shape[-2] if kb is not None else 0)
            kb = k.new_empty(k.shape[:-2] + (size, k.shape[-1]))
            vb = v.new_empty(v.shape[:-2] + (size, v.shape[-1]))
            if past:  # grow: keep what was cached
                kb[:, :, :past] = self._kbuf[layer][:, :, :past]
                vb[:, :, :past] = self._vbuf[layer][:, :, :past]
            self._kbuf[layer], self._vbuf[layer] = kb, vb
        vb = self._vbuf[layer]
        kb[:, :, past:end] = k
        vb[:, :, past:end] = v
        self._len[layer] = end
        k, v = kb[:, :, :end], vb[:, :, :end]
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def reset(self) -> None:
        """Forget every position but keep the buffers (to refill the cache for a new window)."""
        self._len = [0] * len(self._len)
        self.keys = [None] * len(self.keys)
        self.values = [None] * len(self.values)

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on, in every layer (speculative decoding drops the rejected
        draft tokens this way); the buffers are kept."""
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= self.length:
            raise ValueError(f"length must be an int in [0, {self.length}], got {length!r}")
        for i in range(len(self._len)):
            if self._kbuf[i] is None:
                continue
            self._len[i] = min(self._len[i], length)
            self.keys[i] = self._kbuf[i][:, :, : self._len[i]]
            self.values[i] = self._vbuf[i][:, :, : self._len[i]]

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (``[B_new]`` long) in every layer: beam search picks beams this way."""
        for i in range(len(self._len)):
            if self._kbuf[i] is None:
                continue
            self._kbuf[i] = self._kbuf[i].index_select(0, index)
            self._vbuf[i] = self._vbuf[i].index_select(0, index)
            self.keys[i] = self._kbuf[i][:, :, : self._len[i]]
            self.values[i] = self._vbuf[i][:, :, : self._len[i]]

    def nbytes(self, allocated: bool = False) -> int:
        """Bytes of the cached keys and values (``allocated=True``: of the whole preallocated buffers)."""
        ts = self._kbuf + self._vbuf if allocated else self.keys + self.values
        return sum(t.numel() * t.element_size() for t in ts if t is not None)

    def __repr__(self) -> str:
        return f"KVCache(n_layer={len(self.keys)}, length={self.length})"


class CausalSelfAttention(nn.Module):
    """Masked multi-head self-attention with GPT-2's fused QKV projection ``c_attn`` and output ``c_proj``.

    With ``config.n_kv_head < n_head`` (grouped-query attention) ``c_attn`` makes ``n_head`` queries but only
    ``n_kv_head`` keys and values, each shared by ``n_head / n_kv_head`` query heads: the KV cache holds
    ``n_kv_head`` heads. With ``config.pos == "rope"`` queries and keys are rotated by their positions.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.n_kv_head, self.head_dim = config.kv_heads, config.head_dim
        self.c_attn = nn.Linear(config.n_embd, (config.n_head + 2 * config.kv_heads) * config.head_dim,
                                bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        need_weights: bool = False,
        kv_cache: KVCache | None = None,
        layer: int = 0,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``key_mask`` ``[B, past + T]`` bool: which positions hold real tokens (False: left padding). With it,
        a query sees the real keys up to itself, and a padding position sees only itself (never an empty row)."""
        B, T, C = x.shape
        D, Hkv = self.head_dim, self.n_kv_head
        q, k, v = self.c_attn(x).split([self.n_head * D, Hkv * D, Hkv * D], dim=2)
        q = q.view(B, T, self.n_head, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, Hkv, D).transpose(1, 2)  # (B, H_kv, T, D)
        v = v.view(B, T, Hkv, D).transpose(1, 2)
        if rope is not None and rope[0].dim() == 3:  # one row of positions per sequence: (cos, sin) [B, T, D]
            cos, sin = rope[0][:, None].to(q.dtype), rope[1][:, None].to(q.dtype)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        elif rope is not None:  # rotary positions: (cos, sin) for this call's positions, [T, D]
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        past = 0
        if kv_cache is not None:
            k, v = kv_cache.update(layer, k, v)  # (B, H_kv, past + T, D): rotated keys, shared heads
            past = k.shape[-2] - T  # positions this layer had cached before this call
        k, v = repeat_kv(k, self.n_head // Hkv), repeat_kv(v, self.n_head // Hkv)  # (B, H, past + T, D)
        p = self.attn_dropout if self.training else 0.0
        if q.dtype in (torch.bfloat16, torch.float16) and q.device.type == "cpu":
            # PyTorch's fused CPU attention packs 16-bit inputs with AVX-512 instructions and fails on CPUs (or
            # ATEN_CPU_CAPABILITY settings) without them; 16-bit models attend in float32 on the CPU (the softmax
            # is where 16 bits lose most), and only the projections run in 16 bits.
            y, weights = self._attend(q.float(), k.float(), v.float(), B, T, C, past, key_mask, need_weights, p)
            y = y.to(q.dtype)
        else:
            y, weights = self._attend(q, k, v, B, T, C, past, key_mask, need_weights, p)
        return self.resid_dropout(self.c_proj(y)), weights

    def _attend(self, q, k, v, B, T, C, past, key_mask, need_weights, p):
        """Attention of the heads ``q`` over ``k``, ``v`` (causal, after ``past`` cached positions), heads merged."""
        Tk = k.shape[-2]
        weights = None
        x = q
        if key_mask is not None:  # padded rows: causal and real keys, or the position itself
            idx = torch.arange(Tk, device=x.device)
            mask = (idx[None, :] <= idx[past:, None])[None, None] & key_mask[:, None, None, :]  # [B, 1, T, Tk]
            mask = mask | (idx[None, :] == idx[past:, None])[None, None]
            if need_weights:
                y, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        elif need_weights:
            # The explicit path from helpers.attention: slower, but it hands back the weights to look at.
            mask = torch.ones(T, Tk, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        elif past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # one new query sees every cached key
        else:
            mask = torch.ones(T, Tk, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # merge heads: (B, T, C)
        return y, weights


class MLP(nn.Module):
    """Position-wise feed-forward: widen 4x, GELU (tanh approximation, as GPT-2), project back."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.hidden, bias=config.bias)
        self.c_proj = nn.Linear(config.hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class SwiGLU(nn.Module):
    """Llama's gated feed-forward (Shazeer 2020): ``c_proj(silu(x W_gate) * (x W_up))``.

    ``c_fc`` holds ``W_gate`` and ``W_up`` side by side (``[2h, C]``: gate rows first, as ``transformers``'
    ``gate_proj`` then ``up_proj``); ``h = 8C/3`` by default, so its three matrices hold as many weights as
    GELU's two (``3 C h = 8 C^2``).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 2 * config.hidden, bias=config.bias)
        self.c_proj = nn.Linear(config.hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.c_fc(x).chunk(2, dim=-1)
        return self.dropout(self.c_proj(F.silu(gate) * up))


class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang & Sennrich 2019): ``x / sqrt(mean(x^2) + eps) * weight``.

    LayerNorm without the centring and without the bias: one reduction instead of two. Computed in float32
    whatever the input's dtype, as ``torch.nn.RMSNorm`` and Llama do.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        h = h * torch.rsqrt(h.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def make_norm(config: GPTConfig) -> nn.Module:
    """The block's normalisation: GPT-2's LayerNorm or Llama's RMSNorm, as ``config.norm`` says."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, bias=config.bias, eps=config.norm_eps)


class Block(nn.Module):
    """A pre-LN Transformer block, as GPT-2: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``.

    With ``config.mlp == "none"`` the block is attention only (``ln_2`` and ``mlp`` are None)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        has_mlp = config.mlp != "none"
        self.ln_2 = make_norm(config) if has_mlp else None
        self.mlp = None if not has_mlp else SwiGLU(config) if config.mlp == "swiglu" else MLP(config)

    def forward(
        self, x: torch.Tensor, need_weights: bool = False, kv_cache: KVCache | None = None, layer: int = 0,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None, key_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        extra = {} if key_mask is None else {"key_mask": key_mask}
        a, weights = self.attn(self.ln_1(x), need_weights=need_weights, kv_cache=kv_cache, layer=layer, rope=rope,
                               **extra)
        x = x + a
        if self.mlp is not None:
            x = x + self.mlp(self.ln_2(x))
        return x, weights


def gpt_modules(config: GPTConfig, block: type[nn.Module]) -> tuple[nn.ModuleDict, nn.Linear]:
    """GPT-2's modules by GPT-2's names: ``transformer`` (``wte``, ``wpe``, ``drop``, ``h``: ``n_layer`` blocks,
    ``ln_f``) and ``lm_head``, tied to ``wte``. Shared by ``GPT`` and the exercise reference ``helpers.pieces.GPT``.
    With rotary positions there is no ``wpe``; with ``tie_embeddings=False`` the head is a matrix of its own.
    """
    modules = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))
    if config.pos == "learned":
        modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)
    modules.update(drop=nn.Dropout(config.dropout), h=nn.ModuleList([block(config) for _ in range(config.n_layer)]),
                   ln_f=make_norm(config))
    transformer = nn.ModuleDict(modules)
    lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
    if config.tie_embeddings:
        lm_head.weight = transformer.wte.weight  # weight tying: one matrix reads and writes tokens
    return transformer, lm_head


class GPT(nn.Module):
    """GPT-2: token + position embeddings, ``n_layer`` pre-LN blocks, a final LayerNorm, a tied output head.

    ``forward(idx [B, T] int64, targets=None, return_attention=False, kv_cache=None)`` → ``GPTOutput``.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer, self.lm_head = gpt_modules(config, Block)
        self.apply(self._init_weights)
        # GPT-2's scaled init: each residual branch adds to the stream, 2 per layer, so shrink their outputs.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # ------------------------------------------------------------------ forward
    def _check_idx(self, idx: object, past: int) -> torch.Tensor:
        if not isinstance(idx, torch.Tensor):
            raise TypeError(f"idx must be a torch.Tensor of token ids, got {type(idx).__name__}")
        if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
            raise TypeError(f"idx must hold integer token ids (torch.long), got dtype {idx.dtype}")
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape [B, T], got {tuple(idx.shape)}; use idx[None] for one sequence")
        if idx.shape[1] == 0:
            raise ValueError("idx has no tokens (T = 0)")
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.config.vocab_size:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"token id {bad} is outside the vocabulary: ids must be in [0, {self.config.vocab_size - 1}] "
                f"(vocab_size={self.config.vocab_size})"
            )
        T = idx.shape[1]
        if past + T > self.config.block_size:
            where = f" after {past} cached positions" if past else ""
            raise ValueError(
                f"sequence of length {T}{where} is longer than block_size={self.config.block_size}; "
                f"crop it to the last {self.config.block_size - past} tokens"
            )
        return idx.long()

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        return_attention: bool = False,
        kv_cache: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> GPTOutput:
        """``attention_mask`` ``[B, past + T]`` (1 or True: a real token, 0: left padding) and ``position_ids``
        ``[B, T]`` serve a batch of prompts of different lengths (``helpers.generate.generate_batch``): padding is
        never attended to, and each row's positions count its own tokens."""
        past = 0 if kv_cache is None else kv_cache.length
        idx = self._check_idx(idx, past)
        B, T = idx.shape
        if kv_cache is not None and len(kv_cache.keys) != self.config.n_layer:
            raise ValueError(f"kv_cache has {len(kv_cache.keys)} layers, the model {self.config.n_layer}")
        key_mask = None
        if attention_mask is not None:
            if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != (B, past + T):
                got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
                raise ValueError(f"attention_mask must be [B, past + T] = {(B, past + T)}, got {got}")
            key_mask = attention_mask.bool()
        if position_ids is None:
            pos = torch.arange(past, past + T, dtype=torch.long, device=idx.device)  # positions continue the cache
        else:
            if not isinstance(position_ids, torch.Tensor) or tuple(position_ids.shape) != (B, T):
                got = tuple(position_ids.shape) if isinstance(position_ids, torch.Tensor) else type(position_ids).__name__
                raise ValueError(f"position_ids must be [B, T] = {(B, T)}, got {got}")
            if position_ids.min() < 0 or position_ids.max() >= self.config.block_size:
                raise ValueError(f"position_ids must be in [0, {self.config.block_size - 1}]")
            pos = position_ids.long()
        rope = None
        if self.config.pos == "rope":  # positions enter as rotations of queries and keys, in every layer
            x = self.transformer.drop(self.transformer.wte(idx))  # (B, T, C)
            cos, sin = rope_angles(pos.reshape(-1), self.config.head_dim, self.config.rope_theta)
            rope = (cos, sin) if pos.dim() == 1 else (cos.view(B, T, -1), sin.view(B, T, -1))
        else:
            x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        attentions = []
        for i, block in enumerate(self.transformer.h):
            extra = {} if rope is None else {"rope": rope}  # a block of one's own (notebook 04) need not know RoPE
            if key_mask is not None:
                extra["key_mask"] = key_mask
            x, w = block(x, need_weights=return_attention, kv_cache=kv_cache, layer=i, **extra)
            attentions.append(w)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            if not isinstance(targets, torch.Tensor) or targets.shape != idx.shape:
                got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
                raise ValueError(f"targets must be a tensor shaped like idx {tuple(idx.shape)}, got {got}")
            if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
                raise TypeError(f"targets must hold integer token ids (torch.long), got dtype {targets.dtype}")
            bad = (targets != -100) & ((targets < 0) | (targets >= self.config.vocab_size))
            if bad.any():
                raise ValueError(
                    f"target id {int(targets[bad][0])} is outside the vocabulary [0, {self.config.vocab_size - 1}] "
                    "(use -100 for positions to ignore)"
                )
            # targets are already shifted by one (targets[:, t] is the token after idx[:, t]); -100 = ignore.
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1).long(), ignore_index=-100)
        return GPTOutput(
            logits=logits,
            loss=loss,
            attentions=tuple(attentions) if return_attention else None,
            kv_cache=kv_cache,
        )

    # ------------------------------------------------------------------ counting
    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of parameters, the tied head counted once; ``non_embedding`` leaves out ``wte`` and ``wpe``
        (and an untied head)."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields the shared matrix once
        if non_embedding:
            n -= self.transformer.wte.weight.numel()
            if "wpe" in self.transformer:
                n -= self.transformer.wpe.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
        return n

    # ------------------------------------------------------------------ Hugging Face interop
    @staticmethod
    def config_from_hf(hf_config) -> GPTConfig:
        """A ``GPTConfig`` from a ``transformers.GPT2Config``."""
        act = getattr(hf_config, "activation_function", "gelu_new")
        if act not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"only GPT-2's tanh-approximated GELU is supported, the config uses {act!r}")
        return GPTConfig(
            vocab_size=hf_config.vocab_size,
            block_size=hf_config.n_positions,
            n_layer=hf_config.n_layer,
            n_head=hf_config.n_head,
            n_embd=hf_config.n_embd,
            dropout=float(hf_config.resid_pdrop),
            bias=True,
        )

    @classmethod
    def from_hf(cls, hf_model) -> GPT:
        """Copy a ``transformers`` ``GPT2LMHeadModel`` or ``LlamaForCausalLM`` into a new ``GPT`` (same numbers,
        our code)."""
        try:
            from transformers import GPT2LMHeadModel, LlamaForCausalLM
        except ImportError as e:  # pragma: no cover - transformers is a course requirement
            raise ImportError("GPT.from_hf needs the transformers package") from e
        if isinstance(hf_model, LlamaForCausalLM):
            return cls._from_llama(hf_model)
        if not isinstance(hf_model, GPT2LMHeadModel):
            raise TypeError(f"from_hf expects a transformers GPT2LMHeadModel or LlamaForCausalLM, got "
                            f"{type(hf_model).__name__}")
        model = cls(cls.config_from_hf(hf_model.config))
        sd_hf = hf_model.state_dict()
        sd = model.state_dict()
        keys = [k for k in sd if k != "lm_head.weight"]  # the head is tied to wte
        missing = [k for k in keys if k not in sd_hf]
        if missing:
            raise ValueError(f"the Hugging Face model lacks parameters {missing[:5]}")
        with torch.no_grad():
            for k in keys:
                src = sd_hf[k]
                if k.endswith(_CONV1D):
                    src = src.t()
                if src.shape != sd[k].shape:
                    raise ValueError(f"shape mismatch for {k}: ours {tuple(sd[k].shape)}, HF {tuple(src.shape)}")
                sd[k].copy_(src)
        return model.to(next(hf_model.parameters()).device).train(hf_model.training)  # same mode as the source

    # ------------------------------------------------------------------ Llama interop
    @staticmethod
    def config_from_llama(hf_config) -> GPTConfig:
        """A ``GPTConfig`` from a ``transformers.LlamaConfig``: RMSNorm, RoPE, SwiGLU, ``n_kv_head`` heads."""
        act = getattr(hf_config, "hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"Llama's MLP is SwiGLU (silu); this config uses {act!r}")
        rope = dict(getattr(hf_config, "rope_parameters", None) or {})
        theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10000.0))
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"only the original RoPE is supported, the config scales it: {rope!r}")
        heads, C = hf_config.num_attention_heads, hf_config.hidden_size
        head_dim = getattr(hf_config, "head_dim", None) or C // heads
        if head_dim * heads != C:
            raise ValueError(f"head_dim * num_attention_heads must equal hidden_size; got {head_dim} x {heads} "
                             f"!= {C}")
        if bool(hf_config.attention_bias) != bool(getattr(hf_config, "mlp_bias", False)):
            raise ValueError("the course's model has biases everywhere or nowhere: attention_bias "
                             f"{hf_config.attention_bias} and mlp_bias {hf_config.mlp_bias} differ")
        if getattr(hf_config, "pretraining_tp", 1) not in (None, 1):
            raise ValueError(f"pretraining_tp={hf_config.pretraining_tp} is not supported (use 1)")
        return GPTConfig(
            vocab_size=hf_config.vocab_size, block_size=hf_config.max_position_embeddings,
            n_layer=hf_config.num_hidden_layers, n_head=heads, n_embd=C,
            dropout=float(getattr(hf_config, "attention_dropout", 0.0) or 0.0), bias=bool(hf_config.attention_bias),
            mlp="swiglu", norm="rmsnorm", pos="rope", n_kv_head=hf_config.num_key_value_heads or heads,
            mlp_hidden=hf_config.intermediate_size, rope_theta=float(theta), norm_eps=float(hf_config.rms_norm_eps),
            tie_embeddings=bool(hf_config.tie_word_embeddings),
        )

    @staticmethod
    def _llama_names(config: GPTConfig) -> list[tuple[str, list[str]]]:
        """Our parameter names and the ``transformers`` Llama parameters each is made of (stacked on dim 0)."""
        names = [("transformer.wte.weight", ["model.embed_tokens.weight"]),
                 ("transformer.ln_f.weight", ["model.norm.weight"])]
        if not config.tie_embeddings:
            names.append(("lm_head.weight", ["lm_head.weight"]))
        for i in range(config.n_layer):
            a, m = f"transformer.h.{i}.", f"model.layers.{i}."
            names += [(a + "ln_1.weight", [m + "input_layernorm.weight"]),
                      (a + "ln_2.weight", [m + "post_attention_layernorm.weight"])]
            kinds = ("weight", "bias") if config.bias else ("weight",)
            for kind in kinds:
                names += [
                    (a + f"attn.c_attn.{kind}", [m + f"self_attn.{p}_proj.{kind}" for p in "qkv"]),
                    (a + f"attn.c_proj.{kind}", [m + f"self_attn.o_proj.{kind}"]),
                    (a + f"mlp.c_fc.{kind}", [m + f"mlp.gate_proj.{kind}", m + f"mlp.up_proj.{kind}"]),
                    (a + f"mlp.c_proj.{kind}", [m + f"mlp.down_proj.{kind}"]),
                ]
        return names

    def _is_llama(self) -> bool:
        c = self.config
        return (c.norm, c.pos, c.mlp) == ("rmsnorm", "rope", "swiglu")

    def has_hf_class(self) -> bool:
        """Whether ``to_hf`` can express this model: GPT-2's architecture (with biases) or Llama's."""
        c = self.config
        gpt2 = (c.norm, c.pos, c.mlp, c.kv_heads, c.tie_embeddings, c.bias) == \
            ("layernorm", "learned", "gelu", c.n_head, True, True)
        return gpt2 or self._is_llama()

    @classmethod
    def _from_llama(cls, hf_model) -> GPT:
        model = cls(cls.config_from_llama(hf_model.config))
        sd_hf, sd = hf_model.state_dict(), model.state_dict()
        with torch.no_grad():
            for ours, theirs in cls._llama_names(model.config):
                missing = [t for t in theirs if t not in sd_hf]
                if missing:
                    raise ValueError(f"the Llama model lacks parameters {missing}")
                src = torch.cat([sd_hf[t] for t in theirs], dim=0)
                if src.shape != sd[ours].shape:
                    raise ValueError(f"shape mismatch for {ours}: ours {tuple(sd[ours].shape)}, Llama {tuple(src.shape)}")
                sd[ours].copy_(src)
        return model.to(next(hf_model.parameters()).device).train(hf_model.training)

    def _to_llama(self, attn_implementation: str | None = None):
        from transformers import LlamaConfig, LlamaForCausalLM

        c = self.config
        hf_config = LlamaConfig(
            vocab_size=c.vocab_size, hidden_size=c.n_embd, intermediate_size=c.hidden,
            num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, num_key_value_heads=c.kv_heads,
            head_dim=c.head_dim, max_position_embeddings=c.block_size, rms_norm_eps=c.norm_eps,
            tie_word_embeddings=c.tie_embeddings, attention_bias=c.bias, mlp_bias=c.bias,
            attention_dropout=c.dropout, rope_parameters={"rope_type": "default", "rope_theta": float(c.rope_theta)},
            bos_token_id=None, eos_token_id=None,
            **({} if attn_implementation is None else {"attn_implementation": attn_implementation}),
        )
        hf = LlamaForCausalLM(hf_config)
        sd_hf, sd = hf.state_dict(), self.state_dict()
        with torch.no_grad():
            for ours, theirs in self._llama_names(c):
                parts = sd[ours].split([sd_hf[t].shape[0] for t in theirs], dim=0)
                for t, part in zip(theirs, parts, strict=True):
                    sd_hf[t].copy_(part)
        if c.tie_embeddings:
            hf.tie_weights()
        return hf.to(self.transformer.wte.weight.device).train(self.training)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "gpt2", **kwargs) -> GPT:
        """Load a model: a folder written by ``save_pretrained`` (the course's own configurations, such as
        attention-only), or a GPT-2 checkpoint through ``transformers`` (hub name or local folder). Safetensors
        only: never a pickle."""
        if not isinstance(name_or_path, (str, os.PathLike)):
            raise TypeError(f"name_or_path must be a str or path, got {type(name_or_path).__name__}")
        folder = Path(name_or_path)
        config_file = folder / "config.json"
        if config_file.is_file():
            raw = json.loads(config_file.read_text(encoding="utf-8"))
            if raw.get("model_type") == CONFIG_TYPE:
                if kwargs:
                    raise TypeError(f"unexpected arguments {sorted(kwargs)} for a course folder ({folder})")
                return cls._load_own(folder, raw)
        from transformers import AutoConfig, GPT2LMHeadModel, LlamaForCausalLM

        kwargs.setdefault("use_safetensors", True)  # never unpickle weights from a file we did not make
        kind = AutoConfig.from_pretrained(name_or_path, **{k: v for k, v in kwargs.items()
                                                           if k in ("revision", "cache_dir", "local_files_only",
                                                                    "token")}).model_type
        if kind == "llama":
            return cls.from_hf(LlamaForCausalLM.from_pretrained(name_or_path, attn_implementation="eager",
                                                                **kwargs)).eval()
        if kind != "gpt2":
            raise ValueError(f"{name_or_path} is a {kind!r} model; the course's model loads GPT-2 and Llama ones")
        hf = GPT2LMHeadModel.from_pretrained(name_or_path, attn_implementation="eager", **kwargs)
        return cls.from_hf(hf).eval()

    @classmethod
    def _load_own(cls, folder: Path, raw: dict) -> GPT:
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{folder} has a config.json but no model.safetensors")
        names = {f.name for f in fields(GPTConfig)}
        unknown = sorted(set(raw) - names - {"model_type", "architectures", "format_version"})
        if unknown:
            raise ValueError(f"{folder / 'config.json'} has keys this version does not know: {unknown}")
        model = cls(GPTConfig(**{k: v for k, v in raw.items() if k in names}))
        from safetensors.torch import load_file

        state = load_file(str(weights))
        tied = model.config.tie_embeddings
        expected = {k for k in model.state_dict() if not (tied and k == "lm_head.weight")}  # a tied head is wte
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or extra:
            raise ValueError(f"{weights} does not match its config: missing {missing[:5]}, unexpected {extra[:5]}")
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if tied and k == "lm_head.weight":
                    continue
                if state[k].shape != v.shape:
                    raise ValueError(f"shape mismatch for {k}: config says {tuple(v.shape)}, "
                                     f"file has {tuple(state[k].shape)}")
                v.copy_(state[k])
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` (this ``GPTConfig``) and ``model.safetensors`` to the folder ``path``, atomically:
        a failure leaves the previous folder as it was. ``GPT.from_pretrained(path)`` loads it back."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or path, got {type(path).__name__}")
        for name, p in self.named_parameters():
            if not torch.isfinite(p).all():
                raise ValueError(f"refusing to save: parameter {name} holds NaN or inf")
        from safetensors.torch import save_file

        out = Path(path)
        tmp = out.with_name(out.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        tied = self.config.tie_embeddings
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()
                 if not (tied and k == "lm_head.weight")}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = {"model_type": CONFIG_TYPE, "format_version": 1, **self.config_dict()}
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        if out.exists():  # keep anything else in the folder (a model card): replace only our two files
            for name in ("model.safetensors", "config.json"):
                os.replace(tmp / name, out / name)
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
        return out

    def to_hf(self, attn_implementation: str | None = None):
        """The same weights in a ``transformers`` ``GPT2LMHeadModel`` (GPT-2 has biases, so ``bias`` must be True),
        or ``LlamaForCausalLM`` for a model with RMSNorm, RoPE and SwiGLU (any ``n_kv_head``, tied or not).

        ``attn_implementation``: transformers' attention kernel (``"eager"`` returns attention weights with
        ``output_attentions=True``; its default, ``"sdpa"``, does not).
        """
        from transformers import GPT2Config, GPT2LMHeadModel

        c = self.config
        if self._is_llama():
            return self._to_llama(attn_implementation)
        if (c.norm, c.pos) != ("layernorm", "learned") or c.kv_heads != c.n_head or not c.tie_embeddings:
            raise ValueError("this model is neither GPT-2 (layernorm, learned positions, one key/value head per "
                             "query head, tied head) nor Llama (rmsnorm, rope, swiglu): transformers has no class "
                             "for it; save it with save_pretrained instead")
        if c.mlp != "gelu":
            raise ValueError(f"GPT-2 in transformers always has a GELU MLP; this model has mlp={c.mlp!r} "
                             "(save it with save_pretrained instead)")
        if not c.bias:
            raise ValueError("GPT-2 in transformers always has biases; this model was built with bias=False")
        hf_config = GPT2Config(
            vocab_size=c.vocab_size,
            n_positions=c.block_size,
            n_embd=c.n_embd,
            n_layer=c.n_layer,
            n_head=c.n_head,
            resid_pdrop=c.dropout,
            embd_pdrop=c.dropout,
            attn_pdrop=c.dropout,
            activation_function="gelu_new",
            layer_norm_epsilon=1e-5,
            tie_word_embeddings=True,
            # GPT-2's <|endoftext|> is id 50256; a smaller vocabulary (our character model) has no such token
            bos_token_id=50256 if c.vocab_size > 50256 else None,
            eos_token_id=50256 if c.vocab_size > 50256 else None,
            **({} if attn_implementation is None else {"attn_implementation": attn_implementation}),
        )
        hf = GPT2LMHeadModel(hf_config)
        sd_hf = hf.state_dict()
        with torch.no_grad():
            for k, v in self.state_dict().items():
                if k == "lm_head.weight":
                    continue
                sd_hf[k].copy_(v.t() if k.endswith(_CONV1D) else v)
        hf.tie_weights()
        return hf.to(self.transformer.wte.weight.device).train(self.training)

    def config_dict(self) -> dict:
        return {f.name: getattr(self.config, f.name) for f in fields(self.config)}
