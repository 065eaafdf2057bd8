"""helpers.pieces.sample: the exercise's interface, the same tokens as helpers.generate, clear input errors."""

import pytest
import torch

from helpers.generate import generate
from helpers.model import GPT as ModelGPT
from helpers.model import GPTConfig
from helpers.pieces import GPT, load_weights, sample

CFG = GPTConfig(vocab_size=17, block_size=6, n_layer=1, n_head=2, n_embd=16, dropout=0.0)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    ref = ModelGPT(CFG).eval()
    return ref, load_weights(GPT(CFG), ref).eval()


def test_same_tokens_as_generate_past_block_size(models):
    ref, ours = models
    idx = torch.randint(0, CFG.vocab_size, (2, 3), generator=torch.Generator().manual_seed(1))
    for kw in [dict(temperature=1.0), dict(temperature=0.7, top_k=4), dict(temperature=1.5, top_k=1)]:
        want = generate(ref, idx, 9, use_cache=False, generator=torch.Generator().manual_seed(2), **kw)
        for m in (ref, ours):  # .logits (helpers.model.GPT) or (logits, loss) (helpers.pieces.GPT)
            got = sample(m, idx, 9, generator=torch.Generator().manual_seed(2), **kw)
            assert got.shape == (2, 12) and torch.equal(got, want), kw


def test_zero_new_tokens_returns_the_prompt(models):
    idx = torch.tensor([[1, 2, 3]])
    assert torch.equal(sample(models[1], idx, 0), idx)


@pytest.mark.parametrize("kwargs, match", [
    (dict(idx=torch.tensor([1, 2])), "idx must be"),
    (dict(idx=torch.ones(1, 2)), "idx must be"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
    (dict(temperature=0.0), "temperature"),
    (dict(top_k=0), "top_k"),
])
def test_input_errors(models, kwargs, match):
    args = dict(idx=torch.tensor([[1, 2]]), max_new_tokens=2) | kwargs
    with pytest.raises(ValueError, match=match):
        sample(models[1], **args)
    with pytest.raises(TypeError, match="generator"):
        sample(models[1], torch.tensor([[1]]), 1, generator=0)
    with pytest.raises(TypeError, match="model"):
        sample(torch.nn.Linear(2, 2), torch.tensor([[1]]), 1)
