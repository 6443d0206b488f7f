// Content hashing of images and the LRU cache of their encodings.
#include "vision/vision_cache.h"

#include <cstring>

namespace la {

namespace {

inline uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// A word-at-a-time multiplicative hash; two seeds give two independent 64-bit digests.
uint64_t hash_bytes(const uint8_t* p, size_t n, uint64_t seed) {
  uint64_t h = mix(seed ^ n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ mix(w + seed)) * 0x9e3779b97f4a7c15ULL;
  }
  uint64_t tail = 0;
  if (n > i) std::memcpy(&tail, p + i, n - i);
  h = (h ^ mix(tail + seed + (n - i))) * 0x9e3779b97f4a7c15ULL;
  return mix(h);
}

}  // namespace

ImageKey image_key(const ImageU8& image) {
  ImageKey k;
  k.width = image.width;
  k.height = image.height;
  k.h1 = hash_bytes(image.rgb.data(), image.rgb.size(), 0x243f6a8885a308d3ULL);
  k.h2 = hash_bytes(image.rgb.data(), image.rgb.size(), 0x13198a2e03707344ULL);
  return k;
}

void VisionCache::set_max_bytes(size_t max_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  max_bytes_ = max_bytes;
  evict_locked();
}

size_t VisionCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

size_t VisionCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

std::shared_ptr<const EncodedImage> VisionCache::find(const ImageKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
  return it->second.value;
}

void VisionCache::insert(const ImageKey& key, std::shared_ptr<const EncodedImage> value) {
  std::lock_guard<std::mutex> lock(mu_);
  if (max_bytes_ == 0 || !value || value->bytes() > max_bytes_ || map_.count(key)) return;
  lru_.push_front(key);
  bytes_ += value->bytes();
  map_[key] = Entry{std::move(value), lru_.begin()};
  evict_locked();
}

void VisionCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  map_.clear();
  lru_.clear();
  bytes_ = 0;
}

void VisionCache::evict_locked() {
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    auto it = map_.find(lru_.back());
    bytes_ -= it->second.value->bytes();
    map_.erase(it);
    lru_.pop_back();
  }
}

}  // namespace la
