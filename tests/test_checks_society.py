"""The notebook-11 checkers: a correct function passes every case, plausible mistakes fail."""

from __future__ import annotations

import numpy as np

from helpers.checks.society import check_attack_accuracy, check_auc, check_match_length


def test_auc_checker(capsys):
    def right(m, n):
        m, n = np.asarray(m, float), np.asarray(n, float)
        return float(((m[:, None] < n[None]) + 0.5 * (m[:, None] == n[None])).mean())

    assert check_auc(right)
    # ties ignored (counted as 0), a common slip
    assert not check_auc(lambda m, n: float((np.asarray(m)[:, None] < np.asarray(n)[None]).mean()))
    # the score pointed the wrong way ("higher loss => member")
    assert not check_auc(lambda m, n: 1.0 - right(m, n))
    out = capsys.readouterr().out
    assert "5/5 passed" in out and "✗" in out


def test_attack_accuracy_checker(capsys):
    def right(m, n, t):
        m, n = np.asarray(m), np.asarray(n)
        return float(((m <= t).sum() + (n > t).sum()) / (len(m) + len(n)))

    assert check_attack_accuracy(right)
    # strict < instead of <=
    assert not check_attack_accuracy(
        lambda m, n, t: float(((np.asarray(m) < t).sum() + (np.asarray(n) >= t).sum()) / (len(m) + len(n))))
    # averaging the two rates (balanced accuracy) instead of counting texts
    assert not check_attack_accuracy(lambda m, n, t: float(((np.asarray(m) <= t).mean() + (np.asarray(n) > t).mean()) / 2))
    assert "4/4 passed" in capsys.readouterr().out


def test_match_length_checker(capsys):
    def right(g, t):
        k = 0
        for a, b in zip(g, t, strict=False):
            if a != b:
                break
            k += 1
        return k

    assert check_match_length(right)
    # counting every equal position, not only the prefix
    assert not check_match_length(lambda g, t: sum(a == b for a, b in zip(g, t, strict=False)))
    assert not check_match_length(lambda g, t: len(g))
    assert "6/6 passed" in capsys.readouterr().out


def test_checker_reports_errors_instead_of_crashing(capsys):
    def broken(m, n):
        raise NotImplementedError

    res = check_auc(broken)
    assert not res and res.passed == 0
    assert "not implemented yet" in capsys.readouterr().out
