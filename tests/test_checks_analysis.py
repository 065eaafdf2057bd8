"""The notebook-10 checkers: a correct function passes every case, plausible mistakes fail."""

from __future__ import annotations

import pytest
import torch

from helpers.checks import check_attention_entropy, check_induction_score, check_prev_token_score
from helpers.checks.analysis import _ablation_model


def test_prev_token_score_checker(capsys):
    right = lambda w: w.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)
    assert check_prev_token_score(right)
    assert not check_prev_token_score(lambda w: w.diagonal(dim1=-2, dim2=-1).mean(-1))  # the diagonal itself
    # averaging over all T queries (counting query 0 as a zero) is a plausible slip
    assert not check_prev_token_score(lambda w: w.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1) / w.shape[-1])
    assert not check_prev_token_score(lambda w: torch.diagonal(w[0], offset=-1).mean())  # 2-D only
    out = capsys.readouterr().out
    assert "5/5 passed" in out and "✗" in out


def test_attention_entropy_checker(capsys):
    def right(w):
        return -(torch.where(w > 0, w * w.log(), torch.zeros_like(w))).sum(-1).mean(-1)

    assert check_attention_entropy(right)
    assert not check_attention_entropy(lambda w: -(w * w.log()).sum(-1).mean(-1))  # 0 log 0 gives NaN
    assert not check_attention_entropy(lambda w: -(w * torch.log2(w.clamp_min(1e-12))).sum(-1).mean(-1))  # bits
    assert not check_attention_entropy(lambda w: -(w * w.clamp_min(1e-12).log()).sum(-1).sum(-1))  # sum, not mean
    assert "4/4 passed" in capsys.readouterr().out


def test_induction_score_checker(capsys):
    right = lambda w, p: w.diagonal(offset=-(p - 1), dim1=-2, dim2=-1)[..., 1:].mean(-1)
    assert check_induction_score(right)
    # the previous occurrence itself instead of the token after it (a duplicate-token head)
    assert not check_induction_score(lambda w, p: w.diagonal(offset=-p, dim1=-2, dim2=-1).mean(-1))
    # including the first copy's last query (t = period - 1)
    assert not check_induction_score(lambda w, p: w.diagonal(offset=-(p - 1), dim1=-2, dim2=-1).mean(-1))
    assert "5/5 passed" in capsys.readouterr().out


def test_checker_reports_errors_instead_of_crashing(capsys):
    def broken(w):
        raise NotImplementedError

    res = check_prev_token_score(broken)
    assert not res and res.passed == 0
    assert "not implemented yet" in capsys.readouterr().out


def test_named_mistakes_get_their_hints(capsys):
    diag = lambda w, k: w.diagonal(offset=k, dim1=-2, dim2=-1).mean(-1)  # noqa: E731
    for check, wrong, hint in [
        (check_prev_token_score, lambda w: diag(w, 0), "looks like the main diagonal"),
        (check_prev_token_score, lambda w: diag(w, -2), "looks like w[t, t-2]"),
        (check_prev_token_score, lambda w: w.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1) / w.shape[-1],
         "looks like an average over all T queries"),
        (check_attention_entropy, lambda w: -(w * w.log()).sum(-1).mean(-1), "your result contains NaN"),
        (check_attention_entropy, lambda w: -(w * torch.log2(w.clamp_min(1e-30))).sum(-1).mean(-1),
         "looks like bits (log2)"),
        (check_attention_entropy, lambda w: (w * w.clamp_min(1e-30).log()).sum(-1).mean(-1), "looks like the sign"),
        (check_attention_entropy, lambda w: -(w * w.clamp_min(1e-30).log()).mean(-1).mean(-1),
         "looks like a mean over the keys"),
        (check_induction_score, lambda w, p: diag(w, -p), "looks like w[t, t - P]"),
        (check_induction_score, lambda w, p: diag(w, -(p - 1)), "looks like the first copy's last query"),
        (check_induction_score, lambda w, p: w.diagonal(offset=-(p - 2), dim1=-2, dim2=-1)[..., 2:].mean(-1),
         "looks like w[t, t - P + 2]"),
    ]:
        assert not check(wrong)
        out = capsys.readouterr()
        assert hint in out.out, (hint, out.out)
        assert out.err == ""  # nothing on stderr: nbgrader would zero the test cell


def test_missing_return_and_missing_function(capsys):
    for check in (check_prev_token_score, check_attention_entropy):
        assert not check(lambda w: None)
        assert "did you forget `return`?" in capsys.readouterr().out
    assert not check_induction_score(None)
    assert "nothing to check yet" in capsys.readouterr().out


def test_mean_ablate_head_checker(capsys):
    from helpers.checks.analysis import (
        _reference_mean_ablate,
        check_mean_ablate_head,
        reference_mean_ablate_head,
    )

    assert check_mean_ablate_head(reference_mean_ablate_head)
    assert "3/3 passed" in capsys.readouterr().out
    for kwargs, hint in [
        ({"zero": True}, "looks like zeroed, not replaced by its mean"),
        ({"over": (0, 1)}, "looks like a mean over the batch as well"),
        ({"over": (0,)}, "looks like a mean over the batch (dim=0)"),
        ({"slice_by_heads": True}, "looks like the wrong channels"),
    ]:
        assert not check_mean_ablate_head(lambda m, layer, h, kw=kwargs: _reference_mean_ablate(m, layer, h, **kw))
        assert hint in capsys.readouterr().out

    def surgery(model, layer, head):  # edits the weights: the model stays changed
        D = model.config.n_embd // model.config.n_head
        with torch.no_grad():
            model.transformer.h[layer].attn.c_proj.weight[:, head * D:(head + 1) * D] = 0.0
        return model.transformer.h[layer].attn.c_proj.register_forward_pre_hook(lambda mod, inp: None)

    assert not check_mean_ablate_head(surgery)
    assert "the model stays changed after handle.remove()" in capsys.readouterr().out
    assert not check_mean_ablate_head(lambda m, layer, h: reference_mean_ablate_head(m, layer, h) and None)
    assert "did you forget `return`?" in capsys.readouterr().out
    assert not check_mean_ablate_head(lambda m, layer, h: "done")
    assert "return the hook's handle" in capsys.readouterr().out

    def stub(*a):
        raise NotImplementedError

    res = check_mean_ablate_head(stub)
    assert not res and res.score(2) == 0.0
    assert "not implemented yet" in capsys.readouterr().out
    with pytest.raises(ValueError, match="layer must be in"):
        reference_mean_ablate_head(_ablation_model(0), 5, 0)
