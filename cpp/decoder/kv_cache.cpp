// KvCache storage management.
#include "decoder/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace la {

KvCache::KvCache(int layers, int kv_heads, int head_dim)
    : layers_(layers), kv_heads_(kv_heads), head_dim_(head_dim), k_(layers), v_(layers) {}

namespace {
// Copies the first n positions of one layer between caches of different capacities.
void copy_positions(const float* k_src, const float* v_src, int64_t cap_src, float* k_dst, float* v_dst,
                    int64_t cap_dst, int kv_heads, int head_dim, int64_t n) {
  if (n <= 0) return;
  for (int64_t hd = 0; hd < static_cast<int64_t>(kv_heads) * head_dim; ++hd)  // K: one run per (head, dim)
    std::memcpy(k_dst + hd * cap_dst, k_src + hd * cap_src, sizeof(float) * n);
  for (int h = 0; h < kv_heads; ++h)  // V: one block of n rows per head
    std::memcpy(v_dst + static_cast<int64_t>(h) * cap_dst * head_dim, v_src + static_cast<int64_t>(h) * cap_src * head_dim,
                sizeof(float) * n * head_dim);
}
}  // namespace

void KvCache::reserve(int64_t n) {
  if (n <= capacity_) return;
  const int64_t cap = std::max<int64_t>(n, std::max<int64_t>(64, capacity_ + capacity_ / 2));
  const size_t size = static_cast<size_t>(kv_heads_) * cap * head_dim_;
  for (int l = 0; l < layers_; ++l) {
    std::vector<float> k(size), v(size);
    copy_positions(k_[l].data(), v_[l].data(), capacity_, k.data(), v.data(), cap, kv_heads_, head_dim_, length_);
    k_[l].swap(k);
    v_[l].swap(v);
  }
  capacity_ = cap;
}

void KvCache::write(int layer, int64_t pos, const float* k, const float* v) {
  float* kd = k_[layer].data();
  float* vd = v_[layer].data();
  for (int h = 0; h < kv_heads_; ++h)
    for (int d = 0; d < head_dim_; ++d) kd[(static_cast<int64_t>(h) * head_dim_ + d) * capacity_ + pos] = k[h * head_dim_ + d];
  for (int h = 0; h < kv_heads_; ++h)
    std::memcpy(vd + (static_cast<int64_t>(h) * capacity_ + pos) * head_dim_, v + static_cast<int64_t>(h) * head_dim_,
                sizeof(float) * head_dim_);
}

void KvCache::extend_to(int64_t n) {
  LA_ASSERT(n >= length_ && n <= capacity_, "extend_to ", n, " with length ", length_, " capacity ", capacity_);
  length_ = n;
}

void KvCache::truncate(int64_t n) {
  LA_ASSERT(n >= 0 && n <= length_, "truncate to ", n, " with length ", length_);
  length_ = n;
}

KvCache KvCache::prefix_copy(int64_t n) const {
  LA_ASSERT(n >= 0 && n <= length_, "prefix_copy ", n, " of ", length_);
  KvCache c(layers_, kv_heads_, head_dim_);
  c.reserve(n);
  for (int l = 0; l < layers_; ++l)
    copy_positions(k_[l].data(), v_[l].data(), capacity_, c.k_[l].data(), c.v_[l].data(), c.capacity_, kv_heads_,
                   head_dim_, n);
  c.length_ = n;
  return c;
}

size_t KvCache::bytes() const { return static_cast<size_t>(layers_) * 2 * kv_heads_ * capacity_ * head_dim_ * 4; }

}  // namespace la
