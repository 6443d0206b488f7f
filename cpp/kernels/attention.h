// Softmax attention kernels: tiled bidirectional attention (vision tower) and masked GQA attention
// over a KV cache (decoder). Neither builds more than a tile of scores.
#pragma once

#include <cstdint>

#include "core/cpu.h"

namespace la {

// Bidirectional attention within one image (all L tokens see each other), flash-style: query
// blocks × key blocks with an online softmax, so memory is O(block²), not O(L²).
//   q, k, v: [L] rows of stride ld, head h at columns [h·head_dim, (h+1)·head_dim)
//   out: [L] rows of stride ld_out, same head layout. scale multiplies q·k.
void attention_bidirectional(const float* q, const float* k, const float* v, int64_t ld, int64_t L, int heads,
                             int head_dim, float scale, float* out, int64_t ld_out);

// Visible keys of one query row: [0, a_end) ∪ [b_begin, b_end). A causal row g has a_end = g+1
// and an empty second range; an MTP window row sees [0, L−1) ∪ [L, K).
struct KeyRanges {
  int32_t a_end = 0;
  int32_t b_begin = 0;
  int32_t b_end = 0;
};

// Grouped-query attention of q rows against a KV cache.
//   q: [rows] of stride ldq, `heads` heads of head_dim; query head h reads KV head h / (heads/kv_heads).
//   k_cache: [kv_heads][head_dim][capacity] (keys transposed: one contiguous run of keys per
//   dimension); v_cache: [kv_heads][capacity][head_dim]; ranges: [rows].
//   out: [rows] of stride ldo, heads×head_dim.
// Reduction order: a score is an fma chain over the head dimension in order; a softmax is max, exp
// and a 16-lane sum (vmath.h); the output is an fma chain over the visible keys in key order. Each
// output row depends only on its own query and its visible keys, so a row gives the same bits
// whatever else is in the chunk (batch invariance), and the ISA variants agree bit for bit.
void attention_gqa(const float* q, int64_t rows, int64_t ldq, int heads, int kv_heads, int head_dim,
                   const float* k_cache, const float* v_cache, int64_t capacity, const KeyRanges* ranges, float scale,
                   float* out, int64_t ldo);

// The two inner kernels of attention_gqa (one table per ISA; the scalar twin is the reference).
struct AttentionKernels {
  // s[g·lds + j] = Σ_d q[g·D + d] · kt[d·ldk + j] (fma chain over d), for g < G ≤ 8 and j < n.
  void (*scores)(const float* q, int G, int D, const float* kt, int64_t ldk, int64_t n, float* s, int64_t lds);
  // out[g·ldo + d] += Σ_j p[g·ldp + j] · v[j·ldv + d] (fma chain over j), for g < G ≤ 8 and d < D.
  void (*weighted)(const float* p, int64_t ldp, int G, int64_t n, const float* v, int64_t ldv, int D, float* out,
                   int64_t ldo);
};
const AttentionKernels& attention_kernels_scalar();
const AttentionKernels& attention_kernels_avx2();
const AttentionKernels& attention_kernels_avx512();
const AttentionKernels& attention_kernels(Isa isa);

}  // namespace la
