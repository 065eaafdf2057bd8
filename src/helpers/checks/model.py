"""Checkers for the model lessons (notebooks 03–05): embeddings, positions, LayerNorm, GELU, dropout, the block, the
GPT, parameter counts, the loss.

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
from ._core import Case, CheckResult, close, run_cases

__all__ = [
    "check_embedding_lookup",
    "check_sinusoidal_positions",
    "check_layer_norm",
    "check_gelu_tanh",
    "check_next_token_loss",
    "check_embedding_backward",
    "check_position_from_encoding",
    "check_dropout",
    "check_rms_norm",
    "check_block",
    "check_gpt",
    "check_param_count",
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
    why = "the exercise is to compute the cross-entropy yourself, from log_softmax"
    return run_cases("next_token_loss(logits, targets)", fn, cases,
                     forbid={"torch.nn.functional.cross_entropy": why, "torch.nn.functional.nll_loss": why})


# ----------------------------------------------------------------------------------------------- 03: more


def check_embedding_backward(fn: Callable[[torch.Tensor, torch.Tensor, int], Any]) -> CheckResult:
    """Check ``fn(ids [T], grad_out [T, d], V) -> [V, d]``: the gradient of the loss with respect to the table.

    Row ``v`` of the answer is the sum of ``grad_out[t]`` over the positions ``t`` where ``ids[t] == v``
    (zero for tokens that do not occur). The reference is autograd through ``F.embedding``.
    """

    def ref(ids: torch.Tensor, g: torch.Tensor, V: int) -> torch.Tensor:
        w = torch.zeros(V, g.shape[-1], dtype=g.dtype, requires_grad=True)
        F.embedding(ids, w).backward(g)
        return w.grad

    def overwrite(ids: torch.Tensor, g: torch.Tensor, V: int) -> torch.Tensor:
        out = torch.zeros(V, g.shape[-1], dtype=g.dtype)
        out[ids] = g
        return out

    cases = []
    for name, ids, V in (
        ("no repeated id", torch.tensor([3, 0, 5]), 6),
        ("'the dog bites the man': 'the' twice", torch.tensor([4, 1, 2, 4, 3]), 6),
        ("one id five times", torch.tensor([2, 2, 2, 2, 2]), 4),
        ("a long sequence, V=50", torch.randint(0, 50, (40,), generator=torch.Generator().manual_seed(3)), 50),
    ):
        g = _rand(len(ids), len(ids), 4)
        cases.append(Case(name, (ids, g, V), ref(ids, g, V)))
    return run_cases(
        "embedding_backward(ids, grad_out, V)", fn, cases,
        mistakes=[("a repeated id overwriting its row instead of adding to it (use index_add_ or a one-hot product)",
                   overwrite)],
    )


def check_position_from_encoding(fn: Callable[[torch.Tensor], Any]) -> CheckResult:
    """Check ``fn(pe [N, d_model]) -> [N]`` integer positions: which position each sinusoidal row encodes.

    Rows are ``PE(p)`` for positions ``p`` in any order, up to 1,000, in float32 (as a model would hold them).
    """

    def fastest_pair(pe: torch.Tensor) -> torch.Tensor:  # the mistake: angle of columns 0, 1 (wraps at 2π)
        return torch.round(torch.remainder(torch.atan2(pe[:, 0].double(), pe[:, 1].double()), 2 * torch.pi)).long()

    def exact(expected: torch.Tensor, pe: torch.Tensor) -> Callable[[Any], tuple[bool, str]]:
        def pred(got: Any) -> tuple[bool, str]:
            if not isinstance(got, torch.Tensor):
                return False, f"expected a tensor of positions, got {type(got).__name__}"
            if got.shape != expected.shape:
                return False, f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}"
            if got.dtype.is_floating_point:
                got = torch.round(got)
            if torch.equal(got.long(), expected):
                return True, "every position recovered"
            wrong = int((got.long() != expected).sum())
            why = f"{wrong} of {len(expected)} positions wrong"
            if torch.equal(got.long(), fastest_pair(pe)):
                why += (": looks like you read the fastest column pair (0, 1), which turns once every 2π ≈ 6.3 "
                        "positions and so wraps around; read a slow pair")
            return False, why

        return pred

    gen = torch.Generator().manual_seed(11)
    cases = []
    for name, pos, d in (
        ("positions 0..5 in order, d_model=8", torch.arange(6), 8),
        ("positions 0..63 shuffled, d_model=16", torch.randperm(64, generator=gen), 16),
        ("20 positions up to 1,000, d_model=64", torch.randint(0, 1000, (20,), generator=gen), 64),
        ("position 0 alone, d_model=2", torch.tensor([0]), 2),
    ):
        pe = sinusoidal_reference(int(pos.max()) + 1, d)[pos].float()
        cases.append(Case(name, (pe,), predicate=exact(pos, pe)))
    return run_cases("position_from_encoding(pe)", fn, cases)


# ----------------------------------------------------------------------------------------------- 04: dropout


def check_dropout(fn: Callable[..., Any]) -> CheckResult:
    """Check ``fn(x, p, training) -> tensor``: inverted dropout, as ``F.dropout``.

    In training each entry is zeroed with probability ``p`` and the survivors are multiplied by
    ``1 / (1 - p)`` (so the expected value is unchanged); outside training it returns ``x`` unchanged.
    Randomness cannot be compared entry by entry, so the cases check what must hold.
    """
    x_big = torch.full((200_000,), 2.0, dtype=torch.float64)
    x_rand = _rand(12, 64, 32)

    def stats(p: float, x: torch.Tensor) -> Callable[[Any], tuple[bool, str]]:
        def pred(got: Any) -> tuple[bool, str]:
            ok, why = _tensor_like(got, x)
            if not ok:
                return ok, why
            g = got.detach().double()
            kept = g != 0
            frac = 1 - kept.double().mean().item()
            if torch.equal(g, x):
                return False, "nothing was dropped: in training mode each entry is zeroed with probability p"
            if kept.any():
                ratio = (g[kept] / x[kept]).unique()
                if ratio.numel() > 1 and not torch.allclose(ratio, ratio[:1].expand_as(ratio)):
                    return False, "the kept entries are not all x times one factor"
                r = ratio[0].item()
                if abs(r - 1.0) < 1e-9:
                    return False, "kept entries are not rescaled: multiply them by 1 / (1 - p) (inverted dropout)"
                if abs(r - (1 - p)) < 1e-9:
                    return False, "kept entries are multiplied by (1 - p): it is 1 / (1 - p)"
                if abs(r - 1 / (1 - p)) > 1e-9:
                    return False, f"kept entries are multiplied by {r:.4g}, expected 1 / (1 - p) = {1 / (1 - p):.4g}"
            if abs(frac - p) > 0.01 * (1 if x.numel() > 10_000 else 10):
                if abs(frac - (1 - p)) < 0.01:
                    return False, f"{frac:.2f} of the entries zeroed: p is the probability of dropping, not keeping"
                return False, f"{frac:.3f} of the entries zeroed, expected about p = {p}"
            return True, f"about {p:.0%} zeroed, the rest scaled by 1/(1-p)"

        return pred

    def identity(x: torch.Tensor) -> Callable[[Any], tuple[bool, str]]:
        def pred(got: Any) -> tuple[bool, str]:
            ok, why = _tensor_like(got, x)
            if not ok:
                return ok, why
            if torch.equal(got.detach().double(), x):
                return True, "x unchanged"
            return False, "outside training dropout must do nothing (return x unchanged): it is still active"

        return pred

    cases = [
        Case("training, p=0.1, 200,000 entries", (x_big, 0.1, True), predicate=stats(0.1, x_big)),
        Case("training, p=0.5, 200,000 entries", (x_big, 0.5, True), predicate=stats(0.5, x_big)),
        Case("training, p=0.3, random [64, 32]", (x_rand, 0.3, True), predicate=stats(0.3, x_rand)),
        Case("training, p=0: nothing dropped", (x_rand, 0.0, True), x_rand),
        Case("evaluation (training=False), p=0.5", (x_rand, 0.5, False), predicate=identity(x_rand)),
    ]
    why = "the exercise is to write dropout yourself (a random mask, then the rescaling)"
    return run_cases("dropout(x, p, training)", fn, cases,
                     forbid={"torch.nn.functional.dropout": why, "torch.dropout": why})


def _tensor_like(got: Any, x: torch.Tensor) -> tuple[bool, str]:
    if not isinstance(got, torch.Tensor):
        return False, f"expected a tensor, got {type(got).__name__}"
    if got.shape != x.shape:
        return False, f"shape {tuple(got.shape)}, expected {tuple(x.shape)}"
    return True, ""


# ----------------------------------------------------------------------------------------------- 04: RMSNorm


def check_rms_norm(fn: Callable[..., Any]) -> CheckResult:
    """Check ``fn(x, weight, eps=1e-6)``: RMSNorm over the last dimension (Zhang & Sennrich, 2019; LLaMA).

    ``x / sqrt(mean(x², last dim) + eps) * weight``: no mean subtracted, no bias.
    """

    def ref(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def layer_norm(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), w, None, eps)

    def eps_outside(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w

    def by_norm(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        return x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w

    ones8 = torch.ones(8, dtype=torch.float64)
    x2 = _rand(20, 5, 8)
    x3 = _rand(21, 2, 3, 16, scale=3.0)
    w16 = _rand(22, 16)
    far = _rand(23, 4, 8, scale=0.5, shift=10.0)
    small = _rand(24, 3, 8, scale=0.3)
    cases = [
        Case("2-D input, weight 1", (x2, ones8), ref(x2, ones8)),
        Case("3-D input, learned weight", (x3, w16), ref(x3, w16)),
        Case("rows far from zero (mean 10): nothing is subtracted", (far, ones8), ref(far, ones8)),
        Case("eps=0.5 is used", (small, ones8), ref(small, ones8, 0.5), kwargs={"eps": 0.5}),
    ]
    return run_cases(
        "rms_norm(x, weight, eps)", fn, cases,
        mistakes=[
            ("LayerNorm: RMSNorm does not subtract the mean", layer_norm),
            ("eps added outside the square root: sqrt(mean(x²) + eps)", eps_outside),
            ("dividing by the norm ||x||: the root *mean* square divides the sum by C", by_norm),
        ],
        forbid={"torch.nn.functional.rms_norm": "the exercise is to write it yourself"},
    )


# ----------------------------------------------------------------------------------------------- 04: the block


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Weights far from their init (LayerNorm gains around 1, biases non-zero) so each mistake shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if ".ln" in f".{name}" and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * noise)
            else:
                p.copy_(0.3 * noise if p.dim() == 1 else noise / p.shape[-1] ** 0.5)
    return module


def _copy_into(mine: torch.nn.Module, ref: torch.nn.Module) -> None:
    """Load the reference's weights into the learner's module, saying which names differ (GPT-2's names)."""
    if not isinstance(mine, torch.nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(mine).__name__}")
    src, dst = ref.state_dict(), mine.state_dict()
    missing = [k for k in src if k not in dst]
    extra = [k for k in dst if k not in src]
    if missing or extra:
        parts = ([f"missing {missing[:3]}"] if missing else []) + ([f"unexpected {extra[:3]}"] if extra else [])
        raise ValueError("parameter names differ from GPT-2's (ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, "
                         "mlp.c_proj, ...): " + "; ".join(parts))
    for k, v in src.items():
        if dst[k].shape != v.shape:
            raise ValueError(f"{k} has shape {tuple(dst[k].shape)}, expected {tuple(v.shape)}")
    mine.load_state_dict(src)


def _single(out: Any, what: str) -> Any:
    if isinstance(out, (tuple, list)):
        raise TypeError(f"{what} should return one tensor [B, T, C], not a {type(out).__name__} of {len(out)}")
    return out


def check_block(Block: Callable[[GPTConfig], torch.nn.Module]) -> CheckResult:
    """Check the learner's ``Block(config)``: a pre-LN block with GPT-2's names, ``forward(x [B, T, C]) -> x``.

    For each case the reference's weights (``helpers.pieces.Block``, randomised so that every part matters)
    are copied into a new learner's block, in float64, and the outputs compared. Mistakes named: post-LN,
    a residual missing, one LayerNorm only or the same one twice, MLP without GELU (or exact GELU), dropout
    active in eval mode, dropout missing or misplaced in training mode.
    """
    from ..pieces.gpt import Block as RefBlock

    def config(n_embd: int, n_head: int, dropout: float = 0.0) -> GPTConfig:
        return GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=n_head, n_embd=n_embd, dropout=dropout)

    def reference(cfg: GPTConfig, seed: int) -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return _randomise(RefBlock(cfg).double(), seed).eval()

    def build(cfg: GPTConfig, seed: int) -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            mine = Block(cfg)
        if mine is None:
            raise TypeError("Block(config) gave None")
        mine = mine.double()
        _copy_into(mine, reference(cfg, seed))
        return mine.eval()

    def run(cfg: GPTConfig, x: torch.Tensor, seed: int) -> Any:
        with torch.no_grad():
            return _single(build(cfg, seed)(x), "forward(x)")

    def variant(kind: str) -> Callable[..., torch.Tensor]:
        def f(cfg: GPTConfig, x: torch.Tensor, seed: int) -> torch.Tensor:
            r = reference(cfg, seed)
            a, m, ln1, ln2 = r.attn, r.mlp, r.ln_1, r.ln_2

            def mlp(h: torch.Tensor, act=lambda z: F.gelu(z, approximate="tanh")) -> torch.Tensor:
                return m.c_proj(act(m.c_fc(h)))

            with torch.no_grad():
                if kind == "post":
                    x = ln1(x + a(x))
                    return ln2(x + mlp(x))
                if kind == "no-residual":
                    return mlp(ln2(a(ln1(x))))
                if kind == "no-residual-attn":
                    x = a(ln1(x))
                    return x + mlp(ln2(x))
                if kind == "no-residual-mlp":
                    return mlp(ln2(x + a(ln1(x))))
                if kind == "same-ln":
                    x = x + a(ln1(x))
                    return x + mlp(ln1(x))
                if kind == "no-ln2":
                    x = x + a(ln1(x))
                    return x + mlp(x)
                if kind == "no-ln1":
                    x = x + a(x)
                    return x + mlp(ln2(x))
                if kind == "no-gelu":
                    x = x + a(ln1(x))
                    return x + mlp(ln2(x), act=lambda z: z)
                if kind == "exact-gelu":
                    x = x + a(ln1(x))
                    return x + mlp(ln2(x), act=F.gelu)
            raise ValueError(kind)

        return f

    mistakes = [
        ("post-LN: the residual is added before the LayerNorm, x = ln(x + attn(x)); pre-LN is x + attn(ln_1(x))",
         variant("post")),
        ("the residual connections are missing: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x))",
         variant("no-residual")),
        ("the attention's residual is missing: x = x + attn(ln_1(x))", variant("no-residual-attn")),
        ("the MLP's residual is missing: x = x + mlp(ln_2(x))", variant("no-residual-mlp")),
        ("the same LayerNorm twice: the MLP reads ln_2(x), a LayerNorm of its own", variant("same-ln")),
        ("only one LayerNorm: the MLP's input is not normalised (ln_2 is missing)", variant("no-ln2")),
        ("only one LayerNorm: the attention's input is not normalised (ln_1 is missing)", variant("no-ln1")),
        ("an MLP without GELU: c_proj(gelu(c_fc(x)))", variant("no-gelu")),
        ("the exact GELU: GPT-2 uses F.gelu(..., approximate='tanh')", variant("exact-gelu")),
    ]

    def x_of(seed: int, B: int, T: int, C: int) -> torch.Tensor:
        return _rand(seed, B, T, C)

    cases = []
    for name, cfg, B, T, seed in (
        ("C=16, 2 heads, x [2, 5, 16]", config(16, 2), 2, 5, 1),
        ("C=32, 4 heads, a full context x [3, 8, 32]", config(32, 4), 3, 8, 2),
        ("one token, x [1, 1, 16]", config(16, 4), 1, 1, 3),
    ):
        x = x_of(seed, B, T, cfg.n_embd)
        cases.append(Case(name, (cfg, x, seed), _run_ref(reference, cfg, x, seed)))

    # dropout: off in eval mode, on (after mlp.c_proj) in training mode
    cfg_d = config(16, 2, dropout=0.5)
    x_d = x_of(4, 2, 6, 16)

    def eval_twice(cfg: GPTConfig, x: torch.Tensor, seed: int) -> Any:
        mine = build(cfg, seed)
        with torch.no_grad():
            return _single(mine(x), "forward(x)"), _single(mine(x), "forward(x)")

    expected_d = _run_ref(reference, cfg_d, x_d, 4)

    def deterministic(got: Any) -> tuple[bool, str]:
        a, b = got
        if a is None:
            return close(None, 0)
        if not torch.equal(a, b):
            return False, ("dropout left active in eval mode: two calls differ; use nn.Dropout modules (or "
                           "F.dropout(..., training=self.training)) so that .eval() turns them off")
        return close(a, expected_d, 1e-6, 1e-6)

    cases.append(Case("dropout=0.5 in eval mode: deterministic, no dropout", (cfg_d, x_d, 4), predicate=deterministic))

    def train_mlp_dropout(cfg: GPTConfig, x: torch.Tensor, seed: int) -> Any:
        mine = build(cfg, seed).train()
        mine.attn.eval()  # the attention's own dropouts off: only the block's dropout is left
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(0)
            return _single(mine(x), "forward(x)")

    ref_d = reference(cfg_d, 4).train()
    ref_d.attn.eval()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        expected_train = ref_d(x_d)
    no_dropout = expected_d

    def dropout_placed(got: Any) -> tuple[bool, str]:
        ok, why = close(got, expected_train, 1e-6, 1e-6)
        if ok:
            return True, "dropout after mlp.c_proj, as GPT-2"
        if close(got, no_dropout, 1e-6, 1e-6)[0]:
            return False, ("no dropout in training mode: the MLP's output goes through nn.Dropout(config.dropout) "
                           "after mlp.c_proj")
        return False, ("in training mode (the attention's own dropouts off, the same seed) yours differs from "
                       "GPT-2's: one dropout, after mlp.c_proj, applied to the MLP's output before the residual add")

    cases.append(Case("training mode, dropout=0.5: dropout after mlp.c_proj", (cfg_d, x_d, 4),
                      predicate=dropout_placed))

    def dispatch(cfg: GPTConfig, x: torch.Tensor, seed: int, _kind: str = "run") -> Any:
        return {"run": run, "eval_twice": eval_twice, "train": train_mlp_dropout}[_kind](cfg, x, seed)

    cases[-2].kwargs = {"_kind": "eval_twice"}
    cases[-1].kwargs = {"_kind": "train"}

    def only_run(f: Callable[..., Any]) -> Callable[..., Any]:
        return lambda cfg, x, seed, _kind="run": f(cfg, x, seed) if _kind == "run" else None

    named = [(n, only_run(f)) for n, f in mistakes]
    return run_cases("Block(config)", dispatch, cases, mistakes=named)


def _run_ref(reference: Callable[[GPTConfig, int], torch.nn.Module], cfg: GPTConfig, x: torch.Tensor,
            seed: int) -> torch.Tensor:
    with torch.no_grad():
        return reference(cfg, seed)(x)


# ----------------------------------------------------------------------------------------------- 05: the GPT


def check_gpt(GPT: Callable[[GPTConfig], torch.nn.Module]) -> CheckResult:  # noqa: N803 - the class itself
    """Check the learner's ``GPT(config)``: ``forward(idx [B, T], targets=None) -> (logits [B, T, V], loss)``.

    The reference (``helpers.pieces.GPT``, weights randomised so every part matters) is copied into a new
    learner's GPT, in float64, and the logits and loss compared. Mistakes named: ``ln_f`` missing, positions
    missing, the loss against ``idx`` instead of ``targets`` or the targets shifted a second time, the loss
    summed instead of averaged; a separate test says whether ``lm_head`` is tied to ``wte``.
    """
    from ..pieces.gpt import GPT as RefGPT

    def config(dropout: float = 0.0) -> GPTConfig:
        return GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=dropout)

    def reference(cfg: GPTConfig, seed: int) -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return _randomise(RefGPT(cfg).double(), seed).eval()

    def build(cfg: GPTConfig, seed: int, load: bool = True) -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            mine = GPT(cfg)
        if mine is None:
            raise TypeError("GPT(config) gave None")
        if not load:
            return mine
        mine = mine.double()
        _copy_into(mine, reference(cfg, seed))
        return mine.eval()

    def pair(out: Any) -> Any:
        if out is None or isinstance(out, (tuple, list)):
            return out
        raise TypeError(f"forward should return a pair (logits, loss), got a single {type(out).__name__}")

    def dispatch(cfg: GPTConfig, idx: torch.Tensor, targets: Any, seed: int, _kind: str = "run") -> Any:
        if _kind == "model":
            return build(cfg, seed, load=False)
        mine = build(cfg, seed)
        with torch.no_grad():
            if _kind == "eval_twice":
                return pair(mine(idx, targets)), pair(mine(idx, targets))
            return pair(mine(idx, targets) if targets is not None else mine(idx))

    def variant(kind: str) -> Callable[..., Any]:
        def f(cfg: GPTConfig, idx: torch.Tensor, targets: Any, seed: int, _kind: str = "run") -> Any:
            if _kind != "run" or targets is None and kind.startswith("loss") or kind == "loss-shift" and idx.shape[1] < 2:
                return None
            r = reference(cfg, seed)
            tr = r.transformer
            with torch.no_grad():
                pos = torch.arange(idx.shape[1])
                x = tr.wte(idx) if kind == "no-pos" else tr.wte(idx) + tr.wpe(pos)
                for b in tr.h:
                    x = b(x)
                logits = r.lm_head(x if kind == "no-ln_f" else tr.ln_f(x))
                V = logits.shape[-1]
                if targets is None:
                    return logits, None
                if kind == "loss-idx":
                    loss = F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1))
                elif kind == "loss-shift":
                    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1))
                elif kind == "loss-sum":
                    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="sum")
                else:
                    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
            return logits, loss

        return f

    mistakes = [
        ("ln_f is missing: the final LayerNorm goes between the last block and lm_head", variant("no-ln_f")),
        ("the positions are missing: x = wte(idx) + wpe(positions 0..T-1)", variant("no-pos")),
        ("an off-by-one in the targets: the loss compares the logits with idx; targets are already the next "
         "tokens (targets[:, t] follows idx[:, t])", variant("loss-idx")),
        ("an off-by-one in the targets: they are shifted a second time; targets are already shifted, compare "
         "logits[:, t] with targets[:, t]", variant("loss-shift")),
        ("a loss that is not averaged: the mean over the B x T positions, not their sum", variant("loss-sum")),
    ]

    gen = torch.Generator().manual_seed(5)
    cfg = config()
    cases = []
    for name, B, T, seed in (("idx [2, 6] with targets", 2, 6, 1), ("a full context, idx [1, 8], with targets", 1, 8, 2),
                             ("idx [3, 1] with targets", 3, 1, 3)):
        idx = torch.randint(0, cfg.vocab_size, (B, T), generator=gen)
        targets = torch.randint(0, cfg.vocab_size, (B, T), generator=gen)
        cases.append(Case(name, (cfg, idx, targets, seed), variant("right")(cfg, idx, targets, seed)))

    idx = torch.randint(0, cfg.vocab_size, (2, 5), generator=gen)
    logits_only = variant("right")(cfg, idx, None, 4)[0]

    def no_targets(got: Any) -> tuple[bool, str]:
        if len(got) != 2:
            return False, f"expected (logits, None), got {len(got)} values"
        if got[1] is not None:
            return False, "without targets the loss is None: return (logits, None)"
        return close(got[0], logits_only, 1e-6, 1e-6)

    cases.append(Case("no targets: (logits, None)", (cfg, idx, None, 4), predicate=no_targets))

    cfg_d = config(dropout=0.5)
    targets = torch.randint(0, cfg.vocab_size, (2, 5), generator=gen)
    expected_d = variant("right")(cfg_d, idx, targets, 5)

    def deterministic(got: Any) -> tuple[bool, str]:
        a, b = got
        if a is None:
            return close(None, 0)
        if not (torch.equal(a[0], b[0])):
            return False, ("dropout left active in eval mode: two calls differ; use nn.Dropout (transformer.drop) "
                           "so that .eval() turns it off")
        return close(tuple(a), expected_d, 1e-6, 1e-6)

    cases.append(Case("dropout=0.5 in eval mode: deterministic", (cfg_d, idx, targets, 5),
                      kwargs={"_kind": "eval_twice"}, predicate=deterministic))

    def tied(model: Any) -> tuple[bool, str]:
        try:
            head, wte = model.lm_head.weight, model.transformer.wte.weight
        except AttributeError as e:
            return False, f"cannot find lm_head.weight and transformer.wte.weight ({e})"
        if head is wte:
            return True, "lm_head.weight is transformer.wte.weight"
        return False, ("the weights are not tied: lm_head has a matrix of its own; set "
                       "self.lm_head.weight = self.transformer.wte.weight")

    cases.append(Case("lm_head tied to wte (one matrix)", (cfg, idx, None, 6), kwargs={"_kind": "model"},
                      predicate=tied))
    return run_cases("GPT(config)", dispatch, cases, mistakes=mistakes)


# ----------------------------------------------------------------------------------------------- 05: counting


def check_param_count(fn: Callable[..., Any]) -> CheckResult:
    """Check ``fn(vocab_size, block_size, n_layer, n_embd, bias=True, tied=True) -> int``.

    ``bias=False``: no Linear layer and no LayerNorm has a bias (LayerNorms keep their weight);
    ``tied=False``: ``lm_head`` has a ``[V, C]`` matrix of its own. The reference builds ``helpers.model.GPT``
    on the ``meta`` device and counts.
    """

    def count(V: int, T: int, L: int, C: int, bias: bool = True, tied: bool = True) -> int:
        with torch.device("meta"):
            n = GPT(GPTConfig(V, T, L, 1 if C % 4 else 4, C, bias=bias)).num_parameters()
        return n + (0 if tied else V * C)

    def exact(args: tuple, kw: dict) -> Callable[[Any], tuple[bool, str]]:
        expected = count(*args, **kw)
        V, _, L, C = args

        def pred(got: Any) -> tuple[bool, str]:
            try:
                g = int(got)
            except (TypeError, ValueError):
                return False, f"expected an int, got {type(got).__name__}"
            if g != got:
                return False, f"expected a whole number, got {got!r}"
            if g == expected:
                return True, f"{g:,}"
            off = g - expected
            hint = ""
            if off == V * C:
                hint = " (the head is tied here: its matrix is wte's, count it once)"
            elif off == -V * C:
                hint = " (untied: lm_head has its own V x C matrix)"
            elif off == L * 11 * C + C:
                hint = " (bias=False: no Linear and no LayerNorm has a bias, 11C per block and C for ln_f)"
            elif off == L * 13 * C + 2 * C:
                hint = " (bias=False removes the biases, not the LayerNorms' weights)"
            return False, f"got {g:,}, expected {expected:,} (off by {off:+,}){hint}"

        return pred

    cases = []
    for name, args, kw in (
        ("GPT-2 small", (50257, 1024, 12, 768), {}),
        ("GPT-2 small, untied head", (50257, 1024, 12, 768), {"tied": False}),
        ("GPT-2 small without biases", (50257, 1024, 12, 768), {"bias": False}),
        ("a character model, no biases, untied", (65, 256, 6, 384), {"bias": False, "tied": False}),
        ("one layer, 8 wide", (10, 4, 1, 8), {}),
    ):
        cases.append(Case(name, args, kwargs=kw, predicate=exact(args, kw)))
    return run_cases("param_count(vocab_size, block_size, n_layer, n_embd, bias, tied)", fn, cases)
