"""One call at the top of every notebook: seeds, threads, determinism, quiet libraries, and what we run on.

Also the notebooks' small shared vocabulary for printing results that reproduce on any CPU:

- ``agree(a, b, tol)`` / ``within(diff, tol)``: a comparison printed as a verdict against a stated tolerance
  (``"agree within 1e-06"``), never as round-off (``2.2e-16`` on one CPU is ``1.1e-16`` on another); a
  difference above the tolerance raises, so the cell fails loudly instead of printing a wrong claim.
- ``fast_note(text)``: one line, printed only under ``COURSE_FAST=1``, saying what the fast run shrank and
  what the full run gives (so committed outputs, made in fast mode, never pass for full-run results).
- ``record(name, value)``: a headline figure for ``scripts/run_course.py`` (silent unless it asks).
- ``checkpoint(name)``: the folder of one of the course's shipped checkpoints, wherever the notebook runs
  (``notebooks/``, a student edition, an nbgrader course folder).
"""

from __future__ import annotations

import os
import platform
import random
import warnings
from pathlib import Path

import numpy as np
import torch

__all__ = ["setup", "fast_mode", "pick_device", "agree", "within", "fast_note", "record", "checkpoint"]


def fast_mode() -> bool:
    """True when ``COURSE_FAST=1`` (the tests set it): long runs shrink to seconds."""
    return os.environ.get("COURSE_FAST", "0").strip().lower() in ("1", "true", "yes", "on")


def pick_device(prefer: str = "cpu") -> torch.device:
    """``"cpu"`` (the default, reproducible), or ``"auto"``: CUDA when present, else Apple's MPS, else CPU."""
    if prefer not in ("cpu", "auto", "cuda", "mps"):
        raise ValueError(f"prefer must be 'cpu', 'auto', 'cuda' or 'mps', got {prefer!r}")
    if prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(prefer)


def _thread_cap(threads: int) -> int:
    """``threads``, lowered to ``OMP_NUM_THREADS`` when that is set (``OMP_NUM_THREADS=1`` means one thread)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(threads, int(env)) if env.isdigit() and int(env) >= 1 else threads


def setup(seed: int = 0, threads: int = 2, device: str = "cpu", quiet: bool = False) -> torch.device:
    """Seed ``random``, NumPy and PyTorch; fix the thread count; make CPU kernels deterministic; silence noise.

    Returns the device the notebook will use and prints one line saying what it is. ``threads`` is an upper
    bound: ``OMP_NUM_THREADS`` set lower wins (the tests' second pass runs every notebook on one thread).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", category=FutureWarning)
    threads = _thread_cap(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    dev = pick_device(device)
    if not quiet:
        print(
            f"device: {dev.type} | torch {torch.__version__.split('+')[0]} | threads {threads} | seed {seed} | "
            f"fast mode: {'on' if fast_mode() else 'off'} | python {platform.python_version()}"
        )
    return dev


def _max_abs_diff(a, b) -> float:
    """max |a - b| over arrays, tensors or numbers of the same shape, as a Python float (in float64)."""
    def as_array(x, name):
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().double().numpy()
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a number, array or tensor, got {type(x).__name__}") from e
        return arr

    a_, b_ = as_array(a, "a"), as_array(b, "b")
    if a_.shape != b_.shape:
        raise ValueError(f"cannot compare shapes {a_.shape} and {b_.shape}: they must be equal")
    if a_.size == 0:
        return 0.0
    if np.isnan(a_).any() != np.isnan(b_).any() or not np.array_equal(np.isnan(a_), np.isnan(b_)):
        return float("inf")
    d = np.abs(np.nan_to_num(a_ - b_, nan=0.0))
    return float(d.max())


def within(diff: float, tol: float, what: str = "max |difference|") -> str:
    """A difference checked against a tolerance, as text that reads the same on every CPU.

    ``within(3.1e-17, 1e-12)`` → ``"max |difference| ≤ 1e-12"``. Raises ``AssertionError`` (with the actual
    value) when ``diff > tol``: a claim of agreement is never printed for numbers that disagree.
    """
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if isinstance(diff, torch.Tensor):
        diff = diff.item()
    if isinstance(diff, bool) or not isinstance(diff, (int, float, np.floating, np.integer)):
        raise TypeError(f"diff must be a number, got {type(diff).__name__}")
    diff = float(diff)
    if not diff <= tol:  # also catches NaN
        raise AssertionError(f"{what} = {diff:.3g} exceeds the tolerance {tol:.0e}")
    return f"{what} ≤ {tol:.0e}"


def agree(a, b, tol: float, what: str = "max |difference|") -> str:
    """Compare two arrays/tensors/numbers elementwise and return ``within(max|a - b|, tol)``'s verdict.

        print("NumPy vs PyTorch:", agree(out_np, out_torch, 1e-6))   # NumPy vs PyTorch: max |difference| ≤ 1e-06
    """
    return within(_max_abs_diff(a, b), tol, what)


def fast_note(text: str) -> None:
    """Print ``[fast mode] text`` under ``COURSE_FAST=1`` and nothing otherwise.

    Use it beside every result that the full run changes: ``fast_note("120 steps instead of 1,500; the full
    run reaches 2.3 bits per character")``. A learner running the full notebook sees the real figure instead.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    if fast_mode():
        print(f"[fast mode] {text}")


def record(name: str, value, fmt: str = "") -> None:
    """Note a notebook's headline figure for ``scripts/run_course.py`` (which sets ``COURSE_RECORD``).

    Does nothing, and prints nothing, when ``COURSE_RECORD`` is not set: the notebooks call it freely.
    ``fmt`` is a format spec for the table (``".3f"``); ``value`` is a number or a short string.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if isinstance(value, torch.Tensor):
        value = value.item()
    if not isinstance(value, (int, float, str, np.integer, np.floating)):
        raise TypeError(f"value must be a number or a string, got {type(value).__name__}")
    path = os.environ.get("COURSE_RECORD")
    if not path:
        return
    import json

    text = format(value, fmt) if fmt else str(value)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"name": name, "value": text}) + "\n")


def checkpoint(name: str) -> Path:
    """The folder of the course's checkpoint ``name`` (``"shakespeare-gpt"``, ``"induction-2l"``, ...).

    ``../checkpoints/NAME`` when the notebook runs in ``notebooks/`` (or in a student edition beside it), else
    the ``checkpoints/`` folder of the repository this package was installed from (``pip install -e .``), so a
    lesson copied into an nbgrader course folder still finds its model. ``COURSE_CHECKPOINTS`` names another
    folder holding them.
    """
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"name must be a checkpoint's folder name such as 'shakespeare-gpt', got {name!r}")
    places = [Path(os.environ["COURSE_CHECKPOINTS"])] if os.environ.get("COURSE_CHECKPOINTS") else []
    places += [Path("..") / "checkpoints", Path(__file__).resolve().parents[2] / "checkpoints"]
    for place in places:
        if (place / name).is_dir():
            return place / name
    raise FileNotFoundError(f"checkpoint {name!r} not found in {', '.join(str(p) for p in places)}; the course "
                            f"ships it in checkpoints/{name} (set COURSE_CHECKPOINTS to the folder holding it)")
