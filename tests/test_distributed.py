"""The training CLI on several processes (torchrun, DDP over gloo on 2 CPU processes), proven equal to one process.

- 2 processes x B windows per step = 1 process x 2B (weights within 1e-5 after 6 steps, float32);
- grad_accum micro-batches of B = one batch of grad_accum x B (1e-5);
- a 2-process run stopped at step 3 and resumed on 2 processes ends bit-identical to the uninterrupted run;
  resumed on 1 process (with the same global batch) it continues the same data order, within 1e-5;
- only rank 0 writes the log and the checkpoint;
- with --fsdp (FSDP2's fully_shard, which runs on CPUs over gloo) the weights equal DDP's within 1e-5, and the
  checkpoint is the ordinary folder, loadable on one process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from helpers.train import TrainConfig, load_checkpoint, train

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this PyTorch build has no torch.distributed")

TINY = dict(max_iters=6, eval_interval=3, eval_iters=2, n_layer=2, n_embd=32, n_head=2, block_size=32, sample_chars=0,
            device="cpu", seed=11)
FLAGS = ["--eval-iters", "2", "--n-layer", "2", "--n-embd", "32", "--n-head", "2", "--block-size", "32",
         "--sample-chars", "0", "--device", "cpu", "--no-progress", "--threads", "1", "--seed", "11",
         "--eval-interval", "3", "--lr-decay-iters", "6"]


def launch(out: Path, nproc: int, *extra: str) -> str:
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = ([str(torchrun), "--standalone", f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable]) + \
        ["-m", "helpers.train", "--out", str(out), *FLAGS, *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    log = launch(out, 2, "--batch-size", "4", "--max-iters", "6")
    return out, log


def test_two_processes_equal_one_with_the_double_batch(ddp_run):
    out, log = ddp_run
    one, _, _ = train(TrainConfig(**TINY, batch_size=8, lr_decay_iters=6), progress=False, log=lambda s: None)
    two, _, state = load_checkpoint(out)
    assert state["step"] == 6
    d = max((a - b).abs().max().item() for a, b in zip(one.state_dict().values(), two.state_dict().values(),
                                                        strict=True))
    assert d < 1e-5, d
    # one process speaks: one start line and one end line, not two
    assert log.count("device=") == 1 and log.count("done:") == 1 and "(2 processes)" in log


def test_gradient_accumulation_equals_the_big_batch():
    big, _, _ = train(TrainConfig(**TINY, batch_size=8), progress=False, log=lambda s: None)
    acc, _, _ = train(TrainConfig(**TINY, batch_size=2, grad_accum=4), progress=False, log=lambda s: None)
    d = max((a - b).abs().max().item() for a, b in zip(big.state_dict().values(), acc.state_dict().values(), strict=True))
    assert d < 1e-5, d
    with pytest.raises(ValueError, match="grad_accum"):
        TrainConfig(grad_accum=0)


def test_resume_on_the_same_and_on_another_process_count(ddp_run, tmp_path):
    out, _ = ddp_run
    half = tmp_path / "half"
    launch(half, 2, "--batch-size", "4", "--max-iters", "3")
    same = tmp_path / "same"
    shutil.copytree(half, same)
    launch(same, 2, "--batch-size", "4", "--max-iters", "6", "--resume")
    assert max_diff(weights(half), weights(out)) > 1e-4  # the last three steps matter ...
    assert max_diff(weights(same), weights(out)) == 0.0  # ... and resumed, they are the same bit for bit
    other = tmp_path / "other"
    shutil.copytree(half, other)
    launch(other, 1, "--batch-size", "8", "--max-iters", "6", "--resume")  # the same global batch, one process
    assert max_diff(weights(other), weights(out)) < 1e-5


def test_fsdp_equals_ddp_and_saves_an_ordinary_checkpoint(ddp_run, tmp_path):
    out, _ = ddp_run
    sharded = tmp_path / "fsdp"
    log = launch(sharded, 2, "--batch-size", "4", "--max-iters", "6", "--fsdp")
    assert max_diff(weights(sharded), weights(out)) < 1e-5
    held = re.search(r"fsdp: this process holds ([\d,]+) of ([\d,]+) parameters", log)
    local, total = (int(g.replace(",", "")) for g in held.groups())
    assert 0.45 * total < local < 0.55 * total  # half of every sharded parameter on each of 2 processes
    model, tok, state = load_checkpoint(sharded)  # one process, no torch.distributed: a plain safetensors folder
    assert state is None and model.config.n_layer == 2 and tok.vocab_size == model.config.vocab_size


def test_bf16_autocast_on_the_cpu_follows_float32():
    """Mixed precision on the CPU: matrix products in bfloat16, weights in float32; the run stays close."""
    f32, _, s32 = train(TrainConfig(**TINY, batch_size=8), progress=False, log=lambda s: None)
    b16, _, s16 = train(TrainConfig(**TINY, batch_size=8, bf16=True), progress=False, log=lambda s: None)
    assert all(p.dtype == torch.float32 for p in b16.parameters())
    gap = max(abs(a["val_loss"] - b["val_loss"]) for a, b in zip(s32.history, s16.history, strict=True))
    assert 0 < gap < 0.05, gap  # different (bfloat16 rounds), but only in the third decimal
