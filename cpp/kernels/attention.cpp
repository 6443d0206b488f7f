// Attention kernels. Vision: sgemm tiles + online softmax. Decoder: per (row, KV head) two-pass
// softmax over the visible keys with the fixed reduction orders of attention.h.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/scratch.h"
#include "core/thread_pool.h"
#include "kernels/gemm.h"
#include "kernels/vmath.h"

namespace la {

namespace {
constexpr int64_t kQueryBlock = 256;  // measured best of {64,128,256}×{256,512,1024} at L=1024, D=72
constexpr int64_t kKeyBlock = 512;

// One query row's online-softmax step over a block of nk scores: exp_pass(m) writes the weights
// exp(s − m) wherever the caller wants them and returns their sum; the row's running max and sum
// move on, and its accumulated output (n values) is rescaled to the new max.
template <class ExpPass>
void softmax_step(const VmathKernels& vm, const float* s, int64_t nk, float& row_max, float& row_sum, float* acc, int n,
                  ExpPass exp_pass) {
  const float m = std::max(row_max, vm.max(s, nk));
  const float corr = exp_approx(row_max - m);
  const float sum = exp_pass(m);
  row_sum = row_sum * corr + sum;
  row_max = m;
  if (corr != 1.0f)
    for (int d = 0; d < n; ++d) acc[d] *= corr;
}

// out[d] = acc[d] / row_sum, d < n: the finished row.
void normalise(const float* acc, float row_sum, int n, float* out) {
  const float inv = 1.0f / row_sum;
  for (int d = 0; d < n; ++d) out[d] = acc[d] * inv;
}
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
    float* scores = static_cast<float*>(thread_scratch(ScratchSlot::Attention, kQueryBlock * kKeyBlock * 4));
    std::vector<float> acc(kQueryBlock * head_dim, 0.0f);
    std::vector<float> row_max(nq, -std::numeric_limits<float>::infinity()), row_sum(nq, 0.0f);
    for (int64_t k0 = 0; k0 < L; k0 += kKeyBlock) {
      const int64_t nk = std::min(kKeyBlock, L - k0);
      sgemm_nt_serial(nq, nk, head_dim, scale, q + q0 * ld + hoff, ld, k + k0 * ld + hoff, ld, 0.0f, scores,
                      kKeyBlock);
      for (int64_t i = 0; i < nq; ++i) {
        float* si = scores + i * kKeyBlock;
        softmax_step(vm, si, nk, row_max[i], row_sum[i], acc.data() + i * head_dim, head_dim,
                     [&](float m) { return vm.exp_sum(si, m, si, nk); });
      }
      sgemm_nn_serial(nq, head_dim, nk, 1.0f, scores, kKeyBlock, v + k0 * ld + hoff, ld, 1.0f, acc.data(),
                      head_dim);
    }
    for (int64_t i = 0; i < nq; ++i) normalise(acc.data() + i * head_dim, row_sum[i], head_dim, out + (q0 + i) * ld_out + hoff);
  };
  if (pool) {
    pool->run(heads * q_blocks, task);
  } else {
    for (int64_t t = 0; t < heads * q_blocks; ++t) task(t);
  }
}

const AttentionBf16Kernels& attention_bf16_kernels() {
  return bf16_units() ? attention_bf16_kernels_avx512() : attention_bf16_kernels_scalar();
}

void attention_bidirectional_bf16(const float* q, const float* k, const float* v, int64_t ld, int64_t L, int heads,
                                  int head_dim, float scale, float* out, int64_t ld_out) {
  if (L <= 0) return;
  const AttentionBf16Kernels& bk = attention_bf16_kernels();
  const VmathKernels& vm = vmath();
  // Every head's keys and values once, in the kernels' pair layouts (zero-padded): keys pair-major
  // [P][L16][2] (P = head_dim/2 rounded up), values [L2/2][Dv][2] (Dv = head_dim rounded up to 16).
  const int P = (head_dim + 1) / 2, Dv = (head_dim + 15) / 16 * 16;
  const int64_t L16 = (L + 15) / 16 * 16, L2 = (L + 1) / 2 * 2;
  const int64_t k_size = static_cast<int64_t>(P) * L16 * 2, v_size = L2 * Dv;
  // Every element of both layouts is written (padding as zeros), so they live in the calling thread's
  // scratch. Keys go through a [16 keys][2P] staging tile, so each pair row receives 64 contiguous
  // bytes per tile instead of one 4-byte store per key at a 4·L16-byte stride (a stride that sends all
  // 2P rows of a key to the same L1 set). Values interleave two keys' rows, one 4-byte word per pair.
  uint16_t* kp = static_cast<uint16_t*>(thread_scratch(ScratchSlot::AttentionPacked, heads * (k_size + v_size) * 2));
  uint16_t* vp = kp + heads * k_size;
  parallel_for(heads, 1, [&](int64_t h0, int64_t h1) {
    std::vector<uint16_t> tile(static_cast<size_t>(16 * 2 * P), 0), v0(Dv, 0), v1(Dv, 0);
    for (int64_t h = h0; h < h1; ++h) {
      uint16_t* kh = kp + h * k_size;
      uint16_t* vh = vp + h * v_size;
      for (int64_t j0 = 0; j0 < L16; j0 += 16) {
        const int64_t nj = std::min<int64_t>(16, L - j0);
        for (int64_t j = 0; j < nj; ++j) bk.to_bf16(k + (j0 + j) * ld + h * head_dim, head_dim, tile.data() + j * 2 * P);
        std::fill(tile.begin() + nj * 2 * P, tile.end(), uint16_t{0});  // keys L .. L16 − 1
        for (int p = 0; p < P; ++p)
          for (int64_t j = 0; j < 16; ++j) std::memcpy(kh + (p * L16 + j0 + j) * 2, tile.data() + j * 2 * P + 2 * p, 4);
      }
      for (int64_t j = 0; j < L; j += 2) {
        bk.to_bf16(v + j * ld + h * head_dim, head_dim, v0.data());
        if (j + 1 < L) {
          bk.to_bf16(v + (j + 1) * ld + h * head_dim, head_dim, v1.data());
        } else {
          std::fill(v1.begin(), v1.end(), uint16_t{0});  // the odd key's partner
        }
        uint16_t* out = vh + (j / 2) * Dv * 2;
        for (int d = 0; d < Dv; ++d) {  // v0/v1 stay zero from head_dim on
          const uint32_t word = static_cast<uint32_t>(v0[d]) | static_cast<uint32_t>(v1[d]) << 16;
          std::memcpy(out + 2 * d, &word, 4);
        }
      }
    }
  });
  const int64_t q_blocks = (L + kQueryBlock - 1) / kQueryBlock;
  auto task = [&](int64_t t) {
    const int h = static_cast<int>(t / q_blocks);
    const int64_t q0 = (t % q_blocks) * kQueryBlock;
    const int64_t nq = std::min(kQueryBlock, L - q0);
    const int64_t hoff = static_cast<int64_t>(h) * head_dim;
    std::vector<uint16_t> qb(static_cast<size_t>(nq * 2 * P), 0);  // an odd head_dim leaves a zero pad
    // Scratch written before it is read: the scores by bk.scores, pb up to 2T per row (the odd key's
    // partner is set below).
    float* scores = static_cast<float*>(thread_scratch(ScratchSlot::Attention, kQueryBlock * kKeyBlock * 6));
    uint16_t* pb = reinterpret_cast<uint16_t*>(scores + kQueryBlock * kKeyBlock);
    std::vector<float> acc(static_cast<size_t>(nq * Dv), 0.0f);
    std::vector<float> row_max(nq, -std::numeric_limits<float>::infinity()), row_sum(nq, 0.0f);
    for (int64_t i = 0; i < nq; ++i) bk.to_bf16(q + (q0 + i) * ld + hoff, head_dim, qb.data() + i * 2 * P);
    for (int64_t k0 = 0; k0 < L; k0 += kKeyBlock) {
      const int64_t nk = std::min(kKeyBlock, L - k0), nk16 = (nk + 15) / 16 * 16, T = (nk + 1) / 2;
      bk.scores(qb.data(), 2 * P, nq, P, kp + h * k_size + 2 * k0, 2 * L16, nk16, scale, scores,
                kKeyBlock);
      for (int64_t i = 0; i < nq; ++i) {
        float* s = scores + i * kKeyBlock;
        uint16_t* pr = pb + i * kKeyBlock;
        softmax_step(vm, s, nk, row_max[i], row_sum[i], acc.data() + i * Dv, head_dim,
                     [&](float m) { return bk.exp_to_bf16(s, m, nk, pr); });
        if (nk % 2) pr[nk] = 0;  // the odd key's partner: a zero weight on a zero value row
      }
      bk.weighted(pb, kKeyBlock, nq, T, vp + h * v_size + k0 * Dv, Dv, acc.data(), Dv);
    }
    for (int64_t i = 0; i < nq; ++i) normalise(acc.data() + i * Dv, row_sum[i], head_dim, out + (q0 + i) * ld_out + hoff);
  };
  if (ThreadPool* pool = current_pool()) {
    pool->run(heads * q_blocks, task);
  } else {
    for (int64_t t = 0; t < heads * q_blocks; ++t) task(t);
  }
}

const AttentionKernels& attention_kernels(Isa isa) {
  return *pick_isa<const AttentionKernels*>(isa, {{Isa::Avx512, &attention_kernels_avx512()},
                                                  {Isa::Avx2, &attention_kernels_avx2()},
                                                  {Isa::Scalar, &attention_kernels_scalar()}});
}

void attention_gqa(const float* q, int64_t rows, int64_t ldq, int heads, int kv_heads, int head_dim,
                   const float* k_cache, const float* v_cache, int64_t capacity, const KeyRanges* ranges, float scale,
                   float* out, int64_t ldo) {
  const int group = heads / kv_heads;
  const VmathKernels& vm = vmath();
  const AttentionKernels& ak = attention_kernels(active_isa());
  // One task per (row, KV head): the query heads sharing the KV head are scored together over all
  // visible keys (the transposed key cache gives contiguous runs of keys per dimension). Tasks are
  // handed out one at a time, longest rows first: in a causal prefill the work grows with the row, and
  // an even split by row count left one thread with three quarters of it.
  const int64_t n_tasks = rows * kv_heads;
  auto task = [&](int64_t t) {
    const int64_t r = t / kv_heads;
    const int64_t kv = t % kv_heads;
    const KeyRanges& kr = ranges[r];
    const int64_t n_a = kr.a_end, n_b = std::max<int64_t>(0, kr.b_end - kr.b_begin), n = n_a + n_b;
    const float* qh = q + r * ldq + kv * group * head_dim;  // the group's query heads, contiguous
    const float* kt = k_cache + kv * head_dim * capacity;
    const float* vbase = v_cache + kv * capacity * head_dim;
    float* o = out + r * ldo + kv * group * head_dim;
    float* scores = static_cast<float*>(thread_scratch(ScratchSlot::Attention, group * n * 4));
    for (int g0 = 0; g0 < group; g0 += 8) {
      const int G = std::min(8, group - g0);
      float* s = scores + g0 * n;
      ak.scores(qh + g0 * head_dim, G, head_dim, kt, capacity, n_a, s, n);
      if (n_b > 0) ak.scores(qh + g0 * head_dim, G, head_dim, kt + kr.b_begin, capacity, n_b, s + n_a, n);
    }
    for (int g = 0; g < group; ++g) {
      float* s = scores + g * n;
      for (int64_t j = 0; j < n; ++j) s[j] *= scale;
      const float m = vm.max(s, n);
      const float sum = vm.exp_sum(s, m, s, n);
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < n; ++j) s[j] *= inv;  // normalise the weights, then sum the values
    }
    std::fill(o, o + group * head_dim, 0.0f);
    for (int g0 = 0; g0 < group; g0 += 8) {
      const int G = std::min(8, group - g0);
      ak.weighted(scores + g0 * n, n, G, n_a, vbase, head_dim, head_dim, o + g0 * head_dim, head_dim);
      if (n_b > 0)
        ak.weighted(scores + g0 * n + n_a, n, G, n_b, vbase + kr.b_begin * head_dim, head_dim, head_dim,
                    o + g0 * head_dim, head_dim);
    }
  };
  ThreadPool* pool = current_pool();
  if (pool && n_tasks > 1) {
    pool->run(n_tasks, [&](int64_t i) { task(n_tasks - 1 - i); });
  } else {
    for (int64_t t = 0; t < n_tasks; ++t) task(t);
  }
}

}  // namespace la
