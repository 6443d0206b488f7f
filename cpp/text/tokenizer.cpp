// Qwen2 byte-level BPE: added-token split, NFC, the Qwen2 pre-tokenizer by hand, byte-level BPE.
#include "text/tokenizer.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "io/files.h"
#include "text/unicode_data.h"

namespace la {
namespace {

// The only pre-tokenizer this file implements (by hand, in match_pretoken below).
constexpr std::string_view kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Code points of invalid UTF-8 bytes: outside Unicode, so no table knows them and they never
// compose, but they still carry their byte for the byte-level stage.
constexpr uint32_t kInvalidByte = 0x80000000u;

// ---------------------------------------------------------------------------------------------
// UTF-8

struct Utf8Step {
  uint32_t cp;   // decoded code point, or kInvalidByte | first byte
  uint32_t len;  // bytes consumed: the whole sequence, or the maximal invalid subpart (>= 1)
  bool valid;
};

// One step of strict UTF-8 decoding (no surrogates, no overlongs, <= U+10FFFF). On an ill-formed
// sequence `len` is the "maximal subpart" length, which is what Python's errors='replace' (and
// the Unicode recommendation) turns into one U+FFFD.
Utf8Step utf8_step(const unsigned char* s, size_t n) {
  unsigned b0 = s[0];
  if (b0 < 0x80) return {b0, 1, true};
  uint32_t need;
  unsigned lo = 0x80, hi = 0xBF;
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {kInvalidByte | b0, 1, false};
  }
  for (uint32_t k = 1; k <= need; ++k) {
    if (k >= n || s[k] < lo || s[k] > hi) return {kInvalidByte | b0, k, false};
    cp = (cp << 6) | (s[k] & 0x3F);
    lo = 0x80, hi = 0xBF;
  }
  return {cp, need + 1, true};
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp & kInvalidByte) {
    out.push_back(static_cast<char>(cp & 0xFF));
  } else if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Python's bytes.decode('utf-8', 'replace'), re-encoded: each maximal ill-formed subpart -> U+FFFD.
std::string sanitize_utf8(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0, n = bytes.size();
  while (i < n) {
    if (s[i] < 0x80) {
      out.push_back(static_cast<char>(s[i++]));
      continue;
    }
    Utf8Step st = utf8_step(s + i, n - i);
    if (st.valid) out.append(bytes, i, st.len);
    else out.append("\xEF\xBF\xBD");
    i += st.len;
  }
  return out;
}

// Code points of `text`; each byte of an ill-formed sequence becomes its own kInvalidByte unit so
// that every input byte survives to the byte-level stage.
void decode_units(std::string_view text, std::vector<uint32_t>& cps) {
  cps.clear();
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0, n = text.size();
  while (i < n) {
    if (s[i] < 0x80) {
      cps.push_back(s[i++]);
      continue;
    }
    Utf8Step st = utf8_step(s + i, n - i);
    if (st.valid) {
      cps.push_back(st.cp);
      i += st.len;
    } else {
      cps.push_back(kInvalidByte | s[i]);
      i += 1;
    }
  }
}

uint8_t unit_flags(uint32_t cp) { return (cp & kInvalidByte) ? 0 : unicode::flags(cp); }

// ---------------------------------------------------------------------------------------------
// NFC (UAX #15): full canonical decomposition, canonical ordering, canonical composition.

constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

uint8_t ccc_of(uint32_t cp) { return (cp & kInvalidByte) ? 0 : unicode::combining_class(cp); }

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp & kInvalidByte) {
    out.push_back(cp);
    return;
  }
  if (cp >= kSBase && cp < kSBase + kSCount) {
    uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  uint32_t parts[2];
  int k = unicode::canonical_decomposition(cp, parts);
  if (k == 0) {
    out.push_back(cp);
    return;
  }
  for (int i = 0; i < k; ++i) decompose(parts[i], out);
}

uint32_t compose(uint32_t a, uint32_t b) {
  if ((a | b) & kInvalidByte) return 0;
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  return unicode::primary_composite(a, b);
}

std::vector<uint32_t> nfc(const std::vector<uint32_t>& cps) {
  std::vector<uint32_t> d;
  d.reserve(cps.size() + 8);
  for (uint32_t cp : cps) decompose(cp, d);
  // Canonical ordering: stable sort of each run of non-starters by combining class (a sort, not
  // bubbling, so that a long run of marks stays O(n log n)).
  for (size_t i = 0; i < d.size();) {
    if (ccc_of(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < d.size() && ccc_of(d[j]) != 0) ++j;
    if (j - i > 1)
      std::stable_sort(d.begin() + i, d.begin() + j, [](uint32_t a, uint32_t b) { return ccc_of(a) < ccc_of(b); });
    i = j;
  }
  if (d.empty()) return d;
  // Composition: a character joins the last starter unless something between them blocks it
  // (an intervening character of equal or higher class, or an intervening starter).
  size_t starter = 0;
  int last_class = ccc_of(d[0]) == 0 ? 0 : 256;
  size_t w = 1;
  for (size_t r = 1; r < d.size(); ++r) {
    uint32_t c = d[r];
    int cls = ccc_of(c);
    if (last_class < cls || last_class == 0) {
      if (uint32_t comp = compose(d[starter], c)) {
        d[starter] = comp;
        continue;
      }
    }
    if (cls == 0) {
      starter = w;
    }
    last_class = cls;
    d[w++] = c;
  }
  d.resize(w);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Qwen2 pre-tokenizer. The pattern's alternatives are tried in order at `i`; each is written out
// with the backtracking Oniguruma would do, so the result equals one find_iter step.

bool is_crlf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// End (exclusive) of the pre-token that starts at units[i]; units[0..n) is one added-token-free
// piece of normalized text (so "end of text" for the lookahead is the end of the piece).
size_t match_pretoken(const uint32_t* cp, const uint8_t* fl, size_t i, size_t n) {
  using unicode::kLetter;
  using unicode::kNumber;
  using unicode::kSpace;
  auto letters_end = [&](size_t j) {
    while (j < n && (fl[j] & kLetter)) ++j;
    return j;
  };
  auto is_other = [&](size_t j) { return (fl[j] & (kLetter | kNumber | kSpace)) == 0; };

  // (?i:'s|'t|'re|'ve|'m|'ll|'d): case-insensitive by case folding (so U+017F LONG S counts as s).
  if (cp[i] == '\'' && i + 1 < n) {
    uint32_t a = (cp[i + 1] & kInvalidByte) ? 0 : unicode::fold_to_ascii(cp[i + 1]);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 < n && (a == 'r' || a == 'v' || a == 'l')) {
      uint32_t b = (cp[i + 2] & kInvalidByte) ? 0 : unicode::fold_to_ascii(cp[i + 2]);
      if ((a == 'l' && b == 'l') || (a != 'l' && b == 'e')) return i + 3;
    }
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (fl[i] & kLetter) return letters_end(i + 1);
  if (!is_crlf(cp[i]) && !(fl[i] & kNumber) && i + 1 < n && (fl[i + 1] & kLetter)) return letters_end(i + 2);
  // \p{N}
  if (fl[i] & kNumber) return i + 1;
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  size_t j = (cp[i] == ' ' && i + 1 < n && is_other(i + 1)) ? i + 1 : i;
  if (is_other(j)) {
    while (j < n && is_other(j)) ++j;
    while (j < n && is_crlf(cp[j])) ++j;
    return j;
  }
  // Only whitespace is left here. \s*[\r\n]+ : the longest whitespace run, backtracked to just
  // after its last line break.
  size_t last_break = n;
  j = i;
  while (j < n && (fl[j] & kSpace)) {
    if (is_crlf(cp[j])) last_break = j;
    ++j;
  }
  if (last_break != n) return last_break + 1;
  // \s+(?!\S): the run itself at the end of the piece, else the run minus its last character
  // (which is whitespace, so the lookahead holds there); a single space falls through to \s+.
  if (j == n) return n;
  if (j - i >= 2) return j - 1;
  return j;
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte-level alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes are
// shifted to U+0100.. so that every token is printable text.

struct ByteAlphabet {
  uint32_t byte_to_cp[256];
  int16_t cp_to_byte[324];
  ByteAlphabet() {
    std::fill(std::begin(cp_to_byte), std::end(cp_to_byte), -1);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_cp[b] = printable ? b : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

// ---------------------------------------------------------------------------------------------
// Merge table: (left id, right id) -> (rank, merged id), open addressing on 64-bit keys.

class MergeTable {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, 0);
    mask_ = cap - 1;
  }
  // A later duplicate replaces the earlier rank, as in HF tokenizers and transformers.
  void insert(int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    uint64_t key = make_key(a, b);
    size_t h = slot(key);
    while (keys_[h] != kEmpty && keys_[h] != key) h = (h + 1) & mask_;
    keys_[h] = key;
    vals_[h] = (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(merged);
  }
  // Returns false when the pair has no merge.
  bool find(int32_t a, int32_t b, uint32_t& rank, int32_t& merged) const {
    uint64_t key = make_key(a, b);
    for (size_t h = slot(key);; h = (h + 1) & mask_) {
      if (keys_[h] == key) {
        rank = static_cast<uint32_t>(vals_[h] >> 32);
        merged = static_cast<int32_t>(vals_[h] & 0xFFFFFFFFu);
        return true;
      }
      if (keys_[h] == kEmpty) return false;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t make_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  size_t slot(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
  std::vector<uint64_t> keys_{kEmpty};
  std::vector<uint64_t> vals_{0};
  size_t mask_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Added tokens: a byte trie, matched leftmost-longest like HF's Aho-Corasick (LeftmostLongest).

class AddedTokenMatcher {
 public:
  void add(const std::string& content, int32_t id) {
    if (content.empty()) return;
    first_byte_[static_cast<unsigned char>(content[0])] = true;
    int32_t node = 0;
    for (char ch : content) {
      unsigned char b = static_cast<unsigned char>(ch);
      int32_t child = find_child(node, b);
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_[node].children.emplace_back(b, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    nodes_[node].id = id;
  }
  bool empty() const { return nodes_.size() == 1; }

  // Calls on_text(piece) for text between tokens and on_token(id) for each token, in order.
  template <typename OnText, typename OnToken>
  void split(std::string_view text, OnText&& on_text, OnToken&& on_token) const {
    size_t start = 0, i = 0;
    while (i < text.size()) {
      if (!first_byte_[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      int32_t node = 0, best_id = -1;
      size_t best_len = 0;
      for (size_t k = i; k < text.size(); ++k) {
        node = find_child(node, static_cast<unsigned char>(text[k]));
        if (node < 0) break;
        if (nodes_[node].id >= 0) best_id = nodes_[node].id, best_len = k + 1 - i;
      }
      if (best_id < 0) {
        ++i;
        continue;
      }
      if (i > start) on_text(text.substr(start, i - start));
      on_token(best_id);
      i += best_len;
      start = i;
    }
    if (start < text.size()) on_text(text.substr(start));
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t id = -1;
  };
  int32_t find_child(int32_t node, unsigned char b) const {
    for (const auto& [c, child] : nodes_[node].children)
      if (c == b) return child;
    return -1;
  }
  std::vector<Node> nodes_{Node{}};
  bool first_byte_[256] = {};
};

// Scratch buffers of one encode() call (kept out of Impl so that encode stays const and lock-free).
struct EncodeScratch {
  std::vector<uint32_t> cps;
  std::vector<uint8_t> flags;
  std::vector<uint32_t> offsets;
  std::string normalized;
  struct Symbol {
    int32_t id, prev, next;
  };
  std::vector<Symbol> symbols;
  struct Candidate {
    uint32_t rank;
    int32_t pos, left, right, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Candidate> heap;
};

enum class TokenKind : uint8_t { kNone, kVocab, kAdded, kSpecial };

// j.dump() for error messages, but never into nested containers: dump() recurses, so a file of a
// million nested brackets would overflow the stack while the error was being written.
std::string shown(const nlohmann::json& v) {
  if (v.is_structured())
    for (const nlohmann::json& e : v)
      if (e.is_structured()) return v.is_array() ? "(a nested array)" : "(a nested object)";
  return v.dump();
}

std::string redownload_hint(const std::string& file) {
  return str_cat(" Re-download '", file,
                 "' from the LocateAnything checkpoint (it must come from the same tokenizer as the other tokenizer "
                 "files).");
}

// Token text -> id by open addressing over (hash, id) slots; the texts themselves stay in the
// owner's arena and are reached through `text_of(id)`. Far fewer cache misses than
// std::unordered_map when 450k lookups build the merge table on every model load.
class TokenIndex {
 public:
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    slots_.assign(cap, Slot{0, -1});
    mask_ = cap - 1;
  }
  // Returns the id already stored for `s`, or -1 after storing `id`.
  template <typename TextOf>
  int32_t insert(std::string_view s, int32_t id, const TextOf& text_of) {
    uint32_t h = hash(s);
    size_t i = h & mask_;
    for (; slots_[i].id >= 0; i = (i + 1) & mask_)
      if (slots_[i].hash == h && text_of(slots_[i].id) == s) return slots_[i].id;
    slots_[i] = {h, id};
    return -1;
  }
  template <typename TextOf>
  int32_t find(std::string_view s, const TextOf& text_of) const {
    uint32_t h = hash(s);
    for (size_t i = h & mask_; slots_[i].id >= 0; i = (i + 1) & mask_)
      if (slots_[i].hash == h && text_of(slots_[i].id) == s) return slots_[i].id;
    return -1;
  }

 private:
  struct Slot {
    uint32_t hash;
    int32_t id;
  };
  static uint32_t hash(std::string_view s) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then a final mix so the low bits spread
    for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return static_cast<uint32_t>(h ^ (h >> 32));
  }
  std::vector<Slot> slots_{Slot{0, -1}};
  size_t mask_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

struct Tokenizer::Impl {
  // Per id: the token's text (byte-level form for vocab entries, literal content for added
  // tokens) and the bytes decode() emits for it, both as offsets into one arena.
  std::string text_arena, bytes_arena;
  std::vector<uint32_t> text_offset, bytes_offset;
  std::vector<TokenKind> kind;
  TokenIndex vocab_index;  // byte-level vocab entries
  TokenIndex added_index;  // added tokens by content
  MergeTable merges;
  int32_t byte_ids[256];
  AddedTokenMatcher raw_added;         // normalized=false tokens: matched before NFC
  AddedTokenMatcher normalized_added;  // normalized=true tokens: matched after NFC
  bool use_nfc = true;
  int64_t model_max_length = 0;

  std::string_view text(int32_t id) const {
    return std::string_view(text_arena).substr(text_offset[id], text_offset[id + 1] - text_offset[id]);
  }
  std::string_view bytes(int32_t id) const {
    return std::string_view(bytes_arena).substr(bytes_offset[id], bytes_offset[id + 1] - bytes_offset[id]);
  }
  int32_t size() const { return static_cast<int32_t>(kind.size()); }
  int32_t vocab_id(std::string_view s) const {
    return vocab_index.find(s, [this](int32_t id) { return text(id); });
  }
  int32_t added_id(std::string_view s) const {
    return added_index.find(s, [this](int32_t id) { return text(id); });
  }

  void encode_segment(std::string_view seg, std::vector<int32_t>& out, EncodeScratch& sc) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out, EncodeScratch& sc) const;
  void bpe(std::string_view word, std::vector<int32_t>& out, EncodeScratch& sc) const;
};

namespace {

// ---------------------------------------------------------------------------------------------
// Loading: both paths first collect a RawTokenizer, then one builder makes the Impl.

struct RawAddedToken {
  std::string content;
  int32_t id;
  bool special, normalized;
};

struct RawTokenizer {
  struct Span {
    uint32_t offset, size;
  };
  std::string arena;  // vocab and merge strings, referenced by Span
  std::vector<std::pair<Span, int32_t>> vocab;
  std::vector<std::pair<Span, Span>> merges;
  std::vector<uint32_t> merge_line;  // line in merges.txt, or index in model.merges, for errors
  bool merges_from_txt = false;
  std::vector<RawAddedToken> added;
  bool nfc = true;
  std::string vocab_file, merges_file;

  Span keep(std::string_view s) {
    Span span{static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(s.size())};
    arena.append(s);
    return span;
  }
  std::string_view view(Span s) const { return std::string_view(arena).substr(s.offset, s.size); }
  std::string merge_where(size_t rank) const {
    return merges_from_txt ? str_cat("'", merges_file, "' line ", merge_line[rank])
                           : str_cat("'", merges_file, "' model.merges[", merge_line[rank], "]");
  }
  // "left right" -> two spans; false when the line is not exactly two non-empty tokens.
  bool add_merge_line(std::string_view line, uint32_t where) {
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 >= line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos)
      return false;
    merges.emplace_back(keep(line.substr(0, sp)), keep(line.substr(sp + 1)));
    merge_line.push_back(where);
    return true;
  }
};

// obj[key], or null when absent (operator[] on a const json must not be used for absent keys).
const nlohmann::json& member(const nlohmann::json& obj, const char* key) {
  static const nlohmann::json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(key);
  return it == obj.end() ? kNull : *it;
}

// SAX reader for vocab.json / tokenizer.json: the vocabulary object and the merges array stream
// straight into the RawTokenizer (a DOM of 150k entries costs more than all the rest of loading);
// everything else becomes an ordinary DOM in `root`.
class TokenizerJsonReader {
 public:
  using json = nlohmann::json;
  // `vocab_path` / `merges_path`: keys leading to the streamed containers ({} is the root object);
  // a file without merges passes std::nullopt.
  TokenizerJsonReader(RawTokenizer& raw, std::string path, std::vector<std::string> vocab_path,
                      std::optional<std::vector<std::string>> merges_path)
      : raw_(raw), path_(std::move(path)), vocab_path_(std::move(vocab_path)), merges_path_(std::move(merges_path)) {}

  json read(const std::string& text) {
    json::sax_parse(text, this);
    return std::move(root_);
  }

  // nlohmann's SAX interface.
  bool null() { return value(nullptr); }
  bool boolean(bool v) { return value(v); }
  bool number_integer(json::number_integer_t v) { return mode_ == kVocab ? vocab_value(v) : value(v); }
  bool number_unsigned(json::number_unsigned_t v) {
    return mode_ == kVocab ? vocab_value(v > uint64_t(INT64_MAX) ? -1 : int64_t(v)) : value(v);
  }
  bool number_float(json::number_float_t v, const json::string_t&) {
    return mode_ == kVocab ? vocab_value(-1) : value(v);
  }
  bool string(json::string_t& s) {
    if (mode_ == kVocab) return vocab_value(-1);
    if (mode_ == kMerges) return merge_string(s);
    return value(std::move(s));
  }
  bool binary(json::binary_t&) { return false; }  // not produced by JSON text
  bool key(json::string_t& k) {
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) {
    LA_CHECK(mode_ == kNone, RuntimeError, where(), " holds a JSON object where a ",
             mode_ == kVocab ? "token id" : "merge", " belongs.", redownload_hint(path_));
    return open(json::object(), false);
  }
  bool end_object() { return close(); }
  bool start_array(std::size_t) {
    LA_CHECK(mode_ != kVocab, RuntimeError, where(), " holds an array where a token id belongs.",
             redownload_hint(path_));
    if (mode_ == kMerges) {  // ["left", "right"]
      LA_CHECK(pair_size_ < 0, RuntimeError, where(), " nests arrays inside a merge.", redownload_hint(path_));
      pair_size_ = 0;
      return true;
    }
    return open(json::array(), true);
  }
  bool end_array() {
    if (mode_ == kMerges && pair_size_ >= 0) {
      LA_CHECK(pair_size_ == 2, RuntimeError, where(), " is not a pair of token strings.", redownload_hint(path_));
      raw_.merges.emplace_back(pair_[0], pair_[1]);
      raw_.merge_line.push_back(merge_index_++);
      pair_size_ = -1;
      return true;
    }
    return close();
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) {
    throw RuntimeError(str_cat("'", path_, "' is not valid JSON near byte ", position, " (", e.what(), ").",
                               redownload_hint(path_)));
  }

 private:
  enum Mode { kNone, kVocab, kMerges };
  struct Frame {
    json* node;  // null inside the streamed vocab / merges containers
    bool array;
    std::string key;
  };

  std::string where() const {
    std::string w = "'" + path_ + "'";
    for (size_t i = 1; i < frames_.size(); ++i) w += (frames_[i - 1].array ? "[]" : "." + frames_[i].key);
    if (mode_ == kVocab) w += " at token '" + key_ + "'";
    if (mode_ == kMerges) w += str_cat(" merge ", merge_index_);
    return w;
  }

  // Path of a container about to open: the keys of the enclosing objects ("[]" for arrays).
  bool opening_at(const std::vector<std::string>& want) const {
    if (want.size() != frames_.size()) return false;
    for (size_t i = 0; i < want.size(); ++i) {
      const std::string& k = i + 1 < frames_.size() ? frames_[i + 1].key : (frames_.back().array ? "[]" : key_);
      if (k != want[i]) return false;
    }
    return true;
  }

  bool open(json&& container, bool array) {
    std::string key = frames_.empty() ? std::string() : frames_.back().array ? "[]" : key_;
    if (!array && opening_at(vocab_path_)) {
      mode_ = kVocab;
      frames_.push_back({nullptr, false, std::move(key)});
      return true;
    }
    if (array && merges_path_ && opening_at(*merges_path_)) {
      mode_ = kMerges;
      frames_.push_back({nullptr, true, std::move(key)});
      return true;
    }
    json* node = place(std::move(container));
    frames_.push_back({node, array, std::move(key)});
    return true;
  }
  bool close() {
    if (!frames_.back().node) mode_ = kNone;
    frames_.pop_back();
    return true;
  }
  json* place(json&& v) {
    if (frames_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    json& parent = *frames_.back().node;
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    json& slot = parent[key_];
    slot = std::move(v);
    return &slot;
  }
  template <typename T>
  bool value(T&& v) {
    place(json(std::forward<T>(v)));
    return true;
  }
  bool vocab_value(int64_t id) {
    LA_CHECK(id >= 0 && id < std::numeric_limits<int32_t>::max(), RuntimeError, where(),
             ": the id is not a non-negative 32-bit integer.", redownload_hint(path_));
    raw_.vocab.emplace_back(raw_.keep(key_), static_cast<int32_t>(id));
    return true;
  }
  bool merge_string(const std::string& s) {
    if (pair_size_ >= 0) {  // inside ["left", "right"]
      LA_CHECK(pair_size_ < 2, RuntimeError, where(), " has more than two tokens.", redownload_hint(path_));
      pair_[pair_size_++] = raw_.keep(s);
      return true;
    }
    LA_CHECK(raw_.add_merge_line(s, merge_index_), RuntimeError, where(), " is '", s,
             "', not two tokens separated by one space.", redownload_hint(path_));
    ++merge_index_;
    return true;
  }

  RawTokenizer& raw_;
  std::string path_;
  std::vector<std::string> vocab_path_;
  std::optional<std::vector<std::string>> merges_path_;
  json root_;
  std::vector<Frame> frames_;
  std::string key_;
  Mode mode_ = kNone;
  RawTokenizer::Span pair_[2] = {};
  int pair_size_ = -1;
  uint32_t merge_index_ = 0;
};

int64_t read_model_max_length(const nlohmann::json& config) {
  auto it = config.find("model_max_length");
  if (it == config.end() || !it->is_number()) return 0;
  // transformers writes int(1e30) when there is no limit; report that as "no limit" too.
  double v = it->get<double>();
  if (!(v > 0) || v >= 9.0e18) return 0;
  return it->is_number_integer() ? it->get<int64_t>() : static_cast<int64_t>(v);
}

RawAddedToken parse_added_token(const nlohmann::json& t, int32_t id, const std::string& where) {
  LA_CHECK(t.is_object() && member(t, "content").is_string(), RuntimeError, "'", where, "': added token ", id,
           " has no string 'content'.", redownload_hint(where));
  bool special = t.value("special", false);
  // HF's AddedToken default: special tokens are matched on the raw text, others after normalization.
  RawAddedToken a{t["content"].get<std::string>(), id, special, t.value("normalized", !special)};
  for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
    LA_CHECK(!t.value(flag, false), RuntimeError, "'", where, "': added token '", a.content, "' sets '", flag,
             "', which this tokenizer does not implement (the LocateAnything tokenizer never sets it).");
  }
  LA_CHECK(!a.content.empty(), RuntimeError, "'", where, "': added token ", id, " is empty.", redownload_hint(where));
  return a;
}

void load_tokenizer_json(const std::string& path, RawTokenizer& raw) {
  raw.vocab_file = raw.merges_file = path;
  TokenizerJsonReader reader(raw, path, {"model", "vocab"}, std::vector<std::string>{"model", "merges"});
  nlohmann::json j = reader.read(read_file(path));
  const nlohmann::json& model = member(j, "model");
  LA_CHECK(model.is_object(), RuntimeError, "'", path, "' has no 'model' object.", redownload_hint(path));
  // The reader streams model.vocab (an object) and model.merges (an array) past the DOM, so either
  // key left in the DOM had the wrong type.
  LA_CHECK(!model.contains("vocab") && !model.contains("merges") && !raw.vocab.empty(), RuntimeError, "'", path,
           "': model.vocab must be an object of token ids and model.merges an array of merges.",
           redownload_hint(path));
  LA_CHECK(model.value("type", std::string("BPE")) == "BPE", RuntimeError, "'", path, "': model type '",
           model.value("type", std::string()), "' is not supported; only the Qwen2 byte-level BPE is.");
  LA_CHECK(!model.value("byte_fallback", false) && model.value("continuing_subword_prefix", std::string()).empty() &&
               model.value("end_of_word_suffix", std::string()).empty() && member(model, "dropout").is_null(),
           RuntimeError, "'", path,
           "': the BPE model sets byte_fallback, dropout or subword affixes, which the Qwen2 tokenizer never does.");

  const nlohmann::json& norm = member(j, "normalizer");
  if (norm.is_null()) {
    raw.nfc = false;
  } else {
    LA_CHECK(norm.is_object() && norm.value("type", std::string()) == "NFC", RuntimeError, "'", path,
             "': normalizer ", shown(norm), " is not supported; the Qwen2 tokenizer uses {\"type\": \"NFC\"}.");
  }
  // The pre-tokenizer is implemented by hand, so accept only the exact Qwen2 one.
  const nlohmann::json& pre = member(j, "pre_tokenizer");
  const nlohmann::json& steps = member(pre, "pretokenizers");
  bool pre_ok = pre.value("type", std::string()) == "Sequence" && steps.is_array() && steps.size() == 2;
  if (pre_ok) {
    const auto& split = steps[0];
    const auto& bl = steps[1];
    pre_ok = split.value("type", std::string()) == "Split" &&
             member(split, "pattern").value("Regex", std::string()) == kQwen2Pattern &&
             split.value("behavior", std::string()) == "Isolated" && !split.value("invert", false) &&
             bl.value("type", std::string()) == "ByteLevel" && !bl.value("add_prefix_space", false) &&
             !bl.value("use_regex", true);
  }
  LA_CHECK(pre_ok, RuntimeError, "'", path,
           "': pre_tokenizer is not the Qwen2 one (Split on the Qwen2 regex, then ByteLevel without regex); only "
           "that pre-tokenizer is implemented.");

  const nlohmann::json& added = member(j, "added_tokens");
  if (!added.is_null()) {
    LA_CHECK(added.is_array(), RuntimeError, "'", path, "': added_tokens must be an array.", redownload_hint(path));
    for (const auto& t : added) {
      const nlohmann::json& id = member(t, "id");
      LA_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                   id.get<int64_t>() < std::numeric_limits<int32_t>::max(),
               RuntimeError, "'", path, "': added token ", shown(t), " has no valid 'id'.", redownload_hint(path));
      raw.added.push_back(parse_added_token(t, id.get<int32_t>(), path));
    }
  }
}

void load_slow_files(const std::string& dir, const nlohmann::json& config, const std::string& config_path,
                     RawTokenizer& raw) {
  raw.vocab_file = checkpoint_file(dir, "vocab.json");
  raw.merges_file = checkpoint_file(dir, "merges.txt");
  raw.merges_from_txt = true;
  TokenizerJsonReader(raw, raw.vocab_file, {}, std::nullopt).read(read_file(raw.vocab_file));
  LA_CHECK(!raw.vocab.empty(), RuntimeError, "'", raw.vocab_file, "' is not a JSON object mapping tokens to ids.",
           redownload_hint(raw.vocab_file));

  // merges.txt: "#version" header, then "left right" per line in rank order. Blank lines are
  // skipped, as transformers' Qwen2Tokenizer does.
  std::string text = read_file(raw.merges_file);
  raw.arena.reserve(raw.arena.size() + text.size());
  size_t pos = 0;
  uint32_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.substr(0, 8) == "#version")) continue;
    LA_CHECK(raw.add_merge_line(line, line_no), RuntimeError, "'", raw.merges_file, "' line ", line_no, " is '", line,
             "', not two tokens separated by one space. The file is corrupt.", redownload_hint(raw.merges_file));
  }

  // Added tokens: tokenizer_config.json's added_tokens_decoder (id -> properties) and
  // added_tokens.json (content -> id); ids must agree, the config's properties win.
  std::unordered_map<int32_t, size_t> by_id;
  const nlohmann::json& decoder = member(config, "added_tokens_decoder");
  if (decoder.is_object()) {
    for (auto it = decoder.begin(); it != decoder.end(); ++it) {
      char* end = nullptr;
      long id = std::strtol(it.key().c_str(), &end, 10);
      LA_CHECK(end && *end == '\0' && !it.key().empty() && id >= 0 && id < std::numeric_limits<int32_t>::max(),
               RuntimeError, "'", config_path, "': added_tokens_decoder key '", it.key(), "' is not a token id.",
               redownload_hint(config_path));
      by_id[static_cast<int32_t>(id)] = raw.added.size();
      raw.added.push_back(parse_added_token(it.value(), static_cast<int32_t>(id), config_path));
    }
  }
  std::string added_path = optional_checkpoint_file(dir, "added_tokens.json");
  if (!added_path.empty()) {
    nlohmann::json added = read_json_file(added_path);
    LA_CHECK(added.is_object(), RuntimeError, "'", added_path, "' must be a JSON object mapping tokens to ids.",
             redownload_hint(added_path));
    for (auto it = added.begin(); it != added.end(); ++it) {
      LA_CHECK(it.value().is_number_integer() && it.value().get<int64_t>() >= 0 &&
                   it.value().get<int64_t>() < std::numeric_limits<int32_t>::max(),
               RuntimeError, "'", added_path, "': the id of '", it.key(), "' is not a non-negative integer.",
               redownload_hint(added_path));
      int32_t id = it.value().get<int32_t>();
      auto found = by_id.find(id);
      if (found != by_id.end()) {
        LA_CHECK(raw.added[found->second].content == it.key(), RuntimeError, "'", added_path, "' gives id ", id,
                 " to '", it.key(), "' but '", config_path, "' gives it to '", raw.added[found->second].content,
                 "'.", redownload_hint(added_path));
        continue;
      }
      by_id[id] = raw.added.size();
      raw.added.push_back(RawAddedToken{it.key(), id, false, false});
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Loading

Tokenizer Tokenizer::from_dir(const std::string& dir) {
  LA_CHECK(dir_exists(dir), FileNotFound, "tokenizer folder '", dir,
           "' does not exist. Point it at a LocateAnything checkpoint folder (with vocab.json and merges.txt, or "
           "tokenizer.json).");
  RawTokenizer raw;
  std::string config_path = optional_checkpoint_file(dir, "tokenizer_config.json");
  nlohmann::json config = config_path.empty() ? nlohmann::json::object() : read_json_file(config_path);
  std::string json_path = optional_checkpoint_file(dir, "tokenizer.json");
  try {
    if (!json_path.empty()) load_tokenizer_json(json_path, raw);
    else load_slow_files(dir, config, config_path, raw);
  } catch (const nlohmann::json::exception& e) {
    // json::value()/get() on a field of the wrong type ("special": "yes") throw nlohmann's
    // type_error, which would escape the error policy without naming the folder.
    throw RuntimeError(str_cat("the tokenizer files in '", dir, "' have a field of the wrong type (", e.what(),
                               "). Re-download them from the LocateAnything checkpoint."));
  }

  auto impl = std::make_shared<Impl>();
  Impl& t = *impl;
  t.use_nfc = raw.nfc;
  t.model_max_length = read_model_max_length(config);

  int32_t size = 0;
  for (const auto& [span, id] : raw.vocab) size = std::max(size, id + 1);
  for (const auto& a : raw.added) size = std::max(size, a.id + 1);
  // Real vocabularies are dense; a stray huge id would otherwise allocate gigabytes.
  LA_CHECK(static_cast<size_t>(size) <= 2 * (raw.vocab.size() + raw.added.size()) + 1024, RuntimeError, "'",
           raw.vocab_file, "' and the added tokens use ids up to ", size - 1, " for only ",
           raw.vocab.size() + raw.added.size(), " tokens.", redownload_hint(raw.vocab_file));
  t.kind.assign(size, TokenKind::kNone);

  // Per-id texts: vocab entries first, then added tokens (which may reuse a vocab entry's id only
  // when they are the same string).
  std::vector<std::string_view> text_of(size);
  for (const auto& [span, id] : raw.vocab) {
    LA_CHECK(t.kind[id] == TokenKind::kNone, RuntimeError, "'", raw.vocab_file, "' gives id ", id, " to both '",
             text_of[id], "' and '", raw.view(span), "'.", redownload_hint(raw.vocab_file));
    text_of[id] = raw.view(span);
    t.kind[id] = TokenKind::kVocab;
  }
  for (const auto& a : raw.added) {
    LA_CHECK(t.kind[a.id] == TokenKind::kNone || text_of[a.id] == a.content, RuntimeError, "added token '",
             a.content, "' has id ", a.id, ", which '", raw.vocab_file, "' or another added token gives to '",
             text_of[a.id], "'. The tokenizer files do not belong together;", redownload_hint(raw.vocab_file));
    text_of[a.id] = a.content;
    t.kind[a.id] = a.special ? TokenKind::kSpecial : TokenKind::kAdded;
  }

  const ByteAlphabet& alphabet = byte_alphabet();
  size_t total = 0;
  for (std::string_view s : text_of) total += s.size();
  t.text_arena.reserve(total);
  t.bytes_arena.reserve(total);
  t.text_offset.resize(size + 1);
  t.bytes_offset.resize(size + 1);
  for (int32_t id = 0; id < size; ++id) {
    t.text_offset[id] = static_cast<uint32_t>(t.text_arena.size());
    t.bytes_offset[id] = static_cast<uint32_t>(t.bytes_arena.size());
    if (t.kind[id] == TokenKind::kNone) continue;
    std::string_view s = text_of[id];
    t.text_arena += s;
    if (t.kind[id] != TokenKind::kVocab) {
      t.bytes_arena += s;  // added tokens decode to their literal content
      continue;
    }
    // Byte-level decode; a token with a character outside the alphabet keeps its UTF-8 bytes,
    // as the HF ByteLevel decoder does.
    size_t mark = t.bytes_arena.size();
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (size_t i = 0; i < s.size();) {
      Utf8Step st = utf8_step(p + i, s.size() - i);
      if (!st.valid || st.cp >= 324 || alphabet.cp_to_byte[st.cp] < 0) {
        t.bytes_arena.resize(mark);
        t.bytes_arena += s;
        break;
      }
      t.bytes_arena.push_back(static_cast<char>(alphabet.cp_to_byte[st.cp]));
      i += st.len;
    }
  }
  t.text_offset[size] = static_cast<uint32_t>(t.text_arena.size());
  t.bytes_offset[size] = static_cast<uint32_t>(t.bytes_arena.size());

  auto text = [&t](int32_t id) { return t.text(id); };
  t.vocab_index.reserve(raw.vocab.size());
  for (const auto& [span, id] : raw.vocab) {
    int32_t other = t.vocab_index.insert(t.text(id), id, text);
    LA_CHECK(other < 0, RuntimeError, "'", raw.vocab_file, "' lists token '", t.text(id), "' twice (ids ", other,
             " and ", id, ").", redownload_hint(raw.vocab_file));
  }
  t.added_index.reserve(raw.added.size());
  for (const auto& a : raw.added) {
    int32_t other = t.added_index.insert(a.content, a.id, text);
    LA_CHECK(other < 0 || other == a.id, RuntimeError, "added token '", a.content, "' has two ids (", other, " and ",
             a.id, ").", redownload_hint(raw.vocab_file));
    if (other >= 0) continue;
    if (a.normalized && t.use_nfc) {
      std::vector<uint32_t> cps;
      decode_units(a.content, cps);
      std::string normalized;
      for (uint32_t cp : nfc(cps)) append_utf8(normalized, cp);
      t.normalized_added.add(normalized, a.id);
    } else if (a.normalized) {
      t.normalized_added.add(a.content, a.id);
    } else {
      t.raw_added.add(a.content, a.id);
    }
  }

  for (uint32_t b = 0; b < 256; ++b) {
    std::string ch;
    append_utf8(ch, alphabet.byte_to_cp[b]);
    t.byte_ids[b] = t.vocab_id(ch);
    LA_CHECK(t.byte_ids[b] >= 0, RuntimeError, "'", raw.vocab_file, "' has no entry for byte ", b, " ('", ch,
             "'), so it is not a byte-level BPE vocabulary.", redownload_hint(raw.vocab_file));
  }

  t.merges.reserve(raw.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < raw.merges.size(); ++rank) {
    std::string_view left = raw.view(raw.merges[rank].first), right = raw.view(raw.merges[rank].second);
    joined.assign(left).append(right);
    int32_t l = t.vocab_id(left), r = t.vocab_id(right), m = t.vocab_id(joined);
    LA_CHECK(l >= 0 && r >= 0 && m >= 0, RuntimeError, raw.merge_where(rank), ": merge '", left, "' + '", right,
             "' uses or makes a token that '", raw.vocab_file, "' lacks ('",
             l < 0 ? left : r < 0 ? right : std::string_view(joined),
             "'). The vocabulary and the merges come from different tokenizers; re-download both from the same "
             "checkpoint.");
    t.merges.insert(l, r, static_cast<uint32_t>(rank), m);
  }

  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

// ---------------------------------------------------------------------------------------------
// Encoding

void Tokenizer::Impl::encode_segment(std::string_view seg, std::vector<int32_t>& out, EncodeScratch& sc) const {
  auto encode_pieces = [&](std::string_view text) {
    if (normalized_added.empty()) {
      encode_piece(text, out, sc);
      return;
    }
    // `text` may be sc.normalized, which encode_piece does not touch.
    normalized_added.split(
        text, [&](std::string_view piece) { encode_piece(piece, out, sc); },
        [&](int32_t id) { out.push_back(id); });
  };
  // NFC can only change text that has a code point whose quick check fails; ASCII never does.
  bool maybe_changes = false;
  if (use_nfc) {
    for (char c : seg) {
      if (static_cast<unsigned char>(c) >= 0x80) {
        maybe_changes = true;
        break;
      }
    }
  }
  if (maybe_changes) {
    decode_units(seg, sc.cps);
    maybe_changes = std::any_of(sc.cps.begin(), sc.cps.end(),
                                [](uint32_t cp) { return unit_flags(cp) & unicode::kNfcUnsafe; });
  }
  if (!maybe_changes) {
    encode_pieces(seg);
    return;
  }
  sc.normalized.clear();
  for (uint32_t cp : nfc(sc.cps)) append_utf8(sc.normalized, cp);
  encode_pieces(sc.normalized);
}

void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out, EncodeScratch& sc) const {
  // Units with their byte offsets in `piece`, so each pre-token maps back to its bytes.
  sc.cps.clear();
  sc.flags.clear();
  std::vector<uint32_t>& offsets = sc.offsets;
  offsets.clear();
  const auto* s = reinterpret_cast<const unsigned char*>(piece.data());
  for (size_t i = 0; i < piece.size();) {
    offsets.push_back(static_cast<uint32_t>(i));
    Utf8Step st = s[i] < 0x80 ? Utf8Step{s[i], 1, true} : utf8_step(s + i, piece.size() - i);
    if (st.valid) {
      sc.cps.push_back(st.cp);
      sc.flags.push_back(unicode::flags(st.cp));
      i += st.len;
    } else {
      sc.cps.push_back(kInvalidByte | s[i]);
      sc.flags.push_back(0);
      i += 1;
    }
  }
  offsets.push_back(static_cast<uint32_t>(piece.size()));
  size_t n = sc.cps.size();
  for (size_t i = 0; i < n;) {
    size_t j = match_pretoken(sc.cps.data(), sc.flags.data(), i, n);
    LA_ASSERT(j > i && j <= n, "pre-tokenizer made no progress at unit ", i);
    bpe(piece.substr(offsets[i], offsets[j] - offsets[i]), out, sc);
    i = j;
  }
}

// Byte-level BPE on one pre-token: always apply the lowest-ranked merge present, leftmost first
// on ties (HF's priority queue order); stale queue entries are skipped when popped.
void Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& out, EncodeScratch& sc) const {
  const size_t n = word.size();
  if (n == 1) {
    out.push_back(byte_ids[static_cast<unsigned char>(word[0])]);
    return;
  }
  auto& sym = sc.symbols;
  sym.resize(n);
  for (size_t i = 0; i < n; ++i)
    sym[i] = {byte_ids[static_cast<unsigned char>(word[i])], static_cast<int32_t>(i) - 1,
              i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
  auto& heap = sc.heap;
  heap.clear();
  auto cmp = std::greater<EncodeScratch::Candidate>();
  auto push_pair = [&](int32_t pos) {
    if (pos < 0 || sym[pos].next < 0) return;
    int32_t next = sym[pos].next;
    uint32_t rank;
    int32_t merged;
    if (!merges.find(sym[pos].id, sym[next].id, rank, merged)) return;
    heap.push_back({rank, pos, sym[pos].id, sym[next].id, merged});
    std::push_heap(heap.begin(), heap.end(), cmp);
  };
  for (size_t i = 0; i + 1 < n; ++i) push_pair(static_cast<int32_t>(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    EncodeScratch::Candidate c = heap.back();
    heap.pop_back();
    auto& left = sym[c.pos];
    if (left.id != c.left || left.next < 0 || sym[left.next].id != c.right) continue;
    int32_t right_pos = left.next;
    left.id = c.merged;
    left.next = sym[right_pos].next;
    if (left.next >= 0) sym[left.next].prev = c.pos;
    sym[right_pos].id = -1;  // removed
    push_pair(left.prev);
    push_pair(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  LA_CHECK(impl_, InvalidArgument, "Tokenizer is empty; create it with Tokenizer::from_dir(checkpoint_folder).");
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 16);
  EncodeScratch sc;
  impl_->raw_added.split(
      text, [&](std::string_view seg) { impl_->encode_segment(seg, out, sc); },
      [&](int32_t id) { out.push_back(id); });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding and lookups

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  LA_CHECK(impl_, InvalidArgument, "Tokenizer is empty; create it with Tokenizer::from_dir(checkpoint_folder).");
  std::string bytes;
  for (int32_t id : ids) {
    LA_CHECK(id >= 0 && id < impl_->size() && impl_->kind[id] != TokenKind::kNone, InvalidArgument, "token id ", id,
             " is not in the vocabulary (vocab_size ", impl_->size(),
             "); ids must come from this checkpoint's tokenizer.");
    bytes += impl_->bytes(id);
  }
  return sanitize_utf8(bytes);
}

int32_t Tokenizer::token_to_id(const std::string& token) const {
  LA_CHECK(impl_, InvalidArgument, "Tokenizer is empty; create it with Tokenizer::from_dir(checkpoint_folder).");
  int32_t id = impl_->added_id(token);
  return id >= 0 ? id : impl_->vocab_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  LA_CHECK(impl_, InvalidArgument, "Tokenizer is empty; create it with Tokenizer::from_dir(checkpoint_folder).");
  LA_CHECK(id >= 0 && id < impl_->size() && impl_->kind[id] != TokenKind::kNone, InvalidArgument, "token id ", id,
           " is not in the vocabulary (vocab_size ", impl_->size(), ").");
  return std::string(impl_->text(id));
}

int32_t Tokenizer::vocab_size() const {
  LA_CHECK(impl_, InvalidArgument, "Tokenizer is empty; create it with Tokenizer::from_dir(checkpoint_folder).");
  return impl_->size();
}

bool Tokenizer::is_added_token(int32_t id) const {
  LA_CHECK(impl_, InvalidArgument, "Tokenizer is empty; create it with Tokenizer::from_dir(checkpoint_folder).");
  return id >= 0 && id < impl_->size() &&
         (impl_->kind[id] == TokenKind::kAdded || impl_->kind[id] == TokenKind::kSpecial);
}

bool Tokenizer::is_special_token(int32_t id) const {
  LA_CHECK(impl_, InvalidArgument, "Tokenizer is empty; create it with Tokenizer::from_dir(checkpoint_folder).");
  return id >= 0 && id < impl_->size() && impl_->kind[id] == TokenKind::kSpecial;
}

int64_t Tokenizer::model_max_length() const {
  LA_CHECK(impl_, InvalidArgument, "Tokenizer is empty; create it with Tokenizer::from_dir(checkpoint_folder).");
  return impl_->model_max_length;
}

}  // namespace la
