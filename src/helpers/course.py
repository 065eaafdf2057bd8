"""One call at the top of every notebook: seeds, threads, determinism, quiet libraries, and what we run on."""

from __future__ import annotations

import os
import platform
import random
import warnings

import numpy as np
import torch

__all__ = ["setup", "fast_mode", "pick_device"]


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


def setup(seed: int = 0, threads: int = 2, device: str = "cpu", quiet: bool = False) -> torch.device:
    """Seed ``random``, NumPy and PyTorch; fix the thread count; make CPU kernels deterministic; silence noise.

    Returns the device the notebook will use and prints one line saying what it is.
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
