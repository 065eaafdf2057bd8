"""helpers.pieces.training: the reference training step is helpers.train's step; the held-out loss is fair."""

from __future__ import annotations

import pytest
import torch

from helpers.model import GPTConfig
from helpers.pieces import GPT, heldout_loss, train_step

CFG = GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)


def _model(seed=0):
    torch.manual_seed(seed)
    return GPT(CFG)


def test_train_step_is_zero_forward_backward_clip_step():
    a, b = _model(), _model()
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2)
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = torch.randint(0, 13, (4, 8), generator=g), torch.randint(0, 13, (4, 8), generator=g)
        got = train_step(a, opt_a, x, y, grad_clip=0.5)
        opt_b.zero_grad()
        _, loss = b(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(b.parameters(), 0.5)
        opt_b.step()
        assert isinstance(got, float) and got == pytest.approx(loss.item(), rel=1e-6)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_train_step_puts_the_model_in_training_mode_and_checks_inputs():
    m = _model().eval()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    x = torch.zeros(2, 8, dtype=torch.long)
    train_step(m, opt, x, x)
    assert m.training
    with pytest.raises(ValueError, match="grad_clip"):
        train_step(m, opt, x, x, grad_clip=0)
    with pytest.raises(TypeError, match="optimizer"):
        train_step(m, "adam", x, x)


def test_heldout_loss_is_deterministic_restores_the_mode_and_needs_no_grad():
    m = _model()
    data = torch.randint(0, 13, (500,), generator=torch.Generator().manual_seed(0))
    l1 = heldout_loss(m, data, batch_size=4, block_size=8, iters=3, seed=5)
    l2 = heldout_loss(m, data, batch_size=4, block_size=8, iters=3, seed=5)
    assert l1 == l2 and m.training
    assert abs(l1 - torch.log(torch.tensor(13.0)).item()) < 0.3
    with pytest.raises(ValueError, match="iters"):
        heldout_loss(m, data, iters=0)
