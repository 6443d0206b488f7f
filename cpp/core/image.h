// An 8-bit RGB image in memory, the hand-off between decoders and preprocessing.
#pragma once

#include <cstdint>
#include <vector>

namespace la {

// Rows of width*3 bytes (R, G, B), row-major, no padding.
struct ImageU8 {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

}  // namespace la
