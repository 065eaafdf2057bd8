"""Lesson 19's canonical code (helpers.vision): the digits, patches, the ViT, the captioner, the baselines, the
checkpoints; each against an independent reference (F.unfold, nn.Conv2d, torch.nn.TransformerEncoderLayer,
the optimality condition of logistic regression, the digits file itself)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from helpers.course import checkpoint
from helpers.stats import paired_difference, wilson_interval
from helpers.vision import (
    NAMES,
    Captioner,
    CaptionVocab,
    ViT,
    ViTConfig,
    accuracy,
    cross_validate,
    digit_split,
    digits_path,
    fit_logistic,
    fold_ids,
    load_cv,
    load_digits,
    load_model,
    patchify,
    predict,
    save_model,
    shift_images,
    train_captioner,
    train_classifier,
    unpatchify,
)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# ---------------------------------------------------------------- data
def test_digits_are_the_uci_digits(digits):
    images, labels = digits
    assert images.shape == (1797, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert images.min() == 0 and images.max() == 1  # 17 grey levels, 0..16, divided by 16
    assert set(torch.unique(images * 16).tolist()) <= set(range(17))
    counts = torch.bincount(labels, minlength=10)
    assert counts.sum() == 1797 and counts.min() >= 170 and counts.max() <= 185  # about 180 of each digit
    with gzip.open(digits_path(), "rt") as f:  # the first row, read independently
        row = [float(v) for v in f.readline().split(",")]
    assert torch.equal(images[0].flatten() * 16, torch.tensor(row[:64])) and labels[0] == int(row[64])


def test_split_is_fixed_disjoint_and_complete():
    tr, te = digit_split()
    tr2, te2 = digit_split()
    assert torch.equal(tr, tr2) and torch.equal(te, te2)
    assert len(tr) == 1438 and len(te) == 359
    assert torch.equal(torch.cat([tr, te]).sort().values, torch.arange(1797))
    assert not torch.equal(digit_split(seed=1)[1], te)
    with pytest.raises(ValueError, match="test_fraction"):
        digit_split(test_fraction=1.0)


# ---------------------------------------------------------------- patches
@pytest.mark.parametrize("shape,p", [((3, 8, 8), 2), ((2, 8, 8), 4), ((1, 6, 4), 2), ((2, 3, 8, 12), 4),
                                     ((1, 3, 32, 32), 16), ((2, 8, 8), 1)])
def test_patchify_equals_unfold(shape, p):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    x4 = x[:, None] if x.dim() == 3 else x
    ref = F.unfold(x4, kernel_size=p, stride=p).transpose(1, 2)
    got = patchify(x, p)
    assert torch.equal(got, ref)
    c, h, w = x4.shape[1:]
    assert torch.equal(unpatchify(got, p, h, w, c), x)


def test_linear_patch_embedding_is_a_strided_convolution():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 16, 16, generator=g)
    conv = nn.Conv2d(3, 24, kernel_size=4, stride=4)
    lin = nn.Linear(3 * 4 * 4, 24)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.reshape(24, -1))
        lin.bias.copy_(conv.bias)
    ref = conv(x).flatten(2).transpose(1, 2)  # [B, N, D], patches in reading order
    torch.testing.assert_close(lin(patchify(x, 4)), ref, atol=1e-5, rtol=1e-5)


def test_patchify_errors_say_what_was_wrong():
    with pytest.raises(ValueError, match=r"8 x 6.*3 x 3"):
        patchify(torch.zeros(1, 8, 6), 3)
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        patchify(torch.zeros(8, 8), 2)
    with pytest.raises(TypeError, match="floating-point"):
        patchify(torch.zeros(1, 8, 8, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="positive int"):
        patchify(torch.zeros(1, 8, 8), 0)


def test_shift_moves_whole_images_with_zeros_shifted_in():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(50, 8, 8, generator=g) + 0.1  # no zeros of its own
    out = shift_images(x, 1, torch.Generator().manual_seed(4))
    assert torch.equal(shift_images(x, 0), x)
    seen = set()
    for a, b in zip(x, out, strict=True):
        matches = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ref = torch.zeros(10, 10)
                ref[1 + dy:9 + dy, 1 + dx:9 + dx] = a
                if torch.equal(ref[1:9, 1:9], b):
                    matches.append((dy, dx))
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 9  # every shift happens
    with pytest.raises(ValueError, match="non-negative int"):
        shift_images(x, -1)


# ---------------------------------------------------------------- the ViT
def _torch_encoder(vit: ViT) -> nn.TransformerEncoder:
    cfg = vit.cfg
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_head, cfg.d_ff, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
    enc = nn.TransformerEncoder(layer, cfg.n_layer, norm=nn.LayerNorm(cfg.d_model), enable_nested_tensor=False)
    with torch.no_grad():
        for ours, theirs in zip(vit.layers, enc.layers, strict=True):
            a = ours.self_attn
            theirs.self_attn.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
            theirs.self_attn.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
            theirs.self_attn.out_proj.load_state_dict(a.out_proj.state_dict())
            for name in ["linear1", "linear2", "norm1", "norm2"]:
                getattr(theirs, name).load_state_dict(getattr(ours, name).state_dict())
        enc.norm.load_state_dict(vit.norm.state_dict())
    return enc.eval()


@pytest.mark.parametrize("cfg", [ViTConfig(), ViTConfig(patch_size=4, d_model=32, n_head=2, n_layer=3, d_ff=64)])
def test_vit_is_an_unmasked_torch_encoder_over_patches(cfg):
    torch.manual_seed(0)
    vit = ViT(cfg).eval()
    x = torch.rand(5, 8, 8)
    tokens = vit.patch_embed(patchify(x, cfg.patch_size))
    tokens = torch.cat([vit.cls_token.expand(5, -1, -1), tokens], 1) + vit.pos_embed
    ref = _torch_encoder(vit)(tokens)
    torch.testing.assert_close(vit.encode(x), ref, atol=1e-5, rtol=1e-5)
    assert vit(x).shape == (5, 10)


def test_vit_attention_maps_are_unmasked_distributions():
    torch.manual_seed(0)
    vit = ViT().eval()
    w = vit.attention_maps(torch.rand(3, 8, 8))
    assert w.shape == (3, 2, 4, 17, 17)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 4, 17))
    iu = torch.triu_indices(17, 17, 1)
    assert (w[..., iu[0], iu[1]] > 0).all()  # every position sees the positions after it: no causal mask
    assert all(not layer.keep_weights for layer in vit.layers)


def test_vit_rejects_wrong_images():
    vit = ViT()
    with pytest.raises(ValueError, match=r"\[B, 8, 8\]"):
        vit(torch.zeros(2, 7, 7))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViTConfig(patch_size=3)
    with pytest.raises(ValueError, match="d_model"):
        ViTConfig(d_model=30, n_head=4)
    with pytest.raises(RuntimeError, match="no head"):
        ViT(ViTConfig(n_classes=0))(torch.zeros(1, 8, 8))


def test_training_lowers_the_loss_and_is_seeded(digits):
    images, labels = digits
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        vit = ViT(ViTConfig(d_model=32, n_head=2, n_layer=1, d_ff=64))
        losses.append(train_classifier(vit, images[:256], labels[:256], steps=150, progress=False))
    assert losses[0] == losses[1]
    assert np.mean(losses[0][-10:]) < 0.7 * np.mean(losses[0][:10])


# ---------------------------------------------------------------- baselines and statistics
def test_logistic_regression_reaches_its_optimum(digits):
    images, labels = digits
    model = fit_logistic(images[:500], labels[:500], weight_decay=1e-3)
    lin = model[1]
    lin.zero_grad()
    x = images[:500].reshape(500, -1).double()
    loss = F.cross_entropy(model(x), labels[:500]) + 1e-3 * lin.weight.pow(2).sum()
    loss.backward()
    grad = torch.cat([lin.weight.grad.flatten(), lin.bias.grad])
    assert grad.abs().max() < 1e-3  # the gradient of the penalised objective vanishes at the optimum


def test_accuracy_and_paired_difference():
    acc, lo, hi = accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4]))
    assert acc == 0.75 and (lo, hi) == wilson_interval(3, 4)
    rng = np.random.default_rng(0)
    a = rng.random(400) < 0.95
    b = a.copy()
    b[:12] = ~b[:12]
    d, lo, hi = paired_difference(a, b)
    assert d == pytest.approx(a.mean() - b.mean()) and lo <= d <= hi
    assert paired_difference(a, a) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="one length"):
        paired_difference(a, b[:-1])
    with pytest.raises(ValueError, match="0/1"):
        paired_difference([0.5], [1])


# ---------------------------------------------------------------- the captioner
def test_vocabulary_round_trips_both_languages():
    v = CaptionVocab()
    for lang, names in NAMES.items():
        for name in names:
            ids = v.encode(name, lang)
            assert ids[0] == v.start(lang) and ids[-1] == v.END and v.decode(ids[1:]) == name
            assert len(ids) <= v.max_len
    with pytest.raises(ValueError, match="vocabulary"):
        v.encode("a", "en")
    with pytest.raises(ValueError, match="lang"):
        v.start("fr")


def test_captioner_decoder_is_causal_and_reads_the_image():
    torch.manual_seed(0)
    cap = Captioner().eval()
    x = torch.rand(2, 8, 8)
    tok = torch.tensor([[1, 10, 11, 12], [2, 13, 14, 15]])
    out = cap(x, tok)
    tok2 = tok.clone()
    tok2[:, 3] = 5
    torch.testing.assert_close(cap(x, tok2)[:, :3], out[:, :3])  # a later token changes no earlier output
    assert not torch.allclose(cap(torch.rand(2, 8, 8), tok), out)  # another image changes every output
    texts, w = cap.cross_attention_maps(x, "zh")
    assert len(texts) == 2 and w.shape == (2, 2, 4, cap.vocab.max_len, 17)
    torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))


def test_captioner_learns_names_quickly(digits):
    images, labels = digits
    torch.manual_seed(0)
    cap = Captioner(ViTConfig(d_model=32, n_head=2, n_layer=1, d_ff=64), n_dec_layer=1)
    losses = train_captioner(cap, images[:200], labels[:200], steps=80, progress=False)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert all(isinstance(s, str) for s in cap.describe(images[:4], "en"))


# ---------------------------------------------------------------- checkpoints
def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    for model in [ViT(), Captioner()]:
        path = save_model(model.eval(), tmp_path / type(model).__name__)
        again = load_model(path)
        assert type(again) is type(model)
        for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
            assert k == k2 and torch.equal(a, b)


def test_nan_weights_never_overwrite_a_checkpoint(tmp_path):
    vit = ViT()
    path = save_model(vit, tmp_path / "v")
    before = (path / "model.safetensors").read_bytes()
    with torch.no_grad():
        vit.head.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        save_model(vit, path)
    assert (path / "model.safetensors").read_bytes() == before
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path / "missing")


def test_course_checkpoints_on_held_out_digits(digits):
    """The shipped ViT gets at least 97 % of the 359 held-out digits and more than logistic regression does (on
    359 images the paired interval of the difference still touches 0: the cross-validation below settles it);
    the captioner names at least 95 % of them exactly, in both languages."""
    images, labels = digits
    tr, te = digit_split()
    vit = load_model(checkpoint("digits-vit"))
    cap = load_model(checkpoint("digits-captioner"))
    assert isinstance(vit, ViT) and isinstance(cap, Captioner)
    vit_acc = (predict(vit, images[te]) == labels[te]).float().mean()
    lr_acc = (predict(fit_logistic(images[tr], labels[tr]), images[te]) == labels[te]).float().mean()
    assert vit_acc >= 0.97 and vit_acc > lr_acc, (vit_acc, lr_acc)
    for lang in NAMES:
        said = cap.describe(images[te], lang)
        exact = np.mean([s == NAMES[lang][int(y)] for s, y in zip(said, labels[te], strict=True)])
        assert exact >= 0.95, (lang, exact)


def test_cross_validation_file_is_this_code_s_and_the_vit_beats_logistic_regression(digits):
    """digits_cv.csv (python -m helpers.vision --cv) holds one out-of-fold prediction per digit, in the folds of
    fold_ids(); its logistic-regression column is what fit_logistic gives again now (float64, every CPU alike);
    over all 1,797 digits the ViT beats logistic regression, the paired bootstrap interval above 0."""
    images, labels = digits
    cv = load_cv()
    assert torch.equal(cv["label"], labels) and torch.equal(cv["fold"], fold_ids(1797, 5, 0))
    for f in range(5):
        tr, te = (cv["fold"] != f).nonzero()[:, 0], (cv["fold"] == f).nonzero()[:, 0]
        again = predict(fit_logistic(images[tr], labels[tr]), images[te])
        assert (again == cv["logistic"][te]).float().mean() >= 0.995  # L-BFGS may end a hair apart
    ok = {m: (cv[m] == labels).numpy() for m in ("vit", "mlp", "logistic")}
    assert ok["vit"].mean() >= 0.97
    d, lo, hi = paired_difference(ok["vit"], ok["logistic"])
    assert lo > 0, (d, lo, hi)


def test_cross_validation_runs_and_predicts_every_image_once(digits):
    images, labels = digits
    sub = torch.arange(0, 1797, 9)  # 200 digits, 2 folds, a few steps: the machinery, not the accuracy
    result = cross_validate(images[sub], labels[sub], k=2, steps=5, progress=False)
    assert set(result) == {"fold", "label", "vit", "mlp", "logistic"}
    for m in ("vit", "mlp", "logistic"):
        assert result[m].shape == (200,) and result[m].min() >= 0 and result[m].max() <= 9


def test_fold_ids_are_balanced_and_fixed():
    f = fold_ids(1797, 5, 0)
    assert torch.equal(f, fold_ids(1797, 5, 0)) and torch.bincount(f).tolist() == [360, 360, 359, 359, 359]
    with pytest.raises(ValueError, match="k must be"):
        fold_ids(10, 1)


def test_cross_fn_replaces_the_cross_attention_and_keeps_its_weights():
    """A function plugged into the decoder (as the learner's is in lesson 19) computes the cross-attention: the
    course's own function plugged in gives the same captions and the same maps; a wrong one changes them."""
    from helpers.attention import cross_attention

    torch.manual_seed(0)
    cap = Captioner().eval()
    x = torch.rand(4, 8, 8)
    texts, w = cap.cross_attention_maps(x, "en")
    cap.use_cross_attention(lambda *a: cross_attention(*a, need_weights=True))
    texts2, w2 = cap.cross_attention_maps(x, "en")
    assert texts2 == texts
    torch.testing.assert_close(w2, w)

    def uniform(x_q, x_kv, w_q, w_k, w_v, w_o, n_head):  # every key weighted alike
        b, t, c = x_q.shape
        weights = torch.full((b, n_head, t, x_kv.shape[1]), 1 / x_kv.shape[1])
        return (x_kv @ w_v.T).mean(1, keepdim=True).expand(b, t, c) @ w_o.T, weights

    cap.use_cross_attention(uniform)
    _, w3 = cap.cross_attention_maps(x, "en")
    assert torch.allclose(w3, torch.full_like(w3, 1 / 17))
    cap.use_cross_attention(None)
    assert cap.cross_attention_maps(x, "en")[0] == texts
    with pytest.raises(TypeError, match="function or None"):
        cap.use_cross_attention(3)


def test_chinese_titles_find_a_chinese_font_even_when_matplotlib_s_list_is_stale(monkeypatch):
    """A font installed after matplotlib built its font list is found in the system's font folders and added."""
    from matplotlib import font_manager

    from helpers import vision

    if not any("wqy" in p.lower() or "cjk" in p.lower() for p in font_manager.findSystemFonts()):
        pytest.skip("no Chinese font installed here (CI installs fonts-wqy-zenhei)")
    stale = [f for f in font_manager.fontManager.ttflist if not any(n in f.name for n in vision._CJK_FONTS)]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    family = vision._cjk_family()
    assert family is not None and family in {f.name for f in font_manager.fontManager.ttflist}
    assert vision._title_font("seven") == {} and vision._title_font("七") == {"fontfamily": ["DejaVu Sans", family]}
    font = font_manager.FontProperties(family=family)
    assert "wqy" in font_manager.findfont(font, fallback_to_default=False).lower() or "cjk" in \
        font_manager.findfont(font, fallback_to_default=False).lower()
