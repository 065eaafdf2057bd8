"""Weight-only quantization for decoding: int8 weights with one float32 scale per output channel, or bfloat16.

Decoding one token is a matrix-vector product per layer: each weight is read once and used for one
multiply-add, so the time goes into moving weights, not computing. Storing them in fewer bytes (int8: 1 byte,
bfloat16: 2, instead of float32's 4) makes each step read less.

- ``quantize_int8(w)``: symmetric, per output row: ``scale = max|w_row| / 127``, ``q = round(w / scale)``
  clamped to ``[-127, 127]`` (a row of zeros gets ``scale = 1`` and ``q = 0``). Rounding is PyTorch's
  round-half-to-even, so each weight is off by at most ``scale / 2``.
- ``dequantize_int8(q, scale)``: back to float32, ``q * scale``.
- ``Int8Linear``: an ``nn.Linear`` whose weight is held as ``q`` and ``scale``; on the CPU it calls PyTorch's own
  int8 weight kernel ``torch._weight_int8pack_mm`` (float32 in, float32 out), elsewhere it dequantizes.
- ``quantize_model(model, "int8" | "bf16")``: a quantized copy of a ``helpers.model.GPT``.
- ``weight_bytes(model)``: bytes of every parameter and buffer, a shared (tied) tensor counted once.

Shapes: ``out`` and ``in`` are a linear layer's output and input widths (``nn.Linear.weight`` is ``[out, in]``).
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn

__all__ = ["quantize_int8", "dequantize_int8", "Int8Linear", "quantize_model", "weight_bytes", "QUANT_DTYPES"]

QUANT_DTYPES = ("int8", "bf16")
QMAX = 127  # symmetric int8: [-127, 127], so -q is always representable and 0 is exactly 0


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


# ---------------------------------------------------------------------- quantize / dequantize
def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: ``w [out, in]`` float → ``(q [out, in] int8, scale [out] float32)``.

    ``scale[i] = max_j |w[i, j]| / 127`` and ``q = round(w / scale)`` clamped to ``[-127, 127]``, so that
    ``q * scale[:, None]`` is within ``scale / 2`` of ``w``. A row of zeros gets ``scale = 1`` (and ``q = 0``):
    no division by zero.
    """
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"w must be a torch.Tensor [out, in] of floats, got {_describe(w)}")
    if not w.dtype.is_floating_point:
        raise TypeError(f"w must hold floating-point weights, got dtype {w.dtype}")
    if w.dim() != 2:
        raise ValueError(f"w must be 2-D [out, in] (an nn.Linear weight), got shape {tuple(w.shape)}")
    if w.numel() == 0:
        raise ValueError(f"w must not be empty, got shape {tuple(w.shape)}")
    w = w.detach().float()
    if not torch.isfinite(w).all():
        raise ValueError("w holds NaN or inf: there is no finite scale for it")
    scale = w.abs().amax(dim=1) / QMAX  # [out]
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # zero (or underflowing) rows: q = 0 anyway
    q = torch.round(w / scale[:, None]).clamp_(-QMAX, QMAX).to(torch.int8)
    return q, scale


def _check_q_scale(q: object, scale: object) -> None:
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8:
        raise TypeError(f"q must be an int8 tensor [out, in], got {_describe(q)}")
    if q.dim() != 2:
        raise ValueError(f"q must be 2-D [out, in], got shape {tuple(q.shape)}")
    if not isinstance(scale, torch.Tensor) or not scale.dtype.is_floating_point:
        raise TypeError(f"scale must be a floating-point tensor [out], got {_describe(scale)}")
    if scale.shape != (q.shape[0],):
        raise ValueError(f"scale must have shape [out] = ({q.shape[0]},), one per row of q, got {tuple(scale.shape)}")


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q [out, in] int8``, ``scale [out]`` → the float32 weights ``q * scale[:, None]`` ``[out, in]``."""
    _check_q_scale(q, scale)
    return q.float() * scale.float()[:, None]


# ---------------------------------------------------------------------- the int8 linear layer
@functools.cache
def _kernel_works(device_type: str) -> bool:
    """Whether ``torch._weight_int8pack_mm`` exists here and gives ``x @ (q * scale).T`` (probed once)."""
    kernel = getattr(torch, "_weight_int8pack_mm", None)
    if kernel is None or device_type != "cpu":
        return False
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 13, generator=g), torch.randn(5, 13, generator=g)
    q, scale = quantize_int8(w)
    try:
        with torch.no_grad():
            got = kernel(x, q, scale)
    except (RuntimeError, TypeError, NotImplementedError):
        return False
    want = x @ dequantize_int8(q, scale).T
    return got.shape == want.shape and got.dtype == torch.float32 and torch.allclose(got, want, atol=1e-4, rtol=1e-4)


class Int8Linear(nn.Module):
    """A linear layer with int8 weights: ``y = x @ (q * scale[:, None]).T + bias``, computed in float32.

    ``q`` (int8 ``[out, in]``) and ``scale`` (float32 ``[out]``) are buffers, ``bias`` (float32 ``[out]`` or None) a
    frozen parameter. ``forward(x [..., in])`` → ``[..., out]`` in ``x``'s dtype. On the CPU, for float32 inputs
    that need no gradient, it runs ``torch._weight_int8pack_mm`` (int8 weights read as they are); otherwise it
    dequantizes the weights and multiplies in float32 (the reference path, which autograd can go through).
    """

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        _check_q_scale(q, scale)
        if bias is not None:
            if not isinstance(bias, torch.Tensor) or not bias.dtype.is_floating_point:
                raise TypeError(f"bias must be None or a floating-point tensor [out], got {_describe(bias)}")
            if bias.shape != (q.shape[0],):
                raise ValueError(f"bias must have shape ({q.shape[0]},), got {tuple(bias.shape)}")
        self.out_features, self.in_features = q.shape
        self.register_buffer("q", q.detach().contiguous())
        self.register_buffer("scale", scale.detach().float().contiguous())
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(bias.detach().float().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """Quantize an ``nn.Linear``'s weight (per output channel); its bias is kept in float32."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear expects a torch.nn.Linear, got {type(linear).__name__}")
        q, scale = quantize_int8(linear.weight)
        return cls(q, scale, None if linear.bias is None else linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
            raise TypeError(f"Int8Linear expects a floating-point tensor [..., {self.in_features}], got {_describe(x)}")
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Int8Linear expects inputs [..., {self.in_features}], got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        needs_grad = torch.is_grad_enabled() and x.requires_grad
        if (x.dtype == torch.float32 and self.scale.dtype == torch.float32 and not needs_grad
                and _kernel_works(x.device.type)):
            y = torch._weight_int8pack_mm(x2.contiguous(), self.q, self.scale)
        else:
            y = x2.float() @ dequantize_int8(self.q, self.scale).T
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


# ---------------------------------------------------------------------- whole models
def quantize_model(model: nn.Module, dtype: str) -> nn.Module:
    """A quantized copy of a ``helpers.model.GPT``, in eval mode; ``model`` itself is left as it was.

    ``dtype="int8"``: every ``nn.Linear`` inside the transformer blocks becomes an ``Int8Linear``; the
    embeddings, the norms and the output head (tied to ``wte`` or not) stay float32.
    ``dtype="bf16"``: every parameter and buffer in bfloat16; the model then computes in bfloat16 and its
    logits are bfloat16 (``generate`` turns them to float32 before sampling).
    """
    from .model import GPT

    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    if not isinstance(dtype, str):
        raise TypeError(f"dtype must be one of {QUANT_DTYPES} (a str), got {dtype!r}")
    if dtype not in QUANT_DTYPES:
        raise ValueError(f"dtype must be one of {QUANT_DTYPES}, got {dtype!r}")
    new = copy.deepcopy(model)  # deepcopy keeps the head tied to wte (one shared Parameter)
    if dtype == "bf16":
        return new.to(torch.bfloat16).eval()
    for block in new.transformer.h:
        targets = [(name, m) for name, m in block.named_modules() if isinstance(m, nn.Linear)]
        for name, linear in targets:
            parent_name, _, child = name.rpartition(".")
            parent = block.get_submodule(parent_name) if parent_name else block
            setattr(parent, child, Int8Linear.from_linear(linear))
    return new.eval()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer of ``model``; a tensor shared by two modules (a tied head) counts once."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    seen: set[tuple] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        key = (t.device, t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()))
        if t.numel() == 0 or key in seen:
            continue
        seen.add(key)
        total += t.numel() * t.element_size()
    return total
