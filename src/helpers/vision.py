"""Images as tokens: the digits, patches, a Vision Transformer, and a model that names a digit in words.

Lesson 19's canonical code.

* ``load_digits()``: the 1,797 handwritten digits (8 × 8 pixels, 17 grey levels, labels 0–9) of Alpaydin and
  Kaynak (1998), read from the copy that scikit-learn's wheel ships (``sklearn/datasets/data/digits.csv.gz``),
  offline, without importing scikit-learn. ``digit_split()`` is the course's fixed train/test split.
* ``patchify(images, p)``: ``[B, H, W]`` or ``[B, C, H, W]`` → ``[B, N, C·p·p]``, patches in reading order, each
  flattened channel by channel, row by row (the order of ``nn.Conv2d(C, D, p, stride=p)``'s weights, so a
  linear patch embedding equals that convolution).
* ``ViT``: patch embedding, a learned class token, learned positions, then ``helpers.encdec.EncoderLayer``s
  (pre-LN, unmasked: every patch sees every patch), a final LayerNorm and a linear head on the class token
  (Dosovitskiy et al. 2021).
* ``Captioner``: a ``ViT`` encoder (every output position is memory) and a character decoder of
  ``helpers.encdec.DecoderLayer``s (causal self-attention, cross-attention to the image) that writes the
  digit's name in English ("seven") or Chinese ("七"), chosen by its first token.
* ``train_classifier``, ``train_captioner``, ``fit_logistic``, ``fit_mlp``, ``accuracy``: training loops with a
  progress bar, the two baselines, accuracy with a Wilson interval.
* ``save_model`` / ``load_model``: safetensors weights plus a JSON config (never a pickle).
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .attention import MultiHeadAttention
from .encdec import DecoderLayer, EncoderLayer
from .stats import wilson_interval

__all__ = [
    "load_digits", "digits_path", "digit_split", "patchify", "unpatchify", "shift_images",
    "ViTConfig", "ViT", "CaptionVocab", "NAMES", "Captioner",
    "train_classifier", "train_captioner", "fit_logistic", "fit_mlp", "accuracy", "predict",
    "save_model", "load_model", "plot_digits", "plot_on_image", "train_course_models",
    "fold_ids", "cross_validate", "save_cv", "load_cv", "CV_CSV", "CV_MODELS",
]

# The names the captioner writes, per language: NAMES[lang][digit].
NAMES: dict[str, list[str]] = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "zh": ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"],
}


# ---------------------------------------------------------------- data
def digits_path() -> Path:
    """Where scikit-learn's wheel keeps the digits (found without importing scikit-learn, which needs SciPy)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the digits come from scikit-learn's wheel, which is not installed: run "
            "`pip install --no-deps -r requirements-nodeps.txt` (it is only read, never imported)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"scikit-learn is installed but its digits file is missing: expected {path}")
    return path


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: float32 ``[1797, 8, 8]`` in [0, 1] (grey levels 0–16 divided by 16), int64 ``[1797]``."""
    with gzip.open(digits_path(), "rt") as f:
        data = np.loadtxt(f, delimiter=",", dtype=np.float32)
    if data.shape != (1797, 65):
        raise ValueError(f"expected the digits file to hold 1797 rows of 64 pixels and a label, got {data.shape}")
    images = torch.from_numpy(data[:, :64].reshape(-1, 8, 8) / 16.0)
    labels = torch.from_numpy(data[:, 64].astype(np.int64))
    return images, labels


def digit_split(n: int = 1797, test_fraction: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_idx, test_idx)``: a fixed random split of ``range(n)`` (the course's: 1,438 train, 359 test)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, min(n - 1, round(n * test_fraction)))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


# ---------------------------------------------------------------- patches
def _check_images(images: object, what: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() not in (3, 4):
        raise ValueError(f"{what} must be [B, H, W] (grey) or [B, C, H, W], got shape {tuple(images.shape)}")
    if not images.dtype.is_floating_point:
        raise TypeError(f"{what} must be floating-point (pixels as numbers), got {images.dtype}")
    return images


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into non-overlapping ``patch`` × ``patch`` squares: ``[B, (C,) H, W]`` → ``[B, N, C·p·p]``.

    ``N = (H / p) · (W / p)`` in reading order (left to right, then top to bottom); each patch is flattened
    channel by channel, then row by row, as ``nn.Conv2d(C, D, p, stride=p).weight.reshape(D, -1)`` expects.
    """
    images = _check_images(images)
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise ValueError(f"patch must be a positive int, got {patch!r}")
    x = images[:, None] if images.dim() == 3 else images
    b, c, h, w = x.shape
    if h % patch or w % patch:
        raise ValueError(f"the image ({h} x {w}) must divide into {patch} x {patch} patches: "
                         f"{h} % {patch} = {h % patch}, {w} % {patch} = {w % patch}")
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)  # [B, C, rows, p, cols, p]
    x = x.permute(0, 2, 4, 1, 3, 5)  # [B, rows, cols, C, p, p]
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)


def unpatchify(patches: torch.Tensor, patch: int, height: int, width: int, channels: int = 1) -> torch.Tensor:
    """The inverse of ``patchify``: ``[B, N, C·p·p]`` → ``[B, H, W]`` (one channel) or ``[B, C, H, W]``."""
    if not isinstance(patches, torch.Tensor) or patches.dim() != 3:
        raise ValueError(f"patches must be a tensor [B, N, C*p*p], got "
                         f"{tuple(patches.shape) if isinstance(patches, torch.Tensor) else type(patches).__name__}")
    rows, cols = height // patch, width // patch
    if rows * patch != height or cols * patch != width or patches.shape[1:] != (rows * cols,
                                                                               channels * patch * patch):
        raise ValueError(f"patches of shape {tuple(patches.shape)} do not tile a {channels} x {height} x {width} "
                         f"image with {patch} x {patch} patches (expected [B, {rows * cols}, "
                         f"{channels * patch * patch}])")
    x = patches.reshape(-1, rows, cols, channels, patch, patch).permute(0, 3, 1, 4, 2, 5)
    x = x.reshape(-1, channels, height, width)
    return x[:, 0] if channels == 1 else x


def shift_images(images: torch.Tensor, max_shift: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image moved by a random whole number of pixels in ``[-max_shift, max_shift]`` along each axis
    (zeros shifted in): the data augmentation the ViT trains with."""
    images = _check_images(images)
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative int (pixels), got {max_shift!r}")
    if max_shift == 0:
        return images
    x = images[:, None] if images.dim() == 3 else images
    b, _, h, w = x.shape
    m = max_shift
    padded = F.pad(x, (m, m, m, m))
    dy = torch.randint(0, 2 * m + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * m + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None].expand(b, h, w)
    cols = (dx[:, None] + torch.arange(w))[:, None, :].expand(b, h, w)
    batch = torch.arange(b)[:, None, None].expand(b, h, w)
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    return out[:, 0] if images.dim() == 3 else out


@contextlib.contextmanager
def _weights_kept(model: nn.Module, layers):
    """Eval mode, and every layer keeping its attention weights (``<attn>.last_weights``), for the duration."""
    was = model.training
    model.eval()
    for layer in layers:
        layer.keep_weights = True
    try:
        yield
    finally:
        for layer in layers:
            layer.keep_weights = False
        model.train(was)


# ---------------------------------------------------------------- the Vision Transformer
@dataclass
class ViTConfig:
    """A Vision Transformer's shape. ``n_classes=0``: no head (an image encoder, as in ``Captioner``)."""

    image_size: int = 8
    patch_size: int = 2
    channels: int = 1
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    d_ff: int = 128
    dropout: float = 0.1
    n_classes: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "dropout":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
                    raise ValueError(f"dropout must be in [0, 1), got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, int) or v < (0 if f.name == "n_classes" else 1):
                raise ValueError(f"{f.name} must be a {'non-negative' if f.name == 'n_classes' else 'positive'} "
                                 f"int, got {v!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class ViT(nn.Module):
    """Patches → tokens → an unmasked Transformer encoder → the class token → 10 scores.

    ``forward(images [B, 8, 8])`` → logits ``[B, n_classes]``; ``encode(images)`` → ``[B, 1 + N, d_model]``
    (position 0 is the class token, then the patches in reading order), after the final LayerNorm.
    """

    def __init__(self, cfg: ViTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ViTConfig()
        if not isinstance(cfg, ViTConfig):
            raise TypeError(f"cfg must be a ViTConfig, got {type(cfg).__name__}")
        self.patch_embed = nn.Linear(cfg.channels * cfg.patch_size ** 2, cfg.d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + cfg.n_patches, cfg.d_model) * 0.02)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.d_model, cfg.n_head, cfg.d_ff, cfg.dropout, activation="gelu", norm_first=True)
            for _ in range(cfg.n_layer))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_classes) if cfg.n_classes else None
        self.patchify = patchify  # (images, p) -> [B, N, C*p*p]; lesson 19 puts the learner's here

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check(self, images: object) -> torch.Tensor:
        images = _check_images(images)
        c, s = self.cfg.channels, self.cfg.image_size
        want = (s, s) if c == 1 and images.dim() == 3 else (c, s, s)
        if tuple(images.shape[1:]) != want:
            raise ValueError(f"images must be [B, {', '.join(map(str, want))}], got {tuple(images.shape)}")
        return images.to(self.patch_embed.weight.dtype)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(self.patchify(self._check(images), self.cfg.patch_size))  # [B, N, D]
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.drop(x)
        for layer in self.layers:
            x = layer(x)  # no mask: every position sees every position
        return self.norm(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError("this ViT has no head (n_classes=0): call encode(images)")
        return self.head(self.encode(images)[:, 0])

    @torch.no_grad()
    def attention_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Every layer's attention ``[B, n_layer, n_head, 1 + N, 1 + N]`` (eval mode, no dropout)."""
        with _weights_kept(self, self.layers):
            self.encode(images)
            return torch.stack([layer.self_attn.last_weights for layer in self.layers], dim=1)


# ---------------------------------------------------------------- the captioner
class CaptionVocab:
    """Characters of the digit names in both languages, plus four special tokens.

    ``<pad>`` 0, ``<en>`` 1 and ``<zh>`` 2 (the decoder's first input: which language to write), ``<end>`` 3.
    """

    PAD, EN, ZH, END = 0, 1, 2, 3
    SPECIAL = ["<pad>", "<en>", "<zh>", "<end>"]

    def __init__(self) -> None:
        chars = sorted({ch for names in NAMES.values() for name in names for ch in name})
        self.itos = self.SPECIAL + chars
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.max_len = 1 + max(len(n) for names in NAMES.values() for n in names) + 1  # <lang> name <end>

    def __len__(self) -> int:
        return len(self.itos)

    def start(self, lang: str) -> int:
        if lang not in NAMES:
            raise ValueError(f"lang must be one of {sorted(NAMES)}, got {lang!r}")
        return self.EN if lang == "en" else self.ZH

    def encode(self, text: str, lang: str) -> list[int]:
        """``[<lang>, chars..., <end>]``; every character must be in the vocabulary."""
        bad = sorted({ch for ch in text if ch not in self.stoi})
        if bad:
            raise ValueError(f"characters not in the captioner's vocabulary: {bad}")
        return [self.start(lang)] + [self.stoi[ch] for ch in text] + [self.END]

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.END:
                break
            if i >= len(self.SPECIAL):
                out.append(self.itos[i])
        return "".join(out)

    def batch(self, labels: torch.Tensor, langs: list[str]) -> torch.Tensor:
        """``[B, max_len]`` token ids of each label's name in its language, padded with ``<pad>``."""
        if len(langs) != len(labels):
            raise ValueError(f"one language per label: {len(labels)} labels, {len(langs)} languages")
        if not hasattr(self, "_table"):  # every name of every digit, encoded once: [language, digit, max_len]
            self._table = torch.full((len(NAMES), 10, self.max_len), self.PAD, dtype=torch.long)
            for li, lang in enumerate(NAMES):
                for d, name in enumerate(NAMES[lang]):
                    ids = self.encode(name, lang)
                    self._table[li, d, :len(ids)] = torch.tensor(ids)
        which = torch.tensor([list(NAMES).index(lang) if lang in NAMES else self.start(lang) for lang in langs])
        labels = torch.as_tensor(labels, dtype=torch.long)
        if len(labels) and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"labels must be digits 0..9, got {int(labels.min())}..{int(labels.max())}")
        return self._table[which, labels]


class Captioner(nn.Module):
    """An image encoder (a ``ViT`` without a head) and a character decoder that cross-attends to it.

    ``forward(images [B, 8, 8], tokens [B, T])`` → logits ``[B, T, vocab]``: position ``t`` predicts token
    ``t + 1``. ``describe(images, lang)`` writes a name greedily; ``cross_attention_maps`` shows which patches
    each written character looked at.
    """

    def __init__(self, cfg: ViTConfig | None = None, n_dec_layer: int = 2) -> None:
        super().__init__()
        cfg = cfg or ViTConfig()
        if cfg.n_classes:
            cfg = ViTConfig(**{**asdict(cfg), "n_classes": 0})
        if isinstance(n_dec_layer, bool) or not isinstance(n_dec_layer, int) or n_dec_layer < 1:
            raise ValueError(f"n_dec_layer must be a positive int, got {n_dec_layer!r}")
        self.vocab = CaptionVocab()
        self.n_dec_layer = n_dec_layer
        self.encoder = ViT(cfg)
        d = cfg.d_model
        self.tok_embed = nn.Embedding(len(self.vocab), d)
        self.pos_embed = nn.Parameter(torch.randn(1, self.vocab.max_len, d) * 0.02)
        self.layers = nn.ModuleList(
            DecoderLayer(d, cfg.n_head, cfg.d_ff, cfg.dropout, activation="gelu", norm_first=True)
            for _ in range(n_dec_layer))
        for layer in self.layers:  # cross-attention without biases (as LLaMA's attention), no dropout on its weights
            layer.multihead_attn = MultiHeadAttention(d, cfg.n_head, dropout=0.0, bias=False)
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, len(self.vocab))

    def use_cross_attention(self, fn: Callable | None) -> None:
        """Compute every decoder layer's cross-attention with ``fn(x_q, x_kv, w_q, w_k, w_v, w_o, n_head)`` →
        ``(output, weights)`` from now on (``None``: the course's ``helpers.attention.cross_attention``)."""
        if fn is not None and not callable(fn):
            raise TypeError(f"fn must be a function or None, got {type(fn).__name__}")
        for layer in self.layers:
            layer.cross_fn = fn

    @property
    def cfg(self) -> ViTConfig:
        return self.encoder.cfg

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def decode(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.dim() != 2:
            raise ValueError("tokens must be an int64 tensor [B, T], got "
                             + (f"{tokens.dtype} {tuple(tokens.shape)}" if isinstance(tokens, torch.Tensor)
                                else type(tokens).__name__))
        t = tokens.shape[1]
        if not 1 <= t <= self.vocab.max_len:
            raise ValueError(f"tokens must hold 1 to {self.vocab.max_len} positions, got {t}")
        if tokens.min() < 0 or tokens.max() >= len(self.vocab):
            raise ValueError(f"token ids must be in [0, {len(self.vocab)}), got {int(tokens.min())}..{int(tokens.max())}")
        x = self.tok_embed(tokens) + self.pos_embed[:, :t]
        for layer in self.layers:
            x = layer(x, memory)  # causal self-attention, then cross-attention to every image position
        return self.lm_head(self.norm(x))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        memory = self.encoder.encode(images)
        if isinstance(tokens, torch.Tensor) and tokens.shape[0] != memory.shape[0]:
            raise ValueError(f"one token row per image: {memory.shape[0]} images, {tokens.shape[0]} rows")
        return self.decode(tokens, memory)

    @torch.no_grad()
    def generate(self, images: torch.Tensor, lang: str = "en") -> torch.Tensor:
        """Greedy token ids ``[B, max_len]``, starting with ``<lang>`` (eval mode)."""
        was = self.training
        self.eval()
        try:
            memory = self.encoder.encode(images)
            tokens = torch.full((memory.shape[0], 1), self.vocab.start(lang), dtype=torch.long)
            for _ in range(self.vocab.max_len - 1):
                nxt = self.decode(tokens, memory)[:, -1].argmax(-1, keepdim=True)
                tokens = torch.cat([tokens, nxt], dim=1)
            return tokens
        finally:
            self.train(was)

    def describe(self, images: torch.Tensor, lang: str = "en") -> list[str]:
        """Each image's name, written greedily in ``lang`` ("en" or "zh")."""
        return [self.vocab.decode(row[1:]) for row in self.generate(images, lang)]

    @torch.no_grad()
    def cross_attention_maps(self, images: torch.Tensor, lang: str = "en") -> tuple[list[str], torch.Tensor]:
        """``(texts, weights)``: the names written, and the cross-attention of every decoder layer while
        writing them, ``[B, n_dec_layer, n_head, T, 1 + N]`` (query ``t`` is the position that predicts
        character ``t``; key 0 is the class token, then the patches in reading order)."""
        tokens = self.generate(images, lang)
        with _weights_kept(self, self.layers):
            self.decode(tokens, self.encoder.encode(images))
            w = torch.stack([layer.multihead_attn.last_weights for layer in self.layers], dim=1)
        return [self.vocab.decode(row[1:]) for row in tokens], w


# ---------------------------------------------------------------- pictures
_CJK_FONTS = ("WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "SimHei",
              "Microsoft YaHei", "PingFang SC", "Heiti SC", "Arial Unicode MS")


def _cjk_family() -> str | None:
    """An installed font that has Chinese characters, or None.

    matplotlib lists the fonts it found when it built its cache; a font installed after that (apt install
    fonts-wqy-zenhei on a machine that had used matplotlib before) is not in the list until the cache is rebuilt.
    So if none of the known names is listed, the system's font folders are searched once and a Chinese font found
    there is added (``FontManager.addfont``)."""
    from matplotlib import font_manager

    listed = {f.name for f in font_manager.fontManager.ttflist}
    for name in _CJK_FONTS:
        if name in listed:
            return name
    hints = ("wqy", "notosanscjk", "notoserifcjk", "sourcehansans", "simhei", "msyh", "pingfang", "arialuni")
    for path in sorted(font_manager.findSystemFonts()):
        if any(h in Path(path).name.lower().replace("-", "").replace("_", "") for h in hints):
            try:
                font_manager.fontManager.addfont(path)
                return font_manager.FontProperties(fname=path).get_name()
            except (OSError, RuntimeError, ValueError):
                continue
    return None


def _title_font(text: str) -> dict:
    """Font arguments for a title: DejaVu Sans, falling back to an installed CJK font for Chinese characters.

    Without any CJK font the characters are drawn as boxes and matplotlib's missing-glyph warning is silenced
    (the lesson prints every Chinese name as text as well)."""
    if all(ord(ch) < 0x2E80 for ch in text):
        return {}
    cjk = _cjk_family()
    if cjk is None:
        import warnings

        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        return {}
    return {"fontfamily": ["DejaVu Sans", cjk]}


def plot_digits(images: torch.Tensor, titles: list[str] | None = None, ncols: int = 10, size: float = 0.9,
                colors: list[str] | None = None):
    """A grid of grey images (white ink on black, as the data), each with an optional title; returns the figure."""
    import matplotlib.pyplot as plt

    images = _check_images(images)
    if images.dim() == 4:
        raise ValueError(f"plot_digits draws grey images [B, H, W], got {tuple(images.shape)}")
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"one title per image: {n} images, {len(titles)} titles")
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.25) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].detach().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9, color=(colors[i] if colors else "black"),
                             **_title_font(titles[i]))
    fig.tight_layout()
    return fig


def plot_on_image(ax, image: torch.Tensor, weights, patch: int, title: str | None = None) -> None:
    """Draw a grey ``image`` ``[H, W]`` and, over it, one weight per patch (``[N]``, reading order) as a
    translucent heat map: where a query looked."""
    w = torch.as_tensor(weights, dtype=torch.float32).detach().cpu().flatten()
    h, wd = image.shape
    rows, cols = h // patch, wd // patch
    if w.numel() != rows * cols:
        raise ValueError(f"need one weight per {patch} x {patch} patch of the {h} x {wd} image "
                         f"({rows * cols}), got {w.numel()}")
    ax.imshow(image.detach().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    heat = w.reshape(rows, cols).repeat_interleave(patch, 0).repeat_interleave(patch, 1).numpy()
    ax.imshow(heat, cmap="magma", alpha=0.6, vmin=0, vmax=max(float(w.max()), 1e-9))
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9, **_title_font(title))


# ---------------------------------------------------------------- training
def _check_xy(images: object, labels: object) -> tuple[torch.Tensor, torch.Tensor]:
    images = _check_images(images)
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long or labels.dim() != 1:
        raise ValueError("labels must be an int64 tensor [B], got "
                         + (f"{labels.dtype} {tuple(labels.shape)}" if isinstance(labels, torch.Tensor)
                            else type(labels).__name__))
    if len(images) != len(labels):
        raise ValueError(f"one label per image: {len(images)} images, {len(labels)} labels")
    return images, labels


def _fit(model: nn.Module, n: int, loss_of, steps: int, batch_size: int, lr: float, weight_decay: float,
         seed: int, desc: str, progress: bool) -> list[float]:
    """AdamW with a short warm-up and a cosine decay; ``loss_of(idx, generator)`` → the loss of a batch."""
    for name, v in [("steps", steps), ("batch_size", batch_size)]:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    from tqdm.auto import tqdm

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    losses = []
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        loss = loss_of(idx, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    model.eval()
    return losses


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 1500,
                     batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 0.05, max_shift: int = 0,
                     seed: int = 0, progress: bool = True) -> list[float]:
    """Train ``model`` (images → logits) with cross-entropy on random batches of ``batch_size``, each image
    shifted by up to ``max_shift`` pixels (default 0, none: in one trial a shift of 1 cost the ViT 3.4 points
    on these 8 × 8 digits); returns the loss of every step. The model is left in eval mode."""
    images, labels = _check_xy(images, labels)

    def loss_of(idx, g):
        return F.cross_entropy(model(shift_images(images[idx], max_shift, g)), labels[idx])

    return _fit(model, len(images), loss_of, steps, batch_size, lr, weight_decay, seed, "training", progress)


def train_captioner(model: Captioner, images: torch.Tensor, labels: torch.Tensor, steps: int = 1500,
                    batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 0.05, max_shift: int = 0,
                    seed: int = 0, progress: bool = True) -> list[float]:
    """Teach ``model`` to write each image's name: every batch in both languages (each image once in English,
    once in Chinese), cross-entropy on every character and on ``<end>``, ``<pad>`` ignored; returns the loss of
    every step."""
    if not isinstance(model, Captioner):
        raise TypeError(f"model must be a Captioner, got {type(model).__name__}")
    images, labels = _check_xy(images, labels)
    vocab = model.vocab

    def loss_of(idx, g):
        memory = model.encoder.encode(shift_images(images[idx], max_shift, g)).repeat(2, 1, 1)  # read once
        tokens = vocab.batch(labels[idx].repeat(2), ["en"] * len(idx) + ["zh"] * len(idx))
        logits = model.decode(tokens[:, :-1], memory)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                               ignore_index=vocab.PAD)

    return _fit(model, len(images), loss_of, steps, batch_size, lr, weight_decay, seed, "training", progress)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """The class each image gets (argmax of ``model(images)``), in eval mode."""
    images = _check_images(images)
    was = model.training
    model.eval()
    try:
        dtype = next(model.parameters()).dtype
        return torch.cat([model(images[i:i + batch_size].to(dtype)).argmax(-1)
                          for i in range(0, len(images), batch_size)])
    finally:
        model.train(was)


def accuracy(pred, target) -> tuple[float, float, float]:
    """``(accuracy, low, high)``: the share equal, with its 95 % Wilson interval."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape or pred.dim() != 1 or len(pred) == 0:
        raise ValueError(f"pred and target must be two 1-D sequences of one length, got shapes "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    k, n = int((pred == target).sum()), len(pred)
    lo, hi = wilson_interval(k, n)
    return k / n, lo, hi


def fit_logistic(images: torch.Tensor, labels: torch.Tensor, weight_decay: float = 1e-3, steps: int = 200,
                 n_classes: int = 10) -> nn.Module:
    """Multinomial logistic regression on the raw pixels (L2-penalised, full batch, L-BFGS, float64): the
    first baseline."""
    images, labels = _check_xy(images, labels)
    images = images.double()  # float64: the same optimum on every CPU, to the last printed digit
    model = nn.Sequential(nn.Flatten(), nn.Linear(images[0].numel(), n_classes)).double()
    nn.init.zeros_(model[1].weight), nn.init.zeros_(model[1].bias)
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=steps, history_size=20,
                            line_search_fn="strong_wolfe")
    x = images.reshape(len(images), -1)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels) + weight_decay * model[1].weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model.eval()


def fit_mlp(images: torch.Tensor, labels: torch.Tensor, hidden: int = 128, steps: int = 1500, seed: int = 0,
            n_classes: int = 10, progress: bool = True) -> nn.Module:
    """A small MLP on the pixels (one hidden layer of ``hidden`` GELUs, dropout 0.1), trained as the ViT is
    (``train_classifier``, same steps) but in float64, so that every CPU gets the same model: the second
    baseline."""
    images, labels = _check_xy(images, labels)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(images[0].numel(), hidden), nn.GELU(), nn.Dropout(0.1),
                          nn.Linear(hidden, n_classes)).double()
    train_classifier(model, images.double(), labels, steps=steps, seed=seed, progress=progress)
    return model


# ---------------------------------------------------------------- cross-validation
CV_CSV = Path(__file__).with_name("digits_cv.csv")
CV_MODELS = ("vit", "mlp", "logistic")


def fold_ids(n: int = 1797, k: int = 5, seed: int = 0) -> torch.Tensor:
    """Which of ``k`` folds each of ``n`` examples is held out in: a fixed random assignment, sizes within one."""
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n:
        raise ValueError(f"k must be an int in [2, n={n}], got {k!r}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    folds = torch.empty(n, dtype=torch.long)
    folds[perm] = torch.arange(n) % k
    return folds


def cross_validate(images: torch.Tensor, labels: torch.Tensor, k: int = 5, steps: int = 1500, seed: int = 0,
                   progress: bool = True) -> dict[str, torch.Tensor]:
    """Out-of-fold predictions: for each fold, train the ViT, the MLP and logistic regression on the other
    ``k - 1`` folds and predict the held-out one. Returns ``{"fold", "label", "vit", "mlp", "logistic"}``,
    one entry per image: every image is predicted once, by models that never saw it."""
    images, labels = _check_xy(images, labels)
    folds = fold_ids(len(images), k, seed)
    out = {"fold": folds, "label": labels.clone()} | {m: torch.full_like(labels, -1) for m in CV_MODELS}
    from tqdm.auto import tqdm

    for f in tqdm(range(k), desc="folds", disable=not progress):
        tr, te = (folds != f).nonzero()[:, 0], (folds == f).nonzero()[:, 0]
        torch.manual_seed(seed)
        vit = ViT(ViTConfig())
        train_classifier(vit, images[tr], labels[tr], steps=steps, seed=seed, progress=False)
        out["vit"][te] = predict(vit, images[te])
        out["mlp"][te] = predict(fit_mlp(images[tr], labels[tr], steps=steps, seed=seed, progress=False), images[te])
        out["logistic"][te] = predict(fit_logistic(images[tr], labels[tr]), images[te])
    return out


def save_cv(result: dict[str, torch.Tensor], path: str | os.PathLike = CV_CSV) -> Path:
    """Write ``cross_validate``'s result as a CSV (one row per image: index, fold, label, predictions)."""
    cols = ["fold", "label", *CV_MODELS]
    missing = [c for c in cols if c not in result]
    if missing:
        raise ValueError(f"result lacks {missing}: expected cross_validate's dict")
    n = len(result["label"])
    if any(len(result[c]) != n for c in cols) or any(int(result[m].min()) < 0 for m in CV_MODELS):
        raise ValueError("every column must hold one prediction per image (no -1 left)")
    lines = ["index," + ",".join(cols)]
    lines += [f"{i}," + ",".join(str(int(result[c][i])) for c in cols) for i in range(n)]
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def load_cv(path: str | os.PathLike = CV_CSV) -> dict[str, torch.Tensor]:
    """The out-of-fold predictions that ``python -m helpers.vision --cv`` wrote (the course ships them)."""
    rows = Path(path).read_text().strip().splitlines()
    head = rows[0].split(",")
    want = ["index", "fold", "label", *CV_MODELS]
    if head != want:
        raise ValueError(f"{path}: expected the columns {want}, got {head}")
    data = torch.tensor([[int(v) for v in r.split(",")] for r in rows[1:]])
    if not torch.equal(data[:, 0], torch.arange(len(data))):
        raise ValueError(f"{path}: rows must be indexed 0..{len(data) - 1} in order")
    return {c: data[:, i] for i, c in enumerate(want) if c != "index"}


# ---------------------------------------------------------------- checkpoints
def save_model(model: ViT | Captioner, path: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into the folder ``path`` (made if missing)."""
    from safetensors.torch import save_file

    if not isinstance(model, (ViT, Captioner)):
        raise TypeError(f"model must be a ViT or a Captioner, got {type(model).__name__}")
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"refusing to save a model with NaN or inf in {bad[:3]}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {"kind": type(model).__name__, "vit": asdict(model.cfg)}
    if isinstance(model, Captioner):
        config["n_dec_layer"] = model.n_dec_layer
    tmp = path / "model.safetensors.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return path


def load_model(path: str | os.PathLike) -> ViT | Captioner:
    """The model ``save_model`` wrote into the folder ``path``, in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"expected config.json and model.safetensors in {path}")
    config = json.loads((path / "config.json").read_text())
    cfg = ViTConfig(**config["vit"])
    if config.get("kind") == "ViT":
        model: ViT | Captioner = ViT(cfg)
    elif config.get("kind") == "Captioner":
        model = Captioner(cfg, n_dec_layer=config["n_dec_layer"])
    else:
        raise ValueError(f"{path}/config.json: kind must be 'ViT' or 'Captioner', got {config.get('kind')!r}")
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.eval()


# ---------------------------------------------------------------- the course's two checkpoints
def train_course_models(out: str | os.PathLike = "checkpoints", steps: int = 1500, seed: int = 0,
                        progress: bool = True) -> dict[str, float]:
    """Train the ViT and the captioner exactly as lesson 19's full mode does and save them to
    ``out/digits-vit`` and ``out/digits-captioner``; returns their held-out accuracies."""
    images, labels = load_digits()
    train_idx, test_idx = digit_split()
    x, y, xt, yt = images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]
    torch.manual_seed(seed)
    vit = ViT(ViTConfig())
    train_classifier(vit, x, y, steps=steps, seed=seed, progress=progress)
    torch.manual_seed(seed)
    cap = Captioner(ViTConfig())
    train_captioner(cap, x, y, steps=steps, seed=seed, progress=progress)
    result = {"vit": accuracy(predict(vit, xt), yt)[0]}
    for lang in NAMES:
        said = cap.describe(xt, lang)
        result[f"captioner_{lang}"] = float(np.mean([s == NAMES[lang][int(t)] for s, t in zip(said, yt, strict=True)]))
    save_model(vit, Path(out) / "digits-vit")
    save_model(cap, Path(out) / "digits-captioner")
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Train lesson 19's ViT and captioner on the digits; save both.")
    ap.add_argument("--out", default="checkpoints", help="folder for digits-vit/ and digits-captioner/")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cv", action="store_true", help=f"instead: 5-fold out-of-fold predictions to {CV_CSV.name}")
    args = ap.parse_args(argv)
    from .course import setup

    setup(seed=args.seed)
    if args.cv:
        images, labels = load_digits()
        result = cross_validate(images, labels, steps=args.steps, seed=args.seed)
        print(f"wrote {save_cv(result)}")
        for m in CV_MODELS:
            print(f"{m}: out-of-fold accuracy {(result[m] == result['label']).float().mean():.4f}")
        return 0
    for name, acc in train_course_models(args.out, args.steps, args.seed).items():
        print(f"{name}: held-out accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
