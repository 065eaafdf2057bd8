"""The notebook-09 checkers: a correct function passes, each named mistake gets its hint, and a stub, a missing
``return`` or a missing function is reported, never raised."""

from __future__ import annotations

import torch

from helpers.checks.gpt2 import check_distinct_ngrams, check_hf_to_ours, check_score_continuation

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _not_implemented(*args):
    raise NotImplementedError


def _no_return(*args):
    pass


def test_hf_to_ours_checker(capsys):
    right = lambda sd: {k: (v.t() if k.endswith(CONV1D) else v) for k, v in sd.items()}  # noqa: E731
    assert check_hf_to_ours(right)
    # leaving out the tied head is fine
    assert check_hf_to_ours(lambda sd: {k: v for k, v in right(sd).items() if k != "lm_head.weight"})
    assert "3/3 passed" in capsys.readouterr().out

    res = check_hf_to_ours(lambda sd: {k: (v.t() if v.dim() == 2 else v) for k, v in sd.items()})
    out = capsys.readouterr().out
    assert not res and "looks like every 2-D tensor transposed" in out
    assert "transformer.wte.weight has shape" in out  # where the shapes differ, the load error says which

    no_attn_proj = lambda sd: {k: (v.t() if k.endswith(CONV1D) and "attn.c_proj" not in k else v)  # noqa: E731
                               for k, v in sd.items()}
    assert not check_hf_to_ours(no_attn_proj)
    assert "looks like attn.c_proj.weight not transposed" in capsys.readouterr().out

    assert not check_hf_to_ours(lambda sd: {k: v for k, v in sd.items() if "ln_f" not in k})
    assert "names do not match our GPT: missing ['transformer.ln_f.weight'" in capsys.readouterr().out


def test_hf_to_ours_checker_leaves_the_callers_state_alone(capsys):
    def in_place(sd):
        for k in sd:
            if k.endswith(CONV1D):
                sd[k] = sd[k].t().contiguous()
        return sd

    assert check_hf_to_ours(in_place) and check_hf_to_ours(in_place)  # the cached tiny models are copied
    capsys.readouterr()


def _score(model, prompt, cont, shift=0, whole=False, mean=False):
    ids = torch.cat([prompt, cont])[None]
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0], -1)
    t0 = 1 if whole else len(prompt)
    vals = [logp[t - 1 + shift, ids[0, t]] for t in range(t0, ids.shape[1]) if t - 1 + shift < ids.shape[1]]
    return float(sum(vals) / len(vals) if mean else sum(vals))


def test_score_continuation_checker(capsys):
    assert check_score_continuation(_score)
    assert "4/4 passed" in capsys.readouterr().out
    for wrong, hint in [
        (lambda m, p, c: _score(m, p, c, shift=1), "looks like an off-by-one"),
        (lambda m, p, c: _score(m, p, c, whole=True), "looks like the prompt's tokens scored too"),
        (lambda m, p, c: _score(m, p, c, mean=True), "looks like the mean over tokens"),
        (lambda m, p, c: _score(m, p, c[:-1]) if len(c) > 1 else 0.0, "looks like the last continuation token"),
    ]:
        assert not check_score_continuation(wrong)
        assert hint in capsys.readouterr().out


def test_distinct_ngrams_checker(capsys):
    def right(ids, n):
        grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
        return len(set(grams)) / len(grams) if grams else 1.0

    assert check_distinct_ngrams(right)
    assert "6/6 passed" in capsys.readouterr().out
    for wrong, hint in [
        (lambda ids, n: len({tuple(ids[i:i + n]) for i in range(len(ids) - n)}) / max(1, len(ids) - n),
         "looks like an off-by-one"),
        (lambda ids, n: len({tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)}) / len(ids),
         "looks like divided by the number of tokens"),
        (lambda ids, n: len(set(ids)) / len(ids), "looks like distinct tokens, not distinct n-grams"),
    ]:
        assert not check_distinct_ngrams(wrong)
        assert hint in capsys.readouterr().out


def test_stubs_and_missing_returns_are_reported(capsys):
    for check in (check_hf_to_ours, check_score_continuation, check_distinct_ngrams):
        res = check(_not_implemented)
        assert not res and res.passed == 0 and res.score(3) == 0.0
        assert "not implemented yet" in capsys.readouterr().out
        assert not check(_no_return)
        assert "did you forget `return`?" in capsys.readouterr().out
        assert not check(None)
        assert "nothing to check yet" in capsys.readouterr().out
