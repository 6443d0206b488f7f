// Block decision, pattern handling and the slow/fast/hybrid state machine (spec-decoding §4).
#include "decoder/decode_loop.h"

#include <limits>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace la {

GenerationMode parse_generation_mode(const std::string& name) {
  if (name == "slow") return GenerationMode::Slow;
  if (name == "fast") return GenerationMode::Fast;
  if (name == "hybrid") return GenerationMode::Hybrid;
  throw InvalidArgument(str_cat("unknown generation_mode '", name,
                                "': use 'slow' (token by token), 'fast' (parallel box decoding) or 'hybrid' "
                                "(parallel with token-by-token fallback, the default)"));
}

const char* generation_mode_name(GenerationMode mode) {
  switch (mode) {
    case GenerationMode::Slow: return "slow";
    case GenerationMode::Fast: return "fast";
    case GenerationMode::Hybrid: return "hybrid";
  }
  return "?";
}

const char* block_route_name(BlockRoute route) {
  switch (route) {
    case BlockRoute::None: return "none";
    case BlockRoute::Box: return "box";
    case BlockRoute::EmptyBox: return "empty_box";
    case BlockRoute::Ref: return "ref";
    case BlockRoute::X0: return "x0";
  }
  return "?";
}

namespace {

// Thresholds are float32 constants: the reference compares float32 tensors with Python floats in
// float32, so p >= 0.7 means p >= 0.7f (spec-decoding §7.3).
constexpr float kBoxStartThresh = 0.7f;
constexpr float kEmptyNoneThresh = 0.2f;
constexpr float kEmptyEndThresh = 0.2f;
constexpr float kEmptyNullThresh = 0.1f;
constexpr float kBoxEndThresh = 0.2f;
constexpr float kAbnormalProb = 0.9f;
constexpr int kAbnormalSpread = 60;
constexpr float kRefStartThresh = 0.6f;
constexpr int kBoxTopK = 4;  // keep_k_avg: the box path's top-k (not the 5 passed as keep_k)
constexpr int kRefTopK = 5;

// Box candidate (decode_bbox_avg); empty when there is none.
std::vector<int32_t> box_candidate(const float* probs, int64_t V, const TokenIds& ids, GenerationMode mode,
                                   BlockRoute& route, bool abnormal[4]) {
  const float* P0 = probs;
  if (P0[ids.box_start] >= kBoxStartThresh && probs[1 * V + ids.none] > kEmptyNoneThresh &&
      probs[2 * V + ids.box_end] > kEmptyEndThresh && probs[3 * V + ids.null] > kEmptyNullThresh &&
      probs[4 * V + ids.null] > kEmptyNullThresh) {
    route = BlockRoute::EmptyBox;
    return {ids.box_start, ids.none, ids.box_end, ids.null, ids.null, ids.null};
  }
  const float* P5 = probs + 5 * V;
  const float end_score = P5[ids.box_end] + P5[ids.null] + P5[ids.im_end];
  if (!(end_score >= kBoxEndThresh)) return {};
  std::vector<int32_t> out = {ids.box_start, 0, 0, 0, 0, ids.box_end};
  for (int r = 1; r <= 4; ++r) {
    // Ties in the top-k are ordered by ascending id (torch.topk leaves them unspecified; this
    // matches argmax). Ties here can change which coordinate is first and the abnormal test.
    const std::vector<int32_t> top = top_k_indices(probs + r * V, V, kBoxTopK);
    int32_t best = -1, lo = 0, hi = 0, count = 0;
    float pbest = 0.0f;
    for (int32_t id : top) {
      if (!ids.is_coord(id)) continue;
      if (best < 0) {
        best = id;
        pbest = probs[r * V + id];
        lo = hi = id;
      }
      lo = std::min(lo, id);
      hi = std::max(hi, id);
      ++count;
    }
    if (best < 0) return {};
    const bool is_abnormal =
        mode == GenerationMode::Hybrid && pbest < kAbnormalProb && count > 1 && (hi - lo) > kAbnormalSpread;
    abnormal[r - 1] = is_abnormal;
    out[r] = is_abnormal ? 0 : best;  // id 0 is an ordinary token, deliberately not a coordinate
  }
  route = BlockRoute::Box;
  return out;
}

// Ref candidate (decode_ref); empty when there is none.
std::vector<int32_t> ref_candidate(const float* probs, int64_t V, const TokenIds& ids) {
  if (probs[ids.ref_start] < kRefStartThresh) return {};
  std::vector<int32_t> out = {ids.ref_start};
  for (int r = 1; r <= 5; ++r) {
    const std::vector<int32_t> top = top_k_indices(probs + r * V, V, kRefTopK);
    int32_t pick = -1;
    for (int32_t id : top)
      if (!ids.is_coord(id)) {
        pick = id;
        break;
      }
    if (pick < 0) return {};
    out.push_back(pick);
  }
  return out;
}

}  // namespace

BlockDecision decide_block(const float* probs, int64_t vocab, const std::vector<int32_t>& x0, const TokenIds& ids,
                           GenerationMode mode) {
  BlockDecision d;
  d.x0 = x0;
  BlockRoute route = BlockRoute::None;
  d.tokens = box_candidate(probs, vocab, ids, mode, route, d.abnormal);
  if (!d.tokens.empty()) {
    d.route = route;
    return d;
  }
  d.tokens = ref_candidate(probs, vocab, ids);
  if (!d.tokens.empty()) {
    d.route = BlockRoute::Ref;
    return d;
  }
  d.route = BlockRoute::X0;
  d.tokens = x0;
  return d;
}

PatternResult handle_pattern(const std::vector<int32_t>& x, const TokenIds& ids, GenerationMode mode) {
  LA_ASSERT(x.size() == 6, "a block has 6 tokens, got ", x.size());
  PatternResult r;
  if (x[0] == ids.null || x[0] == ids.im_end) {
    r.type = "im_end";
    r.tokens = {ids.im_end};
    r.terminal = true;
    return r;
  }
  if (x[0] == ids.box_start && x[1] == ids.none) {
    r.type = "empty_box";
    r.tokens = {ids.box_start, ids.none, ids.box_end};
    return r;
  }
  if (x[0] == ids.box_start) {
    int coord_ix = 1;
    for (int i = 1; i <= 4 && ids.is_coord(x[i]); ++i) ++coord_ix;
    if (coord_ix == 5 && x[5] == ids.box_end) {
      r.type = "coord_box";
      r.tokens = x;
    } else if (coord_ix == 3 && x[3] == ids.box_end) {
      r.type = "point_box";
      r.tokens.assign(x.begin(), x.begin() + 4);
    } else if (mode == GenerationMode::Fast) {
      r.type = "coord_box";  // fast mode commits a malformed block as it is
      r.tokens = x;
    } else {
      r.type = "error_box";
      r.tokens.assign(x.begin(), x.begin() + coord_ix);
      r.switch_to_ar = true;
    }
    return r;
  }
  r.type = "ref_object";
  r.tokens = x;
  auto null_at = std::find(r.tokens.begin(), r.tokens.end(), ids.null);
  r.tokens.erase(null_at, r.tokens.end());
  const size_t n = r.tokens.size();
  if (n >= 2 && r.tokens[n - 1] == ids.ref_end && r.tokens[n - 2] == ids.ref_end) r.tokens.pop_back();
  return r;
}

std::string classify_ar_token(int32_t t, const TokenIds& ids, GenerationMode mode) {
  if (mode == GenerationMode::Hybrid) {
    if (t == ids.box_end) return "box_end_ar";
    if (ids.is_coord(t) || t == ids.none) return "coord_ar";
    return "im_end";
  }
  return t == ids.im_end ? "im_end" : "continue_ar";
}

void GenerationOptions::validate() const {
  LA_CHECK(max_new_tokens >= 0 && max_new_tokens <= kMaxNewTokensLimit, InvalidArgument,
           "max_new_tokens must be in [0, ", kMaxNewTokensLimit, "], got ", max_new_tokens);
  const SamplingParams& s = sampling;
  LA_CHECK(s.temperature >= 0.0f && std::isfinite(s.temperature), InvalidArgument, "temperature must be >= 0, got ",
           s.temperature, " (0 = greedy)");
  LA_CHECK(s.top_p > 0.0f && s.top_p <= 1.0f, InvalidArgument, "top_p must be in (0, 1], got ", s.top_p,
           " (1 = no nucleus filtering)");
  LA_CHECK(s.top_k >= 0, InvalidArgument, "top_k must be >= 0, got ", s.top_k, " (0 = off)");
  LA_CHECK(s.repetition_penalty > 0.0f && std::isfinite(s.repetition_penalty), InvalidArgument,
           "repetition_penalty must be > 0, got ", s.repetition_penalty, " (1 = off)");
}

Generation::Generation(std::vector<int32_t> prompt, const GenerationOptions& options, const TokenIds& ids,
                       int64_t model_max_length, int64_t vocab)
    : opt_(options), ids_(ids), vocab_(vocab), seq_(std::move(prompt)), seen_(vocab), rng_(options.seed) {
  LA_CHECK(!seq_.empty(), InvalidArgument, "the prompt is empty");
  LA_CHECK(opt_.max_new_tokens >= 0, InvalidArgument, "max_new_tokens must be >= 0, got ", opt_.max_new_tokens);
  prompt_len_ = static_cast<int64_t>(seq_.size());
  limit_ = prompt_len_ + opt_.max_new_tokens;
  if (model_max_length > 0) limit_ = std::min(limit_, model_max_length);
  use_mtp_ = opt_.mode != GenerationMode::Slow;
  seen_.add(seq_);
  if (static_cast<int64_t>(seq_.size()) >= limit_) {
    done_ = true;
    result_.stop_reason = "max_len";
  }
}

void Generation::skip_cached_prefix(int64_t n) {
  LA_ASSERT(result_.forward_calls == 0 && !planned_ && n >= 0 && n < prompt_len_, "bad cached prefix ", n,
            " for a prompt of ", prompt_len_);
  cache_len_ = n;
}

const Generation::Plan& Generation::plan() {
  LA_ASSERT(!done_, "plan() after the end of generation");
  const int64_t L = static_cast<int64_t>(seq_.size()), C = cache_len_;
  plan_.ids.assign(seq_.begin() + C, seq_.end());
  plan_.positions.resize(L - C);
  for (int64_t i = C; i < L; ++i) plan_.positions[i - C] = static_cast<int32_t>(i);
  if (use_mtp_) {
    // [committed not yet cached] + [anchor copy] + 5 masks; the window's positions are shifted by
    // −1, so the copy reuses the anchor's position and the masks take L .. L+4.
    plan_.ids.push_back(seq_.back());
    plan_.positions.push_back(static_cast<int32_t>(L - 1));
    for (int i = 0; i < 5; ++i) {
      plan_.ids.push_back(ids_.mask);
      plan_.positions.push_back(static_cast<int32_t>(L + i));
    }
    plan_.window = 6;
    plan_.n_logit_rows = 6;
  } else {
    plan_.window = 0;
    plan_.n_logit_rows = 1;
  }
  plan_.keep_length = L;
  planned_ = true;
  return plan_;
}

void Generation::commit(const std::vector<int32_t>& tokens, const std::string& type, const float* probs,
                        int64_t rows) {
  if (opt_.record_steps) {
    StepRecord& s = result_.steps.back();
    s.type = type;
    s.emitted = tokens;
  }
  result_.history.emplace_back(type.find("ar") != std::string::npos ? "ar" : "mtp", tokens);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    seq_.push_back(t);
    result_.tokens.push_back(t);
    result_.token_probs.push_back(static_cast<int64_t>(i) < rows && t >= 0 && t < vocab_
                                      ? probs[static_cast<int64_t>(i) * vocab_ + t]
                                      : std::numeric_limits<float>::quiet_NaN());
    seen_.add(t);
  }
}

bool Generation::loop_guard_hit() const {
  // Counts identical complete boxes at the end of the output (anything between them ignored).
  const auto& t = result_.tokens;
  if (t.empty() || t.back() != ids_.box_end) return false;
  std::vector<std::vector<int32_t>> boxes;
  for (int64_t end = static_cast<int64_t>(t.size()) - 1; end >= 0 && static_cast<int>(boxes.size()) <= opt_.loop_guard_repeats;) {
    if (t[end] != ids_.box_end) {
      --end;
      continue;
    }
    int64_t start = end;
    while (start >= 0 && t[start] != ids_.box_start) --start;
    if (start < 0) break;
    boxes.emplace_back(t.begin() + start, t.begin() + end + 1);
    if (boxes.size() > 1 && boxes.back() != boxes.front()) return false;
    end = start - 1;
  }
  return static_cast<int>(boxes.size()) > opt_.loop_guard_repeats;
}

void Generation::consume(float* logits) {
  LA_ASSERT(planned_ && !done_, "consume() without a plan");
  planned_ = false;
  ++result_.forward_calls;
  if (opt_.record_steps) {
    StepRecord s;
    s.past_len = cache_len_;
    s.q_len = static_cast<int64_t>(plan_.ids.size());
    s.mtp = use_mtp_;
    result_.steps.push_back(s);
  }
  cache_len_ = plan_.keep_length;
  const int64_t rows = plan_.n_logit_rows;
  logits_to_probs(logits, rows, vocab_, seen_, opt_.sampling);
  std::vector<int32_t> x0(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r)
    x0[r] = opt_.sampling.temperature > 0.0f ? sample_categorical(logits + r * vocab_, vocab_, rng_)
                                             : argmax_first(logits + r * vocab_, vocab_);
  bool stop = false;
  if (use_mtp_) {
    const BlockDecision d = decide_block(logits, vocab_, x0, ids_, opt_.mode);
    const PatternResult p = handle_pattern(d.tokens, ids_, opt_.mode);
    if (opt_.record_steps) {
      result_.steps.back().route = block_route_name(d.route);
      result_.steps.back().x0 = x0;
    }
    commit(p.tokens, p.type, logits, rows);
    if (p.terminal) {
      stop = true;
      result_.stop_reason = "im_end_token";
    } else if (opt_.mode == GenerationMode::Hybrid && p.switch_to_ar) {
      use_mtp_ = false;
      ++result_.switch_to_ar;
    }
  } else {
    const int32_t t = x0[0];
    const std::string type = classify_ar_token(t, ids_, opt_.mode);
    commit({t}, type, logits, rows);
    if (type == "im_end") {
      stop = true;
      result_.stop_reason = t == ids_.im_end ? "im_end_token" : "ar_non_coord_token_stop";
    } else if (type == "box_end_ar") {
      use_mtp_ = true;
    }
  }
  if (!stop && opt_.loop_guard && loop_guard_hit()) {
    stop = true;
    result_.stop_reason = "loop_guard";
    result_.loop_guard_fired = true;
  }
  if (!stop && static_cast<int64_t>(seq_.size()) >= limit_) {
    stop = true;
    result_.stop_reason = "max_len";
  }
  done_ = stop;
}

}  // namespace la
