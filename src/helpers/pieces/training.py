"""The reference for notebook 07's build exercise: one training step, and the held-out loss of any model.

- ``train_step(model, optimizer, x, y, grad_clip=1.0) -> float``: training mode, zero the gradients, forward
  (``model(x, y)`` returns ``(logits, loss)``), backward, clip the gradient's total norm to ``grad_clip``,
  ``optimizer.step()``; returns the loss (before the step) as a Python float. This is what
  ``helpers.train.train`` does inside its loop, with the interface the learner writes.
- ``heldout_loss(model, data, batch_size, block_size, iters, seed)``: the mean loss over fixed random windows
  of ``data``, in eval mode and without gradients; for any model whose forward returns ``(logits, loss)`` (or
  an object with ``.loss``, as ``helpers.model.GPT``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..data import get_batch

__all__ = ["train_step", "heldout_loss"]


def _loss_of(out: object) -> torch.Tensor:
    loss = out[1] if isinstance(out, (tuple, list)) else getattr(out, "loss", None)
    if not isinstance(loss, torch.Tensor):
        raise TypeError("model(x, y) must return (logits, loss) with the loss as a tensor, got "
                        f"{type(out).__name__}")
    return loss


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               grad_clip: float = 1.0) -> float:
    """One step of training on the batch ``(x [B, T], y [B, T])``; returns the batch's loss (a float, nats).

    Training mode; zero the gradients (``.grad`` may hold anything when this is called); forward
    ``model(x, y) -> (logits, loss)``; backward; clip the gradients' total norm to ``grad_clip``; step.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if isinstance(grad_clip, bool) or not isinstance(grad_clip, (int, float)) or not grad_clip > 0:
        raise ValueError(f"grad_clip must be a positive number, got {grad_clip!r}")
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = _loss_of(model(x, y))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def heldout_loss(model: nn.Module, data: torch.Tensor, batch_size: int = 32, block_size: int = 64,
                 iters: int = 20, seed: int = 0) -> float:
    """Mean loss (nats per token) over ``iters`` batches of random windows of ``data``, drawn from ``seed``.

    Eval mode (no dropout), no gradients; the model's mode is restored afterwards. The same seed draws the
    same windows, so two models evaluated with it are compared on the same text.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive int, got {iters!r}")
    g = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for _ in range(iters):
            x, y = get_batch(data, batch_size, block_size, generator=g)
            total += _loss_of(model(x, y)).item()
    finally:
        model.train(was_training)
    loss = total / iters
    if not math.isfinite(loss):
        raise ValueError("the held-out loss is not finite: the model's weights hold NaN or inf")
    return loss
