"""Every component earns its keep: Karpathy's progression, from a bigram table to the full Transformer block.

``Progression(stage, ...)`` builds one model of the ladder from the course's pieces (``helpers.pieces``):

====================  =========================================================================================
``"bigram"``          a ``[V, V]`` table: the next character's logits from the current one alone
``"head"``            token + position embeddings, one causal attention ``Head`` (head size = ``n_embd``), a
                      linear head to the vocabulary
``"multi-head"``      ``MultiHeadAttention``: ``n_head`` heads of ``n_embd // n_head``, merged by ``c_proj``
``"mlp"``             + the MLP after the attention (``helpers.model.MLP``: 4× wider, GELU)
``"residual-ln"``     + residual connections and pre-LayerNorms (``helpers.pieces.Block``) and a final LayerNorm
``"dropout"``         + dropout (``dropout``) in the block and on the embeddings, as GPT-2
====================  =========================================================================================

Every stage but the bigram stacks ``n_layer`` layers, so the residual connections are tested where they
matter: in depth. ``forward(idx [B, T], targets=None) -> (logits [B, T, V], loss or None)``, as the course's
GPT. ``run_progression`` trains each stage on the same data, with the same batches, steps, optimizer and
training step, and measures its held-out loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .data import get_batch
from .model import MLP, GPTConfig
from .pieces.attention import Head, MultiHeadAttention
from .pieces.gpt import Block
from .pieces.training import heldout_loss, train_step

__all__ = ["STAGES", "STAGE_LABELS", "Progression", "run_progression"]

STAGES: tuple[str, ...] = ("bigram", "head", "multi-head", "mlp", "residual-ln", "dropout")
STAGE_LABELS: dict[str, str] = {
    "bigram": "bigram table",
    "head": "+ one attention head",
    "multi-head": "+ multi-head attention",
    "mlp": "+ MLP",
    "residual-ln": "+ residuals and LayerNorm",
    "dropout": "+ dropout",
}


class _HeadLayer(nn.Module):
    """One causal head whose output replaces the stream (no residual): ``x -> head(x)``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.head = Head(cfg.n_embd, cfg.n_embd, cfg.block_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)[0]


class _PlainLayer(nn.Module):
    """Multi-head attention, optionally followed by the MLP, each replacing the stream (no residual, no norm)."""

    def __init__(self, cfg: GPTConfig, mlp: bool) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(cfg)
        self.mlp = MLP(cfg) if mlp else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(x)
        return self.mlp(x) if self.mlp is not None else x


class Progression(nn.Module):
    """One stage of the ladder (``STAGES``); ``forward(idx, targets=None) -> (logits, loss)``."""

    def __init__(self, stage: str, vocab_size: int, block_size: int = 64, n_embd: int = 64, n_head: int = 4,
                 n_layer: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        for name, val in (("vocab_size", vocab_size), ("block_size", block_size), ("n_embd", n_embd),
                          ("n_head", n_head), ("n_layer", n_layer)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
        self.stage, self.block_size = stage, block_size
        cfg = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                        n_embd=n_embd, dropout=float(dropout) if stage == "dropout" else 0.0)
        if stage == "bigram":
            self.table = nn.Embedding(vocab_size, vocab_size)
            return
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        if stage == "head":
            layers = [_HeadLayer(cfg) for _ in range(n_layer)]
        elif stage in ("multi-head", "mlp"):
            layers = [_PlainLayer(cfg, mlp=stage == "mlp") for _ in range(n_layer)]
        else:
            layers = [Block(cfg) for _ in range(n_layer)]
        self.layers = nn.ModuleList(layers)
        self.ln_f = nn.LayerNorm(n_embd) if stage in ("residual-ln", "dropout") else nn.Identity()
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype.is_floating_point:
            raise ValueError("idx must be a tensor of token ids [B, T]")
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size={self.block_size}")
        if self.stage == "bigram":
            logits = self.table(idx)
        else:
            x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))
            for layer in self.layers:
                x = layer(x)
            logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


def run_progression(
    train_ids: torch.Tensor,
    val_ids: torch.Tensor,
    vocab_size: int,
    steps: int = 500,
    batch_size: int = 32,
    block_size: int = 64,
    n_embd: int = 64,
    n_head: int = 4,
    n_layer: int = 2,
    dropout: float = 0.2,
    lr: float = 3e-3,
    eval_iters: int = 20,
    seed: int = 0,
    stages: Sequence[str] = STAGES,
    step_fn: Callable[..., float] = train_step,
    grad_clip: float = 1.0,
) -> list[dict]:
    """Train each stage on the same batches for ``steps`` steps (AdamW, constant ``lr``, ``step_fn``) and
    measure it. Returns one dict per stage: ``stage``, ``label``, ``params``, ``val_loss`` and ``train_loss``
    (nats, eval mode, the same fixed windows for every stage), ``val_bpc``, ``seconds``.
    """
    for name, val in (("steps", steps), ("eval_iters", eval_iters)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; the ladder is {STAGES}")
    rows = []
    for stage in stages:
        torch.manual_seed(seed)
        model = Progression(stage, vocab_size, block_size, n_embd, n_head, n_layer, dropout)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        batches = torch.Generator().manual_seed(seed + 1)  # the same batches, in the same order, for every stage
        t0 = time.perf_counter()
        for _ in range(steps):
            x, y = get_batch(train_ids, batch_size, block_size, generator=batches)
            step_fn(model, opt, x, y, grad_clip)
        seconds = time.perf_counter() - t0
        val = heldout_loss(model, val_ids, batch_size, block_size, eval_iters, seed=seed + 2)
        tr = heldout_loss(model, train_ids, batch_size, block_size, eval_iters, seed=seed + 2)
        rows.append({"stage": stage, "label": STAGE_LABELS[stage], "params": sum(p.numel() for p in model.parameters()),
                     "val_loss": val, "train_loss": tr, "val_bpc": val / math.log(2), "seconds": seconds})
    return rows
