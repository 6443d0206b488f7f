#!/usr/bin/env python3
"""Writes cpp/text/unicode_data.cpp: the Unicode tables the Qwen2 tokenizer needs, from unicodedata.

Usage: python3 cpp/text/gen_unicode_data.py [--check-hf] [output.cpp]   (default: next to this script)

The tables are compact sorted ranges searched by bisection, so the generated file stays small and
compiles quickly; the lookup functions are part of the output so the .cpp is self-contained.
"""
import sys
import unicodedata
from pathlib import Path

MAX_CP = 0x110000
HANGUL_S_BASE, HANGUL_S_COUNT = 0xAC00, 11172
HANGUL_V = range(0x1161, 0x1176)
HANGUL_T = range(0x11A8, 0x11C3)

# Hugging Face tokenizers normalizes with the unicode-normalization-alignments crate, whose tables
# are Unicode 9.0: combining marks encoded later have class 0 there and a later canonical pair does
# not compose. To stay id-for-id with it, the normalization tables drop these (found by probing
# tokenizers 0.23 against Unicode 14.0; `--check-hf` repeats the probe when tokenizers is installed).
HF_UNKNOWN_MARKS = [
    (0x07FD, 0x07FD), (0x0898, 0x089F), (0x08CA, 0x08D3), (0x09FE, 0x09FE), (0x0C3C, 0x0C3C), (0x0D3B, 0x0D3C),
    (0x0EBA, 0x0EBA), (0x1715, 0x1715), (0x1ABF, 0x1ACE), (0x1DF6, 0x1DFA), (0xA82C, 0xA82C), (0x10D24, 0x10D27),
    (0x10EAB, 0x10EAC), (0x10F46, 0x10F50), (0x10F82, 0x10F85), (0x11070, 0x11070), (0x1133B, 0x1133B),
    (0x1145E, 0x1145E), (0x11839, 0x1183A), (0x1193D, 0x1193E), (0x11943, 0x11943), (0x119E0, 0x119E0),
    (0x11A34, 0x11A34), (0x11A47, 0x11A47), (0x11A99, 0x11A99), (0x11D42, 0x11D42), (0x11D44, 0x11D45),
    (0x11D97, 0x11D97), (0x16FF0, 0x16FF1), (0x1E130, 0x1E136), (0x1E2AE, 0x1E2AE), (0x1E2EC, 0x1E2EF),
]
HF_UNKNOWN_COMPOSITES = [0x11938]  # DIVES AKURU VOWEL SIGN O (Unicode 13.0)

# Flag bits; keep in sync with unicode_data.h.
LETTER, NUMBER, SPACE, NFC_UNSAFE = 1, 2, 4, 8


def is_surrogate(cp):
    return 0xD800 <= cp <= 0xDFFF


def canonical_decomposition(cp):
    """The one-level canonical mapping (1 or 2 code points), or None (Hangul is algorithmic)."""
    d = unicodedata.decomposition(chr(cp))
    if not d or d.startswith("<"):
        return None
    parts = [int(x, 16) for x in d.split()]
    assert 1 <= len(parts) <= 2, (hex(cp), parts)
    return parts


def hf_unknown_mark(cp):
    return any(a <= cp <= b for a, b in HF_UNKNOWN_MARKS)


def check_against_hf():
    """Re-derives the HF_UNKNOWN_* lists by probing the installed tokenizers' NFC normalizer."""
    from tokenizers import normalizers

    nfc = normalizers.NFC().normalize_str
    marks, composites = [], []
    for cp in range(0x20, MAX_CP):
        ch = chr(cp)
        if is_surrogate(cp) or unicodedata.category(ch) == "Cn":
            continue
        c = unicodedata.combining(ch)
        if c:
            # A class-1 mark after `cp` moves in front of it only if tokenizers knows cp's class.
            probe = "a" + ch + "\u0334" if c > 1 else "a\u0345" + ch
            if nfc(probe) != unicodedata.normalize("NFC", probe):
                marks.append(cp)
        d = canonical_decomposition(cp)
        if d and len(d) == 2:
            nfd = unicodedata.normalize("NFD", ch)
            if nfc(nfd) != unicodedata.normalize("NFC", nfd):
                composites.append(cp)
        assert nfc(ch) == unicodedata.normalize("NFC", ch), hex(cp)
    expected = [cp for a, b in HF_UNKNOWN_MARKS for cp in range(a, b + 1)]
    assert marks == expected, ("update HF_UNKNOWN_MARKS", [hex(c) for c in marks])
    assert composites == HF_UNKNOWN_COMPOSITES, ("update HF_UNKNOWN_COMPOSITES", [hex(c) for c in composites])
    print("tokenizers' NFC agrees with the HF_UNKNOWN_* lists")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--check-hf" in sys.argv:
        check_against_hf()
    out_path = Path(args[0]) if args else Path(__file__).with_name("unicode_data.cpp")

    decomps = {}
    for cp in range(MAX_CP):
        if is_surrogate(cp):
            continue
        d = canonical_decomposition(cp)
        if d and cp not in HF_UNKNOWN_COMPOSITES:
            decomps[cp] = d

    # Primary composites: two-code-point mappings that NFC actually produces (this drops the
    # composition exclusions and the non-starter decompositions without needing their lists).
    compositions = {}
    for cp, d in decomps.items():
        if len(d) == 2 and unicodedata.normalize("NFC", chr(d[0]) + chr(d[1])) == chr(cp):
            compositions[(d[0], d[1])] = cp
    seconds = {b for (_, b) in compositions} | set(HANGUL_V) | set(HANGUL_T)

    flags = [0] * MAX_CP
    ccc = [0] * MAX_CP
    for cp in range(MAX_CP):
        if is_surrogate(cp):
            continue
        ch = chr(cp)
        cat = unicodedata.category(ch)
        f = 0
        if cat.startswith("L"):
            f |= LETTER
        if cat.startswith("N"):
            f |= NUMBER
        # Oniguruma's \s in Unicode mode is the White_Space property: Zs, Zl, Zp, TAB..CR and NEL.
        # (Python's str.isspace also accepts U+001C..U+001F, which \s does not.)
        if cat in ("Zs", "Zl", "Zp") or 0x09 <= cp <= 0x0D or cp == 0x85:
            f |= SPACE
        c = 0 if hf_unknown_mark(cp) else unicodedata.combining(ch)
        ccc[cp] = c
        # NFC quick check is not "Yes" (No: changes under NFC; Maybe: may compose with what precedes)
        # or a non-zero class (may be reordered). A run of code points without this flag is NFC.
        if unicodedata.normalize("NFC", ch) != ch or cp in seconds or unicodedata.combining(ch) != 0:
            f |= NFC_UNSAFE
        flags[cp] = f

    def ranges(values):
        rs, start = [], None
        for cp in range(MAX_CP + 1):
            v = values[cp] if cp < MAX_CP else 0
            if start is not None and v != values[start]:
                rs.append((start, cp - 1, values[start]))
                start = None
            if start is None and v != 0:
                start = cp
        return rs

    flag_ranges = ranges(flags)
    ccc_ranges = ranges(ccc)

    # Oniguruma's (?i) matches by case folding: non-ASCII code points that fold to an ASCII letter
    # (U+017F LONG S -> 's', U+212A KELVIN SIGN -> 'k') must match the contraction suffixes too.
    ascii_folds = []
    for cp in range(0x80, MAX_CP):
        if is_surrogate(cp):
            continue
        folded = chr(cp).casefold()
        if len(folded) == 1 and folded.isascii() and folded.isalpha():
            ascii_folds.append((cp, ord(folded)))
        # The contraction suffixes "re", "ve", "ll" are only reachable letter by letter.
        assert folded not in ("re", "ve", "ll"), hex(cp)

    # Self-check of the quick-check flag on a sample: strings without the flag are already NFC.
    import random

    rng = random.Random(0)
    safe = [cp for cp in range(MAX_CP) if not is_surrogate(cp) and not flags[cp] & NFC_UNSAFE]
    for _ in range(2000):
        s = "".join(chr(rng.choice(safe)) for _ in range(rng.randint(1, 8)))
        assert unicodedata.normalize("NFC", s) == s, [hex(ord(c)) for c in s]

    lines = []
    w = lines.append
    w("// Unicode tables for the Qwen2 tokenizer. GENERATED by gen_unicode_data.py from Python's")
    w(f"// unicodedata (Unicode {unicodedata.unidata_version}; normalization data limited to what Hugging Face")
    w("// tokenizers knows, see HF_UNKNOWN_MARKS there). Do not edit by hand; re-run the script.")
    w('#include "text/unicode_data.h"')
    w("")
    w("#include <algorithm>")
    w("#include <iterator>")
    w("")
    w("namespace la::unicode {")
    w("namespace {")
    w("")
    w("struct Range {")
    w("  uint32_t first, last;")
    w("  uint8_t value;")
    w("};")
    w("struct Decomposition {")
    w("  uint32_t cp, first, second;  // second == 0: singleton mapping")
    w("};")
    w("struct Composition {")
    w("  uint32_t first, second, composite;")
    w("};")
    w("")

    def emit(name, ctype, rows, per_line):
        w(f"const {ctype} {name}[] = {{")
        for i in range(0, len(rows), per_line):
            w("    " + " ".join("{" + ", ".join(r) + "}," for r in rows[i : i + per_line]))
        w("};")
        w("")

    emit("kFlagRanges", "Range", [(hex(a), hex(b), str(v)) for a, b, v in flag_ranges], 4)
    emit("kCccRanges", "Range", [(hex(a), hex(b), str(v)) for a, b, v in ccc_ranges], 4)
    emit(
        "kDecompositions",
        "Decomposition",
        [(hex(cp), hex(d[0]), hex(d[1]) if len(d) == 2 else "0") for cp, d in sorted(decomps.items())],
        4,
    )
    emit("kCompositions", "Composition", [(hex(a), hex(b), hex(c)) for (a, b), c in sorted(compositions.items())], 4)
    w("const uint32_t kAsciiFolds[][2] = {")
    w("    " + " ".join(f"{{{hex(a)}, {hex(b)}}}," for a, b in ascii_folds))
    w("};")
    w("")
    w("uint8_t range_value(const Range* begin, const Range* end, uint32_t cp) {")
    w("  const Range* it = std::upper_bound(begin, end, cp, [](uint32_t c, const Range& r) { return c < r.first; });")
    w("  if (it == begin) return 0;")
    w("  --it;")
    w("  return cp <= it->last ? it->value : 0;")
    w("}")
    w("")
    w("// Flags of U+0000..U+00FF, looked up on every byte of ordinary text.")
    w("const uint8_t kLatin1Flags[256] = {")
    for i in range(0, 256, 32):
        w("    " + " ".join(f"{flags[cp]}," for cp in range(i, i + 32)))
    w("};")
    w("")
    w("}  // namespace")
    w("")
    w(f'const char* const kUnicodeVersion = "{unicodedata.unidata_version}";')
    w("")
    w("uint8_t flags(uint32_t cp) {")
    w("  if (cp < 256) return kLatin1Flags[cp];")
    w("  return range_value(std::begin(kFlagRanges), std::end(kFlagRanges), cp);")
    w("}")
    w("")
    w("uint8_t combining_class(uint32_t cp) {")
    w("  if (cp < 0x300) return 0;")
    w("  return range_value(std::begin(kCccRanges), std::end(kCccRanges), cp);")
    w("}")
    w("")
    w("int canonical_decomposition(uint32_t cp, uint32_t out[2]) {")
    w("  const Decomposition* it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,")
    w("                                             [](const Decomposition& d, uint32_t c) { return d.cp < c; });")
    w("  if (it == std::end(kDecompositions) || it->cp != cp) return 0;")
    w("  out[0] = it->first;")
    w("  out[1] = it->second;")
    w("  return it->second ? 2 : 1;")
    w("}")
    w("")
    w("uint32_t primary_composite(uint32_t first, uint32_t second) {")
    w("  const Composition* it = std::lower_bound(")
    w("      std::begin(kCompositions), std::end(kCompositions), first, [&](const Composition& c, uint32_t f) {")
    w("        return c.first < f || (c.first == f && c.second < second);")
    w("      });")
    w("  if (it == std::end(kCompositions) || it->first != first || it->second != second) return 0;")
    w("  return it->composite;")
    w("}")
    w("")
    w("uint32_t fold_to_ascii(uint32_t cp) {")
    w("  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;")
    w("  for (const auto& f : kAsciiFolds)")
    w("    if (f[0] == cp) return f[1];")
    w("  return cp;")
    w("}")
    w("")
    w("}  // namespace la::unicode")
    out_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(
        f"wrote {out_path}: {len(flag_ranges)} flag ranges, {len(ccc_ranges)} ccc ranges, "
        f"{len(decomps)} decompositions, {len(compositions)} compositions, {len(ascii_folds)} ascii folds"
    )


if __name__ == "__main__":
    main()
