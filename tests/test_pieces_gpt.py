"""helpers.pieces.gpt: the reference Block and GPT of notebooks 04-05 compute what helpers.model computes."""

from __future__ import annotations

import pytest
import torch

from helpers.model import GPT as ModelGPT
from helpers.model import GPTConfig
from helpers.pieces import GPT, Block, init_gpt2_, load_weights

CFG = GPTConfig(vocab_size=23, block_size=12, n_layer=2, n_head=4, n_embd=32)


def test_block_matches_helpers_model_block():
    torch.manual_seed(0)
    ref = ModelGPT(CFG).eval()
    mine = Block(CFG).eval()
    mine.load_state_dict(ref.transformer.h[0].state_dict())
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        assert torch.allclose(mine(x), ref.transformer.h[0](x)[0], atol=1e-6)


def test_gpt_matches_helpers_model_gpt_names_and_numbers():
    torch.manual_seed(0)
    ref = ModelGPT(CFG).eval()
    mine = GPT(CFG).eval()
    assert list(mine.state_dict()) == list(ref.state_dict())
    load_weights(mine, ref)
    idx = torch.randint(0, 23, (3, 12))
    y = torch.randint(0, 23, (3, 12))
    with torch.no_grad():
        logits, loss = mine(idx, y)
        out = ref(idx, targets=y)
        assert torch.allclose(logits, out.logits, atol=1e-5) and torch.allclose(loss, out.loss, atol=1e-6)
        assert mine(idx)[1] is None
    assert mine.lm_head.weight is mine.transformer.wte.weight
    assert sum(p.numel() for p in mine.parameters()) == ref.num_parameters()


def test_gpt_init_is_gpt2s():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=6, n_head=4, n_embd=128))
    assert abs(model.transformer.wte.weight.std().item() - 0.02) < 2e-3
    proj = model.transformer.h[0].mlp.c_proj.weight.std().item()
    assert abs(proj - 0.02 / (2 * 6) ** 0.5) < 1e-3
    assert model.transformer.h[0].attn.c_attn.bias.abs().max().item() == 0.0
    with pytest.raises(ValueError, match="n_layer"):
        init_gpt2_(model, 0)


def test_load_weights_from_hugging_face():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=31, n_positions=16, n_embd=32, n_layer=2, n_head=4,
                                    bos_token_id=0, eos_token_id=0)).eval()
    mine = load_weights(GPT(GPTConfig(vocab_size=31, block_size=16, n_layer=2, n_head=4, n_embd=32)), hf).eval()
    idx = torch.randint(0, 31, (2, 9))
    with torch.no_grad():
        assert torch.allclose(mine(idx)[0], hf(idx).logits, atol=1e-5)


def test_dropout_is_on_in_training_and_off_in_eval():
    cfg = GPTConfig(vocab_size=23, block_size=12, n_layer=2, n_head=4, n_embd=32, dropout=0.3)
    model = GPT(cfg)
    idx = torch.randint(0, 23, (2, 10))
    with torch.no_grad():
        assert not torch.equal(model.train()(idx)[0], model(idx)[0])
        assert torch.equal(model.eval()(idx)[0], model(idx)[0])


def test_inputs_are_validated():
    with pytest.raises(TypeError, match="GPTConfig"):
        Block({"n_embd": 8})
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT(None)
    model = GPT(CFG)
    with pytest.raises(ValueError, match="token ids"):
        model(torch.randn(2, 3))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 13, dtype=torch.long))
    with pytest.raises(ValueError, match="shaped like idx"):
        model(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="x must be a tensor"):
        Block(CFG)(torch.randn(4, 32))
    with pytest.raises(ValueError, match="parameter names differ"):
        load_weights(GPT(CFG), torch.nn.Linear(2, 2))
