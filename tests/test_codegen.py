"""helpers.codegen (notebook 15's code model) and its checkers: the data, the split, the headers (against
``inspect.getsource``), the closing rule, Wilson's interval (against inverting the score test by bisection),
bits per character (against ``helpers.train.evaluate_text``), greedy completion (against
``helpers.generate.generate``), training through ``helpers.train.train``, and the shipped checkpoint."""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import queue
import textwrap
from pathlib import Path

import pytest
import torch

from helpers.checks.codegen import (
    NAMES,
    check_close_function,
    check_extract_headers,
    check_split_by_module,
    check_wilson_interval,
)
from helpers.codegen import (
    CODE_CHARS,
    EXCLUDED,
    FunctionHeader,
    clean_code,
    close_function,
    code_bits_per_char,
    code_tokenizer,
    complete,
    encode_lossy,
    ends_by_dedent,
    extract_headers,
    function_parses,
    hash_sample,
    held_out_functions,
    is_validation,
    join_modules,
    load_eval_set,
    module_name,
    read_stdlib,
    save_eval_set,
    score_completions,
    split_by_module,
    stdlib_dir,
    train_code_model,
    wilson_interval,
)
from helpers.generate import generate
from helpers.model import GPT, GPTConfig
from helpers.tokenizer import CharTokenizer
from helpers.train import TrainConfig, evaluate_text, load_checkpoint

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "python-gpt"


@pytest.fixture(scope="module")
def stdlib():
    return read_stdlib()


def tiny_model(vocab=96, block=64, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=2, n_head=2, n_embd=32, dropout=0.0)).eval()


# ---------------------------------------------------------------------- the data
def test_module_name_and_bad_paths():
    assert module_name("email/mime/text.py") == "email.mime.text"
    assert module_name("asyncio/__init__.py") == "asyncio"
    assert module_name("os.py") == "os"
    with pytest.raises(ValueError, match=".py file"):
        module_name("README.txt")


def test_read_stdlib_leaves_out_tests_tools_and_generated_files(stdlib):
    assert {"os", "ast", "json", "json.decoder", "asyncio", "email.mime.text"} <= set(stdlib)
    for name in stdlib:
        parts = name.split(".")
        assert parts[0] not in EXCLUDED and not parts[0].startswith("_sysconfigdata"), name
        assert not {"test", "tests", "idle_test"} & set(parts[:-1]), name
    assert list(stdlib) == sorted(stdlib)
    assert stdlib["os"] == (stdlib_dir() / "os.py").read_text(encoding="utf-8")
    assert set(read_stdlib(names=["os", "ast"])) == {"os", "ast"}
    with pytest.raises(ValueError, match="not found"):
        read_stdlib(names=["os", "no_such_module_here"])
    with pytest.raises(FileNotFoundError):
        read_stdlib("/no/such/folder")


def test_clean_code_keeps_the_vocabulary_and_the_syntax(stdlib):
    assert len(CODE_CHARS) == 96 and len(set(CODE_CHARS)) == 96
    assert clean_code("a = 'é±'\r\n\tb") == "a = '??'\n    b"
    for name in ("fractions", "shlex", "zipfile", "statistics"):  # modules holding non-ASCII characters
        cleaned = clean_code(stdlib[name])
        assert set(cleaned) <= set(CODE_CHARS) and len(cleaned) == len(stdlib[name])
        compile(cleaned, name, "exec")  # still Python: the replaced characters sit in strings and comments
    with pytest.raises(TypeError):
        clean_code(b"bytes")


def test_split_is_a_hash_of_the_name_and_never_moves_a_module():
    for name in NAMES:
        expected = int.from_bytes(hashlib.sha256(name.encode()).digest(), "big") % 100 < 15
        assert is_validation(name, 15) == expected
    train, val = split_by_module(NAMES, 15)
    assert not set(train) & set(val) and sorted(train + val) == sorted(NAMES)
    assert train == sorted(train) and val == sorted(val)
    _, val2 = split_by_module(NAMES + [f"new_module_{i}" for i in range(50)], 15)
    assert set(val) == set(val2) & set(NAMES)  # adding modules moves none of the old ones
    assert split_by_module(NAMES, 0) == (sorted(NAMES), []) and split_by_module(NAMES, 100) == ([], sorted(NAMES))
    with pytest.raises(ValueError, match="repeat"):
        split_by_module(["os", "os"])
    with pytest.raises(ValueError, match="val_percent"):
        is_validation("os", 101)
    with pytest.raises(ValueError, match="non-empty"):
        is_validation("")


def test_join_modules():
    text = join_modules({"a": "x = 1\n\n\n", "b": "y = 'é'"}, ["a", "b"])
    assert text == "x = 1\n\ny = '?'\n"


# ---------------------------------------------------------------------- headers
def test_extract_headers_matches_inspect_getsource():
    source = inspect.getsource(queue)
    found = {(h.name, h.lineno): h for h in extract_headers(source, "queue")}
    assert len(found) >= 10
    objects = [getattr(queue, n) for n in dir(queue)]
    objects += [m for c in objects if inspect.isclass(c) for m in vars(c).values()]
    checked = 0
    for obj in objects:
        if not inspect.isfunction(obj) or obj.__module__ != "queue" or not obj.__doc__:
            continue
        lines, lineno = inspect.getsourcelines(obj)
        while lines[0].lstrip().startswith("@"):  # decorators are not part of the header
            lines, lineno = lines[1:], lineno + 1
        h = found.get((obj.__name__, lineno))
        if h is None:  # a docstring with no statement after it
            assert ast_body_len(obj) == 1
            continue
        assert h.header + h.body == "".join(lines)
        assert h.header.rstrip().endswith(('"""', "'''")) and h.indent == len(lines[0]) - len(lines[0].lstrip())
        before = "".join(source.splitlines(keepends=True)[:lineno - 1])
        assert h.module == "queue" and before.endswith(h.context) and len(h.context) == min(256, len(before))
        checked += 1
    assert checked >= 10


def ast_body_len(fn) -> int:
    import ast

    return len(ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0].body)


def test_extract_headers_cases_and_errors():
    src = 'def f(x):\n    """Doc."""; return x\n\ndef g():\n    "doc"\n    return 1\n'
    hs = extract_headers(src)
    assert [(h.name, h.header, h.body) for h in hs] == [("g", 'def g():\n    "doc"\n', "    return 1\n")]
    assert extract_headers("def f():\n    '''d'''\n    return 1")[0].body == "    return 1\n"  # no final newline
    with pytest.raises(ValueError, match="does not parse"):
        extract_headers("def (:\n")
    with pytest.raises(TypeError):
        extract_headers(None)
    h = extract_headers('x = 1\ndef g():\n    "doc"\n    return 1\n')[0]
    assert h.context == "x = 1\n" and h.prompt(10) == '    "doc"\n'
    assert h.prompt(40) == "\n" * 15 + 'x = 1\ndef g():\n    "doc"\n'
    with pytest.raises(ValueError):
        h.prompt(0)


# ---------------------------------------------------------------------- the closing rule and parsing
HEADER = '    def area(self):\n        """The area."""\n'


def test_close_function_rule():
    assert close_function(HEADER, "        return 1\n\n    def next(self):\n") == HEADER + "        return 1\n\n"
    assert close_function(HEADER, "        x = 1\n        return (x +") == HEADER + "        x = 1\n"
    assert close_function(HEADER, "class A:\n") == HEADER
    assert close_function(HEADER, "        if a:\n\n            b()\n") == HEADER + "        if a:\n\n            b()\n"
    with pytest.raises(ValueError, match="newline"):
        close_function(HEADER.rstrip("\n"), "")
    with pytest.raises(TypeError):
        close_function(HEADER, None)


def test_function_parses():
    assert function_parses(HEADER, "        return self.w * self.h\n\n    def next(self):\n")
    assert not function_parses(HEADER, "        return (self.w *\n    def next(self):\n")  # unclosed bracket
    assert not function_parses(HEADER, "    def next(self):\n")  # no statement after the docstring
    assert not function_parses(HEADER, "        # only a comment\n")
    assert not function_parses(HEADER, "        if x:\n")  # a block opener with no block
    assert function_parses(HEADER, "        for i in x:\n            y(i)\n        return (1 +")  # cut: dropped
    top = 'def f():\n    """Doc."""\n'
    assert function_parses(top, "    return 1\nx = f()\n") and not function_parses(top, "    return 1 +\n")


def test_true_bodies_parse_under_the_rule(stdlib):
    for name in ("textwrap", "queue", "shlex"):
        for h in extract_headers(clean_code(stdlib[name]), name):
            assert function_parses(h.header, h.body), (name, h.name)


def test_score_completions():
    hs = [FunctionHeader("m", "f", 1, 0, 'def f():\n    """D."""\n', "    return 1\n", "")] * 3
    s = score_completions(hs, ["    return 1\n", "    return (\n", "    pass\ndef g"])
    assert s["parsed"] == [True, False, True] and s["k"] == 2 and s["n"] == 3
    assert s["interval"] == wilson_interval(2, 3) and s["first_line"] == pytest.approx(1 / 3)
    assert s["closed"] == [False, False, True]
    # first lines compare the first non-blank line inside the function: an empty one never matches
    blank = [FunctionHeader("m", "f", 1, 0, 'def f():\n    """D."""\n', "\n    return 1\n", "")]
    assert score_completions(blank, ["\nx = 1\n"])["first_line"] == 0.0
    assert score_completions(blank, ["    return 1\n"])["first_line"] == 1.0
    with pytest.raises(ValueError, match="as many"):
        score_completions(hs, ["x"])


# ---------------------------------------------------------------------- Wilson's interval
def _score_test_bounds(k, n, z):
    """The p whose score test |k/n - p| <= z sqrt(p(1-p)/n) just holds, found by bisection on each side."""
    phat = k / n

    def inside(p):
        return abs(phat - p) <= z * math.sqrt(p * (1 - p) / n)

    def bisect(lo, hi):  # inside(lo) != inside(hi)
        for _ in range(200):
            mid = (lo + hi) / 2
            if inside(mid) == inside(lo):
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    low = 0.0 if k == 0 else bisect(1e-300, phat)
    high = 1.0 if k == n else bisect(1 - 1e-16, phat)
    return low, high


@pytest.mark.parametrize("k,n,z", [(0, 10, 1.96), (10, 10, 1.96), (45, 100, 1.96), (3, 7, 2.576), (160, 222, 1.0),
                                   (1, 1000, 1.96)])
def test_wilson_interval_inverts_the_score_test(k, n, z):
    low, high = wilson_interval(k, n, z)
    ref_low, ref_high = _score_test_bounds(k, n, z)
    assert low == pytest.approx(ref_low, abs=1e-9) and high == pytest.approx(ref_high, abs=1e-9)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_errors():
    assert wilson_interval(0, 10)[1] == pytest.approx(1.96**2 / (10 + 1.96**2))  # closed form at k = 0
    for bad in ((5, 3), (-1, 3), (1, 0)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)
    with pytest.raises(TypeError):
        wilson_interval(1.0, 3)
    with pytest.raises(ValueError, match="z"):
        wilson_interval(1, 3, z=0)


# ---------------------------------------------------------------------- models on code
def test_encode_lossy():
    tok = CharTokenizer(list("ab "))
    ids, known = encode_lossy("a(b)", tok)
    assert ids == [0, 2, 1, 2] and known == [True, False, True, False]
    with pytest.raises(ValueError, match="stand-in"):
        encode_lossy("a", tok, unknown="z")
    with pytest.raises(TypeError):
        encode_lossy("a", object())


def test_code_bits_per_char_matches_evaluate_text():
    tok = code_tokenizer()
    model = tiny_model()
    text = "def f(x):\n    return x * 2\n" * 12
    ours = code_bits_per_char(model, tok, text, batch_size=3)
    ref = evaluate_text(model, tok, text, batch_size=5)
    assert ours["bpc"] == pytest.approx(ref["bpc"], abs=1e-5) and ours["unknown_share"] == 0.0
    assert ours["chars"] == len(text) - 1
    # a vocabulary without parentheses: those targets cannot be predicted, the rest is scored
    small = CharTokenizer(sorted(set(text) - set("()")))
    m2 = tiny_model(vocab=small.vocab_size, seed=1)
    res = code_bits_per_char(m2, small, text)
    n_unknown = sum(c in "()" for c in text[1:])
    assert math.isinf(res["bpc"]) and res["unknown_share"] == pytest.approx(n_unknown / (len(text) - 1))
    with torch.no_grad():  # by hand, one window
        ids = torch.tensor([encode_lossy(text[:50], small)[0]])
        logp = torch.log_softmax(m2(ids[:, :-1]).logits.double(), -1)[0]
        keep = [t for t in range(49) if text[t + 1] not in "()"]
        by_hand = -sum(logp[t, ids[0, t + 1]].item() for t in keep) / len(keep) / math.log(2)
    assert code_bits_per_char(m2, small, text[:50])["bpc_known"] == pytest.approx(by_hand, abs=1e-6)
    with pytest.raises(ValueError, match="characters"):
        code_bits_per_char(m2, tok, text)


def test_complete_is_greedy_generation():
    tok = code_tokenizer()
    model = tiny_model(block=48)
    prompts = ["def f(x):\n    ", "class A:\n    d", "  x = (1, 2)  "]
    prompts = [p.rjust(16, "\n") for p in prompts]
    got, margin = complete(model, tok, prompts, new_chars=20, batch_size=2, return_margin=True)
    ref = generate(model.double(), torch.tensor([tok.encode(p) for p in prompts]), 20, temperature=0)
    assert got == [tok.decode(r[16:].tolist()) for r in ref] and margin > 0
    assert complete(model.float(), tok, prompts[:1], new_chars=20, batch_size=1)[0] == got[0]
    # sampling: each prompt's uniforms are its own, so the batch it is in changes nothing
    one, gap = complete(model, tok, prompts, new_chars=20, batch_size=1, temperature=0.8, seed=3, return_margin=True)
    assert one == complete(model, tok, prompts, new_chars=20, batch_size=3, temperature=0.8, seed=3) and gap > 0
    assert one != complete(model, tok, prompts, new_chars=20, batch_size=3, temperature=0.8, seed=4)
    with pytest.raises(ValueError, match="temperature"):
        complete(model, tok, prompts, new_chars=4, temperature=-1)
    with pytest.raises(ValueError, match="same"):
        complete(model, tok, ["ab", "abc"], new_chars=4)
    with pytest.raises(ValueError, match="context"):
        complete(model, tok, ["a" * 40], new_chars=9)
    with pytest.raises(ValueError, match="characters"):
        complete(model, CharTokenizer(list("ab")), ["a"], new_chars=4)
    with pytest.raises(TypeError):
        complete(model, object(), ["a"], new_chars=4)
    with pytest.raises(ValueError, match="newline"):
        complete(model, tok, prompts, new_chars=4, stop_indent=[0, 0, 0])
    with pytest.raises(ValueError, match="one int"):
        complete(model, tok, [p + "\n" for p in prompts], new_chars=4, stop_indent=[0])


def test_held_out_functions_filters_and_caps():
    mods = {"m1": "".join(f'def f{i}():\n    """Doc {i}."""\n    return {i}\n\n' for i in range(6)),
            "m2": 'def g():\n    """Doc."""\n    return 99\n\ndef h():\n    """' + "x" * 300 + '"""\n    pass\n'}
    train_text = "    return 3\n"
    kept, counts = held_out_functions(mods, ["m1", "m2"], train_text, prompt_chars=256, per_module=4)
    assert counts == {"found": 8, "header too long": 1, "body seen in training": 1, "rule fails on the true body": 0,
                      "over the per-module cap": 1, "kept": 5}
    assert sum(h.module == "m1" for h in kept) == 4 and all("return 3" not in h.body for h in kept)
    assert [h.lineno for h in kept if h.module == "m1"] == sorted(h.lineno for h in kept if h.module == "m1")
    sample = hash_sample(kept, 3)  # the same three whatever the order they come in, kept in that order
    assert len(sample) == 3 and hash_sample(kept[::-1], 3) == sample[::-1] and set(sample) <= set(kept)
    with pytest.raises(ValueError):
        held_out_functions(mods, ["m1"], train_text, per_module=0)


def test_eval_set_round_trip(tmp_path):
    hs = extract_headers('def g():\n    """Doc."""\n    return 1\n', "m")
    path = save_eval_set(tmp_path / "e.json", hs, python="3.x", counts={"kept": 1})
    back, info = load_eval_set(path)
    assert back == hs and info == {"python": "3.x", "counts": {"kept": 1}}


def test_train_code_model_uses_the_code_vocabulary(tmp_path):
    cfg = TrainConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=3, eval_interval=0,
                      eval_iters=1, warmup_iters=0, sample_chars=0)
    text = "def f(x):\n    return (x + 1) * 2\n" * 20
    model, tok, state = train_code_model(cfg, text, text, tmp_path / "run", progress=False, log=lambda s: None)
    assert tok.chars == list(CODE_CHARS) and state.step == 3 and math.isfinite(state.history[-1]["val_loss"])
    again, tok2, saved = load_checkpoint(tmp_path / "run")
    assert tok2.chars == list(CODE_CHARS) and saved["step"] == 3
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="char"):
        train_code_model(TrainConfig(tokenizer="bpe"), text, text, tmp_path / "x")
    with pytest.raises(ValueError, match="longer than"):
        train_code_model(cfg, "short", text, tmp_path / "y")


# ---------------------------------------------------------------------- the shipped model
@pytest.mark.skipif(not (CHECKPOINT / "model.safetensors").exists(), reason="checkpoints/python-gpt not shipped")
def test_shipped_checkpoint_and_its_frozen_evaluation_set():
    model, tok, _ = load_checkpoint(CHECKPOINT)
    assert tok.chars == list(CODE_CHARS) and model.config.vocab_size == 96
    assert (CHECKPOINT / "model.safetensors").stat().st_size < 20e6
    fns, info = load_eval_set(CHECKPOINT / "fast_eval.json")
    assert all(is_validation(n) for n in {h.module for h in fns})
    assert all(function_parses(h.header, h.body) for h in fns)
    history = json.loads((CHECKPOINT / "history.json").read_text())
    assert history["history"][-1]["step"] == history["train_config"]["max_iters"]
    # stopping at the line that closes the function changes no verdict of the closing rule
    some = fns[:6]
    prompts = [h.prompt(256) for h in some]
    full, m_full = complete(model, tok, prompts, new_chars=128, return_margin=True)
    short, m_short = complete(model, tok, prompts, new_chars=128, return_margin=True, stop_indent=[h.indent for h in some])
    assert m_short >= m_full > 1e-6
    for h, a, b in zip(some, full, short, strict=True):
        assert a.startswith(b) and close_function(h.header, a) == close_function(h.header, b)
        assert function_parses(h.header, a) == function_parses(h.header, b)
        assert ends_by_dedent(h.header, a) == ends_by_dedent(h.header, b)
    assert score_completions(some, short)["k"] >= 1


# ---------------------------------------------------------------------- the checkers
def test_checkers_accept_the_reference(capsys):
    assert check_split_by_module(split_by_module)
    assert check_extract_headers(extract_headers)
    assert check_extract_headers(lambda s: [(h.header, h.body) for h in extract_headers(s)])
    assert check_close_function(close_function)
    assert check_wilson_interval(wilson_interval)
    assert "✗" not in capsys.readouterr().out


def test_split_checker_names_mistakes(capsys):
    def positional(names, p):
        names = sorted(names)
        k = len(names) - round(len(names) * p / 100)
        return names[:k], names[k:]

    assert not check_split_by_module(positional)
    assert not check_split_by_module(lambda names, p: (sorted(n for n in names if hash(n) % 100 >= p),
                                                       sorted(n for n in names if hash(n) % 100 < p)))
    assert not check_split_by_module(lambda names, p: tuple(
        [n for n in names if n in part] for part in split_by_module(names, p)))
    out = capsys.readouterr().out
    assert "by position" in out and "PYTHONHASHSEED" in out and "not sorted" in out


def test_header_checker_names_mistakes(capsys):
    import ast

    def top_only(source):
        tree = ast.parse(source)
        keep = {id(n) for n in tree.body}
        return [(h.header, h.body) for h in extract_headers(source)
                if any(id(n) in keep and getattr(n, "name", None) == h.name for n in tree.body)]

    assert not check_extract_headers(top_only)
    assert not check_extract_headers(lambda s: [(h.header, h.body[:h.body.rstrip("\n").rfind("\n") + 1])
                                                for h in extract_headers(s)])
    out = capsys.readouterr().out
    assert "top-level" in out and "one line early" in out


def test_close_checker_names_mistakes(capsys):
    def keep_dedent(header, completion):
        ind = len(header) - len(header.lstrip(" "))
        kept = []
        for line in completion.splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            kept.append(line)
            if line.strip() and len(line) - len(line.lstrip(" ")) <= ind:
                break
        return header + "".join(kept)

    assert not check_close_function(keep_dedent)
    assert not check_close_function(lambda h, c: h + c)
    assert not check_close_function(lambda h, c: None)
    out = capsys.readouterr().out
    assert "belongs to the code after" in out and "forget `return`" in out


def test_wilson_checker_names_mistakes(capsys):
    def wald(k, n, z=1.96):
        p = k / n
        return p - z * math.sqrt(p * (1 - p) / n), p + z * math.sqrt(p * (1 - p) / n)

    assert not check_wilson_interval(wald)
    assert not check_wilson_interval(lambda k, n, z=1.96: wilson_interval(k, n))

    def not_implemented(k, n, z=1.96):
        raise NotImplementedError

    assert not check_wilson_interval(not_implemented)
    out = capsys.readouterr().out
    assert "Wald" in out and "fixed at 1.96" in out and "not implemented yet" in out
