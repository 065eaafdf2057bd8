"""helpers.instruct (notebook 14) and its checkers: the data and its splits, the template, loss masking and
padding (against losses computed by hand on a small random GPT), greedy answers (against one question at a
time without the cache), exact match, and the checkers naming the usual mistakes."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from helpers.checks import check_exact_match, check_mask_targets, check_pad_batch
from helpers.finetune import apply_lora, lora_parameters
from helpers.generate import generate
from helpers.instruct import (
    CITIES,
    END,
    IGNORE,
    NAMES,
    NEW_VALUE,
    TASKS,
    TEST_TASKS,
    WORDS,
    FinetuneConfig,
    Pair,
    answer_questions,
    build_example,
    char_similarity,
    chatterbot_license,
    chatterbot_pairs,
    chatterbot_root,
    error_kind,
    exact_match,
    finetune,
    fit_to_vocab,
    format_example,
    format_prompt,
    generated_tasks,
    mask_targets,
    normalize_answer,
    pad_batch,
    split_of,
    to_vocab,
    token_losses,
)
from helpers.model import GPT, GPTConfig
from helpers.tokenizer import CharTokenizer

CHARS = json.loads((Path(__file__).resolve().parents[1] / "checkpoints" / "shakespeare-gpt" / "vocab_chars.json")
                   .read_text())["chars"]
TOK = CharTokenizer(CHARS)


@functools.cache
def raw_pairs() -> tuple[Pair, ...]:
    return tuple(chatterbot_pairs())


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(CHARS), block_size=96, n_layer=2, n_head=2, n_embd=32)).eval()


# --------------------------------------------------------------------------------------------- data
def test_chatterbot_pairs_from_the_wheel():
    pairs = raw_pairs()
    assert len(pairs) == 2393  # every (turn, next turn) of chatterbot-corpus 1.3.3's 21 English files
    assert len({p.source for p in pairs}) == 21
    assert Pair("Who was the 37th President of the United States?", "Richard Nixon", "trivia") in pairs
    assert all(isinstance(p.question, str) and isinstance(p.answer, str) for p in pairs)
    lic = chatterbot_license()
    assert lic["name"] == "chatterbot-corpus" and "BSD" in lic["license"]
    assert chatterbot_root().name == "english"
    with pytest.raises(ValueError, match="no language"):
        chatterbot_root("klingon")
    with pytest.raises(ValueError, match="lowercase"):
        chatterbot_root("../english")


def test_to_vocab_and_fit_to_vocab():
    assert to_vocab("It\u2019s \u201cfine\u201d \u2013 ok\u2026", CHARS) == ("It's \"fine\" - ok...", 5)
    assert to_vocab("a\n  b", CHARS) == ("a b", 0)
    assert to_vocab("x = (1)", CHARS)[0] is None
    kept, report = fit_to_vocab(raw_pairs(), CHARS, max_len=120)
    assert report["kept"] == len(kept) and len(kept) == len(set(kept))
    assert report["pairs"] == sum(report[k] for k in ("unknown", "empty", "end_marker", "too_long", "duplicate",
                                                      "kept"))
    for p in kept:
        prompt, full = format_example(p.question, p.answer)
        assert len(full) <= 120 and TOK.decode(TOK.encode(full)) == full
    with pytest.raises(TypeError):
        to_vocab(3, CHARS)


def test_split_of_is_fixed_and_about_the_share():
    assert split_of("What is AI?") == split_of("What is AI?")
    texts = [f"question number {i}" for i in range(4000)]
    share = sum(split_of(t) == "test" for t in texts) / len(texts)
    assert abs(share - 0.1) < 0.02
    with pytest.raises(ValueError):
        split_of("x", 1.5)


def test_generated_tasks_answers_and_held_out_splits():
    train = generated_tasks(300, "train", seed=0)
    test = generated_tasks(100, "test", seed=0)
    assert generated_tasks(300, "train", seed=0) == train and generated_tasks(300, "train", seed=1) != train
    assert [p.source for p in train[:6]] == list(TASKS) * 2 and [p.source for p in test[:4]] == list(TEST_TASKS)
    assert not {p.question for p in train} & {p.question for p in test}
    held_words, held_names, held_cities = set(WORDS[4::5]), set(NAMES[4::5]), set(CITIES[4::5])
    for split, pairs in (("train", train), ("test", test)):
        for p in pairs:
            assert TOK.decode(TOK.encode(format_example(p.question, p.answer)[1]))  # in the model's characters
            if p.source == "sum":
                a, b = map(int, re.fullmatch(r"what is (\d) plus (\d)\?", p.question).groups())
                assert p.answer == str(a + b) and (((3 * a + 7 * b) % 5 == 1) == (split == "test"))
            elif p.source == "reverse":
                w = p.question.rsplit(" ", 1)[1]
                assert p.answer == w[::-1] and ((w in held_words) == (split == "test"))
            else:
                record = dict(kv.split(": ") for kv in p.question.rsplit(". ", 1)[0].split("; "))
                asked = p.question.rsplit(". ", 1)[1][:-1]
                assert p.answer == record[asked] and 2 <= len(record) <= 3
                unseen = set(record.values()) & (held_names | held_cities)
                if p.source == NEW_VALUE:
                    assert asked in ("name", "city") and p.answer in unseen
                else:
                    assert not unseen and split_of(p.question, 0.2) == split
    with pytest.raises(ValueError):
        generated_tasks(3, "val")
    with pytest.raises(ValueError):
        generated_tasks(0)
    with pytest.raises(ValueError):
        generated_tasks(3, tasks=("sum", "poetry"))
    with pytest.raises(ValueError):
        generated_tasks(3, "train", tasks=(NEW_VALUE,))


def test_error_kind():
    s = Pair("what is 3 plus 4?", "7", "sum")
    assert [error_kind(s, a) for a in ("7.", "8", "12", "x")] == ["right", "off by 1", "off by 2 or more",
                                                                   "not a number"]
    r = Pair("reverse the word once", "ecno", "reverse")
    assert [error_kind(r, a) for a in ("ecaf", "once", "ecn", "ecnp")] == ["a training answer", "the word itself",
                                                                           "wrong length", "wrong letters"]
    f = Pair("colour: pink; city: Pisa. city?", "Pisa", NEW_VALUE)
    assert [error_kind(f, a) for a in ("pisa", "pink", "Rome", "Pis", "xyz")] == [
        "right", "another field's value", "a value seen in training", "a partial copy", "other"]
    with pytest.raises(ValueError):
        error_kind(Pair("Hi", "Hello", "greetings"), "Hello")


# --------------------------------------------------------------------------------------------- the template
def test_template_and_bad_inputs():
    assert format_prompt("what is 3 plus 4?") == "Q: what is 3 plus 4?\nA: "
    assert format_example("what is 3 plus 4?", "7") == ("Q: what is 3 plus 4?\nA: ", "Q: what is 3 plus 4?\nA: 7$")
    for bad in ("", "two\nlines", f"a {END} b", 3):
        with pytest.raises(ValueError):
            format_prompt(bad)
    with pytest.raises(ValueError):
        format_example("q", "")
    with pytest.raises(ValueError):
        format_example("q", f"7{END}")


def test_mask_targets_and_build_example():
    assert mask_targets([10, 11, 12, 13, 14], 3) == ([10, 11, 12, 13], [IGNORE, IGNORE, 13, 14])
    assert mask_targets(torch.tensor([1, 2, 3]), 1) == ([1, 2], [2, 3])
    for bad in (0, 5, 2.0, True):
        with pytest.raises(ValueError):
            mask_targets([1, 2, 3, 4, 5], bad)
    ids, tg = build_example("what is 3 plus 4?", "7", TOK)
    prompt, full = format_example("what is 3 plus 4?", "7")
    assert TOK.decode(ids) == full[:-1]
    kept = [t for t in tg if t != IGNORE]
    assert TOK.decode(kept) == "7" + END and tg.index(kept[0]) == len(prompt) - 1
    ids_u, tg_u = build_example("what is 3 plus 4?", "7", TOK, mask_prompt=False)
    assert ids_u == ids and TOK.decode(tg_u) == full[1:]


def test_masked_loss_is_the_answer_log_likelihood():
    """The GPT's loss with masked targets equals -mean log p(answer tokens | everything before), by hand."""
    model = tiny_gpt()
    q, a = "name: Ann; city: Rome. city?", "Rome"
    ids, tg = build_example(q, a, TOK)
    prompt, full = format_example(q, a)
    with torch.no_grad():
        loss = model(torch.tensor([ids]), torch.tensor([tg])).loss
        full_ids = torch.tensor([TOK.encode(full)])
        logp = F.log_softmax(model(full_ids[:, :-1]).logits, -1)[0]
    P = len(prompt)
    by_hand = -torch.stack([logp[t - 1, full_ids[0, t]] for t in range(P, full_ids.shape[1])]).mean()
    torch.testing.assert_close(loss, by_hand, rtol=1e-5, atol=1e-6)


def test_padding_changes_no_loss():
    """Right padding with IGNORE targets: each example's summed loss in a padded batch equals its loss alone."""
    model = tiny_gpt(1)
    pairs = [("what is 3 plus 4?", "7"), ("reverse the word love", "evol"), ("name: Ann; city: Rome. city?", "Rome")]
    examples = [build_example(q, a, TOK, mask_prompt=m) for q, a in pairs for m in (True, False)]
    x, y = pad_batch(examples, pad_id=TOK.encode(END)[0])
    assert x.dtype == y.dtype == torch.long and x.shape == (6, max(len(e[0]) for e in examples))
    with torch.no_grad():
        logits = model(x).logits
        batch = F.cross_entropy(logits.transpose(1, 2), y, ignore_index=IGNORE, reduction="none").sum(1)
        alone = torch.stack([F.cross_entropy(model(torch.tensor([i])).logits[0], torch.tensor(t),
                                             ignore_index=IGNORE, reduction="sum") for i, t in examples])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)
    assert (y[x.shape[1] * 0:, :] == IGNORE).sum() > 0
    x2, y2 = pad_batch(examples, 0, max_len=10)
    assert x2.shape[1] == 10 and x2[0].tolist() == examples[0][0][:10]
    with pytest.raises(ValueError, match="empty"):
        pad_batch([], 0)
    with pytest.raises(ValueError, match="equal length"):
        pad_batch([([1, 2], [3])], 0)


def test_token_losses_by_hand():
    model = tiny_gpt(2)
    pairs = [Pair("what is 3 plus 4?", "7", "sum"), Pair("reverse the word love", "evol", "reverse")]
    got = token_losses(model, TOK, pairs)
    nll = {"answer": [], "prompt": []}
    with torch.no_grad():
        for p in pairs:
            prompt, full = format_example(p.question, p.answer)
            ids = torch.tensor([TOK.encode(full)])
            logp = F.log_softmax(model(ids[:, :-1]).logits, -1)[0]
            for t in range(1, ids.shape[1]):
                nll["answer" if t >= len(prompt) else "prompt"].append(-logp[t - 1, ids[0, t]].item())
    for k in nll:
        assert math.isclose(got[k], sum(nll[k]) / len(nll[k]), rel_tol=1e-5)


# --------------------------------------------------------------------------------------------- decoding
def test_answer_questions_equals_one_at_a_time():
    model = tiny_gpt(3)
    with torch.no_grad():  # make the end marker likely somewhere, so both branches (ended or not) occur
        model.transformer.wte.weight[TOK.encode(END)[0]] *= 6
    questions = ["what is 3 plus 4?", "what is 5 plus 1?", "reverse the word love", "name: Ann; city: Rome. city?"]
    got = answer_questions(model, TOK, questions, max_new_tokens=8, batch_size=1 + 1)
    for q, (ans, ended) in zip(questions, got, strict=True):
        x = torch.tensor([TOK.encode(format_prompt(q))])
        text = TOK.decode(generate(model, x, 8, temperature=0.0, use_cache=False)[0, x.shape[1]:].tolist())
        assert (ans, ended) == (text.split(END)[0], END in text)


def test_exact_match_and_similarity():
    assert normalize_answer("  New   York. ") == "new york"
    assert exact_match(" Rome. ", "rome") and exact_match("11!", "11")
    assert not exact_match("17", "7") and not exact_match("3.5", "35") and not exact_match("", "7")
    assert char_similarity("abc", "abd") == pytest.approx(2 * 2 / 6)
    assert char_similarity("Rome", "rome.") == 1.0 and char_similarity("", "") == 1.0
    with pytest.raises(TypeError):
        normalize_answer(None)


# --------------------------------------------------------------------------------------------- training
def test_finetune_masked_vs_unmasked_and_lora():
    pairs = generated_tasks(8, "train")
    cfg = FinetuneConfig(steps=6, batch_size=4, lr=3e-3, warmup=1, buckets=2)
    histories, models = {}, {}
    for mask in (True, False):
        m = tiny_gpt(4)
        m.config.block_size = 96
        histories[mask] = finetune(m, TOK, pairs, FinetuneConfig(**{**cfg.__dict__, "mask_prompt": mask}),
                                   progress=False, log_every=1)
        models[mask] = m
    assert [h["step"] for h in histories[True]] == list(range(6))
    assert histories[True][-1]["loss"] < histories[True][0]["loss"]
    # the same batches: the masked loss (answers only) and the unmasked one (everything) differ from step 0
    assert histories[True][0]["loss"] != histories[False][0]["loss"]
    before = tiny_gpt(4)
    lora = copy.deepcopy(before)
    apply_lora(lora, targets=("attn.c_attn",), r=2, alpha=4)
    finetune(lora, TOK, pairs, cfg, progress=False)
    frozen = {n: p for n, p in lora.named_parameters() if not n.endswith((".A", ".B"))}
    for n, p in before.named_parameters():
        key = n.replace("attn.c_attn.", "attn.c_attn.base.")
        torch.testing.assert_close(frozen[key], p, rtol=0, atol=0)  # only the adapters moved
    assert any(p.abs().sum() > 0 for p in lora_parameters(lora) if p.shape[1] == 2)  # B left zero
    with pytest.raises(ValueError):
        FinetuneConfig(steps=0)
    with pytest.raises(ValueError, match="empty"):
        finetune(tiny_gpt(), TOK, [], cfg, progress=False)
    frozen_all = tiny_gpt()
    for p in frozen_all.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        finetune(frozen_all, TOK, pairs, cfg, progress=False)


# --------------------------------------------------------------------------------------------- checkers
def quiet(checker, fn):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = checker(fn)
    return result, out.getvalue()


def test_checkers_pass_the_references():
    assert quiet(check_mask_targets, mask_targets)[0]
    assert quiet(check_pad_batch, lambda ex, pad: pad_batch(ex, pad))[0]
    assert quiet(check_exact_match, exact_match)[0]


def test_checkers_name_the_usual_mistakes():
    def off_by_one(ids, n):
        t = list(ids[1:])
        t[:n] = [IGNORE] * n
        return list(ids[:-1]), t

    result, out = quiet(check_mask_targets, off_by_one)
    assert not result and "first answer token" in out

    def pad_targets_with_pad(ex, pad):
        x, y = pad_batch(ex, pad)
        for b, (ids, _) in enumerate(ex):
            y[b, len(ids):] = pad
        return x, y

    result, out = quiet(check_pad_batch, pad_targets_with_pad)
    assert not result and "targets padded with pad_id" in out
    result, out = quiet(check_pad_batch, lambda ex, pad: tuple(t.float() for t in pad_batch(ex, pad)))
    assert not result and "torch.long" in out
    result, out = quiet(check_exact_match, lambda p, a: a.strip().lower() in p.lower())
    assert not result and "substring" in out
    result, out = quiet(check_exact_match, lambda p, a: p.strip().rstrip(".!") == a.strip().rstrip(".!"))
    assert not result and "case-sensitive" in out

    def stub(*_):
        raise NotImplementedError()

    for checker in (check_mask_targets, check_pad_batch, check_exact_match):
        result, out = quiet(checker, stub)
        assert not result and "not implemented yet" in out
