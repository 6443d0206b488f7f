"""Tokenizer binding: id-for-id parity with the Hugging Face fast tokenizer, fixtures, bad input."""
import json
import pathlib
import random
import threading
import unicodedata

import numpy as np
import pytest

import locateanything_native._core as _core


@pytest.fixture(scope="module")
def tok_dir(fixtures_dir) -> pathlib.Path:
    return fixtures_dir / "tokenizer"


@pytest.fixture(scope="module")
def tok(tok_dir):
    return _core.Tokenizer(str(tok_dir))


@pytest.fixture(scope="module")
def tok_slow(fixtures_dir):
    # tiny-a has no tokenizer.json: vocab.json + merges.txt + added_tokens.json + tokenizer_config.json.
    return _core.Tokenizer(fixtures_dir / "tiny-a")


@pytest.fixture(scope="module")
def hf(tok_dir):
    tokenizers = pytest.importorskip("tokenizers")
    return tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def added_contents(tok_dir):
    return [t["content"] for t in json.loads((tok_dir / "tokenizer.json").read_text("utf-8"))["added_tokens"]]


def _random_text(rng: random.Random, added: list) -> str:
    """A few fragments drawn from pools that exercise every branch of the pipeline."""
    assigned_bmp = None

    def any_char():
        nonlocal assigned_bmp
        while True:
            cp = rng.randrange(0x20, 0x30000) if rng.random() < 0.3 else rng.randrange(0x20, 0x10000)
            c = chr(cp)
            if unicodedata.category(c) not in ("Cn", "Cs", "Co"):
                return c

    def decomposed():
        c = rng.choice("ÀÉÎÕÜçñåøǺṩẫệỗ각힣가ᄀ한Å")
        return unicodedata.normalize("NFD", c)

    pools = [
        lambda: rng.choice(["Hello", "world", "the", "LocateAnything", "cat", "dog", "x", "A", "naïve", "Straße"]),
        lambda: " " * rng.randint(1, 4),
        lambda: rng.choice(["\n", "\r\n", "\n\n", "\t", "\r", " \n ", "\u00a0", "\u3000", "\u2028", "\x0b", "\x0c",
                            "\x85", "\u200b", "\x1c", "\ufeff", "\u180e", " \t\n  "]),
        lambda: "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 7))),
        lambda: "".join(rng.choice("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~") for _ in range(rng.randint(1, 4))),
        lambda: rng.choice(["'s", "'S", "'t", "'T", "'re", "'RE", "'rE", "'ve", "'VE", "'m", "'M", "'ll", "'LL",
                            "'Ll", "'d", "'D", "'\u017f", "'\u212a", "'x", "'", "''"]),
        lambda: "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(rng.randint(1, 5))),
        lambda: rng.choice(["😀", "🦙", "👍🏽", "😶\u200d🌫️", "🇫🇷", "✅", "❤️", "🚀", "1️⃣"]),
        lambda: rng.choice(["é", "e\u0301", "a\u0300\u0316", "a\u0316\u0300", "\u212b", "\u2126", "\u0958", "Å",
                            "\u1100\u1161\u11a8", "\uac00\u11a8", "o\u0308\u0304", "\u0344", "\u0f73", "ﬁ", "\u0338",
                            "=\u0338", ">\u0338", "\u0301", "\u0301\u0301a"]),
        decomposed,
        lambda: rng.choice(added),
        lambda: rng.choice(["<IMG_CONT", "<|im_end", "<box", "</", "<|", "|>", "<123", "<ref>x</ref>", "<0><1>"]),
        lambda: "".join(any_char() for _ in range(rng.randint(1, 4))),
        lambda: rng.choice(["привет", "مرحبا", "नमस्ते", "สวัสดี", "こんにちは", "Ελληνικά", "ქართული", "Việt"]),
    ]
    return "".join(rng.choice(pools)() for _ in range(rng.randint(1, 12)))


def test_random_strings_match_hf(tok, tok_slow, hf, added_contents):
    rng = random.Random(1234)
    texts = [_random_text(rng, added_contents) for _ in range(3000)]
    hf_ids = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    mismatches = [(t, ours, ref) for t, ref in zip(texts, hf_ids) if (ours := tok.encode(t)) != ref]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[0]!r}"
    assert all(tok_slow.encode(t) == ref for t, ref in zip(texts[:500], hf_ids))
    for t, ids in zip(texts, hf_ids):
        assert tok.decode(ids) == hf.decode(ids, skip_special_tokens=False)


def test_round_trip_of_normalized_text(tok):
    rng = random.Random(7)
    for _ in range(2000):
        s = "".join(chr(rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0xA0, 0x3000),
                                    rng.randrange(0x4E00, 0xA000), rng.randrange(0x1F300, 0x1FAFF)]))
                    for _ in range(rng.randint(0, 30)))
        s = "".join(c for c in s if not unicodedata.category(c).startswith("C"))
        s = unicodedata.normalize("NFC", s)
        assert tok.decode(tok.encode(s)) == s


def test_qwen2_vectors(tok, tok_dir):
    inp = (tok_dir / "qwen2-vectors" / "qwen2.inp").read_bytes().decode("utf-8")
    out = (tok_dir / "qwen2-vectors" / "qwen2.out").read_bytes().decode("utf-8")
    texts = inp.split("\n__ggml_vocab_test__\n")
    if texts and texts[-1] == "":
        texts.pop()
    lines = out.split("\n")[: len(texts)]
    assert len(texts) == 46 and len(lines) == 46
    for text, line in zip(texts, lines):
        assert tok.encode(text) == [int(x) for x in line.split()], repr(text)


def _prompt_cases(fixtures_dir):
    cases = sorted((fixtures_dir / "tiny-a" / "cases").glob("*.json"))
    assert cases, "no fixture cases"
    for path in cases:
        case = json.loads(path.read_text("utf-8"))
        if "prompt_text" not in case:
            continue
        image = "<image 1><img>" + "<IMG_CONTEXT>" * case["num_image_tokens"] + "</img>"
        yield path, case["prompt_text"].replace("<image-1>", image)


def test_fixture_prompts(tok_slow, fixtures_dir):
    n = 0
    for path, prompt in _prompt_cases(fixtures_dir):
        expected = np.load(path.with_suffix(".npz"))["input_ids"].reshape(-1).tolist()
        assert tok_slow.encode(prompt) == expected, path.name
        assert tok_slow.decode(expected) == prompt
        n += 1
    assert n >= 16


def test_large_image_prompt_is_fast(tok):
    import time

    prompt = "<|im_start|>user\n<img>" + "<IMG_CONTEXT>" * 6500 + "</img>Find the red car.<|im_end|>\n"
    start = time.perf_counter()
    ids = tok.encode(prompt)
    assert time.perf_counter() - start < 0.5
    img = tok.token_to_id("<IMG_CONTEXT>")
    assert ids.count(img) == 6500


def test_properties_and_lookups(tok, tok_slow):
    for t in (tok, tok_slow):
        assert t.vocab_size == 152681
        assert t.model_max_length == 16384
        im_end = t.token_to_id("<|im_end|>")
        assert im_end is not None and t.id_to_token(im_end) == "<|im_end|>"
        assert t.is_special_token(im_end) and t.is_added_token(im_end)
        assert t.token_to_id("Ġthe") is not None and t.id_to_token(t.token_to_id("Ġthe")) == "Ġthe"
        assert t.token_to_id("definitely not a token") is None
        assert t.encode("a<|im_end|>b") == [t.token_to_id("a"), im_end, t.token_to_id("b")]
        assert t.decode([im_end]) == "<|im_end|>"


def test_bytes_and_invalid_utf8(tok):
    assert tok.encode("héllo".encode()) == tok.encode("héllo")
    rng = random.Random(3)
    for _ in range(1000):
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 24)))
        ids = tok.encode(raw)
        # Invalid bytes and U+FFFD are both starters, so NFC treats them alike.
        assert tok.decode(ids) == unicodedata.normalize("NFC", raw.decode("utf-8", "replace"))
    # A lone surrogate cannot be UTF-8; it goes through as invalid bytes rather than failing.
    assert "\ufffd" in tok.decode(tok.encode("a\ud800b"))


def test_errors(tok, tmp_path):
    with pytest.raises(ValueError, match="152681"):
        tok.decode([152681])
    with pytest.raises(ValueError, match="-1"):
        tok.decode([-1])
    with pytest.raises(ValueError):
        tok.decode([2**40])
    with pytest.raises(TypeError):
        tok.decode([1.5])
    with pytest.raises(TypeError):
        tok.encode(123)
    with pytest.raises(ValueError):
        tok.id_to_token(10**6)
    with pytest.raises(FileNotFoundError, match="vocab.json"):
        _core.Tokenizer(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        _core.Tokenizer(str(tmp_path / "missing"))


def test_decode_accepts_numpy_and_iterables(tok):
    ids = tok.encode("Hello world")
    assert tok.decode(np.array(ids, dtype=np.int64)) == "Hello world"
    assert tok.decode(iter(ids)) == "Hello world"
    assert tok.decode(tuple(ids)) == "Hello world"


def test_concurrent_encode(tok):
    rng = random.Random(11)
    texts = [_random_text(rng, ["<box>", "<|im_end|>"]) * 20 for _ in range(64)]
    expected = [tok.encode(t) for t in texts]
    results = [None] * len(texts)

    def work(i):
        results[i] = tok.encode(texts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == expected
