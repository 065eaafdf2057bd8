"""A scaling law measured on a laptop: held-out loss against model size and training tokens.

The ladder (``LADDER``) is the course's GPT at five sizes spanning 31x in non-embedding parameters (25K to
0.80M), each trained on the course's Shakespeare split for several token budgets (``BUDGETS``) with the same
recipe; every point is scored in bits per character on the same held-out windows (``helpers.llama.heldout_bpc``).

    python -m helpers.scaling --out src/helpers/scaling_ladder.csv --seeds 0 1 2   # the committed ladder (about 20 minutes per seed, one thread)
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

__all__ = ["LADDER", "BUDGETS", "RECIPE", "CSV", "FIELDS", "run_point", "read_csv", "mean_over_seeds",
           "fit_power_law", "fit_loss_surface", "compute_optimal", "train_flops", "train_memory"]

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


def mean_over_seeds(rows: list[dict]) -> list[dict]:
    """One row per (size, tokens): ``val_bpc`` averaged over the seeds, with ``val_std`` (0 for one seed) and
    ``seeds`` (how many), sorted by size then tokens."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["params_non_embedding"], r["tokens"]), []).append(r)
    out = []
    for (_, _), rs in sorted(groups.items()):
        vals = [r["val_bpc"] for r in rs]
        mean = sum(vals) / len(vals)
        std = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
        out.append({**{k: rs[0][k] for k in ("n_layer", "n_head", "n_embd", "params", "params_non_embedding",
                                             "tokens", "steps")}, "val_bpc": mean, "val_std": std, "seeds": len(vals)})
    return out


def fit_loss_surface(N, D, L, boot: int = 200, seed: int = 0) -> dict:
    """Fit Hoffmann et al.'s (2022) ``L(N, D) = E + A / N**alpha + B / D**beta`` to measured points.

    For fixed exponents the loss is linear in ``(E, A, B)``: least squares gives them, and a grid over ``alpha``
    and ``beta`` (0.02 to 1.5 in steps of 0.04, then of 0.005 around the best) keeps the pair with the smallest
    error among those with ``E, A, B >= 0``.
    ``alpha_std`` and ``beta_std`` are the spreads over ``boot`` bootstrap resamples of the points. Returns
    ``{"E", "A", "B", "alpha", "beta", "alpha_std", "beta_std", "rmse"}``.
    """
    import numpy as np

    N, D, L = (np.asarray(v, dtype=np.float64) for v in (N, D, L))
    if not (N.shape == D.shape == L.shape) or N.ndim != 1 or len(N) < 5:
        raise ValueError(f"need N, D and L of the same length >= 5, got shapes {N.shape}, {D.shape} and {L.shape}")
    if (N <= 0).any() or (D <= 0).any() or (L <= 0).any():
        raise ValueError("N, D and L must be positive")
    if len(np.unique(N)) < 2 or len(np.unique(D)) < 2:
        raise ValueError("N and D must each take at least two values")
    coarse = np.linspace(0.02, 1.5, 38)  # steps of 0.04, then steps of 0.005 around the best pair

    def solve(n0, d0, loss, ga, gb):
        a, b = ga[:, None, None], gb[None, :, None]
        X = np.stack(np.broadcast_arrays(np.ones_like(n0), n0 ** -a, d0 ** -b), axis=-1)  # [ga, gb, points, 3]
        coef = np.einsum("abij,j->abi", np.linalg.pinv(X), loss)  # least squares for every (alpha, beta)
        err = np.sqrt(np.mean((np.einsum("abpi,abi->abp", X, coef) - loss) ** 2, axis=-1))
        err = np.where((coef >= 0).all(-1), err, np.inf)
        i, j = np.unravel_index(np.argmin(err), err.shape)
        return coef[i, j], ga[i], gb[j], float(err[i, j])

    def fit(n, d, loss):
        n0, d0 = n / n.min(), d / d.min()  # scaled, so that A and B stay of the order of the loss
        coef, a, b, err = solve(n0, d0, loss, coarse, coarse)
        if not np.isfinite(err):  # no non-negative solution on the grid: the loss does not fall with N and D
            raise ValueError("no fit with E, A, B >= 0: does the loss fall with both N and D?")
        fine = np.arange(-0.04, 0.0401, 0.005)
        coef, a, b, err = solve(n0, d0, loss, np.clip(a + fine, 0.005, None), np.clip(b + fine, 0.005, None))
        E, A0, B0 = coef
        return E, A0 * n.min() ** a, B0 * d.min() ** b, float(a), float(b), err

    E, A, B, alpha, beta, rmse = fit(N, D, L)
    rng = np.random.default_rng(seed)
    alphas, betas = [], []
    for _ in range(boot):
        i = rng.integers(0, len(N), len(N))
        if len(np.unique(N[i])) >= 2 and len(np.unique(D[i])) >= 2:
            try:
                f = fit(N[i], D[i], L[i])
            except ValueError:
                continue
            alphas.append(f[3])
            betas.append(f[4])
    return {"E": float(E), "A": float(A), "B": float(B), "alpha": float(alpha), "beta": float(beta),
            "alpha_std": float(np.std(alphas)) if alphas else float("nan"),
            "beta_std": float(np.std(betas)) if betas else float("nan"), "rmse": rmse}


def compute_optimal(fit: dict, C):
    """The ``(N, D)`` that minimise ``fit``'s loss surface at compute ``C = 6 N D`` FLOPs (Hoffmann et al. 2022,
    eq. 4): ``N = G (C/6) ** (beta / (alpha + beta))``, ``G = (alpha A / (beta B)) ** (1 / (alpha + beta))``."""
    import numpy as np

    missing = {"A", "B", "alpha", "beta"} - set(fit)
    if missing:
        raise ValueError(f"fit must have A, B, alpha and beta (from fit_loss_surface), missing {sorted(missing)}")
    C = np.asarray(C, dtype=np.float64)
    if (C <= 0).any():
        raise ValueError("C must be positive")
    a, b = fit["alpha"], fit["beta"]
    G = (a * fit["A"] / (b * fit["B"])) ** (1 / (a + b))
    N = G * (C / 6) ** (b / (a + b))
    return N, C / (6 * N)


def train_flops(n_layer: int, n_embd: int, block_size: int, vocab_size: int, tokens: int) -> int:
    """Matrix-multiply FLOPs of training the course's GPT on ``tokens`` tokens (forward and backward).

    Per token, the forward pass does 2 FLOPs per weight of the blocks' matrices (``12 n_embd**2`` per layer), 2
    per weight of the output layer (``n_embd * vocab_size``) and ``4 n_layer block_size n_embd`` in the attention
    scores and weighted sums (each of the full ``T x T`` products, as PyTorch computes them); the backward pass
    twice the forward. ``torch.utils.flop_counter.FlopCounterMode`` counts the same (``tests/test_scaling.py``).
    Kaplan et al.'s ``6 N D`` is the first term alone.
    """
    for name, v in [("n_layer", n_layer), ("n_embd", n_embd), ("block_size", block_size), ("vocab_size", vocab_size),
                    ("tokens", tokens)]:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    per_token = 2 * (12 * n_layer * n_embd ** 2 + n_embd * vocab_size) + 4 * n_layer * block_size * n_embd
    return 3 * per_token * tokens


def train_memory(n_params: int, n_procs: int = 1, sharded: bool = False, bytes_per_value: int = 4) -> float:
    """Bytes one process holds for training with AdamW: weights, gradients and the two moments (4 values per
    parameter), all of them on every process (DDP) or a ``1 / n_procs`` share of each (``sharded``: FSDP, ZeRO-3).
    Activations come on top."""
    if isinstance(n_params, bool) or not isinstance(n_params, int) or n_params <= 0:
        raise ValueError(f"n_params must be a positive int, got {n_params!r}")
    if isinstance(n_procs, bool) or not isinstance(n_procs, int) or n_procs <= 0:
        raise ValueError(f"n_procs must be a positive int, got {n_procs!r}")
    total = 4 * bytes_per_value * n_params
    return total / n_procs if sharded else float(total)


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
        lx, ly = np.log(xs), np.log(ys[None, :] - floors[:, None])  # every floor at once: [floors, points]
        dx = lx - lx.mean()
        slope = (ly - ly.mean(1, keepdims=True)) @ dx / (dx @ dx)
        icpt = ly.mean(1) - slope * lx.mean()
        pred = floors[:, None] + np.exp(icpt)[:, None] * xs[None, :] ** slope[:, None]
        err = np.sqrt(np.mean((pred - ys[None, :]) ** 2, axis=1))
        i = int(np.argmin(err))
        return float(floors[i]), float(np.exp(icpt[i])), float(-slope[i]), float(err[i])

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

