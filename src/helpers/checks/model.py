"""Checkers for the model lessons (notebooks 03–05): positions, LayerNorm, GELU, GPT-2's parameter count.

Each ``check_NAME(fn)`` calls the learner's ``fn`` on a few cases, compares with a reference (PyTorch's own
``F.layer_norm`` and ``F.gelu``, the formula of Vaswani et al. 2017, ``helpers.model.GPT`` built on the
``meta`` device) and prints one ✓/✗ line per case. Answers may be tensors or NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F

from ..model import GPT, GPTConfig
from ._core import Case, CheckResult, run_cases

__all__ = [
    "check_embedding_lookup",
    "check_sinusoidal_positions",
    "check_layer_norm",
    "check_gelu_tanh",
    "check_gpt2_param_count",
    "check_next_token_loss",
]


def _rand(seed: int, *shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """A reproducible float64 tensor (float64 so the references are exact well below the tolerance)."""
    return (
        torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
        + shift
    )


# ----------------------------------------------------------------------------------------------- embeddings


def check_embedding_lookup(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> CheckResult:
    """Check ``fn(ids, weight) -> [..., d]``: the rows of ``weight [V, d]`` picked by the integer ``ids [...]``.

    The lesson asks for it as a one-hot matrix product, ``one_hot(ids, V) @ weight``; the reference is
    ``F.embedding`` (which is what ``nn.Embedding`` calls).
    """
    w = _rand(7, 11, 6)
    cases = []
    for name, ids in (
        ("one sequence [5]", torch.tensor([3, 0, 10, 3, 7])),
        ("a batch [2, 4] with repeats", torch.tensor([[1, 1, 2, 9], [10, 0, 0, 5]])),
        ("a single id [1]", torch.tensor([4])),
    ):
        cases.append(Case(name, (ids, w), F.embedding(ids, w)))
    return run_cases("embedding_lookup(ids, weight)", fn, cases)


# ----------------------------------------------------------------------------------------------- positions


def sinusoidal_reference(T: int, d_model: int) -> torch.Tensor:
    """``[T, d_model]``: ``PE[p, 2i] = sin(p / 10000^(2i/d))``, ``PE[p, 2i+1] = cos(p / 10000^(2i/d))``."""
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(T, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


def check_sinusoidal_positions(fn: Callable[[int, int], Any]) -> CheckResult:
    """Check ``fn(T, d_model) -> [T, d_model]`` against the sinusoidal encoding of "Attention Is All You Need".

    Even columns hold sines, odd columns cosines, of ``p / 10000^(2i / d_model)`` (``i`` the column pair).
    """
    cases = [
        Case(f"T={T}, d_model={d}", (T, d), sinusoidal_reference(T, d), atol=1e-5)
        for T, d in ((1, 2), (4, 8), (10, 16), (64, 32), (200, 128))
    ]
    return run_cases("sinusoidal_positions(T, d_model)", fn, cases)


# ----------------------------------------------------------------------------------------------- LayerNorm


def check_layer_norm(fn: Callable[..., Any]) -> CheckResult:
    """Check ``fn(x, weight, bias, eps=1e-5)``: LayerNorm over the last dimension, as ``nn.LayerNorm``.

    ``x [..., C]``, ``weight [C]``, ``bias [C]``; the variance is the biased one (divide by ``C``), ``eps`` is
    added to it inside the square root.
    """

    def ref(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), w, b, eps)

    ones, zeros = torch.ones(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64)
    x2 = _rand(0, 5, 8)
    x3 = _rand(1, 2, 3, 16, scale=4.0)
    w16, b16 = _rand(2, 16), _rand(3, 16)
    far = _rand(4, 4, 8, scale=0.5, shift=1000.0)  # large offset: mean subtraction must come first
    const = torch.full((3, 8), 7.0, dtype=torch.float64)  # zero variance: eps keeps it finite
    cases = [
        Case("2-D input, weight 1, bias 0", (x2, ones, zeros), ref(x2, ones, zeros)),
        Case("3-D input, learned weight and bias", (x3, w16, b16), ref(x3, w16, b16)),
        Case("rows far from zero (mean 1000)", (far, ones, zeros), ref(far, ones, zeros)),
        Case(
            "constant rows (variance 0) give the bias",
            (const, ones, _rand(5, 8)),
            ref(const, ones, _rand(5, 8)),
        ),
        Case("eps=0.1 is used", (x2, ones, zeros), ref(x2, ones, zeros, 0.1), kwargs={"eps": 0.1}),
    ]
    return run_cases("layer_norm(x, weight, bias, eps)", fn, cases)


# ----------------------------------------------------------------------------------------------- GELU


def check_gelu_tanh(fn: Callable[[torch.Tensor], Any]) -> CheckResult:
    """Check ``fn(x)``: GELU with GPT-2's tanh approximation, ``0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))``."""
    xs = [
        torch.linspace(-6, 6, 121, dtype=torch.float64),
        _rand(6, 4, 10, scale=3.0),
        torch.tensor([0.0, 1.0, -1.0, 2.0, -2.0, 20.0, -20.0], dtype=torch.float64),
    ]
    names = ["a grid on [-6, 6] (it is not the exact erf GELU)", "a random [4, 10] tensor", "0, ±1, ±2, ±20"]
    cases = [Case(n, (x,), F.gelu(x, approximate="tanh"), atol=1e-6) for n, x in zip(names, xs, strict=True)]
    return run_cases("gelu_tanh(x)", fn, cases)


# ----------------------------------------------------------------------------------------------- counting


def _count(vocab_size: int, block_size: int, n_layer: int, n_embd: int) -> int:
    """Count by building the model on the ``meta`` device: shapes only, no memory, no time."""
    n_head = 1 if n_embd % 4 else 4
    with torch.device("meta"):
        return GPT(GPTConfig(vocab_size, block_size, n_layer, n_head, n_embd)).num_parameters()


def check_gpt2_param_count(fn: Callable[[int, int, int, int], Any]) -> CheckResult:
    """Check ``fn(vocab_size, block_size, n_layer, n_embd) -> int``: GPT-2's parameters, tied head counted once.

    The reference builds ``helpers.model.GPT`` on the meta device and counts ``num_parameters()``.
    """
    sizes = [
        ("GPT-2 small (124,439,808)", (50257, 1024, 12, 768)),
        ("GPT-2 medium", (50257, 1024, 24, 1024)),
        ("a character model (65 symbols, 6 layers, 384 wide)", (65, 256, 6, 384)),
        ("one layer, 8 wide", (10, 4, 1, 8)),
    ]

    def exact(expected: int) -> Callable[[Any], tuple[bool, str]]:
        def pred(got: Any) -> tuple[bool, str]:
            try:
                g = int(got)
            except (TypeError, ValueError):
                return False, f"expected an int, got {type(got).__name__}"
            if g != got:
                return False, f"expected a whole number, got {got!r}"
            if g == expected:
                return True, f"{g:,}"
            hint = ""
            if g - expected == sizes_vocab_embd.get(expected, -1):
                hint = " (the output head shares wte's matrix: count it once)"
            return False, f"got {g:,}, expected {expected:,} (off by {g - expected:+,}){hint}"

        return pred

    sizes_vocab_embd: dict[int, int] = {}
    cases = []
    for name, args in sizes:
        expected = _count(*args)
        sizes_vocab_embd[expected] = args[0] * args[3]
        cases.append(Case(name, args, predicate=exact(expected)))
    return run_cases("gpt2_param_count(vocab_size, block_size, n_layer, n_embd)", fn, cases)


# ----------------------------------------------------------------------------------------------- the loss


def check_next_token_loss(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> CheckResult:
    """Check ``fn(logits [B, T, V], targets [B, T]) -> scalar``: mean next-token cross-entropy in nats.

    ``targets[b, t]`` is the token that follows position ``t`` (already shifted); positions whose target is
    ``-100`` are left out of the mean, as in ``F.cross_entropy(..., ignore_index=-100)``.
    """

    def ref(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    gen = torch.Generator().manual_seed(8)
    cases = []
    for name, (B, T, V), n_ignored, scale in (
        ("B=2, T=5, V=7", (2, 5, 7), 0, 1.0),
        ("B=3, T=4, V=50, large logits (use log-softmax, not log of softmax)", (3, 4, 50), 0, 500.0),
        ("B=2, T=6, V=9, three positions ignored (-100)", (2, 6, 9), 3, 1.0),
    ):
        logits = _rand(9 + B, B, T, V, scale=scale)
        targets = torch.randint(0, V, (B, T), generator=gen)
        if n_ignored:
            targets.view(-1)[torch.randperm(B * T, generator=gen)[:n_ignored]] = -100
        cases.append(Case(name, (logits, targets), ref(logits, targets)))
    return run_cases("next_token_loss(logits, targets)", fn, cases)
