"""Induction heads in a toy model: data with repeated spans, the scores that find the circuit, its training run.

The toy model is the course's ``GPT`` with ``mlp="none"`` (attention only), 2 layers, trained on random
tokens in which a span is written again later in the sequence. The span's **length** and the **offset**
between its two occurrences vary from sequence to sequence, so no head can solve the task by position alone
(with a fixed offset a layer-0 head simply learns to look ``offset - 1`` positions back). Lengths and
offsets divisible by ``HOLD_OUT`` are never used in training (``split="train"``); ``split="test"`` draws only
those, so a test on them is a test on repeats the model has never seen.

Positions, for one sequence with a span of ``length`` tokens at ``start`` repeated ``offset`` later:

- the logits at position ``t`` predict token ``t + 1``; the **first occurrence** is predicted from positions
  ``start .. start + length - 2`` (its first token cannot be predicted from the span), the **second** from
  ``start + offset .. start + offset + length - 2``;
- an induction head at query ``q`` in the second occurrence attends to ``q - offset + 1``: the token that
  followed the previous occurrence of the token at ``q``.

``python -m helpers.induction OUT_DIR`` trains the course's toy model and saves it (``GPT.save_pretrained``)
with its training history (``history.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from .model import GPT, GPTConfig

__all__ = [
    "HOLD_OUT",
    "ToyConfig",
    "RepeatBatch",
    "repeated_spans",
    "token_losses",
    "span_losses",
    "span_induction_score",
    "prev_token_scores",
    "in_context_score",
    "ablate_heads",
    "composition_scores",
    "evaluate_induction",
    "train_induction",
]

HOLD_OUT = 5  # span lengths and offsets divisible by this are kept out of training


@dataclass
class ToyConfig:
    """The course's induction-head run. Defaults: the shipped ``checkpoints/induction-2l``."""

    vocab_size: int = 128
    seq_len: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    min_len: int = 4  # shortest repeated span
    max_len: int = 24  # longest repeated span
    spans: int = 3  # repeated spans per training sequence (the test sequences have one)
    batch_size: int = 32
    steps: int = 6000
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.0
    eval_every: int = 100
    eval_size: int = 256  # held-out test sequences for the history
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "n_layer", "n_head", "n_embd", "min_len", "max_len", "spans",
                     "batch_size", "steps", "eval_every", "eval_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ToyConfig.{name} must be a positive int, got {v!r}")
        if not 2 <= self.min_len <= self.max_len or 2 * self.max_len > self.seq_len:
            raise ValueError(f"need 2 <= min_len <= max_len and 2 * max_len <= seq_len, got min_len="
                             f"{self.min_len}, max_len={self.max_len}, seq_len={self.seq_len}")

    def model_config(self) -> GPTConfig:
        return GPTConfig(vocab_size=self.vocab_size, block_size=self.seq_len, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=0.0, mlp="none")


@dataclass
class RepeatBatch:
    """Token ids ``idx [B, T]`` and, per sequence, the repeated span: ``start``, ``offset``, ``length`` ``[B]``."""

    idx: torch.Tensor
    start: torch.Tensor
    offset: torch.Tensor
    length: torch.Tensor

    def positions(self, which: str) -> list[torch.Tensor]:
        """Per sequence, the positions whose logits predict the ``"first"`` or ``"second"`` occurrence."""
        if which not in ("first", "second"):
            raise ValueError(f"which must be 'first' or 'second', got {which!r}")
        out = []
        for s, d, n in zip(self.start.tolist(), self.offset.tolist(), self.length.tolist(), strict=True):
            lo = s if which == "first" else s + d
            out.append(torch.arange(lo, lo + n - 1))
        return out


def _held_out(length: int, offset: int) -> bool:
    return length % HOLD_OUT == 0 and offset % HOLD_OUT == 0


def repeated_spans(
    batch: int,
    seq_len: int,
    vocab_size: int,
    *,
    lengths: tuple[int, int] = (4, 24),
    spans: int = 1,
    split: str = "test",
    generator: torch.Generator | None = None,
) -> RepeatBatch:
    """Random tokens with ``spans`` spans each written twice; the returned positions are the first span's.

    ``split="train"`` never uses a (length, offset) pair with both divisible by ``HOLD_OUT``; ``"test"`` uses
    only those (so the model has never seen one of them); ``"any"`` uses all. A span's length is drawn from
    ``lengths`` (inclusive), its offset from ``length .. seq_len - length`` (the copies never overlap).
    """
    for name, v in (("batch", batch), ("seq_len", seq_len), ("vocab_size", vocab_size), ("spans", spans)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if split not in ("train", "test", "any"):
        raise ValueError(f"split must be 'train', 'test' or 'any', got {split!r}")
    lo, hi = lengths
    if not 2 <= lo <= hi or 2 * hi > seq_len:
        raise ValueError(f"lengths must be (lo, hi) with 2 <= lo <= hi and 2 * hi <= seq_len={seq_len}, "
                         f"got {lengths}")
    if split == "test" and not any(n % HOLD_OUT == 0 for n in range(lo, hi + 1)):
        raise ValueError(f"split='test' needs a length divisible by {HOLD_OUT} in {lengths}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    idx = torch.randint(0, vocab_size, (batch, seq_len), generator=g)
    meta = torch.zeros(3, batch, dtype=torch.long)

    def draw(hi_: int) -> int:
        return int(torch.randint(0, hi_, (1,), generator=g))

    for b in range(batch):
        for k in range(spans):
            while True:
                n = lo + draw(hi - lo + 1)
                d = n + draw(seq_len - 2 * n + 1)
                held = _held_out(n, d)
                if split == "any" or held == (split == "test"):
                    break
            s = draw(seq_len - n - d + 1)
            idx[b, s + d:s + d + n] = idx[b, s:s + n]
            if k == 0:
                meta[:, b] = torch.tensor([s, d, n])
    # later spans may overwrite part of the first one: write the first again so its two copies agree
    for b in range(batch):
        s, d, n = meta[:, b].tolist()
        idx[b, s + d:s + d + n] = idx[b, s:s + n]
    return RepeatBatch(idx, meta[0], meta[1], meta[2])


def token_losses(logits: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Per-position next-token loss (nats): ``[B, T - 1]``, entry ``t`` scores the logits at ``t`` on ``idx[t+1]``."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise ValueError(f"logits must be a [B, T, V] tensor, got {getattr(logits, 'shape', type(logits))}")
    if not isinstance(idx, torch.Tensor) or tuple(idx.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"idx must be [B, T] = {tuple(logits.shape[:2])}, got {getattr(idx, 'shape', idx)}")
    return F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), idx[:, 1:], reduction="none")


def span_losses(losses: torch.Tensor, batch: RepeatBatch) -> tuple[float, float]:
    """Mean loss on the first and on the second occurrence of each sequence's span (``losses`` from
    ``token_losses``)."""
    if losses.dim() != 2 or losses.shape[0] != batch.idx.shape[0] or losses.shape[1] != batch.idx.shape[1] - 1:
        raise ValueError(f"losses must be [B, T - 1] = [{batch.idx.shape[0]}, {batch.idx.shape[1] - 1}], "
                         f"got {tuple(losses.shape)}")
    out = []
    for which in ("first", "second"):
        vals = [losses[b, p] for b, p in enumerate(batch.positions(which))]
        out.append(torch.cat(vals).mean().item())
    return out[0], out[1]


def span_induction_score(weights: torch.Tensor, batch: RepeatBatch) -> torch.Tensor:
    """Per sequence and head, the mean weight that the queries of the second occurrence put on the token after
    the previous occurrence: ``weights [B, H, T, T]`` (one layer) -> ``[B, H]``."""
    B, T = batch.idx.shape
    if not isinstance(weights, torch.Tensor) or weights.dim() != 4 or weights.shape[0] != B \
            or tuple(weights.shape[2:]) != (T, T):
        raise ValueError(f"weights must be one layer's [B, H, T, T] with B={B}, T={T}, "
                         f"got {tuple(getattr(weights, 'shape', ()))}")
    rows = []
    for b, (q, d) in enumerate(zip(batch.positions("second"), batch.offset.tolist(), strict=True)):
        rows.append(weights[b, :, q, q - d + 1].mean(-1))
    return torch.stack(rows)


def prev_token_scores(weights: torch.Tensor) -> torch.Tensor:
    """Mean weight on the previous token over queries ``1..T-1``: ``[..., T, T] -> [...]``."""
    if not isinstance(weights, torch.Tensor) or weights.dim() < 2 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must be [..., T, T], got {tuple(getattr(weights, 'shape', ()))}")
    return weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)


def in_context_score(losses: torch.Tensor, early: tuple[int, int], late: tuple[int, int]) -> float:
    """Olsson et al.'s in-context-learning score: mean loss at positions ``late`` minus at ``early``
    (``[lo, hi)`` ranges into ``losses [B, T-1]``). Negative: later tokens are easier, the context helps."""
    if not isinstance(losses, torch.Tensor) or losses.dim() != 2:
        raise ValueError(f"losses must be [B, T - 1], got {tuple(getattr(losses, 'shape', ()))}")
    n = losses.shape[1]
    for name, (lo, hi) in (("early", early), ("late", late)):
        if not 0 <= lo < hi <= n:
            raise ValueError(f"{name} must be a range [lo, hi) inside 0..{n}, got {(lo, hi)}")
    return (losses[:, late[0]:late[1]].mean() - losses[:, early[0]:early[1]].mean()).item()


@contextlib.contextmanager
def ablate_heads(model: GPT, layer: int, heads: int | Sequence[int], mean: bool = False) -> Iterator[None]:
    """Inside the ``with``: heads ``heads`` of block ``layer`` are zeroed (``mean=True``: replaced by their mean
    over positions), by a pre-hook on ``attn.c_proj``; the model is unchanged afterwards."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    L, H = model.config.n_layer, model.config.n_head
    if not isinstance(layer, int) or not 0 <= layer < L:
        raise ValueError(f"layer must be an int in [0, {L - 1}], got {layer!r}")
    heads = [heads] if isinstance(heads, int) else list(heads)
    if not heads or any(not isinstance(h, int) or not 0 <= h < H for h in heads):
        raise ValueError(f"heads must be ints in [0, {H - 1}], got {heads!r}")
    D = model.config.n_embd // H

    def hook(module, inputs):
        (y,) = inputs
        y = y.clone()
        for h in heads:
            part = y[..., h * D:(h + 1) * D]
            y[..., h * D:(h + 1) * D] = part.mean(1, keepdim=True).expand_as(part) if mean else 0.0
        return (y,)

    handle = model.transformer.h[layer].attn.c_proj.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def composition_scores(model: GPT, batch: RepeatBatch, heads: int | Sequence[int], layer: int = 1) -> dict:
    """Which path of block ``layer``'s attention needs layer-0 ``heads``? Their output is removed from the input
    of only the **queries** (``"q"``), only the **keys** (``"k"``), or both (``"qk"``), the rest of the block
    reading the intact stream; returns ``{path: [H]}``, the induction score of every head of ``layer`` (with
    ``"none"``: nothing removed). K-composition shows as a score that collapses under ``"k"`` and not ``"q"``."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    if not isinstance(layer, int) or not 1 <= layer < model.config.n_layer:
        raise ValueError(f"layer must be an int in [1, {model.config.n_layer - 1}], got {layer!r}")
    was_training = model.training
    model.eval()
    idx = batch.idx
    T = idx.shape[1]
    x = model.transformer.wte(idx) + model.transformer.wpe(torch.arange(T, device=idx.device))

    def stream() -> torch.Tensor:
        h = x
        for block in model.transformer.h[:layer]:
            h = block(h)[0]
        return h

    clean = stream()
    with ablate_heads(model, 0, heads):
        ablated = stream()
    model.train(was_training)
    block = model.transformer.h[layer]
    C, H = model.config.n_embd, model.config.n_head
    D = C // H

    def qk(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, _ = block.attn.c_attn(block.ln_1(h)).split(C, dim=2)
        return (q.view(*q.shape[:2], H, D).transpose(1, 2), k.view(*k.shape[:2], H, D).transpose(1, 2))

    (q_clean, k_clean), (q_abl, k_abl) = qk(clean), qk(ablated)
    mask = torch.ones(T, T, dtype=torch.bool, device=idx.device).triu(1)
    out = {}
    for path, (q, k) in {"none": (q_clean, k_clean), "q": (q_abl, k_clean), "k": (q_clean, k_abl),
                         "qk": (q_abl, k_abl)}.items():
        w = ((q @ k.transpose(-2, -1)) / math.sqrt(D)).masked_fill(mask, float("-inf")).softmax(-1)
        out[path] = span_induction_score(w, batch).mean(0)
    return out


@torch.no_grad()
def evaluate_induction(model: GPT, batch: RepeatBatch) -> dict:
    """On a ``RepeatBatch``: loss on the first and second occurrence, every head's induction score ``[L, H]``
    (layer 0's stays near a uniform head's: it cannot know what comes next) and previous-token score ``[L, H]``."""
    was_training = model.training
    model.eval()
    out = model(batch.idx, return_attention=True)
    model.train(was_training)
    first, second = span_losses(token_losses(out.logits, batch.idx), batch)
    induction = torch.stack([span_induction_score(w, batch).mean(0) for w in out.attentions])
    prev = torch.stack([prev_token_scores(w).mean(0) for w in out.attentions])
    return {"first": first, "second": second, "induction": induction, "prev": prev}


def train_induction(cfg: ToyConfig | None = None, progress: bool = True) -> tuple[GPT, list[dict]]:
    """Train the toy model; every ``eval_every`` steps record the held-out losses and the best scores."""
    cfg = cfg or ToyConfig()
    if not isinstance(cfg, ToyConfig):
        raise TypeError(f"cfg must be a ToyConfig, got {type(cfg).__name__}")
    torch.manual_seed(cfg.seed)
    model = GPT(cfg.model_config())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    data_gen = torch.Generator().manual_seed(cfg.seed + 1)
    test = repeated_spans(cfg.eval_size, cfg.seq_len, cfg.vocab_size, lengths=(cfg.min_len, cfg.max_len),
                          split="test", generator=torch.Generator().manual_seed(10_000 + cfg.seed))
    history: list[dict] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc="training the toy model", dynamic_ncols=True)
    t0 = time.perf_counter()
    for step in range(cfg.steps + 1):
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ev = evaluate_induction(model, test)
            history.append({"step": step, "first": ev["first"], "second": ev["second"],
                            "induction": ev["induction"][1:].max().item(), "prev": ev["prev"][:1].max().item(),
                            "seconds": time.perf_counter() - t0})
            if bar is not None:
                bar.set_postfix(first=f"{ev['first']:.2f}", second=f"{ev['second']:.2f}")
        if step == cfg.steps:
            break
        xb = repeated_spans(cfg.batch_size, cfg.seq_len, cfg.vocab_size, lengths=(cfg.min_len, cfg.max_len),
                            spans=cfg.spans, split="train", generator=data_gen).idx
        for group in opt.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        loss = model(xb[:, :-1], targets=xb[:, 1:]).loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"the loss is {loss.item()} at step {step}: lower ToyConfig.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return model.eval(), history


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train the course's 2-layer attention-only induction-head model.")
    p.add_argument("out", type=Path, help="folder to write (config.json, model.safetensors, history.json)")
    for f, default in asdict(ToyConfig()).items():
        p.add_argument(f"--{f.replace('_', '-')}", type=type(default), default=default)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = ToyConfig(**{f: getattr(a, f) for f in asdict(ToyConfig())})
    model, history = train_induction(cfg)
    model.save_pretrained(a.out)
    info = {"toy_config": asdict(cfg), "history": history, "torch_version": torch.__version__,
            "threads": a.threads}
    (a.out / "history.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    last = history[-1]
    print(f"saved {a.out}: first occurrence {last['first']:.3f}, second {last['second']:.3f} nats/token, "
          f"best induction score {last['induction']:.3f}, {last['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
