"""Yours from here on: a piece the learner wrote, once its checker passes, is the one the course runs.

The build thread of the course: the learner writes attention (02), the block (04), the GPT (05), the training
step (07), the sampler and a KV-cache step (08). After each checker, one line decides what runs next:

    Block = adopt("block", Block, result, reference=BlockRef)   # notebook 04: yours if it passed
    Block = use("block", reference=BlockRef)                    # notebook 05: in a new kernel, the same choice

``adopt`` saves a piece that passed (its source, with the imports and the helper functions it uses) to the
course's work folder and returns it; a piece that did not pass is removed from there and the reference is
returned, with one line saying so. ``use`` loads the saved piece in a later notebook, or the reference. So
every notebook runs top to bottom either way (the student edition too), and says which version it ran.

The work folder is ``$COURSE_WORKDIR`` if set (the tests use a temporary one), else
``~/.cache/transformers-by-hand/yours``. A saved piece is plain Python you can open and read.
"""

from __future__ import annotations

import ast
import builtins
import dis
import inspect
import linecache
import os
import re
import types
from pathlib import Path
from typing import Any

__all__ = ["adopt", "use", "saved", "forget", "workdir"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def workdir() -> Path:
    """The folder where passed pieces are saved (``$COURSE_WORKDIR`` or ``~/.cache/transformers-by-hand/yours``)."""
    env = os.environ.get("COURSE_WORKDIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "transformers-by-hand" / "yours"


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"a piece's name is lower-case letters, digits and _ (e.g. 'block'), got {name!r}")
    return name


def saved(name: str) -> Path | None:
    """The saved file of piece ``name``, or None when the learner's version has not passed (yet)."""
    p = workdir() / f"{_check_name(name)}.py"
    return p if p.exists() else None


def forget(name: str) -> None:
    """Remove the learner's saved piece ``name`` (later notebooks then use the course's version)."""
    p = saved(name)
    if p is not None:
        p.unlink()


# --- capturing a piece's source, with what it needs ----------------------------------------------------------


def _source_of(obj: Any) -> str:
    """The source of a function or class, also when it was defined in a notebook cell (or loaded by ``use``)."""
    if isinstance(obj, type):
        codes = [v.__code__ for v in vars(obj).values() if isinstance(v, types.FunctionType)]
        if not codes:
            raise TypeError(f"cannot find the source of class {obj.__name__}: it defines no method")
        filename = codes[0].co_filename
        lines = linecache.getlines(filename) or (Path(filename).read_text().splitlines(True)
                                                 if Path(filename).exists() else [])
        text = "".join(lines)
        tree = ast.parse(text)
        first = min(c.co_firstlineno for c in codes)
        best = None
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == obj.__name__ and node.lineno <= first <= node.end_lineno:
                if best is None or node.lineno > best.lineno:
                    best = node
        if best is None:
            raise TypeError(f"cannot find the source of class {obj.__name__}")
        start = min([best.lineno] + [d.lineno for d in best.decorator_list])
        return "".join(lines[start - 1 : best.end_lineno])
    if isinstance(obj, types.FunctionType):
        return inspect.getsource(obj)
    raise TypeError(f"a piece is a function or a class, got {type(obj).__name__}")


def _names_used(obj: Any) -> set[str]:
    """The global names a function or class reads (LOAD_GLOBAL/LOAD_NAME), not its locals or attributes."""
    codes = [obj.__code__] if isinstance(obj, types.FunctionType) else []
    if isinstance(obj, type):
        for v in vars(obj).values():  # methods, and properties, static and class methods
            f = v if isinstance(v, types.FunctionType) else getattr(v, "__func__", None) or getattr(v, "fget", None)
            if isinstance(f, types.FunctionType):
                codes.append(f.__code__)
    names: set[str] = set()
    while codes:
        c = codes.pop()
        names.update(i.argval for i in dis.get_instructions(c) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME"))
        codes.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    if isinstance(obj, type):  # base classes and decorators are read where the class is defined
        node = ast.parse(_source_of(obj).lstrip()).body[0]
        for expr in [*node.bases, *node.decorator_list]:
            names.update(n.id for n in ast.walk(expr) if isinstance(n, ast.Name))
    return names


def _globals_of(obj: Any) -> dict:
    if isinstance(obj, type):
        for v in vars(obj).values():
            if isinstance(v, types.FunctionType):
                return v.__globals__
        return {}
    return obj.__globals__


def _importable(value: Any) -> str | None:
    """``from module import name`` when ``value`` lives in a real module (torch, helpers, ...)."""
    mod, qual = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not mod or not qual or "." in qual or mod in ("__main__", "builtins") or mod.startswith("_yours_"):
        return None
    try:
        import importlib

        if getattr(importlib.import_module(mod), qual, None) is value:
            return f"from {mod} import {qual}"
    except Exception:  # noqa: BLE001
        return None
    return None


def _snapshot(obj: Any, name: str) -> str:
    """Self-contained source: imports, the helper functions/classes it uses (recursively), then the piece."""
    imports: list[str] = []
    bodies: list[str] = []
    seen: set[int] = set()

    def visit(o: Any, alias: str) -> None:
        if id(o) in seen:
            return
        seen.add(id(o))
        g = _globals_of(o)
        for n in sorted(_names_used(o)):
            if n not in g or hasattr(builtins, n) and g[n] is getattr(builtins, n):
                continue
            v = g[n]
            if isinstance(v, types.ModuleType):
                line = f"import {v.__name__}" + (f" as {n}" if v.__name__ != n else "")
                if "." in v.__name__ and v.__name__.split(".")[0] == n:
                    line = f"import {v.__name__}"
                imports.append(line)
            elif (imp := _importable(v)) is not None:
                imports.append(imp + (f" as {n}" if v.__qualname__ != n else ""))
            elif isinstance(v, (types.FunctionType, type)):
                visit(v, n)
            elif isinstance(v, (int, float, str, bool, type(None))):
                bodies.append(f"{n} = {v!r}\n")
        src = "".join(line for line in _source_of(o).splitlines(True)
                      if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))  # nbgrader's markers
        src = inspect.cleandoc("\n" + src) + "\n" if src[:1].isspace() else src
        if o.__name__ != alias:
            src += f"{alias} = {o.__name__}\n"
        bodies.append(src)

    visit(obj, obj.__name__)
    head = (f'"""Your {name}, saved by helpers.yours.adopt when its checker passed. Edit it in the notebook, '
            'not here."""\n\n')
    return head + "\n".join(dict.fromkeys(imports)) + "\n\n\n" + "\n\n".join(dict.fromkeys(bodies)) + (
        f"\n\n__piece__ = {obj.__name__}\n")


# --- the two doors --------------------------------------------------------------------------------------------


def _passed(result: Any) -> bool:
    if result is None or not hasattr(result, "passed") or not hasattr(result, "total"):
        raise TypeError(f"result must be what the checker returned (a CheckResult), got {type(result).__name__}")
    return result.total > 0 and result.passed == result.total


def adopt(name: str, piece: Any, result: Any, reference: Any) -> Any:
    """Return ``piece`` if its checker ``result`` passed (and save it for later notebooks), else ``reference``.

    Prints one line saying which. ``piece`` is the learner's function or class; ``reference`` the course's
    version with the same interface.
    """
    _check_name(name)
    label = getattr(reference, "__name__", name)
    if piece is None or not _passed(result):
        forget(name)
        done = "" if piece is None else f" ({result.passed}/{result.total} checks passed)"
        print(f"Your {label} is not there yet{done}: the course's version is used from here on. "
              "Fix it, re-run its checker and this cell, and yours takes over.")
        return reference
    try:
        source = _snapshot(piece, name)
        compile(source, f"<{name}>", "exec")
    except (TypeError, OSError, SyntaxError) as e:
        print(f"Your {label} passed, but its source could not be saved for later notebooks ({e}); it is used "
              "in this notebook, and later notebooks use the course's version.")
        forget(name)
        return piece
    folder = workdir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.{os.getpid()}.py.tmp"  # one per process: two notebooks may adopt at once
    tmp.write_text(source, encoding="utf-8")
    tmp.replace(folder / f"{name}.py")  # atomic: a later notebook never reads half a file
    print(f"Your {label} passed its checker: it is the one used from here on (saved for later notebooks).")
    return piece


def use(name: str, reference: Any) -> Any:
    """The learner's saved piece ``name`` if an earlier notebook adopted it, else ``reference``; one line says which."""
    _check_name(name)
    label = getattr(reference, "__name__", name)
    path = saved(name)
    if path is None:
        print(f"{label}: the course's version (yours has not passed its checker in an earlier notebook yet).")
        return reference
    source = path.read_text(encoding="utf-8")
    module = types.ModuleType(f"_yours_{name}")
    module.__file__ = str(path)
    linecache.cache[str(path)] = (len(source), None, source.splitlines(True), str(path))
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
        piece = module.__dict__["__piece__"]
    except Exception as e:  # noqa: BLE001 - a broken saved file must not stop the notebook
        print(f"{label}: your saved version in {path} does not load ({type(e).__name__}: {e}); the course's "
              "version is used.")
        return reference
    print(f"{label}: yours, from the notebook where it passed its checker.")
    return piece
