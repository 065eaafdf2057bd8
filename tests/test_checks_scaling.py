"""The checkers of notebook 17 pass the course's own code, name each usual mistake, and score a stub 0."""

from __future__ import annotations

import numpy as np

from helpers.checks import check_power_law_fit, check_train_flops, check_train_memory
from helpers.scaling import train_flops, train_memory


def fit(x, y):
    slope, icpt = np.polyfit(np.log10(x), np.log10(y), 1)  # log10 is as good as ln when A is 10**intercept
    return 10 ** icpt, -slope


def stub(*args):
    raise NotImplementedError()


def test_the_course_code_passes(capsys):
    assert check_train_flops(train_flops).score(2) == 2
    assert check_train_memory(train_memory).score(2) == 2
    assert check_power_law_fit(fit).score(2) == 2


def test_stubs_score_zero(capsys):
    for check in (check_train_flops, check_train_memory, check_power_law_fit):
        r = check(stub)
        assert r.score(1) == 0 and "not implemented yet" in capsys.readouterr().out


def test_mistakes_are_named(capsys):
    cases = [
        (check_train_flops, lambda L, C, T, V, t: train_flops(L, C, T, V, t) // 3, "forward pass only"),
        (check_train_flops, lambda L, C, T, V, t: 6 * 12 * L * C * C * t, "Kaplan's 6 N D alone"),
        (check_train_flops, lambda L, C, T, V, t: 6 * (12 * L * C * C + C * V) * t, "attention scores"),
        (check_train_memory, lambda n, p, s: 8 * n / (p if s else 1), "two moments left out"),
        (check_train_memory, lambda n, p, s: 16 * n / p, "DDP divided"),
        (check_train_memory, lambda n, p, s: 16.0 * n, "FSDP not divided"),
        (check_power_law_fit, lambda x, y: (fit(x, y)[0], -fit(x, y)[1]), "wrong sign"),
        (check_power_law_fit, lambda x, y: (float(np.polyfit(np.log(x), np.log(y), 1)[1]), fit(x, y)[1]),
         "exp(intercept)"),
        (check_power_law_fit, lambda x, y: (float(np.polyfit(x, y, 1)[1]), float(-np.polyfit(x, y, 1)[0])),
         "not through (log x, log y)"),
    ]
    for check, wrong, name in cases:
        r = check(wrong)
        out = capsys.readouterr().out
        assert r.passed < r.total and name in out, (name, out)
