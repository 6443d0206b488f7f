// Tolerant scanner over the answer grammar (spec-vision-and-io §6.1).
#include "text/answer_parser.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <cstdlib>

namespace la {

namespace {

bool starts_with(const std::string& s, size_t pos, const char* lit) { return s.compare(pos, std::strlen(lit), lit) == 0; }

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads "<digits>" at pos; on success advances pos and stores the value. Any number of digits, as the
// worker's regex (\d+); values past int range saturate (they are far outside 0..1000 anyway).
bool read_coord(const std::string& s, size_t& pos, int& value) {
  if (pos >= s.size() || s[pos] != '<') return false;
  size_t j = pos + 1;
  long long v = 0;
  while (j < s.size() && is_digit(s[j])) {
    v = std::min<long long>(v * 10 + (s[j] - '0'), 1LL << 40);
    ++j;
  }
  if (j == pos + 1 || j >= s.size() || s[j] != '>') return false;
  value = static_cast<int>(std::min<long long>(v, std::numeric_limits<int>::max()));
  pos = j + 1;
  return true;
}

// Length of the white-space character at s[i] as Python's str.isspace() sees it (regex \s), or 0.
size_t space_at(const std::string& s, size_t i) {
  const auto u = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  if (i >= s.size()) return 0;
  const unsigned char c = u(i);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  if (c == 0xC2 && i + 1 < s.size() && (u(i + 1) == 0x85 || u(i + 1) == 0xA0)) return 2;
  if (c == 0xE1 && i + 2 < s.size() && u(i + 1) == 0x9A && u(i + 2) == 0x80) return 3;  // U+1680
  if (c == 0xE2 && i + 2 < s.size()) {
    const unsigned char b = u(i + 1), d = u(i + 2);
    if (b == 0x80 && ((d >= 0x80 && d <= 0x8A) || d == 0xA8 || d == 0xA9 || d == 0xAF)) return 3;  // U+2000–200A, 2028, 2029, 202F
    if (b == 0x81 && d == 0x9F) return 3;                                                        // U+205F
  }
  if (c == 0xE3 && i + 2 < s.size() && u(i + 1) == 0x80 && u(i + 2) == 0x80) return 3;  // U+3000
  return 0;
}

size_t skip_spaces(const std::string& s, size_t i, size_t end) {
  while (i < end) {
    const size_t n = space_at(s, i);
    if (n == 0 || i + n > end) break;
    i += n;
  }
  return i;
}

// "< n >" or "< n.m >" then trailing white space, inside [pos, end): the scripts' value pattern.
bool read_eval_value(const std::string& s, size_t& pos, size_t end, double& value) {
  if (pos >= end || s[pos] != '<') return false;
  size_t j = skip_spaces(s, pos + 1, end);
  const size_t begin = j;
  while (j < end && is_digit(s[j])) ++j;
  if (j == begin) return false;
  if (j + 1 < end && s[j] == '.' && is_digit(s[j + 1])) {
    ++j;
    while (j < end && is_digit(s[j])) ++j;
  }
  const std::string number = s.substr(begin, j - begin);
  j = skip_spaces(s, j, end);
  if (j >= end || s[j] != '>') return false;
  value = std::strtod(number.c_str(), nullptr);
  pos = skip_spaces(s, j + 1, end);
  return true;
}

// "<box>" + n values + "</box>" at pos within [pos, end); on success sets `after`.
bool read_eval_box(const std::string& s, size_t pos, size_t end, int n, double* v, size_t& after) {
  if (s.compare(pos, 5, "<box>") != 0 || pos + 5 > end) return false;
  size_t p = skip_spaces(s, pos + 5, end);
  for (int k = 0; k < n; ++k)
    if (!read_eval_value(s, p, end, v[k])) return false;
  if (p + 6 > end || s.compare(p, 6, "</box>") != 0) return false;
  after = p + 6;
  return true;
}

// The scripts' clamp, max(0, min(value, size − 1)), keeping which bound won (an int in their JSON).
double clamp_eval(double value, double size, bool& integral) {
  double x = value;
  integral = false;
  if (size - 1 < x) {
    x = size - 1;
    integral = true;
  }
  if (!(x > 0)) {
    x = 0;
    integral = true;
  }
  return x;
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
        d.start = i;
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
        d.start = i;
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

std::vector<EvalItem> parse_answer_eval(const std::string& s, double width, double height, bool points) {
  std::vector<EvalItem> out;
  size_t i = 0;
  while ((i = s.find("<ref>", i)) != std::string::npos) {
    // <ref>label</ref>: the label is one or more characters up to the first '<'.
    const size_t label_begin = i + 5, lt = s.find('<', label_begin);
    if (lt == std::string::npos || lt == label_begin || s.compare(lt, 6, "</ref>") != 0) {
      ++i;
      continue;
    }
    // Then one or more <box>…</box> groups, each closed by the first </box> on the same line.
    const size_t body = lt + 6;
    size_t p = body;
    while (s.compare(p, 5, "<box>") == 0) {
      const size_t close = s.find("</box>", p + 5), newline = s.find('\n', p + 5);
      if (close == std::string::npos || (newline != std::string::npos && newline < close)) break;
      p = close + 6;
    }
    if (p == body) {
      ++i;
      continue;
    }
    const std::string label = s.substr(label_begin, lt - label_begin);
    // Within the run: its points (if read), then its boxes, each pattern scanning the run left to right.
    for (int pass = points ? 0 : 1; pass < 2; ++pass) {
      const int n = pass == 0 ? 2 : 4;
      size_t q = body;
      while ((q = s.find("<box>", q)) != std::string::npos && q < p) {
        EvalItem item;
        size_t after = 0;
        if (!read_eval_box(s, q, p, n, item.values, after)) {
          ++q;
          continue;
        }
        item.start = q;
        q = after;
        bool in_range = true;
        for (int k = 0; k < n; ++k) in_range = in_range && item.values[k] >= 0 && item.values[k] <= 10000;
        if (!in_range) continue;
        item.label = label;
        item.is_point = n == 2;
        for (int k = 0; k < n; ++k) {
          const double size = k % 2 == 0 ? width : height;
          item.pixels[k] = clamp_eval(item.values[k] * size / 1000, size, item.integral[k]);
        }
        if (n == 4) {
          // min / max keep the first of equal values, as Python's do.
          for (int k = 0; k < 2; ++k) {
            const double a = item.pixels[k], b = item.pixels[k + 2];
            const bool ia = item.integral[k], ib = item.integral[k + 2];
            const bool lo_first = !(b < a), hi_first = !(b > a);
            item.pixels[k] = lo_first ? a : b;
            item.integral[k] = lo_first ? ia : ib;
            item.pixels[k + 2] = hi_first ? a : b;
            item.integral[k + 2] = hi_first ? ia : ib;
          }
        }
        out.push_back(item);
      }
    }
    i = p;
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
