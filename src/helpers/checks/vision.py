"""Checkers for lesson 19 (images as tokens, the encoder–decoder): patchify, cross-attention, the three masks.

Each compares the learner's function with an independent reference: ``torch.nn.functional.unfold`` (im2col)
for the patches, ``torch.nn.MultiheadAttention`` for cross-attention, the masks' definitions written as index
comparisons; and each names the usual mistakes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._core import Case, CheckResult, run_cases

__all__ = ["check_patchify", "check_cross_attention", "check_attention_masks"]


# ---------------------------------------------------------------------------------------------------------
# patchify(images [B, H, W], p) -> [B, (H/p)(W/p), p*p], patches in reading order, each flattened row by row


def _unfold_patches(images: torch.Tensor, p: int) -> torch.Tensor:
    """The reference: im2col with a stride equal to the kernel, ``[B, p*p, N]`` → ``[B, N, p*p]``."""
    return F.unfold(images[:, None].double(), kernel_size=p, stride=p).transpose(1, 2).to(images.dtype)


def _strips(images, p):  # reshape alone: p*p consecutive pixels of a row-major image, i.e. strips of rows
    b, h, w = images.shape
    return images.reshape(b, h * w // (p * p), p * p)


def _column_order(images, p):  # patches top to bottom, then left to right
    b, h, w = images.shape
    x = images.reshape(b, h // p, p, w // p, p).permute(0, 3, 1, 2, 4)
    return x.reshape(b, -1, p * p)


def _transposed_inside(images, p):  # each patch flattened column by column
    b, h, w = images.shape
    x = images.reshape(b, h // p, p, w // p, p).permute(0, 1, 3, 4, 2)
    return x.reshape(b, -1, p * p)


def _no_batch(images, p):  # the batch folded into the patches
    return _unfold_patches(images, p).reshape(-1, p * p)


def check_patchify(fn) -> CheckResult:
    """``fn(images [B, H, W], p)`` → ``[B, N, p·p]`` against ``F.unfold(images[:, None], p, stride=p)``."""
    g = torch.Generator().manual_seed(1900)
    counting = torch.arange(16.0).reshape(1, 4, 4)
    specs = [
        ("a 4 x 4 image holding 0..15, 2 x 2 patches", counting, 2),
        ("three random 8 x 8 images, 2 x 2 patches (the lesson's)", torch.rand(3, 8, 8, generator=g), 2),
        ("two random 8 x 8 images, 4 x 4 patches", torch.rand(2, 8, 8, generator=g), 4),
        ("a random 6 x 4 image (not square), 2 x 2 patches", torch.rand(1, 6, 4, generator=g), 2),
        ("a random 8 x 8 image, 1 x 1 patches (every pixel a token)", torch.rand(1, 8, 8, generator=g), 1),
    ]
    cases = [Case(name, (x, p), _unfold_patches(x, p), atol=0, rtol=0) for name, x, p in specs]
    mistakes = [
        ("reshape alone cuts each row into strips, not squares: reshape to [B, H/p, p, W/p, p] and permute "
         "so that the two patch indices come before the two pixel indices", _strips),
        ("patches in column order (top to bottom first): read them left to right, then top to bottom",
         _column_order),
        ("each patch flattened column by column: flatten it row by row", _transposed_inside),
        ("the batch dimension is gone: keep [B, N, p*p]", _no_batch),
    ]
    return run_cases("patchify", fn, cases, mistakes)


# ---------------------------------------------------------------------------------------------------------
# cross_attention(x_q [B, Tq, C], x_kv [B, Tk, C], w_q, w_k, w_v, w_o, n_head) -> (out [B, Tq, C],
#                                                                                  weights [B, H, Tq, Tk])


def _torch_cross(x_q, x_kv, w_q, w_k, w_v, w_o, n_head):
    """The reference: ``nn.MultiheadAttention`` (no biases) with these weights, weights per head."""
    c = w_q.shape[0]
    mha = nn.MultiheadAttention(c, n_head, bias=False, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([w_q, w_k, w_v]).double())
        mha.out_proj.weight.copy_(w_o.double())
        out, w = mha(x_q.double(), x_kv.double(), x_kv.double(), need_weights=True, average_attn_weights=False)
    return out.float(), w.float()


def _cross_mistake(kv_from_q=False, scale=True, causal=False, heads=True, out_proj=True, softmax_dim=-1):
    def f(x_q, x_kv, w_q, w_k, w_v, w_o, n_head):
        src = x_q if kv_from_q else x_kv
        b, tq, c = x_q.shape
        h = n_head if heads else 1
        d = c // h
        q = (x_q @ w_q.T).reshape(b, tq, h, d).transpose(1, 2)
        k = (src @ w_k.T).reshape(b, src.shape[1], h, d).transpose(1, 2)
        v = (src @ w_v.T).reshape(b, src.shape[1], h, d).transpose(1, 2)
        s = q @ k.transpose(-2, -1)
        if scale:
            s = s / d ** 0.5
        if causal:
            tk = src.shape[1]
            s = s.masked_fill(~torch.ones(tq, tk, dtype=torch.bool).tril(), float("-inf"))
        w = s.softmax(dim=softmax_dim)
        out = (w @ v).transpose(1, 2).reshape(b, tq, c)
        if out_proj:
            out = out @ w_o.T
        if not heads:
            w = w.expand(b, n_head, tq, src.shape[1])
        return out, w
    return f


def check_cross_attention(fn) -> CheckResult:
    """``fn(x_q, x_kv, w_q, w_k, w_v, w_o, n_head)`` → ``(output [B, Tq, C], weights [B, H, Tq, Tk])``:
    queries from ``x_q``, keys and values from ``x_kv``, against ``nn.MultiheadAttention(x_q, x_kv, x_kv)``."""
    g = torch.Generator().manual_seed(1901)

    def spec(b, tq, tk, c, h):
        ws = [torch.randn(c, c, generator=g) / c ** 0.5 for _ in range(4)]
        return (torch.randn(b, tq, c, generator=g), torch.randn(b, tk, c, generator=g), *ws, h)

    specs = [
        ("4 letters attending to 17 image positions, 2 heads", spec(1, 4, 17, 8, 2)),
        ("a batch of 3, 6 queries and 5 keys, 4 heads", spec(3, 6, 5, 16, 4)),
        ("more queries (9) than keys (3), one head", spec(2, 9, 3, 8, 1)),
        ("equal lengths (7 and 7): cross-attention is still not self-attention", spec(2, 7, 7, 12, 3)),
    ]
    cases = [Case(name, args, _torch_cross(*args), atol=1e-5, rtol=1e-4) for name, args in specs]
    mistakes = [
        ("keys and values taken from x_q: that is self-attention; they come from x_kv (the encoder's output)",
         _cross_mistake(kv_from_q=True)),
        ("no 1/sqrt(d_head) scaling of the scores", _cross_mistake(scale=False)),
        ("a causal mask: cross-attention sees every encoder position (the whole image is known)",
         _cross_mistake(causal=True)),
        ("softmax over the queries (dim=-2): each query's weights must sum to 1 over the keys (dim=-1)",
         _cross_mistake(softmax_dim=-2)),
        ("one head of width C instead of n_head heads of C / n_head", _cross_mistake(heads=False)),
        ("the output projection w_o is missing", _cross_mistake(out_proj=False)),
    ]
    return run_cases("cross_attention", fn, cases, mistakes)


# ---------------------------------------------------------------------------------------------------------
# attention_masks(n_src, n_tgt) -> (encoder [S, S], decoder [T, T], cross [T, S]); bool, True = may attend


def _masks(n_src, n_tgt, enc="full", dec="causal", cross="full", invert=False):
    def make(kind, tq, tk):
        i, j = torch.arange(tq)[:, None], torch.arange(tk)[None, :]
        return {"full": torch.ones(tq, tk, dtype=torch.bool), "causal": j <= i, "strict": j < i}[kind]

    out = (make(enc, n_src, n_src), make(dec, n_tgt, n_tgt), make(cross, n_tgt, n_src))
    return tuple(~m for m in out) if invert else out


def _masks_mistake(**kw):
    return lambda n_src, n_tgt: _masks(n_src, n_tgt, **kw)


def _transposed_cross(n_src, n_tgt):
    enc, dec, _ = _masks(n_src, n_tgt)
    return enc, dec, torch.ones(n_src, n_tgt, dtype=torch.bool)


def _mask_predicate(n_src: int, n_tgt: int):
    want = _masks(n_src, n_tgt)
    names = ["the encoder's mask", "the decoder's mask", "the cross-attention mask"]

    def check(got):
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return False, "expected a tuple of three masks (encoder, decoder, cross)"
        for name, g, w in zip(names, got, want, strict=True):
            if not isinstance(g, torch.Tensor):
                return False, f"{name} must be a tensor, got {type(g).__name__}"
            if g.dtype != torch.bool:
                return False, f"{name} must be a bool tensor (True = may attend), got {g.dtype}"
            if g.shape != w.shape:
                return False, f"{name} must have shape {tuple(w.shape)} [queries, keys], got {tuple(g.shape)}"
            if not torch.equal(g, w):
                i, j = map(int, torch.nonzero(g != w)[0])
                return False, (f"{name}: query {i} {'may not' if w[i, j] else 'may'} attend to key {j}, "
                               f"yours says {'it may' if g[i, j] else 'it may not'}")
        return True, "matches"

    return check


def check_attention_masks(fn) -> CheckResult:
    """``fn(n_src, n_tgt)`` → ``(encoder [S, S], decoder [T, T], cross [T, S])`` bool masks, True where a query
    may attend: the encoder sees everything, the decoder sees itself and its past, cross-attention every source
    position."""
    cases = [Case(f"{s} source positions, {t} target positions", (s, t), _masks(s, t),
                  predicate=_mask_predicate(s, t)) for s, t in [(3, 3), (5, 2), (17, 6), (1, 4)]]
    mistakes = [
        ("a causal encoder: the encoder reads the whole source at once, nothing to hide",
         _masks_mistake(enc="causal")),
        ("no mask in the decoder: position t would see the letters it must predict",
         _masks_mistake(dec="full")),
        ("the decoder's diagonal is masked: a position may attend to itself (j <= i, not j < i)",
         _masks_mistake(dec="strict")),
        ("a causal cross-attention mask: every target position may read every source position",
         _masks_mistake(cross="causal")),
        ("the cross mask is [S, T]: queries (target positions) come first, [T, S]", _transposed_cross),
        ("True where attention is blocked: that is nn.MultiheadAttention's attn_mask convention; here True "
         "means the query may attend", _masks_mistake(invert=True)),
    ]
    return run_cases("attention_masks", fn, cases, mistakes)
