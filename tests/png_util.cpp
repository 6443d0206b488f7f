// PNG decoding for tests: chunk walk with CRC checks, zlib inflate of IDAT, and the five row filters.
#include "png_util.h"

#include <zlib.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace la::test {
namespace {

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw std::runtime_error("PNG '" + path + "': " + why);
}

// The Paeth predictor of the PNG spec: the neighbour (left, up, up-left) closest to left+up-upleft.
uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return static_cast<uint8_t>(a);
  if (pb <= pc) return static_cast<uint8_t>(b);
  return static_cast<uint8_t>(c);
}

}  // namespace

PngImage read_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (file.size() < 8 || std::memcmp(file.data(), kSignature, 8) != 0) fail(path, "not a PNG (bad signature)");

  PngImage img;
  int color_type = -1;
  std::vector<uint8_t> idat;
  bool seen_end = false;
  for (size_t pos = 8; pos < file.size() && !seen_end;) {
    if (file.size() - pos < 12) fail(path, "truncated chunk header");
    const uint32_t len = read_be32(&file[pos]);
    if (len > file.size() - pos - 12) fail(path, "truncated chunk");
    const uint8_t* type = &file[pos + 4];
    const uint8_t* body = type + 4;
    const uint32_t crc = read_be32(body + len);
    if (crc32(crc32(0L, Z_NULL, 0), type, len + 4) != crc) fail(path, "chunk CRC mismatch");
    const std::string name(reinterpret_cast<const char*>(type), 4);
    if (name == "IHDR") {
      if (len != 13) fail(path, "bad IHDR");
      img.width = static_cast<int>(read_be32(body));
      img.height = static_cast<int>(read_be32(body + 4));
      const int depth = body[8];
      color_type = body[9];
      if (depth != 8) fail(path, "only 8-bit PNGs are supported, got " + std::to_string(depth) + "-bit");
      if (body[10] != 0 || body[11] != 0) fail(path, "unknown compression or filter method");
      if (body[12] != 0) fail(path, "interlaced PNGs are not supported");
      switch (color_type) {
        case 0: img.channels = 1; break;
        case 2: img.channels = 3; break;
        case 4: img.channels = 2; break;
        case 6: img.channels = 4; break;
        default: fail(path, "unsupported colour type " + std::to_string(color_type) + " (palette?)");
      }
      if (img.width <= 0 || img.height <= 0) fail(path, "empty image");
    } else if (name == "IDAT") {
      idat.insert(idat.end(), body, body + len);
    } else if (name == "IEND") {
      seen_end = true;
    }
    pos += 12 + static_cast<size_t>(len);
  }
  if (color_type < 0) fail(path, "no IHDR chunk");
  if (!seen_end) fail(path, "no IEND chunk (truncated file?)");

  const size_t row_bytes = static_cast<size_t>(img.width) * img.channels;
  std::vector<uint8_t> raw((row_bytes + 1) * img.height);
  uLongf raw_len = static_cast<uLongf>(raw.size());
  if (uncompress(raw.data(), &raw_len, idat.data(), static_cast<uLong>(idat.size())) != Z_OK ||
      raw_len != raw.size())
    fail(path, "IDAT data does not inflate to " + std::to_string(raw.size()) + " bytes");

  img.pixels.resize(row_bytes * img.height);
  const int bpp = img.channels;  // bytes per complete pixel at 8 bits per sample
  for (int y = 0; y < img.height; ++y) {
    const uint8_t filter = raw[y * (row_bytes + 1)];
    const uint8_t* src = &raw[y * (row_bytes + 1) + 1];
    uint8_t* cur = &img.pixels[y * row_bytes];
    const uint8_t* up = y > 0 ? cur - row_bytes : nullptr;
    for (size_t i = 0; i < row_bytes; ++i) {
      const int a = i >= static_cast<size_t>(bpp) ? cur[i - bpp] : 0;
      const int b = up ? up[i] : 0;
      const int c = (up && i >= static_cast<size_t>(bpp)) ? up[i - bpp] : 0;
      int pred = 0;
      switch (filter) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: pred = paeth(a, b, c); break;
        default: fail(path, "unknown row filter " + std::to_string(filter) + " in row " + std::to_string(y));
      }
      cur[i] = static_cast<uint8_t>(src[i] + pred);
    }
  }
  return img;
}

ImageU8 read_png_rgb(const std::string& path) {
  PngImage png = read_png(path);
  if (png.channels != 3) fail(path, "expected an RGB PNG, got " + std::to_string(png.channels) + " channels");
  ImageU8 out;
  out.width = png.width;
  out.height = png.height;
  out.rgb = std::move(png.pixels);
  return out;
}

}  // namespace la::test
