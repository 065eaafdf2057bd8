"""LoRA by hand: a low-rank adapter beside a frozen ``nn.Linear`` (Hu et al. 2021, "LoRA: Low-Rank Adaptation of
Large Language Models").

``LoRALinear(base, r, alpha)`` keeps ``base`` frozen and adds two trainable matrices, ``A [r, in_features]``
(random, as ``peft`` initialises it) and ``B [out_features, r]`` (zero, so the wrapped layer starts out exactly
equal to the base):

    y = base(x) + (alpha / r) · x Aᵀ Bᵀ

``merged()`` returns a plain ``nn.Linear`` with the adapter folded into the weight, ``W + (alpha / r) · B A``.
``apply_lora(model, targets, r, alpha)`` wraps chosen layers of a model in place and freezes everything else;
``merge_lora(model)`` folds every adapter back (a plain model again, savable as safetensors like any other);
``merge_lora(model, keep_adapters=True)`` folds them into the base weights but keeps the ``LoRALinear`` modules,
and ``unmerge_lora(model)`` takes them out again (``LoRALinear.merge()`` / ``unmerge()`` do it for one layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["LoRALinear", "apply_lora", "merge_lora", "unmerge_lora", "lora_parameters", "count_trainable"]


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) · x Aᵀ Bᵀ`` with ``base`` frozen; ``A [r, in]`` random, ``B [out, r]`` zero."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be an nn.Linear, got {type(base).__name__}")
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"r must be a positive int, got {r!r}")
        if r > min(base.in_features, base.out_features):
            raise ValueError(f"r={r} is larger than the layer's smallest side "
                             f"({base.in_features} in, {base.out_features} out): nothing low-rank about it")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ValueError(f"alpha must be a positive number, got {alpha!r}")
        self.base, self.r, self.alpha = base, r, float(alpha)
        self.scaling = self.alpha / r
        for p in self.base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # peft's default for A (B starts at zero)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged_in = False  # True while the adapter is folded into base.weight (merge / unmerge)

    def delta_weight(self) -> torch.Tensor:
        """The adapter as a weight update: ``(alpha / r) · B A``, shaped like ``base.weight`` ``[out, in]``."""
        return self.scaling * (self.B @ self.A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.base.in_features:
            raise ValueError(f"expected inputs with last dimension {self.base.in_features}, got {tuple(x.shape)}")
        y = self.base(x)
        if self.merged_in:
            return y
        return y + self.scaling * (self.dropout(x) @ self.A.t() @ self.B.t())

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the adapter into ``base.weight`` (the forward then costs one matmul); ``unmerge()`` undoes it."""
        if not self.merged_in:
            self.base.weight += self.delta_weight()
            self.merged_in = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged_in:
            self.base.weight -= self.delta_weight()
            self.merged_in = False

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A new plain ``nn.Linear`` whose weight is ``W + (alpha / r) · B A`` (the bias is the base's)."""
        base = self.base
        out = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                        device=base.weight.device, dtype=base.weight.dtype)
        out.weight.copy_(base.weight if self.merged_in else base.weight + self.delta_weight())
        if base.bias is not None:
            out.bias.copy_(base.bias)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, merged_in={self.merged_in}"


def _modules_matching(model: nn.Module, targets: Sequence[str]) -> list[str]:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)
             and any(n == t or n.endswith("." + t) for t in targets)]
    return names


def apply_lora(model: nn.Module, targets: Sequence[str] = ("attn.c_attn",), r: int = 8, alpha: float = 16.0,
               dropout: float = 0.0, train: Sequence[str] = ()) -> list[str]:
    """Wrap every ``nn.Linear`` whose name is or ends with one of ``targets`` in a ``LoRALinear`` (in place) and
    freeze every other parameter, except those whose name starts with one of ``train`` (e.g. a new
    classification head). Returns the wrapped names."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(targets, str):
        targets = (targets,)
    if isinstance(train, str):
        train = (train,)
    if not targets:
        raise ValueError("targets is empty: name at least one nn.Linear to adapt, e.g. 'attn.c_attn'")
    wrapped = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)
               and any(n == t or n.endswith("." + t) for t in targets)]
    if wrapped:
        raise ValueError(f"{wrapped[:3]} already hold LoRA adapters: apply_lora once per model "
                         "(merge_lora first to start again from the merged weights)")
    names = _modules_matching(model, targets)
    if not names:
        linear = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:8]
        raise ValueError(f"no nn.Linear matches {list(targets)}; the model's linear layers include {linear}")
    flags = {p: p.requires_grad for p in model.parameters()}
    try:  # build every adapter first: a bad r or alpha leaves the model as it was
        adapters = {name: LoRALinear(model.get_submodule(name), r, alpha, dropout) for name in names}
    except (TypeError, ValueError):
        for p, flag in flags.items():
            p.requires_grad_(flag)
        raise
    for p in model.parameters():
        p.requires_grad_(False)
    for name, adapter in adapters.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, adapter)
    for n, p in model.named_parameters():
        if any(n.startswith(t) for t in train):
            p.requires_grad_(True)
    return names


def merge_lora(model: nn.Module, keep_adapters: bool = False) -> nn.Module:
    """Replace every ``LoRALinear`` in ``model`` by its ``merged()`` plain ``nn.Linear`` (in place); returns it.
    The parameters it creates are trainable again, as a plain model's are.

    ``keep_adapters=True`` instead folds each adapter into its base weight and keeps the ``LoRALinear``
    (``LoRALinear.merge()``): the forward costs what the plain model's does, and ``unmerge_lora`` undoes it."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if keep_adapters:
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.merge()
        return model
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.merged())
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Take every adapter that ``merge_lora(model, keep_adapters=True)`` folded in back out of its base weight
    (``LoRALinear.unmerge()``), in place; returns the model. Layers already unmerged are left as they are."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    found = False
    for module in model.modules():
        if isinstance(module, LoRALinear):
            module.unmerge()
            found = True
    if not found:
        raise ValueError("the model holds no LoRALinear: merge_lora(model) without keep_adapters=True replaced "
                         "them by plain nn.Linear layers, which cannot be unmerged")
    return model


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapters' ``A`` and ``B`` of every ``LoRALinear`` in the model."""
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.A, m.B)]


def count_trainable(model: nn.Module) -> int:
    """How many parameters will the optimizer update (``requires_grad``; shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
