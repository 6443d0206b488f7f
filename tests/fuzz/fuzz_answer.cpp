// libFuzzer target: both rules of the answer parser on arbitrary model output and image sizes. They
// never throw; every worker-rule item has a kind, non-negative raw values and the coordinates
// raw/1000·size; every eval-rule item starts at a "<box>", lies in [0, size − 1] and has ordered corners.
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
      if (d.raw[k] < 0 || (k >= n && d.raw[k] != 0)) std::abort();
    if (n && (d.x1 != d.raw[0] / 1000.0 * width || d.y1 != d.raw[1] / 1000.0 * height)) std::abort();
    if (n == 4 && (d.x2 != d.raw[2] / 1000.0 * width || d.y2 != d.raw[3] / 1000.0 * height)) std::abort();
    if (d.label.size() > answer.size()) std::abort();
  }
  if (width < 1 || height < 1) return 0;
  for (const la::EvalItem& e : la::parse_answer_eval(answer, width, height)) {
    if (answer.compare(e.start, 5, "<box>") != 0) std::abort();
    const int n = e.is_point ? 2 : 4;
    for (int k = 0; k < n; ++k) {
      const double size = k % 2 == 0 ? width : height;
      if (!(e.pixels[k] >= 0 && e.pixels[k] <= size - 1)) std::abort();
    }
    if (n == 4 && (e.pixels[0] > e.pixels[2] || e.pixels[1] > e.pixels[3])) std::abort();
  }
  return 0;
}
