"""helpers.viz.training: every plot returns a Figure holding the data it was given, and rejects bad input."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers.train import TrainConfig, lr_at  # noqa: E402
from helpers.viz.training import plot_loss_curves, plot_lr_schedule, plot_vocab_tradeoff  # noqa: E402

HISTORY = [
    {"step": 10, "train_loss": 3.0, "val_loss": 3.1},
    {"step": 20, "train_loss": 2.0, "val_loss": 2.2},
    {"step": 30, "train_loss": 1.0, "val_loss": 2.5},
]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_loss_curves_plot_the_history():
    fig = plot_loss_curves(HISTORY)
    assert isinstance(fig, matplotlib.figure.Figure)
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["train", "validation"]
    np.testing.assert_allclose(lines[0].get_xdata(), [10, 20, 30])
    np.testing.assert_allclose(lines[1].get_ydata(), [3.1, 2.2, 2.5])
    fig = plot_loss_curves(HISTORY, bits=True, logy=True, keys=("val_loss",))
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), np.array([3.1, 2.2, 2.5]) / math.log(2))
    assert fig.axes[0].get_yscale() == "log"


def test_loss_curves_draw_into_a_given_axes():
    fig, (a, b) = plt.subplots(1, 2)
    assert plot_loss_curves(HISTORY, ax=b) is fig
    assert len(b.get_lines()) == 2 and len(a.get_lines()) == 0


def test_loss_curves_bad_input():
    with pytest.raises(ValueError, match="history is empty"):
        plot_loss_curves([])
    with pytest.raises(TypeError, match="history must be a list of dicts"):
        plot_loss_curves({"step": 1})
    with pytest.raises(TypeError, match="every history entry must be a dict"):
        plot_loss_curves([1, 2])
    with pytest.raises(ValueError, match=r"history\[0\] has no 'val_loss'"):
        plot_loss_curves([{"step": 1, "train_loss": 2.0}])
    with pytest.raises(ValueError, match="keys must name"):
        plot_loss_curves(HISTORY, keys=())
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plot_loss_curves(HISTORY, ax="left")


def test_lr_schedule_is_lr_at():
    cfg = TrainConfig(max_iters=200, warmup_iters=20, lr=1e-3, min_lr=1e-4)
    fig = plot_lr_schedule(cfg)
    line = fig.axes[0].get_lines()[0]
    x, y = line.get_xdata(), line.get_ydata()
    assert len(x) == 221 and x[0] == 0
    np.testing.assert_allclose(y, [lr_at(int(s), cfg) for s in x])
    assert y.max() == pytest.approx(1e-3) and y[-1] == pytest.approx(1e-4)
    assert len(plot_lr_schedule(cfg, steps=50).axes[0].get_lines()[0].get_xdata()) == 50


def test_lr_schedule_bad_input():
    with pytest.raises(TypeError, match="cfg must be a helpers.train.TrainConfig"):
        plot_lr_schedule({"lr": 1e-3})
    with pytest.raises(ValueError, match="steps must be a positive int"):
        plot_lr_schedule(TrainConfig(), steps=0)


def test_vocab_tradeoff():
    fig = plot_vocab_tradeoff([512, 65, 1024], [500.0, 1000.0, 450.0], labels=["BPE 512", "chars", "BPE 1024"])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), [65, 512, 1024])  # sorted by vocabulary size
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1000, 500, 450])
    assert [t.get_text() for t in ax.texts] == ["BPE 512", "chars", "BPE 1024"]


def test_vocab_tradeoff_bad_input():
    with pytest.raises(ValueError, match="same non-zero length"):
        plot_vocab_tradeoff([1, 2], [1.0])
    with pytest.raises(ValueError, match="same non-zero length"):
        plot_vocab_tradeoff([], [])
    with pytest.raises(ValueError, match="positive and finite"):
        plot_vocab_tradeoff([0, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="one entry per point"):
        plot_vocab_tradeoff([1, 2], [1.0, 2.0], labels=["a"])
