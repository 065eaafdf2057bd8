"""The attention checkers: a right answer passes every case, a plausible wrong one fails (and is reported)."""

import numpy as np
import pytest
import torch

from helpers import checks
from helpers.checks import (
    check_causal_mask,
    check_causal_self_attention,
    check_cosine_similarity,
    check_merge_heads,
    check_padding_mask,
    check_scaled_dot_product_attention,
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
