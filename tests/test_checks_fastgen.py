"""The checkers of the fast-generation lesson pass the course's own code, name each usual mistake, and score a
stub 0."""

from __future__ import annotations

import pytest
import torch

from helpers.checks import check_arithmetic_intensity, check_quantize_int8
from helpers.quant import quantize_int8


def intensity(m, k, n, b):
    return 2 * m * k * n / (b * (m * k + k * n + m * n))


def stub(*args):
    raise NotImplementedError()


def per_row(w, divisor=127.0, rounding=torch.round, lo=-127, dim=1, guard=True):
    scale = w.abs().amax(dim=dim) / divisor
    if guard:
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    s = scale[None, :] if dim == 0 else scale[:, None]
    return rounding(w / s).clamp(lo, 127).to(torch.int8), scale


def test_the_course_code_passes(capsys):
    assert check_quantize_int8(quantize_int8).score(2) == 2
    assert check_arithmetic_intensity(intensity).score(3) == 3


def test_other_correct_ways_pass(capsys):
    def via_reciprocal(w):  # w * (127 / max) rounds differently from w / (max / 127) only at near-ties
        amax = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
        return torch.round(w * (127 / amax)).clamp(-127, 127).to(torch.int8), (amax / 127)[:, 0]

    assert check_quantize_int8(via_reciprocal)
    assert check_arithmetic_intensity(lambda m, k, n, b: (2 * m * k * n / b) / (m * k + k * n + m * n))


def test_stubs_score_zero(capsys):
    for check in (check_quantize_int8, check_arithmetic_intensity):
        r = check(stub)
        assert r.score(1) == 0 and "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,name", [
    (lambda w: (torch.round(w / (w.abs().max() / 127)).to(torch.int8),
                (w.abs().max() / 127).expand(w.shape[0])), "per-tensor"),
    (lambda w: (torch.round(w / (w.abs().max() / 127)).to(torch.int8), w.abs().max() / 127), "per-tensor"),
    (lambda w: per_row(w, divisor=128.0, lo=-128), "dividing by 128"),
    (lambda w: (torch.round(w / (w.abs().amax(1, keepdim=True) / 128)).to(torch.int8), w.abs().amax(1) / 128),
     "dividing by 128"),
    (lambda w: per_row(w, rounding=torch.trunc), "truncating instead of rounding"),
    (lambda w: per_row(w, rounding=torch.floor), "truncating instead of rounding"),
    (lambda w: per_row(w, dim=0), "per input column"),
])
def test_quantize_mistakes_are_named(capsys, wrong, name):
    r = check_quantize_int8(wrong)
    out = capsys.readouterr().out
    assert r.passed < r.total and name in out, (name, out)


def test_quantize_int8_explains_shapes_dtypes_and_zero_rows(capsys):
    r = check_quantize_int8(lambda w: (quantize_int8(w)[0].float(), quantize_int8(w)[1]))
    assert r.passed == 0 and "q must be int8" in capsys.readouterr().out
    r = check_quantize_int8(lambda w: (quantize_int8(w)[0], quantize_int8(w)[1][:, None]))
    assert r.passed == 0 and "one per output row" in capsys.readouterr().out
    r = check_quantize_int8(lambda w: quantize_int8(w)[0])
    assert r.passed == 0 and "expected a tuple (q, scale)" in capsys.readouterr().out
    r = check_quantize_int8(lambda w: per_row(w, guard=False))
    out = capsys.readouterr().out
    assert r.passed == r.total - 1 and "row of zeros" in out, out


@pytest.mark.parametrize("wrong,name", [
    (lambda m, k, n, b: m * k * n / (b * (m * k + k * n + m * n)), "no factor 2"),
    (lambda m, k, n, b: 2 * m * k * n / (b * (m * k + k * n)), "the output's write left out"),
    (lambda m, k, n, b: 2 * m * k * n / (b * (m * k + 2 * k * n + m * n)), "the weights B counted twice"),
    (lambda m, k, n, b: 2 * m * k * n / (m * k + k * n + m * n), "bytes_per_value left out"),
])
def test_intensity_mistakes_are_named(capsys, wrong, name):
    r = check_arithmetic_intensity(wrong)
    out = capsys.readouterr().out
    assert r.passed < r.total and name in out, (name, out)


def test_accept_draft_checker(capsys):
    from helpers.checks import check_accept_draft

    def accept(draft, target):
        n = 0
        while n < len(draft) and draft[n] == target[n]:
            n += 1
        return n, list(draft[:n].tolist()) + [int(target[n])]

    assert check_accept_draft(accept).score(2) == 2
    assert check_accept_draft(lambda d, t: (_ for _ in ()).throw(NotImplementedError())).score(2) == 0
    assert "not implemented yet" in capsys.readouterr().out
    wrong = [(lambda d, t: (int((d == t[:-1]).sum()), [int(x) for x, y in zip(d, t) if x == y] + [int(t[-1])]),
              "counting every agreeing position"),
             (lambda d, t: (accept(d, t)[0], accept(d, t)[1][:-1]), "target's own token left out")]
    for fn, name in wrong:
        r = check_accept_draft(fn)
        out = capsys.readouterr().out
        assert r.passed < r.total and name in out, (name, out)
