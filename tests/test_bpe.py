"""helpers.bpe: byte-level BPE trained by hand, checked against the `tokenizers` library (and GPT-2 online)."""

import json
import random
import time

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoTokenizer

from helpers.bpe import BPETokenizer, bytes_to_unicode, get_pair_counts, merge_pair, pretokenize
from helpers.data import shakespeare

UNICODE = "Hello, world! 你好，世界。Ça va? 🌍🚀 naïve café — 1234 + 5.6e7\n\n\t  tabs   and  spaces 😀👍🏽 ÿ\x00\x7f"


def random_unicode(n: int, seed: int) -> str:
    rng = random.Random(seed)
    ranges = [(0x20, 0x7E), (0x0A, 0x0A), (0xA0, 0x2FF), (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0x0300, 0x036F)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(ranges)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def library_bpe(text: str, vocab_size: int) -> Tokenizer:
    """The reference: the `tokenizers` library's BPE trainer with GPT-2's byte-level pre-tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False, min_frequency=0,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([text], trainer)
    return tok


def library_merges_and_vocab(tok: Tokenizer) -> tuple[list[tuple[str, str]], dict[str, int]]:
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return merges, model["vocab"]


@pytest.fixture(scope="module")
def shakespeare_bpe():
    return BPETokenizer.train(shakespeare("train")[:100_000], vocab_size=400)


def test_pair_counts_and_merge_by_hand():
    assert get_pair_counts([(1, 2, 3), (1, 2)]) == {(1, 2): 2, (2, 3): 1}
    assert get_pair_counts({(1, 1, 1): 5}) == {(1, 1): 10}  # overlapping pairs count each time
    assert merge_pair((1, 1, 1), (1, 1), 9) == (9, 1)  # left to right, no overlap
    assert merge_pair((1, 2, 3, 1, 2), (1, 2), 7) == (7, 3, 7)
    assert merge_pair((), (1, 2), 7) == ()
    with pytest.raises(ValueError, match="pair must be a tuple of two ids"):
        merge_pair((1, 2), [1, 2], 3)


def test_bytes_to_unicode_is_gpt2s_map():
    b2u = bytes_to_unicode()
    assert len(b2u) == 256 and len(set(b2u.values())) == 256
    assert b2u[ord(" ")] == "Ġ" and b2u[ord("\n")] == "Ċ" and b2u[ord("A")] == "A"
    assert sorted(b2u.values()) == sorted(pre_tokenizers.ByteLevel.alphabet())


@pytest.mark.parametrize("text", [UNICODE, random_unicode(3000, 1)])
def test_pretokenize_matches_bytelevel(text):
    pieces = pretokenize(text)
    assert "".join(pieces) == text
    b2u = bytes_to_unicode()
    ours = ["".join(b2u[b] for b in p.encode("utf-8")) for p in pieces]
    ref = [p for p, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]
    assert ours == ref


def test_pretokenize_matches_bytelevel_on_val():
    text = shakespeare("val")
    b2u = bytes_to_unicode()
    ours = ["".join(b2u[b] for b in p.encode("utf-8")) for p in pretokenize(text)]
    ref = [p for p, _ in pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)]
    assert ours == ref


@pytest.mark.parametrize(
    ("text", "vocab_size"),
    [
        ("aaabdaaabac " * 3, 260),  # the textbook example
        ("ab cd ab cd ef gh ef gh", 270),  # every pair ties: the order is decided by the tie-break alone
        (UNICODE * 5, 320),
        (random_unicode(2000, 2), 400),
    ],
)
def test_same_merges_as_tokenizers_library_small(text, vocab_size):
    ours = BPETokenizer.train(text, vocab_size)
    merges, vocab = library_merges_and_vocab(library_bpe(text, vocab_size))
    assert [(ours.token_str(a), ours.token_str(b)) for a, b in ours.merges] == merges
    assert {ours.token_str(i): i for i in range(ours.vocab_size)} == vocab


def test_same_merges_as_tokenizers_library_on_shakespeare(shakespeare_bpe):
    merges, vocab = library_merges_and_vocab(library_bpe(shakespeare("train")[:100_000], 400))
    ours = shakespeare_bpe
    assert ours.vocab_size == 400 and len(merges) == len(ours.merges)
    assert [(ours.token_str(a), ours.token_str(b)) for a, b in ours.merges] == merges
    assert {ours.token_str(i): i for i in range(ours.vocab_size)} == vocab
    assert ours.token_str(ours.merge_ids[0]) == "Ġt"  # " t" is the most frequent pair in English verse


def test_round_trip_exact_on_all_val_text(shakespeare_bpe):
    val = shakespeare("val")
    ids = shakespeare_bpe.encode(val)
    assert shakespeare_bpe.decode(ids) == val
    assert len(ids) < 0.7 * len(val)  # merges compress: fewer tokens than characters


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_exact_on_arbitrary_unicode(shakespeare_bpe, seed):
    for text in (UNICODE, random_unicode(2000, seed), "", " ", "\n\n\n", "中文字符", "👩‍👩‍👧‍👦"):
        assert shakespeare_bpe.decode(shakespeare_bpe.encode(text)) == text


def test_encode_matches_the_library_tokenizer_built_from_our_merges(shakespeare_bpe, tmp_path):
    text = shakespeare("val")[:50_000] + UNICODE + random_unicode(1000, 3)
    ids = shakespeare_bpe.encode(text)
    assert shakespeare_bpe.to_tokenizers().encode(text).ids == ids
    shakespeare_bpe.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"tokenizer.json", "bpe_merges.json"}
    hf = AutoTokenizer.from_pretrained(tmp_path)
    assert hf(text)["input_ids"] == ids
    assert hf.decode(ids) == text
    back = BPETokenizer.from_pretrained(tmp_path)
    assert back.merges == shakespeare_bpe.merges and back.encode(text) == ids


def test_a_multibyte_character_is_several_byte_tokens(shakespeare_bpe):
    ids = shakespeare_bpe.encode("世")  # three UTF-8 bytes, never merged in English text
    assert len(ids) == 3 and b"".join(shakespeare_bpe.vocab[i] for i in ids) == "世".encode()
    assert shakespeare_bpe.decode(ids[:2]) == "\ufffd"  # half a character: replaced, not an exception


def test_duplicate_tokens_share_an_id():
    tok = BPETokenizer([(0, 1), (1, 2), (256, 2), (0, 257)])  # ids 0, 1, 2 are '!"#': '!"#' is reached twice
    assert tok.vocab_size == 259 and tok.merge_ids == [256, 257, 258, 258]


def test_training_the_cli_size_is_fast():
    text = shakespeare("train")[:200_000]
    t = time.perf_counter()
    tok = BPETokenizer.train(text, vocab_size=512)
    assert time.perf_counter() - t < 20
    assert tok.vocab_size == 512


def test_bad_inputs(shakespeare_bpe, tmp_path):
    with pytest.raises(TypeError, match="text must be a str"):
        BPETokenizer.train(b"bytes", 300)
    with pytest.raises(ValueError, match="must not be empty"):
        BPETokenizer.train("", 300)
    with pytest.raises(ValueError, match="vocab_size must be an int >= 256"):
        BPETokenizer.train("abc", 100)
    with pytest.raises(TypeError, match="encode expects a str"):
        shakespeare_bpe.encode(None)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        shakespeare_bpe.decode([400])
    with pytest.raises(TypeError, match="decode expects a sequence of ints"):
        shakespeare_bpe.decode("abc")
    with pytest.raises(TypeError, match="pretokenize expects a str"):
        pretokenize(3)
    with pytest.raises(ValueError, match="outside the 256 tokens"):
        BPETokenizer([(0, 256)])
    with pytest.raises(ValueError, match="pair of ids"):
        BPETokenizer([(0,)])
    with pytest.raises(FileNotFoundError, match="no BPE tokenizer"):
        BPETokenizer.from_pretrained(tmp_path)
    (tmp_path / "bpe_merges.json").write_text('{"kind": "char"}')
    with pytest.raises(ValueError, match="not a BPE merges file"):
        BPETokenizer.from_pretrained(tmp_path)


def test_gpt2_tokenizer_when_the_hub_is_reachable():
    try:
        gpt2 = AutoTokenizer.from_pretrained("gpt2")
    except Exception as exc:  # offline (tests set HF_HUB_OFFLINE=1): nothing to compare with
        pytest.skip(f"GPT-2's tokenizer needs the Hugging Face hub, unreachable here ({type(exc).__name__})")
    vocab = gpt2.get_vocab()
    b2u = bytes_to_unicode()
    ours = BPETokenizer([])
    assert all(vocab[ours.token_str(i)] == i for i in range(256))  # same ids for the 256 bytes
    merges = json.loads(gpt2.backend_tokenizer.to_str())["model"]["merges"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]
    u2b = {u: b for b, u in b2u.items()}
    t2i = dict(ours.token_to_id)
    pairs = []
    for a, b in merges:  # GPT-2's merges, as pairs of our ids
        ta, tb = (bytes(u2b[c] for c in t) for t in (a, b))
        pairs.append((t2i[ta], t2i[tb]))
        t2i.setdefault(ta + tb, len(t2i))
    full = BPETokenizer(pairs)
    text = shakespeare("val")[:20_000] + UNICODE
    assert full.encode(text) == gpt2(text)["input_ids"]
