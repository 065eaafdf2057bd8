"""The checkers of notebook 16 pass the course's own code, name each usual mistake, and score a stub 0."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from helpers.attention import apply_rope, repeat_kv, rope_angles
from helpers.checks import check_repeat_kv, check_rope, check_swiglu


def rope(x, positions, theta):
    cos, sin = rope_angles(positions, x.shape[-1], theta)
    return apply_rope(x, cos.double(), sin.double())


def swiglu(x, wg, wu, wd):
    return (F.silu(x @ wg.T) * (x @ wu.T)) @ wd.T


def stub(*args):
    raise NotImplementedError()


def test_the_course_code_passes(capsys):
    assert check_swiglu(swiglu).score(2) == 2
    assert check_rope(rope).score(3) == 3
    assert check_repeat_kv(repeat_kv).score(2) == 2


def test_stubs_score_zero(capsys):
    for check in (check_swiglu, check_rope, check_repeat_kv):
        r = check(stub)
        assert r.score(1) == 0 and "not implemented yet" in capsys.readouterr().out


def test_mistakes_are_named(capsys):
    cases = [
        (check_swiglu, lambda x, wg, wu, wd: (F.gelu(x @ wg.T) * (x @ wu.T)) @ wd.T, "GELU instead of SiLU"),
        (check_swiglu, lambda x, wg, wu, wd: ((x @ wg.T) * F.silu(x @ wu.T)) @ wd.T, "on the up projection"),
        (check_swiglu, lambda x, wg, wu, wd: F.silu(x @ wg.T) @ wd.T, "no gate"),
        (check_rope, lambda x, p, t: rope(x, -p, t), "wrong way"),
        (check_rope, lambda x, p, t: rope(x, p + 1, t), "starting at 1"),
        (check_rope, lambda x, p, t: rope(x, p, t ** 0.5), "theta ** (-i / D)"),
        (check_repeat_kv, lambda kv, n: kv.repeat(1, n, 1, 1), "tiling the heads"),
    ]
    for check, wrong, name in cases:
        r = check(wrong)
        out = capsys.readouterr().out
        assert r.passed < r.total and name in out, (name, out)


def test_interleaved_rope_is_named(capsys):
    def interleaved(x, p, t):
        D = x.shape[-1]
        a = p.double()[:, None] * t ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x1 * a.cos() - x2 * a.sin(), x2 * a.cos() + x1 * a.sin()], -1).flatten(-2)

    r = check_rope(interleaved)
    assert r.passed < r.total and "interleaved" in capsys.readouterr().out
