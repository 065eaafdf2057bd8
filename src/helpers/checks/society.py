"""Checkers for notebook 11 (LLMs in society): the numbers behind a membership-inference attack and a
regurgitation probe, checked against ``helpers.society``'s reference on random and hand-made cases.
"""

from __future__ import annotations

import numpy as np

from ..society import _match_len, roc_auc
from ._core import Case, CheckResult, run_cases

__all__ = ["check_auc", "check_attack_accuracy", "check_match_length"]


def _losses(seed: int, n: int, shift: float, decimals: int | None = None) -> np.ndarray:
    x = np.random.default_rng(seed).normal(1.3 + shift, 0.1, n)
    return x.round(decimals) if decimals is not None else x


def check_auc(fn) -> CheckResult:
    """``fn(member_losses [N], nonmember_losses [M]) -> float``: ``P(member loss < non-member loss)``,
    a tie counting one half (the AUC of "lower loss ⇒ member")."""
    m, n = _losses(1, 20, 0.0), _losses(2, 30, 0.05)
    tm, tn = _losses(3, 15, 0.0, decimals=1), _losses(4, 12, 0.02, decimals=1)  # many ties
    cases = [
        Case("members all lower: a perfect attack scores 1", (np.array([1.0, 1.1]), np.array([1.2, 1.5])), 1.0),
        Case("members all higher scores 0 (the attack is backwards)", (np.array([2.0, 2.5]), np.array([1.0])), 0.0),
        Case("identical losses: ties count one half, giving 0.5", (np.ones(3), np.ones(4)), 0.5),
        Case("random losses of different set sizes (20 vs 30)", (m, n), roc_auc(m, n)),
        Case("rounded losses with many ties", (tm, tn), roc_auc(tm, tn)),
    ]
    return run_cases("auc", fn, cases)


def _acc(m, n, t):
    return ((np.asarray(m) <= t).sum() + (np.asarray(n) > t).sum()) / (len(m) + len(n))


def check_attack_accuracy(fn) -> CheckResult:
    """``fn(member_losses [N], nonmember_losses [M], threshold) -> float``: the accuracy of saying "member"
    exactly when ``loss <= threshold``, over all ``N + M`` texts."""
    m, n = _losses(5, 25, 0.0), _losses(6, 35, 0.05)
    cases = [
        Case("a threshold between the two sets is right on every text", ([1.0, 1.1], [1.5, 1.6], 1.2), 1.0),
        Case("a loss equal to the threshold counts as member (<=)", ([1.0, 1.2], [1.5, 1.6], 1.2), 1.0),
        Case("a threshold below everything: only non-members right", ([1.0, 1.1], [1.5, 1.6, 1.7], 0.5), 0.6),
        Case("random losses, unequal set sizes (25 vs 35)", (m, n, 1.32), _acc(m, n, 1.32)),
    ]
    return run_cases("attack_accuracy", fn, cases)


def check_match_length(fn) -> CheckResult:
    """``fn(generated: str, truth: str) -> int``: how many characters match from the start, up to the first
    difference (or the end of the shorter string)."""
    cases = [
        Case("identical strings match entirely", ("to be or not", "to be or not"), 12),
        Case("stops at the first difference", ("to be or NOT", "to be or not"), 9),
        Case("later matches after a difference do not count", ("xo be or not", "to be or not"), 0),
        Case("the shorter string bounds the count", ("to be", "to be or not"), 5),
        Case("empty generation matches nothing", ("", "to be"), 0),
        Case("agrees with the reference on a line of Shakespeare",
             ("Now is the winter of our discontent", "Now is the winter of my discontent"),
             _match_len("Now is the winter of our discontent", "Now is the winter of my discontent")),
    ]
    return run_cases("match_length", fn, cases)
