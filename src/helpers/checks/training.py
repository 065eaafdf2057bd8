"""Checkers for the training lesson (notebook 07): the learning-rate schedule, batches, bits per character.

References: ``helpers.train.lr_at``, ``helpers.train.bits_per_char`` and the shift by one of
``helpers.data.get_batch``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..train import TrainConfig, bits_per_char, lr_at
from ._core import Case, CheckResult, close, run_cases

__all__ = ["check_lr_schedule", "check_get_batch_shift", "check_bits_per_char"]


def check_lr_schedule(fn: Callable[[int, TrainConfig], float]) -> CheckResult:
    """``fn(step, cfg) -> float``: linear warm-up to ``cfg.lr`` over ``cfg.warmup_iters`` steps (step ``s`` gets
    ``lr * (s + 1) / (warmup_iters + 1)``), then cosine decay to ``cfg.min_lr`` at ``cfg.lr_decay_iters`` (or
    ``cfg.max_iters``), then ``min_lr``.
    """
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=100, max_iters=1000)
    short = TrainConfig(lr=6e-4, min_lr=6e-5, warmup_iters=10, max_iters=300, lr_decay_iters=200)
    cases = [
        Case(f"{label} (step {s})", (s, c), expected=lr_at(s, c), atol=1e-12, rtol=1e-6)
        for label, s, c in [
            ("first step of warm-up", 0, cfg),
            ("middle of warm-up", 49, cfg),
            ("end of warm-up: the peak", 100, cfg),
            ("middle of the decay", 550, cfg),
            ("near the end of the decay", 990, cfg),
            ("after the decay: min_lr", 1500, cfg),
            ("lr_decay_iters shorter than max_iters", 250, short),
            ("lr_decay_iters: middle", 105, short),
        ]
    ]
    return run_cases("lr_schedule", fn, cases)


def check_get_batch_shift(fn: Callable[[torch.Tensor, list[int], int], tuple[torch.Tensor, torch.Tensor]]) -> CheckResult:
    """``fn(data, starts, block_size) -> (x, y)``: ``x[b] = data[s : s + T]`` and ``y[b] = data[s + 1 : s + T + 1]``
    for each start ``s`` in ``starts`` (``x, y`` of shape ``[len(starts), T]``): the targets are the inputs shifted
    by one.
    """
    data = torch.arange(100, 150)

    def expect(starts: list[int], T: int) -> Callable[[Any], tuple[bool, str]]:
        x = torch.stack([data[s : s + T] for s in starts])
        y = torch.stack([data[s + 1 : s + T + 1] for s in starts])

        def predicate(got: Any) -> tuple[bool, str]:
            if not (isinstance(got, tuple) and len(got) == 2):
                return False, f"expected a tuple (x, y), got {type(got).__name__}"
            ok_x, why_x = close(got[0], x, atol=0)
            ok_y, why_y = close(got[1], y, atol=0)
            if not ok_x:
                return False, f"x: {why_x}"
            if not ok_y:
                return False, f"y: {why_y} (y is x shifted by one token)"
            return True, "x and y match"

        return predicate

    cases = [
        Case(name, (data, starts, T), predicate=expect(starts, T))
        for name, starts, T in [
            ("one window", [0], 4),
            ("three windows", [3, 10, 20], 8),
            ("the last possible window", [41], 8),
            ("block_size 1", [5, 6], 1),
        ]
    ]
    return run_cases("get_batch_shift", fn, cases)


def check_bits_per_char(fn: Callable[[float, float], float]) -> CheckResult:
    """``fn(loss_nats, chars_per_token) -> float``: a loss in nats per token as bits per character."""
    cases = [
        Case(f"{label}", (loss, cpt), expected=bits_per_char(loss, cpt), atol=1e-9)
        for label, loss, cpt in [
            ("ln 2 nats = 1 bit, one char per token", math.log(2), 1.0),
            ("uniform over 65 characters", math.log(65), 1.0),
            ("a character model's loss of 1.5", 1.5, 1.0),
            ("BPE: 3.0 nats over 3.5 characters", 3.0, 3.5),
        ]
    ]
    return run_cases("bits_per_char", fn, cases)
