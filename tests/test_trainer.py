"""The BPE trainer learns exactly rustbpe's merges (and a from-scratch reference's), whatever the
worker count, splits text the way tiktoken will at inference, and writes a loadable tokenizer."""

import functools
import random
from collections import Counter

import pytest
import regex
import rustbpe
import tiktoken
import tiktoken.load
from hypothesis import given
from hypothesis import strategies as st

from tokenizer import bpe_merge, bpe_merge_python, train_count, train_inputs, train_split
from tokenizer.bpe_merge import learn_merges, merges_to_ranks
from tokenizer.files import load_tokenizer_files
from tokenizer.patterns import GPT4, NANOCHAT
from tokenizer.specials import SPECIAL_TOKENS
from tokenizer.train_split import ChunkSplitter, disputed_chars
from tokenizer.trainer import TrainingWarning, train_tokenizer

WORDS = ("the quick brown fox jumps over the lazy dog and then it's gone, we'll see: "
         "they're here! don't DO that; I've 42 apples & 1,234.56 pears").split()
CJK = list("我们的你他是不了在有人这中大为上个国和地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里")


SYLLABLES = "ba ce di fo gu ha je ki lo mu na pe qui ro su ta ve wi xo yu ze th sh ch ing er ed".split()


def _english(rng: random.Random, n: int) -> str:
    """Words from a list mixed with made-up words, so there are plenty of distinct pairs."""
    words = [rng.choice(WORDS) if rng.random() < 0.6 else
             "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(n)]
    return " ".join(w.capitalize() if rng.random() < 0.1 else w for w in words)


def corpora() -> dict[str, list[str]]:
    rng = random.Random(1234)
    return {
        "english": [_english(rng, 80) + "\n" for _ in range(30)],
        "cjk": ["".join(rng.choice(CJK) for _ in range(rng.randint(5, 40))) + "。" + _english(rng, 5)
                for _ in range(60)],
        "emoji": [" ".join(rng.choice(["🙂", "👍🏽", "🇫🇷", "👩‍💻", "ok", "🎉🎉", "é", "naïve", _english(rng, 2)])
                           for _ in range(40)) for _ in range(30)],
        "crlf": ["\r\n".join(_english(rng, 6) for _ in range(10)) + "\r\n\r\n" for _ in range(20)],
        "digit_and_space_runs": ["".join(rng.choice(["1234567890" * rng.randint(1, 5), " " * rng.randint(1, 40),
                                                     "\t\t", "\n\n\n", "x", "  \n  "]) for _ in range(30))
                                 + _english(rng, 20) for _ in range(20)],
        "one_huge_chunk": ["".join(rng.choice("ACGT") for _ in range(20_000)), "ACGT GATTACA " * 50,
                           _english(rng, 100)],
    }


def reference_merges(texts: list[str], pattern: str, num_merges: int) -> list[tuple[int, int]]:
    """BPE the slow, obvious way: recount every pair after every merge."""
    words: Counter = Counter()
    for text in texts:
        for chunk in regex.findall(pattern, text):
            words[tuple(chunk.encode("utf-8"))] += 1
    merges = []
    for step in range(num_merges):
        pairs: Counter = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        new_words: Counter = Counter()
        for word, count in words.items():
            merged, i = [], 0
            while i < len(word):
                if word[i : i + 2] == best:
                    merged.append(256 + step)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            new_words[tuple(merged)] += count
        words = new_words
    return merges


def rustbpe_ranks(texts: list[str], pattern: str, vocab_size: int) -> dict[bytes, int]:
    """rustbpe's tokens for a glasschat ``vocab_size`` (which counts the 9 specials; rustbpe's does not)."""
    tokenizer = rustbpe.Tokenizer()
    tokenizer.train_from_iterator(iter(texts), vocab_size - len(SPECIAL_TOKENS), pattern=pattern)
    return {bytes(token): rank for token, rank in tokenizer.get_mergeable_ranks()}


def write_docs(directory, texts: list[str]):
    path = directory / "corpus.jsonl"
    import json

    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


@pytest.fixture(params=["compiled", "python"])
def merge_loop(request, monkeypatch):
    """Each test that takes it runs on the compiled merge loop and on the Python one."""
    if request.param == "python":
        monkeypatch.setattr(bpe_merge, "compiled_learn_merges", None)
    return request.param


def test_the_compiled_merge_loop_and_split_are_built():
    assert bpe_merge.compiled_learn_merges is not None, (
        "tokenizer/_bpe_merge.c was not built at install (is a C compiler installed?): "
        "the trainer runs the Python loop, about 6x slower")
    assert train_split.compiled_count_chunks is not None, (
        "tokenizer/_chunk_count.c was not built at install: the trainer splits with re, about 4x slower")


@pytest.mark.parametrize("name", list(corpora()))
def test_merges_equal_rustbpe_and_reference(tmp_path, name, merge_loop):
    texts = corpora()[name]
    vocab_size = 600
    result = train_tokenizer([write_docs(tmp_path, texts)], vocab_size, tmp_path / "tok", workers=1, progress=False)
    expected = rustbpe_ranks(texts, NANOCHAT, vocab_size)
    assert result.ranks == expected
    assert result.num_merges > 200
    counts = Counter(chunk for text in texts for chunk in regex.findall(NANOCHAT, text))
    reference = reference_merges(texts, NANOCHAT, 120)
    assert learn_merges(counts, 120) == reference


def test_gpt4_pattern_by_name(tmp_path):
    texts = corpora()["digit_and_space_runs"] + corpora()["english"]
    result = train_tokenizer([write_docs(tmp_path, texts)], 500, tmp_path / "tok", pattern="gpt4",
                             workers=1, progress=False)
    assert result.pattern == GPT4
    assert result.ranks == rustbpe_ranks(texts, GPT4, 500)


def test_independent_of_worker_count(tmp_path, monkeypatch):
    monkeypatch.setattr(train_inputs, "ITEM_BYTES", 2000)  # many small work items
    texts = [t for corpus in corpora().values() for t in corpus]
    path = write_docs(tmp_path, texts)
    results = [train_tokenizer([path], 700, tmp_path / f"tok{w}", workers=w, progress=False) for w in (1, 3)]
    assert results[0].ranks == results[1].ranks == rustbpe_ranks(texts, NANOCHAT, 700)
    assert results[0].documents == results[1].documents == len(texts)


def test_counting_processes_follow_the_amount_of_text(monkeypatch):
    """A helper process pays for itself only on enough text (see train_count.BYTES_PER_WORKER)."""
    monkeypatch.setattr(train_count, "default_workers", lambda: 4)
    assert train_count.workers_for(None) == 4  # stdin: size unknown
    assert train_count.workers_for(1000) == 1
    assert train_count.workers_for(40 << 20) == 1
    assert train_count.workers_for(100 << 20) == 2
    assert train_count.workers_for(10 << 30) == 4
    monkeypatch.setattr(train_split, "compiled_count_chunks", None)  # the split in Python: slower
    assert train_count.workers_for(40 << 20) == 4


def test_early_stop_puts_specials_right_after_the_last_token(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("abab abab abc", encoding="utf-8")
    with pytest.warns(TrainingWarning, match="ran out of pairs"):
        result = train_tokenizer([path], 1000, tmp_path / "tok", workers=1, progress=False)
    n = len(result.ranks)
    assert result.stopped_early and n == 256 + result.num_merges < 1000 - 9
    assert result.special_ids == {name: n + i for i, name in enumerate(SPECIAL_TOKENS)}
    assert result.vocab_size == n + 9
    ranks, _, specials = load_tokenizer_files(tmp_path / "tok")
    assert ranks == result.ranks and specials == result.special_ids


def test_output_loads_in_tiktoken_and_round_trips(tmp_path):
    texts = corpora()["english"] + corpora()["cjk"] + corpora()["emoji"]
    train_tokenizer([write_docs(tmp_path, texts)], 700, tmp_path / "tok", workers=1, progress=False)
    ranks = tiktoken.load.load_tiktoken_bpe(str(tmp_path / "tok" / "tokenizer.tiktoken"))
    same_ranks, pattern, specials = load_tokenizer_files(tmp_path / "tok")
    assert ranks == same_ranks and pattern == NANOCHAT
    encoding = tiktoken.Encoding(name="t", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
    for text in texts:
        ids = encoding.encode_ordinary(text)
        assert encoding.decode(ids) == text
        assert max(ids) < len(ranks)
    assert len(encoding.encode_ordinary(texts[0])) < len(texts[0].encode()) / 2  # it learned something


def tiktoken_pieces(pattern: str, text: str) -> list[str]:
    """The chunks tiktoken cuts ``text`` into: with every substring of ``text`` in the vocabulary
    (shorter ones first), each chunk encodes to exactly one token."""
    data = text.encode("utf-8")
    pieces = {data[i:j] for i in range(len(data)) for j in range(i + 1, len(data) + 1)}
    pieces |= {bytes([b]) for b in range(256)}
    ranks = {piece: rank for rank, piece in enumerate(sorted(pieces, key=lambda p: (len(p), p)))}
    encoding = tiktoken.Encoding(name="oracle", pat_str=pattern, mergeable_ranks=ranks, special_tokens={})
    return [encoding.decode_single_token_bytes(t).decode("utf-8") for t in encoding.encode_ordinary(text)]


@pytest.mark.parametrize("pattern", [NANOCHAT, GPT4], ids=["nanochat", "gpt4"])
def test_split_agrees_with_tiktoken_on_recently_assigned_characters(pattern):
    disputed = sorted(disputed_chars(pattern))
    assert len(disputed) > 100  # regex's Unicode tables are newer than tiktoken's
    rng = random.Random(7)
    alphabet = list("aZé\u0301'sSLlvE\u017f \t\r\n\n  12\u0663.,;!-_") + ["😀", "中", "\u200d", "\xa0", "\u3000"]
    # beyond the BMP: letters (cased, uncased, a math "s"), a digit, symbols, a rare ideograph
    alphabet += ["\U0001d400", "\U0001d530", "\U00010400", "\U00010428", "\U0001d7ce", "🎉", "👍🏽", "\U00020000"]
    alphabet += rng.sample(disputed, 12) + [chr(0x558), chr(0xA7CE)]
    assert any(ord(c) > 0xFFFF for c in disputed)
    splitter = ChunkSplitter(pattern)
    naive_mismatches = 0
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        expected = tiktoken_pieces(pattern, text)
        assert splitter.split(text) == expected, text
        assert sorted(splitter.count([text]).elements()) == sorted(expected)
        naive_mismatches += regex.findall(pattern, text) != expected
    assert naive_mismatches > 0  # the plain regex split would have been wrong


def test_training_on_recently_assigned_letters_matches_rustbpe(tmp_path):
    # U+0558 and U+A7CE are letters to `regex` but not to tiktoken's (and rustbpe's) engine
    texts = [f"ab{chr(0x558)}cd xy{chr(0xA7CE)}zw " * 20 + _english(random.Random(i), 30) for i in range(10)]
    result = train_tokenizer([write_docs(tmp_path, texts)], 320, tmp_path / "tok", workers=1, progress=False)
    assert result.ranks == rustbpe_ranks(texts, NANOCHAT, 320)


def test_merges_to_ranks_builds_token_bytes():
    assert merges_to_ranks([(97, 98), (256, 99)])[b"abc"] == 257


@pytest.mark.parametrize("knobs", [
    {"LONG_WORD": 3},  # nearly every chunk merged position by position
    {"BULK_MIN": 1},  # every merge's new pairs found with numpy
    {"BULK_MIN": 10**9, "LAST_COUNT_SCALE": 1e9},  # by hand; threshold far too high: the pool is used
])
def test_merge_loop_strategies_agree_with_reference(monkeypatch, knobs):
    for name, value in knobs.items():
        monkeypatch.setattr(bpe_merge_python, name, value)
    texts = [t for name in ("english", "digit_and_space_runs", "cjk") for t in corpora()[name]]
    counts = Counter(chunk for text in texts for chunk in regex.findall(NANOCHAT, text))
    assert bpe_merge_python.learn_merges(counts, 150) == reference_merges(texts, NANOCHAT, 150)


@given(st.lists(st.tuples(st.text("abcé😀", min_size=1, max_size=12), st.integers(1, 5)), max_size=30),
       st.integers(0, 40))
def test_compiled_and_python_merge_loops_agree_with_reference(chunks, num_merges):
    """Runs of one token ("aaaa": overlapping pairs), repeated pairs ("abab"), multi-byte
    characters and ties, on random chunks: both loops, and the compiled one's path for long
    chunks, give the obvious algorithm's merges."""
    counts = Counter()
    for chunk, n in chunks:
        counts[chunk] += n
    texts = [chunk for chunk, n in counts.items() for _ in range(n)]
    expected = reference_merges(texts, r"(?s).+", num_merges)
    assert bpe_merge.compiled_learn_merges(dict(counts), num_merges) == expected
    # every chunk merged position by position, as chunks over 8 KB are
    assert bpe_merge.compiled_learn_merges(dict(counts), num_merges, long_chunk=1) == expected
    assert bpe_merge_python.learn_merges(counts, num_merges) == expected


def test_the_compiled_merge_loop_reports_progress_and_stops_on_ctrl_c():
    counts = Counter(chunk for text in corpora()["english"] for chunk in regex.findall(NANOCHAT, text))
    reported = []
    merges = learn_merges(counts, 600, on_progress=reported.append)
    assert reported[0] == 256 and reported[-1] == len(merges) == 600

    def interrupt(done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn_merges(counts, 600, on_progress=interrupt)
    with pytest.raises(TypeError, match="every key must be a str"):
        learn_merges({b"ab": 1}, 5)


def test_a_consumed_counter_is_emptied_once_read(merge_loop):
    """The trainer hands its counter over with consume=True, so that it is freed while the loop
    runs (it is often the largest thing in memory)."""
    counts = Counter(chunk for text in corpora()["english"] for chunk in regex.findall(NANOCHAT, text))
    expected = learn_merges(counts, 300)
    assert counts and learn_merges(counts, 300, consume=True) == expected
    assert not counts


_splitter = functools.lru_cache(maxsize=None)(ChunkSplitter)  # built once per pattern: it takes a while
PIECE_ALPHABET = list("aZé'sSLlv \t\r\n\n\n  12.,;!-_中한") + ["'ll", "'S", "\r\n", " \n", "\n\n ", "😀", "\u3000"]


# every construct of the named patterns: contractions in both cases (and the long s, which folds
# to s), letters after each kind of character, digit runs, punctuation runs before line breaks,
# every kind of white space run, characters beyond the BMP in each class
SPLIT_ALPHABET = list("aZé\u0301'sSLlvVEeRrDdMmTt\u017f \t\r\n\n  12\u0663.,;!-_\x0b\x0c\x1c\x85\xa0\u2028\u3000中") + [
    "'ll", "'VE", "'re", "'s", "'\u017f", "'T", "'d", "'M", "\r\n", " \n", "😀", "\u200d", "\U0001d400", "\U0001d7ce", "\U00020000"]


@pytest.mark.parametrize("pattern", [NANOCHAT, GPT4], ids=["nanochat", "gpt4"])
@given(st.lists(st.lists(st.sampled_from(SPLIT_ALPHABET), max_size=40).map("".join), max_size=6))
def test_the_compiled_split_counts_what_the_pattern_splits(pattern, docs):
    """The compiled scanner (``_chunk_count.c``) against the pattern itself, compiled by re (which
    the test above holds to tiktoken's own split)."""
    splitter = _splitter(pattern)
    expected = Counter(chunk for doc in docs for chunk in splitter.split(doc))
    assert splitter.count(docs) == expected
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_split, "compiled_count_chunks", None)
        assert splitter.count(docs) == expected


@pytest.mark.parametrize("pattern", [NANOCHAT, GPT4], ids=["nanochat", "gpt4"])
@given(st.lists(st.sampled_from(PIECE_ALPHABET), max_size=120), st.integers(1, 12))
def test_long_documents_are_counted_in_pieces_exactly(pattern, parts, size):
    """A long document is counted in pieces (to bound memory); the chunks are those of the whole."""
    doc = "".join(parts)
    cut = train_split.pieces(doc, size)
    assert "".join(cut) == doc
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_split, "PIECE_CHARS", size)
        patch.setattr(train_split, "compiled_count_chunks", None)  # the compiled split needs no pieces
        counted = _splitter(pattern).count([doc, "x" * (size + 1)])
    assert counted == Counter(regex.findall(pattern, doc)) + Counter({"x" * (size + 1): 1})
