// Attention kernels. Vision: sgemm tiles + online softmax. Decoder: per (row, head) two-pass softmax
// over the visible keys with the dot16 reduction order.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/vmath.h"

namespace la {

namespace {
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kKeyBlock = 256;
}  // namespace

void attention_bidirectional(const float* q, const float* k, const float* v, int64_t ld, int64_t L, int heads,
                             int head_dim, float scale, float* out, int64_t ld_out) {
  if (L <= 0) return;
  blas_single_threaded();
  const int64_t q_blocks = (L + kQueryBlock - 1) / kQueryBlock;
  const VmathKernels& vm = vmath();
  ThreadPool* pool = current_pool();
  auto task = [&](int64_t t) {
    const int h = static_cast<int>(t / q_blocks);
    const int64_t q0 = (t % q_blocks) * kQueryBlock;
    const int64_t nq = std::min(kQueryBlock, L - q0);
    const int64_t hoff = static_cast<int64_t>(h) * head_dim;
    std::vector<float> scores(kQueryBlock * kKeyBlock), acc(kQueryBlock * head_dim, 0.0f);
    std::vector<float> row_max(nq, -std::numeric_limits<float>::infinity()), row_sum(nq, 0.0f);
    for (int64_t k0 = 0; k0 < L; k0 += kKeyBlock) {
      const int64_t nk = std::min(kKeyBlock, L - k0);
      sgemm_nt_serial(nq, nk, head_dim, scale, q + q0 * ld + hoff, ld, k + k0 * ld + hoff, ld, 0.0f, scores.data(),
                      kKeyBlock);
      for (int64_t i = 0; i < nq; ++i) {
        float* s = scores.data() + i * kKeyBlock;
        const float m = std::max(row_max[i], vm.max(s, nk));
        const float corr = exp_approx(row_max[i] - m);
        const float sum = vm.exp_sum(s, m, s, nk);
        row_sum[i] = row_sum[i] * corr + sum;
        row_max[i] = m;
        if (corr != 1.0f) {
          float* a = acc.data() + i * head_dim;
          for (int d = 0; d < head_dim; ++d) a[d] *= corr;
        }
      }
      sgemm_nn_serial(nq, head_dim, nk, 1.0f, scores.data(), kKeyBlock, v + k0 * ld + hoff, ld, 1.0f, acc.data(),
                      head_dim);
    }
    for (int64_t i = 0; i < nq; ++i) {
      const float inv = 1.0f / row_sum[i];
      float* o = out + (q0 + i) * ld_out + hoff;
      for (int d = 0; d < head_dim; ++d) o[d] = acc[i * head_dim + d] * inv;
    }
  };
  if (pool) {
    pool->run(heads * q_blocks, task);
  } else {
    for (int64_t t = 0; t < heads * q_blocks; ++t) task(t);
  }
}

void attention_gqa(const float* q, int64_t rows, int64_t ldq, int heads, int kv_heads, int head_dim,
                   const float* k_cache, const float* v_cache, int64_t capacity, const KeyRanges* ranges, float scale,
                   float* out, int64_t ldo) {
  const int group = heads / kv_heads;
  const VmathKernels& vm = vmath();
  parallel_for(rows * heads, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores;
    std::vector<float> acc(head_dim);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r = t / heads;
      const int h = static_cast<int>(t % heads);
      const KeyRanges& kr = ranges[r];
      const float* qv = q + r * ldq + static_cast<int64_t>(h) * head_dim;
      const int64_t kv = h / group;
      const float* kbase = k_cache + kv * capacity * head_dim;
      const float* vbase = v_cache + kv * capacity * head_dim;
      const int64_t n_a = kr.a_end, n_b = kr.b_end - kr.b_begin;
      scores.resize(n_a + std::max<int64_t>(n_b, 0));
      auto key_index = [&](int64_t j) { return j < n_a ? j : kr.b_begin + (j - n_a); };
      const int64_t n = static_cast<int64_t>(scores.size());
      for (int64_t j = 0; j < n; ++j) scores[j] = dot16(qv, kbase + key_index(j) * head_dim, head_dim) * scale;
      const float m = vm.max(scores.data(), n);
      const float sum = vm.exp_sum(scores.data(), m, scores.data(), n);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float p = scores[j];
        const float* vr = vbase + key_index(j) * head_dim;
        for (int d = 0; d < head_dim; ++d) acc[d] += p * vr[d];
      }
      float* o = out + r * ldo + static_cast<int64_t>(h) * head_dim;
      const float inv = 1.0f / sum;
      for (int d = 0; d < head_dim; ++d) o[d] = acc[d] * inv;
    }
  });
}

}  // namespace la
