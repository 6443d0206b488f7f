// Tokenizer tests: Qwen2 golden vectors, fixture prompts, both loading paths, round trips, errors.
#include "text/tokenizer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "core/error.h"
#include "io/files.h"
#include "text/unicode_data.h"
#include "test_util.h"

namespace la {
namespace {

using Ids = std::vector<int32_t>;

// Loaded once: the fixture folder with tokenizer.json, and tiny-a with only the released files.
const Tokenizer& json_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_dir(test::fixture("tokenizer"));
  return tok;
}
const Tokenizer& slow_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_dir(test::fixture("tiny-a"));
  return tok;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Strict UTF-8 validation (no surrogates, no overlongs, nothing above U+10FFFF).
bool is_valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned b = p[i];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (b < 0x80) need = 0;
    else if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b >= 0xE0 && b <= 0xEF) need = 2, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4) need = 3, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    else return false;
    for (size_t k = 1; k <= need; ++k) {
      if (i + k >= n || p[i + k] < lo || p[i + k] > hi) return false;
      lo = 0x80, hi = 0xBF;
    }
    i += need + 1;
  }
  return true;
}

Ids concat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// --- golden data ---------------------------------------------------------------------------------

TEST(TokenizerTest, Qwen2Vectors) {
  // Texts are separated by "\n__ggml_vocab_test__\n" (none before the first, one after the last);
  // the .out file has one line of space-separated ids per text.
  std::string inp = read_file(test::fixture("tokenizer/qwen2-vectors/qwen2.inp"));
  std::string out = read_file(test::fixture("tokenizer/qwen2-vectors/qwen2.out"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0;;) {
    size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      if (pos < inp.size()) texts.push_back(inp.substr(pos));
      break;
    }
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::vector<Ids> expected;
  std::istringstream lines(out);
  for (std::string line; expected.size() < texts.size() && std::getline(lines, line);) {
    std::istringstream ids(line);
    Ids row;
    for (int32_t id; ids >> id;) row.push_back(id);
    expected.push_back(row);
  }
  ASSERT_EQ(texts.size(), 46u);
  ASSERT_EQ(expected.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(json_tokenizer().encode(texts[i]), expected[i]) << "vector " << i << ": '" << texts[i] << "'";
    EXPECT_EQ(slow_tokenizer().encode(texts[i]), expected[i]) << "vector " << i << ": '" << texts[i] << "'";
  }
}

TEST(TokenizerTest, FixturePrompts) {
  int cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::fixture("tiny-a/cases"))) {
    if (entry.path().extension() != ".json") continue;
    nlohmann::json c = read_json_file(entry.path().string());
    if (!c.contains("prompt_text")) continue;
    std::string image = "<image 1><img>";
    for (int i = 0; i < c["num_image_tokens"].get<int>(); ++i) image += "<IMG_CONTEXT>";
    image += "</img>";
    std::string prompt = c["prompt_text"].get<std::string>();
    size_t at = prompt.find("<image-1>");
    ASSERT_NE(at, std::string::npos) << entry.path();
    prompt.replace(at, 9, image);

    std::filesystem::path npz = entry.path();
    npz.replace_extension(".npz");
    Ids expected = test::read_npz(npz.string()).at("input_ids").as_int32();
    EXPECT_EQ(slow_tokenizer().encode(prompt), expected) << entry.path();
    EXPECT_EQ(json_tokenizer().encode(prompt), expected) << entry.path();
    EXPECT_EQ(slow_tokenizer().decode(expected), prompt) << entry.path();
    ++cases;
  }
  EXPECT_GE(cases, 16);
}

// --- the two loading paths ---------------------------------------------------------------------------

TEST(TokenizerTest, BothLoadingPathsAgree) {
  const Tokenizer& a = json_tokenizer();
  const Tokenizer& b = slow_tokenizer();
  EXPECT_EQ(a.vocab_size(), 152681);
  EXPECT_EQ(b.vocab_size(), 152681);
  EXPECT_EQ(a.model_max_length(), 16384);
  EXPECT_EQ(b.model_max_length(), 16384);
  for (int32_t id = 0; id < a.vocab_size(); id += 97) {
    ASSERT_EQ(a.id_to_token(id), b.id_to_token(id)) << id;
    ASSERT_EQ(a.is_added_token(id), b.is_added_token(id)) << id;
    ASSERT_EQ(a.is_special_token(id), b.is_special_token(id)) << id;
    ASSERT_EQ(b.token_to_id(b.id_to_token(id)), id);
  }
  for (int32_t id = 151643; id < a.vocab_size(); ++id) {
    ASSERT_TRUE(b.is_added_token(id)) << id;
    ASSERT_EQ(a.id_to_token(id), b.id_to_token(id)) << id;
  }
  std::mt19937 rng(5);
  const char* pieces[] = {"Hello", " world", "\n\n", "  ", "<box>", "</c>", "123", "'s", "é", "e\xCC\x81", "東京",
                          "\xF0\x9F\x98\x80", "\t", "!!", "<|im_end|>", "\xE2\x80\xA8", "\xC2\xA0"};
  for (int i = 0; i < 500; ++i) {
    std::string s;
    for (int k = rng() % 12; k > 0; --k) s += pieces[rng() % std::size(pieces)];
    ASSERT_EQ(a.encode(s), b.encode(s)) << s;
  }
}

// --- encode behaviour ------------------------------------------------------------------------------

TEST(TokenizerTest, SpecialTokensInPlainText) {
  const Tokenizer& tok = slow_tokenizer();
  for (const char* special : {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<IMG_CONTEXT>", "<img>", "</img>",
                              "<box>", "</box>", "<ref>", "<0>", "<1000>", "</c>", "<tool_call>", "<|fim_pad|>"}) {
    int32_t id = tok.token_to_id(special);
    ASSERT_GE(id, 0) << special;
    EXPECT_TRUE(tok.is_added_token(id)) << special;
    EXPECT_EQ(tok.encode(special), Ids{id}) << special;
    EXPECT_EQ(tok.encode(std::string("x") + special + "y"), concat({tok.encode("x"), {id}, tok.encode("y")}));
    EXPECT_EQ(tok.decode({id}), special);
  }
  int32_t box = tok.token_to_id("<box>"), ebox = tok.token_to_id("</box>");
  EXPECT_EQ(tok.encode("<box></box><box>"), (Ids{box, ebox, box}));
  // Partial tokens are ordinary text.
  for (const char* partial : {"<box", "<|im_end", "IMG_CONTEXT>", "< box>"})
    for (int32_t id : tok.encode(partial)) EXPECT_FALSE(tok.is_added_token(id)) << partial;
  // Non-special added tokens are split out too.
  int32_t tool = tok.token_to_id("<tool_call>");
  EXPECT_FALSE(tok.is_special_token(tool));
  EXPECT_EQ(tok.encode("a<tool_call>b"), concat({tok.encode("a"), {tool}, tok.encode("b")}));
}

TEST(TokenizerTest, NfcAndAddedTokenOrder) {
  const Tokenizer& tok = slow_tokenizer();
  // Decomposed input encodes like the composed form.
  EXPECT_EQ(tok.encode("caf" "e\xCC\x81"), tok.encode("caf\xC3\xA9"));
  EXPECT_EQ(tok.encode("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), tok.encode("\xEA\xB0\x81"));  // jamo -> 각
  EXPECT_EQ(tok.encode("\xE2\x84\xAB"), tok.encode("\xC3\x85"));                            // Angstrom -> Å
  // Added tokens are matched before NFC, so U+0338 after "<box>" does not turn '>' into U+226F.
  EXPECT_EQ(tok.encode("<box>\xCC\xB8"), concat({{tok.token_to_id("<box>")}, tok.encode("\xCC\xB8")}));
  EXPECT_EQ(tok.encode("a>\xCC\xB8"), tok.encode("a\xE2\x89\xAF"));
}

TEST(TokenizerTest, RoundTripRandomUtf8) {
  const Tokenizer& tok = slow_tokenizer();
  std::mt19937 rng(42);
  auto random_cp = [&]() -> uint32_t {
    switch (rng() % 6) {
      case 0: return 0x20 + rng() % 0x5F;
      case 1: return "\n\t\r "[rng() % 4];
      case 2: return 0xA0 + rng() % 0x2F60;
      case 3: return 0x4E00 + rng() % 0x5200;
      case 4: return 0x1F300 + rng() % 0x700;
      default: return rng() % 0x110000;
    }
  };
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    for (int k = rng() % 40; k > 0;) {
      uint32_t cp = random_cp();
      // Keep the text NFC (then decode(encode(s)) == s exactly) and skip surrogates.
      if ((cp >= 0xD800 && cp <= 0xDFFF) || (unicode::flags(cp) & unicode::kNfcUnsafe)) continue;
      append_utf8(s, cp);
      --k;
    }
    if (rng() % 4 == 0) s += "<|im_end|>";
    ASSERT_EQ(tok.decode(tok.encode(s)), s);
  }
}

TEST(TokenizerTest, InvalidUtf8NeverCrashes) {
  const Tokenizer& tok = slow_tokenizer();
  // Each ill-formed part decodes to U+FFFD the way Python's bytes.decode('utf-8', 'replace') does.
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(tok.decode(tok.encode("\xFF")), fffd);
  EXPECT_EQ(tok.decode(tok.encode("a\xE4\xB8" "b")), "a" + fffd + "b");  // one maximal subpart
  EXPECT_EQ(tok.decode(tok.encode("\xED\xA0\x80")), fffd + fffd + fffd);  // a UTF-16 surrogate
  EXPECT_EQ(tok.decode(tok.encode("\xC0\xAF")), fffd + fffd);             // overlong
  EXPECT_EQ(tok.decode(tok.encode("x\xF0\x9F\x98")), "x" + fffd);         // truncated at the end
  std::mt19937 rng(9);
  for (int i = 0; i < 3000; ++i) {
    std::string s(rng() % 32, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 3 == 0 ? 0x80 + rng() % 0x80 : rng() % 256);
    Ids ids = tok.encode(s);
    std::string back = tok.decode(ids);
    ASSERT_TRUE(is_valid_utf8(back)) << "input #" << i;
    if (is_valid_utf8(s) && s.find('<') == std::string::npos) {
      // Valid text keeps its bytes unless NFC changes it.
      bool nfc_stable = true;
      for (size_t k = 0; k < s.size(); ++k)
        if (static_cast<unsigned char>(s[k]) >= 0xCC) nfc_stable = false;
      if (nfc_stable) ASSERT_EQ(back, s);
    }
  }
}

TEST(TokenizerTest, DecodeKeepsSpecialTokens) {
  const Tokenizer& tok = slow_tokenizer();
  std::string text = "<|im_start|>user\nFind <ref>the cat</ref><box><12><34></box> now.<|im_end|>\n";
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
  EXPECT_EQ(tok.decode({}), "");
  EXPECT_EQ(tok.encode(""), Ids{});
}

// --- speed ----------------------------------------------------------------------------------------------

TEST(TokenizerTest, LoadAndEncodeAreFast) {
  auto start = std::chrono::steady_clock::now();
  Tokenizer tok = Tokenizer::from_dir(test::fixture("tiny-a"));
  double load_s = seconds_since(start);

  std::string prompt = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<img>";
  for (int i = 0; i < 6500; ++i) prompt += "<IMG_CONTEXT>";
  prompt += "</img>Locate all the instances that match: the dog's red ball.<|im_end|>\n<|im_start|>assistant\n";
  start = std::chrono::steady_clock::now();
  Ids ids = tok.encode(prompt);
  double prompt_s = seconds_since(start);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.token_to_id("<IMG_CONTEXT>")), 6500);

  std::string text;
  for (int i = 0; i < 2000; ++i) text += "The quick brown fox jumps over the lazy dog's back; naïve café 東京 12345 !!\n";
  start = std::chrono::steady_clock::now();
  Ids text_ids = tok.encode(text);
  double text_s = seconds_since(start);
  std::string word(100000, 'a');  // one pre-token: the BPE must not be quadratic
  start = std::chrono::steady_clock::now();
  Ids word_ids = tok.encode(word);
  double word_s = seconds_since(start);
  EXPECT_EQ(tok.decode(word_ids), word);

  std::printf("[ timing ] load %.1f ms, 6500-image-token prompt %.2f ms, %zu bytes of text %.1f ms, "
              "100k-byte word %.1f ms\n",
              1e3 * load_s, 1e3 * prompt_s, text.size(), 1e3 * text_s, 1e3 * word_s);
  // Generous bounds (shared CI cores, sanitizer builds); the typical figures are ~100 ms and < 1 ms.
  EXPECT_LT(load_s, 3.0);
  EXPECT_LT(prompt_s, 0.25);
  EXPECT_LT(word_s, 2.0);
}

TEST(TokenizerTest, ConcurrentEncodeMatchesSerial) {
  const Tokenizer& tok = slow_tokenizer();
  std::vector<std::string> texts;
  for (int i = 0; i < 32; ++i) {
    std::string s;
    for (int k = 0; k < 50; ++k) s += "Thread " + std::to_string(i * k) + " says héllo <box> wörld 東京\n";
    texts.push_back(s);
  }
  std::vector<Ids> expected;
  for (const auto& s : texts) expected.push_back(tok.encode(s));
  std::vector<Ids> got(texts.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = t; i < texts.size(); i += 4) got[i] = tok.encode(texts[i]);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(got, expected);
}

// --- a tiny synthetic tokenizer for the error paths and added-token rules ---------------------------

// The GPT-2 byte-level form of one byte.
std::string byte_char(unsigned b) {
  bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
  uint32_t cp = b;
  if (!printable) {
    uint32_t n = 0;
    for (unsigned x = 0; x < b; ++x)
      if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) ++n;
    cp = 256 + n;
  }
  std::string s;
  append_utf8(s, cp);
  return s;
}

// Writes vocab.json (256 byte tokens + `extra`), merges.txt and optionally added_tokens.json.
std::string write_tiny_tokenizer(const std::string& name, const std::vector<std::string>& extra,
                                 const std::string& merges, const nlohmann::json& added = nullptr) {
  std::string dir = test::temp_dir(name);
  nlohmann::json vocab = nlohmann::json::object();
  for (unsigned b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  for (size_t i = 0; i < extra.size(); ++i) vocab[extra[i]] = 256 + i;
  std::ofstream(dir + "/vocab.json") << vocab.dump();
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\n" << merges;
  if (!added.is_null()) std::ofstream(dir + "/added_tokens.json") << added.dump();
  return dir;
}

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(TokenizerTest, SyntheticMergesAndLongestAddedToken) {
  nlohmann::json added = {{"<a>", 262}, {"<a><b>", 263}};
  std::string dir = write_tiny_tokenizer("tok_synthetic", {"ab", "abc", "ĠĠ", "ĠĠĠĠ", "Ġab", "xx"},
                                         "a b\nab c\nĠ Ġ\nĠĠ ĠĠ\nĠ ab\nx x\n", added);
  Tokenizer tok = Tokenizer::from_dir(dir);
  EXPECT_EQ(tok.vocab_size(), 264);
  EXPECT_EQ(tok.model_max_length(), 0);
  // Byte b has id b here; "ab" 256, "abc" 257, "ĠĠ" 258, "ĠĠĠĠ" 259, "Ġab" 260, "xx" 261.
  EXPECT_EQ(tok.encode("abc"), Ids{257});
  EXPECT_EQ(tok.encode("abcab"), (Ids{257, 256}));  // both "a b" first (rank 0), then "ab c"
  EXPECT_EQ(tok.encode(" ab"), Ids{260});            // "a b" before "Ġ ab"
  EXPECT_EQ(tok.encode("xxx"), (Ids{261, 'x'}));     // equal ranks: leftmost first
  EXPECT_EQ(tok.encode("    "), Ids{259});           // ĠĠ|ĠĠ, then ĠĠĠĠ
  EXPECT_EQ(tok.encode("zz"), (Ids{'z', 'z'}));      // no merge: bytes stay
  // Added tokens: leftmost, then longest.
  EXPECT_EQ(tok.encode("<a><b>"), Ids{263});
  EXPECT_EQ(tok.encode("<a><a><b>"), (Ids{262, 263}));
  EXPECT_EQ(tok.encode("<a><b"), concat({{262}, tok.encode("<b")}));
  EXPECT_EQ(tok.decode({263, 257, 32}), "<a><b>abc ");
}

TEST(TokenizerTest, NormalizedAddedTokenIsMatchedAfterNfc) {
  std::string dir = write_tiny_tokenizer("tok_normalized_added", {}, "");
  // U+00E9 as a normalized added token: "e" + U+0301 becomes U+00E9 first, then matches.
  nlohmann::json decoder = {{"256", {{"content", "\xC3\xA9"}, {"normalized", true}, {"special", false}}},
                            {"257", {{"content", "<s>"}, {"normalized", false}, {"special", true}}}};
  std::ofstream(dir + "/tokenizer_config.json") << nlohmann::json{{"added_tokens_decoder", decoder},
                                                                  {"model_max_length", 1e30}}.dump();
  Tokenizer tok = Tokenizer::from_dir(dir);
  EXPECT_EQ(tok.model_max_length(), 0);  // transformers' "no limit"
  EXPECT_EQ(tok.encode("e\xCC\x81"), Ids{256});
  EXPECT_EQ(tok.encode("x\xC3\xA9<s>"), (Ids{'x', 256, 257}));
  EXPECT_TRUE(tok.is_special_token(257));
  EXPECT_FALSE(tok.is_special_token(256));
}

// A minimal tokenizer.json (merges in the newer ["left", "right"] form) and its validation.
TEST(TokenizerTest, TokenizerJsonPath) {
  std::string dir = test::temp_dir("tok_json");
  nlohmann::json vocab = nlohmann::json::object();
  for (unsigned b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  vocab["ab"] = 256;
  const std::string pattern =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  nlohmann::json j = {
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
      {"added_tokens",
       {{{"id", 257}, {"content", "<s>"}, {"special", true}, {"normalized", false}, {"lstrip", false},
         {"rstrip", false}, {"single_word", false}}}},
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array({nlohmann::json::array({"a", "b"})})}}}};
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  Tokenizer tok = Tokenizer::from_dir(dir);
  EXPECT_EQ(tok.vocab_size(), 258);
  EXPECT_EQ(tok.encode("ab<s>"), (Ids{256, 257}));

  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  std::string msg = error_of([&] { Tokenizer::from_dir(dir); });
  EXPECT_NE(msg.find("pre_tokenizer"), std::string::npos) << msg;

  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = pattern;
  j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"a", "b", "c"})});
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  msg = error_of([&] { Tokenizer::from_dir(dir); });
  EXPECT_NE(msg.find("model.merges"), std::string::npos) << msg;

  j["model"]["merges"] = {{"a", "b"}};  // an object, not a list of merges
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  msg = error_of([&] { Tokenizer::from_dir(dir); });
  EXPECT_NE(msg.find("merges"), std::string::npos) << msg;
}

TEST(TokenizerTest, MissingVocabIsFileNotFound) {
  std::string dir = test::temp_dir("tok_missing_vocab");
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\n";
  EXPECT_THROW(Tokenizer::from_dir(dir), FileNotFound);
  EXPECT_NE(error_of([&] { Tokenizer::from_dir(dir); }).find("vocab.json"), std::string::npos);
  EXPECT_THROW(Tokenizer::from_dir(dir + "/does_not_exist"), FileNotFound);
}

TEST(TokenizerTest, CorruptMergesLineIsRuntimeError) {
  std::string dir = write_tiny_tokenizer("tok_bad_merges", {"ab"}, "a b\nthis line is corrupt\n");
  EXPECT_THROW(Tokenizer::from_dir(dir), RuntimeError);
  std::string msg = error_of([&] { Tokenizer::from_dir(dir); });
  EXPECT_NE(msg.find("merges.txt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
}

TEST(TokenizerTest, MergeMissingFromVocabIsRuntimeError) {
  std::string dir = write_tiny_tokenizer("tok_mismatch", {"ab"}, "a b\nab c\n");  // "abc" is not in the vocab
  EXPECT_THROW(Tokenizer::from_dir(dir), RuntimeError);
  std::string msg = error_of([&] { Tokenizer::from_dir(dir); });
  EXPECT_NE(msg.find("abc"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
}

TEST(TokenizerTest, CorruptVocabIsRuntimeError) {
  std::string dir = write_tiny_tokenizer("tok_bad_vocab", {}, "");
  std::ofstream(dir + "/vocab.json") << "{\"a\": 0, \"b\": ";
  EXPECT_THROW(Tokenizer::from_dir(dir), RuntimeError);
  std::ofstream(dir + "/vocab.json") << "{\"a\": \"zero\"}";
  EXPECT_NE(error_of([&] { Tokenizer::from_dir(dir); }).find("'a'"), std::string::npos);
}

TEST(TokenizerTest, UnknownIdsAreInvalidArgument) {
  const Tokenizer& tok = slow_tokenizer();
  EXPECT_THROW(tok.decode({tok.vocab_size()}), InvalidArgument);
  EXPECT_THROW(tok.decode({-1}), InvalidArgument);
  EXPECT_THROW(tok.id_to_token(tok.vocab_size()), InvalidArgument);
  std::string msg = error_of([&] { tok.decode({1, 2, 999999}); });
  EXPECT_NE(msg.find("999999"), std::string::npos) << msg;
  EXPECT_NE(msg.find("152681"), std::string::npos) << msg;
  EXPECT_EQ(tok.token_to_id("no such token"), -1);
}

}  // namespace
}  // namespace la
