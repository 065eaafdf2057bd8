"""Checkers for notebook 11 (LLMs in society): the numbers behind a membership-inference attack and a
regurgitation probe, checked against ``helpers.society``'s reference on random and hand-made cases.
"""

from __future__ import annotations

import numpy as np

from ..society import _match_len, copied_fraction, roc_auc
from ._core import Case, CheckResult, run_cases

__all__ = ["check_auc", "check_attack_accuracy", "check_match_length", "check_choose_threshold",
           "check_copied_fraction"]


def _losses(seed: int, n: int, shift: float, decimals: int | None = None) -> np.ndarray:
    x = np.random.default_rng(seed).normal(1.3 + shift, 0.1, n)
    return x.round(decimals) if decimals is not None else x


def _ranks(x: np.ndarray, average_ties: bool = True, base: int = 1) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    r[order] = np.arange(base, len(x) + base)
    if average_ties:
        for v in np.unique(x):
            r[x == v] = r[x == v].mean()
    return r


def _auc_by_ranks(m, n, average_ties: bool = True, base: int = 1) -> float:
    m, n = np.asarray(m, float), np.asarray(n, float)
    r = _ranks(np.concatenate([m, n]), average_ties, base)
    u = r[len(m):].sum() - len(n) * (len(n) + 1) / 2.0
    return float(u / (len(m) * len(n)))


_AUC_MISTAKES = [
    ("the AUC pointed the wrong way (it measures 'higher loss ⇒ member'; a member should rank LOW): "
     "use 1 - your value, or rank the other set", lambda m, n: 1.0 - roc_auc(m, n)),
    ("ties ranked in sorted order instead of sharing their average rank (a tie must count one half)",
     lambda m, n: _auc_by_ranks(m, n, average_ties=False)),
    ("0-based ranks (np.argsort gives positions from 0; the rank-sum formula U = R - n(n+1)/2 needs ranks "
     "from 1)", lambda m, n: _auc_by_ranks(m, n, base=0)),
    ("1-based ranks with the 0-based correction (U = R - n(n-1)/2 would need ranks from 0)",
     lambda m, n: roc_auc(m, n) - 1.0 / len(m)),
]


def check_auc(fn) -> CheckResult:
    """``fn(member_losses [N], nonmember_losses [M]) -> float``: ``P(member loss < non-member loss)``,
    a tie counting one half (the AUC of "lower loss ⇒ member"). Names the usual slips of the rank-sum
    (Mann–Whitney) route: direction inverted, ties not averaged, 0-based ranks."""
    m, n = _losses(1, 20, 0.0), _losses(2, 30, 0.05)
    tm, tn = _losses(3, 15, 0.0, decimals=1), _losses(4, 12, 0.02, decimals=1)  # many ties
    cases = [
        Case("members all lower: a perfect attack scores 1", (np.array([1.0, 1.1]), np.array([1.2, 1.5])), 1.0),
        Case("members all higher scores 0 (the attack is backwards)", (np.array([2.0, 2.5]), np.array([1.0])), 0.0),
        Case("identical losses: ties count one half, giving 0.5", (np.ones(3), np.ones(4)), 0.5),
        Case("random losses of different set sizes (20 vs 30)", (m, n), roc_auc(m, n)),
        Case("rounded losses with many ties", (tm, tn), roc_auc(tm, tn)),
    ]
    return run_cases("auc", fn, cases, mistakes=_AUC_MISTAKES)


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


def _best_accuracy(m, n) -> float:
    """The highest accuracy any threshold reaches with the rule "member ⇔ loss <= threshold"."""
    m, n = np.asarray(m, float), np.asarray(n, float)
    cands = np.concatenate([np.unique(np.concatenate([m, n])), [min(m.min(), n.min()) - 1.0]])
    return float(max(_acc(m, n, t) for t in cands))


def _threshold_predicate(m, n):
    m, n = np.asarray(m, float), np.asarray(n, float)
    best = _best_accuracy(m, n)

    def predicate(got) -> tuple[bool, str]:
        try:
            t = float(got)
        except (TypeError, ValueError):
            return False, f"expected one number (the threshold), got {type(got).__name__}"
        if not np.isfinite(t):
            return False, f"the threshold is {t}: pick a finite loss value"
        acc = _acc(m, n, t)
        if abs(acc - best) < 1e-12:
            return True, f"accuracy {acc:.3f} on these sets, the best any threshold reaches"
        cands = np.concatenate([m, n, [min(m.min(), n.min()) - 1.0]])
        inv = lambda u: ((m > u).sum() + (n <= u).sum()) / (len(m) + len(n))  # noqa: E731
        if abs(t - (m.mean() + n.mean()) / 2) < 1e-9:
            hint = ("; the midpoint of the two means is a guess, not the best threshold: try every observed "
                    "loss as a candidate")
        elif acc < 0.5 or (inv(t) > acc and abs(inv(t) - max(inv(u) for u in cands)) < 1e-12):
            hint = ("; worse than a coin: it looks like the rule was pointed the wrong way (a member has a LOW "
                    "loss: member ⇔ loss <= threshold)")
        elif any(abs(t - v) < 1e-9 and abs(_acc(m, n, np.nextafter(v, -np.inf)) - best) < 1e-12
                 for v in cands):
            hint = "; a loss equal to the threshold counts as member (<=), so the rule here is off by one loss"
        else:
            hint = ""
        return False, f"accuracy {acc:.3f} at your threshold {t:.4g}, but {best:.3f} is reachable{hint}"

    return predicate


def check_choose_threshold(fn) -> CheckResult:
    """``fn(member_losses [N], nonmember_losses [M]) -> float``: a threshold with the highest accuracy for
    the rule "member ⇔ loss <= threshold" on these (calibration) sets. Any threshold reaching the best
    accuracy passes (several do); the ✗ line says what accuracy yours reaches and names the usual slips."""
    m, n = _losses(7, 30, 0.0), _losses(8, 20, 0.06)
    tm, tn = _losses(9, 12, 0.0, decimals=1), _losses(10, 16, 0.05, decimals=1)  # ties across the sets
    skew_m, skew_n = np.array([1.0, 1.1, 1.2, 1.3, 1.9]), np.array([1.25, 1.35, 1.4, 1.5, 1.55, 1.6, 1.7])
    cases = [
        ("separable sets: a threshold between them is right on every text", (np.array([1.0, 1.1, 1.2]),
                                                                             np.array([1.5, 1.6]))),
        ("the best threshold is an observed loss, not the midpoint of the means", (skew_m, skew_n)),
        ("random losses, unequal set sizes (30 vs 20)", (m, n)),
        ("rounded losses with ties across the two sets", (tm, tn)),
        ("members all higher: the best rule calls nobody a member", (np.array([2.0, 2.1]),
                                                                    np.array([1.0, 1.1, 1.2]))),
    ]
    return run_cases("choose_threshold", fn, [Case(name, args, predicate=_threshold_predicate(*args))
                                              for name, args in cases])


def _spans_fraction(text, corpus, k, stride, last=True, use_stride=True, fraction=True):
    stop = len(text) - k + (1 if last else 0)
    spans = [text[i:i + k] for i in range(0, stop, stride if use_stride else 1)]
    hits = sum(s in corpus for s in spans)
    return hits / len(spans) if fraction else hits


_COPY_MISTAKES = [
    ("an off-by-one at the end: the last span starts at len(text) - k, so range(0, len(text) - k + 1, stride)",
     lambda t, c, k, s: _spans_fraction(t, c, k, s, last=False)),
    ("every position used as a start: the spans must be taken every `stride` characters",
     lambda t, c, k, s: _spans_fraction(t, c, k, s, use_stride=False)),
    ("a count of copied spans, not the fraction of spans", lambda t, c, k, s: _spans_fraction(t, c, k, s,
                                                                                               fraction=False)),
]


def check_copied_fraction(fn) -> CheckResult:
    """``fn(text, corpus, k, stride) -> float``: the fraction of the ``k``-character spans of ``text``, starting
    at ``0, stride, 2·stride, ...`` (every span that fits), that occur verbatim in ``corpus``."""
    corpus = "to be or not to be, that is the question: whether 'tis nobler in the mind to suffer"
    cases = [
        Case("a text taken from the corpus is all copied", ("that is the question", corpus, 5, 3), 1.0),
        Case("nothing in common: 0", ("xyzzy plugh xyzzy", corpus, 4, 2), 0.0),
        Case("the last span that fits counts (12 characters, k=4, stride 4: starts 0, 4, 8)",
             ("to be or XXX", corpus, 4, 4), _spans_fraction("to be or XXX", corpus, 4, 4)),
        Case("stride 1 on a half-copied text", ("the mind, the heart", corpus, 6, 1),
             copied_fraction("the mind, the heart", corpus, 6, 1)),
        Case("stride 10, as section 6 uses (k = 20)",
             ("whether 'tis nobler in the mind to suffer the slings and arrows", corpus, 20, 10),
             copied_fraction("whether 'tis nobler in the mind to suffer the slings and arrows", corpus, 20, 10)),
        Case("a text exactly k characters long has one span", ("not to be", corpus, 9, 5), 1.0),
    ]
    return run_cases("copied_fraction", fn, cases, mistakes=_COPY_MISTAKES)
