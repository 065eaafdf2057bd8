"""From GPT-2 to Llama: RMSNorm, RoPE, SwiGLU and grouped-query attention, each checked against a reference,
and the course's model equal to ``transformers``' ``LlamaForCausalLM`` in both directions.

References: ``torch.nn.RMSNorm``; ``transformers``' Llama rotary embedding and ``apply_rotary_pos_emb``, its
``repeat_kv`` and the whole ``LlamaForCausalLM`` (logits within 1e-4 in float32, greedy tokens identical).
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from helpers.attention import apply_rope, repeat_kv, rope_angles, rotate_half
from helpers.generate import generate
from helpers.model import GPT, GPTConfig, KVCache, RMSNorm

transformers = pytest.importorskip("transformers")
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402

TOL = 1e-4  # logits, float32


def random_llama(rng: random.Random, vocab: int = 61) -> LlamaForCausalLM:
    """A small Llama with a configuration drawn at random: depth, heads, shared key/value heads, tying, theta,
    biases, MLP width, epsilon; weights perturbed away from the initialisation (norm weights included)."""
    head_dim = rng.choice([4, 8, 16])
    n_head = rng.choice([2, 4, 6, 8])
    n_kv = rng.choice([d for d in range(1, n_head + 1) if n_head % d == 0])
    bias = rng.random() < 0.3
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=head_dim * n_head, intermediate_size=rng.randint(8, 96),
        num_hidden_layers=rng.randint(1, 4), num_attention_heads=n_head, num_key_value_heads=n_kv,
        head_dim=head_dim, max_position_embeddings=64, rms_norm_eps=rng.choice([1e-5, 1e-6]),
        tie_word_embeddings=rng.random() < 0.5, attention_bias=bias, mlp_bias=bias,
        rope_parameters={"rope_type": "default", "rope_theta": rng.choice([10000.0, 500000.0, 1234.5])},
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    torch.manual_seed(rng.randint(0, 10**6))
    hf = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return hf


# ---------------------------------------------------------------- the pieces
@pytest.mark.parametrize("shape,eps", [((2, 5, 16), 1e-6), ((3, 64), 1e-5), ((1, 1, 7, 12), 1e-3)])
def test_rmsnorm_equals_torch(shape, eps):
    torch.manual_seed(0)
    x = torch.randn(shape) * 3 + 1
    ours, ref = RMSNorm(shape[-1], eps=eps), nn.RMSNorm(shape[-1], eps=eps)
    with torch.no_grad():
        w = torch.randn(shape[-1])
        ours.weight.copy_(w)
        ref.weight.copy_(w)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)
    y = RMSNorm(shape[-1], eps=eps)(x)  # weight 1: every row has root-mean-square 1 (up to eps)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(shape[:-1]), atol=1e-3, rtol=0)
    xb = x.bfloat16()  # a bfloat16 model: the statistics in float32, the result in bfloat16
    assert ours.bfloat16()(xb).dtype == torch.bfloat16
    torch.testing.assert_close(ours(xb).float(), ref(xb.float()), atol=5e-2, rtol=2e-2)


@pytest.mark.parametrize("head_dim,theta", [(8, 10000.0), (16, 500000.0), (64, 10000.0)])
def test_rope_equals_transformers(head_dim, theta):
    cfg = LlamaConfig(hidden_size=head_dim * 2, num_attention_heads=2, head_dim=head_dim,
                      max_position_embeddings=512, rope_parameters={"rope_type": "default", "rope_theta": theta})
    rotary = modeling_llama.LlamaRotaryEmbedding(cfg)
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 300, head_dim), torch.randn(2, 3, 300, head_dim)
    pos = torch.arange(7, 307)
    cos_ref, sin_ref = rotary(q, pos[None])
    cos, sin = rope_angles(pos, head_dim, theta)
    torch.testing.assert_close(cos, cos_ref[0], atol=0, rtol=0)
    torch.testing.assert_close(sin, sin_ref[0], atol=0, rtol=0)
    q_ref, k_ref = modeling_llama.apply_rotary_pos_emb(q, k, cos_ref, sin_ref)
    torch.testing.assert_close(apply_rope(q, cos, sin), q_ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(apply_rope(k, cos, sin), k_ref, atol=1e-6, rtol=1e-6)


def test_rope_is_a_rotation_and_scores_depend_only_on_the_offset():
    torch.manual_seed(0)
    D = 16
    q, k = torch.randn(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64)
    cos, sin = (t.double() for t in rope_angles(200, D))  # float32 angles, as transformers makes them
    rq, rk = apply_rope(q.expand(200, D), cos, sin), apply_rope(k.expand(200, D), cos, sin)
    # a rotation keeps lengths (to float32's rounding of cos and sin)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(200), atol=1e-6, rtol=0)
    # the score of a query at m and a key at n depends on n - m only: equal along each diagonal
    assert (rq @ rk.T).std().item() > 0.5  # ... while scores at different offsets differ
    for offset in (0, 1, 5, 37):
        scores = (rq[: 200 - offset] * rk[offset:]).sum(-1)
        torch.testing.assert_close(scores, scores[0].expand_as(scores), atol=1e-4, rtol=0)
    # rotate_half is a quarter turn of every pair: twice is a half turn
    torch.testing.assert_close(rotate_half(rotate_half(q)), -q)
    with pytest.raises(ValueError, match="even"):
        rope_angles(4, 7)
    with pytest.raises(ValueError, match="cos and sin"):
        apply_rope(q.expand(3, D), cos, sin)


def test_repeat_kv_equals_transformers():
    x = torch.randn(2, 3, 5, 4)
    for n in (1, 2, 4):
        torch.testing.assert_close(repeat_kv(x, n), modeling_llama.repeat_kv(x, n), atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"\[B, H_kv, T, D\]"):
        repeat_kv(x[0], 2)


def test_swiglu_matches_gelu_parameter_count_and_gqa_shrinks_the_cache():
    base = dict(vocab_size=65, block_size=64, n_layer=2, n_head=8, n_embd=96, bias=False)
    gelu, swiglu = GPT(GPTConfig(**base)), GPT(GPTConfig(**base, mlp="swiglu"))
    mlp = [sum(p.numel() for p in m.transformer.h[0].mlp.parameters()) for m in (gelu, swiglu)]
    assert abs(mlp[1] - mlp[0]) / mlp[0] < 0.01, mlp  # 3 x C x 8C/3 against 2 x C x 4C
    idx = torch.randint(0, 65, (2, 20))
    sizes = {}
    for kv in (8, 4, 2, 1):
        model = GPT(GPTConfig(**base, n_kv_head=kv)).eval()
        cache = KVCache(2)
        model(idx, kv_cache=cache)
        sizes[kv] = cache.nbytes()
    assert sizes[8] == 2 * 2 * 2 * 8 * 20 * 12 * 4  # K and V x layers x batch x heads x T x head_dim x 4 bytes
    assert [sizes[8] // sizes[kv] for kv in (8, 4, 2, 1)] == [1, 2, 4, 8]


def test_config_validates():
    with pytest.raises(ValueError, match="divisor of n_head"):
        GPTConfig(n_head=4, n_embd=32, n_kv_head=3)
    with pytest.raises(ValueError, match="norm must be one of"):
        GPTConfig(norm="batchnorm")
    with pytest.raises(ValueError, match="pos must be one of"):
        GPTConfig(pos="alibi")
    with pytest.raises(ValueError, match="even"):
        GPTConfig(n_head=4, n_embd=12, pos="rope")
    with pytest.raises(ValueError, match="rope_theta"):
        GPTConfig(rope_theta=0.5)
    mixed = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8, norm="rmsnorm"))
    with pytest.raises(ValueError, match="neither GPT-2"):
        mixed.to_hf()
    assert GPTConfig().hidden == 4 * 768 and GPTConfig(mlp="swiglu").hidden == 2048


# ---------------------------------------------------------------- the whole model against Llama
@pytest.mark.parametrize("seed", range(6))
def test_llama_both_directions_on_random_configurations(seed, tmp_path):
    rng = random.Random(1000 + seed)
    hf = random_llama(rng)
    c = hf.config
    ours = GPT.from_hf(hf).eval()
    assert ours.config.kv_heads == c.num_key_value_heads and ours.config.tie_embeddings == c.tie_word_embeddings
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters())
    idx = torch.randint(0, c.vocab_size, (2, rng.randint(5, 40)))
    with torch.no_grad():
        ref = hf(idx).logits
        assert (ours(idx).logits - ref).abs().max().item() < TOL
        back = ours.to_hf()
        assert isinstance(back, LlamaForCausalLM)
        assert (back.eval()(idx).logits - ref).abs().max().item() < TOL
        back.save_pretrained(tmp_path / "hf")
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
        assert isinstance(loaded, LlamaForCausalLM)
        assert (loaded(idx).logits - ref).abs().max().item() < TOL
        assert (GPT.from_pretrained(tmp_path / "hf")(idx).logits - ref).abs().max().item() < TOL
        ours.save_pretrained(tmp_path / "own")  # the course's own folder keeps the configuration too
        assert (GPT.from_pretrained(tmp_path / "own")(idx).logits - ref).abs().max().item() < TOL


@pytest.mark.parametrize("seed", range(3))
def test_kv_cache_and_greedy_generation_equal_transformers(seed):
    hf = random_llama(random.Random(2000 + seed))
    ours = GPT.from_hf(hf).eval()
    prompt = torch.randint(0, hf.config.vocab_size, (1, 6))
    with torch.no_grad():
        full = ours(torch.cat([prompt, prompt], 1)).logits  # recomputed
        cache = KVCache(ours.config.n_layer)
        first = ours(prompt, kv_cache=cache).logits
        steps = [ours(prompt[:, i:i + 1], kv_cache=cache).logits for i in range(6)]  # cached, one at a time
    torch.testing.assert_close(torch.cat([first, *steps], 1), full, atol=1e-5, rtol=1e-5)
    out = generate(ours, prompt, 25, temperature=0)
    ref = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=25, do_sample=False,
                      eos_token_id=None, pad_token_id=0)
    assert torch.equal(out, ref)


# ---------------------------------------------------------------- the head-to-head (helpers.llama)
def test_variants_have_gpt2s_parameter_count():
    from helpers.llama import VARIANTS, variant_config

    counts = {name: GPT(variant_config(name, 65)).num_parameters() for name in VARIANTS}
    for name, n in counts.items():
        assert abs(n - counts["GPT-2"]) / counts["GPT-2"] < 0.01, (name, n, counts["GPT-2"])
    llama = variant_config("Llama", 65)
    assert (llama.norm, llama.pos, llama.mlp, llama.kv_heads) == ("rmsnorm", "rope", "swiglu", 2)
    with pytest.raises(ValueError, match="unknown variant"):
        variant_config("Mamba", 65)


def test_kv_cache_bytes_at_real_sizes():
    from helpers.llama import kv_cache_bytes

    assert kv_cache_bytes(32, 8, 128) == 131_072  # Llama-3-8B, bfloat16, one token
    assert kv_cache_bytes(32, 32, 128) == 4 * 131_072  # one key/value head per query head
    with pytest.raises(ValueError, match="n_kv_head"):
        kv_cache_bytes(32, 0, 128)


def test_heldout_bpc_and_a_tiny_run(tmp_path):
    import json
    import math

    from helpers.data import shakespeare
    from helpers.llama import heldout_bpc, load_results, run_variant, summarise
    from helpers.tokenizer import CharTokenizer

    tok = CharTokenizer.from_text(shakespeare("all"))
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)).eval()
    text = shakespeare("val")
    ids = torch.tensor(tok.encode(text[: 4 * 16 + 1]))
    with torch.no_grad():
        logits = model(ids[:-1].view(4, 16)).logits
        ref = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[1:]).item() / math.log(2)
    assert heldout_bpc(model, tok, text, windows=4) == pytest.approx(ref, rel=1e-5)

    row = run_variant("Llama", 0, max_iters=2, eval_interval=1, eval_iters=1, n_layer=1, n_embd=32, block_size=32,
                      batch_size=4)
    assert row["variant"] == "Llama" and row["steps"] == 2 and row["tokens_per_s"] > 0
    assert 0 < row["val_bpc"] < math.log2(tok.vocab_size) + 1 and len(row["curve"]) >= 2
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"rows": [row], "summary": summarise([row]), "base": {}, "command": "x"}))
    assert load_results(path)["rows"][0]["seed"] == 0
    path.write_text("{}")
    with pytest.raises(ValueError, match="lacks"):
        load_results(path)


def test_the_committed_head_to_head():
    from helpers.llama import VARIANTS, load_results, summarise

    result = load_results()
    assert {r["variant"] for r in result["rows"]} == set(VARIANTS)
    assert all(len([r for r in result["rows"] if r["variant"] == v]) >= 3 for v in VARIANTS)  # seeds
    assert summarise(result["rows"]) == result["summary"]


def test_checkpoints_of_every_configuration(tmp_path):
    """GPT-2 and Llama shapes are saved as transformers folders; an in-between one in the course's own format; all
    load back with the same logits."""
    from helpers.tokenizer import CharTokenizer
    from helpers.train import load_checkpoint, save_checkpoint

    tok = CharTokenizer.from_text("abcdefgh ")
    idx = torch.randint(0, tok.vocab_size, (1, 12))
    shapes = {"gpt2": {}, "llama": dict(norm="rmsnorm", pos="rope", mlp="swiglu", n_kv_head=1, bias=False),
              "between": dict(norm="rmsnorm", n_kv_head=1)}
    for name, extra in shapes.items():
        model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16, **extra)).eval()
        assert model.has_hf_class() == (name != "between")
        save_checkpoint(tmp_path / name, model, tok)
        kind = __import__("json").loads((tmp_path / name / "config.json").read_text())["model_type"]
        assert kind == {"gpt2": "gpt2", "llama": "llama", "between": "transformers-by-hand-gpt"}[name]
        loaded, _, _ = load_checkpoint(tmp_path / name)
        with torch.no_grad():
            torch.testing.assert_close(loaded(idx).logits, model(idx).logits, atol=1e-5, rtol=1e-5)
