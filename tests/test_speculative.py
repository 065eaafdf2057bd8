"""helpers.speculative: greedy speculative decoding gives the target's greedy tokens exactly, whatever the draft.

Target: the course's checkpoint (checkpoints/shakespeare-gpt); draft: checkpoints/shakespeare-draft (2 layers, 128
wide, the same 75-character vocabulary). Prompts come from the held-out validation plays.
"""

import math
from pathlib import Path

import pytest
import torch

from helpers.data import shakespeare
from helpers.generate import generate
from helpers.model import GPT, GPTConfig
from helpers.speculative import speculative_generate
from helpers.tokenizer import load_tokenizer

CKPT = Path(__file__).resolve().parents[1] / "checkpoints"
TARGET, DRAFT = CKPT / "shakespeare-gpt", CKPT / "shakespeare-draft"
N = 80  # new tokens per prompt
KS = (1, 2, 4, 7)


@pytest.fixture(scope="module", autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(min(old, 2))
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def target():
    return GPT.from_pretrained(TARGET).eval()


@pytest.fixture(scope="module")
def draft():
    return GPT.from_pretrained(DRAFT).eval()


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(TARGET)


@pytest.fixture(scope="module")
def prompts(tok):
    """Four prompts of 60 characters from the validation plays, each the start of a speech, spread over them."""
    text = shakespeare("val")
    starts = [i + 2 for i in range(len(text)) if text.startswith("\n\n", i)]
    picks = [starts[j * (len(starts) - 1) // 3] for j in range(4)]
    return [torch.tensor([tok.encode(text[s : s + 60])]) for s in picks]


@pytest.fixture(scope="module")
def refs(target, prompts):
    return [generate(target, idx, N, temperature=0) for idx in prompts]


def _check_stats(st: dict, n: int, k: int) -> None:
    assert set(st) == {"target_passes", "draft_passes", "proposed", "accepted", "acceptance_rate",
                       "tokens_per_target_pass"}
    assert 0 <= st["accepted"] <= st["proposed"] == st["draft_passes"] <= k * st["target_passes"]
    # every round (one target pass) keeps its accepted drafts plus one token of the target's own
    assert st["accepted"] + st["target_passes"] == n
    assert math.ceil(n / (k + 1)) <= st["target_passes"] <= n
    assert st["acceptance_rate"] == pytest.approx(st["accepted"] / st["proposed"] if st["proposed"] else 0.0)
    assert st["tokens_per_target_pass"] == pytest.approx(n / st["target_passes"])


def test_same_vocabulary_and_a_small_draft(target, draft, tok):
    assert load_tokenizer(DRAFT).chars == tok.chars
    assert (DRAFT / "vocab_chars.json").read_bytes() == (TARGET / "vocab_chars.json").read_bytes()
    assert draft.config.vocab_size == target.config.vocab_size == 75
    assert (draft.config.n_layer, draft.config.n_embd, draft.config.block_size) == (2, 128, 256)
    assert draft.num_parameters() < target.num_parameters() / 5
    assert sum(f.stat().st_size for f in DRAFT.iterdir()) < 5e6


@pytest.mark.parametrize("k", KS)
def test_equals_target_greedy(target, draft, prompts, refs, k):
    rates = []
    for idx, ref in zip(prompts, refs, strict=True):
        out, st = speculative_generate(target, draft, idx, N, k=k)
        assert out.shape == (1, idx.shape[1] + N) and out.dtype == torch.long
        assert torch.equal(out, ref)
        _check_stats(st, N, k)
        rates.append(st["acceptance_rate"])
    assert sum(rates) / len(rates) > 0.3  # the trained draft agrees with the target much of the time


@pytest.mark.parametrize("k", KS)
def test_draft_equal_to_target_accepts_everything(target, prompts, refs, k):
    out, st = speculative_generate(target, target, prompts[0], N, k=k)
    assert torch.equal(out, refs[0])
    _check_stats(st, N, k)
    assert st["accepted"] == st["proposed"] and st["acceptance_rate"] == 1.0
    assert st["target_passes"] == math.ceil(N / (k + 1))  # k + 1 tokens a pass (fewer in the last one)


@pytest.mark.parametrize("k", (1, 4, 7))
def test_random_draft_changes_nothing_but_the_cost(target, prompts, refs, k):
    torch.manual_seed(0)
    rnd = GPT(GPTConfig(vocab_size=75, block_size=256, n_layer=1, n_head=2, n_embd=32)).eval()
    for idx, ref in zip(prompts[:2], refs[:2], strict=True):
        out, st = speculative_generate(target, rnd, idx, N, k=k)
        assert torch.equal(out, ref)
        _check_stats(st, N, k)
        assert st["acceptance_rate"] < 0.1
        assert st["target_passes"] > 0.8 * N  # about one token per target pass, as plain decoding


def test_partial_agreement_on_tiny_models():
    """A target and a noisy copy of it: drafts half right, at every k and length, still the target's tokens."""
    torch.manual_seed(1)
    cfg = GPTConfig(vocab_size=11, block_size=48, n_layer=2, n_head=2, n_embd=16)
    tgt = GPT(cfg).eval()
    with torch.no_grad():  # larger weights: sharper, context-dependent choices, not one token repeated
        for p in tgt.parameters():
            if p.dim() == 2:
                p.mul_(8)
    noisy = GPT(cfg).eval()
    noisy.load_state_dict(tgt.state_dict())
    with torch.no_grad():
        for p in noisy.parameters():
            p.add_(0.3 * p.std() * torch.randn_like(p))
    small = GPT(GPTConfig(vocab_size=11, block_size=64, n_layer=1, n_head=1, n_embd=8)).eval()
    g = torch.Generator().manual_seed(2)
    total = {"proposed": 0, "accepted": 0}
    for trial in range(12):
        T = int(torch.randint(1, 10, (1,), generator=g))
        n = int(torch.randint(0, 48 - T + 1, (1,), generator=g))
        idx = torch.randint(0, 11, (1, T), generator=g)
        ref = generate(tgt, idx, n, temperature=0)
        for d in (noisy, small):
            for k in (1, 2, 3, 5, 8):
                out, st = speculative_generate(tgt, d, idx, n, k=k)
                assert torch.equal(out, ref), (trial, k)
                if n:
                    _check_stats(st, n, k)
                if d is noisy:
                    for key in total:
                        total[key] += st[key]
    assert 0.1 < total["accepted"] / total["proposed"] < 0.95  # some rejected, some accepted: both paths ran


def test_no_new_tokens_and_one(target, draft, prompts, refs):
    out, st = speculative_generate(target, draft, prompts[0], 0)
    assert torch.equal(out, prompts[0]) and st["target_passes"] == st["proposed"] == 0
    assert st["acceptance_rate"] == 0.0 and st["tokens_per_target_pass"] == 0.0
    out, st = speculative_generate(target, draft, prompts[0], 1, k=4)
    assert torch.equal(out, refs[0][:, : prompts[0].shape[1] + 1])
    assert st["target_passes"] == 1 and st["proposed"] == 0  # nothing to draft: the target's token suffices


def test_fills_the_context_exactly(target, draft, tok):
    text = shakespeare("val")
    idx = torch.tensor([tok.encode(text[1000:1200])])
    n = target.config.block_size - idx.shape[1]  # T + n == block_size: allowed
    out, st = speculative_generate(target, draft, idx, n, k=7)
    assert torch.equal(out, generate(target, idx, n, temperature=0))
    _check_stats(st, n, 7)


def test_output_is_a_normal_tensor(target, draft, prompts):
    out, _ = speculative_generate(target, draft, prompts[0], 5)
    assert not out.is_inference()
    assert out.data_ptr() != prompts[0].data_ptr()


def test_errors(target, draft, prompts):
    idx = prompts[0]
    with pytest.raises(ValueError, match="batch size 1"):
        speculative_generate(target, draft, idx.repeat(2, 1), 5)
    other = GPT(GPTConfig(vocab_size=76, block_size=256, n_layer=1, n_head=2, n_embd=32))
    with pytest.raises(ValueError, match="vocab"):
        speculative_generate(target, other, idx, 5)
    with pytest.raises(ValueError, match=r"exceed the context.*generate.*slide"):
        speculative_generate(target, draft, idx, 256 - idx.shape[1] + 1)
    short = GPT(GPTConfig(vocab_size=75, block_size=64, n_layer=1, n_head=2, n_embd=32))
    with pytest.raises(ValueError, match="64"):  # the draft's shorter context bounds it too
        speculative_generate(target, short, idx, 10)
    for bad_k in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match=r"k \(draft tokens"):
            speculative_generate(target, draft, idx, 5, k=bad_k)
    for bad_n in (-1, 2.0, True):
        with pytest.raises(ValueError, match="max_new_tokens"):
            speculative_generate(target, draft, idx, bad_n)
    with pytest.raises(TypeError, match="target"):
        speculative_generate(torch.nn.Linear(2, 2), draft, idx, 5)
    with pytest.raises(TypeError, match="draft"):
        speculative_generate(target, "draft", idx, 5)
    with pytest.raises(TypeError, match="integer"):
        speculative_generate(target, draft, idx.float(), 5)
    with pytest.raises(ValueError, match=r"\[1, T\]"):
        speculative_generate(target, draft, idx[0], 5)
    with pytest.raises(ValueError, match=r"\[0, 74\]"):
        speculative_generate(target, draft, torch.tensor([[3, 75]]), 5)
