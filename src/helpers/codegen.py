r"""A code model: the course's GPT trained on Python's standard library, judged by whether its code parses.

The data is the Python source every Python installation ships: the standard library's ``.py`` files (PSF
licence), without its tests, its bundled tools and its machine-generated tables (``EXCLUDED``). Files are split
into training and validation **by module**, with a hash of the module's dotted name, so a module is never on
both sides and adding modules (a newer Python) moves no other module across. The model reads characters: the
vocabulary is fixed, newline plus the 95 printable ASCII characters (``CODE_CHARS``); the few other characters in
the library (accents in comments, Greek letters in a case-folding table) become ``?``.

The task: given a function's header (its ``def`` line and docstring) from a validation module, write the body.
A completion is cut by a **closing rule** (``close_function``: the function ends at the first line that comes
back to the ``def``'s indentation, or at the character limit, where the unfinished last line is dropped) and
counts as parsed when the function then parses with ``ast.parse`` and holds a statement after its docstring.

Greedy completions are made in float64 and come with their margin (the smallest gap between the chosen
character's logit and the runner-up's), which shows that another CPU cannot write other text.

Command line (``checkpoints/python-gpt`` was trained so, on Python 3.11.7; ``--resume`` continues a stopped run)::

    python -m helpers.codegen --out runs/python-gpt --n-layer 4 --n-head 4 --n-embd 128 --block-size 384 \
        --batch-size 12 --max-iters 2500 --lr 0.002 --min-lr 0.0002 --warmup-iters 100 --eval-interval 250 \
        --eval-iters 20 --dropout 0.0 --seed 1337 --threads 2
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import math
import os
import re
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch.nn import functional as F

from .model import GPT
from .stats import wilson_interval  # noqa: F401 - part of this module's interface
from .tokenizer import CharTokenizer

__all__ = [
    "CODE_CHARS",
    "EXCLUDED",
    "EXCLUDED_DIRS",
    "FunctionHeader",
    "stdlib_dir",
    "module_name",
    "read_stdlib",
    "clean_code",
    "count_outside",
    "is_validation",
    "split_by_module",
    "join_modules",
    "code_tokenizer",
    "extract_headers",
    "close_function",
    "function_parses",
    "wilson_interval",
    "encode_lossy",
    "complete",
    "held_out_functions",
    "hash_sample",
    "save_eval_set",
    "load_eval_set",
    "ends_by_dedent",
    "score_completions",
    "code_bits_per_char",
    "train_code_model",
    "main",
]

# The parts of the standard library we leave out, and why (top-level names under the stdlib folder).
EXCLUDED = {
    "site-packages": "third-party packages, not the standard library",
    "idlelib": "the IDLE editor, an application",
    "lib2to3": "a deprecated tool (removed in 3.13) with its own grammar files",
    "turtledemo": "demonstration scripts",
    "ensurepip": "a pip installer and its bundled wheels",
    "pydoc_data": "generated: topics.py is one 700 kB string of documentation",
    "encodings": "mostly generated codec tables (cp1252.py and friends)",
    "distutils": "deprecated, removed in 3.12: keeps the corpus alike across versions",
    "__phello__": "a test fixture for frozen modules",
    "lib-dynload": "compiled extension modules, no source",
}
EXCLUDED_DIRS = ("test", "tests", "idle_test", "__pycache__")  # test suites, at any depth
CODE_CHARS = "\n" + "".join(chr(i) for i in range(32, 127))  # newline and the 95 printable ASCII characters



def stdlib_dir() -> Path:
    """The folder of this Python's standard library (``sysconfig.get_paths()["stdlib"]``)."""
    return Path(sysconfig.get_paths()["stdlib"])


def module_name(relpath: str | os.PathLike) -> str:
    """``email/mime/text.py`` → ``email.mime.text``; a package's ``__init__.py`` is the package itself."""
    parts = Path(relpath).with_suffix("").parts
    if not parts or Path(relpath).suffix != ".py":
        raise ValueError(f"expected the relative path of a .py file, got {str(relpath)!r}")
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _included(rel: Path) -> bool:
    parts = rel.parts
    if parts[0] in EXCLUDED or parts[0].startswith("config-") or parts[-1].startswith("_sysconfigdata"):
        return False
    return not any(p in EXCLUDED_DIRS for p in parts[:-1])


def read_stdlib(root: str | os.PathLike | None = None, names: Iterable[str] | None = None) -> dict[str, str]:
    """``{module name: source text}`` for the standard library's ``.py`` files, sorted by name.

    ``root`` defaults to this Python's stdlib folder; ``names`` keeps only those modules (each must exist).
    Leaves out ``EXCLUDED`` top-level packages, ``EXCLUDED_DIRS`` (test suites) and generated config files.
    """
    root = stdlib_dir() if root is None else Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no standard library folder at {root}")
    wanted = None if names is None else set(names)
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if not _included(rel):
            continue
        name = module_name(rel)
        if wanted is None or name in wanted:
            out[name] = path.read_text(encoding="utf-8")
    if wanted is not None and wanted - set(out):
        raise ValueError(f"modules not found in {root}: {sorted(wanted - set(out))[:5]}")
    return dict(sorted(out.items()))


def clean_code(text: str) -> str:
    """``text`` with every character outside ``CODE_CHARS`` replaced by ``?`` (tabs by 4 spaces, ``\\r\\n`` by ``\\n``)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _OUTSIDE.sub("?", text.replace("\r\n", "\n").replace("\t", "    "))


_OUTSIDE = re.compile(r"[^\n -~]")  # anything but newline and the printable ASCII range ' ' .. '~'


def count_outside(text: str) -> int:
    """How many characters of ``text`` lie outside ``CODE_CHARS`` (``clean_code`` replaces them)."""
    return len(_OUTSIDE.findall(text))


def is_validation(name: str, val_percent: int = 15) -> bool:
    """True when module ``name`` belongs to the validation split: the SHA-256 of its name, as an integer,
    modulo 100, is below ``val_percent``. Deterministic (Python's own ``hash`` of a str changes every run)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty module name, got {name!r}")
    if isinstance(val_percent, bool) or not isinstance(val_percent, int) or not 0 <= val_percent <= 100:
        raise ValueError(f"val_percent must be an int in [0, 100], got {val_percent!r}")
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16) % 100 < val_percent


def split_by_module(names: Iterable[str], val_percent: int = 15) -> tuple[list[str], list[str]]:
    """``(train, val)``: the module names split by ``is_validation``, each list sorted; no name in both."""
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError("names must not repeat a module")
    train = sorted(n for n in names if not is_validation(n, val_percent))
    val = sorted(n for n in names if is_validation(n, val_percent))
    return train, val


def join_modules(modules: dict[str, str], names: Iterable[str]) -> str:
    """The cleaned sources of ``names`` (in that order), each ending in one newline, separated by a blank line."""
    return "\n".join(clean_code(modules[n]).rstrip("\n") + "\n" for n in names)


def code_tokenizer() -> CharTokenizer:
    """A character tokenizer over ``CODE_CHARS`` (96 characters, the same on every Python version)."""
    return CharTokenizer(list(CODE_CHARS))



# ---------------------------------------------------------------------- the task: headers, closing rule, parsing
@dataclass(frozen=True)
class FunctionHeader:
    """One function of a source file: its header (``def`` line(s) and docstring) and its body.

    ``header`` runs from the start of the ``def`` line (decorators left out) to the newline that ends the
    docstring; ``body`` is every line after that up to the function's last line, each with its newline;
    ``context`` is up to 256 characters of the file just before ``header`` (for the prompt); ``indent`` is the
    number of spaces before ``def``.
    """

    module: str
    name: str
    lineno: int
    indent: int
    header: str
    body: str
    context: str

    def prompt(self, chars: int = 128) -> str:
        """The last ``chars`` characters of ``context + header``, padded on the left with newlines."""
        if isinstance(chars, bool) or not isinstance(chars, int) or chars < 1:
            raise ValueError(f"chars must be a positive int, got {chars!r}")
        return (self.context + self.header)[-chars:].rjust(chars, "\n")


def _docstring_end(node: ast.AST) -> int | None:
    """The line on which the docstring of function ``node`` ends, or None (no docstring, nothing after it)."""
    body = node.body
    if len(body) < 2 or not isinstance(body[0], ast.Expr):
        return None
    value = body[0].value
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        return None
    if body[1].lineno <= body[0].end_lineno:  # `"""doc"""; x = 1`: the body starts on the docstring's line
        return None
    return body[0].end_lineno


def extract_headers(source: str, module: str = "") -> list[FunctionHeader]:
    """Every function (``def`` or ``async def``, at any depth, methods too) of ``source`` that has a docstring
    followed by at least one statement on a later line, in the order of their ``def`` lines."""
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, got {type(source).__name__}")
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ValueError(f"source does not parse: {e.msg} (line {e.lineno})") from e
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        end = _docstring_end(node)
        if end is None:
            continue
        start = node.lineno - 1  # the def line (decorators sit above it)
        header = "".join(lines[start:end])
        body = "".join(lines[end:node.end_lineno])
        context = "".join(lines[max(0, start - 40):start])[-256:]
        out.append(FunctionHeader(module, node.name, node.lineno, node.col_offset, header, body, context))
    return sorted(out, key=lambda h: h.lineno)


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def close_function(header: str, completion: str) -> str:
    """Apply the **closing rule**: ``header`` plus the lines of ``completion`` that belong to the function.

    The function ends before the first non-blank line indented no deeper than the ``def`` (the code has come
    back to the ``def``'s level), or, when the completion stops in the middle of a line (the character limit),
    before that unfinished line. Blank lines are kept.
    """
    if not isinstance(header, str) or not isinstance(completion, str):
        raise TypeError(f"header and completion must be str, got {type(header).__name__} and "
                        f"{type(completion).__name__}")
    if not header.endswith("\n"):
        raise ValueError("header must end with a newline (the end of its docstring's line)")
    indent = _indent_of(header)
    kept = []
    for line in completion.splitlines(keepends=True):
        if line.strip() and _indent_of(line) <= indent:
            break  # back at the def's level: the function is over
        if not line.endswith("\n"):
            break  # cut by the character limit in mid-line
        kept.append(line)
    return header + "".join(kept)


def function_parses(header: str, completion: str) -> bool:
    """True when ``close_function(header, completion)``, moved left by the ``def``'s indentation, parses with
    ``ast.parse`` and the function holds at least one statement after its docstring."""
    code = close_function(header, completion)
    pad = " " * _indent_of(header)
    code = "".join(line[len(pad):] if line.startswith(pad) else line for line in code.splitlines(keepends=True))
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    fn = tree.body[0] if tree.body else None
    return isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and len(fn.body) >= 2


# ---------------------------------------------------------------------- models on code
def encode_lossy(text: str, tokenizer: CharTokenizer, unknown: str = " ") -> tuple[list[int], list[bool]]:
    """Character ids of ``text`` for ``tokenizer``, each character it lacks replaced by ``unknown``; and, per
    character, whether the tokenizer knew it. (The Shakespeare model has no ``(``, ``)``, ``=``, ``_``, ...)"""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    stoi = getattr(tokenizer, "stoi", None)
    if stoi is None:
        raise TypeError(f"tokenizer must be a CharTokenizer, got {type(tokenizer).__name__}")
    if unknown not in stoi:
        raise ValueError(f"the stand-in {unknown!r} must itself be in the tokenizer's vocabulary")
    known = [c in stoi for c in text]
    return [stoi[c] if k else stoi[unknown] for c, k in zip(text, known, strict=True)], known


def _check_model(model: object, tokenizer: object) -> None:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    if not isinstance(tokenizer, CharTokenizer):
        raise TypeError(f"tokenizer must be a CharTokenizer, got {type(tokenizer).__name__}")
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} characters, the model {model.config.vocab_size}")


@torch.no_grad()
def complete(
    model: GPT,
    tokenizer: CharTokenizer,
    prompts: Sequence[str],
    new_chars: int = 128,
    batch_size: int = 64,
    dtype: torch.dtype = torch.float64,
    progress: bool = False,
    return_margin: bool = False,
    stop_indent: Sequence[int] | None = None,
    temperature: float = 0.0,
    seed: int = 0,
):
    """Completions of up to ``new_chars`` characters for each prompt, greedy (``temperature=0``) or sampled;
    characters the tokenizer lacks are fed as spaces. Prompts share one length, at most
    ``block_size - new_chars`` (no sliding window).

    Sampling draws character ``t`` of prompt ``i`` by inverting the cumulative distribution of
    ``softmax(logits / temperature)`` at ``u[i, t]``, uniforms drawn once from ``torch.Generator().manual_seed(seed)``,
    so a prompt's completion does not depend on the batch it is in.

    ``stop_indent`` (one int per prompt, usually the ``def``'s indentation) stops a prompt's completion early,
    at the end of the first line that starts at or left of that column: the closing rule has then decided
    where the function ends, and what comes after cannot change it (the prompts must end with a newline).

    The model runs on a copy in ``dtype`` (float64 by default). With ``return_margin`` the result is
    ``(completions, margin)``, where ``margin`` is the smallest gap, over every step of every prompt, between
    the chosen character's logit and the runner-up's (sampling: between ``u`` and the nearest boundary of the
    cumulative distribution): when it is far above the last-digit differences between CPUs (about 1e-12 in
    float64), no CPU can pick another character, and the text is the same everywhere.

    After the prompt, the loop runs on one CPU thread: one character at a time, its matrices are too small for a
    second thread to help, and on a busy machine two threads spend their time waiting for each other.
    """
    return _complete(model, tokenizer, prompts, new_chars, batch_size, dtype, progress, return_margin,
                     stop_indent, temperature, seed)


@contextlib.contextmanager
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _complete(model, tokenizer, prompts, new_chars, batch_size, dtype, progress, return_margin, stop_indent,
              temperature, seed):
    import copy

    from .model import KVCache

    _check_model(model, tokenizer)
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of str")
    P = len(prompts[0])
    if P < 1 or any(len(p) != P for p in prompts):
        raise ValueError(f"every prompt must have the same, non-zero length, got lengths "
                         f"{sorted({len(p) for p in prompts})[:5]}")
    if isinstance(new_chars, bool) or not isinstance(new_chars, int) or new_chars < 1:
        raise ValueError(f"new_chars must be a positive int, got {new_chars!r}")
    if P + new_chars > model.config.block_size:
        raise ValueError(f"prompt ({P}) + new_chars ({new_chars}) exceed the model's context "
                         f"{model.config.block_size}: the window would slide")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0: greedy), got {temperature!r}")
    if stop_indent is not None:
        stop_indent = list(stop_indent)
        if len(stop_indent) != len(prompts) or not all(isinstance(i, int) and i >= 0 for i in stop_indent):
            raise ValueError(f"stop_indent must hold one int >= 0 per prompt ({len(prompts)}), got {stop_indent!r}")
        if not all(p.endswith("\n") for p in prompts):
            raise ValueError("with stop_indent every prompt must end with a newline")
    uniforms = torch.rand(len(prompts), new_chars, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    m = copy.deepcopy(model).to(dtype=dtype).eval()
    ids = torch.tensor([encode_lossy(p, tokenizer)[0] for p in prompts], dtype=torch.long)
    starts = range(0, len(prompts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="completing", total=len(starts))
    out, margin = [], math.inf
    for i in starts:
        rows = ids[i:i + batch_size]
        cache = KVCache(m.config.n_layer, capacity=P + new_chars)
        logits = m(rows, kv_cache=cache).logits[:, -1]  # [B, V]: the prompts, on every thread
        with _one_thread():
            new, gap = _decode(m, tokenizer, logits, cache, new_chars, temperature, uniforms[i:i + batch_size],
                               None if stop_indent is None else stop_indent[i:i + batch_size])
        margin = min(margin, gap)
        out += [tokenizer.decode([x for x in row.tolist() if x >= 0]) for row in new]
    return (out, margin) if return_margin else out


def _decode(m, tokenizer, logits, cache, new_chars, temperature, uniforms, stop_indent):
    """The characters after one batch of prompts, ``[B, new_chars]`` (-1 where a row stopped early), and the
    smallest margin of the choices made (see ``complete``)."""
    B = logits.shape[0]
    new = torch.full((B, new_chars), -1, dtype=torch.long)
    active = list(range(B))  # the rows still writing, in the order of the cache's batch
    column, blank, closing = [0] * B, [True] * B, [False] * B
    margin = math.inf
    for t in range(new_chars):
        if temperature == 0:
            top2 = logits.topk(2, dim=-1).values
            margin = min(margin, (top2[:, 0] - top2[:, 1]).min().item())
            nxt = logits.argmax(dim=-1)
        else:
            cdf = torch.softmax(logits.double() / temperature, dim=-1).cumsum(dim=-1)
            u = uniforms[active, t][:, None]
            margin = min(margin, (cdf - u).abs().min().item())
            nxt = (cdf < u).sum(dim=-1).clamp(max=cdf.shape[-1] - 1)
        new[active, t] = nxt
        if stop_indent is not None:
            keep = []
            for j, (r, c) in enumerate(zip(active, tokenizer.decode(nxt.tolist()), strict=True)):
                if c == "\n":
                    if closing[r]:
                        continue  # the line that ends the function is written out: this row is done
                    column[r], blank[r] = 0, True
                elif c == " " and blank[r]:
                    column[r] += 1
                else:
                    closing[r] = closing[r] or (blank[r] and column[r] <= stop_indent[r])
                    blank[r] = False
                keep.append(j)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep)
                cache.reorder(index)
                active, nxt = [active[j] for j in keep], nxt[index]
        if t + 1 < new_chars:
            logits = m(nxt[:, None], kv_cache=cache).logits[:, -1]
    return new, margin


def held_out_functions(
    modules: dict[str, str],
    val_names: Iterable[str],
    train_text: str,
    prompt_chars: int = 256,
    per_module: int = 25,
) -> tuple[list[FunctionHeader], dict[str, int]]:
    """The evaluation set: functions of the validation modules, and how many each filter removed.

    In order: every function ``extract_headers`` finds; whose header fits in ``prompt_chars`` (the ``def`` line
    must be in the prompt); whose body does not occur verbatim in ``train_text`` (it could be copied); whose own
    body passes the closing rule (``function_parses``: the rule is sound for it); at most ``per_module`` per
    module (chosen by a hash of module, name and line), so one module full of small methods cannot dominate.
    """
    if isinstance(per_module, bool) or not isinstance(per_module, int) or per_module < 1:
        raise ValueError(f"per_module must be a positive int, got {per_module!r}")
    found = [h for n in val_names for h in extract_headers(clean_code(modules[n]), n)]
    fits = [h for h in found if len(h.header) <= prompt_chars]
    novel = [h for h in fits if h.body not in train_text]
    sound = [h for h in novel if function_parses(h.header, h.body)]
    kept = []
    for name in dict.fromkeys(h.module for h in sound):
        mine = [h for h in sound if h.module == name]
        kept += sorted(sorted(mine, key=_hash_key)[:per_module], key=lambda h: h.lineno)
    counts = {"found": len(found), "header too long": len(found) - len(fits),
              "body seen in training": len(fits) - len(novel), "rule fails on the true body": len(novel) - len(sound),
              "over the per-module cap": len(sound) - len(kept), "kept": len(kept)}
    return kept, counts


def _hash_key(h: FunctionHeader) -> str:
    return hashlib.sha256(f"{h.module}:{h.name}:{h.lineno}".encode()).hexdigest()


def hash_sample(functions: Sequence[FunctionHeader], n: int) -> list[FunctionHeader]:
    """``n`` of ``functions`` chosen by a hash of module, name and line (the same ones on every run), in their
    original order."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    chosen = {id(h) for h in sorted(functions, key=_hash_key)[:n]}
    return [h for h in functions if id(h) in chosen]


def save_eval_set(path: str | os.PathLike, functions: Sequence[FunctionHeader], **info) -> Path:
    """Write ``functions`` (and any JSON-able ``info``) to a JSON file that ``load_eval_set`` reads back."""
    import json

    data = {**info, "functions": [{f.name: getattr(h, f.name) for f in fields(FunctionHeader)} for h in functions]}
    path = Path(path)
    path.write_text(json.dumps(data, indent=0, ensure_ascii=True) + "\n", encoding="utf-8")
    return path


def load_eval_set(path: str | os.PathLike) -> tuple[list[FunctionHeader], dict]:
    """``(functions, info)`` from a file written by ``save_eval_set``."""
    import json

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    functions = [FunctionHeader(**d) for d in data.pop("functions")]
    return functions, data


def ends_by_dedent(header: str, completion: str) -> bool:
    """True when the closing rule ends the function at a line back at the ``def``'s level (the model closed the
    function itself), False when only the character limit ended it."""
    kept = close_function(header, completion)[len(header):]
    rest = completion[len(kept):]
    first = rest.split("\n", 1)[0]
    return bool(first.strip()) and _indent_of(first) <= _indent_of(header)


def _first_line(text: str) -> str:
    return next((line for line in text.split("\n") if line.strip()), "")


def score_completions(headers: Sequence[FunctionHeader], completions: Sequence[str], z: float = 1.96) -> dict:
    """Score completions of ``headers``: ``{"n", "k", "share", "interval"}`` for the ones that parse
    (``function_parses``, Wilson's interval at ``z``), the per-completion lists ``"parsed"`` and ``"closed"``
    (``ends_by_dedent``), and ``"first_line"``: the share whose first non-blank line (inside the function, after
    the closing rule) is the true body's first non-blank line."""
    headers, completions = list(headers), list(completions)
    if not headers or len(headers) != len(completions):
        raise ValueError(f"need as many completions as headers (at least one), got {len(completions)} and "
                         f"{len(headers)}")
    pairs = list(zip(headers, completions, strict=True))
    parsed = [function_parses(h.header, c) for h, c in pairs]
    closed = [ends_by_dedent(h.header, c) for h, c in pairs]
    first = [_first_line(close_function(h.header, c)[len(h.header):]) == _first_line(h.body) != "" for h, c in pairs]
    k, n = sum(parsed), len(parsed)
    return {"n": n, "k": k, "share": k / n, "interval": wilson_interval(k, n, z), "parsed": parsed,
            "closed": closed, "first_line": sum(first) / n}


@torch.no_grad()
def code_bits_per_char(model: GPT, tokenizer: CharTokenizer, text: str, batch_size: int = 8) -> dict[str, float]:
    """Bits per character of ``model`` on ``text``, in consecutive windows of ``block_size + 1`` characters.

    A character the tokenizer lacks is fed to the model as a space, and cannot be predicted (probability 0,
    infinitely many bits). Returns ``{"bpc"}`` (all characters: inf if any is unknown), ``{"bpc_known"}`` (only
    the characters the model can write), ``{"unknown_share"}`` and ``{"chars"}`` (characters predicted).
    """
    _check_model(model, tokenizer)
    if not isinstance(text, str) or len(text) < 2:
        raise ValueError(f"text must be a str of at least 2 characters, got {type(text).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    ids, known = encode_lossy(text, tokenizer)
    ids, known = torch.tensor(ids), torch.tensor(known)
    T = model.config.block_size
    windows = [(s, min(s + T + 1, len(ids))) for s in range(0, len(ids) - 1, T)]
    was_training = model.training
    model.eval()
    nats, n_known = 0.0, 0
    for i in range(0, len(windows), batch_size):
        chunk = windows[i:i + batch_size]
        for length in sorted({b - a for a, b in chunk}):  # the last window may be shorter: on its own
            rows = torch.stack([ids[a:b] for a, b in chunk if b - a == length])
            mask = torch.stack([known[a + 1:b] for a, b in chunk if b - a == length])
            logits = model(rows[:, :-1]).logits.double()
            loss = F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten(), reduction="none")
            nats += loss[mask.flatten()].sum().item()
            n_known += int(mask.sum())
    model.train(was_training)
    chars = len(ids) - 1
    bpc_known = nats / max(n_known, 1) / math.log(2)
    unknown_share = 1 - n_known / chars
    return {"bpc": bpc_known if n_known == chars else math.inf, "bpc_known": bpc_known,
            "unknown_share": unknown_share, "chars": chars}


# ---------------------------------------------------------------------- training
def train_code_model(
    cfg,
    train_text: str,
    val_text: str,
    out_dir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    log=print,
):
    """Train a GPT on code with ``helpers.train.train``; return its ``(model, tokenizer, state)``.

    ``train`` builds Shakespeare's character vocabulary when it starts a run, but a run it *resumes* keeps the
    checkpoint's tokenizer. So a new run first writes step 0 to ``out_dir`` (a fresh model over
    ``code_tokenizer()``'s 96 characters, seeded as ``train`` would seed it) and then resumes from it: the
    course's own loop (AdamW, warm-up and cosine decay, clipping, evaluation, checkpoints) does the rest.
    """
    from .train import TrainConfig, TrainState, configure_optimizer, save_checkpoint, train

    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a helpers.train.TrainConfig, got {type(cfg).__name__}")
    if cfg.tokenizer != "char":
        raise ValueError(f"the code model reads characters: cfg.tokenizer must be 'char', got {cfg.tokenizer!r}")
    for what, text in (("train_text", train_text), ("val_text", val_text)):
        if not isinstance(text, str) or len(text) <= cfg.block_size:
            raise ValueError(f"{what} must be a str longer than block_size={cfg.block_size}, "
                             f"got {type(text).__name__} of length {len(text) if isinstance(text, str) else '-'}")
    out = Path(out_dir)
    if not resume:
        tok = code_tokenizer()
        torch.manual_seed(cfg.seed)
        model = GPT(cfg.model_config(tok.vocab_size))
        opt = configure_optimizer(model, cfg)
        save_checkpoint(out, model, tok, opt, TrainState(), cfg, torch.Generator().manual_seed(cfg.seed))
    return train(cfg, out_dir=out, resume=True, train_text=train_text, val_text=val_text, progress=progress,
                 log=log)


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.codegen --out DIR [--resume] [training flags of helpers.train]``."""
    import json
    import platform

    from .train import TrainConfig, _parser

    p = _parser()
    p.prog, p.description = "python -m helpers.codegen", "Train the course's GPT on Python's standard library."
    p.add_argument("--val-percent", type=int, default=15, help="share of modules held out (by name hash)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    modules = read_stdlib()
    train_names, val_names = split_by_module(modules, args.val_percent)
    train_text, val_text = join_modules(modules, train_names), join_modules(modules, val_names)
    data = {"python": platform.python_version(), "stdlib": str(stdlib_dir()), "val_percent": args.val_percent,
            "train_modules": train_names, "val_modules": val_names,
            "train_chars": len(train_text), "val_chars": len(val_text)}
    print(f"Python {data['python']} standard library: {len(modules)} modules; train {len(train_names)} modules "
          f"({len(train_text):,} characters), validation {len(val_names)} ({len(val_text):,})", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".data.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    _, _, state = train_code_model(cfg, train_text, val_text, out, resume=args.resume,
                                   progress=not args.no_progress, log=lambda s: print(s, flush=True))
    last = state.history[-1] if state.history else {}
    print(f"done: step {state.step}, val {last.get('val_loss', float('nan')):.4f} nats "
          f"= {last.get('val_bpc', float('nan')):.3f} bits/char, checkpoint in {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
