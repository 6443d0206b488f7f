// JPEG decoding to RGB through libjpeg-turbo (the decoder Pillow itself uses).
#pragma once

#include <cstdint>
#include <string>

#include "core/image.h"

namespace la {

// Decodes a JPEG held in memory; errors name `what` (a path or "buffer").
ImageU8 decode_jpeg(const uint8_t* data, size_t size, const std::string& what = "buffer");
// Reads and decodes a JPEG file. Missing file: FileNotFound; not a JPEG / corrupt: InvalidArgument.
ImageU8 decode_jpeg_file(const std::string& path);
// True when the bytes start with the JPEG SOI marker.
bool looks_like_jpeg(const uint8_t* data, size_t size);

}  // namespace la
