"""Instruction fine-tuning: question → answer pairs, a prompt template, loss masking, exact-match evaluation.

The course's character-level GPT knows only Shakespeare. To make it answer questions we fine-tune it on pairs
written in one template,

    Q: {question}
    A: {answer}$

where ``$`` (``END``) is the **end marker**: a character the pre-training text holds exactly once, which the
fine-tuned model learns to write when its answer is done, so decoding knows when to stop.

Two sources of pairs:

- ``chatterbot_pairs()``: the English part of the chatterbot-corpus package (BSD-3-Clause; YAML files
  shipped inside the wheel, read with ``yaml.safe_load`` through ``importlib.util.find_spec``, without importing
  the package). Each conversation is a list of turns; each turn is taken as the answer to the turn before it.
- ``generated_tasks()``: questions with exactly one right answer, made by rule, so a model can be scored by
  exact match with no judge: small sums (``what is 3 plus 4?`` → ``7``), reversing a word
  (``reverse the word love`` → ``evol``), copying a field from a record (``name: Ann; city: Rome. city?`` →
  ``Rome``). The held-out split holds sums, words and records that the training split never contains, and
  records whose asked value no training record holds.

Shapes: ``B`` batch, ``T`` sequence length. A training example is ``(ids, targets)`` of equal length, as the
course's ``GPT.forward`` takes them: ``targets[t]`` is the token after ``ids[t]``, and ``IGNORE = -100`` marks a
position whose prediction is not trained (the prompt, when masked; padding, always).
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import random
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from .generate import generate
from .model import GPT

__all__ = [
    "END",
    "IGNORE",
    "TASKS",
    "TEST_TASKS",
    "NEW_VALUE",
    "Pair",
    "chatterbot_root",
    "chatterbot_license",
    "chatterbot_pairs",
    "to_vocab",
    "fit_to_vocab",
    "split_of",
    "generated_tasks",
    "format_prompt",
    "format_example",
    "mask_targets",
    "build_example",
    "pad_batch",
    "FinetuneConfig",
    "finetune",
    "answer_questions",
    "normalize_answer",
    "exact_match",
    "char_similarity",
    "error_kind",
    "token_losses",
]

END = "$"  # the end-of-answer marker: once in 4.5 million characters of Shakespeare, never in a question
IGNORE = -100  # the target that F.cross_entropy(ignore_index=-100), and the course's GPT, skip
TASKS = ("sum", "reverse", "field")  # the generated tasks trained on
NEW_VALUE = "field, new value"
TEST_TASKS = TASKS + (NEW_VALUE,)  # held out: the same tasks on unseen questions, and fields with unseen values


@dataclass(frozen=True)
class Pair:
    """One question and its answer; ``source`` is the task's name or the chatterbot category."""

    question: str
    answer: str
    source: str


# ---------------------------------------------------------------------------------------------------------
# chatterbot-corpus, read from the installed wheel

def chatterbot_root(language: str = "english") -> Path:
    """The folder of chatterbot-corpus's YAML files for ``language`` (found without importing the package)."""
    if not isinstance(language, str) or not re.fullmatch(r"[a-z]+", language):
        raise ValueError(f"language must be a lowercase name such as 'english', got {language!r}")
    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("chatterbot-corpus is not installed: pip install chatterbot-corpus "
                                  "(it is in requirements.txt)")
    root = Path(spec.origin).parent / "data" / language
    if not root.is_dir():
        have = sorted(p.name for p in (Path(spec.origin).parent / "data").iterdir() if p.is_dir())
        raise ValueError(f"chatterbot-corpus has no language {language!r}; it has {have}")
    return root


def chatterbot_license() -> dict[str, str]:
    """What the installed wheel says about itself: name, version, the licence classifier, the repository."""
    from importlib.metadata import metadata

    md = metadata("chatterbot-corpus")
    lic = [c for c in md.get_all("Classifier") or [] if c.startswith("License")]
    urls = md.get_all("Project-URL") or []
    repo = next((u.split(",", 1)[1].strip() for u in urls if u.lower().startswith("repository")), "")
    return {"name": md["Name"], "version": md["Version"], "license": "; ".join(lic) or md.get("License", ""),
            "repository": repo}


def chatterbot_pairs(language: str = "english") -> list[Pair]:
    """Every (turn, next turn) of every conversation in chatterbot-corpus's ``language`` files, in file order.

    ``source`` is the file's first category (``"trivia"``, ``"tech support"``, ...). Text is returned as the
    corpus has it (numbers that YAML reads as numbers become strings again); ``to_vocab`` maps it to a model's
    characters.
    """
    import yaml

    pairs = []
    for path in sorted(chatterbot_root(language).glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or "conversations" not in doc:
            raise ValueError(f"{path.name}: expected a mapping with 'categories' and 'conversations'")
        category = str((doc.get("categories") or [path.stem])[0])
        for conv in doc["conversations"]:
            turns = [str(t) for t in conv]
            pairs += [Pair(q, a, category) for q, a in zip(turns[:-1], turns[1:], strict=True)]
    return pairs


# Typographic characters with an ASCII twin the model knows; anything else outside the vocabulary is unknown.
_TYPOGRAPHIC = {"\u2019": "'", "\u2018": "'", "`": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                "\u2014": "-", "\u2026": "...", "\u00a0": " "}


def to_vocab(text: str, chars: Iterable[str]) -> tuple[str | None, int]:
    """Write ``text`` in the characters ``chars``: whitespace runs (newlines included) become one space,
    typographic quotes, dashes, ellipses and back-ticks their ASCII twins. Returns ``(text, n_mapped)``, or
    ``(None, n_mapped)`` when a character is left that ``chars`` lacks (brackets, ``=``, ``+``, ``_``...)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    vocab = set(chars)
    n = sum(text.count(k) for k in _TYPOGRAPHIC)
    for k, v in _TYPOGRAPHIC.items():
        text = text.replace(k, v)
    text = " ".join(text.split())
    if any(c not in vocab for c in text):
        return None, n
    return text, n


def fit_to_vocab(pairs: Sequence[Pair], chars: Iterable[str], max_len: int = 120) -> tuple[list[Pair], dict]:
    """The pairs a character model can be trained on: mapped with ``to_vocab``, kept when both sides are left
    non-empty with no unknown character and no end marker, and the whole template fits in ``max_len``
    characters; a pair already kept (same question, same answer) is not kept twice. Returns ``(kept, report)``;
    ``report`` counts what happened (``"mapped_chars"``, the characters replaced by an ASCII twin;
    ``"unknown"``, the pairs dropped for a character the model lacks, with ``"unknown_chars"`` the commonest of
    them; ``"empty"``, ``"end_marker"``, ``"too_long"``, ``"duplicate"``; ``"kept"``)."""
    from collections import Counter

    chars = list(chars)
    vocab = set(chars)
    report = {"pairs": len(pairs), "mapped_chars": 0, "unknown": 0, "empty": 0, "end_marker": 0, "too_long": 0,
              "duplicate": 0}
    unknown: Counter[str] = Counter()
    kept, seen = [], set()
    for p in pairs:
        q, nq = to_vocab(p.question, chars)
        a, na = to_vocab(p.answer, chars)
        report["mapped_chars"] += nq + na
        if q is None or a is None:
            report["unknown"] += 1
            unknown.update(c for c in " ".join((p.question + " " + p.answer).split()) if c not in vocab
                           and c not in _TYPOGRAPHIC)
        elif not q or not a:
            report["empty"] += 1
        elif END in q or END in a:
            report["end_marker"] += 1
        elif len(format_example(q, a)[1]) > max_len:
            report["too_long"] += 1
        elif (q, a) in seen:
            report["duplicate"] += 1
        else:
            seen.add((q, a))
            kept.append(Pair(q, a, p.source))
    report["kept"] = len(kept)
    report["unknown_chars"] = "".join(c for c, _ in unknown.most_common(12))
    return kept, report


def split_of(text: str, test_share: float = 0.1) -> str:
    """``"test"`` for a fixed share of texts, ``"train"`` for the rest, decided by a hash of the text (CRC-32):
    the same on every machine and Python, and the same text always lands on the same side."""
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be between 0 and 1, got {test_share!r}")
    return "test" if zlib.crc32(text.encode("utf-8")) % 1000 < test_share * 1000 else "train"


# ---------------------------------------------------------------------------------------------------------
# generated tasks with one right answer

# The 200 most frequent lowercase words of 3 to 5 letters in the course's training plays.
WORDS = tuple("""the and you that not with your his for this have him thou will her but thy all shall thee are
our what good from lord more now would she was they them man their love sir here well hath like know come
there one then say let make than may upon which were must did see had such out when king too yet these how can
give take mine speak some time think most heart much tell never day men life tis death night hear great art
hand any made doth where own very again true been fair away done look other world son eyes name sweet blood
fear call leave who pray thus ever nor grace comes old down poor two could noble way being into lady hast many
both dead head wife bear word every thing find those live die still gone first stand soul queen house place
long might keep off part put best none till thine woman set words bring show whose face peace unto young eye
dear else full said why hold stay once whom about hope lords forth mind has fool power boy heard after even
sword news hence home rest back three cause""".split())
NAMES = tuple("""Ann Bob Cara Dan Eve Finn Gus Hana Ivan Jo Kim Leo Mia Ned Olga Pia Raj Sam Tom Uma Vic Wes Yan
Zoe Ada Ben Cal Dina Ella Fay Gil Hugo Ida Jack Kai Lou Max Nia Otto Rosa""".split())
CITIES = tuple("""Rome Paris Oslo Lima Cairo Delhi Tokyo Quito Dakar Milan Lyon Bern Kyiv Riga Accra Seoul Perth
Hanoi Dubai Porto Nice Bonn Basel Turin Pisa Genoa Cork York Leeds Bath Derby Ghent Miami Dallas Boston Austin
Denver Bruges Malta Tunis""".split())
COLOURS = tuple("red blue green black white pink grey brown gold teal amber violet".split())


def _held_out(values: Sequence[str]) -> set[str]:
    return {v for i, v in enumerate(values) if i % 5 == 4}  # every fifth name, city, word: test only


def _sum_split(a: int, b: int) -> str:
    return "test" if (3 * a + 7 * b) % 5 == 1 else "train"  # 20 of the 100 pairs of digits, spread evenly


def _record(rng: random.Random, names: Sequence[str], cities: Sequence[str], ask: Sequence[str]) -> Pair:
    record = {"name": rng.choice(names), "city": rng.choice(cities), "colour": rng.choice(COLOURS)}
    keys = list(record)
    rng.shuffle(keys)
    keys = keys[:rng.choice((2, 3))]
    if not set(ask) & set(keys):
        keys[0] = rng.choice(list(ask))
    asked = rng.choice([k for k in keys if k in ask])
    text = "; ".join(f"{k}: {record[k]}" for k in keys)
    return Pair(f"{text}. {asked}?", record[asked], "field")


def _make_task(task: str, rng: random.Random, split: str) -> Pair:
    if task == "sum":
        while True:
            a, b = rng.randrange(10), rng.randrange(10)
            if _sum_split(a, b) == split:
                return Pair(f"what is {a} plus {b}?", str(a + b), task)
    if task == "reverse":
        held = _held_out(WORDS)
        w = rng.choice([w for w in WORDS if (w in held) == (split == "test")])
        return Pair(f"reverse the word {w}", w[::-1], task)
    seen_names = [n for n in NAMES if n not in _held_out(NAMES)]
    seen_cities = [c for c in CITIES if c not in _held_out(CITIES)]
    if task == "field":  # records split by a hash of their text: a test record never occurs in training
        while True:
            p = _record(rng, seen_names, seen_cities, ("name", "city", "colour"))
            if split_of(p.question, 0.2) == split:
                return p
    if task == NEW_VALUE:  # test only: the asked name or city is one that no training record holds
        p = _record(rng, sorted(_held_out(NAMES)), sorted(_held_out(CITIES)), ("name", "city"))
        return Pair(p.question, p.answer, NEW_VALUE)
    raise ValueError(f"task must be one of {TEST_TASKS}, got {task!r}")


def generated_tasks(n_per_task: int, split: str = "train", seed: int = 0,
                    tasks: Sequence[str] | None = None) -> list[Pair]:
    """``n_per_task`` questions of each task, interleaved, drawn from ``random.Random(f"{split}-{seed}")``.

    ``split="train"`` has ``TASKS``; ``split="test"`` (default tasks ``TEST_TASKS``) draws only questions the
    training split never holds:

    - ``"sum"``: the 20 sums of two digits ``a + b`` with ``(3a + 7b) mod 5 = 1`` (training has the other 80);
    - ``"reverse"``: every fifth word of ``WORDS`` (training reverses the other 160);
    - ``"field"``: records whose text falls on the test side of ``split_of(text, 0.2)``, made of names, cities
      and colours that training records also use;
    - ``"field, new value"``: records whose asked name or city is one of every fifth of ``NAMES`` / ``CITIES``,
      values no training record holds (a test of copying, not of recall).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(n_per_task, bool) or not isinstance(n_per_task, int) or n_per_task < 1:
        raise ValueError(f"n_per_task must be a positive int, got {n_per_task!r}")
    allowed = TASKS if split == "train" else TEST_TASKS
    tasks = allowed if tasks is None else tuple(tasks)
    bad = [t for t in tasks if t not in allowed]
    if bad or not tasks:
        raise ValueError(f"tasks for split {split!r} must be a non-empty selection of {allowed}, got {list(tasks)}")
    rng = random.Random(f"{split}-{seed}")
    return [_make_task(t, rng, split) for _ in range(n_per_task) for t in tasks]


# ---------------------------------------------------------------------------------------------------------
# the template, loss masking, padding

def format_prompt(question: str) -> str:
    """``"Q: {question}\\nA: "``: everything the model is given before it answers."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be a non-empty str, got {question!r}")
    if "\n" in question or END in question:
        raise ValueError(f"question must be one line without the end marker {END!r}, got {question!r}")
    return f"Q: {question.strip()}\nA: "


def format_example(question: str, answer: str) -> tuple[str, str]:
    """``(prompt, prompt + answer + END)``: the text the model is given, and the whole training text."""
    if not isinstance(answer, str) or not answer.strip() or "\n" in answer or END in answer:
        raise ValueError(f"answer must be a non-empty line without the end marker {END!r}, got {answer!r}")
    prompt = format_prompt(question)
    return prompt, prompt + answer.strip() + END


def mask_targets(ids: Sequence[int] | torch.Tensor, prompt_len: int) -> tuple[list[int], list[int]]:
    """Inputs and targets for one sequence of ``ids`` (prompt then answer), with the prompt's targets masked.

    ``inputs = ids[:-1]``, ``targets = ids[1:]``, and ``targets[t] = IGNORE`` for ``t < prompt_len - 1``: those
    positions would predict a prompt token. ``targets[prompt_len - 1]`` stays: the last prompt position
    predicts the **first answer token**.
    """
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    if isinstance(prompt_len, bool) or not isinstance(prompt_len, int) or not 1 <= prompt_len < len(ids):
        raise ValueError(f"prompt_len must be an int in [1, {len(ids) - 1}] (at least one answer token), "
                         f"got {prompt_len!r} for {len(ids)} ids")
    targets = ids[1:]
    targets[:prompt_len - 1] = [IGNORE] * (prompt_len - 1)
    return ids[:-1], targets


def build_example(question: str, answer: str, tok, mask_prompt: bool = True) -> tuple[list[int], list[int]]:
    """``(ids, targets)`` for one pair in the template; with ``mask_prompt`` the prompt's targets are ``IGNORE``,
    without it the model is also trained to predict the prompt (the question and the template)."""
    prompt, full = format_example(question, answer)
    ids = tok.encode(full)
    if mask_prompt:
        return mask_targets(ids, len(tok.encode(prompt)))
    return ids[:-1], ids[1:]


def pad_batch(examples: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int,
              max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``(ids, targets)`` examples to the longest (``[B, T]`` int64 each): ids with ``pad_id``,
    targets with ``IGNORE``, so padding is neither attended to by the real tokens (they come first, and attention
    is causal) nor trained. ``max_len`` cuts longer examples (keeping their start)."""
    if not examples:
        raise ValueError("examples is empty: nothing to pad")
    for k, (ids, tg) in enumerate(examples):
        if len(ids) != len(tg) or not len(ids):
            raise ValueError(f"example {k}: ids and targets must be non-empty and of equal length, "
                             f"got {len(ids)} and {len(tg)}")
    T = max(len(ids) for ids, _ in examples)
    if max_len is not None:
        T = min(T, max_len)
    x = torch.full((len(examples), T), pad_id, dtype=torch.long)
    y = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for b, (ids, tg) in enumerate(examples):
        n = min(len(ids), T)
        x[b, :n] = torch.as_tensor(list(ids[:n]), dtype=torch.long)
        y[b, :n] = torch.as_tensor(list(tg[:n]), dtype=torch.long)
    return x, y


# ---------------------------------------------------------------------------------------------------------
# fine-tuning

@dataclass
class FinetuneConfig:
    """A short fine-tuning run: AdamW, linear warm-up then cosine decay to a tenth, gradient clipping."""

    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-4
    warmup: int = 20
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    mask_prompt: bool = True
    seed: int = 0
    max_len: int = 160
    buckets: int = 8  # length buckets: each batch is drawn from one, so little is spent on padding (1: none)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_len", "buckets"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / (self.warmup + 1)
        ratio = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * min(1.0, ratio))))


def finetune(model: GPT, tok, pairs: Sequence[Pair], cfg: FinetuneConfig, progress: bool = True,
             desc: str = "fine-tuning", log_every: int = 10) -> list[dict]:
    """Train ``model`` in place on ``pairs`` in the template (only the parameters that require a gradient:
    everything, or the LoRA adapters after ``apply_lora``); returns the history ``[{"step", "loss", "lr"}]``.

    Each step draws ``batch_size`` pairs from a generator seeded with ``cfg.seed`` (the same pairs, in the same
    order, for two runs that differ only in ``mask_prompt``), right-padded with ``pad_batch``. The pairs,
    sorted by length, are cut into ``cfg.buckets`` groups of equal size; a step draws a group, then its batch
    from that group, so a batch of short sums is not padded to the length of a long chatterbot answer.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    if not pairs:
        raise ValueError("pairs is empty: nothing to fine-tune on")
    examples = [build_example(p.question, p.answer, tok, cfg.mask_prompt) for p in pairs]
    pad_id = tok.encode(END)[0]
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameter (everything has requires_grad=False)")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(cfg.seed)
    by_length = sorted(range(len(examples)), key=lambda i: (len(examples[i][0]), i))
    groups = [by_length[k * len(by_length) // cfg.buckets:(k + 1) * len(by_length) // cfg.buckets]
              for k in range(cfg.buckets)]
    groups = [grp for grp in groups if grp]
    device = next(model.parameters()).device
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc=desc, dynamic_ncols=True)
    history, running = [], None
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        grp = groups[int(torch.randint(len(groups), (1,), generator=g))]
        pick = [grp[i] for i in torch.randint(len(grp), (cfg.batch_size,), generator=g).tolist()]
        x, y = pad_batch([examples[i] for i in pick], pad_id, cfg.max_len)
        loss = model(x.to(device), y.to(device)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
        if step % log_every == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": loss.item(), "lr": lr})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    return history


# ---------------------------------------------------------------------------------------------------------
# evaluation

def answer_questions(model: GPT, tok, questions: Sequence[str], max_new_tokens: int = 24,
                     batch_size: int = 64) -> list[tuple[str, bool]]:
    """Greedy answers, one per question: ``(answer, ended)``, the text written before the end marker and
    whether the marker came within ``max_new_tokens`` (if not, the answer is all that was written).

    Prompts of the same length are decoded together (``helpers.generate.generate`` with ``temperature=0``, KV
    cache on), so no padding is needed and each answer is what the model writes for its prompt alone.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    prompts = [tok.encode(format_prompt(q)) for q in questions]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[tuple[str, bool] | None] = [None] * len(prompts)
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    for L, idxs in sorted(by_len.items()):
        for k in range(0, len(idxs), batch_size):
            chunk = idxs[k:k + batch_size]
            x = torch.tensor([prompts[i] for i in chunk], dtype=torch.long, device=device)
            y = generate(model, x, max_new_tokens, temperature=0.0)
            for i, row in zip(chunk, y[:, L:].tolist(), strict=True):
                text = tok.decode(row)
                out[i] = (text.split(END)[0], END in text)
    model.train(was_training)
    return out  # type: ignore[return-value]


def normalize_answer(text: str) -> str:
    """Case-folded, surrounding whitespace removed, inner runs of whitespace as one space, a final ``.`` or
    ``!`` dropped: ``" Rome. "`` and ``"rome"`` are the same answer, ``"17"`` and ``"7"`` are not."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    text = " ".join(text.split()).casefold()
    return text[:-1].rstrip() if text.endswith((".", "!")) else text


def exact_match(prediction: str, answer: str) -> bool:
    """True when the two answers are equal after ``normalize_answer``."""
    return normalize_answer(prediction) == normalize_answer(answer)


def char_similarity(a: str, b: str) -> float:
    """How alike two answers are, character by character, in [0, 1]: ``difflib.SequenceMatcher``'s ratio
    ``2 M / (len(a) + len(b))`` (``M`` matched characters) after ``normalize_answer``."""
    a, b = normalize_answer(a), normalize_answer(b)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def error_kind(pair: Pair, prediction: str) -> str:
    """What kind of answer ``prediction`` is to a generated task: ``"right"``, or the kind of mistake.

    sums: ``"off by 1"``, ``"off by 2 or more"``, ``"not a number"``; reversals: ``"a training answer"`` (the
    reversal of another word of ``WORDS``), ``"the word itself"``, ``"wrong length"``, ``"wrong letters"``; fields:
    ``"another field's value"`` (a value of the same record), ``"a value seen in training"`` (a name, city or
    colour of the lists that is not in the record), ``"a partial copy"`` (character similarity ≥ 0.5),
    ``"other"``.
    """
    if not isinstance(pair, Pair):
        raise TypeError(f"pair must be a Pair, got {type(pair).__name__}")
    if pair.source not in TEST_TASKS:
        raise ValueError(f"error_kind knows the generated tasks {TEST_TASKS}, got a pair from {pair.source!r}")
    if exact_match(prediction, pair.answer):
        return "right"
    p = normalize_answer(prediction)
    if pair.source == "sum":
        if not p.isdigit():
            return "not a number"
        return "off by 1" if abs(int(p) - int(pair.answer)) == 1 else "off by 2 or more"
    if pair.source == "reverse":
        word = pair.question.rsplit(" ", 1)[1]
        if p == word:
            return "the word itself"
        if p[::-1] in WORDS:
            return "a training answer"
        return "wrong length" if len(p) != len(word) else "wrong letters"
    record = dict(kv.split(": ", 1) for kv in pair.question.rsplit(". ", 1)[0].split("; "))
    if p in {normalize_answer(v) for v in record.values()}:
        return "another field's value"
    if p in {normalize_answer(v) for v in NAMES + CITIES + COLOURS}:
        return "a value seen in training"
    return "a partial copy" if char_similarity(p, pair.answer) >= 0.5 else "other"


@torch.no_grad()
def token_losses(model: GPT, tok, pairs: Sequence[Pair], batch_size: int = 64) -> dict[str, float]:
    """Mean loss (nats per token) on the **answer** tokens (the end marker included) and on the **prompt**
    tokens after the first, for pairs in the template: what each fine-tuning taught the model to predict."""
    sums = {"answer": 0.0, "prompt": 0.0}
    counts = {"answer": 0, "prompt": 0}
    pad_id = tok.encode(END)[0]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    for k in range(0, len(pairs), batch_size):
        chunk = pairs[k:k + batch_size]
        full = [build_example(p.question, p.answer, tok, mask_prompt=False) for p in chunk]
        plen = [len(tok.encode(format_prompt(p.question))) for p in chunk]
        x, y = pad_batch(full, pad_id)
        logits = model(x.to(device)).logits.float()
        nll = F.cross_entropy(logits.transpose(1, 2), y.to(device), ignore_index=IGNORE, reduction="none")
        pos = torch.arange(x.shape[1])[None, :]
        is_answer = (pos >= torch.tensor(plen)[:, None] - 1) & (y != IGNORE)
        is_prompt = (pos < torch.tensor(plen)[:, None] - 1) & (y != IGNORE)
        for name, m in (("answer", is_answer), ("prompt", is_prompt)):
            sums[name] += nll[m.to(device)].sum().item()
            counts[name] += int(m.sum())
    model.train(was_training)
    return {k: sums[k] / max(1, counts[k]) for k in sums}
