"""Checkers for notebook 16 (from GPT-2 to Llama): the SwiGLU MLP, rotary positions, grouped-query head sharing.

Each compares the learner's function with an independent reference (``transformers``' ``LlamaMLP``; the
rotation written with complex numbers; ``transformers``' order of shared heads) and names the usual mistakes.
(RMSNorm is notebook 04's exercise: ``helpers.checks.check_rms_norm``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._core import Case, CheckResult, run_cases

__all__ = ["check_swiglu", "check_rope", "check_repeat_kv"]


# ---------------------------------------------------------------------------------------------------------
# swiglu(x [..., C], w_gate [h, C], w_up [h, C], w_down [C, h]) -> (silu(x W_gate^T) * (x W_up^T)) W_down^T


def check_swiglu(fn) -> CheckResult:
    """``fn(x, w_gate, w_up, w_down)``: Llama's MLP with ``nn.Linear``-shaped weights, against ``transformers``'
    own ``LlamaMLP`` holding the same weights."""
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP

    g = torch.Generator().manual_seed(16)

    def case(name, batch, C, h):
        x = torch.randn(*batch, C, generator=g)
        wg, wu, wd = (torch.randn(h, C, generator=g) / C ** 0.5, torch.randn(h, C, generator=g) / C ** 0.5,
                      torch.randn(C, h, generator=g) / h ** 0.5)
        mlp = LlamaMLP(LlamaConfig(hidden_size=C, intermediate_size=h, num_attention_heads=1))
        with torch.no_grad():
            mlp.gate_proj.weight.copy_(wg)
            mlp.up_proj.weight.copy_(wu)
            mlp.down_proj.weight.copy_(wd)
            expected = mlp(x)
        return Case(name, (x, wg, wu, wd), expected, atol=1e-5, rtol=1e-5)

    cases = [case("one vector, C = 8, h = 21", (1,), 8, 21), case("a batch of sequences, C = 12, h = 32", (2, 5), 12, 32),
             case("C = 96, h = 256 (8C/3, the course's Llama)", (3,), 96, 256)]

    def mlp(act, gate_on_up=False, gated=True):
        def f(x, wg, wu, wd):
            a, b = x @ wg.T, x @ wu.T
            if gate_on_up:
                a, b = b, a
            return ((act(a) * b) if gated else act(a)) @ wd.T
        return f

    mistakes = [
        ("GELU instead of SiLU", mlp(F.gelu)),
        ("GELU instead of SiLU", mlp(lambda z: F.gelu(z, approximate="tanh"))),
        ("the activation on the up projection, not on the gate", mlp(F.silu, gate_on_up=True)),
        ("no gate: SiLU(x W_gate) alone, without the product with x W_up", mlp(F.silu, gated=False)),
        ("a sigmoid gate (the original GLU) instead of SiLU", mlp(torch.sigmoid)),
        ("ReLU instead of SiLU (ReGLU)", mlp(F.relu)),
    ]
    return run_cases("swiglu", fn, cases, mistakes)


# ---------------------------------------------------------------------------------------------------------
# rope(x [..., T, D], positions [T], theta) -> x with pair (i, i + D/2) turned by positions * theta^(-2i/D)


def _rope_complex(x: torch.Tensor, positions: torch.Tensor, theta: float) -> torch.Tensor:
    """The reference, written another way: pair i as the complex number x_i + j x_{i+D/2}, times e^{j angle}."""
    D = x.shape[-1]
    angle = positions.double()[:, None] * theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)  # [T, D/2]
    z = torch.complex(x[..., : D // 2].double(), x[..., D // 2:].double()) * torch.polar(torch.ones_like(angle), angle)
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)


def _rope_interleaved(x, positions, theta):
    D = x.shape[-1]
    angle = positions.double()[:, None] * theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    z = torch.complex(x[..., 0::2].double(), x[..., 1::2].double()) * torch.polar(torch.ones_like(angle), angle)
    return torch.stack([z.real, z.imag], dim=-1).flatten(-2).to(x.dtype)


def check_rope(fn) -> CheckResult:
    """``fn(x [..., T, D], positions [T], theta)``: each channel pair ``(i, i + D/2)`` turned by the angle
    ``positions * theta ** (-2i / D)``, the half-split convention of Llama in ``transformers``."""
    g = torch.Generator().manual_seed(160)
    specs = [
        ((1, 4, 8), torch.arange(4), 10000.0, "positions 0..3, D = 8"),
        ((2, 3, 6, 16), torch.arange(6), 10000.0, "a batch of heads, D = 16"),
        ((5, 4), torch.tensor([7, 100, 101, 1000, 3]), 10000.0, "positions out of order, up to 1000"),
        ((2, 5, 8), torch.arange(5), 500000.0, "theta = 500,000 (Llama 3's base)"),
    ]
    cases = []
    for shape, pos, theta, name in specs:
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        cases.append(Case(name, (x, pos, theta), _rope_complex(x, pos, theta), atol=1e-6, rtol=1e-6))
    x0 = torch.randn(3, 8, generator=g, dtype=torch.float64)
    cases.append(Case("position 0 changes nothing", (x0, torch.zeros(3, dtype=torch.long), 10000.0), x0,
                      atol=1e-12, rtol=0))
    mistakes = [
        ("the interleaved convention: pairs (0, 1), (2, 3) ... instead of (i, i + D/2)", _rope_interleaved),
        ("a rotation the wrong way (sin with the opposite sign)", lambda x, p, t: _rope_complex(x, -p, t)),
        ("frequencies theta ** (-i / D) instead of theta ** (-2i / D)",
         lambda x, p, t: _rope_complex(x, p, t ** 0.5)),
        ("positions starting at 1", lambda x, p, t: _rope_complex(x, p + 1, t)),
    ]
    return run_cases("rope", fn, cases, mistakes)


# ---------------------------------------------------------------------------------------------------------
# repeat_kv(kv [B, H_kv, T, D], n_rep) -> [B, H_kv * n_rep, T, D], key/value head j serving query heads
# j * n_rep .. (j + 1) * n_rep - 1


def check_repeat_kv(fn) -> CheckResult:
    """``fn(kv [B, H_kv, T, D], n_rep)``: every key/value head repeated ``n_rep`` times, next to each other, so
    that query head ``h`` reads key/value head ``h // n_rep``, as ``transformers``' Llama does."""
    g = torch.Generator().manual_seed(1600)

    def ref(kv, n):
        B, H, T, D = kv.shape
        return kv[:, :, None].expand(B, H, n, T, D).reshape(B, H * n, T, D)

    specs = [((1, 2, 3, 4), 2, "2 key/value heads for 4 query heads"), ((2, 4, 5, 8), 3, "4 for 12 (a batch of 2)"),
             ((1, 1, 6, 4), 8, "multi-query attention: 1 for 8"), ((2, 3, 2, 4), 1, "n_rep = 1: unchanged")]
    cases = []
    for shape, n, name in specs:
        kv = torch.randn(shape, generator=g)
        cases.append(Case(name, (kv, n), ref(kv, n), atol=0, rtol=0))
    mistakes = [
        ("tiling the heads (kv.repeat): query head h then reads head h % H_kv, not h // n_rep",
         lambda kv, n: kv.repeat(1, n, 1, 1)),
        ("repeating along time instead of heads", lambda kv, n: kv.repeat_interleave(n, dim=2)),
    ]
    return run_cases("repeat_kv", fn, cases, mistakes)
