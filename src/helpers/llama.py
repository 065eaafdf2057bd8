"""GPT-2 against Llama's four changes, on equal footing: the same data, budget, seeds and parameter count.

The variants (``VARIANTS``) each change GPT-2 in one way, and the last in all four: RMSNorm for LayerNorm, rotary
positions (RoPE) for the learned position table, the SwiGLU MLP for GELU's, grouped-query attention (two query
heads per key/value head). Every variant gets ``mlp_hidden`` chosen so that its parameter count equals GPT-2's
(within 1%): RoPE has no position table and GQA has smaller key/value projections, and the MLP takes up what
they free. Biases and the tied head stay as GPT-2's, so that the four changes alone are compared.

    python -m helpers.llama --out src/helpers/llama_head_to_head.json   # the committed run (RESULTS)
    python -m helpers.llama --out /tmp/h2h.json --max-iters 40 --seeds 0 --variants GPT-2 Llama

writes one row per variant and seed: parameters, held-out bits per character (the validation plays), the
training curve, and tokens per second of a training step on this CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch

from .model import GPT, GPTConfig

__all__ = ["VARIANTS", "BASE", "variant_config", "matched_hidden", "run_variant", "head_to_head", "summarise",
           "kv_cache_bytes", "heldout_bpc",
           "load_results", "RESULTS"]

VARIANTS: dict[str, dict] = {
    "GPT-2": {},
    "+ RMSNorm": {"norm": "rmsnorm"},
    "+ RoPE": {"pos": "rope"},
    "+ SwiGLU": {"mlp": "swiglu"},
    "+ GQA": {"n_kv_head": 2},
    "Llama": {"norm": "rmsnorm", "pos": "rope", "mlp": "swiglu", "n_kv_head": 2},
}

# The budget: a 0.47M-parameter character model (4 layers, width 96, 4 heads of 24), 600 steps of 16 x 128
# characters (1.2M characters, under two passes over the training plays): about 1.5 minutes a run on one thread.
BASE = dict(n_layer=4, n_head=4, n_embd=96, block_size=128, batch_size=16, max_iters=600, lr=2e-3, min_lr=2e-4,
            warmup_iters=60, weight_decay=0.1, dropout=0.0, eval_interval=150, eval_iters=20, sample_chars=0,
            device="cpu")
RESULTS = Path(__file__).with_name("llama_head_to_head.json")  # the committed run, shipped with the package
HELDOUT_WINDOWS = 256  # the final score: the first 256 x 128 characters of the validation plays, the same for all


def load_results(path: str | Path = RESULTS) -> dict:
    """The head-to-head run saved by the command line (default: the committed one, ``RESULTS``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no head-to-head results at {path}: run python -m helpers.llama --out {path}")
    result = json.loads(path.read_text(encoding="utf-8"))
    missing = {"rows", "summary", "base", "command"} - set(result)
    if missing:
        raise ValueError(f"{path} is not a head-to-head result: it lacks {sorted(missing)}")
    return result


def _params(config: GPTConfig) -> int:
    with torch.device("meta"):
        return GPT(config).num_parameters()


def matched_hidden(config: GPTConfig, target: int) -> int:
    """The MLP width that brings ``config``'s parameter count closest to ``target``."""
    per_unit = _params(dataclasses.replace(config, mlp_hidden=config.hidden + 1)) - _params(config)
    return max(1, config.hidden + round((target - _params(config)) / per_unit))


def variant_config(name: str, vocab_size: int, **base) -> GPTConfig:
    """``GPTConfig`` of variant ``name`` with GPT-2's parameter count (``base``: ``BASE``'s model fields)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {list(VARIANTS)}")
    fields = {k: v for k, v in {**BASE, **base}.items() if k in {f.name for f in dataclasses.fields(GPTConfig)}}
    gpt2 = GPTConfig(vocab_size=vocab_size, **fields)
    config = GPTConfig(vocab_size=vocab_size, **{**fields, **VARIANTS[name]})
    if name != "GPT-2":
        config = dataclasses.replace(config, mlp_hidden=matched_hidden(config, _params(gpt2)))
    return config


def kv_cache_bytes(n_layer: int, n_kv_head: int, head_dim: int, tokens: int = 1, bytes_per_value: int = 2) -> int:
    """Bytes the KV cache holds for ``tokens`` positions: K and V, every layer, every key/value head
    (``bytes_per_value`` 2 for bfloat16). Llama-3-8B: ``kv_cache_bytes(32, 8, 128)`` = 131,072 per token."""
    for name, v in dict(n_layer=n_layer, n_kv_head=n_kv_head, head_dim=head_dim, tokens=tokens,
                        bytes_per_value=bytes_per_value).items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return 2 * n_layer * n_kv_head * head_dim * tokens * bytes_per_value


def _throughput(model: GPT, cfg, steps: int = 8) -> float:
    """Training tokens per second of one forward + backward + AdamW step at the run's batch shape."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, model.config.vocab_size, (cfg.batch_size, cfg.block_size))
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss = model(x, targets=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return cfg.batch_size * cfg.block_size / sorted(times)[len(times) // 2]


@torch.no_grad()
def heldout_bpc(model: GPT, tok, text: str, windows: int = HELDOUT_WINDOWS) -> float:
    """Bits per character on the first ``windows`` non-overlapping windows of ``text`` (each predicts its
    ``block_size`` next characters): the same characters for every model, so variants differ by the model only."""
    T = model.config.block_size
    ids = torch.tensor(tok.encode(text[: windows * T + 1]), dtype=torch.long)
    if len(ids) < windows * T + 1:
        raise ValueError(f"text too short for {windows} windows of {T}: {len(ids)} tokens")
    x = ids[: windows * T].view(windows, T)
    y = ids[1: windows * T + 1].view(windows, T)
    model.eval()
    total = sum(model(x[i:i + 32], targets=y[i:i + 32]).loss.item() * len(x[i:i + 32]) for i in range(0, windows, 32))
    return total / windows / math.log(2)


def run_variant(name: str, seed: int, train_text: str | None = None, val_text: str | None = None, **overrides) -> dict:
    """Train variant ``name`` with ``seed`` on the course's split (or the texts given); return its row."""
    from .train import TrainConfig, build_tokenizer, train

    settings = {**BASE, **overrides, "seed": seed}
    tcfg = TrainConfig(**{k: v for k, v in settings.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}})
    tok = build_tokenizer(tcfg, train_text or "")
    mcfg = variant_config(name, tok.vocab_size, **settings)
    tcfg = dataclasses.replace(tcfg, **{k: getattr(mcfg, k) for k in
                                        ("norm", "pos", "mlp", "n_kv_head", "mlp_hidden", "rope_theta", "bias",
                                         "tie_embeddings")})
    t0 = time.perf_counter()
    model, tok, state = train(tcfg, train_text=train_text, val_text=val_text, progress=False, log=lambda s: None)
    seconds = time.perf_counter() - t0
    last = state.history[-1]
    if val_text is None:
        from .data import shakespeare

        val_text = shakespeare("val")
    return {"variant": name, "seed": seed, "params": model.num_parameters(), "mlp_hidden": mcfg.hidden,
            "val_bpc": heldout_bpc(model, tok, val_text), "train_bpc": last["train_loss"] / math.log(2),
            "curve": [(h["step"], h["val_loss"] / math.log(2)) for h in state.history],
            "tokens_per_s": _throughput(model, tcfg), "train_seconds": seconds, "steps": tcfg.max_iters}


def head_to_head(variants=None, seeds=(0, 1, 2), progress: bool = True, **overrides) -> list[dict]:
    """Every variant with every seed (``run_variant``), in a fixed order; a progress bar over the runs."""
    from tqdm.auto import tqdm

    names = list(VARIANTS) if variants is None else list(variants)
    for n in names:
        if n not in VARIANTS:
            raise ValueError(f"unknown variant {n!r}; choose from {list(VARIANTS)}")
    seeds = list(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    runs = [(n, s) for n in names for s in seeds]
    rows = []
    for n, s in tqdm(runs, desc="runs", disable=not progress):
        rows.append(run_variant(n, s, **overrides))
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per variant: mean held-out bits per character, its spread (min, max and standard deviation over seeds),
    parameters, median tokens per second; in ``VARIANTS`` order."""
    out = []
    for name in [v for v in VARIANTS if any(r["variant"] == v for r in rows)]:
        rs = [r for r in rows if r["variant"] == name]
        bpc = torch.tensor([r["val_bpc"] for r in rs], dtype=torch.float64)
        speed = sorted(r["tokens_per_s"] for r in rs)
        out.append({"variant": name, "seeds": len(rs), "params": rs[0]["params"], "val_bpc": bpc.mean().item(),
                    "std": bpc.std().item() if len(rs) > 1 else 0.0, "min": bpc.min().item(),
                    "max": bpc.max().item(), "tokens_per_s": speed[len(speed) // 2]})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m helpers.llama", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="JSON file for the rows and the summary")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help="e.g. GPT-2 Llama")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-iters", type=int, default=BASE["max_iters"])
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    rows = head_to_head([v.replace("_", " ") for v in a.variants], a.seeds, max_iters=a.max_iters)
    result = {"command": "python -m helpers.llama " + " ".join(argv if argv is not None else sys.argv[1:]),
              "base": {**BASE, "max_iters": a.max_iters}, "threads": a.threads, "torch": torch.__version__,
              "seconds": round(time.time() - t0), "summary": summarise(rows), "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for s in result["summary"]:
        print(f"{s['variant']:>10}: {s['params']:,} params, {s['val_bpc']:.3f} ± {s['std']:.3f} bits/char "
              f"({s['seeds']} seeds), {s['tokens_per_s']:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
