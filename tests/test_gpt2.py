"""helpers.gpt2.load: a local folder loads as itself; no hub means one line and the course's model instead.

The hub is never contacted: offline tests set HF_HUB_OFFLINE, and the no-network tests point HF_ENDPOINT at
127.0.0.1 (a closed port, and a socket that accepts connections and never answers, as a firewall that drops
packets would).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from helpers import gpt2
from helpers.model import GPT
from helpers.tokenizer import CharTokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny random GPT-2 and a character tokenizer, saved as a Hugging Face folder."""
    path = tmp_path_factory.mktemp("tiny-gpt2")
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz ,.!?\n")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=32, n_embd=16, n_layer=2, n_head=2)
    hf = GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(path)
    tok.save_pretrained(path)
    return path, hf


def test_local_folder_is_loaded_not_a_fallback(tiny_dir, monkeypatch, capsys):
    path, ref = tiny_dir
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a folder needs no hub
    model, tok, info = gpt2.load(path, fallback=None)
    assert info == gpt2.GPT2Info(name=str(path), is_fallback=False, reason=None)
    assert capsys.readouterr().out == ""
    ids = torch.tensor([tok.encode("hello world")])
    torch.testing.assert_close(model(ids).logits, ref(ids).logits, rtol=1e-6, atol=1e-6)
    assert tok.decode(ids[0]) == "hello world"
    # and it goes into our own GPT with the same numbers
    torch.testing.assert_close(GPT.from_hf(model).eval()(ids).logits, ref(ids).logits, rtol=1e-5, atol=1e-5)


def test_offline_falls_back_with_one_line(tiny_dir, monkeypatch, capsys):
    path, _ = tiny_dir
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok, info = gpt2.load("gpt2", fallback=path)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "HF_HUB_OFFLINE" in out and "course's own model" in out
    assert info.is_fallback and info.name == str(path) and "HF_HUB_OFFLINE" in info.reason
    assert model.config.n_layer == 2 and tok.decode(tok.encode("abc")) == "abc"


def test_connection_error_falls_back(tiny_dir, monkeypatch, capsys):
    path, _ = tiny_dir
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    real = gpt2._load_pair

    def no_network(name):
        if name == "gpt2":
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")
        return real(name)

    monkeypatch.setattr(gpt2, "_load_pair", no_network)
    monkeypatch.setattr(gpt2, "_check_hub", lambda name, timeout: (True, None, None))  # it answers, then fails
    _, _, info = gpt2.load("gpt2", fallback=path)
    assert info.is_fallback and "OSError" in info.reason and "download failed" in info.reason
    assert capsys.readouterr().out.count("\n") == 1


def test_default_fallback_is_the_course_checkpoint(monkeypatch):
    ckpt = gpt2.REPO_ROOT / gpt2.DEFAULT_FALLBACK
    if not (ckpt / "config.json").exists():
        pytest.skip("the course checkpoint has not been trained yet")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok, info = gpt2.load()
    assert info.is_fallback and info.name == gpt2.DEFAULT_FALLBACK
    assert model.config.model_type == "gpt2" and len(tok.encode("To be")) == 5


def test_bad_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TypeError, match="name"):
        gpt2.load(3)
    with pytest.raises(TypeError, match="fallback"):
        gpt2.load("gpt2", fallback=3)
    with pytest.raises(FileNotFoundError, match="holds no model"):
        gpt2.load("gpt2", fallback=tmp_path / "nothing")
    with pytest.raises(OSError, match="no fallback"):
        gpt2.load("gpt2", fallback=None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gpt2.load("./no/such/folder")


# --- no network and no HF_HUB_OFFLINE: the door must answer within 5 seconds, in one line ---------------------

# The timer starts after torch and transformers are imported, as in a notebook whose first cell imported them:
# what is timed is the decision (the hub's silence) and loading the fallback, not how fast this machine
# imports libraries (which, on a loaded 2-core machine, alone can take seconds).
LOAD_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import torch, transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from helpers import gpt2
    t = time.perf_counter()
    model, tok, info = gpt2.load("gpt2")
    elapsed = time.perf_counter() - t
    sys.stderr.write(json.dumps({"elapsed": elapsed, "fallback": info.is_fallback, "reason": info.reason,
                                 "n_layer": model.config.n_layer}))
""")


def _load_with_hub_at(endpoint: str, tmp_path) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"))  # an empty cache: gpt2 is not in it
    r = subprocess.run([sys.executable, "-c", LOAD_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stderr.strip().splitlines()[-1]), r.stdout


def _check_one_line_fast(result: dict, out: str) -> None:
    assert result["fallback"] and result["n_layer"] == 6  # the course's model, checkpoints/shakespeare-gpt
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{out}"
    assert "'gpt2' is not available" in lines[0] and "course's own model" in lines[0]
    assert "127.0.0.1" in lines[0]  # it names the hub it tried
    # Not a timing test (these machines are shared and noisy): a hang would take minutes, this bound catches it;
    # the callers check, without a clock, that the hub was asked once and given up on at HUB_TIMEOUT.
    assert result["elapsed"] <= 60.0, f"load() took {result['elapsed']:.1f} s to decide and load the fallback"


def test_no_network_closed_port_answers_at_once(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: connection refused
    result, out = _load_with_hub_at(f"http://127.0.0.1:{port}", tmp_path)
    _check_one_line_fast(result, out)


def test_no_network_silent_hub_is_asked_once_and_given_up_on_at_the_timeout(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept_and_never_reply():  # a firewall that drops packets: the connection opens, nothing comes back
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept_and_never_reply, daemon=True)
    t.start()
    try:
        result, out = _load_with_hub_at(f"http://127.0.0.1:{server.getsockname()[1]}", tmp_path)
    finally:
        stop.set()
        t.join(2)
        for c in accepted:
            c.close()
        server.close()
    assert len(accepted) == 1, f"the silent hub was asked {len(accepted)} times: expected one probe, then the fallback"
    _check_one_line_fast(result, out)
    # given up on at the timeout: the probe's own read timeout (HUB_TIMEOUT) or load()'s wait for it, whichever first
    reason = result["reason"]
    assert "ReadTimeout: timed out" in reason or f"no answer within {gpt2.HUB_TIMEOUT:g} s" in reason, reason


def test_hub_available_offline_and_bad_inputs(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ok, why = gpt2.hub_available("gpt2")
    assert not ok and "HF_HUB_OFFLINE" in why
    with pytest.raises(TypeError, match="hub id"):
        gpt2.hub_available("")
    with pytest.raises(ValueError, match="timeout"):
        gpt2.hub_available("gpt2", timeout=0)
