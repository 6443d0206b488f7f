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
  size_t start = 0;                      // byte offset of its "<box>" in the answer
  // Confidence: the geometric mean of the probabilities of its coordinate tokens under the
  // distributions they were drawn from (score_detections); NaN when unknown (a "none" item, or a
  // box whose tokens could not be found).
  double score = std::numeric_limits<double>::quiet_NaN();
};

// The official worker's rule (LocateAnythingWorker.parse_boxes / parse_points: every
// <box><a><b><c><d></box> and <box><a><b></box> with plain digits, anywhere), with labels: a ref's
// label applies to every box until the next ref; <box>none</box> is kept as a None item. Malformed
// pieces are skipped, never fatal. Result.boxes / Result.points and the worker use this rule.
std::vector<Detection> parse_answer(const std::string& answer, int width, int height);

// The evaluation scripts' rule (inference_grounding_ddp.py / inference_sspro_ddp.py `parse_prediction`;
// inference_detection_ddp.py reads boxes only): items count only in a run `<ref>label</ref>` followed
// directly by one or more `<box>…</box>` on one line; values are `< n >` or `< n.m >` with optional
// white space, an item with a value above 10000 is dropped; per run the points are listed first, then
// the boxes. Pixels are v·size/1000 clamped to [0, size − 1] (a clamped value is integral: the
// scripts' JSON writes it as an int, flagged in `integral`) and box corners put in order.
struct EvalItem {
  std::string label;
  bool is_point = false;
  double values[4] = {0, 0, 0, 0};  // as written (0..1000 normally)
  double pixels[4] = {0, 0, 0, 0};  // a point uses the first two
  bool integral[4] = {false, false, false, false};
  size_t start = 0;                 // byte offset of its "<box>" in the answer (as Detection::start)
};
std::vector<EvalItem> parse_answer_eval(const std::string& answer, double width, double height, bool points = true);

// Fills Detection::score from the generated ids and their probabilities: each box and point is
// matched, in order, to the next <box> coord… </box> run of ids with the same coordinate values.
void score_detections(std::vector<Detection>& detections, const std::vector<int32_t>& tokens,
                      const std::vector<float>& token_probs, const TokenIds& ids);

}  // namespace la
