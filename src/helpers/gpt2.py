"""GPT-2, real or not, through one door: ``load()`` gives the hub's model when it can, the course's own when not.

    model, tokenizer, info = load("gpt2")
    print(info.name, info.is_fallback, info.reason)

The model and tokenizer come from ``transformers``' ``AutoModelForCausalLM`` / ``AutoTokenizer`` (safetensors
only, never remote code). When the hub cannot be reached (``HF_HUB_OFFLINE`` set, or a connection/file
error) ``load`` says so in one line and loads the course's checkpoint (a GPT-2-format folder saved by
notebook 07), so the same code runs either way and tells you which model it ran.

Without a network and without ``HF_HUB_OFFLINE`` (a learner on a train, a classroom behind a firewall),
``transformers`` would retry for about a minute before giving up. ``load`` decides first, in at most
``HUB_TIMEOUT`` seconds: a model already in the local cache loads from there; otherwise one request to the
hub's API (in a thread with a hard deadline, so neither a silent firewall nor a slow DNS can hold it up) says
whether the hub answers. ``hub_available(name)`` gives that verdict to notebooks that want the hub for
something else (GPT-2's tokenizer, a model with other options).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["load", "GPT2Info", "REPO_ROOT", "DEFAULT_FALLBACK", "HUB_TIMEOUT", "hub_offline", "hub_available"]

REPO_ROOT = Path(__file__).resolve().parents[2]  # src/helpers/gpt2.py -> the repository
DEFAULT_FALLBACK = "checkpoints/shakespeare-gpt"
HUB_TIMEOUT = 2.0  # seconds: how long load() waits for the hub to answer before it uses the fallback


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


def _load_pair(name_or_path: str, local_files_only: bool = False, **model_kwargs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=False, local_files_only=local_files_only)
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, use_safetensors=True, trust_remote_code=False, local_files_only=local_files_only,
        **model_kwargs,
    )
    return model.eval(), tok


def _in_local_cache(name: str) -> bool:
    """True when the hub's ``config.json`` for ``name`` is in the local cache (a model downloaded before)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - an odd name or cache layout just means "not cached"
        return False


class _Probe:
    """One GET of ``url`` in a daemon thread; ``result()`` waits until ``timeout`` s after the start at most.

    A thread with a hard deadline, because neither a silent firewall nor a slow DNS look-up may hold the
    learner up, and because the caller can do useful work (import ``transformers``) while it waits.
    """

    def __init__(self, endpoint: str, url: str, timeout: float):
        self.endpoint, self.timeout, self._out = endpoint, timeout, []
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._attempt, args=(url,), daemon=True)
        self._thread.start()

    def _attempt(self, url: str) -> None:
        try:
            import httpx

            r = httpx.get(url, timeout=self.timeout, follow_redirects=True)
            self._out.append(None if r.status_code < 500 else f"HTTP {r.status_code}")
        except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
            first = str(e).splitlines()[0][:100] if str(e) else ""
            self._out.append(f"{type(e).__name__}{': ' + first if first else ''}")

    def result(self) -> str | None:
        """None if the hub answered, else why not."""
        self._thread.join(max(0.0, self.timeout - (time.monotonic() - self._start)))
        return self._out[0] if self._out else f"no answer within {self.timeout:g} s"


def _check_hub(name: str, timeout: float | None):
    """The cache and offline verdicts at once, ``(ok, reason, None)``, or ``(None, None, probe)`` once asked."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty hub id such as 'gpt2', got {name!r}")
    timeout = HUB_TIMEOUT if timeout is None else timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if _in_local_cache(name):
        return True, None, None
    if hub_offline():
        return False, "HF_HUB_OFFLINE is set and it is not in the local cache", None
    from huggingface_hub import constants

    return None, None, _Probe(constants.ENDPOINT, f"{constants.ENDPOINT}/api/models/{name}", timeout)


def _verdict(ok, reason, probe) -> tuple[bool, str | None]:
    if probe is None:
        return ok, reason
    why = probe.result()
    return (True, None) if why is None else (False, f"the hub at {probe.endpoint} did not answer ({why})")


def hub_available(name: str = "gpt2", timeout: float | None = None) -> tuple[bool, str | None]:
    """Can ``name`` be loaded from the hub now? → ``(True, None)`` or ``(False, reason)``, in ≤ ``timeout`` s.

    True when the model is in the local cache (no network needed) or when the hub answers a request for it
    (``timeout`` defaults to ``HUB_TIMEOUT``). Under ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` only the
    cache counts. Sends at most one request, to the endpoint ``huggingface_hub`` uses (``HF_ENDPOINT``,
    default https://huggingface.co).
    """
    return _verdict(*_check_hub(name, timeout))


def load(
    name: str | os.PathLike = "gpt2",
    fallback: str | os.PathLike | None = DEFAULT_FALLBACK,
    verbose: bool = True,
    **model_kwargs,
):
    """Load ``name`` (a hub id such as ``"gpt2"`` or a local folder) → ``(model, tokenizer, info)``.

    ``model`` is a ``transformers`` causal LM in eval mode, ``tokenizer`` its tokenizer, ``info`` a
    ``GPT2Info``. A local folder is always loaded as such. A hub name is loaded from the local cache if it is
    there, else from the hub if ``hub_available`` says it answers (within ``HUB_TIMEOUT`` seconds); otherwise
    (``HF_HUB_OFFLINE=1``, no network, a failed download) ``load`` prints one line that says why and loads
    ``fallback`` (relative paths are taken from the repository root); ``fallback=None`` raises ``OSError``
    instead. ``model_kwargs`` go to ``from_pretrained`` (e.g. ``attn_implementation="eager"``).
    """
    if not isinstance(name, (str, os.PathLike)) or not str(name):
        raise TypeError(f"name must be a non-empty hub id or folder path, got {name!r}")
    if fallback is not None and not isinstance(fallback, (str, os.PathLike)):
        raise TypeError(f"fallback must be a folder path or None, got {type(fallback).__name__}")
    name = str(name)
    local = Path(name).expanduser()
    if local.is_dir():
        model, tok = _load_pair(str(local), **model_kwargs)
        return model, tok, GPT2Info(name=str(local), is_fallback=False)
    if name.startswith((".", "/", "~")) or os.sep in name and name.count("/") > 1:
        raise FileNotFoundError(f"{name} looks like a folder but does not exist")
    reason: str | None = None
    if _in_local_cache(name):  # downloaded before: no network needed
        try:
            model, tok = _load_pair(name, local_files_only=True, **model_kwargs)
            return model, tok, GPT2Info(name=name, is_fallback=False)
        except _network_errors():
            pass  # an incomplete cache: ask the hub as if nothing were cached
    fb = _resolve(fallback) if fallback is not None else None
    pending = _check_hub(name, None)  # the request goes out now; while it waits, the fallback loads (~1 s)
    spare = _load_pair(str(fb), **model_kwargs) if pending[2] is not None and _has_model(fb) else None
    ok, reason = _verdict(*pending)
    if ok:
        try:
            model, tok = _load_pair(name, **model_kwargs)
            return model, tok, GPT2Info(name=name, is_fallback=False)
        except _network_errors() as e:
            reason = f"the download failed ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
    if fb is None:
        raise OSError(f"cannot load {name!r}: {reason}; no fallback was given")
    if not _has_model(fb):
        raise FileNotFoundError(
            f"cannot load {name!r} ({reason}) and the fallback {fb} holds no model (config.json is missing): "
            "train it with notebook 07 or `python -m helpers.train --out checkpoints/shakespeare-gpt`"
        )
    if verbose:
        print(f"GPT-2 {name!r} is not available ({reason}): using the course's own model from {fallback} instead.")
    model, tok = spare if spare is not None else _load_pair(str(fb), **model_kwargs)
    return model, tok, GPT2Info(name=str(fallback), is_fallback=True, reason=reason)


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


def _has_model(folder: Path | None) -> bool:
    return folder is not None and (folder / "config.json").exists()
