"""The tokenization and training checkers: a right answer passes every case, a plausible wrong one fails."""

import math

import torch

from helpers import checks
from helpers.checks import (
    check_bits_per_char,
    check_char_encode,
    check_get_batch_shift,
    check_get_pair_counts,
    check_lr_schedule,
    check_merge_pair,
)

# ------------------------------------------------------------------ right answers, written independently


def char_encode(text, chars):
    index = {c: i for i, c in enumerate(chars)}
    for c in text:
        if c not in index:
            raise ValueError(f"unknown character {c!r}")
    return [index[c] for c in text]


def get_pair_counts(ids):
    counts = {}
    for i in range(len(ids) - 1):
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
    return counts


def merge_pair(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def lr_schedule(step, cfg):
    end = cfg.lr_decay_iters or cfg.max_iters
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    if step >= end:
        return cfg.min_lr
    progress = (step - cfg.warmup_iters) / (end - cfg.warmup_iters)
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress)) / 2


def get_batch_shift(data, starts, block_size):
    x = torch.stack([data[s : s + block_size] for s in starts])
    return x, torch.stack([data[s + 1 : s + 1 + block_size] for s in starts])


def bpc(loss, chars_per_token):
    return loss / math.log(2) / chars_per_token


# ------------------------------------------------------------------ plausible wrong answers


def char_encode_silent(text, chars):
    return [chars.find(c) for c in text]  # -1 for an unknown character, no error


def pair_counts_no_overlap(ids):
    counts, i = {}, 0
    while i < len(ids) - 1:
        counts[(ids[i], ids[i + 1])] = counts.get((ids[i], ids[i + 1]), 0) + 1
        i += 2 if ids[i] == ids[i + 1] else 1
    return counts


def merge_pair_overlapping(ids, pair, new_id):
    out = list(ids)
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == pair:
            out[i] = new_id
    return [t for j, t in enumerate(out) if not (j > 0 and out[j - 1] == new_id and ids[j] == pair[1])]


def lr_no_warmup(step, cfg):
    return lr_schedule(max(step, cfg.warmup_iters), cfg)


def lr_linear_decay(step, cfg):
    end = cfg.lr_decay_iters or cfg.max_iters
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / (cfg.warmup_iters + 1)
    return max(cfg.min_lr, cfg.lr - (cfg.lr - cfg.min_lr) * (step - cfg.warmup_iters) / (end - cfg.warmup_iters))


def batch_no_shift(data, starts, block_size):
    x = torch.stack([data[s : s + block_size] for s in starts])
    return x, x.clone()


def bpc_log10(loss, chars_per_token):
    return loss / math.log(10) / chars_per_token


def bpc_ignores_tokens(loss, chars_per_token):
    return loss / math.log(2)


def test_right_answers_pass(capsys):
    for check, fn in [
        (check_char_encode, char_encode),
        (check_get_pair_counts, get_pair_counts),
        (check_merge_pair, merge_pair),
        (check_lr_schedule, lr_schedule),
        (check_get_batch_shift, get_batch_shift),
        (check_bits_per_char, bpc),
    ]:
        result = check(fn)
        assert result, capsys.readouterr().out
        assert result.passed == result.total >= 4
    assert "✗" not in capsys.readouterr().out


def test_wrong_answers_fail(capsys):
    for check, fn in [
        (check_char_encode, char_encode_silent),
        (check_get_pair_counts, pair_counts_no_overlap),
        (check_merge_pair, merge_pair_overlapping),
        (check_lr_schedule, lr_no_warmup),
        (check_lr_schedule, lr_linear_decay),
        (check_get_batch_shift, batch_no_shift),
        (check_bits_per_char, bpc_log10),
        (check_bits_per_char, bpc_ignores_tokens),
    ]:
        result = check(fn)
        assert not result, f"{fn.__name__} passed {check.__name__}"
        assert 0 < result.total
    out = capsys.readouterr().out
    assert "✗" in out and "not yet" in out


def test_not_implemented_is_reported_not_raised(capsys):
    def todo(*args):
        raise NotImplementedError

    assert check_merge_pair(todo).passed == 0
    assert "not implemented yet" in capsys.readouterr().out


def test_checkers_are_exported():
    for name in ("check_char_encode", "check_get_pair_counts", "check_merge_pair", "check_lr_schedule",
                 "check_get_batch_shift", "check_bits_per_char"):
        assert name in checks.__all__


# ------------------------------------------------------------------ 07: the training step and the schedule

import pytest  # noqa: E402

from helpers.checks import check_decay_step, check_train_step  # noqa: E402
from helpers.checks.training import decay_step_reference  # noqa: E402
from helpers.train import TrainConfig, lr_at  # noqa: E402


def train_step(model, optimizer, x, y, grad_clip=1.0):
    model.train()
    optimizer.zero_grad()
    _, loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _step(zero="before", clip="norm", backward=True, step=True, train=True, ret="float"):
    def fn(model, optimizer, x, y, grad_clip=1.0):
        if train:
            model.train()
        if zero == "before":
            optimizer.zero_grad()
        _, loss = model(x, y)
        if backward:
            loss.backward()
        if clip == "norm":
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        elif clip == "value":
            torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
        elif clip == "one":
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if step:
            optimizer.step()
        if clip == "after":
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if zero == "after":
            optimizer.zero_grad()
        return {"float": loss.item(), "tensor": loss, "none": None}[ret]

    return fn


def test_train_step_right_answer_passes(capsys):
    result = check_train_step(train_step)
    out = capsys.readouterr().out
    assert result and result.passed == result.total >= 6, out
    assert result.score(4) == 4.0


@pytest.mark.parametrize("kwargs, hint", [
    (dict(zero="none"), "zero_grad is missing"),
    (dict(zero="after"), "zeroed after the step"),
    (dict(clip="after"), "clipped after optimizer.step()"),
    (dict(clip="none"), "gradient clipping is missing"),
    (dict(clip="value"), "clip_grad_value_"),
    (dict(clip="one"), "ignores grad_clip"),
    (dict(backward=False), "loss.backward() is missing"),
    (dict(step=False), "optimizer.step() is missing"),
    (dict(train=False), "model.train()"),
    (dict(ret="tensor"), "return loss.item()"),
    (dict(ret="none"), "did you forget `return`"),
])
def test_train_step_mistakes_are_named(capsys, kwargs, hint):
    result = check_train_step(_step(**kwargs))
    out = capsys.readouterr().out
    assert not result and result.score(4) < 4.0
    assert hint in out, out
    assert "Traceback" not in out


def test_train_step_not_implemented_scores_zero(capsys):
    def todo(model, optimizer, x, y, grad_clip=1.0):
        raise NotImplementedError()

    result = check_train_step(todo)
    assert result.score(4) == 0.0 and not result.implemented
    assert "not implemented yet" in capsys.readouterr().out


def decay_step(target, cfg):
    end = cfg.lr_decay_iters or cfg.max_iters
    u = 2 * (target - cfg.min_lr) / (cfg.lr - cfg.min_lr) - 1
    return math.ceil(cfg.warmup_iters + (end - cfg.warmup_iters) * math.acos(max(-1.0, min(1.0, u))) / math.pi)


def test_decay_step_reference_is_the_first_step_at_or_below_target():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=100, max_iters=1000)
    s = decay_step_reference(5e-4, cfg)
    assert lr_at(s, cfg) <= 5e-4 < lr_at(s - 1, cfg)
    with pytest.raises(ValueError, match="between min_lr"):
        decay_step_reference(2e-3, cfg)


def test_decay_step_right_answer_passes(capsys):
    result = check_decay_step(decay_step)
    assert result and result.total >= 5, capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda t, c: decay_step(t, TrainConfig(**{**c.__dict__, "lr_decay_iters": None})), "ending at max_iters"),
    (lambda t, c: decay_step(t, TrainConfig(**{**c.__dict__, "min_lr": 0.0})), "down to 0"),
    (lambda t, c: decay_step(t, c) - 1, "rounding down"),
    (lambda t, c: math.ceil((c.lr_decay_iters or c.max_iters)
                            * math.acos(2 * (t - c.min_lr) / (c.lr - c.min_lr) - 1) / math.pi), "from step 0"),
])
def test_decay_step_mistakes_are_named(capsys, wrong, hint):
    result = check_decay_step(wrong)
    out = capsys.readouterr().out
    assert not result, out
    assert hint in out, out


def test_new_checkers_are_exported():
    for name in ("check_train_step", "check_decay_step"):
        assert name in checks.__all__
