"""The checkers of lesson 19 pass the course's own code and other correct ways, name each usual mistake, and
score a stub 0."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from helpers.attention import cross_attention
from helpers.checks import check_attention_masks, check_cross_attention, check_patchify
from helpers.vision import patchify


def stub(*args):
    raise NotImplementedError()


def masks(s, t):
    return (torch.ones(s, s, dtype=torch.bool), torch.ones(t, t, dtype=torch.bool).tril(),
            torch.ones(t, s, dtype=torch.bool))


def by_hand(x_q, x_kv, w_q, w_k, w_v, w_o, n_head):
    b, tq, c = x_q.shape
    d = c // n_head
    q = (x_q @ w_q.T).view(b, tq, n_head, d).transpose(1, 2)
    k = (x_kv @ w_k.T).view(b, -1, n_head, d).transpose(1, 2)
    v = (x_kv @ w_v.T).view(b, -1, n_head, d).transpose(1, 2)
    w = torch.softmax(q @ k.transpose(-1, -2) / d ** 0.5, dim=-1)
    return (w @ v).transpose(1, 2).reshape(b, tq, c) @ w_o.T, w


def test_the_course_code_passes(capsys):
    assert check_patchify(patchify).score(2) == 2
    assert check_cross_attention(lambda *a: cross_attention(*a, need_weights=True)).score(2) == 2
    assert check_attention_masks(masks).score(2) == 2


def test_other_correct_ways_pass(capsys):
    assert check_patchify(lambda x, p: F.unfold(x[:, None], p, stride=p).transpose(1, 2))
    assert check_patchify(lambda x, p: x.unfold(1, p, p).unfold(2, p, p).reshape(x.shape[0], -1, p * p))
    assert check_cross_attention(by_hand)
    assert check_attention_masks(lambda s, t: (torch.ones(s, s) > 0, torch.arange(t)[None] <= torch.arange(t)[:, None],
                                               torch.ones(t, s) > 0))


def test_stubs_score_zero(capsys):
    for check in (check_patchify, check_cross_attention, check_attention_masks):
        assert check(stub).score(1) == 0 and "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,name", [
    (lambda x, p: x.reshape(x.shape[0], -1, p * p), "strips, not squares"),
    (lambda x, p: x.reshape(x.shape[0], x.shape[1] // p, p, -1, p).permute(0, 3, 1, 2, 4).reshape(x.shape[0], -1, p * p),
     "column order"),
    (lambda x, p: x.reshape(x.shape[0], x.shape[1] // p, p, -1, p).permute(0, 1, 3, 4, 2).reshape(x.shape[0], -1, p * p),
     "column by column"),
])
def test_patchify_mistakes_are_named(capsys, wrong, name):
    assert not check_patchify(wrong)
    assert name in capsys.readouterr().out


def _no_scale(x_q, x_kv, w_q, w_k, w_v, w_o, n_head):
    d = x_q.shape[-1] // n_head
    out, w = by_hand(x_q * d ** 0.5, x_kv, w_q, w_k, w_v, w_o, n_head)  # scores sqrt(d) times too large
    return out, w


@pytest.mark.parametrize("wrong,name", [
    (lambda x_q, x_kv, *a: by_hand(x_q, x_q, *a), "that is self-attention"),
    (_no_scale, "no 1/sqrt(d_head)"),
    (lambda x_q, x_kv, w_q, w_k, w_v, w_o, n_head: by_hand(x_q, x_kv, w_q, w_k, w_v, torch.eye(w_o.shape[0]),
                                                           n_head), "output projection"),
    (lambda x_q, x_kv, w_q, w_k, w_v, w_o, n_head: by_hand(x_q, x_kv, w_q, w_k, w_v, w_o, 1), "one head"),
])
def test_cross_attention_mistakes_are_named(capsys, wrong, name):
    assert not check_cross_attention(wrong)
    out = capsys.readouterr().out
    assert name in out, out


@pytest.mark.parametrize("wrong,name", [
    (lambda s, t: (torch.ones(s, s, dtype=torch.bool).tril(), *masks(s, t)[1:]), "a causal encoder"),
    (lambda s, t: (masks(s, t)[0], torch.ones(t, t, dtype=torch.bool), masks(s, t)[2]), "no mask in the decoder"),
    (lambda s, t: (masks(s, t)[0], torch.ones(t, t, dtype=torch.bool).tril(-1), masks(s, t)[2]), "diagonal"),
    (lambda s, t: (*masks(s, t)[:2], torch.ones(t, s, dtype=torch.bool).tril()), "causal cross-attention"),
    (lambda s, t: (*masks(s, t)[:2], torch.ones(s, t, dtype=torch.bool)), "[S, T]"),
    (lambda s, t: tuple(~m for m in masks(s, t)), "attn_mask convention"),
    (lambda s, t: tuple(m.float() for m in masks(s, t)), "must be a bool tensor"),
])
def test_mask_mistakes_are_named(capsys, wrong, name):
    assert not check_attention_masks(wrong)
    out = capsys.readouterr().out
    assert name in out, out
