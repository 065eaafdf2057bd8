"""The attention checkers: a right answer passes every case, a plausible wrong one fails (and is reported)."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from helpers import checks, pieces
from helpers.checks import (
    check_causal_mask,
    check_causal_self_attention,
    check_cosine_similarity,
    check_dot_products_for,
    check_head,
    check_log_softmax,
    check_matmul_broadcast,
    check_merge_heads,
    check_multi_head_attention,
    check_padding_mask,
    check_previous_token_score,
    check_scaled_dot_product_attention,
    check_sliding_window_mask,
    check_softmax,
    check_split_heads,
)

# ------------------------------------------------------------------ right answers, written independently


def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_attention(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    w = np_softmax(scores)
    return w @ v, w


def torch_attention(q, k, v, mask=None):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def split_heads(x, n_heads):
    B, T, C = x.shape
    return x.reshape(B, T, n_heads, C // n_heads).permute(0, 2, 1, 3)


def merge_heads(x):
    B, H, T, D = x.shape
    return x.permute(0, 2, 1, 3).reshape(B, T, H * D)


def causal_self_attention(x, w_qkv, w_out, n_heads):
    q, k, v = (split_heads(t, n_heads) for t in (x @ w_qkv).chunk(3, dim=-1))
    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    return merge_heads(y) @ w_out


# ------------------------------------------------------------------ plausible wrong answers


def naive_softmax(x):
    return np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)  # overflows at 1e4


def softmax_wrong_axis(x):
    e = np.exp(x - x.max())
    return e / e.sum(axis=0, keepdims=True)


def attention_unscaled(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return np_softmax(scores) @ v


def attention_inverted_mask(q, k, v, mask=None):
    return np_attention(q, k, v, None if mask is None else ~mask | np.eye(*mask.shape[-2:], dtype=bool))


def split_heads_no_transpose(x, n_heads):
    B, T, C = x.shape
    return x.reshape(B, n_heads, T, C // n_heads)  # right shape, wrong features in each head


def merge_heads_no_transpose(x):
    B, H, T, D = x.shape
    return x.reshape(B, T, H * D)


def self_attention_not_causal(x, w_qkv, w_out, n_heads):
    q, k, v = (split_heads(t, n_heads) for t in (x @ w_qkv).chunk(3, dim=-1))
    return merge_heads(torch.nn.functional.scaled_dot_product_attention(q, k, v)) @ w_out


# ------------------------------------------------------------------ tests


def test_exported_from_checks():
    for name in ("check_softmax", "check_causal_mask", "check_scaled_dot_product_attention", "check_split_heads"):
        assert name in checks.__all__


def test_softmax_checker(capsys):
    assert check_softmax(np_softmax)
    assert check_softmax(lambda x: torch.softmax(x, dim=-1), backend="torch")
    out = capsys.readouterr().out
    assert "5/5 passed" in out and "✗" not in out
    res = check_softmax(naive_softmax)
    assert not res and res.passed < res.total
    assert "must not overflow" in capsys.readouterr().out
    assert not check_softmax(softmax_wrong_axis)


def test_softmax_checker_not_implemented(capsys):
    def todo(x):
        raise NotImplementedError

    assert check_softmax(todo).passed == 0
    assert "not implemented yet" in capsys.readouterr().out


def test_cosine_similarity_checker():
    def cosine(a, b):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T

    assert check_cosine_similarity(cosine)
    assert check_cosine_similarity(
        lambda a, b: torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=-1), backend="torch"
    )
    assert not check_cosine_similarity(lambda a, b: a @ b.T)  # a dot product is not yet a cosine
    assert not check_cosine_similarity(lambda a, b: a @ b.T / np.linalg.norm(a) / np.linalg.norm(b))  # whole-matrix norms


def test_causal_mask_checker():
    assert check_causal_mask(lambda T: np.tril(np.ones((T, T), dtype=bool)))
    assert check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril())
    assert not check_causal_mask(lambda T: np.triu(np.ones((T, T), dtype=bool)))  # the future, not the past
    assert not check_causal_mask(lambda T: np.tril(np.ones((T, T))))  # 0/1 floats, not bool
    assert not check_causal_mask(lambda T: np.tril(np.ones((T, T), dtype=bool), k=-1))  # cannot see itself


def test_padding_mask_checker():
    assert check_padding_mask(lambda lengths, T: np.arange(T)[None, :] < np.array(lengths)[:, None])
    assert not check_padding_mask(lambda lengths, T: np.arange(T)[None, :] <= np.array(lengths)[:, None])
    assert not check_padding_mask(lambda lengths, T: np.arange(T)[None, :] >= np.array(lengths)[:, None])


def test_sdpa_checker():
    assert check_scaled_dot_product_attention(np_attention)  # (output, weights)
    assert check_scaled_dot_product_attention(lambda *a, **kw: np_attention(*a, **kw)[0])  # output only
    assert check_scaled_dot_product_attention(torch_attention, backend="torch")
    res = check_scaled_dot_product_attention(attention_unscaled)
    assert not res and res.passed < res.total
    assert not check_scaled_dot_product_attention(attention_inverted_mask)


def test_heads_checkers():
    assert check_split_heads(split_heads)
    assert not check_split_heads(split_heads_no_transpose)
    assert check_merge_heads(merge_heads)
    assert not check_merge_heads(merge_heads_no_transpose)


def test_causal_self_attention_checker():
    assert check_causal_self_attention(causal_self_attention)
    assert not check_causal_self_attention(self_attention_not_causal)


def test_bad_inputs():
    with pytest.raises(ValueError, match="backend must be 'numpy' or 'torch', got 'jax'"):
        check_softmax(np_softmax, backend="jax")
    with pytest.raises(TypeError, match="needs your function"):
        check_softmax("softmax")


# ------------------------------------------------------------------ notebook 00 warm-ups


def test_log_softmax_checker(capsys):
    def good(x):
        m = x.max(axis=-1, keepdims=True)
        return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))

    assert check_log_softmax(good)
    assert check_log_softmax(lambda x: torch.log_softmax(x, dim=-1), backend="torch")
    capsys.readouterr()
    assert not check_log_softmax(lambda x: np.log(np_softmax(x)))
    assert "looks like the log of the softmax" in capsys.readouterr().out
    assert not check_log_softmax(lambda x: x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)))
    assert "not put back" in capsys.readouterr().out


def test_matmul_broadcast_checker(capsys):
    def good(a, b):
        return (a[..., :, :, None] * b[..., None, :, :]).sum(axis=-2)

    assert check_matmul_broadcast(good)
    capsys.readouterr()
    assert not check_matmul_broadcast(lambda a, b: a @ b)
    assert "not to use @" in capsys.readouterr().out
    assert not check_matmul_broadcast(lambda a, b: np.matmul(a, b))
    assert not check_matmul_broadcast(lambda a, b: np.einsum("...ij,...jk->...ik", a, b))
    assert "not to call numpy.einsum" in capsys.readouterr().out
    assert not check_matmul_broadcast(lambda a, b: a.dot(b))
    assert not check_matmul_broadcast(lambda a, b: np.swapaxes(good(a, b), -1, -2) if a.shape[-2] == b.shape[-1]
                                      else good(a, b).T)


# ------------------------------------------------------------------ notebook 01


def test_sliding_window_mask_checker(capsys):
    def good(T, w):
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        return (j <= i) & (i - j < w)

    assert check_sliding_window_mask(good)
    capsys.readouterr()
    assert not check_sliding_window_mask(lambda T, w: good(T, w + 1))
    assert "off by one" in capsys.readouterr().out
    assert not check_sliding_window_mask(lambda T, w: np.abs(np.arange(T)[:, None] - np.arange(T)[None, :]) < w)
    assert "both directions" in capsys.readouterr().out
    assert not check_sliding_window_mask(lambda T, w: np.tril(np.ones((T, T), dtype=bool)))
    assert "the window is missing" in capsys.readouterr().out
    assert not check_sliding_window_mask(lambda T, w: good(T, w).astype(int))


def test_dot_products_for_checker(capsys):
    assert check_dot_products_for(lambda w, d_k: np.log(w) * np.sqrt(d_k))
    assert check_dot_products_for(lambda w, d_k: (np.log(w) + 5.0) * np.sqrt(d_k))  # any shift works
    capsys.readouterr()
    assert not check_dot_products_for(lambda w, d_k: np.log(w))
    assert "√d_k times larger" in capsys.readouterr().out
    assert not check_dot_products_for(lambda w, d_k: w)
    assert "the weights themselves" in capsys.readouterr().out
    assert not check_dot_products_for(lambda w, d_k: np.log(w) / np.sqrt(d_k))
    assert "you divided by √d_k" in capsys.readouterr().out
    res = check_dot_products_for(lambda w, d_k: None)
    assert res.passed == 0 and "did you forget `return`" in capsys.readouterr().out


def test_sdpa_checker_names_mistakes(capsys):
    check_scaled_dot_product_attention(attention_unscaled)
    assert "looks like √d_k is missing" in capsys.readouterr().out
    check_scaled_dot_product_attention(lambda q, k, v, mask=None: np_attention(q, k, v, None if mask is None else ~mask))
    assert "looks like the mask inverted" in capsys.readouterr().out


# ------------------------------------------------------------------ notebook 02: Head and MultiHeadAttention


class MyHead(nn.Module):
    """Written independently of helpers.pieces (Karpathy's layout: a tril buffer of block_size)."""

    mistake = None

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)
        self.head_size, self.n_embd = head_size, n_embd

    def forward(self, x):
        B, T, C = x.shape
        k, q, v = self.key(x), self.query(x), self.value(x)
        m = self.mistake
        wei = (k @ q.transpose(-2, -1)) if m == "swap" else (q @ k.transpose(-2, -1))
        if m == "no_sqrt":
            pass
        elif m == "sqrt_C":
            wei = wei * C**-0.5
        else:
            wei = wei * self.head_size**-0.5
        tril = self.tril[:T, :T]
        if m == "inverted":
            wei = wei.masked_fill(tril == 1, float("-inf"))
        elif m == "triu":
            wei = wei.masked_fill(tril.T == 0, float("-inf"))
        elif m != "no_mask":
            wei = wei.masked_fill(tril == 0, float("-inf"))
        wei = torch.softmax(wei, dim=1 if m == "axis" else -1)
        wei = self.dropout(wei)
        out = wei @ v
        if m == "output_only":
            return out
        if m == "none":
            return None
        return out, wei


def head_with(mistake):
    return type(f"Head_{mistake}", (MyHead,), {"mistake": mistake})


@pytest.mark.parametrize("mistake, hint", [
    ("no_sqrt", "looks like √d_k is missing"),
    ("sqrt_C", "√n_embd instead of √head_size"),
    ("inverted", "looks like the mask inverted: it attends to the future"),
    ("triu", "looks like the mask inverted: it attends to the future"),
    ("no_mask", "looks like no causal mask"),
    ("axis", "looks like the softmax over the wrong axis"),
    ("swap", "queries and keys swapped"),
    ("output_only", "expected a tuple of 2 (e.g. output and weights), got a single Tensor"),
    ("none", "did you forget `return`?"),
])
def test_head_checker_names_the_mistake(mistake, hint, capsys):
    res = check_head(head_with(mistake))
    out = capsys.readouterr().out
    assert not res and hint in out, out
    assert "Traceback" not in out


def test_head_checker(capsys):
    assert check_head(MyHead)
    assert check_head(pieces.Head)
    out = capsys.readouterr().out
    assert "6/6 passed" in out and "✗" not in out
    assert check_head(None).score(2) == 0.0


def test_head_checker_not_implemented_and_wrong_layout(capsys):
    class Todo(nn.Module):
        def __init__(self, n_embd, head_size, block_size, dropout=0.0):
            super().__init__()
            raise NotImplementedError()

    res = check_head(Todo)
    out = capsys.readouterr().out
    assert res.score(3) == 0.0 and "not implemented yet. Write your code" in out

    class Biased(MyHead):
        def __init__(self, n_embd, head_size, block_size, dropout=0.0):
            super().__init__(n_embd, head_size, block_size, dropout)
            self.query = nn.Linear(n_embd, head_size)

    assert not check_head(Biased)
    assert "unexpected query.bias" in capsys.readouterr().out
    with pytest.raises(TypeError, match="not an instance"):
        check_head(MyHead(8, 4, 8))


def test_head_checker_refuses_fused_attention(capsys):
    class Fused(MyHead):
        def forward(self, x):
            q, k, v = self.query(x), self.key(x), self.value(x)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True), None

    assert not check_head(Fused)
    assert "write the four steps of attention yourself" in capsys.readouterr().out


class MyMHA(nn.Module):
    """Written independently of helpers.pieces: explicit attention, nn.Dropout modules."""

    mistake = None

    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        B, T, C = x.shape
        H, m = self.n_head, self.mistake
        q, k, v = self.c_attn(x).split(C, dim=2)
        if m == "split_no_transpose":
            q, k, v = (t.reshape(B, H, T, C // H) for t in (q, k, v))
        else:
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1)
        if m != "no_sqrt":
            att = att / math.sqrt(k.size(-1))
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        if m == "inverted":
            att = att.masked_fill(mask, float("-inf"))
        elif m != "no_mask":
            att = att.masked_fill(~mask, float("-inf"))
        att = self.attn_dropout(torch.softmax(att, dim=1 if m == "heads_axis" else -1))
        y = att @ v
        y = y.reshape(B, T, C) if m == "merge_no_transpose" else y.transpose(1, 2).contiguous().view(B, T, C)
        y = self.resid_dropout(self.c_proj(y))
        return (y, att) if m == "with_weights" else y


def mha_with(mistake):
    return type(f"MHA_{mistake}", (MyMHA,), {"mistake": mistake})


@pytest.mark.parametrize("mistake, hint", [
    ("no_sqrt", "looks like √d_k is missing"),
    ("inverted", "looks like the mask inverted"),
    ("no_mask", "looks like no causal mask"),
    ("heads_axis", "looks like the softmax over the wrong axis"),
    ("merge_no_transpose", "looks like heads merged in the wrong order"),
    ("split_no_transpose", "looks like heads split without the transpose"),
    ("with_weights", "MultiHeadAttention returns the output [B, T, C] only"),
])
def test_mha_checker_names_the_mistake(mistake, hint, capsys):
    res = check_multi_head_attention(mha_with(mistake))
    out = capsys.readouterr().out
    assert not res and hint in out, out


def test_mha_checker(capsys):
    assert check_multi_head_attention(MyMHA)
    assert check_multi_head_attention(pieces.MultiHeadAttention)
    capsys.readouterr()

    class NoDropout(MyMHA):
        def __init__(self, config):
            super().__init__(config)
            self.attn_dropout = self.resid_dropout = nn.Identity()

    res = check_multi_head_attention(NoDropout)
    assert res.passed == res.total - 1 and "did not change" in capsys.readouterr().out

    class Todo(nn.Module):
        def __init__(self, config):
            super().__init__()
            raise NotImplementedError()

    assert check_multi_head_attention(Todo).score(3) == 0.0
    assert "not implemented yet" in capsys.readouterr().out

    class Separate(nn.Module):  # q/k/v as three Linear layers: not GPT-2's layout
        def __init__(self, config):
            super().__init__()
            self.q = nn.Linear(config.n_embd, config.n_embd)

    assert not check_multi_head_attention(Separate)
    assert "missing c_attn.weight" in capsys.readouterr().out


def test_checkers_leave_the_global_rng_alone():
    torch.manual_seed(0)
    a = torch.rand(3)
    torch.manual_seed(0)
    check_head(MyHead)
    check_multi_head_attention(MyMHA)
    assert torch.equal(torch.rand(3), a)


def test_previous_token_score_checker(capsys):
    def good(w):
        T = w.shape[-1]
        return torch.stack([w[..., i, i - 1] for i in range(1, T)], dim=-1).mean(dim=(0, -1))

    assert check_previous_token_score(good)
    capsys.readouterr()
    assert not check_previous_token_score(lambda w: torch.diagonal(w, 1, -2, -1).mean(dim=(0, -1)))
    assert "looks like the next token" in capsys.readouterr().out
    assert not check_previous_token_score(lambda w: torch.diagonal(w, -1, -2, -1).sum(-1).mean(0) / w.shape[-1])
    assert "not the T - 1" in capsys.readouterr().out
    assert not check_previous_token_score(lambda w: torch.diagonal(w, -1, -2, -1).mean())
    assert "one score per head" in capsys.readouterr().out
