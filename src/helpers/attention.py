"""Attention, written out: a stable softmax, masks, scaled dot-product attention and multi-head attention.

Shapes are written ``[B, H, T, D]``: batch, heads, time (sequence length), features per head.
Bool masks follow PyTorch's convention: **True where a query may attend**.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["softmax", "causal_mask", "scaled_dot_product_attention", "MultiHeadAttention", "rope_angles",
           "rotate_half", "apply_rope", "repeat_kv", "cross_attention"]


def _check_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _check_mask(mask: object, scores_shape: torch.Size) -> torch.Tensor:
    """Validate a bool mask against the scores' shape ``[..., Tq, Tk]``; return it unchanged."""
    _check_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}; "
            "for a 0/1 mask use mask.bool(), for an additive -inf mask use mask == 0"
        )
    try:
        full = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        full = None
    if full != scores_shape:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores_shape)} ([..., Tq, Tk])"
        )
    if mask.dim() > 0 and not mask.any(dim=-1).all():
        raise ValueError(
            "a query row has every key masked (mask is False across a whole row); "
            "its attention weights would be NaN. Let each query attend to at least one key."
        )
    if mask.dim() == 0 and not bool(mask):
        raise ValueError("mask is a single False: every key of every query is masked")
    return mask


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Numerically stable softmax along ``dim``: subtracts the maximum first, so large inputs do not overflow.

    ``-inf`` entries get probability 0; a slice that is entirely ``-inf`` is an error (there is nothing to
    normalise), not a row of NaN.
    """
    x = _check_tensor("x", x)
    if not x.is_floating_point():
        raise TypeError(f"softmax needs a floating-point tensor, got dtype {x.dtype}")
    if x.dim() == 0:
        raise ValueError("softmax needs at least one dimension, got a 0-d tensor")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim={dim} is out of range for a tensor with {x.dim()} dimensions")
    if x.shape[dim] == 0:
        raise ValueError(f"softmax needs at least one entry along dim={dim}, got shape {tuple(x.shape)}")
    m = x.amax(dim=dim, keepdim=True)
    if torch.isneginf(m).any():
        raise ValueError("softmax got a slice whose every entry is -inf; there is nothing to normalise")
    if torch.isposinf(m).any():
        raise ValueError("softmax got +inf in its input; the result would be NaN")
    e = torch.exp(x - m)
    return e / e.sum(dim=dim, keepdim=True)


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Bool ``[T, T]`` mask, True where query ``i`` may attend to key ``j`` (that is, ``j <= i``)."""
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"T must be an int, got {type(T).__name__}")
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q kᵀ / √d_k) v``, returning ``(output, weights)``.

    q ``[..., Tq, D]``, k ``[..., Tk, D]``, v ``[..., Tk, Dv]``; mask bool, broadcastable to ``[..., Tq, Tk]``,
    True where a query may attend. Output ``[..., Tq, Dv]``, weights ``[..., Tq, Tk]`` (after dropout, if any).
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, t)
        if t.dim() < 2:
            raise ValueError(f"{name} must have at least 2 dimensions [..., T, D], got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating point, got dtype {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k and v must share one dtype, got q {q.dtype}, k {k.dtype}, v {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same feature size D: q is {tuple(q.shape)} (D={q.shape[-1]}), "
            f"k is {tuple(k.shape)} (D={k.shape[-1]})"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of keys Tk: k is {tuple(k.shape)}, v is {tuple(v.shape)}"
        )
    if k.shape[-2] == 0:
        raise ValueError(f"k must hold at least one key (Tk >= 1), got shape {tuple(k.shape)}")
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"the leading (batch/head) dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} and "
            f"v {tuple(v.shape)} do not broadcast together"
        ) from None
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be a float in [0, 1), got {dropout_p!r}")
    if mask is not None:  # validated before any arithmetic, so a bad mask fails fast and clearly
        scores_batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2])
        _check_mask(mask, torch.Size((*scores_batch, q.shape[-2], k.shape[-2])))

    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [..., Tq, Tk]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: project to Q, K, V, split into ``n_heads``, attend, merge, project back.

    ``forward(x [B, T, d_model], mask=None, need_weights=False)`` returns the output ``[B, T, d_model]``,
    or ``(output, weights [B, H, T, T])`` when ``need_weights`` is True. ``mask`` is bool, True where a query
    may attend, broadcastable to ``[B, H, T, T]`` (``[T, T]`` for a causal mask).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        for name, val in (("d_model", d_model), ("n_heads", n_heads)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if d_model % n_heads != 0:
            raise ValueError(
                f"d_model must be divisible by n_heads: got d_model={d_model}, n_heads={n_heads} "
                f"(remainder {d_model % n_heads})"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {type(bias).__name__}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, d_model]`` → ``[B, H, T, d_head]``: head ``h`` gets features ``h*d_head:(h+1)*d_head``."""
        _check_tensor("x", x)
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"split_heads expects [B, T, d_model={self.d_model}], got {tuple(x.shape)}")
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, self.d_head).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, T, d_head]`` → ``[B, T, d_model]``: the inverse of ``split_heads``."""
        _check_tensor("x", x)
        if x.dim() != 4 or x.shape[1] != self.n_heads or x.shape[-1] != self.d_head:
            raise ValueError(
                f"merge_heads expects [B, H={self.n_heads}, T, d_head={self.d_head}], got {tuple(x.shape)}"
            )
        B, H, T, Dh = x.shape
        return x.transpose(1, 2).contiguous().view(B, T, H * Dh)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, d_model]`` → ``[B, T, d_model]``, or ``(output, weights [B, H, T, T])``."""
        _check_tensor("x", x)
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape [B, T, d_model={self.d_model}], got {tuple(x.shape)}")
        if not isinstance(need_weights, bool):
            raise TypeError(f"need_weights must be a bool, got {type(need_weights).__name__}")
        q = self.split_heads(self.q_proj(x))  # [B, H, T, Dh]
        k = self.split_heads(self.k_proj(x))
        v = self.split_heads(self.v_proj(x))
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        out = self.out_proj(self.merge_heads(out))
        return (out, weights) if need_weights else out


# ---------------------------------------------------------------- rotary positions and shared key/value heads
def rope_angles(
    positions: torch.Tensor | int, head_dim: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position embedding (Su et al. 2021): ``(cos, sin)``, each ``[T, head_dim]``, float32.

    Dimension pair ``i`` (channels ``i`` and ``i + head_dim/2``, the half-split convention of Llama in
    ``transformers``) turns by the angle ``position * theta ** (-2i / head_dim)``: fast in the first pairs,
    slow in the last. ``positions`` is a ``[T]`` tensor of integer positions, or ``T`` for ``0 .. T-1``. The
    angles are computed as ``transformers`` computes them (float32), so the two agree to the last bits.
    """
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even int (channels rotate in pairs), got {head_dim!r}")
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 1:
        raise ValueError(f"theta must be a number > 1, got {theta!r}")
    if isinstance(positions, int) and not isinstance(positions, bool):
        if positions < 1:
            raise ValueError(f"need at least one position, got {positions}")
        positions = torch.arange(positions)
    if not isinstance(positions, torch.Tensor) or positions.dim() != 1 or positions.dtype.is_floating_point:
        raise ValueError(f"positions must be an int or a 1-D integer tensor, got {positions!r:.80}")
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=positions.device).float()
                                / head_dim))  # [head_dim / 2]
    freqs = positions.float()[:, None] * inv_freq[None, :]  # [T, head_dim / 2]
    angles = torch.cat([freqs, freqs], dim=-1)  # [T, head_dim]: pair i uses channels i and i + head_dim/2
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last dimension split in halves: a quarter turn of every pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` ``[..., T, D]`` by their positions' angles (``rope_angles``): each pair
    ``(x_i, x_{i+D/2})`` becomes ``(x_i cos - x_{i+D/2} sin, x_{i+D/2} cos + x_i sin)``. A query at position m
    and a key at position n then score ``q R(m)^T R(n) k = q R(n - m) k``: only the offset counts."""
    x = _check_tensor("x", x)
    if cos.shape != sin.shape or x.shape[-2:] != cos.shape:
        raise ValueError(f"x [..., T, D] = {tuple(x.shape)} needs cos and sin of shape [T, D], got "
                         f"{tuple(cos.shape)} and {tuple(sin.shape)}")
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Grouped-query attention's sharing: ``[B, H_kv, T, D] -> [B, H_kv * n_rep, T, D]``, key/value head ``j``
    serving query heads ``j * n_rep .. (j + 1) * n_rep - 1`` (the order of ``transformers``' ``repeat_kv``)."""
    x = _check_tensor("x", x)
    if x.dim() != 4:
        raise ValueError(f"x must be [B, H_kv, T, D], got shape {tuple(x.shape)}")
    if isinstance(n_rep, bool) or not isinstance(n_rep, int) or n_rep < 1:
        raise ValueError(f"n_rep must be a positive int, got {n_rep!r}")
    return x if n_rep == 1 else x.repeat_interleave(n_rep, dim=1)


# ---------------------------------------------------------------- cross-attention: queries from one sequence, keys and values from another
def cross_attention(
    x_q: torch.Tensor,
    x_kv: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    w_o: torch.Tensor,
    n_head: int,
    b_q: torch.Tensor | None = None,
    b_k: torch.Tensor | None = None,
    b_v: torch.Tensor | None = None,
    b_o: torch.Tensor | None = None,
    key_padding_mask: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention whose queries come from ``x_q`` and whose keys and values come from ``x_kv``.

    The decoder of the 2017 Transformer reads the encoder this way: ``x_q`` is the decoder's stream
    ``[B, Tq, Cq]``, ``x_kv`` the encoder's output ("memory") ``[B, Tk, Ckv]``; the two lengths may differ.
    With ``x_kv = x_q`` it is ordinary self-attention. A plain function of the weights (``F.linear``
    convention, ``[out, in]``): ``w_q`` ``[E, Cq]``, ``w_k`` and ``w_v`` ``[E, Ckv]``, ``w_o`` ``[Cout, E]``,
    biases ``[E]`` (``b_o``: ``[Cout]``) or None; ``E`` is split into ``n_head`` heads of ``E / n_head``.

    Equals ``nn.MultiheadAttention(E, n_head, batch_first=True)(x_q, x_kv, x_kv)`` with ``w_q, w_k, w_v =
    in_proj_weight.chunk(3)``, ``b_q, b_k, b_v = in_proj_bias.chunk(3)``, ``w_o, b_o = out_proj.weight,
    out_proj.bias`` (with ``kdim=vdim=Ckv``: ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight``).

    Masks (two conventions, each as its name says):

    * ``key_padding_mask`` ``[B, Tk]`` bool, **True marks a padding key, which no query sees** (PyTorch's
      ``key_padding_mask``);
    * ``mask`` bool, broadcastable to ``[B, H, Tq, Tk]`` (``[Tq, Tk]`` for all), **True where a query may
      attend** (this module's convention; ``causal_mask(T)`` for a decoder's self-attention).

    A query left with no key to see is an error (PyTorch gives a row of NaN). ``dropout_p`` drops attention
    weights, as ``nn.MultiheadAttention``'s ``dropout`` (pass 0 in eval mode). Returns the output
    ``[B, Tq, Cout]``, or ``(output, weights [B, H, Tq, Tk])`` with ``need_weights=True`` (per head, not
    averaged).
    """
    for name, t in (("x_q", x_q), ("x_kv", x_kv)):
        _check_tensor(name, t)
        if t.dim() != 3:
            raise ValueError(f"{name} must have shape [B, T, C], got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating point, got dtype {t.dtype}")
    if x_q.dtype != x_kv.dtype:
        raise TypeError(f"x_q and x_kv must share one dtype, got x_q {x_q.dtype}, x_kv {x_kv.dtype}")
    B, Tq, Cq = x_q.shape
    if x_kv.shape[0] != B:
        raise ValueError(f"x_q and x_kv must have the same batch size: x_q is {tuple(x_q.shape)}, "
                         f"x_kv is {tuple(x_kv.shape)}")
    Tk, Ckv = x_kv.shape[1], x_kv.shape[2]
    if Tk == 0:
        raise ValueError(f"x_kv must hold at least one key (Tk >= 1), got shape {tuple(x_kv.shape)}")
    for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v), ("w_o", w_o)):
        _check_tensor(name, w)
        if w.dim() != 2:
            raise ValueError(f"{name} must be a matrix [out, in], got shape {tuple(w.shape)}")
        if w.dtype != x_q.dtype:
            raise TypeError(f"{name} has dtype {w.dtype}, the inputs {x_q.dtype}: they must match")
    E = w_q.shape[0]
    expected = {"w_q": (E, Cq), "w_k": (E, Ckv), "w_v": (E, Ckv), "w_o": (w_o.shape[0], E)}
    for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v), ("w_o", w_o)):
        if tuple(w.shape) != expected[name]:
            raise ValueError(
                f"{name} must have shape {expected[name]} ([out, in]; E={E} from w_q, Cq={Cq} from x_q, "
                f"Ckv={Ckv} from x_kv), got {tuple(w.shape)}"
            )
    if isinstance(n_head, bool) or not isinstance(n_head, int) or n_head < 1:
        raise ValueError(f"n_head must be a positive int, got {n_head!r}")
    if E % n_head:
        raise ValueError(f"the projection width E={E} must be divisible by n_head={n_head} "
                         f"(remainder {E % n_head})")
    for name, b, size in (("b_q", b_q, E), ("b_k", b_k, E), ("b_v", b_v, E), ("b_o", b_o, w_o.shape[0])):
        if b is None:
            continue
        _check_tensor(name, b)
        if tuple(b.shape) != (size,):
            raise ValueError(f"{name} must have shape ({size},), got {tuple(b.shape)}")
        if b.dtype != x_q.dtype:
            raise TypeError(f"{name} has dtype {b.dtype}, the inputs {x_q.dtype}: they must match")
    if not isinstance(need_weights, bool):
        raise TypeError(f"need_weights must be a bool, got {type(need_weights).__name__}")
    H, Dh = n_head, E // n_head
    if mask is not None:  # checked alone first, so its own errors name it
        _check_mask(mask, torch.Size((B, H, Tq, Tk)))
    if key_padding_mask is not None:
        _check_tensor("key_padding_mask", key_padding_mask)
        if key_padding_mask.dtype != torch.bool:
            raise TypeError(
                f"key_padding_mask must be a bool tensor (True = padding, ignored), got dtype "
                f"{key_padding_mask.dtype}; for an additive -inf mask use mask == float('-inf')"
            )
        if tuple(key_padding_mask.shape) != (B, Tk):
            raise ValueError(f"key_padding_mask must have shape [B, Tk] = {(B, Tk)}, got "
                             f"{tuple(key_padding_mask.shape)}")
        keep = ~key_padding_mask[:, None, None, :]  # [B, 1, 1, Tk], True = may attend
        mask = keep if mask is None else mask & keep

    q = F.linear(x_q, w_q, b_q).view(B, Tq, H, Dh).transpose(1, 2)  # [B, H, Tq, Dh]
    k = F.linear(x_kv, w_k, b_k).view(B, Tk, H, Dh).transpose(1, 2)  # [B, H, Tk, Dh]
    v = F.linear(x_kv, w_v, b_v).view(B, Tk, H, Dh).transpose(1, 2)
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=dropout_p)
    out = F.linear(out.transpose(1, 2).reshape(B, Tq, E), w_o, b_o)  # merge heads, project: [B, Tq, Cout]
    return (out, weights) if need_weights else out
