"""helpers.model: our GPT-2 against Hugging Face's GPT2LMHeadModel (same weights), and against itself.

References: ``transformers``' GPT-2 (eager attention, so it hands back attention weights), a closed-form
parameter count, and the model's own full forward (for the KV cache and causality).
"""

from __future__ import annotations

import math

import pytest
import torch

from helpers.model import GPT, GPTConfig, KVCache

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

TOL = 1e-4  # float32, a few layers: observed differences are ~1e-6
V, BLOCK = 61, 24


def tiny_config(**kw) -> GPTConfig:
    base = dict(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=4, n_embd=32)
    base.update(kw)
    return GPTConfig(**base)


def shifted_targets(idx: torch.Tensor) -> torch.Tensor:
    """nanoGPT's targets from HF's ``labels=idx``: the next token, -100 at the last position."""
    return torch.cat([idx[:, 1:], torch.full_like(idx[:, :1], -100)], dim=1)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A random tiny GPT2LMHeadModel, every parameter perturbed, saved in HF format; returns (folder, model)."""
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=V,
        n_positions=BLOCK,
        n_embd=32,
        n_layer=3,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
    )
    hf = GPT2LMHeadModel(cfg).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # every tensor moves, so a parameter we forget to copy shows as a mismatch
        for p in hf.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    folder = tmp_path_factory.mktemp("tiny_gpt2")
    hf.save_pretrained(folder)
    return folder, hf


@pytest.fixture(scope="module")
def idx():
    return torch.randint(0, V, (3, 17), generator=torch.Generator().manual_seed(2))


def compare_with_hf(ours: GPT, hf, idx: torch.Tensor) -> None:
    ours.eval()
    hf.eval()
    with torch.no_grad():
        ref = hf(idx, labels=idx, output_attentions=True)
        got = ours(idx, targets=shifted_targets(idx), return_attention=True)
    assert got.logits.shape == ref.logits.shape
    assert (got.logits - ref.logits).abs().max().item() < TOL
    assert abs(got.loss.item() - ref.loss.item()) < TOL
    assert len(got.attentions) == len(ref.attentions) == ours.config.n_layer
    for a, b in zip(got.attentions, ref.attentions, strict=True):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() < TOL


# ---------------------------------------------------------------------------- Hugging Face parity
def test_from_hf_matches_logits_loss_attentions(hf_folder, idx):
    _, hf = hf_folder
    compare_with_hf(GPT.from_hf(hf), hf, idx)


def test_from_pretrained_local_folder(hf_folder, idx):
    folder, hf = hf_folder
    ours = GPT.from_pretrained(folder)
    assert not ours.training  # from_pretrained hands back a model ready to evaluate
    assert ours.config.n_layer == 3 and ours.config.vocab_size == V
    compare_with_hf(ours, hf, idx)
    ours2 = GPT.from_pretrained(str(folder))  # a str works as well as a Path
    assert torch.equal(ours2.transformer.wpe.weight, ours.transformer.wpe.weight)


def test_to_hf_round_trip(hf_folder, idx, tmp_path):
    _, hf = hf_folder
    ours = GPT.from_hf(hf)
    back = ours.to_hf(attn_implementation="eager")
    compare_with_hf(ours, back, idx)
    sd_a, sd_b = hf.state_dict(), back.state_dict()
    assert sd_a.keys() == sd_b.keys()
    for k in sd_a:
        assert torch.equal(sd_a[k], sd_b[k]), k
    # and through the disk: save the exported model, load it back into ours
    back.save_pretrained(tmp_path)
    again = GPT.from_pretrained(tmp_path)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_to_hf_of_a_fresh_model_matches(idx):
    torch.manual_seed(3)
    ours = GPT(tiny_config(n_layer=3)).eval()
    compare_with_hf(ours, ours.to_hf(attn_implementation="eager"), idx)
    hf = ours.to_hf()  # transformers' default (SDPA) kernel: same logits
    with torch.no_grad():
        assert (hf(idx).logits - ours(idx).logits).abs().max().item() < TOL


def test_hf_weights_are_tied_after_to_hf():
    hf = GPT(tiny_config()).to_hf()
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()


def test_loss_ignores_minus_100(idx):
    torch.manual_seed(4)
    m = GPT(tiny_config()).eval()
    tgt = shifted_targets(idx)
    tgt[0, :5] = -100
    with torch.no_grad():
        out = m(idx, targets=tgt)
        logp = torch.log_softmax(out.logits, dim=-1)
        keep = tgt != -100
        manual = -logp[keep].gather(-1, tgt[keep][:, None]).mean()
    assert abs(out.loss.item() - manual.item()) < 1e-5


def test_no_targets_no_loss_no_attentions(idx):
    out = GPT(tiny_config())(idx)
    assert out.loss is None and out.attentions is None
    assert out.logits.shape == (*idx.shape, V)


# ---------------------------------------------------------------------------- two attention paths
def test_fused_and_explicit_attention_paths_agree(idx):
    torch.manual_seed(5)
    m = GPT(tiny_config(n_layer=3)).eval()
    with torch.no_grad():
        fast = m(idx).logits
        slow = m(idx, return_attention=True)
    assert (fast - slow.logits).abs().max().item() < 1e-5
    T = idx.shape[1]
    for w in slow.attentions:
        assert w.shape == (idx.shape[0], 4, T, T)
        assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-6)  # each row is a distribution
        assert (w.triu(diagonal=1) == 0).all()  # no weight on the future


def test_causality_future_tokens_do_not_change_the_past(idx):
    torch.manual_seed(6)
    m = GPT(tiny_config()).eval()
    t = 9
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % V
    changed[:, t + 3] = (changed[:, t + 3] + 7) % V
    with torch.no_grad():
        a, b = m(idx).logits, m(changed).logits
    assert (a[:, :t] - b[:, :t]).abs().max().item() == 0.0
    assert (a[:, t:] - b[:, t:]).abs().max().item() > 1e-3  # and the present does see it


# ---------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize("prefill", [1, 6])
def test_kv_cache_matches_full_forward(idx, prefill):
    torch.manual_seed(7)
    m = GPT(tiny_config(n_layer=3)).eval()
    with torch.no_grad():
        full = m(idx).logits
        cache = KVCache(m.config.n_layer)
        parts = [m(idx[:, :prefill], kv_cache=cache).logits]
        for t in range(prefill, idx.shape[1]):
            parts.append(m(idx[:, t : t + 1], kv_cache=cache).logits)
    assert cache.length == idx.shape[1]
    assert (torch.cat(parts, dim=1) - full).abs().max().item() < 1e-5


def test_kv_cache_with_attention_weights(idx):
    torch.manual_seed(8)
    m = GPT(tiny_config()).eval()
    with torch.no_grad():
        full = m(idx, return_attention=True)
        cache = KVCache(m.config.n_layer)
        m(idx[:, :10], kv_cache=cache)
        step = m(idx[:, 10:11], kv_cache=cache, return_attention=True)
    assert step.attentions[0].shape == (idx.shape[0], 4, 1, 11)
    assert (step.attentions[1][:, :, 0] - full.attentions[1][:, :, 10, :11]).abs().max().item() < 1e-5


def test_cache_past_block_size_is_an_error():
    m = GPT(tiny_config()).eval()
    cache = KVCache(m.config.n_layer)
    with torch.no_grad():
        m(torch.zeros(1, BLOCK - 1, dtype=torch.long), kv_cache=cache)
        with pytest.raises(ValueError, match=f"block_size={BLOCK}"):
            m(torch.zeros(1, 2, dtype=torch.long), kv_cache=cache)


def test_cache_with_wrong_number_of_layers():
    m = GPT(tiny_config(n_layer=2))
    with pytest.raises(ValueError, match="layers"):
        m(torch.zeros(1, 3, dtype=torch.long), kv_cache=KVCache(5))


# ---------------------------------------------------------------------------- tying, init, counting
def test_weight_tying():
    m = GPT(tiny_config())
    assert m.lm_head.weight is m.transformer.wte.weight
    # the shared matrix is one parameter: counted once, and trained by both uses
    assert sum(p is m.transformer.wte.weight for p in m.parameters()) == 1
    out = m(torch.randint(0, V, (2, 5)), targets=torch.randint(0, V, (2, 5)))
    out.loss.backward()
    assert m.transformer.wte.weight.grad is not None


def test_init_statistics():
    torch.manual_seed(9)
    n_layer = 8
    m = GPT(GPTConfig(vocab_size=512, block_size=64, n_layer=n_layer, n_head=4, n_embd=256))
    scaled = torch.cat([p.flatten() for n, p in m.named_parameters() if n.endswith("c_proj.weight")])
    plain = torch.cat(
        [p.flatten() for n, p in m.named_parameters() if n.endswith(("c_attn.weight", "c_fc.weight"))]
    )
    target = 0.02 / math.sqrt(2 * n_layer)
    assert abs(scaled.std().item() - target) / target < 0.02
    assert abs(plain.std().item() - 0.02) / 0.02 < 0.02
    assert abs(m.transformer.wte.weight.std().item() - 0.02) < 1e-3
    assert abs(m.transformer.wpe.weight.std().item() - 0.02) < 1e-3
    for n, p in m.named_parameters():
        if n.endswith(".bias"):
            assert torch.all(p == 0), n
        if ".ln_" in n and n.endswith(".weight") or n == "transformer.ln_f.weight":
            assert torch.all(p == 1), n


def test_untrained_loss_is_near_log_vocab():
    torch.manual_seed(10)
    vocab = 1000
    m = GPT(GPTConfig(vocab_size=vocab, block_size=32, n_layer=2, n_head=2, n_embd=64)).eval()
    x = torch.randint(0, vocab, (4, 32))
    with torch.no_grad():
        loss = m(x, targets=torch.randint(0, vocab, (4, 32))).loss.item()
    assert abs(loss - math.log(vocab)) < 0.05  # small logits: nearly uniform predictions


def gpt2_param_formula(V: int, T: int, L: int, C: int) -> int:
    """Parameters of GPT-2 with a tied head, component by component."""
    embeddings = V * C + T * C
    attn = C * 3 * C + 3 * C + C * C + C  # c_attn, c_proj (weights + biases)
    mlp = C * 4 * C + 4 * C + 4 * C * C + C  # c_fc, c_proj
    norms = 2 * 2 * C  # ln_1, ln_2 (weight + bias)
    return embeddings + L * (attn + mlp + norms) + 2 * C  # + ln_f; the head reuses wte


def test_gpt2_small_parameter_count():
    with torch.device("meta"):  # shapes only: no 500 MB of memory, no time spent on init
        ours = GPT(GPTConfig())
        hf = GPT2LMHeadModel(GPT2Config())
    expected = gpt2_param_formula(50257, 1024, 12, 768)
    assert expected == 124_439_808
    assert ours.num_parameters() == expected
    assert hf.num_parameters() == expected
    assert ours.num_parameters(non_embedding=True) == expected - 50257 * 768 - 1024 * 768


@pytest.mark.parametrize("cfg", [dict(n_layer=3, n_embd=48, n_head=6), dict(vocab_size=10, block_size=7)])
def test_param_formula_for_other_sizes(cfg):
    c = tiny_config(**cfg)
    assert GPT(c).num_parameters() == gpt2_param_formula(c.vocab_size, c.block_size, c.n_layer, c.n_embd)


def test_defaults_are_gpt2_small():
    c = GPTConfig()
    assert (c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd, c.bias) == (
        50257,
        1024,
        12,
        12,
        768,
        True,
    )


# ---------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def small():
    return GPT(tiny_config()).eval()


def test_float_ids_are_a_type_error(small):
    with pytest.raises(TypeError, match="integer token ids"):
        small(torch.zeros(1, 4))


def test_bool_ids_are_a_type_error(small):
    with pytest.raises(TypeError, match="integer token ids"):
        small(torch.zeros(1, 4, dtype=torch.bool))


def test_list_ids_are_a_type_error(small):
    with pytest.raises(TypeError, match="torch.Tensor"):
        small([[1, 2, 3]])


@pytest.mark.parametrize("bad", [V, V + 5, -1])
def test_ids_outside_vocabulary(small, bad):
    idx = torch.tensor([[0, 1, bad]])
    with pytest.raises(ValueError, match=rf"outside the vocabulary.*\[0, {V - 1}\]"):
        small(idx)


def test_sequence_longer_than_block_size(small):
    with pytest.raises(ValueError, match=f"longer than block_size={BLOCK}"):
        small(torch.zeros(1, BLOCK + 1, dtype=torch.long))
    small(torch.zeros(1, BLOCK, dtype=torch.long))  # exactly block_size is fine


def test_one_dimensional_ids(small):
    with pytest.raises(ValueError, match=r"shape \[B, T\]"):
        small(torch.zeros(4, dtype=torch.long))


def test_empty_sequence(small):
    with pytest.raises(ValueError, match="no tokens"):
        small(torch.zeros(1, 0, dtype=torch.long))


def test_int32_ids_work(small):
    a = small(torch.tensor([[1, 2, 3]], dtype=torch.int32)).logits
    b = small(torch.tensor([[1, 2, 3]])).logits
    assert torch.equal(a, b)


def test_bad_targets(small):
    x = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="shaped like idx"):
        small(x, targets=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        small(x, targets=torch.zeros(1, 4))
    with pytest.raises(ValueError, match=rf"target id {V} is outside the vocabulary"):
        small(x, targets=torch.tensor([[0, 1, V, -100]]))


@pytest.mark.parametrize(
    "kw, err, match",
    [
        (dict(n_embd=30, n_head=4), ValueError, "divisible by n_head"),
        (dict(n_layer=0), ValueError, "n_layer must be a positive int"),
        (dict(vocab_size=-3), ValueError, "vocab_size must be a positive int"),
        (dict(block_size=8.0), ValueError, "block_size must be a positive int"),
        (dict(n_head=True), ValueError, "n_head must be a positive int"),
        (dict(dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
        (dict(dropout=-0.1), ValueError, r"dropout must be in \[0, 1\)"),
        (dict(dropout="0.1"), TypeError, "dropout must be a float"),
        (dict(bias="yes"), TypeError, "bias must be a bool"),
    ],
)
def test_bad_config(kw, err, match):
    with pytest.raises(err, match=match):
        tiny_config(**kw)


def test_gpt_needs_a_config():
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT(dict(n_layer=2))


def test_from_hf_needs_a_gpt2_model():
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        GPT.from_hf(torch.nn.Linear(2, 2))


def test_from_pretrained_needs_a_name_or_path():
    with pytest.raises(TypeError, match="name_or_path"):
        GPT.from_pretrained(42)


def test_to_hf_needs_biases():
    with pytest.raises(ValueError, match="bias"):
        GPT(tiny_config(bias=False)).to_hf()


def test_config_from_hf_rejects_other_activations():
    with pytest.raises(ValueError, match="GELU"):
        GPT.config_from_hf(GPT2Config(n_layer=1, n_embd=8, n_head=2, activation_function="relu"))


def test_dropout_only_in_training_mode(idx):
    torch.manual_seed(11)
    m = GPT(tiny_config(dropout=0.3))
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(idx).logits, m(idx).logits)
        m.train()
        assert not torch.equal(m(idx).logits, m(idx).logits)


def test_from_pretrained_gpt2_from_the_hub():
    """Where the hub (or a cached copy) is reachable, "gpt2" loads as GPT-2 small; offline it is skipped."""
    try:
        m = GPT.from_pretrained("gpt2")
    except OSError as e:  # offline and not cached: transformers says it cannot find the files
        pytest.skip(f"gpt2 not reachable here: {str(e).splitlines()[0][:80]}")
    assert m.num_parameters() == 124_439_808
