// KvCache storage management.
#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace la {

KvCache::KvCache(int layers, int kv_heads, int head_dim)
    : layers_(layers), kv_heads_(kv_heads), head_dim_(head_dim), k_(layers), v_(layers) {}

void KvCache::reserve(int64_t n) {
  if (n <= capacity_) return;
  const int64_t cap = std::max<int64_t>(n, std::max<int64_t>(64, capacity_ + capacity_ / 2));
  for (int l = 0; l < layers_; ++l) {
    for (auto* store : {&k_[l], &v_[l]}) {
      std::vector<float> grown(static_cast<size_t>(kv_heads_) * cap * head_dim_);
      for (int h = 0; h < kv_heads_; ++h)
        if (length_ > 0)
          std::memcpy(grown.data() + static_cast<int64_t>(h) * cap * head_dim_,
                      store->data() + static_cast<int64_t>(h) * capacity_ * head_dim_,
                      sizeof(float) * length_ * head_dim_);
      store->swap(grown);
    }
  }
  capacity_ = cap;
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
    for (int h = 0; h < kv_heads_; ++h) {
      const int64_t src = static_cast<int64_t>(h) * capacity_ * head_dim_;
      const int64_t dst = static_cast<int64_t>(h) * c.capacity_ * head_dim_;
      std::memcpy(c.k_[l].data() + dst, k_[l].data() + src, sizeof(float) * n * head_dim_);
      std::memcpy(c.v_[l].data() + dst, v_[l].data() + src, sizeof(float) * n * head_dim_);
    }
  c.length_ = n;
  return c;
}

size_t KvCache::bytes() const { return static_cast<size_t>(layers_) * 2 * kv_heads_ * capacity_ * head_dim_ * 4; }

}  // namespace la
