"""The model-lesson checkers: a correct answer passes every case, a plausible mistake fails at least one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.checks import (
    check_embedding_lookup,
    check_gelu_tanh,
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
        check_next_token_loss,
    ):
        assert not check(broken)
    assert "not implemented yet" in capsys.readouterr().out


def test_checkers_need_a_function():
    with pytest.raises(TypeError, match="function"):
        check_layer_norm(42)


# ---------------------------------------------------------------------------- the loss may not call F.cross_entropy
def test_next_token_loss_forbids_cross_entropy(capsys):
    def cheat(logits, targets):
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    assert check_next_token_loss(cheat).score(2) == 0.0
    assert "asks you not to call torch.nn.functional.cross_entropy" in capsys.readouterr().out


# ---------------------------------------------------------------------------- 03: embedding backward, positions
from helpers.checks import (  # noqa: E402
    check_block,
    check_dropout,
    check_embedding_backward,
    check_gpt,
    check_param_count,
    check_position_from_encoding,
)


def test_embedding_backward_checker(capsys):
    assert check_embedding_backward(lambda ids, g, V: torch.zeros(V, g.shape[1], dtype=g.dtype).index_add_(0, ids, g))

    def overwrite(ids, g, V):
        out = torch.zeros(V, g.shape[1], dtype=g.dtype)
        out[ids] = g
        return out

    assert not check_embedding_backward(overwrite)
    assert "overwriting its row instead of adding" in capsys.readouterr().out
    assert not check_embedding_backward(lambda ids, g, V: None)
    assert "did you forget `return`" in capsys.readouterr().out


def test_position_from_encoding_checker(capsys):
    def good(pe):
        d = pe.shape[1]
        w = 10000.0 ** (-(d - 2) / d)  # the slowest pair
        return torch.round(torch.atan2(pe[:, -2].double(), pe[:, -1].double()) / w).long()

    def fastest(pe):
        return torch.round(torch.remainder(torch.atan2(pe[:, 0].double(), pe[:, 1].double()), 2 * math.pi)).long()

    assert check_position_from_encoding(good)
    assert not check_position_from_encoding(fastest)
    assert "fastest column pair" in capsys.readouterr().out


# ---------------------------------------------------------------------------- 04: dropout by hand
def test_dropout_checker(capsys):
    def good(x, p, training):
        if not training or p == 0:
            return x
        return x * (torch.rand_like(x) >= p).to(x.dtype) / (1 - p)

    assert check_dropout(good)
    cases = {
        "not rescaled": lambda x, p, t: x * (torch.rand_like(x) >= p).to(x.dtype) if t else x,
        "probability of dropping, not keeping": lambda x, p, t: x * (torch.rand_like(x) < p).to(x.dtype) / (1 - p)
        if t else x,
        "it is still active": lambda x, p, t: x * (torch.rand_like(x) >= p).to(x.dtype) / (1 - p),
        "asks you not to call torch.nn.functional.dropout": lambda x, p, t: torch.nn.functional.dropout(x, p, t),
        "multiplied by (1 - p)": lambda x, p, t: x * (torch.rand_like(x) >= p).to(x.dtype) * (1 - p) if t else x,
    }
    for hint, wrong in cases.items():
        assert not check_dropout(wrong)
        assert hint in capsys.readouterr().out, hint


# ---------------------------------------------------------------------------- 04: the block
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from helpers.pieces import MultiHeadAttention  # noqa: E402


class _MLP(nn.Module):
    def __init__(self, config, act="tanh", drop=True):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout if drop else 0.0)
        self.act = act

    def forward(self, x):
        h = self.c_fc(x)
        h = {"tanh": lambda z: F.gelu(z, approximate="tanh"), "exact": F.gelu, "none": lambda z: z}[self.act](h)
        return self.dropout(self.c_proj(h))


def make_block(kind="good"):
    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            if kind == "stub":
                raise NotImplementedError()
            self.ln_1 = nn.LayerNorm(config.n_embd)
            self.attn = MultiHeadAttention(config)
            self.ln_2 = nn.LayerNorm(config.n_embd)
            self.mlp = _MLP(config, act={"no-gelu": "none", "exact": "exact"}.get(kind, "tanh"),
                            drop=kind != "no-dropout")
            self.p = config.dropout

        def forward(self, x):
            a, m, ln_1, ln_2 = self.attn, self.mlp, self.ln_1, self.ln_2
            if kind == "post":
                x = ln_1(x + a(x))
                return ln_2(x + m(x))
            if kind == "no-residual":
                return m(ln_2(a(ln_1(x))))
            if kind == "same-ln":
                x = x + a(ln_1(x))
                return x + m(ln_1(x))
            if kind == "one-ln":
                x = x + a(ln_1(x))
                return x + m(x)
            x = x + a(ln_1(x))
            x = x + m(ln_2(x))
            if kind == "eval-dropout":
                return F.dropout(x, self.p)
            if kind == "none":
                return None
            if kind == "tuple":
                return x, None
            return x

    return Block


def test_block_checker_passes_a_correct_block_and_the_reference():
    from helpers.pieces import Block

    assert check_block(make_block()).score(3) == 3.0
    assert check_block(Block)


@pytest.mark.parametrize("kind, hint", [
    ("post", "post-LN"),
    ("no-residual", "residual connections are missing"),
    ("same-ln", "the same LayerNorm twice"),
    ("one-ln", "only one LayerNorm"),
    ("no-gelu", "an MLP without GELU"),
    ("exact", "the exact GELU"),
    ("eval-dropout", "dropout left active in eval mode"),
    ("no-dropout", "no dropout in training mode"),
    ("none", "did you forget `return`"),
    ("tuple", "not a tuple"),
    ("stub", "not implemented yet"),
])
def test_block_checker_names_each_mistake(kind, hint, capsys):
    result = check_block(make_block(kind))
    assert not result
    out = capsys.readouterr()
    assert hint in out.out and not out.err


def test_block_checker_names_wrong_parameter_names(capsys):
    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.norm1 = nn.LayerNorm(config.n_embd)

        def forward(self, x):
            return self.norm1(x)

    assert check_block(Block).score(3) == 0.0
    assert "parameter names differ from GPT-2's" in capsys.readouterr().out


# ---------------------------------------------------------------------------- 05: the GPT
def make_gpt(kind="good"):
    from helpers.pieces import Block

    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            if kind == "stub":
                raise NotImplementedError()
            c = config
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(c.vocab_size, c.n_embd), wpe=nn.Embedding(c.block_size, c.n_embd),
                drop=nn.Dropout(c.dropout), h=nn.ModuleList([Block(c) for _ in range(c.n_layer)]),
                ln_f=nn.LayerNorm(c.n_embd)))
            self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
            if kind != "untied":
                self.lm_head.weight = self.transformer.wte.weight

        def forward(self, idx, targets=None):
            tr = self.transformer
            x = tr.wte(idx) if kind == "no-pos" else tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
            x = F.dropout(x, 0.5) if kind == "eval-dropout" else tr.drop(x)
            for block in tr.h:
                x = block(x)
            logits = self.lm_head(x if kind == "no-ln_f" else tr.ln_f(x))
            if kind == "single":
                return logits
            if targets is None:
                return logits, None
            V = logits.shape[-1]
            if kind == "loss-idx":
                return logits, F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1))
            if kind == "loss-shift":
                return logits, F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1))
            reduction = "sum" if kind == "loss-sum" else "mean"
            return logits, F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction=reduction)

    return GPT


def test_gpt_checker_passes_a_correct_gpt_and_the_reference():
    from helpers.pieces import GPT

    assert check_gpt(make_gpt()).score(4) == 4.0
    assert check_gpt(GPT)


@pytest.mark.parametrize("kind, hint", [
    ("untied", "the weights are not tied"),
    ("no-ln_f", "ln_f is missing"),
    ("no-pos", "the positions are missing"),
    ("loss-idx", "compares the logits with idx"),
    ("loss-shift", "shifted a second time"),
    ("loss-sum", "not averaged"),
    ("eval-dropout", "dropout left active in eval mode"),
    ("single", "got a single Tensor"),
    ("stub", "not implemented yet"),
])
def test_gpt_checker_names_each_mistake(kind, hint, capsys):
    assert not check_gpt(make_gpt(kind))
    out = capsys.readouterr()
    assert hint in out.out and not out.err


# ---------------------------------------------------------------------------- 05: counting, bias and tying
def test_param_count_bias_and_tying_checker(capsys):
    def good(V, T, L, C, bias=True, tied=True):
        b = 1 if bias else 0
        return V * C + T * C + L * (12 * C * C + 2 * C + 11 * b * C) + (1 + b) * C + (0 if tied else V * C)

    assert check_param_count(good)
    assert not check_param_count(lambda V, T, L, C, bias=True, tied=True: good(V, T, L, C, bias, True))
    assert "lm_head has its own V x C matrix" in capsys.readouterr().out
    assert not check_param_count(lambda V, T, L, C, bias=True, tied=True: good(V, T, L, C, True, tied))
    assert "no Linear and no LayerNorm has a bias" in capsys.readouterr().out


def test_rms_norm_checker(capsys):
    from helpers.checks import check_rms_norm

    def good(x, w, eps=1e-6):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    assert check_rms_norm(good)
    wrong = {
        "LayerNorm: RMSNorm does not subtract the mean":
            lambda x, w, eps=1e-6: torch.nn.functional.layer_norm(x, (x.shape[-1],), w, None, eps),
        "eps added outside": lambda x, w, eps=1e-6: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w,
        "dividing by the norm": lambda x, w, eps=1e-6: x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w,
    }
    for hint, f in wrong.items():
        assert not check_rms_norm(f)
        assert hint in capsys.readouterr().out, hint


def test_new_checkers_say_not_implemented_and_score_zero(capsys):
    from helpers.checks import check_rms_norm

    def stub(*args, **kw):
        raise NotImplementedError()

    for check in (check_embedding_backward, check_position_from_encoding, check_dropout, check_rms_norm,
                  check_param_count, check_block, check_gpt):
        result = check(stub)
        assert result.score(2) == 0.0 and not result.implemented
        out = capsys.readouterr()
        assert "not implemented yet" in out.out and not out.err
