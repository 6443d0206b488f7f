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

// The same with bfloat16 products, for the quantised plans' vision tower (twice the float32 rate
// on CPUs with AVX-512 BF16): q, k, v and the softmax weights are rounded to bf16 (round to nearest
// even, subnormal inputs as zero), and every product accumulates in float32 as vdpbf16ps does
// (AttentionBf16Kernels). The softmax itself stays in float32.
void attention_bidirectional_bf16(const float* q, const float* k, const float* v, int64_t ld, int64_t L, int heads,
                                  int head_dim, float scale, float* out, int64_t ld_out);

// Its inner kernels. A "pair product" into a float32 accumulator a, for bf16 pairs (x0, x1) and
// (y0, y1), is a = ftz(fma(x1, y1, daz(a))); a = ftz(fma(x0, y0, a)): exact products, one rounding per
// add (to nearest even), subnormals flushed to signed zero; the vdpbf16ps definition, which the
// scalar twin spells out and the AVX-512 BF16 variant executes.
struct AttentionBf16Kernels {
  // out[i] = bf16(x[i]) for i < n.
  void (*to_bf16)(const float* x, int64_t n, uint16_t* out);
  // The softmax weights of one row in one pass: p[i] = bf16(exp(s[i] − sub)) for i < n, returning the
  // sum of the float32 exps; the same bits as vmath's exp_sum followed by to_bf16. s is scratch (its
  // contents afterwards are unspecified).
  float (*exp_to_bf16)(float* s, float sub, int64_t n, uint16_t* p);
  // s[i·lds + j] = scale · (pair products over p < P of q row i and key j), i < nq, j < nk (a
  // multiple of 16). q: rows of 2P bf16 values, stride ldq; kp: pair-major keys, pair p of key j
  // at kp[p·ldk + 2j] (ldk ≥ 2·nk).
  void (*scores)(const uint16_t* q, int64_t ldq, int64_t nq, int P, const uint16_t* kp, int64_t ldk, int64_t nk,
                 float scale, float* s, int64_t lds);
  // acc[i·lda + d] += pair products over key pairs t < T of p row i and column d of v, i < nq, d < Dv
  // (a multiple of 16). p: rows of 2T bf16 values, stride ldp; vp: keys 2t, 2t+1 of column d at
  // vp[(t·Dv + d)·2 + {0, 1}].
  void (*weighted)(const uint16_t* p, int64_t ldp, int64_t nq, int64_t T, const uint16_t* vp, int Dv, float* acc,
                   int64_t lda);
};
const AttentionBf16Kernels& attention_bf16_kernels_scalar();
const AttentionBf16Kernels& attention_bf16_kernels_avx512();  // needs cpu_has_bf16()
// The AVX-512 BF16 variant when bf16_units(), else the scalar twin.
const AttentionBf16Kernels& attention_bf16_kernels();

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
