"""Training a GPT: AdamW, warm-up then cosine decay, gradient clipping, evaluation, samples, checkpoints.

The loop is written out in one function (``train``) with nothing hidden behind a framework. A checkpoint
folder is a Hugging Face GPT-2 folder (``config.json``, ``model.safetensors``, tokenizer files) plus the
training state (``training_state.safetensors`` for the optimizer and RNG tensors, ``training_state.json`` for
the step, the data position and the loss history), so stopping and resuming on the CPU gives bit-for-bit the
weights of one uninterrupted run.

Command line::

    python -m helpers.train --out runs/shakespeare --max-iters 2000
    python -m helpers.train --out runs/shakespeare --resume --max-iters 4000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from .data import get_batch, shakespeare
from .generate import generate  # imported up front: a long run must not pick up a half-edited module later
from .model import GPT, GPTConfig
from .tokenizer import CharTokenizer, load_tokenizer

__all__ = [
    "TrainConfig",
    "TrainState",
    "train",
    "lr_at",
    "configure_optimizer",
    "estimate_loss",
    "save_checkpoint",
    "load_checkpoint",
    "bits_per_char",
    "evaluate_text",
    "default_device",
    "main",
]

LN2 = math.log(2.0)


@dataclass
class TrainConfig:
    """Everything a run needs; the defaults are the learner's CPU run (a few minutes on a laptop)."""

    # model
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    # GPT-2 -> Llama (helpers.model.GPTConfig): the defaults are GPT-2's
    norm: str = "layernorm"
    pos: str = "learned"
    mlp: str = "gelu"
    n_kv_head: int | None = None
    mlp_hidden: int | None = None
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    # data
    tokenizer: str = "char"  # "char" or "bpe"
    bpe_vocab_size: int = 512
    batch_size: int = 12
    # optimisation
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int | None = None  # None: decay over max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    grad_accum: int = 1  # micro-batches of batch_size per step: the step sees grad_accum x batch_size windows
    fsdp: bool = False  # under torchrun: shard parameters, gradients and optimizer state (FSDP2) instead of DDP
    bf16: bool = False  # bfloat16 autocast on the CPU too (GPUs always use it); weights and optimizer stay float32
    # evaluation, samples, checkpoints
    eval_interval: int = 250
    eval_iters: int = 20
    sample_interval: int = 0  # 0: sample whenever we evaluate
    sample_chars: int = 200
    checkpoint_interval: int = 0  # 0: checkpoint whenever we evaluate
    seed: int = 1337
    device: str = "auto"

    def __post_init__(self) -> None:
        positive = ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "max_iters", "eval_iters",
                    "grad_accum")
        for name in positive:
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {val!r}")
        for name in ("warmup_iters", "eval_interval", "sample_interval", "checkpoint_interval", "sample_chars"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 0:
                raise ValueError(f"TrainConfig.{name} must be a non-negative int, got {val!r}")
        if self.tokenizer not in ("char", "bpe"):
            raise ValueError(f"TrainConfig.tokenizer must be 'char' or 'bpe', got {self.tokenizer!r}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            vocab_size=vocab_size,
            block_size=self.block_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            dropout=self.dropout,
            bias=self.bias,
            norm=self.norm,
            pos=self.pos,
            mlp=self.mlp,
            n_kv_head=self.n_kv_head,
            mlp_hidden=self.mlp_hidden,
            rope_theta=self.rope_theta,
            tie_embeddings=self.tie_embeddings,
        )


@dataclass
class TrainState:
    """What a run has done so far: the step, the loss history and the best validation loss."""

    step: int = 0
    history: list[dict] = field(default_factory=list)  # {"step", "train_loss", "val_loss", "lr", ...}
    best_val_loss: float | None = None
    elapsed_s: float = 0.0
    samples: list[dict] = field(default_factory=list)  # {"step", "text"}: what the model wrote as it learned
    running_loss: float | None = None  # the smoothed training loss the bar shows (saved, so resumes match)


def default_device(requested: str = "auto") -> torch.device:
    """CPU by default; CUDA when present. MPS is used only when asked for by name."""
    if requested != "auto":
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bits_per_char(loss_nats: float, chars_per_token: float = 1.0) -> float:
    """Convert a next-token loss in nats to bits per character (``loss / ln 2 / chars_per_token``)."""
    if chars_per_token <= 0:
        raise ValueError(f"chars_per_token must be positive, got {chars_per_token}")
    return float(loss_nats) / LN2 / chars_per_token


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``cfg.lr`` over ``warmup_iters``, then cosine decay to ``min_lr`` at ``lr_decay_iters``."""
    decay_iters = cfg.lr_decay_iters or cfg.max_iters
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    if step >= decay_iters:
        return cfg.min_lr
    ratio = (step - cfg.warmup_iters) / max(1, decay_iters - cfg.warmup_iters)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr)


def configure_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (Linear and embedding weights) only, not on biases or LayerNorms."""
    decay, no_decay = [], []
    for p in model.parameters():  # parameters() yields the tied embedding once
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), foreach=True)


@torch.no_grad()
def estimate_loss(
    model: GPT, data: torch.Tensor, cfg: TrainConfig, device: torch.device, seed: int = 0, iters: int | None = None
) -> float:
    """Mean loss over ``iters`` random batches of ``data``, drawn from a fixed seed so evaluations compare."""
    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    losses = []
    for _ in range(iters or cfg.eval_iters):
        x, y = get_batch(data, cfg.batch_size, cfg.block_size, generator=g)
        with _autocast(device, cfg.bf16):
            losses.append(model(x.to(device), y.to(device)).loss.item())
    model.train(was_training)
    return float(np.mean(losses))


@torch.no_grad()
def evaluate_text(
    model: GPT, tokenizer, text: str, batch_size: int = 8, max_chars: int | None = None
) -> dict[str, float]:
    """Loss of ``model`` on ``text``, cut into consecutive windows of ``block_size + 1`` tokens (no randomness).

    Every token after the first of its window is predicted once, from the tokens before it in the window.
    Returns ``{"loss": nats per token, "bpc": bits per character, "tokens": predicted tokens,
    "chars_per_token": ...}``; ``max_chars`` evaluates only the start of ``text`` (quicker).
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty str, got {type(text).__name__} of length {len(text or '')}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if max_chars is not None:
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 2:
            raise ValueError(f"max_chars must be None or an int >= 2, got {max_chars!r}")
        text = text[:max_chars]
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    if len(ids) < 2:
        raise ValueError("text is too short: it must hold at least two tokens")
    T = model.config.block_size
    starts = list(range(0, len(ids) - 1, T))  # windows [s, s + T] overlap by one token: every target once
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(starts), batch_size):
        chunk = [ids[s : s + T + 1] for s in starts[i : i + batch_size]]
        for c in sorted({len(w) for w in chunk}):  # the last window may be shorter: run it on its own
            group = torch.stack([w for w in chunk if len(w) == c]).to(device)
            logits = model(group[:, :-1]).logits.float()
            total += F.cross_entropy(logits.flatten(0, 1), group[:, 1:].flatten(), reduction="sum").item()
            count += group[:, 1:].numel()
    model.train(was_training)
    loss = total / count
    chars_per_token = len(text) / len(ids)
    return {"loss": loss, "bpc": bits_per_char(loss, chars_per_token), "tokens": count,
            "chars_per_token": chars_per_token}


def _autocast(device: torch.device, bf16_cpu: bool = False):
    """bfloat16 autocast on GPUs always; on the CPU only when asked (``TrainConfig.bf16``: measured, not assumed)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_cpu)


@torch.no_grad()
def _sample(model: GPT, tok, n: int, device: torch.device, seed: int, prompt: str = "\n") -> str:
    try:
        idx = torch.tensor([tok.encode(prompt)], device=device)
    except ValueError:
        idx = torch.zeros(1, 1, dtype=torch.long, device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    out = generate(model, idx, n, temperature=0.8, top_k=None, generator=g)
    model.train(was_training)
    return tok.decode(out[0, idx.shape[1] :].tolist())


# ---------------------------------------------------------------------- checkpoints
_MODEL_FILES = ("config.json", "model.safetensors")
_STATE_FILES = ("training_state.json", "training_state.safetensors")


def _rng_tensors(batch_gen: torch.Generator) -> dict[str, torch.Tensor]:
    np_state = np.random.get_state()
    py_state = json.dumps(random.getstate()).encode()
    out = {
        "rng/torch": torch.get_rng_state(),
        "rng/batch": batch_gen.get_state(),
        "rng/numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "rng/python": torch.frombuffer(bytearray(py_state), dtype=torch.uint8),
    }
    if torch.cuda.is_available():
        out["rng/cuda"] = torch.cuda.get_rng_state()
    return out


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        meta["state"][str(pid)] = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"opt/{pid}/{k}"] = v.detach().cpu().contiguous()
            else:
                meta["state"][str(pid)][k] = v
    return tensors, meta


def save_checkpoint(
    out_dir: str | os.PathLike,
    model: GPT,
    tokenizer,
    optimizer: torch.optim.Optimizer | None = None,
    state: TrainState | None = None,
    cfg: TrainConfig | None = None,
    batch_gen: torch.Generator | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a Hugging Face GPT-2 folder (+ training state when given) to ``out_dir``, atomically.

    Everything is written to ``out_dir.tmp`` first, then swapped in by renames, so a run killed at any
    instant leaves either the old checkpoint or the new one, never a mix (``load_checkpoint`` also recovers
    the rare instant between the two renames, when only ``out_dir.old`` exists).
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    if not hasattr(tokenizer, "save_pretrained") or not hasattr(tokenizer, "vocab_size"):
        raise TypeError(f"tokenizer must be a course tokenizer with save_pretrained, got {type(tokenizer).__name__}")
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is {model.config.vocab_size}"
        )
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise ValueError(f"refusing to save: parameter {name} holds NaN or inf")
    out = Path(out_dir)
    tmp, old = out.with_name(out.name + ".tmp"), out.with_name(out.name + ".old")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if model.has_hf_class():  # GPT-2 or Llama: a folder transformers loads as it is
        with torch.random.fork_rng(devices=[]):  # building the HF model draws random init: keep training's RNG
            hf = model.to_hf().cpu()
        hf.generation_config.pad_token_id = None
        hf.save_pretrained(str(tmp), safe_serialization=True)
    else:  # a configuration between the two (GPT-2 with RMSNorm, say): the course's own format
        model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if optimizer is not None and state is not None and cfg is not None and batch_gen is not None:
        tensors, opt_meta = _optimizer_tensors(optimizer)
        tensors.update(_rng_tensors(batch_gen))
        save_file(tensors, str(tmp / "training_state.safetensors"))
        meta = {
            "step": state.step,
            "history": state.history,
            "best_val_loss": state.best_val_loss,
            "elapsed_s": state.elapsed_s,
            "samples": state.samples,
            "running_loss": state.running_loss,
            "train_config": asdict(cfg),
            "optimizer": opt_meta,
            "numpy_rng": {k: v for k, v in zip(("pos", "has_gauss", "cached_gaussian"), np.random.get_state()[2:], strict=True)},
            "torch_version": torch.__version__,
            **(extra or {}),
        }
        (tmp / "training_state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    for f in tmp.iterdir():  # make sure the bytes are on disk before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old)
    return out


def _recover(path: Path) -> Path:
    old = path.with_name(path.name + ".old")
    if not (path / "model.safetensors").exists() and (old / "model.safetensors").exists():
        if path.exists():
            shutil.rmtree(path)
        os.replace(old, path)  # killed between the two renames of save_checkpoint
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[GPT, object, dict | None]:
    """Load ``(model, tokenizer, training_state)`` from a checkpoint folder (state is None if absent).

    Weights are read with safetensors through ``transformers`` (no pickle); the training state's tensors
    come back under ``state["tensors"]``.
    """
    path = _recover(Path(path))
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"no checkpoint in {path} (model.safetensors is missing)")
    model = GPT.from_pretrained(str(path)).to(device)
    tok = load_tokenizer(path)
    state = None
    if all((path / f).exists() for f in _STATE_FILES):
        state = json.loads((path / "training_state.json").read_text(encoding="utf-8"))
        state["tensors"] = load_file(str(path / "training_state.safetensors"))
    return model, tok, state


def _restore(opt: torch.optim.Optimizer, batch_gen: torch.Generator, st: dict) -> None:
    tensors, meta = st["tensors"], st["optimizer"]
    state = {}
    for pid, scalars in meta["state"].items():
        entry = dict(scalars)
        for k, v in tensors.items():
            if k.startswith(f"opt/{pid}/"):
                entry[k.split("/", 2)[2]] = v
        state[int(pid)] = entry
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng/torch"])
    batch_gen.set_state(tensors["rng/batch"])
    if "rng/cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng/cuda"])
    npr = st["numpy_rng"]
    np.random.set_state(
        ("MT19937", tensors["rng/numpy_keys"].numpy().astype(np.uint32), npr["pos"], npr["has_gauss"], npr["cached_gaussian"])
    )
    py = json.loads(bytes(tensors["rng/python"].tolist()).decode())
    random.setstate((py[0], tuple(py[1]), py[2]))


# ---------------------------------------------------------------------- data
def build_tokenizer(cfg: TrainConfig, text: str):
    """The tokenizer for a run: characters of the whole corpus, or BPE trained on a slice of the training text."""
    if cfg.tokenizer == "char":
        return CharTokenizer.from_text(shakespeare("all"))
    from .bpe import BPETokenizer

    return BPETokenizer.train(text[:200_000], vocab_size=cfg.bpe_vocab_size)


def encode_corpus(tok, text: str) -> torch.Tensor:
    ids = tok.encode(text)
    return torch.tensor(ids, dtype=torch.int16 if tok.vocab_size < 32768 else torch.int32)


# ---------------------------------------------------------------------- several processes
def world() -> tuple[int, int]:
    """``(world_size, rank)`` of this process: ``(1, 0)`` unless ``torch.distributed`` is initialised (torchrun)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def init_distributed() -> tuple[int, int]:
    """Join the process group torchrun describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_*``): gloo on
    CPUs, nccl on GPUs (each process on GPU ``LOCAL_RANK``). Nothing to do, and ``(1, 0)``, without torchrun."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return world()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return world()


# ---------------------------------------------------------------------- the loop
def train(
    cfg: TrainConfig,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    train_text: str | None = None,
    val_text: str | None = None,
    progress: bool = True,
    log=print,
) -> tuple[GPT, object, TrainState]:
    """Train a GPT on Shakespeare (or on ``train_text``/``val_text``); return ``(model, tokenizer, state)``.

    With ``out_dir`` a checkpoint is written at every evaluation and at the end; with ``resume`` the run
    continues from the checkpoint in ``out_dir`` (its model and training state) up to ``cfg.max_iters``.
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, the folder to resume from")
    device = default_device(cfg.device)
    if device.type == "cuda" and world()[0] > 1:
        device = torch.device("cuda", torch.cuda.current_device())  # this process's GPU (LOCAL_RANK)
    train_text = shakespeare("train") if train_text is None else train_text
    val_text = shakespeare("val") if val_text is None else val_text

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    batch_gen = torch.Generator().manual_seed(cfg.seed)

    saved = None
    if resume:
        ckpt = _recover(Path(out_dir))
        if not (ckpt / "training_state.json").exists():
            raise FileNotFoundError(f"cannot resume: {ckpt} holds no training state")
        model, tok, saved = load_checkpoint(ckpt, device)
        old_cfg = saved["train_config"]
        arch = ("n_layer", "n_head", "n_embd", "block_size", "bias", "tokenizer", "norm", "pos", "mlp", "n_kv_head",
                "mlp_hidden", "rope_theta", "tie_embeddings")
        known = TrainConfig.__dataclass_fields__  # runs saved before a field existed had its default
        diff = {k: (old_cfg.get(k, known[k].default), getattr(cfg, k)) for k in arch
                if old_cfg.get(k, known[k].default) != getattr(cfg, k)}
        if diff:
            raise ValueError(f"cannot resume with a different architecture or tokenizer: {diff} (saved, asked)")
        model.config.dropout = cfg.dropout
    else:
        tok = build_tokenizer(cfg, train_text)
        model = GPT(cfg.model_config(tok.vocab_size)).to(device)

    train_ids, val_ids = encode_corpus(tok, train_text), encode_corpus(tok, val_text)
    chars_per_token = len(val_text) / max(1, len(val_ids))
    n_proc, rank = world()
    raw = model  # the GPT itself: what is evaluated, sampled and saved
    sharded = n_proc > 1 and cfg.fsdp
    if sharded:  # FSDP2: each process keeps a 1/n shard of every block's parameters, gathered for its forward
        from torch.distributed.fsdp import fully_shard

        if saved is not None:
            raise ValueError("resuming an --fsdp run is not supported: its checkpoints hold the weights only")
        for block in raw.transformer.h:
            fully_shard(block)
        fully_shard(raw)
    elif n_proc > 1:  # data parallel: the same model on every process, gradients averaged after each backward
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if n_proc > 1 and rank != 0:  # one process speaks (and, below, writes)
        log, progress = (lambda s: None), False
        if not sharded:
            out_dir = None
    model.train()
    opt = configure_optimizer(raw, cfg)
    state = TrainState()
    if saved is not None:
        _restore(opt, batch_gen, saved)
        state = TrainState(saved["step"], saved["history"], saved["best_val_loss"], saved["elapsed_s"])
        state.samples = list(saved.get("samples", []))  # absent in checkpoints written before these were saved
        state.running_loss = saved.get("running_loss")
    log(
        f"device={device.type} params={raw.num_parameters():,} vocab={tok.vocab_size} "
        f"train_tokens={len(train_ids):,} val_tokens={len(val_ids):,} step={state.step}/{cfg.max_iters}"
    )
    if sharded:  # what sharding saves: the parameters (and so gradients and AdamW state) one process holds
        local = sum(p.to_local().numel() for p in raw.parameters())
        log(f"fsdp: this process holds {local:,} of {raw.num_parameters():,} parameters "
            f"({local / raw.num_parameters():.0%}), {n_proc} processes")

    def evaluate_and_save(step: int, train_loss: float, sample: bool = False) -> None:
        val_loss = estimate_loss(raw, val_ids, cfg, device, seed=cfg.seed + 1)
        entry = {
            "step": step,
            "train_loss": round(train_loss, 6),
            "val_loss": round(val_loss, 6),
            "val_bpc": round(bits_per_char(val_loss, chars_per_token), 6),
            "lr": lr_at(max(step - 1, 0), cfg),
        }
        state.history.append(entry)
        state.best_val_loss = val_loss if state.best_val_loss is None else min(state.best_val_loss, val_loss)
        msg = f"step {step:>6}: train {train_loss:.4f}  val {val_loss:.4f} nats = {entry['val_bpc']:.3f} bits/char"
        log(msg)
        if sample:  # before the save, so a resumed run keeps every sample (its own generator: no RNG touched)
            text = _sample(raw, tok, cfg.sample_chars, device, seed=cfg.seed)
            state.samples.append({"step": step, "text": text})
            log("--- sample ---\n" + text + "\n---")
        if out_dir is not None and sharded:  # every process hands in its shards; process 0 writes the whole model
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            full = get_model_state_dict(raw, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
            if rank == 0:
                plain = GPT(raw.config)
                plain.load_state_dict(full)
                save_checkpoint(out_dir, plain, tok, extra={"chars_per_token": chars_per_token})  # weights only
        elif out_dir is not None:
            save_checkpoint(out_dir, raw, tok, opt, state, cfg, batch_gen, {"chars_per_token": chars_per_token})
        if n_proc > 1:
            torch.distributed.barrier()  # nobody runs ahead of the checkpoint

    t0 = time.time() - state.elapsed_s
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_iters, initial=state.step, desc="training", dynamic_ncols=True)
    running = state.running_loss
    while state.step < cfg.max_iters:
        lr = lr_at(state.step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        # One global batch per step, drawn alike on every process (same generator, same state): process r
        # takes its share, in micro-batches of batch_size. 2 processes x B windows = 1 process x 2B windows,
        # and grad_accum micro-batches of B = one batch of grad_accum x B.
        micro, B = cfg.grad_accum, cfg.batch_size
        X, Y = get_batch(train_ids, n_proc * micro * B, cfg.block_size, generator=batch_gen)
        X, Y = X[rank * micro * B:(rank + 1) * micro * B].to(device), Y[rank * micro * B:(rank + 1) * micro * B].to(device)
        opt.zero_grad(set_to_none=True)
        lv = 0.0
        for k in range(micro):
            sync = n_proc == 1 or k == micro - 1  # gradients are averaged once, after the last micro-batch
            if sharded:
                raw.set_requires_gradient_sync(sync)
            with (contextlib.nullcontext() if sync or sharded else model.no_sync()), _autocast(device, cfg.bf16):
                loss = model(X[k * B:(k + 1) * B], Y[k * B:(k + 1) * B]).loss
                (loss / micro if micro > 1 else loss).backward()
            lv += loss.item() / micro
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
        opt.step()
        state.step += 1
        if n_proc > 1:  # the loss every process logs: the mean over the whole global batch
            t = torch.tensor([lv], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(t)
            lv = t.item() / n_proc
        if not math.isfinite(lv):
            raise FloatingPointError(f"loss became {lv} at step {state.step}; lower the learning rate")
        running = lv if running is None else 0.9 * running + 0.1 * lv
        state.running_loss = running
        state.elapsed_s = time.time() - t0
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}", lr=f"{lr:.1e}")
        last = state.step == cfg.max_iters
        if (cfg.eval_interval and state.step % cfg.eval_interval == 0) or last:
            every = cfg.sample_interval or cfg.eval_interval
            sample = bool(cfg.sample_chars) and (last or bool(every and state.step % every == 0))
            evaluate_and_save(state.step, running, sample)
    if bar is not None:
        bar.close()
    raw.eval()
    return raw, tok, state


# ---------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.train", description="Train the course's GPT on Shakespeare.")
    p.add_argument("--out", required=True, help="checkpoint folder (Hugging Face GPT-2 format + training state)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    defaults = TrainConfig()
    flags = {
        "max_iters": int, "eval_interval": int, "eval_iters": int, "n_layer": int, "n_head": int, "n_embd": int,
        "block_size": int, "batch_size": int, "lr": float, "min_lr": float, "warmup_iters": int, "seed": int,
        "dropout": float, "weight_decay": float, "grad_clip": float, "sample_chars": int, "bpe_vocab_size": int,
        "lr_decay_iters": int, "n_kv_head": int, "mlp_hidden": int, "rope_theta": float, "grad_accum": int,
    }
    for name, typ in flags.items():
        p.add_argument("--" + name.replace("_", "-"), type=typ, default=getattr(defaults, name))
    p.add_argument("--tokenizer", choices=["char", "bpe"], default=defaults.tokenizer)
    # GPT-2 -> Llama: e.g. --norm rmsnorm --pos rope --mlp swiglu --n-kv-head 2 --no-bias --untied
    p.add_argument("--norm", choices=["layernorm", "rmsnorm"], default=defaults.norm)
    p.add_argument("--pos", choices=["learned", "rope"], default=defaults.pos)
    p.add_argument("--mlp", choices=["gelu", "swiglu", "none"], default=defaults.mlp)
    p.add_argument("--no-bias", dest="bias", action="store_false", help="no biases (Llama has none)")
    p.add_argument("--untied", dest="tie_embeddings", action="store_false", help="an output head of its own")
    p.add_argument("--fsdp", action="store_true", help="under torchrun: shard the model with FSDP2 instead of DDP")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast on the CPU (benchmarks/bf16_cpu.py)")
    p.add_argument("--device", default=defaults.device, help="auto (CUDA if present, else CPU), cpu, cuda, mps")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: PyTorch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n_proc, rank = init_distributed()  # under torchrun: join the group (gloo on CPUs, nccl on GPUs)
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    _, _, state = train(cfg, out_dir=args.out, resume=args.resume, progress=not args.no_progress,
                        log=lambda s: print(s, flush=True))
    last = state.history[-1] if state.history else {}
    if rank == 0:
        print(f"done: step {state.step}, val {last.get('val_loss', float('nan')):.4f} nats "
              f"= {last.get('val_bpc', float('nan')):.3f} bits/char, checkpoint in {args.out}"
              + (f" ({n_proc} processes)" if n_proc > 1 else ""), flush=True)
    if n_proc > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
