"""helpers.train: the loop, its schedule and optimizer, and checkpoints that lose nothing.

Tiny models and few steps (one CPU thread: the machine is shared). Bit-exactness is asserted with
``torch.equal`` on every weight, so "resumed" means *identical*, not "close".
"""

import hashlib
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from helpers.bpe import BPETokenizer
from helpers.model import GPT
from helpers.tokenizer import CharTokenizer
from helpers.train import (
    TrainConfig,
    bits_per_char,
    configure_optimizer,
    evaluate_text,
    load_checkpoint,
    lr_at,
    save_checkpoint,
    train,
)

TINY = dict(
    n_layer=2, n_head=2, n_embd=32, block_size=16, batch_size=4, dropout=0.1,  # dropout: RNG state matters
    max_iters=30, lr_decay_iters=30, warmup_iters=5,  # a schedule that does not depend on where we stop
    eval_interval=5, eval_iters=2, sample_chars=16, device="cpu",
)
ROOT = Path(__file__).resolve().parents[1]


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run of the tiny config: what every resumed run must reproduce exactly."""
    out = tmp_path_factory.mktemp("ref") / "ckpt"
    model, tok, state = train(TrainConfig(**TINY), out_dir=out, progress=False, log=quiet)
    return out, model, tok, state


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"{k} differs (max {(sa[k] - sb[k]).abs().max():.3g})"


def folder_digest(path: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


# ---------------------------------------------------------------------- schedule, optimizer, units
def test_lr_schedule_warmup_then_cosine():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_iters=10, max_iters=110)
    lrs = [lr_at(s, cfg) for s in range(130)]
    assert all(b > a for a, b in zip(lrs[:9], lrs[1:10], strict=True))  # warm-up rises
    assert lrs[9] < cfg.lr and lrs[10] == pytest.approx(cfg.lr)  # peak right after warm-up
    assert lrs[60] == pytest.approx(1e-4 + 0.5 * (1 + math.cos(math.pi * 0.5)) * 9e-4)  # half way: the middle
    assert all(b <= a for a, b in zip(lrs[10:109], lrs[11:110], strict=True))  # cosine decays
    assert lrs[110:] == [cfg.min_lr] * 20  # then stays at min_lr


def test_weight_decay_on_matrices_only():
    model = GPT(TrainConfig(**TINY).model_config(10))
    opt = configure_optimizer(model, TrainConfig(**TINY))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == sum(p.numel() for p in model.parameters())  # every parameter once (tied embedding once)


def test_bits_per_char():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert bits_per_char(math.log(4), chars_per_token=2.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="chars_per_token must be positive"):
        bits_per_char(1.0, 0)


def test_config_and_call_errors(tmp_path):
    with pytest.raises(ValueError, match="n_layer must be a positive int"):
        TrainConfig(n_layer=0)
    with pytest.raises(ValueError, match="tokenizer must be 'char' or 'bpe'"):
        TrainConfig(tokenizer="word")
    with pytest.raises(ValueError, match="need lr > 0"):
        TrainConfig(lr=1e-3, min_lr=1e-2)
    with pytest.raises(ValueError, match="divisible"):
        TrainConfig(n_embd=30, n_head=4)
    with pytest.raises(TypeError, match="cfg must be a TrainConfig"):
        train({"max_iters": 1})
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        train(TrainConfig(**TINY), resume=True)
    with pytest.raises(FileNotFoundError, match="holds no training state"):
        train(TrainConfig(**TINY), out_dir=tmp_path / "nothing", resume=True, progress=False, log=quiet)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path)


# ---------------------------------------------------------------------- (a) resume is bit-exact
def test_loss_falls_and_history_is_complete(reference):
    _, _, _, state = reference
    assert [h["step"] for h in state.history] == [5, 10, 15, 20, 25, 30]
    assert [s["step"] for s in state.samples] == [5, 10, 15, 20, 25, 30]
    assert state.history[-1]["train_loss"] < state.history[0]["train_loss"]
    assert state.step == 30 and math.isfinite(state.best_val_loss)


def test_resume_in_process_is_bit_identical(reference, tmp_path):
    ref_dir, ref_model, _, ref_state = reference
    out = tmp_path / "split"
    train(TrainConfig(**{**TINY, "max_iters": 20}), out_dir=out, progress=False, log=quiet)
    model, _, state = train(TrainConfig(**TINY), out_dir=out, resume=True, progress=False, log=quiet)
    assert_same_weights(model, ref_model)
    assert state.history == ref_state.history  # losses, learning rates, bits per char: all equal
    assert state.samples == ref_state.samples
    a, b = load_checkpoint(out)[2]["tensors"], load_checkpoint(ref_dir)[2]["tensors"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # optimizer moments and RNGs too


def test_checkpointing_does_not_change_training(reference):
    _, ref_model, _, ref_state = reference
    model, _, state = train(TrainConfig(**TINY), progress=False, log=quiet)  # no out_dir: never saved
    assert_same_weights(model, ref_model)
    assert state.history == ref_state.history


def test_resume_refuses_another_architecture(reference, tmp_path):
    out = tmp_path / "ckpt"
    train(TrainConfig(**{**TINY, "max_iters": 5}), out_dir=out, progress=False, log=quiet)
    before = folder_digest(out)
    with pytest.raises(ValueError, match="different architecture"):
        train(TrainConfig(**{**TINY, "n_embd": 64}), out_dir=out, resume=True, progress=False, log=quiet)
    assert folder_digest(out) == before


def test_bpe_run_saves_its_tokenizer(tmp_path):
    text = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40
    cfg = TrainConfig(**{**TINY, "tokenizer": "bpe", "bpe_vocab_size": 300, "max_iters": 4, "eval_interval": 0})
    model, tok, _ = train(cfg, out_dir=tmp_path / "bpe", train_text=text, val_text=text, progress=False, log=quiet)
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == model.config.vocab_size == 300
    m2, tok2, state = load_checkpoint(tmp_path / "bpe")
    assert isinstance(tok2, BPETokenizer) and tok2.merges == tok.merges and state["step"] == 4
    assert_same_weights(m2, model)
    assert state["chars_per_token"] > 1.5  # BPE tokens are several characters long


# ---------------------------------------------------------------------- (c) bad input corrupts nothing
def test_bad_saves_never_touch_an_existing_checkpoint(reference, tmp_path):
    ref_dir, ref_model, tok, _ = reference
    out = tmp_path / "ckpt"
    save_checkpoint(out, ref_model, tok)
    before = folder_digest(out)

    broken = GPT(ref_model.config)
    broken.load_state_dict(ref_model.state_dict())
    with torch.no_grad():
        broken.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        save_checkpoint(out, broken, tok)
    with pytest.raises(ValueError, match="tokenizer has 3 tokens but the model's vocab_size is"):
        save_checkpoint(out, ref_model, CharTokenizer("abc"))
    with pytest.raises(TypeError, match="model must be a helpers.model.GPT"):
        save_checkpoint(out, ref_model.to_hf(), tok)
    with pytest.raises(TypeError, match="tokenizer must be a course tokenizer"):
        save_checkpoint(out, ref_model, "not a tokenizer")

    class FailingTokenizer(CharTokenizer):  # dies half-way through writing
        def save_pretrained(self, path):
            (Path(path) / "tokenizer.json").write_text("{half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(out, ref_model, FailingTokenizer(tok.chars))
    assert folder_digest(out) == before
    model, tok2, _ = load_checkpoint(out)
    assert_same_weights(model, ref_model)
    assert tok2.chars == tok.chars


def test_interrupted_swap_is_recovered(reference, tmp_path):
    _, ref_model, tok, _ = reference
    out = tmp_path / "ckpt"
    save_checkpoint(out, ref_model, tok)
    os.replace(out, tmp_path / "ckpt.old")  # killed between save_checkpoint's two renames
    model, _, _ = load_checkpoint(out)
    assert_same_weights(model, ref_model)
    assert (out / "model.safetensors").exists() and not (tmp_path / "ckpt.old").exists()


# ---------------------------------------------------------------------- (d) a valid Hugging Face folder
def test_checkpoint_is_a_hugging_face_gpt2_folder(reference):
    ref_dir, ref_model, tok, _ = reference
    hf = AutoModelForCausalLM.from_pretrained(ref_dir).eval()
    assert type(hf).__name__ == "GPT2LMHeadModel"
    hf_tok = AutoTokenizer.from_pretrained(ref_dir)
    text = "ROMEO:\nBut, soft! what light through yonder window breaks?"
    ids = hf_tok(text, return_tensors="pt")["input_ids"]
    assert ids[0].tolist() == tok.encode(text)
    ref_model.eval()
    with torch.no_grad():
        ours = ref_model(ids[:, : ref_model.config.block_size]).logits
        theirs = hf(ids[:, : ref_model.config.block_size]).logits
    assert (ours - theirs).abs().max().item() < 1e-5


# ---------------------------------------------------------------------- (a)+(b) the command line, and SIGKILL
def cli(out: Path, log: Path, resume: bool = False, **overrides) -> subprocess.Popen:
    args = [sys.executable, "-m", "helpers.train", "--out", str(out), "--no-progress", "--threads", "1"]
    for k, v in {**TINY, "eval_interval": 2, **overrides}.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    if resume:
        args.append("--resume")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, cwd=ROOT, env=env)


def assert_loadable(out: Path) -> int:
    model, tok, state = load_checkpoint(out)  # also recovers the `.old` folder of an interrupted swap
    AutoModelForCausalLM.from_pretrained(out)
    hf_tok = AutoTokenizer.from_pretrained(out)
    assert hf_tok("ROMEO:")["input_ids"] == tok.encode("ROMEO:")
    assert state is not None and 0 < state["step"] <= TINY["max_iters"]
    return state["step"]


def test_cli_stop_resume_and_sigkill_end_bit_identical(tmp_path):
    # the reference for this test: the same config, uninterrupted, in this process
    ref, _, ref_state = train(TrainConfig(**{**TINY, "eval_interval": 2}), progress=False, log=quiet)
    out = tmp_path / "run"
    # a clean stop at step 10 through the CLI ...
    p = cli(out, tmp_path / "log0.txt", max_iters=10)
    assert p.wait(timeout=600) == 0, (tmp_path / "log0.txt").read_text()[-2000:]
    assert assert_loadable(out) == 10
    # ... then resumed and killed with SIGKILL at random moments, three times
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    report = []
    for i in range(1, 4):
        log = tmp_path / f"log{i}.txt"
        p = cli(out, log, resume=True)
        t0 = time.time()
        while "device=" not in log.read_text() and p.poll() is None and time.time() - t0 < 600:
            time.sleep(0.02)  # wait until training has started
        delay = rng.uniform(0.0, 1.5)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        step = assert_loadable(out)
        report.append(f"kill {i} after {delay:.2f}s: checkpoint at step {step}")
    # the last resume runs to the end, and must match the uninterrupted run bit for bit
    p = cli(out, tmp_path / "log4.txt", resume=True)
    assert p.wait(timeout=600) == 0, (tmp_path / "log4.txt").read_text()[-2000:]
    model, _, state = load_checkpoint(out)
    msg = f"random seed {seed}; " + "; ".join(report)
    assert state["step"] == TINY["max_iters"], msg
    assert_same_weights(model, ref)
    assert state["history"] == ref_state.history, msg
    assert state["samples"] == ref_state.samples, msg
    print(msg)


def test_evaluate_text_matches_hugging_face_loss(reference):
    ref_dir, ref_model, tok, _ = reference
    text = "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
    got = evaluate_text(ref_model, tok, text, batch_size=2)
    hf = AutoModelForCausalLM.from_pretrained(ref_dir).eval()
    ids = torch.tensor(tok.encode(text))
    T, total, n = ref_model.config.block_size, 0.0, 0
    with torch.no_grad():
        for s in range(0, len(ids) - 1, T):  # the same windows, scored by Hugging Face's GPT-2
            w = ids[s : s + T + 1][None]
            out = hf(w[:, :-1], labels=None).logits
            total += torch.nn.functional.cross_entropy(out[0], w[0, 1:], reduction="sum").item()
            n += w.shape[1] - 1
    assert got["tokens"] == n == len(text) - 1
    assert abs(got["loss"] - total / n) < 1e-5
    assert got["bpc"] == pytest.approx(got["loss"] / math.log(2))
    assert evaluate_text(ref_model, tok, text, max_chars=30)["tokens"] == 29
    with pytest.raises(ValueError, match="non-empty str"):
        evaluate_text(ref_model, tok, "")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        evaluate_text(ref_model, tok, text, batch_size=0)
    with pytest.raises(ValueError, match="max_chars must be None or an int"):
        evaluate_text(ref_model, tok, text, max_chars=1)
    with pytest.raises(TypeError, match="model must be a helpers.model.GPT"):
        evaluate_text(hf, tok, text)
