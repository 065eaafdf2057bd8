"""The notebook-11 checkers: a correct function passes every case, plausible mistakes fail."""

from __future__ import annotations

import numpy as np

from helpers.checks.society import (
    check_attack_accuracy,
    check_auc,
    check_choose_threshold,
    check_copied_fraction,
    check_match_length,
)


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


def test_auc_checker_names_the_rank_mistakes(capsys):
    from helpers.checks.society import _auc_by_ranks
    from helpers.society import roc_auc

    for wrong, hint in [
        (lambda m, n: 1.0 - roc_auc(m, n), "looks like the AUC pointed the wrong way"),
        (lambda m, n: _auc_by_ranks(m, n, average_ties=False), "looks like ties ranked in sorted order"),
        (lambda m, n: _auc_by_ranks(m, n, base=0), "looks like 0-based ranks"),
    ]:
        assert not check_auc(wrong)
        assert hint in capsys.readouterr().out


def test_choose_threshold_checker(capsys):
    from helpers.society import threshold_attack

    assert check_choose_threshold(lambda m, n: threshold_attack(m, n)["threshold"])
    assert "5/5 passed" in capsys.readouterr().out

    def best(rule):
        def choose(m, n):
            m, n = np.asarray(m), np.asarray(n)
            return max(np.concatenate([m, n]), key=lambda u: rule(m, n, u))
        return choose

    for wrong, hint in [
        (lambda m, n: (np.mean(m) + np.mean(n)) / 2, "the midpoint of the two means is a guess"),
        (best(lambda m, n, u: (m > u).sum() + (n <= u).sum()), "pointed the wrong way"),
        (best(lambda m, n, u: (m < u).sum() + (n >= u).sum()), "a loss equal to the threshold counts as member"),
    ]:
        assert not check_choose_threshold(wrong)
        assert hint in capsys.readouterr().out
    assert not check_choose_threshold(lambda m, n: None)
    assert "did you forget `return`?" in capsys.readouterr().out
    assert not check_choose_threshold(lambda m, n: "high")
    assert "expected one number" in capsys.readouterr().out


def test_copied_fraction_checker(capsys):

    def frac(t, c, k, s, last=1, step=True, fraction=True):
        spans = [t[i:i + k] for i in range(0, len(t) - k + last, s if step else 1)]
        hits = sum(x in c for x in spans)
        return hits / len(spans) if fraction else hits

    assert check_copied_fraction(frac)
    assert "6/6 passed" in capsys.readouterr().out
    for wrong, hint in [
        (lambda t, c, k, s: frac(t, c, k, s, last=0), "looks like an off-by-one at the end"),
        (lambda t, c, k, s: frac(t, c, k, s, step=False), "looks like every position used as a start"),
        (lambda t, c, k, s: frac(t, c, k, s, fraction=False), "looks like a count of copied spans"),
    ]:
        assert not check_copied_fraction(wrong)
        assert hint in capsys.readouterr().out

    def stub(*a):
        raise NotImplementedError

    for check in (check_choose_threshold, check_copied_fraction):
        res = check(stub)
        assert not res and res.score(2) == 0.0
        assert "not implemented yet" in capsys.readouterr().out
