"""helpers.finetune (LoRA by hand) against the peft package and against the formula: the same base and the same
A and B give the same outputs as peft's LoRA; the merged weight is W + (alpha / r) B A; merge and unmerge are
inverses; a whole GPT with adapters, merged, gives the same logits, and survives safetensors."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from helpers.finetune import (
    LoRALinear,
    apply_lora,
    count_trainable,
    lora_parameters,
    merge_lora,
    unmerge_lora,
)
from helpers.model import GPT, GPTConfig

TOL = 1e-6  # float64 below; in float32 the same comparisons agree within about 1e-6 relative


class Two(nn.Module):
    """A small module with a layer to adapt (``lin``) and one to leave alone (``out``)."""

    def __init__(self, n_in: int, n_out: int, bias: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(n_in, n_out, bias=bias)
        self.out = nn.Linear(n_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.lin(x)))


def _randomize_lora(layer: LoRALinear, g: torch.Generator) -> None:
    with torch.no_grad():  # B starts at zero: give it values, or every comparison is trivially base == base
        layer.A.copy_(torch.randn(layer.A.shape, generator=g, dtype=layer.A.dtype))
        layer.B.copy_(torch.randn(layer.B.shape, generator=g, dtype=layer.B.dtype))


# (in, out, r, alpha, bias): square and not, r = 1 and r = the smallest side, alpha below, equal to, above r
CASES = [(5, 7, 1, 1.0, True), (16, 16, 4, 8.0, False), (32, 12, 3, 5.5, True), (24, 40, 8, 16.0, True),
         (9, 3, 3, 32.0, False), (64, 48, 6, 0.5, True)]


@pytest.mark.parametrize("n_in, n_out, r, alpha, bias", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_lora_linear_equals_peft(n_in, n_out, r, alpha, bias, seed):
    g = torch.Generator().manual_seed(1000 * seed + n_in)
    torch.manual_seed(seed)
    ours = Two(n_in, n_out, bias).double()
    theirs = Two(n_in, n_out, bias).double()
    theirs.load_state_dict(ours.state_dict())  # the same base weights
    ours.lin = LoRALinear(ours.lin, r, alpha)
    _randomize_lora(ours.lin, g)
    peft_model = get_peft_model(theirs, LoraConfig(r=r, lora_alpha=alpha, target_modules=["lin"],
                                                   lora_dropout=0.0, bias="none"))
    pl = peft_model.base_model.model.lin
    assert pl.scaling["default"] == pytest.approx(alpha / r)
    with torch.no_grad():  # the same A and B: peft keeps A as lora_A's weight [r, in], B as lora_B's [out, r]
        pl.lora_A["default"].weight.copy_(ours.lin.A)
        pl.lora_B["default"].weight.copy_(ours.lin.B)
    for shape in [(n_in,), (4, n_in), (2, 5, n_in)]:
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        torch.testing.assert_close(ours.lin(x), pl(x), rtol=0, atol=TOL)
        torch.testing.assert_close(ours(x), peft_model(x), rtol=0, atol=TOL)
    # trainable parameters: A and B in both (peft freezes the whole base model, the other layer too)
    assert {n for n, p in peft_model.named_parameters() if p.requires_grad} == {
        "base_model.model.lin.lora_A.default.weight", "base_model.model.lin.lora_B.default.weight"}
    # the same weight update, and merged weights equal to peft's merge_and_unload
    torch.testing.assert_close(ours.lin.delta_weight(), pl.get_delta_weight("default"), rtol=0, atol=TOL)
    merged_peft = peft_model.merge_and_unload()
    torch.testing.assert_close(ours.lin.merged().weight, merged_peft.lin.weight, rtol=0, atol=TOL)


def test_lora_linear_float32_agrees_with_peft():
    g = torch.Generator().manual_seed(7)
    base = nn.Linear(48, 80)
    ours = LoRALinear(base, 4, 8.0)
    _randomize_lora(ours, g)
    peft_model = get_peft_model(nn.Sequential(nn.Linear(48, 80)), LoraConfig(r=4, lora_alpha=8, target_modules=["0"]))
    pl = peft_model.base_model.model[0]
    with torch.no_grad():
        pl.base_layer.weight.copy_(base.weight)
        pl.base_layer.bias.copy_(base.bias)
        pl.lora_A["default"].weight.copy_(ours.A)
        pl.lora_B["default"].weight.copy_(ours.B)
    x = torch.randn(6, 48, generator=g)
    torch.testing.assert_close(ours(x), pl(x), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("n_in, n_out, r, alpha, bias", CASES)
def test_merged_weight_is_the_formula(n_in, n_out, r, alpha, bias):
    g = torch.Generator().manual_seed(n_out)
    layer = LoRALinear(nn.Linear(n_in, n_out, bias=bias).double(), r, alpha)
    _randomize_lora(layer, g)
    W = layer.base.weight.detach().clone()
    merged = layer.merged()
    assert type(merged) is nn.Linear and merged.weight.shape == (n_out, n_in)
    torch.testing.assert_close(merged.weight, W + (alpha / r) * layer.B @ layer.A, rtol=0, atol=TOL)
    if bias:
        assert torch.equal(merged.bias, layer.base.bias)
    else:
        assert merged.bias is None
    x = torch.randn(3, n_in, generator=g, dtype=torch.float64)
    torch.testing.assert_close(merged(x), layer(x), rtol=0, atol=TOL)
    torch.testing.assert_close(layer(x), x @ W.T + (layer.base.bias if bias else 0)
                               + (alpha / r) * x @ layer.A.T @ layer.B.T, rtol=0, atol=TOL)
    assert torch.equal(layer.base.weight, W)  # merged() leaves the layer itself alone


def test_new_adapter_is_the_base_and_only_a_b_train():
    base = nn.Linear(10, 6)
    x = torch.randn(4, 10)
    expected = base(x)
    layer = LoRALinear(base, 2, 4)
    assert torch.equal(layer(x), expected)  # B = 0: the wrapped layer starts out as the base
    assert layer.A.shape == (2, 10) and layer.B.shape == (6, 2) and not layer.B.any() and layer.A.any()
    assert count_trainable(layer) == 2 * 10 + 6 * 2
    assert not any(p.requires_grad for p in base.parameters())


def test_merge_unmerge_round_trip():
    g = torch.Generator().manual_seed(3)
    layer = LoRALinear(nn.Linear(12, 20).double(), 4, 6.0)
    _randomize_lora(layer, g)
    W0 = layer.base.weight.detach().clone()
    x = torch.randn(5, 12, generator=g, dtype=torch.float64)
    y = layer(x)
    layer.merge()
    assert layer.merged_in
    torch.testing.assert_close(layer.base.weight, W0 + layer.delta_weight(), rtol=0, atol=TOL)
    torch.testing.assert_close(layer(x), y, rtol=0, atol=TOL)  # folded in: one matmul, same output
    layer.merge()  # a second merge is a no-op, not a double update
    torch.testing.assert_close(layer(x), y, rtol=0, atol=TOL)
    torch.testing.assert_close(layer.merged().weight, layer.base.weight, rtol=0, atol=0)
    layer.unmerge()
    assert not layer.merged_in
    torch.testing.assert_close(layer.base.weight, W0, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(x), y, rtol=0, atol=TOL)
    layer.unmerge()  # and a second unmerge too
    torch.testing.assert_close(layer.base.weight, W0, rtol=0, atol=1e-12)


def _tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=40, block_size=32, n_layer=2, n_head=4, n_embd=32, dropout=0.0)).eval()


def _adapted_gpt(seed: int = 0) -> tuple[GPT, list[str]]:
    model = _tiny_gpt(seed)
    names = apply_lora(model, targets=("attn.c_attn", "attn.c_proj", "mlp.c_fc"), r=4, alpha=8)
    g = torch.Generator().manual_seed(seed + 100)
    for m in model.modules():
        if isinstance(m, LoRALinear):
            _randomize_lora(m, g)
            with torch.no_grad():
                m.B.mul_(0.1)
    return model, names


def test_whole_gpt_merge_gives_the_same_logits(tmp_path):
    model, names = _adapted_gpt()
    assert names == [f"transformer.h.{i}.{t}" for i in range(2) for t in ("attn.c_attn", "attn.c_proj", "mlp.c_fc")]
    idx = torch.randint(0, 40, (3, 32), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        before = model(idx).logits
        plain = model(idx).logits
    assert count_trainable(model) == sum(p.numel() for p in lora_parameters(model))
    # keep_adapters: folded in, still LoRALinear, and unmerge takes it back out
    merge_lora(model, keep_adapters=True)
    assert all(m.merged_in for m in model.modules() if isinstance(m, LoRALinear))
    with torch.no_grad():
        torch.testing.assert_close(model(idx).logits, before, rtol=0, atol=1e-5)
    unmerge_lora(model)
    with torch.no_grad():
        torch.testing.assert_close(model(idx).logits, plain, rtol=0, atol=1e-5)
    # merge for good: plain nn.Linear layers, the same logits within 1e-5 (float32, two layers)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert all(type(model.get_submodule(n)) is nn.Linear for n in names)
    assert set(model.state_dict()) == set(_tiny_gpt().state_dict())
    with torch.no_grad():
        merged = model(idx).logits
    torch.testing.assert_close(merged, before, rtol=0, atol=1e-5)
    # safetensors round trip through the course's own save_pretrained / from_pretrained
    model.save_pretrained(tmp_path / "merged")
    assert (tmp_path / "merged" / "model.safetensors").is_file()
    loaded = GPT.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        assert torch.equal(loaded(idx).logits, merged)


def test_saving_unmerged_adapters_is_refused_on_load(tmp_path):
    model, _ = _adapted_gpt(1)
    model.save_pretrained(tmp_path / "unmerged")  # state_dict holds base.weight, A, B: not a plain GPT's keys
    with pytest.raises(ValueError, match="does not match its config"):
        GPT.from_pretrained(tmp_path / "unmerged")


def test_adapted_gpt_equals_peft_on_the_whole_model():
    ours, _ = _adapted_gpt(2)
    theirs = _tiny_gpt(2)
    peft_model = get_peft_model(theirs, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                                                   lora_dropout=0.0))
    layers = dict(peft_model.base_model.model.named_modules())
    for name, m in ours.named_modules():
        if isinstance(m, LoRALinear):
            with torch.no_grad():
                layers[name].lora_A["default"].weight.copy_(m.A)
                layers[name].lora_B["default"].weight.copy_(m.B)
    # peft also wrapped mlp.c_proj (its names match "c_proj"); zero B there makes it the base layer
    for name, m in layers.items():
        if name.endswith("mlp.c_proj"):
            assert not m.lora_B["default"].weight.any()
    idx = torch.randint(0, 40, (2, 32), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx).logits, peft_model(idx).logits, rtol=0, atol=1e-5)


def test_apply_lora_train_and_errors():
    model = nn.Sequential()
    model.add_module("body", nn.Linear(8, 8))
    model.add_module("head", nn.Linear(8, 2))
    names = apply_lora(model, "body", r=2, alpha=4, train=("head.",))
    assert names == ["body"] and isinstance(model.body, LoRALinear)
    assert count_trainable(model) == 2 * 8 + 8 * 2 + 8 * 2 + 2  # A, B and the head
    with pytest.raises(ValueError, match="already hold LoRA adapters"):
        apply_lora(model, "body")
    with pytest.raises(ValueError, match="targets is empty"):
        apply_lora(nn.Linear(4, 4), ())
    with pytest.raises(ValueError, match="no nn.Linear matches"):
        apply_lora(_tiny_gpt(), ("attn.q_proj",))
    with pytest.raises(TypeError, match="nn.Module"):
        apply_lora("not a model", ("x",))
    fresh = _tiny_gpt()
    with pytest.raises(ValueError, match="larger than the layer's smallest side"):
        apply_lora(fresh, ("attn.c_proj",), r=33)
    assert count_trainable(fresh) == fresh.num_parameters()  # a refused call leaves the model as it was
    assert not any(isinstance(m, LoRALinear) for m in fresh.modules())
    with pytest.raises(ValueError, match="unmerged"):
        unmerge_lora(fresh)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"r": 0, "alpha": 1.0}, ValueError, "r must be a positive int"),
    ({"r": 2.0, "alpha": 1.0}, ValueError, "r must be a positive int"),
    ({"r": True, "alpha": 1.0}, ValueError, "r must be a positive int"),
    ({"r": 9, "alpha": 1.0}, ValueError, "larger than the layer's smallest side"),
    ({"r": 2, "alpha": 0}, ValueError, "alpha must be a positive number"),
    ({"r": 2, "alpha": "16"}, ValueError, "alpha must be a positive number"),
])
def test_lora_linear_input_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        LoRALinear(nn.Linear(8, 12), **kwargs)


def test_lora_linear_rejects_non_linear_and_bad_inputs():
    with pytest.raises(TypeError, match="base must be an nn.Linear"):
        LoRALinear(nn.Conv1d(3, 3, 1), 1, 1.0)
    layer = LoRALinear(nn.Linear(8, 4), 2, 2.0)
    with pytest.raises(ValueError, match="last dimension 8"):
        layer(torch.randn(2, 7))
