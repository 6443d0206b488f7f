// Softmax attention kernels: tiled bidirectional attention (vision tower) and masked GQA attention
// over a KV cache (decoder). Neither builds more than a tile of scores.
#pragma once

#include <cstdint>

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
//   k_cache, v_cache: [kv_heads][capacity][head_dim]; ranges: [rows].
//   out: [rows] of stride ldo, heads×head_dim.
// Each output row depends only on its own query and its visible keys, in key order, so a row gives
// the same bits whatever else is in the chunk (batch invariance).
void attention_gqa(const float* q, int64_t rows, int64_t ldq, int heads, int kv_heads, int head_dim,
                   const float* k_cache, const float* v_cache, int64_t capacity, const KeyRanges* ranges, float scale,
                   float* out, int64_t ldo);

}  // namespace la
