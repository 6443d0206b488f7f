// Parsing the model's answer string into boxes, points and "none" items in original-image pixels.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "io/config.h"

namespace la {

// One located item. Coordinates are v/1000·size of the image given to the call (no rounding,
// clamping or reordering, as the official parse_boxes / parse_points).
struct Detection {
  enum class Kind { Box, Point, None };
  Kind kind = Kind::Box;
  std::string label;  // text of the closest preceding <ref>…</ref> ("" if none)
  double x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // a point uses x1, y1
  int raw[4] = {0, 0, 0, 0};             // the 0..1000 values as generated
  // Confidence: the geometric mean of the probabilities of its coordinate tokens under the
  // distributions they were drawn from (score_detections); NaN when unknown (a "none" item, or a
  // box whose tokens could not be found).
  double score = std::numeric_limits<double>::quiet_NaN();
};

// Walks <ref>label</ref>, <box><a><b><c><d></box>, <box><a><b></box> and <box>none</box>; a ref's
// label applies to every box until the next ref. Malformed pieces are skipped, never fatal.
std::vector<Detection> parse_answer(const std::string& answer, int width, int height);

// Fills Detection::score from the generated ids and their probabilities: each box and point is
// matched, in order, to the next <box> coord… </box> run of ids with the same coordinate values.
void score_detections(std::vector<Detection>& detections, const std::vector<int32_t>& tokens,
                      const std::vector<float>& token_probs, const TokenIds& ids);

}  // namespace la
