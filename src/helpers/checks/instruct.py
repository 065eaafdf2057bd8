"""Checkers for notebook 14 (instruction tuning): loss masking, padding a batch, exact-match scoring."""

from __future__ import annotations

import torch

from ..instruct import IGNORE, exact_match, mask_targets, pad_batch
from ._core import Case, CheckResult, close, run_cases

__all__ = ["check_mask_targets", "check_pad_batch", "check_exact_match"]


def _as_list(x):
    return x.tolist() if isinstance(x, torch.Tensor) else list(x)


# ---------------------------------------------------------------------------------------------------------
# mask_targets(ids, prompt_len) -> (inputs, targets)

def check_mask_targets(fn) -> CheckResult:
    """``fn(ids, prompt_len)`` returns ``(inputs, targets)``: ``inputs = ids[:-1]``, ``targets = ids[1:]`` with
    the first ``prompt_len - 1`` targets set to ``-100``: the last prompt position keeps its target, the first
    answer token."""

    def wrapped(ids, prompt_len):
        got = fn(list(ids), prompt_len)
        if isinstance(got, (tuple, list)) and len(got) == 2:
            return tuple(_as_list(g) for g in got)
        return got

    def ref(ids, n):
        return tuple(mask_targets(ids, n))

    def mistake_all_prompt(ids, n):  # the off-by-one: the first answer token is never trained
        t = list(ids[1:])
        t[:n] = [IGNORE] * n
        return list(ids[:-1]), t

    def mistake_too_few(ids, n):
        t = list(ids[1:])
        t[:n - 2] = [IGNORE] * max(0, n - 2)
        return list(ids[:-1]), t

    def mistake_unshifted(ids, n):
        t = list(ids)
        t[:n] = [IGNORE] * n
        return list(ids), t

    def mistake_zero(ids, n):
        t = list(ids[1:])
        t[:n - 1] = [0] * (n - 1)
        return list(ids[:-1]), t

    def mistake_answer(ids, n):
        t = list(ids[1:])
        t[n - 1:] = [IGNORE] * (len(t) - n + 1)
        return list(ids[:-1]), t

    ids1 = [30, 31, 32, 33, 34, 35, 36]
    ids2 = [5, 6, 7, 8]
    ids3 = [9, 1, 4, 4, 2, 7, 7, 3, 0, 12, 1]
    cases = [
        Case("7 ids, a prompt of 4: targets -100, -100, -100, then the answer", (ids1, 4), ref(ids1, 4)),
        Case("a prompt of 1 token: nothing to mask", (ids2, 1), ref(ids2, 1)),
        Case("one answer token: only the last target is kept", (ids2, 3), ref(ids2, 3)),
        Case("11 ids, a prompt of 6 (answer ids repeat prompt ids)", (ids3, 6), ref(ids3, 6)),
    ]
    mistakes = [
        ("masking prompt_len targets: the last prompt position predicts the first answer token, keep it",
         mistake_all_prompt),
        ("masking one target too few: the prompt's last token is then trained as an answer", mistake_too_few),
        ("no shift: inputs are ids[:-1] and targets ids[1:] (position t predicts token t + 1)", mistake_unshifted),
        ("masking with 0: that is a real token id (here '\\n'); use -100, which the loss ignores", mistake_zero),
        ("masking the answer instead of the prompt", mistake_answer),
    ]
    return run_cases("mask_targets", wrapped, cases, mistakes)


# ---------------------------------------------------------------------------------------------------------
# pad_batch(examples, pad_id) -> (ids [B, T], targets [B, T])

def check_pad_batch(fn) -> CheckResult:
    """``fn(examples, pad_id)`` right-pads ``(ids, targets)`` pairs to the longest: ids with ``pad_id``, targets
    with ``-100``; returns two ``torch.long`` tensors ``[B, T]``."""

    def wrapped(examples, pad_id):
        return fn([(list(a), list(b)) for a, b in examples], pad_id)

    def ref(examples, pad_id):
        return tuple(pad_batch(examples, pad_id))

    def mistake_pad_targets(examples, pad_id):
        x, y = pad_batch(examples, pad_id)
        y[_pad_mask(examples, x.shape[1])] = pad_id
        return x, y

    def mistake_left(examples, pad_id):
        T = max(len(a) for a, _ in examples)
        x = torch.tensor([[pad_id] * (T - len(a)) + list(a) for a, _ in examples])
        y = torch.tensor([[IGNORE] * (T - len(b)) + list(b) for _, b in examples])
        return x, y

    def mistake_zero(examples, pad_id):
        x, y = pad_batch(examples, pad_id)
        y[_pad_mask(examples, x.shape[1])] = 0
        return x, y

    ex1 = [([1, 2, 3], [-100, 3, 4]), ([5, 6, 7, 8, 9], [-100, -100, 8, 9, 10]), ([4], [2])]
    ex2 = [([7, 7], [-100, 1]), ([3, 2], [2, 5])]
    ex3 = [([11, 12, 13, 14], [-100, -100, 14, 20])]

    def dtype_ok(got):
        if not (isinstance(got, (tuple, list)) and len(got) == 2 and all(isinstance(g, torch.Tensor) for g in got)):
            return False, f"expected a tuple of two tensors, got {type(got).__name__}"
        if any(g.dtype != torch.long for g in got):
            return False, (f"got {got[0].dtype} and {got[1].dtype}: both must be torch.long (int64), token ids "
                           "for the embedding and targets for cross_entropy")
        return close(tuple(got), ref(ex1, 0))

    cases = [
        Case("three examples of 3, 5 and 1 tokens, pad id 74", (ex1, 74), ref(ex1, 74)),
        Case("two examples of equal length: nothing to pad", (ex2, 74), ref(ex2, 74)),
        Case("one example", (ex3, 0), ref(ex3, 0)),
        Case("the tensors are torch.long", (ex1, 0), predicate=dtype_ok),
    ]
    mistakes = [
        ("targets padded with pad_id: the model would be trained to write padding; pad targets with -100",
         mistake_pad_targets),
        ("left padding: pad on the right, after the real tokens, so they never attend to padding and keep "
         "their positions", mistake_left),
        ("targets padded with 0: that is a real token id; use -100, which the loss ignores", mistake_zero),
    ]
    return run_cases("pad_batch", wrapped, cases, mistakes)


def _pad_mask(examples, T: int) -> torch.Tensor:
    return torch.tensor([[t >= len(a) for t in range(T)] for a, _ in examples])


# ---------------------------------------------------------------------------------------------------------
# exact_match(prediction, answer) -> bool

def check_exact_match(fn) -> CheckResult:
    """``fn(prediction, answer)`` is True when the two are equal after normalising both: case-folded, outer
    whitespace removed, inner runs of whitespace as one space, one final ``.`` or ``!`` dropped."""

    def wrapped(prediction, answer):
        got = fn(prediction, answer)
        if isinstance(got, torch.Tensor):
            got = bool(got)
        if not isinstance(got, bool):
            return f"type:{type(got).__name__}"
        return float(got)

    def ref(p, a):
        return float(exact_match(p, a))

    def mistake_case(p, a):
        return float(" ".join(p.split()).rstrip(".!") == " ".join(a.split()).rstrip(".!"))

    def mistake_raw(p, a):
        return float(p == a)

    def mistake_substring(p, a):
        return float(a.strip().casefold() in p.casefold())

    def mistake_startswith(p, a):
        return float(p.strip().casefold().startswith(a.strip().casefold()))

    def mistake_all_punct(p, a):
        def norm(s):
            return " ".join("".join(c for c in s if c.isalnum() or c.isspace()).split()).casefold()
        return float(norm(p) == norm(a))

    def mistake_no_space(p, a):
        def norm(s):
            s = s.strip().casefold()
            return s[:-1] if s.endswith((".", "!")) else s
        return float(norm(p) == norm(a))

    cases = [
        Case('" Rome. " and "rome": the same answer', (" Rome. ", "rome"), ref(" Rome. ", "rome")),
        Case('"17" and "7": different numbers', ("17", "7"), ref("17", "7")),
        Case('"Rome is nice" and "Rome": more than the answer', ("Rome is nice", "Rome"), ref("Rome is nice", "Rome")),
        Case('"New   York" and "new york"', ("New   York", "new york"), ref("New   York", "new york")),
        Case('"11!" and "11"', ("11!", "11"), ref("11!", "11")),
        Case('"3.5" and "35": the point inside a number matters', ("3.5", "35"), ref("3.5", "35")),
        Case('"" and "7": an empty answer is wrong', ("", "7"), ref("", "7")),
        Case('"Evol" and "evol"', ("Evol", "evol"), ref("Evol", "evol")),
    ]
    for c in cases:  # a non-bool answer gets its own message
        c.predicate = _bool_case(c.expected)
    mistakes = [
        ("a case-sensitive comparison: 'Rome' and 'rome' are the same answer", mistake_case),
        ("comparing the raw strings: normalise both first", mistake_raw),
        ("a substring test: '7' is in '17', but 17 is not 7", mistake_substring),
        ("a prefix test: 'Rome is nice' starts with 'Rome', but it is not the answer", mistake_startswith),
        ("removing every punctuation mark: '3.5' would equal '35'; drop only one final '.' or '!'",
         mistake_all_punct),
        ("inner spaces not collapsed: 'New   York' is 'new york'", mistake_no_space),
    ]
    return run_cases("exact_match", wrapped, cases, mistakes)


def _bool_case(expected: float):
    def pred(got):
        if isinstance(got, str) and got.startswith("type:"):
            return False, f"return True or False (a bool), got a {got[5:]}"
        ok = got == expected
        return ok, "matches" if ok else f"returned {bool(got)}, expected {bool(expected)}"
    return pred
