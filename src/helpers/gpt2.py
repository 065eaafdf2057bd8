"""GPT-2, real or not, through one door: ``load()`` gives the hub's model when it can, the course's own when not.

    model, tokenizer, info = load("gpt2")
    print(info.name, info.is_fallback, info.reason)

The model and tokenizer come from ``transformers``' ``AutoModelForCausalLM`` / ``AutoTokenizer`` (safetensors
only, never remote code). When the hub cannot be reached (``HF_HUB_OFFLINE`` set, or a connection/file
error) ``load`` says so in one line and loads the course's checkpoint (a GPT-2-format folder saved by
notebook 07), so the same code runs either way and tells you which model it ran.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["load", "GPT2Info", "REPO_ROOT", "DEFAULT_FALLBACK", "hub_offline"]

REPO_ROOT = Path(__file__).resolve().parents[2]  # src/helpers/gpt2.py -> the repository
DEFAULT_FALLBACK = "checkpoints/shakespeare-gpt"


@dataclass(frozen=True)
class GPT2Info:
    """What ``load`` used: ``name`` (hub name or folder), whether it is the fallback, and why."""

    name: str
    is_fallback: bool
    reason: str | None = None  # why the requested model was not used (None when it was)


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` asks ``transformers`` not to use the network."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _resolve(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def _load_pair(name_or_path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, use_safetensors=True, trust_remote_code=False)
    return model.eval(), tok


def _network_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [OSError, ConnectionError, TimeoutError]
    try:
        import httpx

        errs.append(httpx.TransportError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        errs += [HfHubHTTPError, LocalEntryNotFoundError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errs)


def load(
    name: str | os.PathLike = "gpt2",
    fallback: str | os.PathLike | None = DEFAULT_FALLBACK,
    verbose: bool = True,
):
    """Load ``name`` (a hub id such as ``"gpt2"`` or a local folder) → ``(model, tokenizer, info)``.

    ``model`` is a ``transformers`` causal LM in eval mode, ``tokenizer`` its tokenizer, ``info`` a
    ``GPT2Info``. A local folder is always loaded as such. A hub name under ``HF_HUB_OFFLINE=1``, or one
    whose download fails, falls back to ``fallback`` (relative paths are taken from the repository root)
    after printing one line that says why; ``fallback=None`` re-raises instead.
    """
    if not isinstance(name, (str, os.PathLike)) or not str(name):
        raise TypeError(f"name must be a non-empty hub id or folder path, got {name!r}")
    if fallback is not None and not isinstance(fallback, (str, os.PathLike)):
        raise TypeError(f"fallback must be a folder path or None, got {type(fallback).__name__}")
    name = str(name)
    local = Path(name).expanduser()
    if local.is_dir():
        model, tok = _load_pair(str(local))
        return model, tok, GPT2Info(name=str(local), is_fallback=False)
    if isinstance(name, str) and (name.startswith((".", "/", "~")) or os.sep in name and name.count("/") > 1):
        raise FileNotFoundError(f"{name} looks like a folder but does not exist")
    try:  # offline, transformers looks only in the local cache: a model downloaded before still loads
        model, tok = _load_pair(name)
        return model, tok, GPT2Info(name=name, is_fallback=False)
    except _network_errors() as e:
        if hub_offline():
            reason = "HF_HUB_OFFLINE is set and it is not in the local cache"
        else:
            reason = f"the hub could not be reached ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
    if fallback is None:
        raise OSError(f"cannot load {name!r}: {reason}; no fallback was given")
    fb = _resolve(fallback)
    if not (fb / "config.json").exists():
        raise FileNotFoundError(
            f"cannot load {name!r} ({reason}) and the fallback {fb} holds no model (config.json is missing): "
            "train it with notebook 07 or `python -m helpers.train --out checkpoints/shakespeare-gpt`"
        )
    if verbose:
        print(f"GPT-2 {name!r} is not available ({reason}): using the course's own model from {fallback} instead.")
    model, tok = _load_pair(str(fb))
    return model, tok, GPT2Info(name=str(fallback), is_fallback=True, reason=reason)
