// Qwen2 byte-level BPE tokenizer built from the checkpoint's own tokenizer files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace la {

class Tokenizer {
 public:
  // Loads `tokenizer.json` from `dir` when present, else `vocab.json` + `merges.txt` +
  // `added_tokens.json` (+ the `added_tokens_decoder` of `tokenizer_config.json`), as the released
  // checkpoint ships them. Errors name the file and say how to fix it.
  static Tokenizer from_dir(const std::string& dir);

  // Added tokens are split out of the raw text first (leftmost, then longest; all of them, special or
  // not), then each piece between them goes through NFC, the Qwen2 pre-tokenizer regex and byte-level
  // BPE, as in the Hugging Face fast tokenizer. Invalid UTF-8 bytes survive as byte tokens. No BOS/EOS.
  // const and free of shared mutable state: one Tokenizer may serve many threads.
  std::vector<int32_t> encode(const std::string& text) const;
  // Special/added tokens are kept as their literal text; invalid UTF-8 becomes U+FFFD.
  // Unknown ids raise InvalidArgument.
  std::string decode(const std::vector<int32_t>& ids) const;

  // Id of a token string (a vocab entry in byte-level form or an added token), or -1.
  int32_t token_to_id(const std::string& token) const;
  // Literal text of an added token, or the byte-level form of a vocab entry.
  std::string id_to_token(int32_t id) const;
  // One past the largest id.
  int32_t vocab_size() const;
  // Added tokens (matched atomically, decoded literally); the special ones are a subset.
  bool is_added_token(int32_t id) const;
  bool is_special_token(int32_t id) const;
  // `model_max_length` of tokenizer_config.json (16384 in the release; 0 when absent or unbounded).
  int64_t model_max_length() const;

  struct Impl;

 private:
  // Null only in a default-constructed Tokenizer, whose methods throw InvalidArgument.
  std::shared_ptr<const Impl> impl_;
};

}  // namespace la
