// sample_tokens' logit pipeline in float32 with deterministic tie handling.
#include "decoder/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/thread_pool.h"
#include "kernels/vmath.h"

namespace la {

namespace {

constexpr float kRemoved = -std::numeric_limits<float>::max();  // torch.finfo(float32).min

// Descending by value, ascending by index on ties.
struct ByValueDesc {
  const float* v;
  bool operator()(int32_t a, int32_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

void softmax_inplace(float* x, int64_t n) {
  const VmathKernels& vm = vmath();
  const float sum = vm.exp_sum(x, vm.max(x, n), x, n);
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

// Nucleus filter on one row of logits (in place).
void top_p_filter(float* logits, int64_t vocab, float top_p) {
  // Softmax normaliser over the full row (the sort does not change the set of values).
  const VmathKernels& vm = vmath();
  const float m = vm.max(logits, vocab);
  std::vector<float> e(static_cast<size_t>(vocab));
  const float z = vm.exp_sum(logits, m, e.data(), vocab);
  // Sort only as many candidates as the nucleus needs, growing the candidate set when short.
  std::vector<int32_t> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  int64_t n = std::min<int64_t>(64, vocab);
  int64_t keep = vocab;
  for (;;) {
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), ByValueDesc{logits});
    // Rank r is removed when the cumulative probability of ranks < r already exceeds top_p
    // (the reference's right shift of the removal mask); rank 0 is always kept.
    float cum = 0.0f;
    int64_t r = 0;
    for (; r < n; ++r) {
      if (r > 0 && cum > top_p) break;
      cum += e[idx[r]] / z;
    }
    if (r < n || cum > top_p || n == vocab) {
      keep = r;
      break;
    }
    n = std::min<int64_t>(vocab, n * 4);
  }
  std::vector<uint8_t> kept(static_cast<size_t>(vocab), 0);
  for (int64_t r = 0; r < keep; ++r) kept[idx[r]] = 1;
  for (int64_t i = 0; i < vocab; ++i)
    if (!kept[i]) logits[i] = kRemoved;
}

void top_k_filter(float* logits, int64_t vocab, int k) {
  k = static_cast<int>(std::min<int64_t>(k, vocab));
  std::vector<float> copy(logits, logits + vocab);
  std::nth_element(copy.begin(), copy.begin() + (k - 1), copy.end(), std::greater<float>());
  const float kth = copy[k - 1];
  for (int64_t i = 0; i < vocab; ++i)
    if (logits[i] < kth) logits[i] = kRemoved;
}

}  // namespace

void PenaltySet::add(int32_t id) {
  if (id < 0 || id >= static_cast<int64_t>(seen_.size()) || seen_[id]) return;
  seen_[id] = 1;
  ids_.push_back(id);
}

void logits_to_probs(float* logits, int64_t rows, int64_t vocab, const PenaltySet& seen, const SamplingParams& p) {
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = logits + r * vocab;
      if (p.repetition_penalty != 1.0f) {
        for (int32_t id : seen.ids()) {
          const float v = row[id];
          row[id] = v > 0.0f ? v / p.repetition_penalty : v * p.repetition_penalty;
        }
      }
      if (p.temperature > 0.0f)
        for (int64_t i = 0; i < vocab; ++i) row[i] /= p.temperature;
      if (p.top_p < 1.0f) top_p_filter(row, vocab, p.top_p);
      if (p.top_k > 0) top_k_filter(row, vocab, p.top_k);
      softmax_inplace(row, vocab);
    }
  });
}

int32_t argmax_first(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return static_cast<int32_t>(best);
}

std::vector<int32_t> top_k_indices(const float* v, int64_t n, int k) {
  k = static_cast<int>(std::min<int64_t>(k, n));
  // One pass keeping the k best in a small sorted buffer (k is 4 or 5 here).
  std::vector<int32_t> best;
  best.reserve(k + 1);
  ByValueDesc before{v};
  for (int64_t i = 0; i < n; ++i) {
    const int32_t id = static_cast<int32_t>(i);
    if (static_cast<int>(best.size()) == k && !before(id, best.back())) continue;
    auto pos = std::upper_bound(best.begin(), best.end(), id, before);
    best.insert(pos, id);
    if (static_cast<int>(best.size()) > k) best.pop_back();
  }
  return best;
}

int32_t sample_categorical(const float* v, int64_t n, std::mt19937_64& rng) {
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += v[i];
  std::uniform_real_distribution<double> uni(0.0, total);
  const double u = uni(rng);
  double acc = 0.0;
  int64_t last_positive = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (v[i] <= 0.0f) continue;
    acc += v[i];
    last_positive = i;
    if (u < acc) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(last_positive);
}

}  // namespace la
