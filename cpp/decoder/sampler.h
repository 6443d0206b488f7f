// Logit processing exactly as the reference's sample_tokens: repetition penalty over the whole
// sequence, temperature, top-p, top-k, float32 softmax; argmax with lowest-index ties; seeded sampling.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace la {

struct SamplingParams {
  float temperature = 0.0f;         // 0 = greedy argmax
  float top_p = 1.0f;               // applied when < 1
  int top_k = 0;                    // 0 = off
  float repetition_penalty = 1.0f;  // applied when != 1
};

// Distinct token ids seen so far in a sequence (prompt + generated): the repetition-penalty set.
class PenaltySet {
 public:
  explicit PenaltySet(int64_t vocab = 0) : seen_(static_cast<size_t>(vocab), 0) {}
  void add(int32_t id);
  void add(const std::vector<int32_t>& ids) {
    for (int32_t id : ids) add(id);
  }
  const std::vector<int32_t>& ids() const { return ids_; }

 private:
  std::vector<uint8_t> seen_;
  std::vector<int32_t> ids_;
};

// In place, for each of `rows` rows of `vocab` logits: penalty (logit > 0 → /p, else ×p, for every
// id in `seen`), temperature, top-p (nucleus over the float32 softmax of the sorted logits, the
// first token past the threshold kept), top-k (ties at the k-th value kept), then softmax.
// Removed tokens end with probability exactly 0.
void logits_to_probs(float* logits, int64_t rows, int64_t vocab, const PenaltySet& seen, const SamplingParams& p);

// Index of the largest value; the lowest index wins ties (torch.max).
int32_t argmax_first(const float* v, int64_t n);

// The k largest values' indices in descending order; equal values in ascending index order.
std::vector<int32_t> top_k_indices(const float* v, int64_t n, int k);

// Draws an index with probability v[i] / sum(v) (v ≥ 0).
int32_t sample_categorical(const float* v, int64_t n, std::mt19937_64& rng);

}  // namespace la
