// Unicode property lookups for the tokenizer (tables generated into unicode_data.cpp).
#pragma once

#include <cstdint>

namespace la::unicode {

// Bits of flags(); the generator writes the same values.
enum Flag : uint8_t {
  kLetter = 1,     // general category L*  (regex \p{L})
  kNumber = 2,     // general category N*  (regex \p{N})
  kSpace = 4,      // White_Space, which is what Oniguruma's \s matches in Unicode mode
  kNfcUnsafe = 8,  // NFC_Quick_Check != Yes or combining class != 0: NFC may change the text here
};

// Version of the Unicode database the tables were generated from.
extern const char* const kUnicodeVersion;

uint8_t flags(uint32_t cp);
uint8_t combining_class(uint32_t cp);
// One level of the canonical decomposition mapping: writes 1 or 2 code points to `out` and returns
// how many, or 0 when `cp` has none. Hangul syllables are algorithmic and not in the table.
int canonical_decomposition(uint32_t cp, uint32_t out[2]);
// The primary composite of a canonical pair (composition exclusions removed), or 0. Not Hangul.
uint32_t primary_composite(uint32_t first, uint32_t second);
// The ASCII lowercase letter `cp` case-folds to (ASCII letters and e.g. U+017F LONG S -> 's'),
// else `cp` itself. Used for the case-insensitive contraction group of the pre-tokenizer.
uint32_t fold_to_ascii(uint32_t cp);

}  // namespace la::unicode
