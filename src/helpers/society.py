"""Measurements behind notebook 11 (LLMs in society): memorisation, membership inference, machine-text detection
and bias probes, all computed with the course's own model and plain NumPy.

- ``window_losses``: the mean loss of the model on evenly spaced windows of a text (one number per window).
- ``roc_auc`` and ``threshold_attack``: "low loss means it was in the training data", scored without sklearn.
- ``continuation_match``: prompt with the start of a line, continue greedily, count the characters that match.
- ``texts_loss``: the mean per-token loss of each of several short texts (machine-text detection).
- ``continuation_logprobs``: ``log P(candidate | prompt)`` for every prompt and candidate string (bias probes).
- ``word_counts``: whole-word counts in a corpus, to compare the model's preferences with its data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .generate import generate
from .model import GPT

__all__ = [
    "window_losses",
    "roc_auc",
    "threshold_attack",
    "greedy_continue",
    "continuation_match",
    "texts_loss",
    "continuation_logprobs",
    "word_counts",
    "copied_fraction",
]


def _check_model(model) -> None:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")


def _check_pos_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _as_1d(name: str, x) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a 1-D array of numbers, got {type(x).__name__}") from e
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must hold finite numbers only (no NaN or inf)")
    return a


@torch.no_grad()
def window_losses(
    model: GPT, tokenizer, text: str, n_windows: int, block_size: int | None = None, batch_size: int = 16
) -> np.ndarray:
    """Mean next-token loss (nats) on ``n_windows`` evenly spaced windows of ``text`` → ``[n_windows]``.

    Each window holds ``block_size + 1`` tokens (default: the model's ``block_size``); its ``block_size``
    targets are predicted from the tokens before them in the window. No randomness: window ``i`` starts at
    ``round(i * (N - block_size - 1) / (n_windows - 1))`` of the ``N`` tokens.
    """
    _check_model(model)
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty str, got {type(text).__name__}")
    _check_pos_int("n_windows", n_windows)
    _check_pos_int("batch_size", batch_size)
    T = model.config.block_size if block_size is None else block_size
    _check_pos_int("block_size", T)
    if T > model.config.block_size:
        raise ValueError(f"block_size must be <= the model's block_size {model.config.block_size}, got {T}")
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    if len(ids) < T + 1:
        raise ValueError(f"text is too short: {len(ids)} tokens, a window needs block_size + 1 = {T + 1}")
    last = len(ids) - T - 1
    starts = np.round(np.linspace(0, last, n_windows)).astype(int) if n_windows > 1 else np.array([0])
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, n_windows, batch_size):
        batch = torch.stack([ids[s : s + T + 1] for s in starts[i : i + batch_size]]).to(device)
        logits = model(batch[:, :-1]).logits.float()  # [B, T, V]
        loss = F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")  # [B, T]
        out.append(loss.mean(1).cpu().double().numpy())
    model.train(was_training)
    return np.concatenate(out)


def roc_auc(member_losses, nonmember_losses) -> float:
    """Area under the ROC curve of the score "lower loss ⇒ member": ``P(member loss < non-member loss)``,
    ties counted as one half. Inputs ``[N]`` and ``[M]``; 1.0 is a perfect attack, 0.5 is guessing.

    Computed from ranks (Mann–Whitney U) in ``O((N + M) log(N + M))``.
    """
    m = _as_1d("member_losses", member_losses)
    n = _as_1d("nonmember_losses", nonmember_losses)
    allv = np.concatenate([m, n])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties: rank of a group = mean of its positions (1-based)
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    # U for non-members being larger = sum of non-member ranks minus its minimum possible
    u = ranks[len(m):].sum() - len(n) * (len(n) + 1) / 2.0
    return float(u / (len(m) * len(n)))


def threshold_attack(member_losses, nonmember_losses) -> dict[str, float]:
    """The best single-threshold membership attack: say "member" when ``loss <= threshold``.

    Tries every observed loss as the threshold and keeps the one with the highest accuracy over both sets
    (``(true members + true non-members) / (N + M)``; with equal set sizes, guessing scores 0.5).
    Returns ``{"accuracy", "auc", "threshold", "tpr", "fpr"}`` (true and false positive rates at it).
    """
    m = _as_1d("member_losses", member_losses)
    n = _as_1d("nonmember_losses", nonmember_losses)
    candidates = np.unique(np.concatenate([m, n]))
    tp = (m[None, :] <= candidates[:, None]).sum(1)  # [C]
    fp = (n[None, :] <= candidates[:, None]).sum(1)
    acc = (tp + (len(n) - fp)) / (len(m) + len(n))
    best = int(np.argmax(acc))
    # the empty rule "nobody is a member" is also a threshold (below every loss)
    none_acc = len(n) / (len(m) + len(n))
    if none_acc > acc[best]:
        return {"accuracy": float(none_acc), "auc": roc_auc(m, n), "threshold": float(candidates[0] - 1.0),
                "tpr": 0.0, "fpr": 0.0}
    return {"accuracy": float(acc[best]), "auc": roc_auc(m, n), "threshold": float(candidates[best]),
            "tpr": float(tp[best] / len(m)), "fpr": float(fp[best] / len(n))}


def _line_starts(text: str, prompt_chars: int, cont_chars: int, n: int) -> list[int]:
    """``n`` evenly spaced positions right after a newline with room for prompt and continuation."""
    starts = [m.end() for m in re.finditer("\n", text) if m.end() + prompt_chars + cont_chars <= len(text)]
    starts = [s for s in starts if text[s : s + 1] not in ("\n", "")]
    if len(starts) < n:
        raise ValueError(f"text has only {len(starts)} usable line starts, n={n} were asked for")
    pick = np.round(np.linspace(0, len(starts) - 1, n)).astype(int)
    return [starts[i] for i in pick]


@torch.no_grad()
def greedy_continue(model: GPT, tokenizer, prompts: Sequence[str], n_chars: int) -> list[str]:
    """Greedy (argmax) continuation of ``n_chars`` tokens for each prompt (all prompts the same token length)."""
    _check_model(model)
    _check_pos_int("n_chars", n_chars)
    ids = [tokenizer.encode(p) for p in prompts]
    if not ids or len({len(i) for i in ids}) != 1:
        raise ValueError("prompts must be a non-empty list of strings of the same token length")
    device = next(model.parameters()).device
    x = torch.tensor(ids, dtype=torch.long, device=device)
    x = generate(model, x, n_chars, top_k=1)  # top_k=1 is argmax: greedy, with the KV cache
    return [tokenizer.decode(row[len(ids[0]) :].tolist()) for row in x.cpu()]


def _match_len(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))  # characters the two strings share from the start


def continuation_match(
    model: GPT, tokenizer, text: str, prompt_chars: int = 40, n: int = 32, cont_chars: int = 40
) -> np.ndarray:
    """Verbatim-regurgitation probe → ``[n]`` ints: for ``n`` evenly spaced line starts of ``text``, prompt with
    ``prompt_chars`` characters, continue greedily for ``cont_chars``, and count how many characters match the
    true continuation before the first difference (0 … ``cont_chars``). Needs a character-level tokenizer.
    """
    _check_model(model)
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty str, got {type(text).__name__}")
    for name, v in (("prompt_chars", prompt_chars), ("n", n), ("cont_chars", cont_chars)):
        _check_pos_int(name, v)
    if prompt_chars + cont_chars > model.config.block_size:
        raise ValueError(f"prompt_chars + cont_chars must fit the model's block_size {model.config.block_size}, "
                         f"got {prompt_chars + cont_chars}")
    starts = _line_starts(text, prompt_chars, cont_chars, n)
    prompts = [text[s : s + prompt_chars] for s in starts]
    truths = [text[s + prompt_chars : s + prompt_chars + cont_chars] for s in starts]
    outs = greedy_continue(model, tokenizer, prompts, cont_chars)
    return np.array([_match_len(o, t) for o, t in zip(outs, truths, strict=True)], dtype=int)


@torch.no_grad()
def texts_loss(model: GPT, tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Mean next-token loss (nats) of each text on its own → ``[len(texts)]``; each must fit ``block_size + 1``."""
    _check_model(model)
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
        raise TypeError(f"texts must be a non-empty list of str, got {type(texts).__name__}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"every text must be a str, got {type(t).__name__}")
        ids = tokenizer.encode(t)
        if not 2 <= len(ids) <= model.config.block_size + 1:
            raise ValueError(f"each text must have 2 to block_size + 1 = {model.config.block_size + 1} tokens, "
                             f"got {len(ids)}")
        x = torch.tensor([ids], dtype=torch.long, device=device)
        logits = model(x[:, :-1]).logits.float()[0]
        out.append(F.cross_entropy(logits, x[0, 1:]).item())
    model.train(was_training)
    return np.array(out)


@torch.no_grad()
def continuation_logprobs(model: GPT, tokenizer, prompts: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
    """``log P(candidate | prompt)`` (nats, summed over the candidate's tokens) → ``[len(prompts), len(candidates)]``."""
    _check_model(model)
    for name, seq in (("prompts", prompts), ("candidates", candidates)):
        if isinstance(seq, str) or not isinstance(seq, Sequence) or not seq:
            raise TypeError(f"{name} must be a non-empty list of str, got {type(seq).__name__}")
        if not all(isinstance(s, str) and s for s in seq):
            raise ValueError(f"{name} must hold non-empty strings only")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros((len(prompts), len(candidates)))
    for i, p in enumerate(prompts):
        pid = tokenizer.encode(p)
        for j, c in enumerate(candidates):
            cid = tokenizer.encode(c)
            ids = (pid + cid)[-(model.config.block_size + 1) :]
            if len(cid) >= len(ids):
                raise ValueError("a candidate must be shorter than the model's block_size")
            x = torch.tensor([ids], dtype=torch.long, device=device)
            logp = torch.log_softmax(model(x[:, :-1]).logits.float()[0], dim=-1)  # [L-1, V]
            tgt = x[0, -len(cid) :]
            rows = torch.arange(len(ids) - 1 - len(cid), len(ids) - 1, device=device)
            out[i, j] = logp[rows, tgt].sum().item()
    model.train(was_training)
    return out


def word_counts(text: str, words: Sequence[str], case_sensitive: bool = False) -> dict[str, int]:
    """Whole-word occurrences of each word in ``text`` (``\\b`` boundaries; case-insensitive by default)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if isinstance(words, str) or not isinstance(words, Sequence) or not words:
        raise TypeError(f"words must be a non-empty list of str, got {type(words).__name__}")
    flags = 0 if case_sensitive else re.IGNORECASE
    out = {}
    for w in words:
        if not isinstance(w, str) or not w.strip():
            raise ValueError(f"every word must be a non-empty str, got {w!r}")
        out[w] = len(re.findall(rf"\b{re.escape(w)}\b", text, flags))
    return out


def copied_fraction(text: str, corpus: str, k: int = 20, stride: int = 1) -> float:
    """Fraction of the ``k``-character spans of ``text`` (taken every ``stride`` characters) that occur verbatim
    somewhere in ``corpus``: a crude "how much of this output is copied from the training data" measure."""
    if not isinstance(text, str) or not isinstance(corpus, str):
        raise TypeError(f"text and corpus must be str, got {type(text).__name__} and {type(corpus).__name__}")
    _check_pos_int("k", k)
    _check_pos_int("stride", stride)
    if len(text) < k:
        raise ValueError(f"text must hold at least k={k} characters, got {len(text)}")
    spans = [text[i : i + k] for i in range(0, len(text) - k + 1, stride)]
    return sum(s in corpus for s in spans) / len(spans)
