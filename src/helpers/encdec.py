"""The original encoder–decoder Transformer (Vaswani et al. 2017), written out, weight for weight ``torch.nn.Transformer``.

The encoder reads the source with unmasked self-attention; the decoder reads the target with causal
self-attention, then *cross-attends* from its positions (queries) to the encoder's output, the "memory"
(keys and values), then applies its feed-forward sublayer. Every sublayer sits in a residual connection with a
LayerNorm, in one of two places:

* ``norm_first=False``, post-LN, as the 2017 paper writes it: ``x = LN(x + Dropout(Sublayer(x)))``;
* ``norm_first=True``, pre-LN (GPT-2's choice, as ``helpers.model.Block``): ``x = x + Dropout(Sublayer(LN(x)))``.

Either way a final LayerNorm ends the encoder and another the decoder, as ``torch.nn.Transformer`` has.
Inputs are already embedded (no token embedding, no positions, no output head): ``src`` ``[B, S, C]``,
``tgt`` ``[B, T, C]``, ``C = d_model``. The attention is ``helpers.attention.cross_attention`` (self-attention
is cross-attention of a sequence to itself), its weights held by ``helpers.attention.MultiHeadAttention``
modules (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``).

Module names follow ``torch.nn.Transformer`` (``encoder.layers.0.self_attn``, ``decoder.layers.0.multihead_attn``,
``linear1``, ``norm1``, ``encoder.norm`` ...), except that PyTorch's fused ``in_proj_weight`` ``[3C, C]`` is
three matrices here; ``Transformer.from_torch`` splits it.

Padding masks are PyTorch's: bool ``[B, S]`` or ``[B, T]``, **True marks a padding position**, which no
query attends to.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .attention import MultiHeadAttention, causal_mask, cross_attention

__all__ = ["EncoderLayer", "DecoderLayer", "Transformer", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu, "gelu": F.gelu}


# ---------------------------------------------------------------- validation
def _check_int(name: str, val: object, minimum: int = 1) -> int:
    if isinstance(val, bool) or not isinstance(val, int) or val < minimum:
        kind = "positive int" if minimum == 1 else f"int >= {minimum}"
        raise ValueError(f"{name} must be a {kind}, got {val!r}")
    return val


def _check_config(d_model: object, nhead: object, dim_feedforward: object, dropout: object,
                  activation: object, norm_first: object, layer_norm_eps: object, bias: object) -> None:
    _check_int("d_model", d_model)
    _check_int("nhead", nhead)
    if d_model % nhead:
        raise ValueError(f"d_model must be divisible by nhead: got d_model={d_model}, nhead={nhead} "
                         f"(remainder {d_model % nhead})")
    _check_int("dim_feedforward", dim_feedforward)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)} or a callable, got {activation!r}")
    elif not callable(activation):
        raise TypeError(f"activation must be a str or a callable, got {type(activation).__name__}")
    if not isinstance(norm_first, bool):
        raise TypeError(f"norm_first must be a bool, got {type(norm_first).__name__}")
    if isinstance(layer_norm_eps, bool) or not isinstance(layer_norm_eps, (int, float)) or not layer_norm_eps > 0:
        raise ValueError(f"layer_norm_eps must be a positive number, got {layer_norm_eps!r}")
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__}")


def _check_seq(name: str, x: object, d_model: int, like: torch.Tensor) -> torch.Tensor:
    """``x`` must be ``[B, L, d_model]``, at least one position, in the dtype of ``like`` (a parameter)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape [B, L, d_model={d_model}] (batch first, already embedded), "
                         f"got {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one position, got shape {tuple(x.shape)}")
    if x.dtype != like.dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, the model's weights {like.dtype}: convert one "
                        f"(x.to({like.dtype}) or model.to({x.dtype}))")
    return x


def _check_padding(name: str, mask: object, x: torch.Tensor) -> torch.Tensor | None:
    """A padding mask for ``x`` ``[B, L, C]``: None or bool ``[B, L]``, True = padding."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be None or a bool torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = padding, ignored), got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(f"{name} must have shape [B, L] = {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
    return mask


def _attend(attn: MultiHeadAttention, x_q: torch.Tensor, x_kv: torch.Tensor, mask: torch.Tensor | None = None,
            key_padding_mask: torch.Tensor | None = None, keep: bool = False) -> torch.Tensor:
    """``cross_attention`` with the weights of ``attn`` (its dropout in training mode only).

    With ``keep=True`` the attention weights ``[B, H, Tq, Tk]`` are kept, detached, in ``attn.last_weights``.
    """
    out = cross_attention(
        x_q, x_kv, attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, attn.out_proj.weight,
        attn.n_heads, b_q=attn.q_proj.bias, b_k=attn.k_proj.bias, b_v=attn.v_proj.bias, b_o=attn.out_proj.bias,
        key_padding_mask=key_padding_mask, mask=mask, dropout_p=attn.dropout if attn.training else 0.0,
        need_weights=keep,
    )
    if keep:
        out, weights = out
        attn.last_weights = weights.detach()
    return out


# ---------------------------------------------------------------- layers
class _Layer(nn.Module):
    """What both layers share: the feed-forward sublayer ``linear2(dropout(activation(linear1(x))))``."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float,
                 activation: str | Callable[[torch.Tensor], torch.Tensor], norm_first: bool,
                 layer_norm_eps: float, bias: bool) -> None:
        super().__init__()
        _check_config(d_model, nhead, dim_feedforward, dropout, activation, norm_first, layer_norm_eps, bias)
        self.d_model, self.nhead, self.dim_feedforward = d_model, nhead, dim_feedforward
        self.norm_first, self.layer_norm_eps = norm_first, float(layer_norm_eps)
        self.activation_name = activation if isinstance(activation, str) else getattr(
            activation, "__name__", type(activation).__name__)
        self.activation = ACTIVATIONS[activation] if isinstance(activation, str) else activation
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        # True: every attention keeps its last weights [B, H, Tq, Tk] in ``<attn>.last_weights`` (for pictures)
        self.keep_weights = False

    def _ff(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}, activation={self.activation_name}"


class EncoderLayer(_Layer):
    """One encoder layer: unmasked self-attention, then the feed-forward sublayer.

    ``forward(x [B, S, d_model], key_padding_mask=None [B, S] bool, True = padding)`` → ``[B, S, d_model]``.
    Post-LN (``norm_first=False``): ``x = norm1(x + SA(x)); x = norm2(x + FF(x))``; pre-LN:
    ``x = x + SA(norm1(x)); x = x + FF(norm2(x))`` (each sublayer's output through dropout first).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.0,
                 activation: str | Callable[[torch.Tensor], torch.Tensor] = "relu", norm_first: bool = False,
                 layer_norm_eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, norm_first, layer_norm_eps, bias)

    def _sa(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        return self.dropout1(_attend(self.self_attn, x, x, key_padding_mask=key_padding_mask,
                                     keep=self.keep_weights))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = _check_seq("x", x, self.d_model, self.linear1.weight)
        key_padding_mask = _check_padding("key_padding_mask", key_padding_mask, x)
        if self.norm_first:
            x = x + self._sa(self.norm1(x), key_padding_mask)
            return x + self.dropout2(self._ff(self.norm2(x)))
        x = self.norm1(x + self._sa(x, key_padding_mask))
        return self.norm2(x + self.dropout2(self._ff(x)))


class DecoderLayer(_Layer):
    """One decoder layer: causal self-attention, cross-attention to the encoder's memory, feed-forward.

    ``forward(x [B, T, d_model], memory [B, S, d_model], tgt_key_padding_mask=None [B, T],
    memory_key_padding_mask=None [B, S])`` → ``[B, T, d_model]`` (padding masks: True = padding). Position
    ``t`` sees target positions ``0..t`` and every (unpadded) memory position. Post-LN:
    ``x = norm1(x + SA(x)); x = norm2(x + CA(x, memory)); x = norm3(x + FF(x))``; pre-LN:
    ``x = x + SA(norm1(x)); x = x + CA(norm2(x), memory); x = x + FF(norm3(x))`` (the memory is not normed
    here: the encoder's final norm did that).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.0,
                 activation: str | Callable[[torch.Tensor], torch.Tensor] = "relu", norm_first: bool = False,
                 layer_norm_eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__(d_model, nhead, dim_feedforward, dropout, activation, norm_first, layer_norm_eps, bias)
        self.multihead_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout3 = nn.Dropout(dropout)
        # None: the course's cross_attention. Or a function (x_q, x_kv, w_q, w_k, w_v, w_o, n_head) ->
        # (output, weights) that computes the cross-attention instead (lesson 19 plugs the learner's in).
        self.cross_fn: Callable | None = None

    def _sa(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        mask = causal_mask(x.shape[1], device=x.device)  # [T, T], True where key j <= query i
        return self.dropout1(_attend(self.self_attn, x, x, mask=mask, key_padding_mask=key_padding_mask,
                                     keep=self.keep_weights))

    def _ca(self, x: torch.Tensor, memory: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        if self.cross_fn is None:
            return self.dropout2(_attend(self.multihead_attn, x, memory, key_padding_mask=key_padding_mask,
                                         keep=self.keep_weights))
        a = self.multihead_attn
        if a.q_proj.bias is not None or key_padding_mask is not None or (self.training and a.dropout):
            raise ValueError("cross_fn computes bias-free cross-attention without a padding mask or dropout: "
                             "this layer's cross-attention has biases, a padding mask or dropout in training")
        got = self.cross_fn(x, memory, a.q_proj.weight, a.k_proj.weight, a.v_proj.weight, a.out_proj.weight,
                            a.n_heads)
        if not isinstance(got, tuple) or len(got) != 2:
            raise TypeError("cross_fn must return (output [B, T, C], weights [B, H, T, S])")
        out, weights = got
        if self.keep_weights:
            a.last_weights = weights.detach()
        return self.dropout2(out)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = _check_seq("x", x, self.d_model, self.linear1.weight)
        memory = _check_seq("memory", memory, self.d_model, self.linear1.weight)
        if memory.shape[0] != x.shape[0]:
            raise ValueError(f"x and memory must have the same batch size: x is {tuple(x.shape)}, "
                             f"memory is {tuple(memory.shape)}")
        tgt_key_padding_mask = _check_padding("tgt_key_padding_mask", tgt_key_padding_mask, x)
        memory_key_padding_mask = _check_padding("memory_key_padding_mask", memory_key_padding_mask, memory)
        if self.norm_first:
            x = x + self._sa(self.norm1(x), tgt_key_padding_mask)
            x = x + self._ca(self.norm2(x), memory, memory_key_padding_mask)
            return x + self.dropout3(self._ff(self.norm3(x)))
        x = self.norm1(x + self._sa(x, tgt_key_padding_mask))
        x = self.norm2(x + self._ca(x, memory, memory_key_padding_mask))
        return self.norm3(x + self.dropout3(self._ff(x)))


# ---------------------------------------------------------------- the whole model
class Transformer(nn.Module):
    """Encoder–decoder Transformer with ``torch.nn.Transformer``'s architecture, batch first.

    ``forward(src [B, S, d_model], tgt [B, T, d_model], src_key_padding_mask=None [B, S],
    tgt_key_padding_mask=None [B, T], memory_key_padding_mask=None [B, S])`` → ``[B, T, d_model]``, the
    decoder's output (after its final norm). The decoder is always causal. Padding masks: bool, True marks
    padding. To ignore padded source positions in the decoder too, pass the source's mask as
    ``memory_key_padding_mask`` as well (as with PyTorch). Equals, in eval mode,
    ``m(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(T), tgt_is_causal=True, ...)`` for
    ``model = Transformer.from_torch(m)``.

    ``encode(src, src_key_padding_mask=None)`` → memory ``[B, S, d_model]`` (after the encoder's norm);
    ``decode(tgt, memory, tgt_key_padding_mask=None, memory_key_padding_mask=None)`` → ``[B, T, d_model]``.
    ``activation``: ``"relu"`` (the paper's), ``"gelu"`` (exact, ``F.gelu``) or any callable. ``bias=False``
    drops every Linear and LayerNorm bias, as in ``nn.Transformer``. Weights start as ``nn.Transformer``'s
    do: Xavier-uniform matrices, zero attention biases.
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.0,
                 activation: str | Callable[[torch.Tensor], torch.Tensor] = "relu", norm_first: bool = False,
                 layer_norm_eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        _check_config(d_model, nhead, dim_feedforward, dropout, activation, norm_first, layer_norm_eps, bias)
        _check_int("num_encoder_layers", num_encoder_layers)
        _check_int("num_decoder_layers", num_decoder_layers)
        self.d_model, self.nhead, self.dim_feedforward = d_model, nhead, dim_feedforward
        self.norm_first, self.layer_norm_eps, self.dropout = norm_first, float(layer_norm_eps), float(dropout)
        kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation, norm_first=norm_first,
                  layer_norm_eps=layer_norm_eps, bias=bias)
        self.encoder = nn.ModuleDict(dict(
            layers=nn.ModuleList([EncoderLayer(d_model, nhead, **kw) for _ in range(num_encoder_layers)]),
            norm=nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias),
        ))
        self.decoder = nn.ModuleDict(dict(
            layers=nn.ModuleList([DecoderLayer(d_model, nhead, **kw) for _ in range(num_decoder_layers)]),
            norm=nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias),
        ))
        for p in self.parameters():  # nn.Transformer's _reset_parameters
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for mod in self.modules():  # nn.MultiheadAttention starts its biases at zero
            if isinstance(mod, MultiHeadAttention):
                for lin in (mod.q_proj, mod.k_proj, mod.v_proj, mod.out_proj):
                    if lin.bias is not None:
                        nn.init.zeros_(lin.bias)

    # ------------------------------------------------------------------ forward
    def encode(self, src: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder: ``src`` ``[B, S, d_model]`` → memory ``[B, S, d_model]``."""
        x = _check_seq("src", src, self.d_model, self.encoder.norm.weight)
        src_key_padding_mask = _check_padding("src_key_padding_mask", src_key_padding_mask, x)
        for layer in self.encoder.layers:
            x = layer(x, key_padding_mask=src_key_padding_mask)
        return self.encoder.norm(x)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, tgt_key_padding_mask: torch.Tensor | None = None,
               memory_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The causal decoder: ``tgt`` ``[B, T, d_model]`` reading ``memory`` ``[B, S, d_model]`` → ``[B, T, d_model]``."""
        x = _check_seq("tgt", tgt, self.d_model, self.decoder.norm.weight)
        memory = _check_seq("memory", memory, self.d_model, self.decoder.norm.weight)
        if memory.shape[0] != x.shape[0]:
            raise ValueError(f"tgt and memory must have the same batch size: tgt is {tuple(x.shape)}, "
                             f"memory is {tuple(memory.shape)}")
        tgt_key_padding_mask = _check_padding("tgt_key_padding_mask", tgt_key_padding_mask, x)
        memory_key_padding_mask = _check_padding("memory_key_padding_mask", memory_key_padding_mask, memory)
        for layer in self.decoder.layers:
            x = layer(x, memory, tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask)
        return self.decoder.norm(x)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None,
                tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``src`` ``[B, S, d_model]``, ``tgt`` ``[B, T, d_model]`` → ``[B, T, d_model]``."""
        _check_seq("src", src, self.d_model, self.encoder.norm.weight)
        _check_seq("tgt", tgt, self.d_model, self.decoder.norm.weight)
        if src.shape[0] != tgt.shape[0]:
            raise ValueError(f"src and tgt must have the same batch size: src is {tuple(src.shape)}, "
                             f"tgt is {tuple(tgt.shape)}")
        memory = self.encode(src, src_key_padding_mask)
        return self.decode(tgt, memory, tgt_key_padding_mask, memory_key_padding_mask)

    # ------------------------------------------------------------------ from PyTorch
    @classmethod
    def from_torch(cls, m: nn.Transformer) -> Transformer:
        """A ``Transformer`` with the configuration and a copy of every weight of ``m``, a ``torch.nn.Transformer``
        built with ``batch_first=True`` (either ``norm_first``), on ``m``'s device and dtype, in ``m``'s
        training mode. Sizes, ``norm_first``, activation, ``layer_norm_eps``, bias and dropout are read from
        ``m``; each attention's ``in_proj_weight`` ``[3C, C]`` is split into ``q_proj``, ``k_proj``, ``v_proj``
        (and ``in_proj_bias`` likewise); everything else is copied name for name, and a weight left uncopied
        on either side is an error.
        """
        if not isinstance(m, nn.Transformer):
            raise TypeError(f"m must be a torch.nn.Transformer, got {type(m).__name__}")
        if not getattr(m, "batch_first", False):
            raise ValueError("m must be built with batch_first=True (this Transformer takes [B, L, C]); got "
                             "batch_first=False ([L, B, C]): rebuild it with batch_first=True and load its "
                             "state_dict, the weights are the same")
        enc, dec = m.encoder, m.decoder
        if not isinstance(enc, nn.TransformerEncoder) or not isinstance(dec, nn.TransformerDecoder):
            raise TypeError(f"m must have nn.Transformer's own encoder and decoder (no custom_encoder or "
                            f"custom_decoder), got {type(enc).__name__} and {type(dec).__name__}")
        if enc.norm is None or dec.norm is None or not isinstance(enc.norm, nn.LayerNorm) \
                or not isinstance(dec.norm, nn.LayerNorm):
            raise TypeError("m's encoder and decoder must each end with an nn.LayerNorm, as nn.Transformer builds")
        layers = list(enc.layers) + list(dec.layers)
        for i, layer in enumerate(layers):
            want = nn.TransformerEncoderLayer if i < len(enc.layers) else nn.TransformerDecoderLayer
            if not isinstance(layer, want):
                raise TypeError(f"m's layers must be {want.__name__}s, got {type(layer).__name__}")
        d_model, nhead = int(m.d_model), int(m.nhead)
        if not enc.layers or not dec.layers:
            raise ValueError(f"m must have at least one encoder and one decoder layer, got {len(enc.layers)} "
                             f"and {len(dec.layers)}")
        bias, eps = enc.norm.bias is not None, enc.norm.eps
        first = layers[0]
        norm_first, dim_ff = bool(first.norm_first), first.linear1.out_features
        activation, dropout = _torch_activation(first.activation), float(first.dropout.p)
        if dec.norm.eps != eps or (dec.norm.bias is not None) != bias:
            raise ValueError(f"m's decoder norm (eps={dec.norm.eps}, bias={dec.norm.bias is not None}) differs "
                             f"from its encoder norm (eps={eps}, bias={bias})")
        for i, layer in enumerate(layers):  # nn.Transformer's layers are copies; refuse any that were altered
            attns = [layer.self_attn] + ([layer.multihead_attn] if hasattr(layer, "multihead_attn") else [])
            got = (bool(layer.norm_first), layer.linear1.out_features, _act_key(_torch_activation(layer.activation)),
                   layer.norm1.eps, layer.linear1.in_features, float(layer.dropout.p),
                   [(a.embed_dim, a.num_heads) for a in attns])
            want = (norm_first, dim_ff, _act_key(activation), eps, d_model, dropout, [(d_model, nhead)] * len(attns))
            if got != want:
                raise ValueError(f"m's layer {i} differs from the others ((norm_first, dim_feedforward, activation, "
                                 f"eps, d_model, dropout, [(embed_dim, num_heads)]): expected {want}, got {got})")
            for a in attns:
                if not a._qkv_same_embed_dim or a.bias_k is not None or not a.batch_first:
                    raise ValueError(f"m's layer {i} has an attention this class does not model (separate "
                                     f"kdim/vdim, add_bias_kv or batch_first=False)")
        p = next(m.parameters())
        model = cls(d_model, nhead, len(enc.layers), len(dec.layers), dim_ff, dropout=dropout,
                    activation=activation, norm_first=norm_first, layer_norm_eps=eps, bias=bias)
        model.to(device=p.device, dtype=p.dtype)
        state = {}
        for name, t in m.state_dict().items():
            prefix, _, leaf = name.rpartition(".")
            if leaf in ("in_proj_weight", "in_proj_bias"):
                kind = leaf.rpartition("_")[2]  # weight or bias
                for proj, part in zip(("q_proj", "k_proj", "v_proj"), t.chunk(3, dim=0), strict=True):
                    state[f"{prefix}.{proj}.{kind}"] = part
            else:
                state[name] = t
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"could not copy every weight of m: ours without a source {missing}, "
                             f"m's without a destination {unexpected}")
        return model.train(m.training)


def _torch_activation(act: object) -> str | Callable[[torch.Tensor], torch.Tensor]:
    """A torch layer's ``activation`` as our name for it, or the callable itself."""
    if act is F.relu or isinstance(act, nn.ReLU):
        return "relu"
    if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
        return "gelu"
    if not callable(act):
        raise TypeError(f"m's activation must be callable, got {type(act).__name__}")
    return act


def _act_key(act: str | Callable[[torch.Tensor], torch.Tensor]) -> object:
    """Something equal for equal activations, even for module copies (``nn.Transformer`` deep-copies layers)."""
    return act if isinstance(act, str) else (type(act), repr(act) if isinstance(act, nn.Module) else act)
