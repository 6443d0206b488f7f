// libFuzzer target: the Qwen2 tokenizer of the fixtures (loaded once). The first input byte picks
// encode (arbitrary bytes: ids in the vocabulary, ASCII round-trips exactly) or decode (arbitrary
// int32 ids: known ids decode, any other id raises InvalidArgument and nothing else).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "text/tokenizer.h"

namespace {
const la::Tokenizer* g_tok = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string dir = la::fuzz::fixtures_dir() + "/tokenizer";
  try {
    static const la::Tokenizer tok = la::Tokenizer::from_dir(dir);
    g_tok = &tok;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_tokenizer: cannot load the tokenizer from '%s' (set LA_FIXTURES): %s\n", dir.c_str(),
                 e.what());
    std::abort();
  }
  return 0;
}

// True when decode({id}) is allowed to succeed (id_to_token is the tokenizer's own answer).
static bool known(int32_t id) {
  try {
    (void)g_tok->id_to_token(id);
    return true;
  } catch (const la::InvalidArgument&) {
    return false;
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const la::Tokenizer& tok = *g_tok;
  const int32_t vocab = tok.vocab_size();
  const uint8_t mode = data[0];
  ++data, --size;
  if (mode & 1) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const std::vector<int32_t> ids = tok.encode(text);
    for (int32_t id : ids)
      if (id < 0 || id >= vocab) std::abort();
    const std::string back = tok.decode(ids);  // encode's ids must all decode
    bool ascii = true;
    for (char c : text) ascii &= static_cast<unsigned char>(c) < 0x80;
    if (ascii && back != text) std::abort();  // NFC and UTF-8 repair leave ASCII alone
    return 0;
  }
  // Decode: 4 bytes per id; mode bit 1 folds ids into [0, vocab) so most of them are valid.
  std::vector<int32_t> ids(size / 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    std::memcpy(&ids[i], data + 4 * i, 4);
    if (mode & 2) ids[i] = static_cast<int32_t>(static_cast<uint32_t>(ids[i]) % static_cast<uint32_t>(vocab));
  }
  bool all_known = true;
  for (int32_t id : ids) all_known &= known(id);
  try {
    (void)tok.decode(ids);
    if (!all_known) std::abort();  // an unknown id was decoded
  } catch (const la::InvalidArgument&) {
    if (all_known) std::abort();  // a known id was refused
  }
  return 0;
}
