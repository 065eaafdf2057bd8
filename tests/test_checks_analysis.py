"""The notebook-10 checkers: a correct function passes every case, plausible mistakes fail."""

from __future__ import annotations

import torch

from helpers.checks import check_attention_entropy, check_induction_score, check_prev_token_score


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
