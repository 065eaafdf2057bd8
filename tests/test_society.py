"""helpers.society against independent references: brute-force AUC, F.cross_entropy, a hand-rolled greedy loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.model import GPT, GPTConfig
from helpers.society import (
    continuation_logprobs,
    continuation_match,
    copied_fraction,
    greedy_continue,
    roc_auc,
    texts_loss,
    threshold_attack,
    window_losses,
    word_counts,
)
from helpers.tokenizer import CharTokenizer

TEXT = "".join(f"LINE {i}:\nthe cat sat on mat {i % 7}, and so on.\n" for i in range(60))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tok = CharTokenizer(sorted(set(TEXT)))
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()
    return model, tok


def _pairwise_auc(m, n):
    m, n = np.asarray(m, float), np.asarray(n, float)
    less = (m[:, None] < n[None, :]).sum()
    ties = (m[:, None] == n[None, :]).sum()
    return (less + 0.5 * ties) / (len(m) * len(n))


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_pairwise_count(seed):
    rng = np.random.default_rng(seed)
    m = rng.normal(0.0, 1.0, 30 + seed).round(1)  # rounding makes ties
    n = rng.normal(0.5, 1.0, 25).round(1)
    assert abs(roc_auc(m, n) - _pairwise_auc(m, n)) < 1e-12


def test_roc_auc_extremes():
    assert roc_auc([0, 1], [2, 3]) == 1.0
    assert roc_auc([2, 3], [0, 1]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5


def test_threshold_attack_matches_brute_force():
    rng = np.random.default_rng(1)
    m, n = rng.normal(0, 1, 40), rng.normal(1, 1, 50)
    res = threshold_attack(m, n)
    best = max(((m <= t).sum() + (n > t).sum()) / 90 for t in np.concatenate([m, n, [-np.inf]]))
    assert abs(res["accuracy"] - best) < 1e-12
    t = res["threshold"]
    assert abs(((m <= t).sum() + (n > t).sum()) / 90 - best) < 1e-12
    assert abs(res["tpr"] - (m <= t).mean()) < 1e-12 and abs(res["fpr"] - (n <= t).mean()) < 1e-12
    assert abs(res["auc"] - _pairwise_auc(m, n)) < 1e-12
    assert threshold_attack([0.0, 0.1], [5.0, 6.0])["accuracy"] == 1.0


def test_window_losses_match_cross_entropy(tiny):
    model, tok = tiny
    ids = torch.tensor(tok.encode(TEXT))
    T = 16
    got = window_losses(model, tok, TEXT, n_windows=5, block_size=T, batch_size=2)
    starts = np.round(np.linspace(0, len(ids) - T - 1, 5)).astype(int)
    for g, s in zip(got, starts, strict=True):
        w = ids[s : s + T + 1][None]
        with torch.no_grad():
            ref = F.cross_entropy(model(w[:, :-1]).logits[0], w[0, 1:]).item()
        assert abs(g - ref) < 1e-5
    assert window_losses(model, tok, TEXT, 1).shape == (1,)


def test_texts_loss_matches_model_loss(tiny):
    model, tok = tiny
    texts = ["the cat sat", "LINE 3:\nand so on."]
    got = texts_loss(model, tok, texts)
    for g, t in zip(got, texts, strict=True):
        x = torch.tensor([tok.encode(t)])
        with torch.no_grad():
            ref = model(x[:, :-1], targets=x[:, 1:]).loss.item()
        assert abs(g - ref) < 1e-5


def test_greedy_continue_matches_argmax_loop(tiny):
    model, tok = tiny
    prompts = ["the cat", "LINE 1:"]
    got = greedy_continue(model, tok, prompts, 6)
    for p, g in zip(prompts, got, strict=True):
        x = torch.tensor([tok.encode(p)])
        with torch.no_grad():
            for _ in range(6):
                x = torch.cat([x, model(x).logits[:, -1].argmax(-1, keepdim=True)], 1)
        assert tok.decode(x[0, len(p):].tolist()) == g


def test_continuation_match_counts_prefix(tiny, monkeypatch):
    model, tok = tiny
    import helpers.society as S

    # a model that always continues correctly: the counts reach cont_chars; an always-wrong one gives 0
    def oracle(model, tokenizer, prompts, n_chars):
        return [TEXT[TEXT.index(p) + len(p) : TEXT.index(p) + len(p) + n_chars] for p in prompts]

    monkeypatch.setattr(S, "greedy_continue", oracle)
    assert (continuation_match(model, tok, TEXT, prompt_chars=8, n=4, cont_chars=6) == 6).all()
    monkeypatch.setattr(S, "greedy_continue", lambda m, t, p, n: ["\x00" * n for _ in p])
    assert (continuation_match(model, tok, TEXT, prompt_chars=8, n=4, cont_chars=6) == 0).all()


def test_continuation_logprobs_match_chain_rule(tiny):
    model, tok = tiny
    got = continuation_logprobs(model, tok, ["the ", "LINE"], ["cat", " 1"])
    assert got.shape == (2, 2)
    x = torch.tensor([tok.encode("the cat")])
    with torch.no_grad():
        logp = torch.log_softmax(model(x).logits[0], -1)
    ref = sum(logp[3 + i, x[0, 4 + i]].item() for i in range(3))
    assert abs(got[0, 0] - ref) < 1e-5


def test_word_counts():
    text = "He said she; he HE. the theme: shed he's"
    assert word_counts(text, ["he", "she"]) == {"he": 4, "she": 1}
    assert word_counts(text, ["he"], case_sensitive=True) == {"he": 2}


def test_copied_fraction_matches_kgram_set():
    corpus = TEXT[:500]
    text = TEXT[480:540] + "zzz unseen words zzz"
    k = 8
    grams = {corpus[i : i + k] for i in range(len(corpus) - k + 1)}
    spans = [text[i : i + k] for i in range(len(text) - k + 1)]
    assert abs(copied_fraction(text, corpus, k=k) - sum(s in grams for s in spans) / len(spans)) < 1e-12
    assert copied_fraction(corpus[:50], corpus, k=k, stride=3) == 1.0
    with pytest.raises(ValueError, match="at least k"):
        copied_fraction("abc", corpus, k=8)
    with pytest.raises(TypeError, match="must be str"):
        copied_fraction(["abc"], corpus)


def test_bad_inputs(tiny):
    model, tok = tiny
    with pytest.raises(TypeError, match="helpers.model.GPT"):
        window_losses("model", tok, TEXT, 3)
    with pytest.raises(ValueError, match="n_windows"):
        window_losses(model, tok, TEXT, 0)
    with pytest.raises(ValueError, match="too short"):
        window_losses(model, tok, "the cat", 2)
    with pytest.raises(ValueError, match="block_size must be <="):
        window_losses(model, tok, TEXT, 2, block_size=64)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        roc_auc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        threshold_attack([1.0, float("nan")], [1.0])
    with pytest.raises(ValueError, match="fit the model's block_size"):
        continuation_match(model, tok, TEXT, prompt_chars=30, cont_chars=10)
    with pytest.raises(ValueError, match="usable line starts"):
        continuation_match(model, tok, TEXT, prompt_chars=8, n=1000, cont_chars=6)
    with pytest.raises(ValueError, match="same token length"):
        greedy_continue(model, tok, ["a", "the"], 3)
    with pytest.raises(TypeError, match="list of str"):
        texts_loss(model, tok, "the cat")
    with pytest.raises(ValueError, match="2 to block_size"):
        texts_loss(model, tok, ["t"])
    with pytest.raises(ValueError, match="non-empty strings"):
        continuation_logprobs(model, tok, ["the"], [""])
    with pytest.raises(ValueError, match="non-empty str"):
        word_counts("text", [" "])
