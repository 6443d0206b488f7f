// libFuzzer target: the answer parser on arbitrary model output and image sizes. It never throws,
// and every item it returns has a kind, raw values of at most 7 digits and the coordinates
// raw/1000·size.
#include <cstring>

#include "text/answer_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  int32_t width, height;
  std::memcpy(&width, data, 4);
  std::memcpy(&height, data + 4, 4);
  const std::string answer(reinterpret_cast<const char*>(data + 8), size - 8);
  const std::vector<la::Detection> items = la::parse_answer(answer, width, height);
  size_t boxes = 0;
  for (size_t p = answer.find("<box>"); p != std::string::npos; p = answer.find("<box>", p + 1)) ++boxes;
  if (items.size() > boxes) std::abort();
  for (const la::Detection& d : items) {
    const int n = d.kind == la::Detection::Kind::Box ? 4 : d.kind == la::Detection::Kind::Point ? 2 : 0;
    for (int k = 0; k < 4; ++k)
      if (d.raw[k] < 0 || d.raw[k] > 9999999 || (k >= n && d.raw[k] != 0)) std::abort();
    if (n && (d.x1 != d.raw[0] / 1000.0 * width || d.y1 != d.raw[1] / 1000.0 * height)) std::abort();
    if (n == 4 && (d.x2 != d.raw[2] / 1000.0 * width || d.y2 != d.raw[3] / 1000.0 * height)) std::abort();
    if (d.label.size() > answer.size()) std::abort();
  }
  return 0;
}
