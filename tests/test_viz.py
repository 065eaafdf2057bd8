"""helpers.viz: every attention picture drawn from our GPT's and from Hugging Face's attentions, checked against
the weights they were given; the HTML view self-contained and deterministic; bad inputs rejected by name."""

from __future__ import annotations

import base64
import json
import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from helpers.model import GPT, GPTConfig  # noqa: E402
from helpers.viz import (  # noqa: E402
    attention_entropy,
    attention_html,
    first_token_score,
    induction_score,
    plot_attention,
    plot_attention_diff,
    plot_attention_grid,
    plot_attention_lines,
    plot_head_map,
    prev_token_score,
    save_attention_html,
    show_attention,
    stack_attentions,
    token_labels,
)

T, L, H, B = 7, 2, 3, 2
TOKENS = ["The", " cat", " sat", " on", " the", "\n", "mat"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def ours():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, block_size=16, n_layer=L, n_head=H, n_embd=24)).eval()
    idx = torch.randint(0, 32, (B, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(idx, return_attention=True)
    return model, idx, out


@pytest.fixture(scope="module")
def hf(ours):
    """Hugging Face's GPT-2 with our model's weights, eager attention (the fused kernels return no weights)."""
    model, idx, _ = ours
    hf_model = model.to_hf().eval()
    hf_model.set_attn_implementation("eager")
    with torch.no_grad():
        out = hf_model(idx, output_attentions=True)
    return hf_model, out


@pytest.fixture(params=["ours", "hf"])
def attentions(request, ours, hf):
    return ours[2].attentions if request.param == "ours" else hf[1].attentions


def _ref(out_attentions, batch=0) -> np.ndarray:
    """Independent stacking: plain loops over the per-layer tensors."""
    return np.array([[a[batch, h].numpy() for h in range(a.shape[1])] for a in out_attentions])


# ------------------------------------------------------------------------------------------------ inputs
def test_hf_and_ours_give_the_same_attentions(ours, hf):
    a, b = stack_attentions(ours[2], batch=1), stack_attentions(hf[1], batch=1)
    assert a.shape == (L, H, T, T)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, _ref(ours[2].attentions, 1), atol=0)


def test_stack_attentions_accepts_every_form(ours):
    atts = ours[2].attentions
    ref = _ref(atts, 1)
    np.testing.assert_array_equal(stack_attentions(list(atts), batch=1), ref)
    np.testing.assert_array_equal(stack_attentions(torch.stack(atts), batch=1), ref)
    np.testing.assert_array_equal(stack_attentions(atts[1], batch=1)[0], ref[1])  # one layer [B, H, T, T]
    np.testing.assert_array_equal(stack_attentions(atts[1][1])[0], ref[1])  # [H, T, T]
    np.testing.assert_array_equal(stack_attentions(atts[1][1, 2])[0, 0], ref[1, 2])  # [T, T]
    np.testing.assert_array_equal(stack_attentions(atts[0].numpy())[0], _ref(atts)[0])


def test_stack_attentions_rejects_bad_inputs(ours):
    atts = ours[2].attentions
    with pytest.raises(ValueError, match="eager"):
        stack_attentions(())  # what a Hugging Face model with SDPA attention returns
    with pytest.raises(ValueError, match="return_attention=True"):
        stack_attentions(type("Out", (), {"attentions": None})())
    with pytest.raises(ValueError, match="layer 1 has no attention"):
        stack_attentions((atts[0], None))
    with pytest.raises(ValueError, match=r"batch=2 is out of range.*batch of 2"):
        stack_attentions(atts, batch=2)
    with pytest.raises(TypeError, match="batch must be an int"):
        stack_attentions(atts, batch=0.5)
    with pytest.raises(ValueError, match=r"attentions\[1\] has shape"):
        stack_attentions((atts[0], atts[1][:, :2]))
    with pytest.raises(TypeError, match="torch.Tensor or a NumPy array"):
        stack_attentions([[0.5]])
    with pytest.raises(ValueError, match="got shape"):
        stack_attentions(torch.zeros(1, 1, 1, 1, 2, 2))


# ------------------------------------------------------------------------------------------------ every picture
def _draw_all(attentions, tokens, batch=0):
    """One figure from every plotting function."""
    return {
        "plot_attention": plot_attention(attentions[1], tokens, head=2, batch=batch, title="one head"),
        "plot_attention_grid": plot_attention_grid(attentions, tokens, batch=batch),
        "plot_attention_lines": plot_attention_lines(attentions, tokens, layer=1, batch=batch),
        "plot_attention_diff": plot_attention_diff(attentions, attentions, tokens, layer=1, head=0, batch=batch),
        "plot_head_map": plot_head_map(prev_token_score(torch.stack(attentions)).mean(1)),
    }


def test_every_function_draws_and_saves_png_and_svg(attentions, tmp_path):
    for name, fig in _draw_all(attentions, TOKENS, batch=1).items():
        assert isinstance(fig, matplotlib.figure.Figure), name
        fig.savefig(tmp_path / f"{name}.png")
        fig.savefig(tmp_path / f"{name}.svg")
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        svg = (tmp_path / f"{name}.svg").read_text(encoding="utf-8")
        assert "<svg" in svg and "</svg>" in svg, name


def test_plot_attention_shows_the_weights_with_the_mask_masked(attentions):
    fig = plot_attention(attentions[1], TOKENS, head=2, batch=1)
    ax = fig.axes[0]
    img = ax.images[0].get_array()
    ref = _ref(attentions, 1)[1, 2]
    assert np.ma.isMaskedArray(img)
    np.testing.assert_array_equal(img.mask, np.triu(np.ones((T, T), bool), k=1))  # masked, not zeros
    np.testing.assert_allclose(img.filled(0), ref, atol=1e-6)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["The", "␣cat", "␣sat", "␣on", "␣the", "↵", "mat"]
    assert any(p.get_hatch() for p in ax.patches)  # the future is hatched


def test_plot_attention_keeps_its_old_call_signature(ours):
    fig, ax = plt.subplots()
    out = plot_attention(ours[2].attentions[0], TOKENS, head=1, batch=0, title="t", ax=ax)
    assert out is fig and ax.get_title() == "t"
    w = torch.softmax(torch.randn(3, 4), -1)  # cross-attention: queries and keys differ
    fig = plot_attention(w, ["a", "b", "c"], key_tokens=["w", "x", "y", "z"])
    assert fig.axes[0].images[0].get_array().shape == (3, 4)


def test_grid_draws_each_layer_and_head(attentions):
    fig = plot_attention_grid(attentions, TOKENS, batch=1)
    ref = _ref(attentions, 1)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == L * H
    for k, ax in enumerate(axes):
        np.testing.assert_allclose(ax.images[0].get_array().filled(0), ref[k // H, k % H], atol=1e-6)
    fig = plot_attention_grid(attentions, TOKENS, layers=[1], heads=[0, 2])
    assert len([ax for ax in fig.axes if ax.images]) == 2


def test_lines_have_alpha_and_width_proportional_to_the_weight(attentions):
    ref = _ref(attentions, 1)[1, 0]
    fig = plot_attention_lines(attentions, TOKENS, layer=1, head=0, batch=1, min_weight=0.05)
    lc = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)][0]
    assert len(lc.get_segments()) == int((ref >= 0.05).sum())
    widths, alphas = np.asarray(lc.get_linewidths()), lc.get_colors()[:, 3]
    kept = ref[ref >= 0.05]  # drawn row by row, key by key, as np.nonzero orders them
    np.testing.assert_allclose(widths, 0.4 + 3.0 * kept, atol=1e-6)
    np.testing.assert_allclose(alphas, np.minimum(1.0, 0.15 + 0.85 * kept), atol=1e-6)
    fig = plot_attention_lines(attentions, TOKENS, layer=0, head=None, query=6, batch=1)
    lc = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)][0]
    assert all(seg[0][1] == -6 for seg in lc.get_segments())  # only the chosen query's lines
    # a single weight matrix is accepted too (one layer, one head)
    plot_attention_lines(attentions[0][0, 0], TOKENS)


def test_diff_is_centred_at_zero(ours, hf):
    model, idx, out = ours
    with torch.no_grad():
        other = model(idx.flip(1), return_attention=True).attentions
    fig = plot_attention_diff(out.attentions, other, TOKENS, layer=1, head=2, labels=("x", "flipped"))
    img = fig.axes[0].images[0]
    ref = _ref(out.attentions)[1, 2] - _ref(other)[1, 2]
    np.testing.assert_allclose(img.get_array().filled(0), ref, atol=1e-6)
    lo, hi = img.get_clim()
    assert lo == pytest.approx(-hi) and hi == pytest.approx(np.abs(ref).max())
    # ours vs Hugging Face with the same weights: nothing to see
    fig = plot_attention_diff(out.attentions, hf[1].attentions, TOKENS, layer=0, head=1)
    assert np.abs(fig.axes[0].images[0].get_array()).max() < 1e-5


def test_head_map(ours):
    scores = torch.arange(L * H, dtype=torch.float32).view(L, H) - 2
    fig = plot_head_map(scores, title="s", center=0.0)
    img = fig.axes[0].images[0]
    np.testing.assert_array_equal(img.get_array(), scores.numpy())
    lo, hi = img.get_clim()
    assert lo == -hi == -3.0
    with pytest.raises(ValueError, match=r"\[L, H\].*got shape \(6,\)"):
        plot_head_map(scores.flatten())


def test_long_sequences_thin_labels_and_window(ours):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, block_size=128, n_layer=1, n_head=2, n_embd=16)).eval()
    idx = torch.randint(0, 32, (1, 100))
    with torch.no_grad():
        att = model(idx, return_attention=True).attentions
    toks = [f"t{i}" for i in range(100)]
    fig = plot_attention(att[0], toks, head=0, max_labels=20)
    assert len(fig.axes[0].get_yticks()) <= 20
    fig = plot_attention(att[0], toks, head=0, window=(30, 45))
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array().filled(0), att[0][0, 0, 30:45, 30:45].numpy(), atol=1e-6)
    assert ax.get_yticklabels()[0].get_text() == "t30"
    fig = plot_attention_lines(att, toks, window=(90, 100), head=1)
    assert {t.get_text() for t in fig.axes[0].texts} >= {f"t{i}" for i in range(90, 100)}
    fig = plot_attention_grid(att, toks, window=(0, 10))
    assert fig.axes[0].images[0].get_array().shape == (10, 10)
    for bad in [(5, 5), (-1, 3), (0, 101)]:
        with pytest.raises(ValueError, match="window"):
            plot_attention_grid(att, toks, window=bad)
    with pytest.raises(TypeError, match="window"):
        plot_attention(att[0], toks, head=0, window=3)


# ------------------------------------------------------------------------------------------------ mismatches
MISMATCH = r"got 5 (query )?tokens but the attention weights cover 7 positions"


@pytest.mark.parametrize(
    "draw",
    [
        lambda a, t: plot_attention(a[0], t, head=0),
        lambda a, t: plot_attention_grid(a, t),
        lambda a, t: plot_attention_lines(a, t),
        lambda a, t: plot_attention_diff(a, a, t, layer=0, head=0),
        lambda a, t: show_attention(a, t),
        lambda a, t: attention_html(a, t),
        lambda a, t: save_attention_html("/nonexistent/never-written.html", a, t),
    ],
    ids=["plot_attention", "grid", "lines", "diff", "show_attention", "attention_html", "save_attention_html"],
)
def test_mismatched_tokens_name_both_sizes(draw, attentions):
    with pytest.raises(ValueError, match=MISMATCH):
        draw(attentions, TOKENS[:5])
    with pytest.raises(TypeError, match="list of strings"):
        draw(attentions, torch.arange(T))


def test_other_bad_arguments(ours):
    atts = ours[2].attentions
    with pytest.raises(ValueError, match=r"layer=2 is out of range: there are 2"):
        plot_attention_lines(atts, TOKENS, layer=2)
    with pytest.raises(ValueError, match=r"head=3 is out of range: there are 3"):
        plot_attention_grid(atts, TOKENS, heads=[0, 3])
    with pytest.raises(ValueError, match="pass head=0..2"):
        plot_attention(atts[0], TOKENS)
    with pytest.raises(ValueError, match="pass layer=0..1"):
        plot_attention_diff(atts, atts, TOKENS, head=0)
    with pytest.raises(ValueError, match=r"a and b must have the same shape.*\(3, 7, 7\).*\(3, 6, 6\)"):
        plot_attention_diff(atts, tuple(a[:, :, :6, :6] for a in atts), TOKENS, layer=0, head=0)
    with pytest.raises(ValueError, match="min_weight"):
        plot_attention_lines(atts, TOKENS, min_weight=1.5)
    with pytest.raises(ValueError, match="kind must be"):
        show_attention(atts, TOKENS, kind="pie")
    with pytest.raises(ValueError, match="max_tokens=3"):
        attention_html(atts, TOKENS, max_tokens=3)
    with pytest.raises(TypeError, match="path must be"):
        save_attention_html(3, atts, TOKENS)
    with pytest.raises(TypeError, match="decode"):
        token_labels(object(), [1, 2])
    with pytest.raises(TypeError, match="flat sequence"):
        token_labels(_Tok(), [[1, 2], [3, 4]])


class _Tok:
    def decode(self, ids):
        return "".join(chr(97 + i) for i in ids)


def test_token_labels():
    assert token_labels(_Tok(), torch.tensor([[0, 1, 2]])) == ["a", "b", "c"]
    assert token_labels(_Tok(), np.array([3])) == ["d"]


def test_show_attention_outside_a_kernel_shows_the_static_picture(ours, capsys):
    assert show_attention(ours[2].attentions, TOKENS, layer=1, head=2, kind="lines") is None
    assert "Image" in capsys.readouterr().out  # IPython's display prints the text form outside a kernel
    assert not plt.get_fignums()  # the picture was closed after rendering: nothing leaks into later cells


# ------------------------------------------------------------------------------------------------ HTML
def test_html_is_self_contained_and_deterministic(attentions):
    page = attention_html(attentions, TOKENS, batch=1)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "<script>" in page and "<style>" in page  # script and styles inline
    assert attention_html(attentions, TOKENS, batch=1) == page  # same input, same text
    other = attention_html(attentions, TOKENS, batch=0)
    ids = [re.search(r'id="(attn-[0-9a-f]{12})"', p).group(1) for p in (page, other)]
    assert ids[0] != ids[1]  # ids come from the content
    frag = attention_html(attentions, TOKENS, batch=1, full_page=False)
    assert frag.startswith('<div class="attn-view"') and frag in page


def test_html_carries_the_weights_and_the_tokens(attentions):
    page = attention_html(attentions, TOKENS + [], batch=1, layer=1, heads=[0, 2])
    data = json.loads(re.search(r'<script type="application/json" class="attn-data">(.*?)</script>', page,
                                re.S).group(1))
    q = np.frombuffer(base64.b64decode(data["weights"]), dtype=np.uint8).reshape(L, H, T, T) / 255.0
    np.testing.assert_allclose(q, _ref(attentions, 1), atol=0.5 / 255 + 1e-6)
    assert data["tokens"] == TOKENS and data["layer"] == 1 and data["heads"] == [0, 2]
    for label in ["The", "␣cat", "↵", "mat"]:
        assert f">{label}</text>" in page
    # the static picture (no script needed) draws the default view's lines
    ref = _ref(attentions, 1)[1][[0, 2]]
    n_lines = int((np.rint(ref * 255) / 255 >= 0.02).sum())
    edges = re.search(r'<g class="attn-edges">(.*?)</g>', page, re.S).group(1)
    assert len(re.findall(r"M\d+ [\d.]+L\d+ [\d.]+", edges)) == n_lines


def test_html_escapes_tokens(ours):
    toks = ["<b>", "&", '"', "</script>", "a", "b", "c"]
    page = attention_html(ours[2].attentions, toks)
    assert "<b>" not in page.split("attn-data")[0] and "&lt;b&gt;" in page
    assert page.count("</script>") == 2  # the data script and the code script, nothing closed early


def test_save_attention_html(tmp_path, ours):
    p = save_attention_html(tmp_path / "sub" / "view.html", ours[2].attentions, TOKENS, window=(2, 6))
    text = p.read_text(encoding="utf-8")
    assert text == attention_html(ours[2].attentions, TOKENS, window=(2, 6))
    assert '"n":4' in text


# ------------------------------------------------------------------------------------------------ head statistics
def _loop_scores(w: np.ndarray, period: int):
    """Per-row loops, the textbook definitions, for one [T, T] matrix."""
    n = w.shape[0]
    prev = np.mean([w[t, t - 1] for t in range(1, n)])
    first = np.mean([w[t, 0] for t in range(1, n)])
    ent = np.mean([-sum(p * math.log(p) for p in w[t] if p > 0) for t in range(n)])
    ind = np.mean([w[t, t - period + 1] for t in range(period, n)])
    return prev, first, ent, ind


def test_head_statistics_match_loops(attentions):
    st = torch.stack(tuple(attentions))  # [L, B, H, T, T]
    got = [prev_token_score(st), first_token_score(st), attention_entropy(st), induction_score(st, 3)]
    for g in got:
        assert g.shape == (L, B, H)
    for layer in range(L):
        for b in range(B):
            for h in range(H):
                ref = _loop_scores(st[layer, b, h].double().numpy(), 3)
                for k in range(4):
                    assert float(got[k][layer, b, h]) == pytest.approx(ref[k], abs=1e-5)


def test_head_statistics_known_values():
    n = 6
    uniform = torch.ones(n, n).tril()
    uniform = uniform / uniform.sum(-1, keepdim=True)
    assert float(attention_entropy(uniform)) == pytest.approx(np.mean([math.log(t + 1) for t in range(n)]))
    assert float(attention_entropy(torch.eye(n))) == 0.0
    assert float(prev_token_score(torch.eye(n).roll(-1, dims=1).tril())) == pytest.approx(1.0)
    assert float(first_token_score(uniform)) == pytest.approx(np.mean([1 / (t + 1) for t in range(1, n)]))


def test_head_statistics_reject_bad_inputs():
    with pytest.raises(ValueError, match=r"square attention \[..., T, T\], got shape \(3, 4\)"):
        prev_token_score(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        attention_entropy([[1.0]])
    with pytest.raises(ValueError, match="at least 2 positions"):
        first_token_score(torch.ones(1, 1))
    with pytest.raises(ValueError, match=r"1 <= period < T = 4, got 4"):
        induction_score(torch.eye(4), 4)
    with pytest.raises(TypeError, match="period must be an int"):
        induction_score(torch.eye(4), 1.5)
