"""The scaling ladder's pieces: a point re-runs to the same numbers, the CSV reads back, power laws are fitted."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.scaling import BUDGETS, LADDER, fit_power_law, read_csv, run_point


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
    assert {r["tokens"] for r in rows} == set(BUDGETS) and len(rows) == len(LADDER) * len(BUDGETS)
    for tokens in BUDGETS:  # at every budget the loss falls with size, and at every size with tokens
        by_size = [r["val_bpc"] for r in sorted((r for r in rows if r["tokens"] == tokens),
                                                 key=lambda r: r["params_non_embedding"])]
        assert by_size[-1] < by_size[0]
    fit = fit_power_law([r["params_non_embedding"] for r in rows if r["tokens"] == BUDGETS[-1]],
                        [r["val_bpc"] for r in rows if r["tokens"] == BUDGETS[-1]])
    assert 0 < fit["alpha"] < 2
