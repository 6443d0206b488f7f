// Tolerant scanner over the answer grammar (spec-vision-and-io §6.1).
#include "text/answer_parser.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

namespace la {

namespace {

bool starts_with(const std::string& s, size_t pos, const char* lit) { return s.compare(pos, std::strlen(lit), lit) == 0; }

// Reads "<digits>" at pos; on success advances pos and stores the value (0..1000 in practice).
bool read_coord(const std::string& s, size_t& pos, int& value) {
  if (pos >= s.size() || s[pos] != '<') return false;
  size_t j = pos + 1;
  int v = 0, digits = 0;
  while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j])) && digits < 7) {
    v = v * 10 + (s[j] - '0');
    ++j;
    ++digits;
  }
  if (digits == 0 || j >= s.size() || s[j] != '>') return false;
  value = v;
  pos = j + 1;
  return true;
}

}  // namespace

std::vector<Detection> parse_answer(const std::string& s, int width, int height) {
  std::vector<Detection> out;
  std::string label;
  size_t i = 0;
  while (i < s.size()) {
    if (starts_with(s, i, "<ref>")) {
      // A label is text up to "</ref>" with no tag inside (the evaluation scripts' [^<]+); an
      // unterminated or empty ref is skipped like any malformed piece, and scanning goes on.
      const size_t end = s.find('<', i + 5);
      if (end != std::string::npos && end > i + 5 && starts_with(s, end, "</ref>")) {
        label = s.substr(i + 5, end - i - 5);
        i = end + 6;
      } else {
        i += 5;
      }
      continue;
    }
    if (starts_with(s, i, "<box>")) {
      size_t p = i + 5;
      if (starts_with(s, p, "none</box>")) {
        Detection d;
        d.kind = Detection::Kind::None;
        d.label = label;
        out.push_back(d);
        i = p + 10;
        continue;
      }
      int v[4];
      int n = 0;
      while (n < 4 && read_coord(s, p, v[n])) ++n;
      if ((n == 4 || n == 2) && starts_with(s, p, "</box>")) {
        Detection d;
        d.kind = n == 4 ? Detection::Kind::Box : Detection::Kind::Point;
        d.label = label;
        for (int k = 0; k < n; ++k) d.raw[k] = v[k];
        d.x1 = v[0] / 1000.0 * width;
        d.y1 = v[1] / 1000.0 * height;
        if (n == 4) {
          d.x2 = v[2] / 1000.0 * width;
          d.y2 = v[3] / 1000.0 * height;
        }
        out.push_back(d);
        i = p + 6;
        continue;
      }
      i += 5;  // malformed box: skip its opening tag and keep scanning
      continue;
    }
    ++i;
  }
  return out;
}

void score_detections(std::vector<Detection>& detections, const std::vector<int32_t>& tokens,
                      const std::vector<float>& token_probs, const TokenIds& ids) {
  // Runs of ids <box> c… </box> with 2 or 4 coordinates: their values and the mean log-probability.
  struct Run {
    int n = 0;
    int v[4] = {0, 0, 0, 0};
    double score = 0;
  };
  std::vector<Run> runs;
  const size_t n = std::min(tokens.size(), token_probs.size());
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] != ids.box_start) continue;
    Run r;
    double log_sum = 0;
    size_t j = i + 1;
    while (j < n && r.n < 4 && ids.is_coord(tokens[j])) {
      r.v[r.n++] = tokens[j] - ids.coord_start;
      log_sum += std::log(static_cast<double>(token_probs[j]));
      ++j;
    }
    if ((r.n == 2 || r.n == 4) && j < n && tokens[j] == ids.box_end) {
      r.score = std::exp(log_sum / r.n);
      runs.push_back(r);
      i = j;
    }
  }
  size_t next = 0;
  for (Detection& d : detections) {
    if (d.kind == Detection::Kind::None) continue;
    const int k = d.kind == Detection::Kind::Box ? 4 : 2;
    for (size_t r = next; r < runs.size(); ++r) {
      if (runs[r].n == k && std::equal(d.raw, d.raw + k, runs[r].v)) {
        d.score = runs[r].score;
        next = r + 1;
        break;
      }
    }
  }
}

}  // namespace la
