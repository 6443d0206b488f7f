// The generation loop of the reference (slow = token by token, fast = parallel box decoding,
// hybrid = parallel with token-by-token fallback) as a per-sequence state machine: plan() says what
// the next forward must compute, consume() turns its logits into committed tokens. The caller owns
// the decoder and the KV cache, so many sequences can share one forward pass.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "io/config.h"
#include "decoder/sampler.h"

namespace la {

enum class GenerationMode { Slow, Fast, Hybrid };

// "slow" | "fast" | "hybrid" (InvalidArgument otherwise, naming the accepted values).
GenerationMode parse_generation_mode(const std::string& name);
const char* generation_mode_name(GenerationMode mode);

// How one query is decoded. The defaults are the reference generate()'s (hybrid, 2048 new tokens,
// greedy, no top-p/top-k, no repetition penalty); this struct is their one home: the Python engine,
// worker and CLI read them from here (_core.GENERATION_DEFAULTS) and validate through validate().
struct GenerationOptions {
  GenerationMode mode = GenerationMode::Hybrid;
  int64_t max_new_tokens = 2048;
  SamplingParams sampling;
  uint64_t seed = 0;          // sampling RNG seed (temperature > 0)
  bool loop_guard = false;    // stop a run of identical repeated boxes (off: reference behaviour)
  int loop_guard_repeats = 8;  // identical consecutive boxes tolerated before the guard stops
  bool record_steps = false;  // keep a StepRecord per forward

  static constexpr int64_t kMaxNewTokensLimit = int64_t{1} << 24;
  // InvalidArgument naming the first out-of-range value and what it means (0 = greedy, ...).
  void validate() const;
};

// Route of an MTP block decision (spec-decoding §4.7).
enum class BlockRoute { None, Box, EmptyBox, Ref, X0 };
const char* block_route_name(BlockRoute route);

// The six tokens an MTP step proposes, and how they were chosen.
struct BlockDecision {
  BlockRoute route = BlockRoute::X0;
  std::vector<int32_t> tokens;  // 6 ids
  std::vector<int32_t> x0;      // per-row argmax (or samples)
  bool abnormal[4] = {false, false, false, false};
};

// Pattern handling of a block (handle_pattern): type name and committed tokens.
struct PatternResult {
  std::string type;  // im_end | empty_box | coord_box | point_box | error_box | ref_object
  std::vector<int32_t> tokens;
  bool terminal = false;
  bool switch_to_ar = false;
};

// Decides the block from processed probabilities probs[6][vocab] (spec §4.7 steps A–C).
BlockDecision decide_block(const float* probs, int64_t vocab, const std::vector<int32_t>& x0, const TokenIds& ids,
                           GenerationMode mode);
// handle_pattern (spec §4.8).
PatternResult handle_pattern(const std::vector<int32_t>& block, const TokenIds& ids, GenerationMode mode);
// AR token class (spec §4.9): im_end | continue_ar | box_end_ar | coord_ar.
std::string classify_ar_token(int32_t token, const TokenIds& ids, GenerationMode mode);

struct StepRecord {
  int64_t past_len = 0;  // cache length before the forward
  int64_t q_len = 0;     // chunk rows
  bool mtp = false;
  std::string type;      // block or AR type
  std::string route;     // MTP: box | empty_box | ref | x0
  std::vector<int32_t> x0;
  std::vector<int32_t> emitted;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (after the prompt)
  // Probability of each generated id under the distribution its row was drawn from (after the
  // repetition penalty, temperature and top-p / top-k; at temperature 0 the softmax of the logits).
  std::vector<float> token_probs;
  std::string stop_reason;      // im_end_token | max_len | ar_non_coord_token_stop | loop_guard
  int64_t forward_calls = 0;
  int64_t switch_to_ar = 0;
  bool loop_guard_fired = false;
  std::vector<StepRecord> steps;  // when record_steps
  // (mode label "ar"/"mtp", committed ids) per forward, the reference's verbose history
  std::vector<std::pair<std::string, std::vector<int32_t>>> history;
};

class Generation {
 public:
  Generation(std::vector<int32_t> prompt, const GenerationOptions& options, const TokenIds& ids,
             int64_t model_max_length, int64_t vocab);

  bool done() const { return done_; }

  // The next forward: chunk ids/positions to run against a cache of `cache_length()` rows.
  struct Plan {
    std::vector<int32_t> ids, positions;
    int window = 0;             // rows at the end forming the MTP window (0 = causal chunk)
    int64_t n_logit_rows = 1;   // logits needed for the last rows
    int64_t keep_length = 0;    // truncate the cache to this many rows after the forward
  };
  const Plan& plan();
  // Cache rows the next chunk continues from.
  int64_t cache_length() const { return cache_len_; }
  // Declares that the cache already holds the first n prompt tokens (a shared prefix computed
  // elsewhere); only before the first plan(), and n < prompt length so the anchor stays in the chunk.
  void skip_cached_prefix(int64_t n);
  // keep_length of the current plan (truncate the cache to it before consume()).
  int64_t plan_keep_length() const { return plan_.keep_length; }
  // Consumes the planned rows' logits ([n_logit_rows, vocab], overwritten with probabilities).
  void consume(float* logits);

  const GenerationResult& result() const { return result_; }
  int64_t prompt_length() const { return prompt_len_; }
  const std::vector<int32_t>& sequence() const { return seq_; }

 private:
  // probs: the processed distributions of the forward's logit rows ([rows, vocab]); token i of
  // `tokens` was drawn from row i.
  void commit(const std::vector<int32_t>& tokens, const std::string& type, const float* probs, int64_t rows);
  bool loop_guard_hit() const;

  GenerationOptions opt_;
  TokenIds ids_;
  int64_t vocab_;
  std::vector<int32_t> seq_;
  int64_t prompt_len_;
  int64_t limit_;  // min(model_max_length, prompt + max_new_tokens)
  int64_t cache_len_ = 0;
  bool use_mtp_;
  bool done_ = false;
  PenaltySet seen_;
  std::mt19937_64 rng_;
  Plan plan_;
  bool planned_ = false;
  GenerationResult result_;
};

}  // namespace la
