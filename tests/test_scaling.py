"""The scaling ladder's pieces: a point re-runs to the same numbers, the CSV reads back, power laws are fitted."""

from __future__ import annotations

import numpy as np
import pytest

import torch

from helpers.scaling import (BUDGETS, LADDER, compute_optimal, fit_loss_surface, fit_power_law, mean_over_seeds,
                             read_csv, run_point, train_flops, train_memory)


def test_fit_recovers_a_known_law():
    x = np.array([1e4, 3e4, 1e5, 3e5, 1e6, 3e6])
    y = 1.5 + 40.0 * x ** -0.3
    fit = fit_power_law(x, y)
    assert fit["alpha"] == pytest.approx(0.3, abs=0.02) and fit["E"] == pytest.approx(1.5, abs=0.05)
    noisy = y * (1 + 0.002 * np.random.default_rng(0).standard_normal(len(y)))
    f2 = fit_power_law(x, noisy)
    assert abs(f2["alpha"] - 0.3) < 3 * f2["alpha_std"] + 0.05 and f2["alpha_std"] > 0
    pure = fit_power_law(x, 40.0 * x ** -0.3, floor=False)
    assert pure["E"] == 0 and pure["alpha"] == pytest.approx(0.3, abs=1e-9)
    with pytest.raises(ValueError, match="same length"):
        fit_power_law([1, 2], [1, 2])
    with pytest.raises(ValueError, match="positive"):
        fit_power_law([1, 2, 3], [1, -2, 3])


def test_ladder_spans_the_sizes_and_a_point_reproduces(tmp_path):
    from helpers.model import GPT, GPTConfig

    sizes = [GPT(GPTConfig(vocab_size=65, block_size=128, n_layer=L, n_head=H, n_embd=C)).num_parameters(
        non_embedding=True) for L, H, C in LADDER]
    assert len(LADDER) >= 5 and sizes == sorted(sizes) and sizes[-1] / sizes[0] >= 30
    a = run_point(LADDER[0], 16 * 128 * 4, seed=1)
    b = run_point(LADDER[0], 16 * 128 * 4, seed=1)
    assert a["steps"] == 4 and a["val_bpc"] == pytest.approx(b["val_bpc"], abs=1e-4)
    with pytest.raises(ValueError, match="at least one batch"):
        run_point(LADDER[0], 10)
    assert BUDGETS == sorted(BUDGETS)
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a scaling ladder"):
        read_csv(path)


def test_the_committed_ladder():
    rows = read_csv()  # src/helpers/scaling_ladder.csv, written by python -m helpers.scaling
    sizes = sorted({r["params_non_embedding"] for r in rows})
    assert len(sizes) >= 5 and sizes[-1] / sizes[0] >= 30
    seeds = sorted({r["seed"] for r in rows})
    assert {r["tokens"] for r in rows} == set(BUDGETS) and len(seeds) >= 3
    assert len(rows) == len(LADDER) * len(BUDGETS) * len(seeds)  # every point at every seed, once
    for tokens in BUDGETS:  # at every budget the loss falls with size, and at every size with tokens
        by_size = [r["val_bpc"] for r in sorted((r for r in rows if r["tokens"] == tokens),
                                                 key=lambda r: r["params_non_embedding"])]
        assert by_size[-1] < by_size[0]
    fit = fit_power_law([r["params_non_embedding"] for r in rows if r["tokens"] == BUDGETS[-1]],
                        [r["val_bpc"] for r in rows if r["tokens"] == BUDGETS[-1]])
    assert 0 < fit["alpha"] < 2


def test_mean_over_seeds():
    rows = [dict(n_layer=1, n_head=1, n_embd=8, params=10, params_non_embedding=5, tokens=t, steps=1, seed=s,
                 val_bpc=v, train_bpc=v, seconds=1.0) for t, s, v in [(100, 0, 3.0), (100, 1, 3.2), (200, 0, 2.5)]]
    m = mean_over_seeds(rows)
    assert [(r["tokens"], r["seeds"]) for r in m] == [(100, 2), (200, 1)]
    assert m[0]["val_bpc"] == pytest.approx(3.1) and m[0]["val_std"] == pytest.approx(np.std([3.0, 3.2], ddof=1))
    assert m[1]["val_std"] == 0.0


def test_loss_surface_recovers_a_known_law_and_its_optimum():
    N, D = np.meshgrid(np.geomspace(2e4, 8e5, 5), np.geomspace(1e6, 4e6, 3))
    N, D = N.ravel(), D.ravel()
    L = 1.2 + 30.0 * N ** -0.3 + 200.0 * D ** -0.35
    f = fit_loss_surface(N, D, L, boot=20)
    assert f["alpha"] == pytest.approx(0.3, abs=0.03) and f["beta"] == pytest.approx(0.35, abs=0.03)
    assert f["E"] == pytest.approx(1.2, abs=0.1) and f["rmse"] < 1e-3
    # the closed-form optimum against a brute-force search along C = 6 N D
    for C in [1e12, 1e14]:
        n_opt, d_opt = compute_optimal(f, C)
        grid = np.geomspace(1e2, 1e9, 20001)
        loss = f["E"] + f["A"] * grid ** -f["alpha"] + f["B"] * (C / (6 * grid)) ** -f["beta"]
        assert n_opt == pytest.approx(grid[np.argmin(loss)], rel=2e-3) and 6 * n_opt * d_opt == pytest.approx(C)
    with pytest.raises(ValueError, match="same length"):
        fit_loss_surface([1, 2], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="A, B, alpha and beta"):
        compute_optimal({"alpha": 1}, 1e9)


def test_train_flops_is_what_pytorch_counts():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from helpers.model import GPT, GPTConfig

    torch.manual_seed(0)
    L, C, T, V, B = 2, 48, 24, 70, 3
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=4, n_embd=C, dropout=0.0))
    idx = torch.randint(0, V, (B, T))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx, targets=idx).loss.backward()
    assert counter.get_total_flops() == train_flops(L, C, T, V, B * T)
    with pytest.raises(ValueError, match="tokens must be a positive int"):
        train_flops(1, 8, 8, 8, 0)


def test_train_memory():
    assert train_memory(1000) == 16000 and train_memory(1000, 4) == 16000 and train_memory(1000, 4, True) == 4000
    assert train_memory(1000, 2, True, bytes_per_value=2) == 4000
    with pytest.raises(ValueError, match="n_procs must be a positive int"):
        train_memory(10, 0)
