"""helpers.generate: cached == uncached, sampling reproducible, sliding window, HF parity (greedy, repetition
penalty, beam search), the filters against Hugging Face's warpers, and every bad argument's error."""

import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from helpers.generate import (
    apply_repetition_penalty,
    beam_search,
    filter_logits,
    generate,
    sequence_log_prob,
    top_k_filter,
    top_p_filter,
)
from helpers.model import GPT, GPTConfig, KVCache

V = 40


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, block_size=24, n_layer=2, n_head=2, n_embd=32)).eval()


@pytest.fixture(scope="module")
def hf(model):
    return model.to_hf().eval()


def prompt(B=2, T=5, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- the cache changes nothing
@pytest.mark.parametrize("n_new", [1, 10, 19, 60])  # 60 runs well past block_size=24
def test_greedy_same_with_and_without_cache(model, n_new):
    idx = prompt()
    a = generate(model, idx, n_new, temperature=0, use_cache=True)
    b = generate(model, idx, n_new, temperature=0, use_cache=False)
    assert a.shape == (2, 5 + n_new)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :5], idx)  # the prompt comes first


@pytest.mark.parametrize("kw", [{}, {"top_k": 5}, {"top_p": 0.8, "temperature": 0.7}, {"repetition_penalty": 1.3}])
def test_sampled_same_with_and_without_cache(model, kw):
    idx = prompt()
    a = generate(model, idx, 50, use_cache=True, generator=gen(7), **kw)
    b = generate(model, idx, 50, use_cache=False, generator=gen(7), **kw)
    assert torch.equal(a, b)


def test_prompt_longer_than_block_size_slides(model):
    idx = prompt(B=1, T=40)  # block_size is 24
    a = generate(model, idx, 12, temperature=0)
    b = generate(model, idx, 12, temperature=0, use_cache=False)
    assert torch.equal(a, b) and a.shape == (1, 52)
    # sliding means: the next token depends only on the last block_size tokens
    c = generate(model, idx[:, -24:], 1, temperature=0)
    assert a[0, 40] == c[0, 24]


def test_same_seed_same_text_other_seed_other_text(model):
    idx = prompt()
    a = generate(model, idx, 30, generator=gen(3))
    b = generate(model, idx, 30, generator=gen(3))
    c = generate(model, idx, 30, generator=gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampling_uses_only_its_generator(model):
    idx = prompt()
    torch.manual_seed(0)
    a = generate(model, idx, 20, generator=gen(5))
    torch.manual_seed(123)  # the global RNG must not matter
    b = generate(model, idx, 20, generator=gen(5))
    assert torch.equal(a, b)


def test_zero_new_tokens_and_result_is_a_normal_tensor(model):
    idx = prompt()
    assert torch.equal(generate(model, idx, 0), idx)
    out = generate(model, idx, 3, temperature=0)
    assert not out.is_inference()
    model(out)  # usable in ordinary code afterwards


def test_top_k_1_is_greedy(model):
    idx = prompt()
    assert torch.equal(generate(model, idx, 15, top_k=1, generator=gen(0)), generate(model, idx, 15, temperature=0))


# ---------------------------------------------------------------- against transformers
def test_greedy_matches_transformers(model, hf):
    idx = prompt()
    ref = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=15, do_sample=False, pad_token_id=0)
    assert torch.equal(generate(model, idx, 15, temperature=0), ref)


@pytest.mark.parametrize("penalty", [0.8, 1.5, 3.0])
def test_repetition_penalty_matches_transformers_greedy(model, hf, penalty):
    idx = prompt()
    ref = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=15, do_sample=False,
                      repetition_penalty=penalty, pad_token_id=0)
    out = generate(model, idx, 15, temperature=0, repetition_penalty=penalty)
    assert torch.equal(out, ref)
    if penalty == 3.0:  # a strong penalty breaks this random model's loops (it repeats one token greedily)
        assert not torch.equal(out, generate(model, idx, 15, temperature=0))


def test_repetition_penalty_matches_processor():
    logits = torch.randn(3, V, generator=gen(0))
    ids = torch.randint(0, V, (3, 7), generator=gen(1))
    ref = RepetitionPenaltyLogitsProcessor(1.8)(ids, logits.clone())
    torch.testing.assert_close(apply_repetition_penalty(logits, ids, 1.8), ref, rtol=0, atol=0)


@pytest.mark.parametrize("k", [1, 3, V, V + 5])
def test_top_k_matches_transformers(k):
    logits = torch.randn(4, V, generator=gen(k))
    ref = TopKLogitsWarper(top_k=k)(None, logits.clone())
    assert torch.equal(torch.isinf(top_k_filter(logits, k)), torch.isinf(ref))
    assert int(torch.isfinite(top_k_filter(logits, k)).sum(-1).max()) == min(k, V)


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 1.0])
def test_top_p_matches_transformers(p):
    logits = torch.randn(4, V, generator=gen(int(p * 100)))
    ref = TopPLogitsWarper(top_p=p)(None, logits.clone())
    ours = top_p_filter(logits, p)
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    kept = torch.softmax(logits, -1).masked_fill(torch.isinf(ours), 0).sum(-1)
    assert bool((kept >= p - 1e-6).all())  # the kept set covers p of the mass
    assert torch.equal(filter_logits(logits, 3, p), top_p_filter(top_k_filter(logits, 3), p))


@pytest.mark.parametrize("early_stopping", [False, True, "never"])
@pytest.mark.parametrize("length_penalty", [1.0, 0.0, 2.0, -0.5])
@pytest.mark.parametrize("eos", [None, 3])
def test_beam_search_matches_transformers(model, hf, early_stopping, length_penalty, eos):
    for seed, K in ((1, 2), (2, 4)):
        idx = prompt(B=1, seed=seed)
        ref = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=16, num_beams=K, do_sample=False,
                          early_stopping=early_stopping, length_penalty=length_penalty, eos_token_id=eos,
                          pad_token_id=eos if eos is not None else 0)
        ours = beam_search(model, idx, 16, K, length_penalty=length_penalty, early_stopping=early_stopping,
                           eos_token_id=eos)
        assert torch.equal(ours, ref), (ours.tolist(), ref.tolist())


def test_beam_search_repetition_penalty_and_batch_match_transformers(model, hf):
    idx = prompt(B=2, seed=9)
    for K in (1, 3):
        ref = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=12, num_beams=K, do_sample=False,
                          repetition_penalty=1.4, pad_token_id=0)
        assert torch.equal(beam_search(model, idx, 12, K, repetition_penalty=1.4), ref)


def test_beam_search_properties(model):
    idx = prompt(B=1, seed=4)
    greedy = generate(model, idx, 12, temperature=0)
    assert torch.equal(beam_search(model, idx, 12, 1), greedy)  # one beam is greedy search
    for K in (2, 5):
        out, score = beam_search(model, idx, 12, K, length_penalty=0.0, return_scores=True)
        # the reported score is the sequence's log-probability
        torch.testing.assert_close(score, sequence_log_prob(model, out, 5), rtol=0, atol=1e-4)
        # cached and uncached beams agree, also past block_size (5 + 30 > 24)
        assert torch.equal(beam_search(model, idx, 30, K), beam_search(model, idx, 30, K, use_cache=False))


def test_sequence_log_prob_against_manual(model):
    ids = prompt(B=2, T=9)
    logp = torch.log_softmax(model(ids).logits, -1)
    manual = sum(logp[:, t - 1].gather(-1, ids[:, t : t + 1])[:, 0] for t in range(4, 9))
    torch.testing.assert_close(sequence_log_prob(model, ids, 4), manual, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- KVCache itself
def test_kv_cache_step_by_step_matches_full_forward(model):
    ids = prompt(B=2, T=12)
    full = model(ids).logits
    cache = KVCache(model.config.n_layer)  # no capacity: the buffers grow by doubling
    steps = [model(ids[:, :4], kv_cache=cache).logits]
    for t in range(4, 12):
        steps.append(model(ids[:, t : t + 1], kv_cache=cache).logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 12 and cache.keys[0].shape == (2, 2, 12, 16)
    assert cache.nbytes() == 2 * 2 * 2 * 2 * 16 * 12 * 4  # 2 (K,V) * layers * B * H * D * T * fp32
    assert cache.nbytes(allocated=True) >= cache.nbytes()
    cache.reorder(torch.tensor([1, 1, 0]))
    assert cache.keys[1].shape[0] == 3 and torch.equal(cache.keys[1][0], cache.keys[1][1])
    cache.reset()
    assert cache.length == 0


def test_kv_cache_bad_inputs():
    with pytest.raises(ValueError, match="n_layer"):
        KVCache(0)
    with pytest.raises(ValueError, match="capacity"):
        KVCache(2, capacity=0)
    c = KVCache(1)
    c.update(0, torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="batch size"):
        c.update(0, torch.zeros(2, 2, 1, 4), torch.zeros(2, 2, 1, 4))


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "kw, err, match",
    [
        ({"temperature": -0.1}, ValueError, "temperature"),
        ({"top_k": 0}, ValueError, "top_k"),
        ({"top_k": 2.5}, ValueError, "top_k"),
        ({"top_p": 0.0}, ValueError, "top_p"),
        ({"top_p": 1.5}, ValueError, "top_p"),
        ({"repetition_penalty": 0}, ValueError, "repetition_penalty"),
        ({"generator": 3}, TypeError, "generator"),
        ({"use_cache": "yes"}, TypeError, "use_cache"),
    ],
)
def test_generate_bad_arguments(model, kw, err, match):
    with pytest.raises(err, match=match):
        generate(model, prompt(), 3, **kw)


def test_generate_bad_inputs(model):
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, prompt(), -1)
    with pytest.raises(TypeError, match="helpers.model.GPT"):
        generate("gpt2", prompt(), 3)
    with pytest.raises(TypeError, match="integer tensor"):
        generate(model, torch.zeros(1, 3), 3)
    with pytest.raises(ValueError, match=r"shape \[B, T\]"):
        generate(model, torch.zeros(3, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="token ids"):
        generate(model, torch.tensor([[V]]), 3)


def test_beam_search_bad_arguments(model):
    idx = prompt(B=1)
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(model, idx, 3, 0)
    with pytest.raises(ValueError, match="early_stopping"):
        beam_search(model, idx, 3, 2, early_stopping="sometimes")
    with pytest.raises(ValueError, match="eos_token_id"):
        beam_search(model, idx, 3, 2, eos_token_id=V)
    with pytest.raises(TypeError, match="length_penalty"):
        beam_search(model, idx, 3, 2, length_penalty="long")


def test_filter_bad_inputs():
    with pytest.raises(TypeError, match="floating-point"):
        top_k_filter(torch.arange(5), 2)
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(torch.randn(5), -0.1)
    with pytest.raises(ValueError, match=r"\[B, V\]"):
        apply_repetition_penalty(torch.randn(2, V), torch.zeros(3, 2, dtype=torch.long), 1.2)
    with pytest.raises(ValueError, match="start"):
        sequence_log_prob(GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8)),
                          torch.zeros(1, 3, dtype=torch.long), 0)


# ---------------------------------------------------------------------- prompts of different lengths at once
@pytest.mark.parametrize("pos", ["learned", "rope"])
def test_batch_with_left_padding_equals_each_prompt_alone(pos):
    from helpers.generate import generate_batch

    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=60, block_size=64, n_layer=2, n_head=4, n_embd=32, pos=pos)).eval()
    with torch.no_grad():
        for p in m.parameters():  # away from the init, so that the greedy choices are clear-cut
            p.add_(torch.randn_like(p) * 0.3)
    prompts = [torch.randint(0, 60, (n,)) for n in [3, 9, 1, 6]]
    alone = [generate(m, p[None], 20, temperature=0)[0] for p in prompts]
    for use_cache in (True, False):
        together = generate_batch(m, prompts, 20, temperature=0, use_cache=use_cache)
        assert all(torch.equal(a, b) for a, b in zip(together, alone, strict=True))
    # the logits of a padded row are the unpadded row's, position by position (1e-5)
    idx = torch.zeros(2, 9, dtype=torch.long)
    idx[0, 6:], idx[1] = prompts[0], prompts[1]
    mask = torch.zeros(2, 9, dtype=torch.long)
    mask[0, 6:], mask[1] = 1, 1
    with torch.no_grad():
        both = m(idx, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).logits
        assert (both[0, 6:] - m(prompts[0][None]).logits[0]).abs().max() < 1e-5
        assert (both[1] - m(prompts[1][None]).logits[0]).abs().max() < 1e-5
    # sampling with a seeded generator: the same draws as row by row is not promised, but a valid sample is
    g = torch.Generator().manual_seed(0)
    out = generate_batch(m, prompts, 5, temperature=1.0, top_k=5, generator=g)
    assert [len(o) for o in out] == [len(p) + 5 for p in prompts]


def test_padding_is_checked():
    m = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=8)).eval()
    idx = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="pad on the left"):
        generate(m, idx, 2, attention_mask=torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]]))
    with pytest.raises(ValueError, match="shaped like idx"):
        generate(m, idx, 2, attention_mask=torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="does not slide"):
        generate(m, idx, 13, attention_mask=torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask must be"):
        m(idx, attention_mask=torch.ones(2, 5))


def test_kv_cache_truncate():
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32)).eval()
    x = torch.randint(0, 50, (1, 20))
    with torch.no_grad():
        cache = KVCache(2)
        m(x[:, :15], kv_cache=cache)
        cache.truncate(10)  # as speculative decoding drops rejected tokens
        assert cache.length == 10 and cache.keys[0].shape[-2] == 10
        out = m(x[:, 10:12], kv_cache=cache).logits
        assert (out - m(x[:, :12]).logits[:, 10:12]).abs().max() < 1e-5
    with pytest.raises(ValueError, match="length must be"):
        cache.truncate(13)
