"""The generation checkers: a correct function passes every case, plausible mistakes fail."""

import math

import torch

from helpers.checks import (
    check_continuation_log_prob,
    check_kv_cache_bytes,
    check_kv_cache_step,
    check_temperature_softmax,
    check_top_k_filter,
    check_top_p_filter,
)


def good_temperature(logits, t):
    z = logits / t
    z = z - z.max(dim=-1, keepdim=True).values
    return z.exp() / z.exp().sum(dim=-1, keepdim=True)


def good_top_k(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def good_top_p(logits, p):
    probs, order = torch.sort(torch.softmax(logits, -1), descending=True, dim=-1)
    drop = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def good_kv(q, k, v, kc, vc):
    kc, vc = torch.cat([kc, k], -2), torch.cat([vc, v], -2)
    w = torch.softmax(q @ kc.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)
    return w @ vc, kc, vc


def good_logp(logits, ids, start):
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[t - 1, ids[t]] for t in range(start, len(ids))))


def test_correct_functions_pass(capsys):
    assert check_temperature_softmax(good_temperature)
    assert check_top_k_filter(good_top_k)
    assert check_top_p_filter(good_top_p)
    assert check_kv_cache_step(good_kv)
    assert check_kv_cache_bytes(lambda L, H, d, T, b: 2 * L * H * d * T * b)
    assert check_continuation_log_prob(good_logp)
    assert "✗" not in capsys.readouterr().out


def test_plausible_mistakes_fail(capsys):
    assert not check_temperature_softmax(lambda x, t: torch.softmax(x * t, -1))  # multiplies
    assert not check_temperature_softmax(lambda x, t: (x / t).exp() / (x / t).exp().sum(-1, keepdim=True))  # overflow
    assert not check_top_k_filter(lambda x, k: good_top_k(x, max(1, k - 1)))  # off by one
    assert not check_top_k_filter(lambda x, k: x.masked_fill(x < torch.topk(x, k).values[..., -1:], 0.0))  # 0, not -inf
    # keeps tokens while the cumulative mass is below p, forgetting the one that crosses it
    assert not check_top_p_filter(lambda x, p: x.masked_fill(torch.softmax(x, -1).sort(-1, True)[0].cumsum(-1)
                                                             .gather(-1, torch.softmax(x, -1).sort(-1, True)[1]
                                                                     .argsort(-1)) > p, float("-inf")))
    assert not check_kv_cache_step(lambda q, k, v, kc, vc: (good_kv(q, k, v, kc, vc)[0] * 0, kc, vc))  # no append
    no_scale = lambda q, k, v, kc, vc: (torch.softmax(q @ torch.cat([kc, k], -2).transpose(-2, -1), -1)
                                        @ torch.cat([vc, v], -2), torch.cat([kc, k], -2), torch.cat([vc, v], -2))
    assert not check_kv_cache_step(no_scale)
    assert not check_top_k_filter(lambda x, k: (_ for _ in ()).throw(NotImplementedError))
    assert "not implemented yet" in capsys.readouterr().out
    assert not check_kv_cache_bytes(lambda L, H, d, T, b: L * H * d * T * b)  # forgot V (or K)
    naive = lambda z, ids, s: float(sum(torch.log(torch.softmax(z, -1))[t - 1, ids[t]] for t in range(s, len(ids))))
    assert not check_continuation_log_prob(naive)  # log(softmax) underflows to -inf on large logits
    assert not check_continuation_log_prob(lambda z, ids, s: good_logp(z, ids, s + 1))  # off by one
