// A small test-only PNG reader (8-bit grey / grey+alpha / RGB / RGBA, non-interlaced) for the fixtures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/image.h"

namespace la::test {

// Pixels as stored: rows of width*channels bytes, no padding.
struct PngImage {
  int width = 0;
  int height = 0;
  int channels = 0;  // 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
  std::vector<uint8_t> pixels;
};

// Decodes a PNG file; throws std::runtime_error naming the file on anything it cannot read
// (16-bit, palette, interlaced, bad CRC, truncated data).
PngImage read_png(const std::string& path);

// read_png for an RGB (colour type 2) file, as the ImageU8 the preprocessing takes.
ImageU8 read_png_rgb(const std::string& path);

}  // namespace la::test
