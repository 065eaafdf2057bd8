"""The model-lesson checkers: a correct answer passes every case, a plausible mistake fails at least one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.checks import (
    check_embedding_lookup,
    check_gelu_tanh,
    check_gpt2_param_count,
    check_layer_norm,
    check_next_token_loss,
    check_sinusoidal_positions,
)


# ---------------------------------------------------------------------------- sinusoidal positions
def sinusoid_good(T, d):
    pos = np.arange(T)[:, None]
    i = np.arange(0, d, 2)[None, :]
    angle = pos / 10000 ** (i / d)
    pe = np.zeros((T, d))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
    return pe


def sinusoid_swapped(T, d):  # cos on the even columns
    swap = np.arange(d).reshape(-1, 2)[:, ::-1].ravel()  # columns 1, 0, 3, 2, ...
    return sinusoid_good(T, d)[:, swap]


def sinusoid_wrong_exponent(T, d):  # 10000^(i/d) with i the column, not the pair
    pos = torch.arange(T)[:, None].double()
    angle = pos / 10000 ** (torch.arange(d).double() / d)
    pe = torch.zeros(T, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(angle[:, 0::2]), torch.cos(angle[:, 1::2])
    return pe


def test_sinusoidal_checker(capsys):
    assert check_sinusoidal_positions(sinusoid_good)
    assert not check_sinusoidal_positions(sinusoid_swapped)
    assert not check_sinusoidal_positions(sinusoid_wrong_exponent)
    assert "✗" in capsys.readouterr().out


# ---------------------------------------------------------------------------- LayerNorm
def ln_good(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def ln_unbiased(x, w, b, eps=1e-5):  # torch.var's default divides by C - 1
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * w + b


def ln_eps_outside(x, w, b, eps=1e-5):
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, unbiased=False, keepdim=True) + eps) * w + b


def ln_ignores_eps(x, w, b, eps=1e-5):
    return ln_good(x, w, b)


def test_layer_norm_checker():
    assert check_layer_norm(ln_good)
    assert check_layer_norm(
        lambda x, w, b, eps=1e-5: torch.nn.functional.layer_norm(x, x.shape[-1:], w, b, eps)
    )
    for wrong in (ln_unbiased, ln_eps_outside, ln_ignores_eps):
        assert not check_layer_norm(wrong), wrong.__name__


# ---------------------------------------------------------------------------- GELU
def test_gelu_checker():
    good = lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    assert check_gelu_tanh(good)
    assert not check_gelu_tanh(lambda x: torch.nn.functional.gelu(x))  # the exact (erf) GELU
    assert not check_gelu_tanh(torch.relu)


# ---------------------------------------------------------------------------- parameter count
def count_good(V, T, L, C):
    return V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C


def count_untied(V, T, L, C):
    return count_good(V, T, L, C) + V * C


def count_no_biases(V, T, L, C):
    return V * C + T * C + L * 12 * C * C


def test_param_count_checker(capsys):
    assert check_gpt2_param_count(count_good)
    assert not check_gpt2_param_count(count_untied)
    assert "count it once" in capsys.readouterr().out
    assert not check_gpt2_param_count(count_no_biases)
    assert not check_gpt2_param_count(lambda *a: float(count_good(*a)) + 0.5)


# ---------------------------------------------------------------------------- embeddings and the loss
def test_embedding_lookup_checker():
    assert check_embedding_lookup(lambda ids, w: torch.nn.functional.one_hot(ids, w.shape[0]).to(w.dtype) @ w)
    assert check_embedding_lookup(lambda ids, w: w[ids])
    assert not check_embedding_lookup(lambda ids, w: w[ids.flatten()])  # loses the batch shape
    assert not check_embedding_lookup(
        lambda ids, w: torch.nn.functional.one_hot(ids, w.shape[0]).to(w.dtype) @ w.T[:, : ids.numel()]
    )


def loss_good(logits, targets):
    logp = torch.log_softmax(logits, dim=-1)
    keep = targets != -100
    return -logp[keep].gather(-1, targets[keep][:, None]).mean()


def loss_naive_log(logits, targets):  # log(softmax) underflows to log(0) = -inf for large logits
    keep = targets != -100
    return -torch.log(torch.softmax(logits, -1))[keep].gather(-1, targets[keep][:, None]).mean()


def loss_counts_ignored(logits, targets):  # divides by every position, ignored ones included
    logp = torch.log_softmax(logits, dim=-1)
    keep = targets != -100
    return -logp[keep].gather(-1, targets[keep][:, None]).sum() / targets.numel()


def test_next_token_loss_checker():
    assert check_next_token_loss(loss_good)
    assert not check_next_token_loss(loss_naive_log)
    assert not check_next_token_loss(loss_counts_ignored)


def test_checker_reports_exceptions_instead_of_crashing(capsys):
    def broken(*args, **kw):
        raise NotImplementedError

    for check in (
        check_embedding_lookup,
        check_sinusoidal_positions,
        check_layer_norm,
        check_gelu_tanh,
        check_gpt2_param_count,
        check_next_token_loss,
    ):
        assert not check(broken)
    assert "not implemented yet" in capsys.readouterr().out


def test_checkers_need_a_function():
    with pytest.raises(TypeError, match="function"):
        check_layer_norm(42)
