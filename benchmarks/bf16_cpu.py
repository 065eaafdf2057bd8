"""bfloat16 autocast on the CPU against float32: speed, and the loss curve of the same run.

    python benchmarks/bf16_cpu.py [--steps 200] [--threads 1]

Trains the course's 4-layer model twice from the same seed on the same batches, once in float32 and once with
``TrainConfig(bf16=True)`` (``torch.autocast("cpu", dtype=torch.bfloat16)``: matrix products in bfloat16, weights,
gradients and AdamW's state in float32), and prints both validation curves, their largest gap, and the time per
step of each (measured in the same run: a ratio, not an absolute speed).
"""

from __future__ import annotations

import argparse

import torch

from helpers.train import TrainConfig, train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    runs = {}
    for bf16 in (False, True):
        cfg = TrainConfig(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, max_iters=a.steps,
                          eval_interval=max(1, a.steps // 5), eval_iters=10, sample_chars=0, device="cpu", seed=0,
                          lr=2e-3, warmup_iters=a.steps // 10, bf16=bf16)
        _, _, state = train(cfg, progress=False, log=lambda s: None)
        runs["bf16" if bf16 else "float32"] = state
    f32, b16 = runs["float32"], runs["bf16"]
    print(f"torch {torch.__version__}, {a.threads} thread(s), {a.steps} steps of 16 x 128 characters")
    print(f"{'step':>6} {'float32 bits/char':>18} {'bf16 bits/char':>15} {'gap':>7}")
    for h32, h16 in zip(f32.history, b16.history, strict=True):
        print(f"{h32['step']:>6} {h32['val_bpc']:>18.3f} {h16['val_bpc']:>15.3f} {h16['val_bpc'] - h32['val_bpc']:>+7.3f}")
    print(f"seconds for the whole run: float32 {f32.elapsed_s:.1f}, bf16 {b16.elapsed_s:.1f} "
          f"(bf16 takes {b16.elapsed_s / f32.elapsed_s:.2f}x the time)")


if __name__ == "__main__":
    main()
