// Per-sequence key/value cache of the decoder: append by forward passes, truncate for MTP rollback.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace la {

// Layout, per layer: K transposed, [kv_heads][head_dim][capacity] (attention scores a run of keys
// per dimension), and V [kv_heads][capacity][head_dim], float32; positions [0, length) are valid.
// Keys are stored after RoPE. One cache per sequence, so a batch holds rows of different lengths.
class KvCache {
 public:
  KvCache() = default;
  KvCache(int layers, int kv_heads, int head_dim);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int layers() const { return layers_; }
  int kv_heads() const { return kv_heads_; }
  int head_dim() const { return head_dim_; }

  // Ensures room for `n` rows (grows geometrically, keeping the valid rows).
  void reserve(int64_t n);
  // K of one layer: [kv_heads][head_dim][capacity]; V: [kv_heads][capacity][head_dim].
  float* k(int layer) { return k_[layer].data(); }
  float* v(int layer) { return v_[layer].data(); }
  const float* k(int layer) const { return k_[layer].data(); }
  const float* v(int layer) const { return v_[layer].data(); }

  // Marks rows [length, n) as written (n ≤ capacity).
  void extend_to(int64_t n);
  // Drops rows from `n` on (n ≤ length): the rollback after every MTP step.
  void truncate(int64_t n);
  // A copy holding the first n rows (prefix sharing).
  KvCache prefix_copy(int64_t n) const;
  // Writes position `pos` (< capacity) of one layer: k and v hold kv_heads × head_dim values each.
  void write(int layer, int64_t pos, const float* k, const float* v);
  size_t bytes() const;

 private:
  int layers_ = 0, kv_heads_ = 0, head_dim_ = 0;
  int64_t capacity_ = 0, length_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace la
