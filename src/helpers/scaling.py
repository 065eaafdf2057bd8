"""A scaling law measured on a laptop: held-out loss against model size and training tokens.

The ladder (``LADDER``) is the course's GPT at five sizes spanning 31x in non-embedding parameters (25K to
0.80M), each trained on the course's Shakespeare split for several token budgets (``BUDGETS``) with the same
recipe; every point is scored in bits per character on the same held-out windows (``helpers.llama.heldout_bpc``).

    python -m helpers.scaling --out src/helpers/scaling_ladder.csv          # the whole ladder (about 30 minutes, one thread)
    python -m helpers.scaling --out /tmp/two.csv --sizes 0 1 --budgets 0    # the two smallest points

One CSV row per (size, budget, seed): the parameters, tokens, steps, held-out and training bits per character and
the seconds it took. Re-running a point with the same seed gives the same numbers (up to CPU round-off).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import torch

__all__ = ["LADDER", "BUDGETS", "RECIPE", "CSV", "FIELDS", "run_point", "read_csv", "fit_power_law"]

# (n_layer, n_head, n_embd): non-embedding parameters 12 L C^2 (+ biases and norms)
LADDER = [(2, 2, 32), (2, 2, 48), (2, 4, 64), (3, 4, 96), (4, 4, 128)]
BUDGETS = [1_048_576, 2_097_152, 4_194_304]  # training characters: 512, 1,024 and 2,048 steps of 16 x 128
RECIPE = dict(block_size=128, batch_size=16, lr=2e-3, min_lr=2e-4, weight_decay=0.1, dropout=0.0, eval_iters=10,
              sample_chars=0, device="cpu")
CSV = Path(__file__).with_name("scaling_ladder.csv")
FIELDS = ["n_layer", "n_head", "n_embd", "params", "params_non_embedding", "tokens", "steps", "seed", "val_bpc",
          "train_bpc", "seconds"]


def run_point(size: tuple[int, int, int], tokens: int, seed: int = 0) -> dict:
    """Train one model of ``size`` on ``tokens`` training characters; return its CSV row."""
    from .llama import heldout_bpc
    from .train import TrainConfig, train

    if len(size) != 3 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ValueError(f"size must be (n_layer, n_head, n_embd) positive ints, got {size!r}")
    per_step = RECIPE["batch_size"] * RECIPE["block_size"]
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < per_step:
        raise ValueError(f"tokens must be an int of at least one batch ({per_step}), got {tokens!r}")
    n_layer, n_head, n_embd = size
    steps = tokens // per_step
    cfg = TrainConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, max_iters=steps,
                      warmup_iters=max(1, steps // 20), eval_interval=steps, seed=seed, **RECIPE)
    t0 = time.perf_counter()
    model, tok, state = train(cfg, progress=False, log=lambda s: None)
    seconds = time.perf_counter() - t0
    from .data import shakespeare

    return {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "params": model.num_parameters(),
            "params_non_embedding": model.num_parameters(non_embedding=True), "tokens": steps * per_step,
            "steps": steps, "seed": seed, "val_bpc": round(heldout_bpc(model, tok, shakespeare("val")), 5),
            "train_bpc": round(state.history[-1]["train_loss"] / math.log(2), 5), "seconds": round(seconds, 1)}


def read_csv(path: str | Path = CSV) -> list[dict]:
    """The ladder's rows, numbers as numbers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no scaling ladder at {path}: python -m helpers.scaling --out {path}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or set(FIELDS) - set(rows[0]):
        raise ValueError(f"{path} is not a scaling ladder (columns {FIELDS})")
    return [{k: (float(v) if k in ("val_bpc", "train_bpc", "seconds") else int(v)) for k, v in r.items()}
            for r in rows]


def fit_power_law(x, y, floor: bool = True, boot: int = 200, seed: int = 0) -> dict:
    """Fit ``y = E + A * x ** (-alpha)`` (``floor=False``: ``E = 0``, a straight line on log-log axes).

    ``E`` (the loss no model of this family can beat) is found by a grid search below ``min(y)``; for each ``E``
    the rest is a least-squares line through ``(log x, log(y - E))``. ``alpha_std`` is the spread of ``alpha``
    over ``boot`` bootstrap resamples of the points. Returns ``{"E", "A", "alpha", "alpha_std", "rmse"}``.
    """
    import numpy as np

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"need x and y of the same length >= 3, got shapes {x.shape} and {y.shape}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("x and y must be positive")
    if len(np.unique(x)) < 2:
        raise ValueError("x must take at least two values")

    def fit(xs, ys):
        floors = np.linspace(0.0, ys.min() * 0.999, 200) if floor else np.zeros(1)
        best = None
        for E in floors:
            slope, icpt = np.polyfit(np.log(xs), np.log(ys - E), 1)
            pred = E + np.exp(icpt) * xs ** slope
            err = float(np.sqrt(np.mean((pred - ys) ** 2)))
            if best is None or err < best[-1]:
                best = (float(E), float(np.exp(icpt)), float(-slope), err)
        return best

    E, A, alpha, rmse = fit(x, y)
    rng = np.random.default_rng(seed)
    alphas = []
    for _ in range(boot):
        i = rng.integers(0, len(x), len(x))
        if len(np.unique(x[i])) >= 2:
            alphas.append(fit(x[i], y[i])[2])
    return {"E": E, "A": A, "alpha": alpha, "alpha_std": float(np.std(alphas)) if alphas else float("nan"),
            "rmse": rmse}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="CSV file (rows are appended as points finish)")
    p.add_argument("--sizes", nargs="+", type=int, default=list(range(len(LADDER))), help="indices into LADDER")
    p.add_argument("--budgets", nargs="+", type=int, default=list(range(len(BUDGETS))), help="indices into BUDGETS")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    done = set()
    if a.out.is_file():  # resume: skip the points already written
        done = {(r["n_layer"], r["n_head"], r["n_embd"], r["tokens"], r["seed"]) for r in read_csv(a.out)}
    else:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "w", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, FIELDS).writeheader()
    per_step = RECIPE["batch_size"] * RECIPE["block_size"]
    for s in a.sizes:
        for b in a.budgets:
            for seed in a.seeds:
                size, tokens = LADDER[s], BUDGETS[b]
                if (*size, tokens // per_step * per_step, seed) in done:
                    continue
                row = run_point(size, tokens, seed)
                with open(a.out, "a", newline="", encoding="utf-8") as f:
                    csv.DictWriter(f, FIELDS).writerow(row)
                print(f"{size} {tokens:,} tokens seed {seed}: {row['val_bpc']:.3f} bits/char, "
                      f"{row['params_non_embedding']:,} non-embedding parameters, {row['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

