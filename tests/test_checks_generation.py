"""The generation checkers: a correct function passes every case, plausible mistakes fail."""

import math

import torch

from helpers.checks import (
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


def test_correct_functions_pass(capsys):
    assert check_temperature_softmax(good_temperature)
    assert check_top_k_filter(good_top_k)
    assert check_top_p_filter(good_top_p)
    assert check_kv_cache_step(good_kv)
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


# ---------------------------------------------------------------------- the sampler and the KV-cache step's named mistakes
from helpers.checks import check_sample  # noqa: E402
from helpers.checks.generation import _kv_wrong, _sampler  # noqa: E402
from helpers.pieces import sample as reference_sample  # noqa: E402


def learner_sample(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
    # written as a learner would, without helpers.generate
    for _ in range(max_new_tokens):
        logits, _ = model(idx[:, -model.config.block_size:])
        logits = logits[:, -1, :] / temperature
        if top_k is not None:
            v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
            logits[logits < v[:, [-1]]] = float("-inf")
        nxt = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1, generator=generator)
        idx = torch.cat((idx, nxt), dim=1)
    return idx


def test_sample_correct_versions_pass(capsys):
    assert check_sample(reference_sample)
    assert check_sample(learner_sample)
    assert "✗" not in capsys.readouterr().out


def test_sample_mistakes_are_named(capsys):
    for kw, hint in [
        (dict(temperature_after=True), "temperature applied after the softmax"),
        (dict(k_shift=1), "top-k keeping k + 1 tokens"),
        (dict(k_shift=-1), "top-k keeping k - 1 tokens"),
        (dict(greedy=True), "argmax (greedy) instead of a draw"),
        (dict(position=0), "logits of the first position instead of the last"),
        (dict(global_rng=True), "`generator` ignored"),
        (dict(crop="first"), "cropped to the first block_size tokens"),
        (dict(crop="none"), "crop the context to the last block_size tokens"),
    ]:
        assert not check_sample(_sampler(**kw)), kw
        assert hint in capsys.readouterr().out, kw


def test_sample_none_and_not_implemented(capsys):
    def forgot_return(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        reference_sample(model, idx, max_new_tokens, temperature, top_k, generator)

    def stub(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        raise NotImplementedError()

    assert not check_sample(forgot_return)
    assert "did you forget `return`" in capsys.readouterr().out
    result = check_sample(stub)
    assert "not implemented yet" in capsys.readouterr().out and result.score(3) == 0.0
    assert check_sample(None).score(1) == 0.0


def test_kv_cache_step_mistakes_are_named(capsys):
    for kw, hint in [
        (dict(returned=False), "not appended to the caches it returns"),
        (dict(appended=False), "not appended before attending"),
        (dict(mask="square"), "a [T+1, T+1] mask broadcasts"),
        (dict(mask="row"), "lets it see position 0 only"),
        (dict(sqrt_d=False), "√d missing"),
    ]:
        assert not check_kv_cache_step(_kv_wrong(**kw)), kw
        assert hint in capsys.readouterr().out, kw
    assert check_kv_cache_step(_kv_wrong())
    from helpers.checks import reference_kv_cache_step
    assert check_kv_cache_step(reference_kv_cache_step)
    assert not check_kv_cache_step(lambda *a: None)
    assert "did you forget `return`" in capsys.readouterr().out
