"""Checkers for notebook 17 (training at scale): training FLOPs, memory per process, a power-law fit.

Each compares the learner's function with an independent reference: PyTorch's own FLOP counter
(``torch.utils.flop_counter.FlopCounterMode``) over a real forward and backward pass of the course's GPT; the
bytes of a real model's weights, gradients and AdamW state after one step; NumPy's least-squares line through
the logarithms. Each names the usual mistakes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._core import Case, CheckResult, run_cases

__all__ = ["check_train_flops", "check_train_memory", "check_power_law_fit"]


# ---------------------------------------------------------------------------------------------------------
# train_flops(n_layer, n_embd, block_size, vocab_size, tokens) -> FLOPs of forward + backward


def _counted_flops(n_layer: int, n_embd: int, block_size: int, vocab_size: int, batch: int) -> int:
    """What PyTorch's FLOP counter counts for one training step of the course's GPT on ``batch`` full windows."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from ..model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=2, n_embd=n_embd,
                          dropout=0.0))
    idx = torch.randint(0, vocab_size, (batch, block_size))
    # the math backend writes attention as matrix products, which the counter sees (the fused CPU kernel it does not)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx, targets=idx).loss.backward()
    return counter.get_total_flops()


def check_train_flops(fn) -> CheckResult:
    """``fn(n_layer, n_embd, block_size, vocab_size, tokens)``: the FLOPs of training on ``tokens`` tokens, against
    PyTorch's FLOP counter on a real step of the course's GPT (and, for a big model, the same formula's count)."""

    def counted(L, C, T, V, batch):
        return Case(f"{L} layer{'s' if L > 1 else ''}, width {C}, context {T}, vocabulary {V}: one step of {batch} windows, counted by "
                    "FlopCounterMode", (L, C, T, V, batch * T), _counted_flops(L, C, T, V, batch), atol=0.5, rtol=1e-9)

    gpt3 = 3 * (2 * (12 * 96 * 12288 ** 2 + 12288 * 50257) + 4 * 96 * 2048 * 12288) * 300_000_000_000
    cases = [counted(2, 32, 16, 65, 3), counted(3, 48, 40, 101, 2), counted(1, 64, 8, 50, 5),
             Case("GPT-3's shape (96 layers, width 12288, context 2048, vocabulary 50257), 300B tokens",
                  (96, 12288, 2048, 50257, 300_000_000_000), gpt3, atol=0.0, rtol=1e-6)]

    def formula(weights=True, head=True, attention=True, passes=3):
        def f(L, C, T, V, tokens):
            per = 2 * (12 * L * C * C * weights + C * V * head) + 4 * L * T * C * attention
            return passes * per * tokens
        return f

    mistakes = [
        ("the forward pass only (the backward pass does twice the forward's work: 3x in all)", formula(passes=1)),
        ("the backward pass counted as one forward (2x in all, not 3x)", formula(passes=2)),
        ("the attention scores and weighted sums left out (4 n_layer block_size n_embd per token, forward)",
         formula(attention=False)),
        ("the output layer left out (n_embd x vocab_size weights, 2 FLOPs each per token, forward)", formula(head=False)),
        ("Kaplan's 6 N D alone: no attention term, no output layer", formula(head=False, attention=False)),
    ]
    return run_cases("train_flops", fn, cases, mistakes)


# ---------------------------------------------------------------------------------------------------------
# train_memory(n_params, n_procs, sharded) -> bytes of weights + gradients + AdamW moments on one process (float32)


def _measured_bytes(n_layer: int, n_embd: int) -> tuple[int, int]:
    """(parameters, bytes of weights + gradients + AdamW state) of a real course GPT after one optimiser step."""
    from ..model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=n_layer, n_head=2, n_embd=n_embd))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    idx = torch.randint(0, 65, (2, 16))
    model(idx, targets=idx).loss.backward()
    opt.step()
    held = 0
    for p in model.parameters():
        held += p.numel() * p.element_size() + p.grad.numel() * p.grad.element_size()
        held += sum(t.numel() * t.element_size() for k, t in opt.state[p].items() if k != "step")
    return model.num_parameters(), held


def check_train_memory(fn) -> CheckResult:
    """``fn(n_params, n_procs, sharded)``: float32 training memory per process with AdamW, against the bytes a real
    model, its gradients and AdamW's state take (one process), and the share each of ``n_procs`` holds."""
    n1, b1 = _measured_bytes(2, 32)
    n2, b2 = _measured_bytes(3, 64)
    cases = [Case(f"a real GPT of {n1:,} parameters, one process: its tensors measured after one AdamW step",
                  (n1, 1, False), float(b1), atol=0.5, rtol=1e-9),
             Case(f"the same model under DDP on 3 processes (each holds: measured {b1:,} bytes)", (n1, 3, False),
                  float(b1), atol=0.5, rtol=1e-9),
             Case(f"a GPT of {n2:,} parameters sharded over 2 processes (FSDP: half of the measured {b2:,} bytes)",
                  (n2, 2, True), b2 / 2, atol=0.5, rtol=1e-9),
             Case("a 7B model sharded over 8 GPUs", (7_000_000_000, 8, True), 16 * 7e9 / 8, atol=0.5, rtol=1e-9)]

    def per_param(k, divide=None):
        def f(n, p, sharded):
            share = p if (sharded if divide is None else divide) else 1
            return k * n / share
        return f

    mistakes = [
        ("AdamW's two moments left out (they are 8 of the 16 bytes per parameter)", per_param(8)),
        ("the gradients left out (4 bytes per parameter)", per_param(12)),
        ("only the weights (4 bytes per parameter): gradients and AdamW's two moments are as large again, twice",
         per_param(4)),
        ("DDP divided among the processes too: DDP keeps a full copy of everything on every process",
         per_param(16, divide=True)),
        ("FSDP not divided: sharding keeps 1/n_procs of every tensor on each process", per_param(16, divide=False)),
    ]
    return run_cases("train_memory", fn, cases, mistakes)


# ---------------------------------------------------------------------------------------------------------
# power_law_fit(x, y) -> (A, alpha) with y = A * x ** (-alpha), least squares on log-log axes


def _reference_fit(x, y):
    slope, intercept = np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)
    return (float(np.exp(intercept)), float(-slope))


def check_power_law_fit(fn) -> CheckResult:
    """``fn(x, y)``: ``(A, alpha)`` of the straight line through ``(log x, log y)`` (``y = A x^-alpha``), against
    NumPy's least squares."""
    from ..scaling import BUDGETS, read_csv

    rng = np.random.default_rng(17)
    x1 = np.array([1e3, 1e4, 1e5, 1e6])
    x2 = np.geomspace(2e4, 8e5, 7)
    y2 = 5.0 * x2 ** -0.07 * np.exp(0.01 * rng.standard_normal(7))
    rows = [r for r in read_csv() if r["tokens"] == BUDGETS[-1] and r["seed"] == 0]
    xn, yn = [r["params_non_embedding"] for r in rows], [r["val_bpc"] for r in rows]

    def case(name, x, y):
        return Case(name, (list(x), list(y)), _reference_fit(x, y), atol=1e-8, rtol=1e-6)

    cases = [case("an exact law y = 40 x^-0.3", x1, 40 * x1 ** -0.3),
             case("a noisy law, 7 points", x2, y2),
             case("the course's ladder: held-out bits/char against non-embedding parameters at 4M characters", xn, yn)]

    def neg_alpha(x, y):
        A, a = _reference_fit(x, y)
        return (A, -a)

    def log_A(x, y):
        A, a = _reference_fit(x, y)
        return (math.log(A), a)

    def linear(x, y):
        slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
        return (float(intercept), float(-slope))

    def log10_A(x, y):
        A, a = _reference_fit(x, y)
        return (math.log10(A), a)

    mistakes = [("alpha with the wrong sign: y = A x^(-alpha), so alpha is minus the slope", neg_alpha),
                ("the intercept of the line returned as A: A is exp(intercept) (10**intercept with log10)", log_A),
                ("the intercept of the line returned as A: A is 10**intercept with log10", log10_A),
                ("a straight line through (x, y), not through (log x, log y)", linear)]
    return run_cases("power_law_fit", fn, cases, mistakes)
