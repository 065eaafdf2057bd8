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

__all__ = ["check_lr_schedule", "check_get_batch_shift", "check_bits_per_char", "check_train_step", "check_decay_step"]


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


# ----------------------------------------------------------------------------------------------- 07: the step


class _SpyModel(torch.nn.Module):
    """The checker's tiny GPT (``helpers.pieces.GPT``, float64): records the mode at each forward and whether
    the backward pass reached the loss. ``scale`` multiplies the loss (a huge loss makes clipping visible)."""

    def __init__(self, seed: int, dropout: float = 0.0, scale: float = 1.0) -> None:
        super().__init__()
        from ..model import GPTConfig
        from ..pieces.gpt import GPT as RefGPT

        cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=dropout)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.inner = RefGPT(cfg).double()
        self.scale = scale
        self.modes: list[bool] = []
        self.backward_calls = 0

    def _seen(self, grad: torch.Tensor) -> None:
        self.backward_calls += 1

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        self.modes.append(self.training)
        logits, loss = self.inner(idx, targets)
        if loss is not None:
            loss = loss * self.scale
            if loss.requires_grad:
                loss.register_hook(self._seen)
        return logits, loss


def _flat(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    if not tensors or any(t is None for t in tensors):
        return None
    return torch.cat([t.detach().reshape(-1) for t in tensors]).clone()


def _spy(base: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    class Spy(base):  # type: ignore[misc, valid-type]
        """An optimizer that notes, at each ``step()``, the gradients it is about to use."""

        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            self.steps = 0
            self.grads_at_step: list[torch.Tensor | None] = []

        def step(self, closure: Any = None) -> Any:  # noqa: D102
            params = [p for g in self.param_groups for p in g["params"]]
            self.grads_at_step.append(_flat([p.grad for p in params]))
            self.steps += 1
            return super().step(closure)

    Spy.__name__ = base.__name__
    return Spy


_SGD, _AdamW = _spy(torch.optim.SGD), _spy(torch.optim.AdamW)


def _run_steps(step_fn: Callable[..., Any], setup: dict) -> dict:
    """Build the tiny model and optimizer of ``setup``, call ``step_fn`` on its batches, report what happened."""
    model = _SpyModel(setup["seed"], dropout=setup.get("dropout", 0.0), scale=setup.get("scale", 1.0))
    params = list(model.parameters())
    opt = _AdamW(params, lr=1e-2, weight_decay=0.1) if setup.get("adamw") else _SGD(params, lr=0.1)
    gen = torch.Generator().manual_seed(setup["seed"] + 100)
    if setup.get("stale"):  # gradients left over from something else: train_step must not add them in
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
    if setup.get("eval_first"):
        model.eval()  # as after an evaluation
    returned = []
    with torch.random.fork_rng():
        torch.manual_seed(setup["seed"])
        for _ in range(setup.get("calls", 1)):
            x = torch.randint(0, 11, (3, 8), generator=gen)
            y = torch.randint(0, 11, (3, 8), generator=gen)
            returned.append(step_fn(model, opt, x, y, **setup.get("kwargs", {})))
    return {
        "returned": returned,
        "params": _flat(params),
        "grads_after": _flat([p.grad for p in params]),
        "grads_at_step": opt.grads_at_step,
        "steps": opt.steps,
        "modes": model.modes,
        "backward_calls": model.backward_calls,
        "clip": setup.get("kwargs", {}).get("grad_clip", 1.0),
    }


def _step_variant(kind: str) -> Callable[..., float]:
    """The reference step with one common mistake (for naming it when the learner's update matches it)."""

    def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
             grad_clip: float = 1.0) -> float:
        model.train()
        if kind not in ("no-zero", "zero-after"):
            optimizer.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        if kind == "clip-value":
            torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
        elif kind == "clip-one":
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        elif kind not in ("no-clip", "clip-after"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if kind == "clip-after":
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if kind == "zero-after":
            optimizer.zero_grad()
        return loss.item()

    return step


_STEP_MISTAKES = [
    ("no-zero", "zero_grad is missing: the gradients add up across calls (call optimizer.zero_grad() before "
                "backward)"),
    ("zero-after", "the gradients are zeroed after the step, not before: what sat in .grad when train_step was "
                   "called was added to this batch's gradient (zero them first)"),
    ("clip-after", "clipped after optimizer.step(): the step used the unclipped gradient (clip between backward "
                   "and step)"),
    ("no-clip", "gradient clipping is missing: torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) "
                "between backward and step"),
    ("clip-value", "clip_grad_value_ clips each number; the step clips the gradients' total norm "
                   "(clip_grad_norm_)"),
    ("clip-one", "the clip ignores grad_clip (clipped to norm 1.0): pass grad_clip to clip_grad_norm_"),
]


def _same(a: torch.Tensor | None, b: torch.Tensor | None, tol: float = 1e-9) -> bool:
    return a is not None and b is not None and a.shape == b.shape and bool(torch.allclose(a, b, atol=tol, rtol=1e-7))


def _judge_steps(step_fn: Callable[..., Any], setup: dict, report: dict) -> tuple[bool, str]:
    from ..pieces.training import train_step as reference

    want = _run_steps(reference, setup)
    got = report["returned"]
    if any(r is None for r in got):
        return False, "your function returned None: did you forget `return`? (return the loss as a float)"
    same_update = _same(report["params"], want["params"])
    if not same_update:
        if report["backward_calls"] == 0:
            return False, "no gradients were computed: loss.backward() is missing (or the loss was detached)"
        if report["steps"] == 0:
            return False, "the weights did not change: optimizer.step() is missing"
        if any(g is None or not g.abs().sum() for g in report["grads_at_step"]):
            return False, ("the step had no gradient: zero_grad was called between backward and step (zero the "
                           "gradients first, before the forward pass)")
        if setup.get("eval_first") and not all(report["modes"]):
            return False, ("the model stayed in eval mode, so dropout was off: call model.train() first (an "
                           "evaluation may have left the model in eval mode)")
        after = report["grads_after"]
        norm_after = 0.0 if after is None else after.norm().item()
        tell = {  # mistakes with the same update, told apart by what is left in .grad after the call
            "zero-after": norm_after == 0.0, "no-zero": norm_after > 0.0,
            "clip-after": 0.0 < norm_after <= report["clip"] * (1 + 1e-6),
            "no-clip": norm_after == 0.0 or norm_after > report["clip"] * (1 + 1e-6),
        }
        for kind, name in _STEP_MISTAKES:
            if not tell.get(kind, True):
                continue
            if _same(report["params"], _run_steps(_step_variant(kind), setup)["params"]):
                if kind in ("no-clip", "clip-after"):
                    norms = [g.norm().item() for g in report["grads_at_step"] if g is not None]
                    name += f" (the gradient's norm at the step was {max(norms):.3g}, grad_clip {report['clip']:g})"
                return False, f"looks like {name}"
        diff = (report["params"] - want["params"]).abs().max().item() if report["params"] is not None else float("nan")
        return False, f"the weights after the step differ from the reference's (max difference {diff:.3g})"
    if any(isinstance(r, torch.Tensor) for r in got):
        return False, ("returned a tensor: return loss.item(), a Python float (a kept tensor holds on to the "
                       "step's whole graph, and a list of them fills the memory)")
    if not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in got):
        return False, f"expected a float (the loss), got {type(got[0]).__name__}"
    if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(got, want["returned"], strict=True)):
        return False, (f"returned {got[-1]:.6g}, but the batch's loss (before the step) was "
                       f"{want['returned'][-1]:.6g}")
    if setup.get("eval_first") and not all(report["modes"]):  # same update only when dropout does nothing
        return False, "the model stayed in eval mode: call model.train() first"
    return True, "same update and loss as the reference"


def check_train_step(fn: Callable[..., Any]) -> CheckResult:
    """Check ``fn(model, optimizer, x, y, grad_clip=1.0) -> float``: one training step.

    Training mode, zero the gradients, forward (``model(x, y)`` returns ``(logits, loss)``), backward, clip the
    gradients' total norm to ``grad_clip``, ``optimizer.step()``; return the loss (before the step) as a float.
    Each case trains a tiny GPT (float64) with a recording optimizer and compares the weights after the
    step(s) with ``helpers.pieces.train_step``'s. Mistakes named: zero_grad missing or after the step,
    clipping missing / after the step / per value / ignoring ``grad_clip``, backward or step missing,
    ``model.train()`` forgotten, a tensor returned instead of a float.
    """
    setups = [
        ("one step (SGD, lr 0.1): the update and the loss returned", dict(seed=1, kwargs={"grad_clip": 5.0})),
        ("three calls in a row (AdamW): each step uses its own batch's gradient",
         dict(seed=2, calls=3, adamw=True, kwargs={"grad_clip": 5.0})),
        (".grad holds stale gradients when train_step is called", dict(seed=3, stale=True,
                                                                       kwargs={"grad_clip": 5.0})),
        ("a huge loss (x1000), grad_clip=0.25: the update is clipped", dict(seed=4, scale=1000.0,
                                                                          kwargs={"grad_clip": 0.25})),
        ("a huge loss, grad_clip left at its default 1.0", dict(seed=5, scale=1000.0)),
        ("the model arrives in eval mode (after an evaluation), dropout 0.5",
         dict(seed=6, dropout=0.5, eval_first=True, kwargs={"grad_clip": 5.0})),
    ]

    def dispatch(setup: dict) -> dict:
        return _run_steps(fn, setup)

    cases = [Case(name, (setup,), predicate=lambda rep, s=setup: _judge_steps(fn, s, rep)) for name, setup in setups]
    return run_cases("train_step(model, optimizer, x, y, grad_clip)", dispatch, cases)


# ----------------------------------------------------------------------------------------------- 07: the schedule


def decay_step_reference(target: float, cfg: TrainConfig) -> int:
    """The first step, from the peak on, at which ``lr_at(step, cfg) <= target`` (by trying every step)."""
    if not cfg.min_lr <= target <= cfg.lr:
        raise ValueError(f"target must lie between min_lr={cfg.min_lr} and lr={cfg.lr}, got {target}")
    end = cfg.lr_decay_iters or cfg.max_iters
    for s in range(cfg.warmup_iters, end + 1):
        if lr_at(s, cfg) <= target:
            return s
    return end


def check_decay_step(fn: Callable[[float, TrainConfig], int]) -> CheckResult:
    """``fn(target, cfg) -> int``: the first step, after the warm-up's peak, at which the learning rate of
    ``helpers.train.lr_at`` is at most ``target`` (``min_lr <= target <= lr``), without trying every step.

    Compared with ``decay_step_reference`` (which tries every step). Mistakes named: the decay's end taken at
    ``max_iters`` when ``lr_decay_iters`` is set, a cosine down to 0 instead of ``min_lr``, the decay counted
    from step 0 instead of from the end of the warm-up, rounding down (that step's rate is still above target).
    """
    from dataclasses import replace

    def no_warmup_offset(target: float, cfg: TrainConfig) -> int:
        end = cfg.lr_decay_iters or cfg.max_iters
        u = max(-1.0, min(1.0, 2 * (target - cfg.min_lr) / (cfg.lr - cfg.min_lr) - 1))
        return math.ceil(end * math.acos(u) / math.pi)

    mistakes = [
        ("the decay ending at max_iters: lr_decay_iters, when set, is where it reaches min_lr",
         lambda t, c: decay_step_reference(t, replace(c, lr_decay_iters=None))),
        ("a cosine down to 0: it goes from lr down to min_lr",
         lambda t, c: decay_step_reference(max(t, 0.0), replace(c, min_lr=0.0))),
        ("the decay counted from step 0: it starts at the end of the warm-up", no_warmup_offset),
        ("rounding down: at that step the rate is still above target (round up)",
         lambda t, c: decay_step_reference(t, c) - 1),
    ]
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=100, max_iters=1000)
    short = TrainConfig(lr=6e-4, min_lr=6e-5, warmup_iters=10, max_iters=300, lr_decay_iters=200)
    none = TrainConfig(lr=3e-3, min_lr=3e-4, warmup_iters=0, max_iters=500)
    cases = [
        Case(label, (t, c), expected=decay_step_reference(t, c), atol=0, rtol=0)
        for label, t, c in [
            ("half the peak (lr 1e-3, warm-up 100, 1,000 steps)", 5e-4, cfg),
            ("just below the peak", 9.9e-4, cfg),
            ("just above min_lr", 1.05e-4, cfg),
            ("lr_decay_iters=200 shorter than max_iters=300", 3e-4, short),
            ("no warm-up", 1e-3, none),
            ("exactly min_lr: where the decay ends", 3e-4, none),
        ]
    ]
    return run_cases("decay_step(target, cfg)", fn, cases, mistakes=mistakes)
